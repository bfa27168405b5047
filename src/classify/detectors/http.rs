//! HTTP/1.x: requests and responses, and the Exchange service behind the path and headers.

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};
use std::fmt::Write as _;

pub struct Http;

const METHODS: &[&str] = &[
    "GET",
    "POST",
    "HEAD",
    "PUT",
    "DELETE",
    "OPTIONS",
    "PATCH",
    "CONNECT",
    "TRACE",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "SEARCH",
    "REPORT",
    "RPC_IN_DATA",
    "RPC_OUT_DATA",
];

/// Exchange virtual directories, by path prefix (lowercase), and the service each one is.
pub(crate) const PATHS: &[(&str, &str)] = &[
    ("/mapi/emsmdb", "mapi-http"),
    ("/mapi/nspi", "mapi-http"),
    ("/mapi/", "mapi-http"),
    ("/rpc/rpcproxy.dll", "rpc-http"),
    ("/rpc/", "rpc-http"),
    ("/ews/", "ews"),
    ("/ews", "ews"),
    ("/autodiscover/", "autodiscover"),
    ("/autodiscover", "autodiscover"),
    ("/microsoft-server-activesync", "activesync"),
    ("/owa", "owa"),
    ("/ecp", "ecp"),
    ("/oab", "oab"),
    ("/powershell", "powershell"),
];

/// A parsed request line, its target reduced to what records may carry.
struct Request<'a> {
    method: &'a str,
    /// The path without `;params`, query or `#fragment` (none for CONNECT's authority form).
    path: Option<&'a [u8]>,
    /// The query, read for facts (the RPC over HTTP target port) and never kept.
    query: Option<&'a [u8]>,
    /// The authority of an absolute-form or authority-form target, userinfo included: only
    /// `authority_host` may read it.
    authority: Option<&'a [u8]>,
}

/// Where a path ends: at its first `;param`, query or fragment.
fn path_end(b: &[u8]) -> usize {
    b.iter().position(|c| b";?#".contains(c)).unwrap_or(b.len())
}

/// The query between `?` and `#`, if there is one.
fn query_of(b: &[u8]) -> Option<&[u8]> {
    let q = b.iter().position(|&c| c == b'?')?;
    let rest = &b[q + 1..];
    Some(&rest[..rest.iter().position(|&c| c == b'#').unwrap_or(rest.len())])
}

/// The target's `scheme://` prefix length, for an absolute-form target (RFC 9112 3.2.2).
fn scheme_len(t: &[u8]) -> Option<usize> {
    let i = memchr::memmem::find(t, b"://")?;
    let scheme = &t[..i];
    (!scheme.is_empty()
        && scheme[0].is_ascii_alphabetic()
        && scheme
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c)))
    .then_some(i + 3)
}

fn request_line(line: &[u8]) -> Option<Request<'_>> {
    let mut parts = line.splitn(3, |&c| c == b' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if !version.starts_with(b"HTTP/1.") && !version.starts_with(b"HTTP/0.9") {
        return None;
    }
    let method = METHODS.iter().find(|m| m.as_bytes() == method).copied()?;
    let (path, query, authority) = if target.first() == Some(&b'/') || target == b"*" {
        // origin form (and OPTIONS *)
        (Some(&target[..path_end(target)]), query_of(target), None)
    } else if let Some(n) = scheme_len(target) {
        // absolute form, as sent to proxies: `http://user:pw@host:port/path;p?q#f`
        let rest = &target[n..];
        let a = rest
            .iter()
            .position(|c| b"/?#".contains(c))
            .unwrap_or(rest.len());
        let after = &rest[a..];
        let path: &[u8] = if after.first() == Some(&b'/') {
            &after[..path_end(after)]
        } else {
            b"/"
        };
        (Some(path), query_of(after), Some(&rest[..a]))
    } else {
        // authority form (CONNECT host:port)
        (None, None, Some(target))
    };
    Some(Request {
        method,
        path,
        query,
        authority,
    })
}

/// Whether `b` could still grow into a request line (for split segments).
fn could_be_request(b: &[u8]) -> bool {
    let tok: &[u8] = b.split(|&c| c == b' ').next().unwrap_or(b);
    if b.contains(&b' ') {
        METHODS.iter().any(|m| m.as_bytes() == tok)
    } else {
        METHODS.iter().any(|m| m.as_bytes().starts_with(tok))
    }
}

/// Header value by name (case-insensitive) within the header block.
fn header<'a>(block: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    text::lines(block).skip(1).find_map(|l| {
        let colon = l.iter().position(|&c| c == b':')?;
        if l[..colon].eq_ignore_ascii_case(name) {
            Some(l[colon + 1..].trim_ascii())
        } else {
            None
        }
    })
}

fn header_block(b: &[u8]) -> Option<&[u8]> {
    // memmem rather than a 4-byte window compare: this runs on every packet of a request.
    memchr::memmem::find(b, b"\r\n\r\n").map(|i| &b[..i + 2])
}

/// The Exchange service a request addresses, with what showed it.
fn exchange_service(req: &Request<'_>, block: &[u8]) -> Option<(&'static str, String)> {
    if req.method.starts_with("RPC_") {
        return Some(("rpc-http", format!("{} method", req.method)));
    }
    let path = req.path.unwrap_or_default();
    let lower = path.to_ascii_lowercase();
    for (prefix, svc) in PATHS {
        if lower.starts_with(prefix.as_bytes()) {
            return Some((svc, format!("path {}", text::clip(path, 48))));
        }
    }
    let ct = header(block, b"content-type").unwrap_or_default();
    if text::contains_ci(ct, b"application/mapi-http") || header(block, b"x-requesttype").is_some()
    {
        return Some((
            "mapi-http",
            "Content-Type application/mapi-http".to_string(),
        ));
    }
    if text::contains_ci(ct, b"application/vnd.ms-sync")
        || header(block, b"ms-asprotocolversion").is_some()
    {
        return Some(("activesync", "ActiveSync headers".to_string()));
    }
    None
}

