//! Records never carry credentials or content: every capture with known secrets is audited and
//! the output (records, summary, `--report` page) searched for them (the secrets are listed in
//! pcaps/README.md).

mod common;

use common::*;

/// Secrets and content that travel in clear in the project's captures, in every form they take
/// on the wire (literal and base64).
const SECRETS: &[&str] = &[
    "exwatch-secret-pw",
    // base64 of "\0alice\0exwatch-secret-pw-1" (SMTP AUTH PLAIN) and of the password (AUTH LOGIN)
    "AGFsaWNlAGV4d2F0Y2gtc2VjcmV0LXB3LTE",
    "ZXh3YXRjaC1zZWNyZXQtcHctMQ",
    // HTTP Basic credentials and the back-end cookie
    "YWxpY2VAY29udG9zby50ZXN0OmV4d2F0Y2gtc2VjcmV0LXB3LTM",
    "secretcookie123",
    "X-BackEndCookie",
    // Message content: subjects, message ids and bodies of the test mails
    "exwatch test message",
    "exwatch IMAP/POP test",
    "exwatch-test-1@fabrikam.test",
    // Query values (ActiveSync user and device) and the LDAP bind DN's user
    "DeviceId=",
    "User=alice",
    "uid=jdoe",
    // User names: the RDP cookie (`mstshash=jdoe`), LDAP bind DN, IMAP/POP/SMTP logins
    "mstshash=",
    "jdoe",
    "alice",
    // Credentials and tokens in request URIs (uri-secrets.pcap, issue 13): userinfo of absolute
    // URIs and of `Host`, `;params`, query values and fragments, and SIP URIs with a password
    "exwatch-secret-uri",
    "jsessionid",
    "access_token",
    "password",
    "sid=",
    // Proxy credentials on a CONNECT (connect-tunnel.pcap, issue 15): the header, the base64 of
    // "alice:exwatch-proxy-pw-5" and the password
    "Proxy-Authorization",
    "YWxpY2U6ZXh3YXRjaC1wcm94eS1wdy01",
    "exwatch-proxy-pw",
];

#[test]
fn no_secret_or_content_in_any_record() {
    let mut leaks = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    for cap in all_captures() {
        let run = audit(&[&cap], &["-q", "--report", page.to_str().unwrap()]);
        for r in &run.records {
            let text = r.to_string();
            for s in SECRETS {
                if text.contains(s) {
                    leaks.push(format!("{}: record contains {s:?}: {text}", cap.display()));
                }
            }
        }
        // The summary is also output, and so is the report (`--report`).
        let summary = run.summary.to_string();
        let report = std::fs::read_to_string(&page).unwrap();
        for s in SECRETS {
            assert!(
                !summary.contains(s),
                "{}: summary contains {s:?}",
                cap.display()
            );
            assert!(
                !report.contains(s),
                "{}: report contains {s:?}",
                cap.display()
            );
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}

/// The test above must be able to fail: the secrets really are in the captures.
#[test]
fn the_secrets_are_really_on_the_wire() {
    let wire = |name: &str| std::fs::read(root().join("pcaps").join(name)).unwrap();
    let has = |b: &[u8], s: &str| b.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(has(&wire("imap-143.pcap"), "exwatch-secret-pw-2"));
    assert!(has(&wire("pop3-110.pcap"), "exwatch-secret-pw-2"));
    assert!(has(&wire("ldap-389.pcap"), "exwatch-secret-pw-4"));
    assert!(has(
        &wire("smtp-auth-plain-25.pcap"),
        "AGFsaWNlAGV4d2F0Y2gtc2VjcmV0LXB3LTE"
    ));
    assert!(has(&wire("http-exchange-plain.pcap"), "secretcookie123"));
    assert!(has(
        &wire("http-exchange-plain.pcap"),
        "YWxpY2VAY29udG9zby50ZXN0OmV4d2F0Y2gtc2VjcmV0LXB3LTM"
    ));
    assert!(has(&wire("rdp.pcap"), "mstshash=jdoe"));
    assert!(has(&wire("pop3-110.pcap"), "USER alice"));
    assert!(has(
        &wire("connect-tunnel.pcap"),
        "Proxy-Authorization: Basic YWxpY2U6ZXh3YXRjaC1wcm94eS1wdy01"
    ));
    let uri = wire("uri-secrets.pcap");
    for i in 1..=15 {
        assert!(has(&uri, &format!("exwatch-secret-uri-{i}")), "secret {i}");
    }
    for s in [
        "GET http://alice:exwatch-secret-uri-1@mail.contoso.test/owa/?x=1 HTTP/1.1",
        "GET /owa/;jsessionid=exwatch-secret-uri-9 HTTP/1.1",
        "Host: alice:exwatch-secret-uri-13@mail.contoso.test",
        "OPTIONS sip:alice:exwatch-secret-uri-15@192.0.2.10:5060 SIP/2.0",
    ] {
        assert!(has(&uri, s), "{s}");
    }
}

/// Issue 13: what records keep of URIs with credentials is the host and the bare path, and the
/// flows are still classified (the absolute form names its Exchange service as the origin form).
#[test]
fn uri_credentials_leave_host_and_path() {
    let run = audit(&[&root().join("pcaps/uri-secrets.pcap")], &["-q"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let http: Vec<_> = run
        .records
        .iter()
        .filter(|r| field(r, "network.protocol") == "http")
        .collect();
    assert_eq!(http.len(), 11, "one flow per curl request");
    for r in &http {
        assert_eq!(field(r, "url.domain"), "mail.contoso.test", "{r}");
    }
    let mut paths: Vec<_> = http
        .iter()
        .filter_map(|r| field(r, "url.path").as_str())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/EWS/Exchange.asmx",
            "/EWS/Exchange.asmx",
            "/ecp/",
            "/mapi/emsmdb/",
            "/owa/",
            "/owa/",
            "/owa/",
            "/owa/",
            "/owa/",
            "/owa/",
        ],
        "CONNECT has no path"
    );
    let service = |p: &str| {
        http.iter()
            .filter(|r| field(r, "url.path") == p)
            .map(|r| {
                field(r, "exwatch.service")
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    assert!(service("/mapi/emsmdb/").iter().all(|s| s == "mapi-http"));
    assert!(service("/owa/").iter().all(|s| s == "owa"));
    let sip: Vec<_> = run
        .records
        .iter()
        .filter(|r| field(r, "network.protocol") == "sip")
        .collect();
    assert_eq!(sip.len(), 1);
    assert_eq!(field(sip[0], "exwatch.sip.method"), "OPTIONS");
}

/// Issue 15: a CONNECT that carries Proxy-Authorization keeps its target and the TLS inside,
/// and nothing of the credentials.
#[test]
fn proxy_credentials_leave_only_the_tunnel_target() {
    let run = audit(&[&root().join("pcaps/connect-tunnel.pcap")], &["-q"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let tls12: Vec<&serde_json::Value> = run
        .records
        .iter()
        .filter(|r| r["tls"]["version"] == "1.2")
        .collect();
    assert_eq!(tls12.len(), 1, "{:?}", run.records);
    let r = tls12[0];
    assert_eq!(
        r["exwatch"]["http"]["tunnel_target"],
        "mail.contoso.test:443"
    );
    assert_eq!(r["exwatch"]["inner_protocol"], "http");
    let text = r.to_string();
    for s in [
        "Proxy-Authorization",
        "YWxpY2U6",
        "alice",
        "exwatch-proxy-pw",
        "Basic",
    ] {
        assert!(!text.contains(s), "{s} in {text}");
    }
}
