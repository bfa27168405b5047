//! Syslog over UDP, and over TCP with octet counting or LF framing (RFC 6587): `<PRI>` then
//! an RFC 5424 or RFC 3164 header or plain text; facility and severity, never the message.

use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Syslog;

const MONTHS: &[&[u8]] = &[
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// How the text after `<PRI>` looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// RFC 5424: version 1, then a full-date timestamp or "-".
    Rfc5424,
    /// RFC 3164: "Mmm dd hh:mm:ss".
    Rfc3164,
    /// Printable text only (Cisco sequence numbers, NetScreen, FortiGate, tags...).
    Text,
}

#[derive(Debug)]
enum Parsed {
    Empty,
    Prefix,
    Bad,
    Msg { pri: u8, form: Form },
}

/// `<PRI>` with PRI 0..=191 in 1 to 3 digits, no leading zero. Returns PRI and what follows.
fn read_pri(b: &[u8]) -> Result<(u8, &[u8]), bool> {
    // Err(true): could still become a PRI; Err(false): cannot.
    if b.first() != Some(&b'<') {
        return Err(false);
    }
    let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > 3 || (digits > 1 && b[1] == b'0') {
        return Err(false);
    }
    match b.get(1 + digits) {
        None => Err(true),
        Some(b'>') if digits > 0 => {
            let v: u32 = b[1..1 + digits]
                .iter()
                .fold(0, |a, &c| a * 10 + (c - b'0') as u32);
            if v > 191 {
                return Err(false);
            }
            Ok((v as u8, &b[2 + digits..]))
        }
        Some(_) => Err(false),
    }
}

fn digits(b: &[u8], n: usize) -> bool {
    b.len() >= n && b[..n].iter().all(u8::is_ascii_digit)
}

/// "Mmm dd hh:mm:ss" (day space-padded).
fn rfc3164_time(b: &[u8]) -> bool {
    b.len() >= 15
        && MONTHS.contains(&&b[..3])
        && b[3] == b' '
        && (b[4] == b' ' || b[4].is_ascii_digit())
        && b[5].is_ascii_digit()
        && b[6] == b' '
        && digits(&b[7..], 2)
        && b[9] == b':'
        && digits(&b[10..], 2)
        && b[12] == b':'
        && digits(&b[13..], 2)
}

/// Text a syslog message body is made of: printable ASCII, tab, UTF-8 bytes, line breaks
/// (multi-line messages exist), and at the end NUL (some senders terminate datagrams so).
fn texty(b: &[u8]) -> bool {
    let body = b
        .iter()
        .rposition(|&c| c != 0)
        .map_or(&b[..0], |i| &b[..=i]);
    body.iter()
        .all(|&c| matches!(c, b'\t' | b'\n' | b'\r') || c >= 0x20 && c != 0x7f)
}

/// One message; `b` is the whole datagram or one framed TCP message (`complete`), or the
/// first part of a TCP message still arriving.
fn parse_msg(b: &[u8], complete: bool) -> Parsed {
    let short = if complete {
        Parsed::Bad
    } else {
        Parsed::Prefix
    };
    let (pri, rest) = match read_pri(b) {
        Ok(x) => x,
        Err(true) => return short,
        Err(false) => return Parsed::Bad,
    };
    if !texty(rest) {
        return Parsed::Bad;
    }
    let form = if rest.starts_with(b"1 ")
        && (rest.get(2) == Some(&b'-') || (digits(&rest[2..], 4) && rest.get(6) == Some(&b'-')))
    {
        Form::Rfc5424
    } else if rfc3164_time(rest) {
        Form::Rfc3164
    } else {
        // Plain text must at least look like words: a short run of text is not enough.
        let letters = rest.iter().filter(|c| c.is_ascii_alphabetic()).count();
        if rest.len() < 8 || letters < 4 {
            return short;
        }
        if !complete {
            // Wait for the end of a weak message.
            return Parsed::Prefix;
        }
        Form::Text
    };
    Parsed::Msg { pri, form }
}

/// Longest TCP message head judged before its end has arrived.
const MAX_PARTIAL: usize = 2048;

