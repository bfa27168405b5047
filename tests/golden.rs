//! Golden results: every capture's flows, reduced to stable fields, against `tests/golden/`.
//!
//! After a deliberate change in classification, regenerate with `make golden` (which runs this
//! test with EXWATCH_BLESS=1) and review the diff before committing it.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Record fields kept in golden files besides endpoints and the classification: the
/// Exchange-specific facts. Counters and timestamps are left out on purpose.
const KEPT: &[&str] = &[
    "exwatch.conn_state",
    "exwatch.mid_stream",
    "exwatch.port_mismatch",
    "exwatch.parent",
    "exwatch.exchange_markers",
    "exwatch.tls_upgrade",
    "exwatch.mapi.request_type",
    "exwatch.mapi.endpoint",
    "exwatch.rpc_http.target_port",
    "exwatch.dcerpc.bind_result",
    "exwatch.sip.method",
    "exwatch.dcerpc.interface",
    "url.domain",
    "url.path",
    "tls.version",
    "tls.client.server_name",
    "dns.question.name",
    "network.vlan.id",
];

fn endpoint(r: &Value, side: &str) -> String {
    let ip = field(r, &format!("{side}.ip"))
        .as_str()
        .unwrap_or("?")
        .to_string();
    match field(r, &format!("{side}.port")).as_u64() {
        Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
        Some(p) => format!("{ip}:{p}"),
        None => ip,
    }
}

/// One flow as the golden file keeps it.
fn reduce(r: &Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("source".into(), json!(endpoint(r, "source")));
    m.insert("destination".into(), json!(endpoint(r, "destination")));
    m.insert("transport".into(), field(r, "network.transport").clone());
    m.insert("protocol".into(), field(r, "network.protocol").clone());
    m.insert("service".into(), field(r, "exwatch.service").clone());
    m.insert("confidence".into(), field(r, "exwatch.confidence").clone());
    for k in KEPT {
        let v = field(r, k);
        if !v.is_null() {
            m.insert((*k).into(), v.clone());
        }
    }
    Value::Object(m)
}

fn golden_path(cap: &Path) -> PathBuf {
    let dir = if cap.starts_with(root().join("pcaps")) {
        "pcaps"
    } else {
        "shared"
    };
    let name = cap.file_name().unwrap().to_string_lossy();
    root()
        .join("tests/golden")
        .join(format!("{dir}--{name}.json"))
}

#[test]
fn every_capture_matches_its_golden_file() {
    let bless = std::env::var_os("EXWATCH_BLESS").is_some();
    let mut failures = Vec::new();
    for cap in all_captures() {
        let run = audit(&[&cap], &["-q", "--threads", "2"]);
        assert_eq!(run.code, 0, "{}: {}", cap.display(), run.stderr);
        let mut flows: Vec<Value> = run.records.iter().map(reduce).collect();
        flows.sort_by_key(|v| v.to_string());
        let got = serde_json::to_string_pretty(&json!({
            "capture": cap.strip_prefix(root()).unwrap_or(&cap).to_string_lossy(),
            "flows": flows,
        }))
        .unwrap()
            + "\n";
        let path = golden_path(&cap);
        if bless {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == got => {}
            Ok(want) => failures.push(format!(
                "{}: differs from {}\n{}",
                cap.display(),
                path.display(),
                first_difference(&want, &got)
            )),
            Err(_) => failures.push(format!(
                "{}: no golden file {} (run `make golden` and review it)",
                cap.display(),
                path.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn first_difference(want: &str, got: &str) -> String {
    for (i, (a, b)) in want.lines().zip(got.lines()).enumerate() {
        if a != b {
            return format!("line {}: want {a}\n         got  {b}", i + 1);
        }
    }
    format!(
        "lengths differ: want {} lines, got {}",
        want.lines().count(),
        got.lines().count()
    )
}
