//! The `exwatch` binary: a thin shell over the library's command-line runner.

// Each worker allocates and frees its own flows and records; mimalloc's per-thread heaps are
// about 11% less user time than glibc's malloc on the many small allocations of inspection
// (benches/README.md, "Allocator and transparent huge pages").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(exwatch::cli::main());
}
