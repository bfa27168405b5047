//! TLS and SSL 3.0 (and SSLv2-compatible hellos): ClientHello, ServerHello and the server
//! certificate while it travels in clear; JA3/JA4 client fingerprints; Exchange service by SNI.
//!
//! A flow picked up after its handshake is still TLS when its bytes are records that chain
//! exactly. Also used by the detectors of protocols that upgrade to TLS in-band (STARTTLS):
//! they hand the bytes after the upgrade to [`follow_upgrade`].

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{keylog, tls_decrypt};
use crate::classify::{Confidence, Detection};
use md5::Md5;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::LazyLock;
use tls_parser::{
    parse_tls_extension, parse_tls_message_handshake, parse_tls_record_header, TlsCipherSuite,
    TlsExtension, TlsMessage, TlsMessageHandshake, TlsRecordType,
};

pub struct Tls;

/// Largest record body allowed on the wire (2^14 plaintext plus expansion, RFC 5246 6.2.3).
const MAX_RECORD: usize = 16384 + 2048;
/// Largest hello we believe in; only a plausibility bound, nothing is allocated from it.
const MAX_HELLO: usize = 1 << 16;
/// Smallest ClientHello body: version, random, session id length, one cipher, one compression.
const MIN_CLIENT_HELLO: usize = 2 + 32 + 1 + 2 + 2 + 1 + 1;
/// Smallest ServerHello body: version, random, session id length, cipher, compression.
const MIN_SERVER_HELLO: usize = 2 + 32 + 1 + 2 + 1;
/// Caps on what goes into a record: names from the wire can be long.
const MAX_NAME: usize = 253;
const MAX_ALPN: usize = 8;
const MAX_SAN: usize = 16;
/// Longest distinguished name recorded (issuer, subject).
const MAX_DN: usize = 512;

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const CERTIFICATE: u8 = 11;

// ---------------------------------------------------------------------------------------
// SNI signatures (data: signatures/sni.toml)
// ---------------------------------------------------------------------------------------

const SNI_TOML: &str = include_str!("../../../signatures/sni.toml");

#[derive(Debug, Deserialize)]
struct SniFile {
    sni: Vec<SniRule>,
}

#[derive(Debug, Deserialize)]
struct SniRule {
    pattern: String,
    service: String,
    #[allow(dead_code)] // documentation for people reading the file
    note: String,
}

/// Parsed once; a broken embedded file yields no rules (and fails the unit tests).
static SNI_RULES: LazyLock<Vec<SniRule>> = LazyLock::new(|| {
    toml::from_str::<SniFile>(SNI_TOML)
        .map(|f| f.sni)
        .unwrap_or_default()
});

fn sni_matches(pattern: &str, name: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix("*.") {
        name.len() > suffix.len() + 1
            && name.ends_with(suffix)
            && name.as_bytes().get(name.len() - suffix.len() - 1) == Some(&b'.')
    } else if let Some(label) = pattern.strip_suffix(".*") {
        name.strip_prefix(label)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.'))
    } else {
        name == pattern
    }
}

/// The Exchange service a TLS server name stands for (signatures/sni.toml), if any.
pub fn sni_service(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let rules: &'static [SniRule] = &SNI_RULES;
    rules
        .iter()
        .find(|r| sni_matches(&r.pattern, &name))
        .map(|r| r.service.as_str())
}

// ---------------------------------------------------------------------------------------
// Record layer
// ---------------------------------------------------------------------------------------

/// Whether the bytes so far can start a handshake record (type 22, version 3.x, sane length).
fn handshake_header_prefix(b: &[u8]) -> bool {
    let len_ok = match (b.get(3), b.get(4)) {
        (Some(&h), Some(&l)) => (1..=MAX_RECORD).contains(&usize::from(u16::from_be_bytes([h, l]))),
        _ => true,
    };
    b.first().is_none_or(|&t| t == HANDSHAKE)
        && b.get(1).is_none_or(|&v| v == 3)
        && b.get(2).is_none_or(|&v| v <= 4)
        && len_ok
}

/// How a direction's bytes read as a chain of TLS records (any content type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Records {
    /// Nothing captured.
    Empty,
    /// Well-formed records laid end to end from byte 0: `complete` of them whole, the bytes
    /// ending exactly on a record boundary unless `open` (the last record still arriving).
    Chain { complete: usize, open: bool },
    /// Something that is not a record where one should start.
    Broken,
}

/// Whether the bytes so far can start a record header: content type 20-23 (ChangeCipherSpec,
/// Alert, Handshake, ApplicationData), version 0x0300-0x0304, length 1..=`MAX_RECORD`.
fn record_header_prefix(b: &[u8]) -> bool {
    let len_ok = match (b.get(3), b.get(4)) {
        (Some(&h), Some(&l)) => (1..=MAX_RECORD).contains(&usize::from(u16::from_be_bytes([h, l]))),
        _ => true,
    };
    b.first().is_none_or(|t| (20..=23).contains(t))
        && b.get(1).is_none_or(|&v| v == 3)
        && b.get(2).is_none_or(|&v| v <= 4)
        && len_ok
}

/// Walk `b` record by record; each step moves at least six bytes, so the walk is bounded by
/// the buffer, not by lengths read from the wire.
fn records(b: &[u8]) -> Records {
    if b.is_empty() {
        return Records::Empty;
    }
    // A hello is the hello parsers' to judge: one they refused (malformed, or sent by the
    // side the flow's guess calls the server) is no evidence of a session in progress.
    if b.first() == Some(&HANDSHAKE) && matches!(b.get(5), Some(&(CLIENT_HELLO | SERVER_HELLO))) {
        return Records::Broken;
    }
    let mut rest = b;
    let mut complete = 0;
    loop {
        if !record_header_prefix(&rest[..rest.len().min(5)]) {
            return Records::Broken;
        }
        if rest.len() < 5 {
            return Records::Chain {
                complete,
                open: true,
            };
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let Some(next) = rest.get(5 + len..) else {
            return Records::Chain {
                complete,
                open: true,
            };
        };
        complete += 1;
        if next.is_empty() {
            return Records::Chain {
                complete,
                open: false,
            };
        }
        rest = next;
    }
}

/// A flow picked up after its handshake (or a capture of one side only): well-formed records
/// that chain exactly across the segments of each direction that sent any. Two whole records
/// are needed; a chain still arriving asks for more.
fn records_without_handshake(p: &Payloads<'_>) -> Probe {
    let (ts, tc) = (records(p.ts), records(p.tc));
    let count = |r: Records| match r {
        Records::Chain { complete, .. } => Some(complete),
        Records::Empty => Some(0),
        Records::Broken => None,
    };
    let (Some(n_ts), Some(n_tc)) = (count(ts), count(tc)) else {
        return Probe::NotMine;
    };
    if n_ts + n_tc < 2 {
        return if p.last_chance || (ts == Records::Empty && tc == Records::Empty) {
            Probe::NotMine
        } else {
            Probe::NeedMore
        };
    }
    let mut evidence = format!("TLS records without handshake ({n_ts} to server, {n_tc} to client");
    evidence.push_str(", lengths chain over the segments)");
    Probe::Mine(Detection {
        reversed: false,
        protocol: "tls",
        service: None,
        confidence: Confidence::Payload,
        evidence,
        fields: Vec::new(),
    })
}

/// The handshake-layer bytes of the first records of one direction.
#[derive(Debug)]
struct Flight<'a> {
    /// Handshake messages with the record framing removed (a message may span records).
    /// Borrowed from the stream while they sit in one record (the common case): probes run on
    /// every packet, and a server flight with certificates is kilobytes to copy each time.
    hs: Cow<'a, [u8]>,
    /// The captured bytes stop inside the handshake records: more of them may come.
    open: bool,
}

/// Strip the record framing off the leading handshake records of `b`. `None` if `b` cannot
/// start with one; the result is bounded by `b.len()`, not by lengths read from the wire.
fn flight(b: &[u8]) -> Option<Flight<'_>> {
    if b.len() < 5 {
        return handshake_header_prefix(b).then_some(Flight {
            hs: Cow::Borrowed(&[]),
            open: true,
        });
    }
    if !handshake_header_prefix(&b[..5]) {
        return None;
    }
    let mut hs: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    let mut rest = b;
    let open = loop {
        if rest.len() < 5 {
            // A following record whose header is cut: more handshake may follow.
            break handshake_header_prefix(rest);
        }
        let Ok((body, hdr)) = parse_tls_record_header(rest) else {
            break false;
        };
        let len = usize::from(hdr.len);
        if hdr.record_type != TlsRecordType::Handshake
            || hdr.version.0 >> 8 != 3
            || len == 0
            || len > MAX_RECORD
        {
            break false; // ChangeCipherSpec, encrypted records, alerts: the clear part is over
        }
        let have = len.min(body.len());
        if hs.is_empty() {
            hs = Cow::Borrowed(&body[..have]);
        } else {
            hs.to_mut().extend_from_slice(&body[..have]);
        }
        if have < len {
            break true;
        }
        rest = &body[len..];
    };
    Some(Flight { hs, open })
}

/// A handshake message header at `pos`: (type, body length).
fn msg_header(hs: &[u8], pos: usize) -> Option<(u8, usize)> {
    let h = hs.get(pos..pos.checked_add(4)?)?;
    Some((
        h[0],
        usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]),
    ))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Extensions as (type, raw bytes with their 4-byte header); stops at the first malformed one.
