//! Learning: the smallest policy that allows every observed flow, one rule per source group,
//! destination group, transport and service, each commented with its evidence.

use super::file::{Ports, Rule, Transport};
use super::findings::csv_cell;
use super::groups::{Groups, ANY};
use super::FlowFacts;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// More distinct ports than this in one rule become one range from the lowest to the highest
/// (dynamic RPC, RTP media): a rule per ephemeral port would help nobody.
pub const MAX_PORT_ITEMS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    from: String,
    to: String,
    proto: u8,
    service: String,
}

#[derive(Debug, Default, Clone)]
struct Evidence {
    ports: BTreeSet<u16>,
    flows: u64,
    bytes: u64,
    /// Protocols named by payload, with flow counts.
    protocols: BTreeMap<String, u64>,
    /// Flows whose protocol only the port suggested.
    unidentified: u64,
}

/// Accumulates observed flows.
#[derive(Debug, Clone)]
pub struct Learner {
    groups: Groups,
    seen: BTreeMap<Key, Evidence>,
}

/// One learned rule with its evidence.
#[derive(Debug, Clone)]
pub struct LearnedRule {
    pub rule: Rule,
    /// The services the rule stands for.
    pub services: Vec<String>,
    pub comment: String,
}

/// Runs of consecutive ports become ranges; too many items become one range.
fn compact(ports: &BTreeSet<u16>) -> (Ports, Option<String>) {
    let mut v: Vec<(u16, u16)> = Vec::new();
    for &p in ports {
        match v.last_mut() {
            Some(last) if u32::from(last.1) + 1 == u32::from(p) => last.1 = p,
            _ => v.push((p, p)),
        }
    }
    if v.len() > MAX_PORT_ITEMS {
        let (lo, hi) = (v[0].0, v[v.len() - 1].1);
        let note = format!("{} distinct ports seen, widened to {lo}-{hi}", ports.len());
        return (Ports(vec![(lo, hi)]), Some(note));
    }
    (Ports(v), None)
}

impl Learner {
    pub fn new(groups: Groups) -> Self {
        Learner {
            groups,
            seen: BTreeMap::new(),
        }
    }

    /// Record a flow in its recorded direction.
    /// The same groups, nothing seen yet (a worker's share).
    pub fn fork(&self) -> Learner {
        Learner {
            groups: self.groups.clone(),
            seen: BTreeMap::new(),
        }
    }

    /// Fold in what another worker's share saw.
    pub fn merge(&mut self, other: Learner) {
        for (k, o) in other.seen {
            let e = self.seen.entry(k).or_default();
            e.ports.extend(o.ports);
            e.flows += o.flows;
            e.bytes += o.bytes;
            for (p, n) in o.protocols {
                *e.protocols.entry(p).or_default() += n;
            }
            e.unidentified += o.unidentified;
        }
    }

    pub fn add(&mut self, f: &FlowFacts<'_>) {
        let key = Key {
            from: self.groups.primary_of(f.src).to_string(),
            to: self.groups.primary_of(f.dst).to_string(),
            proto: f.proto,
            service: f.verdict.service.clone(),
        };
        let e = self.seen.entry(key).or_default();
        if f.has_ports() {
            e.ports.insert(f.dport);
        }
        e.flows += 1;
        e.bytes += f.bytes;
        if f.payload_identified() {
            *e.protocols.entry(f.verdict.protocol.clone()).or_default() += 1;
        } else {
            e.unidentified += 1;
        }
    }

    /// The learned rules in a stable order: one per groups, transport and service, then the
    /// services that share the same ports merged into one rule.
    pub fn rules(&self) -> Vec<LearnedRule> {
        let mut merged: Vec<LearnedRule> = Vec::new();
        for l in self.rules_per_service() {
            let same = |m: &&mut LearnedRule| {
                (&m.rule.from, &m.rule.to, m.rule.transport, &m.rule.ports)
                    == (&l.rule.from, &l.rule.to, l.rule.transport, &l.rule.ports)
            };
            match merged.iter_mut().find(same) {
                Some(m) => {
                    for svc in &l.services {
                        m.rule.name = format!("{}+{svc}", m.rule.name);
                    }
                    m.services.extend(l.services);
                    m.rule.protocols.extend(l.rule.protocols);
                    m.rule.protocols.sort();
                    m.rule.protocols.dedup();
                    m.comment = format!("{}\n# {}", m.comment, l.comment);
                }
                None => merged.push(l),
            }
        }
        merged
    }

