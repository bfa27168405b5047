//! DNS over UDP and TCP (2-byte length prefix), mDNS and LLMNR: a sane header and a
//! well-formed first question; question name and type, response code.

use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Dns;

const HEADER: usize = 12;
/// More questions than this is not something resolvers send (mDNS queries batch a few).
const MAX_QUESTIONS: u16 = 16;
/// Compression pointers followed before a name is refused (they must also point backwards,
/// so this is only a bound on work).
const MAX_JUMPS: usize = 16;

#[derive(Debug)]
enum Parsed {
    Empty,
    Prefix,
    Bad,
    Msg(Msg),
}

#[derive(Debug)]
struct Msg {
    id: u16,
    response: bool,
    rcode: u8,
    /// First question (None for an answer-only mDNS announcement).
    question: Option<(String, u16)>,
}

/// A name at `off` in `msg` (of declared length `len`, of which `msg.len()` bytes are here).
/// Returns the lowercased name and the offset after it, `Err(true)` when the buffer ends
/// inside it, `Err(false)` when it is malformed.
fn name(msg: &[u8], len: usize, mut off: usize) -> Result<(String, usize), bool> {
    let mut out: Vec<u8> = Vec::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        if off >= len {
            return Err(false);
        }
        let &l = msg.get(off).ok_or(true)?;
        match l {
            0 => {
                break;
            }
            1..=63 => {
                let label = msg.get(off + 1..off + 1 + l as usize);
                let Some(label) = label else {
                    return Err(off + 1 + (l as usize) < len);
                };
                // Names are text (LDH, underscores, UTF-8 in mDNS), never control bytes.
                if label.iter().any(|&c| c < 0x20 || c == 0x7f) {
                    return Err(false);
                }
                if out.len() + label.len() + 1 > 255 {
                    return Err(false);
                }
                if !out.is_empty() {
                    out.push(b'.');
                }
                out.extend(label.iter().map(|c| c.to_ascii_lowercase()));
                off += 1 + l as usize;
            }
            0xc0..=0xff => {
                let &lo = msg.get(off + 1).ok_or(true)?;
                let target = (((l & 0x3f) as usize) << 8) | lo as usize;
                // Only backwards, past the header: no loops, bounded work.
                if target < HEADER || target >= off || jumps >= MAX_JUMPS {
                    return Err(false);
                }
                jumps += 1;
                end.get_or_insert(off + 2);
                off = target;
            }
            _ => return Err(false), // 0x40 / 0x80: obsolete or reserved label types
        }
    }
    let after = end.unwrap_or(off + 1);
    let s = if out.is_empty() {
        ".".to_string()
    } else {
        String::from_utf8_lossy(&out).into_owned()
    };
    Ok((s, after))
}

fn class_ok(class: u16) -> bool {
    // IN, CH, HS, NONE (updates), ANY; mDNS uses the top bit (unicast / cache flush).
    matches!(class & 0x7fff, 1 | 3 | 4 | 254 | 255)
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(off)?, *b.get(off + 1)?]))
}

/// Parse a DNS message whose declared (wire) length is `len`; `msg` holds its first bytes.
fn parse_msg(msg: &[u8], len: usize) -> Parsed {
    if len < HEADER + 5 {
        return Parsed::Bad;
    }
    if msg.len() < HEADER {
        return Parsed::Prefix;
    }
    let u = |o: usize| u16::from_be_bytes([msg[o], msg[o + 1]]);
    let (id, flags) = (u(0), u(2));
    let (qd, an, ns, ar) = (u(4), u(6), u(8), u(10));
    let response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let rcode = (flags & 0xf) as u8;
    // Opcodes QUERY, IQUERY, STATUS, NOTIFY, UPDATE; the Z bit is zero; a query carries no
    // response code.
    if !matches!(opcode, 0 | 1 | 2 | 4 | 5) || flags & 0x0040 != 0 || (!response && rcode != 0) {
        return Parsed::Bad;
    }
    if qd > MAX_QUESTIONS || (qd == 0 && !(response && an > 0)) {
        return Parsed::Bad;
    }
    // Every question takes 5 bytes at least, every record 11.
    let min = HEADER + 5 * qd as usize + 11 * (an as usize + ns as usize + ar as usize);
    if min > len {
        return Parsed::Bad;
    }
    let (name, off) = match name(msg, len, HEADER) {
        Ok(x) => x,
        Err(true) => return Parsed::Prefix,
        Err(false) => return Parsed::Bad,
    };
    let fixed = if qd > 0 { 4 } else { 10 };
    if off + fixed > len {
        return Parsed::Bad;
    }
    let (Some(rtype), Some(class)) = (u16_at(msg, off), u16_at(msg, off + 2)) else {
        return Parsed::Prefix;
    };
    if rtype == 0 || !class_ok(class) {
        return Parsed::Bad;
    }
    // NetBIOS name service (RFC 1002) reuses this format: its names are one 32-byte label of
    // "first-level encoded" letters A-P, types NB (32) and NBSTAT (33). That is netbios.
    let nb_label = msg.get(HEADER) == Some(&32)
        && msg
            .get(HEADER + 1..HEADER + 33)
            .is_some_and(|l| l.iter().all(|c| (b'A'..=b'P').contains(c)));
    if nb_label && matches!(rtype, 32 | 33) {
        return Parsed::Bad;
    }
    let question = if qd > 0 {
        Some((name, rtype))
    } else {
        // Answer-only (mDNS announcement): the first record's data must fit.
        let Some(rdlen) = u16_at(msg, off + 8) else {
            return Parsed::Prefix;
        };
        if off + 10 + rdlen as usize > len {
            return Parsed::Bad;
        }
        None
    };
    Parsed::Msg(Msg {
        id,
        response,
        rcode,
        question,
    })
}