fn extensions(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = b;
    std::iter::from_fn(move || {
        let ty = be16(rest, 0)?;
        let len = usize::from(be16(rest, 2)?);
        let raw = rest.get(..4 + len)?;
        rest = &rest[4 + len..];
        Some((ty, raw))
    })
}

/// GREASE values (RFC 8701): 0x0a0a, 0x1a1a ... 0xfafa.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// ECS `tls.version_protocol` and `tls.version` of a wire version.
fn version_name(v: u16) -> (&'static str, String) {
    match v {
        0x0002 => ("ssl", "2.0".into()),
        0x0300 => ("ssl", "3.0".into()),
        0x0301 => ("tls", "1.0".into()),
        0x0302 => ("tls", "1.1".into()),
        0x0303 => ("tls", "1.2".into()),
        0x0304 => ("tls", "1.3".into()),
        0x7f00..=0x7fff => ("tls", "1.3".into()), // TLS 1.3 drafts
        _ => ("tls", format!("0x{v:04x}")),
    }
}

fn cipher_name(id: u16) -> String {
    TlsCipherSuite::from_id(id).map_or_else(|| format!("0x{id:04x}"), |c| c.name.to_string())
}

/// The state of one direction's hello.
#[derive(Debug)]
enum Hello<T> {
    /// Nothing captured yet.
    Empty,
    /// Not this hello.
    No,
    /// A valid beginning; `strong` when the header already says enough to name TLS if the
    /// rest never comes (record header, handshake type, plausible lengths and version).
    Wait {
        strong: bool,
    },
    Yes(T),
}

impl<T> Hello<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Hello<U> {
        match self {
            Hello::Yes(t) => Hello::Yes(f(t)),
            Hello::Empty => Hello::Empty,
            Hello::No => Hello::No,
            Hello::Wait { strong } => Hello::Wait { strong },
        }
    }
}

// ---------------------------------------------------------------------------------------
// ClientHello
// ---------------------------------------------------------------------------------------

/// What a ClientHello says, copied out and capped.
#[derive(Debug, Clone, Default)]
struct Client {
    /// Highest version offered (supported_versions, else the version field).
    offered: u16,
    sni: Option<String>,
    alpn: Vec<String>,
    /// What the fingerprints are made of; they are built only when a detection is written
    /// (a probe that answers "need more" must not pay for them on every packet).
    fp: Option<FingerprintParts>,
    sslv2: bool,
    /// The legacy session ID offered (at most 32 bytes), to tell a resumption by its echo.
    session_id: Vec<u8>,
    /// The hello's random: the key log's index of the session's secrets.
    random: Vec<u8>,
}

/// The parts of a ClientHello that JA3 and JA4 are computed from (each list capped by the
/// hello's own size, itself capped at `MAX_HELLO`).
#[derive(Debug, Clone, Default)]
struct FingerprintParts {
    version: u16,
    supported: Option<u16>,
    has_sni: bool,
    ciphers: Vec<u16>,
    ext_types: Vec<u16>,
    groups: Vec<u16>,
    point_formats: Vec<u8>,
    sigalgs: Vec<u16>,
    first_alpn: Option<Vec<u8>>,
}

impl FingerprintParts {
    fn ja3(&self) -> String {
        ja3(
            self.version,
            &self.ciphers,
            &self.ext_types,
            &self.groups,
            &self.point_formats,
        )
    }

    fn ja4(&self) -> String {
        ja4(
            self.supported.unwrap_or(self.version),
            self.has_sni,
            &self.ciphers,
            &self.ext_types,
            self.first_alpn.as_deref(),
            &self.sigalgs,
        )
    }
}

/// Whether the start of a TLS ClientHello message (at byte 5 of the stream) looks right.
fn client_hello_head(b: &[u8], msg_type: u8, min: usize) -> bool {
    if b.len() < 11 || !handshake_header_prefix(&b[..5]) || b[5] != msg_type {
        return false;
    }
    let hl = usize::from(b[6]) << 16 | usize::from(b[7]) << 8 | usize::from(b[8]);
    (min..=MAX_HELLO).contains(&hl) && b[9] == 3 && b[10] <= 4
}

/// A ClientHello that parsed, its extensions not yet read: a probe that only waits for the
/// server's hello (most of them) needs no more than that it is one. [`Parsed::client`] reads
/// the rest once a detection is written.
#[derive(Debug)]
enum Parsed {
    Tls {
        version: u16,
        ciphers: Vec<u16>,
        /// The extensions block as sent (bounded by the hello, itself at most `MAX_HELLO`).
        ext: Vec<u8>,
        session_id: Vec<u8>,
        random: Vec<u8>,
    },
    /// An SSLv2-format hello: nothing more to read.
    Done(Client),
}

impl Parsed {
    fn random(&self) -> &[u8] {
        match self {
            Parsed::Tls { random, .. } => random,
            Parsed::Done(c) => &c.random,
        }
    }

    fn client(self) -> Client {
        match self {
            Parsed::Tls {
                version,
                ciphers,
                ext,
                session_id,
                random,
            } => {
                let mut c = client_from_parts(version, &ciphers, &ext);
                c.session_id = session_id;
                c.random = random;
                c
            }
            Parsed::Done(c) => c,
        }
    }
}

/// The ClientHello with everything it says (for callers that always need it all).
fn client_hello(b: &[u8]) -> Hello<Client> {
    client_hello_parsed(b).map(Parsed::client)
}

fn client_hello_parsed(b: &[u8]) -> Hello<Parsed> {
    if b.is_empty() {
        return Hello::Empty;
    }
    if b[0] & 0x80 != 0 {
        return sslv2_client_hello(b).map(Parsed::Done);
    }
    let Some(f) = flight(b) else {
        return Hello::No;
    };
    let wait = Hello::Wait {
        strong: client_hello_head(b, CLIENT_HELLO, MIN_CLIENT_HELLO),
    };
    let Some((ty, hl)) = msg_header(&f.hs, 0) else {
        // Type and length not there yet: only the record header (or part of it) so far.
        let ok = f.hs.first().is_none_or(|&t| t == CLIENT_HELLO);
        return if ok && f.open { wait } else { Hello::No };
    };
    if ty != CLIENT_HELLO || !(MIN_CLIENT_HELLO..=MAX_HELLO).contains(&hl) {
        return Hello::No;
    }
    if f.hs.get(4).is_some_and(|&v| v != 3) || f.hs.get(5).is_some_and(|&v| v > 4) {
        return Hello::No;
    }
    let Some(msg) = f.hs.get(..4 + hl) else {
        return if f.open { wait } else { Hello::No };
    };
    let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) =
        parse_tls_message_handshake(msg)
    else {
        return Hello::No;
    };
    // Every TLS client offers the null compression method; random bytes rarely do.
    if ch.ciphers.is_empty() || !ch.comp.iter().any(|c| c.0 == 0) {
        return Hello::No;
    }
    Hello::Yes(Parsed::Tls {
        version: ch.version.0,
        ciphers: ch.ciphers.iter().map(|c| c.0).collect(),
        ext: ch.ext.unwrap_or_default().to_vec(),
        session_id: session_id(ch.session_id),
        random: ch.random.to_vec(),
    })
}

/// A hello's legacy session ID, bounded by the field's 32-byte maximum.
fn session_id(id: Option<&[u8]>) -> Vec<u8> {
    id.map(|i| i[..i.len().min(32)].to_vec())
        .unwrap_or_default()
}

/// Build the client summary and fingerprints from the hello's parts.
fn client_from_parts(version: u16, ciphers: &[u16], ext: &[u8]) -> Client {
    let mut c = Client {
        offered: version,
        ..Client::default()
    };
    let mut ext_types: Vec<u16> = Vec::new();
    let mut groups: Vec<u16> = Vec::new();
    let mut point_formats: Vec<u8> = Vec::new();
    let mut sigalgs: Vec<u16> = Vec::new();
    let mut first_alpn: Option<Vec<u8>> = None;
    let mut has_sni = false;
    let mut supported: Option<u16> = None;
    for (ty, raw) in extensions(ext) {
        ext_types.push(ty);
        match parse_tls_extension(raw) {
            Ok((_, TlsExtension::SNI(names))) => {
                has_sni = true;
                if let Some((_, n)) = names.iter().find(|(t, _)| t.0 == 0) {
                    c.sni = Some(text::clip(n, MAX_NAME));
                }
            }
            Ok((_, TlsExtension::ALPN(protos))) => {
                first_alpn = protos.first().map(|p| p.to_vec());
                c.alpn = protos
                    .iter()
                    .take(MAX_ALPN)
                    .map(|p| text::clip(p, 32))
                    .collect();
            }
            Ok((_, TlsExtension::EllipticCurves(g))) => groups = g.iter().map(|g| g.0).collect(),
            Ok((_, TlsExtension::EcPointFormats(p))) => point_formats = p.to_vec(),
            Ok((_, TlsExtension::SignatureAlgorithms(s))) => sigalgs = s,
            Ok((_, TlsExtension::SupportedVersions(v))) => {
                supported = v.iter().map(|v| v.0).filter(|&v| !is_grease(v)).max();
            }
            _ => {}
        }
        // An SNI extension that tls-parser refuses still counts as "SNI present" for JA4.
        has_sni |= ty == 0;
    }
    if let Some(v) = supported {
        c.offered = v;
    }
    c.fp = Some(FingerprintParts {
        version,
        supported,
        has_sni,
        ciphers: ciphers.to_vec(),
        ext_types,
        groups,
        point_formats,
        sigalgs,
        first_alpn,
    });
    c
}

