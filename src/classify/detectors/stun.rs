//! STUN and TURN (RFC 8489, RFC 8656) over UDP and TCP: the 20-byte header with the magic
//! cookie, and attributes that add up to the message length. MS-TURN ([MS-TURN] 2.2), as
//! Skype for Business and Teams media relays speak it, too: its older form has no magic
//! cookie in the header (RFC 3489's 128-bit transaction id) and opens with the MAGIC-COOKIE
//! attribute instead; either form may carry the Microsoft attributes (MS-VERSION...).

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Stun;

const HEADER: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// SOFTWARE attribute: names the agent (a product name, not a secret).
const ATTR_SOFTWARE: u16 = 0x8022;
/// MS-TURN's MAGIC-COOKIE attribute ([MS-TURN] 2.2.2.6): type, length 4, fixed value.
const MS_MAGIC_COOKIE_ATTR: [u8; 8] = [0x00, 0x0f, 0x00, 0x04, 0x72, 0xc6, 0x4b, 0xc6];
/// MS-VERSION ([MS-TURN] 2.2.2.14): a 32-bit protocol version.
const ATTR_MS_VERSION: u16 = 0x8008;
/// MS-SEQUENCE-NUMBER ([MS-TURN] 2.2.2.17) and MS-SERVICE-QUALITY (2.2.2.18).
const ATTR_MS_SEQUENCE_NUMBER: u16 = 0x8050;
const ATTR_MS_SERVICE_QUALITY: u16 = 0x8055;

/// Message types of MS-TURN's older form ([MS-TURN] 2.2.1), not bit-interleaved as in
/// RFC 5389 (0x0115 is a Data Indication there, an error response here).
fn ms_turn_type(t: u16) -> Option<&'static str> {
    Some(match t {
        0x0001 => "Binding Request",
        0x0101 => "Binding Response",
        0x0111 => "Binding Error Response",
        0x0003 => "Allocate Request",
        0x0103 => "Allocate Response",
        0x0113 => "Allocate Error Response",
        0x0004 => "Send Request",
        0x0115 => "Data Indication",
        0x0006 => "Set Active Destination Request",
        0x0106 => "Set Active Destination Response",
        0x0116 => "Set Active Destination Error Response",
        _ => return None,
    })
}

/// Method names (RFC 8489, RFC 8656, RFC 6062; 0x080 is WebRTC's GOOG-PING).
fn method_name(m: u16) -> Option<&'static str> {
    Some(match m {
        0x001 => "Binding",
        0x002 => "SharedSecret",
        0x003 => "Allocate",
        0x004 => "Refresh",
        0x006 => "Send",
        0x007 => "Data",
        0x008 => "CreatePermission",
        0x009 => "ChannelBind",
        0x00a => "Connect",
        0x00b => "ConnectionBind",
        0x00c => "ConnectionAttempt",
        0x080 => "GoogPing",
        _ => return None,
    })
}

/// "Binding Request" and the like, from the 14-bit type (method and class bits interleaved).
fn message_type(t: u16) -> String {
    let class = ((t >> 7) & 0x2) | ((t >> 4) & 0x1);
    let method = (t & 0x000f) | ((t & 0x00e0) >> 1) | ((t & 0x3e00) >> 2);
    let class = [
        "Request",
        "Indication",
        "Success Response",
        "Error Response",
    ][usize::from(class)];
    match method_name(method) {
        Some(m) => format!("{m} {class}"),
        None => format!("Method 0x{method:03x} {class}"),
    }
}

#[derive(Debug)]
enum Message {
    No,
    /// A valid start (TCP: the rest is still arriving).
    Partial,
    Yes {
        ty: u16,
        software: Option<String>,
        /// MS-TURN's older form (no magic cookie in the header, MAGIC-COOKIE attribute).
        legacy: bool,
        /// MS-VERSION's value, if the message carries one.
        ms_version: Option<u32>,
        /// Any Microsoft-specific attribute (MS-VERSION, MS-SEQUENCE-NUMBER,
        /// MS-SERVICE-QUALITY) was seen.
        ms_attrs: bool,
    },
}

