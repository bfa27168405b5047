//! The judge the sink calls during `audit --policy`, `validate` and `learn`: it adds
//! `exwatch.policy.*` and `exwatch.firewall.*` to records and keeps the grouped findings, rule hit counts and
//! learned evidence for the end of the run.

use super::file::Policy;
use super::findings::{write_csv_row, Findings, Key};
use super::firewall::{RuleSet, Unused};
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
    /// Flows that matched each firewall rule on their way (deciding or not).
    pub hits: Vec<u64>,
    /// Flows decided by each firewall rule, and by the default policy.
    pub decided: Vec<u64>,
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
                self.decided = vec![0; rs.rules.len()];
            }
            let (d, reversed) = rs.judge(f);
            match d.rule {
                Some(i) => {
                    self.hits[i] += 1;
                    self.decided[i] += 1;
                }
                None => self.default_hits += 1,
            }
            for &j in &d.passed {
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
            decided: vec![0; self.firewall.as_ref().map_or(0, |rs| rs.rules.len())],
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
        for (mine, theirs) in [
            (&mut self.hits, part.hits),
            (&mut self.decided, part.decided),
        ] {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), 0);
            }
            for (h, p) in mine.iter_mut().zip(theirs) {
                *h += p;
            }
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
    /// The firewall report: denied flows, hit counts per rule, and the unused rules by class
    /// (only those that matched nothing are candidates for removal).
    pub fn render_firewall(&self) -> String {
        let Some(rs) = &self.firewall else {
            return String::new();
        };
        let mut s = self
            .denied
            .render(&format!("Flows the rule set {} would deny", rs.origin));
        let _ = writeln!(
            s,
            "\nFlows per rule (matched on the way, including jumps, RETURN and LOG; decided):"
        );
        let count = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
        for (i, r) in rs.rules.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {:>8} {:>8}  line {:<5} {}",
                count(&self.hits, i),
                count(&self.decided, i),
                r.line,
                r.name
            );
        }
        let _ = writeln!(
            s,
            "  {:>8} {:>8}  {:<10} {} default policy",
            self.default_hits, self.default_hits, "", rs.chains[rs.start].name
        );
        let unused = rs.unused(&self.hits);
        for (title, nothing) in [
            (
                "Unused rules that matched nothing (candidates for removal)",
                true,
            ),
            ("Unused rules a capture cannot judge (keep them)", false),
        ] {
            let rows: Vec<String> = unused
                .iter()
                .filter(|(_, u)| (*u == Unused::MatchedNothing) == nothing)
                .map(|(i, u)| {
                    let r = &rs.rules[*i];
                    match u {
                        Unused::MatchedNothing => format!("  line {:<5} {}", r.line, r.name),
                        Unused::NotJudged(why) => {
                            format!("  line {:<5} {}: {why}", r.line, r.name)
                        }
                    }
                })
                .collect();
            let _ = writeln!(
                s,
                "\n{title}:{}",
                if rows.is_empty() { " none" } else { "" }
            );
            for row in rows {
                let _ = writeln!(s, "{row}");
            }
        }
        s
    }

    /// `validate --csv`: the denied groups (`kind` = `denied`), then one row per unused rule
    /// (`kind` = its class, the reason as example).
    pub fn write_firewall_csv(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.denied.write_csv_kind(w, "denied")?;
        if let Some(rs) = &self.firewall {
            for (i, u) in rs.unused(&self.hits) {
                let r = &rs.rules[i];
                let why = match &u {
                    Unused::MatchedNothing => format!("line {}: no flow matched it", r.line),
                    Unused::NotJudged(why) => format!("line {}: {why}", r.line),
                };
                let mut cells = vec![String::new(); 12];
                cells[6] = r.name.clone();
                cells[7] = "0".into();
                cells[8] = "0".into();
                cells[11] = why;
                write_csv_row(w, u.label(), &cells)?;
            }
        }
        w.flush()
    }

    /// Hits per rule as JSON, for `--summary-json`.
    pub fn firewall_json(&self) -> serde_json::Value {
        let Some(rs) = &self.firewall else {
            return serde_json::Value::Null;
        };
        let unused = rs.unused(&self.hits);
        let rules: Vec<serde_json::Value> = rs
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let unused = unused.iter().find(|(u, _)| *u == i).map(|(_, u)| u);
                serde_json::json!({
                    "rule": r.name, "line": r.line,
                    "hits": self.hits.get(i).copied().unwrap_or(0),
                    "decided": self.decided.get(i).copied().unwrap_or(0),
                    "unused": unused.map(Unused::label),
                    "unused_why": match unused {
                        Some(Unused::NotJudged(why)) => Some(why.as_str()),
                        _ => None,
                    },
                })
            })
            .collect();
        serde_json::json!({"rules": rules, "default_hits": self.default_hits, "denied": self.denied.to_json()})
    }
}