/// A host as `Host` or a URI's authority gives it, without userinfo or port, if it is a
/// plausible name: `user:password@` never reaches a record.
fn host_name(h: &[u8]) -> Option<String> {
    let h = match h.iter().rposition(|&c| c == b'@') {
        Some(at) => &h[at + 1..],
        None => h,
    };
    let h = if h.starts_with(b"[") {
        h.split(|&c| c == b']').next().map(|x| &x[1..])?
    } else {
        h.split(|&c| c == b':').next()?
    };
    (!h.is_empty()
        && h.len() <= 253
        && h.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b".-_:".contains(&c)))
    .then(|| String::from_utf8_lossy(h).to_ascii_lowercase())
}

/// The host a request addresses: an absolute or authority-form target's own, else `Host`'s
/// (RFC 9112 3.2.2: a server ignores `Host` when the target carries an authority).
fn host(req: &Request<'_>, block: &[u8]) -> Option<String> {
    match req.authority {
        Some(a) => host_name(a),
        None => host_name(header(block, b"host")?),
    }
}

/// The target port of an RPC over HTTP request (`/rpc/rpcproxy.dll?server:6001`).
fn rpc_target_port(query: Option<&[u8]>) -> Option<u16> {
    let q = query?;
    let colon = q.iter().rposition(|&c| c == b':')?;
    let digits = &q[colon + 1..];
    let end = digits
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

fn status_code(tc: &[u8]) -> Option<u16> {
    let line = text::first_line(tc)?;
    if !line.starts_with(b"HTTP/1.") || line.len() < 12 {
        return None;
    }
    std::str::from_utf8(&line[9..12]).ok()?.parse().ok()
}

/// A `CONNECT` target as a record may carry it: host and port, userinfo dropped.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// Lower-case name or address (IPv6 without its brackets).
    host: String,
    port: Option<u16>,
}

impl Target {
    /// `host:port` (`[v6]:port`), or the host alone when the request named no port.
    fn render(&self) -> String {
        let mut s = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if let Some(p) = self.port {
            s.push(':');
            s.push_str(&p.to_string());
        }
        s
    }
}

/// The authority a `CONNECT` names: `host:port`, also as clients get it wrong (an absolute URI,
/// userinfo, a trailing `/`). Userinfo is cut before anything is read.
fn connect_target(t: &[u8]) -> Option<Target> {
    let t = match scheme_len(t) {
        Some(n) => {
            let rest = &t[n..];
            &rest[..rest
                .iter()
                .position(|c| b"/?#".contains(c))
                .unwrap_or(rest.len())]
        }
        None => t,
    };
    let t = match t.iter().rposition(|&c| c == b'@') {
        Some(at) => &t[at + 1..],
        None => t,
    };
    let t = &t[..t.iter().position(|&c| c == b'/').unwrap_or(t.len())];
    let (host, port) = if let Some(rest) = t.strip_prefix(b"[") {
        let close = rest.iter().position(|&c| c == b']')?;
        let after = &rest[close + 1..];
        let port = match after {
            [] => None,
            [b':', p @ ..] => Some(p),
            _ => return None,
        };
        (&rest[..close], port)
    } else {
        match t.iter().rposition(|&c| c == b':') {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if (1..=5).contains(&p.len()) && p.iter().all(u8::is_ascii_digit) => Some(
            std::str::from_utf8(p)
                .ok()?
                .parse::<u16>()
                .ok()
                .filter(|&n| n > 0)?,
        ),
        Some(_) => return None,
    };
    let plausible = !host.is_empty()
        && host.len() <= 253
        && host
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b".-_:".contains(&c));
    plausible.then(|| Target {
        host: String::from_utf8_lossy(host).to_ascii_lowercase(),
        port,
    })
}

/// A `CONNECT` request line in any of the forms seen in the wild: the method in any case, runs
/// of spaces or tabs, HTTP/1.0 or 1.1, or no version at all (then the target must carry a port,
/// so that IRC's `CONNECT server` is not taken for one).
fn connect_line(line: &[u8]) -> Option<Target> {
    let mut toks = line
        .split(|&c| c == b' ' || c == b'\t')
        .filter(|t| !t.is_empty());
    if !toks.next()?.eq_ignore_ascii_case(b"CONNECT") {
        return None;
    }
    let target = connect_target(toks.next()?)?;
    let version = toks.next();
    if toks.next().is_some() || version.is_some_and(|v| !text::starts_with_ci(v, b"HTTP/")) {
        return None;
    }
    (version.is_some() || target.port.is_some()).then_some(target)
}

/// Length of the header block at the start of `b`: up to and including its empty line
/// (CR LF or a bare LF, as hand-written clients send), if it has arrived.
fn head_len(b: &[u8]) -> Option<usize> {
    let mut off = 0;
    for raw in text::split_lf(b) {
        if !raw.ends_with(b"\n") {
            return None;
        }
        off += raw.len();
        if off > raw.len() && (raw == b"\n" || raw == b"\r\n") {
            return Some(off);
        }
    }
    None
}

/// Authentication rounds (407, then the request again) followed on one connection.
const MAX_ROUNDS: usize = 4;