/// A direction's first bytes: a UDP datagram of `wire` bytes, or a TCP length-prefixed message.
fn parse(b: &[u8], tcp: bool, wire: Option<usize>) -> Parsed {
    if b.is_empty() {
        return Parsed::Empty;
    }
    if tcp {
        let Some(len) = u16_at(b, 0) else {
            return Parsed::Prefix;
        };
        parse_msg(&b[2..], len as usize)
    } else {
        parse_msg(b, wire.unwrap_or(b.len()))
    }
}

fn type_name(t: u16) -> String {
    let n = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        50 => "NSEC3",
        52 => "TLSA",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        _ => return t.to_string(),
    };
    n.to_string()
}

fn rcode_name(r: u8) -> String {
    let n = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return r.to_string(),
    };
    n.to_string()
}

fn wire_len(p: &Payloads<'_>, orig: bool) -> Option<usize> {
    p.datagrams
        .iter()
        .find(|d| d.from_orig == orig)
        .map(|d| d.len as usize)
}

impl Detector for Dns {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn protocol(&self) -> &'static str {
        "dns"
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let tcp = p.is_tcp();
        let ts = parse(p.ts, tcp, if tcp { None } else { wire_len(p, true) });
        let tc = parse(p.tc, tcp, if tcp { None } else { wire_len(p, false) });
        let (a, b) = match (&ts, &tc) {
            (Parsed::Msg(a), Parsed::Msg(b)) => (Some(a), Some(b)),
            (Parsed::Msg(a), other) => {
                // A query's answer brings the response code: wait for it, unless the
                // originator keeps sending without one.
                let sent = p.datagrams.iter().filter(|d| d.from_orig).count();
                if !a.response
                    && matches!(other, Parsed::Empty | Parsed::Prefix)
                    && !p.last_chance
                    && sent < 3
                {
                    return Probe::NeedMore;
                }
                (Some(a), None)
            }
            (_, Parsed::Msg(b)) => (None, Some(b)),
            // The client speaks first in DNS: refused first bytes decide.
            (Parsed::Bad, _) | (_, Parsed::Bad) => return Probe::NotMine,
            _ if p.last_chance => return Probe::NotMine,
            _ => return Probe::NeedMore,
        };
        let kind = match (p.server_port, p.client_port) {
            // Labels only: the payload already decided.
            (5353, _) | (_, 5353) => "mDNS",
            (5355, _) | (_, 5355) => "LLMNR",
            _ => "DNS",
        };
        let msgs: Vec<&Msg> = a.into_iter().chain(b).collect();
        let query = msgs.iter().find(|m| !m.response);
        let reply = msgs.iter().find(|m| m.response);
        let mut evidence = match (query, reply) {
            (Some(q), Some(r)) if q.id == r.id => format!("{kind} query and response"),
            (Some(_), Some(_)) => format!("{kind} query and response (ids differ)"),
            (Some(_), None) => format!("{kind} query"),
            _ => format!("{kind} response"),
        };
        let mut fields = Vec::new();
        if let Some((name, qtype)) = msgs.iter().find_map(|m| m.question.as_ref()) {
            let t = type_name(*qtype);
            evidence.push_str(&format!(
                ", {t} {}",
                crate::classify::detector::text::clip(name.as_bytes(), 64)
            ));
            fields.push(("dns.question.name", name.clone()));
            fields.push(("dns.question.type", t));
        }
        if let Some(r) = reply {
            let rc = rcode_name(r.rcode);
            evidence.push_str(&format!(", {rc}"));
            fields.push(("dns.response_code", rc));
        }
        if tcp {
            evidence.push_str(" over TCP");
        }
        // The guessed originator sent the answer: the query came (or would have come) from
        // the other side, which is the client (issue 15, class 8). Not for mDNS and LLMNR,
        // whose answers go unasked to a multicast group.
        let reversed =
            kind == "DNS" && a.is_some_and(|m| m.response) && b.is_none_or(|m| !m.response);
        if reversed {
            evidence.push_str(" (flow directions reversed)");
        }
        Probe::Mine(Detection {
            reversed,
            protocol: "dns",
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
    use crate::classify::detector::DatagramHead;

    // dns-udp.pcap (dig @dnsmasq): SRV _autodiscover._tcp.contoso.test with EDNS, and the
    // start of the answer (cut: the wire length says more follows).
    const SRV_Q: &[u8] = b"U\xa7\x01 \x00\x01\x00\x00\x00\x00\x00\x01\r_autodiscover\x04_tcp\x07contoso\x04test\x00\x00!\x00\x01\x00\x00)\x04\xd0\x00\x00\x00\x00\x00\x0c\x00\n\x00\x08E\xfdJ>\x0br=O";
    const SRV_R: &[u8] = b"U\xa7\x85\x80\x00\x01\x00\x01\x00\x00\x00\x03\r_autodiscover\x04_tcp\x07contoso\x04test\x00\x00!\x00\x01\xc0\x0c\x00!\x00\x01\x00\x00\x00\x00\x00\x19\x00\x00\x00\x00\x01\xbb\x04mail\x07contoso";
    // dns-tcp.pcap: A mail.contoso.test, length-prefixed.
    const TCP_Q: &[u8] = b"\x00:\x0cB\x01 \x00\x01\x00\x00\x00\x00\x00\x01\x04mail\x07contoso\x04test\x00\x00\x01\x00\x01\x00\x00)\x04\xd0\x00\x00\x00\x00\x00\x0c\x00\n\x00\x08} \xed\\r\x86\x8f\xb4";

    fn head(from_orig: bool, b: &[u8], wire: usize) -> DatagramHead {
        DatagramHead::new(from_orig, b, wire as u32)
    }

    fn udp<'a>(ts: &'a [u8], tc: &'a [u8], heads: &'a [DatagramHead], last: bool) -> Payloads<'a> {
        Payloads {
            transport: 17,
            ts,
            tc,
            datagrams: heads,
            server_port: 53,
            client_port: 55589,
            last_chance: last,
        }
    }

