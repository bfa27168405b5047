//! Policies, firewall validation and learning on captures built for the purpose:
//! `pcaps/demo-exchange-day.pcap` (address plan in `pcaps/DEMO.md`) and
//! `pcaps/policy-cases.pcap` (`pcaps/make-policy-cases.sh`), both on the same address plan.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn demo() -> PathBuf {
    root().join("pcaps/demo-exchange-day.pcap")
}

fn cases() -> PathBuf {
    root().join("pcaps/policy-cases.pcap")
}

fn example_policy() -> String {
    root().join("examples/policy.toml").display().to_string()
}

/// Run any exwatch subcommand with records and summary captured.
fn run(sub: &str, args: &[&str], captures: &[&Path]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("records.ndjson");
    let sum = dir.path().join("summary.json");
    let out = exwatch()
        .arg(sub)
        .arg("--json")
        .arg(&rec)
        .arg("--summary-json")
        .arg(&sum)
        .args(args)
        .args(captures)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    collect(out, &rec, &sum)
}

/// The record from `src` to `dst:port`, exactly one.
fn flow<'a>(records: &'a [Value], src: &str, dst: &str, port: u64) -> &'a Value {
    let found: Vec<&Value> = records
        .iter()
        .filter(|r| {
            field(r, "source.ip") == src
                && field(r, "destination.ip") == dst
                && field(r, "destination.port") == port
        })
        .collect();
    assert_eq!(found.len(), 1, "{src} -> {dst}:{port}");
    found[0]
}

fn verdict(r: &Value) -> (&str, &str) {
    (
        field(r, "exwatch.policy.verdict").as_str().unwrap(),
        field(r, "exwatch.policy.rule").as_str().unwrap_or(""),
    )
}

const MBX1: &str = "10.1.1.10";
const MBX2: &str = "10.1.1.11";
const EDGE: &str = "172.16.10.5";
const INET_MTA: &str = "198.51.100.25";
const GW: &str = "10.1.3.20";

#[test]
fn allowed_mail_flow_and_the_demo_findings() {
    let r = run("audit", &["--policy", &example_policy(), "-q"], &[&demo()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Mail flow through the Edge (DEMO.md #14, #15, #36, #37).
    assert_eq!(
        verdict(flow(&r.records, INET_MTA, EDGE, 25)),
        ("allowed", "smtp-internet-to-edge")
    );
    assert_eq!(
        verdict(flow(&r.records, EDGE, MBX1, 25)),
        ("allowed", "smtp-edge-to-mailbox")
    );
    assert_eq!(
        verdict(flow(&r.records, MBX2, EDGE, 25)),
        ("allowed", "smtp-mailbox-to-edge")
    );
    assert_eq!(
        verdict(flow(&r.records, EDGE, INET_MTA, 25)),
        ("allowed", "smtp-edge-to-internet")
    );
    assert_eq!(
        verdict(flow(&r.records, MBX1, EDGE, 50636)),
        ("allowed", "edgesync")
    );
    // Every record is judged; the findings are exactly the flows DEMO.md marks NO (#9, #24,
    // #32, #33, #35, #38, #40, #41: 15 flows) plus client DNS to the DC (#12, 4 flows),
    // which the reference does not cover.
    assert!(r
        .records
        .iter()
        .all(|x| field(x, "exwatch.policy.verdict").is_string()));
    let findings = r.summary["policy"]["findings"].as_array().unwrap();
    let mut got: Vec<String> = findings
        .iter()
        .map(|f| {
            format!(
                "{} {}->{} {}/{} {} x{}",
                f["finding"].as_str().unwrap(),
                f["source"].as_str().unwrap(),
                f["destination"].as_str().unwrap(),
                f["port"],
                f["transport"].as_str().unwrap(),
                f["protocol"].as_str().unwrap(),
                f["flows"]
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "unexpected admin->mailbox 3389/tcp rdp x1",
            "unexpected clients->dc 53/udp dns x4",
            "unexpected clients->internet 25/tcp smtp x1",
            "unexpected clients->mailbox 135/tcp dcerpc x6",
            "unexpected clients->mailbox 49154/tcp dcerpc x2",
            "unexpected clients->mailbox 5060/tcp http x1",
            "unexpected internet->edge 50389/tcp ldap x1",
            "unexpected internet->edge 8025/tcp smtp x1",
            "unexpected internet->mailbox 110/tcp pop3 x1",
            "unexpected mailbox->dc 445/tcp smb x1",
        ]
    );
    assert_eq!(r.summary["policy"]["unexpected"], 19);
    assert_eq!(r.summary["policy"]["allowed"], r.records.len() as u64 - 19);
}

#[test]
fn edgesync_directions_rdp_into_edge_http_on_sip_smtp_on_an_odd_port() {
    let r = run("audit", &["--policy", &example_policy(), "-q"], &[&cases()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.records.len(), 6);
    // EdgeSync: Mailbox -> Edge is allowed, Edge -> Mailbox is not. The Mailbox -> Edge
    // connection seen mid-stream from port 3268 (case 6 of make-policy-cases.sh: the ports
    // alone would make the Mailbox the responder) is turned around by its ClientHello
    // (issue 15, class 8), so the policy needs no reversal to allow it.
    let to_edge: Vec<&Value> = r
        .records
        .iter()
        .filter(|x| {
            field(x, "source.ip") == MBX1
                && field(x, "destination.ip") == EDGE
                && field(x, "destination.port") == 50636
        })
        .collect();
    assert_eq!(to_edge.len(), 2, "{to_edge:?}");
    for x in &to_edge {
        assert_eq!(verdict(x), ("allowed", "edgesync"));
        assert_eq!(field(x, "exwatch.policy.reversed"), false);
    }
    assert!(to_edge
        .iter()
        .any(|x| field(x, "exwatch.mid_stream") == true && field(x, "source.port") == 3268));
    let wrong = flow(&r.records, EDGE, MBX1, 50636);
    assert_eq!(verdict(wrong), ("unexpected", ""));
    assert_eq!(
        field(wrong, "exwatch.policy.reason"),
        "no rule allows edge -> mailbox tcp/50636"
    );
    // RDP into the Edge.
    assert_eq!(
        verdict(flow(&r.records, "10.1.4.5", EDGE, 3389)),
        ("unexpected", "")
    );
    // HTTP on the SIP port, from the gateway that may use it for SIP.
    let http = flow(&r.records, GW, MBX1, 5060);
    assert_eq!(verdict(http), ("mismatch", "um-sip"));
    assert_eq!(field(http, "network.protocol"), "http");
    // SMTP on the HTTPS port.
    let smtp = flow(&r.records, "10.1.10.21", MBX1, 443);
    assert_eq!(verdict(smtp), ("mismatch", "clients-web"));
    assert!(field(smtp, "exwatch.policy.reason")
        .as_str()
        .unwrap()
        .contains("payload is smtp"));
}

#[test]
fn fail_on_sets_the_exit_code_and_csv_lists_the_groups() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("findings.csv");
    let csv_s = csv.display().to_string();
    let policy = example_policy();
    let base = ["--policy", policy.as_str(), "-q", "--csv", csv_s.as_str()];
    let r = run(
        "audit",
        &[&base[..], &["--fail-on", "unexpected"]].concat(),
        &[&cases()],
    );
    assert_eq!(r.code, 7, "{}", r.stderr);
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "finding,source,destination,transport,port,protocol,rule,flows,bytes,first_seen,last_seen,example"
    );
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("mismatch,ipgw,mailbox,tcp,5060,http,um-sip,1,")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("unexpected,edge,mailbox,tcp,50636,ldap,,1,")));
    // Only mismatches count: still findings here.
    let r = run(
        "audit",
        &[&base[..], &["--fail-on", "mismatch"]].concat(),
        &[&cases()],
    );
    assert_eq!(r.code, 7);
    // Without --fail-on, findings do not change the exit code.
    let r = run("audit", &base, &[&cases()]);
    assert_eq!(r.code, 0);
    let r = run(
        "audit",
        &[&base[..], &["--fail-on", "sometimes"]].concat(),
        &[&cases()],
    );
    assert_eq!(r.code, 2);
}

#[test]
fn a_bad_policy_file_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[group]]\nname = \"lan\"\ncidrs = [\"10.0.0.0/8\", \"10.1.2.3/40\"]\n",
    )
    .unwrap();
    let r = run("audit", &["--policy", bad.to_str().unwrap()], &[&cases()]);
    assert_refused(&r, "bad.toml:3: `10.1.2.3/40`: prefix length must be 0-32");
    let rules = dir.path().join("rules.csv");
    std::fs::write(
        &rules,
        "name,action,source,destination,transport,ports\nx,allow,any,any,tcp,99999\n",
    )
    .unwrap();
    let r = run(
        "validate",
        &["--rules", rules.to_str().unwrap()],
        &[&cases()],
    );
    assert_refused(&r, "rules.csv:2: `99999` is not a port number");
}

