//! Learning: the smallest policy that allows every observed flow, one rule per source group,
//! destination group, transport and service, each commented with its evidence.

use super::file::{Ports, Rule, Transport};
use super::findings::csv_cell;
use super::groups::{Cidr, Groups, ANY};
use super::reference::{self, Fit};
use super::FlowFacts;
use crate::signatures::Signatures;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

/// Count a reason, keeping at most [`MAX_REASONS`] distinct ones (the others are counted
/// under the last kept).
fn add_reason(reasons: &mut BTreeMap<String, u64>, why: String, n: u64) {
    if let Some(c) = reasons.get_mut(&why) {
        *c += n;
    } else if reasons.len() < MAX_REASONS {
        reasons.insert(why, n);
    } else if let Some(mut last) = reasons.last_entry() {
        *last.get_mut() += n;
    }
}

/// More distinct ports than this in one rule become one range from the lowest to the highest
/// (dynamic RPC, RTP media): a rule per ephemeral port would help nobody.
pub const MAX_PORT_ITEMS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    from: String,
    to: String,
    proto: u8,
    service: String,
    /// The port reference would not allow these flows: they get a rule of their own.
    review: bool,
}

/// Hosts counted per rule and side; past this many, new hosts are counted together.
const MAX_HOSTS: usize = 4096;
/// Distinct reasons kept per rule for not being in the reference.
const MAX_REASONS: usize = 4;
/// Hosts named in a rule's comment, per side.
const TOP_HOSTS: usize = 3;

/// Flow counts per host, bounded by [`MAX_HOSTS`].
#[derive(Debug, Default, Clone)]
struct Hosts {
    count: HashMap<IpAddr, u64>,
    others: u64,
}

impl Hosts {
    fn add(&mut self, ip: IpAddr, n: u64) {
        let room = self.count.len() < MAX_HOSTS;
        match self.count.get_mut(&ip) {
            Some(c) => *c += n,
            None if room => {
                self.count.insert(ip, n);
            }
            None => self.others += n,
        }
    }

    fn merge(&mut self, o: Hosts) {
        for (ip, n) in o.count {
            self.add(ip, n);
        }
        self.others += o.others;
    }

    /// `10.1.10.21 x4, 10.1.10.22 x2` for the busiest hosts (ties by address).
    fn top(&self) -> String {
        let mut v: Vec<(&IpAddr, &u64)> = self.count.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut items: Vec<String> = v
            .iter()
            .take(TOP_HOSTS)
            .map(|(ip, n)| format!("{ip} x{n}"))
            .collect();
        let rest = v.len().saturating_sub(TOP_HOSTS);
        if rest > 0 {
            items.push(format!("{rest} more hosts"));
        }
        if self.others > 0 {
            items.push(format!(
                "{} flows of hosts past the first {MAX_HOSTS}",
                self.others
            ));
        }
        items.join(", ")
    }
}

#[derive(Debug, Default, Clone)]
struct Evidence {
    /// Ports allowed as seen.
    ports: BTreeSet<u16>,
    /// Ranges of the reference the other ports were widened to: (lo, hi) -> (section,
    /// service), with the ports seen in each.
    ranges: BTreeMap<(u16, u16), (String, String, BTreeSet<u16>)>,
    flows: u64,
    bytes: u64,
    /// Protocols named by payload, with flow counts.
    protocols: BTreeMap<String, u64>,
    /// Flows whose protocol only the port suggested.
    unidentified: u64,
    /// Why the reference would not allow these flows, with flow counts.
    reasons: BTreeMap<String, u64>,
    sources: Hosts,
    destinations: Hosts,
}

/// Accumulates observed flows.
#[derive(Debug, Clone)]
pub struct Learner {
    /// The groups flows are learned by; `None`: per address.
    groups: Option<Groups>,
    sigs: Arc<Signatures>,
    seen: BTreeMap<Key, Evidence>,
    /// Per address: the group name of each address seen.
    hosts: BTreeMap<String, IpAddr>,
}

