//! FTP control connections: 220 greeting and FTP-only client commands (USER, AUTH TLS, FEAT,
//! SYST...), or 331/230/234 replies; AUTH TLS/SSL followed into TLS. User names and passwords
//! are never recorded.

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Ftp;

/// Commands only FTP sends first (SMTP opens with EHLO/HELO, POP3 greets with +OK). USER is
/// POP3's too, but POP3 never greets with 220.
const FTP_FIRST: &[&str] = &[
    "USER", "AUTH", "FEAT", "SYST", "OPTS", "CLNT", "HOST", "PBSZ", "PROT", "PASV", "EPSV", "PORT",
    "EPRT", "TYPE", "PWD", "XPWD", "CWD", "CDUP", "MLSD", "MLST", "SIZE", "MDTM", "STOR", "NLST",
    "MKD", "RMD", "RNFR", "ABOR", "SITE", "ACCT", "REST",
];

/// Commands FTP shares with SMTP or POP3: they never decide alone.
const SHARED: &[&str] = &[
    "QUIT", "NOOP", "HELP", "STAT", "LIST", "RETR", "DELE", "PASS",
];

/// Commands that never follow USER in the same TCP connection unless it is FTP: the ones
/// that leave no doubt even mid-stream.
const MID_STREAM: &[&str] = &[
    "FEAT", "SYST", "OPTS", "CLNT", "PBSZ", "PROT", "PASV", "EPSV", "PORT", "EPRT", "TYPE", "PWD",
    "XPWD", "CWD", "CDUP", "MLSD", "MLST", "SIZE", "MDTM", "STOR", "NLST", "MKD", "RMD", "RNFR",
];

fn command(line: &[u8]) -> Option<&'static str> {
    let end = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
    let verb = &line[..end];
    let v = FTP_FIRST
        .iter()
        .chain(SHARED)
        .find(|v| verb.eq_ignore_ascii_case(v.as_bytes()))
        .copied()?;
    // AUTH TLS / SSL / TLS-C / TLS-P (RFC 4217); SMTP's AUTH names SASL mechanisms.
    if v == "AUTH" {
        let arg = line.get(end + 1..).unwrap_or_default();
        if !text::starts_with_ci(arg, b"TLS") && !text::starts_with_ci(arg, b"SSL") {
            return None;
        }
    }
    Some(v)
}

/// The reply code of a line `ddd ` or `ddd-`.
fn reply_code(line: &[u8]) -> Option<&[u8]> {
    let code = line.get(..3)?;
    (code.iter().all(u8::is_ascii_digit) && matches!(line.get(3), None | Some(b' ' | b'-')))
        .then_some(code)
}

fn could_be_greeting(b: &[u8]) -> bool {
    let n = b.len().min(4);
    b.len() < 2048 && (b"220 "[..n] == b[..n] || b"220-"[..n] == b[..n])
}

fn could_be_command(b: &[u8]) -> bool {
    text::could_be_verb(b, FTP_FIRST.iter().chain(SHARED), 512)
}

