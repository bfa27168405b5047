//! Flow records: one JSON object per flow with Elastic Common Schema field names.

use super::community_id::community_id;
use super::time::rfc3339;
use crate::classify::{Classifier, Verdict};
use crate::decode::{IPPROTO_TCP, IPPROTO_UDP};
use crate::flow::key::to_ip;
use crate::flow::{EndReason, Flow, ORIG, RESP};
use serde_json::{json, Map, Value};
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
pub fn transport_name(proto: u8) -> String {
    match proto {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        1 => "icmp".into(),
        58 => "ipv6-icmp".into(),
        2 => "igmp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        132 => "sctp".into(),
        89 => "ospf".into(),
        other => other.to_string(),
    }
}

/// Insert `value` at a dotted path (`tls.client.server_name`) into nested objects.
pub fn insert_dotted(root: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = root;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_string(), value);
            return;
        }
        let next = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        cur = next.as_object_mut().expect("made an object above");
    }
}

/// Build a flow's record and its summary line.
pub fn build(flow: &Flow, reason: EndReason, verdict: &Verdict) -> (Value, FlowSummary) {
    let ((oa, op), (ra, rp)) = flow.endpoints();
    let (src, dst) = (to_ip(&oa, flow.key.v6), to_ip(&ra, flow.key.v6));
    let proto = flow.key.proto;
    let has_ports = proto == IPPROTO_TCP || proto == IPPROTO_UDP;
    let ports = if has_ports {
        Some((op, rp))
    } else if proto == 1 || proto == 58 {
        Some((flow.icmp_type_code >> 8, flow.icmp_type_code & 0xff))
    } else {
        None
    };
    let (o, r) = (&flow.dirs[ORIG], &flow.dirs[RESP]);
    let endpoint = |ip: IpAddr, port: u16, d: &crate::flow::DirStats| {
        let mut m = Map::new();
        m.insert("ip".into(), json!(ip.to_string()));
        if has_ports {
            m.insert("port".into(), json!(port));
        }
        m.insert("packets".into(), json!(d.packets));
        m.insert("bytes".into(), json!(d.bytes));
        Value::Object(m)
    };
    let mut network = Map::new();
    network.insert("transport".into(), json!(transport_name(proto)));
    network.insert(
        "type".into(),
        json!(if flow.key.v6 { "ipv6" } else { "ipv4" }),
    );
    network.insert("protocol".into(), json!(verdict.protocol));
    network.insert(
        "community_id".into(),
        json!(community_id(0, proto, src, dst, ports)),
    );
    network.insert("bytes".into(), json!(o.bytes + r.bytes));
    network.insert("packets".into(), json!(o.packets + r.packets));
    if flow.key.vlan[0] != 0 {
        network.insert("vlan".into(), json!({ "id": flow.key.vlan[0].to_string() }));
        if flow.key.vlan[1] != 0 {
            network.insert(
                "inner".into(),
                json!({ "vlan": { "id": flow.key.vlan[1].to_string() } }),
            );
        }
    }
    let mut ex = Map::new();
    ex.insert("service".into(), json!(verdict.service));
    ex.insert("confidence".into(), json!(verdict.confidence.label()));
    ex.insert("evidence".into(), json!(verdict.evidence));
    ex.insert("conn_state".into(), json!(flow.conn_state()));
    ex.insert("mid_stream".into(), json!(flow.mid_stream));
    ex.insert("end_reason".into(), json!(reason.label()));
    ex.insert(
        "payload_bytes".into(),
        json!({ "source": o.payload_bytes, "destination": r.payload_bytes }),
    );
    if flow.rtt_us > 0 {
        ex.insert("rtt_ms".into(), json!(f64::from(flow.rtt_us) / 1000.0));
    }
    if let Some(m) = &verdict.port_mismatch {
        ex.insert("port_mismatch".into(), json!(m));
    }
    let mut root = Map::new();
    root.insert("@timestamp".into(), json!(rfc3339(flow.first_ts)));
    root.insert(
        "event".into(),
        json!({
            "kind": "event",
            "category": ["network"],
            "type": ["connection"],
            "dataset": "exwatch.flow",
            "start": rfc3339(flow.first_ts),
            "end": rfc3339(flow.last_ts),
            "duration": flow.last_ts - flow.first_ts,
        }),
    );
    root.insert("source".into(), endpoint(src, op, o));
    root.insert("destination".into(), endpoint(dst, rp, r));
    root.insert("network".into(), Value::Object(network));
    root.insert("exwatch".into(), Value::Object(ex));
    if let Some(d) = &flow.detection {
        for (k, v) in &d.fields {
            insert_dotted(&mut root, k, json!(v));
        }
    }
    let summary = FlowSummary {
        protocol: verdict.protocol.clone(),
        service: verdict.service.clone(),
        packets: o.packets + r.packets,
        bytes: o.bytes + r.bytes,
        rtt_us: flow.rtt_us,
        server: (dst, rp),
        end_reason: reason,
    };
    (Value::Object(root), summary)
}

/// Classify a finished flow, append its NDJSON line to `out`, and return its summary.
pub fn write(
    flow: &Flow,
    reason: EndReason,
    classifier: &Classifier,
    out: Option<&mut Vec<u8>>,
) -> FlowSummary {
    let verdict = classifier.verdict(flow);
    let (value, summary) = build(flow, reason, &verdict);
    if let Some(out) = out {
        serde_json::to_writer(&mut *out, &value).expect("writing JSON to memory cannot fail");
        out.push(b'\n');
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_fields_nest() {
        let mut m = Map::new();
        insert_dotted(&mut m, "tls.client.server_name", json!("a"));
        insert_dotted(&mut m, "tls.version", json!("1.2"));
        assert_eq!(
            Value::Object(m),
            json!({"tls": {"client": {"server_name": "a"}, "version": "1.2"}})
        );
    }
}
