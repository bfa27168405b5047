//! Capture stage: packets from pcap/pcapng files and standard input (framed by exwatch), or a
//! live interface (through libpcap).

pub mod filter;
pub mod live;
pub mod offline;
pub mod time;

pub use offline::{CaptureError, OfflineCapture};

/// One captured frame as libpcap hands it over.
pub struct RawPacket<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts: u64,
    /// The link type of the interface it was captured on (pcapng files may mix them).
    pub linktype: i32,
    pub data: &'a [u8],
}
