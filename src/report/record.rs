//! Flow records: one JSON object per flow with Elastic Common Schema field names.

use super::json::{self, Obj, Val};
use super::schema::{self, Type};
use crate::capture::time::rfc3339_into;
use crate::classify::{Classifier, Flow, Verdict};
use crate::decode::{transport_name, IPPROTO_TCP, IPPROTO_UDP};
use crate::flow::community_id::community_id_into;
use crate::flow::key::to_ip;
use crate::flow::{EndReason, ORIG, RESP};
use crate::policy::groups::Cidr;
use crate::policy::{Annotations, Kind};
use std::borrow::Cow;
use std::net::IpAddr;

/// What the summary needs of a finished flow (the record itself is already serialised).
#[derive(Debug, Clone)]
pub struct FlowSummary {
    pub protocol: String,
    pub service: String,
    pub packets: u64,
    pub bytes: u64,
    pub rtt_us: u32,
    pub server: (IpAddr, u16),
    pub end_reason: EndReason,
}

/// Record members the record writes itself; a detection field under one of these is dropped
/// rather than written twice.
const OWN: &[&str] = &[
    "@timestamp",
    "ecs",
    "event",
    "source",
    "destination",
    "related",
    "network",
    "observer",
    "rule",
];
const OWN_EXWATCH: &[&str] = &[
    "service",
    "confidence",
    "evidence",
    "conn_state",
    "mid_stream",
    "end_reason",
    "payload_bytes",
    "rtt_ms",
    "port_mismatch",
    "interim",
    "icmp",
    "policy",
    "firewall",
];

fn top(path: &str) -> &str {
    // A byte search: this runs for every detection field of every record.
    path.bytes()
        .position(|c| c == b'.')
        .map_or(path, |i| &path[..i])
}

/// A MAC address as ECS writes it: upper-case hexadecimal pairs joined by hyphens.
fn mac_text(m: [u8; 6], buf: &mut [u8; 17]) -> &str {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (i, b) in m.iter().enumerate() {
        buf[i * 3] = HEX[usize::from(b >> 4)];
        buf[i * 3 + 1] = HEX[usize::from(b & 15)];
        if i < 5 {
            buf[i * 3 + 2] = b'-';
        }
    }
    std::str::from_utf8(&buf[..]).expect("hex digits and hyphens")
}

/// An IP address as text without allocating for IPv4 (the common case).
fn ip_text(ip: IpAddr, buf: &mut [u8; 15]) -> Cow<'_, str> {
    match ip {
        IpAddr::V4(a) => {
            let mut n = 0;
            for (i, o) in a.octets().iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                let mut b = itoa::Buffer::new();
                let d = b.format(*o).as_bytes();
                buf[n..n + d.len()].copy_from_slice(d);
                n += d.len();
            }
            Cow::Borrowed(std::str::from_utf8(&buf[..n]).expect("digits and dots"))
        }
        IpAddr::V6(a) => Cow::Owned(a.to_string()),
    }
}

/// What every record of a run shares beyond the flow: the observer, the home networks that
/// decide `network.direction`, and the policy and rule-set files that judged the flows.
#[derive(Debug, Clone, Default)]
pub struct RecordContext {
    /// `"observer":{...},` pre-rendered once (empty: no observer fields).
    observer: String,
    home_net: Vec<Cidr>,
    /// `rule.ruleset` of records the policy decided (`--policy`).
    pub policy_file: Option<String>,
    /// `rule.ruleset` of records a firewall rule set decided (`validate --rules`).
    pub rules_file: Option<String>,
}

impl RecordContext {
    /// `hostname` and `interface` (live) describe the observer; `home_net` (empty: no
    /// `network.direction`) the inside. The rule files are set by the caller.
    pub fn new(hostname: &str, interface: Option<&str>, home_net: Vec<Cidr>) -> Self {
        let mut observer = Vec::new();
        let mut w = Obj {
            out: &mut observer,
            first: true,
        };
        w.begin("observer");
        if !hostname.is_empty() {
            w.str("hostname", hostname);
        }
        if let Some(i) = interface {
            w.begin("ingress")
                .begin("interface")
                .str("name", i)
                .end()
                .end();
        }
        w.str("product", "exwatch")
            .str("type", "sensor")
            .str("vendor", "exwatch")
            .str("version", env!("CARGO_PKG_VERSION"))
            .end();
        observer.push(b',');
        RecordContext {
            observer: String::from_utf8(observer).expect("JSON text"),
            home_net,
            policy_file: None,
            rules_file: None,
        }
    }

