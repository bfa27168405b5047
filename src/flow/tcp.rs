//! TCP connection state in the manner of Zeek's `conn_state`, derived from flags seen per side.

/// What one side of a flow has sent, as bits.
pub mod hist {
    /// A SYN without ACK.
    pub const SYN: u8 = 0x01;
    /// A SYN with ACK.
    pub const SYNACK: u8 = 0x02;
    pub const FIN: u8 = 0x04;
    pub const RST: u8 = 0x08;
    /// A segment with payload.
    pub const DATA: u8 = 0x10;
    /// Any segment with ACK set and no SYN.
    pub const ACK: u8 = 0x20;
}

/// Bits for one TCP segment's flags byte.
pub fn bits(flags: u8, payload_len: u32) -> u8 {
    use crate::decode::tcp_flags as f;
    let mut b = 0;
    if flags & f::SYN != 0 {
        b |= if flags & f::ACK != 0 {
            hist::SYNACK
        } else {
            hist::SYN
        };
    } else if flags & f::ACK != 0 {
        b |= hist::ACK;
    }
    if flags & f::FIN != 0 {
        b |= hist::FIN;
    }
    if flags & f::RST != 0 {
        b |= hist::RST;
    }
    if payload_len > 0 {
        b |= hist::DATA;
    }
    b
}

/// Zeek-style connection state from the originator's and responder's history bits.
///
/// S0 attempt unanswered; REJ attempt answered by RST; S1 established; SF established and
/// closed by both; S2/S3 close by originator/responder only; RSTO/RSTR reset by
/// originator/responder; RSTOS0 SYN then RST from the originator; RSTRH and SHR the responder's
/// SYN-ACK then RST or FIN with no SYN seen; SH SYN then FIN, no answer; OTH no handshake seen.
pub fn conn_state(orig: u8, resp: u8, proto: u8) -> &'static str {
    use hist::*;
    match proto {
        crate::decode::IPPROTO_TCP => {}
        crate::decode::IPPROTO_UDP => return if resp == 0 { "S0" } else { "SF" },
        _ => return "OTH",
    }
    let established_tail = || {
        if orig & RST != 0 {
            "RSTO"
        } else if resp & RST != 0 {
            "RSTR"
        } else if orig & FIN != 0 && resp & FIN != 0 {
            "SF"
        } else if orig & FIN != 0 {
            "S2"
        } else if resp & FIN != 0 {
            "S3"
        } else {
            "S1"
        }
    };
    if orig & SYN != 0 {
        if resp & SYNACK != 0 {
            return established_tail();
        }
        if resp & RST != 0 {
            return "REJ";
        }
        if resp == 0 {
            return if orig & RST != 0 {
                "RSTOS0"
            } else if orig & FIN != 0 {
                "SH"
            } else {
                "S0"
            };
        }
        // The responder answered without a SYN-ACK we saw (lost in capture): treat as established.
        return established_tail();
    }
    if resp & SYNACK != 0 {
        if orig & (ACK | DATA) != 0 {
            return established_tail();
        }
        return if resp & RST != 0 {
            "RSTRH"
        } else if resp & FIN != 0 {
            "SHR"
        } else {
            "OTH"
        };
    }
    "OTH"
}

#[cfg(test)]
mod tests {
    use super::hist::*;
    use super::*;

    #[test]
    fn states() {
        let tcp = crate::decode::IPPROTO_TCP;
        assert_eq!(conn_state(SYN, 0, tcp), "S0");
        assert_eq!(conn_state(SYN, RST | ACK, tcp), "REJ");
        assert_eq!(conn_state(SYN | ACK | FIN, SYNACK | ACK | FIN, tcp), "SF");
        assert_eq!(conn_state(SYN | ACK, SYNACK | ACK, tcp), "S1");
        assert_eq!(conn_state(SYN | ACK | RST, SYNACK, tcp), "RSTO");
        assert_eq!(conn_state(SYN | ACK, SYNACK | RST, tcp), "RSTR");
        assert_eq!(conn_state(SYN | FIN, 0, tcp), "SH");
        assert_eq!(conn_state(SYN | RST, 0, tcp), "RSTOS0");
        assert_eq!(conn_state(ACK | DATA, ACK, tcp), "OTH");
        assert_eq!(conn_state(0, SYNACK | RST, tcp), "RSTRH");
        assert_eq!(conn_state(ACK, SYNACK | ACK, tcp), "S1");
        assert_eq!(conn_state(DATA, 0, 17), "S0");
        assert_eq!(conn_state(DATA, DATA, 17), "SF");
        assert_eq!(conn_state(0, 0, 1), "OTH");
    }
}
