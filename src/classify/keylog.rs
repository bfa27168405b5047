//! TLS key logs (`--tls-keylog`): the NSS key log format that curl, browsers, OpenSSL's keylog
//! callback and Go's `KeyLogWriter` write (`SSLKEYLOGFILE`) and Wireshark reads. Lines are
//! `LABEL CLIENT_RANDOM_HEX SECRET_HEX`; exwatch uses `CLIENT_RANDOM` (TLS 1.2 master secret)
//! and the TLS 1.3 handshake and first traffic secrets, found by the ClientHello's random.
//!
//! One key log serves the whole run (`install`): detectors look keys up by client random. For
//! live capture a lookup that misses looks at the file's length (one `stat`) and reads what
//! was appended, so keys written after the capture started are found as soon as they are on
//! disk (no timer: a session whose keys were written a moment before its hellos arrived is
//! decrypted). Bad lines are counted and the first few reported with file and line;
//! they are never fatal.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock};

/// Sessions kept at most (a key log of a busy proxy grows without end).
const MAX_SESSIONS: usize = 1 << 20;
/// Longest line read (a TLS 1.3 line with a SHA-384 secret is about 160 bytes).
const MAX_LINE: usize = 1024;
/// Bad lines whose position is kept for the report.
const MAX_REPORTED: usize = 8;

/// The secrets logged for one session (client random).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// TLS 1.2 and older: the 48-byte master secret.
    pub master: Option<Vec<u8>>,
    pub client_handshake: Option<Vec<u8>>,
    pub server_handshake: Option<Vec<u8>>,
    pub client_traffic: Option<Vec<u8>>,
    pub server_traffic: Option<Vec<u8>>,
}

/// What reading the key log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub lines: u64,
    pub sessions: u64,
    pub bad_lines: u64,
    /// `file:line: problem` of the first bad lines.
    pub reported: Vec<String>,
}

