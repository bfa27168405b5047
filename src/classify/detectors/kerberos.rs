//! Kerberos v5 over UDP and TCP (RFC 4120 7.2.2 record mark): KDC and AP messages whose
//! application tag, pvno 5 and msg-type agree; message type, error code and realm.

use super::ber::{self, Err};
use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Kerberos;

/// Largest TCP record believed (Windows' MaxTokenSize tops out at 64 KiB; AD allows more
/// for big PACs, nothing near this).
const MAX_RECORD: usize = 1 << 20;

/// Application tag -> (msg-type, name). The tag number *is* the msg-type.
fn message_name(tag: u8) -> Option<&'static str> {
    Some(match tag {
        0x6a => "AS-REQ",
        0x6b => "AS-REP",
        0x6c => "TGS-REQ",
        0x6d => "TGS-REP",
        0x6e => "AP-REQ",
        0x6f => "AP-REP",
        0x7e => "KRB-ERROR",
        _ => return None,
    })
}

/// RFC 4120 7.5.9 and RFC 4556/6113 error codes.
fn error_name(code: u64) -> Option<&'static str> {
    Some(match code {
        0 => "KDC_ERR_NONE",
        1 => "KDC_ERR_NAME_EXP",
        2 => "KDC_ERR_SERVICE_EXP",
        3 => "KDC_ERR_BAD_PVNO",
        4 => "KDC_ERR_C_OLD_MAST_KVNO",
        5 => "KDC_ERR_S_OLD_MAST_KVNO",
        6 => "KDC_ERR_C_PRINCIPAL_UNKNOWN",
        7 => "KDC_ERR_S_PRINCIPAL_UNKNOWN",
        8 => "KDC_ERR_PRINCIPAL_NOT_UNIQUE",
        9 => "KDC_ERR_NULL_KEY",
        10 => "KDC_ERR_CANNOT_POSTDATE",
        11 => "KDC_ERR_NEVER_VALID",
        12 => "KDC_ERR_POLICY",
        13 => "KDC_ERR_BADOPTION",
        14 => "KDC_ERR_ETYPE_NOSUPP",
        15 => "KDC_ERR_SUMTYPE_NOSUPP",
        16 => "KDC_ERR_PADATA_TYPE_NOSUPP",
        17 => "KDC_ERR_TRTYPE_NOSUPP",
        18 => "KDC_ERR_CLIENT_REVOKED",
        19 => "KDC_ERR_SERVICE_REVOKED",
        20 => "KDC_ERR_TGT_REVOKED",
        21 => "KDC_ERR_CLIENT_NOTYET",
        22 => "KDC_ERR_SERVICE_NOTYET",
        23 => "KDC_ERR_KEY_EXPIRED",
        24 => "KDC_ERR_PREAUTH_FAILED",
        25 => "KDC_ERR_PREAUTH_REQUIRED",
        26 => "KDC_ERR_SERVER_NOMATCH",
        27 => "KDC_ERR_MUST_USE_USER2USER",
        28 => "KDC_ERR_PATH_NOT_ACCEPTED",
        29 => "KDC_ERR_SVC_UNAVAILABLE",
        31 => "KRB_AP_ERR_BAD_INTEGRITY",
        32 => "KRB_AP_ERR_TKT_EXPIRED",
        33 => "KRB_AP_ERR_TKT_NYV",
        34 => "KRB_AP_ERR_REPEAT",
        35 => "KRB_AP_ERR_NOT_US",
        36 => "KRB_AP_ERR_BADMATCH",
        37 => "KRB_AP_ERR_SKEW",
        38 => "KRB_AP_ERR_BADADDR",
        39 => "KRB_AP_ERR_BADVERSION",
        40 => "KRB_AP_ERR_MSG_TYPE",
        41 => "KRB_AP_ERR_MODIFIED",
        42 => "KRB_AP_ERR_BADORDER",
        44 => "KRB_AP_ERR_BADKEYVER",
        45 => "KRB_AP_ERR_NOKEY",
        46 => "KRB_AP_ERR_MUT_FAIL",
        47 => "KRB_AP_ERR_BADDIRECTION",
        48 => "KRB_AP_ERR_METHOD",
        49 => "KRB_AP_ERR_BADSEQ",
        50 => "KRB_AP_ERR_INAPP_CKSUM",
        51 => "KRB_AP_PATH_NOT_ACCEPTED",
        52 => "KRB_ERR_RESPONSE_TOO_BIG",
        60 => "KRB_ERR_GENERIC",
        61 => "KRB_ERR_FIELD_TOOLONG",
        62 => "KDC_ERR_CLIENT_NOT_TRUSTED",
        63 => "KDC_ERR_KDC_NOT_TRUSTED",
        64 => "KDC_ERR_INVALID_SIG",
        65 => "KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED",
        66 => "KDC_ERR_CERTIFICATE_MISMATCH",
        67 => "KRB_AP_ERR_NO_TGT",
        68 => "KDC_ERR_WRONG_REALM",
        69 => "KRB_AP_ERR_USER_TO_USER_REQUIRED",
        70 => "KDC_ERR_CANT_VERIFY_CERTIFICATE",
        71 => "KDC_ERR_INVALID_CERTIFICATE",
        72 => "KDC_ERR_REVOKED_CERTIFICATE",
        73 => "KDC_ERR_REVOCATION_STATUS_UNKNOWN",
        74 => "KDC_ERR_REVOCATION_STATUS_UNAVAILABLE",
        75 => "KDC_ERR_CLIENT_NAME_MISMATCH",
        76 => "KDC_ERR_KDC_NAME_MISMATCH",
        77 => "KDC_ERR_INCONSISTENT_KEY_PURPOSE",
        78 => "KDC_ERR_DIGEST_IN_CERT_NOT_ACCEPTED",
        79 => "KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED",
        80 => "KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED",
        81 => "KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED",
        90 => "KDC_ERR_PREAUTH_EXPIRED",
        91 => "KDC_ERR_MORE_PREAUTH_DATA_REQUIRED",
        93 => "KDC_ERR_UNKNOWN_CRITICAL_FAST_OPTIONS",
        _ => return None,
    })
}

