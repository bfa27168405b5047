//! QUIC over UDP: the long-header Initial packet a client opens with (RFC 9000 17.2.2), for
//! QUIC v1, v2 (RFC 9369) and the IETF drafts. Headers only: nothing is decrypted.

use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Quic;

/// Connection IDs are at most 20 bytes in QUIC v1 and v2 (RFC 9000 17.2).
const MAX_CID: usize = 20;
/// A client's first Initial has a Destination Connection ID of 8 bytes or more (RFC 9000 7.2).
const MIN_CLIENT_DCID: usize = 8;
/// Datagrams carrying a client Initial are padded to at least 1200 bytes (RFC 9000 14.1).
const MIN_CLIENT_DATAGRAM: usize = 1200;
/// Packet number (1 byte at least) plus the AEAD tag: the least a protected packet holds.
const MIN_PAYLOAD: u64 = 1 + 16;

const V1: u32 = 0x0000_0001;
const V2: u32 = 0x6b33_43cf;

/// A version this detector knows, and its name.
fn version_name(v: u32) -> Option<String> {
    match v {
        V1 => Some("1".into()),
        V2 => Some("2".into()),
        0xff00_0000..=0xff00_00ff => Some(format!("draft-{}", v & 0xff)),
        _ => None,
    }
}

/// Long packet types, which QUIC v2 renumbered (RFC 9369 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PacketType {
    Initial,
    ZeroRtt,
    Handshake,
    Retry,
}

fn packet_type(version: u32, bits: u8) -> PacketType {
    let v1 = [
        PacketType::Initial,
        PacketType::ZeroRtt,
        PacketType::Handshake,
        PacketType::Retry,
    ];
    let v2 = [
        PacketType::Retry,
        PacketType::Initial,
        PacketType::ZeroRtt,
        PacketType::Handshake,
    ];
    let table = if version == V2 { v2 } else { v1 };
    table[usize::from(bits & 3)]
}

/// A variable-length integer (RFC 9000 16) at `pos`: value and the position after it.
fn varint(b: &[u8], pos: usize) -> Option<(u64, usize)> {
    let first = *b.get(pos)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(pos..pos + len)?;
    let mut v = u64::from(first & 0x3f);
    for &x in &bytes[1..] {
        v = v << 8 | u64::from(x);
    }
    Some((v, pos + len))
}

/// What a long header says.
#[derive(Debug)]
struct LongHeader {
    version: String,
    ty: PacketType,
    dcid_len: usize,
}

/// Parse and check a long header; `wire_len` is the datagram's length on the wire (the
/// captured bytes may be fewer).
fn long_header(b: &[u8], wire_len: usize) -> Option<LongHeader> {
    let first = *b.first()?;
    // Header form 1 and the fixed bit 1.
    if first & 0xc0 != 0xc0 {
        return None;
    }
    let version = u32::from_be_bytes(b.get(1..5)?.try_into().ok()?);
    let name = version_name(version)?;
    let ty = packet_type(version, first >> 4);
    let dcid_len = usize::from(*b.get(5)?);
    if dcid_len > MAX_CID {
        return None;
    }
    let scid_at = 6 + dcid_len;
    let scid_len = usize::from(*b.get(scid_at)?);
    if scid_len > MAX_CID {
        return None;
    }
    let mut pos = scid_at + 1 + scid_len;
    match ty {
        PacketType::Initial => {
            let (token_len, p) = varint(b, pos)?;
            pos = p.checked_add(usize::try_from(token_len).ok()?)?;
        }
        // A Retry has no Length field: its tag fills the rest of the datagram.
        PacketType::Retry => {
            return (wire_len >= pos + 16).then_some(LongHeader {
                version: name,
                ty,
                dcid_len,
            })
        }
        PacketType::ZeroRtt | PacketType::Handshake => {}
    }
    // The Length field covers the packet number and the protected payload; packets may be
    // coalesced after it, so it must fit in the datagram, not fill it.
    let (length, p) = varint(b, pos)?;
    let room = wire_len.checked_sub(p)?;
    if length < MIN_PAYLOAD || length > room as u64 {
        return None;
    }
    Some(LongHeader {
        version: name,
        ty,
        dcid_len,
    })
}

/// Wire length of the first datagram in one direction (the captured head may be cut short).
fn wire_len(p: &Payloads<'_>, from_orig: bool, captured: usize) -> usize {
    p.datagrams
        .iter()
        .find(|d| d.from_orig == from_orig)
        .map_or(captured, |d| (d.len as usize).max(captured))
}

