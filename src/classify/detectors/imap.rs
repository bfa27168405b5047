//! IMAP4: server greeting (`* OK`, `* PREAUTH`), tagged client commands and untagged
//! responses for mid-stream starts; the Exchange greeting; STARTTLS followed into TLS.

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Imap;

/// "The Microsoft Exchange IMAP4 service is ready." (Dovecot puts `[CAPABILITY ...]` in
/// front of the text, so the whole line is searched.)
const EXCHANGE_GREETING: &[u8] = b"Microsoft Exchange IMAP4";

const VERBS: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "AUTHENTICATE",
    "LOGIN",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "XLIST",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
    "IDLE",
    "ID",
    "ENABLE",
    "NAMESPACE",
    "GETQUOTA",
    "GETQUOTAROOT",
    "GETACL",
    "MYRIGHTS",
    "COMPRESS",
];

/// Commands a client sends before choosing STARTTLS: the decision waits past them.
const PRE_TLS: &[&str] = &["CAPABILITY", "NOOP", "ID"];

/// Untagged response keywords (`* KEYWORD ...`) and message-data keywords (`* n KEYWORD`).
const UNTAGGED: &[&str] = &[
    "OK",
    "NO",
    "BAD",
    "BYE",
    "PREAUTH",
    "CAPABILITY",
    "LIST",
    "LSUB",
    "STATUS",
    "SEARCH",
    "FLAGS",
    "ENABLED",
    "NAMESPACE",
    "ID",
    "QUOTA",
    "QUOTAROOT",
];
const MESSAGE_DATA: &[&str] = &["EXISTS", "RECENT", "EXPUNGE", "FETCH"];

/// IMAP tags: ASTRING-CHAR minus `+` (RFC 3501 9).
fn is_tag_char(c: u8) -> bool {
    c.is_ascii_graphic() && !b"(){%*\"\\+]".contains(&c)
}

fn word(b: &[u8]) -> (&[u8], &[u8]) {
    match b.iter().position(|&c| c == b' ') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &[]),
    }
}

fn keyword(w: &[u8], list: &[&'static str]) -> Option<&'static str> {
    list.iter()
        .find(|k| w.eq_ignore_ascii_case(k.as_bytes()))
        .copied()
}

/// A tagged client command line: its tag and verb (arguments are never looked at).
fn command(line: &[u8]) -> Option<(&[u8], &'static str)> {
    let (tag, rest) = word(line);
    if tag.is_empty() || tag.len() > 64 || !tag.iter().all(|&c| is_tag_char(c)) {
        return None;
    }
    let (verb, _) = word(rest);
    Some((tag, keyword(verb, VERBS)?))
}

/// `* OK`, `* PREAUTH` (or `* BYE`, a refusal) as the first server line.
fn greeting(line: &[u8]) -> Option<&'static str> {
    let rest = line.strip_prefix(b"* ")?;
    let (w, _) = word(rest);
    keyword(w, &["OK", "PREAUTH", "BYE"])
}

fn untagged(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"* ") else {
        return false;
    };
    let (w, rest) = word(rest);
    if keyword(w, UNTAGGED).is_some() {
        return true;
    }
    !w.is_empty()
        && w.len() <= 10
        && w.iter().all(u8::is_ascii_digit)
        && keyword(word(rest).0, MESSAGE_DATA).is_some()
}

/// `tag OK|NO|BAD ...`: a tagged server reply.
fn tagged_reply(line: &[u8]) -> Option<(&[u8], &'static str)> {
    let (tag, rest) = word(line);
    if tag.is_empty() || tag.len() > 64 || !tag.iter().all(|&c| is_tag_char(c)) {
        return None;
    }
    Some((tag, keyword(word(rest).0, &["OK", "NO", "BAD"])?))
}

/// Whether an unfinished first line could still become a greeting or untagged response.
fn could_be_server_line(b: &[u8]) -> bool {
    let b_text = b.strip_suffix(b"\r").unwrap_or(b);
    b.len() < 1024 && (b"* ".starts_with(&b[..b.len().min(2)])) && text::is_text(b_text)
}

