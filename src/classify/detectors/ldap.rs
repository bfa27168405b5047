//! LDAP over TCP (any port) and CLDAP over UDP: a BER LDAPMessage checked down to its first
//! operation field; bind kind (never the DN or password) and StartTLS upgrades.

use super::ber::{self, Err};
use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Ldap;

/// The StartTLS extended operation (RFC 4511 4.14.1).
const STARTTLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";

/// A protocolOp application tag: its name and the tag its first field must carry (`None`:
/// primitive or empty operation, checked by length instead).
struct Op {
    tag: u8,
    name: &'static str,
    first: Option<u8>,
}

const OPS: &[Op] = &[
    Op {
        tag: 0x60,
        name: "bindRequest",
        first: Some(0x02),
    },
    Op {
        tag: 0x61,
        name: "bindResponse",
        first: Some(0x0a),
    },
    Op {
        tag: 0x42,
        name: "unbindRequest",
        first: None,
    },
    Op {
        tag: 0x63,
        name: "searchRequest",
        first: Some(0x04),
    },
    Op {
        tag: 0x64,
        name: "searchResEntry",
        first: Some(0x04),
    },
    Op {
        tag: 0x65,
        name: "searchResDone",
        first: Some(0x0a),
    },
    Op {
        tag: 0x73,
        name: "searchResRef",
        first: Some(0x04),
    },
    Op {
        tag: 0x66,
        name: "modifyRequest",
        first: Some(0x04),
    },
    Op {
        tag: 0x67,
        name: "modifyResponse",
        first: Some(0x0a),
    },
    Op {
        tag: 0x68,
        name: "addRequest",
        first: Some(0x04),
    },
    Op {
        tag: 0x69,
        name: "addResponse",
        first: Some(0x0a),
    },
    Op {
        tag: 0x4a,
        name: "delRequest",
        first: None,
    },
    Op {
        tag: 0x6b,
        name: "delResponse",
        first: Some(0x0a),
    },
    Op {
        tag: 0x6c,
        name: "modDNRequest",
        first: Some(0x04),
    },
    Op {
        tag: 0x6d,
        name: "modDNResponse",
        first: Some(0x0a),
    },
    Op {
        tag: 0x6e,
        name: "compareRequest",
        first: Some(0x04),
    },
    Op {
        tag: 0x6f,
        name: "compareResponse",
        first: Some(0x0a),
    },
    Op {
        tag: 0x50,
        name: "abandonRequest",
        first: None,
    },
    Op {
        tag: 0x77,
        name: "extendedReq",
        first: Some(0x80),
    },
    Op {
        tag: 0x78,
        name: "extendedResp",
        first: Some(0x0a),
    },
];

/// What one direction's first bytes are.
#[derive(Debug)]
enum Parsed {
    Empty,
    /// A valid beginning, too short to judge.
    Prefix,
    Bad,
    Msg(Msg),
}

#[derive(Debug)]
struct Msg {
    op: &'static str,
    /// "simple" or "sasl" for a bindRequest whose authentication choice is in the buffer.
    bind_auth: Option<&'static str>,
    starttls: bool,
    /// Bytes of the whole LDAPMessage, when it is all in the buffer.
    complete_len: Option<usize>,
}

/// Map a header read failure at a point where the buffer simply ended.
fn short_or_bad(e: Err) -> Parsed {
    match e {
        Err::Short => Parsed::Prefix,
        Err::Bad => Parsed::Bad,
    }
}

