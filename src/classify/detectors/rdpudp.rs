//! RDP over UDP ([MS-RDPEUDP] 2.2.2, 3.1.5.1.1): the SYN and SYN+ACK datagrams that open an
//! RDP-UDP connection, on any port; reported as `rdp`, as the TCP connection it belongs to.
//!
//! Both datagrams are an RDPUDP_FEC_HEADER, an RDPUDP_SYNDATA_PAYLOAD, optionally the
//! correlation id and the RDPUDP_SYNDATAEX_PAYLOAD, zero-padded to exactly 1232 bytes. All
//! integers are big-endian.

use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

/// The size every SYN and SYN+ACK is padded to (3.1.5.1.1 step 5).
const SYN_LEN: usize = 1232;
/// The range uUpStreamMtu and uDownStreamMtu must lie in (2.2.2.5).
const MTU: std::ops::RangeInclusive<u16> = 1132..=1232;

const FLAG_SYN: u16 = 0x0001;
const FLAG_ACK: u16 = 0x0004;
const FLAG_SYNLOSSY: u16 = 0x0200;
const FLAG_CORRELATION_ID: u16 = 0x0800;
const FLAG_SYNEX: u16 = 0x1000;
/// The only flags a SYN or SYN+ACK may carry.
const SYN_FLAGS: u16 = FLAG_SYN | FLAG_ACK | FLAG_SYNLOSSY | FLAG_CORRELATION_ID | FLAG_SYNEX;
/// uSynExFlags: RDPUDP_VERSION_INFO_VALID, the one flag defined (2.2.2.9).
const VERSION_INFO_VALID: u16 = 0x0001;

/// What a SYN or SYN+ACK says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Syn {
    ack: bool,
    /// snSourceAck: -1 in a SYN, the SYN's initial sequence number in a SYN+ACK.
    source_ack: u32,
    /// snInitialSequenceNumber.
    isn: u32,
    lossy: bool,
    /// uUdpVer of the RDPUDP_SYNDATAEX_PAYLOAD (1 when absent).
    version: u16,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parse a SYN or SYN+ACK datagram of `wire` bytes on the wire whose first bytes are `b`.
fn parse(b: &[u8], wire: usize) -> Option<Syn> {
    if wire != SYN_LEN || b.len() < 16 {
        return None;
    }
    let source_ack = be32(b, 0)?;
    let window = be16(b, 4)?;
    let flags = be16(b, 6)?;
    if flags & FLAG_SYN == 0 || flags & !SYN_FLAGS != 0 || window == 0 {
        return None;
    }
    let ack = flags & FLAG_ACK != 0;
    // A SYN acknowledges nothing (snSourceAck -1, 3.1.5.1.1); a SYN+ACK acknowledges the
    // SYN's sequence number, which could be any value, even -1.
    if !ack && source_ack != u32::MAX {
        return None;
    }
    let isn = be32(b, 8)?;
    let (up, down) = (be16(b, 12)?, be16(b, 14)?);
    if !MTU.contains(&up) || !MTU.contains(&down) {
        return None;
    }
    let mut at = 16;
    if flags & FLAG_CORRELATION_ID != 0 {
        // RDPUDP_CORRELATION_ID_PAYLOAD: a 16-byte id and 16 reserved bytes (2.2.2.8).
        b.get(at..at + 32)?;
        at += 32;
    }
    let mut version = 1;
    if flags & FLAG_SYNEX != 0 {
        let ex_flags = be16(b, at)?;
        version = be16(b, at + 2)?;
        if ex_flags != VERSION_INFO_VALID || !matches!(version, 0x0001 | 0x0002 | 0x0101) {
            return None;
        }
        at += 4;
        if version == 0x0101 {
            // RDPUDP_PROTOCOL_VERSION_3 carries the 32-byte cookie hash.
            b.get(at..at + 32)?;
            at += 32;
        }
    }
    // The rest is padding: zeros, as far as it was captured.
    if b.get(at..)?.iter().any(|&x| x != 0) {
        return None;
    }
    Some(Syn {
        ack,
        source_ack,
        isn,
        lossy: flags & FLAG_SYNLOSSY != 0,
        version,
    })
}

fn wire_len(p: &Payloads<'_>, orig: bool, b: &[u8]) -> usize {
    p.datagrams
        .iter()
        .find(|d| d.from_orig == orig)
        .map_or(b.len(), |d| d.len as usize)
}

fn version_name(v: u16) -> &'static str {
    match v {
        0x0001 => "1",
        0x0002 => "2",
        _ => "3 (RDP-UDP2)",
    }
}

