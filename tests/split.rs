//! Headers split from their payload (issue 15, class 3): every capture's first TCP segment of
//! each direction is cut in two after 1, 2, 4 and 6 bytes (a NetBIOS session header, a DNS or
//! Kerberos length prefix, a TPKT header, a BER tag and length on their own), and every flow
//! must be named as in the uncut capture.

mod common;

use common::{all_captures, read_pcap, write_pcap};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// Where the IP and TCP headers of an Ethernet frame are, and the payload range.
struct Tcp {
    ip: usize,
    v6: bool,
    tcp: usize,
    payload: usize,
    /// The end of the IP packet (Ethernet pads short frames: the padding is not payload).
    end: usize,
}

fn parse(f: &[u8]) -> Option<Tcp> {
    let mut off = 12;
    let mut et = u16::from_be_bytes(f.get(off..off + 2)?.try_into().ok()?);
    while et == 0x8100 || et == 0x88a8 {
        off += 4;
        et = u16::from_be_bytes(f.get(off..off + 2)?.try_into().ok()?);
    }
    let ip = off + 2;
    let be16 = |o: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes(
            f.get(o..o + 2)?.try_into().ok()?,
        )))
    };
    let (v6, proto, tcp, end) = match et {
        0x0800 => {
            let ihl = usize::from(f.get(ip)? & 15) * 4;
            if be16(ip + 6)? & 0x3fff != 0 {
                return None;
            }
            (false, *f.get(ip + 9)?, ip + ihl, ip + be16(ip + 2)?)
        }
        0x86dd => (true, *f.get(ip + 6)?, ip + 40, ip + 40 + be16(ip + 4)?),
        _ => return None,
    };
    if proto != 6 {
        return None;
    }
    let payload = tcp + usize::from(f.get(tcp + 12)? >> 4) * 4;
    (payload <= end && end <= f.len()).then_some(Tcp {
        ip,
        v6,
        tcp,
        payload,
        end,
    })
}

/// The capture with each direction's first payload segment cut after `k` bytes.
fn split(pkts: &[(u64, Vec<u8>)], k: usize) -> (Vec<(u64, Vec<u8>)>, usize) {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(pkts.len() + 64);
    let mut cuts = 0;
    for (ts, f) in pkts {
        let Some(t) = parse(f) else {
            out.push((*ts, f.clone()));
            continue;
        };
        let len = t.end - t.payload;
        let dir = (f[t.ip..t.tcp].to_vec(), f[t.tcp..t.tcp + 4].to_vec());
        if len == 0 || !seen.insert(dir) || len <= k {
            out.push((*ts, f.clone()));
            continue;
        }
        cuts += 1;
        let seq = u32::from_be_bytes(f[t.tcp + 4..t.tcp + 8].try_into().unwrap());
        for (range, seq) in [(0..k, seq), (k..len, seq.wrapping_add(k as u32))] {
            let mut g = f[..t.payload].to_vec();
            g.extend_from_slice(&f[t.payload + range.start..t.payload + range.end]);
            g[t.tcp + 4..t.tcp + 8].copy_from_slice(&seq.to_be_bytes());
            let ip_len = g.len() - t.ip;
            if t.v6 {
                g[t.ip + 4..t.ip + 6].copy_from_slice(&((ip_len - 40) as u16).to_be_bytes());
            } else {
                g[t.ip + 2..t.ip + 4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            }
            out.push((*ts, g));
        }
    }
    (out, cuts)
}

/// (source, destination, transport) -> protocol/service of every flow, sorted.
fn names(path: &Path) -> BTreeMap<String, Vec<String>> {
    let r = common::audit(&[path], &["--threads", "1"]);
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rec in &r.records {
        let f = |p: &str| common::field(rec, p).clone();
        let key = format!(
            "{}:{} {}:{} {}",
            f("source.ip"),
            f("source.port"),
            f("destination.ip"),
            f("destination.port"),
            f("network.transport")
        );
        let v = |p: &str| match f(p) {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        };
        m.entry(key).or_default().push(format!(
            "{} {} {}",
            v("network.protocol"),
            v("exwatch.service"),
            v("exwatch.dcerpc.interface")
        ));
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

#[test]
fn first_segments_cut_after_their_length_prefix_are_named_as_whole_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    let mut failures = Vec::new();
    for cap in all_captures() {
        let head = std::fs::read(&cap).unwrap();
        if head.len() < 24 || head[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            continue; // pcapng: the cut is made on classic captures
        }
        let (lt, pkts) = read_pcap(&cap);
        if lt != 1 {
            continue;
        }
        let whole = dir.path().join("whole.pcap");
        write_pcap(&whole, lt, &pkts);
        let want = names(&whole);
        for k in [1, 2, 4, 6] {
            let (cut, n) = split(&pkts, k);
            if n == 0 {
                continue;
            }
            let p = dir.path().join("cut.pcap");
            // KEEP_CUTS=DIR keeps the cut captures, to look at a failure with tshark.
            if let Ok(d) = std::env::var("KEEP_CUTS") {
                let _ = std::fs::create_dir_all(&d);
                write_pcap(
                    &Path::new(&d).join(format!(
                        "{}-{k}.pcap",
                        cap.file_name().unwrap().to_string_lossy()
                    )),
                    lt,
                    &cut,
                );
            }
            write_pcap(&p, lt, &cut);
            let got = names(&p);
            compared += 1;
            if got != want {
                let diff: Vec<String> = want
                    .iter()
                    .filter(|(key, v)| got.get(*key) != Some(v))
                    .map(|(key, v)| format!("{key}: {v:?} -> {:?}", got.get(key)))
                    .collect();
                failures.push(format!(
                    "{} cut after {k}: {}",
                    cap.display(),
                    diff.join("; ")
                ));
            }
        }
    }
    assert!(compared > 100, "only {compared} cut captures");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