    /// The host's name, for `observer.hostname` (empty when the system will not say).
    pub fn hostname() -> String {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
        // or fails.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return String::new();
        }
        let n = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn direction(&self, src: IpAddr, dst: IpAddr) -> Option<&'static str> {
        if self.home_net.is_empty() {
            return None;
        }
        let inside = |ip| self.home_net.iter().any(|c| c.contains(ip));
        Some(match (inside(src), inside(dst)) {
            (true, true) => "internal",
            (true, false) => "outbound",
            (false, true) => "inbound",
            (false, false) => "external",
        })
    }
}

/// The home networks a policy's groups describe: every network of every group that is not a
/// catch-all (a group holding a /0 stands for the outside, such as `internet`).
pub fn home_net_of(groups: &crate::policy::groups::Groups) -> Vec<Cidr> {
    groups
        .iter()
        .filter(|(_, cidrs)| cidrs.iter().all(|c| c.prefix() > 0))
        .flat_map(|(_, cidrs)| cidrs.iter().copied())
        .collect()
}

static NO_CONTEXT: std::sync::LazyLock<RecordContext> =
    std::sync::LazyLock::new(RecordContext::default);

/// Build a flow's record into `out` (one NDJSON line) when given, and return its summary.
pub fn build(
    flow: &Flow,
    reason: EndReason,
    verdict: Verdict,
    out: Option<&mut Vec<u8>>,
) -> FlowSummary {
    build_noted(
        flow,
        reason,
        verdict,
        &Annotations::default(),
        &NO_CONTEXT,
        out,
    )
}

/// [`build`] with the policy and firewall verdicts of the flow and the run's context.
pub fn build_noted(
    flow: &Flow,
    reason: EndReason,
    verdict: Verdict,
    notes: &Annotations,
    ctx: &RecordContext,
    out: Option<&mut Vec<u8>>,
) -> FlowSummary {
    let ((oa, op), (ra, rp)) = flow.endpoints();
    let (src, dst) = (to_ip(&oa, flow.key.v6), to_ip(&ra, flow.key.v6));
    let (o, r) = (&flow.dirs[ORIG], &flow.dirs[RESP]);
    if let Some(out) = out {
        let rec = Rec {
            flow,
            reason,
            verdict: &verdict,
            notes,
            ctx,
        };
        write_record(out, &rec, (src, op), (dst, rp));
    }
    FlowSummary {
        protocol: verdict.protocol,
        service: verdict.service,
        packets: o.packets + r.packets,
        bytes: o.bytes + r.bytes,
        rtt_us: flow.rtt_us,
        server: (dst, rp),
        end_reason: reason,
    }
}

/// What one record is made of.
struct Rec<'a> {
    flow: &'a Flow,
    reason: EndReason,
    verdict: &'a Verdict,
    notes: &'a Annotations,
    ctx: &'a RecordContext,
}

/// The detection fields a record writes (not those it writes itself), sorted by path. The
/// sort is stable: the elements of an array field keep the detector's order.
fn sorted_fields<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    let mut raw: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| !OWN.contains(&top(k)))
        .filter(|(k, _)| {
            k.strip_prefix("exwatch.")
                .is_none_or(|rest| !OWN_EXWATCH.contains(&top(rest)))
        })
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    raw.sort_by(|a, b| a.0.cmp(b.0));
    raw
}

/// `sorted` typed by the schema: numbers and booleans as such, and the entries of an array
/// field (one per element) as one array. A value that does not parse as its type is left out
/// rather than written with a type an index would refuse.
fn typed_fields<'a>(sorted: &'a [(&'static str, &'a str)]) -> Vec<(&'a str, Val<'a>)> {
    let mut out = Vec::with_capacity(sorted.len());
    let mut i = 0;
    while i < sorted.len() {
        let (k, v) = sorted[i];
        let field = schema::lookup(k);
        if field.is_some_and(|f| f.array) {
            let n = sorted[i..].iter().take_while(|(k2, _)| *k2 == k).count();
            out.push((k, Val::Run(&sorted[i..i + n])));
            i += n;
            continue;
        }
        let val = match field.map(|f| f.ty) {
            Some(Type::Long) => v.parse().ok().map(Val::U64),
            Some(Type::Float) => v.parse().ok().map(Val::F64),
            Some(Type::Boolean) => match v {
                "true" => Some(Val::Bool(true)),
                "false" => Some(Val::Bool(false)),
                _ => None,
            },
            _ => Some(Val::Str(v)),
        };
        if let Some(val) = val {
            out.push((k, val));
        }
        i += 1;
    }
    out
}

