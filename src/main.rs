//! The `exwatch` binary: a thin shell over the library's command-line runner.

fn main() {
    std::process::exit(exwatch::cli::main());
}
