//! SSH: the identification string (`SSH-2.0-software comments`, RFC 4253 section 4.2) that
//! each side sends first, in either direction.

use crate::classify::detector::{text, Detector, Payloads, Probe};
use crate::classify::{Confidence, Detection};

pub struct Ssh;

/// RFC 4253: the identification line is at most 255 bytes with its CR LF.
const MAX_LINE: usize = 255;
/// Lines a server may send before its identification that we are willing to skip.
const MAX_PRE_LINES: usize = 8;
/// Software names go into records: clip them.
const MAX_SOFTWARE: usize = 96;

/// Protocol versions in use: 2.0, 1.99 (a server that also speaks SSH-1) and SSH-1's 1.5.
const VERSIONS: &[&str] = &["2.0", "1.99", "1.5"];

/// One direction's start, as far as SSH is concerned.
#[derive(Debug)]
enum Side {
    Empty,
    /// Could still become an identification line; `strong` once `SSH-<version>-` is complete.
    Partial {
        strong: bool,
    },
    /// A complete identification line: protocol version, software and comments.
    Ident(&'static str, String),
    No,
}

/// Printable text as identification and pre-banner lines are (UTF-8 allowed, no controls).
fn is_line_text(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b'\t' || c >= 0x20) && !b.contains(&0x7f)
}

/// `SSH-<version>-` at the start of `b`, if complete: (version, bytes after it).
fn ident_prefix(b: &[u8]) -> Option<(&'static str, &[u8])> {
    let rest = b.strip_prefix(b"SSH-")?;
    VERSIONS.iter().find_map(|v| {
        let after = rest.strip_prefix(v.as_bytes())?.strip_prefix(b"-")?;
        Some((*v, after))
    })
}

/// Judge one line or line start (without its LF) that should be an identification string.
fn judge(line: &[u8], complete: bool) -> Side {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !is_line_text(line) || line.len() > MAX_LINE {
        return Side::No;
    }
    match ident_prefix(line) {
        Some((v, software)) if complete => {
            // softwareversion is mandatory (RFC 4253: printable, no spaces or minus signs).
            if software.is_empty() || software[0] == b' ' {
                Side::No
            } else {
                Side::Ident(v, text::clip(software, MAX_SOFTWARE))
            }
        }
        Some(_) => Side::Partial { strong: true },
        None if complete => Side::No,
        None => {
            // Still arriving: a prefix of "SSH-<version>-".
            let could = VERSIONS
                .iter()
                .any(|v| format!("SSH-{v}-").as_bytes().starts_with(line));
            if could {
                Side::Partial { strong: false }
            } else {
                Side::No
            }
        }
    }
}

/// The client must send its identification as its very first line.
fn client_side(ts: &[u8]) -> Side {
    if ts.is_empty() {
        return Side::Empty;
    }
    match memchr::memchr(b'\n', ts) {
        Some(end) => judge(&ts[..end], true),
        None => judge(ts, false),
    }
}

/// A server may send other text lines before its identification (RFC 4253 4.2).
fn server_side(tc: &[u8]) -> Side {
    if tc.is_empty() {
        return Side::Empty;
    }
    let mut rest = tc;
    for i in 0..=MAX_PRE_LINES {
        let (line, complete) = match memchr::memchr(b'\n', rest) {
            Some(end) => (&rest[..end], true),
            None => (rest, false),
        };
        match judge(line, complete) {
            Side::No if i < MAX_PRE_LINES => {
                let plain = line.strip_suffix(b"\r").unwrap_or(line);
                if !is_line_text(plain) || plain.len() > MAX_LINE || plain.starts_with(b"SSH-") {
                    return Side::No;
                }
                if !complete {
                    // A text line still arriving: the identification may follow it.
                    return Side::Partial { strong: false };
                }
                rest = &rest[line.len() + 1..];
                if rest.is_empty() {
                    return Side::Partial { strong: false };
                }
            }
            other => return other,
        }
    }
    Side::No
}

