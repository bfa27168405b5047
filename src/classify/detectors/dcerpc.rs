//! DCE/RPC ([C706], [MS-RPCE]): connection-oriented v5 over TCP and connectionless v4 over
//! UDP; names the interface a bind asks for and reads endpoint-mapper towers.

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::sync::LazyLock;

/// The interface table, embedded from `signatures/dcerpc.toml`.
const TABLE: &str = include_str!("../../../signatures/dcerpc.toml");

/// One named DCE/RPC interface.
#[derive(Debug, Clone)]
pub struct Interface {
    /// Canonical byte order (as the UUID is written), not wire order.
    pub uuid: [u8; 16],
    pub name: String,
    pub description: String,
    pub spec: String,
    /// The exwatch service a bind to it names, if any.
    pub service: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    interface: Vec<TableEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableEntry {
    uuid: String,
    name: String,
    description: String,
    spec: String,
    #[serde(default)]
    service: Option<String>,
}

fn parse_table(text: &str) -> Result<Vec<Interface>, String> {
    let file: TableFile = toml::from_str(text).map_err(|e| e.to_string())?;
    file.interface
        .into_iter()
        .map(|e| {
            let uuid = parse_uuid(&e.uuid).ok_or_else(|| format!("bad uuid {:?}", e.uuid))?;
            Ok(Interface {
                uuid,
                name: e.name,
                description: e.description,
                spec: e.spec,
                service: e.service,
            })
        })
        .collect()
}

/// The embedded table, parsed once. The file is part of the build, so a unit test (not the
/// wire) guarantees it parses.
static INTERFACES: LazyLock<Vec<Interface>> =
    LazyLock::new(|| parse_table(TABLE).expect("signatures/dcerpc.toml is valid"));

/// The named interface with this UUID (canonical byte order).
pub fn interface(uuid: &[u8; 16]) -> Option<&'static Interface> {
    INTERFACES.iter().find(|i| &i.uuid == uuid)
}

/// Parse `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` into canonical byte order.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
    if s.len() != 36 || hex.len() != 32 || [8, 13, 18, 23].iter().any(|&i| s.as_bytes()[i] != b'-')
    {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let txt = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(txt, 16).ok()?;
    }
    Some(out)
}

/// Canonical text form of a UUID in canonical byte order.
pub fn uuid_string(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, part) in [&u[0..4], &u[4..6], &u[6..8], &u[8..10], &u[10..16]]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            s.push('-');
        }
        text::push_hex(&mut s, part);
    }
    s
}

/// A UUID as NDR puts it on the wire: the first three fields follow the data representation.
fn wire_uuid(b: &[u8], le: bool) -> Option<[u8; 16]> {
    let b: &[u8; 16] = b.get(..16)?.try_into().ok()?;
    let mut u = *b;
    if le {
        u[0..4].reverse();
        u[4..6].reverse();
        u[6..8].reverse();
    }
    Some(u)
}

// Transfer syntaxes (never interfaces): NDR 2.0, NDR64, and the bind-time feature
// negotiation pseudo-syntax of [MS-RPCE] 3.3.1.5.3 whose last 8 bytes carry a bitmask.
const NDR: [u8; 16] = [
    0x8a, 0x88, 0x5d, 0x04, 0x1c, 0xeb, 0x11, 0xc9, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60,
];
const NDR64: [u8; 16] = [
    0x71, 0x71, 0x05, 0x33, 0xbe, 0xba, 0x49, 0x37, 0x83, 0x19, 0xb5, 0xdb, 0xef, 0x9c, 0xcc, 0x36,
];
const BTFN_PREFIX: [u8; 8] = [0x6c, 0xb7, 0x1c, 0x2c, 0x98, 0x12, 0x45, 0x40];

fn is_transfer_syntax(u: &[u8; 16]) -> bool {
    *u == NDR || *u == NDR64 || u[..8] == BTFN_PREFIX
}

/// ept_s_not_registered, the endpoint mapper's "no such interface" status.
const EPT_S_NOT_REGISTERED: u32 = 0x16c9_a0d6;
/// The endpoint mapper interface.
const EPM_UUID: [u8; 16] = [
    0xe1, 0xaf, 0x83, 0x08, 0x5d, 0x1f, 0x11, 0xc9, 0x91, 0xa4, 0x08, 0x00, 0x2b, 0x14, 0xa0, 0xfa,
];

// Connection-oriented packet types ([C706] 12.6.4, rts from [MS-RPCH] 2.2.3.6.1).
const REQUEST: u8 = 0;
const RESPONSE: u8 = 2;
const FAULT: u8 = 3;
const BIND: u8 = 11;
const BIND_ACK: u8 = 12;
const BIND_NAK: u8 = 13;
const ALTER_CONTEXT: u8 = 14;
const ALTER_CONTEXT_RESP: u8 = 15;
const AUTH3: u8 = 16;
const SHUTDOWN: u8 = 17;
const CO_CANCEL: u8 = 18;
const ORPHANED: u8 = 19;
const RTS: u8 = 20;

fn ptype_name(t: u8) -> &'static str {
    match t {
        REQUEST => "request",
        RESPONSE => "response",
        FAULT => "fault",
        BIND => "bind",
        BIND_ACK => "bind_ack",
        BIND_NAK => "bind_nak",
        ALTER_CONTEXT => "alter_context",
        ALTER_CONTEXT_RESP => "alter_context_resp",
        AUTH3 => "auth3",
        SHUTDOWN => "shutdown",
        CO_CANCEL => "co_cancel",
        ORPHANED => "orphaned",
        RTS => "rts",
        _ => "connectionless-type",
    }
}

/// Types a client sends, and types a server sends. rts travels both ways on RPC over HTTP.
fn client_type(t: u8) -> bool {
    matches!(
        t,
        REQUEST | BIND | ALTER_CONTEXT | AUTH3 | CO_CANCEL | ORPHANED | RTS
    )
}

fn server_type(t: u8) -> bool {
    matches!(
        t,
        RESPONSE | FAULT | BIND_ACK | BIND_NAK | ALTER_CONTEXT_RESP | SHUTDOWN | RTS
    )
}

/// Smallest well-formed PDU of each type (header plus fixed body), to refuse absurd lengths.
fn min_len(t: u8) -> usize {
    match t {
        REQUEST | RESPONSE | FAULT => 24,
        BIND | ALTER_CONTEXT => 28,
        BIND_ACK | ALTER_CONTEXT_RESP => 28,
        BIND_NAK => 18,
        AUTH3 => 20,
        RTS => 20,
        _ => 16,
    }
}

/// The 16-byte common header of a connection-oriented PDU ([C706] 12.6.3.1).
#[derive(Debug, Clone, Copy)]
struct CoHeader {
    ptype: u8,
    flags: u8,
    le: bool,
    frag_len: usize,
    auth_len: usize,
    call_id: u32,
}

/// The first-fragment flag of pfc_flags.
const PFC_FIRST_FRAG: u8 = 0x01;

fn rd16(b: &[u8], at: usize, le: bool) -> Option<u16> {
    let x: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(if le {
        u16::from_le_bytes(x)
    } else {
        u16::from_be_bytes(x)
    })
}

fn rd32(b: &[u8], at: usize, le: bool) -> Option<u32> {
    let x: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(x)
    } else {
        u32::from_be_bytes(x)
    })
}