/// The run was refused for its policy or rule file (exit 9, no record) with `message`.
fn assert_refused(r: &Run, message: &str) {
    assert_eq!(r.code, 9, "{}", r.stderr);
    assert!(r.records.is_empty());
    assert!(r.stderr.contains(message), "{message}\n{}", r.stderr);
}

fn validate(rules: &str) -> Run {
    let rules = root()
        .join("tests/policy")
        .join(rules)
        .display()
        .to_string();
    let groups = example_policy();
    run(
        "validate",
        &["--rules", &rules, "--groups", &groups, "-q"],
        &[&demo()],
    )
}

#[test]
fn a_rule_set_that_forgets_um_media_would_deny_rtp() {
    for file in ["forgets-um-media.csv", "forgets-um-media.iptables"] {
        let r = validate(file);
        assert_eq!(r.code, 8, "{file}: {}", r.stderr);
        // SIP is let through, its media is not.
        let sip = flow(&r.records, GW, MBX1, 5060);
        assert_eq!(field(sip, "exwatch.firewall.action"), "allow");
        assert_eq!(field(sip, "rule.name"), "um-sip");
        for mbx in [MBX1, MBX2] {
            let rtp = flow(&r.records, GW, mbx, 17000);
            assert_eq!(field(rtp, "exwatch.firewall.action"), "deny", "{file}");
            assert_eq!(field(rtp, "network.protocol"), "rtp");
        }
        let fw = &r.summary["firewall"];
        let denied = fw["denied"].as_array().unwrap();
        let rtp: u64 = denied
            .iter()
            .filter(|d| d["protocol"] == "rtp")
            .map(|d| d["flows"].as_u64().unwrap())
            .sum();
        assert_eq!(rtp, 2, "{file}");
        // Decisions add up to the flows (FORWARD#4 only jumps to EXCHANGE: hits, no
        // decision), and the never-hit rules are visible.
        let rules = fw["rules"].as_array().unwrap();
        let decided: u64 = rules
            .iter()
            .map(|x| x["decided"].as_u64().unwrap())
            .sum::<u64>()
            + fw["default_hits"].as_u64().unwrap();
        assert_eq!(decided, r.records.len() as u64, "{file}");
        assert!(rules.iter().any(|x| x["hits"] == 0), "{file}");
        if file.ends_with("iptables") {
            let jump = rules.iter().find(|x| x["rule"] == "FORWARD#4").unwrap();
            assert!(jump["hits"].as_u64().unwrap() > 0 && jump["decided"] == 0);
        }
    }
}