/// An SSLv2-format CLIENT-HELLO (RFC 6101 appendix E.1, still sent by old clients to offer
/// SSL 3.0 / TLS): checked field by field, since its 2-byte header says little on its own.
fn sslv2_client_hello(b: &[u8]) -> Hello<Client> {
    // 2-byte length with the top bit set, then msg type 1 and the version.
    if b.get(2).is_some_and(|&t| t != 1) || b.get(3).is_some_and(|&v| v != 0 && v != 3) {
        return Hello::No;
    }
    let Some(h) = b.get(..11) else {
        return Hello::Wait { strong: false };
    };
    let len = usize::from(h[0] & 0x7f) << 8 | usize::from(h[1]);
    let version = u16::from_be_bytes([h[3], h[4]]);
    let cs = usize::from(u16::from_be_bytes([h[5], h[6]]));
    let sid = usize::from(u16::from_be_bytes([h[7], h[8]]));
    let chal = usize::from(u16::from_be_bytes([h[9], h[10]]));
    let version_ok = version == 0x0002 || (0x0300..=0x0303).contains(&version);
    if !version_ok
        || cs == 0
        || cs % 3 != 0
        || !(sid == 0 || sid == 16)
        || !(16..=32).contains(&chal)
        || len != 9 + cs + sid + chal
    {
        return Hello::No;
    }
    if b.len() < 2 + len {
        return Hello::Wait { strong: false };
    }
    Hello::Yes(Client {
        offered: version,
        sslv2: true,
        ..Client::default()
    })
}

fn ja3(version: u16, ciphers: &[u16], exts: &[u16], groups: &[u16], formats: &[u8]) -> String {
    // Built by hand rather than with `write!`: one string, no formatter per number (this runs
    // once per TLS flow, on the worker's hot path).
    fn join<T: Copy + Into<u32>>(s: &mut String, v: &[T], grease_free: bool) {
        let mut first = true;
        for &x in v {
            let x: u32 = x.into();
            if grease_free && u16::try_from(x).is_ok_and(is_grease) {
                continue;
            }
            if !first {
                s.push('-');
            }
            first = false;
            s.push_str(itoa::Buffer::new().format(x));
        }
    }
    let mut full = String::with_capacity(
        8 + 6 * (ciphers.len() + exts.len() + groups.len()) + 4 * formats.len(),
    );
    full.push_str(itoa::Buffer::new().format(version));
    full.push(',');
    join(&mut full, ciphers, true);
    full.push(',');
    join(&mut full, exts, true);
    full.push(',');
    join(&mut full, groups, true);
    full.push(',');
    join(&mut full, formats, false);
    let mut out = String::with_capacity(32);
    text::push_hex(&mut out, &Md5::digest(full.as_bytes()));
    out
}

/// First 12 hex digits of SHA-256, or twelve zeros for an empty list (JA4's convention).
fn ja4_hash(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".to_string();
    }
    let mut out = String::with_capacity(12);
    text::push_hex(&mut out, &Sha256::digest(s.as_bytes())[..6]);
    out
}

fn hex_list(v: impl Iterator<Item = u16>) -> String {
    let mut s = String::with_capacity(5 * v.size_hint().0);
    for x in v {
        if !s.is_empty() {
            s.push(',');
        }
        text::push_hex(&mut s, &x.to_be_bytes());
    }
    s
}

/// JA4's two characters for a wire version.
fn ja4_version(version: u16) -> &'static str {
    match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// JA4's two characters for an ALPN value: its first and last character, or "00" for none.
fn ja4_alpn(alpn: Option<&[u8]>) -> [char; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match alpn {
        Some(&[first, ..]) => {
            let value = alpn.unwrap_or_default();
            let last = *value.last().unwrap_or(&first);
            if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
                [first as char, last as char]
            } else {
                // First nibble of the first byte, last nibble of the last byte, in hex.
                [
                    HEX[usize::from(first >> 4)] as char,
                    HEX[usize::from(last & 0x0f)] as char,
                ]
            }
        }
        _ => ['0', '0'],
    }
}

/// Two decimal digits of a count capped at 99 (JA4's cipher and extension counts).
fn push_count(s: &mut String, n: usize) {
    let n = n.min(99) as u8;
    s.push(char::from(b'0' + n / 10));
    s.push(char::from(b'0' + n % 10));
}

/// JA3S (Salesforce): MD5 of the ServerHello's version, cipher and extension types, in
/// decimal and in wire order.
fn ja3s(version: u16, cipher: u16, exts: &[u16]) -> String {
    let mut full = String::with_capacity(16 + 6 * exts.len());
    full.push_str(itoa::Buffer::new().format(version));
    full.push(',');
    full.push_str(itoa::Buffer::new().format(cipher));
    full.push(',');
    for (i, &e) in exts.iter().enumerate() {
        if i > 0 {
            full.push('-');
        }
        full.push_str(itoa::Buffer::new().format(e));
    }
    let mut out = String::with_capacity(32);
    text::push_hex(&mut out, &Md5::digest(full.as_bytes()));
    out
}

/// JA4S (FoxIO, technical_details/JA4S.md) for TLS over TCP: selected version, extension
/// count and ALPN; the cipher in hex; the hash of the extension types in wire order.
fn ja4s(version: u16, cipher: u16, exts: &[u16], alpn: Option<&[u8]>) -> String {
    // Pushed piece by piece rather than with format!: once per TLS flow.
    let mut out = String::with_capacity(25);
    out.push('t');
    out.push_str(ja4_version(version));
    push_count(&mut out, exts.len());
    out.extend(ja4_alpn(alpn));
    out.push('_');
    text::push_hex(&mut out, &cipher.to_be_bytes());
    out.push('_');
    out.push_str(&ja4_hash(&hex_list(exts.iter().copied())));
    out
}

/// JA4 (FoxIO, technical_details/JA4.md) for TLS over TCP.
fn ja4(
    version: u16,
    sni: bool,
    ciphers: &[u16],
    exts: &[u16],
    alpn: Option<&[u8]>,
    sigalgs: &[u16],
) -> String {
    let v = ja4_version(version);
    let mut ciphers: Vec<u16> = ciphers.iter().copied().filter(|&c| !is_grease(c)).collect();
    let exts: Vec<u16> = exts.iter().copied().filter(|&e| !is_grease(e)).collect();
    // JA4_a, pushed piece by piece rather than with format!: once per TLS flow.
    let mut out = String::with_capacity(36);
    out.push('t');
    out.push_str(v);
    out.push(if sni { 'd' } else { 'i' });
    push_count(&mut out, ciphers.len());
    push_count(&mut out, exts.len());
    out.extend(ja4_alpn(alpn));
    ciphers.sort_unstable();
    let b = ja4_hash(&hex_list(ciphers.into_iter()));
    let mut sorted: Vec<u16> = exts
        .into_iter()
        .filter(|&e| e != 0x0000 && e != 0x0010)
        .collect();
    sorted.sort_unstable();
    let c = if sorted.is_empty() {
        "000000000000".to_string()
    } else {
        let mut s = hex_list(sorted.into_iter());
        let sig = hex_list(sigalgs.iter().copied().filter(|&x| !is_grease(x)));
        if !sig.is_empty() {
            s.push('_');
            s.push_str(&sig);
        }
        ja4_hash(&s)
    };
    for part in ["_", &b, "_", &c] {
        out.push_str(part);
    }
    out
}

// ---------------------------------------------------------------------------------------
// ServerHello and certificate
// ---------------------------------------------------------------------------------------

/// What a ServerHello (and the certificate after it) says.
#[derive(Debug, Clone, Default)]
struct Server {
    /// Negotiated version (supported_versions, else the version field).
    version: u16,
    /// The ServerHello's own version field (JA3S uses it).
    legacy_version: u16,
    cipher: u16,
    /// Extension types in wire order (JA3S, JA4S); bounded by the hello's size.
    ext_types: Vec<u16>,
    alpn: Option<String>,
    /// The raw ALPN value chosen, for JA4S.
    alpn_raw: Option<Vec<u8>>,
    cert_cn: Option<String>,
    cert_sans: Vec<String>,
    cert: Option<CertFacts>,
    /// TLS 1.2 or older and the Certificate message may still be on its way.
    cert_pending: bool,
    /// The legacy session ID the server answered with (at most 32 bytes).
    session_id: Vec<u8>,
    /// The server accepted a pre-shared key (TLS 1.3 resumption).
    psk: bool,
    random: Vec<u8>,
}

/// Issuer, subject and validity of the server's certificate (each capped).
#[derive(Debug, Clone, Default)]
struct CertFacts {
    subject: String,
    issuer: String,
    issuer_cn: Option<String>,
    not_before: Option<String>,
    not_after: Option<String>,
}

