//! Payload inspection: keeps the first bytes of each direction (TCP reassembled in order, UDP
//! datagram heads) and runs the candidate detectors until one claims the flow or none can.
//!
//! Lives on a flow only until a decision; everything it holds is capped.

use super::detector::{DatagramHead, Detector, Payloads, Probe};
use super::{Confidence, Detection};
use crate::decode::IPPROTO_TCP;
use std::sync::LazyLock;

/// Bytes kept per direction of a TCP flow.
pub const STREAM_CAP: usize = 8192;
/// First-datagram bytes kept per direction of a UDP flow.
pub const DATAGRAM_CAP: usize = 2048;
/// Payload-carrying packets inspected before giving up.
pub const MAX_PACKETS: u16 = 40;
/// UDP datagram heads kept for multi-packet heuristics.
pub const MAX_HEADS: usize = 16;
/// Out-of-order TCP segments held per direction while waiting for the gap to fill.
const MAX_PENDING: usize = 8;

/// Segments held after a gap: (sequence number, bytes).
type Pending = Vec<(u32, Vec<u8>)>;

/// One direction of a TCP flow, reassembled in sequence order up to `STREAM_CAP`.
#[derive(Debug, Default)]
struct Stream {
    /// Sequence number of `buf[0]`.
    start: Option<u32>,
    next: Option<u32>,
    buf: Vec<u8>,
    /// Segments after a gap, boxed: few flows ever have one, and every undecided flow pays
    /// for the field.
    pending: Option<Box<Pending>>,
    /// The stream cannot grow: capped, or a hole that will not be filled.
    stopped: bool,
}

impl Stream {
    /// Add a segment: `data` is what was captured of its `wire_len` payload bytes.
    /// Returns whether the buffer grew.
    fn add(&mut self, seq: u32, data: &[u8], wire_len: u32) -> bool {
        if self.stopped || data.is_empty() {
            return false;
        }
        let next = *self.next.get_or_insert(seq);
        let start = *self.start.get_or_insert(seq);
        // A lost first segment retransmitted after later ones: it ends exactly where the
        // buffer starts, so it can go in front (detectors keep no state about what they saw).
        let end = seq.wrapping_add(data.len() as u32);
        if end == start
            && (data.len() as u32) == wire_len
            && self.buf.len() + data.len() <= STREAM_CAP
        {
            self.buf.splice(0..0, data.iter().copied());
            self.start = Some(seq);
            return true;
        }
        let off = seq.wrapping_sub(next) as i32;
        if off > 0 {
            let pending = self.pending.get_or_insert_with(Box::default);
            if pending.len() >= MAX_PENDING || off as usize > 4 * STREAM_CAP {
                self.stopped = true;
            } else {
                let keep = data.len().min(STREAM_CAP);
                pending.push((seq, data[..keep].to_vec()));
            }
            return false;
        }
        let before = self.buf.len();
        self.append(seq, data, wire_len);
        // Segments that were waiting on this one.
        while !self.stopped {
            let Some(next) = self.next else { break };
            let Some(pending) = self.pending.as_mut() else {
                break;
            };
            let Some(i) = pending
                .iter()
                .position(|(s, _)| (s.wrapping_sub(next) as i32) <= 0)
            else {
                break;
            };
            let (s, d) = pending.swap_remove(i);
            let len = d.len() as u32;
            self.append(s, &d, len);
        }
        self.buf.len() > before
    }