fn detection(syn: Option<Syn>, synack: Option<Syn>) -> Detection {
    let mut evidence = match (syn, synack) {
        (Some(s), Some(a)) if a.source_ack == s.isn => {
            "MS-RDPEUDP SYN and a SYN+ACK acknowledging its sequence number".to_string()
        }
        (Some(_), Some(_)) => {
            "MS-RDPEUDP SYN and SYN+ACK (acknowledging another SYN's sequence number)".to_string()
        }
        (Some(_), None) => "MS-RDPEUDP SYN, no SYN+ACK seen".to_string(),
        _ => "MS-RDPEUDP SYN+ACK, its SYN not seen".to_string(),
    };
    // The answer says what both ends settled on; the SYN what the client offered.
    if let Some(s) = synack.or(syn) {
        evidence.push_str(&format!(
            ", RDP-UDP version {}, {}",
            version_name(s.version),
            if s.lossy { "lossy" } else { "reliable" }
        ));
    }
    Detection {
        reversed: false,
        protocol: "rdp",
        service: None,
        confidence: Confidence::Payload,
        evidence,
        fields: Vec::new(),
    }
}

pub struct RdpUdp;

impl Detector for RdpUdp {
    fn name(&self) -> &'static str {
        "rdpudp"
    }

    fn protocol(&self) -> &'static str {
        "rdp"
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
        let mut parsed = [None, None];
        for (i, (b, orig)) in [(p.ts, true), (p.tc, false)].into_iter().enumerate() {
            if b.is_empty() {
                continue;
            }
            match parse(b, wire_len(p, orig, b)) {
                Some(s) => parsed[i] = Some(s),
                None => return Probe::NotMine,
            }
        }
        // Either end may have been seen first: the SYN is the one without ACK.
        let (mut syn, mut synack) = (None, None);
        for s in parsed.into_iter().flatten() {
            let slot = if s.ack { &mut synack } else { &mut syn };
            if slot.is_some() {
                // Two SYNs or two SYN+ACKs facing each other are no handshake.
                return Probe::NotMine;
            }
            *slot = Some(s);
        }
        match (syn, synack) {
            (None, None) => Probe::NeedMore,
            // A lone SYN: wait for the answer that would confirm it.
            (Some(_), None) if !p.last_chance => Probe::NeedMore,
            _ => Probe::Mine(detection(syn, synack)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::detector::testing::{
        assert_not_mine, assert_truncated, probe_hostile, udp_probe,
    };

    /// A SYN (or with `ack` a SYN+ACK) laid out as [MS-RDPEUDP] 2.2.2 defines it.
    fn syn(ack: Option<u32>, flags: u16, isn: u32, ex: Option<u16>) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&ack.unwrap_or(u32::MAX).to_be_bytes());
        b.extend_from_slice(&64u16.to_be_bytes());
        let mut f = FLAG_SYN | flags;
        if ack.is_some() {
            f |= FLAG_ACK;
        }
        if ex.is_some() {
            f |= FLAG_SYNEX;
        }
        b.extend_from_slice(&f.to_be_bytes());
        b.extend_from_slice(&isn.to_be_bytes());
        b.extend_from_slice(&1232u16.to_be_bytes());
        b.extend_from_slice(&1232u16.to_be_bytes());
        if f & FLAG_CORRELATION_ID != 0 {
            b.extend_from_slice(&[0x42; 16]);
            b.extend_from_slice(&[0; 16]);
        }
        if let Some(v) = ex {
            b.extend_from_slice(&VERSION_INFO_VALID.to_be_bytes());
            b.extend_from_slice(&v.to_be_bytes());
            if v == 0x0101 {
                b.extend_from_slice(&[0x17; 32]);
            }
        }
        b.resize(SYN_LEN, 0);
        b
    }

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        Payloads {
            transport: crate::decode::IPPROTO_UDP,
            ts,
            tc,
            datagrams: &[],
            server_port: 3389,
            client_port: 50000,
            last_chance: last,
        }
    }

    fn mine(p: Probe) -> Detection {
        match p {
            Probe::Mine(d) => d,
            other => panic!("expected Mine, got {other:?}"),
        }
    }

    #[test]
    fn syn_and_syn_ack_on_any_port() {
        let s = syn(None, FLAG_CORRELATION_ID, 0x1234_5678, Some(0x0002));
        let a = syn(Some(0x1234_5678), 0, 0x0bad_cafe, Some(0x0002));
        for port in [3389, 3391, 50123] {
            // The SYN alone waits for its answer.
            assert!(matches!(
                udp_probe(&RdpUdp, &s, b"", port, false),
                Probe::NeedMore
            ));
            let d = mine(udp_probe(&RdpUdp, &s, &a, port, false));
            assert_eq!(d.protocol, "rdp");
            assert!(
                d.evidence.contains("acknowledging its sequence number"),
                "{}",
                d.evidence
            );
            assert!(d.evidence.contains("version 2, reliable"), "{}", d.evidence);
        }
        // A SYN+ACK for another SYN is still RDP-UDP, and says so.
        let other = syn(Some(7), 0, 9, None);
        let d = mine(udp_probe(&RdpUdp, &s, &other, 3389, false));
        assert!(d.evidence.contains("another SYN"), "{}", d.evidence);
    }

    #[test]
    fn lossy_version_3_and_half_handshakes() {
        let s = syn(None, FLAG_SYNLOSSY, 1, Some(0x0101));
        let a = syn(Some(1), FLAG_SYNLOSSY, 2, Some(0x0101));
        let d = mine(udp_probe(&RdpUdp, &s, &a, 3389, false));
        assert!(
            d.evidence.contains("version 3 (RDP-UDP2), lossy"),
            "{}",
            d.evidence
        );
        // Only the server's answer captured, or the flow seen from the server's side first.
        let d = mine(udp_probe(&RdpUdp, b"", &a, 3389, false));
        assert!(d.evidence.contains("its SYN not seen"), "{}", d.evidence);
        let d = mine(udp_probe(&RdpUdp, &a, &s, 50000, false));
        assert!(d.evidence.contains("acknowledging"), "{}", d.evidence);
        // An unanswered SYN is named at the flow's end.
        let d = mine(udp_probe(&RdpUdp, &s, b"", 3389, true));
        assert!(d.evidence.contains("no SYN+ACK seen"), "{}", d.evidence);
    }

    #[test]
    fn refusals() {
        let good = syn(None, 0, 5, None);
        assert!(parse(&good, SYN_LEN).is_some());
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            let wire = b.len();
            parse(&b, wire).is_none()
        };
        assert!(bad(&|b| b.truncate(1200))); // not padded to 1232
        assert!(bad(&|b| b.push(0))); // longer than 1232
        assert!(bad(&|b| b[0] = 0)); // a SYN that acknowledges something
        assert!(bad(&|b| b[7] = 0x08)); // DATA, not SYN
        assert!(bad(&|b| b[6] = 0x01 | 0x04)); // SYN with FEC-era flags (ACK_OF_ACKS, ACKDELAYED)
        assert!(bad(&|b| b[4..6].fill(0))); // no receive window
        assert!(bad(&|b| b[12..14].copy_from_slice(&1500u16.to_be_bytes()))); // MTU range
        assert!(bad(&|b| b[14..16].copy_from_slice(&1000u16.to_be_bytes())));
        assert!(bad(&|b| b[700] = 1)); // padding not zero
                                       // SYNEX with an unknown version or without VERSION_INFO_VALID.
        let mut ex = syn(None, 0, 5, Some(0x0003));
        assert!(parse(&ex, SYN_LEN).is_none());
        ex = syn(None, 0, 5, Some(0x0002));
        ex[17] = 0;
        assert!(parse(&ex, SYN_LEN).is_none());
        // Two SYNs facing each other.
        assert!(matches!(
            udp_probe(&RdpUdp, &good, &good, 3389, false),
            Probe::NotMine
        ));
    }

    #[test]
    fn truncated_hostile_and_other_protocols() {
        let s = syn(None, 0, 5, None);
        assert_truncated(
            &RdpUdp,
            view,
            &[(&s[..10], b""), (&s[..16], b""), (b"", &s[..3])],
        );
        assert_not_mine(
            &RdpUdp,
            view,
            &[
                (b"\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl", b""), // STUN
                (b"\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01", b""), // RTP
                (b"REGISTER sip:x SIP/2.0\r\n\r\n", b""),
                (&[0u8; 1232], b""), // zeros: no SYN flag
            ],
        );
        probe_hostile(
            &RdpUdp,
            view,
            &[0x00, 0x01, 0x04, 0x04, 0xff, 0x12],
            7,
            3000,
        );
        // A capture cut short (snaplen) still has its wire length: the padding it holds is
        // checked, what it lacks is not.
        let heads = [crate::classify::detector::DatagramHead::new(true, &s, 1232)];
        let p = Payloads {
            datagrams: &heads,
            ..view(&s[..100], b"", true)
        };
        assert!(matches!(RdpUdp.probe(&p), Probe::Mine(_)));
    }
}
