//! Verdicts: is a flow allowed by the policy, unexpected, or on an allowed port with another
//! protocol in its payload? An address that holds several groups is allowed what any of
//! them is allowed, and its verdict names them all (`dc+dns`).

use super::file::{Policy, Rule};
use super::groups::label;
use super::{FlowFacts, Kind, PolicyVerdict};

/// Why a rule's payload test passed (Ok) or failed (Err).
fn payload_test(rule: &Rule, f: &FlowFacts<'_>) -> Result<String, String> {
    let v = f.verdict;
    if !rule.protocols.is_empty() || !rule.services.is_empty() {
        if !f.payload_identified() {
            return Ok(format!(
                "port allowed; payload not identified ({} confidence)",
                v.confidence.label()
            ));
        }
        if rule.protocols.contains(&v.protocol) || rule.services.contains(&v.service) {
            return Ok(format!("payload is {} ({})", v.protocol, v.service));
        }
        let mut wanted = rule.protocols.clone();
        wanted.extend(rule.services.iter().cloned());
        return Err(format!(
            "payload is {} ({}), rule `{}` requires {}",
            v.protocol,
            v.service,
            rule.name,
            wanted.join(" or ")
        ));
    }
    // Without an explicit requirement the port's own meaning is the requirement.
    match &v.port_mismatch {
        Some(port_meant) => Err(format!(
            "payload is {} ({}), the port means {port_meant}",
            v.protocol, v.service
        )),
        None => Ok(if f.payload_identified() {
            format!("payload is {} ({})", v.protocol, v.service)
        } else {
            format!("port allowed ({} confidence)", v.confidence.label())
        }),
    }
}

impl Policy {
    /// Judge a flow in its recorded direction only.
    fn judge_as(&self, f: &FlowFacts<'_>, reversed: bool) -> PolicyVerdict {
        let (sgs, dgs) = (self.groups.lookup(f.src), self.groups.lookup(f.dst));
        let (sg, dg) = (label(&sgs), label(&dgs));
        let mut mismatch: Option<(&Rule, String)> = None;
        for r in &self.rules {
            if !r.matches(&sgs, &dgs, f.proto, f.dport) {
                continue;
            }
            match payload_test(r, f) {
                Ok(why) => {
                    return PolicyVerdict {
                        kind: Kind::Allowed,
                        rule: Some(r.name.clone()),
                        reason: why,
                        source_group: sg,
                        destination_group: dg,
                        reversed,
                    }
                }
                Err(why) => {
                    mismatch.get_or_insert((r, why));
                }
            }
        }
        let port = if f.has_ports() {
            format!("/{}", f.dport)
        } else {
            String::new()
        };
        match mismatch {
            Some((r, why)) => PolicyVerdict {
                kind: Kind::Mismatch,
                rule: Some(r.name.clone()),
                reason: why,
                source_group: sg,
                destination_group: dg,
                reversed,
            },
            None => PolicyVerdict {
                kind: Kind::Unexpected,
                rule: None,
                reason: format!(
                    "no rule allows {sg} -> {dg} {}{port}",
                    super::transport_label(f.proto)
                ),
                source_group: sg,
                destination_group: dg,
                reversed,
            },
        }
    }

    /// Judge a finished flow. A mid-stream flow (originator guessed) that the policy does not
    /// allow as recorded is judged the other way round too; the verdict says which it took.
    pub fn judge(&self, f: &FlowFacts<'_>) -> PolicyVerdict {
        let mut v = self.judge_as(f, false);
        if !f.mid_stream {
            return v;
        }
        if v.kind != Kind::Allowed {
            let r = self.judge_as(&f.reversed(), true);
            if r.kind == Kind::Allowed {
                let mut r = r;
                r.reason = format!(
                    "{}; originator uncertain (mid-stream): judged reversed, as the rule allows",
                    r.reason
                );
                return r;
            }
        }
        v.reason = format!(
            "{}; originator uncertain (mid-stream): judged as recorded",
            v.reason
        );
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Confidence, Verdict};
    use std::path::Path;