#[derive(Debug)]
enum Parsed {
    Empty,
    Prefix,
    Bad,
    Msg(Msg),
}

#[derive(Debug)]
struct Msg {
    name: &'static str,
    error_code: Option<u64>,
    realm: Option<String>,
}

fn short_or_bad(e: Err) -> Parsed {
    match e {
        Err::Short => Parsed::Prefix,
        Err::Bad => Parsed::Bad,
    }
}

/// Checks `[n] { INTEGER v }` exactly: `a<n> 03 02 01 <v>`. Returns Prefix when cut short.
fn small_field(b: &[u8], ctx: u8, v: u8) -> Result<&[u8], Parsed> {
    let want = [ctx, 3, 2, 1, v];
    let n = b.len().min(5);
    if b[..n] != want[..n] {
        return Err(Parsed::Bad);
    }
    if n < 5 {
        return Err(Parsed::Prefix);
    }
    Ok(&b[5..])
}

/// A realm (GeneralString inside `[n]`), if complete and printable; never a principal name.
fn realm(t: &ber::Tlv<'_>) -> Option<String> {
    let s = ber::expect(t.body, 0x1b).ok()?;
    (s.complete() && (1..=255).contains(&s.len) && s.body.iter().all(|c| c.is_ascii_graphic()))
        .then(|| String::from_utf8_lossy(&s.body[..s.len.min(128)]).into_owned())
}

/// Walk the elements of a SEQUENCE body that are in the buffer, calling `f` on complete ones.
fn each<'a>(mut b: &'a [u8], mut f: impl FnMut(&ber::Tlv<'a>)) {
    while let Ok(t) = ber::read(b) {
        if !t.complete() {
            break;
        }
        f(&t);
        b = ber::after(b, &t);
    }
}