impl Server {
    /// Whether the server resumed the client's session: up to TLS 1.2 by echoing the session
    /// ID the client offered; in TLS 1.3 (which echoes it always, for middleboxes) by
    /// accepting a pre-shared key.
    fn resumed(&self, c: &Client) -> bool {
        if self.version >= 0x0304 {
            self.psk
        } else {
            !c.session_id.is_empty() && c.session_id == self.session_id
        }
    }
}

/// An X.509 time as RFC 3339 text.
fn x509_time(t: x509_parser::time::ASN1Time) -> String {
    let d = t.to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year().clamp(0, 9999),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

fn server_hello(b: &[u8]) -> Hello<Server> {
    if b.is_empty() {
        return Hello::Empty;
    }
    let Some(f) = flight(b) else {
        return Hello::No;
    };
    let wait = Hello::Wait {
        strong: client_hello_head(b, SERVER_HELLO, MIN_SERVER_HELLO),
    };
    let Some((ty, hl)) = msg_header(&f.hs, 0) else {
        let ok = f.hs.first().is_none_or(|&t| t == SERVER_HELLO);
        return if ok && f.open { wait } else { Hello::No };
    };
    if ty != SERVER_HELLO || !(MIN_SERVER_HELLO..=MAX_HELLO).contains(&hl) {
        return Hello::No;
    }
    if f.hs.get(4).is_some_and(|&v| v != 3) || f.hs.get(5).is_some_and(|&v| v > 4) {
        return Hello::No;
    }
    let Some(msg) = f.hs.get(..4 + hl) else {
        return if f.open { wait } else { Hello::No };
    };
    let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)))) =
        parse_tls_message_handshake(msg)
    else {
        return Hello::No;
    };
    let mut s = Server {
        version: sh.version.0,
        legacy_version: sh.version.0,
        cipher: sh.cipher.0,
        session_id: session_id(sh.session_id),
        random: sh.random.to_vec(),
        ..Server::default()
    };
    for (ty, raw) in extensions(sh.ext.unwrap_or_default()) {
        let data = raw.get(4..).unwrap_or_default();
        s.ext_types.push(ty);
        match ty {
            // pre_shared_key: the server accepted one of the client's keys.
            41 => s.psk = true,
            // The server's supported_versions holds just the selected version.
            43 => {
                if let Some(v) = be16(data, 0) {
                    s.version = v;
                }
            }
            // ALPN: list length, then exactly one protocol name.
            16 => {
                let n = usize::from(*data.get(2).unwrap_or(&0));
                if let Some(p) = data.get(3..3 + n).filter(|p| !p.is_empty()) {
                    s.alpn = Some(text::clip(p, 32));
                    s.alpn_raw = Some(p.to_vec());
                }
            }
            _ => {}
        }
    }
    // Up to TLS 1.2 the Certificate follows the ServerHello in clear.
    if s.version <= 0x0303 {
        certificate(&f, 4 + hl, &mut s);
    }
    Hello::Yes(s)
}

/// Names from the first certificate of a Certificate message at `pos`, when it is complete.
fn certificate(f: &Flight<'_>, pos: usize, s: &mut Server) {
    let Some((ty, _)) = msg_header(&f.hs, pos) else {
        // Nothing after the ServerHello yet.
        s.cert_pending = f.open;
        return;
    };
    if ty != CERTIFICATE {
        return; // resumed session or anonymous suite: no certificate
    }
    // Certificate: 3-byte list length, then 3-byte length and DER of each certificate.
    let body = f.hs.get(pos + 4..).unwrap_or_default();
    let Some(len) = body
        .get(3..6)
        .map(|l| usize::from(l[0]) << 16 | usize::from(l[1]) << 8 | usize::from(l[2]))
    else {
        s.cert_pending = f.open;
        return;
    };
    let Some(der) = body.get(6..6 + len) else {
        s.cert_pending = f.open;
        return;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return;
    };
    s.cert_cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(|cn| text::clip(cn.as_bytes(), MAX_NAME));
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        s.cert_sans = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(*d),
                _ => None,
            })
            .take(MAX_SAN)
            .map(|d| text::clip(d.as_bytes(), MAX_NAME))
            .collect();
    }
    let issuer = cert.issuer();
    let validity = cert.validity();
    s.cert = Some(CertFacts {
        subject: text::clip(cert.subject().to_string().as_bytes(), MAX_DN),
        issuer: text::clip(issuer.to_string().as_bytes(), MAX_DN),
        issuer_cn: issuer
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(|cn| text::clip(cn.as_bytes(), MAX_NAME)),
        not_before: Some(x509_time(validity.not_before)),
        not_after: Some(x509_time(validity.not_after)),
    });
}

// ---------------------------------------------------------------------------------------
// Fields, for this detector and for STARTTLS upgrades
// ---------------------------------------------------------------------------------------

fn client_fields(c: &Client, with_version: bool) -> Vec<(&'static str, String)> {
    let mut f = Vec::new();
    if with_version {
        let (proto, v) = version_name(c.offered);
        f.push(("tls.version", v));
        f.push(("tls.version_protocol", proto.to_string()));
    }
    if let Some(n) = &c.sni {
        f.push(("tls.client.server_name", n.clone()));
    }
    if !c.alpn.is_empty() {
        // An array field: one entry per element.
        f.extend(
            c.alpn
                .iter()
                .map(|a| ("exwatch.tls.client_alpn", a.clone())),
        );
    }
    if let Some(fp) = &c.fp {
        f.push(("tls.client.ja3", fp.ja3()));
        f.push(("tls.client.ja4", fp.ja4()));
    }
    f
}

fn server_fields(s: &Server) -> Vec<(&'static str, String)> {
    let (proto, v) = version_name(s.version);
    let mut f = vec![
        ("tls.version", v),
        ("tls.version_protocol", proto.to_string()),
        ("tls.cipher", cipher_name(s.cipher)),
        (
            "tls.server.ja3s",
            ja3s(s.legacy_version, s.cipher, &s.ext_types),
        ),
        (
            "tls.server.ja4s",
            ja4s(s.version, s.cipher, &s.ext_types, s.alpn_raw.as_deref()),
        ),
    ];
    if let Some(a) = &s.alpn {
        f.push(("tls.next_protocol", a.clone()));
    }
    if let Some(cn) = &s.cert_cn {
        f.push(("tls.server.x509.subject.common_name", cn.clone()));
    }
    f.extend(
        s.cert_sans
            .iter()
            .map(|n| ("tls.server.x509.alternative_names", n.clone())),
    );
    if let Some(c) = &s.cert {
        f.push(("tls.server.subject", c.subject.clone()));
        f.push(("tls.server.issuer", c.issuer.clone()));
        if let Some(cn) = &c.issuer_cn {
            f.push(("tls.server.x509.issuer.common_name", cn.clone()));
        }
        for (k, x, v) in [
            (
                "tls.server.not_before",
                "tls.server.x509.not_before",
                &c.not_before,
            ),
            (
                "tls.server.not_after",
                "tls.server.x509.not_after",
                &c.not_after,
            ),
        ] {
            if let Some(v) = v {
                f.push((k, v.clone()));
                f.push((x, v.clone()));
            }
        }
    }
    f
}

/// `tls.resumed` when both hellos were seen.
fn resumed_field(c: &Client, s: &Server) -> (&'static str, String) {
    ("tls.resumed", s.resumed(c).to_string())
}

/// The server's bytes from its first handshake record that starts a line: where a text
/// protocol's go-ahead reply ends and TLS begins (empty if no such record yet).
pub fn tls_after_lines(tc: &[u8]) -> &[u8] {
    tc.windows(3)
        .position(|w| w[0] == b'\n' && w[1] == HANDSHAKE && w[2] == 3)
        .map_or(&[], |i| &tc[i + 1..])
}

