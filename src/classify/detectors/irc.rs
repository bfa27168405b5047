//! IRC: client registration (`NICK`, `USER` with its four parameters, `CAP LS`, `PASS`
//! followed by those) or server lines (`:server 001`, `:server NOTICE ...`, `NOTICE AUTH`).
//! Nicknames, user names and passwords are never recorded.

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Irc;

/// What a client registration line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    Nick,
    User,
    Cap,
    /// Also FTP's and POP3's: only counts with one of the others.
    Pass,
}

fn params(line: &[u8]) -> (usize, bool) {
    // Middle parameters before a trailing ":..." one.
    let (middle, trailing) = match line.windows(2).position(|w| w == b" :") {
        Some(i) => (&line[..i], true),
        None => (line, false),
    };
    (
        middle
            .split(|&c| c == b' ')
            .filter(|t| !t.is_empty())
            .count(),
        trailing,
    )
}

fn registration(line: &[u8]) -> Option<Reg> {
    if !text::is_text(line) && !line.starts_with(b"PASS ") {
        return None;
    }
    let (n, trailing) = params(line);
    let verb = line.split(|&c| c == b' ').next()?;
    // `n` counts the verb too.
    if verb.eq_ignore_ascii_case(b"NICK") {
        // NICK <nickname> [hopcount], or NICK :<nickname>
        let ok = if trailing { n == 1 } else { n == 2 || n == 3 };
        return ok.then_some(Reg::Nick);
    }
    if verb.eq_ignore_ascii_case(b"USER") {
        // USER <user> <mode> <unused> :<realname> (the colon may be missing for a one-word
        // real name). FTP's and POP3's USER have one argument.
        let ok = (n == 4 && trailing) || (n == 5 && !trailing);
        return ok.then_some(Reg::User);
    }
    if verb.eq_ignore_ascii_case(b"CAP") {
        let sub = line.split(|&c| c == b' ').nth(1).unwrap_or_default();
        return [&b"LS"[..], b"REQ", b"END", b"LIST"]
            .iter()
            .any(|s| sub.eq_ignore_ascii_case(s))
            .then_some(Reg::Cap);
    }
    if verb.eq_ignore_ascii_case(b"PASS") {
        return Some(Reg::Pass);
    }
    None
}

/// A server line: `:prefix NOTICE|PRIVMSG|PING|<numeric> ...`, `NOTICE AUTH :...`, `PING :x`.
fn server_line(line: &[u8]) -> Option<&'static str> {
    if !text::is_text(line) {
        return None;
    }
    if text::starts_with_ci(line, b"NOTICE AUTH ") || text::starts_with_ci(line, b"NOTICE * :") {
        return Some("NOTICE AUTH");
    }
    if line.starts_with(b"PING :") || line.starts_with(b"ERROR :") {
        return Some("PING");
    }
    let rest = line.strip_prefix(b":")?;
    let mut it = rest.split(|&c| c == b' ');
    let prefix = it.next()?;
    if prefix.is_empty() || prefix.len() > 255 {
        return None;
    }
    let cmd = it.next()?;
    let target = it.next()?;
    if target.is_empty() {
        return None;
    }
    if cmd.len() == 3 && cmd.iter().all(u8::is_ascii_digit) {
        return Some("numeric reply");
    }
    ["NOTICE", "PRIVMSG", "PING", "MODE", "JOIN", "CAP"]
        .into_iter()
        .find(|c| cmd == c.as_bytes())
}

/// Whether an unfinished first line can still become IRC.
fn could_be(b: &[u8], server: bool) -> bool {
    let w = b.split(|&c| c == b' ').next().unwrap_or(b);
    let words: &[&[u8]] = if server {
        &[b"NOTICE", b"PING", b"ERROR"]
    } else {
        &[b"NICK", b"USER", b"CAP", b"PASS"]
    };
    b.len() < 512
        && ((server && b[0] == b':')
            || words.iter().any(|k| {
                if w.len() < b.len() {
                    w.eq_ignore_ascii_case(k)
                } else {
                    w.len() <= k.len() && w.eq_ignore_ascii_case(&k[..w.len()])
                }
            }))
}