/// Check a STUN message at the start of `b`. `datagram_len`: for UDP, the datagram's length
/// on the wire, which the message must fill exactly; `None` on TCP, where messages follow
/// one another in the stream.
fn message(b: &[u8], datagram_len: Option<usize>) -> Message {
    // The two top bits of every STUN message are zero.
    if b.first().is_some_and(|&c| c & 0xc0 != 0) {
        return Message::No;
    }
    let len = match (b.get(2), b.get(3)) {
        (Some(&h), Some(&l)) => usize::from(u16::from_be_bytes([h, l])),
        _ => return Message::Partial,
    };
    if len % 4 != 0 {
        return Message::No;
    }
    // The magic cookie is what tells STUN from RTP, RTCP and the rest; in MS-TURN's older
    // form, a known message type and the MAGIC-COOKIE attribute first in the body.
    let have = b.len().min(8);
    let legacy = have > 4 && b[4..have] != MAGIC_COOKIE[..have - 4];
    if legacy {
        if ms_turn_type(u16::from_be_bytes([b[0], b[1]])).is_none() || len < 8 {
            return Message::No;
        }
        let got = &b[HEADER.min(b.len())..b.len().min(HEADER + 8)];
        if got != &MS_MAGIC_COOKIE_ATTR[..got.len()] {
            return Message::No;
        }
        if got.len() < 8 {
            return Message::Partial;
        }
    }
    if b.len() < HEADER {
        return Message::Partial;
    }
    if datagram_len.is_some_and(|d| d != HEADER + len) {
        return Message::No;
    }
    // Attributes: type, length, value padded to 4 bytes; they must end exactly at `len`.
    let end = HEADER + len;
    let body = &b[HEADER..b.len().min(end)];
    let mut pos = 0;
    let mut software = None;
    let (mut ms_version, mut ms_attrs) = (None, false);
    while pos < body.len() {
        let (Some(t), Some(l)) = (be16(body, pos), be16(body, pos + 2)) else {
            break; // attribute header cut by the capture or the segment
        };
        let l = usize::from(l);
        let next = pos + 4 + l.div_ceil(4) * 4;
        if next > len {
            return Message::No;
        }
        match t {
            ATTR_SOFTWARE => {
                if let Some(v) = body.get(pos + 4..pos + 4 + l) {
                    software = Some(text::clip(v, 64));
                }
            }
            ATTR_MS_VERSION => {
                ms_attrs = true;
                if l == 4 {
                    ms_version = body
                        .get(pos + 4..pos + 8)
                        .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
                }
            }
            ATTR_MS_SEQUENCE_NUMBER | ATTR_MS_SERVICE_QUALITY => ms_attrs = true,
            _ => {}
        }
        pos = next;
    }
    if b.len() < end && datagram_len.is_none() {
        return Message::Partial;
    }
    Message::Yes {
        ty: u16::from_be_bytes([b[0], b[1]]),
        software,
        legacy,
        ms_version,
        ms_attrs,
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Wire length of the first datagram in one direction (the captured copy may be cut short).
fn datagram_len(p: &Payloads<'_>, from_orig: bool, captured: usize) -> usize {
    p.datagrams
        .iter()
        .find(|d| d.from_orig == from_orig)
        .map_or(captured, |d| (d.len as usize).max(captured))
}

impl Detector for Stun {
    fn name(&self) -> &'static str {
        "stun"
    }

    fn protocol(&self) -> &'static str {
        "stun"
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let udp = p.is_udp();
        // The first message of the originator decides; the responder's only when the
        // originator's was not seen.
        let (b, from_orig) = if p.ts.is_empty() {
            (p.tc, false)
        } else {
            (p.ts, true)
        };
        if b.is_empty() {
            return if p.last_chance {
                Probe::NotMine
            } else {
                Probe::NeedMore
            };
        }
        let wire = udp.then(|| datagram_len(p, from_orig, b.len()));
        match message(b, wire) {
            Message::Yes {
                ty,
                software,
                legacy,
                ms_version,
                ms_attrs,
            } => {
                let (kind, form) = match ms_turn_type(ty).filter(|_| legacy) {
                    Some(k) => (k.to_string(), "MS-TURN {kind} with MAGIC-COOKIE attribute"),
                    None if ms_attrs => (
                        message_type(ty),
                        "STUN {kind} with magic cookie, MS-TURN attributes",
                    ),
                    None => (message_type(ty), "STUN {kind} with magic cookie"),
                };
                let mut evidence = form.replace("{kind}", &kind);
                if let Some(v) = ms_version {
                    evidence.push_str(&format!(", MS-VERSION {v}"));
                }
                if !from_orig {
                    evidence.push_str(" (from the responder)");
                }
                let mut fields = vec![("exwatch.stun.message_type", kind)];
                if let Some(s) = software {
                    evidence.push_str(&format!(", SOFTWARE {}", text::clip(s.as_bytes(), 48)));
                    fields.push(("exwatch.stun.software", s));
                }
                Probe::Mine(Detection {
                    reversed: false,
                    protocol: "stun",
                    service: None,
                    confidence: Confidence::Payload,
                    evidence,
                    fields,
                })
            }
            Message::Partial if !udp && !p.last_chance => Probe::NeedMore,
            _ => Probe::NotMine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 2.1: sample request (SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
    /// MESSAGE-INTEGRITY, FINGERPRINT).
    const RFC5769_REQUEST: &[u8] = &[
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74,
        0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e,
        0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
        0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
        0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
        0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5,
        0x7a, 0x3b, 0xcf,
    ];
    /// RFC 5769 2.2: sample IPv4 response (SOFTWARE, XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY,
    /// FINGERPRINT).
    const RFC5769_RESPONSE: &[u8] = &[
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    fn udp(ts: &[u8], tc: &[u8], last: bool) -> Probe {
        crate::classify::detector::testing::udp_probe(&Stun, ts, tc, 3478, last)
    }

    fn tcp(ts: &[u8], tc: &[u8], last: bool) -> Probe {
        Stun.probe(&Payloads {
            transport: 6,
            ts,
            tc,
            datagrams: &[],
            server_port: 3478,
            client_port: 50000,
            last_chance: last,
        })
    }

    fn mine(p: Probe) -> Detection {
        match p {
            Probe::Mine(d) => d,
            other => panic!("expected Mine, got {other:?}"),
        }
    }

    #[test]
    fn rfc5769_request_and_response() {
        let d = mine(udp(RFC5769_REQUEST, RFC5769_RESPONSE, false));
        assert_eq!(d.protocol, "stun");
        assert_eq!(
            d.fields,
            vec![
                ("exwatch.stun.message_type", "Binding Request".to_string()),
                ("exwatch.stun.software", "STUN test client".to_string()),
            ]
        );
        let d = mine(udp(b"", RFC5769_RESPONSE, false));
        assert_eq!(d.fields[0].1, "Binding Success Response");
        assert!(d.evidence.contains("responder"), "{}", d.evidence);
        // The username of the request never reaches the record.
        assert!(!format!("{:?}", mine(udp(RFC5769_REQUEST, b"", true))).contains("evtj"));
    }

    /// An MS-TURN message: `ty`, a 16-byte transaction id or the RFC 5389 cookie and 12
    /// bytes, then the attributes (type, value), each padded to 4 bytes.
    fn ms_turn(ty: u16, legacy: bool, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut b = ty.to_be_bytes().to_vec();
        b.extend_from_slice(&(body.len() as u16).to_be_bytes());
        if !legacy {
            b.extend_from_slice(&MAGIC_COOKIE);
        }
        b.resize(HEADER, 0x5c);
        b.extend_from_slice(&body);
        b
    }

    const COOKIE: &[u8] = &[0x72, 0xc6, 0x4b, 0xc6];

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    #[test]
    fn ms_turn_older_form_and_microsoft_attributes() {
        // [MS-TURN] 3.1.5.1: an Allocate request in the older form, MAGIC-COOKIE first,
        // MS-VERSION 6; the relay's Allocate error response (401, no magic cookie either).
        let alloc = ms_turn(0x0003, true, &[(0x000f, COOKIE), (0x8008, &[0, 0, 0, 6])]);
        let err = ms_turn(0x0113, true, &[(0x000f, COOKIE), (0x0009, &[0, 0, 4, 1])]);
        let d = mine(udp(&alloc, &err, false));
        assert_eq!(
            field(&d, "exwatch.stun.message_type"),
            Some("Allocate Request")
        );
        assert!(
            d.evidence
                .starts_with("MS-TURN Allocate Request with MAGIC-COOKIE"),
            "{}",
            d.evidence
        );
        assert!(d.evidence.contains("MS-VERSION 6"), "{}", d.evidence);
        // The older numbering, not RFC 5389's interleaving: 0x0115 is a Data Indication.
        let data = ms_turn(0x0115, true, &[(0x000f, COOKIE), (0x0013, b"xyz")]);
        let d = mine(udp(b"", &data, false));
        assert_eq!(
            field(&d, "exwatch.stun.message_type"),
            Some("Data Indication")
        );
        assert!(
            d.evidence.contains("(from the responder)"),
            "{}",
            d.evidence
        );
        // Over TCP (443 relays), split after the header.
        assert!(matches!(tcp(&alloc[..20], b"", false), Probe::NeedMore));
        assert!(matches!(tcp(&alloc, b"", false), Probe::Mine(_)));
        // The RFC 5389 form with Microsoft's attributes (Teams' ICE checks).
        let bind = ms_turn(
            0x0001,
            false,
            &[
                (0x8008, &[0, 0, 0, 6]),
                (0x8050, &[0; 24]),
                (0x8055, &[0, 1, 0, 0]),
            ],
        );
        let d = mine(udp(&bind, b"", false));
        assert_eq!(
            field(&d, "exwatch.stun.message_type"),
            Some("Binding Request")
        );
        assert!(
            d.evidence.contains("MS-TURN attributes, MS-VERSION 6"),
            "{}",
            d.evidence
        );
    }

    #[test]
    fn ms_turn_older_form_needs_its_cookie_attribute() {
        for b in [
            // No MAGIC-COOKIE attribute, or the wrong value, or not first.
            ms_turn(0x0003, true, &[(0x8008, &[0, 0, 0, 6])]),
            ms_turn(0x0003, true, &[(0x000f, &[0x72, 0xc6, 0x4b, 0xc7])]),
            ms_turn(0x0003, true, &[(0x8008, &[0, 0, 0, 6]), (0x000f, COOKIE)]),
            // A type MS-TURN does not define.
            ms_turn(0x0002, true, &[(0x000f, COOKIE)]),
            ms_turn(0x0009, true, &[(0x000f, COOKIE)]),
        ] {
            assert!(matches!(udp(&b, b"", true), Probe::NotMine), "{b:02x?}");
        }
        // Cut short in the header or the cookie attribute: not mine at the last chance.
        let alloc = ms_turn(0x0003, true, &[(0x000f, COOKIE)]);
        for n in [6, 19, 22, 27] {
            assert!(!matches!(tcp(&alloc[..n], b"", true), Probe::NeedMore));
            assert!(
                matches!(tcp(&alloc[..n], b"", false), Probe::NeedMore),
                "{n}"
            );
        }
    }

    #[test]
    fn message_types() {
        assert_eq!(message_type(0x0001), "Binding Request");
        assert_eq!(message_type(0x0011), "Binding Indication");
        assert_eq!(message_type(0x0101), "Binding Success Response");
        assert_eq!(message_type(0x0111), "Binding Error Response");
        assert_eq!(message_type(0x0003), "Allocate Request");
        assert_eq!(message_type(0x0113), "Allocate Error Response");
        assert_eq!(message_type(0x0016), "Send Indication");
        assert_eq!(message_type(0x0017), "Data Indication");
        assert_eq!(message_type(0x3fef), "Method 0xfff Success Response");
    }

    #[test]
    fn split_across_segments_on_tcp() {
        for cut in [1, 3, 6, 19, 20, 30, 60, RFC5769_REQUEST.len() - 1] {
            assert!(
                matches!(tcp(&RFC5769_REQUEST[..cut], b"", false), Probe::NeedMore),
                "cut at {cut}"
            );
        }
        assert!(matches!(tcp(RFC5769_REQUEST, b"", false), Probe::Mine(_)));
        // Followed by the next message in the same stream.
        let mut two = RFC5769_REQUEST.to_vec();
        two.extend_from_slice(&RFC5769_REQUEST[..10]);
        assert!(matches!(tcp(&two, b"", false), Probe::Mine(_)));
    }

    #[test]
    fn truncated_messages() {
        // TCP: the rest never came.
        assert!(matches!(
            tcp(&RFC5769_REQUEST[..40], b"", true),
            Probe::NotMine
        ));
        // UDP: a datagram shorter than its header says.
        assert!(matches!(
            udp(&RFC5769_REQUEST[..40], b"", false),
            Probe::NotMine
        ));
        assert!(matches!(
            udp(&RFC5769_REQUEST[..8], b"", false),
            Probe::NotMine
        ));
        // Attributes that overrun the message length.
        let mut bad = RFC5769_REQUEST.to_vec();
        bad[23] = 0x40;
        assert!(matches!(udp(&bad, b"", false), Probe::NotMine));
        // Length not a multiple of 4.
        let mut bad = RFC5769_REQUEST.to_vec();
        bad[3] = 0x57;
        assert!(matches!(udp(&bad, b"", false), Probe::NotMine));
    }

    #[test]
    fn magic_cookie_tells_stun_from_rtp_and_others() {
        // RFC 3489 (classic STUN, no cookie) and an RTCP-looking first byte.
        let mut classic = RFC5769_REQUEST.to_vec();
        classic[4..8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let rtp =
            b"\x80\x00\x12\x34\x00\x00\x00\xa0\xde\xad\xbe\xef\x00\x00\x00\x00\x00\x00\x00\x00";
        // First byte 0x00 and a length multiple of 4, as DNS or NTP could have.
        let dns = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
        let ntp = [0x23u8; 48];
        for b in [&classic[..], &rtp[..], &dns[..], &ntp[..]] {
            assert!(matches!(udp(b, b"", false), Probe::NotMine), "{b:?}");
            assert!(matches!(tcp(b, b"", true), Probe::NotMine), "{b:?}");
        }
        assert!(matches!(
            tcp(b"GET / HTTP/1.1\r\n", b"", false),
            Probe::NotMine
        ));
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let mut x: u32 = 4242;
        for n in 0..500 {
            let len = (n * 5) % 300;
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            if n % 2 == 0 && b.len() >= 20 {
                b[0] &= 0x3f;
                b[3] &= 0xfc;
                b[4..8].copy_from_slice(&MAGIC_COOKIE);
                if n % 4 == 0 {
                    b[2] = 0xff;
                    b[3] = 0xfc;
                }
            }
            for last in [false, true] {
                let _ = udp(&b, &b, last);
                let _ = udp(b"", &b, last);
                let _ = tcp(&b, &b, last);
            }
        }
    }
}
