//! Live capture: packets from a network interface (a SPAN or mirror port) through libpcap.
//!
//! Opened before privileges are dropped; each socket is read by one reader thread of the
//! pipeline with a short read timeout, so that a quiet link still lets the reader advance its
//! worker's clock and notice a stop request.
//!
//! With several workers, [`open_sockets`] opens one libpcap handle (a TPACKET_V3 socket) per
//! worker and joins them to one kernel fanout group (`PACKET_FANOUT_HASH` with
//! `PACKET_FANOUT_FLAG_DEFRAG`): the kernel hashes each packet's flow symmetrically
//! (`__skb_get_hash_symmetric`), so both directions of a flow reach the same socket, and
//! reassembles IPv4 fragments before hashing, so a fragmented datagram reaches the socket of
//! its flow (as one packet: the socket then sees the whole datagram, not its fragments).
//! Other exwatch processes that join the same group ID on the same interface (and network
//! namespace) share its traffic with this one, flow by flow. Without `--fanout-group` the
//! kernel picks an ID no group uses, so that two exwatch processes never share by accident.
//!
//! Order of the steps per socket: activate, install the BPF filter, then join the group. The
//! kernel picks a group member first and runs that member's filter after, so every member must
//! carry the same filter; joining last means the socket never takes its share unfiltered
//! (libpcap also filters in user space what reached the ring before the filter was set).
//! Between activation and joining (a few milliseconds at start) a socket sees every packet of
//! the interface, so the first packets of that moment may be read by two sockets.

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

/// `PACKET_FANOUT` mode and flags (linux/if_packet.h): hash demux, IPv4 defragmentation
/// before hashing. The mode goes in the upper 16 bits of the option, the group ID in the lower.
const FANOUT_MODE: u32 = libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG;

/// The `PACKET_FANOUT` option value that joins group `id` with [`FANOUT_MODE`].
pub fn fanout_arg(id: u16) -> u32 {
    u32::from(id) | (FANOUT_MODE << 16)
}