/// How the proxy answered a connection's `CONNECT` requests.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// A request or its answer is still arriving.
    Wait,
    /// The last answer seen was not a 2xx: no tunnel (yet, if `retry` may follow).
    Refused { first: Option<u16> },
    /// A 2xx opened the tunnel: its bytes start at `ts_at` and `tc_at`.
    Open {
        first: u16,
        ts_at: usize,
        tc_at: usize,
        target: Target,
    },
}

/// Pairs the client's `CONNECT` requests with the proxy's answers, in order: interim 1xx
/// answers are skipped, a refusal's body (by `Content-Length`) is stepped over to the next
/// answer, and the first 2xx opens the tunnel right after its header block (RFC 9110 9.3.6:
/// a 2xx to CONNECT has no body).
fn answer(ts: &[u8], tc: &[u8]) -> Answer {
    let (mut ts_off, mut tc_off) = (0usize, 0usize);
    let mut first = None;
    for _ in 0..MAX_ROUNDS {
        let req = &ts[ts_off..];
        let Some(target) = text::first_line(req).and_then(connect_line) else {
            // No further CONNECT: the client gave up or sent something else.
            return if req.is_empty() || text::first_line(req).is_some() {
                Answer::Refused { first }
            } else {
                Answer::Wait
            };
        };
        let Some(req_len) = head_len(req) else {
            return Answer::Wait;
        };
        let (code, resp_len) = loop {
            let resp = &tc[tc_off..];
            let code = status_code(resp);
            let Some((code, len)) = code.zip(head_len(resp)) else {
                return match code {
                    // A refusal's status line decides; its headers need not be whole.
                    Some(c) if !(100..300).contains(&c) && c != 407 => Answer::Refused {
                        first: first.or(Some(c)),
                    },
                    // A retried request not answered yet.
                    None if first.is_some() && resp.is_empty() => Answer::Refused { first },
                    _ => Answer::Wait,
                };
            };
            if (100..200).contains(&code) {
                tc_off += len;
                continue;
            }
            break (code, len);
        };
        let first_code = *first.get_or_insert(code);
        if (200..300).contains(&code) {
            return Answer::Open {
                first: first_code,
                ts_at: ts_off + req_len,
                tc_at: tc_off + resp_len,
                target,
            };
        }
        let body = header(&tc[tc_off..tc_off + resp_len], b"content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<usize>().ok());
        let Some(body) = body else {
            return Answer::Refused { first };
        };
        tc_off = (tc_off + resp_len).saturating_add(body).min(tc.len());
        ts_off += req_len;
    }
    Answer::Refused { first }
}

/// What the detectors make of a tunnel's bytes.
enum Inner {
    Wait,
    Found(Detection),
    /// Bytes no detector claims.
    Unknown,
}

/// Runs every TCP detector on the bytes inside a tunnel, as the inspection engine would on a
/// flow of their own (HTTP inside goes through `probe_at` one level down, so a CONNECT inside
/// a tunnel is named but not followed).
fn inner(p: &Payloads<'_>, ts: &[u8], tc: &[u8], port: Option<u16>, depth: u8) -> Inner {
    let view = Payloads {
        transport: p.transport,
        ts,
        tc,
        datagrams: &[],
        server_port: port.unwrap_or(p.server_port),
        client_port: p.client_port,
        last_chance: p.last_chance,
    };
    let mut waiting = false;
    for d in super::REGISTRY.iter().filter(|d| d.tcp()) {
        let probe = if d.name() == Http.name() {
            Http.probe_at(&view, depth + 1)
        } else {
            d.probe(&view)
        };
        match probe {
            Probe::Mine(det) => return Inner::Found(det),
            Probe::NeedMore => waiting = true,
            Probe::NotMine => {}
        }
    }
    if waiting && !p.last_chance {
        Inner::Wait
    } else {
        Inner::Unknown
    }
}

/// A flow that opens with `CONNECT`: `http` with the tunnel's target, and once the proxy
/// answered 2xx, the protocol of the bytes inside.
fn probe_connect(p: &Payloads<'_>, target: Target, depth: u8) -> Probe {
    let answer = if depth == 0 {
        answer(p.ts, p.tc)
    } else {
        // Not followed: named from the first answer alone.
        match status_code(p.tc) {
            Some(c) => Answer::Refused { first: Some(c) },
            None => Answer::Wait,
        }
    };
    let target = match answer {
        Answer::Wait if !p.last_chance => return Probe::NeedMore,
        // 407: the client may ask again with credentials on this connection.
        Answer::Refused { first: Some(407) } if !p.last_chance && p.ts.len() < 6000 => {
            return Probe::NeedMore
        }
        Answer::Open { target: ref t, .. } => t,
        _ => &target,
    };
    let first = match answer {
        Answer::Refused { first } => first,
        Answer::Open { first, .. } => Some(first),
        Answer::Wait => status_code(p.tc),
    };
    let rendered = target.render();
    let mut fields = vec![
        ("http.request.method", "CONNECT".to_string()),
        ("url.domain", target.host.clone()),
        ("exwatch.http.tunnel_target", rendered.clone()),
    ];
    if let Some(code) = first {
        fields.push(("http.response.status_code", code.to_string()));
    }
    if let Some(ua) = head_len(p.ts)
        .and_then(|n| header(&p.ts[..n], b"user-agent"))
        .filter(|ua| !ua.is_empty())
    {
        fields.push(("user_agent.original", text::clip(ua, 128)));
    }
    let mut evidence = format!(
        "HTTP CONNECT tunnel to {}",
        text::clip(rendered.as_bytes(), 96)
    );
    let mut service = None;
    match answer {
        Answer::Open {
            first: _,
            ts_at,
            tc_at,
            ref target,
        } => {
            let (its, itc) = (
                &p.ts[ts_at.min(p.ts.len())..],
                &p.tc[tc_at.min(p.tc.len())..],
            );
            if its.is_empty() && itc.is_empty() {
                if !p.last_chance {
                    return Probe::NeedMore;
                }
                evidence.push_str(", opened, no bytes inside");
            } else {
                match inner(p, its, itc, target.port, depth) {
                    Inner::Wait => return Probe::NeedMore,
                    Inner::Found(d) => {
                        let _ = write!(
                            evidence,
                            ", inner {}: {}",
                            d.protocol,
                            text::clip(d.evidence.as_bytes(), 160)
                        );
                        fields.push(("exwatch.inner_protocol", d.protocol.to_string()));
                        // The tunnel's own request and answer speak for the record's HTTP
                        // fields; the inner protocol's fill in the rest (TLS hellos, ...).
                        let outer: Vec<&str> = fields.iter().map(|f| f.0).collect();
                        fields.extend(d.fields.into_iter().filter(|f| !outer.contains(&f.0)));
                        service = d.service;
                    }
                    Inner::Unknown => {
                        evidence.push_str(", inner bytes matched no detector");
                        fields.push(("exwatch.inner_protocol", "unknown".to_string()));
                    }
                }
            }
        }
        Answer::Refused { first: Some(c) } => {
            let _ = write!(evidence, ", refused ({c})");
        }
        _ => {}
    }
    Probe::Mine(Detection {
        reversed: false,
        protocol: "http",
        service,
        confidence: Confidence::Payload,
        evidence,
        fields,
    })
}

impl Detector for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn protocol(&self) -> &'static str {
        "http"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        match self.probe_at(p, 0) {
            Probe::NotMine => reversed(self, p),
            other => other,
        }
    }
}

