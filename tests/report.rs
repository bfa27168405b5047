//! `--report`: the HTML audit report, rendered by headless Chromium (Debian `chromium`). The
//! page must load without a console message, hold the inventory and the findings of the
//! summary JSON in its DOM, keep hostile strings as text, and be the same for any `--threads`.
//!
//! As root a missing `chromium` is a failure (`make deps-live` installs it); elsewhere the
//! browser tests skip and say why.

mod common;

use common::{exwatch, root, write_pcap};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The browser, or `None` (with the reason printed) when it cannot be had and need not be.
fn chromium() -> Option<PathBuf> {
    let found = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if found.is_none() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            panic!("chromium is not installed: run `make deps-live`");
        }
        eprintln!("skipping browser test of the report: chromium is not installed (not root)");
    }
    found
}

/// Run `audit --report --summary-json` on the demo day with the example policy.
fn audit_report(threads: &str, dir: &Path) -> (String, Value, PathBuf) {
    let (report, sum) = (dir.join("report.html"), dir.join("summary.json"));
    let out = exwatch()
        .args(["audit", "-q", "--threads", threads, "--policy"])
        .arg(root().join("examples/policy.toml"))
        .arg("--report")
        .arg(&report)
        .arg("--summary-json")
        .arg(&sum)
        .arg(root().join("pcaps/demo-exchange-day.pcap"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary = serde_json::from_slice(&std::fs::read(&sum).unwrap()).unwrap();
    (std::fs::read_to_string(&report).unwrap(), summary, report)
}

/// The DOM Chromium built from the page, and its console messages.
fn dump_dom(browser: &Path, page: &Path) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {err}");
    // Script errors, refused loads (the page's Content-Security-Policy) and the like all
    // reach the console.
    let console = err
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The attributes of every `<tag ...>` start tag whose class attribute is `class`.
fn elements(dom: &str, tag: &str, class: &str) -> Vec<BTreeMap<String, String>> {
    let open = format!("<{tag} ");
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let end = after.find('>').expect("a start tag ends");
        let attrs = parse_attrs(&after[..end]);
        if attrs.get("class").map(String::as_str) == Some(class) {
            out.push(attrs);
        }
        rest = &after[end..];
    }
    out
}

fn parse_attrs(s: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut rest = s.trim();
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim().to_string();
        let val_end = rest[eq + 2..].find('"').expect("a quoted value ends");
        m.insert(name, unescape(&rest[eq + 2..eq + 2 + val_end]));
        rest = rest[eq + 2 + val_end + 1..].trim_start();
    }
    m
}

