//! `--active-timeout`: interim records of flows still alive, in an offline audit (the same
//! worker code makes them live). The final records must not change, and the summary counts
//! interim records apart from flows.

mod common;

use common::{audit, canonical, root};
use serde_json::Value;

#[test]
fn interim_records_leave_final_records_and_accounting_unchanged() {
    let cap = root().join("pcaps/demo-exchange-day.pcap");
    let plain = audit(&[&cap], &[]);
    let with = audit(&[&cap], &["--active-timeout", "1"]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert_eq!(with.code, 0, "{}", with.stderr);
    let (interim, finals): (Vec<Value>, Vec<Value>) = with
        .records
        .iter()
        .cloned()
        .partition(|r| r["exwatch"]["interim"] == true);
    assert!(
        !interim.is_empty(),
        "the demo day has flows longer than a second"
    );
    assert_eq!(
        canonical(&finals),
        canonical(&plain.records),
        "final records unchanged"
    );
    assert_eq!(with.summary["flows"], plain.summary["flows"]);
    assert_eq!(with.summary["interim_records"], interim.len());
    for r in &interim {
        assert_eq!(r["exwatch"]["end_reason"], "active-timeout");
        assert_eq!(
            r["event"]["type"],
            serde_json::json!(["connection", "info"])
        );
        let same = |f: &&Value| {
            f["network"]["community_id"] == r["network"]["community_id"]
                && f["@timestamp"] == r["@timestamp"]
        };
        let fin = finals.iter().find(same).expect("the flow's final record");
        // Cumulative since the flow's start, and taken before the packet that crossed the
        // boundary: never more than the final record.
        for k in ["packets", "bytes"] {
            assert!(r["network"][k].as_u64() <= fin["network"][k].as_u64());
        }
        assert!(r["event"]["end"].as_str() < fin["event"]["end"].as_str());
    }
    // Interim records of one flow come at most once per active timeout of its duration.
    for fin in &finals {
        let n = interim
            .iter()
            .filter(|r| {
                r["network"]["community_id"] == fin["network"]["community_id"]
                    && r["@timestamp"] == fin["@timestamp"]
            })
            .count() as u64;
        let secs = fin["event"]["duration"].as_u64().unwrap() / 1_000_000_000;
        assert!(n <= secs, "{n} interim records for a {secs} s flow");
    }
}

#[test]
fn active_timeout_is_checked() {
    let cap = root().join("pcaps/smtp-exchange-25.pcap");
    let r = audit(&[&cap], &["--active-timeout=-1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--active-timeout"), "{}", r.stderr);
}
