//! nftables rule sets as `nft -j list ruleset` prints them (current Debian, RHEL and firewalld
//! hosts): the base chain of a hook (`--chain FORWARD` is the `forward` hook) or a chain named
//! `TABLE/CHAIN`, with its jumps, gotos, named sets and policies, first match wins.

use super::file::{PolicyError, Ports, Transport};
use super::firewall::{Action, Chain, FwRule, RuleSet};
use super::groups::Cidr;
use super::suggest::hint;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Nesting the evaluation follows for a set or value (JSON of a ruleset is shallow).
const MAX_DEPTH: usize = 8;

/// A value on the right of a match, as address networks or port ranges.
#[derive(Default)]
struct Values {
    nets: Vec<Cidr>,
    ports: Vec<(u16, u16)>,
    words: Vec<String>,
}

fn collect(
    v: &Value,
    sets: &BTreeMap<String, Value>,
    out: &mut Values,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("a value nested too deep".into());
    }
    match v {
        Value::Number(n) => {
            let p = n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| format!("`{n}` is not a port"))?;
            out.ports.push((p, p));
        }
        Value::String(s) if s.starts_with('@') => {
            let set = sets
                .get(&s[1..])
                .ok_or_else(|| format!("set `{s}` is not in the ruleset"))?;
            match set.get("elem") {
                Some(e) => collect(e, sets, out, depth + 1)?,
                None => return Err(format!("set `{s}` has no elements in the export")),
            }
        }
        Value::String(s) => match Cidr::parse(s) {
            Ok(c) => out.nets.push(c),
            Err(_) => match super::names::ports_of(s) {
                Some(p) if !s.contains('.') => out.ports.push((p[0].1, p[0].1)),
                _ => out.words.push(s.to_ascii_lowercase()),
            },
        },
        Value::Array(a) => {
            for x in a {
                collect(x, sets, out, depth + 1)?;
            }
        }
        Value::Object(o) => {
            if let Some(s) = o.get("set") {
                collect(s, sets, out, depth + 1)?;
            } else if let Some(p) = o.get("prefix") {
                let addr = p.get("addr").and_then(Value::as_str).unwrap_or_default();
                let len = p.get("len").and_then(Value::as_u64).unwrap_or(0);
                out.nets.push(Cidr::parse(&format!("{addr}/{len}"))?);
            } else if let Some(Value::Array(r)) = o.get("range") {
                match (r.first(), r.get(1)) {
                    (Some(Value::Number(a)), Some(Value::Number(b))) => {
                        let p =
                            |n: &serde_json::Number| n.as_u64().and_then(|x| u16::try_from(x).ok());
                        match (p(a), p(b)) {
                            (Some(a), Some(b)) if a <= b => out.ports.push((a, b)),
                            _ => return Err(format!("range {a}-{b} is not a port range")),
                        }
                    }
                    (Some(Value::String(a)), Some(Value::String(b))) => {
                        let (a, b) = (
                            a.parse().map_err(|_| format!("`{a}` is not an address"))?,
                            b.parse().map_err(|_| format!("`{b}` is not an address"))?,
                        );
                        out.nets.extend(Cidr::range(a, b)?);
                    }
                    _ => return Err("a range of two ports or two addresses was expected".into()),
                }
            } else if let Some(e) = o.get("elem") {
                // A set element with options (timeout, comment): its value.
                collect(e, sets, out, depth + 1)?;
            } else {
                return Err(format!("value `{v}` is not supported"));
            }
        }
        _ => return Err(format!("value `{v}` is not supported")),
    }
    Ok(())
}

fn transport_of(name: &str) -> Option<Transport> {
    match name {
        "tcp" => Some(Transport::Tcp),
        "udp" => Some(Transport::Udp),
        "th" => Some(Transport::Both),
        _ => Transport::parse(name)
            .ok()
            .filter(|t| !matches!(t, Transport::Any)),
    }
}

/// The line of the `n`-th `"rule"` key of the text (1 when the export is one line).
fn rule_lines(text: &str) -> Vec<usize> {
    let mut v = Vec::new();
    let mut line = 1;
    let b = text.as_bytes();
    let pat = b"\"rule\"";
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            line += 1;
        } else if b[i..].starts_with(pat) {
            v.push(line);
            i += pat.len();
            continue;
        }
        i += 1;
    }
    v
}

