//! Capture stage: packets from pcap/pcapng files, standard input or a live interface, read
//! through libpcap.

pub mod live;
pub mod offline;

pub use offline::{CaptureError, OfflineCapture};

/// One captured frame as libpcap hands it over.
pub struct RawPacket<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts: u64,
    pub data: &'a [u8],
}
