//! NetBIOS over TCP/IP (RFC 1001/1002): session service (TCP, 139) with the SMB it carries,
//! name service (UDP 137) and datagram service (UDP 138).
//!
//! NetBIOS names are host, domain and workgroup names (never user names in these fields),
//! so the decoded name is recorded.

use super::smb;
use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

/// A decoded NetBIOS name: 15 characters (trailing spaces dropped) and the suffix byte,
/// written `NAME<20>`.
fn format_name(raw: &[u8; 16]) -> String {
    let base = &raw[..15];
    let end = base
        .iter()
        .rposition(|&c| c != b' ' && c != 0)
        .map_or(0, |i| i + 1);
    let text: String = base[..end]
        .iter()
        .map(|&c| {
            if (0x21..0x7f).contains(&c) || c == b' ' {
                c as char
            } else {
                '.'
            }
        })
        .collect();
    format!("{text}<{:02x}>", raw[15])
}

/// An encoded name ([RFC 1002] 4.1, "second-level encoding"): a 32-byte label of
/// 'A'..='P' half-bytes, then scope labels, then a zero byte. Returns the 16 raw bytes and
/// the encoded length. A compression pointer is refused (never used for the first name).
fn encoded_name(b: &[u8]) -> Option<([u8; 16], usize)> {
    if *b.first()? != 0x20 {
        return None;
    }
    let label = b.get(1..33)?;
    if !label.iter().all(|c| (b'A'..=b'P').contains(c)) {
        return None;
    }
    let mut raw = [0u8; 16];
    for (i, pair) in label.chunks(2).enumerate() {
        raw[i] = ((pair[0] - b'A') << 4) | (pair[1] - b'A');
    }
    // Scope: ordinary labels up to 63 bytes, whole name at most 255.
    let mut at = 33;
    loop {
        let l = usize::from(*b.get(at)?);
        if l == 0 {
            return Some((raw, at + 1));
        }
        if l > 63 || at + 1 + l > 255 {
            return None;
        }
        at += 1 + l;
    }
}

/// Whether `b` could be the start of an encoded name (for split segments).
fn encoded_name_prefix(b: &[u8]) -> bool {
    match b.split_first() {
        None => true,
        Some((&0x20, rest)) => rest.iter().take(32).all(|c| (b'A'..=b'P').contains(c)),
        Some(_) => false,
    }
}

fn detection(
    protocol: &'static str,
    evidence: String,
    fields: Vec<(&'static str, String)>,
) -> Probe {
    Probe::Mine(Detection {
        reversed: false,
        protocol,
        service: None,
        confidence: Confidence::Payload,
        evidence,
        fields,
    })
}

// Session service packet types ([RFC 1002] 4.3.1).
const SESSION_REQUEST: u8 = 0x81;
const POSITIVE_RESPONSE: u8 = 0x82;
const NEGATIVE_RESPONSE: u8 = 0x83;
const RETARGET_RESPONSE: u8 = 0x84;

/// A session service packet header: type, flags (only the length-extension bit 0x01 is
/// defined), 16-bit length; returns (type, total length).
fn session_packet(b: &[u8]) -> Option<(u8, usize)> {
    let t = *b.first()?;
    let flags = *b.get(1)?;
    if flags & !1 != 0 {
        return None;
    }
    let len =
        (usize::from(flags & 1) << 16) | usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
    Some((t, 4 + len))
}

fn negative_reason(code: u8) -> &'static str {
    match code {
        0x80 => "not listening on called name",
        0x81 => "not listening for calling name",
        0x82 => "called name not present",
        0x83 => "called name present, but insufficient resources",
        0x8f => "unspecified error",
        _ => "unknown error",
    }
}

