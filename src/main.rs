//! The `exwatch` binary: a thin shell over the library's command-line runner.

// Each worker allocates and frees its own flows and records; mimalloc's per-thread heaps are
// about 11% less user time than glibc's malloc on the many small allocations of inspection
// (benches/README.md, "Allocator and transparent huge pages").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    no_huge_pages();
    std::process::exit(exwatch::cli::main());
}

/// Transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` says otherwise.
/// mimalloc asks for them on its arenas, and each first touch of a region then faults in and
/// clears 2 MiB however little of it is used: on the benchmark capture that was twice the
/// peak RSS (66.8 against 35.4 MiB with 2 workers) for no CPU time saved, and a flow table
/// that grows and shrinks paid the clearing again and again (benches/README.md).
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours; it
        // fails only on kernels without it, where there is nothing to turn off.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}