/// A TCP stream: octet-counted ("LEN SP <PRI>...") or non-transparent (LF-terminated).
fn parse_stream(b: &[u8]) -> Parsed {
    if b.is_empty() {
        return Parsed::Empty;
    }
    if b[0].is_ascii_digit() && b[0] != b'0' {
        let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
        if n > 5 {
            return Parsed::Bad;
        }
        let Some(&sp) = b.get(n) else {
            return Parsed::Prefix;
        };
        let len: usize = b[..n].iter().fold(0, |a, &c| a * 10 + (c - b'0') as usize);
        if sp != b' ' || len < 4 {
            return Parsed::Bad;
        }
        let msg = &b[n + 1..];
        return match msg.get(..len) {
            Some(m) => parse_msg(m, true),
            None => parse_msg(msg, msg.len() >= MAX_PARTIAL),
        };
    }
    match memchr::memchr(b'\n', b) {
        Some(i) => parse_msg(&b[..i], true),
        None => parse_msg(b, b.len() >= MAX_PARTIAL),
    }
}

impl Detector for Syslog {
    fn name(&self) -> &'static str {
        "syslog"
    }

    fn protocol(&self) -> &'static str {
        "syslog"
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let udp = p.is_udp();
        // Syslog flows one way. The originator guess can put the sender on the responder
        // side (a sender using source port 514 towards an ephemeral port): use the side
        // that talks.
        let (b, from_orig, other) = if p.ts.is_empty() && !p.tc.is_empty() {
            (p.tc, false, p.ts)
        } else {
            (p.ts, true, p.tc)
        };
        let parsed = if b.is_empty() {
            Parsed::Empty
        } else if udp {
            parse_msg(b, true)
        } else {
            parse_stream(b)
        };
        let (pri, form) = match parsed {
            Parsed::Msg { pri, form } => (pri, form),
            Parsed::Bad => return Probe::NotMine,
            _ if p.last_chance => return Probe::NotMine,
            _ => return Probe::NeedMore,
        };
        // Plain text after `<PRI>` is the weakest form: over UDP it must repeat in the
        // sender's next datagram, or the syslog port breaks the tie (tie-breaker only).
        if form == Form::Text && udp {
            let again = p
                .datagrams
                .iter()
                .filter(|d| d.from_orig == from_orig)
                .nth(1)
                .is_some_and(|d| matches!(read_pri(d.bytes()), Ok(_) | Err(true)));
            let on_port = p.server_port == 514 || p.client_port == 514;
            if !again && !on_port {
                return if p.last_chance {
                    Probe::NotMine
                } else {
                    Probe::NeedMore
                };
            }
        }
        // Nothing answers syslog, except a peer that logs back (514 <-> 514).
        if !other.is_empty() {
            let back = if udp {
                parse_msg(other, true)
            } else {
                parse_stream(other)
            };
            if matches!(back, Parsed::Bad) {
                return Probe::NotMine;
            }
        }
        let what = match form {
            Form::Rfc5424 => "RFC 5424",
            Form::Rfc3164 => "RFC 3164",
            Form::Text => "text",
        };
        let framing = if udp {
            ""
        } else if b[0] == b'<' {
            " over TCP (LF framing)"
        } else {
            " over TCP (octet counting)"
        };
        let (facility, severity) = (pri >> 3, pri & 7);
        Probe::Mine(Detection {
            reversed: false,
            protocol: "syslog",
            service: None,
            confidence: Confidence::Payload,
            evidence: format!("syslog <{pri}> {what} message{framing}"),
            fields: vec![
                ("exwatch.syslog.facility", facility.to_string()),
                ("exwatch.syslog.severity", severity.to_string()),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::detector::DatagramHead;

    // syslog.pcap: a pfSense RFC 5424 message, an RFC 3164 kernel message and a Cisco line.
    const R5424: &[u8] = b"<45>1 2022-03-02T12:39:47.689392-01:00 pfSense.localdomain suricata 37046 - - {\"timestamp\": \"2022-03-02T12:39:47.561523-0100\"}";
    const R3164: &[u8] = b"<6>Mar  9 04:44:27 NDC3CLNDMVA22 kernel: IPv6: ADDRCONF(NETDEV_UP): eth0: link is not ready";
    const CISCO: &[u8] = b"<189>72: Mar  3 19:57:17.371: %LINK-5-CHANGED: Interface GigabitEthernet0/2, changed state to administratively down";

    fn head(from_orig: bool, b: &[u8]) -> DatagramHead {
        DatagramHead::new(from_orig, b, b.len() as u32)
    }

    fn udp<'a>(ts: &'a [u8], heads: &'a [DatagramHead], port: u16, last: bool) -> Payloads<'a> {
        Payloads {
            transport: 17,
            ts,
            tc: b"",
            datagrams: heads,
            server_port: port,
            client_port: 50080,
            last_chance: last,
        }
    }

    fn tcp<'a>(ts: &'a [u8], last: bool) -> Payloads<'a> {
        Payloads {
            transport: 6,
            ..udp(ts, &[], 52173, last)
        }
    }

    #[test]
    fn rfc5424_and_3164_on_any_port() {
        let heads = [head(true, R5424)];
        let Probe::Mine(d) = Syslog.probe(&udp(R5424, &heads, 11000, false)) else {
            panic!()
        };
        assert_eq!(d.evidence, "syslog <45> RFC 5424 message");
        assert_eq!(
            d.fields,
            vec![
                ("exwatch.syslog.facility", "5".to_string()),
                ("exwatch.syslog.severity", "5".to_string())
            ]
        );
        assert!(!format!("{d:?}").contains("suricata"));
        let heads = [head(true, R3164)];
        let Probe::Mine(d) = Syslog.probe(&udp(R3164, &heads, 40000, false)) else {
            panic!()
        };
        assert_eq!(d.evidence, "syslog <6> RFC 3164 message");
    }

    #[test]
    fn plain_text_needs_the_port_or_a_second_datagram() {
        let heads = [head(true, CISCO)];
        assert!(matches!(
            Syslog.probe(&udp(CISCO, &heads, 514, false)),
            Probe::Mine(_)
        ));
        assert!(matches!(
            Syslog.probe(&udp(CISCO, &heads, 40000, false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Syslog.probe(&udp(CISCO, &heads, 40000, true)),
            Probe::NotMine
        ));
        let heads = [head(true, CISCO), head(true, b"<190>73: Mar  3 19:57:18")];
        assert!(matches!(
            Syslog.probe(&udp(CISCO, &heads, 40000, false)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn tcp_framings_and_split() {
        let lf = b"<22>1 2021-04-18T14:51:48+04:00 iPhone7,2 com.dts.freefireth - - - [1.60.1]\n";
        // Until the version and the year's dash are in, more is needed.
        for cut in 1..11 {
            assert!(
                matches!(Syslog.probe(&tcp(&lf[..cut], false)), Probe::NeedMore),
                "cut {cut}"
            );
        }
        let Probe::Mine(d) = Syslog.probe(&tcp(lf, false)) else {
            panic!()
        };
        assert!(d.evidence.ends_with("(LF framing)"), "{}", d.evidence);
        let counted = b"63 <22>1 2021-04-18T14:51:48+04:00 host app - - - hello there x";
        let Probe::Mine(d) = Syslog.probe(&tcp(counted, false)) else {
            panic!()
        };
        assert!(d.evidence.ends_with("(octet counting)"), "{}", d.evidence);
        assert!(matches!(
            Syslog.probe(&tcp(&counted[..10], false)),
            Probe::NeedMore
        ));
    }

    #[test]
    fn truncated_and_hostile() {
        for b in [
            &b"<"[..],
            b"<1",
            b"<192>Mar  9 04:44:27 host x",
            b"<0012>x",
            b"<>hello world",
            b"<13>\x00\x01\x02\x03binary data here",
        ] {
            let heads = [head(true, b)];
            assert!(
                matches!(Syslog.probe(&udp(b, &heads, 514, true)), Probe::NotMine),
                "{b:?}"
            );
        }
        assert!(matches!(
            Syslog.probe(&tcp(b"99999999 <13>x", true)),
            Probe::NotMine
        ));
        let mut x: u32 = 11;
        let mut buf = [0u8; 64];
        for round in 0..600 {
            for b in buf.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = (x >> 16) as u8;
            }
            if round % 2 == 0 {
                buf[..4].copy_from_slice(b"<13>");
            }
            let n = (x as usize >> 8) % buf.len();
            let heads = [head(true, &buf[..n])];
            let _ = Syslog.probe(&udp(&buf[..n], &heads, 514, round % 3 == 0));
            let _ = Syslog.probe(&tcp(&buf[..n], round % 3 == 0));
        }
    }

    #[test]
    fn other_protocols_are_not_syslog() {
        for b in [
            &b"<?xml version=\"1.0\"?><a/>"[..],
            b"<html><body>hello</body></html>",
            b"GET / HTTP/1.1\r\n\r\n",
            b"RSIP 262662134 *@vg224 MGCP 0.1\nRM: graceful\n",
        ] {
            let heads = [head(true, b)];
            assert!(
                matches!(Syslog.probe(&udp(b, &heads, 514, false)), Probe::NotMine),
                "{b:?}"
            );
        }
    }
}
