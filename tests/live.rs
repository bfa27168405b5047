//! `exwatch live` on real traffic: two network namespaces joined by a veth pair made by the
//! test, real peers (nginx and curl, sipp UAS and UAC) and `tcpreplay` of the project's
//! captures. `tcpdump` records the same interface at the same time; the live records must be
//! those of an audit of that recording, field for field, except `exwatch.end_reason` of flows
//! still open at the end (`shutdown` live, `end-of-input` or `idle` in the audit: the audit's
//! clock stops at the last packet, the live one at the stop).
//!
//! Needs root and `ip netns`; skips with a printed reason otherwise. `make deps` installs the
//! peers (nginx-light, curl, sip-tester, tcpreplay, tcpdump, iproute2).

mod common;

use common::{exwatch, root};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const SRV: &str = "192.0.2.10";
const CLI: &str = "192.0.2.20";

/// Why these tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: network namespaces need root".into());
    }
    let ok = Command::new("ip")
        .args(["netns", "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Some("`ip netns` is not available".into());
    }
    None
}

/// Skip (printing why) or make sure the peers are installed: as root a missing tool is a
/// failure, since `make deps` installs them.
fn ready(tools: &[&str]) -> bool {
    if let Some(why) = skip_reason() {
        eprintln!("skipping live capture test: {why}");
        return false;
    }
    for t in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "{t} is not installed: run `make deps`");
    }
    true
}

