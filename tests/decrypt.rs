//! `--tls-keylog`: the Exchange services inside HTTPS, decrypted with curl's key logs of
//! `pcaps/https-keylog-tls12.pcap` and `-tls13.pcap` (`pcaps/record/https-keylog.sh`), checked
//! against tshark's decryption of the same captures; wrong keys and bad key log lines.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn cap(v: &str) -> (PathBuf, PathBuf) {
    let p = root().join("pcaps");
    (
        p.join(format!("https-keylog-tls{v}.pcap")),
        p.join(format!("https-keylog-tls{v}.keys")),
    )
}

fn decrypted(v: &str, keys: &std::path::Path) -> Run {
    let (pcap, _) = cap(v);
    let r = audit(&[&pcap], &["-q", "--tls-keylog", keys.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

/// tshark's decryption: the first request of each client port (path without the query).
fn tshark_paths(v: &str) -> BTreeMap<u64, (String, String)> {
    let (pcap, keys) = cap(v);
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keys.display()))
        .args(["-Y", "http.request", "-T", "fields"])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "http.request.method",
            "-e",
            "http.request.uri",
        ])
        .output()
        .expect("tshark (make deps-live)");
    let mut m = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let path = f[2].split('?').next().unwrap().to_string();
        m.entry(f[0].parse().unwrap())
            .or_insert((f[1].to_string(), path));
    }
    m
}

#[test]
fn every_exchange_service_inside_tls_12_and_13_as_tshark_decrypts_it() {
    for v in ["12", "13"] {
        let (_, keys) = cap(v);
        let r = decrypted(v, &keys);
        let want = tshark_paths(v);
        assert_eq!(want.len(), 17, "tshark decrypted {v}: {want:?}");
        let mut services = std::collections::BTreeSet::new();
        for rec in &r.records {
            let port = rec["source"]["port"].as_u64().unwrap();
            assert_eq!(rec["exwatch"]["tls"]["decrypted"], true, "{rec}");
            let (method, path) = &want[&port];
            assert_eq!(rec["url"]["path"], path.as_str(), "TLS {v} port {port}");
            assert_eq!(rec["http"]["request"]["method"], method.as_str());
            assert_eq!(rec["network"]["protocol"], "http");
            services.insert(rec["exwatch"]["service"].as_str().unwrap().to_string());
            if rec["exwatch"]["service"] == "mapi-http" {
                assert!(rec["exwatch"]["mapi"]["request_type"].is_string(), "{rec}");
            }
            if rec["exwatch"]["service"] == "rpc-http" {
                assert!(rec["exwatch"]["rpc_http"]["target_port"].is_u64(), "{rec}");
            }
        }
        assert_eq!(r.records.len(), 17);
        let all: Vec<&str> = services.iter().map(String::as_str).collect();
        assert_eq!(
            all,
            [
                "activesync",
                "autodiscover",
                "ecp",
                "ews",
                "mapi-http",
                "oab",
                "owa",
                "powershell",
                "rpc-http"
            ],
            "TLS {v}"
        );
        // The suites the recording asked for were all decrypted.
        let ciphers: std::collections::BTreeSet<&str> = r
            .records
            .iter()
            .map(|x| x["tls"]["cipher"].as_str().unwrap())
            .collect();
        assert_eq!(ciphers.len(), 3, "{ciphers:?}");
    }
}

#[test]
fn without_the_key_log_it_is_https() {
    let (pcap, _) = cap("13");
    let r = audit(&[&pcap], &["-q"]);
    assert!(r
        .records
        .iter()
        .all(|x| x["exwatch"]["service"] == "https"
            && x["exwatch"]["tls"].get("decrypted").is_none()));
}