/// Apply one match expression to a rule.
fn apply_match(r: &mut FwRule, m: &Value, sets: &BTreeMap<String, Value>) -> Result<(), String> {
    let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
    let neg = match op {
        "==" | "in" => false,
        "!=" => true,
        other => return Err(format!("match operator `{other}` is not supported")),
    };
    let left = m.get("left").unwrap_or(&Value::Null);
    let mut vals = Values::default();
    collect(m.get("right").unwrap_or(&Value::Null), sets, &mut vals, 0)?;
    if let Some(p) = left.get("payload") {
        let proto = p
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let field = p.get("field").and_then(Value::as_str).unwrap_or_default();
        match (proto, field) {
            ("ip" | "ip6", "saddr") => (r.src, r.not.src) = (vals.nets, neg),
            ("ip" | "ip6", "daddr") => (r.dst, r.not.dst) = (vals.nets, neg),
            ("ip", "protocol") | ("ip6", "nexthdr") => set_transport(r, &vals, neg)?,
            ("tcp" | "udp" | "th", "dport" | "sport") => {
                if let (Some(t), Transport::Any) = (transport_of(proto), r.transport) {
                    r.transport = t;
                }
                if field == "dport" {
                    (r.dports, r.not.dports) = (Ports(vals.ports), neg);
                } else {
                    (r.sports, r.not.sports) = (Ports(vals.ports), neg);
                }
            }
            ("icmp" | "icmpv6", "type") => {
                let t = vals.ports.first().map(|p| p.0 as u8).or_else(|| {
                    vals.words.first().and_then(|w| match w.as_str() {
                        "echo-reply" => Some(0),
                        "destination-unreachable" => Some(3),
                        "echo-request" => Some(8),
                        "time-exceeded" => Some(11),
                        _ => None,
                    })
                });
                r.icmp = Some((t.ok_or("an ICMP type was expected")?, None));
                r.not.icmp = neg;
            }
            _ => return Err(format!("a match on {proto} {field} is not supported")),
        }
    } else if let Some(meta) = left.get("meta") {
        let key = meta.get("key").and_then(Value::as_str).unwrap_or_default();
        match key {
            "l4proto" => set_transport(r, &vals, neg)?,
            "nfproto" => {}
            "iifname" | "oifname" | "iif" | "oif" => {
                let n = if neg { "!= " } else { "" };
                r.unjudged
                    .push(format!("interface {key} {n}{}", vals.words.join(",")));
            }
            other => {
                r.unjudged.push(format!("meta {other}"));
                r.undecidable.get_or_insert(format!("meta {other}"));
            }
        }
    } else if let Some(ct) = left.get("ct") {
        let key = ct.get("key").and_then(Value::as_str).unwrap_or_default();
        if key != "state" {
            return Err(format!("a match on ct {key} is not supported"));
        }
        let new = vals.words.iter().any(|w| w == "new" || w == "untracked");
        r.new_flows = new != neg;
        if !r.new_flows {
            r.unjudged
                .push(format!("ct state {}", vals.words.join(",")));
        }
    } else {
        return Err(format!("a match on `{left}` is not supported"));
    }
    Ok(())
}

fn set_transport(r: &mut FwRule, vals: &Values, neg: bool) -> Result<(), String> {
    let name = vals
        .words
        .first()
        .cloned()
        .or_else(|| vals.ports.first().map(|p| p.0.to_string()))
        .ok_or("a protocol was expected")?;
    r.transport = Transport::parse(&name)?;
    r.not.transport = neg;
    Ok(())
}

