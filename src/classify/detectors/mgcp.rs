//! MGCP (RFC 3435) over UDP: a command line `VERB transaction-id endpoint MGCP x.y`, or a
//! response line `code transaction-id` matching a command in the other direction.

use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Mgcp;

const VERBS: &[&str] = &[
    "EPCF", "CRCX", "MDCX", "DLCX", "RQNT", "NTFY", "AUEP", "AUCX", "RSIP", "MESG",
];

/// The first line of a datagram: MGCP ends lines with LF, CR LF, or (seen in the wild) a
/// lone CR.
fn first_line(b: &[u8]) -> Option<&[u8]> {
    let end = b.iter().position(|&c| c == b'\n' || c == b'\r')?;
    Some(&b[..end])
}

/// Transaction ids are 1 to 9 digits (RFC 3435 3.2.1.2: 1..999999999).
fn transaction_id(t: &[u8]) -> Option<u32> {
    if t.is_empty() || t.len() > 9 || !t.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(t).ok()?.parse().ok()
}

/// A command line: returns the verb and the transaction id.
fn command(line: &[u8]) -> Option<(&'static str, u32)> {
    let mut it = line
        .split(|&c| c == b' ' || c == b'\t')
        .filter(|t| !t.is_empty());
    let verb = it.next()?;
    let verb = VERBS.iter().find(|v| v.as_bytes() == verb).copied()?;
    let tid = transaction_id(it.next()?)?;
    let endpoint = it.next()?;
    // Endpoint names are local@domain, possibly with wildcards.
    if !endpoint.contains(&b'@') || !endpoint.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    let (proto, version) = (it.next()?, it.next()?);
    let v_ok = version.len() == 3
        && version[0].is_ascii_digit()
        && version[1] == b'.'
        && version[2].is_ascii_digit();
    (proto == b"MGCP" && v_ok).then_some((verb, tid))
}

/// A response line: returns the code and the transaction id.
fn response(line: &[u8]) -> Option<(u16, u32)> {
    let mut it = line.split(|&c| c == b' ').filter(|t| !t.is_empty());
    let code = it.next()?;
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let tid = transaction_id(it.next()?)?;
    let code: u16 = std::str::from_utf8(code).ok()?.parse().ok()?;
    crate::classify::detector::text::is_text(line).then_some((code, tid))
}

