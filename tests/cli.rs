//! Command-line conventions of capture tools: `-r`, capture directories, `--version`,
//! completions and the manual page, run through the built binary.

use std::process::Command;

fn exwatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_exwatch"))
        .args(args)
        .output()
        .expect("running exwatch")
}

fn pcap(name: &str) -> String {
    format!("{}/pcaps/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `exwatch audit` with `args`, returning its summary JSON.
fn audit_summary(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["audit", "--quiet", "--summary-json", "-"];
    a.extend_from_slice(args);
    let o = exwatch(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("summary JSON")
}

#[test]
fn dash_r_reads_the_same_as_capture_arguments() {
    let (a, b) = (pcap("http-exchange-plain.pcap"), pcap("policy-cases.pcap"));
    let by_arg = audit_summary(&[&a, &b]);
    let by_r = audit_summary(&["-r", &a, "--read", &b]);
    assert_eq!(by_arg["files_read"], 2);
    assert_eq!(by_r["files_read"], 2);
    assert_eq!(by_arg["packets_read"], by_r["packets_read"]);
    assert_eq!(by_arg["services"], by_r["services"]);
}

#[test]
fn a_directory_reads_its_captures_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pcap("http-exchange-plain.pcap"), pcap("policy-cases.pcap"));
    std::fs::copy(&a, dir.path().join("2.pcap")).unwrap();
    std::fs::copy(&b, dir.path().join("1.PCAP")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a capture").unwrap();
    let d = dir.path().to_str().unwrap();
    let from_dir = audit_summary(&[d]);
    let listed = audit_summary(&[&b, &a]);
    assert_eq!(from_dir["files_read"], 2, "notes.txt is not read");
    assert_eq!(from_dir["packets_read"], listed["packets_read"]);
    assert_eq!(from_dir["services"], listed["services"]);

    let empty = tempfile::tempdir().unwrap();
    let o = exwatch(&["audit", "--quiet", empty.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no .pcap, .pcapng or .cap file"));
}

#[test]
fn every_subcommand_names_its_version_and_libpcap() {
    for sub in [
        &[][..],
        &["audit"],
        &["live"],
        &["validate"],
        &["learn"],
        &["policy"],
    ] {
        let mut args = sub.to_vec();
        args.push("--version");
        let o = exwatch(&args);
        assert!(o.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains(env!("CARGO_PKG_VERSION")), "{args:?}: {text}");
        assert!(text.contains("libpcap version"), "{args:?}: {text}");
    }
}

#[test]
fn completions_and_the_manual_page_come_from_the_cli_definition() {
    let bash = exwatch(&["completions", "bash"]);
    assert!(bash.status.success());
    let bash = String::from_utf8_lossy(&bash.stdout);
    for word in ["_exwatch", "audit", "validate", "--summary-json", "--read"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let zsh = exwatch(&["completions", "zsh"]);
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef exwatch"));
    let bad = exwatch(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));

    let man = exwatch(&["man"]);
    assert!(man.status.success());
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.contains(".TH exwatch"),
        "{}",
        &man[..man.len().min(200)]
    );
    assert!(man.contains("audit"));
}

/// Packets `tcpdump -r FILE EXPR` prints (one line each with -q -nn).
fn tcpdump_count(file: &str, expr: &str) -> u64 {
    let o = Command::new("tcpdump")
        .args(["-nn", "-q", "-r", file, expr])
        .output()
        .expect("tcpdump (make deps-live installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().count() as u64
}

/// `--bpf` on files reads what tcpdump's filter passes, for every subcommand that reads
/// files; a bad expression is a usage error before anything is read, and an expression that
/// cannot apply to a file's link type stops that file with exit 2, naming both.
#[test]
fn bpf_on_files_reads_what_tcpdump_reads() {
    let demo = pcap("demo-exchange-day.pcap");
    let all = audit_summary(&[&demo])["packets_read"].as_u64().unwrap();
    for expr in [
        "tcp port 25",
        "udp",
        "host 10.1.1.10 and not port 443",
        "ip6",
    ] {
        let want = tcpdump_count(&demo, expr);
        let s = audit_summary(&["--bpf", expr, &demo]);
        assert_eq!(s["packets_read"], want, "{expr}");
        assert_eq!(s["packets_filtered_out"], all - want, "{expr}");
    }
    let rules = format!(
        "{}/tests/policy/forgets-um-media.iptables",
        env!("CARGO_MANIFEST_DIR")
    );
    for sub in [
        vec!["validate", "--rules", &rules],
        vec!["learn", "-o", "/dev/null"],
    ] {
        let mut a = sub.clone();
        a.extend(["-q", "--summary-json", "-", "--bpf", "tcp port 25", &demo]);
        let o = exwatch(&a);
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).expect("summary");
        assert_eq!(
            s["packets_read"],
            tcpdump_count(&demo, "tcp port 25"),
            "{sub:?}"
        );
    }
    let o = exwatch(&["audit", "-q", "--bpf", "tcp prot 25", &demo]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad --bpf filter \"tcp prot 25\"") && err.contains("syntax error"),
        "{err}"
    );
    // rdp.pcap is BSD loopback (DLT_NULL): it has no Ethernet addresses.
    let rdp = format!("{}/../shared/pcaps/rdp.pcap", env!("CARGO_MANIFEST_DIR"));
    let o = exwatch(&[
        "audit",
        "-q",
        "--bpf",
        "ether host 00:11:22:33:44:55",
        &demo,
        &rdp,
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rdp.pcap: --bpf \"ether host 00:11:22:33:44:55\" cannot filter link type 0"),
        "{err}"
    );
}

/// `--progress always` writes lines when standard error is not a terminal: percent and time
/// left for files of known size, bytes and packets for standard input, and a last line with
/// the totals; `auto` writes none there.
#[test]
fn progress_always_writes_lines_off_a_terminal() {
    let (demo, dns) = (pcap("demo-exchange-day.pcap"), pcap("dns-udp.pcap"));
    let packets = audit_summary(&[&demo, &dns])["packets_read"]
        .as_u64()
        .unwrap();
    let o = exwatch(&["audit", "-q", "--progress", "always", &demo, &dns]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 2, "{err}");
    assert!(
        lines.iter().all(|l| l.starts_with("exwatch: progress ")),
        "{err}"
    );
    assert!(
        lines[0].contains("% (") && lines[0].contains("s left"),
        "{err}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("exwatch: progress 100% (")
            && last.ends_with(&format!("about 0 s left, {packets} packets, done")),
        "{err}"
    );
    let o = exwatch(&["audit", "-q", &demo]);
    assert!(
        o.stderr.is_empty(),
        "auto off a terminal: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_exwatch"))
        .args(["audit", "-q", "--progress", "always", "-"])
        .stdin(std::fs::File::open(&demo).unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines()
            .last()
            .unwrap()
            .contains("MiB read, 1933 packets in"),
        "{err}"
    );
}