impl Detector for Quic {
    fn name(&self) -> &'static str {
        "quic"
    }

    fn protocol(&self) -> &'static str {
        "quic"
    }

    fn tcp(&self) -> bool {
        false
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        if !p.is_udp() {
            return Probe::NotMine;
        }
        if !p.ts.is_empty() {
            let len = wire_len(p, true, p.ts.len());
            return match long_header(p.ts, len) {
                Some(h)
                    if h.ty == PacketType::Initial
                        && h.dcid_len >= MIN_CLIENT_DCID
                        && len >= MIN_CLIENT_DATAGRAM =>
                {
                    detection(
                        &h,
                        format!(
                            "QUIC {} client Initial ({len}-byte datagram, {}-byte DCID)",
                            label(&h.version),
                            h.dcid_len
                        ),
                    )
                }
                _ => Probe::NotMine,
            };
        }
        if p.tc.is_empty() {
            return if p.last_chance {
                Probe::NotMine
            } else {
                Probe::NeedMore
            };
        }
        // Only the responder was seen (the client's datagram was missed): a server sends
        // Initial, Handshake or Retry packets, and its Initials carry no token.
        let len = wire_len(p, false, p.tc.len());
        match long_header(p.tc, len) {
            Some(h) if h.ty != PacketType::ZeroRtt && server_token_ok(p.tc, &h) => detection(
                &h,
                format!(
                    "QUIC {} server {:?} packet (no client Initial seen)",
                    label(&h.version),
                    h.ty
                ),
            ),
            _ => Probe::NotMine,
        }
    }
}

/// Initial packets from a server have a zero-length token (RFC 9000 17.2.2).
fn server_token_ok(b: &[u8], h: &LongHeader) -> bool {
    if h.ty != PacketType::Initial {
        return true;
    }
    let dcid = usize::from(b.get(5).copied().unwrap_or(0));
    let scid_at = 6 + dcid;
    let scid = usize::from(b.get(scid_at).copied().unwrap_or(0));
    b.get(scid_at + 1 + scid) == Some(&0)
}

fn label(version: &str) -> String {
    if version.starts_with("draft") {
        version.to_string()
    } else {
        format!("v{version}")
    }
}