/// Parse the LDAPMessage at the start of `b`. `wire_len`: the datagram's length on the wire
/// (UDP), which the message must fill exactly.
fn parse(b: &[u8], wire_len: Option<usize>) -> Parsed {
    if b.is_empty() {
        return Parsed::Empty;
    }
    if b[0] != 0x30 {
        return Parsed::Bad;
    }
    let outer = match ber::read(b) {
        Ok(t) => t,
        Err(e) => return short_or_bad(e),
    };
    // messageID (3 bytes at least) and an operation header (2 at least).
    if outer.len < 5 || wire_len.is_some_and(|w| w != outer.total()) {
        return Parsed::Bad;
    }
    let body = outer.body;
    let id = match ber::expect(body, 0x02) {
        Ok(t) => t,
        Err(e) => return short_or_bad(e),
    };
    if id.len == 0 || id.len > 4 || id.total() >= outer.len {
        return Parsed::Bad;
    }
    if !id.complete() {
        return Parsed::Prefix;
    }
    if ber::uint(&id).is_none() {
        return Parsed::Bad;
    }
    let rest = ber::after(body, &id);
    let op = match ber::read(rest) {
        Ok(t) => t,
        Err(e) => return short_or_bad(e),
    };
    let Some(spec) = OPS.iter().find(|o| o.tag == op.tag) else {
        return Parsed::Bad;
    };
    let op_end = id.total() + op.total();
    if op_end > outer.len {
        return Parsed::Bad;
    }
    // Anything after the operation can only be the controls, [0] SEQUENCE OF Control.
    if op_end < outer.len {
        match body.get(op_end) {
            Some(0xa0) | None => {}
            Some(_) => return Parsed::Bad,
        }
    }
    let mut bind_auth = None;
    let mut starttls = false;
    match spec.first {
        None => {
            let ok = match op.tag {
                0x42 => op.len == 0,
                0x50 => (1..=4).contains(&op.len),
                _ => true, // delRequest: the DN itself
            };
            if !ok {
                return Parsed::Bad;
            }
        }
        Some(first) => {
            let f = match ber::expect(op.body, first) {
                Ok(t) => t,
                Err(e) => return short_or_bad(e),
            };
            if f.total() > op.len {
                return Parsed::Bad;
            }
            match op.tag {
                0x60 => {
                    // version INTEGER 1..3, name LDAPDN, then the authentication choice.
                    if !f.complete() {
                        return Parsed::Prefix;
                    }
                    if !matches!(ber::uint(&f), Some(1..=3)) {
                        return Parsed::Bad;
                    }
                    let after_version = ber::after(op.body, &f);
                    match ber::expect(after_version, 0x04) {
                        Ok(name) => {
                            // Only the tag of what follows the DN is looked at.
                            bind_auth = match ber::after(after_version, &name).first() {
                                Some(0x80) => Some("simple"),
                                Some(0xa3) => Some("sasl"),
                                Some(_) => return Parsed::Bad,
                                None => None,
                            };
                        }
                        Err(Err::Short) => {}
                        Err(Err::Bad) => return Parsed::Bad,
                    }
                }
                0x63 => {
                    // baseObject, then scope ENUMERATED 0..3.
                    if let Ok(scope) = ber::read(ber::after(op.body, &f)) {
                        if scope.tag != 0x0a
                            || (scope.complete() && !matches!(ber::uint(&scope), Some(0..=3)))
                        {
                            return Parsed::Bad;
                        }
                    }
                }
                0x77 => {
                    if !f.complete() {
                        return Parsed::Prefix;
                    }
                    // requestName is an OID in dotted text.
                    if f.body.is_empty() || !f.body.iter().all(|&c| c.is_ascii_digit() || c == b'.')
                    {
                        return Parsed::Bad;
                    }
                    starttls = f.body == STARTTLS_OID;
                }
                // resultCode ENUMERATED.
                _ if first == 0x0a && f.complete() && (f.len > 2 || ber::uint(&f).is_none()) => {
                    return Parsed::Bad;
                }
                _ => {}
            }
        }
    }
    Parsed::Msg(Msg {
        op: spec.name,
        bind_auth,
        starttls,
        complete_len: outer.complete().then(|| outer.total()),
    })
}

/// The wire length of the first datagram sent by the originator (`orig`) or the responder.
fn wire_len(p: &Payloads<'_>, orig: bool) -> Option<usize> {
    p.datagrams
        .iter()
        .find(|d| d.from_orig == orig)
        .map(|d| d.len as usize)
}

