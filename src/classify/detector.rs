//! The one trait every payload detector implements, and the view of a flow's bytes it probes.

use super::Detection;

/// What a detector says about the bytes seen so far.
#[derive(Debug, Clone)]
pub enum Probe {
    /// This is the detector's protocol.
    Mine(Detection),
    /// Could be; show me more bytes.
    NeedMore,
    /// Not this protocol, whatever follows.
    NotMine,
}

/// The first datagrams of a UDP flow, as far as multi-packet heuristics (RTP, RTCP) need them.
#[derive(Debug, Clone, Copy)]
pub struct DatagramHead {
    /// Sent by the originator.
    pub from_orig: bool,
    /// Payload length on the wire.
    pub len: u32,
    /// Bytes of `head` that are valid (the payload may be shorter than 16 bytes).
    pub head_len: u8,
    pub head: [u8; 16],
}

impl DatagramHead {
    /// The head of a datagram whose payload is `data` (captured) of `wire_len` bytes.
    pub fn new(from_orig: bool, data: &[u8], wire_len: u32) -> Self {
        let n = data.len().min(16);
        let mut head = [0u8; 16];
        head[..n].copy_from_slice(&data[..n]);
        DatagramHead {
            from_orig,
            len: wire_len,
            head_len: n as u8,
            head,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.head[..self.head_len as usize]
    }
}

/// A flow's payload as detectors see it.
#[derive(Debug, Clone, Copy)]
pub struct Payloads<'a> {
    /// IP protocol: 6 (TCP) or 17 (UDP).
    pub transport: u8,
    /// To server (from the originator). TCP: the in-order stream so far, capped. UDP: the
    /// first datagram from the originator (empty if none yet).
    pub ts: &'a [u8],
    /// To client (from the responder), likewise.
    pub tc: &'a [u8],
    /// UDP only: heads of the first datagrams in both directions, in arrival order.
    pub datagrams: &'a [DatagramHead],
    pub server_port: u16,
    pub client_port: u16,
    /// Neither buffer will grow any more (cap reached, gap, or inspection budget spent):
    /// a detector that needs more should decide now or say `NotMine`.
    pub last_chance: bool,
}

impl Payloads<'_> {
    pub fn is_tcp(&self) -> bool {
        self.transport == crate::decode::IPPROTO_TCP
    }

    pub fn is_udp(&self) -> bool {
        self.transport == crate::decode::IPPROTO_UDP
    }

    /// The same bytes with the roles the other way round: for a detector that reads a flow
    /// picked up mid-stream whose guessed originator is the server (issue 15, class 8).
    pub fn swapped(&self) -> Self {
        Payloads {
            ts: self.tc,
            tc: self.ts,
            server_port: self.client_port,
            client_port: self.server_port,
            ..*self
        }
    }
}

/// A protocol detector: looks at the first bytes of each direction and says whose they are.
///
/// Detectors are stateless (the engine keeps the bytes), must never panic on any input, and
/// must not allocate in proportion to lengths read from the wire.
pub trait Detector: Send + Sync {
    /// Stable name, used in evidence and tests.
    fn name(&self) -> &'static str;
    /// The `network.protocol` value it reports; the port hint for this protocol puts the
    /// detector first in line.
    fn protocol(&self) -> &'static str;
    /// Whether it looks at TCP flows.
    fn tcp(&self) -> bool {
        true
    }
    /// Whether it looks at UDP flows.
    fn udp(&self) -> bool {
        false
    }
    /// Probe the bytes seen so far.
    fn probe(&self, p: &Payloads<'_>) -> Probe;
}

impl Probe {
    /// The same answer for a flow read the other way round: a detection is marked to be
    /// turned around (the guessed originator sent the server's part), and its evidence says so.
    pub fn reversed(self) -> Probe {
        match self {
            Probe::Mine(mut d) => {
                d.evidence.push_str(" (flow directions reversed)");
                d.reversed = true;
                Probe::Mine(d)
            }
            other => other,
        }
    }
}

/// Build a payload detection with evidence and no extra fields.
pub fn mine(protocol: &'static str, evidence: impl Into<String>) -> Probe {
    Probe::Mine(Detection {
        reversed: false,
        protocol,
        service: None,
        confidence: super::Confidence::Payload,
        evidence: evidence.into(),
        fields: Vec::new(),
    })
}

/// Helpers for the detectors' unit tests.
#[cfg(test)]
pub mod testing {
    use super::{Detector, Payloads, Probe};

    /// A detector test's view builder: bytes to server, to client, last chance.
    pub type View = for<'a> fn(&'a [u8], &'a [u8], bool) -> Payloads<'a>;