    fn tcp<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        Payloads {
            transport: 6,
            ..udp(ts, tc, &[], last)
        }
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    /// Issue 15, class 8: the guessed originator sent the answer (both ports ephemeral, or
    /// both 53), so the flow is to be turned around; a straight flow is not.
    #[test]
    fn answer_from_the_guessed_originator_reverses_the_flow() {
        let heads = [head(true, SRV_R, 141), head(false, SRV_Q, SRV_Q.len())];
        let Probe::Mine(d) = Dns.probe(&udp(SRV_R, SRV_Q, &heads, false)) else {
            panic!()
        };
        assert!(d.reversed, "{}", d.evidence);
        assert!(d.evidence.ends_with("(flow directions reversed)"));
        let Probe::Mine(d) = Dns.probe(&udp(SRV_R, b"", &heads[..1], true)) else {
            panic!()
        };
        assert!(d.reversed && d.evidence.starts_with("DNS response"));
        let heads = [head(true, SRV_Q, SRV_Q.len()), head(false, SRV_R, 141)];
        let Probe::Mine(d) = Dns.probe(&udp(SRV_Q, SRV_R, &heads, false)) else {
            panic!()
        };
        assert!(!d.reversed);
        // mDNS answers go unasked to a group: never turned.
        let mdns = Payloads {
            server_port: 5353,
            client_port: 5353,
            ..udp(SRV_R, b"", &heads[1..], true)
        };
        let Probe::Mine(d) = Dns.probe(&mdns) else {
            panic!()
        };
        assert!(!d.reversed, "{}", d.evidence);
    }