/// Whether the bytes present could begin a v5 header (for split segments): each byte that
/// has arrived is checked against its rule.
fn co_prefix_ok(b: &[u8]) -> bool {
    b.iter().take(8).enumerate().all(|(i, &v)| match i {
        0 => v == 5,
        1 => v <= 1,
        2 => v <= RTS,
        4 => v == 0x10 || v == 0x00,
        5 => v <= 3,
        6 | 7 => v == 0,
        _ => true,
    })
}

/// Parse and check a v5 common header. Byte 4 is the integer/character representation:
/// 0x10 little-endian ASCII, 0x00 big-endian ASCII (EBCDIC is never seen); byte 5 the float
/// format (IEEE, VAX, Cray, IBM); bytes 6-7 are reserved zeros.
fn co_header(b: &[u8]) -> Option<CoHeader> {
    if b.len() < 16 || !co_prefix_ok(&b[..16]) {
        return None;
    }
    let le = b[4] == 0x10;
    let ptype = b[2];
    // rts exists only in minor version 0 ([MS-RPCH]); everything else uses 0 or 1.
    if ptype == RTS && b[1] != 0 {
        return None;
    }
    let frag_len = rd16(b, 8, le)? as usize;
    let auth_len = rd16(b, 10, le)? as usize;
    let trailer = if auth_len > 0 { 8 + auth_len } else { 0 };
    if frag_len < min_len(ptype).max(16 + trailer) {
        return None;
    }
    Some(CoHeader {
        ptype,
        flags: b[3],
        le,
        frag_len,
        auth_len,
        call_id: rd32(b, 12, le)?,
    })
}

/// The legacy-server greeting that opens ncacn_http connections ([MS-RPCH] 2.1.2.1.1).
const NCACN_HTTP: &[u8] = b"ncacn_http/1.0";

fn skip_ncacn_http(b: &[u8]) -> (&[u8], bool) {
    match b.strip_prefix(NCACN_HTTP) {
        Some(rest) => (rest, true),
        None => (b, false),
    }
}

/// Complete PDUs at the start of `b`, in order; stops at the first incomplete or invalid one.
fn pdus(b: &[u8]) -> impl Iterator<Item = (CoHeader, &[u8])> + '_ {
    let mut rest = b;
    std::iter::from_fn(move || {
        let h = co_header(rest)?;
        let pdu = rest.get(..h.frag_len)?;
        rest = &rest[h.frag_len..];
        Some((h, pdu))
    })
}

/// The body between the header(s) and the auth trailer.
fn stub<'a>(h: &CoHeader, pdu: &'a [u8], header_len: usize) -> &'a [u8] {
    let end = if h.auth_len > 0 {
        h.frag_len.saturating_sub(8 + h.auth_len)
    } else {
        h.frag_len
    };
    pdu.get(header_len..end.min(pdu.len())).unwrap_or_default()
}

/// The sec_trailer of a PDU with authentication: (auth_type, auth_level).
fn auth_of(h: &CoHeader, pdu: &[u8]) -> Option<(u8, u8)> {
    if h.auth_len == 0 {
        return None;
    }
    let at = h.frag_len.checked_sub(8 + h.auth_len)?;
    Some((*pdu.get(at)?, *pdu.get(at + 1)?))
}

fn auth_type_name(t: u8) -> &'static str {
    match t {
        0 => "none",
        9 => "spnego",
        10 => "ntlm",
        14 => "schannel",
        16 => "kerberos",
        0x44 => "netlogon",
        0xff => "default",
        _ => "other",
    }
}

fn auth_level_name(l: u8) -> &'static str {
    match l {
        1 => "none",
        2 => "connect",
        3 => "call",
        4 => "packet",
        5 => "integrity",
        6 => "privacy",
        _ => "other",
    }
}

/// One presentation context of a bind or alter_context.
#[derive(Debug, Clone, Copy)]
struct Context {
    uuid: [u8; 16],
    major: u16,
    minor: u16,
}

/// The p_cont_list of a bind or alter_context ([C706] 12.6.4.3); None if inconsistent.
/// At most 16 contexts are kept: no allocation follows the wire count.
fn bind_contexts(h: &CoHeader, pdu: &[u8]) -> Option<Vec<Context>> {
    let body = stub(h, pdu, 0);
    let max_xmit = rd16(body, 16, h.le)?;
    let max_recv = rd16(body, 18, h.le)?;
    if max_xmit == 0 || max_recv == 0 {
        return None;
    }
    let n = *body.get(24)? as usize;
    if n == 0 {
        return None;
    }
    let mut at = 28;
    let mut out = Vec::with_capacity(n.min(16));
    for _ in 0..n {
        let n_syn = *body.get(at + 2)? as usize;
        if n_syn == 0 {
            return None;
        }
        let uuid = wire_uuid(body.get(at + 4..)?, h.le)?;
        let major = rd16(body, at + 20, h.le)?;
        let minor = rd16(body, at + 22, h.le)?;
        at += 24 + 20 * n_syn;
        if at > body.len() {
            return None;
        }
        if out.len() < 16 {
            out.push(Context { uuid, major, minor });
        }
    }
    Some(out)
}

/// What a bind_ack / alter_context_resp / bind_nak said.
#[derive(Debug, Clone)]
struct BindReply {
    /// "accepted" or "rejected: <reason>".
    result: String,
}

fn provider_reason(r: u16) -> &'static str {
    match r {
        0 => "reason_not_specified",
        1 => "abstract_syntax_not_supported",
        2 => "proposed_transfer_syntaxes_not_supported",
        3 => "local_limit_exceeded",
        _ => "unknown_reason",
    }
}

fn nak_reason(r: u16) -> &'static str {
    match r {
        0 => "reason_not_specified",
        1 => "temporary_congestion",
        2 => "local_limit_exceeded",
        3 => "called_paddr_unknown",
        4 => "protocol_version_not_supported",
        5 => "default_context_not_supported",
        6 => "user_data_not_readable",
        7 => "no_psap_available",
        8 => "authentication_type_not_recognized",
        9 => "invalid_checksum",
        _ => "unknown_reason",
    }
}

/// Parse a bind_ack or alter_context_resp ([C706] 12.6.4.4): secondary address (a port
/// string), then the result list. `for_ctx` is the index of the context the caller names.
fn bind_ack(h: &CoHeader, pdu: &[u8], for_ctx: usize) -> Option<BindReply> {
    let body = stub(h, pdu, 0);
    let sec_len = rd16(body, 24, h.le)? as usize;
    let sec = body.get(26..26 + sec_len)?;
    // The secondary address is a NUL-terminated port string ("135", "49154", or a pipe
    // name for named pipes) or empty on alter_context_resp.
    if sec_len > 0
        && (sec.last() != Some(&0)
            || !sec[..sec_len - 1]
                .iter()
                .all(|&c| (0x20..0x7f).contains(&c)))
    {
        return None;
    }
    let at = (26 + sec_len + 3) & !3;
    let n = *body.get(at)? as usize;
    if at + 4 + 24 * n > body.len() {
        return None;
    }
    let results: Vec<(u16, u16)> = (0..n.min(16))
        .filter_map(|i| {
            let r = at + 4 + 24 * i;
            Some((rd16(body, r, h.le)?, rd16(body, r + 2, h.le)?))
        })
        .collect();
    if results.iter().any(|&(r, _)| r > 3) {
        return None;
    }
    // Result 3 is the bind-time feature negotiation acknowledgement, not a verdict.
    let real: Vec<(u16, u16)> = results.iter().copied().filter(|&(r, _)| r != 3).collect();
    let result = if results.is_empty() {
        "no results".to_string()
    } else if let Some(&(r, reason)) = results.get(for_ctx).filter(|&&(r, _)| r != 3) {
        verdict(r, reason)
    } else if real.iter().any(|&(r, _)| r == 0) {
        "accepted".to_string()
    } else if let Some(&(r, reason)) = real.first() {
        verdict(r, reason)
    } else {
        "accepted".to_string()
    };
    Some(BindReply { result })
}