    /// Probe `d` with one UDP datagram each way (an empty side sends none).
    pub fn udp_probe(
        d: &dyn Detector,
        ts: &[u8],
        tc: &[u8],
        server_port: u16,
        last: bool,
    ) -> Probe {
        let heads: Vec<super::DatagramHead> = [(ts, true), (tc, false)]
            .into_iter()
            .filter(|(b, _)| !b.is_empty())
            .map(|(b, orig)| super::DatagramHead::new(orig, b, b.len() as u32))
            .collect();
        d.probe(&Payloads {
            transport: crate::decode::IPPROTO_UDP,
            ts,
            tc,
            datagrams: &heads,
            server_port,
            client_port: 50000,
            last_chance: last,
        })
    }

    /// Cut-short exchanges: a probe may ask for more, but never at the flow's last chance.
    pub fn assert_truncated(d: &dyn Detector, view: View, cases: &[(&[u8], &[u8])]) {
        for &(ts, tc) in cases {
            let _ = d.probe(&view(ts, tc, false));
            assert!(
                !matches!(d.probe(&view(ts, tc, true)), Probe::NeedMore),
                "{ts:?} {tc:?}"
            );
        }
    }

    /// Other protocols' openings are refused at once.
    pub fn assert_not_mine(d: &dyn Detector, view: View, cases: &[(&[u8], &[u8])]) {
        for &(ts, tc) in cases {
            assert!(
                matches!(d.probe(&view(ts, tc, false)), Probe::NotMine),
                "{ts:?} {tc:?}"
            );
        }
    }

    /// `hostile_split` through one detector: whatever the bytes, the probe returns.
    pub fn probe_hostile(d: &dyn Detector, view: View, alphabet: &[u8], seed: u32, rounds: usize) {
        hostile_split(alphabet, seed, rounds, |ts, tc, last| {
            let _ = d.probe(&view(ts, tc, last));
        });
    }

    /// A TCP view of `ts`/`tc` between the given ports.
    pub fn tcp_view<'a>(
        ts: &'a [u8],
        tc: &'a [u8],
        server_port: u16,
        client_port: u16,
        last: bool,
    ) -> Payloads<'a> {
        Payloads {
            transport: crate::decode::IPPROTO_TCP,
            ts,
            tc,
            datagrams: &[],
            server_port,
            client_port,
            last_chance: last,
        }
    }

    /// Hostile input: `rounds` pseudo-random 64-byte buffers drawn from `alphabet` (a linear
    /// congruential generator from `seed`, so failures reproduce), each split at a random
    /// point into bytes to server and to client; every third round is a last chance.
    pub fn hostile_split(
        alphabet: &[u8],
        seed: u32,
        rounds: usize,
        mut f: impl FnMut(&[u8], &[u8], bool),
    ) {
        let mut x = seed;
        let mut buf = [0u8; 64];
        for round in 0..rounds {
            for b in buf.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = alphabet[(x >> 16) as usize % alphabet.len()];
            }
            let n = (x as usize >> 8) % buf.len();
            f(&buf[..n], &buf[n..], round % 3 == 0);
        }
    }
}

