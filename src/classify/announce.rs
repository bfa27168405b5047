//! What a flow tells about other flows, read on the worker: the media its SIP/SDP offers and
//! answers announce, the dynamic ports its endpoint-mapper replies name, the back-end port its
//! RPC over HTTP request asks for, and the server endpoint its payload confirms. The sink
//! applies these facts (see `expect`).

use super::detectors::dcerpc::{ept_map_endpoints, interface, uuid_string};
use super::detectors::sip::{sip_sdp, sip_sdp_complete, sip_um_marker, SdpMedia};
use super::detectors::REGISTRY;
use super::expect::{key_community_id, Announcement, Confirmation, Endpoint, Fact, Label, Pin};
use super::Flow;
use super::{Classifier, Detection};
use crate::decode::{IPPROTO_TCP, IPPROTO_UDP};
use crate::flow::key::to_ip;

/// A decided flow keeps being read for announcements until this many payload bytes.
pub const WATCH_BYTES: u64 = 1 << 20;
/// Announcements taken from one message or buffer.
const MAX_PER_CALL: usize = 64;

/// What kind of announcer a decided flow is, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcer {
    /// SIP: SDP offers and answers announce RTP and RTCP.
    Sip { um: bool },
    /// The RPC endpoint mapper on 135: ept_map replies name dynamic ports.
    Epm,
}

/// Whether a flow's detection makes it an announcer, and which. A SIP flow is Exchange UM
/// when its payload or its port says so (as its own record will).
pub fn announcer(f: &Flow, d: &Detection, c: &Classifier) -> Option<Announcer> {
    match d.protocol {
        "sip" => Some(Announcer::Sip {
            um: d.service.as_deref() == Some("um-sip") || is_um_port(f, c),
        }),
        "dcerpc" if f.key.proto == IPPROTO_TCP && f.resp_port() == 135 => Some(Announcer::Epm),
        _ => None,
    }
}

/// Whether a flow's port is an Exchange UM SIP port.
pub fn is_um_port(f: &Flow, c: &Classifier) -> bool {
    c.port_entry(f)
        .is_some_and(|(e, _)| c.sigs.services[e.service].name == "um-sip")
}

/// Whether a datagram starts like a SIP message (a status line, or a request line ending in
/// `SIP/2.0`): read for SDP even before the flow is decided, since inspection keeps only the
/// first datagram of each direction and the answer is often a later one.
pub fn looks_like_sip(b: &[u8]) -> bool {
    if b.starts_with(b"SIP/2.0 ") {
        return true;
    }
    // Asked of every undecided packet: memchr, not a byte loop, finds the line's end.
    let head = &b[..b.len().min(256)];
    memchr::memchr(b'\r', head).is_some_and(|end| head[..end].ends_with(b" SIP/2.0"))
}

/// Whether a decided flow is still watched for announcements.
pub fn watching(f: &Flow) -> bool {
    f.dirs[0].payload_bytes + f.dirs[1].payload_bytes <= WATCH_BYTES
}

/// Announcements in one payload (a segment, a datagram, or a buffered stream) sent by the
/// originator (`dir` 0) or the responder (1) of flow `f`.
pub fn announcements(
    f: &Flow,
    who: Announcer,
    dir: usize,
    payload: &[u8],
    ts: u64,
    parent: &mut Option<String>,
    out: &mut Vec<Fact>,
) {
    let ((oa, op), (ra, rp)) = f.endpoints();
    let _ = (op, rp);
    let sender = if dir == 0 { oa } else { ra };
    match who {
        Announcer::Sip { um } => sip_announcements(
            f,
            um,
            to_ip(&sender, f.key.v6),
            payload,
            false,
            ts,
            parent,
            out,
        ),
        Announcer::Epm => {
            if dir != 1 {
                return;
            }
            let eps = ept_map_endpoints(payload);
            if eps.is_empty() {
                return;
            }
            let parent = parent
                .get_or_insert_with(|| key_community_id(&f.key))
                .clone();
            let server = to_ip(&ra, f.key.v6);
            for e in eps.iter().take(MAX_PER_CALL) {
                let addr =
                    e.ip.filter(|a| !a.is_unspecified())
                        .map_or(server, std::net::IpAddr::V4);
                let iface = interface(&e.uuid);
                let name = iface.map_or_else(|| uuid_string(&e.uuid), |i| i.name.clone());
                out.push(Fact::announced(
                    ts,
                    Announcement {
                        pin: Pin::Endpoint,
                        at: Endpoint::new(addr, e.port, IPPROTO_TCP),
                        label: Label {
                            protocol: "dcerpc",
                            service: iface.and_then(|i| i.service.clone()),
                            how: format!(
                                "announced by the endpoint mapper: {name} on port {}",
                                e.port
                            ),
                            interface: Some(name.clone()),
                        },
                        parent: parent.clone(),
                    },
                ));
                // The mapping also teaches the endpoint, for a connection to it that starts
                // (or is joined mid-stream, its bind missed) after the expectation's window.
                out.push(Fact::confirmed(
                    ts,
                    Confirmation {
                        server: Endpoint::new(addr, e.port, IPPROTO_TCP),
                        label: Label {
                            protocol: "dcerpc",
                            service: iface.and_then(|i| i.service.clone()),
                            how: format!("server endpoint mapped to {name} by the endpoint mapper"),
                            interface: Some(name),
                        },
                        parent: parent.clone(),
                    },
                ));
            }
        }
    }
}

