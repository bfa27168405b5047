//! SIP (RFC 3261) over UDP and TCP on any port: request and status lines, headers (compact
//! forms too), the Exchange Unified Messaging marker, and the SDP media a call announces.
//!
//! Records the method, status code, User-Agent/Server product string and the first SDP
//! media line ("audio 16000 RTP/AVP"); never URIs, addresses of record or message bodies.

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};
use std::net::IpAddr;

/// Methods of RFC 3261 and its extensions, plus the Microsoft (Lync/OCS, Exchange UM) ones.
const METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
    "SERVICE",
    "BENOTIFY",
    "NEGOTIATE",
];

/// Server / User-Agent substrings that Exchange Unified Messaging sends (its SIP stack
/// identifies itself as "RTCC/<version> MSExchangeUM/<build>").
const UM_MARKERS: &[&str] = &["MSExchangeUM", "RTCC/", "Microsoft Exchange"];

/// Longest User-Agent/Server value kept.
const AGENT_MAX: usize = 64;
/// SDP media descriptions kept per call.
const MAX_MEDIA: usize = 16;
/// SIP messages looked at per stream.
const MAX_MESSAGES: usize = 16;

/// A SIP start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartLine<'a> {
    Request(&'a str),
    Status(u16),
}

/// Parse a request line (`METHOD SP URI SP SIP/2.0`) or a status line (`SIP/2.0 SP code SP
/// reason`). Unknown methods are accepted when they are upper-case tokens with a sip, sips
/// or tel URI, as RFC 3261 lets extensions define new ones.
fn start_line(line: &[u8]) -> Option<StartLine<'_>> {
    if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        let code = rest.get(..3)?;
        if !code.iter().all(u8::is_ascii_digit) || !matches!(rest.get(3), None | Some(b' ')) {
            return None;
        }
        let code: u16 = std::str::from_utf8(code).ok()?.parse().ok()?;
        return (100..700)
            .contains(&code)
            .then_some(StartLine::Status(code));
    }
    let mut parts = line.splitn(3, |&c| c == b' ');
    let method = parts.next()?;
    let uri = parts.next()?;
    let version = parts.next()?;
    if version != b"SIP/2.0" {
        return None;
    }
    let known = METHODS.iter().find(|m| m.as_bytes() == method).copied();
    let scheme_ok = ["sip:", "sips:", "tel:"]
        .iter()
        .any(|s| text::starts_with_ci(uri, s.as_bytes()));
    if !scheme_ok || uri.len() < 5 || !text::is_text(uri) {
        return None;
    }
    match known {
        Some(m) => Some(StartLine::Request(m)),
        None if !method.is_empty()
            && method.len() <= 16
            && method.iter().all(|c| c.is_ascii_uppercase() || *c == b'-') =>
        {
            Some(StartLine::Request("OTHER"))
        }
        None => None,
    }
}

/// Whether `b` (no complete line yet) could grow into a SIP start line.
fn could_start(b: &[u8]) -> bool {
    let n = b.len().min(8);
    if b"SIP/2.0 "[..n] == b[..n] {
        return true;
    }
    match b.iter().position(|&c| c == b' ') {
        // After the method: a URI then " SIP/2.0"; only printable text may follow.
        Some(sp) => {
            let m = &b[..sp];
            (METHODS.iter().any(|k| k.as_bytes() == m)
                || (!m.is_empty() && m.len() <= 16 && m.iter().all(u8::is_ascii_uppercase)))
                && text::is_text(&b[sp..])
        }
        None => b.len() <= 16 && b.iter().all(u8::is_ascii_uppercase),
    }
}

/// The canonical name of a header, expanding RFC 3261 7.3.3 compact forms.
fn canonical(name: &[u8]) -> Option<&'static str> {
    const FULL: &[(&str, &str)] = &[
        ("via", "v"),
        ("from", "f"),
        ("to", "t"),
        ("call-id", "i"),
        ("contact", "m"),
        ("content-length", "l"),
        ("content-type", "c"),
        ("cseq", ""),
        ("user-agent", ""),
        ("server", ""),
    ];
    FULL.iter()
        .find(|(full, compact)| {
            name.eq_ignore_ascii_case(full.as_bytes())
                || (!compact.is_empty() && name.eq_ignore_ascii_case(compact.as_bytes()))
        })
        .map(|(full, _)| *full)
}

