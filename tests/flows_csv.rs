//! `--flows-csv`: one row per flow, the same file for any number of threads.

mod common;
use common::{exwatch, root};

fn run(threads: &str) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let (csv, sum) = (dir.path().join("flows.csv"), dir.path().join("s.json"));
    let out = exwatch()
        .arg("audit")
        .arg("-q")
        .args(["--threads", threads, "--policy"])
        .arg(root().join("examples/policy.toml"))
        .arg("--flows-csv")
        .arg(&csv)
        .arg("--summary-json")
        .arg(&sum)
        .arg(root().join("pcaps/demo-exchange-day.pcap"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary = serde_json::from_slice(&std::fs::read(&sum).unwrap()).unwrap();
    (std::fs::read_to_string(&csv).unwrap(), summary)
}

#[test]
fn flows_csv_has_one_row_per_flow_and_is_the_same_for_any_thread_count() {
    let (one, summary) = run("1");
    let (two, _) = run("2");
    assert_eq!(one, two, "--threads 1 and 2 give the same file");
    let mut lines = one.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "start");
    assert_eq!(header.len(), 17);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len() as u64, summary["flows"].as_u64().unwrap());
    assert!(rows.iter().all(|r| r.len() == header.len()));
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let unexpected = rows
        .iter()
        .filter(|r| r[col("policy.verdict")] != "allowed")
        .count() as u64;
    let p = &summary["policy"];
    assert_eq!(
        unexpected,
        p["unexpected"].as_u64().unwrap() + p["mismatch"].as_u64().unwrap()
    );
    let bytes: u64 = rows
        .iter()
        .map(|r| {
            r[col("source.bytes")].parse::<u64>().unwrap()
                + r[col("destination.bytes")].parse::<u64>().unwrap()
        })
        .sum();
    let total: u64 = summary["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(bytes, total);
}

#[test]
fn a_flows_csv_path_that_cannot_be_written_exits_1_and_says_where() {
    let out = exwatch()
        .args(["audit", "-q", "--flows-csv", "/nonexistent/dir/flows.csv"])
        .arg(root().join("pcaps/dns-udp.pcap"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/dir/flows.csv"), "{err}");
}
