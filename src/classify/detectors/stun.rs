//! STUN and TURN (RFC 8489, RFC 8656) over UDP and TCP: the 20-byte header with the magic
//! cookie, and attributes that add up to the message length.

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Stun;

const HEADER: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// SOFTWARE attribute: names the agent (a product name, not a secret).
const ATTR_SOFTWARE: u16 = 0x8022;

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
    // The magic cookie is what tells STUN from RTP, RTCP and the rest.
    let have = b.len().min(8);
    if have > 4 && b[4..have] != MAGIC_COOKIE[..have - 4] {
        return Message::No;
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
    while pos < body.len() {
        let (Some(t), Some(l)) = (be16(body, pos), be16(body, pos + 2)) else {
            break; // attribute header cut by the capture or the segment
        };
        let l = usize::from(l);
        let next = pos + 4 + l.div_ceil(4) * 4;
        if next > len {
            return Message::No;
        }
        if t == ATTR_SOFTWARE {
            if let Some(v) = body.get(pos + 4..pos + 4 + l) {
                software = Some(text::clip(v, 64));
            }
        }
        pos = next;
    }
    if b.len() < end && datagram_len.is_none() {
        return Message::Partial;
    }
    Message::Yes {
        ty: u16::from_be_bytes([b[0], b[1]]),
        software,
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
            Message::Yes { ty, software } => {
                let kind = message_type(ty);
                let mut evidence = format!(
                    "STUN {kind} with magic cookie{}",
                    if from_orig {
                        ""
                    } else {
                        " (from the responder)"
                    }
                );
                let mut fields = vec![("exwatch.stun.message_type", kind)];
                if let Some(s) = software {
                    evidence.push_str(&format!(", SOFTWARE {}", text::clip(s.as_bytes(), 48)));
                    fields.push(("exwatch.stun.software", s));
                }
                Probe::Mine(Detection {
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