/// TLS fields of a session upgraded in band (STARTTLS and friends): `ts_tls` is the client's
/// stream from the byte after its upgrade command, `tc_tls` the server's from the byte after
/// its go-ahead (empty when not there yet). `None` while a hello is still arriving and more
/// bytes may come; otherwise the ClientHello's SNI, ALPN, JA3 and JA4 and the ServerHello's
/// version, cipher, JA3S, JA4S and clear certificate, and whether a ClientHello was parsed.
pub fn follow_upgrade(
    ts_tls: &[u8],
    tc_tls: &[u8],
    last: bool,
) -> Option<(Vec<(&'static str, String)>, bool)> {
    let client = client_hello(ts_tls);
    let server = server_hello(tc_tls);
    let waiting = match (&client, &server) {
        (Hello::Wait { .. }, _) | (_, Hello::Wait { .. }) => true,
        (Hello::Yes(_), Hello::Empty) => true,
        (_, Hello::Yes(s)) => s.cert_pending,
        (Hello::Empty, Hello::Empty) => true,
        _ => false,
    };
    if waiting && !last {
        return None;
    }
    let mut fields = match &client {
        Hello::Yes(c) => client_fields(c, true),
        _ => Vec::new(),
    };
    if let Hello::Yes(s) = &server {
        // The server's choice (negotiated version) replaces the client's offer.
        let sf = server_fields(s);
        fields.retain(|(fk, _)| !sf.iter().any(|(k, _)| k == fk));
        fields.extend(sf);
        if let Hello::Yes(c) = &client {
            fields.push(resumed_field(c, s));
        }
    }
    Some((fields, matches!(client, Hello::Yes(_))))
}

/// For a detector whose protocol upgraded in band with the command `kind` (STARTTLS, STLS,
/// AUTH TLS...): add ", {kind} upgrade" to `evidence` and `exwatch.tls_upgrade` to `fields`,
/// and when either side's bytes after the upgrade start a handshake record, " into TLS",
/// `tls.established` and the [`follow_upgrade`] fields too. `None` while the hellos are still
/// arriving: the caller answers "need more".
pub fn upgrade_into_tls(
    kind: &str,
    ts_tls: &[u8],
    tc_tls: &[u8],
    last: bool,
    evidence: &mut String,
    fields: &mut Vec<(&'static str, String)>,
) -> Option<()> {
    evidence.push_str(", ");
    evidence.push_str(kind);
    evidence.push_str(" upgrade");
    if ts_tls.first() == Some(&HANDSHAKE) || tc_tls.first() == Some(&HANDSHAKE) {
        let (tls, _) = follow_upgrade(ts_tls, tc_tls, last)?;
        evidence.push_str(" into TLS");
        fields.push(("tls.established", "true".to_string()));
        fields.extend(tls);
    }
    fields.push(("exwatch.tls_upgrade", kind.to_string()));
    Some(())
}

fn detection(c: Option<&Client>, s: Option<&Server>, truncated: bool) -> Probe {
    let mut fields = s.map(server_fields).unwrap_or_default();
    if let Some(c) = c {
        fields.extend(client_fields(c, s.is_none()));
        if let Some(s) = s {
            fields.push(resumed_field(c, s));
        }
    }
    let sni = c.and_then(|c| c.sni.as_deref());
    let service = sni.and_then(sni_service);
    let mut evidence = match (c, s) {
        (_, _) if truncated => "TLS hello, cut short (record and handshake headers)".to_string(),
        (Some(c), None) if c.sslv2 => {
            let (p, v) = version_name(c.offered);
            format!("SSLv2-format ClientHello offering {} {v}", p.to_uppercase())
        }
        (Some(c), None) => {
            let (p, v) = version_name(c.offered);
            format!("{} ClientHello offering {v}", p.to_uppercase())
        }
        (c, Some(s)) => {
            let (p, v) = version_name(s.version);
            let who = if c.is_some() {
                "ClientHello and ServerHello"
            } else {
                "ServerHello (no ClientHello seen)"
            };
            format!("{} {v} {who}", p.to_uppercase())
        }
        (None, None) => "TLS".to_string(),
    };
    if let Some(n) = sni {
        let _ = write!(evidence, ", SNI {}", text::clip(n.as_bytes(), 64));
    }
    if let Some(svc) = service {
        let _ = write!(evidence, " (signatures/sni.toml: {svc})");
    }
    if s.is_some_and(|s| s.cert_cn.is_some() || !s.cert_sans.is_empty()) {
        evidence.push_str(", certificate in clear");
    }
    Probe::Mine(Detection {
        reversed: false,
        protocol: "tls",
        service: service.map(str::to_string),
        confidence: Confidence::Payload,
        evidence,
        fields,
    })
}

impl Detector for Tls {
    fn name(&self) -> &'static str {
        "tls"
    }

    fn protocol(&self) -> &'static str {
        "tls"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        match hellos(p) {
            Probe::NotMine => match reversed_hellos(p) {
                Probe::NotMine => records_without_handshake(p),
                r => r,
            },
            r => r,
        }
    }
}

/// A session whose secrets the key log holds: the hellos' detection, named by the HTTP request
/// inside when the decrypted application data holds one. Waits (while bytes may still come)
/// for the client's first application data; a record the keys do not open gives
/// `exwatch.tls.decrypt_error` and the detection of the hellos alone.
fn decrypted(p: &Payloads<'_>, c: &Client, s: &Server, keys: &keylog::Secrets) -> Probe {
    let sess = tls_decrypt::Session {
        version: s.version,
        cipher: s.cipher,
        client_random: &c.random,
        server_random: &s.random,
    };
    if !p.last_chance && !tls_decrypt::client_data_arrived(s.version, p.ts) {
        return Probe::NeedMore;
    }
    // The hellos' detection is built only once the flow is decided: a session is probed
    // again on every packet until its request (and the response) are in.
    let hellos = || detection(Some(c), Some(s), false);
    let failed = |e: String| match hellos() {
        Probe::Mine(mut d) => {
            d.fields.push(("exwatch.tls.decrypt_error", e));
            Probe::Mine(d)
        }
        other => other,
    };
    let plain = match tls_decrypt::decrypt(&sess, keys, p.ts, p.tc) {
        Ok(plain) => plain,
        Err(e) => return failed(e),
    };
    if let Some(e) = plain.error {
        return failed(e);
    }
    if plain.ts.is_empty() && !p.last_chance {
        return Probe::NeedMore;
    }
    let inner = Payloads {
        ts: &plain.ts,
        tc: &plain.tc,
        ..*p
    };
    let http = super::http::Http.probe(&inner);
    if matches!(http, Probe::NeedMore) && !p.last_chance {
        return Probe::NeedMore;
    }
    let Probe::Mine(mut d) = hellos() else {
        return Probe::NotMine;
    };
    match http {
        Probe::Mine(h) if h.protocol == "http" => {
            d.service = h.service.or(d.service);
            d.evidence.push_str("; decrypted with the key log: ");
            d.evidence.push_str(&h.evidence);
            d.fields.extend(h.fields);
        }
        _ => d.evidence.push_str("; decrypted with the key log"),
    }
    d.fields.push(("exwatch.tls.decrypted", "true".to_string()));
    Probe::Mine(d)
}

/// The verdict from the hellos (and certificate) of both directions.
/// A flow picked up without its handshake whose guessed originator sent the ServerHello: the
/// hellos read the other way round, and the flow marked to be turned around.
fn reversed_hellos(p: &Payloads<'_>) -> Probe {
    match client_hello_parsed(p.tc) {
        Hello::Yes(_) | Hello::Wait { strong: true } => {}
        // The responder's stream may be a ClientHello still arriving (cut after its record
        // header): wait for it rather than take the flow for records without handshake.
        Hello::Wait { .. } if !p.last_chance => return Probe::NeedMore,
        _ => return Probe::NotMine,
    }
    let swapped = p.swapped();
    hellos(&swapped).reversed()
}