fn detection(h: &LongHeader, evidence: String) -> Probe {
    Probe::Mine(Detection {
        reversed: false,
        protocol: "quic",
        service: None,
        confidence: Confidence::Payload,
        evidence,
        fields: vec![("exwatch.quic.version", h.version.clone())],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::detector::DatagramHead;

    /// RFC 9001 appendix A.2: the start of the protected client Initial (1200 bytes in all).
    const RFC9001_CLIENT_INITIAL: &[u8] = &[
        0xc0, 0x00, 0x00, 0x00, 0x01, 0x08, 0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08, 0x00,
        0x00, 0x44, 0x9e, 0x7b, 0x9a, 0xec, 0x34, 0xd1, 0xb1, 0xc9, 0x8d, 0xd7, 0x68, 0x9f, 0xb8,
        0xec, 0x11, 0xd2, 0x42, 0xb1, 0x23, 0xdc, 0x9b, 0xd8, 0xba, 0xb9, 0x36, 0xb4, 0x7d, 0x92,
        0xec, 0x35, 0x6c, 0x0b, 0xab, 0x7d, 0xf5, 0x97, 0x6d, 0x27, 0xcd, 0x44, 0x9f, 0x63, 0x30,
    ];
    /// RFC 9001 appendix A.3: the start of the server Initial (135 bytes in all).
    const RFC9001_SERVER_INITIAL: &[u8] = &[
        0xcf, 0x00, 0x00, 0x00, 0x01, 0x00, 0x08, 0xf0, 0x67, 0xa5, 0x50, 0x2a, 0x42, 0x62, 0xb5,
        0x00, 0x40, 0x75, 0xc0, 0xd9, 0x5a, 0x48, 0x2c, 0xd0, 0x99, 0x1c, 0xd2, 0x5b, 0x0a, 0xac,
    ];

    /// The datagram padded to its real length with stand-in ciphertext.
    fn datagram(start: &[u8], len: usize) -> Vec<u8> {
        let mut d = start.to_vec();
        let mut x: u32 = 7;
        while d.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            d.push((x >> 16) as u8);
        }
        d
    }

    fn head(b: &[u8], from_orig: bool) -> DatagramHead {
        DatagramHead::new(from_orig, b, b.len() as u32)
    }

    fn probe(ts: &[u8], tc: &[u8], last: bool) -> Probe {
        crate::classify::detector::testing::udp_probe(&Quic, ts, tc, 443, last)
    }

    fn mine(p: Probe) -> Detection {
        match p {
            Probe::Mine(d) => d,
            other => panic!("expected Mine, got {other:?}"),
        }
    }

    #[test]
    fn rfc9001_client_initial() {
        let ci = datagram(RFC9001_CLIENT_INITIAL, 1200);
        let d = mine(probe(&ci, b"", false));
        assert_eq!(d.protocol, "quic");
        assert_eq!(d.fields, vec![("exwatch.quic.version", "1".to_string())]);
        assert!(d.evidence.contains("v1 client Initial"), "{}", d.evidence);
    }

    #[test]
    fn version_2_and_drafts() {
        // QUIC v2 numbers Initial as type 0b01 (RFC 9369): first byte 0xd_.
        let mut v2 = RFC9001_CLIENT_INITIAL.to_vec();
        v2[0] = 0xd3;
        v2[1..5].copy_from_slice(&V2.to_be_bytes());
        let d = mine(probe(&datagram(&v2, 1200), b"", false));
        assert_eq!(d.fields[0].1, "2");
        // In v2, 0xc_ is a Retry, not an Initial: not a client's first packet.
        v2[0] = 0xc3;
        assert!(matches!(
            probe(&datagram(&v2, 1200), b"", false),
            Probe::NotMine
        ));
        let mut draft = RFC9001_CLIENT_INITIAL.to_vec();
        draft[1..5].copy_from_slice(&0xff00_001du32.to_be_bytes());
        let d = mine(probe(&datagram(&draft, 1252), b"", false));
        assert_eq!(d.fields[0].1, "draft-29");
    }

    #[test]
    fn server_packet_alone() {
        let si = datagram(RFC9001_SERVER_INITIAL, 135);
        assert!(matches!(probe(b"", b"", false), Probe::NeedMore));
        let d = mine(probe(b"", &si, false));
        assert!(d.evidence.contains("server Initial"), "{}", d.evidence);
        // A server Initial never comes first from the client.
        assert!(matches!(
            probe(&datagram(RFC9001_SERVER_INITIAL, 1200), b"", false),
            Probe::NotMine
        ));
    }

    #[test]
    fn truncated_and_inconsistent_headers() {
        let ci = datagram(RFC9001_CLIENT_INITIAL, 1200);
        // The capture kept only the first bytes, the wire length still says 1200.
        let mut heads = vec![head(&ci, true)];
        heads[0].len = 1200;
        let cut = Quic.probe(&Payloads {
            transport: 17,
            ts: &ci[..40],
            tc: b"",
            datagrams: &heads,
            server_port: 443,
            client_port: 50000,
            last_chance: false,
        });
        assert!(matches!(cut, Probe::Mine(_)));
        // Too short to be a client's first datagram.
        assert!(matches!(probe(&ci[..300], b"", true), Probe::NotMine));
        // Header cut inside the connection IDs.
        assert!(matches!(probe(&ci[..9], b"", true), Probe::NotMine));
        // Connection ID longer than 20 bytes.
        let mut bad = ci.clone();
        bad[5] = 21;
        assert!(matches!(probe(&bad, b"", false), Probe::NotMine));
        // Length field beyond the datagram.
        let mut bad = ci.clone();
        bad[16] = 0x7f;
        assert!(matches!(probe(&bad, b"", false), Probe::NotMine));
        // Fixed bit clear.
        let mut bad = ci.clone();
        bad[0] = 0x80;
        assert!(matches!(probe(&bad, b"", false), Probe::NotMine));
        // Unknown version (and version negotiation, version 0).
        for v in [0u32, 0x5130_3530, 0x1a2a_3a4a] {
            let mut bad = ci.clone();
            bad[1..5].copy_from_slice(&v.to_be_bytes());
            assert!(matches!(probe(&bad, b"", false), Probe::NotMine));
        }
    }

    #[test]
    fn other_protocols_are_not_quic() {
        let dns = b"\xc0\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
        let stun =
            b"\x00\x01\x00\x00\x21\x12\xa4\x42\xb7\xe7\xa7\x01\xbc\x34\xd6\x86\xfa\x87\xdf\xae";
        let rtp = datagram(b"\x80\x00\x12\x34\x00\x00\x00\xa0\xde\xad\xbe\xef", 1200);
        let dtls = datagram(
            b"\x16\xfe\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\xc0\x01",
            1200,
        );
        for b in [&dns[..], &stun[..], &rtp, &dtls] {
            assert!(matches!(probe(b, b"", false), Probe::NotMine), "{b:?}");
            assert!(matches!(probe(b"", b, true), Probe::NotMine), "{b:?}");
        }
        let tcp = Quic.probe(&Payloads {
            transport: 6,
            ts: &datagram(RFC9001_CLIENT_INITIAL, 1200),
            tc: b"",
            datagrams: &[],
            server_port: 443,
            client_port: 50000,
            last_chance: false,
        });
        assert!(matches!(tcp, Probe::NotMine));
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let mut x: u32 = 99;
        for n in 0..500 {
            let len = (n * 11) % 1400;
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            if n % 2 == 0 && b.len() > 20 {
                b[..5].copy_from_slice(&[0xc0 | (n as u8 & 0x3f), 0, 0, 0, 1]);
                b[5] = (n % 24) as u8;
                if n % 4 == 0 {
                    // Huge varints for the token and the length.
                    for c in &mut b[6..20] {
                        *c = 0xff;
                    }
                }
            }
            for last in [false, true] {
                let _ = probe(&b, b"", last);
                let _ = probe(b"", &b, last);
            }
        }
    }
}
