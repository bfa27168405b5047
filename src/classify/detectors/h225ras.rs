//! H.225.0 RAS (registration, admission and status, ITU-T H.225.0 clause 7) over UDP, on 1719
//! or any port: the PER-encoded `RasMessage` of the first datagram of either direction.
//!
//! PER (aligned) leaves few fixed bytes. The gatekeeper discovery and registration messages
//! (GRQ, GCF, GRJ, RRQ, RCF, RRJ) carry the H.225.0 protocol identifier, the object identifier
//! 0.0.8.2250.0.N, as a length byte and six content bytes soon after their sequence number:
//! that and a root `RasMessage` choice in the first byte are the evidence. Admission and the
//! rest (ARQ, DRQ...) carry no fixed marker and are left to the port.

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
            return Probe::NotMine;
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

    #[test]
    fn other_bytes_are_not_ras() {
        let mut arq = GRQ.to_vec();
        arq[0] = 9 << 2; // AdmissionRequest: no protocol identifier to check
        assert!(matches!(H225Ras.probe(&udp(&arq, b"")), Probe::NotMine));
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
