//! H.323 call signalling (H.225.0): Q.931 messages in TPKT on 1720 or any port.
//!
//! H.245 (the media control channel opened next, on a negotiated port) is PER-encoded
//! ASN.1 in TPKT with no fixed marker; telling it from other TPKT users by payload alone is
//! not reliable, so it is not detected here.

use super::tpkt;
use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

/// Q.931 protocol discriminator.
const Q931: u8 = 0x08;
/// The User-user information element; H.225.0 gives it a two-octet length.
const USER_USER: u8 = 0x7e;
/// User-user protocol discriminator for X.208/X.209 coded user information (H.225.0).
const UU_ASN1: u8 = 0x05;

fn message_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0x01 => "ALERTING",
        0x02 => "CALL PROCEEDING",
        0x03 => "PROGRESS",
        0x05 => "SETUP",
        0x07 => "CONNECT",
        0x0d => "SETUP ACKNOWLEDGE",
        0x5a => "RELEASE COMPLETE",
        0x62 => "FACILITY",
        0x6e => "NOTIFY",
        0x75 => "STATUS ENQUIRY",
        0x7b => "INFORMATION",
        0x7d => "STATUS",
        _ => return None,
    })
}

/// A Q.931 message filling a TPKT payload: discriminator, call reference of at most two
/// octets, a known message type, and information elements that end exactly at the end.
/// Returns the message name and whether an H.225.0 user-user element is present.
fn q931(b: &[u8]) -> Option<(&'static str, bool)> {
    if *b.first()? != Q931 {
        return None;
    }
    let crl = usize::from(*b.get(1)?);
    if crl > 2 {
        return None;
    }
    let name = message_name(*b.get(2 + crl)?)?;
    let mut at = 3 + crl;
    let mut h225 = false;
    let mut n = 0;
    while at < b.len() {
        n += 1;
        if n > 64 {
            return None;
        }
        let id = b[at];
        if id & 0x80 != 0 {
            // Single-octet element (shift, more data, sending complete ...).
            at += 1;
            continue;
        }
        let (len, hdr) = if id == USER_USER {
            (
                usize::from(u16::from_be_bytes([*b.get(at + 1)?, *b.get(at + 2)?])),
                3,
            )
        } else {
            (usize::from(*b.get(at + 1)?), 2)
        };
        let body = b.get(at + hdr..at + hdr + len)?;
        if id == USER_USER && body.first() == Some(&UU_ASN1) {
            h225 = true;
        }
        at += hdr + len;
    }
    Some((name, h225))
}

pub struct H323;

