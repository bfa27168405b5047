//! SNMP v1, v2c and v3 over UDP: the BER message down to its PDU; version and PDU type
//! (never the community string).

use super::ber::{self, Err};
use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Snmp;

fn pdu_name(tag: u8) -> Option<&'static str> {
    Some(match tag {
        0xa0 => "GetRequest",
        0xa1 => "GetNextRequest",
        0xa2 => "Response",
        0xa3 => "SetRequest",
        0xa4 => "Trap",
        0xa5 => "GetBulkRequest",
        0xa6 => "InformRequest",
        0xa7 => "SNMPv2-Trap",
        0xa8 => "Report",
        _ => return None,
    })
}

#[derive(Debug)]
struct Msg {
    version: &'static str,
    /// None when the v3 scoped PDU is encrypted.
    pdu: Option<&'static str>,
}

/// Check a PDU element: a known tag, and its first field the request-id INTEGER (v1 Trap:
/// the enterprise OID).
fn pdu(b: &[u8]) -> Result<&'static str, Err> {
    let t = ber::read(b)?;
    let name = pdu_name(t.tag).ok_or(Err::Bad)?;
    let first = if t.tag == 0xa4 { 0x06 } else { 0x02 };
    let f = ber::expect(t.body, first)?;
    if f.total() > t.len || f.len == 0 || (first == 0x02 && f.len > 5) {
        return Err(Err::Bad);
    }
    Ok(name)
}

/// Parse the SNMP message at the start of `b`, a datagram of `wire` bytes.
fn parse(b: &[u8], wire: usize) -> Result<Msg, Err> {
    let outer = ber::expect(b, 0x30)?;
    if outer.total() != wire {
        return Err(Err::Bad);
    }
    match parse_body(&outer) {
        // Running out of bytes inside a message that is all here is a malformed message;
        // only a capture's cut copy is "short".
        Err(Err::Short) if outer.complete() => Err(Err::Bad),
        r => r,
    }
}

fn parse_body(outer: &ber::Tlv<'_>) -> Result<Msg, Err> {
    let v = ber::expect(outer.body, 0x02)?;
    let version = match (v.len, v.body.first()) {
        (1, Some(0)) => "1",
        (1, Some(1)) => "2c",
        (1, Some(3)) => "3",
        (1, None) => return Err(Err::Short),
        _ => return Err(Err::Bad),
    };
    let rest = ber::after(outer.body, &v);
    if version != "3" {
        // The community is skipped by its length and never read.
        let community = ber::expect(rest, 0x04)?;
        if v.total() + community.total() >= outer.len {
            return Err(Err::Bad);
        }
        let name = pdu(ber::after(rest, &community))?;
        return Ok(Msg {
            version,
            pdu: Some(name),
        });
    }
    // msgGlobalData: msgID, msgMaxSize (484 at least), msgFlags (1 byte), msgSecurityModel.
    let global = ber::expect(rest, 0x30)?;
    let id = ber::expect(global.body, 0x02)?;
    let max = ber::expect(ber::after(global.body, &id), 0x02)?;
    let tail = ber::after(ber::after(global.body, &id), &max);
    let flags = ber::expect(tail, 0x04)?;
    let model = ber::expect(ber::after(tail, &flags), 0x02)?;
    if !global.complete()
        || id.total() + max.total() + flags.total() + model.total() != global.len
        || flags.len != 1
        || !matches!(ber::uint(&max), Some(484..=0x7fff_ffff))
        || !matches!(ber::uint(&model), Some(1..=3))
    {
        return Err(Err::Bad);
    }
    // msgSecurityParameters, then a plain ScopedPDU or an encrypted OCTET STRING.
    let after_global = ber::after(rest, &global);
    let sec = ber::expect(after_global, 0x04)?;
    let data = ber::after(after_global, &sec);
    let scoped = ber::read(data)?;
    let encrypted = flags.body[0] & 0x02 != 0;
    let pdu_name = match scoped.tag {
        0x04 if encrypted => None,
        0x30 if !encrypted => {
            let engine = ber::expect(scoped.body, 0x04)?;
            let ctx = ber::expect(ber::after(scoped.body, &engine), 0x04)?;
            Some(pdu(ber::after(ber::after(scoped.body, &engine), &ctx))?)
        }
        _ => return Err(Err::Bad),
    };
    Ok(Msg {
        version,
        pdu: pdu_name,
    })
}

fn wire_len(p: &Payloads<'_>, orig: bool, b: &[u8]) -> usize {
    p.datagrams
        .iter()
        .find(|d| d.from_orig == orig)
        .map_or(b.len(), |d| d.len as usize)
}