    fn append(&mut self, seq: u32, data: &[u8], wire_len: u32) {
        let next = self.next.unwrap_or(seq);
        let skip = next.wrapping_sub(seq) as usize;
        if skip >= data.len() {
            if skip >= wire_len as usize {
                return; // a retransmission of bytes already held
            }
        } else {
            let fresh = &data[skip..];
            if self.buf.capacity() == 0 {
                // Exactly what arrived: most undecided flows never get a second segment, and
                // a fixed 2 KiB per direction made a flow holding 100 bytes cost 2.5 KB.
                self.buf.reserve_exact(fresh.len().min(STREAM_CAP));
            }
            let room = STREAM_CAP - self.buf.len();
            self.buf.extend_from_slice(&fresh[..fresh.len().min(room)]);
            if fresh.len() > room {
                self.stopped = true;
            }
        }
        self.next = Some(seq.wrapping_add(wire_len));
        // The capture cut this segment short (snaplen or copy cap): what follows is a hole.
        if (data.len() as u32) < wire_len || self.buf.len() >= STREAM_CAP {
            self.stopped = true;
        }
    }
}

/// What inspecting one more packet led to.
#[derive(Debug)]
pub enum Outcome {
    /// Still undecided; keep feeding packets.
    Undecided,
    Decided(Detection),
    /// No detector claims the flow: the detection that says so.
    GaveUp(Detection),
}

/// What `Inspector::new` needs to know of a registry: which detectors look at TCP and at UDP,
/// and the protocol each reports. Worked out once for the built-in registry rather than with
/// 54 virtual calls per new flow.
struct Shape {
    tcp: u64,
    udp: u64,
    protocols: Vec<&'static str>,
}