    const POLICY: &str = r#"
[[group]]
name = "internet"
cidrs = ["0.0.0.0/0"]
[[group]]
name = "edge"
cidrs = ["172.16.10.5"]
[[group]]
name = "mailbox"
cidrs = ["10.1.1.0/24"]
[[group]]
name = "ipgw"
cidrs = ["10.1.3.20"]

[[rule]]
name = "edgesync"
from = "mailbox"
to = "edge"
transport = "tcp"
ports = ["50636"]
[[rule]]
name = "um-sip"
from = "ipgw"
to = "mailbox"
transport = "tcp"
ports = ["5060"]
[[rule]]
name = "smtp-in"
from = "internet"
to = "edge"
transport = "tcp"
ports = ["25"]
protocols = ["smtp"]
"#;

    fn verdict(protocol: &str, confidence: Confidence, mismatch: Option<&str>) -> Verdict {
        Verdict {
            protocol: protocol.into(),
            service: protocol.into(),
            confidence,
            evidence: String::new(),
            port_mismatch: mismatch.map(Into::into),
        }
    }

    fn facts<'a>(src: &str, dst: &str, dport: u16, v: &'a Verdict, mid: bool) -> FlowFacts<'a> {
        FlowFacts {
            src: src.parse().unwrap(),
            sport: 40000,
            dst: dst.parse().unwrap(),
            dport,
            proto: 6,
            mid_stream: mid,
            verdict: v,
            first_ts: 0,
            last_ts: 0,
            bytes: 0,
            icmp_type_code: 0,
        }
    }

    #[test]
    fn allowed_unexpected_and_mismatch() {
        let p = Policy::parse(Path::new("t.toml"), POLICY).unwrap();
        let tls = verdict("ldap", Confidence::Payload, None);
        let v = p.judge(&facts("10.1.1.10", "172.16.10.5", 50636, &tls, false));
        assert_eq!(
            (v.kind, v.rule.as_deref()),
            (Kind::Allowed, Some("edgesync"))
        );
        // EdgeSync the wrong way round: Edge -> Mailbox.
        let v = p.judge(&facts("172.16.10.5", "10.1.1.10", 50636, &tls, false));
        assert_eq!(v.kind, Kind::Unexpected);
        assert_eq!(v.reason, "no rule allows edge -> mailbox tcp/50636");
        // HTTP on the SIP port: the port is allowed, the payload is not SIP.
        let http = verdict("http", Confidence::Payload, Some("um-sip (sip)"));
        let v = p.judge(&facts("10.1.3.20", "10.1.1.10", 5060, &http, false));
        assert_eq!(
            (v.kind, v.rule.as_deref()),
            (Kind::Mismatch, Some("um-sip"))
        );
        // An explicit protocol requirement.
        let ssh = verdict("ssh", Confidence::Payload, None);
        let v = p.judge(&facts("198.51.100.25", "172.16.10.5", 25, &ssh, false));
        assert_eq!(v.kind, Kind::Mismatch);
        assert!(v.reason.contains("requires smtp"), "{}", v.reason);
        // Unidentified payload on a rule with a requirement: the port decides.
        let unk = verdict("unknown", Confidence::Port, None);
        let v = p.judge(&facts("198.51.100.25", "172.16.10.5", 25, &unk, false));
        assert_eq!(v.kind, Kind::Allowed);
    }

    #[test]
    fn mid_stream_flows_are_judged_in_the_direction_the_rules_support() {
        let p = Policy::parse(Path::new("t.toml"), POLICY).unwrap();
        let tls = verdict("ldap", Confidence::Payload, None);
        // Recorded backwards (the responder's packet came first), mid-stream.
        let mut f = facts("172.16.10.5", "10.1.1.10", 40000, &tls, true);
        f.sport = 50636;
        let v = p.judge(&f);
        assert_eq!(v.kind, Kind::Allowed);
        assert!(v.reversed);
        assert!(v.reason.contains("mid-stream"), "{}", v.reason);
        // The same flow with a SYN seen is judged as recorded.
        f.mid_stream = false;
        assert_eq!(p.judge(&f).kind, Kind::Unexpected);
    }
}
