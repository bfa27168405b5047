//! Classify stage: names each flow's protocol and Exchange service, from payload first and
//! ports second.
//!
//! This stage owns the per-flow classification state (`Classification`: the detection once
//! made, the inspection state until then), which the flow stage carries in each flow without
//! knowing it. `Flow` and `FlowTable` here are the flow stage's types with that state, the
//! ones the rest of exwatch uses.

pub mod announce;
pub mod detector;
pub mod detectors;
pub mod expect;
pub mod inspect;
pub mod keylog;
pub mod ports;
pub mod tls_decrypt;

use crate::flow::FlowState;
use crate::signatures::{PortEntry, Signatures};
use ports::PortTable;
use std::sync::Arc;

/// Every `network.protocol` value a record can carry (the README's vocabulary): what the
/// detectors report, what expectations announce (`rtp`, `rtcp`, `dcerpc`), and `unknown`.
pub const PROTOCOLS: [&str; 31] = [
    "smtp", "imap", "pop3", "http", "tls", "dns", "kerberos", "ldap", "dcerpc", "smb", "netbios",
    "sip", "rtp", "rtcp", "nntp", "irc", "x400", "h323", "t120", "rdp", "ssh", "ntp", "snmp",
    "syslog", "quic", "stun", "ftp", "mgcp", "socks", "telnet", "unknown",
];

/// How sure a classification is, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Confidence {
    /// The flow's own bytes said so.
    Payload,
    /// Another flow announced this one (SIP/SDP, RPC endpoint mapper).
    Expectation,
    /// The server endpoint was confirmed by payload on another flow.
    Endpoint,
    /// Only the port suggests it.
    Port,
    /// Nothing does.
    None,
}

impl Confidence {
    pub fn label(&self) -> &'static str {
        match self {
            Confidence::Payload => "payload",
            Confidence::Expectation => "expectation",
            Confidence::Endpoint => "endpoint",
            Confidence::Port => "port",
            Confidence::None => "none",
        }
    }

    /// The confidence a record's `exwatch.confidence` names.
    pub fn from_label(s: &str) -> Option<Self> {
        [
            Confidence::Payload,
            Confidence::Expectation,
            Confidence::Endpoint,
            Confidence::Port,
            Confidence::None,
        ]
        .into_iter()
        .find(|c| c.label() == s)
    }
}

/// What a payload detector (or a cross-flow expectation) decided about a flow.
#[derive(Debug, Clone)]
pub struct Detection {
    /// `network.protocol` vocabulary.
    pub protocol: &'static str,
    /// Exchange-level service, when the payload names one.
    pub service: Option<String>,
    pub confidence: Confidence,
    /// Short text: what decided.
    pub evidence: String,
    /// Extra record fields under their dotted ECS names (`url.domain`, `tls.version` ...).
    pub fields: Vec<(&'static str, String)>,
    /// The payload showed the roles the other way round (the guessed originator sent the
    /// server's part): a flow seen mid-stream is turned around when it is decided.
    pub reversed: bool,
}

/// What the classify stage keeps in each flow. Two boxes, both empty until payload arrives,
/// so that a flow nobody inspects stays small.
#[derive(Debug, Default)]
pub struct Classification {
    /// What payload inspection decided, once it has.
    pub detection: Option<Box<Detection>>,
    /// Payload inspection state, from the first payload until a decision (then dropped).
    pub inspect: Option<Box<inspect::Inspector>>,
}

impl FlowState for Classification {
    /// The detection only: an interim record or a verdict never inspects further.
    fn snapshot(&self) -> Self {
        Classification {
            detection: self.detection.clone(),
            inspect: None,
        }
    }
}

/// A flow as exwatch tracks it: the flow stage's counters with the classify stage's state.
pub type Flow = crate::flow::Flow<Classification>;

/// A worker's flow table of `Flow`s.
pub type FlowTable = crate::flow::table::FlowTable<Classification>;

/// The classification written on a flow's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub protocol: String,
    pub service: String,
    pub confidence: Confidence,
    pub evidence: String,
    /// What the port alone would have meant, when payload says otherwise.
    pub port_mismatch: Option<String>,
}