fn verdict(r: u16, reason: u16) -> String {
    match r {
        0 => "accepted".to_string(),
        1 => "rejected: user_rejection".to_string(),
        _ => format!("rejected: {}", provider_reason(reason)),
    }
}

fn bind_nak(h: &CoHeader, pdu: &[u8]) -> Option<BindReply> {
    let reason = rd16(pdu, 16, h.le)?;
    Some(BindReply {
        result: format!("rejected: {}", nak_reason(reason)),
    })
}

/// An endpoint an endpoint-mapper reply names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpmEndpoint {
    /// Interface UUID, canonical byte order.
    pub uuid: [u8; 16],
    pub version: (u16, u16),
    /// TCP port (floor 4, big-endian on the wire).
    pub port: u16,
    /// IPv4 address (floor 5); 0.0.0.0 means "the address you asked".
    pub ip: Option<Ipv4Addr>,
}

/// At most this many endpoints are taken from one stream.
const MAX_ENDPOINTS: usize = 64;

/// Parse one protocol tower ([C706] appendix L) at the start of `b`: floor count, then
/// floors of LHS (length, protocol id, data) and RHS (length, data), all little-endian
/// whatever the PDU's data representation. Only ncacn_ip_tcp towers (interface, transfer
/// syntax, 0x0b connection-oriented RPC, 0x07 TCP port, 0x09 IPv4) yield an endpoint.
/// Returns the endpoint (port may be 0, as in a request) and the tower's length.
fn tower(b: &[u8]) -> Option<(EpmEndpoint, usize)> {
    let floors = u16::from_le_bytes(b.get(..2)?.try_into().ok()?) as usize;
    if !(4..=8).contains(&floors) {
        return None;
    }
    let mut at = 2;
    let mut ep = EpmEndpoint {
        uuid: [0; 16],
        version: (0, 0),
        port: 0,
        ip: None,
    };
    let mut tcp = false;
    let mut ncacn = false;
    for i in 0..floors {
        let lhs = u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize;
        let lhs_data = b.get(at + 2..at + 2 + lhs)?;
        let rhs_at = at + 2 + lhs;
        let rhs = u16::from_le_bytes(b.get(rhs_at..rhs_at + 2)?.try_into().ok()?) as usize;
        let rhs_data = b.get(rhs_at + 2..rhs_at + 2 + rhs)?;
        at = rhs_at + 2 + rhs;
        let proto = *lhs_data.first()?;
        match i {
            0 | 1 => {
                // UUID floors: id 0x0d, 16-byte UUID, 2-byte major; RHS the 2-byte minor.
                if lhs != 19 || proto != 0x0d || rhs != 2 {
                    return None;
                }
                let uuid = wire_uuid(&lhs_data[1..], true)?;
                let major = u16::from_le_bytes(lhs_data[17..19].try_into().ok()?);
                let minor = u16::from_le_bytes(rhs_data.try_into().ok()?);
                if i == 0 {
                    ep.uuid = uuid;
                    ep.version = (major, minor);
                } else if uuid != NDR && uuid != NDR64 {
                    return None;
                }
            }
            _ => {
                if lhs != 1 {
                    return None;
                }
                match proto {
                    0x0b if i == 2 && rhs == 2 => ncacn = true,
                    0x07 if rhs == 2 => {
                        tcp = true;
                        ep.port = u16::from_be_bytes(rhs_data.try_into().ok()?);
                    }
                    0x09 if rhs == 4 => {
                        let a: [u8; 4] = rhs_data.try_into().ok()?;
                        ep.ip = Some(Ipv4Addr::from(a));
                    }
                    _ => {}
                }
            }
        }
    }
    (ncacn && tcp).then_some((ep, at))
}

/// Towers found in a stub, by scanning (ept_map and ept_lookup replies place them at
/// different NDR offsets; the floor pattern is distinctive enough to find them anywhere).
fn towers_in(stub: &[u8], out: &mut Vec<EpmEndpoint>, with_port_only: bool) {
    let mut i = 0;
    while i + 2 < stub.len() && out.len() < MAX_ENDPOINTS {
        // Cheap pre-check before a parse: floor count < 9, first LHS length 19, id 0x0d.
        let candidate = stub[i + 1] == 0 && stub.get(i + 2..i + 5) == Some(&[19, 0, 0x0d][..]);
        if let Some((ep, len)) = candidate.then(|| tower(&stub[i..])).flatten() {
            if ep.port != 0 || !with_port_only {
                out.push(ep);
            }
            i += len;
            continue;
        }
        i += 1;
    }
}

/// Stubs of the PDUs of type `ptype` in `b`, fragments of one call joined, for the calls
/// `want` accepts. Bounded by `b`'s own length.
fn call_stubs(b: &[u8], ptype: u8, want: impl Fn(u32) -> bool) -> Vec<(u32, Vec<u8>)> {
    let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
    let (b, _) = skip_ncacn_http(b);
    for (h, pdu) in pdus(b) {
        if h.ptype != ptype || !want(h.call_id) {
            continue;
        }
        let body = stub(&h, pdu, 24);
        match out.iter_mut().find(|(c, _)| *c == h.call_id) {
            Some((_, s)) if h.flags & PFC_FIRST_FRAG == 0 => s.extend_from_slice(body),
            _ => {
                if out.len() >= MAX_ENDPOINTS {
                    break;
                }
                out.push((h.call_id, body.to_vec()));
            }
        }
    }
    out
}

/// Endpoints named by the endpoint-mapper replies in a server-to-client stream: the
/// ncacn_ip_tcp towers of every response PDU (ept_map and ept_lookup both carry them), in
/// order, at most 64, those with port 0 left out.
pub fn ept_map_endpoints(tc: &[u8]) -> Vec<EpmEndpoint> {
    let mut out = Vec::new();
    for (_, s) in call_stubs(tc, RESPONSE, |_| true) {
        towers_in(&s, &mut out, true);
        if out.len() >= MAX_ENDPOINTS {
            break;
        }
    }
    out
}

/// (interface UUID in canonical byte order, TCP port) of the endpoints an endpoint-mapper
/// reply stream names; at most 64. For the cross-flow expectation of the dynamic port.
pub fn ept_map_ports(tc: &[u8]) -> Vec<([u8; 16], u16)> {
    ept_map_endpoints(tc)
        .into_iter()
        .map(|e| (e.uuid, e.port))
        .collect()
}

fn iface_label(c: &Context) -> String {
    interface(&c.uuid).map_or_else(|| uuid_string(&c.uuid), |i| i.name.clone())
}

/// What the first bind/alter_context of a client stream asks for.
struct BindInfo {
    ptype: u8,
    call_id: u32,
    contexts: Vec<Context>,
    /// Index of the context that names the flow.
    primary: usize,
    auth: Option<(u8, u8)>,
    /// Bytes of the client stream after the bind.
    after: usize,
}

fn bind_info(h: &CoHeader, pdu: &[u8], offset: usize) -> Option<BindInfo> {
    let contexts = bind_contexts(h, pdu)?;
    // Name the first context whose abstract syntax is a real interface (a transfer syntax
    // UUID in that place is a malformed or probing bind).
    let primary = contexts
        .iter()
        .position(|c| !is_transfer_syntax(&c.uuid))
        .unwrap_or(0);
    Some(BindInfo {
        ptype: h.ptype,
        call_id: h.call_id,
        contexts,
        primary,
        auth: auth_of(h, pdu),
        after: offset + h.frag_len,
    })
}

