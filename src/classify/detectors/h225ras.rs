//! H.225.0 RAS (registration, admission and status, ITU-T H.225.0 clause 7) over UDP, on 1719
//! or any port: the PER-encoded `RasMessage` of the first datagram of either direction.
//!
//! PER (aligned) leaves few fixed bytes. The gatekeeper discovery and registration messages
//! (GRQ, GCF, GRJ, RRQ, RCF, RRJ) carry the H.225.0 protocol identifier, the object identifier
//! 0.0.8.2250.0.N, as a length byte and six content bytes soon after their sequence number:
//! that and a root `RasMessage` choice in the first byte are the evidence.
//!
//! Admission and disengage messages (ARQ, ACF, ARJ, DRQ, DCF, DRJ) carry no fixed marker: a
//! request in one direction answered by its confirm or reject with the same `requestSeqNum`
//! in the other is the evidence (16 bits that must agree, at the offset each message's PER
//! layout puts them). A lone request is left to the port.

use crate::classify::detector::{mine, Detector, Payloads, Probe};

/// `RasMessage` root alternatives that carry `protocolIdentifier` (H.225.0 Annex H): the
/// choice index (the five bits after the extension bit) and its name.
const WITH_PROTOCOL_ID: &[(u8, &str)] = &[
    (0, "GatekeeperRequest"),
    (1, "GatekeeperConfirm"),
    (2, "GatekeeperReject"),
    (3, "RegistrationRequest"),
    (4, "RegistrationConfirm"),
    (5, "RegistrationReject"),
];

/// BER contents of 0.0.8.2250.0 (itu-t recommendation h 2250 version), before the version.
const H225_OID: &[u8] = &[0x06, 0x00, 0x08, 0x91, 0x4a, 0x00];

/// Where the identifier may start: after the one or two bytes of choice, extension and
/// optional-field bits and the two-byte sequence number (RRQ has more optional bits).
const OID_AT: std::ops::RangeInclusive<usize> = 3..=6;

/// The message and protocol version of a RAS datagram that carries the protocol identifier.
fn ras(d: &[u8]) -> Option<(&'static str, u8)> {
    let first = *d.first()?;
    if first & 0x80 != 0 {
        return None; // an extension alternative: no fixed layout to check
    }
    let choice = (first >> 2) & 0x1f;
    let name = WITH_PROTOCOL_ID.iter().find(|(c, _)| *c == choice)?.1;
    OID_AT.clone().find_map(|at| {
        let oid = d.get(at..at + H225_OID.len() + 1)?;
        let version = oid[H225_OID.len()];
        (oid.starts_with(H225_OID) && (1..=9).contains(&version)).then_some((name, version))
    })
}

/// A RAS transaction without a protocol identifier: the request's, the confirm's and the
/// reject's root choice, each with the octet its `requestSeqNum` starts at. That octet
/// follows the five choice bits, the extension bits and the message's optional-field bits,
/// aligned: ARQ has 7 optional fields (14 bits, octet 2), ACF 2 (9 bits, octet 2), the
/// others 1 (8 bits, octet 1).
struct Transaction {
    name: &'static str,
    request: (u8, usize),
    confirm: (u8, usize),
    reject: (u8, usize),
}

const TRANSACTIONS: &[Transaction] = &[
    Transaction {
        name: "Admission",
        request: (9, 2),
        confirm: (10, 2),
        reject: (11, 1),
    },
    Transaction {
        name: "Disengage",
        request: (15, 1),
        confirm: (16, 1),
        reject: (17, 1),
    },
];

/// The root choice of a datagram that is not an extension alternative.
fn choice(d: &[u8]) -> Option<u8> {
    let first = *d.first()?;
    (first & 0x80 == 0).then_some((first >> 2) & 0x1f)
}

