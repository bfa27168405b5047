//! Minimal BER/DER reading for the ASN.1 detectors (LDAP, Kerberos, SNMP): tag and length
//! headers only, every length checked against the buffer before use; nothing is copied.

/// Largest element length believed: LDAP, Kerberos and SNMP messages are far smaller, and a
/// bound keeps a hostile `0x84 ff ff ff ff` from looking plausible.
pub const MAX_LEN: usize = 1 << 24;

/// One element: its header is complete, its value may not be (a message split across
/// segments, or a datagram cut by the capture).
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    /// Header bytes (tag and length).
    pub hdr: usize,
    /// Declared value length.
    pub len: usize,
    /// The value bytes present in the buffer: `len` of them when complete, fewer otherwise.
    pub body: &'a [u8],
}

impl Tlv<'_> {
    /// Whether the whole value is in the buffer.
    pub fn complete(&self) -> bool {
        self.body.len() == self.len
    }

    /// Header plus declared value length.
    pub fn total(&self) -> usize {
        self.hdr + self.len
    }
}

/// Why an element could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Err {
    /// The header itself is cut short: more bytes may make it valid.
    Short,
    /// Not BER as these protocols use it.
    Bad,
}

/// Read the element at the start of `b`. Only single-byte tags (the protocols here use no
/// others) and definite lengths (LDAP, Kerberos DER and SNMP forbid or never use the
/// indefinite form) are accepted; long-form lengths of up to 4 bytes, minimal or not (Active
/// Directory pads them to 4), and never above `MAX_LEN`.
pub fn read(b: &[u8]) -> Result<Tlv<'_>, Err> {
    let &tag = b.first().ok_or(Err::Short)?;
    if tag & 0x1f == 0x1f {
        return Err(Err::Bad);
    }
    let &l0 = b.get(1).ok_or(Err::Short)?;
    let (hdr, len) = if l0 < 0x80 {
        (2, l0 as usize)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(Err::Bad);
        }
        let bytes = b.get(2..2 + n).ok_or(Err::Short)?;
        let len = bytes.iter().fold(0usize, |a, &x| (a << 8) | x as usize);
        (2 + n, len)
    };
    if len > MAX_LEN {
        return Err(Err::Bad);
    }
    let end = (hdr + len).min(b.len());
    Ok(Tlv {
        tag,
        hdr,
        len,
        body: &b[hdr..end],
    })
}

/// Read the element at the start of `b` and require its tag.
pub fn expect(b: &[u8], tag: u8) -> Result<Tlv<'_>, Err> {
    let t = read(b)?;
    if t.tag == tag {
        Ok(t)
    } else {
        Err(Err::Bad)
    }
}

/// The bytes after element `t` read at the start of `b` (empty when they are not there yet).
pub fn after<'a>(b: &'a [u8], t: &Tlv<'_>) -> &'a [u8] {
    b.get(t.total()..).unwrap_or_default()
}

/// The value of a complete, non-negative INTEGER or ENUMERATED of 1 to 8 bytes. (BER does
/// not require minimal encodings, so leading zero bytes are tolerated.)
pub fn uint(t: &Tlv<'_>) -> Option<u64> {
    if t.tag != 0x02 && t.tag != 0x0a {
        return None;
    }
    if !t.complete() || t.len == 0 || t.len > 8 || t.body[0] & 0x80 != 0 {
        return None;
    }
    Some(t.body.iter().fold(0u64, |a, &x| (a << 8) | x as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_forms() {
        let t = read(b"\x02\x01\x05").unwrap();
        assert_eq!((t.tag, t.hdr, t.len, uint(&t)), (2, 2, 1, Some(5)));
        let t = read(b"\x30\x84\x00\x00\x00\x03\x02\x01\x01").unwrap();
        assert_eq!((t.hdr, t.len), (6, 3));
        assert!(t.complete());
        let t = read(b"\x30\x82\x01\x00\x02").unwrap();
        assert_eq!(t.len, 256);
        assert!(!t.complete());
    }

    #[test]
    fn refused_and_short() {
        assert_eq!(read(b"").unwrap_err(), Err::Short);
        assert_eq!(read(b"\x30").unwrap_err(), Err::Short);
        assert_eq!(read(b"\x30\x82\x01").unwrap_err(), Err::Short);
        assert_eq!(read(b"\x30\x80").unwrap_err(), Err::Bad, "indefinite");
        assert_eq!(read(b"\x30\x85\x01\x01\x01\x01\x01").unwrap_err(), Err::Bad);
        assert_eq!(read(b"\x30\x84\xff\xff\xff\xff").unwrap_err(), Err::Bad);
        assert_eq!(
            read(b"\x1f\x01\x00").unwrap_err(),
            Err::Bad,
            "multi-byte tag"
        );
        assert_eq!(uint(&read(b"\x02\x01\xff").unwrap()), None, "negative");
        assert_eq!(uint(&read(b"\x02\x00").unwrap()), None);
        assert_eq!(
            uint(&read(b"\x04\x01\x01").unwrap()),
            None,
            "not an INTEGER"
        );
    }

    #[test]
    fn every_prefix_is_safe() {
        let msg = b"\x30\x84\x00\x00\x00\x10\x02\x01\x01\x61\x84\x00\x00\x00\x07\x0a\x01\x00\x04\x00\x04\x00";
        for i in 0..=msg.len() {
            let _ = read(&msg[..i]).map(|t| after(&msg[..i], &t).len());
        }
    }
}