/// The first complete client PDU starting somewhere after the start of `ts` (for streams
/// joined mid-PDU), with its bind details if it is a bind or alter_context. A candidate must
/// end where the buffer ends or where another valid header begins, so a stray 0x05 in the
/// tail of an authentication blob does not pass.
fn resync(ts: &[u8]) -> Option<(CoHeader, Option<BindInfo>)> {
    (1..ts.len().saturating_sub(16)).find_map(|i| {
        let rest = &ts[i..];
        if rest[0] != 5 || !client_type(rest[2]) {
            return None;
        }
        let h = co_header(rest)?;
        let pdu = rest.get(..h.frag_len)?;
        let next = &rest[h.frag_len..];
        if !co_prefix_ok(&next[..next.len().min(16)]) {
            return None;
        }
        if matches!(h.ptype, BIND | ALTER_CONTEXT) {
            Some((h, Some(bind_info(&h, pdu, i)?)))
        } else {
            Some((h, None))
        }
    })
}

/// The reply to the bind or alter_context `info` among the server's first PDUs (the same
/// call_id is reused by the alter_context of a three-leg authentication, so the type
/// must match too).
fn reply_for(tc: &[u8], info: &BindInfo) -> Option<(u8, BindReply)> {
    pdus(tc).find_map(|(h, pdu)| {
        if h.call_id != info.call_id {
            return None;
        }
        match (info.ptype, h.ptype) {
            (BIND, BIND_ACK) | (ALTER_CONTEXT, ALTER_CONTEXT_RESP) => {
                Some((h.ptype, bind_ack(&h, pdu, info.primary)?))
            }
            (BIND, BIND_NAK) => Some((h.ptype, bind_nak(&h, pdu)?)),
            _ => None,
        }
    })
}

/// State of one direction's first PDU.
enum First<'a> {
    Empty,
    /// A valid prefix of a PDU.
    Partial(Option<CoHeader>),
    Complete(CoHeader, &'a [u8]),
    Invalid,
}

fn first_pdu(b: &[u8], from_client: bool) -> First<'_> {
    if b.is_empty() {
        return First::Empty;
    }
    if b.len() < 16 {
        // A short buffer may also be the start of "ncacn_http/1.0".
        return if co_prefix_ok(b)
            && b.get(2).is_none_or(|&t| {
                if from_client {
                    client_type(t)
                } else {
                    server_type(t)
                }
            })
            || NCACN_HTTP.starts_with(b)
        {
            First::Partial(None)
        } else {
            First::Invalid
        };
    }
    match co_header(b) {
        Some(h)
            if (from_client && client_type(h.ptype)) || (!from_client && server_type(h.ptype)) =>
        {
            match b.get(..h.frag_len) {
                Some(pdu) => First::Complete(h, pdu),
                None => First::Partial(Some(h)),
            }
        }
        _ => First::Invalid,
    }
}

/// A server PDU strong enough on its own to claim a flow whose client bytes are unusable
/// (a capture joined mid-PDU): a bind_ack/alter_context_resp/bind_nak that parses fully.
fn server_proof(tc: &[u8]) -> Option<(u8, BindReply)> {
    let (h, pdu) = pdus(tc).next()?;
    match h.ptype {
        BIND_ACK | ALTER_CONTEXT_RESP => Some((h.ptype, bind_ack(&h, pdu, usize::MAX)?)),
        BIND_NAK => Some((h.ptype, bind_nak(&h, pdu)?)),
        _ => None,
    }
}

pub struct Dcerpc;

impl Dcerpc {
    fn probe_tcp(&self, p: &Payloads<'_>) -> Probe {
        let r = self.probe_dirs(p, p.ts, p.tc);
        // A flow picked up without its handshake may have its directions guessed wrong: if
        // the responder's stream starts with a client PDU, try the roles the other way.
        if matches!(r, Probe::NotMine)
            && matches!(
                first_pdu(p.tc, true),
                First::Complete(..) | First::Partial(_)
            )
        {
            return self.probe_dirs(p, p.tc, p.ts).reversed();
        }
        r
    }

    fn probe_dirs(&self, p: &Payloads<'_>, ts: &[u8], tc: &[u8]) -> Probe {
        let (ts, http_ts) = skip_ncacn_http(ts);
        let (tc, http_tc) = skip_ncacn_http(tc);
        let http = http_ts || http_tc;
        let undecided = if p.last_chance {
            Probe::NotMine
        } else {
            Probe::NeedMore
        };
        match first_pdu(ts, true) {
            First::Empty => match first_pdu(tc, false) {
                // A client speaks first (the server only greets with "ncacn_http/1.0"), so
                // server bytes alone must prove themselves: a capture that missed the start.
                First::Empty | First::Partial(_) => undecided,
                First::Complete(..) => match server_proof(tc) {
                    Some((t, r)) => self.mid_stream(tc, t, r, None, http),
                    None => Probe::NotMine,
                },
                First::Invalid => Probe::NotMine,
            },
            First::Invalid => {
                // The client stream may have been joined mid-PDU: a fully valid bind reply
                // from the server still proves DCE/RPC.
                match first_pdu(tc, false) {
                    First::Empty | First::Partial(_) => undecided,
                    First::Invalid => Probe::NotMine,
                    First::Complete(..) => match (server_proof(tc), resync(ts)) {
                        (Some((t, r)), Some((_, bind))) => self.mid_stream(tc, t, r, bind, http),
                        // Wait for the client's next PDU: it may name the interface.
                        (Some(_), None) if !p.last_chance => Probe::NeedMore,
                        (Some((t, r)), None) => self.mid_stream(tc, t, r, None, http),
                        (None, _) => Probe::NotMine,
                    },
                }
            }
            First::Partial(h) => {
                if !p.last_chance {
                    return Probe::NeedMore;
                }
                match h {
                    // A whole header arrived and the capture ends inside the PDU.
                    Some(h) => self.truncated(h, http),
                    None => Probe::NotMine,
                }
            }
            First::Complete(h, pdu) => match h.ptype {
                BIND | ALTER_CONTEXT => match bind_info(&h, pdu, 0) {
                    Some(info) => self.bind(p, ts, tc, info, http),
                    None => Probe::NotMine,
                },
                _ => {
                    // Mid-connection start: any complete client PDU followed by either the
                    // end of the stream or another valid header.
                    let rest = &ts[h.frag_len..];
                    if !(rest.is_empty() || co_prefix_ok(&rest[..rest.len().min(16)])) {
                        return Probe::NotMine;
                    }
                    let mut d = detection(format!(
                        "DCE/RPC v5 {} PDU{}",
                        ptype_name(h.ptype),
                        if http { " (ncacn_http)" } else { "" }
                    ));
                    if h.ptype == REQUEST {
                        if let Some(op) = rd16(pdu, 22, h.le) {
                            d.fields.push(("exwatch.dcerpc.opnum", op.to_string()));
                        }
                    }
                    Probe::Mine(d)
                }
            },
        }
    }

    fn truncated(&self, h: CoHeader, http: bool) -> Probe {
        Probe::Mine(detection(format!(
            "DCE/RPC v5 {} header, PDU cut short{}",
            ptype_name(h.ptype),
            if http { " (ncacn_http)" } else { "" }
        )))
    }

