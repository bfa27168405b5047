//! Helpers shared by the integration tests: running the binary, listing captures, pcap I/O.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn exwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_exwatch"))
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The public test captures beside the checkout, and the project's own recordings.
pub fn all_captures() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in [root().join("../shared/pcaps"), root().join("pcaps")] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".pcap") || name.ends_with(".pcapng") {
                v.push(p);
            }
        }
    }
    v.sort();
    assert!(
        v.len() >= 20,
        "expected the shared captures beside the checkout"
    );
    v
}

pub fn shared(name: &str) -> PathBuf {
    root().join("../shared/pcaps").join(name)
}

/// Result of one audit run.
pub struct Run {
    pub code: i32,
    pub records: Vec<Value>,
    pub summary: Value,
    pub stderr: String,
    pub stdout: String,
}

/// Run `exwatch audit` with extra arguments on captures, collecting records and summary.
pub fn audit(captures: &[&Path], extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("records.ndjson");
    let sum = dir.path().join("summary.json");
    let mut cmd = exwatch();
    cmd.arg("audit")
        .arg("--json")
        .arg(&rec)
        .arg("--summary-json")
        .arg(&sum)
        .args(extra)
        .args(captures)
        .stdin(Stdio::null());
    let out: Output = cmd.output().unwrap();
    collect(out, &rec, &sum)
}

pub fn collect(out: Output, rec: &Path, sum: &Path) -> Run {
    let records = std::fs::read_to_string(rec)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each record line is JSON"))
        .collect();
    let summary = std::fs::read_to_string(sum)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    Run {
        code: out.status.code().unwrap_or(-1),
        records,
        summary,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// Records as sorted canonical strings, for set comparison.
pub fn canonical(records: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    v.sort();
    v
}

/// Frames of a classic pcap file (link type, then (ts_ns, data) per packet). Test-only reader
/// independent of libpcap, to check exwatch's counts against.
pub fn read_pcap(path: &Path) -> (u32, Vec<(u64, Vec<u8>)>) {
    let b = std::fs::read(path).unwrap();
    let magic = u32::from_le_bytes(b[0..4].try_into().unwrap());
    let (le, nano) = match magic {
        0xa1b2c3d4 => (true, false),
        0xa1b23c4d => (true, true),
        0xd4c3b2a1 => (false, false),
        0x4d3cb2a1 => (false, true),
        _ => panic!("{}: not a classic pcap", path.display()),
    };
    let u32at = |o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let lt = u32at(20);
    let mut off = 24;
    let mut pkts = Vec::new();
    while off + 16 <= b.len() {
        let sec = u64::from(u32at(off));
        let frac = u64::from(u32at(off + 4));
        let caplen = u32at(off + 8) as usize;
        let ts = sec * 1_000_000_000 + if nano { frac } else { frac * 1000 };
        pkts.push((ts, b[off + 16..off + 16 + caplen].to_vec()));
        off += 16 + caplen;
    }
    (lt, pkts)
}

/// Packets in a pcap or pcapng file, counted by walking its records (not through libpcap).
pub fn count_packets(path: &Path) -> u64 {
    let b = std::fs::read(path).unwrap();
    if b.len() >= 4 && b[0..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        // pcapng: blocks of (type, total length, ..., total length); the byte order is set by
        // each section header's magic.
        let mut off = 0;
        let mut le = true;
        let mut n = 0;
        while off + 12 <= b.len() {
            let raw = |o: usize, le: bool| {
                let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
                if le {
                    u32::from_le_bytes(a)
                } else {
                    u32::from_be_bytes(a)
                }
            };
            if b[off..off + 4] == [0x0a, 0x0d, 0x0d, 0x0a] {
                le = raw(off + 8, true) == 0x1a2b3c4d;
            }
            let ty = raw(off, le);
            let len = raw(off + 4, le) as usize;
            if matches!(ty, 2 | 3 | 6) {
                n += 1;
            }
            assert!(len >= 12, "{}: bad block length", path.display());
            off += len;
        }
        return n;
    }
    read_pcap(path).1.len() as u64
}

/// Write a classic microsecond pcap file.
pub fn write_pcap(path: &Path, linktype: u32, pkts: &[(u64, Vec<u8>)]) {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&262_144u32.to_le_bytes());
    b.extend_from_slice(&linktype.to_le_bytes());
    for (ts, d) in pkts {
        b.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&(((ts % 1_000_000_000) / 1000) as u32).to_le_bytes());
        b.extend_from_slice(&(d.len() as u32).to_le_bytes());
        b.extend_from_slice(&(d.len() as u32).to_le_bytes());
        b.extend_from_slice(d);
    }
    std::fs::write(path, b).unwrap();
}

/// Look up a dotted path in a record.
pub fn field<'a>(r: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(r, |v, k| &v[k])
}
