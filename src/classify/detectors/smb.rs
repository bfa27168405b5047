//! SMB1 (`\xffSMB`) and SMB2/3 (`\xfeSMB`, transform `\xfdSMB`, compression `\xfcSMB`) in
//! NetBIOS session messages, direct-hosted on 445 or on any port; dialect and first command.
//!
//! Records no file, share or user names: only the protocol version, the negotiated dialect
//! and the name of the first command.

use crate::classify::detector::{Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

/// Smallest SMB message: the 52-byte transform header; SMB1 needs 35, SMB2 66.
const MIN_MESSAGE: usize = 35;

/// One SMB message as the NetBIOS session service frames it ([MS-SMB2] 2.1): type 0x00,
/// then a 3-byte big-endian length (RFC 1002 uses 17 bits; direct hosting uses 24).
enum Frame<'a> {
    /// A complete message body.
    Message(&'a [u8]),
    /// The frame header or body is incomplete; holds the body bytes present.
    Partial(&'a [u8]),
    /// Not a session message (or a keepalive-only stream).
    Other,
}

fn first_frame(b: &[u8]) -> Frame<'_> {
    let mut b = b;
    // Session keepalives (0x85 00 00 00) may precede the first message on port 139.
    while b.len() >= 4 && b[..4] == [0x85, 0, 0, 0] {
        b = &b[4..];
    }
    match b.first() {
        None => return Frame::Partial(b),
        Some(0) => {}
        Some(_) => return Frame::Other,
    }
    if b.len() < 4 {
        return Frame::Partial(&[]);
    }
    let len = (usize::from(b[1]) << 16) | (usize::from(b[2]) << 8) | usize::from(b[3]);
    if len < MIN_MESSAGE {
        return Frame::Other;
    }
    match b.get(4..4 + len) {
        Some(m) => Frame::Message(m),
        None => Frame::Partial(&b[4..]),
    }
}

/// The session messages at the start of `b`, complete ones only, at most `max`.
fn frames(b: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = b;
    while out.len() < max {
        while rest.len() >= 4 && rest[..4] == [0x85, 0, 0, 0] {
            rest = &rest[4..];
        }
        if rest.len() < 4 || rest[0] != 0 {
            break;
        }
        let len = (usize::from(rest[1]) << 16) | (usize::from(rest[2]) << 8) | usize::from(rest[3]);
        let Some(m) = rest.get(4..4 + len) else { break };
        out.push(m);
        rest = &rest[4 + len..];
    }
    out
}

/// The SMB header kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Smb1,
    Smb2,
    Transform,
    Compressed,
}

