//! RTP and RTCP (RFC 3550) over UDP (and RTP over TCP with RFC 4571 framing), by a
//! heuristic over several packets, never one.
//!
//! RTP has no magic number: version 2 in the top bits of the first byte is the only fixed
//! field. What makes a flow RTP is the behaviour of its header across packets: one SSRC,
//! sequence numbers stepping up by small amounts, timestamps that never go back. A single
//! datagram of DNS, NTP, QUIC or random bytes can look like RTP; three in a row cannot.

use crate::classify::detector::{DatagramHead, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

/// Packets of one SSRC, in one direction, needed to call a flow RTP.
const MIN_RUN: usize = 3;
/// Largest sequence step accepted between consecutive packets (losses happen).
const MAX_SEQ_STEP: u16 = 32;
/// Largest timestamp step between consecutive packets: 16 s of 90 kHz video clock.
const MAX_TS_STEP: u32 = 90_000 * 16;
/// Frames read from a TCP stream.
const MAX_TCP_FRAMES: usize = 16;

/// The header fields the heuristic looks at.
#[derive(Debug, Clone, Copy)]
struct RtpHead {
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Payload types 72-76 collide with RTCP packet types 200-204 once the marker bit is
/// folded in (RFC 5761 4), so an RTP packet never uses them.
fn rtcp_range(pt: u8) -> bool {
    (72..=76).contains(&pt)
}

/// An RTP header at the start of `b` (a packet of `len` bytes on the wire): version 2,
/// a payload type outside the RTCP range, and room for the CSRC list and extension header.
fn rtp_head(b: &[u8], len: usize) -> Option<RtpHead> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let pt = b[1] & 0x7f;
    if rtcp_range(pt) {
        return None;
    }
    let cc = usize::from(b[0] & 0x0f);
    let ext = if b[0] & 0x10 != 0 { 4 } else { 0 };
    if 12 + 4 * cc + ext > len {
        return None;
    }
    Some(RtpHead {
        pt,
        seq: be16(b, 2)?,
        ts: be32(b, 4)?,
        ssrc: be32(b, 8)?,
    })
}

/// Full checks possible when the whole packet is at hand: the extension length and the
/// padding count must fit.
fn rtp_body_ok(b: &[u8]) -> bool {
    let Some(_) = rtp_head(b, b.len()) else {
        return false;
    };
    let cc = usize::from(b[0] & 0x0f);
    let mut at = 12 + 4 * cc;
    if b[0] & 0x10 != 0 {
        let Some(words) = be16(b, at + 2) else {
            return false;
        };
        at += 4 + 4 * usize::from(words);
        if at > b.len() {
            return false;
        }
    }
    if b[0] & 0x20 != 0 {
        let pad = usize::from(*b.last().unwrap_or(&0));
        if pad == 0 || at + pad > b.len() {
            return false;
        }
    }
    true
}

fn rtcp_type_name(pt: u8) -> &'static str {
    match pt {
        200 => "SR",
        201 => "RR",
        202 => "SDES",
        203 => "BYE",
        204 => "APP",
        205 => "RTPFB",
        206 => "PSFB",
        207 => "XR",
        _ => "other",
    }
}

/// The first RTCP packet of a datagram of `len` bytes: version 2, type SR, RR, SDES, BYE or
/// APP (a compound packet starts with one of these; RFC 5506 reduced-size ones too), a
/// length that fits the datagram and a count that fits the length. Returns (type, SSRC).
fn rtcp_head(b: &[u8], len: usize) -> Option<(u8, u32)> {
    if b.len() < 8 || b[0] >> 6 != 2 {
        return None;
    }
    let pt = b[1];
    let count = usize::from(b[0] & 0x1f);
    let bytes = (usize::from(be16(b, 2)?) + 1) * 4;
    if bytes > len {
        return None;
    }
    let fits = match pt {
        200 => 28 + 24 * count <= bytes,
        201 => 8 + 24 * count <= bytes,
        202 => count == 0 || 4 + 8 * count <= bytes,
        203 => 4 + 4 * count <= bytes,
        204 => bytes >= 12,
        _ => false,
    };
    fits.then_some((pt, be32(b, 4)?))
}