    fn rules_per_service(&self) -> Vec<LearnedRule> {
        self.seen
            .iter()
            .map(|(k, e)| {
                let transport = match k.proto {
                    crate::decode::IPPROTO_TCP => Transport::Tcp,
                    crate::decode::IPPROTO_UDP => Transport::Udp,
                    p => Transport::Proto(p),
                };
                let (ports, widened) = compact(&e.ports);
                let mut comment = format!("{}: {} flows, {} bytes", k.service, e.flows, e.bytes);
                if !e.protocols.is_empty() {
                    let seen: Vec<String> = e
                        .protocols
                        .iter()
                        .map(|(p, n)| format!("{p} x{n}"))
                        .collect();
                    let _ = write!(comment, "; payload: {}", seen.join(", "));
                }
                if e.unidentified > 0 {
                    let _ = write!(
                        comment,
                        "; {} flows not identified by payload",
                        e.unidentified
                    );
                }
                if let Some(w) = widened {
                    let _ = write!(comment, "; {w}");
                }
                LearnedRule {
                    rule: Rule {
                        name: format!("{}-to-{}-{}-{}", k.from, k.to, transport.label(), k.service),
                        from: k.from.clone(),
                        to: k.to.clone(),
                        transport,
                        ports,
                        protocols: e.protocols.keys().cloned().collect(),
                        services: Vec::new(),
                        section: "learned".into(),
                        line: 0,
                    },
                    services: vec![k.service.clone()],
                    comment,
                }
            })
            .collect()
    }

    /// The learned policy as a TOML policy file (groups first, then rules).
    pub fn policy_toml(&self, sources: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# exwatch policy learned from {sources}");
        let _ = writeln!(
            s,
            "# Every rule allows what was observed; the comment above it is the evidence."
        );
        let _ = writeln!(s, "# Addresses outside every group are `any`.\n");
        write_groups(&mut s, &self.groups);
        for LearnedRule {
            rule: r, comment, ..
        } in self.rules()
        {
            let _ = writeln!(s, "# {comment}");
            let _ = writeln!(s, "[[rule]]");
            let _ = writeln!(s, "name = {}", toml_str(&r.name));
            let _ = writeln!(s, "from = {}", toml_str(&r.from));
            let _ = writeln!(s, "to = {}", toml_str(&r.to));
            let _ = writeln!(s, "transport = {}", toml_str(&r.transport.label()));
            if !r.ports.0.is_empty() {
                let _ = writeln!(s, "ports = {}", toml_list(&r.ports.items()));
            }
            if !r.protocols.is_empty() {
                let _ = writeln!(s, "protocols = {}", toml_list(&r.protocols));
            }
            let _ = writeln!(s, "section = \"learned\"\n");
        }
        s
    }

    /// The learned rules in the CSV rule format `validate` reads (first match, implicit deny).
    pub fn rules_csv(&self) -> String {
        let mut s = String::from("name,action,source,destination,transport,ports\n");
        let nets = |g: &str| match self.groups.cidrs_of(g) {
            Some(c) if !c.is_empty() => c
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            _ => ANY.to_string(),
        };
        for LearnedRule { rule: r, .. } in self.rules() {
            let ports = if r.ports.0.is_empty() {
                ANY.to_string()
            } else {
                r.ports.items().join(" ")
            };
            let cells = [
                r.name.clone(),
                "allow".into(),
                nets(&r.from),
                nets(&r.to),
                r.transport.label(),
                ports,
            ];
            let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
            let _ = writeln!(s, "{}", line.join(","));
        }
        s
    }
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML array of strings on one line.
pub fn toml_list(items: &[String]) -> String {
    let v: Vec<String> = items.iter().map(|i| toml_str(i)).collect();
    format!("[{}]", v.join(", "))
}

/// `[[group]]` tables for every group.
pub fn write_groups(s: &mut String, groups: &Groups) {
    for (name, cidrs) in groups.iter() {
        let items: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(
            s,
            "[[group]]\nname = {}\ncidrs = {}\n",
            toml_str(name),
            toml_list(&items)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_compact_into_ranges() {
        let set: BTreeSet<u16> = [25, 587, 5065, 5066, 5067, 5068].into_iter().collect();
        assert_eq!(compact(&set).0.items(), ["25", "587", "5065-5068"]);
        let set: BTreeSet<u16> = (0..20).map(|i| 49152 + i * 7).collect();
        let (p, note) = compact(&set);
        assert_eq!(p.items(), ["49152-49285"]);
        assert!(note.unwrap().starts_with("20 distinct ports"));
    }
}