/// The session service on TCP: a session request with two names, the server's answer, and
/// then session messages (SMB, reported as such).
fn probe_session(p: &Payloads<'_>) -> Probe {
    let undecided = if p.last_chance {
        Probe::NotMine
    } else {
        Probe::NeedMore
    };
    let ts = p.ts;
    match ts.first() {
        None => return undecided,
        Some(&SESSION_REQUEST) => {}
        Some(_) => return Probe::NotMine,
    }
    let Some((_, req_len)) = session_packet(ts) else {
        return if ts.len() < 4 && ts.get(1).is_none_or(|&f| f & !1 == 0) {
            undecided
        } else {
            Probe::NotMine
        };
    };
    let Some(body) = ts.get(4..req_len) else {
        // Incomplete: still plausible while the names so far are well-formed.
        let have = &ts[4.min(ts.len())..];
        return if (4 + 2 * 34..=4 + 2 * 255).contains(&req_len) && encoded_name_prefix(have) {
            undecided
        } else {
            Probe::NotMine
        };
    };
    let Some((called, n1)) = encoded_name(body) else {
        return Probe::NotMine;
    };
    let Some((calling, n2)) = body.get(n1..).and_then(encoded_name) else {
        return Probe::NotMine;
    };
    if n1 + n2 != body.len() {
        return Probe::NotMine;
    }
    let mut fields = vec![
        ("exwatch.netbios.service", "session".to_string()),
        ("exwatch.netbios.name", format_name(&called)),
        ("exwatch.netbios.calling_name", format_name(&calling)),
    ];
    let base = format!(
        "NetBIOS session request to {} from {}",
        format_name(&called),
        format_name(&calling)
    );
    let tc = p.tc;
    let Some((rt, resp_len)) = session_packet(tc) else {
        return if p.last_chance {
            detection("netbios", base, fields)
        } else {
            Probe::NeedMore
        };
    };
    let Some(resp) = tc.get(..resp_len) else {
        return if p.last_chance {
            detection("netbios", base, fields)
        } else {
            Probe::NeedMore
        };
    };
    match rt {
        POSITIVE_RESPONSE if resp_len == 4 => {}
        NEGATIVE_RESPONSE if resp_len == 5 => {
            return detection(
                "netbios",
                format!(
                    "{base}; negative session response: {}",
                    negative_reason(resp[4])
                ),
                fields,
            );
        }
        RETARGET_RESPONSE if resp_len == 10 => {
            return detection("netbios", format!("{base}; retarget response"), fields);
        }
        _ => {
            return detection(
                "netbios",
                format!("{base}; server reply not a session response"),
                fields,
            )
        }
    }
    match smb::scan(&ts[req_len..], &tc[resp_len..], p.last_chance) {
        smb::Scan::Smb(s) => {
            fields.extend(smb::fields(&s));
            detection(
                "smb",
                format!("SMB inside NetBIOS session: {}; {base}", smb::describe(&s)),
                fields,
            )
        }
        smb::Scan::Partial if !p.last_chance => Probe::NeedMore,
        _ => detection(
            "netbios",
            format!("{base}; positive session response, no SMB seen"),
            fields,
        ),
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ns_opcode(op: u16) -> Option<&'static str> {
    Some(match op {
        0 => "query",
        5 => "registration",
        6 => "release",
        7 => "wack",
        8 | 9 => "refresh",
        15 => "multi-homed registration",
        _ => return None,
    })
}

/// A name service packet ([RFC 1002] 4.2): DNS-shaped, but the first name is an encoded
/// NetBIOS name and the type NB (0x20) or NBSTAT (0x21), class IN. The 32-letter A-P
/// label with those types is what keeps DNS out (an SRV query would need such a label).
fn name_service(b: &[u8]) -> Option<(String, Vec<(&'static str, String)>)> {
    let flags = be16(b, 2)?;
    let response = flags & 0x8000 != 0;
    let op = ns_opcode((flags >> 11) & 0xf)?;
    // NM_FLAGS bits 0x0060 are reserved zeros; RCODE is 0..=7.
    if flags & 0x0060 != 0 || flags & 0xf > 7 {
        return None;
    }
    let (qd, an, ns, ar) = (be16(b, 4)?, be16(b, 6)?, be16(b, 8)?, be16(b, 10)?);
    if qd > 1 || an > 1 || ns > 1 || ar > 1 || qd + an == 0 {
        return None;
    }
    let (raw, n) = encoded_name(b.get(12..)?)?;
    let rtype = be16(b, 12 + n)?;
    let class = be16(b, 14 + n)?;
    if !matches!(rtype, 0x20 | 0x21) || class != 1 {
        return None;
    }
    let mut name = format_name(&raw);
    // A node status reply to the wildcard "*" lists the node's own names: take the first.
    if rtype == 0x21 && response && qd == 0 && raw[0] == b'*' {
        let rdata = 12 + n + 10;
        if b.get(rdata).is_some_and(|&k| k > 0) {
            if let Some(first) = b.get(rdata + 1..rdata + 17) {
                let mut r = [0u8; 16];
                r.copy_from_slice(first);
                name = format_name(&r);
            }
        }
    }
    let what = format!(
        "{}{}{}",
        if rtype == 0x21 {
            "node status "
        } else {
            "name "
        },
        op,
        if response { " response" } else { " request" }
    );
    let fields = vec![
        ("exwatch.netbios.service", "name".to_string()),
        ("exwatch.netbios.name", name.clone()),
        ("exwatch.netbios.operation", what.clone()),
    ];
    Some((format!("NetBIOS name service {what} for {name}"), fields))
}

/// A datagram service packet ([RFC 1002] 4.4): type 0x10-0x16, reserved flag bits clear,
/// and for the data types a length that matches the datagram and two encoded names.
fn datagram_service(b: &[u8], wire: usize) -> Option<(String, Vec<(&'static str, String)>)> {
    let t = *b.first()?;
    let flags = *b.get(1)?;
    if flags & 0xf0 != 0 {
        return None;
    }
    let kind = match t {
        0x10 => "direct unique",
        0x11 => "direct group",
        0x12 => "broadcast",
        0x13 => "error",
        0x14 => "query request",
        0x15 => "positive query response",
        0x16 => "negative query response",
        _ => return None,
    };
    let mut fields = vec![("exwatch.netbios.service", "datagram".to_string())];
    match t {
        0x10..=0x12 => {
            let dgm_len = usize::from(be16(b, 10)?);
            // Only the first fragment (offset 0) carries the names.
            if 14 + dgm_len != wire || be16(b, 12)? != 0 {
                return None;
            }
            let (src, n1) = encoded_name(b.get(14..)?)?;
            let (dst, n2) = encoded_name(b.get(14 + n1..)?)?;
            let data = b.get(14 + n1 + n2..).unwrap_or_default();
            let smb = if data.starts_with(b"\xffSMB") {
                " (SMB mailslot)"
            } else {
                ""
            };
            fields.push(("exwatch.netbios.name", format_name(&src)));
            fields.push(("exwatch.netbios.destination_name", format_name(&dst)));
            Some((
                format!(
                    "NetBIOS datagram service {kind} from {} to {}{smb}",
                    format_name(&src),
                    format_name(&dst)
                ),
                fields,
            ))
        }
        0x13 => {
            let code = *b.get(10)?;
            if !(0x82..=0x84).contains(&code) || wire != 11 {
                return None;
            }
            Some((format!("NetBIOS datagram service {kind}"), fields))
        }
        _ => {
            let (dst, n) = encoded_name(b.get(10..)?)?;
            if 10 + n != wire {
                return None;
            }
            fields.push(("exwatch.netbios.name", format_name(&dst)));
            Some((
                format!("NetBIOS datagram service {kind} for {}", format_name(&dst)),
                fields,
            ))
        }
    }
}

pub struct Netbios;

impl Detector for Netbios {
    fn name(&self) -> &'static str {
        "netbios"
    }

    fn protocol(&self) -> &'static str {
        "netbios"
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        if !p.is_udp() {
            return probe_session(p);
        }
        let (b, from_orig) = if p.ts.is_empty() {
            (p.tc, false)
        } else {
            (p.ts, true)
        };
        if b.is_empty() {
            return Probe::NeedMore;
        }
        let wire = p
            .datagrams
            .iter()
            .find(|d| d.from_orig == from_orig)
            .map_or(b.len(), |d| d.len as usize);
        if let Some((e, f)) = name_service(b) {
            return detection("netbios", e, f);
        }
        if let Some((e, f)) = datagram_service(b, wire) {
            return detection("netbios", e, f);
        }
        Probe::NotMine
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::detector::DatagramHead;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn tcp<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        Payloads {
            transport: 6,
            ts,
            tc,
            datagrams: &[],
            server_port: 139,
            client_port: 50000,
            last_chance: last,
        }
    }

    fn udp<'a>(ts: &'a [u8], heads: &'a [DatagramHead]) -> Payloads<'a> {
        Payloads {
            transport: 17,
            ts,
            tc: b"",
            datagrams: heads,
            server_port: 137,
            client_port: 137,
            last_chance: false,
        }
    }

    fn head(b: &[u8]) -> [DatagramHead; 1] {
        let n = b.len().min(16);
        let mut h = [0u8; 16];
        h[..n].copy_from_slice(&b[..n]);
        [DatagramHead {
            from_orig: true,
            len: b.len() as u32,
            head_len: n as u8,
            head: h,
        }]
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    // smb-netbios-139.pcap frames 4, 6, 8, 9: session request to 198.51.100.10<20> from
    // EXCH01<00>, positive response, then SMB2 NEGOTIATE and its response (3.1.1).
    const SESSION_REQ: &str = "81000044204442444a4449434f44464442434f444244414441434f444244414341434143410020454646494544454944414442434143414341434143414341434143414341414100";

    fn smb2(head: &str, len: usize) -> Vec<u8> {
        let mut m = hex(head);
        m.resize(len, 0);
        let mut out = vec![0, 0, (len >> 8) as u8, len as u8];
        out.extend(m);
        out
    }

    fn negotiate() -> (Vec<u8>, Vec<u8>) {
        let req = smb2("fe534d42400000000000000000001f0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000024000500010000007f000000", 0xea);
        let resp = smb2("fe534d424000000000000000000001000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000004100030011030300", 0x12c);
        (req, resp)
    }

    #[test]
    fn session_carrying_smb() {
        let mut ts = hex(SESSION_REQ);
        let mut tc = hex("82000000");
        assert!(matches!(
            Netbios.probe(&tcp(&ts, b"", false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Netbios.probe(&tcp(&ts, &tc, false)),
            Probe::NeedMore
        ));
        let (req, resp) = negotiate();
        ts.extend(req);
        assert!(matches!(
            Netbios.probe(&tcp(&ts, &tc, false)),
            Probe::NeedMore
        ));
        tc.extend(resp);
        let Probe::Mine(d) = Netbios.probe(&tcp(&ts, &tc, false)) else {
            panic!()
        };
        assert_eq!(d.protocol, "smb");
        assert!(
            d.evidence.starts_with("SMB inside NetBIOS session"),
            "{}",
            d.evidence
        );
        assert_eq!(field(&d, "exwatch.netbios.name"), Some("198.51.100.10<20>"));
        assert_eq!(
            field(&d, "exwatch.netbios.calling_name"),
            Some("EXCH01<00>")
        );
        assert_eq!(field(&d, "exwatch.smb.dialect"), Some("3.1.1"));
    }

    #[test]
    fn session_request_split_and_truncated() {
        let ts = hex(SESSION_REQ);
        for cut in [1, 2, 4, 10, 40, ts.len() - 1] {
            assert!(
                matches!(Netbios.probe(&tcp(&ts[..cut], b"", false)), Probe::NeedMore),
                "cut {cut}"
            );
        }
        assert!(matches!(
            Netbios.probe(&tcp(&ts[..40], b"", true)),
            Probe::NotMine
        ));
        // A request nobody answered (netbios.pcap frame 261) is still NetBIOS at the end.
        let Probe::Mine(d) = Netbios.probe(&tcp(&ts, b"", true)) else {
            panic!()
        };
        assert_eq!(d.protocol, "netbios");
        // Negative response.
        let Probe::Mine(d) = Netbios.probe(&tcp(&ts, &hex("8300000182"), false)) else {
            panic!()
        };
        assert!(
            d.evidence.contains("called name not present"),
            "{}",
            d.evidence
        );
    }

    #[test]
    fn name_service_query_and_node_status() {
        // netbios.pcap frame 1: broadcast name query for XSTREAM_HY<00>.
        let q = hex("a7490110000100000000000020464946444645464345464542454e46504549464a4341434143414341434141410000200001");
        let h = head(&q);
        let Probe::Mine(d) = Netbios.probe(&udp(&q, &h)) else {
            panic!()
        };
        assert_eq!(d.protocol, "netbios");
        assert_eq!(field(&d, "exwatch.netbios.name"), Some("XSTREAM_HY<00>"));
        // Frame 55: node status reply to "*", naming GUNNAR<00>.
        let r = hex("20a88400000000010000000020434b41414141414141414141414141414141414141414141414141414141414100002100010000000000770447554e4e4152202020202020202020000400564947494c414e545f47524f55502000840047554e4e4152202020202020202020200400");
        let h = head(&r);
        let Probe::Mine(d) = Netbios.probe(&udp(&r, &h)) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.netbios.name"), Some("GUNNAR<00>"));
        assert!(
            d.evidence.contains("node status query response"),
            "{}",
            d.evidence
        );
    }

    #[test]
    fn datagram_service_browser() {
        // netbios.pcap frame 20 (first 120 bytes of a 201-byte browser announcement).
        let b = hex("110ec2f40a000509008a00bb000020454f46474643444a43414341434143414341434143414341434143414341434100204647454a4548454a454d4542454f46454650454846434550464646414341424e00ff534d4225000000000000000000000000000000000000");
        let mut h = head(&b);
        h[0].len = 201;
        let Probe::Mine(d) = Netbios.probe(&udp(&b, &h)) else {
            panic!()
        };
        assert!(d.evidence.contains("direct group"), "{}", d.evidence);
        assert!(d.evidence.contains("SMB mailslot"), "{}", d.evidence);
        assert_eq!(
            field(&d, "exwatch.netbios.destination_name"),
            Some("VIGILANT_GROUP<1d>")
        );
        // The same bytes with a length that disagrees with the datagram: not NetBIOS.
        h[0].len = 150;
        assert!(matches!(Netbios.probe(&udp(&b, &h)), Probe::NotMine));
    }

    #[test]
    fn dns_and_others_are_not_netbios() {
        // A DNS A query for www.example.com.
        let dns = hex("12340100000100000000000003777777076578616d706c6503636f6d0000010001");
        let h = head(&dns);
        assert!(matches!(Netbios.probe(&udp(&dns, &h)), Probe::NotMine));
        // An SRV query whose first label is 32 letters but not only A-P.
        let mut srv = hex("123401000001000000000000");
        srv.push(0x20);
        srv.extend(b"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF");
        srv.extend([0, 0, 0x21, 0, 1]);
        let h = head(&srv);
        assert!(matches!(Netbios.probe(&udp(&srv, &h)), Probe::NotMine));
        for ts in [
            &b"\x00\x00\x00\xeaSMB"[..],
            b"GET / HTTP/1.1\r\n",
            b"\x05\x00\x0b",
        ] {
            assert!(matches!(Netbios.probe(&tcp(ts, b"", true)), Probe::NotMine));
        }
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let mut seed = 99u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        for i in 0..600 {
            let n = next() as usize;
            let mut b: Vec<u8> = (0..n).map(|_| next()).collect();
            if !b.is_empty() {
                b[0] = [0x81, 0x82, 0x10, 0x11, 0x13, 0x14, 0x00][i % 7];
            }
            if b.len() > 50 && i % 3 == 0 {
                b[12] = 0x20;
                for c in &mut b[13..45] {
                    *c = b'A' + (*c & 0xf);
                }
            }
            let h = head(&b);
            let _ = Netbios.probe(&udp(&b, &h));
            let c: Vec<u8> = b.iter().rev().copied().collect();
            for last in [false, true] {
                let _ = Netbios.probe(&tcp(&b, &c, last));
                let _ = Netbios.probe(&tcp(&hex(SESSION_REQ), &b, last));
            }
        }
        let mut big = hex(SESSION_REQ);
        big[1] = 1;
        big[2] = 0xff;
        big[3] = 0xff;
        let _ = Netbios.probe(&tcp(&big, b"", false));
    }
}
