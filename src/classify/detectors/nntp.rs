//! NNTP: 200/201 greeting and reader or transit commands; STARTTLS followed into TLS.
//! (SMTP and FTP greet with 220, NNTP with 200 "posting allowed" or 201 "no posting".)

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Nntp;

const VERBS: &[&str] = &[
    "ARTICLE",
    "AUTHINFO",
    "BODY",
    "CAPABILITIES",
    "CHECK",
    "COMPRESS",
    "DATE",
    "GROUP",
    "HDR",
    "HEAD",
    "HELP",
    "IHAVE",
    "LAST",
    "LIST",
    "LISTGROUP",
    "MODE",
    "NEWGROUPS",
    "NEWNEWS",
    "NEXT",
    "OVER",
    "POST",
    "QUIT",
    "SLAVE",
    "STARTTLS",
    "STAT",
    "TAKETHIS",
    "XGTITLE",
    "XHDR",
    "XOVER",
    "XPAT",
];

/// Verbs no other protocol here has: enough on their own for a mid-stream start.
const UNIQUE: &[&str] = &[
    "ARTICLE",
    "AUTHINFO",
    "CAPABILITIES",
    "GROUP",
    "IHAVE",
    "LISTGROUP",
    "NEWGROUPS",
    "NEWNEWS",
    "TAKETHIS",
    "XGTITLE",
    "XOVER",
    "XHDR",
];

/// Commands a client sends before choosing STARTTLS.
const PRE_TLS: &[&str] = &["CAPABILITIES", "MODE"];

fn command(line: &[u8]) -> Option<&'static str> {
    let end = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
    let verb = &line[..end];
    let v = VERBS
        .iter()
        .find(|v| verb.eq_ignore_ascii_case(v.as_bytes()))
        .copied()?;
    // MODE takes READER or STREAM (RFC 3977 5.3, RFC 4644 2.3).
    if v == "MODE" {
        let arg = line.get(end + 1..).unwrap_or_default();
        if !arg.eq_ignore_ascii_case(b"READER") && !arg.eq_ignore_ascii_case(b"STREAM") {
            return None;
        }
    }
    Some(v)
}

/// `200 ...` or `201 ...`.
fn greeting(line: &[u8]) -> Option<&[u8]> {
    let code = line.get(..3)?;
    (matches!(code, b"200" | b"201")
        && matches!(line.get(3), None | Some(b' '))
        && text::is_text(line))
    .then_some(code)
}

/// A three-digit reply line, as a mid-stream capture's first server line is.
fn reply(line: &[u8]) -> bool {
    line.len() >= 3
        && line[..3].iter().all(u8::is_ascii_digit)
        && matches!(line.get(3), None | Some(b' '))
}

fn could_be_greeting(b: &[u8]) -> bool {
    b.len() < 1024
        && match b.len() {
            1 => b[0] == b'2',
            2 => b == b"20",
            _ => matches!(&b[..3], b"200" | b"201") && matches!(b.get(3), None | Some(b' ')),
        }
}

fn could_be_command(b: &[u8]) -> bool {
    text::could_be_verb(b, VERBS, 512)
}