#[test]
fn wrong_keys_give_a_decrypt_error_and_https() {
    let dir = tempfile::tempdir().unwrap();
    for v in ["12", "13"] {
        let (_, keys) = cap(v);
        // Every secret with its last hex digit changed.
        let text: String = std::fs::read_to_string(&keys)
            .unwrap()
            .lines()
            .map(|l| {
                let mut s = l.to_string();
                let last = s.pop().unwrap();
                s.push(if last == '0' { '1' } else { '0' });
                s + "\n"
            })
            .collect();
        let bad = dir.path().join(format!("bad{v}.keys"));
        std::fs::write(&bad, text).unwrap();
        let r = decrypted(v, &bad);
        for rec in &r.records {
            assert_eq!(rec["exwatch"]["service"], "https", "{rec}");
            let e = rec["exwatch"]["tls"]["decrypt_error"].as_str().unwrap();
            assert!(e.contains("does not open with the logged keys"), "{e}");
            assert!(rec["exwatch"]["tls"].get("decrypted").is_none());
        }
    }
}

#[test]
fn bad_key_log_lines_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (_, keys) = cap("12");
    let mut text = String::from("# a comment\nCLIENT_RANDOM nothex 00\n");
    text.push_str(&std::fs::read_to_string(&keys).unwrap());
    text.push_str("garbage\n");
    let k = dir.path().join("k");
    std::fs::write(&k, text).unwrap();
    let r = decrypted("12", &k);
    let kp = k.display().to_string();
    assert!(
        r.stderr.contains(&format!("{kp}:2: the client random")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("{kp}:20: expected LABEL")),
        "{}",
        r.stderr
    );
    assert!(r
        .records
        .iter()
        .all(|x| x["exwatch"]["tls"]["decrypted"] == true));
    let missing = audit(
        &[&cap("12").0],
        &["-q", "--tls-keylog", "/nonexistent/keys"],
    );
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("--tls-keylog /nonexistent/keys"));
}

#[test]
fn nothing_decrypted_reaches_a_record() {
    for v in ["12", "13"] {
        let (_, keys) = cap(v);
        let r = decrypted(v, &keys);
        let secrets: Vec<String> = std::fs::read_to_string(&keys)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_lowercase))
            .collect();
        // Basic credentials, their base64, the back-end cookie and a query value, all inside TLS.
        let mut banned = vec![
            "exwatch-secret-pw-3".to_string(),
            "YWxpY2VAY29udG9zby50ZXN0OmV4d2F0Y2gtc2VjcmV0LXB3LTM".to_string(),
            "secretcookie123".to_string(),
            "DeviceId=ABC123".to_string(),
            "MailboxId".to_string(),
        ];
        banned.extend(secrets);
        for rec in &r.records {
            let text = rec.to_string().to_lowercase();
            for b in &banned {
                assert!(!text.contains(&b.to_lowercase()), "{b} in {rec}");
            }
        }
        assert!(!r.stderr.contains("exwatch-secret-pw-3"));
        let summary = r.summary.to_string().to_lowercase();
        assert!(!summary.contains("exwatch-secret-pw-3"));
    }
}

/// A policy that allows HTTPS to the server only for EWS judges the decrypted services: EWS
/// is allowed, every other service inside TLS is a mismatch; without the key log every flow is
/// `https`, which the rule does not allow.
#[test]
fn a_policy_judges_the_service_inside_tls() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "[[group]]\nname = \"clients\"\ncidrs = [\"192.0.2.20\"]\n\n\
         [[group]]\nname = \"mailbox\"\ncidrs = [\"192.0.2.10\"]\n\n\
         [[rule]]\nname = \"ews-only\"\nfrom = \"clients\"\nto = \"mailbox\"\n\
         transport = \"tcp\"\nports = [\"443\"]\nservices = [\"ews\"]\n",
    )
    .unwrap();
    let (pcap, keys) = cap("12");
    let p = policy.to_str().unwrap();
    let r = audit(
        &[&pcap],
        &["-q", "--policy", p, "--tls-keylog", keys.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for rec in &r.records {
        let want = if rec["exwatch"]["service"] == "ews" {
            "allowed"
        } else {
            "mismatch"
        };
        assert_eq!(rec["exwatch"]["policy"]["verdict"], want, "{rec}");
    }
    assert_eq!(
        r.records
            .iter()
            .filter(|x| x["exwatch"]["policy"]["verdict"] == "allowed")
            .count(),
        3
    );
    let blind = audit(&[&pcap], &["-q", "--policy", p]);
    assert!(blind
        .records
        .iter()
        .all(|x| x["exwatch"]["policy"]["verdict"] != "allowed"));
}
