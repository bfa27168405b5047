//! NTP v1-v4 over UDP: header sanity and the exact datagram sizes NTP uses; a reply whose
//! origin timestamp echoes the request's transmit timestamp is certain.

use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Ntp;

/// Datagram sizes of modes 1-5: the 48-byte header, optionally followed by a key id and a
/// MAC (DES 8, MD5 16, SHA-1 20 bytes) or NTPv4 extension fields seen in practice.
const SIZES: &[usize] = &[48, 60, 68, 72, 96, 120];

/// 2000-01-01 in NTP era-0 seconds; a transmit time before it is not a real clock.
const Y2000: u32 = 0xbc17_c200;
/// Era 1 starts in 2036; allow its first years (seconds wrap to small values).
const ERA1_SLACK: u32 = 0x1000_0000;

fn mode_name(m: u8) -> &'static str {
    match m {
        1 => "symmetric-active",
        2 => "symmetric-passive",
        3 => "client",
        4 => "server",
        5 => "broadcast",
        6 => "control",
        _ => "private",
    }
}

#[derive(Debug, Clone, Copy)]
struct Pkt {
    version: u8,
    mode: u8,
    /// Transmit timestamp (modes 1-5).
    xmt: u64,
    /// Origin timestamp (modes 1-5).
    org: u64,
}

fn ts_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .map_or(0, |s| u64::from_be_bytes(s.try_into().unwrap_or([0; 8])))
}

/// Whether a timestamp's seconds lie in 2000..2036 or the first years of era 1.
fn plausible_time(t: u64) -> bool {
    let secs = (t >> 32) as u32;
    secs >= Y2000 || (secs != 0 && secs < ERA1_SLACK)
}

/// Check one datagram of `wire` bytes (its first bytes in `b`).
fn parse(b: &[u8], wire: usize) -> Option<Pkt> {
    let &first = b.first()?;
    let version = (first >> 3) & 7;
    let mode = first & 7;
    if !(1..=4).contains(&version) {
        return None;
    }
    match mode {
        1..=5 => {
            if !SIZES.contains(&wire) || b.len() < 48 {
                return None;
            }
            let (stratum, poll) = (b[1], b[2]);
            // Stratum 0 (unspecified / kiss-o'-death) to 16 (unsynchronised); poll is a
            // log2 of seconds, 17 at most (RFC 5905 7.3).
            if stratum > 16 || poll > 17 {
                return None;
            }
            Some(Pkt {
                version,
                mode,
                xmt: ts_at(b, 40),
                org: ts_at(b, 24),
            })
        }
        6 => {
            // Control: 12-byte header, then `count` data bytes (padded to 4) and maybe a MAC.
            let hdr = b.get(..12)?;
            let opcode = hdr[1] & 0x1f;
            let count = u16::from_be_bytes([hdr[10], hdr[11]]) as usize;
            let offset = u16::from_be_bytes([hdr[8], hdr[9]]) as usize;
            if opcode == 0 || opcode > 31 || count > 468 || offset > 65000 {
                return None;
            }
            let padded = (12 + count).div_ceil(4) * 4;
            if wire < 12 + count || wire > padded + 24 {
                return None;
            }
            Some(Pkt {
                version,
                mode,
                xmt: 0,
                org: 0,
            })
        }
        7 => {
            // Private (ntpdc): implementation 0 (universal), 2 (xntpd old) or 3 (xntpd);
            // items * item size must fit.
            let hdr = b.get(..8)?;
            let items = (u16::from_be_bytes([hdr[4], hdr[5]]) & 0x0fff) as usize;
            let size = (u16::from_be_bytes([hdr[6], hdr[7]]) & 0x0fff) as usize;
            if !matches!(hdr[2], 0 | 2 | 3) || hdr[3] > 45 || items * size > 500 {
                return None;
            }
            if wire < 8 + items * size || wire > 8 + 500 + 24 {
                return None;
            }
            Some(Pkt {
                version,
                mode,
                xmt: 0,
                org: 0,
            })
        }
        _ => None,
    }
}