fn hellos(p: &Payloads<'_>) -> Probe {
    {
        let client = client_hello_parsed(p.ts);
        let server = server_hello(p.tc);
        let last = p.last_chance;
        match (client, server) {
            (Hello::Yes(c), Hello::Yes(s)) => {
                // Hold on for the certificate of a TLS <= 1.2 server flight still arriving.
                if s.cert_pending && !last {
                    Probe::NeedMore
                } else {
                    match keylog::lookup(c.random()) {
                        Some(keys) => decrypted(p, &c.client(), &s, &keys),
                        None => detection(Some(&c.client()), Some(&s), false),
                    }
                }
            }
            (Hello::Yes(c), Hello::Empty | Hello::Wait { .. }) => {
                if last {
                    detection(Some(&c.client()), None, false)
                } else {
                    Probe::NeedMore
                }
            }
            // The server answered with something else (an alert, or the capture lost the
            // start of its stream): the ClientHello alone is proof enough.
            (Hello::Yes(c), Hello::No) => detection(Some(&c.client()), None, false),
            // A ServerHello alone: the capture began after the ClientHello (mid-stream).
            (Hello::No | Hello::Empty, Hello::Yes(s)) => {
                if s.cert_pending && !last {
                    Probe::NeedMore
                } else {
                    detection(None, Some(&s), false)
                }
            }
            // The client's hello is still arriving though the server's is complete: a hole in
            // the client's stream. Wait for it while it may still fill.
            (Hello::Wait { .. }, Hello::Yes(s)) => {
                if last {
                    detection(None, Some(&s), false)
                } else {
                    Probe::NeedMore
                }
            }
            (Hello::Wait { strong }, _) | (Hello::Empty | Hello::No, Hello::Wait { strong }) => {
                if !last {
                    Probe::NeedMore
                } else if strong {
                    detection(None, None, true)
                } else {
                    Probe::NotMine
                }
            }
            (Hello::Empty, Hello::Empty) => {
                if last {
                    Probe::NotMine
                } else {
                    Probe::NeedMore
                }
            }
            (Hello::Empty | Hello::No, Hello::No) | (Hello::No, Hello::Empty) => Probe::NotMine,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::classify::detector::testing::View;

    /// For the tests of protocols that upgrade in band: `ts` and `tc` are each side's bytes up
    /// to the first TLS byte. A ClientHello cut short waits, and at the last chance still names
    /// the upgrade; a ClientHello alone waits for the server's; both hellos put the client's
    /// and the server's fingerprints on the detection, which is returned.
    pub(crate) fn assert_follows_upgrade(
        d: &dyn Detector,
        view: View,
        ts: &[u8],
        tc: &[u8],
        evidence: &str,
    ) -> Detection {
        let (ch, sf) = (hex(IMAPS_CLIENT_HELLO), hex(IMAPS_SERVER_FLIGHT));
        let name = d.name();
        let part = [ts, &ch[..6]].concat();
        assert!(
            matches!(d.probe(&view(&part, tc, false)), Probe::NeedMore),
            "{name}: hello cut short"
        );
        let Probe::Mine(cut) = d.probe(&view(&part, tc, true)) else {
            panic!("{name}: hello cut short at the last chance")
        };
        let into = format!("{evidence} into TLS");
        assert!(cut.evidence.contains(&into), "{name}: {}", cut.evidence);
        let full = [ts, &ch].concat();
        assert!(
            matches!(d.probe(&view(&full, tc, false)), Probe::NeedMore),
            "{name}: ClientHello alone"
        );
        let Probe::Mine(det) = d.probe(&view(&full, &[tc, &sf].concat(), false)) else {
            panic!("{name}: both hellos")
        };
        assert!(det.evidence.contains(&into), "{name}: {}", det.evidence);
        for k in [
            "tls.client.server_name",
            "tls.client.ja3",
            "tls.client.ja4",
            "tls.server.ja3s",
            "tls.server.ja4s",
            "tls.cipher",
        ] {
            assert!(det.fields.iter().any(|(f, _)| *f == k), "{name}: no {k}");
        }
        assert_eq!(field(&det, "tls.version"), Some("1.3"), "{name}");
        det
    }

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 443, 50000, last)
    }

    fn field<'a>(d: &'a Detection, name: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == name).map(|f| f.1.as_str())
    }

    fn mine(p: Probe) -> Detection {
        match p {
            Probe::Mine(d) => d,
            other => panic!("expected Mine, got {other:?}"),
        }
    }

    /// Issue 15, class 8: the guessed originator sent the ServerHello (a flow joined
    /// mid-stream between two ephemeral ports): the hellos are read the other way round, with
    /// the client's fingerprints, and the flow is marked to be turned around.
    #[test]
    fn hellos_the_other_way_round_mark_the_flow_reversed() {
        let (ch, sh) = (hex(EX12_CLIENT_HELLO), hex(EX12_SERVER_FLIGHT));
        let straight = mine(Tls.probe(&view(&ch, &sh, true)));
        let d = mine(Tls.probe(&view(&sh, &ch, true)));
        assert!(d.reversed && !straight.reversed);
        assert!(
            d.evidence.ends_with(" (flow directions reversed)"),
            "{}",
            d.evidence
        );
        for k in ["tls.client.ja3", "tls.client.ja4", "tls.client.server_name"] {
            assert!(field(&straight, k).is_some(), "{k}");
            assert_eq!(field(&d, k), field(&straight, k), "{k}");
        }
    }

    // https-exchange.pcap, first connection (curl --tlsv1.2, SNI autodiscover.contoso.test).
    const EX12_CLIENT_HELLO: &str = "
        16030100e4010000e0030359f7e773a887a450a50a1e4b01be31b655b29a34855fcdd06938fe9ceea131fa000038c02c
        c030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c
        0035002f00ff0100007f0000001e001c0000196175746f646973636f7665722e636f6e746f736f2e74657374000b0004
        03000102000a000c000a001d0017001e001900180010000b000908687474702f312e310016000000170000000d002a00
        28040305030603080708080809080a080b080408050806040105010601030303010302040205020602
    ";
    // Its server flight up to the end of the first certificate (the Certificate record is cut).
    const EX12_SERVER_FLIGHT: &str = "
        16030300700200006c030329e514aa8ce27b823a4034db51ab926979686483247ac523444f574e4752440120beb1fcd2
        6dfa24e81fe3f5b2134c4c986a5b9984059c652b96170063519a40b4c030000024ff0100010000000000000b00040300
        01020010000b000908687474702f312e310017000016030306f30b0006ef0006ec000399308203953082027da0030201
        02021404da20a1f445ee7c7d5b8f7c0dbe2f9104e89c55300d06092a864886f70d01010b050030343118301606035504
        0a0c0f6578776174636820746573742043413118301606035504030c0f657877617463682074657374204341301e170d
        3236313132343032343635325a170d3336313132313032343635325a303331153013060355040a0c0c436f6e746f736f
        2074657374311a301806035504030c116d61696c2e636f6e746f736f2e7465737430820122300d06092a864886f70d01
        010105000382010f003082010a0282010100f35d694078496b65e7997c402526a7a36e0873bd485c38b36429e8cede00
        f90240444ec9f81c7ed4202a82c15337f51d54fba037e75f4a3c89e2b2d31f8dc91e469be2da797c3d500e6688a69a2e
        ebe94a41532ad0e8f236655ecd2a5f3d6a0392c01c9ba29657385e914ad9860089cec64cbc872b86128ee87a0e8a42cf
        9067679d2ddbbd43a53c3faeacce274afd0ff0402b63da3cf367c10321151cc37397fa7405113b7f03571ecef6cc72a7
        93be49307ad50e68dc8a41d52d0aaf386b61f4610512fe6b437bff1f04bf863263a859996cd64658038cbef491812755
        44a9f95246041dfc5027741f7a64e4e279f61f5d502e7e41d02eea1f294dd54219ef0203010001a3819f30819c304506
        03551d11043e303c82116d61696c2e636f6e746f736f2e7465737482196175746f646973636f7665722e636f6e746f73
        6f2e74657374820c636f6e746f736f2e7465737430130603551d25040c300a06082b06010505070301301d0603551d0e
        04160414c9acb54dd03a18cea42435556bbc186f1634c006301f0603551d23041830168014fcd5f7338168b9c44bafee
        ef68bb2804605dcd4f300d06092a864886f70d01010b050003820101002b188cb54eb43e6739c3bd281ff57018941dba
        dd07adeef4d48c85bc5c8e486505ef4918cd08bd91a29ce054e28f55855de4ba28c8267bdaf590c25fb23458b39e6754
        d0f8d6d6633f6316b486567f380f3a1de49d144abfccb8209e9fa59836e56a7856ad86d6bfbf65a1197177ebcece8c33
        db12634e74a31711ea7033df69cd8bf5651a5097335d4889b1a372307f5a46136854662716a0c2ed1b8e930b8fcfd8d7
        36e608a8a43c923af4174c3c0377e0beba81c2bc30089881b8bd3e27940e887f85a05d6912b73039381dc90def2ac4ec
        bdf0be9c915d6aa164b7114bbb90edfb3aa4ae040e1d3ce16a0841198a071012c683466173a1634f83f4c3cbc1
    ";
    // imaps-993.pcap (python imaplib, TLS 1.3, SNI mail.contoso.test).
    pub(crate) const IMAPS_CLIENT_HELLO: &str = "
        1603010200010001fc0303ba3dd7dd9da9a562791c4cf88fc22057e8a379142effbb72dc1ba6b9157fd57d209c67ce24
        c3e4ba2c2499869ea002c0f45316f8fd798c84c4e86510ab0d3a06ad003e130213031301c02cc030009fcca9cca8ccaa
        c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01000175
        0000001600140000116d61696c2e636f6e746f736f2e74657374000b000403000102000a00160014001d0017001e0019
        001801000101010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b0804
        08050806040105010601030303010302040205020602002b0009080304030303020301002d0002010100330026002400
        1d0020056e410fdbce9a99f2ce3f3445001baf735763fe44d6aa1615161755bcc9eb0e001500be000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        00000000000000000000000000000000000000000000000000000000000000000000000000
    ";
    // Its ServerHello record and the ChangeCipherSpec and first encrypted record after it.
    pub(crate) const IMAPS_SERVER_FLIGHT: &str = "
        160303007a020000760303c2fd2be433e7b1eca1915a1292485e9e66b214db4fa2c2c4faf5c4b41c8a8fdf209c67ce24
        c3e4ba2c2499869ea002c0f45316f8fd798c84c4e86510ab0d3a06ad130200002e002b0002030400330024001d002014
        560081e14ba26c7d0118cd97df2f352e988ae47d70961fceb61387922bfb07140303000101170303001bbbc30d513dd2
        4c2eb4cde51ccb86ac150067e46f030f8f94f8e92317030307053d73f997c8ebf5c2940a
    ";

    // google_ssl.pcap: an SSLv2-format CLIENT-HELLO offering TLS 1.0.
    const SSLV2_CLIENT_HELLO: &str = "
        807c01030100630000001000003900003800003500001600001300000a0700c000003300003200002f03008000006600
        000500000401008008008000006300006200006100001500001200000906004000006500006400006000001400001100
        0008000006040080000003020080447674058ab9c9a5abbb06702cc6cf1f
    ";

    #[test]
    fn tls12_handshake_with_certificate_in_clear() {
        let (ch, sf) = (hex(EX12_CLIENT_HELLO), hex(EX12_SERVER_FLIGHT));
        let d = mine(Tls.probe(&view(&ch, &sf, false)));
        assert_eq!(d.protocol, "tls");
        assert_eq!(d.service.as_deref(), Some("autodiscover"));
        assert_eq!(field(&d, "tls.version"), Some("1.2"));
        assert_eq!(field(&d, "tls.version_protocol"), Some("tls"));
        assert_eq!(
            field(&d, "tls.cipher"),
            Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
        );
        assert_eq!(field(&d, "tls.next_protocol"), Some("http/1.1"));
        assert_eq!(field(&d, "exwatch.tls.client_alpn"), Some("http/1.1"));
        assert_eq!(
            field(&d, "tls.client.server_name"),
            Some("autodiscover.contoso.test")
        );
        // tshark 4.0: tls.handshake.ja3 of the same hello.
        assert_eq!(
            field(&d, "tls.client.ja3"),
            Some("87b9bfc7da97115ed2276737b09f8d74")
        );
        // Computed by hand from tshark's decoded lists, following JA4.md.
        assert_eq!(
            field(&d, "tls.client.ja4"),
            Some("t12d2807h1_d943125447b4_a44c6288192a")
        );
        assert_eq!(
            field(&d, "tls.server.x509.subject.common_name"),
            Some("mail.contoso.test")
        );
        let sans: Vec<&str> = d
            .fields
            .iter()
            .filter(|f| f.0 == "tls.server.x509.alternative_names")
            .map(|f| f.1.as_str())
            .collect();
        assert_eq!(
            sans,
            [
                "mail.contoso.test",
                "autodiscover.contoso.test",
                "contoso.test"
            ]
        );
        // Issuer, subject and validity of the same certificate, as `openssl x509 -issuer
        // -subject -dates` prints them: issuer=O = exwatch test CA, CN = exwatch test CA,
        // subject=O = Contoso test, CN = mail.contoso.test, notBefore=Nov 24 02:46:52 2026
        // GMT, notAfter=Nov 21 02:46:52 2036 GMT.
        assert_eq!(
            field(&d, "tls.server.issuer"),
            Some("O=exwatch test CA, CN=exwatch test CA")
        );
        assert_eq!(
            field(&d, "tls.server.subject"),
            Some("O=Contoso test, CN=mail.contoso.test")
        );
        assert_eq!(
            field(&d, "tls.server.x509.issuer.common_name"),
            Some("exwatch test CA")
        );
        for k in ["tls.server.not_before", "tls.server.x509.not_before"] {
            assert_eq!(field(&d, k), Some("2026-11-24T02:46:52Z"));
        }
        for k in ["tls.server.not_after", "tls.server.x509.not_after"] {
            assert_eq!(field(&d, k), Some("2036-11-21T02:46:52Z"));
        }
        assert_eq!(field(&d, "tls.resumed"), Some("false"));
        assert_eq!(
            d.fields.iter().filter(|f| f.0 == "tls.version").count(),
            1,
            "the negotiated version only"
        );
        assert!(
            d.evidence.contains("TLS 1.2 ClientHello and ServerHello"),
            "{}",
            d.evidence
        );
    }

    #[test]
    fn tls13_handshake_without_certificate() {
        let (ch, sf) = (hex(IMAPS_CLIENT_HELLO), hex(IMAPS_SERVER_FLIGHT));
        let d = mine(Tls.probe(&view(&ch, &sf, false)));
        assert_eq!(
            d.service, None,
            "mail.contoso.test names no Exchange service"
        );
        assert_eq!(field(&d, "tls.version"), Some("1.3"));
        assert_eq!(field(&d, "tls.cipher"), Some("TLS_AES_256_GCM_SHA384"));
        assert_eq!(
            field(&d, "tls.client.server_name"),
            Some("mail.contoso.test")
        );
        assert_eq!(
            field(&d, "tls.client.ja3"),
            Some("d39e1be3241d516b1f714bd47c2bc968")
        );
        assert_eq!(
            field(&d, "tls.client.ja4"),
            Some("t13d311100_e8f1e7e78f70_d41ae481755e")
        );
        assert_eq!(field(&d, "tls.server.x509.subject.common_name"), None);
        assert_eq!(field(&d, "exwatch.tls.client_alpn"), None);
    }

    #[test]
    fn client_hello_alone_waits_for_the_server_then_decides() {
        let ch = hex(IMAPS_CLIENT_HELLO);
        assert!(matches!(Tls.probe(&view(&ch, b"", false)), Probe::NeedMore));
        let d = mine(Tls.probe(&view(&ch, b"", true)));
        assert_eq!(field(&d, "tls.version"), Some("1.3"), "highest offered");
        assert!(
            d.evidence.contains("ClientHello offering 1.3"),
            "{}",
            d.evidence
        );
        // A server that answers with something other than TLS does not undo the hello.
        let d = mine(Tls.probe(&view(&ch, b"HTTP/1.1 400 Bad Request\r\n", false)));
        assert_eq!(
            field(&d, "tls.client.server_name"),
            Some("mail.contoso.test")
        );
    }

    #[test]
    fn server_hello_alone_mid_stream() {
        let sf = hex(EX12_SERVER_FLIGHT);
        let d = mine(Tls.probe(&view(b"", &sf, false)));
        assert_eq!(field(&d, "tls.version"), Some("1.2"));
        assert_eq!(
            field(&d, "tls.server.x509.subject.common_name"),
            Some("mail.contoso.test")
        );
        assert!(d.evidence.contains("no ClientHello seen"), "{}", d.evidence);
        // The client's stream began after its hello (encrypted records).
        let d = mine(Tls.probe(&view(b"\x17\x03\x03\x00\x05hello", &sf, false)));
        assert_eq!(field(&d, "tls.client.ja3"), None);
    }

    #[test]
    fn split_across_segments_needs_more() {
        let (ch, sf) = (hex(EX12_CLIENT_HELLO), hex(EX12_SERVER_FLIGHT));
        for cut in [1, 3, 5, 6, 9, 11, 40, 120, ch.len() - 1] {
            assert!(
                matches!(Tls.probe(&view(&ch[..cut], b"", false)), Probe::NeedMore),
                "client cut at {cut}"
            );
        }
        for cut in [1, 4, 5, 9, 60, 116] {
            assert!(
                matches!(Tls.probe(&view(&ch, &sf[..cut], false)), Probe::NeedMore),
                "server cut at {cut}"
            );
        }
        // ServerHello complete, certificate still arriving: wait for it ...
        assert!(matches!(
            Tls.probe(&view(&ch, &sf[..117], false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Tls.probe(&view(&ch, &sf[..600], false)),
            Probe::NeedMore
        ));
        // ... unless nothing more will come.
        let d = mine(Tls.probe(&view(&ch, &sf[..600], true)));
        assert_eq!(field(&d, "tls.version"), Some("1.2"));
        assert_eq!(field(&d, "tls.server.x509.subject.common_name"), None);
        // The whole certificate is enough even though its record is not complete.
        let d = mine(Tls.probe(&view(&ch, &sf, false)));
        assert!(field(&d, "tls.server.x509.alternative_names").is_some());
    }

    #[test]
    fn truncated_hello() {
        let ch = hex(EX12_CLIENT_HELLO);
        // Record and handshake headers say enough to name TLS when the rest never comes.
        let d = mine(Tls.probe(&view(&ch[..60], b"", true)));
        assert!(d.evidence.contains("cut short"), "{}", d.evidence);
        assert!(d.fields.is_empty());
        // A few bytes do not.
        for cut in [1, 4, 8] {
            assert!(matches!(
                Tls.probe(&view(&ch[..cut], b"", true)),
                Probe::NotMine
            ));
        }
        assert_eq!(follow_upgrade(&ch[..100], b"", false), None);
        // A record header claiming more than a record may hold.
        let mut bad = ch.clone();
        bad[3] = 0xff;
        assert!(matches!(Tls.probe(&view(&bad, b"", false)), Probe::NotMine));
    }

    #[test]
    fn sslv2_format_client_hello() {
        let ch = hex(SSLV2_CLIENT_HELLO);
        assert!(matches!(
            Tls.probe(&view(&ch[..20], b"", false)),
            Probe::NeedMore
        ));
        let d = mine(Tls.probe(&view(&ch, b"", true)));
        assert_eq!(field(&d, "tls.version"), Some("1.0"));
        assert!(d.evidence.contains("SSLv2-format"), "{}", d.evidence);
        let mut bad = ch.clone();
        bad[10] = 0x05; // challenge length no longer adds up
        assert!(matches!(Tls.probe(&view(&bad, b"", true)), Probe::NotMine));
    }

    #[test]
    fn fields_for_starttls_callers() {
        let (ch, sf) = (hex(IMAPS_CLIENT_HELLO), hex(IMAPS_SERVER_FLIGHT));
        // The ClientHello alone: wait for the server's, unless nothing more comes.
        assert_eq!(follow_upgrade(&ch, b"", false), None);
        let (f, hello) = follow_upgrade(&ch, b"", true).unwrap();
        assert!(hello);
        assert!(f.contains(&("tls.client.server_name", "mail.contoso.test".to_string())));
        assert!(f.contains(&("tls.version", "1.3".to_string())));
        assert!(f.iter().any(|(k, _)| *k == "tls.client.ja3"));
        // Both hellos: the server's fingerprints and choices join the client's.
        let (f, _) = follow_upgrade(&ch, &sf, false).unwrap();
        assert!(f.contains(&("tls.cipher", "TLS_AES_256_GCM_SHA384".to_string())));
        assert!(f.contains(&(
            "tls.server.ja3s",
            "15af977ce25de452b96affa2addb1036".to_string()
        )));
        assert!(f.contains(&("tls.server.ja4s", "t130200_1302_a56c5b993250".to_string())));
        assert_eq!(f.iter().filter(|(k, _)| *k == "tls.version").count(), 1);
        // The server's go-ahead line, then its hello.
        let mut tc = b"a1 OK Begin TLS negotiation now\r\n".to_vec();
        tc.extend_from_slice(&sf);
        assert_eq!(tls_after_lines(&tc), &sf[..]);
        assert_eq!(tls_after_lines(b"a1 OK Begin TLS\r\n"), b"");
        // Not TLS after the upgrade: no fields, no hello.
        assert_eq!(
            follow_upgrade(b"EHLO a\r\n", b"", true),
            Some((Vec::new(), false))
        );
    }

    #[test]
    fn server_fingerprints_follow_ja3s_and_ja4s() {
        // Expected values computed independently (Python hashlib over the hello's fields:
        // 771,49200,65281-0-11-16-23 and 0xff01,0x0000,0x000b,0x0010,0x0017, ALPN http/1.1).
        let d = mine(Tls.probe(&view(
            &hex(EX12_CLIENT_HELLO),
            &hex(EX12_SERVER_FLIGHT),
            true,
        )));
        assert_eq!(
            field(&d, "tls.server.ja3s"),
            Some("263c859c5391203d774bc0599793d915")
        );
        assert_eq!(
            field(&d, "tls.server.ja4s"),
            Some("t1205h1_c030_8763c20bf469")
        );
    }

    #[test]
    fn records_without_handshake_chain_over_segments() {
        let app = |n: usize| {
            let mut r = vec![0x17, 0x03, 0x03, 0x00, n as u8];
            r.extend(std::iter::repeat_n(0xa5, n));
            r
        };
        // The server's half only: two application-data records.
        let tc = [app(40), app(23)].concat();
        let d = mine(Tls.probe(&view(b"", &tc, false)));
        assert!(
            d.evidence.contains("records without handshake"),
            "{}",
            d.evidence
        );
        assert_eq!(d.confidence, Confidence::Payload);
        // One record each way is two records.
        let d = mine(Tls.probe(&view(&app(30), &app(50), false)));
        assert!(d.evidence.contains("records without handshake"));
        // A mid-stream client flight: ClientKeyExchange, ChangeCipherSpec, Finished.
        let mut ts = b"\x16\x03\x03\x00\x25\x10\x00\x00\x21\x20".to_vec();
        ts.extend([0u8; 32]);
        ts.extend(b"\x14\x03\x03\x00\x01\x01");
        ts.extend(b"\x16\x03\x03\x00\x28");
        ts.extend([7u8; 40]);
        mine(Tls.probe(&view(&ts, b"", false)));
        // The second record still arriving (the segment boundary inside it): more, please.
        for cut in [41, 45, 46, 50] {
            assert!(
                matches!(Tls.probe(&view(&tc[..cut], b"", false)), Probe::NeedMore),
                "cut at {cut}"
            );
            assert!(matches!(
                Tls.probe(&view(&tc[..cut], b"", true)),
                Probe::NotMine
            ));
        }
        // A single record is not enough, lengths that do not chain are not TLS.
        assert!(matches!(
            Tls.probe(&view(&app(40), b"", true)),
            Probe::NotMine
        ));
        let mut bad = tc.clone();
        bad[4] = 39; // the first record ends one byte early: the next header is wrong
        assert!(matches!(Tls.probe(&view(&bad, b"", false)), Probe::NotMine));
        let mut bad = tc.clone();
        bad[45] = 0x18; // content type 24
        assert!(matches!(Tls.probe(&view(&bad, b"", false)), Probe::NotMine));
        // Hellos in the wrong directions (the originator guessed wrong) are not records of a
        // session in progress: they are the hellos, read the other way round (class 8).
        let (ch, sf) = (hex(IMAPS_CLIENT_HELLO), hex(IMAPS_SERVER_FLIGHT));
        let d = mine(Tls.probe(&view(&sf, &ch, true)));
        assert!(
            d.reversed && !d.evidence.contains("without handshake"),
            "{}",
            d.evidence
        );
        // The other direction speaks something else.
        assert!(matches!(
            Tls.probe(&view(b"GET / HTTP/1.1\r\n\r\n", &tc, false)),
            Probe::NotMine
        ));
    }

    #[test]
    fn other_protocols_are_not_tls() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b""),
            (
                b"",
                b"220 mail.contoso.test Microsoft ESMTP MAIL Service ready\r\n",
            ),
            (b"SSH-2.0-OpenSSH_9.2p1\r\n", b"SSH-2.0-OpenSSH_9.2p1\r\n"),
            // RDP: TPKT / X.224 Connection Request.
            (
                b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x03\x00\x00\x00",
                b"",
            ),
            // SMB2 over NetBIOS session service.
            (b"\x00\x00\x00\x66\xfeSMB\x40\x00", b""),
        ];
        for (ts, tc) in cases {
            for last in [false, true] {
                assert!(
                    matches!(Tls.probe(&view(ts, tc, last)), Probe::NotMine),
                    "{ts:?} / {tc:?}"
                );
            }
        }
    }

    #[test]
    fn ja4_matches_the_specification_example() {
        // technical_details/JA4.md: t13d1516h2_8daaf6152771_e5627efa2ab1
        let ciphers = [
            0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
            0x009c, 0x009d, 0x002f, 0x0035, 0x3a3a,
        ];
        let exts = [
            0x1a1a, 0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023,
            0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
        ];
        let sig = [
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        assert_eq!(
            ja4(0x0304, true, &ciphers, &exts, Some(b"h2"), &sig),
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        );
        // Without signature algorithms the list ends without an underscore.
        assert!(ja4(0x0304, true, &ciphers, &exts, Some(b"h2"), &[]).ends_with("_6d807ffa2a79"));
        // ALPN values that do not start and end alphanumeric are shown as hex nibbles.
        for (alpn, want) in [
            (&b"\xab"[..], "ab"),
            (b"\xab\xcd", "ad"),
            (b"\x30\xab", "3b"),
            (b"http/1.1", "h1"),
            (b"", "00"),
        ] {
            let a = ja4(0x0303, false, &[0x002f], &[], Some(alpn), &[]);
            assert_eq!(&a[..8], "t12i0100");
            assert_eq!(&a[8..10], want, "{alpn:?}");
        }
        assert_eq!(
            ja4(0x0303, false, &[], &[], None, &[]),
            "t12i000000_000000000000_000000000000"
        );
    }

    #[test]
    fn grease_values() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x3a3a));
        assert!(!is_grease(0x1a2a) && !is_grease(0x0a0b) && !is_grease(0x000a));
    }

    #[test]
    fn sni_signatures_load_and_match() {
        assert!(SNI_RULES.len() >= 8, "signatures/sni.toml failed to parse");
        let services: toml::Value =
            toml::from_str(include_str!("../../../signatures/services.toml")).unwrap();
        let known: Vec<&str> = services["service"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        for r in SNI_RULES.iter() {
            assert!(
                known.contains(&r.service.as_str()),
                "sni.toml: {} -> unknown service {}",
                r.pattern,
                r.service
            );
        }
        for (name, want) in [
            ("outlook.office365.com", Some("o365-outlook")),
            ("OUTLOOK.OFFICE365.COM.", Some("o365-outlook")),
            ("smtp.office365.com", Some("o365-smtp")),
            ("contoso-com.mail.protection.outlook.com", Some("eop")),
            ("outlook.office.com", Some("o365-outlook")),
            ("autodiscover-s.outlook.com", Some("autodiscover")),
            ("autodiscover.contoso.test", Some("autodiscover")),
            ("autodiscover", None),
            ("autodiscover.", None),
            ("outlook.com", None),
            ("xoutlook.com", None),
            ("mail.contoso.test", None),
            ("", None),
        ] {
            assert_eq!(sni_service(name), want, "{name}");
        }
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let ch = hex(EX12_CLIENT_HELLO);
        let sf = hex(EX12_SERVER_FLIGHT);
        // Huge and zero lengths at every length field of the real messages.
        let mut bufs: Vec<Vec<u8>> = Vec::new();
        for base in [&ch, &sf] {
            for i in 0..base.len().min(300) {
                for v in [0x00, 0xff] {
                    let mut b = base.clone();
                    b[i] = v;
                    bufs.push(b);
                }
            }
        }
        bufs.push(b"\x16\x03\x01\xff\xff\x01\xff\xff\xff\x03\x03".to_vec());
        bufs.push(b"\x16\x03\x01\x00\x00".to_vec());
        bufs.push(b"\x16\x03\x03\x00\x04\x0b\xff\xff\xff".to_vec());
        bufs.push(b"\xff\xff\x01\x03\x01\xff\xff\xff\xff\xff\xff".to_vec());
        // Pseudo-random buffers, some wearing a handshake record header.
        let mut x: u32 = 0x2545_f491;
        for n in 0..400 {
            let len = (n * 7) % 600;
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            if n % 2 == 0 && b.len() > 11 {
                let head = [0x16, 0x03, 0x03, b[3] & 0x3f, b[4], (n % 3) as u8];
                b[..6].copy_from_slice(&head);
            }
            bufs.push(b);
        }
        for b in &bufs {
            for last in [false, true] {
                let _ = Tls.probe(&view(b, b, last));
                let _ = Tls.probe(&view(&ch, b, last));
                let _ = Tls.probe(&view(b, &sf, last));
            }
            let _ = follow_upgrade(b, b, false);
            let _ = follow_upgrade(&ch, b, true);
        }
    }
}