    fn mid_stream(
        &self,
        tc: &[u8],
        ptype: u8,
        reply: BindReply,
        bind: Option<BindInfo>,
        http: bool,
    ) -> Probe {
        let mut d = detection(format!(
            "DCE/RPC v5 {} from the server (client stream joined mid-PDU){}",
            ptype_name(ptype),
            if http { " (ncacn_http)" } else { "" }
        ));
        let mut result = reply.result;
        if let Some(info) = bind {
            d.evidence
                .push_str(&format!("; client {}", ptype_name(info.ptype)));
            name_interfaces(&mut d, &info);
            if let Some((t, r)) = reply_for(tc, &info) {
                d.evidence
                    .push_str(&format!("; {}: {}", ptype_name(t), r.result));
                result = r.result;
            }
        }
        d.fields.push(("exwatch.dcerpc.bind_result", result));
        Probe::Mine(d)
    }

    fn bind(&self, p: &Payloads<'_>, ts: &[u8], tc: &[u8], info: BindInfo, http: bool) -> Probe {
        let reply = reply_for(tc, &info);
        if reply.is_none() && !p.last_chance {
            // Wait for the server's verdict, unless its stream is clearly something else.
            match first_pdu(tc, false) {
                First::Invalid => {}
                _ => return Probe::NeedMore,
            }
        }
        let primary = info.contexts.get(info.primary).copied();
        let is_epm = primary.is_some_and(|c| c.uuid == EPM_UUID);
        let accepted = reply.as_ref().is_some_and(|(_, r)| r.result == "accepted");
        // The endpoint mapper: follow the first call after the bind, and for ept_map its
        // reply, which names the dynamic port.
        let mut epm_note = None;
        let mut epm_fields = Vec::new();
        if is_epm && accepted {
            let after = &ts[info.after.min(ts.len())..];
            match pdus(after).find(|(h, _)| h.ptype == REQUEST) {
                None if !p.last_chance => return Probe::NeedMore,
                None => {}
                Some((h, pdu)) => {
                    let op = rd16(pdu, 22, h.le).unwrap_or(u16::MAX);
                    let name = epm_op(op);
                    if op == 3 {
                        let mut asked = Vec::new();
                        towers_in(stub(&h, pdu, 24), &mut asked, false);
                        let replies = call_stubs(tc, RESPONSE, |c| c == h.call_id);
                        let faulted =
                            pdus(tc).any(|(r, _)| r.ptype == FAULT && r.call_id == h.call_id);
                        if replies.is_empty() && !faulted && !p.last_chance {
                            return Probe::NeedMore;
                        }
                        let asked_name = asked.first().map(|e| {
                            interface(&e.uuid)
                                .map_or_else(|| uuid_string(&e.uuid), |i| i.name.clone())
                        });
                        if let Some(n) = &asked_name {
                            epm_fields.push(("exwatch.dcerpc.epm_map_interface", n.clone()));
                        }
                        let mut found = Vec::new();
                        let mut status = None;
                        for (_, s) in &replies {
                            towers_in(s, &mut found, true);
                            status = s.len().checked_sub(4).and_then(|at| rd32(s, at, h.le));
                        }
                        let what = asked_name.unwrap_or_else(|| "an interface".to_string());
                        epm_note = Some(match (found.first(), status) {
                            (Some(e), _) => {
                                epm_fields.push(("exwatch.dcerpc.epm_port", e.port.to_string()));
                                format!("; ept_map for {what} -> port {}", e.port)
                            }
                            (None, Some(EPT_S_NOT_REGISTERED)) => {
                                format!("; ept_map for {what}: ept_s_not_registered")
                            }
                            (None, _) if faulted => format!("; ept_map for {what}: fault"),
                            (None, _) => format!("; ept_map for {what}"),
                        });
                    } else {
                        epm_note = Some(format!("; {name}"));
                    }
                }
            }
        }
        let mut d = detection(format!(
            "DCE/RPC v5 {}{}",
            ptype_name(info.ptype),
            if http { " (ncacn_http)" } else { "" }
        ));
        name_interfaces(&mut d, &info);
        if let Some((t, r)) = &reply {
            d.evidence
                .push_str(&format!("; {}: {}", ptype_name(*t), r.result));
            d.fields
                .push(("exwatch.dcerpc.bind_result", r.result.clone()));
        }
        if let Some(n) = epm_note {
            d.evidence.push_str(&n);
        }
        d.fields.extend(epm_fields);
        Probe::Mine(d)
    }

    fn probe_udp(&self, p: &Payloads<'_>) -> Probe {
        let (b, from_orig) = if p.ts.is_empty() {
            (p.tc, false)
        } else {
            (p.ts, true)
        };
        if b.is_empty() {
            return Probe::NeedMore;
        }
        let wire = p
            .datagrams
            .iter()
            .find(|d| d.from_orig == from_orig)
            .map_or(b.len(), |d| d.len as usize);
        match cl_header(b, wire) {
            Some(h) => {
                let mut d = detection(format!(
                    "DCE/RPC v4 connectionless {}",
                    cl_type_name(h.ptype)
                ));
                let c = Context {
                    uuid: h.interface,
                    major: h.major,
                    minor: h.minor,
                };
                if c.uuid != [0; 16] {
                    let label = iface_label(&c);
                    d.evidence.push_str(&format!(
                        " for {label} v{}.{} ({})",
                        c.major,
                        c.minor,
                        uuid_string(&c.uuid)
                    ));
                    d.fields.push(("exwatch.dcerpc.interface", label));
                    d.fields
                        .push(("exwatch.dcerpc.interface_uuid", uuid_string(&c.uuid)));
                    d.fields.push((
                        "exwatch.dcerpc.interface_version",
                        format!("{}.{}", c.major, c.minor),
                    ));
                    d.service = interface(&c.uuid).and_then(|i| i.service.clone());
                }
                if h.ptype == 0 {
                    d.fields.push(("exwatch.dcerpc.opnum", h.opnum.to_string()));
                }
                Probe::Mine(d)
            }
            None => Probe::NotMine,
        }
    }
}

fn epm_op(op: u16) -> &'static str {
    match op {
        0 => "ept_insert",
        1 => "ept_delete",
        2 => "ept_lookup",
        3 => "ept_map",
        4 => "ept_lookup_handle_free",
        5 => "ept_inq_object",
        6 => "ept_mgmt_delete",
        _ => "endpoint mapper call",
    }
}

fn detection(evidence: String) -> Detection {
    Detection {
        reversed: false,
        protocol: "dcerpc",
        service: None,
        confidence: Confidence::Payload,
        evidence,
        fields: Vec::new(),
    }
}

/// Record the interface(s) of a bind: name, UUID, version, all names, auth, and the
/// Exchange service the interface stands for.
fn name_interfaces(d: &mut Detection, info: &BindInfo) {
    let Some(c) = info.contexts.get(info.primary) else {
        return;
    };
    let label = iface_label(c);
    d.evidence.push_str(&format!(
        " to {label} v{}.{} ({})",
        c.major,
        c.minor,
        uuid_string(&c.uuid)
    ));
    d.fields.push(("exwatch.dcerpc.interface", label));
    d.fields
        .push(("exwatch.dcerpc.interface_uuid", uuid_string(&c.uuid)));
    d.fields.push((
        "exwatch.dcerpc.interface_version",
        format!("{}.{}", c.major, c.minor),
    ));
    let mut names: Vec<String> = Vec::new();
    for c in &info.contexts {
        let n = iface_label(c);
        if !names.contains(&n) {
            names.push(n);
        }
    }
    if info.contexts.len() > 1 {
        d.fields
            .extend(names.into_iter().map(|n| ("exwatch.dcerpc.interfaces", n)));
    }
    if let Some((t, l)) = info.auth {
        d.fields
            .push(("exwatch.dcerpc.auth_type", auth_type_name(t).to_string()));
        d.fields
            .push(("exwatch.dcerpc.auth_level", auth_level_name(l).to_string()));
    }
    if let Some(s) = interface(&c.uuid).and_then(|i| i.service.clone()) {
        d.evidence.push_str(&format!(" (Exchange {s})"));
        d.service = Some(s);
    }
}