impl Shape {
    fn of(registry: &[&'static dyn Detector]) -> Self {
        let mut shape = Shape {
            tcp: 0,
            udp: 0,
            protocols: Vec::new(),
        };
        for (i, d) in registry.iter().enumerate().take(64) {
            shape.tcp |= u64::from(d.tcp()) << i;
            shape.udp |= u64::from(d.udp()) << i;
            shape.protocols.push(d.protocol());
        }
        shape
    }
}

static REGISTRY_SHAPE: LazyLock<Shape> = LazyLock::new(|| Shape::of(super::detectors::REGISTRY));

/// A datagram that only keeps a binding or a NAT mapping alive: at most 4 bytes, or only
/// white space and NULs (RFC 5626's CRLFCRLF, the double CRLF of Microsoft's SIP stacks).
fn is_keepalive(d: &[u8]) -> bool {
    d.len() <= 4
        || (d.len() <= 16
            && d.iter()
                .all(|c| matches!(c, b'\r' | b'\n' | b' ' | b'\t' | 0)))
}

/// What an inspector holds of the flow's bytes: a TCP flow never needs the datagram fields
/// nor a UDP flow the streams, and every undecided flow pays for the larger of the two.
#[derive(Debug)]
enum Held {
    Tcp([Stream; 2]),
    Udp {
        /// The first datagram of each direction, capped.
        first: [Vec<u8>; 2],
        heads: Vec<DatagramHead>,
    },
}

/// Per-flow inspection state.
#[derive(Debug)]
pub struct Inspector {
    /// Bit i set: registry detector i may still claim the flow.
    candidates: u64,
    /// Detector index the port suggests, probed first.
    hint: Option<usize>,
    held: Held,
    packets: u16,
    /// The flow has ended: every candidate must decide now.
    finishing: bool,
}

impl Inspector {
    /// Start inspecting a flow of IP protocol `transport`; `hint` is the `network.protocol` the
    /// server port suggests.
    pub fn new(registry: &[&'static dyn Detector], transport: u8, hint: Option<&str>) -> Self {
        let computed;
        let shape = if std::ptr::eq(registry, super::detectors::REGISTRY) {
            &*REGISTRY_SHAPE
        } else {
            computed = Shape::of(registry);
            &computed
        };
        let candidates = if transport == IPPROTO_TCP {
            shape.tcp
        } else {
            shape.udp
        };
        // Two detectors may report one protocol over different transports (rdp over TCP and
        // over UDP): the hint is the first that looks at this flow's transport.
        let hint = hint.and_then(|h| {
            shape
                .protocols
                .iter()
                .enumerate()
                .position(|(i, &p)| p == h && candidates & (1 << i) != 0)
        });
        Inspector {
            candidates,
            hint,
            held: if transport == IPPROTO_TCP {
                Held::Tcp([Stream::default(), Stream::default()])
            } else {
                Held::Udp {
                    first: [Vec::new(), Vec::new()],
                    heads: Vec::new(),
                }
            },
            packets: 0,
            finishing: false,
        }
    }

    /// Feed one payload-carrying packet. `dir` is 0 from the originator, 1 from the responder.
    #[allow(clippy::too_many_arguments)]
    pub fn packet(
        &mut self,
        registry: &[&'static dyn Detector],
        transport: u8,
        dir: usize,
        seq: u32,
        data: &[u8],
        wire_len: u32,
        server_port: u16,
        client_port: u16,
    ) -> Outcome {
        if !data.is_empty() {
            self.packets += 1;
        }
        let grew = match &mut self.held {
            Held::Tcp(streams) => streams[dir].add(seq, data, wire_len),
            Held::Udp { .. } if data.is_empty() => false,
            Held::Udp { first, heads } => {
                if heads.len() < MAX_HEADS {
                    heads.push(DatagramHead::new(dir == 0, data, wire_len));
                }
                // A keep-alive (SIP's CRLFCRLF, a few junk bytes) is not the first message:
                // the datagram after it takes its place.
                if first[dir].is_empty() || is_keepalive(&first[dir]) {
                    first[dir].clear();
                    first[dir].extend_from_slice(&data[..data.len().min(DATAGRAM_CAP)]);
                }
                true
            }
        };
        let exhausted = self.finishing
            || self.packets >= MAX_PACKETS
            || match &self.held {
                Held::Tcp(streams) => streams.iter().all(|s| s.stopped),
                Held::Udp { heads, .. } => heads.len() >= MAX_HEADS,
            };
        if !grew && !exhausted {
            return Outcome::Undecided;
        }
        let (ts, tc, datagrams): (&[u8], &[u8], &[DatagramHead]) = match &self.held {
            Held::Tcp(streams) => (&streams[0].buf, &streams[1].buf, &[]),
            Held::Udp { first, heads } => (&first[0], &first[1], heads),
        };
        let view = Payloads {
            transport,
            ts,
            tc,
            datagrams,
            server_port,
            client_port,
            last_chance: exhausted,
        };
        let order = self
            .hint
            .into_iter()
            .chain((0..registry.len().min(64)).filter(|&i| Some(i) != self.hint));
        let mut candidates = self.candidates;
        let mut decided = None;
        for i in order {
            if candidates & (1 << i) == 0 {
                continue;
            }
            match registry[i].probe(&view) {
                Probe::Mine(d) => {
                    decided = Some(d);
                    break;
                }
                Probe::NotMine => candidates &= !(1 << i),
                Probe::NeedMore if exhausted => candidates &= !(1 << i),
                Probe::NeedMore => {}
            }
        }
        self.candidates = candidates;
        match decided {
            Some(d) => Outcome::Decided(d),
            None if candidates == 0 || exhausted => Outcome::GaveUp(unidentified(self.packets)),
            None => Outcome::Undecided,
        }
    }

    /// The bytes held for each direction (originator's first): the reassembled TCP streams,
    /// or the first datagram of each UDP direction.
    pub fn buffered(&self) -> [&[u8]; 2] {
        match &self.held {
            Held::Tcp(streams) => [&streams[0].buf, &streams[1].buf],
            Held::Udp { first, .. } => [&first[0], &first[1]],
        }
    }

    /// The flow ended undecided: give every remaining candidate its last chance.
    pub fn finish(
        &mut self,
        registry: &[&'static dyn Detector],
        transport: u8,
        server_port: u16,
        client_port: u16,
    ) -> Outcome {
        self.finishing = true;
        self.packet(registry, transport, 0, 0, &[], 0, server_port, client_port)
    }
}

/// The detection recorded when payload was seen but no detector claimed it.
fn unidentified(packets: u16) -> Detection {
    Detection {
        reversed: false,
        protocol: "unknown",
        service: None,
        confidence: Confidence::None,
        evidence: format!("payload matched no detector ({packets} packets inspected)"),
        fields: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_out_of_order_and_retransmitted_segments() {
        let mut s = Stream::default();
        assert!(s.add(1000, b"HELO", 4));
        assert!(!s.add(1008, b"WXYZ", 4), "ahead of the stream: held");
        assert!(
            s.add(1004, b" abc", 4),
            "fills the hole and releases the held one"
        );
        assert_eq!(s.buf, b"HELO abcWXYZ");
        assert!(!s.add(1000, b"HELO", 4), "retransmission adds nothing");
        assert!(s.add(1010, b"YZ!!", 4), "overlap adds only the new tail");
        assert_eq!(s.buf, b"HELO abcWXYZ!!");
    }

    /// Issue 15, class 4: SIP after keep-alive junk. The REGISTER after a CRLFCRLF (or a few
    /// junk bytes) is what the detectors see as the first datagram of its direction.
    #[test]
    fn keepalives_give_way_to_the_first_message() {
        let registry = super::super::detectors::REGISTRY;
        let register = b"REGISTER sip:contoso.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1\r\nCall-ID: a1@10.0.0.5\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        for junk in [&b"\r\n\r\n"[..], b"jaK", b"\0\0\0\0", b"\r\n"] {
            let mut i = Inspector::new(registry, 17, Some("sip"));
            let o = i.packet(registry, 17, 0, 0, junk, junk.len() as u32, 5060, 5060);
            assert!(matches!(o, Outcome::Undecided), "{junk:?}");
            let _ = i.packet(
                registry,
                17,
                0,
                0,
                register,
                register.len() as u32,
                5060,
                5060,
            );
            assert_eq!(i.buffered()[0], &register[..], "{junk:?}");
            match i.finish(registry, 17, 5060, 5060) {
                Outcome::Decided(d) => assert_eq!(d.protocol, "sip", "{junk:?}"),
                other => panic!("{junk:?}: {other:?}"),
            }
        }
        // A real first message stays first.
        let mut i = Inspector::new(registry, 17, None);
        let _ = i.packet(registry, 17, 0, 0, b"hello world", 11, 40000, 40001);
        let _ = i.packet(registry, 17, 0, 0, b"second", 6, 40000, 40001);
        assert_eq!(i.buffered()[0], b"hello world");
    }

    #[test]
    fn lost_first_segment_retransmitted_late_goes_in_front() {
        let mut s = Stream::default();
        assert!(s.add(1010, b"world", 5));
        assert!(s.add(1000, b"hello, wor", 10));
        assert_eq!(s.buf, b"hello, worworld");
    }

    #[test]
    fn cap_and_cut_segments_stop_the_stream() {
        let mut s = Stream::default();
        let big = vec![b'a'; STREAM_CAP + 10];
        s.add(0, &big, big.len() as u32);
        assert_eq!(s.buf.len(), STREAM_CAP);
        assert!(s.stopped);
        let mut s = Stream::default();
        s.add(0, b"abc", 1400);
        assert!(s.stopped, "a segment cut by the capture leaves a hole");
    }

    #[test]
    fn too_many_gaps_stop_the_stream() {
        let mut s = Stream::default();
        s.add(0, b"a", 1);
        for i in 0..=MAX_PENDING as u32 {
            s.add(10 + i * 10, b"b", 1);
        }
        assert!(s.stopped);
        assert!(s.pending.as_ref().map_or(0, |p| p.len()) <= MAX_PENDING);
    }

    #[test]
    fn sequence_wraparound() {
        let mut s = Stream::default();
        s.add(u32::MAX - 1, b"ab", 2);
        s.add(0, b"cd", 2);
        assert_eq!(s.buf, b"abcd");
    }
}
