//! Issue 5: flows that explain other flows (SIP media, endpoint-mapper ports, learned
//! endpoints), on real-peer captures and cuts of them (`pcaps/make-cuts.sh`).

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;

fn cap(name: &str) -> PathBuf {
    root().join("pcaps").join(name)
}

fn s<'a>(r: &'a Value, path: &str) -> &'a str {
    field(r, path).as_str().unwrap_or("")
}

/// The record whose responder or originator port is `port` on `transport`.
fn by_port<'a>(recs: &'a [Value], transport: &str, port: u64) -> &'a Value {
    recs.iter()
        .find(|r| {
            s(r, "network.transport") == transport
                && (field(r, "source.port").as_u64() == Some(port)
                    || field(r, "destination.port").as_u64() == Some(port))
        })
        .unwrap_or_else(|| panic!("no {transport} flow on port {port}"))
}

/// The one record `pred` picks.
fn find<'a>(recs: &'a [Value], what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    recs.iter()
        .find(|r| pred(r))
        .unwrap_or_else(|| panic!("no {what}"))
}

fn sip_flow(recs: &[Value]) -> &Value {
    find(recs, "SIP flow", |r| s(r, "network.protocol") == "sip")
}

#[test]
fn sip_call_media_carry_the_sip_flow_as_parent() {
    for (name, rtp, rtcp) in [
        ("sip-udp-call-rtcp.pcap", 17002, Some(17003)),
        ("sip-udp-call.pcap", 17000, None),
        ("sip-tcp-call.pcap", 17000, None),
        ("sip-udp-fragmented.pcap", 17000, None),
        ("sip-um-5065.pcap", 17000, None),
    ] {
        let run = audit(&[&cap(name)], &["-q"]);
        let parent = s(sip_flow(&run.records), "network.community_id").to_string();
        let r = by_port(&run.records, "udp", rtp);
        assert_eq!(s(r, "network.protocol"), "rtp", "{name}");
        assert_eq!(s(r, "exwatch.confidence"), "expectation", "{name}");
        assert_eq!(s(r, "exwatch.parent"), parent, "{name}");
        assert!(
            s(r, "exwatch.evidence").contains("payload agrees"),
            "{name}: the RTP heuristic is noted"
        );
        if let Some(p) = rtcp {
            let r = by_port(&run.records, "udp", p);
            assert_eq!(s(r, "network.protocol"), "rtcp", "{name}");
            assert_eq!(s(r, "exwatch.confidence"), "expectation");
            assert_eq!(s(r, "exwatch.parent"), parent);
        }
        assert!(run.summary["expectations"]["matched"].as_u64().unwrap() >= 1);
    }
    // Exchange UM signalling makes its media um-rtp; a plain SIP call's media are rtp.
    let um = audit(&[&cap("sip-um-5065.pcap")], &["-q"]);
    assert_eq!(
        s(by_port(&um.records, "udp", 17000), "exwatch.service"),
        "um-rtp"
    );
    let plain = audit(&[&cap("sip-udp-call-rtcp.pcap")], &["-q"]);
    assert_eq!(
        s(by_port(&plain.records, "udp", 17002), "exwatch.service"),
        "rtp"
    );
}

#[test]
fn endpoint_mapper_names_the_dynamic_port_connection() {
    let run = audit(&[&cap("dcerpc-epm-dynamic.pcap")], &["-q"]);
    let epm = find(&run.records, "ept_map connection", |r| {
        s(r, "exwatch.evidence").contains("ept_map for samr")
    });
    let r = by_port(&run.records, "tcp", 49154);
    assert_eq!(s(r, "network.protocol"), "dcerpc");
    assert_eq!(s(r, "dcerpc.interface"), "samr");
    assert_eq!(s(r, "exwatch.confidence"), "expectation");
    assert_eq!(s(r, "exwatch.parent"), s(epm, "network.community_id"));
    assert!(s(r, "exwatch.evidence").contains("endpoint mapper"));
}

#[test]
fn mid_stream_connection_takes_the_label_of_a_bound_one() {
    let run = audit(&[&cap("dcerpc-midstream-beside-bound.pcap")], &["-q"]);
    let bound = find(&run.records, "bound connection", |r| {
        field(r, "exwatch.mid_stream") == false
    });
    let mid = find(&run.records, "mid-stream connection", |r| {
        field(r, "exwatch.mid_stream") == true
    });
    assert_eq!(s(bound, "exwatch.confidence"), "payload");
    assert_eq!(s(bound, "dcerpc.interface"), "samr");
    assert_eq!(s(mid, "exwatch.confidence"), "endpoint");
    assert_eq!(s(mid, "dcerpc.interface"), "samr");
    assert_eq!(s(mid, "network.protocol"), "dcerpc");
    assert_eq!(s(mid, "exwatch.parent"), s(bound, "network.community_id"));
    assert_eq!(run.summary["endpoints"]["learned"], 1);
    assert_eq!(run.summary["endpoints"]["applied"], 1);
}

#[test]
fn rejected_binds_teach_no_endpoint() {
    // Samba refuses the Exchange interfaces on 49154: nothing is learned from that.
    let run = audit(&[&cap("dcerpc-exchange-binds.pcap")], &["-q"]);
    assert_eq!(run.summary["endpoints"]["learned"], 0);
}

#[test]
fn capture_starting_mid_call() {
    // The INVITE was missed: the 200 OK's answer still announces the answerer's media, even
    // the RTCP flow that started 2.6 ms before that answer.
    let run = audit(&[&cap("sip-call-from-answer.pcap")], &["-q"]);
    let parent = s(sip_flow(&run.records), "network.community_id").to_string();
    for (port, proto) in [(17002, "rtp"), (17003, "rtcp")] {
        let r = by_port(&run.records, "udp", port);
        assert_eq!(s(r, "network.protocol"), proto);
        assert_eq!(s(r, "exwatch.confidence"), "expectation");
        assert_eq!(s(r, "exwatch.parent"), parent);
    }
    // Started after the offer and answer: the media are named by their own payload only.
    let run = audit(&[&cap("sip-call-mid-media.pcap")], &["-q"]);
    let r = by_port(&run.records, "udp", 17002);
    assert_eq!(s(r, "network.protocol"), "rtp");
    assert_eq!(s(r, "exwatch.confidence"), "payload");
    assert!(field(r, "exwatch.parent").is_null());
    assert_eq!(run.summary["expectations"]["announced"], 0);
}

#[test]
fn order_of_files_and_threads_does_not_change_labels() {
    // The second file is older than the first: capture time runs backwards between them.
    let a = cap("dcerpc-epm-dynamic.pcap");
    let b = cap("sip-udp-call-rtcp.pcap");
    let base = canonical(&audit(&[&a, &b], &["-q", "--threads", "1"]).records);
    for t in ["2", "3", "7"] {
        let other = canonical(&audit(&[&a, &b], &["-q", "--threads", t]).records);
        assert_eq!(base, other, "{t} threads");
    }
    let run = audit(&[&a, &b], &["-q"]);
    let r = by_port(&run.records, "udp", 17003);
    assert_eq!(s(r, "exwatch.confidence"), "expectation");
    let r = by_port(&run.records, "tcp", 49154);
    assert_eq!(s(r, "exwatch.confidence"), "expectation");
}