/// One learned rule with its evidence.
#[derive(Debug, Clone)]
pub struct LearnedRule {
    pub rule: Rule,
    /// The services the rule stands for.
    pub services: Vec<String>,
    pub comment: String,
    /// Why the port reference would not allow the rule's flows (`None`: it would).
    pub review: Option<String>,
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

/// The group name an address gets when learning per address (`fd00:1::10` -> `fd00-1--10`).
fn host_group(ip: IpAddr) -> String {
    ip.to_string().replace(':', "-")
}

impl Learner {
    /// A learner by `groups`, or per address (`None`), that checks flows against the port
    /// reference of `sigs`.
    pub fn new(groups: Option<Groups>, sigs: Arc<Signatures>) -> Self {
        Learner {
            groups,
            sigs,
            seen: BTreeMap::new(),
            hosts: BTreeMap::new(),
        }
    }

    /// The same groups, nothing seen yet (a worker's share).
    pub fn fork(&self) -> Learner {
        Learner::new(self.groups.clone(), self.sigs.clone())
    }

    /// Fold in what another worker's share saw.
    pub fn merge(&mut self, other: Learner) {
        for (k, o) in other.seen {
            let e = self.seen.entry(k).or_default();
            e.ports.extend(o.ports);
            for (r, (sec, svc, seen)) in o.ranges {
                e.ranges
                    .entry(r)
                    .or_insert_with(|| (sec, svc, BTreeSet::new()))
                    .2
                    .extend(seen);
            }
            e.flows += o.flows;
            e.bytes += o.bytes;
            for (p, n) in o.protocols {
                *e.protocols.entry(p).or_default() += n;
            }
            e.unidentified += o.unidentified;
            for (r, n) in o.reasons {
                add_reason(&mut e.reasons, r, n);
            }
            e.sources.merge(o.sources);
            e.destinations.merge(o.destinations);
        }
        self.hosts.extend(other.hosts);
    }

    fn name_of(&mut self, ip: IpAddr) -> String {
        match &self.groups {
            Some(g) => g.primary_of(ip).to_string(),
            None => {
                let n = host_group(ip);
                self.hosts.entry(n.clone()).or_insert(ip);
                n
            }
        }
    }

    /// Record a flow in its recorded direction.
    pub fn add(&mut self, f: &FlowFacts<'_>) {
        let fit = reference::fit(&self.sigs, self.groups.as_ref(), f);
        let key = Key {
            from: self.name_of(f.src),
            to: self.name_of(f.dst),
            proto: f.proto,
            service: f.verdict.service.clone(),
            review: matches!(fit, Fit::Off(_)),
        };
        let e = self.seen.entry(key).or_default();
        match fit {
            Fit::Range {
                lo,
                hi,
                section,
                service,
            } => {
                e.ranges
                    .entry((lo, hi))
                    .or_insert_with(|| (section, service, BTreeSet::new()))
                    .2
                    .insert(f.dport);
            }
            Fit::Off(why) => {
                add_reason(&mut e.reasons, why, 1);
                if f.has_ports() {
                    e.ports.insert(f.dport);
                }
            }
            Fit::Port => {
                e.ports.insert(f.dport);
            }
        }
        e.flows += 1;
        e.bytes += f.bytes;
        if f.payload_identified() {
            *e.protocols.entry(f.verdict.protocol.clone()).or_default() += 1;
        } else {
            e.unidentified += 1;
        }
        e.sources.add(f.src, 1);
        e.destinations.add(f.dst, 1);
    }