/// `nft -j list ruleset` output, evaluated from the base chain of hook `start` (`FORWARD` is
/// `forward`) or the chain `TABLE/CHAIN` / `CHAIN`.
pub fn parse(file: &Path, text: &str, start: &str) -> Result<RuleSet, PolicyError> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| PolicyError::at(file, e.line(), format!("not nftables JSON: {e}")))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            PolicyError::at(
                file,
                1,
                "no `nftables` array: not `nft -j list ruleset` output",
            )
        })?;
    let lines = rule_lines(text);
    let id = |o: &Value| {
        format!(
            "{}/{}",
            o.get("table").and_then(Value::as_str).unwrap_or_default(),
            o.get("name").and_then(Value::as_str).unwrap_or_default()
        )
    };
    let mut sets: BTreeMap<String, Value> = BTreeMap::new();
    let mut chains: Vec<Chain> = Vec::new();
    let mut hooks: Vec<(usize, String, i64)> = Vec::new();
    for it in items {
        if let Some(s) = it.get("set").or_else(|| it.get("map")) {
            // Sets are named per table; a rule's `@name` is looked up in its own table first.
            sets.insert(id(s), s.clone());
            if let Some(n) = s.get("name").and_then(Value::as_str) {
                sets.entry(n.to_string()).or_insert_with(|| s.clone());
            }
        }
        if let Some(c) = it.get("chain") {
            let policy = match c.get("policy").and_then(Value::as_str) {
                Some("accept") => Some(Action::Allow),
                Some("drop") => Some(Action::Deny),
                _ if c.get("hook").is_some() => Some(Action::Allow),
                _ => None,
            };
            if let Some(h) = c.get("hook").and_then(Value::as_str) {
                let prio = c.get("prio").and_then(Value::as_i64).unwrap_or(0);
                hooks.push((chains.len(), h.to_string(), prio));
            }
            chains.push(Chain {
                name: id(c),
                rules: Vec::new(),
                policy,
            });
        }
    }
    let names: Vec<String> = chains.iter().map(|c| c.name.clone()).collect();
    let chain_of = |name: &str| names.iter().position(|c| c == name);
    let mut rules = Vec::new();
    for (k, it) in items.iter().filter_map(|it| it.get("rule")).enumerate() {
        let line = lines.get(k).copied().unwrap_or(1);
        let table = it.get("table").and_then(Value::as_str).unwrap_or_default();
        let chain_name = format!(
            "{table}/{}",
            it.get("chain").and_then(Value::as_str).unwrap_or_default()
        );
        let handle = it.get("handle").and_then(Value::as_u64).unwrap_or(k as u64);
        let bad = |p: String| {
            PolicyError::at(
                file,
                line,
                format!("rule handle {handle} of {chain_name}: {p}"),
            )
        };
        let c =
            chain_of(&chain_name).ok_or_else(|| bad("its chain is not in the ruleset".into()))?;
        let mut r = FwRule::new(line);
        r.name = match it.get("comment").and_then(Value::as_str) {
            Some(cm) if !cm.is_empty() => cm.to_string(),
            _ => format!("{chain_name}#{handle}"),
        };
        // A rule's named sets are its table's.
        let mut local = sets.clone();
        for (n, v) in &sets {
            if let Some(short) = n.strip_prefix(&format!("{table}/")) {
                local.insert(short.to_string(), v.clone());
            }
        }
        let exprs = it
            .get("expr")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for e in &exprs {
            let Some((kind, body)) = e.as_object().and_then(|o| o.iter().next()) else {
                continue;
            };
            match kind.as_str() {
                "match" => apply_match(&mut r, body, &local).map_err(bad)?,
                "accept" => r.action = Action::Allow,
                "drop" | "reject" => r.action = Action::Deny,
                "return" => r.action = Action::Return,
                "jump" | "goto" => {
                    let target = body
                        .get("target")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let t = chain_of(&format!("{table}/{target}")).ok_or_else(|| {
                        bad(format!(
                            "{kind} to chain `{target}`, which the table does not have"
                        ))
                    })?;
                    r.action = if kind == "jump" {
                        Action::Jump(t)
                    } else {
                        Action::Goto(t)
                    };
                }
                "counter" | "log" | "comment" | "mangle" | "notrack" | "meter" => {}
                "limit" | "quota" => {
                    r.unjudged.push(kind.clone());
                    r.undecidable.get_or_insert(kind.clone());
                }
                other => return Err(bad(format!("statement `{other}` is not supported"))),
            }
        }
        chains[c].rules.push(rules.len());
        rules.push(r);
    }
    // The start: a chain by name, or the one base chain of the hook.
    let want = start.to_ascii_lowercase();
    let named: Vec<usize> = (0..chains.len())
        .filter(|&i| {
            chains[i].name.eq_ignore_ascii_case(start)
                || chains[i].name.rsplit('/').next() == Some(start)
        })
        .collect();
    let mut on_hook: Vec<&(usize, String, i64)> = hooks.iter().filter(|h| h.1 == want).collect();
    on_hook.sort_by_key(|h| h.2);
    let start_i = match (named.as_slice(), on_hook.as_slice()) {
        ([i], _) => *i,
        ([], [h]) => h.0,
        ([], []) => {
            let known: Vec<&str> = chains.iter().map(|c| c.name.as_str()).collect();
            return Err(PolicyError::at(
                file,
                1,
                format!(
                    "no base chain on the `{want}` hook and no chain `{start}`{}",
                    hint(start, &known)
                ),
            ));
        }
        _ => {
            let names: Vec<&str> = if named.len() > 1 {
                named.iter().map(|&i| chains[i].name.as_str()).collect()
            } else {
                on_hook.iter().map(|h| chains[h.0].name.as_str()).collect()
            };
            return Err(PolicyError::at(
                file,
                1,
                format!(
                    "several chains match `{start}` ({}): give --chain TABLE/CHAIN",
                    names.join(", ")
                ),
            ));
        }
    };
    let mut rs = RuleSet {
        rules,
        chains,
        start: start_i,
        origin: file.display().to_string(),
        notes: Vec::new(),
    };
    rs.check_undecidable(file)?;
    Ok(rs)
}