#[test]
fn learned_policy_allows_everything_it_learned_from() {
    let dir = tempfile::tempdir().unwrap();
    let learned = dir.path().join("learned.toml");
    let csv = dir.path().join("learned.csv");
    let caps: [&Path; 2] = [&demo(), &cases()];
    let r = run(
        "learn",
        &[
            "--groups",
            &example_policy(),
            "-o",
            learned.to_str().unwrap(),
            "--rules-csv",
            csv.to_str().unwrap(),
            "-q",
        ],
        &caps,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&learned).unwrap();
    assert!(
        text.contains("# rtp") || text.contains("payload: rtp"),
        "{text}"
    );
    let r = run(
        "audit",
        &[
            "--policy",
            learned.to_str().unwrap(),
            "--fail-on",
            "unexpected,mismatch",
            "-q",
        ],
        &caps,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.summary["policy"]["unexpected"], 0);
    assert_eq!(r.summary["policy"]["mismatch"], 0);
    // The learned CSV rule set lets the same traffic through.
    let r = run("validate", &["--rules", csv.to_str().unwrap(), "-q"], &caps);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Learning from the demo alone, then auditing the cases, finds the new flows.
    let r = run(
        "learn",
        &[
            "--groups",
            &example_policy(),
            "-o",
            learned.to_str().unwrap(),
            "-q",
        ],
        &[&demo()],
    );
    assert_eq!(r.code, 0);
    let r = run(
        "audit",
        &["--policy", learned.to_str().unwrap(), "-q"],
        &[&cases()],
    );
    assert_eq!(verdict(flow(&r.records, EDGE, MBX1, 50636)).0, "unexpected");
    assert_eq!(
        verdict(flow(&r.records, "10.1.4.5", EDGE, 3389)).0,
        "unexpected"
    );
}

