//! Elastic Common Schema conformance: every field of every record of every capture (plain,
//! with `--policy`, with `--home-net`, and under `validate`) has the ECS type and shape of
//! `../shared/ecs/ecs-fields.tsv` (ECS 9.5, from elastic/ecs `generated/ecs/ecs_flat.yml`), or
//! is under `exwatch.`; and every field is in the schema exwatch prints
//! (`exwatch schema`), which is also the Elasticsearch template in `contrib/` and the README's
//! field table.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Fields outside `exwatch.` that ECS does not define, kept beside their ECS siblings (JA4
/// beside JA3), as issue 14 allows.
const NOT_ECS: &[&str] = &["tls.client.ja4", "tls.server.ja4s"];

struct EcsField {
    ty: String,
    array: bool,
    allowed: Vec<String>,
}

fn ecs_fields() -> BTreeMap<String, EcsField> {
    let path = root().join("../shared/ecs/ecs-fields.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the shared ECS table)", path.display()));
    let mut m = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(cols.len() >= 3, "{}: bad line {line:?}", path.display());
        let allowed = cols
            .get(3)
            .filter(|a| !a.is_empty())
            .map(|a| a.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        m.insert(
            cols[0].to_string(),
            EcsField {
                ty: cols[1].to_string(),
                array: cols[2] == "array",
                allowed,
            },
        );
    }
    assert!(
        m.len() > 2000,
        "{} lists {} fields",
        path.display(),
        m.len()
    );
    m
}

/// exwatch's own schema (`exwatch schema --format tsv`): path -> (type, array).
fn own_schema() -> BTreeMap<String, (String, bool)> {
    let out = exwatch()
        .args(["schema", "--format", "tsv"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c[0].to_string(), (c[1].to_string(), c[2] == "array"))
        })
        .collect()
}

/// Every leaf of a record: dotted path and value.
fn leaves<'a>(prefix: &str, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, x, out);
            }
        }
        _ => out.push((prefix.to_string(), v)),
    }
}

/// Whether a scalar JSON value is of the Elasticsearch type `ty`.
fn fits(ty: &str, v: &Value) -> bool {
    match ty {
        "keyword" | "wildcard" | "constant_keyword" | "match_only_text" | "text" => v.is_string(),
        "long" | "integer" | "short" | "byte" | "unsigned_long" => v.is_u64() || v.is_i64(),
        "float" | "double" | "scaled_float" | "half_float" => v.is_number(),
        "boolean" => v.is_boolean(),
        "ip" => v
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        // RFC 3339 in UTC, as records write it.
        "date" => v.as_str().is_some_and(|s| {
            let b = s.as_bytes();
            b.len() >= 20
                && b[4] == b'-'
                && b[7] == b'-'
                && b[10] == b'T'
                && b[13] == b':'
                && s.ends_with('Z')
        }),
        _ => false,
    }
}

/// Check every field of `records`; returns the problems and adds each path seen to `seen`.
fn check(
    what: &str,
    records: &[Value],
    ecs: &BTreeMap<String, EcsField>,
    own: &BTreeMap<String, (String, bool)>,
    seen: &mut BTreeSet<String>,
) -> Vec<String> {
    let mut bad = BTreeSet::new();
    for r in records {
        let mut l = Vec::new();
        leaves("", r, &mut l);
        for (path, v) in l {
            seen.insert(path.clone());
            let Some((ty, array)) = own.get(&path) else {
                bad.insert(format!("{what}: {path} is not in `exwatch schema`"));
                continue;
            };
            let (ty, array) = if path.starts_with("exwatch.") || NOT_ECS.contains(&path.as_str()) {
                (ty.clone(), *array)
            } else {
                match ecs.get(&path) {
                    Some(e) => {
                        for x in v.as_array().map_or(vec![v], |a| a.iter().collect()) {
                            if !e.allowed.is_empty()
                                && !x.as_str().is_some_and(|s| e.allowed.iter().any(|a| a == s))
                            {
                                bad.insert(format!(
                                    "{what}: {path} = {x} is not one of ECS's {:?}",
                                    e.allowed
                                ));
                            }
                        }
                        (e.ty.clone(), e.array)
                    }
                    None => {
                        bad.insert(format!("{what}: {path} is neither ECS nor under exwatch."));
                        continue;
                    }
                }
            };
            let elems: Vec<&Value> = match (v, array) {
                (Value::Array(a), true) => a.iter().collect(),
                (_, true) => {
                    bad.insert(format!("{what}: {path} = {v} should be an array"));
                    continue;
                }
                (Value::Array(_), false) => {
                    bad.insert(format!("{what}: {path} = {v} should be a single value"));
                    continue;
                }
                (_, false) => vec![v],
            };
            for x in elems {
                if !fits(&ty, x) {
                    bad.insert(format!("{what}: {path} = {x} is not a {ty}"));
                }
            }
        }
    }
    bad.into_iter().collect()
}

