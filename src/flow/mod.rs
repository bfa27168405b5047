//! Flow stage: bidirectional conversations, their counters, TCP state and expiry.
//!
//! Receives `FlowPacket`s from the decode stage (already keyed and sharded), keeps one small
//! `Flow` per conversation in a per-worker `FlowTable`, and hands finished flows to `report`.
//!
//! The flow stage owns only what every flow has (key, counters, TCP history, timestamps, table
//! links). What payload inspection keeps per flow is the classify stage's: `Flow<S>` and
//! `FlowTable<S>` carry it as an opaque `S: FlowState` (`classify::Classification`), so this
//! module never imports `classify` and the stages depend one way only.

pub mod community_id;
pub mod key;
pub mod table;
pub mod tcp;

pub use key::FlowKey;

use crate::decode::{IPPROTO_TCP, IPPROTO_UDP};

/// One packet as the flow stage needs it: the key, counters and a window on its payload.
#[derive(Debug, Clone, Copy)]
pub struct FlowPacket {
    pub ts: u64,
    /// The reader's clock at this packet (the latest capture time read so far): never
    /// decreases, so facts stamped with it reach the sink in order per worker.
    pub clock: u64,
    pub hash: u64,
    pub key: FlowKey,
    /// The sender is the key's `lo` endpoint.
    pub from_lo: bool,
    pub tcp_flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// Frames this packet stands for (several when it was reassembled from fragments).
    pub frames: u32,
    pub ip_bytes: u32,
    /// Transport payload length on the wire.
    pub payload_len: u32,
    /// Where its captured payload sits in the batch's byte buffer.
    pub data_off: u32,
    pub data_len: u32,
    /// ICMP type and code (type << 8 | code), for the Community ID of ICMP flows.
    pub icmp: u16,
    /// The frame's destination and source MAC addresses (all zero: no Ethernet header).
    pub macs: [[u8; 6]; 2],
}

/// Counters of one direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirStats {
    pub packets: u64,
    pub bytes: u64,
    pub payload_bytes: u64,
}

/// Why a flow's record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndReason {
    /// No packet for longer than its idle timeout.
    Idle,
    /// TCP closed (FIN both ways or RST) and the close delay passed, or the port was reused.
    Closed,
    /// Pushed out of a full flow table (`--max-flows`).
    Eviction,
    /// Still open when the input ended.
    EndOfInput,
    /// Still open when a live capture was stopped (SIGINT, SIGTERM).
    Shutdown,
    /// Not an end: an interim record of a flow still alive after each `--active-timeout`.
    ActiveTimeout,
    /// Not an end: an alert record, written when the policy first finds a live flow
    /// unexpected or mismatched.
    Alert,
}

impl EndReason {
    pub fn label(&self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Closed => "closed",
            EndReason::Eviction => "eviction",
            EndReason::EndOfInput => "end-of-input",
            EndReason::Shutdown => "shutdown",
            EndReason::ActiveTimeout => "active-timeout",
            EndReason::Alert => "alert",
        }
    }

    /// The end a record's `exwatch.end_reason` names.
    pub fn from_label(s: &str) -> Option<Self> {
        [
            EndReason::Idle,
            EndReason::Closed,
            EndReason::Eviction,
            EndReason::EndOfInput,
            EndReason::Shutdown,
            EndReason::ActiveTimeout,
            EndReason::Alert,
        ]
        .into_iter()
        .find(|r| r.label() == s)
    }

    /// The record is written while the flow is still alive; its final record follows.
    pub fn is_interim(&self) -> bool {
        matches!(self, EndReason::ActiveTimeout | EndReason::Alert)
    }
}

/// Expiry classes; each has its own idle timeout and its own list in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    /// TCP with only SYNs seen so far.
    Attempt = 0,
    Established = 1,
    Closed = 2,
    Udp = 3,
    Other = 4,
}

pub const CLASSES: usize = 5;

/// Idle timeouts per class, in nanoseconds of capture time.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub by_class: [u64; CLASSES],
    /// Interim record interval for flows still alive (`--active-timeout`); 0 = none.
    pub active: u64,
}

impl Timeouts {
    pub fn new(tcp_s: f64, syn_s: f64, udp_s: f64, other_s: f64, close_s: f64) -> Self {
        let ns = |s: f64| (s * 1e9) as u64;
        Timeouts {
            by_class: [ns(syn_s), ns(tcp_s), ns(close_s), ns(udp_s), ns(other_s)],
            active: 0,
        }
    }

