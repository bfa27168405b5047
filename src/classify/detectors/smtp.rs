//! SMTP: greeting, EHLO/HELO and replies; Exchange markers; STARTTLS / X-ANONYMOUSTLS upgrades.

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

/// EHLO keywords and banner text that only Exchange (or its peers) send.
const EXCHANGE_MARKERS: &[&str] = &["X-ANONYMOUSTLS", "X-EXPS", "XEXCH50", "XRDST", "X-LSA-2"];
const EXCHANGE_BANNER: &[u8] = b"Microsoft ESMTP MAIL Service";

pub struct Smtp;

fn is_reply(line: &[u8], code: &[u8]) -> bool {
    line.len() >= 3 && &line[..3] == code && matches!(line.get(3), None | Some(b' ') | Some(b'-'))
}

fn is_greeting(tc: &[u8]) -> bool {
    text::first_line(tc).is_some_and(|l| is_reply(l, b"220") && text::is_text(l))
}

fn command(line: &[u8]) -> Option<&'static str> {
    const VERBS: &[&str] = &[
        "EHLO",
        "HELO",
        "MAIL FROM:",
        "RCPT TO:",
        "STARTTLS",
        "X-ANONYMOUSTLS",
        "AUTH ",
        "X-EXPS ",
        "BDAT ",
        "DATA",
        "QUIT",
        "RSET",
        "NOOP",
        "XEXCH50",
    ];
    VERBS
        .iter()
        .find(|v| text::starts_with_ci(line, v.as_bytes()))
        .copied()
}

