//! Offline captures: pcap and pcapng files (or `-` for standard input) in the order given.

use super::RawPacket;
use pcap::{Capture, Offline, Precision};
use std::path::PathBuf;

/// A capture that could not be opened or read to its end, saying which and where.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{file}: cannot open: {reason}")]
    Open { file: String, reason: String },
    #[error("{file}: empty file: no capture file header")]
    Empty { file: String },
    #[error("{file}: not a pcap or pcapng capture: {reason}")]
    NotCapture { file: String, reason: String },
    #[error("{file}: packet {packet}: damaged capture ({reason}); the {read} packets before it were processed")]
    Damaged {
        file: String,
        packet: u64,
        read: u64,
        reason: String,
    },
}

impl CaptureError {
    /// Process exit code for this kind of failure (see the README's table).
    pub fn exit_code(&self) -> i32 {
        match self {
            CaptureError::Open { .. } => 3,
            CaptureError::Empty { .. } | CaptureError::NotCapture { .. } => 4,
            CaptureError::Damaged { .. } => 5,
        }
    }
}

/// An open capture file being read packet by packet.
pub struct OfflineCapture {
    name: String,
    cap: Capture<Offline>,
    linktype: i32,
    /// Packets returned so far.
    read: u64,
}

impl OfflineCapture {
    /// Open a file, or standard input for `-`.
    pub fn open(spec: &str) -> Result<Self, CaptureError> {
        let name = if spec == "-" {
            "<stdin>".to_string()
        } else {
            spec.to_string()
        };
        if spec != "-" {
            let path = PathBuf::from(spec);
            match std::fs::metadata(&path) {
                Err(e) => {
                    return Err(CaptureError::Open {
                        file: name,
                        reason: e.to_string(),
                    })
                }
                Ok(m) if m.is_dir() => {
                    return Err(CaptureError::Open {
                        file: name,
                        reason: "is a directory".into(),
                    })
                }
                Ok(m) if m.len() == 0 => return Err(CaptureError::Empty { file: name }),
                Ok(_) => {}
            }
        }
        let opened = if spec == "-" {
            // SAFETY: fd 0 stays open for the life of the process; libpcap takes it over.
            unsafe { Capture::from_raw_fd_with_precision(0, Precision::Nano) }
        } else {
            Capture::from_file_with_precision(spec, Precision::Nano)
        };
        let cap = opened.map_err(|e| classify_open_error(&name, e))?;
        let linktype = cap.get_datalink().0;
        Ok(OfflineCapture {
            name,
            cap,
            linktype,
            read: 0,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's link type (libpcap DLT value).
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// Packets read so far.
    pub fn packets_read(&self) -> u64 {
        self.read
    }

    /// The next packet, `Ok(None)` at the clean end of the file.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        match self.cap.next_packet() {
            Ok(p) => {
                self.read += 1;
                let ts = p.header.ts;
                // Nanosecond precision was requested, so tv_usec holds nanoseconds.
                let ns = ts.tv_sec.max(0) as u64 * 1_000_000_000
                    + ts.tv_usec.clamp(0, 999_999_999) as u64;
                Ok(Some(RawPacket {
                    ts: ns,
                    wire_len: p.header.len,
                    data: p.data,
                }))
            }
            Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(CaptureError::Damaged {
                file: self.name.clone(),
                packet: self.read + 1,
                read: self.read,
                reason: error_text(e),
            }),
        }
    }
}

fn error_text(e: pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s,
        other => other.to_string(),
    }
}

fn classify_open_error(name: &str, e: pcap::Error) -> CaptureError {
    let reason = error_text(e);
    let file = name.to_string();
    if reason.contains("only got 0") {
        CaptureError::Empty { file }
    } else if reason.contains("unknown file format")
        || reason.contains("bad dump file format")
        || reason.contains("truncated dump file")
        || reason.contains("file header")
        || reason.contains("unsupported")
        || reason.contains("pcapng")
        || reason.contains("Section Header")
    {
        CaptureError::NotCapture { file, reason }
    } else {
        CaptureError::Open { file, reason }
    }
}
