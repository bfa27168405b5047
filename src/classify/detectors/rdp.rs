//! RDP ([MS-RDPBCGR] 2.2.1.1, 2.2.1.2): TPKT + X.224 Connection Request carrying a
//! routing cookie and/or RDP_NEG_REQ, and the Connection Confirm with RDP_NEG_RSP.
//!
//! The `Cookie: mstshash=` value is a user name: its presence is noted, its value never
//! recorded.

use super::tpkt;
use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

/// RDP_NEG_REQ / RDP_NEG_RSP / RDP_NEG_FAILURE type codes; all three are 8 bytes long.
const NEG_REQ: u8 = 0x01;
const NEG_RSP: u8 = 0x02;
const NEG_FAILURE: u8 = 0x03;

/// Names of the requestedProtocols / selectedProtocol flags, as text.
fn protocols(flags: u32) -> String {
    protocol_list(flags).join(", ")
}

/// Names of the requestedProtocols / selectedProtocol flags.
fn protocol_list(flags: u32) -> Vec<String> {
    const NAMES: [(u32, &str); 5] = [
        (0x01, "TLS"),
        (0x02, "CredSSP"),
        (0x04, "RDSTLS"),
        (0x08, "CredSSP-EX"),
        (0x10, "RDSAAD"),
    ];
    if flags == 0 {
        return vec!["RDP".to_string()];
    }
    let mut v: Vec<String> = NAMES
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    if flags & !0x1f != 0 {
        v.push(format!("0x{:x}", flags & !0x1f));
    }
    v
}

fn failure(code: u32) -> &'static str {
    match code {
        1 => "SSL_REQUIRED_BY_SERVER",
        2 => "SSL_NOT_ALLOWED_BY_SERVER",
        3 => "SSL_CERT_NOT_ON_SERVER",
        4 => "INCONSISTENT_FLAGS",
        5 => "HYBRID_REQUIRED_BY_SERVER",
        6 => "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
        _ => "unknown failure",
    }
}

/// An 8-byte negotiation structure: type, flags, length 8 (little-endian), 32-bit value.
fn neg(b: &[u8]) -> Option<(u8, u32)> {
    if b.len() != 8 || b[2] != 8 || b[3] != 0 {
        return None;
    }
    Some((b[0], u32::from_le_bytes(b[4..8].try_into().ok()?)))
}

/// What the CR's RDP data holds.
struct Request {
    cookie: Option<&'static str>,
    requested: Option<u32>,
}

/// The RDP data of a CR: an optional `Cookie: mstshash=...` (or `Cookie: msts=` routing
/// token) line ended by CR LF, then an optional RDP_NEG_REQ, nothing else.
fn request(rest: &[u8]) -> Option<Request> {
    let mut r = Request {
        cookie: None,
        requested: None,
    };
    let mut tail = rest;
    if tail.starts_with(b"Cookie: ") {
        let end = tail.windows(2).position(|w| w == b"\r\n")?;
        r.cookie = Some(if tail.starts_with(b"Cookie: mstshash=") {
            "mstshash"
        } else {
            "routing token"
        });
        tail = &tail[end + 2..];
    }
    match tail.len() {
        0 => {}
        8 => match neg(tail)? {
            (NEG_REQ, p) => r.requested = Some(p),
            _ => return None,
        },
        _ => return None,
    }
    (r.cookie.is_some() || r.requested.is_some()).then_some(r)
}

pub struct Rdp;

