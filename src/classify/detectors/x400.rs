//! X.400 MTA over RFC 1006 (OSI transport over TCP, port 102 but detected by payload):
//! TPKT + COTP Connection Request with TSAP selectors, then an ISO 8327 session CONNECT.
//!
//! The same OSI stack also carries IEC 61850 MMS, and Siemens S7comm uses TPKT + COTP CR
//! with TSAPs on 102 too: the first data TPDU tells them apart, so the detector waits for
//! it when it can. MTA names and bind passwords inside the session are never read.

use super::tpkt;
use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

/// Calling and called TSAP parameter codes ([X.224] 13.3.4 a).
const CALLING_TSAP: u8 = 0xc1;
const CALLED_TSAP: u8 = 0xc2;

/// ISO 8327 session SPDU identifiers: CONNECT (CN) and ACCEPT (AC).
const SPDU_CONNECT: u8 = 0x0d;
const SPDU_ACCEPT: u8 = 0x0e;

/// The MMS abstract-syntax OID 1.0.9506.2.1 body (`28 CA 22 02 01`), as IEC 61850 puts it
/// in the presentation context list: its presence means MMS, not X.400.
const MMS_OID: &[u8] = &[0x28, 0xca, 0x22, 0x02, 0x01];

/// A session SPDU at the start of `b`: identifier, then a length indicator of one octet
/// or 0xFF and two octets, that fits the TPDU.
fn spdu(b: &[u8], id: u8) -> bool {
    if b.first() != Some(&id) {
        return false;
    }
    let (len, hdr) = match b.get(1) {
        Some(&0xff) => match b.get(2..4) {
            Some(x) => (usize::from(u16::from_be_bytes([x[0], x[1]])), 4),
            None => return false,
        },
        Some(&l) => (usize::from(l), 2),
        None => return false,
    };
    hdr + len <= b.len() && len > 0
}

/// What the first data TPDU of the client carries.
enum FirstData {
    None,
    SessionConnect,
    Mms,
    Other,
}

fn first_data(ts: &[u8]) -> FirstData {
    for p in tpkt::frames(ts, 4) {
        if let Some(d) = tpkt::dt(p) {
            return if spdu(d, SPDU_CONNECT) {
                if d.windows(MMS_OID.len()).any(|w| w == MMS_OID) {
                    FirstData::Mms
                } else {
                    FirstData::SessionConnect
                }
            } else {
                // S7comm (0x32), S7comm-plus (0x72) or anything else that is not OSI session.
                FirstData::Other
            };
        }
    }
    FirstData::None
}

fn tsap_text(v: &[u8]) -> String {
    if !v.is_empty() && v.iter().all(|c| c.is_ascii_graphic()) {
        String::from_utf8_lossy(v).into_owned()
    } else {
        v.iter().map(|b| format!("{b:02x}")).collect()
    }
}

pub struct X400;

impl Detector for X400 {
    fn name(&self) -> &'static str {
        "x400"
    }

    fn protocol(&self) -> &'static str {
        "x400"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let undecided = if p.last_chance {
            Probe::NotMine
        } else {
            Probe::NeedMore
        };
        let first = match tpkt::first(p.ts) {
            tpkt::Frame::Invalid => return Probe::NotMine,
            tpkt::Frame::Partial
                if p.ts
                    .get(5)
                    .is_some_and(|&c| c & 0xf0 != tpkt::CR && c != tpkt::DT) =>
            {
                return Probe::NotMine
            }
            tpkt::Frame::Partial => return undecided,
            tpkt::Frame::Complete(b) => b,
        };
        // A stream joined after the handshake: a data TPDU opening an OSI session.
        if let Some(d) = tpkt::dt(first) {
            return if spdu(d, SPDU_CONNECT) && !d.windows(MMS_OID.len()).any(|w| w == MMS_OID) {
                mine(
                    "RFC 1006 TPKT + COTP DT + ISO session CONNECT (X.400 MTA)".to_string(),
                    Vec::new(),
                )
            } else {
                Probe::NotMine
            };
        }
        let Some(cr) = tpkt::conn(first).filter(|c| c.code == tpkt::CR) else {
            return Probe::NotMine;
        };
        // TSAP selectors and nothing that is not a parameter (RDP puts its cookie and
        // negotiation request there).
        let has_tsap = cr
            .params
            .iter()
            .any(|(c, _)| *c == CALLING_TSAP || *c == CALLED_TSAP);
        if !has_tsap || !cr.rest.is_empty() {
            return Probe::NotMine;
        }
        let mut fields = Vec::new();
        if let Some((_, v)) = cr.params.iter().find(|(c, _)| *c == CALLED_TSAP) {
            fields.push(("exwatch.x400.called_tsap", tsap_text(v)));
        }
        let mut evidence = String::from("RFC 1006 TPKT + COTP CR (X.400 MTA)");
        match first_data(p.ts) {
            FirstData::SessionConnect => {
                evidence.push_str("; ISO session CONNECT");
                if tpkt::frames(p.tc, 4)
                    .iter()
                    .filter_map(|f| tpkt::dt(f))
                    .any(|d| spdu(d, SPDU_ACCEPT))
                {
                    evidence.push_str(", ACCEPT");
                }
            }
            FirstData::Mms | FirstData::Other => return Probe::NotMine,
            FirstData::None if !p.last_chance => return Probe::NeedMore,
            FirstData::None => evidence.push_str(" (no data TPDU seen)"),
        }
        mine(evidence, fields)
    }
}