/// Walk a whole compound RTCP datagram: every packet version 2 with an RTCP type, and the
/// lengths adding up to the datagram (SRTCP adds a 4-byte index and an authentication tag
/// of up to 16 bytes after the last packet).
fn rtcp_compound_ok(b: &[u8]) -> bool {
    let mut at = 0;
    let mut n = 0;
    while at + 4 <= b.len() && n < 16 {
        let p = &b[at..];
        if p[0] >> 6 != 2 || !(192..=211).contains(&p[1]) {
            break;
        }
        let Some(words) = be16(p, 2) else { break };
        at += (usize::from(words) + 1) * 4;
        n += 1;
    }
    n > 0 && (at == b.len() || (at < b.len() && b.len() - at <= 20 && b.len() - at >= 4))
}

fn payload_type_name(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU",
        3 => "GSM",
        4 => "G723",
        5 | 6 | 16 | 17 => "DVI4",
        7 => "LPC",
        8 => "PCMA",
        9 => "G722",
        10 | 11 => "L16",
        12 => "QCELP",
        13 => "CN",
        14 => "MPA",
        15 => "G728",
        18 => "G729",
        25 => "CelB",
        26 => "JPEG",
        28 => "nv",
        31 => "H261",
        32 => "MPV",
        33 => "MP2T",
        34 => "H263",
        96..=127 => "dynamic",
        _ => return None,
    })
}

/// A packet head as the heuristic sees it, whatever the transport.
#[derive(Debug, Clone, Copy)]
struct Pkt<'a> {
    from_orig: bool,
    len: usize,
    bytes: &'a [u8],
}