/// The 80-byte connectionless header ([C706] 12.5.3.1).
struct ClHeader {
    ptype: u8,
    interface: [u8; 16],
    major: u16,
    minor: u16,
    opnum: u16,
}

fn cl_type_name(t: u8) -> &'static str {
    match t {
        0 => "request",
        1 => "ping",
        2 => "response",
        3 => "fault",
        4 => "working",
        5 => "nocall",
        6 => "reject",
        7 => "ack",
        8 => "cl_cancel",
        9 => "fack",
        10 => "cancel_ack",
        _ => "pdu",
    }
}

/// Check a v4 header: version 4, type 0..=10, undefined flags2 bits clear, a known data
/// representation, a non-nil activity UUID, and a body length that matches the datagram
/// (`wire` is its length on the wire; the buffer may hold only the first 2048 bytes).
fn cl_header(b: &[u8], wire: usize) -> Option<ClHeader> {
    if b.len() < 80 || b[0] != 4 || b[1] > 10 {
        return None;
    }
    // Every flags1 bit is defined or "reserved for implementations" (0x01, 0x80: C706
    // 12.5.3.1), so any value may be sent. flags2 defines 0x02 (cancel pending) and leaves
    // 0x01 to implementations; the other six bits are reserved and sent as zero.
    if b[3] & !0x03 != 0 {
        return None;
    }
    // drep: integers big- (0x0_) or little-endian (0x1_), characters ASCII (0) or EBCDIC
    // (1), floats IEEE, VAX, Cray or IBM (0..=3), the third octet reserved (C706 14.1).
    if !matches!(b[4], 0x00 | 0x01 | 0x10 | 0x11) || b[5] > 3 || b[6] != 0 {
        return None;
    }
    let le = b[4] & 0xf0 == 0x10;
    if b[40..56].iter().all(|&x| x == 0) {
        return None;
    }
    let body_len = rd16(b, 74, le)? as usize;
    let auth_proto = b[78];
    let total = 80 + body_len;
    if (auth_proto == 0 && total != wire) || total > wire {
        return None;
    }
    let interface = wire_uuid(&b[24..40], le)?;
    let vers = rd32(b, 60, le)?;
    Some(ClHeader {
        ptype: b[1],
        interface,
        major: (vers & 0xffff) as u16,
        minor: (vers >> 16) as u16,
        opnum: rd16(b, 68, le)?,
    })
}

