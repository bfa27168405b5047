//! The ClickHouse output against a real server (Debian's clickhouse-server, installed by
//! `make deps-live`), started by the test in a network namespace of its own: the records
//! inserted are the records written to `--json`, a query by protocol gives the summary's
//! counts, and a server stopped in the middle of a live capture loses exactly what the
//! summary says it lost.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Root, `ip netns` and the server, or why not.
fn ready() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping the ClickHouse tests: not root (network namespaces need root)");
        return false;
    }
    for t in ["clickhouse-server", "curl", "tcpreplay"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "{t} is not installed: run `make deps-live`");
    }
    true
}

/// A network namespace holding a veth pair (for live capture) and a ClickHouse server on its
/// loopback; everything is removed on drop.
struct Db {
    ns: String,
    dir: tempfile::TempDir,
    server: Option<Child>,
    /// The capture end and the replay end of the veth pair.
    cap_if: String,
    replay_if: String,
}

const URL: &str = "http://127.0.0.1:8123/";

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Db {
    fn new() -> Db {
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let db = Db {
            ns: format!("exch{id}"),
            dir: tempfile::tempdir().unwrap(),
            server: None,
            cap_if: format!("exch{id}a"),
            replay_if: format!("exch{id}b"),
        };
        run_ok(Command::new("ip").args(["netns", "add", &db.ns]));
        db.exec(&["ip", "link", "set", "lo", "up"]);
        db.exec(&[
            "ip",
            "link",
            "add",
            &db.cap_if,
            "type",
            "veth",
            "peer",
            "name",
            &db.replay_if,
        ]);
        for i in [&db.cap_if, &db.replay_if] {
            db.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{i}.disable_ipv6=1"),
            ]);
            db.exec(&["ip", "link", "set", i, "up"]);
        }
        let d = db.dir.path();
        std::fs::write(
            d.join("config.xml"),
            format!(
                "<?xml version=\"1.0\"?>\n<yandex>\n\
                 <logger><level>warning</level><console>1</console></logger>\n\
                 <http_port>8123</http_port><tcp_port>9000</tcp_port>\n\
                 <listen_host>127.0.0.1</listen_host>\n\
                 <path>{0}/data/</path><tmp_path>{0}/tmp/</tmp_path>\n\
                 <users_config>users.xml</users_config>\n\
                 <default_profile>default</default_profile><default_database>default</default_database>\n\
                 <mark_cache_size>5368709</mark_cache_size>\n</yandex>\n",
                d.display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("users.xml"),
            "<?xml version=\"1.0\"?>\n<yandex><profiles><default></default></profiles>\
             <users><default><password></password><networks><ip>127.0.0.1</ip></networks>\
             <profile>default</profile><quota>default</quota></default></users>\
             <quotas><default></default></quotas></yandex>\n",
        )
        .unwrap();
        db
    }

    /// A running server holding the empty table, unless the test cannot run here.
    fn with_table() -> Option<Db> {
        if !ready() {
            return None;
        }
        let mut db = Db::new();
        db.start_server();
        db.create_table();
        Some(db)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).args(args);
        c
    }

    fn exec(&self, args: &[&str]) -> String {
        run_ok(&mut self.cmd(args))
    }

    /// exwatch inside the namespace.
    fn exwatch(&self) -> Command {
        self.cmd(&[env!("CARGO_BIN_EXE_exwatch")])
    }

    fn start_server(&mut self) {
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("server.log")).unwrap();
        let child = self
            .cmd(&["clickhouse-server"])
            .arg(format!("--config-file={}", d.join("config.xml").display()))
            .current_dir(d)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.server = Some(child);
        let t0 = Instant::now();
        while self.query("SELECT 1").trim() != "1" {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "clickhouse-server did not start: {}",
                std::fs::read_to_string(d.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop_server(&mut self) {
        if let Some(mut c) = self.server.take() {
            // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// A query's text answer ("" when the server does not answer).
    fn query(&self, q: &str) -> String {
        self.query_at(URL, q)
    }

    fn query_at(&self, url: &str, q: &str) -> String {
        let out = self
            .cmd(&["curl", "-sS", "--max-time", "10", "--data-binary", q, url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn create_table(&self) {
        let ddl = run_ok(exwatch().args(["schema", "--format", "clickhouse"]));
        let file = root().join("contrib/clickhouse/exwatch.sql");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap_or_default(),
            ddl,
            "{} is `exwatch schema --format clickhouse`",
            file.display()
        );
        let out = self.query(&ddl);
        assert!(out.trim().is_empty(), "CREATE TABLE: {out}");
    }

    /// Every row, as JSON objects with numbers unquoted.
    fn rows(&self) -> Vec<Value> {
        // Numbers unquoted (a URL setting: 18.16 has no SETTINGS clause).
        let url = format!("{URL}?output_format_json_quote_64bit_integers=0");
        self.query_at(&url, "SELECT * FROM exwatch_flows FORMAT JSONEachRow")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.stop_server();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// A record as a row holds it: flattened with `_` for `.`, booleans as 0/1, and the columns
/// a record does not have (null, empty arrays) left out.
fn as_row(rec: &Value) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.trim_start_matches('@').to_string()
                    } else {
                        format!("{prefix}_{k}")
                    };
                    walk(&p, x, out);
                }
            }
            Value::Bool(b) => {
                out.insert(prefix.to_string(), Value::from(u8::from(*b)));
            }
            Value::Null => {}
            Value::Array(a) if a.is_empty() => {}
            x => {
                out.insert(prefix.to_string(), x.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", rec, &mut out);
    out
}

fn row_of(row: &Value) -> BTreeMap<String, Value> {
    row.as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn sorted(v: Vec<BTreeMap<String, Value>>) -> Vec<String> {
    let mut s: Vec<String> = v
        .into_iter()
        .map(|m| serde_json::to_string(&m).unwrap())
        .collect();
    s.sort();
    s
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn read_ndjson(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn records_inserted_are_the_records_written() {
    let Some(db) = Db::with_table() else {
        return;
    };
    let d = db.dir.path().to_path_buf();
    let (rec, sum) = (d.join("r.ndjson"), d.join("s.json"));
    let caps: Vec<PathBuf> = [
        "pcaps/demo-exchange-day.pcap",
        "pcaps/https-exchange.pcap",
        "pcaps/sip-udp-call-rtcp.pcap",
        "pcaps/tls-resume-443.pcap",
    ]
    .iter()
    .map(|c| root().join(c))
    .chain([shared("smtp.pcap"), shared("dns.pcap")])
    .collect();
    let out = db
        .exwatch()
        .args(["audit", "-q", "--clickhouse", URL, "--json"])
        .arg(&rec)
        .arg("--summary-json")
        .arg(&sum)
        .args(&caps)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = read_ndjson(&rec);
    assert!(records.len() > 100, "{} records", records.len());
    let s = read_json(&sum);
    assert_eq!(s["clickhouse"]["inserted"], records.len() as u64, "{s}");
    assert_eq!(s["clickhouse"]["lost"], 0);
    let want = sorted(records.iter().map(as_row).collect());
    let got = sorted(db.rows().iter().map(row_of).collect());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "row vs record");
    }
    // A query by protocol gives the summary's flow counts.
    let mut by_proto: BTreeMap<String, u64> = BTreeMap::new();
    for svc in s["services"].as_array().unwrap() {
        *by_proto
            .entry(svc["protocol"].as_str().unwrap().to_string())
            .or_default() += svc["flows"].as_u64().unwrap();
    }
    let counted: BTreeMap<String, u64> = db
        .query("SELECT network_protocol, count() FROM exwatch_flows GROUP BY network_protocol")
        .lines()
        .map(|l| {
            let (p, n) = l.split_once('\t').unwrap();
            (p.to_string(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(counted, by_proto);
}

fn replay(db: &Db, caps: &[&str]) {
    let mut c = db.cmd(&["tcpreplay", "-q", "--topspeed", "-i", &db.replay_if]);
    c.args(caps.iter().map(|c| root().join("pcaps").join(c)))
        .stdout(Stdio::null());
    assert!(c.status().unwrap().success(), "tcpreplay");
}

#[test]
fn a_server_stopped_mid_capture_loses_what_the_summary_says() {
    let Some(mut db) = Db::with_table() else {
        return;
    };
    let d = db.dir.path().to_path_buf();
    let (rec, sum) = (d.join("live.ndjson"), d.join("live-summary.json"));
    let stderr = std::fs::File::create(d.join("live.err")).unwrap();
    // Short timeouts: flows end, and their records go out, while the capture runs.
    let mut live = db
        .exwatch()
        .args(["live", "-i", &db.cap_if, "--clickhouse", URL, "--json"])
        .arg(&rec)
        .arg("--summary-json")
        .arg(&sum)
        .args(["--stats-interval", "1", "--active-timeout", "0"])
        .args([
            "--tcp-timeout",
            "1",
            "--udp-timeout",
            "1",
            "--other-timeout",
            "1",
        ])
        .args(["--syn-timeout", "1", "--tcp-close-timeout", "0.2"])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let err = || std::fs::read_to_string(d.join("live.err")).unwrap_or_default();
    let t0 = Instant::now();
    while !err().contains("capturing on") {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", err());
        std::thread::sleep(Duration::from_millis(50));
    }
    replay(&db, &["demo-exchange-day.pcap"]);
    // Wait until the first flows are in the table, then stop the server.
    let t0 = Instant::now();
    loop {
        let n: u64 = db
            .query("SELECT count() FROM exwatch_flows")
            .trim()
            .parse()
            .unwrap_or(0);
        if n > 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no rows: {}", err());
        std::thread::sleep(Duration::from_millis(200));
    }
    db.stop_server();
    replay(
        &db,
        &["https-exchange.pcap", "sip-udp-call.pcap", "dns-udp.pcap"],
    );
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    unsafe { libc::kill(live.id() as i32, libc::SIGTERM) };
    let st = live.wait().unwrap();
    let s = read_json(&sum);
    let records = read_ndjson(&rec);
    let (inserted, lost) = (
        s["clickhouse"]["inserted"].as_u64().unwrap(),
        s["clickhouse"]["lost"].as_u64().unwrap(),
    );
    eprintln!(
        "inserted {inserted}, lost {lost}, records {}",
        records.len()
    );
    assert!(inserted > 0 && lost > 0, "{s}");
    assert_eq!(inserted + lost, records.len() as u64, "{s}");
    assert_eq!(st.code(), Some(1), "lost records make exit 1: {}", err());
    assert!(err().contains("clickhouse-lost"), "{}", err());
    // The server, started again on its data, holds exactly the rows it acknowledged, each
    // one a record written to --json.
    db.start_server();
    let rows = db.rows();
    assert_eq!(rows.len() as u64, inserted);
    let want: std::collections::BTreeSet<String> = sorted(records.iter().map(as_row).collect())
        .into_iter()
        .collect();
    for r in sorted(rows.iter().map(row_of).collect()) {
        assert!(want.contains(&r), "a row that is no record: {r}");
    }
}