impl Detector for Snmp {
    fn name(&self) -> &'static str {
        "snmp"
    }

    fn protocol(&self) -> &'static str {
        "snmp"
    }

    fn tcp(&self) -> bool {
        false
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let side = |b: &[u8], orig: bool| (!b.is_empty()).then(|| parse(b, wire_len(p, orig, b)));
        let (ts, tc) = (side(p.ts, true), side(p.tc, false));
        // A datagram is whole on the wire; only the capture's copy can be short, and then
        // the fields read so far must agree.
        let m = match (ts, tc) {
            (Some(Err(Err::Bad)), _) | (_, Some(Err(Err::Bad))) => return Probe::NotMine,
            (Some(Ok(m)), _) | (_, Some(Ok(m))) => m,
            _ if p.last_chance => return Probe::NotMine,
            _ => return Probe::NeedMore,
        };
        let mut evidence = format!("SNMPv{}", m.version);
        let mut fields = vec![("exwatch.snmp.version", m.version.to_string())];
        match m.pdu {
            Some(pdu) => {
                evidence.push_str(&format!(" {pdu}"));
                fields.push(("exwatch.snmp.pdu", pdu.to_string()));
            }
            None => evidence.push_str(" encrypted scoped PDU"),
        }
        Probe::Mine(Detection {
            reversed: false,
            protocol: "snmp",
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

    // snmp.pcap (snmpget -v2c -c public): get-request for sysDescr.0 and sysName.0.
    const GET: &[u8] = b"07\x02\x01\x01\x04\x06public\xa0*\x02\x04@\x0b8\x8e\x02\x01\x00\x02\x01\x000\x1c0\x0c\x06\x08+\x06\x01\x02\x01\x01\x01\x00\x05\x000\x0c\x06\x08+\x06\x01\x02\x01\x01\x05\x00\x05\x00";
    // shared snmp.pcap: SNMPv3 discovery (noAuthNoPriv, empty engine id, get-request).
    const V3: &[u8] = b"0>\x02\x01\x030\x11\x02\x04l\x9a\xf5n\x02\x03\x00\xff\xe3\x04\x01\x04\x02\x01\x03\x04\x100\x0e\x04\x00\x02\x01\x00\x02\x01\x00\x04\x00\x04\x00\x04\x000\x14\x04\x00\x04\x00\xa0\x0e\x02\x04u\x05X\x88\x02\x01\x00\x02\x01\x000\x00";

    fn head(from_orig: bool, b: &[u8], wire: usize) -> DatagramHead {
        DatagramHead::new(from_orig, b, wire as u32)
    }

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], heads: &'a [DatagramHead]) -> Payloads<'a> {
        Payloads {
            transport: 17,
            ts,
            tc,
            datagrams: heads,
            server_port: 161,
            client_port: 48422,
            last_chance: false,
        }
    }

    #[test]
    fn v2c_get_request_without_the_community() {
        let heads = [head(true, GET, GET.len())];
        let Probe::Mine(d) = Snmp.probe(&view(GET, b"", &heads)) else {
            panic!()
        };
        assert_eq!(d.evidence, "SNMPv2c GetRequest");
        assert_eq!(
            d.fields,
            vec![
                ("exwatch.snmp.version", "2c".to_string()),
                ("exwatch.snmp.pdu", "GetRequest".to_string())
            ]
        );
        assert!(!format!("{d:?}").contains("public"));
    }

    #[test]
    fn v3_discovery() {
        let heads = [head(true, V3, V3.len())];
        let Probe::Mine(d) = Snmp.probe(&view(V3, b"", &heads)) else {
            panic!()
        };
        assert_eq!(d.evidence, "SNMPv3 GetRequest");
    }

    #[test]
    fn truncated_capture_copy_and_wrong_lengths() {
        // The capture kept 16 bytes of a 57-byte datagram: too little to check the PDU.
        let heads = [head(true, &GET[..16], GET.len())];
        assert!(matches!(
            Snmp.probe(&view(&GET[..16], b"", &heads)),
            Probe::NeedMore
        ));
        let last = Payloads {
            last_chance: true,
            ..view(&GET[..16], b"", &heads)
        };
        assert!(matches!(Snmp.probe(&last), Probe::NotMine));
        // Declared length disagrees with the datagram.
        let heads = [head(true, GET, GET.len() + 1)];
        assert!(matches!(
            Snmp.probe(&view(GET, b"", &heads)),
            Probe::NotMine
        ));
        // Split is impossible in UDP; an empty view waits.
        assert!(matches!(Snmp.probe(&view(b"", b"", &[])), Probe::NeedMore));
        // Once the reply arrives with the request cut short, the reply decides.
        let heads = [
            head(true, &GET[..16], GET.len()),
            head(false, GET, GET.len()),
        ];
        assert!(matches!(
            Snmp.probe(&view(&GET[..16], GET, &heads)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn hostile_lengths_and_random_bytes() {
        for b in [
            &b"0\x84\xff\xff\xff\xff\x02\x01\x01"[..],
            b"0\x00",
            b"0\x05\x02\x01\x01\x04\x00",
            b"0\x09\x02\x01\x01\x04\x00\xa0\x02\x02\x00",
        ] {
            let heads = [head(true, b, b.len())];
            assert!(
                matches!(Snmp.probe(&view(b, b"", &heads)), Probe::NotMine),
                "{b:?}"
            );
        }
        let mut x: u32 = 3;
        let mut buf = [0u8; 72];
        for round in 0..600 {
            for b in buf.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = (x >> 16) as u8;
            }
            if round % 2 == 0 {
                buf[..5].copy_from_slice(&[0x30, 70, 2, 1, [0, 1, 3][round % 3]]);
            }
            let n = (x as usize >> 8) % buf.len();
            let heads = [head(true, &buf[..n], n + round % 2)];
            let _ = Snmp.probe(&view(&buf[..n], &buf[n..], &heads));
        }
    }

    #[test]
    fn ldap_is_not_snmp() {
        // CLDAP netlogon ping: SEQUENCE, INTEGER, then an application tag.
        let cldap = b"0B\x02\x03\x00\x88\xa0c;\x04\x00\n\x01\x00\n\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00\xa0\x1c\xa3\r\x04\x05NtVer\x04\x04\x06\x00\x00\x00\xa3\x0b\x04\x03AAC\x04\x04\x00\x00\x00\x000\n\x04\x08NetLogon";
        let heads = [head(true, cldap, cldap.len())];
        assert!(matches!(
            Snmp.probe(&view(cldap, b"", &heads)),
            Probe::NotMine
        ));
    }
}