impl Detector for Rdp {
    fn name(&self) -> &'static str {
        "rdp"
    }

    fn protocol(&self) -> &'static str {
        "rdp"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let undecided = if p.last_chance {
            Probe::NotMine
        } else {
            Probe::NeedMore
        };
        let cr = match tpkt::first(p.ts) {
            tpkt::Frame::Invalid => return Probe::NotMine,
            // Only a CR can open RDP.
            tpkt::Frame::Partial if p.ts.get(5).is_some_and(|&c| c & 0xf0 != tpkt::CR) => {
                return Probe::NotMine
            }
            tpkt::Frame::Partial => return undecided,
            tpkt::Frame::Complete(b) => b,
        };
        let Some(c) = tpkt::conn(cr).filter(|c| c.code == tpkt::CR && c.class == 0) else {
            return Probe::NotMine;
        };
        let req = if c.params.is_empty() {
            request(c.rest)
        } else {
            None
        };
        // A bare CR (no cookie, no negotiation) is what RDP 4/5 clients sent, but also
        // what T.123 (T.120) sends: only the RDP port breaks that tie.
        let bare = c.params.is_empty() && c.rest.is_empty();
        if req.is_none() && !(bare && p.server_port == 3389) {
            return Probe::NotMine;
        }
        // The confirm says which security protocol the server picked.
        let cc = match tpkt::first(p.tc) {
            tpkt::Frame::Complete(b) => tpkt::conn(b).filter(|c| c.code == tpkt::CC),
            // Empty or still arriving: the confirm follows at once, wait for it.
            tpkt::Frame::Partial if !p.last_chance => return Probe::NeedMore,
            _ => None,
        };
        let mut evidence = String::from("TPKT + X.224 Connection Request");
        let mut fields = Vec::new();
        match &req {
            Some(r) => {
                if let Some(k) = r.cookie {
                    evidence.push_str(&format!(" with Cookie ({k}, value not recorded)"));
                }
                if let Some(f) = r.requested {
                    evidence.push_str(&format!(
                        "{} RDP_NEG_REQ ({})",
                        if r.cookie.is_some() { " and" } else { " with" },
                        protocols(f)
                    ));
                    fields.extend(
                        protocol_list(f)
                            .into_iter()
                            .map(|p| ("exwatch.rdp.requested_protocols", p)),
                    );
                }
            }
            None => evidence.push_str(" without negotiation on port 3389 (legacy RDP client)"),
        }
        if let Some(cc) = cc {
            match neg(cc.rest) {
                Some((NEG_RSP, sel)) => {
                    evidence.push_str(&format!("; Connection Confirm selects {}", protocols(sel)));
                    fields.push(("exwatch.rdp.selected_protocol", protocols(sel)));
                }
                Some((NEG_FAILURE, code)) => {
                    evidence.push_str(&format!("; negotiation failure {}", failure(code)));
                }
                _ => evidence.push_str("; Connection Confirm"),
            }
        }
        Probe::Mine(Detection {
            reversed: false,
            protocol: "rdp",
            service: None,
            confidence: Confidence::Payload,
            evidence,
            fields,
        })
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

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], port: u16, last: bool) -> Payloads<'a> {
        Payloads {
            transport: 6,
            ts,
            tc,
            datagrams: &[],
            server_port: port,
            client_port: 50000,
            last_chance: last,
        }
    }

    fn all<'a>(d: &'a Detection, k: &str) -> Vec<&'a str> {
        d.fields
            .iter()
            .filter(|(fk, _)| *fk == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    // rdp.pcap (xfreerdp to xrdp): CR with "Cookie: mstshash=jdoe" and RDP_NEG_REQ
    // (TLS, CredSSP); CC selecting TLS.
    const CR: &str =
        "0300002a25e00000000000436f6f6b69653a206d737473686173683d6a646f650d0a0100080003000000";
    const CC: &str = "030000130ed000001234000201080001000000";

    #[test]
    fn cookie_and_negotiation() {
        let (ts, tc) = (hex(CR), hex(CC));
        assert!(matches!(
            Rdp.probe(&view(&ts, b"", 3389, false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Rdp.probe(&view(&ts, b"", 3389, true)),
            Probe::Mine(_)
        ));
        let Probe::Mine(d) = Rdp.probe(&view(&ts, &tc, 3389, false)) else {
            panic!()
        };
        assert_eq!(d.protocol, "rdp");
        assert_eq!(
            all(&d, "exwatch.rdp.requested_protocols"),
            ["TLS", "CredSSP"]
        );
        assert_eq!(field(&d, "exwatch.rdp.selected_protocol"), Some("TLS"));
        // The cookie's value (a user name) appears nowhere.
        assert!(!d.evidence.contains("jdoe"));
        assert!(d.fields.iter().all(|(_, v)| !v.contains("jdoe")));
    }

    #[test]
    fn negotiation_only_on_any_port() {
        // /work/shared/pcaps/rdp.pcap: no cookie, TLS+CredSSP+CredSSP-EX requested.
        let ts = hex("030000130ee00000000000010008000b000000");
        let tc = hex("030000130ed00000123400021f080008000000");
        let Probe::Mine(d) = Rdp.probe(&view(&ts, &tc, 443, false)) else {
            panic!()
        };
        assert_eq!(
            all(&d, "exwatch.rdp.requested_protocols"),
            ["TLS", "CredSSP", "CredSSP-EX"]
        );
        assert_eq!(
            field(&d, "exwatch.rdp.selected_protocol"),
            Some("CredSSP-EX")
        );
    }

    #[test]
    fn split_and_truncated() {
        let ts = hex(CR);
        for cut in [1, 2, 4, 10, ts.len() - 1] {
            assert!(
                matches!(
                    Rdp.probe(&view(&ts[..cut], b"", 3389, false)),
                    Probe::NeedMore
                ),
                "cut {cut}"
            );
            assert!(matches!(
                Rdp.probe(&view(&ts[..cut], b"", 3389, true)),
                Probe::NotMine
            ));
        }
        // Confirm still arriving: wait for it.
        let tc = hex(CC);
        assert!(matches!(
            Rdp.probe(&view(&ts, &tc[..6], 3389, false)),
            Probe::NeedMore
        ));
    }

    #[test]
    fn bare_cr_only_on_3389() {
        let bare = hex("0300000b06e00000000000");
        assert!(matches!(
            Rdp.probe(&view(&bare, b"", 1503, true)),
            Probe::NotMine
        ));
        assert!(matches!(
            Rdp.probe(&view(&bare, b"", 3389, true)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn other_tpkt_users_are_not_rdp() {
        // X.400 / S7: CR with TSAP parameters.
        let tsap = hex("0300001611e00000000100c0010ac1020100c2020102");
        assert!(matches!(
            Rdp.probe(&view(&tsap, b"", 102, true)),
            Probe::NotMine
        ));
        // H.323 SETUP.
        let q931 = hex("0300000e08020001050400000000007e");
        assert!(matches!(
            Rdp.probe(&view(&q931, b"", 1720, true)),
            Probe::NotMine
        ));
        for ts in [
            &b"\x16\x03\x01\x00\x05"[..],
            b"GET / HTTP/1.1\r\n",
            b"\x05\x00\x0b\x03",
        ] {
            assert!(matches!(
                Rdp.probe(&view(ts, b"", 3389, true)),
                Probe::NotMine
            ));
        }
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let mut seed = 5u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        for i in 0..600 {
            let n = next() as usize % 64;
            let mut b: Vec<u8> = (0..n).map(|_| next()).collect();
            if b.len() >= 7 && i % 2 == 0 {
                b[0] = 3;
                b[1] = 0;
                b[2] = 0;
                b[3] = b.len() as u8;
                b[4] = (b.len() - 5) as u8;
                b[5] = [0xe0, 0xd0][i % 4 / 2];
            }
            for last in [false, true] {
                let _ = Rdp.probe(&view(&b, &b, 3389, last));
            }
        }
        let huge = hex("0300ffff25e0");
        let _ = Rdp.probe(&view(&huge, b"", 3389, false));
    }
}
