//! Regression tests of issue 13: fragment reassembly under memory pressure, and output paths
//! that fail (closed pipes, full disks) or are asked too much (`--threads`).

mod common;

use common::*;
use serde_json::Value;

/// An Ethernet frame with an IPv4 first fragment (MF set, offset 0) of `len` junk payload bytes.
fn junk_first_fragment(id: u16, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 20 + len);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x10, 0x02, 0, 0, 0, 0, 0x66, 0x08, 0x00]);
    let total = (20 + len) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&id.to_be_bytes());
    ip.extend_from_slice(&[0x20, 0x00, 64, 17, 0, 0]); // MF, offset 0, TTL 64, UDP
    ip.extend_from_slice(&[203, 0, 113, 66, 192, 0, 2, 10]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend((0..len).map(|i| (i as u8) ^ 0x5a));
    f
}

/// `sip-udp-fragmented.pcap` (an INVITE in two fragments, then the call) behind `n` junk
/// first fragments of 1,000 bytes that never complete, all within the last 10 ms before it.
fn junk_then_fragmented_invite(dir: &std::path::Path, n: u16) -> std::path::PathBuf {
    let (lt, call) = read_pcap(&root().join("pcaps/sip-udp-fragmented.pcap"));
    assert_eq!(lt, 1);
    let t0 = call[0].0 - 10_000_000;
    let mut pkts: Vec<(u64, Vec<u8>)> = (0..n)
        .map(|i| (t0 + u64::from(i), junk_first_fragment(i, 1000)))
        .collect();
    pkts.extend(call);
    let p = dir.join(format!("junk-{n}-then-invite.pcap"));
    write_pcap(&p, 1, &pkts);
    p
}

fn undecodable(run: &Run, reason: &str) -> u64 {
    run.summary["undecodable"][reason].as_u64().unwrap_or(0)
}

fn invite(run: &Run) -> Option<&Value> {
    run.records.iter().find(|r| {
        field(r, "network.protocol") == "sip" && field(r, "exwatch.sip.method") == "INVITE"
    })
}

