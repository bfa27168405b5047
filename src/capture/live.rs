//! Live capture: packets from a network interface (a SPAN or mirror port) through libpcap.
//!
//! Opened before privileges are dropped; read by the pipeline's reader with a short read
//! timeout, so that a quiet link still lets the reader advance the workers' clocks and notice a
//! stop request.

use super::RawPacket;

/// How to open the interface (`exwatch live` options).
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub interface: String,
    /// BPF filter expression (tcpdump syntax); empty = everything.
    pub bpf: Option<String>,
    pub snaplen: i32,
    pub promisc: bool,
    /// Kernel capture buffer, bytes.
    pub buffer_size: i32,
}

/// Read timeout: the longest the reader waits on a quiet link before it looks at the clock.
pub const READ_TIMEOUT_MS: i32 = 100;

/// An interface that could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{iface}: cannot open for capture: {reason}")]
    Open { iface: String, reason: String },
    #[error("{iface}: bad --bpf filter {expr:?}: {reason}")]
    Filter {
        iface: String,
        expr: String,
        reason: String,
    },
    #[error("{iface}: capture failed after {read} packets: {reason}")]
    Read {
        iface: String,
        read: u64,
        reason: String,
    },
}

/// What one read returned.
pub enum Next<'a> {
    Packet(RawPacket<'a>),
    /// The read timeout passed with no packet.
    Quiet,
}

/// libpcap's counters for the capture, widened to 64 bits (libpcap's are 32-bit and wrap
/// on a link watched for days).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets the kernel handed to the capture (ps_recv).
    pub received: u64,
    /// Dropped because the capture buffer was full: the reader fell behind (ps_drop).
    pub kernel_drops: u64,
    /// Dropped by the interface or its driver (ps_ifdrop).
    pub interface_drops: u64,
}

/// An open interface.
pub struct LiveCapture {
    name: String,
    cap: pcap::Capture<pcap::Active>,
    linktype: i32,
    read: u64,
    last_was_packet: bool,
    last_raw: [u32; 3],
    stats: CaptureStats,
}

impl LiveCapture {
    /// Open and activate the interface, and install the filter.
    pub fn open(o: &LiveOptions) -> Result<Self, LiveError> {
        let open_err = |e: pcap::Error| LiveError::Open {
            iface: o.interface.clone(),
            reason: e.to_string(),
        };
        let mut cap = pcap::Capture::from_device(o.interface.as_str())
            .map_err(open_err)?
            .snaplen(o.snaplen)
            .promisc(o.promisc)
            .buffer_size(o.buffer_size)
            // Not immediate mode: that makes libpcap use TPACKET_V2, whose ring has one
            // snaplen-sized slot per packet (256 slots of 256 KiB in 64 MiB); TPACKET_V3 packs
            // packets into blocks, which the kernel hands over when full or after the read
            // timeout, so a packet waits at most that long on a quiet link.
            .timeout(READ_TIMEOUT_MS)
            .precision(pcap::Precision::Nano)
            .open()
            .map_err(open_err)?
            // libpcap on Linux may keep polling past its read timeout until a packet comes;
            // non-blocking reads and our own poll() bound every wait.
            .setnonblock()
            .map_err(open_err)?;
        if let Some(expr) = o.bpf.as_deref().filter(|e| !e.trim().is_empty()) {
            cap.filter(expr, true).map_err(|e| LiveError::Filter {
                iface: o.interface.clone(),
                expr: expr.to_string(),
                reason: e.to_string(),
            })?;
        }
        let linktype = cap.get_datalink().0;
        Ok(LiveCapture {
            name: o.interface.clone(),
            cap,
            linktype,
            read: 0,
            last_was_packet: false,
            last_raw: [0; 3],
            stats: CaptureStats::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface's link type (libpcap DLT value).
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// The next packet, or `Quiet` when the read timeout passed without one.
    pub fn next_packet(&mut self) -> Result<Next<'_>, LiveError> {
        // After a packet more are likely waiting: read again before polling.
        if !self.last_was_packet {
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&self.cap),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; an error or a timeout both mean "try a read, then
            // report quiet", so the result itself is not needed.
            unsafe { libc::poll(&mut pfd, 1, READ_TIMEOUT_MS) };
        }
        match self.cap.next_packet() {
            Ok(p) => {
                self.last_was_packet = true;
                self.read += 1;
                // Nanosecond precision was requested, so tv_usec holds nanoseconds.
                let ts = p.header.ts.tv_sec.max(0) as u64 * 1_000_000_000
                    + p.header.ts.tv_usec.clamp(0, 999_999_999) as u64;
                Ok(Next::Packet(RawPacket {
                    ts,
                    linktype: self.linktype,
                    data: p.data,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                self.last_was_packet = false;
                Ok(Next::Quiet)
            }
            Err(e) => Err(LiveError::Read {
                iface: self.name.clone(),
                read: self.read,
                reason: e.to_string(),
            }),
        }
    }

    /// libpcap's counters now (pcap_stats), accumulated across 32-bit wraps.
    pub fn stats(&mut self) -> CaptureStats {
        if let Ok(s) = self.cap.stats() {
            let now = [s.received, s.dropped, s.if_dropped];
            let acc = [
                &mut self.stats.received,
                &mut self.stats.kernel_drops,
                &mut self.stats.interface_drops,
            ];
            for ((a, n), last) in acc.into_iter().zip(now).zip(self.last_raw.iter_mut()) {
                *a += u64::from(n.wrapping_sub(*last));
                *last = n;
            }
        }
        self.stats
    }
}