    /// The same timeouts with interim records every `secs` seconds (0 = none).
    pub fn with_active(self, secs: f64) -> Self {
        Timeouts {
            active: (secs * 1e9) as u64,
            ..self
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::new(300.0, 30.0, 60.0, 60.0, 5.0)
    }
}

/// Per-flow state that a later stage keeps inside each `Flow` (for exwatch, the classify
/// stage's `Classification`). The table stores it inline, so it should stay a pointer or
/// two (boxes filled lazily): a table holds millions of flows.
pub trait FlowState: Default {
    /// The part of the state an interim record or a verdict needs while the flow lives on
    /// (`Flow::snapshot`); working state that only the live flow uses may be left out.
    fn snapshot(&self) -> Self;
}

/// A flow with no per-flow state beyond the flow stage's own (for tests and tools that only
/// count).
impl FlowState for () {
    fn snapshot(&self) -> Self {}
}

/// Index of the originator and responder in `Flow::dirs`.
pub const ORIG: usize = 0;
pub const RESP: usize = 1;

/// Everything exwatch keeps about one conversation. Kept small: the table holds millions.
#[derive(Debug)]
pub struct Flow<S> {
    pub key: FlowKey,
    pub hash: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    /// `dirs[ORIG]` is the originator's side.
    pub dirs: [DirStats; 2],
    /// The originator is the key's `lo` endpoint.
    pub orig_is_lo: bool,
    /// The originator was guessed by the port heuristic (no SYN or SYN-ACK seen first).
    pub mid_stream: bool,
    /// Time of the originator's SYN, until the handshake completes.
    pub syn_ts: u64,
    /// Handshake round-trip time (SYN to the originator's first ACK), microseconds; 0 = unseen.
    pub rtt_us: u32,
    /// ICMP type and code of the first packet (type << 8 | code).
    pub icmp_type_code: u16,
    /// `tcp::hist` bits seen from each side (`hist[ORIG]`, `hist[RESP]`); kept here, not in
    /// `DirStats`, where the byte would cost its padding twice.
    pub hist: [u8; 2],
    /// The MAC addresses of the `lo` and `hi` endpoints as the first Ethernet frame gave them
    /// (all zero: no Ethernet header).
    pub macs: [[u8; 6]; 2],
    /// The classify stage's per-flow state (what inspection decided, and its working state).
    pub state: S,
    // Links of the table's per-class LRU list.
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) class: Class,
}

impl<S: FlowState> Flow<S> {
    /// Swap originator and responder: the payload showed a flow seen mid-stream the other way
    /// round (the guessed originator sent the server's part). Only counters and TCP history
    /// are per side; MAC addresses are kept by endpoint, not by role.
    pub fn turn_around(&mut self) {
        self.orig_is_lo = !self.orig_is_lo;
        self.dirs.swap(ORIG, RESP);
        self.hist.swap(ORIG, RESP);
    }

    /// Start a flow from its first packet. `is_service_port` answers whether a port is a known
    /// service port, for deciding the originator when no handshake packet tells.
    pub fn new(p: &FlowPacket, is_service_port: impl Fn(u8, u16) -> bool) -> Self {
        use crate::decode::tcp_flags::{ACK, SYN};
        let k = &p.key;
        let (sport, dport) = if p.from_lo {
            (k.lo_port, k.hi_port)
        } else {
            (k.hi_port, k.lo_port)
        };
        let (orig_is_lo, mid_stream) = if k.proto == IPPROTO_TCP {
            if p.tcp_flags & (SYN | ACK) == SYN {
                (p.from_lo, false)
            } else if p.tcp_flags & (SYN | ACK) == SYN | ACK {
                (!p.from_lo, false)
            } else {
                (
                    guess_orig_is_sender(k.proto, sport, dport, &is_service_port) == p.from_lo,
                    true,
                )
            }
        } else if k.proto == IPPROTO_UDP {
            // UDP: the first sender originates, unless it sends from a service port to a
            // port that is not one (a reply whose request was missed). No lower-port rule:
            // RTP and other peer-to-peer media have no server side.
            let reply = is_service_port(k.proto, sport) && !is_service_port(k.proto, dport);
            (p.from_lo != reply, reply)
        } else {
            (p.from_lo, false)
        };
        Flow {
            key: p.key,
            hash: p.hash,
            first_ts: p.ts,
            last_ts: p.ts,
            dirs: [DirStats::default(); 2],
            orig_is_lo,
            mid_stream,
            syn_ts: 0,
            rtt_us: 0,
            icmp_type_code: p.icmp,
            hist: [0; 2],
            // The frame's source is the sender's MAC.
            macs: if p.from_lo {
                [p.macs[1], p.macs[0]]
            } else {
                p.macs
            },
            state: S::default(),
            prev: u32::MAX,
            next: u32::MAX,
            class: Class::Other,
        }
    }

    /// Index into `dirs` for a packet whose sender is (or is not) the `lo` endpoint.
    pub fn dir_of(&self, from_lo: bool) -> usize {
        if from_lo == self.orig_is_lo {
            ORIG
        } else {
            RESP
        }
    }

