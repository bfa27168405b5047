//! Flow records: one JSON object per flow with Elastic Common Schema field names.

use super::community_id::community_id_into;
use super::json::{self, Obj, Val};
use super::time::rfc3339_into;
use crate::classify::{Classifier, Verdict};
use crate::decode::{IPPROTO_TCP, IPPROTO_UDP};
use crate::flow::key::to_ip;
use crate::flow::{EndReason, Flow, ORIG, RESP};
use crate::policy::Annotations;
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

/// Name of an IP protocol for `network.transport`.
pub fn transport_name(proto: u8) -> Cow<'static, str> {
    Cow::Borrowed(match proto {
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        1 => "icmp",
        58 => "ipv6-icmp",
        2 => "igmp",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        132 => "sctp",
        89 => "ospf",
        other => return Cow::Owned(other.to_string()),
    })
}

/// Record members the record writes itself; a detection field under one of these is dropped
/// rather than written twice.
const OWN: &[&str] = &[
    "@timestamp",
    "event",
    "source",
    "destination",
    "network",
    "policy",
    "firewall",
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
];

fn top(path: &str) -> &str {
    // A byte search: this runs for every detection field of every record.
    path.bytes()
        .position(|c| c == b'.')
        .map_or(path, |i| &path[..i])
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

/// Build a flow's record into `out` (one NDJSON line) when given, and return its summary.
pub fn build(
    flow: &Flow,
    reason: EndReason,
    verdict: Verdict,
    out: Option<&mut Vec<u8>>,
) -> FlowSummary {
    build_noted(flow, reason, verdict, &Annotations::default(), out)
}

/// [`build`] with the policy and firewall verdicts (`policy.*`, `firewall.*`) of the flow.
pub fn build_noted(
    flow: &Flow,
    reason: EndReason,
    verdict: Verdict,
    notes: &Annotations,
    out: Option<&mut Vec<u8>>,
) -> FlowSummary {
    let ((oa, op), (ra, rp)) = flow.endpoints();
    let (src, dst) = (to_ip(&oa, flow.key.v6), to_ip(&ra, flow.key.v6));
    let (o, r) = (&flow.dirs[ORIG], &flow.dirs[RESP]);
    if let Some(out) = out {
        write_record(out, flow, reason, &verdict, (src, op), (dst, rp));
        write_notes(out, notes);
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

fn write_record(
    out: &mut Vec<u8>,
    flow: &Flow,
    reason: EndReason,
    verdict: &Verdict,
    (src, op): (IpAddr, u16),
    (dst, rp): (IpAddr, u16),
) {
    let proto = flow.key.proto;
    let (o, r) = (&flow.dirs[ORIG], &flow.dirs[RESP]);
    let has_ports = proto == IPPROTO_TCP || proto == IPPROTO_UDP;
    let ports = if has_ports {
        Some((op, rp))
    } else if proto == 1 || proto == 58 {
        Some((flow.icmp_type_code >> 8, flow.icmp_type_code & 0xff))
    } else {
        None
    };
    let (mut tb1, mut tb2) = ([0u8; 30], [0u8; 30]);
    let start = rfc3339_into(flow.first_ts, &mut tb1);
    let end = rfc3339_into(flow.last_ts, &mut tb2);
    let (mut ib1, mut ib2) = ([0u8; 15], [0u8; 15]);
    // Detection fields, sorted so each nested object's members are contiguous.
    let mut extra: Vec<(&str, Val<'_>)> = flow
        .detection
        .as_deref()
        .map(|d| {
            d.fields
                .iter()
                .filter(|(k, _)| !OWN.contains(&top(k)))
                .filter(|(k, _)| {
                    k.strip_prefix("exwatch.")
                        .is_none_or(|rest| !OWN_EXWATCH.contains(&top(rest)))
                })
                .map(|(k, v)| (*k, Val::Str(v.as_str())))
                .collect()
        })
        .unwrap_or_default();
    extra.sort_by(|a, b| a.0.cmp(b.0));
    let split = extra.partition_point(|(k, _)| *k < "exwatch.");
    let ex_end = extra.partition_point(|(k, _)| *k < "exwatch/");
    // The record's constant opening is copied in a few pieces instead of being built member
    // by member (the timestamps are digits and separators: nothing to escape).
    out.reserve(1024);
    // Interim and alert records say so in event.kind and event.type.
    let (kind, types) = match reason {
        EndReason::Alert => ("alert", "[\"connection\",\"info\"]"),
        EndReason::ActiveTimeout => ("event", "[\"connection\",\"info\"]"),
        _ => ("event", "[\"connection\"]"),
    };
    for piece in [
        "{\"@timestamp\":\"",
        start,
        "\",\"event\":{\"kind\":\"",
        kind,
        "\",\"category\":[\"network\"],\"type\":",
        types,
        ",\"dataset\":\"exwatch.flow\",\"start\":\"",
        start,
        "\",\"end\":\"",
        end,
        "\",\"duration\":",
        itoa::Buffer::new().format(flow.last_ts - flow.first_ts),
        "}",
    ] {
        out.extend_from_slice(piece.as_bytes());
    }
    let mut w = Obj { out, first: false };
    for (name, ip, port, d, buf) in [
        ("source", src, op, o, &mut ib1),
        ("destination", dst, rp, r, &mut ib2),
    ] {
        w.begin(name).str("ip", &ip_text(ip, buf));
        if has_ports {
            w.u64("port", u64::from(port));
        }
        w.u64("packets", d.packets).u64("bytes", d.bytes).end();
    }
    let mut cid = [0u8; 30];
    w.begin("network")
        .str("transport", &transport_name(proto))
        .str("type", if flow.key.v6 { "ipv6" } else { "ipv4" })
        .str("protocol", &verdict.protocol)
        .str(
            "community_id",
            community_id_into(0, proto, src, dst, ports, &mut cid),
        )
        .u64("bytes", o.bytes + r.bytes)
        .u64("packets", o.packets + r.packets);
    if flow.key.vlan[0] != 0 {
        // ECS keeps VLAN ids as keyword strings.
        w.begin("vlan")
            .str("id", &flow.key.vlan[0].to_string())
            .end();
        if flow.key.vlan[1] != 0 {
            w.begin("inner")
                .begin("vlan")
                .str("id", &flow.key.vlan[1].to_string())
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
    let inner: Vec<(&str, Val<'_>)> = extra[split..ex_end]
        .iter()
        .map(|(k, v)| (&k["exwatch.".len()..], *v))
        .collect();
    json::write_members(w.out, &inner, &mut w.first);
    w.end();
    let mut first = w.first;
    json::write_members(w.out, &extra[..split], &mut first);
    json::write_members(w.out, &extra[ex_end..], &mut first);
    out_close(w.out);
}

/// Append `policy.*` and `firewall.*` to the record just written (before its closing brace).
fn write_notes(out: &mut Vec<u8>, notes: &Annotations) {
    if notes.policy.is_none() && notes.firewall.is_none() {
        return;
    }
    debug_assert!(out.ends_with(b"}\n"));
    out.truncate(out.len() - 2);
    let mut w = Obj { out, first: false };
    if let Some(p) = &notes.policy {
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
    if let Some(f) = &notes.firewall {
        w.begin("firewall")
            .str("rule", &f.rule)
            .str("action", if f.allowed { "allow" } else { "deny" })
            .val("reversed", Val::Bool(f.reversed))
            .end();
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
        f.detection = Some(Box::new(Detection {
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