impl Detector for Ldap {
    fn name(&self) -> &'static str {
        "ldap"
    }

    fn protocol(&self) -> &'static str {
        "ldap"
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let udp = p.is_udp();
        let (ts_len, tc_len) = if udp {
            (wire_len(p, true), wire_len(p, false))
        } else {
            (None, None)
        };
        let ts = parse(p.ts, ts_len);
        let tc = parse(p.tc, tc_len);
        let (m_ts, m_tc) = match (&ts, &tc) {
            (Parsed::Msg(a), Parsed::Msg(b)) => (Some(a), Some(b)),
            (Parsed::Msg(a), _) => (Some(a), None),
            (_, Parsed::Msg(b)) => (None, Some(b)),
            (Parsed::Bad, Parsed::Bad) => return Probe::NotMine,
            // Datagrams are whole: a refused one decides. Over TCP a refused client side
            // alone does not: the server's reply can still be LDAP when the capture lost the
            // client's first bytes.
            (Parsed::Bad, _) | (_, Parsed::Bad) if udp => return Probe::NotMine,
            _ if p.last_chance => return Probe::NotMine,
            _ => return Probe::NeedMore,
        };
        // A bind's authentication choice follows the DN: worth one more segment.
        if let Some(m) = m_ts {
            if m.op == "bindRequest"
                && m.bind_auth.is_none()
                && m.complete_len.is_none()
                && !p.last_chance
            {
                return Probe::NeedMore;
            }
        }
        let kind = if udp { "CLDAP" } else { "LDAP" };
        let mut evidence = kind.to_string();
        let mut fields = Vec::new();
        let ops: Vec<&str> = m_ts.iter().chain(m_tc.iter()).map(|m| m.op).collect();
        evidence.push(' ');
        evidence.push_str(&ops.join(" / "));
        fields.push(("exwatch.ldap.operation", ops[0].to_string()));
        if let Some(a) = m_ts.and_then(|m| m.bind_auth) {
            evidence.push_str(&format!(" ({a} bind)"));
            fields.push(("exwatch.ldap.bind_auth", a.to_string()));
        }
        if let Some(m) = m_ts.filter(|m| m.starttls && !udp) {
            // The client starts its TLS handshake right after the request (or after the
            // server's success reply): follow it one step.
            let after = m
                .complete_len
                .and_then(|n| p.ts.get(n..))
                .unwrap_or_default();
            let tc_after = match (m_tc, m_tc.and_then(|r| r.complete_len)) {
                (Some(r), Some(n)) if r.op == "extendedResp" => p.tc.get(n..).unwrap_or_default(),
                _ => &[],
            };
            if after.is_empty() && tc_after.is_empty() && !p.last_chance {
                return Probe::NeedMore;
            }
            if super::tls::upgrade_into_tls(
                "StartTLS",
                after,
                tc_after,
                p.last_chance,
                &mut evidence,
                &mut fields,
            )
            .is_none()
            {
                return Probe::NeedMore;
            }
        }
        Probe::Mine(Detection {
            reversed: false,
            protocol: "ldap",
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

    fn tcp<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        Payloads {
            transport: 6,
            ts,
            tc,
            datagrams: &[],
            server_port: 389,
            client_port: 50000,
            last_chance: last,
        }
    }

    fn head(from_orig: bool, b: &[u8]) -> DatagramHead {
        DatagramHead::new(from_orig, b, b.len() as u32)
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    // ldap-389.pcap, first connection (slapd, ldapsearch -x): simple bind with the password.
    const BIND: &[u8] = b"0D\x02\x01\x01`?\x02\x01\x03\x04%uid=jdoe,ou=people,dc=contoso,dc=test\x80\x13exwatch-secret-pw-4";
    const BIND_OK: &[u8] = b"0\x0c\x02\x01\x01a\x07\n\x01\x00\x04\x00\x04\x00";
    // Second connection: StartTLS extended request, success, then the ClientHello.
    const STARTTLS: &[u8] = b"0\x1d\x02\x01\x01w\x18\x80\x161.3.6.1.4.1.1466.20037";
    const STARTTLS_OK: &[u8] = b"0\x0c\x02\x01\x01x\x07\n\x01\x00\x04\x00\x04\x00";
    // cldap-389-udp.pcap: Samba netlogon ping (search, base "", filter NtVer/AAC).
    const CLDAP: &[u8] = b"0B\x02\x03\x00\x88\xa0c;\x04\x00\n\x01\x00\n\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00\xa0\x1c\xa3\r\x04\x05NtVer\x04\x04\x06\x00\x00\x00\xa3\x0b\x04\x03AAC\x04\x04\x00\x00\x00\x000\n\x04\x08NetLogon";

    #[test]
    fn simple_bind_never_records_the_password_or_dn() {
        let Probe::Mine(d) = Ldap.probe(&tcp(BIND, BIND_OK, false)) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.ldap.operation"), Some("bindRequest"));
        assert_eq!(field(&d, "exwatch.ldap.bind_auth"), Some("simple"));
        assert_eq!(d.evidence, "LDAP bindRequest / bindResponse (simple bind)");
        let all = format!("{d:?}");
        assert!(
            !all.contains("exwatch-secret-pw-4") && !all.contains("jdoe"),
            "{all}"
        );
    }

    #[test]
    fn starttls_followed_into_tls() {
        let ts = STARTTLS.to_vec();
        assert!(matches!(
            Ldap.probe(&tcp(&ts, STARTTLS_OK, false)),
            Probe::NeedMore
        ));
        let d = super::super::tls::tests::assert_follows_upgrade(
            &Ldap,
            tcp,
            &ts,
            STARTTLS_OK,
            "StartTLS upgrade",
        );
        assert_eq!(field(&d, "exwatch.tls_upgrade"), Some("StartTLS"));
        assert_eq!(field(&d, "exwatch.ldap.operation"), Some("extendedReq"));
    }

    #[test]
    fn cldap_netlogon_ping_over_udp() {
        let heads = [head(true, CLDAP)];
        let p = Payloads {
            transport: 17,
            ts: CLDAP,
            tc: b"",
            datagrams: &heads,
            server_port: 389,
            client_port: 43680,
            last_chance: false,
        };
        let Probe::Mine(d) = Ldap.probe(&p) else {
            panic!()
        };
        assert_eq!(d.evidence, "CLDAP searchRequest");
        // A datagram longer than the message it carries is not CLDAP.
        let mut longer = CLDAP.to_vec();
        longer.push(0);
        let heads = [head(true, &longer)];
        let p = Payloads {
            ts: &longer,
            datagrams: &heads,
            ..p
        };
        assert!(matches!(Ldap.probe(&p), Probe::NotMine | Probe::NeedMore));
    }

    #[test]
    fn active_directory_four_byte_lengths() {
        // ldap_simpleauth.pcap (AD Global Catalog): the reply pads lengths to 4 bytes.
        let tc =
            b"0\x84\x00\x00\x00\x10\x02\x01\x01a\x84\x00\x00\x00\x07\n\x01\x00\x04\x00\x04\x00";
        let Probe::Mine(d) = Ldap.probe(&tcp(b"", tc, false)) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.ldap.operation"), Some("bindResponse"));
    }

    #[test]
    fn split_across_segments() {
        for cut in 1..BIND.len() {
            let r = Ldap.probe(&tcp(&BIND[..cut], b"", false));
            // Once the DN's header is in, the message is recognised; before, more is needed.
            assert!(
                matches!(r, Probe::NeedMore | Probe::Mine(_)),
                "cut {cut}: {r:?}"
            );
        }
        assert!(matches!(
            Ldap.probe(&tcp(&BIND[..6], b"", false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Ldap.probe(&tcp(&BIND[..6], b"", true)),
            Probe::NotMine
        ));
        assert!(matches!(Ldap.probe(&tcp(BIND, b"", false)), Probe::Mine(_)));
    }

    #[test]
    fn truncated_and_inconsistent_lengths() {
        // Operation longer than the message.
        assert!(matches!(
            Ldap.probe(&tcp(b"0\x07\x02\x01\x01a\x09\n\x01\x00", b"", false)),
            Probe::NotMine | Probe::NeedMore
        ));
        assert!(matches!(
            Ldap.probe(&tcp(b"0\x07\x02\x01\x01a\x09\n\x01\x00", b"0\x00", false)),
            Probe::NotMine
        ));
        // Huge declared length, indefinite length, zero lengths.
        for b in [
            &b"0\x84\xff\xff\xff\xff\x02\x01\x01"[..],
            b"0\x80\x02\x01\x01a\x00",
            b"0\x00",
            b"0\x05\x02\x00a\x00\x00",
            b"0\x05\x02\x01\x01\x42\x01",
        ] {
            assert!(
                matches!(Ldap.probe(&tcp(b, b, true)), Probe::NotMine),
                "{b:?}"
            );
        }
    }

    #[test]
    fn other_protocols_are_not_ldap() {
        // SNMP v2c get-request: a SEQUENCE with an INTEGER, then a community string.
        let snmp =
            b"07\x02\x01\x01\x04\x06public\xa0*\x02\x04@\x0b8\x8e\x02\x01\x00\x02\x01\x000\x1c";
        for ts in [
            &snmp[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc",
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(
                    Ldap.probe(&tcp(ts, b"HTTP/1.1 200 OK\r\n", false)),
                    Probe::NotMine
                ),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let mut x: u32 = 0x1234_5678;
        let mut buf = [0u8; 64];
        for round in 0..600 {
            for b in buf.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = (x >> 16) as u8;
            }
            // Bias towards LDAP-looking starts so the deeper paths run too.
            if round % 2 == 0 {
                buf[0] = 0x30;
                buf[2] = 0x02;
                buf[3] = 0x01;
                buf[5] = OPS[round % OPS.len()].tag;
            }
            let n = (x as usize >> 8) % buf.len();
            let _ = Ldap.probe(&tcp(&buf[..n], &buf[n..], round % 3 == 0));
            let heads = [head(true, &buf[..n])];
            let _ = Ldap.probe(&Payloads {
                transport: 17,
                datagrams: &heads,
                ..tcp(&buf[..n], b"", false)
            });
        }
    }
}