/// A checked SMB header at the start of a message.
#[derive(Debug, Clone, Copy)]
struct Header {
    kind: Kind,
    /// SMB1: command byte; SMB2: command; transform/compressed: none.
    command: Option<u16>,
    response: bool,
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Check the header of a message; `complete` says whether `m` is the whole message (then
/// lengths inside it must fit).
fn header(m: &[u8], complete: bool) -> Option<Header> {
    let magic = m.get(..4)?;
    match magic {
        b"\xfeSMB" => {
            // [MS-SMB2] 2.2.1: StructureSize 64, command 0..=0x12, NextCommand 8-aligned.
            if le16(m, 4)? != 64 {
                return None;
            }
            let command = le16(m, 12)?;
            if command > 0x12 {
                return None;
            }
            let flags = le32(m, 16)?;
            let next = le32(m, 20)? as usize;
            if next % 8 != 0 || (complete && next != 0 && next + 64 > m.len()) {
                return None;
            }
            if complete && m.len() < 66 {
                return None;
            }
            Some(Header {
                kind: Kind::Smb2,
                command: Some(command),
                response: flags & 1 != 0,
            })
        }
        b"\xffSMB" => {
            // [MS-CIFS] 2.2.3.1: 32-byte header, then WordCount and ByteCount.
            let command = *m.get(4)?;
            let flags = *m.get(9)?;
            if complete {
                let wc = usize::from(*m.get(32)?);
                let bc = usize::from(le16(m, 33 + 2 * wc)?);
                if 35 + 2 * wc + bc > m.len() {
                    return None;
                }
            }
            Some(Header {
                kind: Kind::Smb1,
                command: Some(u16::from(command)),
                response: flags & 0x80 != 0,
            })
        }
        b"\xfdSMB" => {
            // [MS-SMB2] 2.2.41: 52-byte transform header, OriginalMessageSize, Reserved 0,
            // Flags/EncryptionAlgorithm 1.
            if m.len() < 52 && complete {
                return None;
            }
            if let (Some(orig), Some(res), Some(flags)) = (le32(m, 36), le16(m, 40), le16(m, 42)) {
                if orig == 0 || res != 0 || flags != 1 {
                    return None;
                }
                if complete && orig as usize != m.len() - 52 {
                    return None;
                }
            }
            Some(Header {
                kind: Kind::Transform,
                command: None,
                response: false,
            })
        }
        b"\xfcSMB" => {
            // [MS-SMB2] 2.2.42: compression transform, algorithm 0..=4.
            if le16(m, 8).is_some_and(|a| a > 4) {
                return None;
            }
            Some(Header {
                kind: Kind::Compressed,
                command: None,
                response: false,
            })
        }
        _ => None,
    }
}

/// Whether the first bytes of a message that has not fully arrived could be SMB: a magic
/// (or its start) and, for SMB2, the fixed StructureSize and a known command.
fn header_prefix_ok(b: &[u8]) -> bool {
    let n = b.len().min(4);
    if ![b"\xfeSMB", b"\xffSMB", b"\xfdSMB", b"\xfcSMB"]
        .iter()
        .any(|m| m[..n] == b[..n])
    {
        return false;
    }
    if b.starts_with(b"\xfeSMB") {
        return le16(b, 4).is_none_or(|v| v == 64) && le16(b, 12).is_none_or(|c| c <= 0x12);
    }
    true
}

fn smb2_command(c: u16) -> &'static str {
    const NAMES: [&str; 19] = [
        "NEGOTIATE",
        "SESSION_SETUP",
        "LOGOFF",
        "TREE_CONNECT",
        "TREE_DISCONNECT",
        "CREATE",
        "CLOSE",
        "FLUSH",
        "READ",
        "WRITE",
        "LOCK",
        "IOCTL",
        "CANCEL",
        "ECHO",
        "QUERY_DIRECTORY",
        "CHANGE_NOTIFY",
        "QUERY_INFO",
        "SET_INFO",
        "OPLOCK_BREAK",
    ];
    NAMES.get(usize::from(c)).copied().unwrap_or("UNKNOWN")
}

fn smb1_command(c: u16) -> &'static str {
    match c {
        0x04 => "CLOSE",
        0x06 => "DELETE",
        0x08 => "QUERY_INFORMATION",
        0x24 => "LOCKING_ANDX",
        0x25 => "TRANSACTION",
        0x2b => "ECHO",
        0x2d => "OPEN_ANDX",
        0x2e => "READ_ANDX",
        0x2f => "WRITE_ANDX",
        0x32 => "TRANSACTION2",
        0x34 => "FIND_CLOSE2",
        0x71 => "TREE_DISCONNECT",
        0x72 => "NEGOTIATE",
        0x73 => "SESSION_SETUP_ANDX",
        0x74 => "LOGOFF_ANDX",
        0x75 => "TREE_CONNECT_ANDX",
        0xa0 => "NT_TRANSACT",
        0xa2 => "NT_CREATE_ANDX",
        0xa4 => "NT_CANCEL",
        _ => "OTHER",
    }
}

fn command_name(h: &Header) -> &'static str {
    match (h.kind, h.command) {
        (Kind::Smb2, Some(c)) => smb2_command(c),
        (Kind::Smb1, Some(c)) => smb1_command(c),
        (Kind::Transform, _) => "ENCRYPTED",
        (Kind::Compressed, _) => "COMPRESSED",
        _ => "UNKNOWN",
    }
}

fn dialect_name(d: u16) -> Option<&'static str> {
    Some(match d {
        0x0202 => "2.0.2",
        0x0210 => "2.1",
        0x0222 => "2.2.2",
        0x0224 => "2.2.4",
        0x0300 => "3.0",
        0x0302 => "3.0.2",
        0x0310 => "3.1.0",
        0x0311 => "3.1.1",
        0x02ff => "2.???",
        _ => return None,
    })
}