/// One parsed SIP message.
#[derive(Debug, Clone)]
struct Message<'a> {
    start: StartLine<'a>,
    /// CSeq method (for responses, the request they answer).
    cseq_method: Option<&'a [u8]>,
    agent: Option<&'a [u8]>,
    has_via: bool,
    content_type: Option<&'a [u8]>,
    /// Body bytes present (may be cut short by the capture).
    body: &'a [u8],
    /// The body is all there.
    body_complete: bool,
    /// Total length of the message in the stream when complete.
    len: usize,
    /// Length of the start line and headers (where the body starts).
    header_len: usize,
    /// A Content-Length header was present.
    has_length: bool,
}

/// What parsing the start of a stream yields.
enum Parsed<'a> {
    Message(Message<'a>),
    /// A valid prefix (start line or headers still arriving).
    Partial,
    NotSip,
}

/// Parse one message at the start of `b`. `datagram`: a UDP payload, where a missing
/// Content-Length means "the rest of the datagram" (RFC 3261 18.3) and `truncated` says the
/// buffer holds only the head of a longer datagram.
fn message(b: &[u8], datagram: bool, truncated: bool) -> Parsed<'_> {
    // A start line opens with "SIP/2.0" or a method token (upper case, or '-' in an extension
    // method): any other first byte is not SIP, found without searching the whole buffer (of
    // every binary flow, on every packet) for its first line.
    if b.first()
        .is_some_and(|&c| !(c.is_ascii_uppercase() || c == b'-'))
    {
        return Parsed::NotSip;
    }
    let Some(eol) = memchr::memchr(b'\n', b) else {
        return if could_start(b) {
            Parsed::Partial
        } else {
            Parsed::NotSip
        };
    };
    let first = &b[..eol];
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let Some(start) = start_line(first) else {
        return Parsed::NotSip;
    };
    // Header block: up to the first empty line.
    let mut at = eol + 1;
    let mut msg = Message {
        start,
        cseq_method: None,
        agent: None,
        has_via: false,
        content_type: None,
        body: &[],
        body_complete: false,
        len: 0,
        header_len: 0,
        has_length: false,
    };
    let mut content_length: Option<usize> = None;
    let mut cut = false;
    loop {
        let Some(rel) = memchr::memchr(b'\n', &b[at..]) else {
            if datagram && truncated {
                // The datagram cap fell inside the headers: it will not grow, so judge
                // the headers that arrived.
                cut = true;
                break;
            }
            return Parsed::Partial;
        };
        let line = &b[at..at + rel];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at += rel + 1;
        if line.is_empty() {
            break;
        }
        // Folded continuation lines (leading white space) belong to the previous header.
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            return Parsed::NotSip;
        };
        let value = line[colon + 1..].trim_ascii();
        match canonical(line[..colon].trim_ascii()) {
            Some("via") => msg.has_via = true,
            Some("cseq") => msg.cseq_method = value.split(|&c| c == b' ').nth(1),
            Some("user-agent") | Some("server") if msg.agent.is_none() => msg.agent = Some(value),
            Some("content-type") => msg.content_type = Some(value),
            Some("content-length") => {
                let v = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
                match v {
                    Some(n) => content_length = Some(n),
                    None => return Parsed::NotSip,
                }
            }
            _ => {}
        }
    }
    if !msg.has_via {
        // Every SIP request and response carries Via (RFC 3261 8.1.1.7, 8.2.6.2).
        return Parsed::NotSip;
    }
    if cut {
        msg.len = b.len();
        msg.header_len = at;
        return Parsed::Message(msg);
    }
    let rest = &b[at..];
    let (want, complete) = match content_length {
        Some(n) => (n, rest.len() >= n),
        // A datagram without Content-Length: the body is the rest of it.
        None if datagram => (rest.len(), !truncated),
        // On TCP the length is mandatory (RFC 3261 18.3); without it, no body.
        None => (0, true),
    };
    msg.body = &rest[..want.min(rest.len())];
    msg.body_complete = complete;
    msg.has_length = content_length.is_some();
    msg.header_len = at;
    msg.len = at.saturating_add(want);
    Parsed::Message(msg)
}

/// One media description of an SDP body (RFC 8866 5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpMedia {
    /// "audio", "video", "image", "application" ...
    pub media: String,
    /// Connection address (c=) at media level, else session level.
    pub addr: Option<IpAddr>,
    pub port: u16,
    /// RTCP port from `a=rtcp:` (RFC 3605), if given.
    pub rtcp_port: Option<u16>,
    /// Transport: "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF" ...
    pub proto: String,
}