fn records_of(sub: &str, args: &[&str], cap: &Path) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("r.ndjson");
    let sum = dir.path().join("s.json");
    let out = exwatch()
        .arg(sub)
        .arg("--json")
        .arg(&rec)
        .args(["-q", "--summary-json"])
        .arg(&sum)
        .args(args)
        .arg(cap)
        .output()
        .unwrap();
    let run = collect(out, &rec, &sum);
    // validate exits 8 when some flow would be denied; anything else is a failure.
    assert!(
        run.code == 0 || (sub == "validate" && run.code == 8),
        "{sub} {args:?} {}: exit {}: {}",
        cap.display(),
        run.code,
        run.stderr
    );
    run.records
}

#[test]
fn every_field_of_every_record_has_its_ecs_type_and_shape() {
    let ecs = ecs_fields();
    let own = own_schema();
    let policy = root().join("examples/policy.toml").display().to_string();
    let rules = root()
        .join("tests/policy/forgets-um-media.csv")
        .display()
        .to_string();
    let runs: [(&str, Vec<&str>); 4] = [
        ("audit", vec![]),
        ("audit", vec!["--policy", &policy]),
        (
            "audit",
            vec!["--home-net", "10.0.0.0/8,192.168.0.0/16,fd00::/8"],
        ),
        (
            "validate",
            vec!["--rules", &rules, "--groups", &policy, "--policy", &policy],
        ),
    ];
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let mut records = 0;
    for cap in all_captures() {
        for (sub, args) in &runs {
            let r = records_of(sub, args, &cap);
            records += r.len();
            let what = format!("{sub} {} {}", args.first().unwrap_or(&""), cap.display());
            problems.extend(check(&what, &r, &ecs, &own, &mut seen));
        }
    }
    assert!(records > 1000, "only {records} records");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The checks had something to check: the fields of every kind are present.
    for f in [
        "tls.established",
        "tls.resumed",
        "http.response.status_code",
        "tls.server.x509.alternative_names",
        "exwatch.exchange_markers",
        "exwatch.policy.verdict",
        "exwatch.firewall.action",
        "rule.name",
        "network.direction",
        "related.ip",
        "observer.hostname",
        "exwatch.icmp.type",
    ] {
        assert!(seen.contains(f), "no record carried {f}");
    }
}

#[test]
fn the_schema_agrees_with_ecs() {
    let ecs = ecs_fields();
    for (path, (ty, array)) in own_schema() {
        if path.starts_with("exwatch.") || NOT_ECS.contains(&path.as_str()) {
            continue;
        }
        let e = ecs
            .get(&path)
            .unwrap_or_else(|| panic!("{path}: in the schema but not in ECS"));
        assert_eq!((&e.ty, e.array), (&ty, array), "{path}");
    }
}

#[test]
fn contrib_template_is_the_schema() {
    let out = exwatch().args(["schema"]).output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let path = root().join("contrib/elasticsearch/exwatch-template.json");
    let file = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        file == printed,
        "{} is not what `exwatch schema` prints: regenerate it with \
         `exwatch schema > {}`",
        path.display(),
        path.display()
    );
    // Every schema field is mapped with its type.
    let t: Value = serde_json::from_str(&file).unwrap();
    for (p, (ty, _)) in own_schema() {
        let mut node = &t["template"]["mappings"];
        for seg in p.split('.') {
            node = &node["properties"][seg];
        }
        assert_eq!(node["type"], ty.as_str(), "{p} in the template");
    }
}

#[test]
fn readme_field_table_is_the_schema() {
    let out = exwatch()
        .args(["schema", "--format", "markdown"])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&table),
        "README.md's record field table is not `exwatch schema --format markdown`"
    );
}