    /// A copy for an interim record or a verdict while the flow lives on: counters and the
    /// state's snapshot (for exwatch: the detection, without the inspection state), without
    /// the table's links.
    pub fn snapshot(&self) -> Self {
        Flow {
            state: self.state.snapshot(),
            prev: u32::MAX,
            next: u32::MAX,
            ..*self
        }
    }

    /// Whether a packet at `ts` is the first of the flow at or past an active-timeout
    /// boundary (`first_ts + k * active`): then the flow as it was before that packet gets an
    /// interim record. Depends only on capture times, so audit and live agree.
    pub fn crosses_active_boundary(&self, ts: u64, active: u64) -> bool {
        active > 0
            && ts > self.last_ts
            && (ts - self.first_ts) / active > (self.last_ts - self.first_ts) / active
    }

    /// Account one packet.
    pub fn update(&mut self, p: &FlowPacket) {
        let d = self.dir_of(p.from_lo);
        if p.ts > self.last_ts {
            self.last_ts = p.ts;
        }
        if p.ts < self.first_ts {
            self.first_ts = p.ts;
        }
        let s = &mut self.dirs[d];
        s.packets += u64::from(p.frames);
        s.bytes += u64::from(p.ip_bytes);
        s.payload_bytes += u64::from(p.payload_len);
        if self.key.proto == IPPROTO_TCP {
            let b = tcp::bits(p.tcp_flags, p.payload_len);
            self.hist[d] |= b;
            if d == ORIG && b & tcp::hist::SYN != 0 && self.syn_ts == 0 {
                self.syn_ts = p.ts.max(1);
            }
            if d == ORIG
                && self.rtt_us == 0
                && self.syn_ts != 0
                && b & (tcp::hist::ACK) != 0
                && self.hist[RESP] & tcp::hist::SYNACK != 0
            {
                self.rtt_us =
                    (p.ts.saturating_sub(self.syn_ts) / 1000).clamp(1, u64::from(u32::MAX)) as u32;
            }
        } else if p.payload_len > 0 || p.frames > 0 {
            self.hist[d] |= tcp::hist::DATA;
        }
        self.class = self.current_class();
    }

    /// The expiry class the flow's state puts it in.
    pub fn current_class(&self) -> Class {
        use tcp::hist::*;
        match self.key.proto {
            IPPROTO_TCP => {
                let (o, r) = (self.hist[ORIG], self.hist[RESP]);
                if (o | r) & RST != 0 || (o & FIN != 0 && r & FIN != 0) {
                    Class::Closed
                } else if r == 0 || (o | r) & !(SYN | SYNACK) == 0 {
                    if o & !SYN == 0 && r & !SYNACK == 0 && !self.mid_stream {
                        Class::Attempt
                    } else {
                        Class::Established
                    }
                } else {
                    Class::Established
                }
            }
            IPPROTO_UDP => Class::Udp,
            _ => Class::Other,
        }
    }

    /// Zeek-style connection state.
    pub fn conn_state(&self) -> &'static str {
        tcp::conn_state(self.hist[ORIG], self.hist[RESP], self.key.proto)
    }

    /// The originator's and the responder's (address bytes, port).
    pub fn endpoints(&self) -> (([u8; 16], u16), ([u8; 16], u16)) {
        let lo = (self.key.lo, self.key.lo_port);
        let hi = (self.key.hi, self.key.hi_port);
        if self.orig_is_lo {
            (lo, hi)
        } else {
            (hi, lo)
        }
    }

    /// The responder's port, which names the service.
    pub fn resp_port(&self) -> u16 {
        self.endpoints().1 .1
    }

    /// The originator's port.
    pub fn orig_port(&self) -> u16 {
        self.endpoints().0 .1
    }
}