fn id_attrs(dom: &str, id: &str) -> BTreeMap<String, String> {
    let needle = format!("id=\"{id}\"");
    let i = dom
        .find(&needle)
        .unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let start = dom[..i].rfind('<').unwrap();
    let tag_end = dom[start..].find(' ').unwrap() + start;
    let end = dom[i..].find('>').unwrap() + i;
    parse_attrs(&dom[tag_end..end])
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn join(v: &Value) -> String {
    v.as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn the_report_loads_in_chromium_and_shows_the_inventory_and_findings_of_the_summary_json() {
    let Some(browser) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (html, summary, page) = audit_report("2", dir.path());
    // Self-contained: nothing to fetch, nothing to run.
    for bad in ["<script", " src=", " href=", "url(", "@import"] {
        assert!(!html.contains(bad), "the page holds {bad}");
    }
    let urls = html.matches("://").count();
    let xmlns = html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    assert_eq!(urls, xmlns, "only SVG namespaces name a URL");
    let (dom, console) = dump_dom(&browser, &page);
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(dom.contains("</html>"), "{dom}");
    assert!(dom.contains("<svg id=\"chart-timeline\""));
    assert!(dom.contains("<svg id=\"chart-role-pairs\""));

    // The inventory, server by server.
    let inv = &summary["inventory"];
    let servers = elements(&dom, "tr", "server");
    let want = inv["servers"].as_array().unwrap();
    assert!(want.len() >= 5, "the demo day has its servers: {want:?}");
    assert_eq!(servers.len(), want.len());
    for (got, w) in servers.iter().zip(want) {
        assert_eq!(got["data-address"], s(&w["address"]));
        assert_eq!(got["data-roles"], join(&w["roles"]));
        assert_eq!(got["data-ports"], join(&w["ports"]));
        assert_eq!(got["data-flows"], s(&w["flows_served"]));
        assert_eq!(got["data-bytes"], s(&w["bytes_served"]));
    }
    let roles = |addr: &str| {
        let r = servers
            .iter()
            .find(|e| e["data-address"] == addr)
            .unwrap_or_else(|| panic!("{addr} is in the inventory"));
        r["data-roles"].clone()
    };
    // pcaps/DEMO.md's address plan.
    assert_eq!(roles("10.1.2.10"), "DC/GC");
    assert_eq!(roles("172.16.10.5"), "Edge");
    assert!(roles("10.1.1.10").contains("Mailbox"));
    assert!(roles("10.1.1.10").contains("CAS"));
    assert!(roles("10.1.1.11").contains("UM"));

    // The findings, group by group, with their examples.
    let p = &summary["policy"];
    let findings = elements(&dom, "tr", "finding");
    let want = p["findings"].as_array().unwrap();
    assert!(!want.is_empty());
    assert_eq!(findings.len(), want.len());
    for (got, w) in findings.iter().zip(want) {
        for (attr, key) in [
            ("data-finding", "finding"),
            ("data-source", "source"),
            ("data-destination", "destination"),
            ("data-transport", "transport"),
            ("data-port", "port"),
            ("data-protocol", "protocol"),
            ("data-flows", "flows"),
            ("data-bytes", "bytes"),
        ] {
            assert_eq!(got[attr], s(&w[key]), "{attr} of {w}");
        }
        assert!(dom.contains(&super_escape(&s(&w["example"]))), "{w}");
    }
    let section = id_attrs(&dom, "findings");
    let flagged = p["unexpected"].as_u64().unwrap() + p["mismatch"].as_u64().unwrap();
    assert_eq!(section["data-flows"], flagged.to_string());

    // Who talks to whom, by policy group, cell by cell.
    let m = &inv["matrix"];
    assert_eq!(id_attrs(&dom, "matrix")["data-grouping"], "policy group");
    let cells = elements(&dom, "td", "c");
    assert_eq!(cells.len(), m["cells"].as_array().unwrap().len());
    let flows: u64 = cells
        .iter()
        .map(|c| c["data-flows"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(flows, summary["flows"].as_u64().unwrap());

    // Counts: the overview, the capture and the service tables.
    assert_eq!(
        id_attrs(&dom, "kpi-flows")["data-value"],
        s(&summary["flows"])
    );
    let caps = elements(&dom, "tr", "capture");
    assert_eq!(caps.len(), 1);
    assert_eq!(caps[0]["data-packets"], s(&summary["packets_read"]));
    let services = elements(&dom, "tr", "service");
    assert_eq!(
        services.len(),
        summary["services"].as_array().unwrap().len()
    );
    let pairs = elements(&dom, "g", "role-pair");
    assert_eq!(pairs.len(), inv["role_pairs"].as_array().unwrap().len());
}

/// Text as the DOM serialiser writes it inside an element.
fn super_escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn the_report_and_the_inventory_are_the_same_for_any_thread_count() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (one, s1, _) = audit_report("1", a.path());
    let (two, s2, _) = audit_report("2", b.path());
    assert_eq!(one, two, "--threads 1 and 2 write the same page");
    assert_eq!(s1["inventory"], s2["inventory"]);
    assert_eq!(s1["inventory"]["flows"], s1["flows"]);
}

/// Ethernet, IPv4 and TCP around `payload`.
fn tcp_frame(
    src: [u8; 4],
    dst: [u8; 4],
    sp: u16,
    dp: u16,
    seq: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![
        2, 0, dst[0], dst[1], dst[2], dst[3], 2, 0, src[0], src[1], src[2], src[3], 8, 0,
    ];
    let total = (20 + 20 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sp.to_be_bytes());
    tcp.extend_from_slice(&dp.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(&tcp);
    f.extend_from_slice(payload);
    f
}

#[test]
fn hostile_strings_from_traffic_file_names_and_rule_sets_stay_text_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let evil = "<script>alert(1)</script>\"'&<img src=x onerror=alert(2)>";
    // An HTTP request whose path and Host are markup, and whose file name is too.
    let cap = dir.path().join("<svg onload=alert(3)>&'\".pcap");
    let (c, s) = ([10, 1, 10, 21], [10, 1, 1, 10]);
    let req = format!("GET /{evil} HTTP/1.1\r\nHost: {evil}\r\nUser-Agent: {evil}\r\n\r\n");
    let t0 = 1_795_420_800_000_000_000u64;
    let pkts = vec![
        (t0, tcp_frame(c, s, 40000, 8080, 1, 0x02, b"")),
        (t0 + 1_000_000, tcp_frame(s, c, 8080, 40000, 100, 0x12, b"")),
        (t0 + 2_000_000, tcp_frame(c, s, 40000, 8080, 2, 0x10, b"")),
        (
            t0 + 3_000_000,
            tcp_frame(c, s, 40000, 8080, 2, 0x18, req.as_bytes()),
        ),
        (
            t0 + 4_000_000,
            tcp_frame(
                s,
                c,
                8080,
                40000,
                101,
                0x18,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
        ),
    ];
    write_pcap(&cap, 1, &pkts);
    // A rule set whose rule names are markup (validate shows them).
    let rules = dir.path().join("rules.csv");
    std::fs::write(
        &rules,
        format!(
            "name,action,source,destination,transport,ports\n\"{}\",allow,any,any,udp,53\n\"{}\",deny,any,any,any,any\n",
            evil.replace('"', "\"\""),
            evil.replace('"', "\"\"").replace("alert(1)", "alert(4)")
        ),
    )
    .unwrap();
    let report = dir.path().join("report.html");
    let out = exwatch()
        .args(["validate", "-q", "--rules"])
        .arg(&rules)
        .arg("--report")
        .arg(&report)
        .arg(&cap)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(8),
        "the rule set denies the flow: {out:?}"
    );
    let html = std::fs::read_to_string(&report).unwrap();
    for bad in ["<script", "<img", "<svg onload", "onerror=alert(2)>"] {
        assert!(!html.contains(bad), "{bad} in the page:\n{html}");
    }
    assert!(html.contains("&lt;svg onload=alert(3)&gt;&amp;&#39;&quot;.pcap"));
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
    // Nothing of the request reaches the report: neither its path nor its headers.
    assert!(!html.contains("GET /"));
    let Some(browser) = chromium() else {
        return;
    };
    let (dom, console) = dump_dom(&browser, &report);
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(!dom.contains("<script"), "a script element in the DOM");
    assert!(!dom.contains("<img"), "an img element in the DOM");
    assert!(
        !dom.contains("<svg onload"),
        "an injected svg element in the DOM"
    );
    let unused: Vec<_> = elements(&dom, "tr", "rule");
    assert!(unused
        .iter()
        .any(|r| r["data-rule"] == evil && r["data-unused"] == "unused-matched-nothing"));
}

#[test]
fn per_capture_counts_add_up_to_the_totals_and_name_the_capture_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (sum, report) = (dir.path().join("s.json"), dir.path().join("r.html"));
    let missing = dir.path().join("missing.pcap");
    let out = exwatch()
        .args(["audit", "-q", "--threads", "2", "--summary-json"])
        .arg(&sum)
        .arg("--report")
        .arg(&report)
        .arg(common::shared("ip_fragmented_garbage.pcap"))
        .arg(&missing)
        .arg(root().join("pcaps/dns-udp.pcap"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let sj: Value = serde_json::from_slice(&std::fs::read(&sum).unwrap()).unwrap();
    let caps = sj["captures"].as_array().unwrap();
    assert_eq!(caps.len(), 3);
    let total = |k: &str| caps.iter().map(|c| c[k].as_u64().unwrap()).sum::<u64>();
    for k in ["packets_read", "packets_decoded", "packets_undecodable"] {
        assert_eq!(total(k), sj[k].as_u64().unwrap(), "{k}");
    }
    assert_eq!(
        caps[0]["undecodable"], sj["undecodable"],
        "the garbage is the first file's"
    );
    assert!(caps[0]["packets_undecodable"].as_u64().unwrap() > 0);
    assert_eq!(caps[1]["packets_read"], 0);
    assert!(caps[1]["status"].as_str().unwrap().contains("cannot open"));
    assert_eq!(caps[2]["status"], "read");
    assert_eq!(caps[2]["packets_undecodable"], 0);
    let html = std::fs::read_to_string(&report).unwrap();
    let rows = elements(&html, "tr", "capture");
    assert_eq!(rows.len(), 3);
    for (row, c) in rows.iter().zip(caps) {
        assert_eq!(row["data-file"], s(&c["file"]));
        assert_eq!(row["data-packets"], s(&c["packets_read"]));
        assert_eq!(row["data-undecodable"], s(&c["packets_undecodable"]));
    }
}

#[test]
fn a_validate_report_shows_the_denied_flows_and_the_rules_never_hit_by_class() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.csv");
    std::fs::write(
        &rules,
        "name,action,source,destination,transport,ports\n\
         web,allow,any,10.1.1.0/24,tcp,\"80,443\"\n\
         dns,allow,any,10.1.2.10,udp,53\n\
         never,allow,any,192.0.2.99,tcp,22\n\
         rest,deny,any,any,any,any\n",
    )
    .unwrap();
    let (sum, page) = (dir.path().join("s.json"), dir.path().join("r.html"));
    let out = exwatch()
        .args(["validate", "-q", "--rules"])
        .arg(&rules)
        .arg("--groups")
        .arg(root().join("examples/policy.toml"))
        .arg("--summary-json")
        .arg(&sum)
        .arg("--report")
        .arg(&page)
        .arg(root().join("pcaps/demo-exchange-day.pcap"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    let summary: Value = serde_json::from_slice(&std::fs::read(&sum).unwrap()).unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    let dom = match chromium() {
        Some(b) => {
            let (dom, console) = dump_dom(&b, &page);
            assert!(console.is_empty(), "console messages: {console:?}");
            dom
        }
        None => html,
    };
    let fw = &summary["firewall"];
    let denied = elements(&dom, "tr", "finding");
    let want = fw["denied"].as_array().unwrap();
    assert!(!want.is_empty());
    assert_eq!(denied.len(), want.len());
    for (got, w) in denied.iter().zip(want) {
        assert_eq!(got["data-finding"], "deny");
        assert_eq!(got["data-source"], s(&w["source"]));
        assert_eq!(got["data-flows"], s(&w["flows"]));
    }
    let rows = elements(&dom, "tr", "rule");
    let want = fw["rules"].as_array().unwrap();
    assert_eq!(rows.len(), want.len());
    for (got, w) in rows.iter().zip(want) {
        assert_eq!(got["data-rule"], s(&w["rule"]));
        assert_eq!(got["data-hits"], s(&w["hits"]));
        assert_eq!(got["data-unused"], s(&w["unused"]));
    }
    let never = rows.iter().find(|r| r["data-rule"] == "never").unwrap();
    assert_eq!(never["data-unused"], "unused-matched-nothing");
    // No policy judged the flows: the matrix is by the groups of --groups.
    assert_eq!(id_attrs(&dom, "matrix")["data-grouping"], "group");
    let cells = elements(&dom, "td", "c");
    let flows: u64 = cells
        .iter()
        .map(|c| c["data-flows"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(flows, summary["flows"].as_u64().unwrap());
    assert!(cells
        .iter()
        .any(|c| c["data-source"] == "mailbox" && c["data-destination"] == "dc"));
}
