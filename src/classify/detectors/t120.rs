//! T.120 data conferencing (T.123 transport: TPKT + X.224 class 0 Connection Request, then
//! T.125 MCS), claimed only on its port 1503.
//!
//! T.123's X.224 Connection Request carries nothing of its own: the same bare CR opens
//! legacy RDP sessions, and a CR with TSAP selectors is X.400's (or S7comm's). The payload
//! alone cannot name T.120, so the server port is used as the tie-breaker the detector
//! rules allow for weak binary heuristics: a bare CR (no TSAP, no RDP data) is T.120 only
//! when the server port is 1503; elsewhere it is left unclaimed.

use super::tpkt;
use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

/// The T.120 port of the Exchange 2000/2003 reference (section 8).
const T120_PORT: u16 = 1503;

/// BER identifier and first length octet of a T.125 MCS Connect-Initial (application 101).
const MCS_CONNECT_INITIAL: [u8; 2] = [0x7f, 0x65];

pub struct T120;

impl Detector for T120 {
    fn name(&self) -> &'static str {
        "t120"
    }

    fn protocol(&self) -> &'static str {
        "t120"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        if p.server_port != T120_PORT {
            return Probe::NotMine;
        }
        let undecided = if p.last_chance {
            Probe::NotMine
        } else {
            Probe::NeedMore
        };
        let cr = match tpkt::first(p.ts) {
            tpkt::Frame::Invalid => return Probe::NotMine,
            tpkt::Frame::Partial => return undecided,
            tpkt::Frame::Complete(b) => b,
        };
        let Some(c) = tpkt::conn(cr).filter(|c| c.code == tpkt::CR && c.class == 0) else {
            return Probe::NotMine;
        };
        let tsap = c.params.iter().any(|(k, _)| *k == 0xc1 || *k == 0xc2);
        if tsap || !c.rest.is_empty() {
            return Probe::NotMine;
        }
        // The first data TPDU should open MCS; wait for it while the flow is young.
        let data = tpkt::frames(p.ts, 4).into_iter().find_map(tpkt::dt);
        let mut evidence = String::from(
            "TPKT + X.224 Connection Request on port 1503 (T.123; no T.120 marker at this layer)",
        );
        match data {
            Some(d) if d.starts_with(&MCS_CONNECT_INITIAL) => {
                evidence.push_str("; T.125 MCS Connect-Initial follows");
            }
            Some(_) => return Probe::NotMine,
            None if !p.last_chance => return Probe::NeedMore,
            None => {}
        }
        Probe::Mine(Detection {
            reversed: false,
            protocol: "t120",
            service: None,
            confidence: Confidence::Payload,
            evidence,
            fields: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(ts: &'a [u8], port: u16, last: bool) -> Payloads<'a> {
        Payloads {
            transport: 6,
            ts,
            tc: b"",
            datagrams: &[],
            server_port: port,
            client_port: 50000,
            last_chance: last,
        }
    }

    const BARE_CR: [u8; 11] = [3, 0, 0, 11, 6, 0xe0, 0, 0, 0, 0, 0];

    fn mcs() -> Vec<u8> {
        // DT TPDU with the start of an MCS Connect-Initial.
        vec![3, 0, 0, 12, 2, 0xf0, 0x80, 0x7f, 0x65, 0x82, 0x01, 0x94]
    }

    #[test]
    fn bare_cr_on_1503() {
        let mut ts = BARE_CR.to_vec();
        assert!(matches!(
            T120.probe(&view(&ts, 1503, false)),
            Probe::NeedMore
        ));
        assert!(matches!(T120.probe(&view(&ts, 1503, true)), Probe::Mine(_)));
        ts.extend(mcs());
        let Probe::Mine(d) = T120.probe(&view(&ts, 1503, false)) else {
            panic!()
        };
        assert_eq!(d.protocol, "t120");
        assert!(d.evidence.contains("MCS Connect-Initial"));
    }

    #[test]
    fn split_and_truncated() {
        for cut in [1, 3, 6, 10] {
            assert!(matches!(
                T120.probe(&view(&BARE_CR[..cut], 1503, false)),
                Probe::NeedMore
            ));
            assert!(matches!(
                T120.probe(&view(&BARE_CR[..cut], 1503, true)),
                Probe::NotMine
            ));
        }
    }

    #[test]
    fn elsewhere_or_with_other_markers_not_t120() {
        assert!(matches!(
            T120.probe(&view(&BARE_CR, 3389, true)),
            Probe::NotMine
        ));
        assert!(matches!(
            T120.probe(&view(&BARE_CR, 102, true)),
            Probe::NotMine
        ));
        // RDP negotiation request on 1503 belongs to RDP.
        let rdp: [u8; 19] = [3, 0, 0, 19, 14, 0xe0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 3, 0, 0, 0];
        assert!(matches!(
            T120.probe(&view(&rdp, 1503, true)),
            Probe::NotMine
        ));
        // TSAP selectors belong to X.400.
        let tsap: [u8; 17] = [3, 0, 0, 17, 12, 0xe0, 0, 0, 0, 1, 0, 0xc1, 1, 1, 0xc2, 1, 2];
        assert!(matches!(
            T120.probe(&view(&tsap, 1503, true)),
            Probe::NotMine
        ));
        assert!(matches!(
            T120.probe(&view(b"GET / HTTP/1.1\r\n", 1503, true)),
            Probe::NotMine
        ));
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let mut seed = 17u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        for i in 0..600 {
            let n = next() as usize % 48;
            let mut b: Vec<u8> = (0..n).map(|_| next()).collect();
            if i % 2 == 0 {
                let mut cr = BARE_CR.to_vec();
                cr.extend(&b);
                b = cr;
            }
            for last in [false, true] {
                let _ = T120.probe(&view(&b, 1503, last));
            }
        }
    }
}