impl Detector for Mgcp {
    fn name(&self) -> &'static str {
        "mgcp"
    }

    fn protocol(&self) -> &'static str {
        "mgcp"
    }

    fn tcp(&self) -> bool {
        false
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        // Either side may send commands (call agent and gateway both do).
        let ts = first_line(p.ts);
        let tc = first_line(p.tc);
        let cmd = ts.and_then(command).or_else(|| tc.and_then(command));
        let resp = ts.and_then(response).or_else(|| tc.and_then(response));
        let refused = |b: &[u8], l: Option<&[u8]>| {
            !b.is_empty() && l.is_none_or(|l| command(l).is_none() && response(l).is_none())
        };
        if refused(p.ts, ts) || refused(p.tc, tc) {
            return Probe::NotMine;
        }
        let evidence = match (cmd, resp) {
            (Some((verb, tid)), Some((code, rtid))) if tid == rtid => {
                format!("MGCP {verb} command and {code} response")
            }
            (Some((verb, _)), _) => format!("MGCP {verb} command"),
            (None, Some((code, _))) => {
                // A response line alone is three digits and a number: only the MGCP ports
                // break the tie (tie-breaker only).
                let ports = [2427, 2727];
                if !ports.contains(&p.server_port) && !ports.contains(&p.client_port) {
                    return if p.last_chance {
                        Probe::NotMine
                    } else {
                        Probe::NeedMore
                    };
                }
                format!("MGCP {code} response")
            }
            (None, None) => {
                return if p.last_chance {
                    Probe::NotMine
                } else {
                    Probe::NeedMore
                }
            }
        };
        let mut fields = Vec::new();
        if let Some((verb, _)) = cmd {
            fields.push(("exwatch.mgcp.verb", verb.to_string()));
        }
        Probe::Mine(Detection {
            reversed: false,
            protocol: "mgcp",
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

    // mgcp.pcap: a Cisco VG224 restart and the call agent's answer; a CR-only request.
    const RSIP: &[u8] = b"RSIP 262662134 *@vg224 MGCP 0.1\nRM: graceful\nRD: 0\n";
    const OK: &[u8] = b"200 262662134 \n";
    const RQNT_CR: &[u8] = b"RQNT 1 *@gateway44.myplace.com MGCP 0.1\rR: l/hd(n)\rX: 1\r";

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], port: u16, last: bool) -> Payloads<'a> {
        Payloads {
            transport: 17,
            ts,
            tc,
            datagrams: &[],
            server_port: port,
            client_port: 40798,
            last_chance: last,
        }
    }

    #[test]
    fn command_and_response() {
        let Probe::Mine(d) = Mgcp.probe(&view(RSIP, OK, 2427, false)) else {
            panic!()
        };
        assert_eq!(d.evidence, "MGCP RSIP command and 200 response");
        assert_eq!(d.fields, vec![("exwatch.mgcp.verb", "RSIP".to_string())]);
        let Probe::Mine(d) = Mgcp.probe(&view(RQNT_CR, b"", 40000, false)) else {
            panic!()
        };
        assert_eq!(d.evidence, "MGCP RQNT command");
    }

    #[test]
    fn response_alone_needs_the_port() {
        assert!(matches!(
            Mgcp.probe(&view(b"", OK, 2427, false)),
            Probe::Mine(_)
        ));
        assert!(matches!(
            Mgcp.probe(&view(b"", OK, 40000, false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Mgcp.probe(&view(b"", OK, 40000, true)),
            Probe::NotMine
        ));
        // The command it answers arrives: decided on any port.
        let Probe::Mine(d) = Mgcp.probe(&view(RSIP, OK, 40000, false)) else {
            panic!()
        };
        assert_eq!(d.evidence, "MGCP RSIP command and 200 response");
    }

    #[test]
    fn truncated_and_hostile() {
        // A datagram cut before its line end, and malformed command lines.
        for b in [
            &b"RSIP 262662134 *@vg224 MGC"[..],
            b"RSIP 1234567890 *@vg224 MGCP 1.0\n",
            b"RSIP 12 vg224 MGCP 1.0\n",
            b"RSIP 12 *@vg224 MGCP 10\n",
            b"2000 12\n",
            b"\n",
        ] {
            assert!(
                matches!(Mgcp.probe(&view(b, b"", 2427, true)), Probe::NotMine),
                "{b:?}"
            );
        }
        const ALPHABET: &[u8] = b" 0123456789@*.\r\nRSIPMGC";
        let mut x: u32 = 17;
        let mut buf = [0u8; 48];
        for round in 0..600 {
            for b in buf.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = ALPHABET[(x >> 16) as usize % ALPHABET.len()];
            }
            if round % 2 == 0 {
                buf[..5].copy_from_slice(b"CRCX ");
            }
            let n = (x as usize >> 8) % buf.len();
            let _ = Mgcp.probe(&view(&buf[..n], &buf[n..], 2427, round % 3 == 0));
        }
    }

    #[test]
    fn sip_and_syslog_are_not_mgcp() {
        for b in [
            &b"INVITE sip:bob@contoso.test SIP/2.0\r\n"[..],
            b"<189>72: Mar  3 19:57:17.371: %LINK-5-CHANGED\n",
            b"200 OK\r\n",
        ] {
            assert!(
                matches!(Mgcp.probe(&view(b, b"", 2427, false)), Probe::NotMine),
                "{b:?}"
            );
        }
    }
}