/// Text helpers for line-based protocols, shared by detectors.
pub mod text {
    /// The first line of `b` (without CR LF), if a full line has arrived.
    pub fn first_line(b: &[u8]) -> Option<&[u8]> {
        let end = memchr::memchr(b'\n', b)?;
        let line = &b[..end];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// `b` cut after each LF (the last piece may lack one), as `split_inclusive` on LF does,
    /// but finding each LF with memchr: detectors rescan their buffers on every packet.
    pub fn split_lf(b: &[u8]) -> impl Iterator<Item = &[u8]> {
        let mut rest = b;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            let (piece, tail) = rest.split_at(end);
            rest = tail;
            Some(piece)
        })
    }

    /// Lines of `b` that are complete (end in LF), without their CR LF.
    /// Lazy: a caller that takes the first few lines does not scan the whole buffer.
    pub fn lines(b: &[u8]) -> impl Iterator<Item = &[u8]> {
        split_lf(b)
            .filter_map(|l| l.strip_suffix(b"\n"))
            .filter(|l| !l.is_empty())
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
    }

    /// The complete lines of `b` (without CR LF) with the offset just past each.
    pub fn lines_with_end(b: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
        let mut off = 0;
        split_lf(b)
            .take_while(|l| l.ends_with(b"\n"))
            .map(move |raw| {
                off += raw.len();
                let l = &raw[..raw.len() - 1];
                (l.strip_suffix(b"\r").unwrap_or(l), off)
            })
    }

    /// Whether `b`, an unfinished first line shorter than `max`, could still grow into one of
    /// `verbs` (case-insensitive): the whole word when a space follows it, a prefix otherwise.
    pub fn could_be_verb<'v>(
        b: &[u8],
        verbs: impl IntoIterator<Item = &'v &'v str>,
        max: usize,
    ) -> bool {
        let end = b.iter().position(|&c| c == b' ').unwrap_or(b.len());
        let w = &b[..end];
        b.len() < max
            && verbs.into_iter().any(|v| {
                if end < b.len() {
                    w.eq_ignore_ascii_case(v.as_bytes())
                } else {
                    w.len() <= v.len() && w.eq_ignore_ascii_case(&v.as_bytes()[..w.len()])
                }
            })
    }

    /// Lower-case hex of `bytes`, appended (no formatter per byte: fingerprints and UUIDs are
    /// built on the worker's hot path).
    pub fn push_hex(s: &mut String, bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for &b in bytes {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }

    /// Case-insensitive prefix test.
    pub fn starts_with_ci(b: &[u8], prefix: &[u8]) -> bool {
        b.len() >= prefix.len() && b[..prefix.len()].eq_ignore_ascii_case(prefix)
    }

    /// Case-insensitive substring search.
    /// Compares the rest of the needle only where its first byte matches (banners are
    /// searched for long markers on every probe).
    pub fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
        let Some((&first, rest)) = needle.split_first() else {
            return false;
        };
        if hay.len() < needle.len() {
            return false;
        }
        let (lo, up) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
        hay[..=hay.len() - needle.len()]
            .iter()
            .enumerate()
            .any(|(i, &c)| {
                (c == lo || c == up) && hay[i + 1..i + needle.len()].eq_ignore_ascii_case(rest)
            })
    }

    #[cfg(test)]
    #[test]
    fn contains_ci_agrees_with_the_window_scan() {
        let hays: [&[u8]; 6] = [
            b"",
            b"s",
            b"220 mx ESMTP ready",
            b"esmtp",
            b"xxSmTpxx",
            b"\xffSMT",
        ];
        for hay in hays {
            for needle in [
                &b""[..],
                b"S",
                b"SMTP",
                b"smtp ",
                b"\xffs",
                b"220 mx ESMTP ready!",
            ] {
                let slow = !needle.is_empty()
                    && hay.len() >= needle.len()
                    && hay
                        .windows(needle.len())
                        .any(|w| w.eq_ignore_ascii_case(needle));
                assert_eq!(contains_ci(hay, needle), slow, "{hay:?} {needle:?}");
            }
        }
    }

    #[cfg(test)]
    #[test]
    fn split_lf_cuts_like_split_inclusive() {
        for b in [&b""[..], b"\n", b"a", b"a\n", b"a\r\n\nbc\nde", b"\n\nx\n"] {
            let ours: Vec<&[u8]> = split_lf(b).collect();
            let std: Vec<&[u8]> = b.split_inclusive(|&c| c == b'\n').collect();
            assert_eq!(ours, std, "{b:?}");
        }
    }

    #[cfg(test)]
    #[test]
    fn is_text_agrees_with_the_byte_rule() {
        let rule = |b: &[u8]| b.iter().all(|&c| c == b'\t' || (0x20..0x7f).contains(&c));
        for c in 0..=255u8 {
            for len in [1usize, 31, 32, 33, 70] {
                for at in [0, len / 2, len - 1] {
                    let mut b = vec![b'a'; len];
                    b[at] = c;
                    assert_eq!(is_text(&b), rule(&b), "byte {c:#x} at {at} of {len}");
                }
            }
        }
        assert!(is_text(b""));
    }

    #[cfg(test)]
    #[test]
    fn clip_replaces_control_characters_on_both_paths() {
        assert_eq!(clip(b"a\tb\x7fc\x00d", 64), "a.b.c.d");
        assert_eq!(clip(b"abcdef", 3), "abc");
        assert_eq!(clip("é\u{85}\x01x".as_bytes(), 64), "é..x");
        assert_eq!(clip(b"a\xffb", 64), "a\u{fffd}b");
    }

    #[cfg(test)]
    #[test]
    fn lines_skip_the_incomplete_tail_and_empty_lines() {
        let v: Vec<&[u8]> = lines(b"a\r\n\nbc\nde").collect();
        assert_eq!(v, vec![&b"a"[..], b"bc"]);
        assert_eq!(lines(b"no newline").count(), 0);
    }

    /// Printable ASCII (plus tab), as protocol command lines are.
    pub fn is_text(b: &[u8]) -> bool {
        // Branch-free over 32-byte chunks so that it vectorises: detectors check whole
        // lines (of up to a buffer's length) on every packet.
        let ok = |c: u8| (c == b'\t') | (c.wrapping_sub(0x20) < 0x5f);
        let mut chunks = b.chunks_exact(32);
        for chunk in &mut chunks {
            if !chunk.iter().fold(true, |acc, &c| acc & ok(c)) {
                return false;
            }
        }
        chunks.remainder().iter().all(|&c| ok(c))
    }

    /// Lossy, length-capped string for evidence fields (never for secrets).
    pub fn clip(b: &[u8], max: usize) -> String {
        let s = &b[..b.len().min(max)];
        // Evidence is mostly ASCII: map the bytes directly instead of decoding and collecting
        // chars (the same result: ASCII's control characters are C0 and DEL).
        if s.is_ascii() {
            let bytes = s
                .iter()
                .map(|&c| if c < 0x20 || c == 0x7f { b'.' } else { c })
                .collect();
            return String::from_utf8(bytes).expect("ASCII is UTF-8");
        }
        String::from_utf8_lossy(s)
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .collect()
    }
}
