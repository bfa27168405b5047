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