/// Issue 13 item 5: 5,000 junk first fragments (more than the 4,096 pending datagrams once
/// fixed) fit in the default 16 MiB; the INVITE behind them is reassembled, and its RTP is
/// still expected from its SDP.
#[test]
fn issue13_pending_count_follows_frag_memory() {
    let dir = tempfile::tempdir().unwrap();
    let cap = junk_then_fragmented_invite(dir.path(), 5000);
    let run = audit(&[&cap], &["-q", "--threads", "1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(invite(&run).is_some(), "INVITE lost: {}", run.summary);
    assert_eq!(
        undecodable(&run, "ip-fragment-evicted"),
        0,
        "{}",
        run.summary
    );
    assert_eq!(
        undecodable(&run, "ip-fragment-memory-cap"),
        0,
        "{}",
        run.summary
    );
    assert_eq!(
        undecodable(&run, "ip-fragment-incomplete"),
        5000,
        "{}",
        run.summary
    );
    let plain = audit(&[&root().join("pcaps/sip-udp-fragmented.pcap")], &["-q"]);
    let protocols = |r: &Run| {
        let mut v: Vec<String> = r
            .records
            .iter()
            .map(|x| field(x, "network.protocol").to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(protocols(&run), protocols(&plain));
}

/// Issue 13 item 5: with `--frag-memory 2`, the same flood no longer fits: the oldest junk is
/// evicted and counted as such, the INVITE is reassembled, and every packet is accounted for.
#[test]
fn issue13_full_reassembly_memory_evicts_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let cap = junk_then_fragmented_invite(dir.path(), 5000);
    for threads in ["1", "2"] {
        let run = audit(&[&cap], &["-q", "--threads", threads, "--frag-memory", "2"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(invite(&run).is_some(), "INVITE lost: {}", run.summary);
        let evicted = undecodable(&run, "ip-fragment-evicted");
        let incomplete = undecodable(&run, "ip-fragment-incomplete");
        assert_eq!(evicted + incomplete, 5000, "{}", run.summary);
        // 2 MiB hold at most 2 MiB / (1,000 + 256 bytes of bookkeeping) junk datagrams
        assert!(incomplete <= (2 << 20) / 1256, "{}", run.summary);
        assert!(evicted >= 5000 - (2 << 20) / 1256, "{}", run.summary);
        assert_eq!(undecodable(&run, "ip-fragment-memory-cap"), 0);
        assert_eq!(
            run.summary["packets_read"].as_u64().unwrap(),
            count_packets(&cap)
        );
        // the text summary names the reason too
        let text = exwatch()
            .args(["audit", "--threads", threads, "--frag-memory", "2"])
            .arg(&cap)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&text.stdout).to_string()
            + &String::from_utf8_lossy(&text.stderr);
        assert!(out.contains("ip-fragment-evicted"), "{out}");
    }
}

/// Where a test points standard output.
enum Sink {
    /// A pipe whose reader is already closed: every write fails with EPIPE.
    ClosedPipe,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
}

fn run_into(sink: Sink, args: &[&str]) -> std::process::Output {
    let out: std::process::Stdio = match sink {
        Sink::ClosedPipe => {
            // the write end of a pipe whose only reader (`true`) has exited
            let mut reader = std::process::Command::new("true")
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let writer = reader.stdin.take().unwrap();
            assert!(reader.wait().unwrap().success());
            writer.into()
        }
        Sink::Full => std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
            .into(),
    };
    exwatch()
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .output()
        .unwrap()
}

/// Issue 13 item 6: text to standard output that cannot be written (a closed pipe, a full disk)
/// gives exit 1 and says why, instead of a panic (101) or a silent 0.
#[test]
fn issue13_unwritable_standard_output_is_exit_1_with_a_message() {
    let cap = root().join("pcaps/imap-143.pcap");
    let cap = cap.to_str().unwrap();
    let policy = root().join("examples/policy.toml");
    let policy = policy.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["audit", cap], "standard output"),
        (&["audit", "--policy", policy, cap], "standard output"),
        (&["policy", "list"], "standard output"),
        (&["policy", "template", "exchange2016"], "standard output"),
        (&["audit", "-q", "--json", "-", cap], "writing records"),
        // records to stdout, the summary to stderr: the records' failure is the one reported
        (&["audit", "--json", "-", cap], "writing records"),
        (
            &["audit", "-q", "--summary-json", "-", cap],
            "cannot write summary",
        ),
    ];
    for (args, what) in cases {
        for (sink, why) in [
            (Sink::ClosedPipe, "Broken pipe"),
            (Sink::Full, "No space left on device"),
        ] {
            let out = run_into(sink, args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?} ({why}): {err}");
            assert!(
                err.contains(what) && err.contains(why),
                "{args:?} ({why}): {err}"
            );
            assert!(!err.contains("panicked"), "{args:?}: {err}");
        }
    }
}

/// The same commands succeed when standard output can be written (the test above can fail only
/// on the output).
#[test]
fn issue13_writable_standard_output_is_exit_0() {
    let cap = root().join("pcaps/imap-143.pcap");
    let cap = cap.to_str().unwrap();
    for args in [
        &["audit", cap][..],
        &["policy", "list"],
        &["policy", "template", "exchange2016"],
        &["audit", "-q", "--json", "-", cap],
    ] {
        let out = exwatch()
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

/// Issue 13 item 6: `--threads` above 256 is refused before anything runs (exit 2, a message
/// naming the bound); 256 itself runs.
#[test]
fn issue13_threads_above_the_bound_are_refused() {
    let cap = root().join("pcaps/imap-143.pcap");
    for n in ["257", "100000"] {
        let run = audit(&[&cap], &["-q", "--threads", n]);
        assert_eq!(run.code, 2, "--threads {n}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("--threads {n}")) && run.stderr.contains("256"),
            "{}",
            run.stderr
        );
        assert!(run.records.is_empty());
    }
    let run = audit(&[&cap], &["-q", "--threads", "256"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.records.len(), 1);
}

/// Standard error on a full disk: messages are lost, the exit codes are not, and nothing
/// panics (exit 101).
#[test]
fn unwritable_standard_error_keeps_the_exit_codes() {
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let cap = root().join("pcaps/imap-143.pcap");
    for (args, code) in [
        (vec!["audit", "--threads", "0"], 2),
        (vec!["audit", "/nonexistent/x.pcap"], 3),
        (vec!["audit", "-q"], 0),
        // The summary goes to standard error when records take standard output.
        (vec!["audit", "--json", "-"], 1),
    ] {
        let out = exwatch()
            .args(&args)
            .arg(&cap)
            .stdout(std::process::Stdio::null())
            .stderr(full())
            .status()
            .unwrap();
        assert_eq!(out.code(), Some(code), "{args:?}");
    }
}

/// An Ethernet frame with an IPv4 TCP SYN from 10.x.y.z to 192.0.2.10:`dport` (flow `k`).
fn syn(k: u32, dport: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let src = (0x0A00_0000u32 + k).to_be_bytes();
    let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&[192, 0, 2, 10]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&(1024 + (k % 50_000) as u16).to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[
        0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
    ]);
    f
}

/// Issue 13 item 2: a SYN flood of 20,000 flows 1 us apart (20 ms, well inside the 2 s that
/// finished flows wait for cross-flow facts) with `--max-flows 1000`: the flows waiting in
/// the linkers never outnumber the limit, every flow is still written, and what the bound
/// cost is counted. To a port below 1024 no later fact can relabel a flow, so none waits
/// and none is released early; to ports above 1023 the bound releases flows early and drops
/// start notices, and says how many.
#[test]
fn issue13_syn_flood_waits_within_max_flows() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000u32;
    for (name, high) in [("low", false), ("high", true)] {
        let pkts: Vec<(u64, Vec<u8>)> = (0..n)
            .map(|k| {
                let dport = if high {
                    1024 + (k % 60_000) as u16
                } else {
                    443
                };
                (
                    1_700_000_000_000_000_000 + u64::from(k) * 1000,
                    syn(k, dport),
                )
            })
            .collect();
        let p = dir.path().join(format!("flood-{name}.pcap"));
        write_pcap(&p, 1, &pkts);
        for threads in ["1", "2"] {
            let run = audit(&[&p], &["-q", "--threads", threads, "--max-flows", "1000"]);
            let s = &run.summary;
            assert_eq!(run.code, 0, "{}", run.stderr);
            assert_eq!(run.records.len() as u32, n, "{name}: every flow is written");
            assert_eq!(s["evictions"], u64::from(n - 1000), "{name}");
            let held = s["flows_held_peak"].as_u64().unwrap();
            assert!(held <= 1000, "{name}, {threads} threads: {held} flows held");
            let early = s["flows_released_early"].as_u64().unwrap();
            let dropped = s["start_notices_dropped"].as_u64().unwrap();
            if high {
                assert!(early > 0 && dropped > 0, "{name}: {early} early, {dropped}");
            } else {
                assert_eq!((early, dropped, held < 1000), (0, 0, true), "{name}");
            }
        }
    }
}