/// Announcements in what an undecided flow has shown so far from `dir`, when it starts like
/// SIP: a UDP datagram (`stream` false), or the reassembled TCP stream, whose messages
/// announce once their body is whole. Read as it arrives, since a flow the SIP detector
/// decides only at its end (an unanswered INVITE, one direction captured) could announce
/// nothing in time then: facts carry the clock of the packet that showed them. An Exchange
/// UM port or a UM marker in these messages makes the media UM's; the decision, when it
/// comes, announces the buffered messages again with what it knows (an identical
/// announcement only refreshes its expectation).
pub fn undecided_sip(
    f: &Flow,
    c: &Classifier,
    dir: usize,
    seen: &[u8],
    stream: bool,
    ts: u64,
    out: &mut Vec<Fact>,
) {
    if !looks_like_sip(seen) || memchr::memmem::find(seen, b"\nv=0").is_none() {
        return;
    }
    let ((oa, _), (ra, _)) = f.endpoints();
    let sender = to_ip(if dir == 0 { &oa } else { &ra }, f.key.v6);
    let um = is_um_port(f, c) || sip_um_marker(seen);
    sip_announcements(f, um, sender, seen, stream, ts, &mut None, out);
}

/// The RTP and RTCP expectations of the SDP bodies in `payload` (only whole ones when
/// `whole_only`), sent by `sender`.
#[allow(clippy::too_many_arguments)]
fn sip_announcements(
    f: &Flow,
    um: bool,
    sender: std::net::IpAddr,
    payload: &[u8],
    whole_only: bool,
    ts: u64,
    parent: &mut Option<String>,
    out: &mut Vec<Fact>,
) {
    // Most SIP messages carry no SDP: skip the parse unless a body could start here.
    if memchr::memmem::find(payload, b"\nv=0").is_none() {
        return;
    }
    let media = if whole_only {
        sip_sdp_complete(payload)
    } else {
        sip_sdp(payload)
    };
    if media.is_empty() {
        return;
    }
    let parent = parent
        .get_or_insert_with(|| key_community_id(&f.key))
        .clone();
    for m in media.iter().take(MAX_PER_CALL) {
        for (port, label) in media_labels(m, um) {
            let addr = match m.addr {
                Some(a) if !a.is_unspecified() => a,
                Some(_) => continue, // c=0.0.0.0: on hold, nothing will flow
                None => sender,
            };
            out.push(Fact::announced(
                ts,
                Announcement {
                    pin: Pin::Endpoint,
                    at: Endpoint::new(addr, port, IPPROTO_UDP),
                    label,
                    parent: parent.clone(),
                },
            ));
        }
    }
}

/// The RTP and RTCP ports an SDP media description announces, with their labels.
fn media_labels(m: &SdpMedia, um: bool) -> Vec<(u16, Label)> {
    if !m.proto.contains("RTP") || m.proto.contains("TCP") {
        return Vec::new();
    }
    let service = |p: &str| {
        Some(if um {
            "um-rtp".to_string()
        } else {
            p.to_string()
        })
    };
    let rtcp = m.rtcp_port.unwrap_or(m.port.saturating_add(1));
    let mut v = vec![(
        m.port,
        Label {
            protocol: "rtp",
            service: service("rtp"),
            interface: None,
            how: format!("announced by SDP m={} {} {}", m.media, m.port, m.proto),
        },
    )];
    if rtcp != m.port {
        v.push((
            rtcp,
            Label {
                protocol: "rtcp",
                service: service("rtcp"),
                interface: None,
                how: format!(
                    "announced by SDP m={} {} {} (RTCP port)",
                    m.media, m.port, m.proto
                ),
            },
        ));
    }
    v
}