/// Port heuristic for flows whose start was not seen: is the sender the originator?
///
/// A known service port marks the server; when both or neither are known, the lower port is
/// taken as the server's (ephemeral ports are high). Ties keep the sender as originator.
pub fn guess_orig_is_sender(
    proto: u8,
    sport: u16,
    dport: u16,
    is_service_port: &impl Fn(u8, u16) -> bool,
) -> bool {
    match (is_service_port(proto, sport), is_service_port(proto, dport)) {
        (true, false) => false,
        (false, true) => true,
        _ => sport >= dport,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::decode::IpPair;

    // The flow stage's own tests need no per-flow state; the size of exwatch's real `Flow`
    // is tested where its state is defined (`classify`).
    type Flow = super::Flow<()>;

    #[test]
    fn active_boundary_is_crossed_once_per_interval() {
        let s = 1_000_000_000;
        let p = pkt(1, 1000, 2, 80, 0x02, 10 * s);
        let mut f = Flow::new(&p, known);
        f.update(&p);
        assert!(
            !f.crosses_active_boundary(10 * s + s / 2, s),
            "within the first interval"
        );
        assert!(f.crosses_active_boundary(11 * s, s), "at the boundary");
        f.update(&pkt(1, 1000, 2, 80, 0x10, 11 * s));
        assert!(!f.crosses_active_boundary(11 * s + 1, s), "already past it");
        assert!(
            f.crosses_active_boundary(15 * s, s),
            "several intervals later: once"
        );
        assert!(
            !f.crosses_active_boundary(15 * s, 0),
            "0 = no interim records"
        );
        assert!(
            !f.crosses_active_boundary(5 * s, s),
            "an older packet never"
        );
    }

    /// The flow table's memory per flow is dominated by this; keep it in one cache-line pair
    /// (the throughput benchmark's target is 256 bytes per tracked flow in all). The flow
    /// stage's part is tested here with a stand-in for a two-pointer state; exwatch's own
    /// `Flow` is tested in `classify`.
    #[test]
    fn flow_stays_small() {
        let n = std::mem::size_of::<super::Flow<[usize; 2]>>();
        assert!(n <= 176, "{n}");
    }

    pub(crate) fn pkt(src: u8, sport: u16, dst: u8, dport: u16, flags: u8, ts: u64) -> FlowPacket {
        let mut ip = IpPair {
            v6: false,
            src: [0; 16],
            dst: [0; 16],
        };
        ip.src[..4].copy_from_slice(&[10, 0, 0, src]);
        ip.dst[..4].copy_from_slice(&[10, 0, 0, dst]);
        let (key, from_lo) = FlowKey::new(&ip, sport, dport, IPPROTO_TCP, [0, 0]);
        FlowPacket {
            ts,
            clock: ts,
            hash: key.hash64(),
            key,
            from_lo,
            tcp_flags: flags,
            seq: 0,
            ack: 0,
            frames: 1,
            ip_bytes: 40,
            payload_len: 0,
            data_off: 0,
            data_len: 0,
            icmp: 0,
            macs: [[0; 6]; 2],
        }
    }

    fn known(_: u8, p: u16) -> bool {
        p == 25
    }

    #[test]
    fn syn_decides_originator_and_rtt() {
        let syn = pkt(9, 50000, 2, 25, 0x02, 1_000_000);
        let mut f = Flow::new(&syn, known);
        f.update(&syn);
        assert_eq!(f.class, Class::Attempt);
        f.update(&pkt(2, 25, 9, 50000, 0x12, 2_000_000));
        f.update(&pkt(9, 50000, 2, 25, 0x10, 3_000_000));
        assert_eq!(f.resp_port(), 25);
        assert!(!f.mid_stream);
        assert_eq!(f.rtt_us, 2000);
        assert_eq!(f.conn_state(), "S1");
        assert_eq!(f.class, Class::Established);
    }

    #[test]
    fn synack_first_reveals_server() {
        let sa = pkt(2, 25, 9, 50000, 0x12, 0);
        let f = Flow::new(&sa, known);
        assert_eq!(f.resp_port(), 25);
        assert!(!f.mid_stream);
    }

    #[test]
    fn mid_stream_uses_service_port_then_lower_port() {
        let data = pkt(2, 25, 9, 50000, 0x18, 0);
        let f = Flow::new(&data, known);
        assert_eq!(f.resp_port(), 25);
        assert!(f.mid_stream);
        let f = Flow::new(&pkt(2, 40000, 9, 50000, 0x18, 0), known);
        assert_eq!(f.resp_port(), 40000);
    }

    #[test]
    fn turned_around_flows_swap_roles_and_counters() {
        let p = pkt(2, 50000, 9, 49154, 0x10, 0);
        let mut f = Flow::new(&p, known);
        f.update(&p);
        let before = (f.orig_port(), f.resp_port(), f.dirs[ORIG].packets);
        f.turn_around();
        assert_eq!((f.resp_port(), f.orig_port(), f.dirs[RESP].packets), before);
        // Later packets count on the side that sent them.
        let back = pkt(9, 49154, 2, 50000, 0x10, 1);
        f.update(&back);
        assert_eq!((f.dirs[ORIG].packets, f.dirs[RESP].packets), (1, 1));
    }

    #[test]
    fn udp_first_sender_originates_unless_it_replies_from_a_service_port() {
        let mut p = pkt(2, 17000, 9, 16000, 0, 0);
        p.key.proto = IPPROTO_UDP;
        let f = Flow::new(&p, known);
        assert_eq!((f.orig_port(), f.mid_stream), (17000, false));
        let mut p = pkt(2, 25, 9, 50000, 0, 0);
        p.key.proto = IPPROTO_UDP;
        let f = Flow::new(&p, known);
        assert_eq!((f.orig_port(), f.mid_stream), (50000, true));
    }
}
