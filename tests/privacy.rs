//! Records never carry credentials or content: every capture with known secrets is audited and
//! the output searched for them (the secrets are listed in pcaps/README.md).

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
];

#[test]
fn no_secret_or_content_in_any_record() {
    let mut leaks = Vec::new();
    for cap in all_captures() {
        let run = audit(&[&cap], &["-q"]);
        for r in &run.records {
            let text = r.to_string();
            for s in SECRETS {
                if text.contains(s) {
                    leaks.push(format!("{}: record contains {s:?}: {text}", cap.display()));
                }
            }
        }
        // The summary is also output.
        let summary = run.summary.to_string();
        for s in SECRETS {
            assert!(
                !summary.contains(s),
                "{}: summary contains {s:?}",
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
}
