//! POP3: `+OK` greeting and client commands; the Exchange greeting; STLS followed into TLS.

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Pop3;

/// "+OK The Microsoft Exchange POP3 service is ready."
const EXCHANGE_GREETING: &[u8] = b"Microsoft Exchange POP3";

const VERBS: &[&str] = &[
    "USER", "PASS", "APOP", "AUTH", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "QUIT", "TOP",
    "UIDL", "CAPA", "STLS", "UTF8", "LANG",
];

/// Verbs no other mail or file protocol has: enough on their own for a mid-stream start.
/// (USER, PASS, LIST, RETR, STAT, QUIT are FTP's too; AUTH, NOOP, RSET, QUIT SMTP's.)
const UNIQUE: &[&str] = &["APOP", "TOP", "UIDL", "CAPA", "STLS"];

/// Commands a client sends before choosing STLS: the decision waits past them.
const PRE_TLS: &[&str] = &["CAPA", "NOOP"];

/// A client command line: its verb (arguments, such as user names and passwords, are never
/// looked at).
fn command(line: &[u8]) -> Option<&'static str> {
    let end = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
    let verb = &line[..end];
    VERBS
        .iter()
        .find(|v| verb.eq_ignore_ascii_case(v.as_bytes()))
        .copied()
}

fn status(line: &[u8]) -> Option<&'static str> {
    [("+OK", "+OK"), ("-ERR", "-ERR")]
        .into_iter()
        .find(|(s, _)| {
            line.starts_with(s.as_bytes()) && matches!(line.get(s.len()), None | Some(b' '))
        })
        .map(|(_, n)| n)
}

/// Whether an unfinished first server line could still become `+OK ...` / `-ERR ...`.
fn could_be_status(b: &[u8]) -> bool {
    let n = b.len().min(4);
    b.len() < 1024 && (b"+OK ".starts_with(&b[..n]) || b"-ERR".starts_with(&b[..n]))
}

/// Whether an unfinished first client line could still become a command.
fn could_be_command(b: &[u8]) -> bool {
    text::could_be_verb(b, VERBS, 256)
}