#[test]
fn home_net_decides_direction() {
    let cap = root().join("pcaps/demo-exchange-day.pcap");
    let r = records_of("audit", &["--home-net", "10.0.0.0/8"], &cap);
    let mut by_dir: BTreeMap<String, usize> = BTreeMap::new();
    for rec in &r {
        let src_in = rec["source"]["ip"].as_str().unwrap().starts_with("10.");
        let dst_in = rec["destination"]["ip"]
            .as_str()
            .unwrap()
            .starts_with("10.");
        let want = match (src_in, dst_in) {
            (true, true) => "internal",
            (true, false) => "outbound",
            (false, true) => "inbound",
            (false, false) => "external",
        };
        assert_eq!(rec["network"]["direction"], want, "{rec}");
        *by_dir.entry(want.to_string()).or_default() += 1;
    }
    assert!(by_dir.len() >= 3, "{by_dir:?}");
    let bad = exwatch()
        .args(["audit", "-q", "--home-net", "10.0.0.0/33"])
        .arg(&cap)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--home-net 10.0.0.0/33"));
}

#[test]
fn the_check_refuses_what_an_ecs_index_would() {
    let ecs = ecs_fields();
    let own = own_schema();
    let bad: Vec<Value> = vec![serde_json::json!({
        "tls": {"established": "true", "server": {"x509": {"alternative_names": "a,b"}}},
        "http": {"response": {"status_code": "200"}},
        "event": {"type": ["connection", "finished"]},
        "exwatch": {"sip": {"status_code": "180"}},
        "policy": {"verdict": "allowed"},
        "source": {"ip": "not an address"},
    })];
    let problems = check("bad", &bad, &ecs, &own, &mut BTreeSet::new());
    for want in [
        "tls.established = \"true\" is not a boolean",
        "alternative_names = \"a,b\" should be an array",
        "status_code = \"200\" is not a long",
        "\"finished\" is not one of ECS's",
        "exwatch.sip.status_code = \"180\" is not a long",
        "policy.verdict is not in `exwatch schema`",
        "source.ip = \"not an address\" is not a ip",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{want:?} not in {problems:#?}"
        );
    }
}

/// `source.mac` and `destination.mac` are the Ethernet addresses tcpdump prints for a flow's
/// packets from source to destination.
#[test]
fn macs_are_the_frames_addresses() {
    let mut checked = 0;
    for cap in [
        root().join("pcaps/imap-143.pcap"),
        root().join("pcaps/demo-exchange-day.pcap"),
        shared("smtp.pcap"),
    ] {
        let out = std::process::Command::new("tcpdump")
            .args(["-enr"])
            .arg(&cap)
            .output()
            .expect("tcpdump (make deps-live)");
        let text = String::from_utf8_lossy(&out.stdout);
        // "TIME SMAC > DMAC, ethertype IPv4 (0x0800), length N: SIP.SPORT > DIP.DPORT: ..."
        let mut macs: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
        for line in text.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            let Some(j) = w.iter().position(|x| *x == "length") else {
                continue;
            };
            if w.len() < j + 5 || w[2] != ">" || w[j + 3] != ">" {
                continue;
            }
            let mac = |s: &str| s.trim_end_matches(',').replace(':', "-").to_uppercase();
            let key = (
                w[j + 2].to_string(),
                w[j + 4].trim_end_matches(':').to_string(),
            );
            macs.entry(key).or_insert((mac(w[1]), mac(w[3])));
        }
        for r in records_of("audit", &[], &cap) {
            let Some(sm) = r["source"]["mac"].as_str() else {
                continue;
            };
            let ep = |side: &str| {
                format!(
                    "{}.{}",
                    r[side]["ip"].as_str().unwrap(),
                    r[side]["port"].as_u64().unwrap_or(0)
                )
            };
            if let Some((s, d)) = macs.get(&(ep("source"), ep("destination"))) {
                assert_eq!(
                    (sm, r["destination"]["mac"].as_str().unwrap()),
                    (s.as_str(), d.as_str())
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} flows checked");
}

/// `pcaps/tls-resume-443.pcap` (`pcaps/record/tls-resume.sh`): openssl s_client said "New",
/// "Reused" (TLS 1.2 session ID), "New", "Reused" (TLS 1.3 pre-shared key), in that order.
#[test]
fn tls_resumption_is_told_from_the_hellos() {
    let mut r = records_of("audit", &[], &root().join("pcaps/tls-resume-443.pcap"));
    r.sort_by_key(|x| x["@timestamp"].as_str().unwrap().to_string());
    let got: Vec<(&str, bool)> = r
        .iter()
        .map(|x| {
            (
                x["tls"]["version"].as_str().unwrap(),
                x["tls"]["resumed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("1.2", false), ("1.2", true), ("1.3", false), ("1.3", true)]
    );
}