/// Parse one Kerberos message at the start of `b` whose length must be exactly `exact` (the
/// TCP record length or the UDP datagram's wire length) when known.
fn parse_msg(b: &[u8], exact: Option<usize>) -> Parsed {
    if b.is_empty() {
        return Parsed::Prefix;
    }
    let Some(name) = message_name(b[0]) else {
        return Parsed::Bad;
    };
    let app = match ber::read(b) {
        Ok(t) => t,
        Err(e) => return short_or_bad(e),
    };
    if exact.is_some_and(|n| n != app.total()) {
        return Parsed::Bad;
    }
    let seq = match ber::expect(app.body, 0x30) {
        Ok(t) => t,
        Err(e) => return short_or_bad(e),
    };
    // pvno and msg-type take 10 bytes; a whole message shorter than that is not one.
    if seq.total() != app.len || (seq.complete() && seq.len < 10) {
        return Parsed::Bad;
    }
    let msg_type = b[0] & 0x1f;
    // KDC-REQ numbers its fields from [1]; every other message from [0].
    let (pvno_ctx, type_ctx) = if matches!(b[0], 0x6a | 0x6c) {
        (0xa1, 0xa2)
    } else {
        (0xa0, 0xa1)
    };
    let rest = match small_field(seq.body, pvno_ctx, 5) {
        Ok(r) => r,
        Err(p) => return p,
    };
    if let Err(p) = small_field(rest, type_ctx, msg_type) {
        return p;
    }
    let mut msg = Msg {
        name,
        error_code: None,
        realm: None,
    };
    // Only the fields needed are looked at; padata, tickets, enc-parts and names are skipped
    // by their lengths and never copied.
    each(seq.body, |t| match (b[0], t.tag) {
        (0x7e, 0xa6) => msg.error_code = ber::read(t.body).ok().and_then(|i| ber::uint(&i)),
        (0x7e, 0xa9) | (0x6b | 0x6d, 0xa3) => msg.realm = realm(t),
        (0x6a | 0x6c, 0xa4) => {
            if let Ok(body) = ber::expect(t.body, 0x30) {
                each(body.body, |f| {
                    if f.tag == 0xa2 {
                        msg.realm = realm(f);
                    }
                });
            }
        }
        _ => {}
    });
    Parsed::Msg(msg)
}

/// Parse a direction's first bytes: a TCP record (4-byte length, top bit reserved) or a UDP
/// datagram of `wire_len` bytes.
fn parse(b: &[u8], tcp: bool, wire_len: Option<usize>) -> Parsed {
    if b.is_empty() {
        return Parsed::Empty;
    }
    if !tcp {
        return parse_msg(b, wire_len);
    }
    let Some(mark) = b.get(..4) else {
        // A sane record length (at most MAX_RECORD) starts 00 00..10.
        return if b[0] == 0 && (b.len() < 2 || b[1] <= 0x10) {
            Parsed::Prefix
        } else {
            Parsed::Bad
        };
    };
    let len = u32::from_be_bytes([mark[0], mark[1], mark[2], mark[3]]) as usize;
    if !(8..=MAX_RECORD).contains(&len) {
        return Parsed::Bad;
    }
    parse_msg(&b[4..], Some(len))
}

fn wire_len(p: &Payloads<'_>, orig: bool) -> Option<usize> {
    p.datagrams
        .iter()
        .find(|d| d.from_orig == orig)
        .map(|d| d.len as usize)
}

