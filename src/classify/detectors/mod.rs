//! The detector registry: one file per protocol, each listed once here.
//!
//! Order matters only when two detectors would both claim the same bytes: the one the port
//! suggests is asked first, then this list in order.

pub mod http;
pub mod smtp;

use super::detector::Detector;

/// Every payload detector, in probing order.
pub static REGISTRY: &[&dyn Detector] = &[&smtp::Smtp, &http::Http];