    /// The learned rules in a stable order: one per groups, transport and service, then the
    /// services that share the same ports (and the same standing with the reference) merged
    /// into one rule.
    pub fn rules(&self) -> Vec<LearnedRule> {
        let mut merged: Vec<LearnedRule> = Vec::new();
        for l in self.rules_per_service() {
            let same = |m: &&mut LearnedRule| {
                (&m.rule.from, &m.rule.to, m.rule.transport, &m.rule.ports)
                    == (&l.rule.from, &l.rule.to, l.rule.transport, &l.rule.ports)
                    && m.review.is_some() == l.review.is_some()
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
                    if let (Some(a), Some(b)) = (&mut m.review, l.review) {
                        if !a.contains(&b) {
                            a.push_str("; ");
                            a.push_str(&b);
                        }
                    }
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
                // Ports inside a range the rule allows anyway need no item of their own.
                let exact: BTreeSet<u16> = e
                    .ports
                    .iter()
                    .copied()
                    .filter(|p| !e.ranges.keys().any(|(lo, hi)| (lo..=hi).contains(&p)))
                    .collect();
                let (mut ports, widened) = compact(&exact);
                ports.0.extend(e.ranges.keys().copied());
                ports.0.sort_unstable();
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
                for ((lo, hi), (section, service, seen)) in &e.ranges {
                    let seen: Vec<String> = seen.iter().take(8).map(u16::to_string).collect();
                    let _ = write!(
                        comment,
                        "; port {} seen, allowed as the reference's {service} range {lo}-{hi} \
                         (section {section})",
                        seen.join(", ")
                    );
                }
                let _ = write!(
                    comment,
                    "; top sources: {}; top destinations: {}",
                    e.sources.top(),
                    e.destinations.top()
                );
                let review = k.review.then(|| {
                    let mut r: Vec<String> = e
                        .reasons
                        .iter()
                        .map(|(why, n)| format!("{why} ({n} flows)"))
                        .collect();
                    if r.is_empty() {
                        r.push("not allowed by the port reference".into());
                    }
                    r.join("; ")
                });
                let section = if e.ranges.is_empty() {
                    "learned".to_string()
                } else {
                    let mut s: Vec<&str> = e.ranges.values().map(|v| v.0.as_str()).collect();
                    s.dedup();
                    format!("learned,{}", s.join(","))
                };
                LearnedRule {
                    rule: Rule {
                        name: format!("{}-to-{}-{}-{}", k.from, k.to, transport.label(), k.service),
                        from: k.from.clone(),
                        to: k.to.clone(),
                        transport,
                        ports,
                        protocols: e.protocols.keys().cloned().collect(),
                        services: Vec::new(),
                        section,
                        line: 0,
                    },
                    services: vec![k.service.clone()],
                    comment,
                    review,
                }
            })
            .collect()
    }

    /// The groups of the learned policy: those given, or one per address seen.
    fn out_groups(&self) -> std::borrow::Cow<'_, Groups> {
        match &self.groups {
            Some(g) => std::borrow::Cow::Borrowed(g),
            None => {
                let mut g = Groups::default();
                for (name, ip) in &self.hosts {
                    let bits = if ip.is_ipv4() { 32 } else { 128 };
                    if let Ok(c) = Cidr::parse(&format!("{ip}/{bits}")) {
                        g.add(name, vec![c]);
                    }
                }
                std::borrow::Cow::Owned(g)
            }
        }
    }

    /// `rule: why` for every learned rule the port reference would not allow.
    pub fn reviews(&self) -> Vec<String> {
        self.rules()
            .into_iter()
            .filter_map(|l| l.review.map(|r| format!("{}: {r}", l.rule.name)))
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
        write_groups(&mut s, &self.out_groups());
        for LearnedRule {
            rule: r,
            comment,
            review,
            ..
        } in self.rules()
        {
            let _ = writeln!(s, "# {comment}");
            if let Some(why) = review {
                let _ = writeln!(s, "# not in the reference: review ({why})");
            }
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
            let _ = writeln!(s, "section = {}\n", toml_str(&r.section));
        }
        s
    }

    /// The learned rules in the CSV rule format `validate` reads (first match, implicit deny).
    pub fn rules_csv(&self) -> String {
        let mut s = String::from("name,action,source,destination,transport,ports\n");
        let groups = self.out_groups();
        let nets = |g: &str| match groups.cidrs_of(g) {
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