/// The `PACKET_FANOUT` option value that makes a new group with [`FANOUT_MODE`], its ID chosen
/// by the kernel among those no group uses (`PACKET_FANOUT_FLAG_UNIQUEID`, Linux 4.5; the ID
/// field must then be 0). The kernel drops the flag from the group it makes, so the other
/// sockets join with [`fanout_arg`] of the ID it picked.
pub fn new_fanout_arg() -> u32 {
    (FANOUT_MODE | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16
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
    #[error("{iface}: cannot join fanout group {group}: {reason}")]
    Fanout {
        iface: String,
        group: u16,
        reason: String,
    },
    #[error("{iface}: cannot create a fanout group: {reason}")]
    NewFanout { iface: String, reason: String },
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

/// Open the interface for `sockets` workers: one handle without fanout when `sockets` is 1
/// and no group is asked for, else `sockets` handles joined to fanout group `group` (a new
/// group with an ID the kernel picks when `None`). Returns the handles and the group's ID.
pub fn open_sockets(
    o: &LiveOptions,
    sockets: usize,
    group: Option<u16>,
) -> Result<(Vec<LiveCapture>, Option<u16>), LiveError> {
    let sockets = sockets.max(1);
    if sockets == 1 && group.is_none() {
        return Ok((vec![LiveCapture::open(o)?], None));
    }
    let mut caps = Vec::with_capacity(sockets);
    let mut group = group;
    for _ in 0..sockets {
        let cap = LiveCapture::open(o)?;
        match group {
            Some(id) => cap.join_fanout(id)?,
            None => group = Some(cap.new_fanout()?),
        }
        caps.push(cap);
    }
    Ok((caps, group))
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

    /// Join fanout group `id` on this socket (after its filter is installed).
    pub fn join_fanout(&self, id: u16) -> Result<(), LiveError> {
        self.set_fanout(fanout_arg(id)).map_err(|err| {
            let hint = match err.raw_os_error() {
                // fanout_add(): a group with this ID exists in another mode, with other flags
                // or on another interface.
                Some(libc::EINVAL) => {
                    " (the group is in use with another mode or on another interface: choose another --fanout-group)"
                }
                Some(libc::ENOSPC) => " (the group has as many members as the kernel allows)",
                _ => "",
            };
            LiveError::Fanout {
                iface: self.name.clone(),
                group: id,
                reason: format!("{err}{hint}"),
            }
        })
    }

    /// Make a new fanout group with this socket in it (after its filter is installed); returns
    /// the ID the kernel chose.
    pub fn new_fanout(&self) -> Result<u16, LiveError> {
        let err = |e: std::io::Error| LiveError::NewFanout {
            iface: self.name.clone(),
            reason: e.to_string(),
        };
        self.set_fanout(new_fanout_arg()).map_err(err)?;
        let mut val: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt on our own open socket into a live c_int, its size in `len`.
        let rc = unsafe {
            libc::getsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&self.cap),
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                (&mut val as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        // The kernel answers with the group's ID in the low 16 bits, its mode and flags above.
        Ok((val as u32 & 0xffff) as u16)
    }

    fn set_fanout(&self, arg: u32) -> std::io::Result<()> {
        let arg = arg as libc::c_int;
        // SAFETY: setsockopt on our own open socket with a pointer to a live c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&self.cap),
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                (&arg as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
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

    /// libpcap's counters now (pcap_stats), accumulated across 32-bit wraps (each socket
    /// keeps its own last raw values).
    pub fn stats(&mut self) -> CaptureStats {
        if let Ok(s) = self.cap.stats() {
            self.stats
                .widen(&mut self.last_raw, [s.received, s.dropped, s.if_dropped]);
        }
        self.stats
    }
}

impl CaptureStats {
    /// Add what libpcap's 32-bit counters `now` (received, dropped, interface dropped) moved
    /// since `last`, counting one wrap between two reads; `last` becomes `now`.
    fn widen(&mut self, last: &mut [u32; 3], now: [u32; 3]) {
        let acc = [
            &mut self.received,
            &mut self.kernel_drops,
            &mut self.interface_drops,
        ];
        for ((a, n), last) in acc.into_iter().zip(now).zip(last.iter_mut()) {
            *a += u64::from(n.wrapping_sub(*last));
            *last = n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_option_packs_the_group_id_low_and_hash_with_defrag_high() {
        // linux/if_packet.h: PACKET_FANOUT_HASH 0, PACKET_FANOUT_FLAG_DEFRAG 0x8000.
        assert_eq!(fanout_arg(0), 0x8000_0000);
        assert_eq!(fanout_arg(1), 0x8000_0001);
        assert_eq!(fanout_arg(0xbeef), 0x8000_beef);
        assert_eq!(fanout_arg(u16::MAX), 0x8000_ffff);
        // The kernel reads the mode from bits 16..24 and the flags from bits 24..32.
        let v = fanout_arg(42);
        assert_eq!(v & 0xffff, 42, "group ID");
        assert_eq!((v >> 16) & 0xff, libc::PACKET_FANOUT_HASH, "mode");
        assert_eq!(
            (v >> 16) & !0xff,
            libc::PACKET_FANOUT_FLAG_DEFRAG,
            "flags: defragment, nothing else"
        );
    }

    #[test]
    fn counters_are_widened_across_a_32_bit_wrap() {
        let (mut s, mut last) = (CaptureStats::default(), [0u32; 3]);
        s.widen(&mut last, [u32::MAX - 1, 5, 0]);
        s.widen(&mut last, [3, 5, 1]);
        assert_eq!(s.received, u64::from(u32::MAX) + 4, "wrapped once");
        assert_eq!(s.kernel_drops, 5);
        assert_eq!(s.interface_drops, 1);
        assert_eq!(last, [3, 5, 1]);
    }

    #[test]
    fn a_new_group_asks_the_kernel_for_its_id() {
        // PACKET_FANOUT_FLAG_UNIQUEID 0x2000 beside DEFRAG, and an ID field of 0.
        assert_eq!(new_fanout_arg(), 0xa000_0000);
        assert_eq!(
            new_fanout_arg() & !(libc::PACKET_FANOUT_FLAG_UNIQUEID << 16),
            fanout_arg(0)
        );
    }
}