impl Detector for Smtp {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn protocol(&self) -> &'static str {
        "smtp"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        // Cheap refusals first: SMTP clients send letters, servers send reply codes. Binary
        // streams (TLS, RPC) must not be rescanned for lines on every packet.
        if p.ts.first().is_some_and(|c| !c.is_ascii_alphabetic())
            || p.tc.first().is_some_and(|c| !c.is_ascii_digit())
        {
            return Probe::NotMine;
        }
        let greeting = is_greeting(p.tc);
        let first_cmd = text::first_line(p.ts).and_then(command);
        let hello = matches!(first_cmd, Some("EHLO") | Some("HELO"));
        // The greeting's first segment may end anywhere before its line end (a segment of
        // "220 " alone, or cut mid-banner): wait for the rest of the line.
        let partial_greeting = p.tc.len() < 512 && text::first_line(p.tc).is_none() && {
            let n = p.tc.len().min(4);
            b"220 "[..n] == p.tc[..n] || b"220-"[..n] == p.tc[..n]
        };
        if !(greeting || p.tc.is_empty() || partial_greeting) {
            // The server spoke first and did not greet like SMTP; a mid-stream start may
            // still show client commands.
            if first_cmd.is_none() {
                return Probe::NotMine;
            }
        }
        if !p.ts.is_empty() && first_cmd.is_none() && text::first_line(p.ts).is_some() {
            return Probe::NotMine;
        }
        if !greeting && first_cmd.is_none() {
            return if p.last_chance {
                Probe::NotMine
            } else {
                Probe::NeedMore
            };
        }
        // FTP also greets with 220 and has AUTH, QUIT, NOOP: after a greeting only EHLO/HELO,
        // or a banner that says SMTP, make it SMTP.
        let banner_smtp = text::first_line(p.tc).is_some_and(|l| text::contains_ci(l, b"SMTP"));
        if greeting && first_cmd.is_some() && !hello && !banner_smtp {
            return Probe::NotMine;
        }
        // A 220 greeting alone is also FTP's, and the EHLO reply carries the Exchange
        // markers: wait for the client's first command unless nothing more will come.
        if greeting && first_cmd.is_none() {
            if !p.last_chance {
                return Probe::NeedMore;
            }
            let banner = text::first_line(p.tc).unwrap_or_default();
            if !text::contains_ci(banner, b"SMTP") {
                return Probe::NotMine;
            }
        }
        let mut markers: Vec<&str> = Vec::new();
        let banner_exchange =
            text::first_line(p.tc).is_some_and(|l| text::contains_ci(l, EXCHANGE_BANNER));
        if banner_exchange {
            markers.push("Microsoft ESMTP MAIL Service banner");
        }
        let mut ehlo_done = false;
        for line in text::lines(p.tc).skip(1) {
            if line.len() >= 4 && &line[..3] == b"250" {
                let kw = &line[4..];
                for m in EXCHANGE_MARKERS {
                    if text::starts_with_ci(kw, m.as_bytes()) && !markers.contains(m) {
                        markers.push(m);
                    }
                }
                if line[3] == b' ' {
                    ehlo_done = true;
                }
            }
        }
        let mut upgrade = None;
        let mut after_upgrade = 0usize;
        let mut consumed = 0usize;
        for raw in text::split_lf(p.ts) {
            consumed += raw.len();
            let line = raw.strip_suffix(b"\n").unwrap_or(raw);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            // What `command` would say for these two (no verb listed before them shares
            // their first letter), without trying the whole list on every line of a DATA
            // body, on every packet.
            for verb in ["STARTTLS", "X-ANONYMOUSTLS"] {
                if text::starts_with_ci(line, verb.as_bytes()) {
                    upgrade = Some(verb);
                }
            }
            if upgrade.is_some() {
                after_upgrade = consumed;
                break;
            }
        }
        if hello && !ehlo_done && !p.last_chance && upgrade.is_none() {
            return Probe::NeedMore;
        }
        // The server offered an upgrade: the client's next command says whether it happens.
        let offered = text::lines(p.tc).any(|l| {
            l.len() > 4
                && &l[..3] == b"250"
                && (text::starts_with_ci(&l[4..], b"STARTTLS")
                    || text::starts_with_ci(&l[4..], b"X-ANONYMOUSTLS"))
        });
        // Fewer than two client commands (lazily: the stream may hold a long DATA body).
        let one_command = || text::lines(p.ts).nth(1).is_none();
        if hello && ehlo_done && offered && upgrade.is_none() && !p.last_chance && one_command() {
            return Probe::NeedMore;
        }
        let mut fields = Vec::new();
        let mut evidence = String::from(if greeting {
            "SMTP 220 greeting"
        } else {
            "SMTP client commands"
        });
        if let Some(c) = first_cmd.filter(|_| hello) {
            evidence.push_str(&format!(", {c}"));
        }
        if let Some(u) = upgrade {
            // The TLS handshake follows the upgrade command in the client's stream.
            let tls_bytes = &p.ts[after_upgrade.min(p.ts.len())..];
            if tls_bytes.is_empty() && !p.last_chance {
                return Probe::NeedMore;
            }
            evidence.push_str(&format!(", {u} upgrade"));
            if tls_bytes.first() == Some(&0x16) {
                // Hellos split over segments: wait for the rest.
                let tc_tls = super::tls::tls_after_lines(p.tc);
                let Some((tls_fields, _)) =
                    super::tls::follow_upgrade(tls_bytes, tc_tls, p.last_chance)
                else {
                    return Probe::NeedMore;
                };
                evidence.push_str(" into TLS");
                fields.extend(tls_fields);
            }
            fields.push(("exwatch.tls_upgrade", u.to_string()));
        }
        if !markers.is_empty() {
            evidence.push_str(&format!(", Exchange markers: {}", markers.join(" ")));
            fields.extend(
                markers
                    .iter()
                    .map(|m| ("exwatch.exchange_markers", m.to_string())),
            );
        }
        Probe::Mine(Detection {
            reversed: false,
            protocol: "smtp",
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
    use crate::classify::detector::Payloads;

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 25, 50000, last)
    }

    const EXCH_TC: &[u8] = b"220 mail.contoso.test Microsoft ESMTP MAIL Service ready\r\n250-mail.contoso.test Hello\r\n250-SIZE 37748736\r\n250-X-ANONYMOUSTLS\r\n250-X-EXPS GSSAPI NTLM\r\n250-XEXCH50\r\n250 XRDST\r\n";

