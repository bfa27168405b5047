//! Policy stage: judges each finished flow against an allow policy (`audit --policy`) and an
//! ordered firewall rule set (`validate`), learns policies from traffic (`learn`), and prints
//! templates built from the Exchange port reference (`policy template`).
//!
//! Workers call one [`FlowJudge`] per finished flow with its [`FlowFacts`]; what it returns
//! is written on the record (`exwatch.policy.*`, `exwatch.firewall.*`, `rule.*`).

pub mod file;
pub mod findings;
pub mod firewall;
pub mod fwcsv;
pub mod groups;
pub mod judge;
pub mod learn;
pub mod names;
pub mod nft;
pub mod reference;
pub mod run;
pub mod suggest;
pub mod template;

use crate::classify::{Confidence, Flow, Verdict};
use crate::flow::key::to_ip;
use crate::flow::{ORIG, RESP};
use std::net::IpAddr;

/// What the policy engines need to know of a finished flow.
#[derive(Debug, Clone, Copy)]
pub struct FlowFacts<'a> {
    /// Originator as recorded (`source.*`).
    pub src: IpAddr,
    pub sport: u16,
    /// Responder as recorded (`destination.*`).
    pub dst: IpAddr,
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
    /// The originator was guessed: the flow may be judged in the other direction.
    pub mid_stream: bool,
    pub verdict: &'a Verdict,
    pub first_ts: u64,
    pub last_ts: u64,
    /// IP-level bytes, both directions.
    pub bytes: u64,
    /// ICMP / ICMPv6 flows: the first message's type and code (`type << 8 | code`).
    pub icmp_type_code: u16,
}

impl<'a> FlowFacts<'a> {
    /// Facts of a finished flow and its verdict.
    pub fn new(flow: &Flow, verdict: &'a Verdict) -> Self {
        let ((oa, op), (ra, rp)) = flow.endpoints();
        FlowFacts {
            src: to_ip(&oa, flow.key.v6),
            sport: op,
            dst: to_ip(&ra, flow.key.v6),
            dport: rp,
            proto: flow.key.proto,
            mid_stream: flow.mid_stream,
            verdict,
            first_ts: flow.first_ts,
            last_ts: flow.last_ts,
            bytes: flow.dirs[ORIG].bytes + flow.dirs[RESP].bytes,
            icmp_type_code: flow.icmp_type_code,
        }
    }

    /// The same flow seen from the other side (for flows whose originator is uncertain).
    pub fn reversed(&self) -> Self {
        FlowFacts {
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
            ..*self
        }
    }

    /// The payload itself named the protocol (not only a port).
    pub fn payload_identified(&self) -> bool {
        matches!(
            self.verdict.confidence,
            Confidence::Payload | Confidence::Expectation
        ) && self.verdict.protocol != "unknown"
    }

    /// Whether the flow's protocol has ports at all (TCP, UDP).
    pub fn has_ports(&self) -> bool {
        self.proto == crate::decode::IPPROTO_TCP || self.proto == crate::decode::IPPROTO_UDP
    }
}

/// Policy verdict of one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Allowed,
    /// No rule allows the flow's groups, transport and port.
    Unexpected,
    /// A rule allows the port, but the payload is another protocol than the rule wants.
    Mismatch,
}

impl Kind {
    pub fn label(&self) -> &'static str {
        match self {
            Kind::Allowed => "allowed",
            Kind::Unexpected => "unexpected",
            Kind::Mismatch => "mismatch",
        }
    }
}

/// `exwatch.policy.*` of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVerdict {
    pub kind: Kind,
    /// Name of the deciding rule (the allowing one, or the one whose payload test failed).
    pub rule: Option<String>,
    pub reason: String,
    pub source_group: String,
    pub destination_group: String,
    /// Judged with source and destination swapped (mid-stream flow whose evidence says so).
    pub reversed: bool,
}

/// `exwatch.firewall.*` of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallVerdict {
    /// The first matching rule, or the chain's default policy.
    pub rule: String,
    pub allowed: bool,
    pub reversed: bool,
}

/// What a judge adds to a flow's record.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    pub policy: Option<PolicyVerdict>,
    pub firewall: Option<FirewallVerdict>,
}

/// Called once per finished flow by the worker that owns it. Each worker judges with its own
/// [`FlowJudge::fork`] (the same rules, empty tables); the run folds the forks back in with
/// [`FlowJudge::merge`] at the end, so findings, hits and learning do not depend on which
/// worker saw which flow.
pub trait FlowJudge: Send {
    fn judge(&mut self, facts: &FlowFacts<'_>) -> Annotations;
    /// The same verdicts for a record written while the flow is alive (interim or alert),
    /// without counting it in findings, hits or learning: its final record does that.
    fn assess(&self, _facts: &FlowFacts<'_>) -> Annotations {
        Annotations::default()
    }
    /// A judge for one worker: the same rules, nothing counted yet.
    fn fork(&self) -> Box<dyn FlowJudge>;
    /// Fold in what a fork of this judge counted.
    fn merge(&mut self, part: Box<dyn FlowJudge>);
    /// For `merge`: the fork as its concrete type.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
}

/// The judge of a plain audit: adds nothing.
pub struct NoJudge;

impl FlowJudge for NoJudge {
    fn judge(&mut self, _: &FlowFacts<'_>) -> Annotations {
        Annotations::default()
    }
    fn fork(&self) -> Box<dyn FlowJudge> {
        Box::new(NoJudge)
    }
    fn merge(&mut self, _: Box<dyn FlowJudge>) {}
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

/// Transport name for tables and rules (`tcp`, `udp`, `icmp`...).
pub fn transport_label(proto: u8) -> String {
    crate::decode::transport_name(proto).into_owned()
}