impl Detector for Ftp {
    fn name(&self) -> &'static str {
        "ftp"
    }

    fn protocol(&self) -> &'static str {
        "ftp"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let ts_line = text::first_line(p.ts);
        let first_cmd = ts_line.and_then(command);
        let ts_ok = match ts_line {
            None => p.ts.is_empty() || could_be_command(p.ts),
            Some(_) => first_cmd.is_some(),
        };
        let tc_line = text::first_line(p.tc);
        let code = tc_line.and_then(reply_code);
        let greeting = code == Some(b"220") && tc_line.is_some_and(text::is_text);
        let tc_ok = match tc_line {
            _ if p.tc.is_empty() => true,
            None => could_be_greeting(p.tc),
            // Mid-stream the first server line is some other reply.
            Some(_) => code.is_some(),
        };
        if !ts_ok || !tc_ok {
            return Probe::NotMine;
        }
        let banner_ftp = greeting && tc_line.is_some_and(|l| text::contains_ci(l, b"FTP"));
        // The replies only FTP gives to its login and security commands.
        let ftp_reply = text::lines(p.tc).filter_map(reply_code).any(|c| {
            matches!(
                c,
                b"331" | b"332" | b"234" | b"215" | b"257" | b"227" | b"229"
            )
        });
        let ok = match (greeting, first_cmd) {
            (true, Some(v)) => FTP_FIRST.contains(&v) || banner_ftp || ftp_reply,
            (true, None) => p.last_chance && banner_ftp,
            (false, Some(v)) => {
                MID_STREAM.contains(&v) || (code.is_some() && ftp_reply && !SHARED.contains(&v))
            }
            (false, None) => false,
        };
        if !ok {
            // A command FTP shares (QUIT, NOOP, PASS...) may still be followed by an FTP-only
            // reply (331, 215...); a greeting alone by the client's first command.
            return if p.last_chance {
                Probe::NotMine
            } else {
                Probe::NeedMore
            };
        }
        let mut evidence = if greeting {
            "FTP 220 greeting".to_string()
        } else {
            "FTP client commands".to_string()
        };
        // AUTH is named by the upgrade below.
        if let Some(v) = first_cmd.filter(|v| *v != "AUTH") {
            evidence.push_str(&format!(", {v}"));
        }
        let mut fields = Vec::new();
        let upgrade = text::lines_with_end(p.ts).find_map(|(l, end)| {
            (command(l) == Some("AUTH")).then(|| {
                let kind = if text::contains_ci(l, b"SSL") {
                    "AUTH SSL"
                } else {
                    "AUTH TLS"
                };
                (kind, end)
            })
        });
        if let Some((kind, end)) = upgrade {
            let after = p.ts.get(end..).unwrap_or_default();
            if after.is_empty() && !p.last_chance {
                return Probe::NeedMore;
            }
            let tc_after = super::tls::tls_after_lines(p.tc);
            if super::tls::upgrade_into_tls(
                kind,
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
            protocol: "ftp",
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

    // ftp-start-tls.pcap: greeting, AUTH TLS, 234, then the ClientHello.
    const GREETING: &[u8] =
        b"220 \"Authorized users only. All activity may be monitored and reported\"\r\n";

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 21, 62092, last)
    }

    fn field<'a>(d: &'a Detection, k: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == k).map(|f| f.1.as_str())
    }

    #[test]
    fn auth_tls_followed_into_tls() {
        let tc = [GREETING, b"234 Proceed with negotiation.\r\n"].concat();
        assert!(matches!(
            Ftp.probe(&view(b"AUTH TLS\r\n", GREETING, false)),
            Probe::NeedMore
        ));
        let d = super::super::tls::tests::assert_follows_upgrade(
            &Ftp,
            view,
            b"AUTH TLS\r\n",
            &tc,
            "FTP 220 greeting, AUTH TLS upgrade",
        );
        assert_eq!(field(&d, "exwatch.tls_upgrade"), Some("AUTH TLS"));
    }

    #[test]
    fn user_login_without_the_name_or_password() {
        let ts = b"USER anonymous\r\nPASS guest@example.com\r\n";
        let tc = b"220 (vsFTPd 3.0.3)\r\n331 Please specify the password.\r\n";
        let Probe::Mine(d) = Ftp.probe(&view(ts, tc, false)) else {
            panic!()
        };
        assert_eq!(d.evidence, "FTP 220 greeting, USER");
        let all = format!("{d:?}");
        assert!(
            !all.contains("anonymous") && !all.contains("guest"),
            "{all}"
        );
    }

    #[test]
    fn split_greeting_and_shared_commands_wait() {
        for cut in 1..GREETING.len() {
            assert!(
                matches!(
                    Ftp.probe(&view(b"", &GREETING[..cut], false)),
                    Probe::NeedMore
                ),
                "cut {cut}"
            );
        }
        // QUIT after a greeting that does not say FTP: SMTP's too.
        assert!(matches!(
            Ftp.probe(&view(b"QUIT\r\n", GREETING, false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Ftp.probe(&view(b"QUIT\r\n", GREETING, true)),
            Probe::NotMine
        ));
        assert!(matches!(
            Ftp.probe(&view(b"", b"220 ProFTPD Server ready\r\n", true)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn mid_stream() {
        assert!(matches!(
            Ftp.probe(&view(
                b"PASV\r\n",
                b"227 Entering Passive Mode (10,0,0,1,4,1)\r\n",
                false
            )),
            Probe::Mine(_)
        ));
        // USER alone is POP3's too.
        assert!(matches!(
            Ftp.probe(&view(b"USER x\r\n", b"", true)),
            Probe::NotMine
        ));
    }

    #[test]
    fn truncated_and_hostile() {
        crate::classify::detector::testing::assert_truncated(
            &Ftp,
            view,
            &[(&b"AU"[..], &b"22"[..]), (b"", b"2"), (b"\r\n", b"220\r\n")],
        );
        crate::classify::detector::testing::probe_hostile(
            &Ftp,
            view,
            b"220 331 AUTH TLS USER PASV\r\n\x16\xff",
            41,
            600,
        );
    }

    #[test]
    fn smtp_and_pop3_are_not_ftp() {
        crate::classify::detector::testing::assert_not_mine(
            &Ftp,
            view,
            &[
                (&b"EHLO a\r\n"[..], &b"220 mx ESMTP\r\n"[..]),
                (b"AUTH PLAIN AGFsaWNl\r\n", b"220 mx ESMTP\r\n"),
                (b"USER alice\r\n", b"+OK POP3 ready\r\n"),
                (b"A1 CAPABILITY\r\n", b"* OK IMAP4rev1\r\n"),
            ],
        );
    }
}
