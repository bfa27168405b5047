//! exwatch: a passive traffic classifier for Microsoft Exchange environments.
//!
//! Pipeline: `capture` (pcap files, stdin) -> `decode` (frames to packet views) -> `flow`
//! (bidirectional flows, TCP state, expiry) -> `classify` (payload detectors, port hints) ->
//! `policy` (allow policies, firewall rule sets, learning, templates) -> `report` (ECS records,
//! summary). `pipeline` wires a reader to sharded workers and one sink.

/// `eprintln!` that never panics: a standard error that cannot be written (closed, a full disk)
/// loses the message, not the run and its exit code.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that never panics (see [`say!`]).
#[macro_export]
macro_rules! say_text {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

pub mod capture;
pub mod classify;
pub mod cli;
pub mod decode;
pub mod flow;
pub mod pipeline;
pub mod policy;
pub mod privilege;
pub mod report;
pub mod signatures;