/// Facts a flow's payload decision produces: the RPC over HTTP back end it asks for, and the
/// confirmation of its server endpoint (TCP servers above 1023, where the port alone says
/// little). `parent` caches the flow's Community ID.
/// What a decision says the server offers. TLS on a port whose TLS is implicit (636, 3269,
/// 50636...) is that port's protocol: a handshake on 50636 confirms EdgeSync's LDAP, so other
/// flows to that endpoint learn `edgesync`, not bare `tls`.
fn inner_protocol(
    f: &Flow,
    d: &Detection,
    classifier: &Classifier,
) -> (&'static str, Option<String>) {
    if d.protocol == "tls" {
        if let Some(s) = classifier.implicit_tls(f.resp_port()) {
            if let Some(p) = REGISTRY
                .iter()
                .map(|det| det.protocol())
                .find(|p| *p == s.protocol && *p != "tls")
            {
                return (p, Some(s.name.clone()));
            }
        }
    }
    (d.protocol, d.service.clone())
}

pub fn decided(
    f: &Flow,
    d: &Detection,
    classifier: &Classifier,
    ts: u64,
    parent: &mut Option<String>,
    out: &mut Vec<Fact>,
) {
    if f.key.proto != IPPROTO_TCP || d.protocol == "unknown" {
        return;
    }
    let (_, (ra, rp)) = f.endpoints();
    let field = |k: &str| d.fields.iter().find(|(n, _)| *n == k).map(|(_, v)| v);
    if let Some(port) = field("exwatch.rpc_http.target_port").and_then(|v| v.parse::<u16>().ok()) {
        let parent = parent
            .get_or_insert_with(|| key_community_id(&f.key))
            .clone();
        out.push(Fact::announced(
            ts,
            Announcement {
                pin: Pin::ClientToPort,
                at: Endpoint::new(to_ip(&ra, f.key.v6), port, IPPROTO_TCP),
                label: Label {
                    protocol: "dcerpc",
                    service: None,
                    interface: None,
                    how: format!("announced by an RPC over HTTP request for port {port}"),
                },
                parent,
            },
        ));
    }
    // A rejected bind says the server does not offer that interface there.
    let rejected = field("exwatch.dcerpc.bind_result").is_some_and(|r| r.starts_with("rejected"));
    // DCE/RPC PDUs without their bind (a connection joined mid-stream) prove the protocol but
    // not the interface: they teach nothing an endpoint mapper or a bind has not, and would
    // contradict what those taught.
    let bare_rpc = d.protocol == "dcerpc" && field("exwatch.dcerpc.interface").is_none();
    if rp >= 1024 && !rejected && !bare_rpc {
        let parent = parent
            .get_or_insert_with(|| key_community_id(&f.key))
            .clone();
        let interface = field("exwatch.dcerpc.interface").cloned();
        let (protocol, service) = inner_protocol(f, d, classifier);
        let what = interface
            .as_deref()
            .or(service.as_deref())
            .unwrap_or(protocol)
            .to_string();
        out.push(Fact::confirmed(
            ts,
            Confirmation {
                server: Endpoint::new(to_ip(&ra, f.key.v6), rp, IPPROTO_TCP),
                label: Label {
                    protocol,
                    service,
                    interface,
                    how: format!("server endpoint confirmed as {what} by payload of another flow"),
                },
                parent,
            },
        ));
    }
}