/// A parsed key log, and where its file was read up to.
#[derive(Debug, Default)]
pub struct KeyLog {
    path: PathBuf,
    sessions: HashMap<[u8; 32], Secrets>,
    stats: Stats,
    /// Bytes of the file consumed (whole lines only) and lines counted so far.
    offset: u64,
    line_no: u64,
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > 2 * 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl KeyLog {
    /// Read `path` (an error only when it cannot be opened or read).
    pub fn load(path: &Path) -> std::io::Result<KeyLog> {
        let mut k = KeyLog {
            path: path.to_path_buf(),
            ..KeyLog::default()
        };
        k.read_more()?;
        Ok(k)
    }

    /// Parse key log text (for tests and fuzzing); `origin` names it in reports.
    pub fn parse(origin: &str, text: &[u8]) -> KeyLog {
        let mut k = KeyLog {
            path: PathBuf::from(origin),
            ..KeyLog::default()
        };
        k.take_lines(text);
        k
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn get(&self, client_random: &[u8]) -> Option<&Secrets> {
        let r: [u8; 32] = client_random.try_into().ok()?;
        self.sessions.get(&r)
    }

    /// Whether the file's length differs from what was read (grown, or truncated and
    /// rewritten); false when it cannot be looked at.
    fn grew(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() != self.offset)
    }

    /// Read what was appended to the file since the last read.
    fn read_more(&mut self) -> std::io::Result<bool> {
        let mut f = std::fs::File::open(&self.path)?;
        let len = f.metadata()?.len();
        if len < self.offset {
            // Truncated or replaced: start over (the sessions already read stay).
            self.offset = 0;
            self.line_no = 0;
        }
        if len == self.offset {
            return Ok(false);
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.take(len - self.offset).read_to_end(&mut buf)?;
        // Only whole lines: the writer may be in the middle of one.
        let whole = buf.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
        self.take_lines(&buf[..whole]);
        self.offset += whole as u64;
        Ok(whole > 0)
    }

    fn bad(&mut self, why: &str) {
        self.stats.bad_lines += 1;
        if self.stats.reported.len() < MAX_REPORTED {
            self.stats
                .reported
                .push(format!("{}:{}: {why}", self.path.display(), self.line_no));
        }
    }

    fn take_lines(&mut self, text: &[u8]) {
        for raw in text.split(|&c| c == b'\n') {
            self.line_no += 1;
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            self.stats.lines += 1;
            if line.len() > MAX_LINE {
                self.bad("line too long");
                continue;
            }
            let Ok(line) = std::str::from_utf8(line) else {
                self.bad("not text");
                continue;
            };
            if line.starts_with('#') {
                continue;
            }
            let mut w = line.split_ascii_whitespace();
            let (Some(label), Some(random), Some(secret), None) =
                (w.next(), w.next(), w.next(), w.next())
            else {
                self.bad("expected LABEL CLIENT_RANDOM SECRET");
                continue;
            };
            let Some(random) = hex(random).and_then(|r| <[u8; 32]>::try_from(r).ok()) else {
                self.bad("the client random is not 32 bytes of hexadecimal");
                continue;
            };
            let Some(secret) = hex(secret).filter(|s| matches!(s.len(), 32 | 48 | 64)) else {
                self.bad("the secret is not 32, 48 or 64 bytes of hexadecimal");
                continue;
            };
            let known = matches!(
                label,
                "CLIENT_RANDOM"
                    | "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
                    | "SERVER_HANDSHAKE_TRAFFIC_SECRET"
                    | "CLIENT_TRAFFIC_SECRET_0"
                    | "SERVER_TRAFFIC_SECRET_0"
            );
            if !known {
                // EXPORTER_SECRET, EARLY_EXPORTER_SECRET, CLIENT_EARLY_TRAFFIC_SECRET: valid
                // lines this does not need.
                continue;
            }
            if !self.sessions.contains_key(&random) && self.sessions.len() >= MAX_SESSIONS {
                self.bad("too many sessions in the key log (1048576 kept)");
                continue;
            }
            let s = self.sessions.entry(random).or_default();
            let slot = match label {
                "CLIENT_RANDOM" => &mut s.master,
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut s.client_handshake,
                "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut s.server_handshake,
                "CLIENT_TRAFFIC_SECRET_0" => &mut s.client_traffic,
                _ => &mut s.server_traffic,
            };
            *slot = Some(secret);
            self.stats.sessions = self.sessions.len() as u64;
        }
    }
}

/// The run's key log, and whether a miss looks for lines appended since (live capture).
struct Installed {
    log: RwLock<KeyLog>,
    follow: bool,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Make `log` the run's key log; `follow`: read its file again when a lookup misses (live).
pub fn install(log: KeyLog, follow: bool) {
    let _ = INSTALLED.set(Installed {
        log: RwLock::new(log),
        follow,
    });
}

/// Whether a key log is installed.
pub fn active() -> bool {
    INSTALLED.get().is_some()
}

/// The secrets of the session with this client random, if the key log has them.
pub fn lookup(client_random: &[u8]) -> Option<Secrets> {
    let inst = INSTALLED.get()?;
    {
        let log = inst.log.read().ok()?;
        if let Some(s) = log.get(client_random) {
            return Some(s.clone());
        }
        // Unchanged since the last read (or gone: the keys read before stay): nothing new.
        if !inst.follow || !log.grew() {
            return None;
        }
    }
    let mut log = inst.log.write().ok()?;
    // Another thread may have read the new lines meanwhile; read_more then finds none.
    let _ = log.read_more();
    log.get(client_random).cloned()
}

/// What the installed key log has read so far.
pub fn stats() -> Option<Stats> {
    Some(INSTALLED.get()?.log.read().ok()?.stats.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "36692d0b96e8b8b8b4f32f06a8670d60e05a65376d7d3b000000000000000000";

    #[test]
    fn lines_and_bad_lines() {
        let text = format!(
            "# comment\nCLIENT_RANDOM {R} {m}\nCLIENT_TRAFFIC_SECRET_0 {R} {t}\r\n\
             EXPORTER_SECRET {R} {t}\nCLIENT_RANDOM zz {m}\nCLIENT_RANDOM {R}\n",
            m = "ab".repeat(48),
            t = "cd".repeat(32)
        );
        let k = KeyLog::parse("keys", text.as_bytes());
        let s = k.get(&hex(R).unwrap()).unwrap();
        assert_eq!(s.master.as_deref(), Some(&[0xab; 48][..]));
        assert_eq!(s.client_traffic.as_deref(), Some(&[0xcd; 32][..]));
        assert_eq!(k.stats().bad_lines, 2);
        assert_eq!(
            k.stats().reported[0],
            "keys:5: the client random is not 32 bytes of hexadecimal"
        );
        assert_eq!(
            k.stats().reported[1],
            "keys:6: expected LABEL CLIENT_RANDOM SECRET"
        );
    }

    #[test]
    fn a_growing_file_is_read_on() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(
            &p,
            format!("CLIENT_RANDOM {R} {}\nCLIENT_RAN", "ab".repeat(48)),
        )
        .unwrap();
        let mut k = KeyLog::load(&p).unwrap();
        assert_eq!(k.stats().sessions, 1);
        let r2 = format!("{}01", &R[..62]);
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        writeln!(f, "DOM {r2} {}", "ef".repeat(48)).unwrap();
        assert!(k.grew());
        assert!(k.read_more().unwrap());
        assert!(!k.grew(), "every byte is read once the last line is whole");
        assert!(k.get(&hex(&r2).unwrap()).is_some(), "{:?}", k.stats());
        assert_eq!(k.stats().bad_lines, 0);
    }
}