/// Protocol pairs that share a port entry without contradicting it: RTCP rides the RTP range,
/// and NetBIOS session messages are the frame SMB travels in on 139.
const COMPATIBLE: &[(&str, &str)] = &[("rtp", "rtcp"), ("smb", "netbios")];

/// Whether a payload protocol agrees with what a port entry expects.
pub fn compatible(port_protocol: &str, payload_protocol: &str) -> bool {
    port_protocol == payload_protocol
        || port_protocol == "unknown"
        || COMPATIBLE.contains(&(port_protocol, payload_protocol))
}

/// Turns flows into verdicts using the signatures.
pub struct Classifier {
    pub sigs: Arc<Signatures>,
    pub ports: PortTable,
}

impl Classifier {
    pub fn new(sigs: Arc<Signatures>) -> Self {
        let ports = PortTable::new(&sigs);
        Classifier { sigs, ports }
    }

    /// Whether a port names a service (for the originator heuristic).
    pub fn is_service_port(&self, proto: u8, port: u16) -> bool {
        self.ports.is_service_port(&self.sigs, proto, port)
    }

    /// The port entry that describes a flow: its responder port, or for flows seen mid-stream
    /// its originator port when only that one is known.
    pub fn port_entry(&self, flow: &Flow) -> Option<(&PortEntry, u16)> {
        let proto = flow.key.proto;
        let (rp, op) = (flow.resp_port(), flow.orig_port());
        self.ports
            .lookup(&self.sigs, proto, rp)
            .map(|e| (e, rp))
            .or_else(|| {
                flow.mid_stream
                    .then(|| self.ports.lookup(&self.sigs, proto, op).map(|e| (e, op)))
                    .flatten()
            })
    }

    /// The service whose TLS a TCP port carries implicitly (443: https): the port's entry when
    /// the reference marks it TLS, or its implicit-TLS entry when it lists the port both ways.
    pub fn implicit_tls(&self, port: u16) -> Option<&crate::signatures::Service> {
        let (sigs, tcp) = (&self.sigs, crate::decode::IPPROTO_TCP);
        self.ports
            .lookup(sigs, tcp, port)
            .filter(|e| e.tls)
            .or_else(|| self.ports.lookup_tls(sigs, port))
            .map(|e| &sigs.services[e.service])
    }

    /// A CONNECT tunnel's inner TLS to a port whose TLS is implicit is named as a flow of its
    /// own to that port would be (443: `http`), its TLS fields kept; a tunnel to another
    /// port stays `tls`. Applied once, when the tunnel's flow is decided.
    pub fn name_tunnel_inner(&self, d: &mut Detection) {
        let field = |k: &str| d.fields.iter().position(|(n, _)| *n == k);
        let (Some(inner), Some(target)) = (
            field("exwatch.inner_protocol"),
            field("exwatch.http.tunnel_target"),
        ) else {
            return;
        };
        if d.fields[inner].1 != "tls" {
            return;
        }
        let port = d.fields[target]
            .1
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        let Some(s) = port.and_then(|p| self.implicit_tls(p)) else {
            return;
        };
        if s.protocol != "tls" && s.protocol != "unknown" {
            let named = s.protocol.clone();
            d.evidence
                .push_str("; inner TLS implicit on the target port (");
            d.evidence.push_str(&s.name);
            d.evidence.push(')');
            d.fields[inner].1 = named;
        }
    }

    /// The `network.protocol` a flow's port suggests, to probe that detector first.
    pub fn port_hint(&self, flow: &Flow) -> Option<&str> {
        self.port_entry(flow)
            .map(|(e, _)| self.sigs.services[e.service].protocol.as_str())
    }