/// Whether a new flow could be one that another flow announced: UDP between unprivileged
/// ports (media), TCP to an unprivileged server port (dynamic RPC, RPC over HTTP back ends).
pub fn may_be_announced(f: &Flow) -> bool {
    match f.key.proto {
        IPPROTO_UDP => f.key.lo_port >= 1024 && f.key.hi_port >= 1024,
        IPPROTO_TCP => f.resp_port() >= 1024,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::expect::FactKind;
    use crate::classify::Confidence;
    use crate::flow::tests::pkt;

    fn classifier() -> Classifier {
        Classifier::new(std::sync::Arc::new(
            crate::signatures::Signatures::embedded(),
        ))
    }

    fn flow(sport: u16, dport: u16, proto: u8) -> Flow {
        let mut p = pkt(20, sport, 10, dport, 0x02, 1);
        p.key.proto = proto;
        Flow::new(&p, |_, _| false)
    }

    fn detection(protocol: &'static str, fields: Vec<(&'static str, String)>) -> Detection {
        Detection {
            reversed: false,
            protocol,
            service: None,
            confidence: Confidence::Payload,
            evidence: String::new(),
            fields,
        }
    }

    fn announced(facts: &[Fact]) -> Vec<&Announcement> {
        facts
            .iter()
            .filter_map(|f| match &f.kind {
                FactKind::Announced(a) => Some(&**a),
                _ => None,
            })
            .collect()
    }

    const OK_200: &[u8] = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.20:5060\r\nCSeq: 1 INVITE\r\n\
Content-Type: application/sdp\r\nContent-Length: 120\r\n\r\nv=0\r\no=- 1 1 IN IP4 10.0.0.10\r\n\
s=-\r\nc=IN IP4 10.0.0.99\r\nt=0 0\r\nm=audio 17002 RTP/AVP 0\r\na=rtcp:17011\r\nm=image 0 udptl t38\r\n";

    #[test]
    fn sdp_answer_announces_rtp_and_rtcp_at_the_c_address() {
        let f = flow(5060, 5060, IPPROTO_UDP);
        let mut out = Vec::new();
        let who = Announcer::Sip { um: true };
        announcements(&f, who, 1, OK_200, 7, &mut None, &mut out);
        let a = announced(&out);
        assert_eq!(a.len(), 2, "{a:?}");
        let want = |port| Endpoint::new("10.0.0.99".parse().unwrap(), port, IPPROTO_UDP);
        assert_eq!((a[0].at, a[0].label.protocol), (want(17002), "rtp"));
        assert_eq!((a[1].at, a[1].label.protocol), (want(17011), "rtcp"));
        assert_eq!(a[0].label.service.as_deref(), Some("um-rtp"));
        assert_eq!(a[0].parent, key_community_id(&f.key));
        assert!(out.iter().all(|f| f.at == 7));
    }

    #[test]
    fn sdp_without_c_line_uses_the_sender_and_port_plus_one() {
        let f = flow(5062, 5060, IPPROTO_UDP);
        let body = "v=0\r\nm=audio 16000 RTP/AVP 0\r\nt=0 0\r\n";
        let msg = format!(
            "INVITE sip:b@10.0.0.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.20:5062\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let msg = msg.as_bytes();
        let mut out = Vec::new();
        announcements(
            &f,
            Announcer::Sip { um: false },
            0,
            msg,
            1,
            &mut None,
            &mut out,
        );
        let a = announced(&out);
        let sender = Endpoint::new("10.0.0.20".parse().unwrap(), 16001, IPPROTO_UDP);
        assert_eq!((a[1].at, a[1].label.protocol), (sender, "rtcp"));
        assert_eq!(a[0].label.service.as_deref(), Some("rtp"));
        // Not a SIP message, or no SDP: nothing.
        out.clear();
        announcements(
            &f,
            Announcer::Sip { um: false },
            0,
            b"v=0\r\nm=audio 1 RTP/AVP 0\r\n",
            1,
            &mut None,
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn rpc_http_request_announces_its_back_end_port_and_confirms_nothing_below_1024() {
        let f = flow(50000, 80, IPPROTO_TCP);
        let d = detection(
            "http",
            vec![("exwatch.rpc_http.target_port", "6001".into())],
        );
        let mut out = Vec::new();
        decided(&f, &d, &classifier(), 3, &mut None, &mut out);
        assert_eq!(out.len(), 1, "no confirmation of port 80");
        let a = announced(&out);
        assert_eq!(a[0].pin, Pin::ClientToPort);
        assert_eq!(
            a[0].at,
            Endpoint::new("10.0.0.10".parse().unwrap(), 6001, IPPROTO_TCP),
            "from the proxy (the HTTP server) to the target port"
        );
    }

    #[test]
    fn payload_on_a_high_port_confirms_the_endpoint_unless_the_bind_was_rejected() {
        let f = flow(50000, 1032, IPPROTO_TCP);
        let mut d = detection(
            "dcerpc",
            vec![("exwatch.dcerpc.interface", "emsmdb".into())],
        );
        d.service = Some("emsmdb".into());
        let mut out = Vec::new();
        decided(&f, &d, &classifier(), 3, &mut None, &mut out);
        match &out[0].kind {
            FactKind::Confirmed(c) => {
                assert_eq!(c.server.port, 1032);
                assert_eq!(c.label.interface.as_deref(), Some("emsmdb"));
            }
            k => panic!("{k:?}"),
        }
        d.fields
            .push(("exwatch.dcerpc.bind_result", "rejected: x".into()));
        out.clear();
        decided(&f, &d, &classifier(), 3, &mut None, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn tls_on_an_implicit_tls_port_confirms_the_protocol_inside() {
        let confirmed = |port: u16| {
            let mut out = Vec::new();
            let f = flow(50000, port, IPPROTO_TCP);
            decided(
                &f,
                &detection("tls", vec![]),
                &classifier(),
                3,
                &mut None,
                &mut out,
            );
            match out.pop().map(|f| f.kind) {
                Some(FactKind::Confirmed(c)) => (c.label.protocol, c.label.service),
                k => panic!("{k:?}"),
            }
        };
        assert_eq!(confirmed(50636), ("ldap", Some("edgesync".to_string())));
        // No port whose TLS is implicit: the handshake only proves TLS.
        assert_eq!(confirmed(47001), ("tls", None));
    }

    #[test]
    fn sip_like_datagrams() {
        assert!(looks_like_sip(b"SIP/2.0 200 OK\r\n"));
        assert!(looks_like_sip(b"INVITE sip:x SIP/2.0\r\nVia: x"));
        assert!(!looks_like_sip(b"GET / HTTP/1.1\r\n"));
        assert!(!looks_like_sip(&[0x80; 200]));
    }
}