impl Detector for Pop3 {
    fn name(&self) -> &'static str {
        "pop3"
    }

    fn protocol(&self) -> &'static str {
        "pop3"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let ts_line = text::first_line(p.ts);
        let first_cmd = ts_line.and_then(command);
        let ts_ok = match ts_line {
            None => p.ts.is_empty() || could_be_command(p.ts),
            Some(_) => first_cmd.is_some(),
        };
        let unique = first_cmd.is_some_and(|v| UNIQUE.contains(&v));
        let tc_line = text::first_line(p.tc);
        let tc_status = tc_line.and_then(status);
        // Mid-stream, the first server line may be inside a multi-line answer: then the
        // client's POP3-only verbs must decide alone.
        let tc_ok = match tc_line {
            _ if p.tc.is_empty() => true,
            None => could_be_status(p.tc) || unique,
            Some(_) => tc_status.is_some() || unique,
        };
        if !tc_ok || !ts_ok {
            return Probe::NotMine;
        }
        let greeting = tc_status == Some("+OK");
        // A bare `+OK` line is also Redis's and others': it counts once the client answers
        // with a POP3 command (or when nothing more will come). Without a server status
        // line, only POP3-only verbs decide.
        let ok = match (tc_status, first_cmd) {
            (Some(_), Some(_)) => true,
            (Some("+OK"), None) => p.last_chance,
            (_, Some(_)) => unique,
            _ => false,
        };
        if !ok {
            return if p.last_chance {
                Probe::NotMine
            } else {
                Probe::NeedMore
            };
        }
        let mut upgrade = None;
        let mut decided = false;
        for (line, end) in text::lines_with_end(p.ts) {
            match command(line) {
                Some("STLS") => {
                    upgrade = Some(end);
                    break;
                }
                Some(v) if PRE_TLS.contains(&v) => {}
                _ => {
                    decided = true;
                    break;
                }
            }
        }
        if upgrade.is_none() && !decided && !p.last_chance {
            return Probe::NeedMore;
        }
        let mut evidence = if greeting {
            "POP3 +OK greeting".to_string()
        } else {
            "POP3 client commands".to_string()
        };
        match first_cmd {
            Some(v) => evidence.push_str(&format!(", {v}")),
            None => evidence.push_str(" (no client command seen)"),
        }
        let mut fields = Vec::new();
        if let Some(end) = upgrade {
            let after = p.ts.get(end..).unwrap_or_default();
            if after.is_empty() && !p.last_chance {
                return Probe::NeedMore;
            }
            let tc_after = super::tls::tls_after_lines(p.tc);
            if super::tls::upgrade_into_tls(
                "STLS",
                after,
                tc_after,
                p.last_chance,
                &mut evidence,
                &mut fields,
            )
            .is_none()
            {
                return Probe::NeedMore;
            }
        }
        if greeting && tc_line.is_some_and(|l| text::contains_ci(l, EXCHANGE_GREETING)) {
            evidence.push_str(", Microsoft Exchange POP3");
            fields.push((
                "exwatch.exchange_markers",
                "Microsoft Exchange POP3 greeting".to_string(),
            ));
        }
        Probe::Mine(Detection {
            reversed: false,
            protocol: "pop3",
            service: None,
            confidence: Confidence::Payload,
            evidence,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // pop3-110.pcap (Dovecot with the Exchange greeting, python poplib).
    const GREETING: &[u8] = b"+OK The Microsoft Exchange POP3 service is ready.\r\n";

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 110, 50254, last)
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    #[test]
    fn exchange_greeting_and_login_without_credentials() {
        let ts = b"USER alice\r\nPASS exwatch-secret-pw-2\r\n";
        let tc = b"+OK The Microsoft Exchange POP3 service is ready.\r\n+OK\r\n";
        let Probe::Mine(d) = Pop3.probe(&view(ts, tc, false)) else {
            panic!()
        };
        assert_eq!(
            d.evidence,
            "POP3 +OK greeting, USER, Microsoft Exchange POP3"
        );
        assert_eq!(
            field(&d, "exwatch.exchange_markers"),
            Some("Microsoft Exchange POP3 greeting")
        );
        let all = format!("{d:?}");
        assert!(
            !all.contains("alice") && !all.contains("exwatch-secret-pw-2"),
            "{all}"
        );
    }

    #[test]
    fn stls_followed_into_tls() {
        // pop3-stls-110.pcap (curl): CAPA, STLS, then the ClientHello.
        let ts = b"CAPA\r\nSTLS\r\n";
        assert!(matches!(
            Pop3.probe(&view(ts, GREETING, false)),
            Probe::NeedMore
        ));
        let tc = [
            GREETING,
            b"+OK capabilities\r\nSTLS\r\n.\r\n+OK Begin TLS\r\n",
        ]
        .concat();
        let d =
            super::super::tls::tests::assert_follows_upgrade(&Pop3, view, ts, &tc, "STLS upgrade");
        assert_eq!(field(&d, "exwatch.tls_upgrade"), Some("STLS"));
    }

    #[test]
    fn bare_greeting_waits_for_the_client() {
        for cut in 1..GREETING.len() {
            assert!(
                matches!(
                    Pop3.probe(&view(b"", &GREETING[..cut], false)),
                    Probe::NeedMore
                ),
                "cut {cut}"
            );
        }
        assert!(matches!(
            Pop3.probe(&view(b"", b"+OK\r\n", false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Pop3.probe(&view(b"CA", GREETING, false)),
            Probe::NeedMore
        ));
        let Probe::Mine(d) = Pop3.probe(&view(b"", b"+OK\r\n", true)) else {
            panic!()
        };
        assert_eq!(d.evidence, "POP3 +OK greeting (no client command seen)");
    }

    #[test]
    fn mid_stream() {
        // shared pop3.pcap: lower-case commands; a capture that starts at "uidl".
        assert!(matches!(
            Pop3.probe(&view(b"uidl\r\n", b"", false)),
            Probe::Mine(_)
        ));
        // USER alone is FTP's too: the server's answer decides.
        assert!(matches!(
            Pop3.probe(&view(b"USER x\r\n", b"", false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Pop3.probe(&view(b"USER x\r\n", b"", true)),
            Probe::NotMine
        ));
        assert!(matches!(
            Pop3.probe(&view(b"list\r\n", b"-ERR no\r\n", false)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn truncated_and_hostile() {
        crate::classify::detector::testing::assert_truncated(
            &Pop3,
            view,
            &[
                (&b"US"[..], &b"+O"[..]),
                (b"", b"+"),
                (b"\r\n", b"+OK\r\n"),
                (b"STLS\r\n", b"\xff"),
            ],
        );
        crate::classify::detector::testing::probe_hostile(
            &Pop3,
            view,
            b"+OK -ERR STLS CAPA USER\r\n\x16\xff",
            29,
            600,
        );
    }

    #[test]
    fn other_protocols_are_not_pop3() {
        crate::classify::detector::testing::assert_not_mine(
            &Pop3,
            view,
            &[
                (&b"USER anonymous\r\n"[..], &b"220 FTP server ready\r\n"[..]),
                (b"EHLO a\r\n", b"220 mx ESMTP\r\n"),
                (b"A1 CAPABILITY\r\n", b"* OK IMAP4rev1\r\n"),
                (b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
                (b"*2\r\n$3\r\nGET\r\n", b"+OK\r\n"),
            ],
        );
    }
}