fn wire_len(p: &Payloads<'_>, orig: bool, b: &[u8]) -> usize {
    p.datagrams
        .iter()
        .find(|d| d.from_orig == orig)
        .map_or(b.len(), |d| d.len as usize)
}

impl Detector for Ntp {
    fn name(&self) -> &'static str {
        "ntp"
    }

    fn protocol(&self) -> &'static str {
        "ntp"
    }

    fn tcp(&self) -> bool {
        false
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let ts = (!p.ts.is_empty()).then(|| parse(p.ts, wire_len(p, true, p.ts)));
        let tc = (!p.tc.is_empty()).then(|| parse(p.tc, wire_len(p, false, p.tc)));
        let (req, rep) = match (ts, tc) {
            (Some(None), _) | (_, Some(None)) => return Probe::NotMine,
            (None, None) => return Probe::NeedMore,
            (Some(Some(a)), Some(Some(b))) => (Some(a), Some(b)),
            (a, b) => (a.flatten(), b.flatten()),
        };
        // A capture that starts with the reply puts the server first: name the client's mode.
        let (req, rep) = match (req, rep) {
            (Some(a), Some(b)) if a.mode == 4 && b.mode == 3 => (Some(b), Some(a)),
            other => other,
        };
        let first = req.or(rep).expect("one side parsed");
        let evidence = match (req, rep) {
            (Some(q), Some(r)) => {
                // The reply echoes the request's transmit time: nothing else does that. The
                // originator may have been guessed wrong (a capture that starts with the
                // reply), so both orders count.
                let echoed = (q.xmt != 0 && r.org == q.xmt) || (r.xmt != 0 && q.org == r.xmt);
                let modes = (q.mode.min(r.mode), q.mode.max(r.mode));
                let paired = matches!(modes, (3, 4) | (1, 1) | (1, 2) | (6, 6) | (7, 7));
                if !paired && !echoed {
                    return Probe::NotMine;
                }
                format!(
                    "NTPv{} {} and {} reply{}",
                    q.version,
                    mode_name(q.mode),
                    mode_name(r.mode),
                    if echoed {
                        " (origin timestamp echoed)"
                    } else {
                        ""
                    }
                )
            }
            _ => {
                // One datagram is weak evidence for a binary header. The NTP port breaks the
                // tie (tie-breaker only); elsewhere wait for the other side, and at the end
                // accept only a plausible clock reading.
                let on_port = p.server_port == 123 || p.client_port == 123;
                // Even then the reply is worth waiting for: it can confirm (or refute) the
                // request, unless the originator keeps sending without one.
                let sent = p.datagrams.iter().filter(|d| d.from_orig).count();
                if rep.is_none() && !p.last_chance && sent < 3 && p.tc.is_empty() {
                    return Probe::NeedMore;
                }
                if !on_port {
                    if !p.last_chance {
                        return Probe::NeedMore;
                    }
                    if !matches!(first.mode, 1..=5) || !plausible_time(first.xmt) {
                        return Probe::NotMine;
                    }
                }
                format!("NTPv{} {}", first.version, mode_name(first.mode))
            }
        };
        Probe::Mine(Detection {
            reversed: false,
            protocol: "ntp",
            service: None,
            confidence: Confidence::Payload,
            evidence,
            fields: vec![("exwatch.ntp.mode", mode_name(first.mode).to_string())],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::detector::DatagramHead;

    // ntp.pcap (ntpdate -q against chrony): client request and stratum-8 server reply.
    const REQ: &[u8] = b"\xe3\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xee\xafz\xc7\x1c\xa8\x98\x00";
    const REP: &[u8] = b"$\x08\x00\xe6\x00\x00\x00\x00\x00\x00\x00\x00\x7f\x7f\x01\x01\xee\xafz\xc5c=\xc6\xca\xee\xafz\xc7\x1c\xa8\x98\x00\xee\xafz\xc7\x1c\xb9\xac\x07\xee\xafz\xc7\x1c\xbf}\xfe";

    fn head(from_orig: bool, b: &[u8]) -> DatagramHead {
        DatagramHead::new(from_orig, b, b.len() as u32)
    }

    fn view<'a>(
        ts: &'a [u8],
        tc: &'a [u8],
        heads: &'a [DatagramHead],
        port: u16,
        last: bool,
    ) -> Payloads<'a> {
        Payloads {
            transport: 17,
            ts,
            tc,
            datagrams: heads,
            server_port: port,
            client_port: 55658,
            last_chance: last,
        }
    }

    #[test]
    fn request_and_reply_match_on_any_port() {
        let heads = [head(true, REQ), head(false, REP)];
        let Probe::Mine(d) = Ntp.probe(&view(REQ, REP, &heads, 40000, false)) else {
            panic!()
        };
        assert_eq!(
            d.evidence,
            "NTPv4 client and server reply (origin timestamp echoed)"
        );
        assert_eq!(d.fields, vec![("exwatch.ntp.mode", "client".to_string())]);
    }

    #[test]
    fn single_request_needs_the_port_or_the_reply() {
        let heads = [head(true, REQ)];
        assert!(matches!(
            Ntp.probe(&view(REQ, b"", &heads, 123, false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Ntp.probe(&view(REQ, b"", &heads, 123, true)),
            Probe::Mine(_)
        ));
        assert!(matches!(
            Ntp.probe(&view(REQ, b"", &heads, 40000, false)),
            Probe::NeedMore
        ));
        // ntpdate leaves its transmit time in era 0 (2026): plausible at the end.
        assert!(matches!(
            Ntp.probe(&view(REQ, b"", &heads, 40000, true)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn truncated_and_wrong_sizes() {
        let heads = [head(true, &REQ[..40])];
        assert!(matches!(
            Ntp.probe(&view(&REQ[..40], b"", &heads, 123, false)),
            Probe::NotMine
        ));
        let mut long = REQ.to_vec();
        long.push(0);
        let heads = [head(true, &long)];
        assert!(matches!(
            Ntp.probe(&view(&long, b"", &heads, 123, false)),
            Probe::NotMine
        ));
        let mut bad = REQ.to_vec();
        bad[1] = 17; // stratum
        let heads = [head(true, &bad)];
        assert!(matches!(
            Ntp.probe(&view(&bad, b"", &heads, 123, false)),
            Probe::NotMine
        ));
    }

    #[test]
    fn control_and_hostile_lengths() {
        // ntpq "readvar": mode 6, opcode 2, count 0.
        let ctl = b"\x16\x02\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00";
        let heads = [head(true, ctl)];
        assert!(matches!(
            Ntp.probe(&view(ctl, b"", &heads, 123, true)),
            Probe::Mine(_)
        ));
        let huge = b"\x16\x02\x00\x01\x00\x00\x00\x00\xff\xff\xff\xff";
        let heads = [head(true, huge)];
        assert!(matches!(
            Ntp.probe(&view(huge, b"", &heads, 123, false)),
            Probe::NotMine
        ));
        let mut x: u32 = 5;
        let mut buf = [0u8; 120];
        for round in 0..600 {
            for b in buf.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = (x >> 16) as u8;
            }
            let n = [0, 8, 12, 48, 60, 68, 72, 96, 120][round % 9];
            let heads = [head(true, &buf[..n]), head(false, &buf[..48])];
            let _ = Ntp.probe(&view(&buf[..n], &buf[..48], &heads, 123, round % 2 == 0));
        }
    }

    #[test]
    fn other_protocols_are_not_ntp() {
        // A DNS query and an RTP packet padded to 48 bytes.
        let dns = b"\x01\x9e\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07contoso\x04test\x00\x00\x01\x00\x01";
        let heads = [head(true, dns)];
        assert!(matches!(
            Ntp.probe(&view(dns, b"", &heads, 123, false)),
            Probe::NotMine
        ));
        let mut rtp = vec![0x80, 0x08, 0x00, 0x01];
        rtp.resize(48, 0x55);
        let heads = [head(true, &rtp)];
        assert!(matches!(
            Ntp.probe(&view(&rtp, b"", &heads, 123, false)),
            Probe::NotMine
        ));
    }
}