    #[test]
    fn exchange_greeting_and_markers() {
        assert!(
            matches!(
                Smtp.probe(&view(b"EHLO edge.contoso.test\r\n", EXCH_TC, false)),
                Probe::NeedMore
            ),
            "X-ANONYMOUSTLS offered: wait for the client's next command"
        );
        let ts = b"EHLO edge.contoso.test\r\nMAIL FROM:<a@contoso.test>\r\n";
        let Probe::Mine(d) = Smtp.probe(&view(ts, EXCH_TC, false)) else {
            panic!("not smtp")
        };
        assert!(d.evidence.contains("X-ANONYMOUSTLS"), "{}", d.evidence);
        assert!(d.evidence.contains("banner"));
        let m: Vec<&str> = d
            .fields
            .iter()
            .filter(|f| f.0 == "exwatch.exchange_markers")
            .map(|f| f.1.as_str())
            .collect();
        assert_eq!(
            m,
            [
                "Microsoft ESMTP MAIL Service banner",
                "X-ANONYMOUSTLS",
                "X-EXPS",
                "XEXCH50",
                "XRDST"
            ]
        );
    }

    #[test]
    fn split_across_segments_needs_more() {
        // Every prefix of a greeting waits for its line end (a "220 " segment on its own).
        let greeting = b"220 mail.contoso.test ESMTP\r\n";
        for n in 1..greeting.len() {
            assert!(
                matches!(
                    Smtp.probe(&view(b"", &greeting[..n], false)),
                    Probe::NeedMore
                ),
                "{n}"
            );
        }
        assert!(matches!(
            Smtp.probe(&view(b"", b"221 x", false)),
            Probe::NotMine
        ));
        assert!(matches!(
            Smtp.probe(&view(b"", b"220 mx ESMTP\r\n", false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Smtp.probe(&view(b"EHLO a\r\n", b"220 mx ESMTP\r\n250-mx\r\n", false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Smtp.probe(&view(
                b"EHLO a\r\n",
                b"220 mx ESMTP\r\n250-mx\r\n250 OK\r\n",
                false
            )),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn starttls_is_followed_into_tls() {
        let ts = b"EHLO a\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello";
        // A made-up record: no ClientHello parses, so only the last chance decides.
        let Probe::Mine(d) = Smtp.probe(&view(ts, b"220 mx ESMTP\r\n250 OK\r\n220 go\r\n", true))
        else {
            panic!()
        };
        assert!(
            d.evidence.contains("STARTTLS upgrade into TLS"),
            "{}",
            d.evidence
        );
        let wait = Smtp.probe(&view(
            b"EHLO a\r\nSTARTTLS\r\n",
            b"220 mx ESMTP\r\n250 OK\r\n",
            false,
        ));
        assert!(matches!(wait, Probe::NeedMore));
    }

    #[test]
    fn ftp_and_http_are_not_smtp() {
        assert!(matches!(
            Smtp.probe(&view(
                b"USER anonymous\r\n",
                b"220 FTP server ready\r\n",
                false
            )),
            Probe::NotMine
        ));
        assert!(matches!(
            Smtp.probe(&view(b"AUTH TLS\r\n", b"220 (vsFTPd 3.0.3)\r\n", false)),
            Probe::NotMine
        ));
        assert!(matches!(
            Smtp.probe(&view(b"GET / HTTP/1.1\r\n", b"", false)),
            Probe::NotMine
        ));
        assert!(matches!(
            Smtp.probe(&view(b"", b"220 FTP server ready\r\n", true)),
            Probe::NotMine
        ));
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        for ts in [&b"\xff\xfe\r\n"[..], b"EHLO", b"\n\n\n", b"STARTTLS\r\n"] {
            for tc in [&b"220"[..], b"220-\r\n250", b"\x00\x00", b"250 \r\n"] {
                let _ = Smtp.probe(&view(ts, tc, true));
                let _ = Smtp.probe(&view(ts, tc, false));
            }
        }
    }
}