    #[test]
    fn query_then_response_over_udp() {
        let heads = [head(true, SRV_Q, SRV_Q.len()), head(false, SRV_R, 141)];
        assert!(matches!(
            Dns.probe(&udp(SRV_Q, b"", &heads[..1], false)),
            Probe::NeedMore
        ));
        let Probe::Mine(d) = Dns.probe(&udp(SRV_Q, SRV_R, &heads, false)) else {
            panic!()
        };
        assert_eq!(
            field(&d, "dns.question.name"),
            Some("_autodiscover._tcp.contoso.test")
        );
        assert_eq!(field(&d, "dns.question.type"), Some("SRV"));
        assert_eq!(field(&d, "dns.response_code"), Some("NOERROR"));
        assert_eq!(
            d.evidence,
            "DNS query and response, SRV _autodiscover._tcp.contoso.test, NOERROR"
        );
        // No answer ever came.
        assert!(matches!(
            Dns.probe(&udp(SRV_Q, b"", &heads[..1], true)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn tcp_length_prefix_and_split() {
        for cut in 1..TCP_Q.len() - 30 {
            assert!(
                matches!(Dns.probe(&tcp(&TCP_Q[..cut], b"", false)), Probe::NeedMore),
                "cut {cut}"
            );
        }
        let Probe::Mine(d) = Dns.probe(&tcp(TCP_Q, b"", true)) else {
            panic!()
        };
        assert_eq!(field(&d, "dns.question.name"), Some("mail.contoso.test"));
        assert_eq!(field(&d, "dns.question.type"), Some("A"));
        assert!(d.evidence.ends_with("over TCP"));
        // Truncated for good: the name never ends.
        assert!(matches!(
            Dns.probe(&tcp(&TCP_Q[..20], b"", true)),
            Probe::NotMine
        ));
    }

    #[test]
    fn mdns_announcement_without_question() {
        // Response, 0 questions, 1 answer: "a.local" A 10.0.0.1.
        let m = b"\x00\x00\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01a\x05local\x00\x00\x01\x80\x01\x00\x00\x00\x78\x00\x04\x0a\x00\x00\x01";
        let heads = [head(true, m, m.len())];
        let p = Payloads {
            server_port: 5353,
            client_port: 5353,
            ..udp(m, b"", &heads, false)
        };
        let Probe::Mine(d) = Dns.probe(&p) else {
            panic!()
        };
        assert_eq!(d.evidence, "mDNS response, NOERROR");
    }

    #[test]
    fn compression_loops_and_hostile_names() {
        let mut bad = vec![0u8, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        bad.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01"); // points at itself
        let heads = [head(true, &bad, bad.len())];
        assert!(matches!(
            Dns.probe(&udp(&bad, b"", &heads, true)),
            Probe::NotMine
        ));
        let mut long = vec![0u8, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.extend_from_slice(b"\x00\x00\x01\x00\x01");
        let heads = [head(true, &long, long.len())];
        assert!(matches!(
            Dns.probe(&udp(&long, b"", &heads, true)),
            Probe::NotMine
        ));
        // Counts that cannot fit in the datagram.
        let mut counts = SRV_Q.to_vec();
        counts[7] = 200;
        let heads = [head(true, &counts, counts.len())];
        assert!(matches!(
            Dns.probe(&udp(&counts, b"", &heads, true)),
            Probe::NotMine
        ));
    }

    #[test]
    fn netbios_name_service_is_not_dns() {
        // netbios.pcap: NBNS name query (broadcast) and node status request.
        for q in [
            &b"\xa7I\x01\x10\x00\x01\x00\x00\x00\x00\x00\x00 FIFDFEFCEFEBENFPEIFJCACACACACAAA\x00\x00 \x00\x01"[..],
            b" \xa8\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00 CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00\x00!\x00\x01",
        ] {
            let heads = [head(true, q, q.len())];
            let p = Payloads {
                server_port: 137,
                client_port: 137,
                ..udp(q, b"", &heads, false)
            };
            assert!(matches!(Dns.probe(&p), Probe::NotMine));
        }
    }

    #[test]
    fn random_bytes_do_not_panic() {
        let mut x: u32 = 99;
        let mut buf = [0u8; 80];
        for round in 0..800 {
            for b in buf.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = (x >> 16) as u8;
            }
            if round % 2 == 0 {
                buf[..6].copy_from_slice(&[0, 60, 1, 0, 0, 1]);
                buf[12] = (round % 70) as u8;
            }
            let n = (x as usize >> 8) % buf.len();
            let heads = [head(true, &buf[..n], n + (round % 5))];
            let _ = Dns.probe(&udp(&buf[..n], &buf[n..], &heads, round % 3 == 0));
            let _ = Dns.probe(&tcp(&buf[..n], &buf[n..], round % 3 == 0));
        }
    }

    #[test]
    fn other_protocols_are_not_dns() {
        let ntp = b"\xe3\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xee\xafz\xc7\x1c\xa8\x98\x00";
        let heads = [head(true, ntp, ntp.len())];
        assert!(matches!(
            Dns.probe(&udp(ntp, b"", &heads, false)),
            Probe::NotMine
        ));
        let snmp =
            b"07\x02\x01\x01\x04\x06public\xa0*\x02\x04@\x0b8\x8e\x02\x01\x00\x02\x01\x000\x1c";
        let heads = [head(true, snmp, 57)];
        assert!(matches!(
            Dns.probe(&udp(snmp, b"", &heads, false)),
            Probe::NotMine
        ));
        assert!(matches!(
            Dns.probe(&tcp(b"GET / HTTP/1.1\r\n\r\n", b"", false)),
            Probe::NotMine
        ));
    }
}
