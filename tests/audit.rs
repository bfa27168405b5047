//! End-to-end tests of `exwatch audit` on real captures: accounting, records, errors, threads.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

const REQUIRED: &[&str] = &[
    "@timestamp",
    "event.start",
    "event.end",
    "event.duration",
    "source.ip",
    "source.packets",
    "source.bytes",
    "destination.ip",
    "destination.packets",
    "destination.bytes",
    "network.transport",
    "network.protocol",
    "network.community_id",
    "network.bytes",
    "network.packets",
    "exwatch.service",
    "exwatch.confidence",
    "exwatch.evidence",
    "exwatch.conn_state",
    "exwatch.mid_stream",
    "exwatch.end_reason",
];

/// Every packet read is decoded or counted undecodable, every decoded packet lands in exactly
/// one flow record, and the packet count matches an independent reading of the file.
#[test]
fn accounting_holds_for_every_capture() {
    for cap in all_captures() {
        let run = audit(&[&cap], &["--threads", "2", "-q"]);
        let name = cap.display();
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let s = &run.summary;
        let read = s["packets_read"].as_u64().unwrap();
        let decoded = s["packets_decoded"].as_u64().unwrap();
        let undecodable = s["packets_undecodable"].as_u64().unwrap();
        assert_eq!(
            read,
            decoded + undecodable,
            "{name}: read != decoded + undecodable"
        );
        let by_reason: u64 = s["undecodable"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(by_reason, undecodable, "{name}: reasons do not add up");
        let in_flows: u64 = run
            .records
            .iter()
            .map(|r| field(r, "network.packets").as_u64().unwrap())
            .sum();
        assert_eq!(
            in_flows, decoded,
            "{name}: decoded packets missing from records"
        );
        assert_eq!(run.records.len() as u64, s["flows"].as_u64().unwrap());
        assert_eq!(read, count_packets(&cap), "{name}: packets read");
        for r in &run.records {
            for f in REQUIRED {
                assert!(!field(r, f).is_null(), "{name}: record lacks {f}: {r}");
            }
            let (o, d) = (field(r, "source.bytes"), field(r, "destination.bytes"));
            assert_eq!(
                o.as_u64().unwrap() + d.as_u64().unwrap(),
                field(r, "network.bytes").as_u64().unwrap()
            );
        }
    }
}

#[test]
fn records_are_identical_for_any_thread_count() {
    for cap in all_captures() {
        let base = canonical(&audit(&[&cap], &["--threads", "1", "-q"]).records);
        for t in ["2", "3", "7"] {
            let other = canonical(&audit(&[&cap], &["--threads", t, "-q"]).records);
            assert_eq!(base, other, "{} with {t} threads", cap.display());
        }
    }
}

#[test]
fn several_files_in_order_and_stdin() {
    let a = shared("smtp.pcap");
    let b = shared("pop3.pcap");
    let both = audit(&[&a, &b], &["-q"]);
    let one = audit(&[&a], &["-q"]);
    let two = audit(&[&b], &["-q"]);
    assert_eq!(both.records.len(), one.records.len() + two.records.len());
    assert_eq!(both.summary["files_read"], 2);
    // Standard input gives the same records as the file.
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("r.ndjson");
    let sum = dir.path().join("s.json");
    let out = exwatch()
        .args(["audit", "-q", "--json"])
        .arg(&rec)
        .arg("--summary-json")
        .arg(&sum)
        .arg("-")
        .stdin(std::fs::File::open(&a).unwrap())
        .output()
        .unwrap();
    let stdin_run = collect(out, &rec, &sum);
    assert_eq!(stdin_run.code, 0, "{}", stdin_run.stderr);
    assert_eq!(canonical(&stdin_run.records), canonical(&one.records));
}

#[test]
fn records_to_stdout_put_the_summary_on_stderr() {
    let out = exwatch()
        .args(["audit", "--json", "-"])
        .arg(shared("smtp.pcap"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let first: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(field(&first, "network.protocol"), "smtp");
    assert!(String::from_utf8_lossy(&out.stderr).contains("packets read"));
}

#[test]
fn smtp_flow_record_fields() {
    let run = audit(&[&shared("smtp.pcap")], &["-q"]);
    assert_eq!(run.records.len(), 1);
    let r = &run.records[0];
    assert_eq!(field(r, "source.ip"), "194.7.248.153");
    assert_eq!(field(r, "destination.port"), 25);
    assert_eq!(field(r, "network.transport"), "tcp");
    assert_eq!(field(r, "exwatch.service"), "smtp");
    assert_eq!(field(r, "exwatch.conn_state"), "SF");
    assert_eq!(field(r, "exwatch.mid_stream"), false);
    assert!(field(r, "exwatch.rtt_ms").as_f64().unwrap() > 0.0);
    assert!(field(r, "network.community_id")
        .as_str()
        .unwrap()
        .starts_with("1:"));
}

#[test]
fn qinq_and_pppoe_frames_keep_their_vlans() {
    let run = audit(&[&shared("dns.pcap")], &["-q"]);
    assert_eq!(run.summary["packets_undecodable"], 0);
    let tagged: Vec<&Value> = run
        .records
        .iter()
        .filter(|r| !field(r, "network.vlan.id").is_null())
        .collect();
    assert_eq!(tagged.len(), 1);
    assert_eq!(field(tagged[0], "network.vlan.id"), "421");
    assert_eq!(field(tagged[0], "network.inner.vlan.id"), "785");
}

/// The same traffic under every supported link type gives the same flows.
#[test]
fn every_link_type_gives_the_same_flows() {
    let (lt, frames) = read_pcap(&shared("smtp.pcap"));
    assert_eq!(lt, 1);
    let dir = tempfile::tempdir().unwrap();
    let ip_of = |f: &Vec<u8>| f[14..].to_vec();
    let with = |prefix: &dyn Fn(&[u8]) -> Vec<u8>| -> Vec<(u64, Vec<u8>)> {
        frames
            .iter()
            .map(|(ts, f)| {
                let ip = ip_of(f);
                let mut out = prefix(&ip);
                out.extend_from_slice(&ip);
                (*ts, out)
            })
            .collect()
    };
    type Frames = Vec<(u64, Vec<u8>)>;
    let variants: Vec<(&str, u32, Frames)> = vec![
        ("raw", 101, with(&|_| vec![])),
        ("null", 0, with(&|_| 2u32.to_le_bytes().to_vec())),
        ("loop", 108, with(&|_| 2u32.to_be_bytes().to_vec())),
        (
            "sll",
            113,
            with(&|_| {
                let mut h = vec![0u8; 14];
                h.extend_from_slice(&[0x08, 0x00]);
                h
            }),
        ),
        (
            "sll2",
            276,
            with(&|_| {
                let mut h = vec![0x08, 0x00];
                h.extend_from_slice(&[0u8; 18]);
                h
            }),
        ),
    ];
    let reference = audit(&[&shared("smtp.pcap")], &["-q"]);
    // The same flows, less what only the Ethernet header said.
    let without_macs: Vec<Value> = reference
        .records
        .iter()
        .cloned()
        .map(|mut r| {
            for side in ["source", "destination"] {
                r[side].as_object_mut().unwrap().remove("mac");
            }
            r
        })
        .collect();
    for (name, lt, pkts) in variants {
        let path = dir.path().join(format!("{name}.pcap"));
        write_pcap(&path, lt, &pkts);
        let run = audit(&[&path], &["-q"]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_eq!(run.summary["packets_undecodable"], 0, "{name}");
        assert!(
            run.records.iter().all(|r| r["source"].get("mac").is_none()),
            "{name}: no Ethernet header, no MAC"
        );
        assert_eq!(canonical(&run.records), canonical(&without_macs), "{name}");
    }
}

fn damaged(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

#[test]
fn empty_file_is_a_clear_error() {
    let (_d, p) = damaged("empty.pcap", b"");
    let run = audit(&[&p], &["-q"]);
    assert_eq!(run.code, 4);
    assert!(
        run.stderr.contains("empty.pcap: empty file"),
        "{}",
        run.stderr
    );
}

#[test]
fn text_file_is_not_a_capture() {
    let (_d, p) = damaged("notes.pcap", b"this is not a capture file at all\n");
    let run = audit(&[&p], &["-q"]);
    assert_eq!(run.code, 4);
    assert!(
        run.stderr
            .contains("notes.pcap: not a pcap or pcapng capture"),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let run = audit(&[Path::new("/nonexistent/x.pcap")], &["-q"]);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("/nonexistent/x.pcap: cannot open"),
        "{}",
        run.stderr
    );
}

/// A capture cut in the middle of a record: the packets before the cut are still reported,
/// the message names the file and the packet, and a later good file is still read.
#[test]
fn truncated_capture_keeps_what_was_read() {
    let src = std::fs::read(shared("smtp.pcap")).unwrap();
    // The last record is 60 bytes of frame: cutting 10 bytes leaves it half written.
    let (_d, p) = damaged("cut.pcap", &src[..src.len() - 10]);
    let good = shared("pop3.pcap");
    let run = audit(&[&p, &good], &["-q"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stderr.contains("cut.pcap: packet 95: damaged capture"),
        "{}",
        run.stderr
    );
    assert_eq!(run.summary["packets_read"], 94 + 144);
    assert!(run
        .records
        .iter()
        .any(|r| field(r, "destination.port") == 25));
    assert!(run
        .records
        .iter()
        .any(|r| field(r, "destination.port") == 110));
}

#[test]
fn corrupt_record_length_is_reported_with_packet_number() {
    let mut b = std::fs::read(shared("smtp.pcap")).unwrap();
    // Walk to the 10th record header and give it an absurd captured length.
    let mut off = 24;
    for _ in 0..9 {
        let caplen = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + caplen;
    }
    b[off + 8..off + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let (_d, p) = damaged("bad-length.pcap", &b);
    let run = audit(&[&p], &["-q"]);
    assert_eq!(run.code, 5);
    assert!(
        run.stderr.contains("bad-length.pcap: packet 10:"),
        "{}",
        run.stderr
    );
    assert_eq!(run.summary["packets_read"], 9);
    assert_eq!(run.records.len(), 1);
}

#[test]
fn malformed_fragments_are_counted_not_fatal() {
    let run = audit(&[&shared("ip_fragmented_garbage.pcap")], &["-q"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.summary["packets_read"], 1252);
    assert!(run.summary["packets_undecodable"].as_u64().unwrap() > 0);
}

/// Evicted flows are written with their reason, never dropped.
#[test]
fn eviction_emits_flows() {
    let cap = shared("kerberos.pcap");
    let all = audit(&[&cap], &["-q", "--threads", "1"]);
    let capped = audit(&[&cap], &["-q", "--threads", "1", "--max-flows", "4"]);
    assert!(capped.summary["evictions"].as_u64().unwrap() > 0);
    let evicted = capped
        .records
        .iter()
        .filter(|r| field(r, "exwatch.end_reason") == "eviction")
        .count() as u64;
    assert_eq!(evicted, capped.summary["evictions"].as_u64().unwrap());
    let packets = |r: &Run| -> u64 {
        r.records
            .iter()
            .map(|x| field(x, "network.packets").as_u64().unwrap())
            .sum()
    };
    assert_eq!(packets(&all), packets(&capped));
}

/// Issue 13 item 7: with `--max-flows` reached, which flows are evicted depends on the
/// thread count (each worker has its own share of the table). What the README promises stays
/// the same: every packet and byte of each connection (Community ID) is in its records, the
/// summary counts each eviction record, and every record of a connection that neither run
/// evicted is identical, unless its label came from another flow (confidence `expectation` or
/// `endpoint`) in one of the runs, since the flow that explains it may have been evicted.
#[test]
fn issue13_eviction_differs_between_thread_counts_only_as_documented() {
    use std::collections::{BTreeMap, BTreeSet};
    let cap = root().join("pcaps/demo-exchange-day.pcap");
    let id = |r: &Value| {
        field(r, "network.community_id")
            .as_str()
            .unwrap()
            .to_string()
    };
    let one = audit(&[&cap], &["-q", "--threads", "1", "--max-flows", "8"]);
    let two = audit(&[&cap], &["-q", "--threads", "2", "--max-flows", "8"]);
    let mut evicted = BTreeSet::new();
    let mut cross = BTreeSet::new();
    for run in [&one, &two] {
        assert_eq!(run.code, 0, "{}", run.stderr);
        let n = run
            .records
            .iter()
            .filter(|r| field(r, "exwatch.end_reason") == "eviction")
            .inspect(|r| {
                evicted.insert(id(r));
            })
            .count() as u64;
        assert!(n > 0, "the table fills");
        assert_eq!(run.summary["evictions"], n);
        for r in &run.records {
            let c = field(r, "exwatch.confidence");
            if c == "expectation" || c == "endpoint" {
                cross.insert(id(r));
            }
        }
    }
    assert_eq!(one.summary["packets_read"], two.summary["packets_read"]);
    let totals = |run: &Run| {
        let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for r in &run.records {
            let e = m.entry(id(r)).or_default();
            e.0 += field(r, "network.packets").as_u64().unwrap();
            e.1 += field(r, "network.bytes").as_u64().unwrap();
        }
        m
    };
    assert_eq!(
        totals(&one),
        totals(&two),
        "packets and bytes per connection"
    );
    let kept = |run: &Run| {
        let v: Vec<Value> = run
            .records
            .iter()
            .filter(|r| !evicted.contains(&id(r)) && !cross.contains(&id(r)))
            .cloned()
            .collect();
        canonical(&v)
    };
    let (a, b) = (kept(&one), kept(&two));
    assert!(a.len() >= 20, "{} records compared", a.len());
    assert_eq!(a, b, "records of connections no run evicted");
}

#[test]
fn idle_timeout_splits_flows() {
    let cap = shared("sip_hello.pcapng");
    let long = audit(&[&cap], &["-q"]);
    let short = audit(&[&cap], &["-q", "--udp-timeout", "1"]);
    assert!(short.records.len() > long.records.len());
    assert!(short
        .records
        .iter()
        .any(|r| field(r, "exwatch.end_reason") == "idle"));
}

#[test]
fn bad_options_are_usage_errors() {
    for args in [
        vec!["--threads", "0"],
        vec!["--udp-timeout", "-1"],
        vec!["--max-flows", "0"],
    ] {
        let out = exwatch()
            .arg("audit")
            .args(&args)
            .arg(shared("smtp.pcap"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn bad_signature_folder_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("signatures/services.toml"),
        dir.path().join("services.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("ports.toml"),
        "[[port]]\nports = \"25\"\ntransport = \"sctp\"\nservice = \"smtp\"\n",
    )
    .unwrap();
    let out = exwatch()
        .args(["audit", "-q", "--signatures"])
        .arg(dir.path())
        .arg(shared("smtp.pcap"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ports.toml:3: transport `sctp`"), "{err}");
}

/// Issue 13, item 3: a FIFO (as `<(zcat f.pcap.gz)` gives) reports size 0 but is read to its
/// end, with the same records as the file it carries.
#[test]
fn fifo_is_read_like_the_file_it_carries() {
    let cap = root().join("pcaps/smtp-exchange-25.pcap");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("capture.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (src, dst) = (cap.clone(), fifo.clone());
    let writer = std::thread::spawn(move || {
        let bytes = std::fs::read(&src).unwrap();
        std::fs::write(&dst, bytes).unwrap();
    });
    let piped = audit(&[&fifo], &["-q"]);
    writer.join().unwrap();
    let direct = audit(&[&cap], &["-q"]);
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    assert!(!piped.records.is_empty());
    assert_eq!(canonical(&piped.records), canonical(&direct.records));
}

/// Issue 13, item 3: pcapng whose interfaces have different link types (as `tcpdump -i any`
/// and multi-interface Wireshark captures write) is read with each interface's own type.
#[test]
fn pcapng_with_interfaces_of_different_link_types() {
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut b = body.to_vec();
        while b.len() % 4 != 0 {
            b.push(0);
        }
        let len = (b.len() + 12) as u32;
        let mut out = kind.to_le_bytes().to_vec();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&b);
        out.extend_from_slice(&len.to_le_bytes());
        out
    }
    fn epb(iface: u32, ts_us: u64, data: &[u8]) -> Vec<u8> {
        let mut b = iface.to_le_bytes().to_vec();
        b.extend_from_slice(&((ts_us >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(ts_us as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        block(6, &b)
    }
    // One DNS query over IPv4/UDP, as raw IP and inside Ethernet.
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let udp_payload = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
    let udp_len = (8 + udp_payload.len()) as u16;
    ip.extend_from_slice(&40000u16.to_be_bytes());
    ip.extend_from_slice(&53u16.to_be_bytes());
    ip.extend_from_slice(&udp_len.to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend_from_slice(&udp_payload);
    let total = ip.len() as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    let mut eth = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    eth.extend_from_slice(&ip);
    let mut reply = ip.clone();
    reply[12..16].copy_from_slice(&[10, 0, 0, 2]);
    reply[16..20].copy_from_slice(&[10, 0, 0, 1]);
    reply[20..22].copy_from_slice(&53u16.to_be_bytes());
    reply[22..24].copy_from_slice(&40000u16.to_be_bytes());
    reply[30] |= 0x80; // a response
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut file = block(0x0a0d_0d0a, &shb);
    let idb = |lt: u16| {
        let mut b = lt.to_le_bytes().to_vec();
        b.extend_from_slice(&[0, 0, 0, 0, 4, 0]);
        block(1, &b)
    };
    file.extend(idb(1));
    file.extend(idb(101));
    file.extend(epb(0, 1_700_000_000_000_000, &eth));
    file.extend(epb(1, 1_700_000_000_000_500, &reply));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mixed.pcapng");
    std::fs::write(&p, &file).unwrap();
    let run = audit(&[&p], &["-q"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.summary["packets_read"], 2, "{}", run.summary);
    assert_eq!(run.summary["packets_decoded"], 2, "{}", run.summary);
    assert_eq!(run.records.len(), 1, "both frames are one flow");
    assert_eq!(run.records[0]["network"]["protocol"], "dns");
    assert_eq!(run.records[0]["network"]["packets"], 2);
}

/// Issue 15 (5): CONNECT tunnels through squid (connect-tunnel.pcap) are http with their target;
/// what the proxy let through is classified as the protocol inside (TLS to 443 as a flow of its
/// own to 443 is: http, its TLS fields kept), and a refused tunnel's error page is not.
#[test]
fn issue15_connect_tunnels_name_their_inner_protocol() {
    let run = audit(&[&root().join("pcaps/connect-tunnel.pcap")], &["-q"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut seen: Vec<String> = run
        .records
        .iter()
        .map(|r| {
            assert_eq!(r["network"]["protocol"], "http", "{r}");
            assert_eq!(r["http"]["request"]["method"], "CONNECT", "{r}");
            assert_eq!(r["destination"]["port"], 3128, "{r}");
            assert_eq!(r["exwatch"]["mid_stream"], false, "{r}");
            format!(
                "{} {} {} {} {}",
                r["exwatch"]["http"]["tunnel_target"]
                    .as_str()
                    .unwrap_or("-"),
                r["http"]["response"]["status_code"],
                r["exwatch"]["inner_protocol"].as_str().unwrap_or("-"),
                r["tls"]["version"].as_str().unwrap_or("-"),
                r["tls"]["client"]["server_name"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "mail.contoso.test:25 403 - - -",
            "mail.contoso.test:443 200 http 1.2 mail.contoso.test",
            "mail.contoso.test:443 200 http 1.3 mail.contoso.test",
            "mail.contoso.test:80 200 http - -",
        ]
    );
    for r in &run.records {
        if r["tls"]["version"].is_string() {
            assert!(
                r["exwatch"]["evidence"]
                    .as_str()
                    .is_some_and(|e| e.ends_with("inner TLS implicit on the target port (https)")),
                "{r}"
            );
            for k in ["ja3", "ja4"] {
                assert!(r["tls"]["client"][k].is_string(), "{k}: {r}");
            }
            for k in ["ja3s", "ja4s"] {
                assert!(r["tls"]["server"][k].is_string(), "{k}: {r}");
            }
        }
        if r["exwatch"]["inner_protocol"] == "http" && r.get("tls").is_none() {
            // the inner request's path names the Exchange service
            assert_eq!(r["url"]["path"], "/owa/", "{r}");
            assert_eq!(r["exwatch"]["service"], "owa", "{r}");
        }
        if r["http"]["response"]["status_code"] == 403 {
            assert!(
                r.get("tls").is_none() && r["url"].get("path").is_none(),
                "{r}"
            );
        }
    }
}

/// Issue 15 (4): the flows of a capture built from a specification, as (server port,
/// protocol, confidence, the value of `key`), sorted by server port.
fn issue15_flows(capture: &str, key: &str) -> Vec<(u64, String, String, String)> {
    let run = audit(&[&root().join("pcaps").join(capture)], &["-q"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = |r: &Value, k: &str| field(r, k).as_str().unwrap_or("").to_string();
    let mut v: Vec<_> = run
        .records
        .iter()
        .map(|r| {
            (
                field(r, "destination.port").as_u64().unwrap_or(0),
                s(r, "network.protocol"),
                s(r, "exwatch.confidence"),
                s(r, key),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn issue15_connectionless_dcerpc_names_its_interface_on_any_port() {
    let flows = issue15_flows("dcerpc-cl-udp.pcap", "exwatch.dcerpc.interface");
    let want = |port: u64, iface: &str| (port, "dcerpc".into(), "payload".into(), iface.into());
    assert_eq!(flows, vec![want(135, "epm"), want(49711, "wkssvc")]);
}

#[test]
fn issue15_rdp_over_udp_from_its_syn_and_syn_ack_on_any_port() {
    let flows = issue15_flows("rdp-udp.pcap", "exwatch.evidence");
    let ports: Vec<_> = flows
        .iter()
        .map(|(p, proto, conf, _)| (*p, proto.as_str(), conf.as_str()))
        .collect();
    assert_eq!(
        ports,
        vec![(3389, "rdp", "payload"), (50123, "rdp", "payload")]
    );
    assert!(flows[0].3.contains("version 2, reliable"), "{}", flows[0].3);
    assert!(flows[1].3.contains("RDP-UDP2), lossy"), "{}", flows[1].3);
    assert!(flows
        .iter()
        .all(|f| f.3.contains("acknowledging its sequence")));
}

#[test]
fn issue15_ms_turn_older_form_and_microsoft_attributes() {
    let flows = issue15_flows("ms-turn.pcap", "exwatch.evidence");
    let got: Vec<_> = flows
        .iter()
        .map(|(p, proto, conf, _)| (*p, proto.as_str(), conf.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![(3478, "stun", "payload"), (3479, "stun", "payload")]
    );
    assert!(
        flows[0]
            .3
            .starts_with("MS-TURN Allocate Request with MAGIC-COOKIE"),
        "{}",
        flows[0].3
    );
    assert!(
        flows[1].3.contains("MS-TURN attributes, MS-VERSION 6"),
        "{}",
        flows[1].3
    );
}

/// Issue 15 (4): SIP whose first datagram is a keep-alive (a double CRLF, three junk bytes)
/// and whose message is a bare REGISTER, answered or not, on 5060 and on another port.
#[test]
fn issue15_sip_after_keepalive_junk_and_bare_register() {
    let flows = issue15_flows("sip-keepalive-register.pcap", "exwatch.evidence");
    let got: Vec<_> = flows
        .iter()
        .map(|(p, proto, conf, ev)| (*p, proto.as_str(), conf.as_str(), ev.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (5060, "sip", "payload", "SIP REGISTER over UDP"),
            (
                5080,
                "sip",
                "payload",
                "SIP REGISTER, 401 response over UDP"
            ),
        ]
    );
}

/// Issue 15 (4): H.225.0 RAS gatekeeper discovery over UDP, on 1719 and on another port,
/// named from the PER-encoded message and its protocol identifier; no port mismatch from the
/// UM media range the ports fall in.
#[test]
fn issue15_h225_ras_gatekeeper_discovery_on_any_port() {
    let flows = issue15_flows("h225-ras.pcap", "exwatch.evidence");
    let want = |port: u64| {
        (
            port,
            "h323".to_string(),
            "payload".to_string(),
            "H.225.0 RAS GatekeeperRequest (protocol version 4)".to_string(),
        )
    };
    assert_eq!(flows, vec![want(1719), want(41719)]);
    let run = audit(&[&root().join("pcaps/h225-ras.pcap")], &["-q"]);
    assert!(run
        .records
        .iter()
        .all(|r| field(r, "exwatch.port_mismatch").is_null()));
}

/// Issue 15 (4): H.225.0 RAS admission and disengage, which carry no protocol identifier,
/// named from a request answered with the same requestSeqNum: on 1719 and on another port.
#[test]
fn issue15_h225_ras_admission_answered_on_any_port() {
    let flows = issue15_flows("h225-ras-admission.pcap", "exwatch.evidence");
    let want = |port: u64, evidence: &str| {
        (
            port,
            "h323".to_string(),
            "payload".to_string(),
            format!("H.225.0 RAS {evidence}"),
        )
    };
    assert_eq!(
        flows,
        vec![
            want(1719, "AdmissionRequest, AdmissionConfirm (requestSeqNum 7)"),
            want(1719, "DisengageRequest, DisengageConfirm (requestSeqNum 9)"),
            want(41719, "AdmissionRequest, AdmissionReject (requestSeqNum 8)"),
        ]
    );
}

/// Issue 15 (8): flows whose originator only the payload tells. An HTTP connection picked up
/// after its handshake between two ephemeral ports (the lower one, the client's, looks like
/// the server), and DNS answers between two port-53 servers whose queries were missed: the
/// request line and the answers, not the ports, say who the client is; `mid_stream` stays.
#[test]
fn issue15_request_lines_and_dns_answers_decide_the_originator() {
    let one = |capture: &str| {
        let run = audit(&[&root().join("pcaps").join(capture)], &["-q"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.records.len(), 1, "{capture}: {:?}", run.records);
        run.records[0].clone()
    };
    let http = one("http-midstream-reversed.pcap");
    // tshark: "40080 -> 50080 POST /EWS/Exchange.asmx".
    assert_eq!(field(&http, "source.port"), 40080);
    assert_eq!(field(&http, "destination.port"), 50080);
    assert_eq!(field(&http, "network.protocol"), "http");
    assert_eq!(field(&http, "exwatch.service"), "ews");
    assert_eq!(field(&http, "exwatch.mid_stream"), true);
    assert_eq!(field(&http, "http.response.status_code"), 200);
    // The client sent the requests: its counters are the source's.
    assert!(field(&http, "source.bytes").as_u64() < field(&http, "destination.bytes").as_u64());
    let dns = one("dns-answer-only-53.pcap");
    // tshark: "Standard query response" from 192.0.2.10: the server is the destination.
    assert_eq!(field(&dns, "source.ip"), "192.0.2.20");
    assert_eq!(field(&dns, "destination.ip"), "192.0.2.10");
    assert_eq!(field(&dns, "network.protocol"), "dns");
    assert_eq!(field(&dns, "dns.question.name"), "mail.contoso.test");
    assert_eq!(field(&dns, "exwatch.mid_stream"), true);
    assert_eq!(field(&dns, "source.packets"), 0);
    assert_eq!(field(&dns, "destination.packets"), 2);
}

/// The run on `input` fed through standard input (one reader for all workers).
fn audit_stdin(input: &Path, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (rec, sum) = (dir.path().join("r.ndjson"), dir.path().join("s.json"));
    let out = exwatch()
        .args(["audit", "--json"])
        .arg(&rec)
        .arg("--summary-json")
        .arg(&sum)
        .args(extra)
        .arg("-")
        .stdin(std::fs::File::open(input).unwrap())
        .output()
        .unwrap();
    collect(out, &rec, &sum)
}

/// Issue 11: a capture file is read whole by one reader per worker, each handing its own
/// worker the frames that hash to it; standard input and compressed files have one reader for
/// all workers. Both give the same records and counts for the cross-flow captures (SIP/SDP
/// media, endpoint-mapper ports), and a damaged file is reported once, not once per reader.
#[test]
fn one_reader_per_worker_and_one_shared_reader_agree() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "sip-udp-call.pcap",
        "dcerpc-epm-dynamic.pcap",
        "demo-exchange-day.pcap",
    ] {
        let cap = root().join("pcaps").join(name);
        let own = audit(&[&cap], &["--threads", "3", "-q"]);
        let piped = audit_stdin(&cap, &["--threads", "3", "-q"]);
        let gz = dir.path().join(format!("{name}.gz"));
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(&std::fs::read(&cap).unwrap()).unwrap();
        enc.finish().unwrap();
        let packed = audit(&[&gz], &["--threads", "3", "-q"]);
        assert!(!own.records.is_empty(), "{name}");
        for (how, other) in [("standard input", &piped), ("gzip", &packed)] {
            assert_eq!(other.code, 0, "{name} from {how}: {}", other.stderr);
            assert_eq!(
                canonical(&own.records),
                canonical(&other.records),
                "{name}: records from {how}"
            );
            for k in ["packets_read", "packets_undecodable", "flows"] {
                assert_eq!(own.summary[k], other.summary[k], "{name}: {k} from {how}");
            }
        }
    }
    let src = std::fs::read(shared("smtp.pcap")).unwrap();
    let (_d, p) = damaged("cut.pcap", &src[..src.len() - 10]);
    let run = audit(&[&p, &shared("pop3.pcap")], &["--threads", "3", "-q"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert_eq!(
        run.stderr
            .matches("cut.pcap: packet 95: damaged capture")
            .count(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(run.summary["packets_read"], 94 + 144);
    assert_eq!(run.summary["files_read"], 1);
}