impl Detector for H323 {
    fn name(&self) -> &'static str {
        "h323"
    }

    fn protocol(&self) -> &'static str {
        "h323"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let undecided = if p.last_chance {
            Probe::NotMine
        } else {
            Probe::NeedMore
        };
        // The caller speaks first (SETUP); a capture may also start with the callee.
        let (b, who) = if p.ts.is_empty() {
            (p.tc, "callee")
        } else {
            (p.ts, "caller")
        };
        let payload = match tpkt::first(b) {
            tpkt::Frame::Invalid => return Probe::NotMine,
            tpkt::Frame::Partial if b.get(4).is_some_and(|&d| d != Q931) => return Probe::NotMine,
            tpkt::Frame::Partial => return undecided,
            tpkt::Frame::Complete(x) => x,
        };
        // Every H.225.0 message carries the user-user element with the ASN.1 H.323 PDU;
        // plain Q.931 in TPKT without it is not H.323.
        let Some((name, true)) = q931(payload) else {
            return Probe::NotMine;
        };
        let mut evidence =
            format!("TPKT + Q.931 {name} from the {who} with H.225.0 user-user element");
        if who == "caller" {
            let replies: Vec<&str> = tpkt::frames(p.tc, 4)
                .iter()
                .filter_map(|f| q931(f))
                .map(|(n, _)| n)
                .collect();
            if !replies.is_empty() {
                evidence.push_str(&format!("; replies {}", replies.join(", ")));
            }
        }
        Probe::Mine(Detection {
            reversed: false,
            protocol: "h323",
            service: None,
            confidence: Confidence::Payload,
            evidence,
            fields: vec![("exwatch.h323.message", name.to_string())],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 1720, 50000, last)
    }

    fn tpkt(payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() + 4) as u16;
        let mut v = vec![3, 0];
        v.extend(len.to_be_bytes());
        v.extend(payload);
        v
    }

    /// A SETUP as H.225.0 builds it: call reference 2 octets, Bearer capability, Display,
    /// Called party number, User-user (two-octet length, discriminator 5, PER bytes).
    fn setup() -> Vec<u8> {
        let mut q = vec![0x08, 0x02, 0x12, 0x34, 0x05];
        q.extend([0x04, 0x03, 0x88, 0x93, 0xa5]);
        q.extend([0x28, 0x04]);
        q.extend(b"Test");
        q.extend([0x70, 0x04, 0x81, b'1', b'0', b'0']);
        let uu = [0x05, 0x20, 0xb8, 0x06, 0x00, 0x08, 0x91, 0x4a, 0x00, 0x04];
        q.push(0x7e);
        q.extend((uu.len() as u16).to_be_bytes());
        q.extend(uu);
        tpkt(&q)
    }

    fn alerting() -> Vec<u8> {
        let mut q = vec![0x08, 0x02, 0x92, 0x34, 0x01];
        let uu = [0x05, 0x03, 0x00, 0x06, 0x00];
        q.push(0x7e);
        q.extend((uu.len() as u16).to_be_bytes());
        q.extend(uu);
        tpkt(&q)
    }

    #[test]
    fn setup_and_alerting() {
        let ts = setup();
        let tc = alerting();
        let Probe::Mine(d) = H323.probe(&view(&ts, &tc, false)) else {
            panic!()
        };
        assert_eq!(d.protocol, "h323");
        assert_eq!(
            d.fields,
            vec![("exwatch.h323.message", "SETUP".to_string())]
        );
        assert!(d.evidence.contains("replies ALERTING"), "{}", d.evidence);
        let Probe::Mine(d) = H323.probe(&view(b"", &tc, false)) else {
            panic!()
        };
        assert!(d.evidence.contains("callee"));
    }

    #[test]
    fn split_and_truncated() {
        let ts = setup();
        for cut in [1, 2, 4, 5, 12, ts.len() - 1] {
            assert!(
                matches!(H323.probe(&view(&ts[..cut], b"", false)), Probe::NeedMore),
                "cut {cut}"
            );
            assert!(matches!(
                H323.probe(&view(&ts[..cut], b"", true)),
                Probe::NotMine
            ));
        }
    }

    #[test]
    fn other_tpkt_users_are_not_h323() {
        let rdp: &[u8] = &[
            3, 0, 0, 19, 14, 0xe0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 0x0b, 0, 0, 0,
        ];
        assert!(matches!(H323.probe(&view(rdp, b"", true)), Probe::NotMine));
        // Q.931 without the H.225.0 user-user element.
        let bare = tpkt(&[0x08, 0x01, 0x01, 0x05, 0x04, 0x01, 0x88]);
        assert!(matches!(
            H323.probe(&view(&bare, b"", true)),
            Probe::NotMine
        ));
        // Elements overrunning the TPKT.
        let mut bad = setup();
        let n = bad.len();
        bad[n - 12] = 0x7f;
        assert!(matches!(H323.probe(&view(&bad, b"", true)), Probe::NotMine));
        for ts in [&b"GET / HTTP/1.1\r\n"[..], b"\x16\x03\x01\x00\x10"] {
            assert!(matches!(H323.probe(&view(ts, b"", true)), Probe::NotMine));
        }
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let mut seed = 13u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        for i in 0..600 {
            let n = next() as usize % 80;
            let mut b: Vec<u8> = (0..n).map(|_| next()).collect();
            if i % 2 == 0 && !b.is_empty() {
                b[0] = 0x08;
                if b.len() > 1 {
                    b[1] &= 3;
                }
            }
            let t = tpkt(&b);
            for last in [false, true] {
                let _ = H323.probe(&view(&t, &t, last));
                let _ = H323.probe(&view(&b, b"", last));
            }
        }
    }
}