impl Detector for Ssh {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn protocol(&self) -> &'static str {
        "ssh"
    }

    fn probe(&self, p: &Payloads<'_>) -> Probe {
        let client = client_side(p.ts);
        let server = server_side(p.tc);
        let last = p.last_chance;
        let waiting = |s: &Side| matches!(s, Side::Empty | Side::Partial { .. });
        match (&client, &server) {
            (Side::Ident(..), _) | (_, Side::Ident(..)) => {
                // Wait briefly for the other side's identification, which names its software.
                if !last
                    && ((matches!(client, Side::Ident(..)) && waiting(&server))
                        || (matches!(server, Side::Ident(..)) && waiting(&client)))
                {
                    return Probe::NeedMore;
                }
                detection(&client, &server, false)
            }
            // Bytes from the client that cannot open SSH, or a server that is not SSH.
            (Side::No, _) | (_, Side::No) => Probe::NotMine,
            (Side::Empty, Side::Empty) => {
                if last {
                    Probe::NotMine
                } else {
                    Probe::NeedMore
                }
            }
            _ if !last => Probe::NeedMore,
            (Side::Partial { strong: true }, _) | (_, Side::Partial { strong: true }) => {
                detection(&client, &server, true)
            }
            _ => Probe::NotMine,
        }
    }
}

