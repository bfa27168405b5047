//! The `exwatch` binary: a thin shell over the library's command-line runner.

// Flows are allocated by a worker and freed by the sink; mimalloc handles that hand-over
// without glibc's arena locking, and is faster on the many small allocations of inspection.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(exwatch::cli::main());
}
