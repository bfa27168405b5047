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
    assert_eq!(s(r, "exwatch.dcerpc.interface"), "samr");
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
    assert_eq!(s(bound, "exwatch.dcerpc.interface"), "samr");
    assert_eq!(s(mid, "exwatch.confidence"), "endpoint");
    assert_eq!(s(mid, "exwatch.dcerpc.interface"), "samr");
    assert_eq!(s(mid, "network.protocol"), "dcerpc");
    assert_eq!(s(mid, "exwatch.parent"), s(bound, "network.community_id"));
    assert_eq!(run.summary["endpoints"]["learned"], 1);
    assert_eq!(run.summary["endpoints"]["applied"], 1);
}

/// Issue 15, class 7: a connection whose bind the capture missed, on the port an ept_map reply
/// of the same capture handed out for SAMR, is `dcerpc` with that interface, from the reply.
#[test]
fn mid_stream_connection_on_a_mapped_port_takes_the_mapped_interface() {
    let run = audit(&[&cap("dcerpc-midstream-after-epm.pcap")], &["-q"]);
    let map = find(&run.records, "ept_map flow", |r| {
        s(r, "exwatch.evidence").contains("ept_map for samr")
    });
    let mid = find(&run.records, "mid-stream connection", |r| {
        field(r, "exwatch.mid_stream") == true
    });
    // Both ports are ephemeral: the request PDUs, not the ports, say who the client is
    // (issue 15, class 8), and the record keeps mid_stream.
    assert_eq!(field(mid, "source.port"), 46896);
    assert_eq!(field(mid, "destination.port"), 49154);
    assert_eq!(s(mid, "network.protocol"), "dcerpc");
    assert_eq!(s(mid, "exwatch.dcerpc.interface"), "samr");
    assert_eq!(s(mid, "exwatch.confidence"), "expectation");
    assert_eq!(s(mid, "exwatch.parent"), s(map, "network.community_id"));
    assert!(
        s(mid, "exwatch.evidence").contains("payload agrees: DCE/RPC v5 request"),
        "{}",
        s(mid, "exwatch.evidence")
    );
}

/// The same connection 400 s after the look-ups, past an expectation's window: the endpoint
/// the ept_map reply taught still names it (confidence endpoint).
#[test]
fn mid_stream_connection_long_after_the_mapping_takes_the_taught_endpoint() {
    let run = audit(&[&cap("dcerpc-midstream-late-after-epm.pcap")], &["-q"]);
    let map = find(&run.records, "ept_map flow", |r| {
        s(r, "exwatch.evidence").contains("ept_map for samr")
    });
    let mid = find(&run.records, "mid-stream connection", |r| {
        field(r, "exwatch.mid_stream") == true
    });
    // Both ports are ephemeral: the request PDUs, not the ports, say who the client is
    // (issue 15, class 8), and the record keeps mid_stream.
    assert_eq!(field(mid, "source.port"), 46896);
    assert_eq!(field(mid, "destination.port"), 49154);
    assert_eq!(s(mid, "network.protocol"), "dcerpc");
    assert_eq!(s(mid, "exwatch.dcerpc.interface"), "samr");
    assert_eq!(s(mid, "exwatch.confidence"), "endpoint");
    assert_eq!(s(mid, "exwatch.parent"), s(map, "network.community_id"));
    assert!(s(mid, "exwatch.evidence").contains("mapped to samr by the endpoint mapper"));
    assert_eq!(run.summary["expectations"]["matched"], 0);
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

/// Issue 13 (4): a SIP flow decided only at its end (one direction captured, so no answer)
/// still announces its SDP offer, and the RTP that follows is labelled as in the two-way
/// capture it was cut from (`pcaps/make-cuts.sh`), for any number of threads.
#[test]
fn issue13_one_way_sip_announces_its_offer() {
    for (one_way, two_way, service) in [
        ("sip-um-5065-one-way.pcap", "sip-um-5065.pcap", "um-rtp"),
        ("sip-udp-call-one-way.pcap", "sip-udp-call.pcap", "rtp"),
    ] {
        let both = audit(&[&cap(two_way)], &["-q"]);
        let want = by_port(&both.records, "udp", 17000);
        for threads in ["1", "2"] {
            let run = audit(&[&cap(one_way)], &["-q", "--threads", threads]);
            let sip = sip_flow(&run.records);
            assert!(
                field(sip, "destination.packets") == 0,
                "{one_way}: only one direction"
            );
            let r = by_port(&run.records, "udp", 17000);
            assert_eq!(s(r, "network.protocol"), "rtp", "{one_way}");
            assert_eq!(s(r, "exwatch.confidence"), "expectation", "{one_way}");
            assert_eq!(s(r, "exwatch.service"), service, "{one_way}");
            assert_eq!(
                s(r, "exwatch.parent"),
                s(sip, "network.community_id"),
                "{one_way}"
            );
            for k in ["exwatch.service", "exwatch.confidence", "exwatch.parent"] {
                assert_eq!(
                    field(r, k),
                    field(want, k),
                    "{one_way}: {k} as in {two_way}"
                );
            }
            assert_eq!(run.summary["expectations"]["matched"], 1, "{one_way}");
        }
    }
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

/// An IPv4/UDP datagram (raw IP link type) from `src` to `dst`.
fn udp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + 8 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// 36,000 SIP calls from distinct phones, each INVITE announcing RTP and RTCP on its own
/// address and port, 1 ms apart (no expectation expires): 72,000 announcements for a table
/// of 65,536. The summary shows every one beyond the bound evicted, so the table never held
/// more than its bound; records and summary are the same with several workers.
#[test]
fn flood_of_announcements_is_bounded_and_counted() {
    let n = 36_000u32;
    let server = [10, 0, 0, 10];
    let mut pkts = Vec::new();
    for i in 0..n {
        let phone = [10, 1, (i >> 8) as u8, i as u8];
        let ip = format!("10.1.{}.{}", i >> 8, i & 255);
        let port = 10_000 + 2 * (i % 20_000);
        let body = format!("v=0\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n");
        let invite = format!(
            "INVITE sip:um@10.0.0.10 SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:5060\r\nCSeq: 1 INVITE\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let trying = "SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let ts = 1_700_000_000_000_000_000 + u64::from(i) * 1_000_000;
        pkts.push((ts, udp4(phone, 5060, server, 5060, invite.as_bytes())));
        pkts.push((
            ts + 1000,
            udp4(server, 5060, phone, 5060, trying.as_bytes()),
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flood.pcap");
    write_pcap(&path, 228, &pkts);
    let one = audit(&[&path], &["-q", "--threads", "1"]);
    let e = &one.summary["expectations"];
    assert_eq!(e["announced"], 2 * u64::from(n), "{e}");
    assert_eq!(e["evicted"], 2 * u64::from(n) - 65_536, "{e}");
    assert_eq!(e["matched"], 0);
    let two = audit(&[&path], &["-q", "--threads", "2"]);
    assert_eq!(two.summary["expectations"], *e);
    assert_eq!(canonical(&one.records), canonical(&two.records));
}