/// A flow picked up without its start whose guessed originator sent the status lines (or
/// whose guessed responder sent the requests): the request and status lines read the other
/// way round, and the flow marked to be turned around (issue 15, class 8).
fn reversed(http: &Http, p: &Payloads<'_>) -> Probe {
    let request_back =
        p.tc.first().is_some_and(u8::is_ascii_uppercase) && !p.tc.starts_with(b"HTTP/");
    // A status line may still be arriving (the segment cut after "HT").
    let n = p.ts.len().min(7);
    let status_first = n > 0 && p.ts[..n] == b"HTTP/1."[..n];
    if !(status_first || (p.ts.is_empty() && request_back)) {
        return Probe::NotMine;
    }
    let swapped = p.swapped();
    http.probe_at(&swapped, 0).reversed()
}

impl Http {
    /// The probe, `depth` tunnels down (0: the flow itself).
    fn probe_at(&self, p: &Payloads<'_>, depth: u8) -> Probe {
        // Methods are upper-case letters (and `_`; `connect` also in lower case), responses
        // start with "HTTP/".
        if p.ts
            .first()
            .is_some_and(|&c| !c.is_ascii_uppercase() && c != b'c')
            || (p.ts.is_empty() && p.tc.first().is_some_and(|&c| c != b'H'))
        {
            return Probe::NotMine;
        }
        let Some(line) = text::first_line(p.ts) else {
            if !p.ts.is_empty()
                && !could_be_request(p.ts)
                && !text::could_be_verb(p.ts, &["CONNECT"], 2048)
            {
                return Probe::NotMine;
            }
            // Mid-stream: only the server's side may be visible.
            if p.ts.is_empty() && p.tc.starts_with(b"HTTP/1.") && text::first_line(p.tc).is_some() {
                let mut fields = Vec::new();
                if let Some(code) = status_code(p.tc) {
                    fields.push(("http.response.status_code", code.to_string()));
                }
                return Probe::Mine(Detection {
                    reversed: false,
                    protocol: "http",
                    service: None,
                    confidence: Confidence::Payload,
                    evidence: "HTTP response".to_string(),
                    fields,
                });
            }
            if !p.tc.is_empty()
                && p.ts.is_empty()
                && !b"HTTP/1.".starts_with(&p.tc[..p.tc.len().min(7)])
            {
                return Probe::NotMine;
            }
            return if p.last_chance {
                Probe::NotMine
            } else {
                Probe::NeedMore
            };
        };
        if let Some(target) = connect_line(line) {
            return probe_connect(p, target, depth);
        }
        let Some(req) = request_line(line) else {
            return Probe::NotMine;
        };
        let block = match header_block(p.ts) {
            Some(b) => b,
            None if p.last_chance || p.ts.len() >= 6000 => p.ts,
            None => return Probe::NeedMore,
        };
        // The status line is worth one more packet; the request alone already decides.
        if p.tc.is_empty() && !p.last_chance {
            return Probe::NeedMore;
        }
        let mut fields = vec![("http.request.method", req.method.to_string())];
        if let Some(h) = host(&req, block) {
            fields.push(("url.domain", h));
        }
        // The path names the service; userinfo, `;params`, query and fragment may hold user
        // names, passwords and session tokens and are never kept.
        if let Some(path) = req.path {
            fields.push(("url.path", text::clip(path, 128)));
        }
        if let Some(code) = status_code(p.tc) {
            fields.push(("http.response.status_code", code.to_string()));
        }
        let mut evidence = format!("HTTP {} request", req.method);
        let svc = exchange_service(&req, block);
        if let Some((name, why)) = &svc {
            evidence.push_str(&format!(", {why}"));
            match *name {
                "mapi-http" => {
                    if let Some(rt) = header(block, b"x-requesttype") {
                        fields.push(("exwatch.mapi.request_type", text::clip(rt, 32)));
                    }
                    let lower = req.path.unwrap_or_default().to_ascii_lowercase();
                    let endpoint = if lower.starts_with(b"/mapi/nspi") {
                        "nspi"
                    } else if lower.starts_with(b"/mapi/emsmdb") {
                        "emsmdb"
                    } else {
                        ""
                    };
                    if !endpoint.is_empty() {
                        fields.push(("exwatch.mapi.endpoint", endpoint.to_string()));
                    }
                }
                "rpc-http" => {
                    if let Some(port) = rpc_target_port(req.query) {
                        evidence.push_str(&format!(", target port {port}"));
                        fields.push(("exwatch.rpc_http.target_port", port.to_string()));
                    }
                }
                "activesync" => {
                    if let Some(v) = header(block, b"ms-asprotocolversion") {
                        fields.push(("exwatch.activesync.protocol_version", text::clip(v, 16)));
                    }
                }
                _ => {}
            }
        }
        if let Some(ua) = header(block, b"user-agent") {
            fields.push(("user_agent.original", text::clip(ua, 128)));
        }
        if let Some(app) = header(block, b"x-clientapplication") {
            fields.push(("exwatch.client_application", text::clip(app, 64)));
        }
        Probe::Mine(Detection {
            reversed: false,
            protocol: "http",
            service: svc.map(|(s, _)| s.to_string()),
            confidence: Confidence::Payload,
            evidence,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 80, 50000, last)
    }

    fn detect(ts: &[u8], tc: &[u8]) -> Detection {
        match Http.probe(&view(ts, tc, false)) {
            Probe::Mine(d) => d,
            other => panic!("{other:?}"),
        }
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    /// Issue 15, class 8: the guessed originator sent the status line and the guessed
    /// responder the request: read the other way round and marked to be turned around.
    #[test]
    fn request_from_the_guessed_responder_reverses_the_flow() {
        let req: &[u8] = b"POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n";
        let resp: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let d = detect(resp, req);
        assert!(d.reversed);
        assert_eq!(d.service.as_deref(), Some("ews"));
        assert_eq!(field(&d, "http.response.status_code"), Some("200"));
        assert_eq!(
            d.evidence,
            format!("{} (flow directions reversed)", detect(req, resp).evidence)
        );
        // Only the requests, from the guessed responder: the answer is waited for.
        assert!(matches!(
            Http.probe(&view(b"", req, false)),
            Probe::NeedMore
        ));
        let Probe::Mine(d) = Http.probe(&view(b"", req, true)) else {
            panic!()
        };
        assert!(d.reversed);
        // A status line cut after two bytes still turns the flow.
        assert!(detect(b"HT", req).reversed);
        assert!(matches!(
            Http.probe(&view(b"HT", b"", false)),
            Probe::NeedMore
        ));
        // Only the status line, from the guessed originator.
        let d = detect(resp, b"");
        assert!(d.reversed && d.evidence.starts_with("HTTP response"));
        // The straight flow is not turned; another protocol's greeting is not HTTP.
        assert!(!detect(req, resp).reversed);
        assert!(matches!(
            Http.probe(&view(b"", b"SSH-2.0-OpenSSH_9.2\r\n", true)),
            Probe::NotMine
        ));
    }

    #[test]
    fn mapi_over_http() {
        let d = detect(
            b"POST /mapi/emsmdb/?MailboxId=abc@contoso.test HTTP/1.1\r\nHost: mail.contoso.test\r\nContent-Type: application/mapi-http\r\nX-RequestType: Connect\r\nAuthorization: Basic c2VjcmV0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
        );
        assert_eq!(d.service.as_deref(), Some("mapi-http"));
        assert_eq!(field(&d, "exwatch.mapi.request_type"), Some("Connect"));
        assert_eq!(field(&d, "url.domain"), Some("mail.contoso.test"));
        assert_eq!(field(&d, "url.path"), Some("/mapi/emsmdb/"));
        assert_eq!(field(&d, "http.response.status_code"), Some("200"));
        let all = format!("{d:?}");
        assert!(
            !all.contains("c2VjcmV0") && !all.contains("MailboxId"),
            "{all}"
        );
    }

    #[test]
    fn rpc_over_http_target_port() {
        let d = detect(
            b"RPC_IN_DATA /rpc/rpcproxy.dll?mail.contoso.test:6001 HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n",
            b"HTTP/1.1 401 Unauthorized\r\n",
        );
        assert_eq!(d.service.as_deref(), Some("rpc-http"));
        assert_eq!(field(&d, "exwatch.rpc_http.target_port"), Some("6001"));
    }

    #[test]
    fn exchange_paths() {
        for (path, svc) in [
            ("/EWS/Exchange.asmx", "ews"),
            ("/autodiscover/autodiscover.xml", "autodiscover"),
            (
                "/Microsoft-Server-ActiveSync?Cmd=Sync&User=alice",
                "activesync",
            ),
            ("/owa/", "owa"),
            ("/ecp/", "ecp"),
            ("/OAB/1234/oab.xml", "oab"),
            ("/PowerShell/", "powershell"),
        ] {
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            let d = detect(req.as_bytes(), b"HTTP/1.1 200 OK\r\n");
            assert_eq!(d.service.as_deref(), Some(svc), "{path}");
            assert!(!format!("{d:?}").contains("alice"));
        }
        let d = detect(b"GET /index.html HTTP/1.1\r\n\r\n", b"HTTP/1.0 200 OK\r\n");
        assert_eq!(d.service, None);
    }

    /// Issue 13: userinfo, `;params`, query and fragment never reach a field or the evidence;
    /// an absolute URI's host is the domain.
    #[test]
    fn credentials_in_targets_are_dropped() {
        for (req, domain, path) in [
            (
                "GET http://user:password@mail.contoso.test/owa/?x=1 HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n",
                Some("mail.contoso.test"),
                Some("/owa/"),
            ),
            (
                "POST HTTP://user:password@MAIL.contoso.test:8080/mapi/emsmdb/;sid=password?MailboxId=password#password HTTP/1.1\r\nHost: other.test\r\n\r\n",
                Some("mail.contoso.test"),
                Some("/mapi/emsmdb/"),
            ),
            (
                "GET https://user%40x:password@[2001:db8::1]:443?password HTTP/1.1\r\n\r\n",
                Some("2001:db8::1"),
                Some("/"),
            ),
            (
                "GET /owa/;jsessionid=password HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n",
                Some("mail.contoso.test"),
                Some("/owa/"),
            ),
            (
                "GET /ews/exchange.asmx?password=password&access_token=password HTTP/1.1\r\n\r\n",
                None,
                Some("/ews/exchange.asmx"),
            ),
            (
                "GET /owa/#access_token=password HTTP/1.1\r\n\r\n",
                None,
                Some("/owa/"),
            ),
            (
                "GET /owa/ HTTP/1.1\r\nHost: user:password@mail.contoso.test:80\r\n\r\n",
                Some("mail.contoso.test"),
                Some("/owa/"),
            ),
            (
                "CONNECT user:password@mail.contoso.test:443 HTTP/1.1\r\nHost: user:password@x\r\n\r\n",
                Some("mail.contoso.test"),
                None,
            ),
        ] {
            let d = detect(req.as_bytes(), b"HTTP/1.1 400 Bad Request\r\n");
            assert_eq!(field(&d, "url.domain"), domain, "{req}");
            assert_eq!(field(&d, "url.path"), path, "{req}");
            let all = format!("{d:?}");
            for s in ["password", "user", "sid=", "jsessionid", "access_token"] {
                assert!(!all.contains(s), "{s} in {all}");
            }
        }
        // the absolute form names the service as the origin form does
        let d = detect(
            b"GET http://u:p@mail.contoso.test/EWS/Exchange.asmx HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
        );
        assert_eq!(d.service.as_deref(), Some("ews"));
        // the RPC over HTTP target port is still read from the query of either form
        let d = detect(
            b"RPC_IN_DATA http://u:p@mail.contoso.test/rpc/rpcproxy.dll?mail:6004#x HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
        );
        assert_eq!(field(&d, "exwatch.rpc_http.target_port"), Some("6004"));
        assert_eq!(field(&d, "url.path"), Some("/rpc/rpcproxy.dll"));
    }

    #[test]
    fn split_request_needs_more() {
        assert!(matches!(
            Http.probe(&view(b"PO", b"", false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Http.probe(&view(b"POST /mapi", b"", false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Http.probe(&view(
                b"POST /mapi/emsmdb HTTP/1.1\r\nHost: a\r\n",
                b"",
                false
            )),
            Probe::NeedMore
        ));
        assert!(matches!(
            Http.probe(&view(
                b"POST /mapi/emsmdb HTTP/1.1\r\nHost: a\r\n",
                b"",
                true
            )),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn not_http() {
        assert!(matches!(
            Http.probe(&view(b"EHLO x\r\n", b"", false)),
            Probe::NotMine
        ));
        assert!(matches!(
            Http.probe(&view(b"\x16\x03\x01", b"", false)),
            Probe::NotMine
        ));
        assert!(matches!(
            Http.probe(&view(b"INVITE sip:a SIP/2.0\r\n", b"", false)),
            Probe::NotMine
        ));
        assert!(matches!(
            Http.probe(&view(b"", b"220 smtp\r\n", false)),
            Probe::NotMine
        ));
    }

    #[test]
    fn hostile_headers() {
        let _ = Http.probe(&view(
            b"GET / HTTP/1.1\r\nHost: [\r\n\r\n",
            b"HTTP/1.1 2",
            true,
        ));
        let _ = Http.probe(&view(b"GET / HTTP/1.1\r\n:\r\n\r\n", b"HTTP/1.1", false));
        let _ = Http.probe(&view(
            b"RPC_IN_DATA /rpc?:99999999 HTTP/1.1\r\n\r\n",
            b"",
            true,
        ));
        assert_eq!(rpc_target_port(Some(b":")), None);
    }

    /// Issue 15 (5): CONNECT in the forms clients send, userinfo never kept.
    #[test]
    fn connect_lines_in_common_forms() {
        for (line, want) in [
            (
                &b"CONNECT mail.contoso.test:443 HTTP/1.1"[..],
                Some("mail.contoso.test:443"),
            ),
            (
                b"CONNECT mail.contoso.test:443 HTTP/1.0",
                Some("mail.contoso.test:443"),
            ),
            (
                b"connect Mail.Contoso.Test:25 http/1.1",
                Some("mail.contoso.test:25"),
            ),
            (
                b"CONNECT  mail.contoso.test:443   HTTP/1.1",
                Some("mail.contoso.test:443"),
            ),
            (
                b"CONNECT\tmail.contoso.test:443\tHTTP/1.1",
                Some("mail.contoso.test:443"),
            ),
            (
                b"CONNECT mail.contoso.test:443",
                Some("mail.contoso.test:443"),
            ),
            (
                b"CONNECT https://mail.contoso.test:443/ HTTP/1.1",
                Some("mail.contoso.test:443"),
            ),
            (
                b"CONNECT http://u:pw@mail.contoso.test:8443 HTTP/1.1",
                Some("mail.contoso.test:8443"),
            ),
            (
                b"CONNECT user:p@ss@mail.contoso.test:443 HTTP/1.1",
                Some("mail.contoso.test:443"),
            ),
            (
                b"CONNECT [2001:DB8::1]:993 HTTP/1.1",
                Some("[2001:db8::1]:993"),
            ),
            (
                b"CONNECT mail.contoso.test HTTP/1.1",
                Some("mail.contoso.test"),
            ),
            // IRC's operator command, and broken targets
            (b"CONNECT irc.contoso.test 6667", None),
            (b"CONNECT irc.contoso.test", None),
            (b"CONNECT mail.contoso.test:99999 HTTP/1.1", None),
            (b"CONNECT mail.contoso.test:0 HTTP/1.1", None),
            (b"CONNECT mail.contoso.test:4x3 HTTP/1.1", None),
            (b"CONNECT [2001:db8::1 HTTP/1.1", None),
            (b"CONNECT :443 HTTP/1.1", None),
            (b"CONNECT mail.contoso.test:443 HTTP/1.1 extra", None),
            (b"CONNECTX mail.contoso.test:443 HTTP/1.1", None),
            (b"GET mail.contoso.test:443 HTTP/1.1", None),
        ] {
            let got = connect_line(line).map(|t| t.render());
            assert_eq!(got.as_deref(), want, "{}", String::from_utf8_lossy(line));
        }
    }

    fn tls_hellos() -> (Vec<u8>, Vec<u8>) {
        use super::super::tls::tests::{hex, IMAPS_CLIENT_HELLO, IMAPS_SERVER_FLIGHT};
        (hex(IMAPS_CLIENT_HELLO), hex(IMAPS_SERVER_FLIGHT))
    }

    const CONNECT_443: &[u8] = b"CONNECT mail.contoso.test:443 HTTP/1.1\r\nHost: mail.contoso.test:443\r\nUser-Agent: curl/7.88.1\r\nProxy-Authorization: Basic cHJveHlzZWNyZXQ=\r\n\r\n";
    const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

    #[test]
    fn tunnel_carries_tls_with_its_fingerprints() {
        let (ch, sf) = tls_hellos();
        let ts = [CONNECT_443, &ch].concat();
        let tc = [ESTABLISHED, &sf].concat();
        let d = detect(&ts, &tc);
        assert_eq!(d.protocol, "http");
        assert_eq!(
            field(&d, "exwatch.http.tunnel_target"),
            Some("mail.contoso.test:443")
        );
        assert_eq!(field(&d, "exwatch.inner_protocol"), Some("tls"));
        assert_eq!(field(&d, "http.request.method"), Some("CONNECT"));
        assert_eq!(field(&d, "http.response.status_code"), Some("200"));
        assert_eq!(field(&d, "url.domain"), Some("mail.contoso.test"));
        assert_eq!(
            field(&d, "tls.client.server_name"),
            Some("mail.contoso.test")
        );
        for k in [
            "tls.client.ja3",
            "tls.client.ja4",
            "tls.server.ja3s",
            "tls.server.ja4s",
        ] {
            assert!(field(&d, k).is_some(), "no {k}: {d:?}");
        }
        assert!(d.evidence.contains("inner tls"), "{}", d.evidence);
        let all = format!("{d:?}");
        assert!(
            !all.contains("cHJveHlzZWNyZXQ") && !all.contains("Proxy-Auth"),
            "{all}"
        );
        // one key each: the record cannot hold two values of a scalar field
        let mut keys: Vec<&str> = d
            .fields
            .iter()
            .map(|f| f.0)
            .filter(|k| crate::report::schema::lookup(k).is_some_and(|f| !f.array))
            .collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(n, keys.len(), "{:?}", d.fields);
    }

    #[test]
    fn tunnel_waits_for_the_answer_and_the_inner_hellos() {
        let (ch, sf) = tls_hellos();
        let ts = [CONNECT_443, &ch].concat();
        for cut in [&b"conn"[..], &CONNECT_443[..20]] {
            assert!(matches!(
                Http.probe(&view(cut, b"", false)),
                Probe::NeedMore
            ));
        }
        for (ts, tc) in [
            (CONNECT_443, &b""[..]),
            (CONNECT_443, b"HTTP/1.1 200 Connection established\r\n"),
            (CONNECT_443, ESTABLISHED),
            (&ts[..CONNECT_443.len() + 7], ESTABLISHED),
            (&ts, ESTABLISHED),
            (&ts, &[ESTABLISHED, &sf[..9]].concat()),
        ] {
            assert!(
                matches!(Http.probe(&view(ts, tc, false)), Probe::NeedMore),
                "{ts:?} {tc:?}"
            );
            let Probe::Mine(d) = Http.probe(&view(ts, tc, true)) else {
                panic!("last chance: {ts:?} {tc:?}")
            };
            assert_eq!(
                field(&d, "exwatch.http.tunnel_target"),
                Some("mail.contoso.test:443")
            );
        }
        // the answer split from its bytes, the hello split in two: still TLS once whole
        let d = detect(&ts, &[ESTABLISHED, &sf].concat());
        assert_eq!(field(&d, "exwatch.inner_protocol"), Some("tls"));
    }

    #[test]
    fn refused_tunnel_classifies_nothing_inside() {
        let body = b"<html>ERROR: \x16\x03\x01 SSH-2.0-x 220 smtp</html>\n";
        let tc = [
            format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
            body,
        ]
        .concat();
        let d = detect(
            b"CONNECT mail.contoso.test:25 HTTP/1.1\r\nHost: mail.contoso.test:25\r\n\r\n",
            &tc,
        );
        assert_eq!(field(&d, "http.response.status_code"), Some("403"));
        assert_eq!(
            field(&d, "exwatch.http.tunnel_target"),
            Some("mail.contoso.test:25")
        );
        assert_eq!(field(&d, "exwatch.inner_protocol"), None);
        assert!(d.evidence.contains("refused (403)"), "{}", d.evidence);
        assert!(!d.fields.iter().any(|f| f.0.starts_with("tls.")));
    }

    #[test]
    fn tunnel_after_proxy_authentication_and_interim_answers() {
        let (ch, sf) = tls_hellos();
        let challenge: &[u8] = b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: NTLM\r\nContent-Length: 5\r\n\r\ndeny\n";
        // the 407 alone: the client may ask again on this connection
        assert!(matches!(
            Http.probe(&view(CONNECT_443, challenge, false)),
            Probe::NeedMore
        ));
        let ts = [CONNECT_443, CONNECT_443, &ch].concat();
        let tc = [
            challenge,
            b"HTTP/1.1 100 Continue\r\n\r\n",
            ESTABLISHED,
            &sf,
        ]
        .concat();
        let d = detect(&ts, &tc);
        assert_eq!(field(&d, "http.response.status_code"), Some("407"));
        assert_eq!(field(&d, "exwatch.inner_protocol"), Some("tls"));
        assert_eq!(
            field(&d, "tls.client.server_name"),
            Some("mail.contoso.test")
        );
    }

    #[test]
    fn tunnel_carries_clear_text_protocols() {
        // lowercase method, bare LF, no version, the client speaking first: SMTP inside
        let d = detect(
            b"connect mail.contoso.test:25\n\nEHLO client.contoso.test\r\n",
            b"HTTP/1.0 200 OK\r\n\r\n220 mail.contoso.test Microsoft ESMTP MAIL Service ready\r\n250-mail.contoso.test Hello\r\n250 XEXCH50\r\n",
        );
        assert_eq!(field(&d, "exwatch.inner_protocol"), Some("smtp"));
        assert_eq!(
            field(&d, "exwatch.http.tunnel_target"),
            Some("mail.contoso.test:25")
        );
        // plain HTTP inside: the tunnel's own method and status stay; the path names the service
        let d = detect(
            b"CONNECT mail.contoso.test:80 HTTP/1.1\r\n\r\nGET /owa/ HTTP/1.1\r\nHost: mail.contoso.test\r\n\r\n",
            b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 302 Found\r\n\r\n",
        );
        assert_eq!(field(&d, "exwatch.inner_protocol"), Some("http"));
        assert_eq!(field(&d, "http.request.method"), Some("CONNECT"));
        assert_eq!(field(&d, "http.response.status_code"), Some("200"));
        assert_eq!(field(&d, "url.path"), Some("/owa/"));
        assert_eq!(d.service.as_deref(), Some("owa"));
        // bytes nobody claims, and a tunnel inside the tunnel (named, not followed)
        let junk = [CONNECT_443, b"\x00\x01\x02\x03".as_slice()].concat();
        let Probe::Mine(d) = Http.probe(&view(&junk, ESTABLISHED, true)) else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.inner_protocol"), Some("unknown"));
        let nested = [CONNECT_443, b"CONNECT other.test:443 HTTP/1.1\r\n\r\n"].concat();
        let Probe::Mine(d) = Http.probe(&view(&nested, &[ESTABLISHED, ESTABLISHED].concat(), true))
        else {
            panic!()
        };
        assert_eq!(field(&d, "exwatch.inner_protocol"), Some("http"));
        assert_eq!(
            field(&d, "exwatch.http.tunnel_target"),
            Some("mail.contoso.test:443")
        );
    }

    #[test]
    fn hostile_tunnels() {
        use crate::classify::detector::testing::probe_hostile;
        probe_hostile(&Http, view, b"CONECT :1[]@/\r\n HTP200.", 15, 20_000);
        for (ts, tc) in [
            (
                &b"CONNECT a:1\r\n\r\n"[..],
                &b"HTTP/1.1 407 x\r\nContent-Length: 99999999999999999999\r\n\r\n"[..],
            ),
            (
                b"CONNECT a:1\r\n\r\nCONNECT a:1\r\n\r\n",
                b"HTTP/1.1 407 x\r\nContent-Length: 18446744073709551615\r\n\r\n",
            ),
            (
                b"CONNECT a:1\r\n\r\n",
                b"HTTP/1.1 100 x\r\n\r\nHTTP/1.1 100 x\r\n\r\n",
            ),
            (b"CONNECT [::]:1 HTTP/1.1\r\n\r\n", b"HTTP/1.1 2"),
        ] {
            for last in [false, true] {
                let _ = Http.probe(&view(ts, tc, last));
            }
        }
        // a long chain of refusals is followed a bounded number of rounds
        let ts = b"CONNECT a:1\r\n\r\n".repeat(50);
        let tc = b"HTTP/1.1 407 x\r\nContent-Length: 0\r\n\r\n".repeat(50);
        assert!(matches!(Http.probe(&view(&ts, &tc, true)), Probe::Mine(_)));
    }
}