fn mine(evidence: String, fields: Vec<(&'static str, String)>) -> Probe {
    Probe::Mine(Detection {
        reversed: false,
        protocol: "x400",
        service: None,
        confidence: Confidence::Payload,
        evidence,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 102, 50000, last)
    }

    /// A TPKT around `payload`.
    fn tpkt(payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() + 4) as u16;
        let mut v = vec![3, 0];
        v.extend(len.to_be_bytes());
        v.extend(payload);
        v
    }

    /// COTP CR class 0 with TPDU size 2048, calling TSAP "MTA1", called TSAP "MTA".
    fn cr() -> Vec<u8> {
        let mut p = vec![0, 0xe0, 0, 0, 0x00, 0x01, 0x00];
        p.extend([0xc0, 1, 0x0b]);
        p.extend([0xc1, 4]);
        p.extend(b"MTA1");
        p.extend([0xc2, 3]);
        p.extend(b"MTA");
        p[0] = (p.len() - 1) as u8;
        tpkt(&p)
    }

    /// DT carrying a session CONNECT SPDU with a few parameters.
    fn connect() -> Vec<u8> {
        let mut p = vec![2, 0xf0, 0x80];
        p.extend([0x0d, 0x08, 0x05, 0x06, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02]);
        tpkt(&p)
    }

    #[test]
    fn cr_then_session_connect() {
        let mut ts = cr();
        assert!(matches!(
            X400.probe(&view(&ts, b"", false)),
            Probe::NeedMore
        ));
        let Probe::Mine(d) = X400.probe(&view(&ts, b"", true)) else {
            panic!()
        };
        assert!(d
            .evidence
            .starts_with("RFC 1006 TPKT + COTP CR (X.400 MTA)"));
        ts.extend(connect());
        let Probe::Mine(d) = X400.probe(&view(&ts, b"", false)) else {
            panic!()
        };
        assert_eq!(d.protocol, "x400");
        assert!(d.evidence.contains("session CONNECT"), "{}", d.evidence);
        assert_eq!(
            d.fields,
            vec![("exwatch.x400.called_tsap", "MTA".to_string())]
        );
        // Joined after the handshake: the DT alone.
        assert!(matches!(
            X400.probe(&view(&connect(), b"", false)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn split_and_truncated() {
        let ts = cr();
        for cut in [1, 3, 5, 8, ts.len() - 1] {
            assert!(
                matches!(X400.probe(&view(&ts[..cut], b"", false)), Probe::NeedMore),
                "cut {cut}"
            );
            assert!(matches!(
                X400.probe(&view(&ts[..cut], b"", true)),
                Probe::NotMine
            ));
        }
    }

    #[test]
    fn s7comm_mms_and_rdp_are_not_x400() {
        // S7comm: CR with TSAPs 0x0100 / 0x0102, then a DT with protocol id 0x32.
        let s7_cr = hex("0300001611e00000000100c0010ac1020100c2020102");
        let mut ts = s7_cr.clone();
        ts.extend(hex("0300001902f08032010000ccc100080000f0000001000101e0"));
        assert!(matches!(X400.probe(&view(&ts, b"", false)), Probe::NotMine));
        // MMS: session CONNECT whose presentation data names the MMS abstract syntax.
        let mut p = vec![2, 0xf0, 0x80, 0x0d, 0x0c];
        p.extend([
            0x30, 0x0a, 0x06, 0x05, 0x28, 0xca, 0x22, 0x02, 0x01, 0x00, 0x00, 0x00,
        ]);
        let mut ts = cr();
        ts.extend(tpkt(&p));
        assert!(matches!(X400.probe(&view(&ts, b"", false)), Probe::NotMine));
        // RDP CR.
        let rdp = hex("030000130ee00000000000010008000b000000");
        assert!(matches!(X400.probe(&view(&rdp, b"", true)), Probe::NotMine));
        // Bare CR (T.120): no TSAP.
        let bare = hex("0300000b06e00000000000");
        assert!(matches!(
            X400.probe(&view(&bare, b"", true)),
            Probe::NotMine
        ));
        for ts in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x03\x01",
            b"\x03\x00\x00\x0e\x08\x02",
        ] {
            assert!(matches!(X400.probe(&view(ts, b"", true)), Probe::NotMine));
        }
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let mut seed = 11u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        for i in 0..600 {
            let n = next() as usize % 80;
            let mut b: Vec<u8> = (0..n).map(|_| next()).collect();
            if i % 2 == 0 {
                b = [tpkt(&b), tpkt(&[2, 0xf0, 0x80, 0x0d, 0xff, 0xff, 0xff])].concat();
                if b.len() > 6 {
                    b[4] = (usize::from(u16::from_be_bytes([b[2], b[3]])).wrapping_sub(5)) as u8;
                    b[5] = 0xe0;
                }
            }
            for last in [false, true] {
                let _ = X400.probe(&view(&b, &b, last));
            }
        }
    }
}