impl Detector for Dcerpc {
    fn name(&self) -> &'static str {
        "dcerpc"
    }

    fn protocol(&self) -> &'static str {
        "dcerpc"
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        if p.is_udp() {
            self.probe_udp(p)
        } else {
            self.probe_tcp(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::detector::DatagramHead;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 135, 50000, last)
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    fn mine(p: Probe) -> Detection {
        match p {
            Probe::Mine(d) => d,
            other => panic!("expected Mine, got {other:?}"),
        }
    }

    // dcerpc-exchange-binds.pcap, frames 25/27: bind to EMSMDB v0.81 on 135, and Samba's
    // bind_ack refusing it (provider_rejection, abstract_syntax_not_supported).
    const EMSMDB_BIND: &str = "05000b03100000004800000001000000b810b81000000000010000000000010000dbf1a447ca6710b31f00dd010662da00005100045d888aeb1cc9119fe808002b10486002000000";
    const EMSMDB_NAK: &str = "05000c03100000003c00000001000000b810b810f53f0000040031333500000001000000020001000000000000000000000000000000000000000000";
    // dcerpc-epm-dynamic.pcap, frames 21/23/25/26: EPM bind, bind_ack, ept_map for SAMR and
    // the reply naming port 49154.
    const EPM_BIND: &str = "05000b03100000004800000001000000b810b8100000000001000000000001000883afe11f5dc91191a408002b14a0fa03000000045d888aeb1cc9119fe808002b10486002000000";
    const EPM_ACK: &str = "05000c03100000003c00000001000000b810b8100835000004003133350000000100000000000000045d888aeb1cc9119fe808002b10486002000000";
    const EPT_MAP_REQ: &str = "05000003100000009c0000000100000084000000000003000100000000000000000000000000000000000000020000004b0000004b000000050013000d785734123412cdabef000123456789ac01000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b0200000001000702000000010009040000000000ab000000000000000000000000000000000000000004000000";
    const EPT_MAP_RESP: &str = "050002031000000098000000010000008000000000000000000000000000000000000000000000000000000001000000040000000000000001000000030000004b0000004b000000050013000d785734123412cdabef000123456789ac01000200000013000d045d888aeb1cc9119fe808002b10486002000200000001000b020000000100070200c0020100090400000000000000000000";

    #[test]
    fn table_parses_and_names_the_exchange_interfaces() {
        let t = parse_table(TABLE).unwrap();
        assert!(t.len() > 40);
        let name = |s: &str| interface(&parse_uuid(s).unwrap()).map(|i| i.name.as_str());
        assert_eq!(name("a4f1db00-ca47-1067-b31f-00dd010662da"), Some("emsmdb"));
        assert_eq!(
            name("5261574a-4572-206e-b268-6b199213b4e4"),
            Some("asyncemsmdb")
        );
        assert_eq!(name("f5cc5a18-4264-101a-8c59-08002b2f8426"), Some("nspi"));
        assert_eq!(name("1544f5e0-613c-11d1-93df-00c04fd7bd09"), Some("rfr"));
        assert_eq!(name("e1af8308-5d1f-11c9-91a4-08002b14a0fa"), Some("epm"));
        assert_eq!(name("12345778-1234-abcd-ef00-0123456789ac"), Some("samr"));
        // Every UUID once, every service one that services.toml defines.
        let services = include_str!("../../../signatures/services.toml");
        for (i, a) in t.iter().enumerate() {
            assert!(t[i + 1..].iter().all(|b| b.uuid != a.uuid), "{}", a.name);
            if let Some(s) = &a.service {
                assert!(services.contains(&format!("name = \"{s}\"")), "{s}");
            }
        }
        assert_eq!(
            uuid_string(&parse_uuid("e1af8308-5d1f-11c9-91a4-08002b14a0fa").unwrap()),
            "e1af8308-5d1f-11c9-91a4-08002b14a0fa"
        );
        assert!(parse_uuid("e1af8308-5d1f-11c9-91a4-08002b14a0f").is_none());
    }

    #[test]
    fn exchange_bind_rejected() {
        let ts = hex(EMSMDB_BIND);
        let tc = hex(EMSMDB_NAK);
        assert!(matches!(
            Dcerpc.probe(&view(&ts, b"", false)),
            Probe::NeedMore
        ));
        let d = mine(Dcerpc.probe(&view(&ts, &tc, false)));
        assert_eq!(d.protocol, "dcerpc");
        assert_eq!(d.service.as_deref(), Some("emsmdb"));
        assert_eq!(field(&d, "exwatch.dcerpc.interface"), Some("emsmdb"));
        assert_eq!(
            field(&d, "exwatch.dcerpc.interface_uuid"),
            Some("a4f1db00-ca47-1067-b31f-00dd010662da")
        );
        assert_eq!(field(&d, "exwatch.dcerpc.interface_version"), Some("0.81"));
        assert_eq!(
            field(&d, "exwatch.dcerpc.bind_result"),
            Some("rejected: abstract_syntax_not_supported")
        );
        // Without the reply, the last chance still names the interface.
        let d = mine(Dcerpc.probe(&view(&ts, b"", true)));
        assert_eq!(field(&d, "exwatch.dcerpc.interface"), Some("emsmdb"));
        assert!(field(&d, "exwatch.dcerpc.bind_result").is_none());
    }

    #[test]
    fn bind_split_across_segments() {
        let ts = hex(EMSMDB_BIND);
        let tc = hex(EMSMDB_NAK);
        for cut in [1, 3, 8, 15, 16, 40, ts.len() - 1] {
            assert!(
                matches!(Dcerpc.probe(&view(&ts[..cut], b"", false)), Probe::NeedMore),
                "cut {cut}"
            );
        }
        assert!(matches!(
            Dcerpc.probe(&view(&ts, &tc[..20], false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Dcerpc.probe(&view(&ts, &tc, false)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn truncated_bind_at_last_chance() {
        let ts = hex(EMSMDB_BIND);
        let d = mine(Dcerpc.probe(&view(&ts[..30], b"", true)));
        assert!(d.evidence.contains("cut short"), "{}", d.evidence);
        assert!(matches!(
            Dcerpc.probe(&view(&ts[..10], b"", true)),
            Probe::NotMine
        ));
    }

    #[test]
    fn endpoint_mapper_map_names_the_dynamic_port() {
        let mut ts = hex(EPM_BIND);
        let mut tc = hex(EPM_ACK);
        assert!(matches!(
            Dcerpc.probe(&view(&ts, &tc, false)),
            Probe::NeedMore
        ));
        ts.extend(hex(EPT_MAP_REQ));
        assert!(matches!(
            Dcerpc.probe(&view(&ts, &tc, false)),
            Probe::NeedMore
        ));
        tc.extend(hex(EPT_MAP_RESP));
        let d = mine(Dcerpc.probe(&view(&ts, &tc, false)));
        assert_eq!(d.service, None, "the port's service (msrpc-epm) applies");
        assert_eq!(field(&d, "exwatch.dcerpc.interface"), Some("epm"));
        assert_eq!(field(&d, "exwatch.dcerpc.bind_result"), Some("accepted"));
        assert_eq!(field(&d, "exwatch.dcerpc.epm_port"), Some("49154"));
        assert_eq!(field(&d, "exwatch.dcerpc.epm_map_interface"), Some("samr"));
        let samr = parse_uuid("12345778-1234-abcd-ef00-0123456789ac").unwrap();
        assert_eq!(ept_map_ports(&tc), vec![(samr, 49154)]);
        let eps = ept_map_endpoints(&tc);
        assert_eq!(eps[0].ip, Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(eps[0].version, (1, 0));
    }

    #[test]
    fn multi_context_bind_names_the_first_interface() {
        // dce-rpc_dce_rpc_ntlm.pcapng frame 1 (IRemUnknown2 with NDR, NDR64 and bind-time
        // feature negotiation), header and context list only, auth trailer dropped.
        let mut ts = hex("05000b031000000074000000020000 00d016d016000000000300000000000100430100000000 0000c00000000000004600000000045d888aeb1cc9119fe808002b10486002000000010001004301000000000000c00000000000004600000000330571 71babe37498319b5dbef9ccc360100000002000100430100000000 0000c000000000000046000000002c1cb76c12984045030000000000000001000000");
        let len = ts.len() as u16;
        ts[8..10].copy_from_slice(&len.to_le_bytes());
        let d = mine(Dcerpc.probe(&view(&ts, b"", true)));
        assert_eq!(field(&d, "exwatch.dcerpc.interface"), Some("iremunknown2"));
        assert_eq!(field(&d, "exwatch.dcerpc.interfaces"), Some("iremunknown2"));
    }

    #[test]
    fn client_stream_joined_mid_pdu() {
        // kerberos.pcap: the capture starts inside the client's bind; the server's bind_ack
        // (3 results: NDR rejected, NDR64 accepted, feature negotiation) proves DCE/RPC,
        // and the alter_context that follows names drsuapi.
        let tc = hex("05000c07100000001c01a80002000000d016d016872200000600343931353500030000000200020000000000000000000000000000000000000000000000000033057171babe37498319b5dbef9ccc360100000003000300000000000000000000000000");
        let mut tc = tc;
        tc.resize(0x11c, 0xaa); // auth blob stand-in
        let garbage = hex("389b2b2650cdb6bec7e257277abfb861af7bbad1");
        assert!(matches!(
            Dcerpc.probe(&view(&garbage, b"", false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Dcerpc.probe(&view(&garbage, &tc, false)),
            Probe::NeedMore
        ));
        let d = mine(Dcerpc.probe(&view(&garbage, &tc, true)));
        assert!(d.evidence.contains("mid-PDU"), "{}", d.evidence);
        assert_eq!(field(&d, "exwatch.dcerpc.bind_result"), Some("accepted"));
        let mut ts = garbage.clone();
        let alter = hex("05000e03100000004800000002000000d016d016000000000100000001000100354251e3064bd111ab0400c04fc2dcd20400000033057171babe37498319b5dbef9ccc3601000000");
        ts.extend(&alter);
        let d = mine(Dcerpc.probe(&view(&ts, &tc, false)));
        assert_eq!(field(&d, "exwatch.dcerpc.interface"), Some("drsuapi"));
        assert_eq!(field(&d, "exwatch.dcerpc.interface_version"), Some("4.0"));
    }

    #[test]
    fn reversed_directions() {
        // dce-rpc_dce_rpc_ntlm.pcapng: no handshake, so the flow's originator was guessed
        // to be the server; the bind arrives in `tc`.
        let bind = hex(EMSMDB_BIND);
        let ack = hex(EMSMDB_NAK);
        assert!(matches!(
            Dcerpc.probe(&view(b"", &bind, false)),
            Probe::NeedMore
        ));
        let d = mine(Dcerpc.probe(&view(&ack, &bind, false)));
        assert!(d.evidence.contains("reversed"), "{}", d.evidence);
        assert_eq!(field(&d, "exwatch.dcerpc.interface"), Some("emsmdb"));
    }

    #[test]
    fn connectionless_request() {
        let mut b = vec![0u8; 80 + 8];
        b[0] = 4;
        b[1] = 0; // request
        b[2] = 0x20; // idempotent
        b[4] = 0x10;
        let u = parse_uuid("f5cc5a18-4264-101a-8c59-08002b2f8426").unwrap();
        let mut w = u;
        w[0..4].reverse();
        w[4..6].reverse();
        w[6..8].reverse();
        b[24..40].copy_from_slice(&w);
        b[40..56].copy_from_slice(&[7; 16]);
        b[60..64].copy_from_slice(&56u32.to_le_bytes());
        b[68..70].copy_from_slice(&1u16.to_le_bytes());
        b[74..76].copy_from_slice(&8u16.to_le_bytes());
        let heads = [DatagramHead {
            from_orig: true,
            len: b.len() as u32,
            head_len: 16,
            head: b[..16].try_into().unwrap(),
        }];
        let p = Payloads {
            transport: 17,
            ts: &b,
            tc: b"",
            datagrams: &heads,
            server_port: 135,
            client_port: 1024,
            last_chance: false,
        };
        let d = mine(Dcerpc.probe(&p));
        assert_eq!(field(&d, "exwatch.dcerpc.interface"), Some("nspi"));
        assert_eq!(field(&d, "exwatch.dcerpc.interface_version"), Some("56.0"));
        assert_eq!(d.service.as_deref(), Some("nspi"));
        // Body length that disagrees with the datagram: not v4.
        let mut bad = b.clone();
        bad[74] = 9;
        let p = Payloads { ts: &bad, ..p };
        assert!(matches!(Dcerpc.probe(&p), Probe::NotMine));
    }

    /// A connectionless PDU built from [C706] 12.5.3.1: `ptype`, flags1, the interface in
    /// the wire order of `drep0`, a `body`-byte body.
    fn cl_pdu(ptype: u8, flags1: u8, drep0: u8, iface: &str, vers: u32, body: usize) -> Vec<u8> {
        let le = drep0 & 0xf0 == 0x10;
        let mut b = vec![0u8; 80 + body];
        b[0] = 4;
        b[1] = ptype;
        b[2] = flags1;
        b[4] = drep0;
        let mut w = parse_uuid(iface).unwrap();
        if le {
            w[0..4].reverse();
            w[4..6].reverse();
            w[6..8].reverse();
        }
        b[24..40].copy_from_slice(&w);
        b[40..56].copy_from_slice(&[0x5a; 16]);
        let (v, n, op) = if le {
            (
                vers.to_le_bytes(),
                (body as u16).to_le_bytes(),
                3u16.to_le_bytes(),
            )
        } else {
            (
                vers.to_be_bytes(),
                (body as u16).to_be_bytes(),
                3u16.to_be_bytes(),
            )
        };
        b[60..64].copy_from_slice(&v);
        b[68..70].copy_from_slice(&op);
        b[74..76].copy_from_slice(&n);
        b
    }

    fn udp(ts: &[u8], tc: &[u8], port: u16) -> Probe {
        crate::classify::detector::testing::udp_probe(&Dcerpc, ts, tc, port, false)
    }

    const EPM: &str = "e1af8308-5d1f-11c9-91a4-08002b14a0fa";

    #[test]
    fn connectionless_on_any_port_in_any_data_representation() {
        // The implementation-reserved flags1 bits (0x01, 0x80) and flags2 0x01 are allowed;
        // big-endian integers with EBCDIC characters too.
        for (flags1, drep0) in [(0x28u8, 0x10u8), (0x81, 0x10), (0x08, 0x00), (0x20, 0x01)] {
            let mut b = cl_pdu(0, flags1, drep0, EPM, 3, 24);
            b[3] = 0x01;
            let d = mine(udp(&b, b"", 50123));
            assert_eq!(
                field(&d, "exwatch.dcerpc.interface"),
                Some("epm"),
                "{flags1:#x}"
            );
            assert_eq!(field(&d, "exwatch.dcerpc.interface_version"), Some("3.0"));
            assert_eq!(field(&d, "exwatch.dcerpc.opnum"), Some("3"));
        }
        // Only the server's response was captured: it names the interface as well.
        let rep = cl_pdu(2, 0x08, 0x10, EPM, 3, 40);
        let d = mine(udp(b"", &rep, 135));
        assert!(d.evidence.contains("response for epm"), "{}", d.evidence);
        assert_eq!(field(&d, "exwatch.dcerpc.opnum"), None);
    }

    #[test]
    fn connectionless_refusals() {
        let good = cl_pdu(0, 0x20, 0x10, EPM, 3, 16);
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            matches!(udp(&b, b"", 1030), Probe::NotMine)
        };
        assert!(!bad(&|_| {}));
        assert!(bad(&|b| b[0] = 5)); // not v4
        assert!(bad(&|b| b[1] = 11)); // no such type
        assert!(bad(&|b| b[3] = 0x04)); // reserved flags2 bit
        assert!(bad(&|b| b[4] = 0x20)); // no such integer representation
        assert!(bad(&|b| b[5] = 4)); // no such float representation
        assert!(bad(&|b| b[40..56].fill(0))); // nil activity
        assert!(bad(&|b| b.truncate(79))); // shorter than the header
        assert!(bad(&|b| b.push(0))); // body length disagrees with the datagram
                                      // With an authentication verifier the datagram may be longer than header + body.
        assert!(!bad(&|b| {
            b[78] = 10;
            b.extend_from_slice(&[0; 16]);
        }));
    }

    #[test]
    fn other_protocols_are_not_dcerpc() {
        for ts in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"\x00\x00\x00\xeaSMB",
            b"\x05\x01\x00",             // SOCKS5 greeting
            b"\x03\x00\x00\x13\x0e\xe0", // TPKT
            b"SSH-2.0-OpenSSH_9.2p1\r\n",
        ] {
            assert!(
                matches!(Dcerpc.probe(&view(ts, b"", true)), Probe::NotMine),
                "{ts:?}"
            );
        }
        // SOCKS5: greeting then a method reply "05 00" and CONNECT reply.
        let ts = b"\x05\x01\x00\x05\x01\x00\x01\x0a\x00\x00\x01\x00\x50";
        let tc = b"\x05\x00\x05\x00\x00\x01\x0a\x00\x00\x01\x00\x50";
        assert!(matches!(Dcerpc.probe(&view(ts, tc, false)), Probe::NotMine));
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let base = hex(EMSMDB_BIND);
        // Huge and zero frag_length, auth_length larger than the PDU, context counts.
        for (at, v) in [
            (8, 0xff),
            (9, 0xff),
            (8, 0),
            (9, 0),
            (10, 0xff),
            (24, 0xff),
            (30, 0xff),
        ] {
            let mut b = base.clone();
            b[at] = v;
            let _ = Dcerpc.probe(&view(&b, &hex(EMSMDB_NAK), true));
            let _ = Dcerpc.probe(&view(&b, &hex(EMSMDB_NAK), false));
        }
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        for i in 0..600 {
            let n = (next() as usize) * 2 + (i % 7);
            let mut b: Vec<u8> = (0..n).map(|_| next()).collect();
            if i % 2 == 0 && b.len() >= 16 {
                // Make the header valid so the body parsers run on random bytes.
                b[..8].copy_from_slice(&[
                    5,
                    0,
                    [0, 2, 11, 12, 13, 14, 15][i % 7],
                    3,
                    0x10,
                    0,
                    0,
                    0,
                ]);
            }
            let mut c: Vec<u8> = (0..n / 2).map(|_| next()).collect();
            if c.len() >= 16 {
                c[..8].copy_from_slice(&[5, 0, 12, 3, 0x10, 0, 0, 0]);
            }
            for last in [false, true] {
                let _ = Dcerpc.probe(&view(&b, &c, last));
                let _ = Dcerpc.probe(&view(&c, &b, last));
            }
            let _ = ept_map_endpoints(&b);
            let _ = ept_map_endpoints(&c);
            let mut cl = b.clone();
            if cl.len() >= 80 {
                cl[0] = 4;
            }
            let p = Payloads {
                transport: 17,
                ts: &cl,
                tc: &c,
                datagrams: &[],
                server_port: 135,
                client_port: 1,
                last_chance: last_flag(i),
            };
            let _ = Dcerpc.probe(&p);
        }
    }

    fn last_flag(i: usize) -> bool {
        i % 3 == 0
    }
}