impl Detector for Nntp {
    fn name(&self) -> &'static str {
        "nntp"
    }

    fn protocol(&self) -> &'static str {
        "nntp"
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
        let greet = tc_line.and_then(greeting);
        let tc_ok = match tc_line {
            _ if p.tc.is_empty() => true,
            None => could_be_greeting(p.tc) || unique,
            Some(l) => greet.is_some() || (unique && reply(l)),
        };
        if !ts_ok || !tc_ok {
            return Probe::NotMine;
        }
        let ok = match (greet, first_cmd) {
            (Some(_), Some(_)) => true,
            // A 200 greeting alone is not much: at the end, accept it when it says news.
            (Some(_), None) => {
                p.last_chance
                    && tc_line.is_some_and(|l| {
                        text::contains_ci(l, b"NNTP") || text::contains_ci(l, b"news")
                    })
            }
            (None, Some(_)) => unique,
            (None, None) => false,
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
                Some("STARTTLS") => {
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
        let mut evidence = match greet {
            Some(code) => format!("NNTP {} greeting", String::from_utf8_lossy(code)),
            None => "NNTP client commands".to_string(),
        };
        if let Some(v) = first_cmd {
            evidence.push_str(&format!(", {v}"));
        }
        let mut fields = Vec::new();
        if let Some(end) = upgrade {
            let after = p.ts.get(end..).unwrap_or_default();
            if after.is_empty() && !p.last_chance {
                return Probe::NeedMore;
            }
            let tc_after = super::tls::tls_after_lines(p.tc);
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
        Probe::Mine(Detection {
            reversed: false,
            protocol: "nntp",
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

    // nntp.pcap (INN 2.7.1, python nntplib).
    const GREETING: &[u8] =
        b"200 news.contoso.test InterNetNews NNRP server INN 2.7.1 ready (posting ok)\r\n";

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 119, 48726, last)
    }

    #[test]
    fn inn_greeting_and_capabilities() {
        let tc = [GREETING, b"101 Capability list:\r\n"].concat();
        assert!(matches!(
            Nntp.probe(&view(b"CAPABILITIES\r\n", &tc, false)),
            Probe::NeedMore
        ));
        let Probe::Mine(d) = Nntp.probe(&view(b"CAPABILITIES\r\nLIST\r\n", &tc, false)) else {
            panic!()
        };
        assert_eq!(d.evidence, "NNTP 200 greeting, CAPABILITIES");
        assert!(d.fields.is_empty());
    }

    #[test]
    fn starttls_followed_into_tls() {
        let tc = [GREETING, b"382 Continue with TLS negotiation\r\n"].concat();
        super::super::tls::tests::assert_follows_upgrade(
            &Nntp,
            view,
            b"CAPABILITIES\r\nSTARTTLS\r\n",
            &tc,
            "STARTTLS upgrade",
        );
    }

    #[test]
    fn split_greeting_and_greeting_alone() {
        for cut in 1..GREETING.len() {
            assert!(
                matches!(
                    Nntp.probe(&view(b"", &GREETING[..cut], false)),
                    Probe::NeedMore
                ),
                "cut {cut}"
            );
        }
        assert!(matches!(
            Nntp.probe(&view(b"", GREETING, true)),
            Probe::Mine(_)
        ));
        assert!(matches!(
            Nntp.probe(&view(b"", b"200 ready\r\n", true)),
            Probe::NotMine
        ));
    }

    #[test]
    fn mid_stream_group() {
        let Probe::Mine(d) = Nntp.probe(&view(
            b"GROUP contoso.public.folders\r\n",
            b"211 1 1 1 contoso.public.folders\r\n",
            false,
        )) else {
            panic!()
        };
        assert_eq!(d.evidence, "NNTP client commands, GROUP");
    }

    #[test]
    fn truncated_and_hostile() {
        crate::classify::detector::testing::assert_truncated(
            &Nntp,
            view,
            &[
                (&b"GRO"[..], &b"20"[..]),
                (b"", b"2"),
                (b"\r\n", b"200\r\n"),
            ],
        );
        crate::classify::detector::testing::probe_hostile(
            &Nntp,
            view,
            b"200 GROUP MODE READER STARTTLS\r\n\x16\xff",
            31,
            600,
        );
    }

    #[test]
    fn smtp_and_ftp_are_not_nntp() {
        crate::classify::detector::testing::assert_not_mine(
            &Nntp,
            view,
            &[
                (&b"EHLO a\r\n"[..], &b"220 mx ESMTP\r\n"[..]),
                (b"USER anonymous\r\n", b"220 FTP server ready\r\n"),
                (b"LIST\r\n", b"220 FTP server ready\r\n"),
                (b"QUIT\r\n", b"+OK POP3\r\n"),
            ],
        );
    }
}