impl Detector for Irc {
    fn name(&self) -> &'static str {
        "irc"
    }

    fn protocol(&self) -> &'static str {
        "irc"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let mut client: Vec<Reg> = Vec::new();
        let mut ts_bad = false;
        // IRCv3 `STARTTLS` (answered by numeric 670): TLS follows the line.
        let mut upgrade = None;
        for (line, end) in text::lines_with_end(p.ts)
            .filter(|(l, _)| !l.is_empty())
            .take(4)
        {
            if line.eq_ignore_ascii_case(b"STARTTLS") {
                upgrade = Some(end);
                break;
            }
            match registration(line) {
                Some(r) => client.push(r),
                None => {
                    ts_bad = client.is_empty();
                    break;
                }
            }
        }
        if client.is_empty()
            && upgrade.is_none()
            && text::first_line(p.ts).is_none()
            && !p.ts.is_empty()
        {
            ts_bad = !could_be(p.ts, false);
        }
        let server = text::first_line(p.tc).and_then(server_line);
        let tc_bad = match text::first_line(p.tc) {
            Some(_) => server.is_none(),
            None => !p.tc.is_empty() && !could_be(p.tc, true),
        };
        if ts_bad || tc_bad {
            return Probe::NotMine;
        }
        let decisive = client.iter().find(|r| **r != Reg::Pass).copied();
        if decisive.is_none() && server.is_none() {
            return if p.last_chance {
                Probe::NotMine
            } else {
                Probe::NeedMore
            };
        }
        let mut parts = Vec::new();
        if let Some(r) = decisive {
            parts.push(match r {
                Reg::Nick => "client NICK",
                Reg::User => "client USER",
                Reg::Cap => "client CAP",
                Reg::Pass => unreachable!(),
            });
        }
        if let Some(s) = server {
            parts.push(match s {
                "numeric reply" => "server numeric reply",
                "NOTICE AUTH" => "server NOTICE AUTH",
                "NOTICE" => "server NOTICE",
                _ => "server message",
            });
        }
        let mut evidence = format!("IRC {}", parts.join(", "));
        let mut fields = Vec::new();
        if let Some(end) = upgrade {
            let after = p.ts.get(end..).unwrap_or_default();
            let tc_after = super::tls::tls_after_lines(p.tc);
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
        Probe::Mine(Detection {
            reversed: false,
            protocol: "irc",
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

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 6667, 58712, last)
    }

    #[test]
    fn ngircd_registration() {
        // irc.pcap (ngircd, Python client).
        let ts = b"NICK jdoe\r\nUSER jdoe 0 * :John Doe\r\n";
        let tc = b":irc.contoso.test 001 jdoe :Welcome to the Internet Relay Network jdoe!~jdoe@198.51.100.20\r\n";
        let Probe::Mine(d) = Irc.probe(&view(ts, tc, false)) else {
            panic!()
        };
        assert_eq!(d.evidence, "IRC client NICK, server numeric reply");
        assert!(!format!("{d:?}").contains("jdoe"));
    }

    #[test]
    fn freenode_user_first_and_notices() {
        // shared irc.pcap (port 8000): USER before NICK, then the server's notices.
        let ts = b"USER xxxxx +iw xxxxx :Xxxxxx Xxxx\r\nNICK molochtest\r\n";
        let tc = b":card.freenode.net NOTICE * :*** Looking up your hostname...\r\n";
        let Probe::Mine(d) = Irc.probe(&view(ts, tc, false)) else {
            panic!()
        };
        assert_eq!(d.evidence, "IRC client USER, server NOTICE");
        assert!(matches!(Irc.probe(&view(b"", tc, false)), Probe::Mine(_)));
    }

    #[test]
    fn pass_alone_waits_and_is_never_recorded() {
        assert!(matches!(
            Irc.probe(&view(b"PASS s3cret\r\n", b"", false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Irc.probe(&view(b"PASS s3cret\r\n", b"", true)),
            Probe::NotMine
        ));
        let Probe::Mine(d) = Irc.probe(&view(b"PASS s3cret\r\nCAP LS 302\r\n", b"", false)) else {
            panic!()
        };
        assert!(!format!("{d:?}").contains("s3cret"));
    }

    #[test]
    fn split_lines_need_more() {
        let ts = b"NICK jdoe\r\n";
        for cut in 1..ts.len() - 1 {
            assert!(
                matches!(Irc.probe(&view(&ts[..cut], b"", false)), Probe::NeedMore),
                "cut {cut}"
            );
        }
        assert!(matches!(Irc.probe(&view(ts, b"", false)), Probe::Mine(_)));
        assert!(matches!(Irc.probe(&view(b"NI", b"", true)), Probe::NotMine));
    }

    #[test]
    fn starttls_followed_into_tls() {
        // IRCv3 tls extension: CAP LS, STARTTLS, numeric 670, then the handshake.
        let tc = b":irc.contoso.test CAP * LS :tls multi-prefix\r\n:irc.contoso.test 670 * :STARTTLS successful, go ahead with TLS handshake\r\n";
        let d = super::super::tls::tests::assert_follows_upgrade(
            &Irc,
            view,
            b"CAP LS 302\r\nSTARTTLS\r\n",
            tc,
            "IRC client CAP, server message, STARTTLS upgrade",
        );
        assert_eq!(
            d.fields
                .iter()
                .find(|f| f.0 == "exwatch.tls_upgrade")
                .map(|f| f.1.as_str()),
            Some("STARTTLS")
        );
        // A client that upgrades first thing.
        assert!(matches!(
            Irc.probe(&view(b"STARTTLS\r\n", b"", false)),
            Probe::NeedMore
        ));
    }

    #[test]
    fn hostile_bytes() {
        for (ts, tc) in [
            (&b"\r\n"[..], &b""[..]),
            (b"", b": \r\n"),
            (b"", b":\r\n"),
            (b"USER\r\n", b""),
            (b"NICK \xff\r\n", b""),
        ] {
            assert!(
                matches!(Irc.probe(&view(ts, tc, true)), Probe::NotMine),
                "{ts:?} {tc:?}"
            );
        }
        crate::classify::detector::testing::hostile_split(
            b"NICK USER :a 001 NOTICE PASS\r\n\xff",
            37,
            600,
            |ts, tc, last| {
                let _ = Irc.probe(&view(ts, tc, last));
            },
        );
    }

    #[test]
    fn ftp_pop3_smtp_are_not_irc() {
        for (ts, tc) in [
            (&b"USER anonymous\r\n"[..], &b"220 FTP server ready\r\n"[..]),
            (b"USER alice\r\nPASS x\r\n", b"+OK\r\n"),
            (b"EHLO a\r\n", b"220 mx ESMTP\r\n"),
            (b"PASS x\r\n", b"230 ok\r\n"),
        ] {
            assert!(
                matches!(Irc.probe(&view(ts, tc, false)), Probe::NotMine),
                "{ts:?} {tc:?}"
            );
        }
    }
}
