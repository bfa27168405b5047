//! HTTP/1.x: requests and responses, and the Exchange service behind the path and headers.

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

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

impl Detector for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn protocol(&self) -> &'static str {
        "http"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        // Methods are upper-case letters (and `_`), responses start with "HTTP/".
        if p.ts.first().is_some_and(|c| !c.is_ascii_uppercase())
            || (p.ts.is_empty() && p.tc.first().is_some_and(|&c| c != b'H'))
        {
            return Probe::NotMine;
        }
        let Some(line) = text::first_line(p.ts) else {
            if !p.ts.is_empty() && !could_be_request(p.ts) {
                return Probe::NotMine;
            }
            // Mid-stream: only the server's side may be visible.
            if p.ts.is_empty() && p.tc.starts_with(b"HTTP/1.") && text::first_line(p.tc).is_some() {
                let mut fields = Vec::new();
                if let Some(code) = status_code(p.tc) {
                    fields.push(("http.response.status_code", code.to_string()));
                }
                return Probe::Mine(Detection {
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
}