/// The sequence number at `at`, as sent (the value minus one).
fn seq_at(d: &[u8], at: usize) -> Option<u16> {
    d.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

/// A request in `req` answered in `ans` with the same sequence number: the transaction,
/// whether it was confirmed, and the sequence number.
fn answered(req: &[u8], ans: &[u8]) -> Option<(&'static Transaction, bool, u16)> {
    let (q, a) = (choice(req)?, choice(ans)?);
    let t = TRANSACTIONS.iter().find(|t| t.request.0 == q)?;
    let (confirmed, at) = if a == t.confirm.0 {
        (true, t.confirm.1)
    } else if a == t.reject.0 {
        (false, t.reject.1)
    } else {
        return None;
    };
    let seq = seq_at(req, t.request.1)?;
    // A reject carries its reason after the sequence number; a confirm may end there (DCF).
    let min = if confirmed { at + 2 } else { at + 3 };
    (seq_at(ans, at) == Some(seq) && ans.len() >= min).then_some((t, confirmed, seq))
}

/// Whether `d` could be the request of a transaction still waiting for its answer.
fn is_request(d: &[u8]) -> bool {
    choice(d).is_some_and(|c| TRANSACTIONS.iter().any(|t| t.request.0 == c)) && d.len() >= 4
}

/// The evidence of an answered transaction.
fn transaction(p: &Payloads<'_>) -> Probe {
    let (t, confirmed, seq, reversed) = match (answered(p.ts, p.tc), answered(p.tc, p.ts)) {
        (Some((t, c, s)), _) => (t, c, s, false),
        (None, Some((t, c, s))) => (t, c, s, true),
        _ if !p.last_chance && p.tc.is_empty() && is_request(p.ts) => return Probe::NeedMore,
        _ => return Probe::NotMine,
    };
    let answer = if confirmed { "Confirm" } else { "Reject" };
    let evidence = format!(
        "H.225.0 RAS {n}Request, {n}{answer} (requestSeqNum {})",
        u32::from(seq) + 1,
        n = t.name
    );
    let probe = mine("h323", evidence);
    if reversed {
        probe.reversed()
    } else {
        probe
    }
}

pub struct H225Ras;

impl Detector for H225Ras {
    fn name(&self) -> &'static str {
        "h225ras"
    }

    fn protocol(&self) -> &'static str {
        "h323"
    }

    fn tcp(&self) -> bool {
        false
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let (a, b) = (ras(p.ts), ras(p.tc));
        let Some((name, version)) = a.or(b) else {
            return transaction(p);
        };
        let mut evidence = format!("H.225.0 RAS {name} (protocol version {version})");
        if let (Some(_), Some((answer, _))) = (a, b) {
            evidence.push_str(&format!(", {answer}"));
        }
        mine("h323", evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GRQ laid out as PER encodes it (the capture's, `pcaps/make-spec-captures.py`):
    /// choice 0 and GRQ's extension and optional bits in two bytes, requestSeqNum 1,
    /// protocolIdentifier 0.0.8.2250.0.4, rasAddress 198.51.100.20:1719, endpointType terminal.
    const GRQ: &[u8] = &[
        0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x08, 0x91, 0x4a, 0x00, 0x04, 0x00, 198, 51, 100, 20,
        0x06, 0xb7, 0x02, 0x00,
    ];

    fn udp<'a>(ts: &'a [u8], tc: &'a [u8]) -> Payloads<'a> {
        Payloads {
            transport: 17,
            ts,
            tc,
            datagrams: &[],
            server_port: 1719,
            client_port: 1719,
            last_chance: false,
        }
    }

    #[test]
    fn gatekeeper_discovery_is_ras() {
        let Probe::Mine(d) = H225Ras.probe(&udp(GRQ, b"")) else {
            panic!("GRQ not found")
        };
        assert_eq!(
            d.evidence,
            "H.225.0 RAS GatekeeperRequest (protocol version 4)"
        );
        let mut gcf = GRQ.to_vec();
        gcf[0] = 1 << 2;
        let Probe::Mine(d) = H225Ras.probe(&udp(GRQ, &gcf)) else {
            panic!("GRQ and GCF not found")
        };
        assert!(
            d.evidence.ends_with(", GatekeeperConfirm"),
            "{}",
            d.evidence
        );
    }

    /// The capture's ARQ (requestSeqNum 7) and ACF, ARJ and DCF answers as PER lays them out
    /// (`pcaps/make-spec-captures.py`; tshark decodes them).
    const ARQ: &[u8] = &[
        0x24, 0x00, 0x00, 0x06, 0x00, 0xc0, 0, b'E', 0, b'P', 0, b'0', 0, b'1', 0x01, 0x40, 0x04,
        0, b'a', 0, b'l', 0, b'i', 0, b'c', 0, b'e', 0x40, 0x02, 0x80, 0x00, 0x15,
    ];
    const ACF: &[u8] = &[
        0x28, 0x00, 0x00, 0x06, 0x40, 0x02, 0x80, 0x00, 198, 51, 100, 10, 0x06, 0xb8,
    ];
    const ARJ: &[u8] = &[0x2c, 0x00, 0x06, 0x20];

    #[test]
    fn admission_answered_with_its_sequence_number_is_ras() {
        let Probe::Mine(d) = H225Ras.probe(&udp(ARQ, ACF)) else {
            panic!("ARQ and ACF not found")
        };
        assert_eq!(
            d.evidence,
            "H.225.0 RAS AdmissionRequest, AdmissionConfirm (requestSeqNum 7)"
        );
        assert!(!d.reversed);
        let Probe::Mine(d) = H225Ras.probe(&udp(ARQ, ARJ)) else {
            panic!("ARQ and ARJ not found")
        };
        assert!(d.evidence.contains("AdmissionReject"), "{}", d.evidence);
        // The gatekeeper taken for the originator: the roles come from the messages.
        let Probe::Mine(d) = H225Ras.probe(&udp(ACF, ARQ)) else {
            panic!("reversed ARQ and ACF not found")
        };
        assert!(d.reversed && d.evidence.ends_with("(flow directions reversed)"));
        // A request waits for its answer; alone at the end it is left to the port.
        assert!(matches!(H225Ras.probe(&udp(ARQ, b"")), Probe::NeedMore));
        let mut last = udp(ARQ, b"");
        last.last_chance = true;
        assert!(matches!(H225Ras.probe(&last), Probe::NotMine));
    }

    #[test]
    fn answers_that_do_not_match_are_not_ras() {
        // Another sequence number.
        let mut acf = ACF.to_vec();
        acf[3] = 0x07;
        assert!(matches!(H225Ras.probe(&udp(ARQ, &acf)), Probe::NotMine));
        // An answer of another transaction (DisengageConfirm to an ARQ).
        let dcf = [0x40, 0x00, 0x06];
        assert!(matches!(H225Ras.probe(&udp(ARQ, &dcf)), Probe::NotMine));
        // A confirm cut inside its sequence number, a reject without its reason.
        assert!(matches!(
            H225Ras.probe(&udp(ARQ, &ACF[..3])),
            Probe::NotMine
        ));
        assert!(matches!(
            H225Ras.probe(&udp(ARQ, &ARJ[..3])),
            Probe::NotMine
        ));
        // A disengage confirm is its sequence number alone.
        let drq = [0x3c, 0x00, 0x08, 0x06];
        let Probe::Mine(d) = H225Ras.probe(&udp(&drq, &[0x40, 0x00, 0x08])) else {
            panic!("DRQ and DCF not found")
        };
        assert!(
            d.evidence.contains("DisengageConfirm (requestSeqNum 9)"),
            "{}",
            d.evidence
        );
        for n in 0..ARQ.len() {
            for m in 0..ACF.len() {
                let _ = H225Ras.probe(&udp(&ARQ[..n], &ACF[..m]));
            }
        }
    }

    #[test]
    fn other_bytes_are_not_ras() {
        let mut arq = GRQ.to_vec();
        arq[0] = 9 << 2; // AdmissionRequest shape, no answer: left to the port at the end
        let mut last = udp(&arq, b"");
        last.last_chance = true;
        assert!(matches!(H225Ras.probe(&last), Probe::NotMine));
        let mut ext = GRQ.to_vec();
        ext[0] |= 0x80;
        assert!(matches!(H225Ras.probe(&udp(&ext, b"")), Probe::NotMine));
        let mut v0 = GRQ.to_vec();
        v0[10] = 0;
        assert!(matches!(H225Ras.probe(&udp(&v0, b"")), Probe::NotMine));
        for n in 0..GRQ.len() {
            let _ = H225Ras.probe(&udp(&GRQ[..n], &GRQ[n..]));
        }
        assert!(matches!(H225Ras.probe(&udp(b"", b"")), Probe::NotMine));
    }
}