impl Detector for Kerberos {
    fn name(&self) -> &'static str {
        "kerberos"
    }

    fn protocol(&self) -> &'static str {
        "kerberos"
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let tcp = p.is_tcp();
        let ts = parse(p.ts, tcp, if tcp { None } else { wire_len(p, true) });
        let tc = parse(p.tc, tcp, if tcp { None } else { wire_len(p, false) });
        let (req, rep) = match (&ts, &tc) {
            (Parsed::Msg(a), Parsed::Msg(b)) => (Some(a), Some(b)),
            // The reply carries the error code: worth waiting for.
            (Parsed::Msg(_), Parsed::Empty | Parsed::Prefix) if !p.last_chance => {
                return Probe::NeedMore
            }
            (Parsed::Msg(a), _) => (Some(a), None),
            (_, Parsed::Msg(b)) => (None, Some(b)),
            (Parsed::Bad, Parsed::Bad) => return Probe::NotMine,
            // Datagrams are whole: a refused one decides. Over TCP a refused client side
            // alone does not: a capture that lost the request's first segment still shows a
            // well-formed reply.
            (Parsed::Bad, _) | (_, Parsed::Bad) if !tcp => return Probe::NotMine,
            _ if p.last_chance => return Probe::NotMine,
            _ => return Probe::NeedMore,
        };
        let first = req.or(rep).expect("one side parsed");
        let mut evidence = format!("Kerberos {}", first.name);
        let mut fields = vec![("exwatch.kerberos.msg_type", first.name.to_string())];
        if let (Some(_), Some(r)) = (req, rep) {
            evidence.push_str(&format!(" -> {}", r.name));
            fields.push(("exwatch.kerberos.reply_msg_type", r.name.to_string()));
        }
        if let Some(code) = req.iter().chain(rep.iter()).find_map(|m| m.error_code) {
            let name = error_name(code).map_or_else(|| code.to_string(), str::to_string);
            evidence.push_str(&format!(" {name}"));
            fields.push(("exwatch.kerberos.error_code", name));
        }
        if let Some(r) = req.iter().chain(rep.iter()).find_map(|m| m.realm.clone()) {
            fields.push(("exwatch.kerberos.realm", r));
        }
        evidence.push_str(if tcp { " (TCP record)" } else { " (UDP)" });
        Probe::Mine(Detection {
            reversed: false,
            protocol: "kerberos",
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

    // kerberos-tcp.pcap (MIT kinit jdoe@CONTOSO.TEST): AS-REQ without pre-authentication
    // and the KDC's KRB-ERROR PREAUTH_REQUIRED, each with its 4-byte record mark.
    const AS_REQ_TCP: &str = concat!(
        "000000b86a81b53081b2a103020105a20302010aa31a3018300aa10402020096a2020400300aa104",
        "02020095a2020400a48189308186a00703050000000010a111300fa003020101a10830061b046a64",
        "6f65a20e1b0c434f4e544f534f2e54455354a321301fa003020102a11830161b066b72627467741b",
        "0c434f4e544f534f2e54455354a511180f32303236313132353032353332395aa706020473a9cfe6",
        "a81a301802011202011102011402011302011002011702011902011a",
    );
    const KRB_ERROR_TCP: &str = concat!(
        "000000eb7e81e83081e5a003020105a10302011ea411180f32303236313132343032353332395aa5",
        "05020302b1f6a603020119a70e1b0c434f4e544f534f2e54455354a811300fa003020101a1083006",
        "1b046a646f65a90e1b0c434f4e544f534f2e54455354aa21301fa003020102a11830161b066b7262",
        "7467741b0c434f4e544f534f2e54455354ab101b0e4e45454445445f50524541555448ac52045030",
        "4e300aa10402020088a20204003026a103020113a21f041d301b3019a003020112a1121b10434f4e",
        "544f534f2e544553546a646f653009a103020102a2020400300da10402020085a20504034d4954",
    );

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn tcp<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        Payloads {
            transport: 6,
            ts,
            tc,
            datagrams: &[],
            server_port: 88,
            client_port: 50398,
            last_chance: last,
        }
    }

    fn head(from_orig: bool, b: &[u8]) -> DatagramHead {
        DatagramHead::new(from_orig, b, b.len() as u32)
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    #[test]
    fn as_req_and_preauth_required_over_tcp() {
        let (ts, tc) = (hex(AS_REQ_TCP), hex(KRB_ERROR_TCP));
        let Probe::Mine(d) = Kerberos.probe(&tcp(&ts, &tc, false)) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.kerberos.msg_type"), Some("AS-REQ"));
        assert_eq!(
            field(&d, "exwatch.kerberos.reply_msg_type"),
            Some("KRB-ERROR")
        );
        assert_eq!(
            field(&d, "exwatch.kerberos.error_code"),
            Some("KDC_ERR_PREAUTH_REQUIRED")
        );
        assert_eq!(field(&d, "exwatch.kerberos.realm"), Some("CONTOSO.TEST"));
        assert_eq!(
            d.evidence,
            "Kerberos AS-REQ -> KRB-ERROR KDC_ERR_PREAUTH_REQUIRED (TCP record)"
        );
        // The client principal (cname jdoe) is never recorded.
        assert!(!format!("{d:?}").contains("jdoe"));
    }

    #[test]
    fn udp_datagram_must_be_one_message() {
        // kerberos-udp.pcap carries the same messages without the record mark.
        let (req, err) = (hex(AS_REQ_TCP), hex(KRB_ERROR_TCP));
        let (req, err) = (&req[4..], &err[4..]);
        let heads = [head(true, req), head(false, err)];
        let p = Payloads {
            transport: 17,
            ts: req,
            tc: err,
            datagrams: &heads,
            server_port: 88,
            client_port: 58030,
            last_chance: false,
        };
        let Probe::Mine(d) = Kerberos.probe(&p) else {
            panic!()
        };
        assert!(d.evidence.ends_with("(UDP)"), "{}", d.evidence);
        let heads = [head(true, req)];
        let wait = Payloads {
            tc: b"",
            datagrams: &heads,
            ..p
        };
        assert!(matches!(Kerberos.probe(&wait), Probe::NeedMore));
        let mut long = req.to_vec();
        long.push(0);
        let heads = [head(true, &long)];
        let bad = Payloads {
            ts: &long,
            tc: b"",
            datagrams: &heads,
            last_chance: true,
            ..p
        };
        assert!(matches!(Kerberos.probe(&bad), Probe::NotMine));
    }

    #[test]
    fn pvno_and_msg_type_must_agree_with_the_tag() {
        let good = hex(AS_REQ_TCP);
        // Offsets: record mark 4, 6a 81 b5, 30 81 b2, a1 03 02 01 [05], a2 03 02 01 [0a].
        assert_eq!((good[14], good[19]), (5, 10));
        let mut req = good.clone();
        req[19] = 0x0c; // msg-type 12 (TGS-REQ) under the AS-REQ tag
        assert!(matches!(
            Kerberos.probe(&tcp(&req, b"", true)),
            Probe::NotMine
        ));
        let mut req = good;
        req[14] = 4; // pvno 4
        assert!(matches!(
            Kerberos.probe(&tcp(&req, b"", true)),
            Probe::NotMine
        ));
    }

    #[test]
    fn split_record_needs_more() {
        let ts = hex(AS_REQ_TCP);
        for cut in 1..20 {
            assert!(
                matches!(
                    Kerberos.probe(&tcp(&ts[..cut], b"", false)),
                    Probe::NeedMore
                ),
                "cut {cut}"
            );
        }
        // The request is recognised; the reply is waited for.
        assert!(matches!(
            Kerberos.probe(&tcp(&ts, b"", false)),
            Probe::NeedMore
        ));
        let tc = hex(KRB_ERROR_TCP);
        assert!(matches!(
            Kerberos.probe(&tcp(&ts, &tc[..3], false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Kerberos.probe(&tcp(&ts, &tc[..3], true)),
            Probe::Mine(_)
        ));
        assert!(matches!(
            Kerberos.probe(&tcp(&ts, &tc[..60], false)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn truncated_and_hostile_lengths() {
        for ts in [
            &b"\x00\x00\x00\x00"[..],
            b"\x80\x00\x00\x10\x6a\x0e",
            b"\x7f\xff\xff\xff\x6a",
            b"\x00\x00\x00\x06\x6a\x84\xff\xff\xff\xff",
            b"\x00\x00\x00\x04\x6a\x02\x30\x00",
        ] {
            assert!(
                matches!(Kerberos.probe(&tcp(ts, ts, true)), Probe::NotMine),
                "{ts:?}"
            );
        }
        let mut x: u32 = 7;
        let mut buf = [0u8; 96];
        for round in 0..600 {
            for b in buf.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = (x >> 16) as u8;
            }
            if round % 2 == 0 {
                buf[..4].copy_from_slice(&[0, 0, 0, 40]);
                buf[4] = 0x6a + (round % 6) as u8;
            }
            let n = (x as usize >> 8) % buf.len();
            let _ = Kerberos.probe(&tcp(&buf[..n], &buf[n..], round % 3 == 0));
            let heads = [head(true, &buf[4..n.max(4)])];
            let _ = Kerberos.probe(&Payloads {
                transport: 17,
                datagrams: &heads,
                ..tcp(&buf[4..n.max(4)], &buf[n..], false)
            });
        }
    }

    #[test]
    fn other_protocols_are_not_kerberos() {
        // An LDAP bindRequest, a DNS-over-TCP query and TLS.
        for ts in [
            &b"0D\x02\x01\x01`?\x02\x01\x03\x04%uid=jdoe"[..],
            b"\x00:\x0cB\x01 \x00\x01\x00\x00\x00\x00\x00\x01\x04mail",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            assert!(
                matches!(
                    Kerberos.probe(&tcp(ts, b"\x16\x03\x03", false)),
                    Probe::NotMine
                ),
                "{ts:?}"
            );
        }
    }
}