    /// The verdict for a finished flow.
    pub fn verdict(&self, flow: &Flow) -> Verdict {
        let port = self.port_entry(flow);
        let port_service = port.map(|(e, _)| &self.sigs.services[e.service]);
        if let Some(d) = flow
            .state
            .detection
            .as_deref()
            .filter(|d| d.protocol != "unknown")
        {
            // TLS on a port whose TLS is implicit carries that port's protocol (443: http).
            let implicit = port
                .and_then(|(e, p)| match (d.protocol, e.tls) {
                    ("tls", true) => Some((e, p)),
                    ("tls", false) if flow.key.proto == crate::decode::IPPROTO_TCP => {
                        self.ports.lookup_tls(&self.sigs, p).map(|t| (t, p))
                    }
                    _ => None,
                })
                .map(|(e, p)| (&self.sigs.services[e.service], p));
            let port_service = implicit.map(|(s, _)| s).or(port_service);
            let protocol = implicit.map_or(d.protocol, |(s, _)| s.protocol.as_str());
            let service = d
                .service
                .clone()
                .or_else(|| {
                    port_service
                        .filter(|s| compatible(&s.protocol, protocol) && s.protocol != "unknown")
                        .filter(|s| !s.announced_only)
                        .map(|s| s.name.clone())
                })
                .unwrap_or_else(|| protocol.to_string());
            // A service the port names only when announced (UM media) makes no claim on
            // the range by itself: other protocols there are no mismatch.
            let port_mismatch = port_service
                .filter(|s| !compatible(&s.protocol, protocol) && !s.announced_only)
                .map(|s| [s.name.as_str(), " (", s.protocol.as_str(), ")"].concat());
            // Pieces pushed, not format!: every HTTPS flow on 443 takes this path.
            let mut evidence = d.evidence.clone();
            if let Some((s, p)) = implicit {
                for piece in [
                    "; implicit TLS on port ",
                    itoa::Buffer::new().format(p),
                    " (",
                    &s.name,
                    ")",
                ] {
                    evidence.push_str(piece);
                }
            }
            return Verdict {
                protocol: protocol.to_string(),
                service,
                confidence: d.confidence,
                evidence,
                port_mismatch,
            };
        }
        if let Some(d) = flow.state.detection.as_deref() {
            // Payload seen, no detector claims it: the protocol stays unknown, the port hints.
            let mut evidence = d.evidence.clone();
            let (service, confidence) = match port {
                Some((e, p)) => {
                    let name = &self.sigs.services[e.service].name;
                    for piece in ["; port ", itoa::Buffer::new().format(p), " suggests ", name] {
                        evidence.push_str(piece);
                    }
                    (name.clone(), Confidence::Port)
                }
                None => ("unknown".to_string(), Confidence::None),
            };
            return Verdict {
                protocol: "unknown".to_string(),
                service,
                confidence,
                evidence,
                port_mismatch: None,
            };
        }
        match port {
            Some((e, p)) => {
                let s = &self.sigs.services[e.service];
                let t = if flow.key.proto == crate::decode::IPPROTO_UDP {
                    "udp"
                } else {
                    "tcp"
                };
                // A wide dynamic range (RPC, RTP) says which service the reference expects
                // there, not what protocol a flow without payload speaks.
                let wide = e.width() > ports::SERVICE_RANGE_WIDTH;
                // Built by hand, not with format!: every flow without payload evidence (a
                // SYN flood's million) gets this text.
                let mut evidence = String::with_capacity(64 + s.name.len() + e.section.len());
                let mut num = itoa::Buffer::new();
                evidence.push_str("port ");
                evidence.push_str(num.format(p));
                evidence.push('/');
                evidence.push_str(t);
                if e.lo != e.hi {
                    evidence.push_str(" in ");
                    evidence.push_str(num.format(e.lo));
                    evidence.push('-');
                    evidence.push_str(num.format(e.hi));
                }
                if e.tls {
                    evidence.push_str(" (implicit TLS)");
                }
                evidence.push_str(": ");
                evidence.push_str(&s.name);
                evidence.push_str(" (reference section ");
                evidence.push_str(&e.section);
                evidence.push(')');
                Verdict {
                    protocol: if wide {
                        "unknown".to_string()
                    } else {
                        s.protocol.clone()
                    },
                    service: s.name.clone(),
                    confidence: Confidence::Port,
                    evidence,
                    port_mismatch: None,
                }
            }
            None => Verdict {
                protocol: "unknown".to_string(),
                service: "unknown".to_string(),
                confidence: Confidence::None,
                evidence: String::new(),
                port_mismatch: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::tests::pkt;

    /// The flow table's memory per flow is dominated by this; keep it in one cache-line pair
    /// (the throughput benchmark's target is 256 bytes per tracked flow in all).
    #[test]
    fn flow_stays_small() {
        assert_eq!(std::mem::size_of::<Classification>(), 16);
        assert!(
            std::mem::size_of::<Flow>() <= 176,
            "{}",
            std::mem::size_of::<Flow>()
        );
    }

    /// A UDP flow 10.0.0.2:17000 -> 10.0.0.9:30000 (inside the UM media range) whose payload
    /// a detector (or an expectation) named.
    fn media(service: Option<&str>, confidence: Confidence) -> Verdict {
        let mut p = pkt(2, 17000, 9, 30000, 0, 0);
        p.key.proto = crate::decode::IPPROTO_UDP;
        let mut f = Flow::new(&p, |_, _| false);
        f.state.detection = Some(Box::new(Detection {
            reversed: false,
            protocol: "rtp",
            service: service.map(str::to_string),
            confidence,
            evidence: "RTP v2".into(),
            fields: Vec::new(),
        }));
        Classifier::new(Arc::new(Signatures::embedded())).verdict(&f)
    }

    /// A tunnel's inner TLS is named by the target port's implicit TLS (443, 636, IPv6
    /// targets too); to a port without one, or inner bytes that are not TLS, it stays.
    #[test]
    fn tunnel_inner_tls_takes_the_target_ports_protocol() {
        let c = Classifier::new(Arc::new(Signatures::embedded()));
        let named = |target: &str, inner: &str| {
            let mut d = Detection {
                reversed: false,
                protocol: "http",
                service: None,
                confidence: Confidence::Payload,
                evidence: "HTTP CONNECT tunnel".into(),
                fields: vec![
                    ("exwatch.http.tunnel_target", target.to_string()),
                    ("exwatch.inner_protocol", inner.to_string()),
                ],
            };
            c.name_tunnel_inner(&mut d);
            d.fields[1].1.clone()
        };
        assert_eq!(named("mail.contoso.test:443", "tls"), "http");
        assert_eq!(named("[2001:db8::10]:443", "tls"), "http");
        assert_eq!(named("dc01.contoso.test:636", "tls"), "ldap");
        assert_eq!(named("mail.contoso.test:8444", "tls"), "tls");
        assert_eq!(named("mail.contoso.test:443", "smtp"), "smtp");
        assert_eq!(named("mail.contoso.test", "tls"), "tls");
    }

    #[test]
    fn rtp_is_um_media_only_when_um_sip_announced_it() {
        let v = media(None, Confidence::Payload);
        assert_eq!((v.protocol.as_str(), v.service.as_str()), ("rtp", "rtp"));
        assert_eq!(v.port_mismatch, None);
        let v = media(Some("um-rtp"), Confidence::Expectation);
        assert_eq!((v.protocol.as_str(), v.service.as_str()), ("rtp", "um-rtp"));
        // Nor does the UM range make other protocols there a port mismatch.
        let mut p = pkt(2, 17000, 9, 1719, 0, 0);
        p.key.proto = crate::decode::IPPROTO_UDP;
        let mut f = Flow::new(&p, |_, _| false);
        f.state.detection = Some(Box::new(Detection {
            reversed: false,
            protocol: "h323",
            service: None,
            confidence: Confidence::Payload,
            evidence: "H.225.0 RAS".into(),
            fields: Vec::new(),
        }));
        let v = Classifier::new(Arc::new(Signatures::embedded())).verdict(&f);
        assert_eq!((v.service.as_str(), v.port_mismatch), ("h323", None));
    }
}