fn template(args: &[&str]) -> (i32, String) {
    let out = exwatch()
        .arg("policy")
        .arg("template")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

/// The demo organisation's roles (`pcaps/DEMO.md`) as template options: the domain controller
/// is its DNS server too.
const DEMO_ROLES: [&str; 10] = [
    "--mailbox",
    "10.1.1.10,10.1.1.11,fd00:1:1::10",
    "--edge",
    EDGE,
    "--clients",
    "10.1.10.0/24,fd00:1:10::/64",
    "--dc",
    "10.1.2.10",
    "--dns",
    "10.1.2.10",
];

#[test]
fn templates_judge_the_demo_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let plan = [&DEMO_ROLES[..], &["--ipgw", GW, "--admin", "10.1.4.5"]].concat();
    let (code, text) = template(&[&["exchange2016-edge"][..], &plan].concat());
    assert_eq!(code, 0);
    assert!(text.contains("# section 3"), "{text}");
    let p = dir.path().join("edge.toml");
    std::fs::write(&p, &text).unwrap();
    let r = run(
        "audit",
        &["--policy", p.to_str().unwrap(), "-q"],
        &[&demo()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rule_of = |s, d, port| verdict(flow(&r.records, s, d, port));
    assert_eq!(
        rule_of(INET_MTA, EDGE, 25),
        ("allowed", "s3-internet-edge-smtp")
    );
    assert_eq!(rule_of(EDGE, MBX1, 25), ("allowed", "s3-edge-mailbox-smtp"));
    let r = run(
        "audit",
        &["--policy", p.to_str().unwrap(), "-q"],
        &[&cases()],
    );
    let rule_of = |s, d, port| verdict(flow(&r.records, s, d, port));
    // Both Mailbox -> Edge connections (one turned around by its ClientHello, class 8).
    let to_edge: Vec<&Value> = r
        .records
        .iter()
        .filter(|x| {
            field(x, "source.ip") == MBX1
                && field(x, "destination.ip") == EDGE
                && field(x, "destination.port") == 50636
        })
        .collect();
    assert_eq!(to_edge.len(), 2);
    for x in to_edge {
        assert_eq!(verdict(x), ("allowed", "s3-mailbox-edge-edgesync"));
    }
    assert_eq!(rule_of(EDGE, MBX1, 50636).0, "unexpected");
    assert_eq!(rule_of("10.1.4.5", EDGE, 3389).0, "unexpected");
    assert_eq!(rule_of("10.1.10.21", MBX1, 443).0, "mismatch");

    // Exchange 2010 with static RPC: the dynamic port the endpoint mapper handed out (49154)
    // is outside 59531-60554, so it is unexpected, while 135 itself is allowed.
    let (code, text) = template(&[
        "exchange2010-static-rpc",
        "--cas",
        "10.1.1.10,10.1.1.11",
        "--clients",
        "10.1.10.0/24",
    ]);
    assert_eq!(code, 0);
    assert!(text.contains("# no --hub given"), "{text}");
    let p = dir.path().join("2010.toml");
    std::fs::write(&p, &text).unwrap();
    let r = run(
        "audit",
        &["--policy", p.to_str().unwrap(), "-q"],
        &[&demo()],
    );
    let epm: Vec<&Value> = r
        .records
        .iter()
        .filter(|x| field(x, "source.ip") == "10.1.10.23" && field(x, "destination.port") == 135)
        .collect();
    assert_eq!(epm.len(), 6);
    assert!(epm.iter().all(|x| verdict(x).0 == "allowed"));
    let dynamic: Vec<&Value> = r
        .records
        .iter()
        .filter(|x| field(x, "source.ip") == "10.1.10.23" && field(x, "destination.port") == 49154)
        .collect();
    assert_eq!(dynamic.len(), 2);
    assert!(dynamic.iter().all(|x| verdict(x).0 == "unexpected"));
    // With dynamic RPC the same flows are allowed.
    let (_, text) = template(&[
        "exchange2010",
        "--cas",
        "10.1.1.10,10.1.1.11",
        "--clients",
        "10.1.10.0/24",
    ]);
    std::fs::write(&p, &text).unwrap();
    let r = run(
        "audit",
        &["--policy", p.to_str().unwrap(), "-q"],
        &[&demo()],
    );
    let r49154 = r
        .records
        .iter()
        .filter(|x| field(x, "destination.port") == 49154 && field(x, "source.ip") == "10.1.10.23");
    assert!(r49154.map(verdict).all(|v| v.0 == "allowed"));

    assert_eq!(template(&["exchange1999"]).0, 2);
    assert_eq!(template(&["exchange2016", "--mailbox", "10.1.1.300"]).0, 2);
}

/// Captures of directory traffic between 198.51.100.20 (client) and 198.51.100.10 (server):
/// LDAP, Global Catalog, Kerberos over TCP and UDP, CLDAP and DNS (also over IPv6,
/// 2001:db8:b::20 -> 2001:db8:b::10).
fn directory_captures() -> Vec<PathBuf> {
    [
        "ldap-389",
        "ldap-gc-3268",
        "kerberos-tcp",
        "kerberos-udp",
        "cldap-389-udp",
        "dns-udp",
    ]
    .iter()
    .map(|n| root().join("pcaps").join(format!("{n}.pcap")))
    .collect()
}

/// Write a template to `dir` and audit `caps` with it.
fn audit_with_template(dir: &Path, args: &[&str], caps: &[PathBuf]) -> Run {
    let (code, text) = template(args);
    assert_eq!(code, 0, "{args:?}");
    let p = dir.join("template.toml");
    std::fs::write(&p, &text).unwrap();
    let caps: Vec<&Path> = caps.iter().map(PathBuf::as_path).collect();
    let r = run("audit", &["--policy", p.to_str().unwrap(), "-q"], &caps);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

/// Issue 12, defect 1: the Active Directory rows of the templates allow the Exchange roles,
/// never an Internet host.
#[test]
fn issue12_templates_keep_the_internet_away_from_domain_controllers() {
    let dir = tempfile::tempdir().unwrap();
    let caps = directory_captures();
    let dc = "198.51.100.10,2001:db8:b::10";
    for name in [
        "exchange2016",
        "exchange2016-edge",
        "exchange2013",
        "exchange2010",
        "exchange2003",
    ] {
        let r = audit_with_template(dir.path(), &[name, "--dc", dc], &caps);
        assert!(r.records.len() >= 10, "{name}");
        for x in &r.records {
            // No rule to the domain controllers lets them in.
            assert!(!verdict(x).1.contains("-dc-"), "{name}: {x}");
            // exchange2010 still allows 1025-65535 from any host to any host (the dynamic
            // RPC rows of sections 5 and 7): the Global Catalog port is in that range.
            if name == "exchange2010" && field(x, "destination.port") == 3268 {
                continue;
            }
            assert_eq!(verdict(x).0, "unexpected", "{name}: {x}");
            // `internet` where the template has the role (exchange2010 has none: `any`).
            let sg = field(x, "exwatch.policy.source_group").as_str().unwrap();
            assert!(sg == "internet" || sg == "any", "{name}: {x}");
        }
    }
    // The same flows from the Mailbox server are allowed by the section 5 rows.
    let r = audit_with_template(
        dir.path(),
        &[
            "exchange2016",
            "--dc",
            dc,
            "--mailbox",
            "198.51.100.20,2001:db8:b::20",
        ],
        &caps,
    );
    for x in &r.records {
        let (v, rule) = verdict(x);
        assert_eq!(v, "allowed", "{x}");
        assert!(rule.starts_with("s5-mailbox-dc-"), "{rule}");
    }
}

/// Issue 12, defect 2: `--dc 10.1.2.10 --dns 10.1.2.10` (a domain controller that serves DNS,
/// the normal case) keeps both roles: the Mailbox servers' Kerberos, LDAP, GC, RPC and DNS
/// flows to it are allowed, its findings name both roles, and `policy check` says so.
#[test]
fn issue12_an_address_in_two_roles_is_judged_with_both() {
    let dir = tempfile::tempdir().unwrap();
    let plan = [&["exchange2016-edge"][..], &DEMO_ROLES].concat();
    let r = audit_with_template(dir.path(), &plan, &[demo()]);
    let to_dc: Vec<&Value> = r
        .records
        .iter()
        .filter(|x| field(x, "destination.ip") == "10.1.2.10")
        .collect();
    assert!(to_dc.len() > 30);
    for x in &to_dc {
        assert_eq!(
            field(x, "exwatch.policy.destination_group"),
            "dns+dc",
            "{x}"
        );
        let port = field(x, "destination.port").as_u64().unwrap();
        let from_mailbox = field(x, "exwatch.policy.source_group") == "mailbox";
        // SMB and the RPC dynamic port to the DC are findings of DEMO.md; clients' DNS is
        // not in the reference.
        let expected = from_mailbox && ![445, 49154].contains(&port);
        assert_eq!(verdict(x).0 == "allowed", expected, "{x}");
        if expected {
            assert!(verdict(x).1.starts_with("s5-mailbox-dc-"), "{x}");
        }
    }
    let smb = r.summary["policy"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["port"] == 445 && f["source"] == "mailbox")
        .unwrap();
    assert_eq!(smb["destination"], "dns+dc");
    assert!(smb["example"]
        .as_str()
        .unwrap()
        .ends_with("no rule allows mailbox -> dns+dc tcp/445"));
    // `policy check` names both definitions.
    let out = exwatch()
        .args(["policy", "check"])
        .arg(dir.path().join("template.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let policy = std::fs::read_to_string(dir.path().join("template.toml")).unwrap();
    let line = |g: &str| {
        1 + policy
            .lines()
            .position(|l| l == format!("name = \"{g}\""))
            .unwrap()
    };
    let note = format!(
        ":{}: note: groups `dc` and `dns` (line {}) both hold 10.1.2.10/32",
        line("dc"),
        line("dns")
    );
    assert!(text.contains(&note), "{note}\n{text}");
}

/// Issue 12, defect 3: the admin workstation and the IPv6 client, left out of the role
/// options, are `unlisted-internal`, not `internet`; the Internet hosts stay `internet`.
#[test]
fn issue12_unlisted_internal_hosts_are_not_the_internet() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = vec!["exchange2016-edge"];
    plan.extend(DEMO_ROLES);
    let clients = plan.iter().position(|&a| a == "--clients").unwrap();
    plan[clients + 1] = "10.1.10.0/24";
    let r = audit_with_template(dir.path(), &plan, &[demo()]);
    let group_of = |ip: &str| -> Vec<String> {
        let mut g: Vec<String> = r
            .records
            .iter()
            .filter(|x| field(x, "source.ip") == ip)
            .map(|x| {
                field(x, "exwatch.policy.source_group")
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        g.dedup();
        g
    };
    assert_eq!(group_of("10.1.4.5"), ["unlisted-internal"]);
    assert_eq!(group_of("fd00:1:10::21"), ["unlisted-internal"]);
    assert_eq!(group_of("203.0.113.50"), ["internet"]);
    assert_eq!(group_of("198.51.100.25"), ["internet"]);
    let rdp = flow(&r.records, "10.1.4.5", MBX1, 3389);
    assert_eq!(
        field(rdp, "exwatch.policy.reason"),
        "no rule allows unlisted-internal -> mailbox tcp/3389"
    );
    let findings = r.summary["policy"]["findings"].as_array().unwrap();
    assert!(findings
        .iter()
        .any(|f| f["source"] == "unlisted-internal" && f["port"] == 3389));
    // No internal address is reported as an Internet host.
    for f in findings.iter().filter(|f| f["source"] == "internet") {
        let example = f["example"].as_str().unwrap();
        assert!(
            !example.starts_with("10.") && !example.starts_with("[fd"),
            "{example}"
        );
    }
}

/// `text` with the first `from` replaced by `to`, written to `dir/name`; and the line of the
/// change.
fn misspelt(dir: &Path, name: &str, text: &str, from: &str, to: &str) -> (String, usize) {
    let at = text.find(from).unwrap_or_else(|| panic!("{from}"));
    let line = 1 + text[..at].matches('\n').count();
    let p = dir.join(name);
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    (p.display().to_string(), line)
}

/// Issue 12, defect 4: a misspelt protocol, service or group in a policy, and a misspelt
/// target or chain in an iptables-save file, are refused (exit 9, no capture read) with file,
/// line and the name meant.
#[test]
fn issue12_typos_are_refused_with_the_nearest_name() {
    let dir = tempfile::tempdir().unwrap();
    let policy = std::fs::read_to_string(example_policy()).unwrap();
    for (from, to, problem) in [
        (
            "protocols = [\"smtp\"]",
            "protocols = [\"smpt\"]",
            "`smpt` is not a protocol exwatch names; did you mean `smtp`?",
        ),
        (
            "protocols = [\"smtp\"]",
            "services = [\"edgsync\"]",
            "`edgsync` is not a service exwatch names; did you mean `edgesync`?",
        ),
        (
            "to = \"mailbox\"",
            "to = \"mailbx\"",
            "group `mailbx` is not defined; did you mean `mailbox`?",
        ),
    ] {
        let (p, line) = misspelt(dir.path(), "policy.toml", &policy, from, to);
        let r = run("audit", &["--policy", &p], &[&cases()]);
        assert_refused(&r, &format!("{p}:{line}: rule `"));
        assert!(r.stderr.trim_end().ends_with(problem), "{}", r.stderr);
    }
    // A service of the `--signatures DIR` in use is a valid name; without them it is not.
    let sigs = dir.path().join("sigs");
    std::fs::create_dir(&sigs).unwrap();
    for f in ["services.toml", "ports.toml"] {
        let text = std::fs::read_to_string(root().join("signatures").join(f)).unwrap();
        let text = text
            .replace("name = \"edgesync\"", "name = \"edgesync-2\"")
            .replace("service = \"edgesync\"", "service = \"edgesync-2\"");
        std::fs::write(sigs.join(f), text).unwrap();
    }
    let (p, _) = misspelt(
        dir.path(),
        "policy.toml",
        &policy,
        "protocols = [\"smtp\"]",
        "services = [\"edgesync-2\", \"smtp\"]",
    );
    let with = ["--policy", &p, "--signatures", sigs.to_str().unwrap(), "-q"];
    assert_eq!(run("audit", &with, &[&cases()]).code, 0);
    let r = run("audit", &["--policy", &p, "-q"], &[&cases()]);
    assert_refused(
        &r,
        "`edgesync-2` is not a service exwatch names; did you mean `edgesync`?",
    );
    let rules =
        std::fs::read_to_string(root().join("tests/policy/forgets-um-media.iptables")).unwrap();
    for (from, to, problem) in [
        (
            "--comment \"smtp-in\" -j ACCEPT",
            "--comment \"smtp-in\" -j ACCPET",
            "`-j ACCPET`: `ACCPET` is not a chain of the filter table or a target; did you mean `ACCEPT`?",
        ),
        (
            "-j EXCHANGE",
            "-g NOSUCHCHAIN",
            "`-g NOSUCHCHAIN`: `NOSUCHCHAIN` is not a chain of the filter table; valid: `INPUT`, `FORWARD`, `OUTPUT`, `EXCHANGE`",
        ),
    ] {
        let (p, line) = misspelt(dir.path(), "rules.iptables", &rules, from, to);
        let r = run("validate", &["--rules", &p], &[&cases()]);
        assert_refused(&r, &format!("{p}:{line}: {problem}"));
    }
}

/// Issue 12, defect 5: validating FORWARD, the rules a capture cannot judge (INPUT and
/// OUTPUT chains, state-only, interface) are apart from the one that matched nothing; LOG and
/// RETURN rules that flows went through count hits; `--csv` lists the unused rules by `kind`.
#[test]
fn issue12_unused_rules_come_in_classes_and_log_and_return_count() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("validate.csv");
    let rules = root().join("tests/policy/cleanup-classes.iptables");
    let out = exwatch()
        .arg("validate")
        .arg("--rules")
        .arg(&rules)
        .args([
            "--groups",
            &example_policy(),
            "--summary-json",
            "-",
            "--csv",
        ])
        .arg(&csv)
        .arg(demo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = String::from_utf8(out.stderr).unwrap();
    let fw = summary["firewall"]["rules"].as_array().unwrap();
    let rule = |name: &str| fw.iter().find(|x| x["rule"] == name).unwrap();
    // Flows pass the LOG rule (UDP into UDP-LOG) and EXCHANGE's RETURN without a decision.
    for name in ["UDP-LOG#1", "EXCHANGE#6", "FORWARD#6", "FORWARD#7"] {
        assert!(rule(name)["hits"].as_u64().unwrap() > 0, "{name}");
        assert_eq!(rule(name)["decided"], 0, "{name}");
        assert!(rule(name)["unused"].is_null(), "{name}");
    }
    let unused: Vec<(String, String)> = fw
        .iter()
        .filter(|x| !x["unused"].is_null())
        .map(|x| {
            (
                x["rule"].as_str().unwrap().to_string(),
                x["unused"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let cannot = "unused-cannot-judge".to_string();
    assert_eq!(
        unused,
        [
            ("INPUT#1".to_string(), cannot.clone()),
            ("ssh to the firewall".into(), cannot.clone()),
            ("OUTPUT#1".into(), cannot.clone()),
            ("FORWARD#1".into(), cannot.clone()),
            ("FORWARD#2".into(), cannot.clone()),
            ("old proxy uplink".into(), cannot),
            ("retired web proxy".into(), "unused-matched-nothing".into()),
        ]
    );
    assert_eq!(rule("FORWARD#2")["unused_why"], "state INVALID");
    assert_eq!(
        rule("ssh to the firewall")["unused_why"],
        "chain INPUT is not traversed by new flows from FORWARD"
    );
    assert!(
        text.contains(
            "Unused rules that matched nothing (candidates for removal):\n  line 24    retired web proxy\n"
        ),
        "{text}"
    );
    assert!(text.contains("  line 16    old proxy uplink: interface -i eth9\n"));
    let csv = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "kind,finding,source,destination,transport,port,protocol,rule,flows,bytes,first_seen,last_seen,example"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("denied,deny,admin,mailbox,tcp,3389,rdp,")));
    assert!(lines.contains(
        &"unused-matched-nothing,,,,,,,retired web proxy,0,0,,,line 24: no flow matched it"
    ));
    assert!(lines.contains(
        &"unused-cannot-judge,,,,,,,FORWARD#1,0,0,,,\"line 14: state RELATED,ESTABLISHED\""
    ));
    assert_eq!(lines.iter().filter(|l| l.starts_with("unused-")).count(), 7);
}

/// Issue 12, capability 6: templates compose into one policy for the whole organisation, and
/// `--policy` given several times merges files the same way; remote client access from the
/// Internet is an opt-in template.
#[test]
fn issue12_one_policy_for_a_whole_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, args: &[&str]| {
        let (code, text) = template(args);
        assert_eq!(code, 0, "{args:?}");
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let plan = [&DEMO_ROLES[..], &["--ipgw", GW, "--admin", "10.1.4.5"]].concat();
    let edge = write("edge.toml", &[&["exchange2016-edge"][..], &plan].concat());
    let remote = write("remote.toml", &[&["remote-clients"][..], &plan].concat());
    let composed = write(
        "composed.toml",
        &[&["exchange2016-edge", "remote-clients"][..], &plan].concat(),
    );
    let text = std::fs::read_to_string(&composed).unwrap();
    assert_eq!(text.matches("name = \"mailbox\"").count(), 1, "{text}");

    // Remote users reach Mailbox on the published ports only when remote-clients is in.
    let alone = run("audit", &["--policy", &edge, "-q"], &[&demo()]);
    let rule_of = |r: &Run, s, d, port| verdict(flow(&r.records, s, d, port)).0.to_string();
    assert_eq!(rule_of(&alone, "203.0.113.51", MBX1, 993), "unexpected");
    let both = run("audit", &["--policy", &composed, "-q"], &[&demo()]);
    assert_eq!(both.code, 0, "{}", both.stderr);
    for (src, dst, port) in [
        ("203.0.113.51", MBX1, 993),
        ("203.0.113.51", MBX2, 995),
        ("203.0.113.50", MBX1, 587),
    ] {
        assert_eq!(
            rule_of(&both, src, dst, port),
            "allowed",
            "{src} -> {dst}:{port}"
        );
    }
    let https: Vec<&Value> = both
        .records
        .iter()
        .filter(|x| field(x, "source.ip") == "203.0.113.50" && field(x, "destination.port") == 443)
        .collect();
    assert_eq!(https.len(), 8);
    assert!(https
        .iter()
        .all(|x| verdict(x) == ("allowed", "s1-internet-mailbox-https")));
    // Clear POP3 from the Internet stays a finding.
    assert_eq!(rule_of(&both, "203.0.113.51", MBX1, 110), "unexpected");

    // Two files given with --policy judge every flow as the composed template does.
    let merged = run(
        "audit",
        &["--policy", &edge, "--policy", &remote, "-q"],
        &[&demo()],
    );
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    // Records of different workers interleave: compare them by flow.
    let by_flow = |r: &Run| {
        let mut v: Vec<String> = r
            .records
            .iter()
            .map(|x| {
                format!(
                    "{} {} {} {}",
                    field(x, "@timestamp"),
                    field(x, "source.ip"),
                    field(x, "destination.port"),
                    verdict(x).0
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(by_flow(&merged), by_flow(&both));
    assert_eq!(
        field(&merged.records[0], "rule.ruleset"),
        format!("{edge},{remote}").as_str()
    );

    // A group defined differently in two files is refused, naming both files and lines.
    let other = write("other.toml", &["remote-clients", "--mailbox", "10.9.9.9"]);
    let r = run(
        "audit",
        &["--policy", &edge, "--policy", &other, "-q"],
        &[&demo()],
    );
    assert_eq!(r.code, 9, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{other}:")), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("in {edge}:")), "{}", r.stderr);
    assert!(r.stderr.contains("group `mailbox`"), "{}", r.stderr);

    // Exchange 2019 and SE are names for the 2016 set; `policy list` says so.
    let (code, e2019) = template(&[&["exchange2019-edge"][..], &plan].concat());
    assert_eq!(code, 0);
    let body = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&e2019), body(&std::fs::read_to_string(&edge).unwrap()));
    let out = exwatch().args(["policy", "list"]).output().unwrap();
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(list.contains("exchangese"), "{list}");
    assert!(list.contains("remote-clients"), "{list}");
}

/// Issue 12, capability 9: learned rules widen to the reference's ranges with their citation,
/// mark (and list on standard error) what the reference would not allow, name their top
/// hosts, and without --groups are learned per address.
#[test]
fn issue12_learned_policies_survive_tomorrow() {
    let dir = tempfile::tempdir().unwrap();
    let learned = dir.path().join("learned.toml");
    let caps: [&Path; 2] = [&demo(), &cases()];
    let out = learned.to_str().unwrap();
    let r = run(
        "learn",
        &["--groups", &example_policy(), "-o", out, "-q"],
        &caps,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&learned).unwrap();
    // The rule text of a learned rule, by name, with the comment lines above it.
    let rule = |name: &str| -> String {
        let at = text
            .find(&format!("name = \"{name}\""))
            .unwrap_or_else(|| panic!("no rule {name}:\n{text}"));
        let start = text[..at].rfind("\n\n").map_or(0, |i| i + 2);
        let end = text[at..].find("\n\n").map_or(text.len(), |i| at + i);
        text[start..end].to_string()
    };
    // Dynamic RPC seen on 49154 becomes the reference's range, cited; UM media and the UM
    // worker processes too.
    let rpc = rule("mailbox-to-dc-tcp-msrpc-dynamic");
    assert!(rpc.contains("ports = [\"49152-65535\"]"), "{rpc}");
    assert!(
        rpc.contains("msrpc-dynamic range 49152-65535 (section 5)"),
        "{rpc}"
    );
    assert!(rpc.contains("section = \"learned,5\""), "{rpc}");
    let rtp = rule("ipgw-to-mailbox-udp-um-rtp");
    assert!(rtp.contains("ports = [\"1024-65535\"]"), "{rtp}");
    let sip = rule("ipgw-to-mailbox-tcp-um-sip");
    assert!(sip.contains("ports = [\"5060\", \"5065-5068\"]"), "{sip}");
    // Ports the reference names one by one stay as they are, with no review mark.
    let ldap = rule("mailbox-to-dc-tcp-ldap");
    assert!(
        ldap.contains("ports = [\"389\"]") && !ldap.contains("review"),
        "{ldap}"
    );
    // HTTP on the SIP port and LDAP from the Internet into the Edge are marked and listed.
    for (name, why) in [
        ("clients-to-mailbox-tcp-owa", "on 5060/tcp"),
        ("internet-to-edge-tcp-adlds-ldap", "only from admin to edge"),
    ] {
        let r_text = rule(name);
        assert!(
            r_text.contains("# not in the reference: review ("),
            "{r_text}"
        );
        assert!(r_text.contains(why), "{r_text}");
        assert!(
            r.stderr.contains(&format!("learned rule {name}: ")),
            "{}",
            r.stderr
        );
    }
    // Each rule names the hosts that produced it.
    assert!(
        rpc.contains("top sources: 10.1.1.10 x1; top destinations: 10.1.2.10 x1"),
        "{rpc}"
    );
    // The widened policy still allows everything it learned from.
    let again = run(
        "audit",
        &["--policy", out, "--fail-on", "unexpected,mismatch", "-q"],
        &caps,
    );
    assert_eq!(again.code, 0, "{}", again.stderr);

    // Without --groups: one group per address (/32, /128), rules between addresses.
    let r = run("learn", &["-o", out, "-q"], &[&demo()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(&learned).unwrap();
    assert!(
        text.contains("name = \"10.1.2.10\"\ncidrs = [\"10.1.2.10/32\"]"),
        "{text}"
    );
    assert!(text.contains("cidrs = [\"fd00:1:1::10/128\"]"), "{text}");
    assert!(
        text.contains("from = \"10.1.1.10\"\nto = \"10.1.2.10\""),
        "{text}"
    );
    let again = run(
        "audit",
        &["--policy", out, "--fail-on", "unexpected,mismatch", "-q"],
        &[&demo()],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
}

/// `validate` verdicts, rule by rule, sorted by flow: (start, source, port, action).
fn actions(r: &Run) -> Vec<String> {
    let mut v: Vec<String> = r
        .records
        .iter()
        .map(|x| {
            format!(
                "{} {} {} {}",
                field(x, "@timestamp"),
                field(x, "source.ip"),
                field(x, "destination.port"),
                field(x, "exwatch.firewall.action")
            )
        })
        .collect();
    v.sort();
    v
}

/// Issue 12, capability 7: the same rule set as a vendor CSV export (BOM, `;`, columns in
/// another order, quoted lists, service names, ranges, address objects, a disabled rule), as
/// `iptables-save -c` output with negation, iprange, named ports, --icmp-type and -m limit,
/// and as `nft -j list ruleset` JSON recorded from nft, judges every flow as the plain files do.
#[test]
fn issue12_firewall_exports_as_engineers_have_them() {
    let objects = root()
        .join("tests/policy/vendor-objects.toml")
        .display()
        .to_string();
    let path = |f: &str| root().join("tests/policy").join(f).display().to_string();
    let with = |rules: &str, groups: Option<&str>| {
        let rules = path(rules);
        let mut args = vec!["--rules", rules.as_str(), "-q"];
        if let Some(g) = groups {
            args.extend(["--groups", g]);
        }
        run("validate", &args, &[&demo()])
    };
    let csv = with("forgets-um-media.csv", None);
    let vendor = with("vendor-export.csv", Some(&objects));
    assert_eq!(vendor.code, 8, "{}", vendor.stderr);
    assert_eq!(actions(&vendor), actions(&csv));
    assert!(
        vendor
            .stderr
            .contains("vendor-export.csv:14: rule `old-any-any` is disabled: skipped"),
        "{}",
        vendor.stderr
    );
    let sip = flow(&vendor.records, GW, MBX1, 5060);
    assert_eq!(field(sip, "rule.name"), "um-sip");
    // Address objects need --groups; a misspelt one names the nearest group.
    let r = with("vendor-export.csv", None);
    assert_refused(&r, "vendor-export.csv:2: `MAILBOX-NET` is not an address");
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.csv");
    std::fs::write(
        &typo,
        "Name;Source;Destination;Service;Action\nweb;CLIENT;MAILBOX-NET;https;permit\nmail;CLIENTS;MAILBOX-NET;smpt;permit\n",
    )
    .unwrap();
    let r = run(
        "validate",
        &[
            "--rules",
            typo.to_str().unwrap(),
            "--groups",
            &objects,
            "-q",
        ],
        &[&demo()],
    );
    assert_refused(&r, "typo.csv:2: `CLIENT` is not an address, a CIDR, a range or a group of --groups; did you mean `CLIENTS`?");
    let text = std::fs::read_to_string(&typo)
        .unwrap()
        .replace("CLIENT;", "CLIENTS;");
    std::fs::write(&typo, text).unwrap();
    let r = run(
        "validate",
        &[
            "--rules",
            typo.to_str().unwrap(),
            "--groups",
            &objects,
            "-q",
        ],
        &[&demo()],
    );
    assert_refused(
        &r,
        "typo.csv:3: `smpt` is not a port, a range or a service name; did you mean `smtp`?",
    );

    let ipt = with("forgets-um-media.iptables", None);
    for file in ["counters.iptables", "forgets-um-media.nft.json"] {
        let r = with(file, None);
        assert_eq!(r.code, 8, "{file}: {}", r.stderr);
        assert_eq!(actions(&r), actions(&ipt), "{file}");
        assert!(r.stderr.contains("warning: `"), "{file}: {}", r.stderr);
        let sip = flow(&r.records, GW, MBX1, 5060);
        assert_eq!(field(sip, "rule.name"), "um-sip", "{file}");
    }
    // -m limit where it decides new flows is refused with file and line.
    let text = std::fs::read_to_string(path("counters.iptables")).unwrap();
    let deciding = dir.path().join("limit.iptables");
    std::fs::write(
        &deciding,
        text.replace(
            "-A FORWARD -s 172.16.10.5/32 -p tcp",
            "-A FORWARD -s 172.16.10.5/32 -m limit --limit 10/s -p tcp",
        ),
    )
    .unwrap();
    let r = run(
        "validate",
        &["--rules", deciding.to_str().unwrap(), "-q"],
        &[&demo()],
    );
    assert_refused(
        &r,
        "limit.iptables:16: `-m limit --limit 10/s` cannot be judged from a capture",
    );
}