fn detection(client: &Side, server: &Side, cut: bool) -> Probe {
    let mut fields = Vec::new();
    let mut parts = Vec::new();
    let mut version = None;
    if let Side::Ident(v, s) = server {
        version = Some(*v);
        parts.push(format!("server {}", text::clip(s.as_bytes(), 48)));
        fields.push(("exwatch.ssh.server_software", s.clone()));
    }
    if let Side::Ident(v, s) = client {
        version = version.or(Some(*v));
        parts.push(format!("client {}", text::clip(s.as_bytes(), 48)));
        fields.push(("exwatch.ssh.client_software", s.clone()));
    }
    let evidence = match version {
        Some(v) => {
            fields.push(("exwatch.ssh.version", v.to_string()));
            format!("SSH-{v} identification: {}", parts.join(", "))
        }
        None if cut => "SSH identification string, cut short".to_string(),
        None => "SSH identification string".to_string(),
    };
    Probe::Mine(Detection {
        reversed: false,
        protocol: "ssh",
        service: None,
        confidence: Confidence::Payload,
        evidence,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(ts: &'a [u8], tc: &'a [u8], last: bool) -> Payloads<'a> {
        crate::classify::detector::testing::tcp_view(ts, tc, 22, 50000, last)
    }

    fn field<'a>(d: &'a Detection, name: &str) -> Option<&'a str> {
        d.fields.iter().find(|f| f.0 == name).map(|f| f.1.as_str())
    }

    // ssh.pcap (project capture): both sides are OpenSSH 9.2p1 on Debian 12; the binary
    // packet (KEXINIT) follows the identification in the same segment.
    const OPENSSH: &[u8] =
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n\x00\x00\x06\x14\x08\x14\xe7";
    // ssh.pcap (public capture): OpenSSH 5.6 client, 5.3 server.
    const CLIENT_56: &[u8] = b"SSH-2.0-OpenSSH_5.6\r\n\x00\x00\x03\x84\x04\x14\x18\xba";
    const SERVER_53: &[u8] = b"SSH-2.0-OpenSSH_5.3\r\n\x00\x00\x03\x0c\x0a\x14\x00\xf2";

    fn mine(p: Probe) -> Detection {
        match p {
            Probe::Mine(d) => d,
            other => panic!("expected Mine, got {other:?}"),
        }
    }

    #[test]
    fn both_identifications() {
        let d = mine(Ssh.probe(&view(OPENSSH, OPENSSH, false)));
        assert_eq!(d.protocol, "ssh");
        assert_eq!(
            field(&d, "exwatch.ssh.server_software"),
            Some("OpenSSH_9.2p1 Debian-2+deb12u10")
        );
        assert_eq!(
            field(&d, "exwatch.ssh.client_software"),
            Some("OpenSSH_9.2p1 Debian-2+deb12u10")
        );
        assert_eq!(field(&d, "exwatch.ssh.version"), Some("2.0"));
        let d = mine(Ssh.probe(&view(CLIENT_56, SERVER_53, false)));
        assert_eq!(
            field(&d, "exwatch.ssh.client_software"),
            Some("OpenSSH_5.6")
        );
        assert_eq!(
            field(&d, "exwatch.ssh.server_software"),
            Some("OpenSSH_5.3")
        );
        assert!(d.evidence.contains("server OpenSSH_5.3"), "{}", d.evidence);
    }

    #[test]
    fn one_side_then_the_other() {
        // The server speaks first: wait for the client's line, unless nothing more comes.
        assert!(matches!(
            Ssh.probe(&view(b"", SERVER_53, false)),
            Probe::NeedMore
        ));
        let d = mine(Ssh.probe(&view(b"", SERVER_53, true)));
        assert_eq!(field(&d, "exwatch.ssh.client_software"), None);
        // A client whose server is not SSH at all is still an SSH client.
        let d = mine(Ssh.probe(&view(CLIENT_56, b"\x00\x01\x02", false)));
        assert_eq!(
            field(&d, "exwatch.ssh.client_software"),
            Some("OpenSSH_5.6")
        );
        // SSH-1.99 servers.
        let d = mine(Ssh.probe(&view(b"", b"SSH-1.99-Cisco-1.25\r\n", true)));
        assert_eq!(field(&d, "exwatch.ssh.version"), Some("1.99"));
    }

    #[test]
    fn split_across_segments_needs_more() {
        for cut in [1, 3, 4, 5, 7, 8, 20] {
            assert!(
                matches!(
                    Ssh.probe(&view(&OPENSSH[..cut], b"", false)),
                    Probe::NeedMore
                ),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            Ssh.probe(&view(&OPENSSH[..20], &SERVER_53[..10], false)),
            Probe::NeedMore
        ));
        assert!(matches!(
            Ssh.probe(&view(OPENSSH, SERVER_53, false)),
            Probe::Mine(_)
        ));
    }

    #[test]
    fn pre_banner_lines_from_the_server() {
        let tc = b"Welcome to the jump host\r\nAuthorized use only\r\nSSH-2.0-dropbear_2022.83\r\n";
        let d = mine(Ssh.probe(&view(CLIENT_56, tc, false)));
        assert_eq!(
            field(&d, "exwatch.ssh.server_software"),
            Some("dropbear_2022.83")
        );
        assert!(matches!(
            Ssh.probe(&view(b"", &tc[..30], false)),
            Probe::NeedMore
        ));
    }

    #[test]
    fn truncated_identification() {
        // "SSH-2.0-" complete: enough to say SSH when the line never ends.
        let d = mine(Ssh.probe(&view(b"SSH-2.0-OpenSS", b"", true)));
        assert!(d.evidence.contains("cut short"));
        assert!(matches!(
            Ssh.probe(&view(b"SSH-2", b"", true)),
            Probe::NotMine
        ));
        // No software version after the dash.
        assert!(matches!(
            Ssh.probe(&view(b"SSH-2.0-\r\n", b"", false)),
            Probe::NotMine
        ));
        // A line longer than RFC 4253 allows.
        let mut long = b"SSH-2.0-".to_vec();
        long.extend_from_slice(&[b'a'; 300]);
        assert!(matches!(
            Ssh.probe(&view(&long, b"", false)),
            Probe::NotMine
        ));
    }

    #[test]
    fn other_protocols_are_not_ssh() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"GET / HTTP/1.1\r\n", b""),
            (b"EHLO a\r\n", b"220 mx ESMTP\r\n"),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b""),
            (
                b"",
                b"* OK The Microsoft Exchange IMAP4 service is ready.\r\n",
            ),
            (b"SSH-3.0-future\r\n", b""),
            (b"ssh-2.0-lowercase\r\n", b""),
        ];
        for (ts, tc) in cases {
            let last_needed = ts.is_empty();
            assert!(
                matches!(Ssh.probe(&view(ts, tc, last_needed)), Probe::NotMine),
                "{ts:?} / {tc:?}"
            );
        }
        // A server greeting in text keeps SSH waiting only until the client speaks.
        assert!(matches!(
            Ssh.probe(&view(b"a001 LOGIN\r\n", b"* OK IMAP\r\n", false)),
            Probe::NotMine
        ));
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let mut x: u32 = 12345;
        for n in 0..400 {
            let len = (n * 13) % 700;
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            if n % 3 == 0 && b.len() > 8 {
                b[..8].copy_from_slice(b"SSH-2.0-");
            }
            if n % 5 == 0 {
                for c in b.iter_mut().step_by(7) {
                    *c = b'\n';
                }
            }
            for last in [false, true] {
                let _ = Ssh.probe(&view(&b, &b, last));
                let _ = Ssh.probe(&view(b"", &b, last));
                let _ = Ssh.probe(&view(&b, b"", last));
            }
        }
        let _ = Ssh.probe(&view(
            b"\n\n\n",
            b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
            true,
        ));
    }
}