/// Two namespaces joined by a veth pair; removed on drop, whatever happened.
struct Net {
    srv: String,
    cli: String,
    srv_if: String,
    cli_if: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn sh(args: &[&str]) {
    let st = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(st.success(), "{args:?} failed");
}

impl Net {
    fn new() -> Net {
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let n = Net {
            srv: format!("exl{id}s"),
            cli: format!("exl{id}c"),
            srv_if: format!("exl{id}s0"),
            cli_if: format!("exl{id}c0"),
        };
        sh(&["ip", "netns", "add", &n.srv]);
        sh(&["ip", "netns", "add", &n.cli]);
        sh(&[
            "ip", "link", "add", &n.srv_if, "netns", &n.srv, "type", "veth", "peer", "name",
            &n.cli_if, "netns", &n.cli,
        ]);
        for (ns, ifc, addr) in [(&n.srv, &n.srv_if, SRV), (&n.cli, &n.cli_if, CLI)] {
            // No IPv6: its link-local chatter would start before either capture is open.
            n.exec(ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            n.exec(
                ns,
                &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
            );
            // Segments as on the wire (<= MTU), as in a SPAN port's copy.
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", ns, "ethtool", "-K", ifc, "tso", "off", "gso", "off",
                ])
                .args(["gro", "off", "tx", "off", "rx", "off"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            n.exec(
                ns,
                &["ip", "addr", "add", &format!("{addr}/24"), "dev", ifc],
            );
            n.exec(ns, &["ip", "link", "set", ifc, "up"]);
            n.exec(ns, &["ip", "link", "set", "lo", "up"]);
        }
        n
    }

    fn cmd(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(args);
        c
    }

    fn exec(&self, ns: &str, args: &[&str]) {
        let st = self.cmd(ns, args).status().unwrap();
        assert!(st.success(), "in {ns}: {args:?} failed");
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.srv, &self.cli] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A background process killed (if still running) on drop.
struct Proc {
    child: Child,
    stderr: PathBuf,
}

impl Proc {
    fn spawn(mut c: Command, stderr: PathBuf) -> Proc {
        let f = std::fs::File::create(&stderr).unwrap();
        let child = c.stdin(Stdio::null()).stderr(f).spawn().unwrap();
        Proc { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Wait until its standard error says `what` (readiness), failing after a while.
    fn wait_for(&mut self, what: &str) {
        let t0 = Instant::now();
        while !self.stderr().contains(what) {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("exited ({st}) before {what:?}: {}", self.stderr());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no {what:?} after 20 s: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    fn wait(&mut self) -> i32 {
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A live run and the tcpdump recording beside it, on the server side's interface.
struct Capture {
    dir: tempfile::TempDir,
    live: Proc,
    tcpdump: Proc,
}

impl Capture {
    fn start(net: &Net, extra: &[&str]) -> Capture {
        let dir = tempfile::tempdir().unwrap();
        // The unprivileged user must be able to create files here after a SIGHUP.
        sh(&["chmod", "0777", dir.path().to_str().unwrap()]);
        let p = |n: &str| dir.path().join(n);
        let mut td = net.cmd(
            &net.srv,
            &[
                "tcpdump",
                "-i",
                &net.srv_if,
                "-U",
                "-n",
                "--immediate-mode",
                "--time-stamp-precision=nano",
            ],
        );
        td.arg("-w").arg(p("tcpdump.pcap")).stdout(Stdio::null());
        let mut tcpdump = Proc::spawn(td, p("tcpdump.err"));
        tcpdump.wait_for("listening on");
        let bin = env!("CARGO_BIN_EXE_exwatch");
        let mut lv = net.cmd(
            &net.srv,
            &[bin, "live", "-i", &net.srv_if, "--user", "nobody"],
        );
        lv.arg("--json")
            .arg(p("live.ndjson"))
            .arg("--summary-json")
            .arg(p("live-summary.json"))
            .arg("--report")
            .arg(p("live-report.html"))
            .args(["--stats-interval", "1"])
            .args(extra)
            .stdout(Stdio::null());
        let mut live = Proc::spawn(lv, p("live.err"));
        live.wait_for("capturing on");
        Capture { dir, live, tcpdump }
    }

    fn path(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }

    /// The running exwatch's /proc status lines.
    fn status(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.live.child.id())).unwrap()
    }

    /// SIGTERM exwatch (after the link has been quiet a moment so both captures have every
    /// packet), stop tcpdump; returns exwatch's exit code.
    fn stop(&mut self) -> i32 {
        std::thread::sleep(Duration::from_millis(500));
        self.live.signal(libc::SIGTERM);
        let code = self.live.wait();
        self.tcpdump.signal(libc::SIGINT);
        self.tcpdump.wait();
        code
    }
}

fn read_records(path: &Path) -> Vec<Value> {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        f.read_to_string(&mut s).unwrap();
    }
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Capture times of a record, nanoseconds: start and end.
fn times(r: &Value) -> (i128, i128) {
    let ns = |k: &str| {
        let t = r["event"][k].as_str().unwrap();
        // RFC 3339 with nanoseconds: the seconds of the day and the fraction are enough here
        // (both captures ran within the same minutes).
        let hms = &t[11..19];
        let secs: i128 = hms
            .split(':')
            .fold(0, |acc, p| acc * 60 + p.parse::<i128>().unwrap());
        let frac: i128 = t[20..29].parse().unwrap();
        secs * 1_000_000_000 + frac
    };
    (ns("start"), ns("end"))
}

/// Records in a comparable form, sorted: the end reason of flows open at the end blanked (it
/// differs by design) and the capture times taken out, to be compared within a tolerance.
fn comparable(records: &[Value]) -> Vec<(String, (i128, i128))> {
    let mut v: Vec<(String, (i128, i128))> = records
        .iter()
        .map(|r| {
            let t = times(r);
            let mut r = r.clone();
            let reason = r["exwatch"]["end_reason"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if matches!(reason.as_str(), "shutdown" | "end-of-input" | "idle") {
                r["exwatch"]["end_reason"] = Value::from("open at the end");
            }
            r["@timestamp"] = Value::Null;
            // Only a live record names the interface it was captured on.
            if let Some(o) = r["observer"].as_object_mut() {
                o.remove("ingress");
            }
            if r["exwatch"]["rtt_ms"].is_number() {
                // Derived from two stamps: seen in both, its value within the slack.
                r["exwatch"]["rtt_ms"] = Value::from("seen");
            }
            for k in ["start", "end", "duration"] {
                r["event"][k] = Value::Null;
            }
            (r.to_string(), t)
        })
        .collect();
    v.sort();
    v
}

/// How far tcpdump's and exwatch's stamps of one packet may be apart. A packet that a local
/// TCP stack sent across the veth keeps its sender's monotonic departure time in the kernel,
/// so each packet socket reads the clock on its own when the packet reaches it (about a
/// microsecond apart here); replayed packets and a real SPAN port's get one stamp.
const STAMP_SLACK_NS: i128 = 1_000_000;

/// Audit the tcpdump recording with the same options and compare with the live records;
/// returns the audit's packets read.
fn compare(cap: &Capture, live_records: &[Value], extra: &[&str]) -> u64 {
    let rec = cap.path("audit.ndjson");
    let sum = cap.path("audit-summary.json");
    let out = exwatch()
        .arg("audit")
        .arg("--json")
        .arg(&rec)
        .arg("--summary-json")
        .arg(&sum)
        .args(extra)
        .arg(cap.path("tcpdump.pcap"))
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = read_records(&rec);
    assert!(
        !audit.is_empty(),
        "the recording has flows: tcpdump said {}; exwatch said {}",
        cap.tcpdump.stderr(),
        cap.live.stderr()
    );
    for r in live_records {
        assert!(
            r["observer"]["ingress"]["interface"]["name"].is_string(),
            "a live record names its interface: {r}"
        );
    }
    let (a, l) = (comparable(&audit), comparable(live_records));
    for ((x, tx), (y, ty)) in a.iter().zip(&l) {
        assert_eq!(x, y, "audit record vs live record");
        let close = (tx.0 - ty.0).abs() <= STAMP_SLACK_NS && (tx.1 - ty.1).abs() <= STAMP_SLACK_NS;
        assert!(close, "capture times {tx:?} vs {ty:?} of {x}");
    }
    assert_eq!(a.len(), l.len(), "audit and live record counts");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(sum).unwrap()).unwrap();
    s["packets_read"].as_u64().unwrap()
}

/// The live summary's capture accounting: everything received was read, nothing dropped.
fn check_accounting(cap: &Capture, audit_packets: u64) {
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(cap.path("live-summary.json")).unwrap())
            .unwrap();
    let c = &s["capture"];
    assert_eq!(c["kernel_drops"], 0, "{s}");
    assert_eq!(c["interface_drops"], 0, "{s}");
    assert_eq!(c["own_drops"]["queue_full"], 0, "{s}");
    assert_eq!(c["own_drops"]["flow_table_full"], 0, "{s}");
    assert_eq!(
        s["packets_read"], audit_packets,
        "live read what tcpdump recorded"
    );
    assert_eq!(c["received"], s["packets_read"], "{s}");
}

#[test]
fn tcpreplay_of_captures_gives_the_audit_records() {
    if !ready(&["tcpreplay", "tcpdump"]) {
        return;
    }
    let net = Net::new();
    // One socket: with a fanout group (`--threads` > 1) the kernel would hand exwatch the
    // fragmented SIP datagram reassembled, as one packet (see the fanout tests below).
    let mut cap = Capture::start(&net, &["--threads", "1"]);
    // Privileges dropped once the capture was open.
    let st = cap.status();
    let line = |k: &str| {
        st.lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("Uid:"), ["65534"; 4], "{st}");
    assert_eq!(line("Gid:"), ["65534"; 4], "{st}");
    assert_eq!(line("CapEff:"), ["0000000000000000"], "{st}");
    assert_eq!(line("CapPrm:"), ["0000000000000000"], "{st}");
    assert_eq!(line("NoNewPrivs:"), ["1"], "{st}");
    replay(
        &net,
        &[
            "smtp-exchange-25.pcap",
            "http-exchange-plain.pcap",
            "sip-udp-call.pcap",
            "sip-udp-fragmented.pcap",
            "dns-udp.pcap",
            "kerberos-udp.pcap",
            "imap-143.pcap",
            "ldap-389.pcap",
        ],
    );
    assert_eq!(
        cap.stop(),
        0,
        "exwatch live exits 0 on SIGTERM: {}",
        cap.live.stderr()
    );
    let live = read_records(&cap.path("live.ndjson"));
    let audit = compare(&cap, &live, &[]);
    check_accounting(&cap, audit);
    let err = cap.live.stderr();
    assert!(err.contains("exwatch stats: received"), "{err}");
    // The last stats line comes after every record: it counts them all, and no flow is open.
    let last = err
        .lines()
        .rfind(|l| l.starts_with("exwatch stats:"))
        .expect("a stats line");
    let after = |word: &str| -> u64 {
        let rest = &last[last
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {last}"))
            + word.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(after(" records "), live.len() as u64, "{last}");
    assert_eq!(after(" active-flows "), 0, "{last}");
    assert_eq!(after(" alerts "), 0, "no policy, no alert: {last}");
    assert!(live.iter().any(|r| r["network"]["protocol"] == "smtp"));
    assert!(live.iter().any(|r| r["network"]["protocol"] == "sip"));
    // The report, written at exit to a file opened before the privileges were dropped.
    let report = std::fs::read_to_string(cap.path("live-report.html")).unwrap();
    assert!(report.contains("<header id=\"run\" data-mode=\"live\">"));
    let audited: Value =
        serde_json::from_str(&std::fs::read_to_string(cap.path("audit-summary.json")).unwrap())
            .unwrap();
    let servers = audited["inventory"]["servers"].as_array().unwrap();
    assert!(!servers.is_empty());
    for s in servers {
        let addr = s["address"].as_str().unwrap();
        assert!(
            report.contains(&format!("<tr class=\"server\" data-address=\"{addr}\"")),
            "{addr}, a server of the audit, is in the live report's inventory"
        );
    }
    assert!(report.contains(&format!("data-file=\"{}\"", net.srv_if)));
}

/// nginx serves, curl fetches (one slow download lives past the active timeout); the records
/// file is rotated with SIGHUP half-way.
#[test]
fn nginx_and_curl_with_interim_records_and_sighup() {
    if !ready(&["nginx", "curl", "tcpdump"]) {
        return;
    }
    let net = Net::new();
    let opts = ["--active-timeout", "1", "--tcp-close-timeout", "0.5"];
    let mut cap = Capture::start(&net, &opts);
    let www = cap.path("www");
    std::fs::create_dir_all(www.join("owa")).unwrap();
    std::fs::write(www.join("owa/big.bin"), vec![b'x'; 300_000]).unwrap();
    std::fs::write(www.join("index.html"), "hello\n").unwrap();
    std::fs::write(www.join("owa/index.html"), "owa\n").unwrap();
    let conf = cap.path("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/nginx.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};\n\
             fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
             server {{ listen {SRV}:80; root {w}; location /owa/ {{ limit_rate 100k; }} }} }}\n",
            d = cap.dir.path().display(),
            w = www.display()
        ),
    )
    .unwrap();
    let ngx = net.cmd(&net.srv, &["nginx", "-c", conf.to_str().unwrap()]);
    let _nginx = Proc::spawn(ngx, cap.path("nginx.err"));
    let curl = |args: &[&str]| {
        let t0 = Instant::now();
        loop {
            let ok = net
                .cmd(
                    &net.cli,
                    &["curl", "-sf", "-o", "/dev/null", "--max-time", "20"],
                )
                .args(args)
                .status()
                .unwrap()
                .success();
            if ok {
                return;
            }
            // nginx may still be starting: retry a few times.
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "curl {args:?} failed"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    curl(&[&format!("http://{SRV}/index.html")]);
    // Wait for that flow's record (closed, then the close delay), then rotate.
    let rec = cap.path("live.ndjson");
    let t0 = Instant::now();
    while read_records(&rec).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(20), "no record written");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::rename(&rec, cap.path("live.ndjson.1")).unwrap();
    cap.live.signal(libc::SIGHUP);
    let t0 = Instant::now();
    while !rec.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no new file after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // About 3 s at nginx's 100 kB/s: interim records at each second of the flow.
    curl(&[&format!("http://{SRV}/owa/big.bin")]);
    curl(&[&format!("http://{SRV}/owa/")]);
    assert_eq!(cap.stop(), 0, "{}", cap.live.stderr());
    let before = read_records(&cap.path("live.ndjson.1"));
    let after = read_records(&rec);
    assert!(
        !before.is_empty() && !after.is_empty(),
        "records on both sides of the rotation"
    );
    let live: Vec<Value> = before.into_iter().chain(after).collect();
    let audit = compare(&cap, &live, &opts);
    check_accounting(&cap, audit);
    let interim: Vec<&Value> = live
        .iter()
        .filter(|r| r["exwatch"]["interim"] == true)
        .collect();
    assert!(
        interim.len() >= 2,
        "interim records of the slow download: {live:?}"
    );
    for r in &interim {
        assert_eq!(r["exwatch"]["end_reason"], "active-timeout");
        assert_eq!(
            r["event"]["type"],
            serde_json::json!(["connection", "info"])
        );
        // The final record of the same flow comes too, with at least the interim's counts.
        let fin = live
            .iter()
            .find(|f| {
                f["network"]["community_id"] == r["network"]["community_id"]
                    && f["@timestamp"] == r["@timestamp"]
                    && f["exwatch"]["interim"] != true
            })
            .expect("a final record");
        assert!(fin["network"]["bytes"].as_u64() >= r["network"]["bytes"].as_u64());
    }
}

/// sipp as UAS and UAC: SIP calls over UDP, seen live as the audit sees them.
#[test]
fn sipp_calls_give_the_audit_records() {
    if !ready(&["sipp", "tcpdump"]) {
        return;
    }
    let net = Net::new();
    let mut cap = Capture::start(&net, &[]);
    let uas = net.cmd(
        &net.srv,
        &["sipp", "-sn", "uas", "-i", SRV, "-p", "5060", "-nostdin"],
    );
    let _uas = Proc::spawn(uas, cap.path("uas.err"));
    let out = net
        .cmd(
            &net.cli,
            &[
                "sipp", "-sn", "uac", "-i", CLI, "-p", "5062", "-m", "3", "-nostdin",
            ],
        )
        .args(["-timeout", "30s", "-trace_err"])
        .arg(format!("{SRV}:5060"))
        .stdout(Stdio::null())
        .current_dir(cap.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sipp uac: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(cap.stop(), 0, "{}", cap.live.stderr());
    let live = read_records(&cap.path("live.ndjson"));
    let audit = compare(&cap, &live, &[]);
    check_accounting(&cap, audit);
    assert!(
        live.iter().any(|r| r["network"]["protocol"] == "sip"),
        "{live:?}"
    );
}

/// `live --tls-keylog`: a key log that is empty when the capture starts and gets its lines
/// afterwards (as a client writes them while it connects) still decrypts the sessions.
#[test]
fn a_key_log_written_after_the_start_is_read_on() {
    if !ready(&["tcpreplay", "tcpdump"]) {
        return;
    }
    let net = Net::new();
    let keys_dir = tempfile::tempdir().unwrap();
    sh(&["chmod", "0755", keys_dir.path().to_str().unwrap()]);
    let keys = keys_dir.path().join("sslkeys.log");
    std::fs::write(&keys, "").unwrap();
    let mut cap = Capture::start(&net, &["--tls-keylog", keys.to_str().unwrap()]);
    let pcap = root().join("pcaps/https-keylog-tls13.pcap");
    std::fs::write(&keys, std::fs::read(pcap.with_extension("keys")).unwrap()).unwrap();
    replay(&net, &["https-keylog-tls13.pcap"]);
    assert_eq!(cap.stop(), 0, "{}", cap.live.stderr());
    let live = read_records(&cap.path("live.ndjson"));
    assert_eq!(live.len(), 17, "{}", cap.live.stderr());
    for r in &live {
        assert_eq!(r["exwatch"]["tls"]["decrypted"], true, "{r}");
        assert_ne!(r["exwatch"]["service"], "https", "{r}");
    }
}

/// Captures without IP fragments, replayed for the fanout tests: with fanout the kernel
/// reassembles IPv4 fragments before hashing (PACKET_FANOUT_FLAG_DEFRAG), so a socket of the
/// group sees a fragmented datagram as one packet where tcpdump's own socket sees fragments.
/// Enough flows that a flow hash putting them all on one socket is out of the question.
const FANOUT_PCAPS: &[&str] = &[
    "smtp-exchange-25.pcap",
    "smtp-exchange-587.pcap",
    "http-exchange-plain.pcap",
    "sip-udp-call.pcap",
    "dns-udp.pcap",
    "dns-tcp.pcap",
    "kerberos-udp.pcap",
    "kerberos-tcp.pcap",
    "imap-143.pcap",
    "pop3-110.pcap",
    "ldap-389.pcap",
    "ldap-gc-3268.pcap",
    "ntp.pcap",
    "snmp.pcap",
];

/// `tcpreplay --topspeed` of captures of `pcaps/` on the client side of the veth pair.
fn replay(net: &Net, names: &[&str]) {
    let pcaps: Vec<PathBuf> = names.iter().map(|n| root().join("pcaps").join(n)).collect();
    let mut c = net.cmd(
        &net.cli,
        &["tcpreplay", "-q", "--topspeed", "-i", &net.cli_if],
    );
    c.args(&pcaps).stdout(Stdio::null());
    assert!(c.status().unwrap().success(), "tcpreplay");
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Issue 11: `--threads 2` opens two sockets in one fanout group, each read by its own reader
/// for its own worker; the records are still those of the audit, and both sockets took a share.
#[test]
fn two_sockets_in_a_fanout_group_give_the_audit_records() {
    if !ready(&["tcpreplay", "tcpdump"]) {
        return;
    }
    let net = Net::new();
    let mut cap = Capture::start(&net, &["--threads", "2"]);
    let err = cap.live.stderr();
    assert!(err.contains("2 sockets in fanout group"), "{err}");
    replay(&net, FANOUT_PCAPS);
    assert_eq!(cap.stop(), 0, "{}", cap.live.stderr());
    let live = read_records(&cap.path("live.ndjson"));
    let audit = compare(&cap, &live, &[]);
    check_accounting(&cap, audit);
    let s = summary(&cap.path("live-summary.json"));
    let sockets = s["capture"]["sockets"]
        .as_array()
        .expect("per-socket counters");
    assert_eq!(sockets.len(), 2, "{s}");
    let sum = |k: &str| sockets.iter().map(|x| x[k].as_u64().unwrap()).sum::<u64>();
    for x in sockets {
        assert!(
            x["received"].as_u64().unwrap() > 0,
            "each socket took a share: {s}"
        );
        assert!(x["packets_read"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(x["kernel_drops"], 0, "{s}");
    }
    assert_eq!(
        sum("received"),
        s["capture"]["received"].as_u64().unwrap(),
        "{s}"
    );
    assert_eq!(
        sum("packets_read"),
        s["packets_read"].as_u64().unwrap(),
        "{s}"
    );
    assert_eq!(
        sum("kernel_drops"),
        s["capture"]["kernel_drops"].as_u64().unwrap()
    );
    // The statistics line shows the totals.
    let err = cap.live.stderr();
    let last = err
        .lines()
        .rfind(|l| l.starts_with("exwatch stats:"))
        .expect("a stats line");
    assert!(
        last.starts_with(&format!(
            "exwatch stats: received {} read {} ",
            sum("received"),
            audit
        )),
        "{last}"
    );
}

/// A second `exwatch live` on the capture's interface, writing `second.ndjson` and
/// `second-summary.json` beside the first's files; started and capturing.
fn second_live(net: &Net, cap: &Capture, extra: &[&str]) -> Proc {
    let bin = env!("CARGO_BIN_EXE_exwatch");
    let mut c = net.cmd(&net.srv, &[bin, "live", "-i", &net.srv_if, "--quiet"]);
    c.arg("--json")
        .arg(cap.path("second.ndjson"))
        .arg("--summary-json")
        .arg(cap.path("second-summary.json"))
        .args(extra)
        .stdout(Stdio::null());
    let mut p = Proc::spawn(c, cap.path("second.err"));
    p.wait_for("capturing on");
    p
}

/// The fanout group named in a `capturing on` line.
fn group_of(stderr: &str) -> String {
    let at = stderr
        .find("in fanout group ")
        .unwrap_or_else(|| panic!("no fanout group in {stderr}"));
    stderr[at + 16..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .to_string()
}

/// Issue 11: without `--fanout-group` each process makes a group of its own, with an ID the
/// kernel picks: two processes on one interface do not share its traffic, each reads all of it.
#[test]
fn processes_without_a_fanout_group_do_not_share() {
    if !ready(&["tcpreplay", "tcpdump"]) {
        return;
    }
    let net = Net::new();
    let mut cap = Capture::start(&net, &["--threads", "2"]);
    let mut other = second_live(&net, &cap, &["--threads", "2"]);
    let (g1, g2) = (group_of(&cap.live.stderr()), group_of(&other.stderr()));
    assert_ne!(g1, g2, "two groups");
    replay(&net, &FANOUT_PCAPS[..4]);
    std::thread::sleep(Duration::from_millis(500));
    other.signal(libc::SIGTERM);
    assert_eq!(other.wait(), 0, "{}", other.stderr());
    assert_eq!(cap.stop(), 0, "{}", cap.live.stderr());
    let audit = compare(&cap, &read_records(&cap.path("second.ndjson")), &[]);
    let first = compare(&cap, &read_records(&cap.path("live.ndjson")), &[]);
    assert_eq!(first, audit);
    let read = summary(&cap.path("second-summary.json"))["packets_read"].as_u64();
    assert_eq!(
        read,
        Some(audit),
        "the second process read every packet too"
    );
}

/// Issue 11: two exwatch processes in one fanout group share the interface flow by flow: each
/// flow's record is in exactly one output, and together they are the audit's records. A third
/// that asks for the same group on another interface is refused (exit 2, with the kernel's
/// reason).
#[test]
fn two_processes_with_one_fanout_group_share_the_flows() {
    if !ready(&["tcpreplay", "tcpdump"]) {
        return;
    }
    let net = Net::new();
    let group = ["--fanout-group", "4711", "--threads", "1"];
    let mut cap = Capture::start(&net, &group);
    let err = cap.live.stderr();
    assert!(err.contains("1 socket in fanout group 4711"), "{err}");
    let dir = cap.dir.path().to_path_buf();
    let second = |n: &str| dir.join(n);
    let bin = env!("CARGO_BIN_EXE_exwatch");
    let mut other = second_live(&net, &cap, &group);
    // The group is bound to the first interface it was made on.
    let mut c = net.cmd(&net.srv, &[bin, "live", "-i", "lo", "--quiet"]);
    c.args(group).stdout(Stdio::null());
    let mut refused = Proc::spawn(c, second("refused.err"));
    let t0 = Instant::now();
    let code = loop {
        if let Ok(Some(st)) = refused.child.try_wait() {
            break st.code();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "still capturing after 20 s: the group was joined on lo: {}",
            refused.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let msg = refused.stderr();
    assert_eq!(code, Some(2), "{msg}");
    assert!(
        msg.contains("lo: cannot join fanout group 4711: Invalid argument"),
        "{msg}"
    );
    replay(&net, FANOUT_PCAPS);
    std::thread::sleep(Duration::from_millis(500));
    other.signal(libc::SIGTERM);
    assert_eq!(other.wait(), 0, "{}", other.stderr());
    assert_eq!(cap.stop(), 0, "{}", cap.live.stderr());
    let first = read_records(&cap.path("live.ndjson"));
    let other_records = read_records(&second("second.ndjson"));
    assert!(
        !first.is_empty() && !other_records.is_empty(),
        "both processes got flows: {} and {}",
        first.len(),
        other_records.len()
    );
    let ids = |v: &[Value]| -> std::collections::BTreeSet<String> {
        v.iter()
            .map(|r| r["network"]["community_id"].to_string())
            .collect()
    };
    let (a, b) = (ids(&first), ids(&other_records));
    assert!(
        a.is_disjoint(&b),
        "a flow in both outputs: {:?}",
        a.intersection(&b)
    );
    let all: Vec<Value> = first.into_iter().chain(other_records).collect();
    let audit = compare(&cap, &all, &[]);
    let read = |p: &Path| summary(p)["packets_read"].as_u64().unwrap();
    assert_eq!(
        read(&cap.path("live-summary.json")) + read(&second("second-summary.json")),
        audit,
        "the two processes read what tcpdump recorded, between them"
    );
}

/// Issue 11: with fanout the kernel reassembles IPv4 fragments before hashing
/// (`PACKET_FANOUT_FLAG_DEFRAG`), so a fragmented datagram reaches its flow's socket whole:
/// every flow is still one record, but the live record counts the datagram as one packet where
/// the audit of tcpdump's recording counts its fragments.
#[test]
fn fanout_reads_fragmented_datagrams_whole() {
    if !ready(&["tcpreplay", "tcpdump"]) {
        return;
    }
    let net = Net::new();
    let mut cap = Capture::start(&net, &["--threads", "2"]);
    replay(
        &net,
        &["sip-udp-fragmented.pcap", "dns-udp.pcap", "ldap-389.pcap"],
    );
    assert_eq!(cap.stop(), 0, "{}", cap.live.stderr());
    let live = read_records(&cap.path("live.ndjson"));
    let out = exwatch()
        .arg("audit")
        .arg("--json")
        .arg(cap.path("audit.ndjson"))
        .arg(cap.path("tcpdump.pcap"))
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let audit = read_records(&cap.path("audit.ndjson"));
    let by_id = |v: &[Value]| -> std::collections::BTreeMap<String, Value> {
        v.iter()
            .map(|r| (r["network"]["community_id"].to_string(), r.clone()))
            .collect()
    };
    let (l, a) = (by_id(&live), by_id(&audit));
    assert_eq!(live.len(), l.len(), "one record per flow: {live:?}");
    assert_eq!(
        l.keys().collect::<Vec<_>>(),
        a.keys().collect::<Vec<_>>(),
        "the same flows"
    );
    let mut fewer = 0;
    for (id, r) in &l {
        let (lp, ap) = (&r["network"]["packets"], &a[id]["network"]["packets"]);
        assert!(lp.as_u64() <= ap.as_u64(), "{id}: {lp} vs {ap}");
        assert_eq!(
            r["network"]["protocol"], a[id]["network"]["protocol"],
            "{id}"
        );
        fewer += usize::from(lp != ap);
    }
    assert_eq!(
        fewer, 1,
        "the fragmented SIP flow counts datagrams: {live:?}"
    );
}