/// The dialect a NEGOTIATE response picked: SMB2 DialectRevision ([MS-SMB2] 2.2.4), or for
/// SMB1 the request's dialect string at the response's DialectIndex ([MS-CIFS] 2.2.4.52).
fn negotiated(req: Option<&[u8]>, resp: &[u8]) -> Option<String> {
    let h = header(resp, true)?;
    match (h.kind, h.command) {
        (Kind::Smb2, Some(0)) if h.response => {
            if le16(resp, 64)? != 65 {
                return None;
            }
            dialect_name(le16(resp, 68)?).map(str::to_string)
        }
        (Kind::Smb1, Some(0x72)) if h.response => {
            let index = usize::from(le16(resp, 33)?);
            let req = req?;
            let wc = usize::from(*req.get(32)?);
            let bc = usize::from(le16(req, 33 + 2 * wc)?);
            let start = 35 + 2 * wc;
            let bytes = req.get(start..start + bc)?;
            // Dialects: 0x02 buffer format then a NUL-terminated name, e.g. "NT LM 0.12".
            let name = bytes
                .split(|&c| c == 0)
                .filter(|s| s.first() == Some(&2))
                .nth(index)?;
            let name = &name[1..];
            (!name.is_empty() && name.iter().all(|c| (0x20..0x7f).contains(c)))
                .then(|| String::from_utf8_lossy(&name[..name.len().min(24)]).into_owned())
        }
        _ => None,
    }
}

/// What the first SMB messages of a flow show.
#[derive(Debug, Clone)]
pub struct Summary {
    /// "1" or "2/3".
    pub version: &'static str,
    pub dialect: Option<String>,
    /// Name of the first command seen (client's if visible).
    pub command: &'static str,
    pub encrypted: bool,
    /// Only the server's messages were usable (a capture that joined mid-message).
    pub server_only: bool,
}

/// The verdict of [`scan`].
#[derive(Debug, Clone)]
pub enum Scan {
    Smb(Summary),
    /// A valid prefix, or a NEGOTIATE whose response is still to come.
    Partial,
    NotSmb,
}

fn version_of(k: Kind) -> &'static str {
    if k == Kind::Smb1 {
        "1"
    } else {
        "2/3"
    }
}

/// State of one direction.
enum Dir {
    Empty,
    Partial,
    Smb(Header),
    Invalid,
}

fn dir(b: &[u8]) -> Dir {
    if b.is_empty() {
        return Dir::Empty;
    }
    match first_frame(b) {
        Frame::Other => Dir::Invalid,
        Frame::Partial(body) => {
            if header_prefix_ok(body) {
                Dir::Partial
            } else {
                Dir::Invalid
            }
        }
        Frame::Message(m) => match header(m, true) {
            Some(h) => Dir::Smb(h),
            None => Dir::Invalid,
        },
    }
}

/// Look at the session-message streams of a flow (the bytes after any NetBIOS session
/// request): SMB or not, and what it says. Used by the NetBIOS detector too.
pub fn scan(ts: &[u8], tc: &[u8], last_chance: bool) -> Scan {
    let undecided = if last_chance {
        Scan::NotSmb
    } else {
        Scan::Partial
    };
    let (client, server) = (dir(ts), dir(tc));
    let (h, server_only) = match (&client, &server) {
        (Dir::Smb(h), _) => (*h, false),
        // Client bytes unusable (joined mid-message) or absent: the server's own complete,
        // checked message is proof enough. A response flag on a client-side message means
        // the flow's directions were guessed the wrong way round; that is still SMB.
        (Dir::Invalid | Dir::Empty, Dir::Smb(h)) => (*h, true),
        (Dir::Invalid | Dir::Empty, Dir::Invalid) => return Scan::NotSmb,
        _ => return undecided,
    };
    let mut s = Summary {
        version: version_of(h.kind),
        dialect: None,
        command: command_name(&h),
        encrypted: h.kind == Kind::Transform,
        server_only,
    };
    // The dialect: a NEGOTIATE response in either direction, matched with the request.
    let ms_ts = frames(ts, 4);
    let ms_tc = frames(tc, 4);
    let is_neg = |m: &&[u8]| {
        header(m, true).is_some_and(|h| {
            matches!(h.command, Some(0) if h.kind == Kind::Smb2)
                || matches!(h.command, Some(0x72) if h.kind == Kind::Smb1)
        })
    };
    let req = ms_ts.iter().find(|m| is_neg(m)).copied();
    let resp = ms_tc
        .iter()
        .chain(ms_ts.iter())
        .find(|m| is_neg(m) && header(m, true).is_some_and(|h| h.response))
        .copied();
    if let Some(r) = resp {
        s.dialect = negotiated(req, r);
        // An SMB1 multi-protocol NEGOTIATE may be answered in SMB2.
        if let Some(h) = header(r, true) {
            s.version = version_of(h.kind);
        }
    } else if req.is_some() && !last_chance && !matches!(server, Dir::Invalid) {
        // The reply names the dialect: wait for it.
        return Scan::Partial;
    }
    if ms_tc
        .iter()
        .chain(ms_ts.iter())
        .any(|m| m.starts_with(b"\xfdSMB"))
    {
        s.encrypted = true;
    }
    Scan::Smb(s)
}

