//! exwatch: a passive traffic classifier for Microsoft Exchange environments.
//!
//! Pipeline: `capture` (pcap files, stdin) -> `decode` (frames to packet views) -> `flow`
//! (bidirectional flows, TCP state, expiry) -> `classify` (payload detectors, port hints) ->
//! `policy` (allow policies, firewall rule sets, learning, templates) -> `report` (ECS records,
//! summary). `pipeline` wires a reader to sharded workers and one sink.

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
