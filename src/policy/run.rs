//! The judge the sink calls during `audit --policy`, `validate` and `learn`: it adds
//! `policy.*` and `firewall.*` to records and keeps the grouped findings, rule hit counts and
//! learned evidence for the end of the run.

use super::file::Policy;
use super::findings::{Findings, Key};
use super::firewall::RuleSet;
use super::groups::Groups;
use super::learn::Learner;
use super::{transport_label, Annotations, FirewallVerdict, FlowFacts, FlowJudge, Kind};
use std::fmt::Write as _;

/// Everything one run judges with, and what it found.
#[derive(Default, Clone)]
pub struct PolicyRun {
    pub policy: Option<Policy>,
    pub firewall: Option<RuleSet>,
    /// Groups that name addresses in firewall findings (else addresses are shown).
    pub label_groups: Option<Groups>,
    pub learner: Option<Learner>,
    /// Unexpected and mismatched flows.
    pub findings: Findings,
    /// Flows the rule set would deny.
    pub denied: Findings,
    /// Flows decided by each firewall rule, and by the default policy.
    pub hits: Vec<u64>,
    pub default_hits: u64,
    /// Flows per policy verdict.
    pub verdicts: [u64; 3],
}

fn port_of(f: &FlowFacts<'_>) -> u16 {
    if f.has_ports() {
        f.dport
    } else {
        0
    }
}

impl FlowJudge for PolicyRun {
    fn judge(&mut self, f: &FlowFacts<'_>) -> Annotations {
        let mut notes = Annotations::default();
        if let Some(l) = &mut self.learner {
            l.add(f);
        }
        if let Some(p) = &self.policy {
            let v = p.judge(f);
            self.verdicts[v.kind as usize] += 1;
            if v.kind != Kind::Allowed {
                let seen = if v.reversed { f.reversed() } else { *f };
                let key = Key {
                    finding: v.kind.label().to_string(),
                    source: v.source_group.clone(),
                    destination: v.destination_group.clone(),
                    transport: transport_label(f.proto),
                    port: port_of(&seen),
                    protocol: f.verdict.protocol.clone(),
                    rule: v.rule.clone().unwrap_or_default(),
                };
                self.findings.add(key, &seen, &v.reason);
            }
            notes.policy = Some(v);
        }
        if let Some(rs) = &self.firewall {
            if self.hits.len() != rs.rules.len() {
                self.hits = vec![0; rs.rules.len()];
            }
            let (d, reversed) = rs.judge(f);
            match d.rule {
                Some(i) => self.hits[i] += 1,
                None => self.default_hits += 1,
            }
            for &j in &d.jumps {
                self.hits[j] += 1;
            }
            let rule = rs.rule_name(&d);
            if !d.allowed {
                let label = |ip| match &self.label_groups {
                    Some(g) => g.name_of(ip),
                    None => ip.to_string(),
                };
                let key = Key {
                    finding: "deny".into(),
                    source: label(f.src),
                    destination: label(f.dst),
                    transport: transport_label(f.proto),
                    port: port_of(f),
                    protocol: f.verdict.protocol.clone(),
                    rule: rule.clone(),
                };
                let why = format!("{} ({})", f.verdict.protocol, f.verdict.service);
                self.denied.add(key, f, &why);
            }
            notes.firewall = Some(FirewallVerdict {
                rule,
                allowed: d.allowed,
                reversed,
            });
        }
        notes
    }

    fn fork(&self) -> Box<dyn FlowJudge> {
        Box::new(PolicyRun {
            policy: self.policy.clone(),
            firewall: self.firewall.clone(),
            label_groups: self.label_groups.clone(),
            learner: self.learner.as_ref().map(Learner::fork),
            hits: vec![0; self.firewall.as_ref().map_or(0, |rs| rs.rules.len())],
            ..PolicyRun::default()
        })
    }

    fn merge(&mut self, part: Box<dyn FlowJudge>) {
        let Ok(part) = part.into_any().downcast::<PolicyRun>() else {
            return;
        };
        let part = *part;
        if let (Some(l), Some(p)) = (&mut self.learner, part.learner) {
            l.merge(p);
        }
        self.findings.merge(part.findings);
        self.denied.merge(part.denied);
        if self.hits.len() < part.hits.len() {
            self.hits.resize(part.hits.len(), 0);
        }
        for (h, p) in self.hits.iter_mut().zip(part.hits) {
            *h += p;
        }
        self.default_hits += part.default_hits;
        for (v, p) in self.verdicts.iter_mut().zip(part.verdicts) {
            *v += p;
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }

    fn assess(&self, f: &FlowFacts<'_>) -> Annotations {
        Annotations {
            policy: self.policy.as_ref().map(|p| p.judge(f)),
            firewall: self.firewall.as_ref().map(|rs| {
                let (d, reversed) = rs.judge(f);
                FirewallVerdict {
                    rule: rs.rule_name(&d),
                    allowed: d.allowed,
                    reversed,
                }
            }),
        }
    }
}

impl PolicyRun {
    /// The firewall report: denied flows, hit counts per rule, rules never hit.
    pub fn render_firewall(&self) -> String {
        let Some(rs) = &self.firewall else {
            return String::new();
        };
        let mut s = self
            .denied
            .render(&format!("Flows the rule set {} would deny", rs.origin));
        let _ = writeln!(
            s,
            "\nFlows per rule (the deciding rule, and jumps to user chains on the way):"
        );
        let hits = |i: usize| self.hits.get(i).copied().unwrap_or(0);
        for (i, r) in rs.rules.iter().enumerate() {
            let _ = writeln!(s, "  {:>8}  line {:<5} {}", hits(i), r.line, r.name);
        }
        let _ = writeln!(
            s,
            "  {:>8}  {:<10} {} default policy",
            self.default_hits, "", rs.chains[rs.start].name
        );
        let never: Vec<&str> = rs
            .rules
            .iter()
            .enumerate()
            .filter(|(i, _)| hits(*i) == 0)
            .map(|(_, r)| r.name.as_str())
            .collect();
        let _ = writeln!(
            s,
            "\nRules never hit: {}",
            if never.is_empty() {
                "none".to_string()
            } else {
                never.join(", ")
            }
        );
        s
    }

    /// Hits per rule as JSON, for `--summary-json`.
    pub fn firewall_json(&self) -> serde_json::Value {
        let Some(rs) = &self.firewall else {
            return serde_json::Value::Null;
        };
        let rules: Vec<serde_json::Value> = rs
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| serde_json::json!({"rule": r.name, "line": r.line, "hits": self.hits.get(i).copied().unwrap_or(0)}))
            .collect();
        serde_json::json!({"rules": rules, "default_hits": self.default_hits, "denied": self.denied.to_json()})
    }
}