/// The record fields for a summary.
pub fn fields(s: &Summary) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("exwatch.smb.version", s.version.to_string()),
        ("exwatch.smb.command", s.command.to_string()),
    ];
    if let Some(d) = &s.dialect {
        f.push(("exwatch.smb.dialect", d.clone()));
    }
    if s.encrypted {
        f.push(("exwatch.smb.encrypted", "true".to_string()));
    }
    f
}

/// Evidence text for a summary.
pub fn describe(s: &Summary) -> String {
    let mut e = format!(
        "SMB{} {}",
        if s.version == "1" { "1" } else { "2/3" },
        s.command
    );
    if let Some(d) = &s.dialect {
        e.push_str(&format!(", dialect {d}"));
    }
    if s.encrypted {
        e.push_str(", encrypted (transform header)");
    }
    if s.server_only {
        e.push_str(" (server messages; client stream joined mid-message)");
    }
    e
}

pub struct Smb;

impl Detector for Smb {
    fn name(&self) -> &'static str {
        "smb"
    }

    fn protocol(&self) -> &'static str {
        "smb"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        match scan(p.ts, p.tc, p.last_chance) {
            Scan::Smb(s) => Probe::Mine(Detection {
                reversed: false,
                protocol: "smb",
                service: None,
                confidence: Confidence::Payload,
                evidence: describe(&s),
                fields: fields(&s),
            }),
            Scan::Partial => Probe::NeedMore,
            Scan::NotSmb => Probe::NotMine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 445, 50000, last)
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    /// An NBSS-framed message of `len` bytes beginning with `head`, padded with zeros.
    fn framed(head: &[u8], len: usize) -> Vec<u8> {
        let mut m = head.to_vec();
        m.resize(len, 0);
        let mut out = vec![0, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        out.extend(m);
        out
    }

    // smb-445.pcap frames 4 and 6 (smbclient -m SMB3 to Samba): SMB2 NEGOTIATE request and
    // the response choosing 3.1.1; bodies past the dialect are zero-padded stand-ins.
    fn negotiate() -> (Vec<u8>, Vec<u8>) {
        let req = framed(&hex("fe534d42400000000000000000001f0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000024000500010000007f0000003a3895d050dcf449abd6b95770b0a1a170000000"), 0xea);
        let resp = framed(&hex("fe534d424000000000000000000001000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000004100030011030300646330310000000000000000000000000f0000000000800000008000"), 0x12c);
        (req, resp)
    }

    #[test]
    fn smb2_negotiate_names_the_dialect() {
        let (req, resp) = negotiate();
        assert!(matches!(
            Smb.probe(&view(&req, b"", false)),
            Probe::NeedMore
        ));
        let Probe::Mine(d) = Smb.probe(&view(&req, &resp, false)) else {
            panic!()
        };
        assert_eq!(d.protocol, "smb");
        assert_eq!(field(&d, "exwatch.smb.version"), Some("2/3"));
        assert_eq!(field(&d, "exwatch.smb.dialect"), Some("3.1.1"));
        assert_eq!(field(&d, "exwatch.smb.command"), Some("NEGOTIATE"));
        // Without the response, the last chance still decides.
        let Probe::Mine(d) = Smb.probe(&view(&req, b"", true)) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.smb.dialect"), None);
    }

    #[test]
    fn split_across_segments() {
        let (req, resp) = negotiate();
        for cut in [1, 3, 4, 6, 8, 40, 100, req.len() - 1] {
            assert!(
                matches!(Smb.probe(&view(&req[..cut], b"", false)), Probe::NeedMore),
                "cut {cut}"
            );
        }
        assert!(matches!(
            Smb.probe(&view(&req, &resp[..50], false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Smb.probe(&view(&req, &resp, false)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn truncated_message_gives_up_at_last_chance() {
        let (req, _) = negotiate();
        assert!(matches!(
            Smb.probe(&view(&req[..30], b"", true)),
            Probe::NotMine
        ));
    }

    #[test]
    fn mid_stream_server_response() {
        // kerberos.pcap: the client's first segment is the tail of a session setup; the
        // server answers with an SMB2 SESSION_SETUP response.
        let garbage = hex("b44682a6850d31011c46ef2b5cbf9f9519295cf847b9");
        let tc = framed(&hex("fe534d42400001000000000001001f0009000000000000000200000000000000fffe0000000000005900000000040000cf4a5f5c6b16a77ad0af7092dfeb7357090000004800b800"), 0x100);
        assert!(matches!(
            Smb.probe(&view(&garbage, b"", false)),
            Probe::NeedMore
        ));
        let Probe::Mine(d) = Smb.probe(&view(&garbage, &tc, false)) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.smb.command"), Some("SESSION_SETUP"));
        assert!(d.evidence.contains("mid-message"), "{}", d.evidence);
    }

    #[test]
    fn smb1_negotiate_and_transform() {
        // SMB1 NEGOTIATE offering two dialects; the server picks index 1.
        let mut req = hex("ff534d4272000000001843c80000000000000000000000000000fffe00000000");
        req.push(0); // WordCount
        let dialects = b"\x02PC NETWORK PROGRAM 1.0\x00\x02NT LM 0.12\x00";
        req.extend((dialects.len() as u16).to_le_bytes());
        req.extend_from_slice(dialects);
        let len = req.len();
        let req = framed(&req, len);
        let mut resp = hex("ff534d4272000000009843c80000000000000000000000000000fffe00000000");
        resp.push(1);
        resp.extend(1u16.to_le_bytes());
        resp.extend(0u16.to_le_bytes());
        let len = resp.len();
        let resp = framed(&resp, len);
        let Probe::Mine(d) = Smb.probe(&view(&req, &resp, false)) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.smb.version"), Some("1"));
        assert_eq!(field(&d, "exwatch.smb.dialect"), Some("NT LM 0.12"));
        // SMB3 encryption: transform header with a consistent original size.
        let mut t = b"\xfdSMB".to_vec();
        t.resize(52, 0);
        t[36..40].copy_from_slice(&100u32.to_le_bytes());
        t[42] = 1;
        let t = framed(&t, 152);
        let Probe::Mine(d) = Smb.probe(&view(&t, b"", false)) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.smb.encrypted"), Some("true"));
    }

    #[test]
    fn other_protocols_are_not_smb() {
        for ts in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"\x16\x03\x01\x00\x10",
            b"\x81\x00\x00\x44 CKFDENECFDEFFCFGEFFCCACACACACACA\x00",
            b"\x05\x00\x0b\x03\x10\x00\x00\x00\x48\x00\x00\x00",
            b"\x00\x00\x00\x30\x30\x2e\x02\x01", // LDAP-ish length prefix
            b"\x03\x00\x00\x13\x0e\xe0\x00\x00",
        ] {
            assert!(
                matches!(Smb.probe(&view(ts, b"", true)), Probe::NotMine),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let (req, resp) = negotiate();
        for (at, v) in [
            (1, 0xff),
            (2, 0xff),
            (3, 0),
            (1, 0),
            (8, 0xff),
            (24, 0xff),
            (70, 0xff),
        ] {
            let mut b = req.clone();
            b[at] = v;
            let mut c = resp.clone();
            c[at] = v;
            for last in [false, true] {
                let _ = Smb.probe(&view(&b, &c, last));
            }
        }
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        let magics: [&[u8]; 4] = [b"\xfeSMB", b"\xffSMB", b"\xfdSMB", b"\xfcSMB"];
        for i in 0..600 {
            let n = next() as usize + 4;
            let mut b: Vec<u8> = (0..n).map(|_| next()).collect();
            if i % 2 == 0 && b.len() >= 8 {
                b[0] = 0;
                b[1] = 0;
                b[4..8].copy_from_slice(magics[i % 4]);
            }
            let c: Vec<u8> = b.iter().rev().copied().collect();
            for last in [false, true] {
                let _ = Smb.probe(&view(&b, &c, last));
                let _ = scan(&c, &b, last);
            }
        }
    }
}