/// Whether an unfinished first line could still become a tagged command.
fn could_be_command(b: &[u8]) -> bool {
    let (tag, _) = word(b);
    b.len() < 256 && !tag.is_empty() && tag.iter().all(|&c| is_tag_char(c))
}

impl Detector for Imap {
    fn name(&self) -> &'static str {
        "imap"
    }

    fn protocol(&self) -> &'static str {
        "imap"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let tc_line = text::first_line(p.tc);
        let greet = tc_line.and_then(greeting);
        let tc_ok = match tc_line {
            _ if p.tc.is_empty() => true,
            None => could_be_server_line(p.tc),
            Some(l) => greet.is_some() || untagged(l) || tagged_reply(l).is_some(),
        };
        let ts_line = text::first_line(p.ts);
        let first_cmd = ts_line.and_then(command);
        let ts_ok = match ts_line {
            None => p.ts.is_empty() || could_be_command(p.ts),
            Some(_) => first_cmd.is_some(),
        };
        if !tc_ok || !ts_ok {
            return Probe::NotMine;
        }
        let server_says = greet.is_some() || tc_line.is_some_and(untagged);
        if !server_says && first_cmd.is_none() {
            // Nothing decisive yet: a greeting or a command may still complete.
            return if p.last_chance {
                Probe::NotMine
            } else {
                Probe::NeedMore
            };
        }
        // Follow the client until it either asks for STARTTLS or goes past the commands
        // that precede that choice.
        let mut upgrade = None;
        let mut decided = false;
        for (line, end) in text::lines_with_end(p.ts) {
            match command(line) {
                Some((tag, "STARTTLS")) => {
                    upgrade = Some((tag, end));
                    break;
                }
                Some((_, v)) if PRE_TLS.contains(&v) => {}
                _ => {
                    decided = true;
                    break;
                }
            }
        }
        if upgrade.is_none() && !decided && !p.last_chance {
            return Probe::NeedMore;
        }
        let mut evidence = match greet {
            Some(g) => format!("IMAP greeting * {g}"),
            None if first_cmd.is_some() => "IMAP tagged client commands".to_string(),
            None => "IMAP untagged server responses".to_string(),
        };
        if let Some((_, v)) = first_cmd {
            evidence.push_str(&format!(", {v}"));
        }
        let mut fields = Vec::new();
        if let Some((tag, end)) = upgrade {
            // The server's tagged answer to STARTTLS, and what follows it.
            let reply = text::lines_with_end(p.tc)
                .find_map(|(l, e)| tagged_reply(l).filter(|(t, _)| *t == tag).map(|r| (r.1, e)));
            match reply {
                Some(("NO" | "BAD", _)) => evidence.push_str(", STARTTLS refused"),
                _ => {
                    let after = p.ts.get(end..).unwrap_or_default();
                    let tc_after = reply.and_then(|(_, e)| p.tc.get(e..)).unwrap_or_default();
                    if after.is_empty() && tc_after.is_empty() && !p.last_chance {
                        return Probe::NeedMore;
                    }
                    if super::tls::upgrade_into_tls(
                        "STARTTLS",
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
            }
        }
        if greet.is_some() && tc_line.is_some_and(|l| text::contains_ci(l, EXCHANGE_GREETING)) {
            evidence.push_str(", Microsoft Exchange IMAP4");
            fields.push((
                "exwatch.exchange_markers",
                "Microsoft Exchange IMAP4 greeting".to_string(),
            ));
        }
        Probe::Mine(Detection {
            reversed: false,
            protocol: "imap",
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

    // imap-143.pcap (Dovecot with the Exchange greeting, python imaplib).
    const GREETING: &[u8] = b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN AUTH=LOGIN] The Microsoft Exchange IMAP4 service is ready.\r\n";
    const CAPA_REPLY: &[u8] = b"* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN AUTH=LOGIN\r\nGKDF0 OK Pre-login capabilities listed, post-login capabilities have more.\r\n";
    const LOGIN: &[u8] = b"GKDF0 CAPABILITY\r\nGKDF1 LOGIN alice \"exwatch-secret-pw-2\"\r\n";

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 143, 44276, last)
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    #[test]
    fn exchange_greeting_then_login_without_the_password() {
        let tc = cat(&[GREETING, CAPA_REPLY]);
        let Probe::Mine(d) = Imap.probe(&view(LOGIN, &tc, false)) else {
            panic!()
        };
        assert_eq!(
            d.evidence,
            "IMAP greeting * OK, CAPABILITY, Microsoft Exchange IMAP4"
        );
        assert_eq!(
            field(&d, "exwatch.exchange_markers"),
            Some("Microsoft Exchange IMAP4 greeting")
        );
        let all = format!("{d:?}");
        assert!(!all.contains("exwatch-secret-pw-2") && !all.contains("alice"));
    }

    #[test]
    fn starttls_followed_into_tls() {
        // imap-starttls-143.pcap (curl): CAPABILITY, STARTTLS, tagged OK, ClientHello.
        let ts = b"A001 CAPABILITY\r\nA002 STARTTLS\r\n";
        let tc = cat(&[
            GREETING,
            b"A001 OK done\r\nA002 OK Begin TLS negotiation now.\r\n",
        ]);
        assert!(matches!(Imap.probe(&view(ts, &tc, false)), Probe::NeedMore));
        let d = super::super::tls::tests::assert_follows_upgrade(
            &Imap,
            view,
            ts,
            &tc,
            "STARTTLS upgrade",
        );
        assert_eq!(field(&d, "exwatch.tls_upgrade"), Some("STARTTLS"));
        let refused = cat(&[GREETING, b"A002 NO not now\r\n"]);
        let Probe::Mine(d) = Imap.probe(&view(b"A002 STARTTLS\r\n", &refused, false)) else {
            panic!()
        };
        assert!(d.evidence.contains("STARTTLS refused"));
        assert_eq!(field(&d, "exwatch.tls_upgrade"), None);
    }

    #[test]
    fn split_greeting_and_waiting_for_the_client() {
        for cut in 1..GREETING.len() {
            assert!(
                matches!(
                    Imap.probe(&view(b"", &GREETING[..cut], false)),
                    Probe::NeedMore
                ),
                "cut {cut}"
            );
        }
        assert!(matches!(
            Imap.probe(&view(b"", GREETING, false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Imap.probe(&view(b"GKDF0 CAPAB", GREETING, false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Imap.probe(&view(b"", GREETING, true)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn mid_stream_commands_and_responses() {
        // shared imap.pcap, seen from the client's LIST on.
        let Probe::Mine(d) = Imap.probe(&view(b"C00002 LIST \"\" \"*\"\r\n", b"", false)) else {
            panic!()
        };
        assert_eq!(d.evidence, "IMAP tagged client commands, LIST");
        assert!(matches!(
            Imap.probe(&view(b"", b"* 1 FETCH (FLAGS (\\Seen))\r\n", false)),
            Probe::NeedMore | Probe::Mine(_)
        ));
        assert!(matches!(
            Imap.probe(&view(b"", b"* 1 FETCH (FLAGS (\\Seen))\r\n", true)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn truncated_and_hostile() {
        crate::classify::detector::testing::assert_truncated(
            &Imap,
            view,
            &[
                (&b""[..], &b"* O"[..]),
                (b"", b"*"),
                (b"A1", b""),
                (b"\r\n", b"* OK\r\n"),
                (b"A1 LOGIN", b"\xff\xfe"),
            ],
        );
        crate::classify::detector::testing::probe_hostile(
            &Imap,
            view,
            b"* OK A1 STARTTLS LOGIN\r\n\x16\xff",
            23,
            600,
        );
    }

    #[test]
    fn other_protocols_are_not_imap() {
        crate::classify::detector::testing::assert_not_mine(
            &Imap,
            view,
            &[
                (&b"EHLO a\r\n"[..], &b"220 mx ESMTP\r\n"[..]),
                (b"USER alice\r\n", b"+OK POP3 ready\r\n"),
                (b"GET / HTTP/1.1\r\n", b""),
                (b"NICK jdoe\r\n", b""),
                (b"", b"220 FTP ready\r\n"),
                (b"\x16\x03\x01\x02\x00", b""),
            ],
        );
    }
}