/// Whether a judged flow is allowed or denied (a policy's unexpected and mismatch flows are
/// not allowed by it), and ECS's rule: the one that decided, the firewall's when a rule set
/// judged, with the file it is in.
fn decided<'a>(
    notes: &'a Annotations,
    ctx: &'a RecordContext,
) -> (Option<bool>, Option<&'a str>, Option<&'a str>) {
    match (&notes.firewall, &notes.policy) {
        (Some(f), _) => (
            Some(f.allowed),
            Some(f.rule.as_str()),
            ctx.rules_file.as_deref(),
        ),
        (None, Some(p)) => (
            Some(p.kind == Kind::Allowed),
            p.rule.as_deref(),
            ctx.policy_file.as_deref(),
        ),
        (None, None) => (None, None, None),
    }
}

/// A record read back (`report::ingest`) with new verdicts: the old `exwatch.policy`,
/// `exwatch.firewall`, `rule`, `event.type` verdict and `network.direction` are replaced by
/// what `notes` and this run's `ctx` say, in the shapes [`write_record`] gives them.
pub fn rejudge(
    record: &mut serde_json::Value,
    notes: &Annotations,
    ctx: &RecordContext,
    (src, dst): (IpAddr, IpAddr),
) {
    use serde_json::{json, Value};
    let Some(obj) = record.as_object_mut() else {
        return;
    };
    obj.remove("rule");
    if let Some(net) = obj.get_mut("network").and_then(Value::as_object_mut) {
        net.remove("direction");
        if let Some(d) = ctx.direction(src, dst) {
            net.insert("direction".into(), json!(d));
        }
    }
    if let Some(ex) = obj.get_mut("exwatch").and_then(Value::as_object_mut) {
        ex.remove("policy");
        ex.remove("firewall");
        if let Some(p) = &notes.policy {
            let mut v = json!({"verdict": p.kind.label()});
            if let Some(r) = &p.rule {
                v["rule"] = json!(r);
            }
            v["reason"] = json!(p.reason);
            v["source_group"] = json!(p.source_group);
            v["destination_group"] = json!(p.destination_group);
            v["reversed"] = json!(p.reversed);
            ex.insert("policy".into(), v);
        }
        if let Some(f) = &notes.firewall {
            let action = if f.allowed { "allow" } else { "deny" };
            ex.insert(
                "firewall".into(),
                json!({"action": action, "reversed": f.reversed}),
            );
        }
    }
    let (judged, rule, ruleset) = decided(notes, ctx);
    if let Some(types) = obj
        .get_mut("event")
        .and_then(|e| e.get_mut("type"))
        .and_then(Value::as_array_mut)
    {
        types.retain(|t| t != "allowed" && t != "denied");
        if let Some(allowed) = judged {
            types.push(json!(if allowed { "allowed" } else { "denied" }));
        }
    }
    if rule.is_some() || ruleset.is_some() {
        let mut r = serde_json::Map::new();
        if let Some(n) = rule {
            r.insert("name".into(), json!(n));
        }
        if let Some(s) = ruleset {
            r.insert("ruleset".into(), json!(s));
        }
        obj.insert("rule".into(), Value::Object(r));
    }
}