/// The best run of RTP packets of one SSRC in one direction: (direction, head of the first
/// packet, packets in the run). A run's consecutive packets must step the sequence number
/// by 1..=32 and the timestamp forward by less than `MAX_TS_STEP`.
fn best_run(pkts: &[Pkt<'_>]) -> Option<(bool, RtpHead, usize)> {
    let mut best: Option<(bool, RtpHead, usize)> = None;
    for dir in [true, false] {
        let heads: Vec<RtpHead> = pkts
            .iter()
            .filter(|p| p.from_orig == dir)
            .filter_map(|p| rtp_head(p.bytes, p.len))
            .collect();
        // Several SSRCs can share a flow (audio and video bundled): judge each.
        let mut seen: Vec<u32> = Vec::new();
        for h in &heads {
            if seen.contains(&h.ssrc) || seen.len() >= 8 {
                continue;
            }
            seen.push(h.ssrc);
            let run: Vec<&RtpHead> = heads.iter().filter(|x| x.ssrc == h.ssrc).collect();
            let steps_ok = run.windows(2).all(|w| {
                let ds = w[1].seq.wrapping_sub(w[0].seq);
                let dt = w[1].ts.wrapping_sub(w[0].ts);
                (1..=MAX_SEQ_STEP).contains(&ds) && dt < MAX_TS_STEP
            });
            // Payload types: one codec, or a codec plus one more (DTMF events, CN).
            let mut pts: Vec<u8> = run.iter().map(|x| x.pt).collect();
            pts.sort_unstable();
            pts.dedup();
            if run.len() >= MIN_RUN
                && steps_ok
                && pts.len() <= 2
                && best.as_ref().is_none_or(|b| run.len() > b.2)
            {
                best = Some((dir, **run.first()?, run.len()));
            }
        }
    }
    best
}

/// RTCP datagrams among the packets: (count, first type, first SSRC), when every version-2
/// datagram of the flow is consistent RTCP and each direction uses at most two SSRCs.
fn rtcp_flow(pkts: &[Pkt<'_>]) -> Option<(usize, u8, u32)> {
    let mut found: Vec<(bool, u8, u32)> = Vec::new();
    for p in pkts {
        match rtcp_head(p.bytes, p.len) {
            Some((t, s)) => found.push((p.from_orig, t, s)),
            None => return None,
        }
    }
    for dir in [true, false] {
        let mut ssrcs: Vec<u32> = found.iter().filter(|f| f.0 == dir).map(|f| f.2).collect();
        ssrcs.sort_unstable();
        ssrcs.dedup();
        if ssrcs.len() > 2 {
            return None;
        }
    }
    let first = found.first()?;
    Some((found.len(), first.1, first.2))
}

/// RFC 4571 frames (2-byte length, then the packet) at the start of a TCP stream.
fn tcp_frames<'a>(b: &'a [u8], from_orig: bool, out: &mut Vec<Pkt<'a>>) -> bool {
    let mut rest = b;
    let mut n = 0;
    while n < MAX_TCP_FRAMES {
        let Some(len) = be16(rest, 0).map(usize::from) else {
            break;
        };
        let Some(pkt) = rest.get(2..2 + len) else {
            // A partial frame: its head must still look like RTP or RTCP.
            let head = &rest[2.min(rest.len())..];
            return len >= 12 && head.first().is_none_or(|c| c >> 6 == 2);
        };
        if len < 12 || pkt[0] >> 6 != 2 {
            return false;
        }
        out.push(Pkt {
            from_orig,
            len,
            bytes: pkt,
        });
        rest = &rest[2 + len..];
        n += 1;
    }
    true
}

pub struct Rtp;

impl Rtp {
    fn decide(&self, p: &Payloads<'_>, pkts: &[Pkt<'_>], framing: &str) -> Probe {
        let undecided = if p.last_chance {
            Probe::NotMine
        } else {
            Probe::NeedMore
        };
        let v2: Vec<Pkt<'_>> = pkts
            .iter()
            .copied()
            .filter(|x| x.bytes.first().is_some_and(|b| b >> 6 == 2))
            .collect();
        // Four datagrams and not one of version 2: not RTP, whatever follows.
        if v2.is_empty() && pkts.len() >= 4 {
            return Probe::NotMine;
        }
        // The whole first packet of each direction, where we have it, must be well-formed.
        let full_ok = [(true, p.ts), (false, p.tc)].iter().all(|&(dir, b)| {
            match pkts.iter().find(|x| x.from_orig == dir) {
                Some(x)
                    if p.is_udp()
                        && b.len() == x.len
                        && x.bytes.first().is_some_and(|c| c >> 6 == 2) =>
                {
                    rtp_body_ok(b) || rtcp_compound_ok(b)
                }
                _ => true,
            }
        });
        if !full_ok {
            return Probe::NotMine;
        }
        if let Some((dir, h, n)) = best_run(&v2) {
            let rtcp_mux = v2
                .iter()
                .filter(|x| x.bytes.get(1).is_some_and(|&t| (200..=206).contains(&t)))
                .count();
            let name = payload_type_name(h.pt);
            let pt = match name {
                Some(nm) => format!("{} {nm}", h.pt),
                None => h.pt.to_string(),
            };
            let mut evidence = format!(
                "RTP v2{framing}: {n} packets from the {} with SSRC 0x{:08x}, sequence from {} in small steps, payload type {pt}",
                if dir { "originator" } else { "responder" },
                h.ssrc,
                h.seq
            );
            if rtcp_mux > 0 {
                evidence.push_str(&format!("; {rtcp_mux} multiplexed RTCP packets"));
            }
            return Probe::Mine(Detection {
                reversed: false,
                protocol: "rtp",
                service: None,
                confidence: Confidence::Payload,
                evidence,
                fields: vec![
                    ("exwatch.rtp.payload_type", pt),
                    ("exwatch.rtp.ssrc", format!("0x{:08x}", h.ssrc)),
                ],
            });
        }
        // RTCP needs two datagrams at least, all of them RTCP, and the flow must have
        // stopped growing or shown enough: RTCP is sent every few seconds.
        if let Some((n, t, ssrc)) = rtcp_flow(&v2).filter(|_| v2.len() == pkts.len()) {
            if n >= 2 && (p.last_chance || n >= MIN_RUN) {
                return Probe::Mine(Detection {
                    reversed: false,
                    protocol: "rtcp",
                    service: None,
                    confidence: Confidence::Payload,
                    evidence: format!(
                        "RTCP{framing}: {n} packets, all version 2 with RTCP types and lengths that fit (first {})",
                        rtcp_type_name(t)
                    ),
                    fields: vec![
                        ("exwatch.rtcp.packet_type", rtcp_type_name(t).to_string()),
                        ("exwatch.rtcp.ssrc", format!("0x{ssrc:08x}")),
                    ],
                });
            }
        }
        undecided
    }
}