fn parse_addr(v: &[u8]) -> Option<IpAddr> {
    // "IN IP4 192.0.2.10" or "IN IP6 2001:db8::1", multicast "/ttl" suffixes dropped.
    let mut it = v.split(|&c| c == b' ').filter(|s| !s.is_empty());
    if it.next()? != b"IN" {
        return None;
    }
    let kind = it.next()?;
    let addr = it.next()?.split(|&c| c == b'/').next()?;
    let addr: IpAddr = std::str::from_utf8(addr).ok()?.parse().ok()?;
    match (kind, addr) {
        (b"IP4", IpAddr::V4(_)) | (b"IP6", IpAddr::V6(_)) => Some(addr),
        _ => None,
    }
}

fn token(v: &[u8], max: usize) -> Option<String> {
    (!v.is_empty() && v.len() <= max && v.iter().all(|c| c.is_ascii_graphic()))
        .then(|| String::from_utf8_lossy(v).into_owned())
}

/// The media descriptions of an SDP body, at most 16; media with port 0 (refused streams)
/// are left out. A body that does not start with `v=0` yields nothing.
pub fn sdp_media(body: &[u8]) -> Vec<SdpMedia> {
    let mut out: Vec<SdpMedia> = Vec::new();
    let body = body.strip_prefix(b"\r\n").unwrap_or(body);
    if !body.starts_with(b"v=0") {
        return out;
    }
    let mut session_addr = None;
    // Whether the current media section is one we kept (so its c= and a=rtcp apply).
    let mut in_media = false;
    let mut kept = false;
    for line in body.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() < 2 || line[1] != b'=' {
            continue;
        }
        let v = &line[2..];
        match line[0] {
            b'c' => {
                let a = parse_addr(v);
                if !in_media {
                    session_addr = a;
                } else if kept && a.is_some() {
                    if let Some(m) = out.last_mut() {
                        m.addr = a;
                    }
                }
            }
            b'm' => {
                in_media = true;
                kept = false;
                if out.len() >= MAX_MEDIA {
                    continue;
                }
                let mut f = v.split(|&c| c == b' ').filter(|s| !s.is_empty());
                let (Some(media), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else {
                    continue;
                };
                let port = port.split(|&c| c == b'/').next().unwrap_or_default();
                let port: Option<u16> = std::str::from_utf8(port).ok().and_then(|s| s.parse().ok());
                if let (Some(media), Some(port), Some(proto)) =
                    (token(media, 16), port.filter(|&p| p != 0), token(proto, 32))
                {
                    out.push(SdpMedia {
                        media,
                        addr: session_addr,
                        port,
                        rtcp_port: None,
                        proto,
                    });
                    kept = true;
                }
            }
            b'a' if in_media && kept => {
                if let Some(r) = v.strip_prefix(b"rtcp:") {
                    let p = r.split(|&c| c == b' ').next().unwrap_or_default();
                    if let Some(m) = out.last_mut() {
                        m.rtcp_port = std::str::from_utf8(p).ok().and_then(|s| s.parse().ok());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The SDP inside a message body: the body itself for application/sdp, or the
/// application/sdp part of a multipart body (Microsoft UC sends multipart/alternative).
fn sdp_of<'a>(content_type: &[u8], body: &'a [u8]) -> Option<&'a [u8]> {
    if text::starts_with_ci(content_type, b"application/sdp") {
        return Some(body);
    }
    if !text::starts_with_ci(content_type, b"multipart/") {
        return None;
    }
    let lower = content_type.to_ascii_lowercase();
    let at = lower.windows(9).position(|w| w == b"boundary=")?;
    let b = content_type[at + 9..]
        .split(|&c| c == b';')
        .next()?
        .trim_ascii();
    let b = b.strip_prefix(b"\"").unwrap_or(b);
    let b = b.strip_suffix(b"\"").unwrap_or(b);
    if b.is_empty() || b.len() > 70 {
        return None;
    }
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(b);
    let mut rest = body;
    for _ in 0..8 {
        let start = rest
            .windows(delim.len())
            .position(|w| w == delim.as_slice())?;
        rest = &rest[start + delim.len()..];
        let end = rest
            .windows(delim.len())
            .position(|w| w == delim.as_slice())
            .unwrap_or(rest.len());
        let part = &rest[..end];
        let hdr_end = part.windows(4).position(|w| w == b"\r\n\r\n")?;
        let headers = &part[..hdr_end];
        if text::contains_ci(headers, b"content-type: application/sdp")
            || text::contains_ci(headers, b"content-type:application/sdp")
        {
            return Some(&part[hdr_end + 4..]);
        }
    }
    None
}

/// Cut a body that the capture truncated to its complete lines.
fn complete_lines(body: &[u8], complete: bool) -> &[u8] {
    if complete {
        body
    } else {
        &body[..body.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1)]
    }
}

/// The SIP messages at the start of `b`, in order, at most 16, with their offsets.
fn messages(b: &[u8], datagram: bool, truncated: bool) -> Vec<(usize, Message<'_>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while out.len() < MAX_MESSAGES {
        // Keep-alive CRLFs (RFC 5626) between messages.
        while b[at..].starts_with(b"\r\n") {
            at += 2;
        }
        match message(&b[at..], datagram, truncated) {
            Parsed::Message(m) => {
                let (len, complete) = (m.len, m.body_complete);
                out.push((at, m));
                if datagram || !complete || len >= b.len() - at {
                    break;
                }
                at += len;
            }
            _ => break,
        }
    }
    out
}

/// The SDP media announced in a SIP TCP stream or datagram (every message with an SDP
/// body, in order), at most 16 in all. A body cut short by the capture contributes its
/// complete lines. A last message without Content-Length (allowed on UDP) has the rest of
/// the buffer as its body.
pub fn sip_sdp(stream: &[u8]) -> Vec<SdpMedia> {
    sdp_in(stream, false)
}

/// The SDP media of the messages in `stream` whose body has arrived whole (a stream still
/// growing: a body cut at a segment boundary is read once its last segment is in).
pub fn sip_sdp_complete(stream: &[u8]) -> Vec<SdpMedia> {
    sdp_in(stream, true)
}

/// Whether a message in `stream` names Exchange Unified Messaging in its User-Agent or Server.
pub fn sip_um_marker(stream: &[u8]) -> bool {
    messages(stream, false, false).iter().any(|(_, m)| {
        m.agent.is_some_and(|a| {
            UM_MARKERS
                .iter()
                .any(|k| text::contains_ci(a, k.as_bytes()))
        })
    })
}

fn sdp_in(stream: &[u8], whole_only: bool) -> Vec<SdpMedia> {
    let mut out = Vec::new();
    let msgs = messages(stream, false, false);
    let n = msgs.len();
    for (i, (at, m)) in msgs.into_iter().enumerate() {
        if whole_only && !(m.has_length && m.body_complete) {
            continue;
        }
        let (body, complete) = if !m.has_length && i + 1 == n {
            (stream.get(at + m.header_len..).unwrap_or_default(), true)
        } else {
            (m.body, m.body_complete)
        };
        if let Some(sdp) = m.content_type.and_then(|ct| sdp_of(ct, body)) {
            for media in sdp_media(complete_lines(sdp, complete)) {
                if out.len() < MAX_MEDIA {
                    out.push(media);
                }
            }
        }
    }
    out
}

/// A datagram head (first 16 bytes) that begins like a SIP start line: a status line
/// `SIP/2.0 NNN ` or a known method followed by a sip:, sips: or tel: URI.
fn head_start(h: &[u8]) -> Option<StartLine<'static>> {
    if let Some(rest) = h.strip_prefix(b"SIP/2.0 ") {
        let code = rest.get(..3)?;
        if code.iter().all(u8::is_ascii_digit) && rest.get(3) == Some(&b' ') {
            let c: u16 = std::str::from_utf8(code).ok()?.parse().ok()?;
            return (100..700).contains(&c).then_some(StartLine::Status(c));
        }
        return None;
    }
    let sp = h.iter().position(|&c| c == b' ')?;
    let method = METHODS.iter().find(|m| m.as_bytes() == &h[..sp])?;
    // Methods are at most 9 letters, so at least 6 URI bytes fit in a 16-byte head.
    let uri = &h[sp + 1..];
    ["sip:", "sips:", "tel:"]
        .iter()
        .any(|s| uri.starts_with(s.as_bytes()))
        .then_some(StartLine::Request(method))
}

/// SIP recognised from the heads of later datagrams when the first ones were not SIP: two
/// heads at least must begin like SIP start lines.
fn later_heads(p: &Payloads<'_>) -> Probe {
    let starts: Vec<StartLine<'_>> = p
        .datagrams
        .iter()
        .filter_map(|d| head_start(d.bytes()))
        .collect();
    if starts.len() < 2 {
        return if p.last_chance || p.datagrams.len() >= 16 {
            Probe::NotMine
        } else {
            Probe::NeedMore
        };
    }
    let mut fields = Vec::new();
    let mut evidence =
        String::from("SIP start lines in later datagrams (the first ones are not SIP)");
    if let Some(m) = starts.iter().find_map(|s| match s {
        StartLine::Request(m) => Some(*m),
        StartLine::Status(_) => None,
    }) {
        evidence.push_str(&format!(", {m}"));
        fields.push(("exwatch.sip.method", m.to_string()));
    }
    if let Some(c) = starts.iter().find_map(|s| match s {
        StartLine::Status(c) => Some(*c),
        StartLine::Request(_) => None,
    }) {
        evidence.push_str(&format!(", {c} response"));
        fields.push(("exwatch.sip.status_code", c.to_string()));
    }
    evidence.push_str(" over UDP");
    Probe::Mine(Detection {
        reversed: false,
        protocol: "sip",
        service: None,
        confidence: Confidence::Payload,
        evidence,
        fields,
    })
}

pub struct Sip;

fn is_final(m: &Message<'_>) -> bool {
    matches!(m.start, StartLine::Status(c) if c >= 200)
}

impl Detector for Sip {
    fn name(&self) -> &'static str {
        "sip"
    }

    fn protocol(&self) -> &'static str {
        "sip"
    }

    fn udp(&self) -> bool {
        true
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let udp = p.is_udp();
        let truncated = |from_orig: bool, b: &[u8]| {
            udp && p
                .datagrams
                .iter()
                .find(|d| d.from_orig == from_orig)
                .is_some_and(|d| d.len as usize > b.len())
        };
        let trim =
            |b: &'_ [u8]| -> usize { b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count() };
        let (ts, tc) = (&p.ts[trim(p.ts)..], &p.tc[trim(p.tc)..]);
        let first_ts = message(ts, udp, truncated(true, p.ts));
        let first_tc = message(tc, udp, truncated(false, p.tc));
        let undecided = if p.last_chance {
            Probe::NotMine
        } else {
            Probe::NeedMore
        };
        match (&first_ts, &first_tc) {
            (Parsed::Message(_), _) | (_, Parsed::Message(_)) => {}
            // Over UDP only the first datagram of each direction is kept whole; a flow that
            // opens with application keep-alives ("hello", STUN) shows SIP in later heads.
            (Parsed::NotSip, _) | (_, Parsed::NotSip) if udp => return later_heads(p),
            (Parsed::NotSip, _) if !ts.is_empty() => return Probe::NotMine,
            (_, Parsed::NotSip) if !tc.is_empty() && ts.is_empty() => return Probe::NotMine,
            _ => return undecided,
        }
        let ms_ts: Vec<Message<'_>> = messages(ts, udp, truncated(true, p.ts))
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        let ms_tc: Vec<Message<'_>> = messages(tc, udp, truncated(false, p.tc))
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        if !p.last_chance {
            // Wait for the first message's body, and for the peer's answer: a final
            // response on TCP (provisional ones seldom carry Server), the first datagram
            // on UDP.
            let body_pending = ms_ts
                .first()
                .is_some_and(|m| !m.body_complete && !truncated(true, p.ts));
            let answered = if udp {
                !ms_tc.is_empty() || ms_ts.is_empty()
            } else {
                ms_ts.is_empty() || ms_tc.iter().any(|m| is_final(m) || m.agent.is_some())
            };
            if body_pending || !answered {
                return Probe::NeedMore;
            }
        }
        let all = || ms_ts.iter().chain(ms_tc.iter());
        let mut fields = Vec::new();
        let mut evidence = String::from("SIP");
        let method = all().find_map(|m| match m.start {
            StartLine::Request(r) => Some(r.to_string()),
            StartLine::Status(_) => None,
        });
        let method =
            method.or_else(|| all().find_map(|m| m.cseq_method).and_then(|c| token(c, 16)));
        if let Some(m) = &method {
            evidence.push_str(&format!(" {m}"));
            fields.push(("exwatch.sip.method", m.clone()));
        }
        let status = ms_tc
            .iter()
            .chain(ms_ts.iter())
            .filter_map(|m| match m.start {
                StartLine::Status(c) => Some(c),
                StartLine::Request(_) => None,
            })
            .fold(None, |best: Option<u16>, c| match best {
                Some(b) if b >= 200 => Some(b),
                _ => Some(c),
            });
        if let Some(c) = status {
            evidence.push_str(&format!(", {c} response"));
            fields.push(("exwatch.sip.status_code", c.to_string()));
        }
        if udp {
            evidence.push_str(" over UDP");
        }
        let agent = all().find_map(|m| m.agent);
        if let Some(a) = agent {
            fields.push(("exwatch.sip.user_agent", text::clip(a, AGENT_MAX)));
        }
        let um = all().filter_map(|m| m.agent).find(|a| {
            UM_MARKERS
                .iter()
                .any(|k| text::contains_ci(a, k.as_bytes()))
        });
        let mut service = None;
        if let Some(a) = um {
            evidence.push_str(&format!(
                "; Exchange UM marker in Server/User-Agent: {}",
                text::clip(a, AGENT_MAX)
            ));
            service = Some("um-sip".to_string());
        }
        let sdp = all().find_map(|m| {
            let sdp = sdp_of(m.content_type?, m.body)?;
            sdp_media(complete_lines(sdp, m.body_complete))
                .into_iter()
                .next()
        });
        if let Some(s) = sdp {
            let v = format!("{} {} {}", s.media, s.port, s.proto);
            evidence.push_str(&format!("; SDP {v}"));
            fields.push(("exwatch.sip.sdp_media", v));
        }
        Probe::Mine(Detection {
            reversed: false,
            protocol: "sip",
            service,
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

    const INVITE: &[u8] = b"INVITE sip:5000@192.0.2.10:5065;transport=TCP SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.20:5062;branch=z9hG4bK-29397-1-0\r\n\
From: \"Alice\" <sip:alice@contoso.test>;tag=29397SIPpTag001\r\n\
To: <sip:5000@contoso.test>\r\n\
Call-ID: 1-29397@192.0.2.20\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@192.0.2.20:5062;transport=TCP>\r\n\
Max-Forwards: 70\r\n\
User-Agent: AudioCodes-Sip-Gateway-MP-114 FXS/v.6.60A.361.001\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n\
Subject: exwatch test call\r\n\
Content-Type: application/sdp\r\n\
Content-Length:   244\r\n\
\r\n\
v=0\r\n\
o=alice 53655765 2353687637 IN IP4 192.0.2.20\r\n\
s=exwatch\r\n\
c=IN IP4 192.0.2.20\r\n\
t=0 0\r\n\
m=audio 16000 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp:16001\r\n\
a=sendrecv\r\n";

    const TRYING: &[u8] = b"SIP/2.0 100 Trying\r\n\
Via: SIP/2.0/TCP 192.0.2.20:5062;branch=z9hG4bK-29397-1-0\r\n\
From: \"Alice\" <sip:alice@contoso.test>;tag=29397SIPpTag001\r\n\
To: <sip:5000@contoso.test>\r\n\
Call-ID: 1-29397@192.0.2.20\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    const RINGING_UM: &[u8] = b"SIP/2.0 180 Ringing\r\n\
Via: SIP/2.0/TCP 192.0.2.20:5062;branch=z9hG4bK-29397-1-0\r\n\
From: \"Alice\" <sip:alice@contoso.test>;tag=29397SIPpTag001\r\n\
To: <sip:5000@contoso.test>;tag=29388SIPpTag011\r\n\
Call-ID: 1-29397@192.0.2.20\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:192.0.2.10:5065;transport=TCP>\r\n\
Server: RTCC/5.0.0.0 MSExchangeUM/15.01.2507.006\r\n\
Content-Length: 0\r\n\r\n";

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 5065, 5062, last)
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    /// A stream still growing announces a message's SDP only once its body is whole, so an
    /// `a=rtcp:` line in a later segment is not missed.
    #[test]
    fn sdp_of_a_growing_stream_waits_for_the_whole_body() {
        let cut = &INVITE[..INVITE.len() - 30];
        assert!(sip_sdp_complete(cut).is_empty());
        assert_eq!(
            sip_sdp(cut).len(),
            1,
            "the capture's view keeps complete lines"
        );
        let whole = sip_sdp_complete(INVITE);
        assert_eq!((whole[0].port, whole[0].rtcp_port), (16000, Some(16001)));
        let two = [TRYING, INVITE].concat();
        assert_eq!(sip_sdp_complete(&two).len(), 1);
        assert!(sip_um_marker(RINGING_UM) && !sip_um_marker(INVITE));
    }

    #[test]
    fn exchange_um_call_over_tcp() {
        assert!(matches!(
            Sip.probe(&view(INVITE, b"", false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Sip.probe(&view(INVITE, TRYING, false)),
            Probe::NeedMore
        ));
        let tc = [TRYING, RINGING_UM].concat();
        let Probe::Mine(d) = Sip.probe(&view(INVITE, &tc, false)) else {
            panic!()
        };
        assert_eq!(d.protocol, "sip");
        assert_eq!(d.service.as_deref(), Some("um-sip"));
        assert!(d.evidence.contains("Exchange UM marker"), "{}", d.evidence);
        assert_eq!(field(&d, "exwatch.sip.method"), Some("INVITE"));
        assert_eq!(field(&d, "exwatch.sip.status_code"), Some("180"));
        assert_eq!(
            field(&d, "exwatch.sip.user_agent"),
            Some("AudioCodes-Sip-Gateway-MP-114 FXS/v.6.60A.361.001")
        );
        assert_eq!(
            field(&d, "exwatch.sip.sdp_media"),
            Some("audio 16000 RTP/AVP")
        );
        // No URI, tag or Call-ID in the record.
        assert!(!d.evidence.contains("alice") && !d.evidence.contains("5000@"));
        for (_, v) in &d.fields {
            assert!(!v.contains("alice") && !v.contains("29397"), "{v}");
        }
    }

    #[test]
    fn split_across_segments() {
        for cut in [1, 3, 7, 30, 200, INVITE.len() - 1] {
            assert!(
                matches!(
                    Sip.probe(&view(&INVITE[..cut], b"", false)),
                    Probe::NeedMore
                ),
                "cut {cut}"
            );
        }
        let Probe::Mine(d) = Sip.probe(&view(INVITE, b"", true)) else {
            panic!()
        };
        assert_eq!(d.service, None);
        assert_eq!(
            field(&d, "exwatch.sip.sdp_media"),
            Some("audio 16000 RTP/AVP")
        );
    }

    #[test]
    fn sdp_media_and_rtcp() {
        let m = sip_sdp(INVITE);
        assert_eq!(
            m,
            vec![SdpMedia {
                media: "audio".into(),
                addr: Some("192.0.2.20".parse().unwrap()),
                port: 16000,
                rtcp_port: Some(16001),
                proto: "RTP/AVP".into(),
            }]
        );
        let body = b"v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n\
m=audio 5004/2 RTP/SAVP 0\r\nc=IN IP4 224.2.1.1/127\r\na=rtcp:5009 IN IP4 198.51.100.1\r\n\
m=video 0 RTP/AVP 31\r\nm=image 6000 udptl t38\r\n";
        let m = sdp_media(body);
        assert_eq!(m.len(), 2, "port 0 left out");
        assert_eq!(m[0].addr, Some("224.2.1.1".parse().unwrap()));
        assert_eq!(m[0].port, 5004);
        assert_eq!(m[0].rtcp_port, Some(5009));
        assert_eq!(m[1].media, "image");
        assert_eq!(m[1].addr, Some("2001:db8::1".parse().unwrap()));
        assert!(sdp_media(b"hello").is_empty());
        let many: Vec<u8> = std::iter::once(&b"v=0\r\n"[..])
            .chain(std::iter::repeat_n(&b"m=audio 1 RTP/AVP 0\r\n"[..], 100))
            .flatten()
            .copied()
            .collect();
        assert_eq!(sdp_media(&many).len(), 16);
    }

    #[test]
    fn udp_invite_cut_by_the_datagram_cap() {
        // sip-udp-fragmented.pcap: a 2443-byte INVITE of which the first 2048 bytes are
        // kept; the SDP is cut inside an a=candidate line.
        let mut dgram = INVITE.to_vec();
        let cl = b"Content-Length:   244";
        let at = dgram.windows(cl.len()).position(|w| w == cl).unwrap();
        dgram.splice(at..at + cl.len(), b"Content-Length:  1930".iter().copied());
        dgram.extend(b"a=candidate:1 1 UDP 2130706431 192.0.2.20 16000 typ host\r\n".repeat(30));
        let wire = dgram.len();
        dgram.truncate(dgram.len() - 100);
        let heads = [DatagramHead {
            from_orig: true,
            len: wire as u32,
            head_len: 16,
            head: dgram[..16].try_into().unwrap(),
        }];
        let p = Payloads {
            transport: 17,
            ts: &dgram,
            tc: b"",
            datagrams: &heads,
            server_port: 5060,
            client_port: 5062,
            last_chance: false,
        };
        assert!(
            matches!(Sip.probe(&p), Probe::NeedMore),
            "waits for the answer"
        );
        let p = Payloads {
            last_chance: true,
            ..p
        };
        let Probe::Mine(d) = Sip.probe(&p) else {
            panic!()
        };
        assert!(d.evidence.contains("over UDP"));
        assert_eq!(
            field(&d, "exwatch.sip.sdp_media"),
            Some("audio 16000 RTP/AVP")
        );
        let m = sip_sdp(&dgram);
        assert_eq!(m[0].rtcp_port, Some(16001));
    }

    #[test]
    fn udp_headers_cut_by_the_datagram_cap() {
        // sip_sip-long-request-response-paths.pcap: 9.5 kB OPTIONS with hundreds of Via
        // headers; only 2048 bytes are kept.
        let mut dgram = b"OPTIONS sip:bob@example.com SIP/2.0\r\n".to_vec();
        for _ in 0..60 {
            dgram.extend(
                b"Via: SIP/2.0/UDP aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;branch=z9hG4bK1\r\n",
            );
        }
        let wire = dgram.len() as u32;
        dgram.truncate(2048);
        let heads = [DatagramHead {
            from_orig: true,
            len: wire,
            head_len: 16,
            head: dgram[..16].try_into().unwrap(),
        }];
        let p = Payloads {
            transport: 17,
            ts: &dgram,
            tc: b"",
            datagrams: &heads,
            server_port: 5060,
            client_port: 50600,
            last_chance: true,
        };
        let Probe::Mine(d) = Sip.probe(&p) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.sip.method"), Some("OPTIONS"));
    }

    #[test]
    fn udp_keepalives_before_sip() {
        // sip_hello.pcapng: "hello" datagrams both ways, then REGISTER and 401.
        let heads: Vec<DatagramHead> = [
            (true, &b"hello"[..]),
            (false, b"hello"),
            (true, b"hello"),
            (true, b"REGISTER sip:10.192.60.4 SIP/2.0\r\n"),
            (false, b"SIP/2.0 401 Unauthorized\r\n"),
        ]
        .iter()
        .map(|(o, b)| {
            let n = b.len().min(16);
            let mut h = [0u8; 16];
            h[..n].copy_from_slice(&b[..n]);
            DatagramHead {
                from_orig: *o,
                len: b.len() as u32,
                head_len: n as u8,
                head: h,
            }
        })
        .collect();
        let p = Payloads {
            transport: 17,
            ts: b"hello",
            tc: b"hello",
            datagrams: &heads[..3],
            server_port: 5060,
            client_port: 5060,
            last_chance: false,
        };
        assert!(matches!(Sip.probe(&p), Probe::NeedMore));
        let p = Payloads {
            datagrams: &heads,
            ..p
        };
        let Probe::Mine(d) = Sip.probe(&p) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.sip.method"), Some("REGISTER"));
        assert_eq!(field(&d, "exwatch.sip.status_code"), Some("401"));
        // The same keep-alives with nothing after them: not SIP in the end.
        let p = Payloads {
            datagrams: &heads[..3],
            last_chance: true,
            ..p
        };
        assert!(matches!(Sip.probe(&p), Probe::NotMine));
    }

    #[test]
    fn compact_headers_and_keepalives() {
        let msg = b"\r\n\r\nOPTIONS sip:gw.contoso.test SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
f: <sip:a@b>;tag=1\r\nt: <sip:gw.contoso.test>\r\ni: abc\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n";
        let Probe::Mine(d) = Sip.probe(&view(msg, b"", true)) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.sip.method"), Some("OPTIONS"));
    }

    #[test]
    fn other_protocols_are_not_sip() {
        for ts in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"OPTIONS rtsp://cam/ RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            b"EHLO mail.contoso.test\r\n",
            b"INVITE sip:x@y SIP/2.0\r\nFrom: a\r\nCSeq: 1 INVITE\r\n\r\n", // no Via
            b"\x80\x08\x00\x01\x00\x00\x00\xa0\xde\xe0\xee\x8f",
            b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n",
        ] {
            assert!(
                matches!(Sip.probe(&view(ts, b"", true)), Probe::NotMine),
                "{:?}",
                String::from_utf8_lossy(ts)
            );
        }
        assert!(matches!(
            Sip.probe(&view(b"", b"220 mail ESMTP\r\n", false)),
            Probe::NotMine
        ));
    }

    #[test]
    fn hostile_lengths_do_not_panic() {
        let huge = b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\nContent-Length: 99999999999999999999\r\n\r\n--zz\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nm=audio 99999 RTP/AVP\r\n";
        let _ = Sip.probe(&view(huge, b"", false));
        let _ = Sip.probe(&view(huge, b"", true));
        let _ = sip_sdp(huge);
        let mut seed = 3u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as u8
        };
        let alphabet = b"SIP/2.0 INVITE sip:\r\nVia:l:c:Content-Length: 12 application/sdp v=0 m=audio c=IN IP4 a=rtcp:--boundary=";
        for i in 0..600 {
            let n = next() as usize * 2;
            let b: Vec<u8> = if i % 2 == 0 {
                (0..n)
                    .map(|_| alphabet[next() as usize % alphabet.len()])
                    .collect()
            } else {
                let mut v = INVITE[..INVITE.len().min(n)].to_vec();
                v.extend((0..n / 4).map(|_| next()));
                v
            };
            for last in [false, true] {
                let _ = Sip.probe(&view(&b, &b, last));
            }
            let _ = sip_sdp(&b);
            let _ = sdp_media(&b);
        }
    }
}