fn write_record(
    out: &mut Vec<u8>,
    rec: &Rec<'_>,
    (src, op): (IpAddr, u16),
    (dst, rp): (IpAddr, u16),
) {
    let (flow, reason, verdict) = (rec.flow, rec.reason, rec.verdict);
    let proto = flow.key.proto;
    let (o, r) = (&flow.dirs[ORIG], &flow.dirs[RESP]);
    let has_ports = proto == IPPROTO_TCP || proto == IPPROTO_UDP;
    let icmp = proto == 1 || proto == 58;
    let ports = if has_ports {
        Some((op, rp))
    } else if icmp {
        Some((flow.icmp_type_code >> 8, flow.icmp_type_code & 0xff))
    } else {
        None
    };
    let (mut tb1, mut tb2) = ([0u8; 30], [0u8; 30]);
    let start = rfc3339_into(flow.first_ts, &mut tb1);
    let end = rfc3339_into(flow.last_ts, &mut tb2);
    let (mut ib1, mut ib2) = ([0u8; 15], [0u8; 15]);
    let no_fields = Vec::new();
    let fields = flow
        .state
        .detection
        .as_deref()
        .map_or(&no_fields, |d| &d.fields);
    let sorted = sorted_fields(fields);
    let extra = typed_fields(&sorted);
    let split = extra.partition_point(|(k, _)| *k < "exwatch.");
    let ex_end = extra.partition_point(|(k, _)| *k < "exwatch/");
    let (policy, firewall) = (rec.notes.policy.as_ref(), rec.notes.firewall.as_ref());
    let (judged, rule, ruleset) = decided(rec.notes, rec.ctx);
    // The record's constant opening is copied in a few pieces instead of being built member
    // by member (the timestamps are digits and separators: nothing to escape).
    out.reserve(1024);
    // Interim and alert records say so in event.kind and event.type; the final one says `end`.
    let (kind, types) = match reason {
        EndReason::Alert => ("alert", "[\"connection\",\"info\""),
        EndReason::ActiveTimeout => ("event", "[\"connection\",\"info\""),
        _ => ("event", "[\"connection\",\"end\""),
    };
    let judged_type = match judged {
        Some(true) => ",\"allowed\"]",
        Some(false) => ",\"denied\"]",
        None => "]",
    };
    for piece in [
        "{\"@timestamp\":\"",
        start,
        "\",\"ecs\":{\"version\":\"",
        schema::ECS_VERSION,
        "\"},\"event\":{\"kind\":\"",
        kind,
        "\",\"category\":[\"network\"],\"type\":",
        types,
        judged_type,
        ",\"module\":\"exwatch\",\"dataset\":\"exwatch.flow\",\"start\":\"",
        start,
        "\",\"end\":\"",
        end,
        "\",\"duration\":",
        itoa::Buffer::new().format(flow.last_ts - flow.first_ts),
        "},",
        &rec.ctx.observer,
    ] {
        out.extend_from_slice(piece.as_bytes());
    }
    let mut w = Obj { out, first: true };
    let (src_text, dst_text) = (ip_text(src, &mut ib1), ip_text(dst, &mut ib2));
    let (src_mac, dst_mac) = if flow.orig_is_lo {
        (flow.macs[0], flow.macs[1])
    } else {
        (flow.macs[1], flow.macs[0])
    };
    for (name, ip, port, d, mac) in [
        ("source", &src_text, op, o, src_mac),
        ("destination", &dst_text, rp, r, dst_mac),
    ] {
        w.begin(name).str("ip", ip);
        if has_ports {
            w.u64("port", u64::from(port));
        }
        if mac != [0; 6] {
            w.str("mac", mac_text(mac, &mut [0; 17]));
        }
        w.u64("packets", d.packets).u64("bytes", d.bytes).end();
    }
    let related: [&str; 2] = [&src_text, &dst_text];
    let related = if src == dst {
        &related[..1]
    } else {
        &related[..]
    };
    w.begin("related").val("ip", Val::Strs(related)).end();
    let mut cid = [0u8; 30];
    w.begin("network")
        .str("transport", &transport_name(proto))
        .str("type", if flow.key.v6 { "ipv6" } else { "ipv4" })
        .str("iana_number", itoa::Buffer::new().format(proto))
        .str("protocol", &verdict.protocol)
        .str(
            "community_id",
            community_id_into(0, proto, src, dst, ports, &mut cid),
        )
        .u64("bytes", o.bytes + r.bytes)
        .u64("packets", o.packets + r.packets);
    if let Some(d) = rec.ctx.direction(src, dst) {
        w.str("direction", d);
    }
    if flow.key.vlan[0] != 0 {
        // ECS keeps VLAN ids as keyword strings.
        w.begin("vlan")
            .str("id", itoa::Buffer::new().format(flow.key.vlan[0]))
            .end();
        if flow.key.vlan[1] != 0 {
            w.begin("inner")
                .begin("vlan")
                .str("id", itoa::Buffer::new().format(flow.key.vlan[1]))
                .end()
                .end();
        }
    }
    w.end();
    w.begin("exwatch")
        .str("service", &verdict.service)
        .str("confidence", verdict.confidence.label())
        .str("evidence", &verdict.evidence)
        .str("conn_state", flow.conn_state())
        .val("mid_stream", Val::Bool(flow.mid_stream))
        .str("end_reason", reason.label());
    if reason.is_interim() {
        w.val("interim", Val::Bool(true));
    }
    w.begin("payload_bytes")
        .u64("source", o.payload_bytes)
        .u64("destination", r.payload_bytes)
        .end();
    if flow.rtt_us > 0 {
        w.val("rtt_ms", Val::F64(f64::from(flow.rtt_us) / 1000.0));
    }
    if let Some(m) = &verdict.port_mismatch {
        w.str("port_mismatch", m);
    }
    if icmp {
        w.begin("icmp")
            .u64("type", u64::from(flow.icmp_type_code >> 8))
            .u64("code", u64::from(flow.icmp_type_code & 0xff))
            .end();
    }
    if let Some(p) = policy {
        w.begin("policy").str("verdict", p.kind.label());
        if let Some(r) = &p.rule {
            w.str("rule", r);
        }
        w.str("reason", &p.reason)
            .str("source_group", &p.source_group)
            .str("destination_group", &p.destination_group)
            .val("reversed", Val::Bool(p.reversed))
            .end();
    }
    if let Some(f) = firewall {
        w.begin("firewall")
            .str("action", if f.allowed { "allow" } else { "deny" })
            .val("reversed", Val::Bool(f.reversed))
            .end();
    }
    let inner: Vec<(&str, Val<'_>)> = extra[split..ex_end]
        .iter()
        .map(|(k, v)| (&k["exwatch.".len()..], *v))
        .collect();
    json::write_members(w.out, &inner, &mut w.first);
    w.end();
    json::write_members(w.out, &extra[..split], &mut w.first);
    json::write_members(w.out, &extra[ex_end..], &mut w.first);
    if rule.is_some() || ruleset.is_some() {
        w.begin("rule");
        if let Some(r) = rule {
            w.str("name", r);
        }
        if let Some(s) = ruleset {
            w.str("ruleset", s);
        }
        w.end();
    }
    out_close(w.out);
}

fn out_close(out: &mut Vec<u8>) {
    out.extend_from_slice(b"}\n");
}

/// Classify a finished flow, append its NDJSON line to `out`, and return its summary.
pub fn write(
    flow: &Flow,
    reason: EndReason,
    classifier: &Classifier,
    out: Option<&mut Vec<u8>>,
) -> FlowSummary {
    build(flow, reason, classifier.verdict(flow), out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Confidence, Detection};
    use crate::flow::tests::pkt;
    use crate::signatures::Signatures;
    use std::sync::Arc;

    #[test]
    fn record_nests_detection_fields_beside_its_own() {
        let p = pkt(9, 50000, 2, 80, 0x02, 1_000_000_000);
        let mut f = Flow::new(&p, |_, _| false);
        f.update(&p);
        f.state.detection = Some(Box::new(Detection {
            reversed: false,
            protocol: "http",
            service: Some("ews".into()),
            confidence: Confidence::Payload,
            evidence: "HTTP \"POST\"".into(),
            fields: vec![
                ("url.path", "/EWS/Exchange.asmx".into()),
                ("exwatch.mapi.request_type", "Connect".into()),
                ("http.request.method", "POST".into()),
                ("exwatch.service", "spoofed".into()),
            ],
        }));
        let c = Classifier::new(Arc::new(Signatures::embedded()));
        let mut out = Vec::new();
        let s = write(&f, EndReason::Idle, &c, Some(&mut out));
        assert_eq!(s.service, "ews");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["exwatch"]["service"], "ews");
        assert_eq!(v["exwatch"]["mapi"]["request_type"], "Connect");
        assert_eq!(v["url"]["path"], "/EWS/Exchange.asmx");
        assert_eq!(v["http"]["request"]["method"], "POST");
        assert_eq!(v["exwatch"]["evidence"], "HTTP \"POST\"");
        assert_eq!(v["destination"]["port"], 80);
        assert_eq!(v["network"]["transport"], "tcp");
        assert_eq!(v["event"]["category"][0], "network");
        assert!(out.ends_with(b"\n"));
    }
}
