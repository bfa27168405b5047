//! RFC 1006 TPKT framing and X.224 (ISO 8073 COTP) connection TPDUs, shared by the
//! detectors of the protocols that ride on them (RDP, X.400, T.120, H.323). Not a detector.

/// TPKT version byte; the second byte is reserved (0).
const VERSION: u8 = 3;
/// Smallest TPKT: the 4-byte header plus the shortest X.224 TPDU (LI, code, one byte).
pub const MIN_LEN: usize = 7;

/// The first TPKT of a stream.
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    /// A complete TPKT: its payload (after the 4-byte header).
    Complete(&'a [u8]),
    /// A valid prefix of a TPKT (header or payload still arriving).
    Partial,
    /// Not a TPKT.
    Invalid,
}

/// Parse the TPKT at the start of `b`: 0x03 0x00, then a 16-bit length of at least 7.
pub fn first(b: &[u8]) -> Frame<'_> {
    match b {
        [] => Frame::Partial,
        [v, ..] if *v != VERSION => Frame::Invalid,
        [_] => Frame::Partial,
        [_, r, ..] if *r != 0 => Frame::Invalid,
        [_, _] | [_, _, _] => Frame::Partial,
        [_, _, hi, lo, ..] => {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            if len < MIN_LEN {
                return Frame::Invalid;
            }
            match b.get(4..len) {
                Some(p) => Frame::Complete(p),
                None => Frame::Partial,
            }
        }
    }
}

/// The complete TPKT payloads at the start of `b`, in order, at most `max`.
pub fn frames(b: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = b;
    while out.len() < max {
        match first(rest) {
            Frame::Complete(p) => {
                let len = p.len() + 4;
                out.push(p);
                rest = &rest[len..];
            }
            _ => break,
        }
    }
    out
}

/// X.224 TPDU codes (upper nibble of the second octet for CR/CC, whole octet for DT).
pub const CR: u8 = 0xe0;
pub const CC: u8 = 0xd0;
pub const DT: u8 = 0xf0;

/// A connection request or confirm TPDU ([X.224] 13.3, 13.4): fixed part, variable-part
/// parameters, and whatever follows inside the length indicator that is not a parameter
/// (RDP puts its cookie and negotiation structure there).
#[derive(Debug, Clone)]
pub struct Conn<'a> {
    /// CR (0xE0) or CC (0xD0).
    pub code: u8,
    pub dst_ref: u16,
    /// Protocol class (0-4).
    pub class: u8,
    /// Well-formed variable-part parameters, in order (code, value); at most 16.
    pub params: Vec<(u8, &'a [u8])>,
    /// Bytes after the fixed part that did not parse as parameters (RDP data), empty if
    /// the whole variable part was parameters.
    pub rest: &'a [u8],
}

/// Parameter codes [X.224] 13.3.4 defines for CR/CC.
fn known_param(code: u8) -> bool {
    matches!(
        code,
        0xc0 | 0xc1
            | 0xc2
            | 0xc3
            | 0xc4
            | 0xc5
            | 0xc6
            | 0xc7
            | 0x85
            | 0x86
            | 0x87
            | 0x88
            | 0x89
            | 0x8a
            | 0x8b
            | 0xe0
    )
}

/// Parse a CR or CC TPDU that fills a whole TPKT payload: the length indicator covers the
/// rest of the TPDU (user data is not allowed in class 0 CR/CC, RDP's cookie counts as
/// part of the header), credit bits aside the code is CR or CC, the class 0-4.
pub fn conn(p: &[u8]) -> Option<Conn<'_>> {
    let li = usize::from(*p.first()?);
    if li < 6 || li + 1 != p.len() || li == 255 {
        return None;
    }
    let code = p[1] & 0xf0;
    if code != CR && code != CC {
        return None;
    }
    let dst_ref = u16::from_be_bytes([p[2], p[3]]);
    let class = p[6] >> 4;
    if class > 4 || (code == CR && dst_ref != 0) {
        return None;
    }
    let var = &p[7..];
    let mut params = Vec::new();
    let mut at = 0;
    while at + 2 <= var.len() && known_param(var[at]) {
        let len = usize::from(var[at + 1]);
        let Some(v) = var.get(at + 2..at + 2 + len) else {
            break;
        };
        if params.len() < 16 {
            params.push((var[at], v));
        }
        at += 2 + len;
    }
    Some(Conn {
        code,
        dst_ref,
        class,
        params,
        rest: &var[at..],
    })
}

/// The user data of a DT TPDU (class 0: LI 2, code 0xF0, EOT/number octet).
pub fn dt(p: &[u8]) -> Option<&[u8]> {
    if p.len() >= 3 && p[0] == 2 && p[1] == DT && p[2] & 0x7f == 0 {
        Some(&p[3..])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_prefixes() {
        let cr = [3, 0, 0, 11, 6, 0xe0, 0, 0, 0, 0, 0];
        assert!(matches!(first(&cr), Frame::Complete(p) if p.len() == 7));
        for cut in 0..cr.len() {
            assert!(matches!(first(&cr[..cut]), Frame::Partial), "cut {cut}");
        }
        assert!(matches!(first(&[3, 0, 0, 6, 0, 0]), Frame::Invalid));
        assert!(matches!(first(&[3, 1, 0, 11]), Frame::Invalid));
        assert!(matches!(first(&[0x16, 3, 1]), Frame::Invalid));
        let two = [cr, cr].concat();
        assert_eq!(frames(&two, 8).len(), 2);
        let c = conn(&cr[4..]).unwrap();
        assert_eq!(
            (c.code, c.class, c.params.len(), c.rest.len()),
            (CR, 0, 0, 0)
        );
        assert!(
            conn(&[6, 0xe0, 0, 1, 0, 0, 0]).is_none(),
            "CR with a destination ref"
        );
        assert!(conn(&[255; 40]).is_none());
        assert_eq!(dt(&[2, 0xf0, 0x80, 0x0d]), Some(&[0x0d][..]));
    }
}