impl Detector for Rtp {
    fn name(&self) -> &'static str {
        "rtp"
    }

    fn protocol(&self) -> &'static str {
        "rtp"
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        if p.is_udp() {
            let pkts: Vec<Pkt<'_>> = p
                .datagrams
                .iter()
                .map(|d: &DatagramHead| Pkt {
                    from_orig: d.from_orig,
                    len: d.len as usize,
                    bytes: d.bytes(),
                })
                .collect();
            return self.decide(p, &pkts, "");
        }
        // RTP over TCP (RFC 4571): the stream is a sequence of length-prefixed packets.
        let mut pkts = Vec::new();
        if !tcp_frames(p.ts, true, &mut pkts) || !tcp_frames(p.tc, false, &mut pkts) {
            return Probe::NotMine;
        }
        self.decide(p, &pkts, " over TCP (RFC 4571 framing)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn head(from_orig: bool, b: &[u8], len: usize) -> DatagramHead {
        DatagramHead::new(from_orig, b, len as u32)
    }

    fn udp<'a>(ts: &'a [u8], tc: &'a [u8], heads: &'a [DatagramHead], last: bool) -> Payloads<'a> {
        Payloads {
            transport: 17,
            ts,
            tc,
            datagrams: heads,
            server_port: 17000,
            client_port: 16000,
            last_chance: last,
        }
    }

    /// sip-udp-call.pcap: PCMA from 16000 to 17000, SSRC 0xdee0ee8f, 160-byte payloads.
    fn pcma(seq: u16, ts: u32) -> Vec<u8> {
        let mut b = vec![0x80, 0x08];
        b.extend(seq.to_be_bytes());
        b.extend(ts.to_be_bytes());
        b.extend(0xdee0_ee8fu32.to_be_bytes());
        b.resize(172, 0xd5);
        b
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    #[test]
    fn rtp_needs_three_packets() {
        let pkts: Vec<Vec<u8>> = (0..3).map(|i| pcma(1000 + i, 160 * u32::from(i))).collect();
        let heads: Vec<DatagramHead> = pkts.iter().map(|b| head(true, b, b.len())).collect();
        assert!(matches!(
            Rtp.probe(&udp(&pkts[0], b"", &heads[..1], false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Rtp.probe(&udp(&pkts[0], b"", &heads[..2], false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Rtp.probe(&udp(&pkts[0], b"", &heads[..2], true)),
            Probe::NotMine
        ));
        let Probe::Mine(d) = Rtp.probe(&udp(&pkts[0], b"", &heads, false)) else {
            panic!()
        };
        assert_eq!(d.protocol, "rtp");
        assert_eq!(field(&d, "exwatch.rtp.payload_type"), Some("8 PCMA"));
        assert_eq!(field(&d, "exwatch.rtp.ssrc"), Some("0xdee0ee8f"));
    }

    #[test]
    fn sequence_wraps_and_bundled_streams() {
        let pkts: Vec<Vec<u8>> = [65534u16, 65535, 0, 1]
            .iter()
            .enumerate()
            .map(|(i, &s)| pcma(s, 160 * i as u32))
            .collect();
        let heads: Vec<DatagramHead> = pkts.iter().map(|b| head(false, b, b.len())).collect();
        assert!(matches!(
            Rtp.probe(&udp(b"", &pkts[0], &heads, false)),
            Probe::Mine(_)
        ));
        // rtp.pcapng flow to 50003: audio and video SSRCs plus muxed RTCP in one direction.
        let tc = [
            "9065af0e277cc7eb001a759fbede0002",
            "9065af0f277cc7eb001a759fbede0002",
            "9078cd06edea9d25001a757dbede0002",
            "9065af10277cc7eb001a759fbede0002",
            "afcd0008001a7e73bf0ee62e93b426ec",
            "9065af12277cd32b001a759fbede0002",
        ];
        let bufs: Vec<Vec<u8>> = tc.iter().map(|h| hex(h)).collect();
        let heads: Vec<DatagramHead> = bufs.iter().map(|b| head(false, b, 1100)).collect();
        let Probe::Mine(d) = Rtp.probe(&udp(b"", b"", &heads, false)) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.rtp.ssrc"), Some("0x001a759f"));
        assert_eq!(field(&d, "exwatch.rtp.payload_type"), Some("101 dynamic"));
        assert!(d.evidence.contains("multiplexed RTCP"), "{}", d.evidence);
    }

    #[test]
    fn rtcp_from_baresip() {
        // sip-udp-call-rtcp.pcap: APP "PING" from each side, later SR+SDES.
        let app = |ssrc: u32| {
            let mut b = vec![0x80, 204, 0, 3];
            b.extend(ssrc.to_be_bytes());
            b.extend(b"PING");
            b.extend([0, 0, 0, 0]);
            b
        };
        let a = app(0x1111_1111);
        let b = app(0x2222_2222);
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend(0x1111_1111u32.to_be_bytes());
        sr.resize(28, 1);
        sr.extend([0x81, 202, 0, 3]);
        sr.extend(0x1111_1111u32.to_be_bytes());
        sr.extend([1, 3, b'a', b'b', b'c', 0, 0, 0]);
        let heads = [head(true, &a, a.len()), head(false, &b, b.len())];
        assert!(matches!(
            Rtp.probe(&udp(&a, &b, &heads, false)),
            Probe::NeedMore
        ));
        let Probe::Mine(d) = Rtp.probe(&udp(&a, &b, &heads, true)) else {
            panic!()
        };
        assert_eq!(d.protocol, "rtcp");
        assert_eq!(field(&d, "exwatch.rtcp.packet_type"), Some("APP"));
        let heads = [
            head(true, &a, a.len()),
            head(false, &b, b.len()),
            head(true, &sr, sr.len()),
        ];
        assert!(matches!(
            Rtp.probe(&udp(&a, &b, &heads, false)),
            Probe::Mine(_)
        ));
        // One RTCP datagram is never enough.
        assert!(matches!(
            Rtp.probe(&udp(&a, b"", &heads[..1], true)),
            Probe::NotMine
        ));
        assert!(rtcp_compound_ok(&sr));
    }

    #[test]
    fn rtp_over_tcp_rfc4571() {
        let mut ts = Vec::new();
        for i in 0..3u16 {
            let p = pcma(100 + i, 160 * u32::from(i));
            ts.extend((p.len() as u16).to_be_bytes());
            ts.extend(p);
        }
        let p = Payloads {
            transport: 6,
            ts: &ts,
            tc: b"",
            datagrams: &[],
            server_port: 5000,
            client_port: 40252,
            last_chance: false,
        };
        assert!(matches!(
            Rtp.probe(&Payloads {
                ts: &ts[..100],
                ..p
            }),
            Probe::NeedMore
        ));
        let Probe::Mine(d) = Rtp.probe(&p) else {
            panic!()
        };
        assert!(d.evidence.contains("RFC 4571"));
        assert!(matches!(
            Rtp.probe(&Payloads {
                ts: b"GET / HTTP/1.1\r\n\r\n",
                ..p
            }),
            Probe::NotMine
        ));
    }

    /// Datagram heads of a capture's flow, both directions, from tshark's hex.
    fn flow(pkts: &[(bool, &str)]) -> (Vec<Vec<u8>>, Vec<DatagramHead>) {
        let bufs: Vec<Vec<u8>> = pkts.iter().map(|(_, h)| hex(h)).collect();
        let heads = pkts
            .iter()
            .zip(&bufs)
            .map(|((o, _), b)| head(*o, b, b.len()))
            .collect();
        (bufs, heads)
    }

    #[test]
    fn other_udp_protocols_are_not_rtp() {
        let cases: Vec<Vec<(bool, &str)>> = vec![
            // dns-udp.pcap style: queries with IDs 0x8xxx (version bits 2), constant flags.
            vec![
                (true, "8a1201000001000000000000046d61696c07636f6e746f736f0474657374000001000100"),
                (false, "8a1281800001000100000000046d61696c07636f6e746f736f0474657374000001000100"),
                (true, "9b3401000001000000000000046d61696c07636f6e746f736f0474657374000001000100"),
                (true, "a55601000001000000000000046d61696c07636f6e746f736f0474657374000001000100"),
                (true, "b77801000001000000000000046d61696c07636f6e746f736f0474657374000001000100"),
            ],
            // ntp.pcap: client mode 3 and server mode 4 (version bits 0).
            vec![
                (true, "230006200000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"),
                (false, "240803e80000000000000b414c4f434cea1d6e7b8c000000ea1d6e7b8c000000ea1d6e7b8c000000ea1d6e7b8c000000"),
            ],
            // snmp.pcap: BER sequences.
            vec![
                (true, "302902010104067075626c6963a01c0204"),
                (true, "302902010104067075626c6963a11c0204"),
                (true, "302902010104067075626c6963a11c0204"),
                (true, "302902010104067075626c6963a11c0204"),
            ],
            // STUN binding requests (top bits 00, magic cookie).
            vec![
                (true, "000100002112a442b7e7a701bc34d686fa87dfae"),
                (true, "000100002112a442b7e7a701bc34d686fa87dfaf"),
                (true, "000100002112a442b7e7a701bc34d686fa87dfb0"),
                (true, "000100002112a442b7e7a701bc34d686fa87dfb1"),
            ],
            // QUIC long headers with the fixed bit greased off (0x80): version constant.
            vec![
                (true, "8000000001088394c8f03e5157080000449e00000002"),
                (true, "8000000001088394c8f03e5157080000449e00000003"),
                (true, "8000000001088394c8f03e5157080000449e00000004"),
            ],
            // syslog.
            vec![
                (true, "3c33343e4f637420313120323232333a"),
                (true, "3c33343e4f637420313120323232333b"),
                (true, "3c33343e4f637420313120323232333c"),
                (true, "3c33343e4f637420313120323232333d"),
            ],
        ];
        for c in cases {
            let (bufs, heads) = flow(&c);
            let tc = c
                .iter()
                .position(|x| !x.0)
                .map_or(&[][..], |i| &bufs[i][..]);
            for last in [false, true] {
                let r = Rtp.probe(&udp(&bufs[0], tc, &heads, last));
                assert!(!matches!(r, Probe::Mine(_)), "{:?} claimed: {r:?}", c[0].1);
            }
        }
    }

    #[test]
    fn hostile_heads_do_not_panic() {
        let mut seed = 42u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        for i in 0..600 {
            let n = 1 + (next() as usize % 16);
            let bufs: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let len = next() as usize % 40;
                    let mut b: Vec<u8> = (0..len).map(|_| next()).collect();
                    if i % 2 == 0 && !b.is_empty() {
                        b[0] = 0x80 | (b[0] & 0x3f);
                    }
                    b
                })
                .collect();
            let heads: Vec<DatagramHead> = bufs
                .iter()
                .map(|b| head(next() & 1 == 0, b, b.len() + (next() as usize % 3)))
                .collect();
            for last in [false, true] {
                let _ = Rtp.probe(&udp(&bufs[0], &bufs[n - 1], &heads, last));
                let ts: Vec<u8> = bufs.concat();
                let p = Payloads {
                    transport: 6,
                    ts: &ts,
                    tc: &bufs[0],
                    datagrams: &[],
                    server_port: 1,
                    client_port: 2,
                    last_chance: last,
                };
                let _ = Rtp.probe(&p);
            }
            for b in &bufs {
                let _ = rtcp_compound_ok(b);
                let _ = rtp_body_ok(b);
            }
        }
    }
}
