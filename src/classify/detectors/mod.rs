//! The detector registry: one file per protocol, each listed once here.
//!
//! Order matters only when two detectors would both claim the same bytes: the one the port
//! suggests is asked first, then this list in order.

pub mod http;
pub mod quic;
pub mod smtp;
pub mod ssh;
pub mod stun;
pub mod tls;

use super::detector::Detector;

/// Every payload detector, in probing order.
pub static REGISTRY: &[&dyn Detector] = &[
    // Byte-unambiguous binary protocols first.
    &tls::Tls,
    &ssh::Ssh,
    &quic::Quic,
    &stun::Stun,
    // Text protocols with unambiguous first lines.
    &smtp::Smtp,
    &http::Http,
];
