//! Ordered, first-match firewall rule sets for migration validation: a documented CSV format
//! and the filter table of `iptables-save` output. Every rule a flow matches on its way
//! counts a hit (jumps, gotos, RETURN, LOG); a rule no flow matched is either one that
//! matched nothing (a removal candidate) or one a capture cannot judge (state-only,
//! interface, a chain the flows never traverse): [`RuleSet::unused`].

use super::file::{PolicyError, Ports, Transport};
use super::groups::{Cidr, Groups};
use super::suggest::hint;
use super::FlowFacts;
use std::net::IpAddr;
use std::path::Path;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    /// iptables: continue in another chain.
    Jump(usize),
    /// iptables `-g`: continue in another chain, and when it ends, where the current chain
    /// would have returned to.
    Goto(usize),
    /// iptables: back to the calling chain.
    Return,
    /// iptables: a target that does not decide (LOG, MARK...).
    Continue,
}

/// One rule of an ordered rule set.
#[derive(Debug, Clone)]
pub struct FwRule {
    pub name: String,
    pub action: Action,
    /// Empty: any address.
    pub src: Vec<Cidr>,
    pub dst: Vec<Cidr>,
    pub transport: Transport,
    pub sports: Ports,
    pub dports: Ports,
    /// False for iptables rules that match only ESTABLISHED/RELATED packets (never a new flow).
    pub new_flows: bool,
    /// What in the rule a capture cannot show (`state RELATED,ESTABLISHED`, `interface -i
    /// eth0`): when it matched nothing, that says nothing about the traffic.
    pub unjudged: Vec<String>,
    /// Line in the rules file.
    pub line: usize,
    /// Ports with their own transport (named services such as `ldap` = 389/tcp and 389/udp):
    /// when not empty, a flow matches one of them instead of `transport` and `dports`.
    pub services: Vec<(Transport, u16, u16)>,
    /// iptables `-m multiport --ports`: the source or the destination port is one of these.
    pub any_ports: Ports,
    /// iptables `--icmp-type`: type and optional code.
    pub icmp: Option<(u8, Option<u8>)>,
    /// iptables `!`: the match is negated.
    pub not: Negated,
    /// What makes the rule undecidable from a capture when it decides flows (`-m limit`,
    /// `-m owner`, `-m set` without its members).
    pub undecidable: Option<String>,
}

/// Which matches of a rule are negated (`! -s`, `! -p`...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Negated {
    pub src: bool,
    pub dst: bool,
    pub transport: bool,
    pub dports: bool,
    pub sports: bool,
    pub icmp: bool,
}

impl FwRule {
    /// A rule that matches every new flow, continuing (the parsers fill it in).
    pub fn new(line: usize) -> FwRule {
        FwRule {
            name: String::new(),
            action: Action::Continue,
            src: Vec::new(),
            dst: Vec::new(),
            transport: Transport::Any,
            sports: Ports::default(),
            dports: Ports::default(),
            new_flows: true,
            unjudged: Vec::new(),
            line,
            services: Vec::new(),
            any_ports: Ports::default(),
            icmp: None,
            not: Negated::default(),
            undecidable: None,
        }
    }

    fn matches(&self, f: &FlowFacts<'_>) -> bool {
        let in_any =
            |nets: &[Cidr], ip: IpAddr| nets.is_empty() || nets.iter().any(|c| c.contains(ip));
        let n = self.not;
        let ports = f.has_ports();
        let icmp = f.proto == 1 || f.proto == 58;
        let service = self.services.is_empty()
            || self
                .services
                .iter()
                .any(|&(t, lo, hi)| t.covers(f.proto) && (!ports || (lo..=hi).contains(&f.dport)));
        self.new_flows
            && in_any(&self.src, f.src) != n.src
            && in_any(&self.dst, f.dst) != n.dst
            && self.transport.covers(f.proto) != n.transport
            && service
            && (!ports
                || (self.dports.covers(f.dport) != (n.dports && !self.dports.0.is_empty())
                    && self.sports.covers(f.sport) != (n.sports && !self.sports.0.is_empty())
                    && (self.any_ports.covers(f.dport) || self.any_ports.covers(f.sport))))
            && self.icmp.is_none_or(|(t, c)| {
                let (ft, fc) = ((f.icmp_type_code >> 8) as u8, f.icmp_type_code as u8);
                (icmp && ft == t && c.is_none_or(|c| c == fc)) != n.icmp
            })
    }
}

/// A chain of rules ending in a default action.
#[derive(Debug, Clone)]
pub struct Chain {
    pub name: String,
    /// Indexes into `RuleSet::rules`.
    pub rules: Vec<usize>,
    /// What happens when no rule decides (built-in chains); `None` for user chains.
    pub policy: Option<Action>,
}

/// A rule set: rules in order, the chain to start from, and its default.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<FwRule>,
    pub chains: Vec<Chain>,
    pub start: usize,
    pub origin: String,
    /// What loading it noted (rules skipped as disabled, options accepted in chains no flow
    /// reaches), `file:line: ...` each.
    pub notes: Vec<String>,
}

/// Result of evaluating one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The deciding rule, or `None` for the default policy.
    pub rule: Option<usize>,
    pub allowed: bool,
    /// Rules that matched on the way without deciding (jumps, gotos, RETURN, LOG...): they
    /// count as hits too.
    pub passed: Vec<usize>,
}

/// Why a rule no flow matched was not hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unused {
    /// It was reached and matched nothing: a candidate for removal.
    MatchedNothing,
    /// A capture cannot tell (state, interface, a chain the flows do not traverse): why.
    NotJudged(String),
}

impl Unused {
    /// The `kind` of the class in CSV and JSON.
    pub fn label(&self) -> &'static str {
        match self {
            Unused::MatchedNothing => "unused-matched-nothing",
            Unused::NotJudged(_) => "unused-cannot-judge",
        }
    }
}

impl RuleSet {
    /// Name of a decision's rule for records and tables.
    pub fn rule_name(&self, d: &Decision) -> String {
        match d.rule {
            Some(i) => self.rules[i].name.clone(),
            None => format!("{} default policy", self.chains[self.start].name),
        }
    }

    fn eval_chain(
        &self,
        chain: usize,
        f: &FlowFacts<'_>,
        depth: u32,
        passed: &mut Vec<usize>,
    ) -> Option<(Option<usize>, bool)> {
        // Chains that jump in circles end here (iptables itself refuses them).
        if depth > 32 || passed.len() > 4096 {
            return None;
        }
        for &i in &self.chains[chain].rules {
            let r = &self.rules[i];
            if !r.matches(f) {
                continue;
            }
            match r.action {
                Action::Allow => return Some((Some(i), true)),
                Action::Deny => return Some((Some(i), false)),
                Action::Jump(c) => {
                    passed.push(i);
                    if let Some(d) = self.eval_chain(c, f, depth + 1, passed) {
                        return Some(d);
                    }
                }
                Action::Goto(c) => {
                    passed.push(i);
                    return self.eval_chain(c, f, depth + 1, passed);
                }
                Action::Return => {
                    passed.push(i);
                    return None;
                }
                Action::Continue => passed.push(i),
            }
        }
        None
    }

    /// First-match evaluation of a flow as recorded.
    pub fn decide(&self, f: &FlowFacts<'_>) -> Decision {
        let mut passed = Vec::new();
        let (rule, allowed) = self
            .eval_chain(self.start, f, 0, &mut passed)
            .unwrap_or((None, self.chains[self.start].policy == Some(Action::Allow)));
        Decision {
            rule,
            allowed,
            passed,
        }
    }

    /// Which chains a new flow can reach from the start chain (by jumps and gotos; not by a
    /// state-only rule, which a new flow never matches).
    fn reachable(&self) -> Vec<bool> {
        let mut seen = vec![false; self.chains.len()];
        let mut todo = vec![self.start];
        while let Some(c) = todo.pop() {
            if std::mem::replace(&mut seen[c], true) {
                continue;
            }
            for &i in &self.chains[c].rules {
                match self.rules[i].action {
                    Action::Jump(t) | Action::Goto(t) if self.rules[i].new_flows => todo.push(t),
                    _ => {}
                }
            }
        }
        seen
    }

    /// A rule a capture cannot judge (`-m limit`...) is refused where new flows reach it, and
    /// noted where they never do.
    pub fn check_undecidable(&mut self, file: &Path) -> Result<(), PolicyError> {
        let reachable = self.reachable();
        let start = self.chains[self.start].name.clone();
        for (c, chain) in self.chains.iter().enumerate() {
            for &i in &chain.rules {
                let r = &self.rules[i];
                let (Some(what), true) = (&r.undecidable, r.new_flows) else {
                    continue;
                };
                if reachable[c] {
                    return Err(PolicyError::at(
                        file,
                        r.line,
                        format!(
                            "`{what}` cannot be judged from a capture, and this rule of chain {} \
                             decides new flows from {start}",
                            chain.name
                        ),
                    ));
                }
                self.notes.push(format!(
                    "{}:{}: warning: `{what}` cannot be judged from a capture; accepted, since \
                     chain {} is not traversed by new flows from {start}",
                    file.display(),
                    r.line,
                    chain.name
                ));
            }
        }
        Ok(())
    }

    /// The class of every rule whose hit count is 0 (`hits[i]`), in file order.
    pub fn unused(&self, hits: &[u64]) -> Vec<(usize, Unused)> {
        let reachable = self.reachable();
        let start = &self.chains[self.start].name;
        let mut out = Vec::new();
        for (c, chain) in self.chains.iter().enumerate() {
            for &i in &chain.rules {
                if hits.get(i).copied().unwrap_or(0) > 0 {
                    continue;
                }
                let r = &self.rules[i];
                let class = if !reachable[c] {
                    Unused::NotJudged(format!(
                        "chain {} is not traversed by new flows from {start}",
                        chain.name
                    ))
                } else if !r.unjudged.is_empty() {
                    Unused::NotJudged(r.unjudged.join(", "))
                } else {
                    Unused::MatchedNothing
                };
                out.push((i, class));
            }
        }
        out.sort_by_key(|(i, _)| self.rules[*i].line);
        out
    }

    /// Evaluate a flow; a mid-stream flow denied as recorded is tried the other way round.
    /// Returns the decision and whether it was reversed.
    pub fn judge(&self, f: &FlowFacts<'_>) -> (Decision, bool) {
        let d = self.decide(f);
        if !d.allowed && f.mid_stream {
            let r = self.decide(&f.reversed());
            if r.allowed {
                return (r, true);
            }
        }
        (d, false)
    }

    /// Load a rule set: iptables-save output when it holds a `*filter` line, `nft -j list
    /// ruleset` output when it is a JSON object, else CSV (whose address objects are the
    /// groups of `groups`).
    pub fn load(file: &Path, chain: &str, groups: Option<&Groups>) -> Result<RuleSet, PolicyError> {
        let text = std::fs::read_to_string(file).map_err(|source| PolicyError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        if text.lines().any(|l| l.trim() == "*filter") {
            parse_iptables(file, &text, chain)
        } else if text.trim_start().starts_with('{') {
            super::nft::parse(file, &text, chain)
        } else {
            super::fwcsv::parse(file, &text, groups)
        }
    }
}

fn cidr_list(s: &str) -> Result<Vec<Cidr>, String> {
    let items: Vec<&str> = s.split([' ', ';', ',']).filter(|x| !x.is_empty()).collect();
    if items.iter().any(|x| x.eq_ignore_ascii_case("any")) {
        return Ok(Vec::new());
    }
    items.iter().map(|x| Cidr::parse(x)).collect()
}

/// A CSV rule set (see [`super::fwcsv`]), without address objects.
pub fn parse_csv(file: &Path, text: &str) -> Result<RuleSet, PolicyError> {
    super::fwcsv::parse(file, text, None)
}

/// Split an iptables-save line into words, honouring double quotes.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Targets that decide a packet's fate.
const DECIDING_TARGETS: [&str; 4] = ["ACCEPT", "DROP", "REJECT", "RETURN"];

/// Targets of the filter table that do not decide (the packet goes on to the next rule), or
/// whose decision is made elsewhere (QUEUE, NFQUEUE): a flow passes them.
const NON_DECIDING_TARGETS: [&str; 18] = [
    "LOG",
    "NFLOG",
    "ULOG",
    "AUDIT",
    "MARK",
    "CONNMARK",
    "SECMARK",
    "CONNSECMARK",
    "CLASSIFY",
    "DSCP",
    "TOS",
    "TCPMSS",
    "TEE",
    "SET",
    "IDLETIMER",
    "CHECKSUM",
    "QUEUE",
    "NFQUEUE",
];

/// `80`, `1024:65535`, `25,587,6000:6010`, `https` (iptables syntax).
fn ipt_ports(s: &str) -> Result<Ports, String> {
    let mut v = Vec::new();
    for item in s.split(',') {
        if !item.starts_with(|c: char| c.is_ascii_digit() || c == ':') {
            let named = super::names::ports_of(item).ok_or_else(|| {
                format!(
                    "`{item}` is not a port or a service name{}",
                    super::suggest::did_you_mean(item, &super::names::known())
                )
            })?;
            // iptables resolves a name to one port (its /etc/services entry).
            v.push((named[0].1, named[0].1));
            continue;
        }
        let item = item.replace(':', "-");
        let item = if item.starts_with('-') {
            format!("1{item}")
        } else {
            item
        };
        let item = if item.ends_with('-') {
            format!("{item}65535")
        } else {
            item
        };
        v.push(crate::signatures::parse_range(&item)?);
    }
    Ok(Ports(v))
}

/// `--icmp-type 8`, `8/0`, `echo-request`, `any`.
fn icmp_type(s: &str) -> Result<Option<(u8, Option<u8>)>, String> {
    const NAMES: [(&str, u8, Option<u8>); 10] = [
        ("echo-reply", 0, None),
        ("pong", 0, None),
        ("destination-unreachable", 3, None),
        ("port-unreachable", 3, Some(3)),
        ("fragmentation-needed", 3, Some(4)),
        ("redirect", 5, None),
        ("echo-request", 8, None),
        ("ping", 8, None),
        ("time-exceeded", 11, None),
        ("parameter-problem", 12, None),
    ];
    if s == "any" {
        return Ok(None);
    }
    if let Some((_, t, c)) = NAMES.iter().find(|(n, _, _)| *n == s) {
        return Ok(Some((*t, *c)));
    }
    let (t, c) = match s.split_once('/') {
        Some((t, c)) => (t, Some(c)),
        None => (s, None),
    };
    let num = |x: &str| x.parse::<u8>().ok();
    match (num(t), c.map(num)) {
        (Some(t), None) => Ok(Some((t, None))),
        (Some(t), Some(Some(c))) => Ok(Some((t, Some(c)))),
        _ => {
            let names: Vec<&str> = NAMES.iter().map(|n| n.0).collect();
            Err(format!(
                "`--icmp-type {s}`: not a type, TYPE/CODE or a name{}",
                hint(s, &names)
            ))
        }
    }
}

/// The `*filter` table of `iptables-save` / `ip6tables-save`, evaluated from `start` (e.g.
/// FORWARD for a firewall between networks, INPUT for a host firewall).
pub fn parse_iptables(file: &Path, text: &str, start: &str) -> Result<RuleSet, PolicyError> {
    let mut chains: Vec<Chain> = Vec::new();
    let mut pending: Vec<(usize, Vec<String>)> = Vec::new();
    let mut in_filter = false;
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(table) = t.strip_prefix('*') {
            in_filter = table == "filter";
            continue;
        }
        if !in_filter {
            continue;
        }
        if t == "COMMIT" {
            in_filter = false;
        } else if let Some(decl) = t.strip_prefix(':') {
            let mut it = decl.split_whitespace();
            let name = it.next().unwrap_or_default().to_string();
            let policy = match it.next() {
                Some("ACCEPT") => Some(Action::Allow),
                Some("DROP") | Some("REJECT") => Some(Action::Deny),
                _ => None,
            };
            chains.push(Chain {
                name,
                rules: Vec::new(),
                policy,
            });
        } else if t.starts_with("-A ") || t.starts_with('[') {
            // `iptables-save -c` puts the rule's counters first: `[12:3400] -A ...`.
            let rule = match t.strip_prefix('[').and_then(|x| x.split_once(']')) {
                Some((_, rest)) => rest.trim_start(),
                None => t,
            };
            if !rule.starts_with("-A ") {
                return Err(PolicyError::at(
                    file,
                    line,
                    format!("not an iptables-save line: `{t}`"),
                ));
            }
            pending.push((line, words(rule)));
        } else {
            return Err(PolicyError::at(
                file,
                line,
                format!("not an iptables-save line: `{t}`"),
            ));
        }
    }
    let chain_index = |chains: &[Chain], name: &str| chains.iter().position(|c| c.name == name);
    let mut rules = Vec::new();
    for (line, w) in pending {
        let bad = |p: String| PolicyError::at(file, line, p);
        let chain = chain_index(&chains, &w[1])
            .ok_or_else(|| bad(format!("chain `{}` is not declared", w[1])))?;
        let mut r = FwRule::new(line);
        let mut i = 2;
        // `! -s X` negates the next match; so does the older `-s ! X`.
        let mut negate = false;
        while i < w.len() {
            let opt = w[i].as_str();
            if opt == "!" {
                negate = true;
                i += 1;
                continue;
            }
            let mut step = 2;
            let mut arg = |i: usize| -> Result<String, PolicyError> {
                match w.get(i + 1).map(String::as_str) {
                    Some("!") => {
                        negate = true;
                        step = 3;
                        w.get(i + 2).cloned()
                    }
                    v => v.map(str::to_string),
                }
                .ok_or_else(|| bad(format!("`{}` needs a value", w[i])))
            };
            match opt {
                "-s" | "--source" => r.src = cidr_list(&arg(i)?).map_err(bad)?,
                "-d" | "--destination" => r.dst = cidr_list(&arg(i)?).map_err(bad)?,
                "--src-range" | "--dst-range" => {
                    let v = arg(i)?;
                    let (a, b) = v
                        .split_once('-')
                        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                        .ok_or_else(|| bad(format!("`{opt} {v}`: expected ADDRESS-ADDRESS")))?;
                    let nets = Cidr::range(a, b).map_err(bad)?;
                    if opt == "--src-range" {
                        r.src = nets;
                    } else {
                        r.dst = nets;
                    }
                }
                "-p" | "--protocol" => r.transport = Transport::parse(&arg(i)?).map_err(bad)?,
                "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                    r.dports = ipt_ports(&arg(i)?).map_err(bad)?
                }
                "--sport" | "--source-port" | "--sports" | "--source-ports" => {
                    r.sports = ipt_ports(&arg(i)?).map_err(bad)?
                }
                "--ports" => r.any_ports = ipt_ports(&arg(i)?).map_err(bad)?,
                "--icmp-type" | "--icmpv6-type" => {
                    let v = arg(i)?;
                    r.icmp = icmp_type(&v).map_err(bad)?;
                }
                "--state" | "--ctstate" => {
                    let states = arg(i)?;
                    r.new_flows = states.split(',').any(|s| s == "NEW" || s == "UNTRACKED");
                    if !r.new_flows {
                        r.unjudged.push(format!("state {states}"));
                    }
                }
                "--comment" => r.name = arg(i)?,
                // Interfaces are not visible in a capture (matched as if any).
                "-i" | "--in-interface" | "-o" | "--out-interface" => {
                    let v = arg(i)?;
                    let neg = if negate { "! " } else { "" };
                    r.unjudged.push(format!("interface {neg}{opt} {v}"));
                }
                // What a capture cannot show: rate limits, the local socket's owner, the
                // members of an ipset.
                "--limit" | "--limit-burst" | "--uid-owner" | "--gid-owner" | "--pid-owner"
                | "--socket-exists" | "--match-set" => {
                    let v = arg(i)?;
                    if opt == "--match-set" {
                        step += 1; // the set's flags: src, dst, src,dst
                    }
                    if opt == "--socket-exists" {
                        step = 1;
                    }
                    let module = match opt {
                        "--limit" | "--limit-burst" => "-m limit",
                        "--match-set" => "-m set",
                        _ => "-m owner",
                    };
                    let what = if opt == "--socket-exists" {
                        format!("{module} {opt}")
                    } else {
                        format!("{module} {opt} {v}")
                    };
                    r.unjudged.push(what.clone());
                    r.undecidable.get_or_insert(what);
                }
                // Modules are named by their options.
                "-m" | "--match" => {}
                "--reject-with" | "--log-prefix" | "--log-level" | "--set-mark" | "--tcp-flags" => {
                    if opt == "--tcp-flags" {
                        step += 1;
                    }
                }
                "--syn" => step = 1,
                "-j" | "--jump" | "-g" | "--goto" => {
                    let target = arg(i)?;
                    let goto = opt == "-g" || opt == "--goto";
                    r.action = match (target.as_str(), chain_index(&chains, &target)) {
                        (_, Some(c)) if goto => Action::Goto(c),
                        (_, Some(c)) => Action::Jump(c),
                        ("ACCEPT", _) if !goto => Action::Allow,
                        ("DROP" | "REJECT", _) if !goto => Action::Deny,
                        ("RETURN", _) if !goto => Action::Return,
                        (t, _) if !goto && NON_DECIDING_TARGETS.contains(&t) => Action::Continue,
                        (t, _) => {
                            let mut known: Vec<&str> =
                                chains.iter().map(|c| c.name.as_str()).collect();
                            if !goto {
                                known.extend(DECIDING_TARGETS);
                                known.extend(NON_DECIDING_TARGETS);
                            }
                            let what = if goto {
                                "a chain of the filter table"
                            } else {
                                "a chain of the filter table or a target"
                            };
                            return Err(bad(format!(
                                "`{opt} {t}`: `{t}` is not {what}{}",
                                hint(t, &known)
                            )));
                        }
                    };
                }
                other => return Err(bad(format!("option `{other}` is not supported"))),
            }
            if negate {
                let n = &mut r.not;
                match opt {
                    "-s" | "--source" | "--src-range" => n.src = true,
                    "-d" | "--destination" | "--dst-range" => n.dst = true,
                    "-p" | "--protocol" => n.transport = true,
                    "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                        n.dports = true
                    }
                    "--sport" | "--source-port" | "--sports" | "--source-ports" => n.sports = true,
                    "--icmp-type" | "--icmpv6-type" => n.icmp = true,
                    "-i" | "--in-interface" | "-o" | "--out-interface" | "--match-set"
                    | "--uid-owner" | "--gid-owner" => {}
                    other => {
                        return Err(bad(format!(
                            "`! {other}`: negating `{other}` is not supported"
                        )))
                    }
                }
                negate = false;
            }
            i += step;
        }
        if r.name.is_empty() {
            let pos = chains[chain].rules.len() + 1;
            r.name = format!("{}#{pos}", w[1]);
        }
        chains[chain].rules.push(rules.len());
        rules.push(r);
    }
    let start_i = chain_index(&chains, start).ok_or_else(|| {
        let known: Vec<&str> = chains.iter().map(|c| c.name.as_str()).collect();
        PolicyError::at(
            file,
            1,
            format!(
                "no chain `{start}` in the filter table{}",
                hint(start, &known)
            ),
        )
    })?;
    if chains.is_empty() {
        return Err(PolicyError::at(
            file,
            1,
            "the filter table declares no chain",
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{Confidence, Verdict};

    fn v() -> Verdict {
        Verdict {
            protocol: "smtp".into(),
            service: "smtp".into(),
            confidence: Confidence::Payload,
            evidence: String::new(),
            port_mismatch: None,
        }
    }

    fn facts<'a>(src: &str, dst: &str, proto: u8, dport: u16, v: &'a Verdict) -> FlowFacts<'a> {
        FlowFacts {
            src: src.parse().unwrap(),
            sport: 40000,
            dst: dst.parse().unwrap(),
            dport,
            proto,
            mid_stream: false,
            verdict: v,
            first_ts: 0,
            last_ts: 0,
            bytes: 0,
            icmp_type_code: 0,
        }
    }

    #[test]
    fn csv_first_match_then_implicit_deny() {
        let text = "# a rule set\nname,action,source,destination,transport,ports\nno-telnet,deny,any,any,tcp,23\nsmtp,allow,0.0.0.0/0,172.16.10.5,tcp,25\n\"web, all\",allow,any,10.1.1.0/24 fd00:1:1::/64,tcp,80;443\nrtp,allow,10.1.3.20,10.1.1.0/24,udp,1024-65535\n";
        let rs = parse_csv(Path::new("r.csv"), text).unwrap();
        let v = v();
        let d = rs.decide(&facts("198.51.100.25", "172.16.10.5", 6, 25, &v));
        assert_eq!((d.allowed, rs.rule_name(&d)), (true, "smtp".to_string()));
        let d = rs.decide(&facts("10.1.10.21", "fd00:1:1::10", 6, 443, &v));
        assert_eq!(rs.rule_name(&d), "web, all");
        let d = rs.decide(&facts("10.1.3.20", "10.1.1.10", 17, 17000, &v));
        assert!(d.allowed);
        let d = rs.decide(&facts("198.51.100.25", "172.16.10.5", 6, 23, &v));
        assert_eq!((d.allowed, d.rule), (false, Some(0)));
        let d = rs.decide(&facts("198.51.100.25", "10.1.1.10", 6, 25, &v));
        assert_eq!(
            (d.allowed, rs.rule_name(&d)),
            (false, "rules default policy".to_string())
        );
        let e = parse_csv(
            Path::new("r.csv"),
            "name,action,source,destination,transport,ports\nx,maybe,any,any,tcp,25\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.csv:2: action `maybe` is not allow or deny"
        );
        let e = parse_csv(
            Path::new("r.csv"),
            "name,action,source,destination,transport,ports\nx,alow,any,any,tcp,25\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.csv:2: action `alow` is not allow or deny; did you mean `allow`?"
        );
        let e = parse_csv(
            Path::new("r.csv"),
            "name,action,source,destination,transport,ports\nx,allow,10.0.0.999,any,tcp,25\n",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("r.csv:2: `10.0.0.999`"), "{e}");
    }

    #[test]
    fn iptables_save_filter_table() {
        let text = r#"# Generated by iptables-save
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 80
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:EXCHANGE - [0:0]
-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i eth0 -d 172.16.10.5/32 -p tcp -m tcp --dport 25 -m comment --comment "smtp to edge" -j ACCEPT
-A FORWARD -d 10.1.1.0/24 -j EXCHANGE
-A FORWARD -p udp -j LOG --log-prefix "udp "
-A EXCHANGE -s 10.1.3.20/32 -p tcp -m multiport --dports 5060,5065:5068 -j ACCEPT
-A EXCHANGE -p tcp --dport 3389 -j REJECT --reject-with tcp-reset
-A EXCHANGE -j RETURN
COMMIT
"#;
        let rs = parse_iptables(Path::new("fw"), text, "FORWARD").unwrap();
        let v = v();
        let d = rs.decide(&facts("198.51.100.25", "172.16.10.5", 6, 25, &v));
        assert_eq!(
            (d.allowed, rs.rule_name(&d)),
            (true, "smtp to edge".to_string())
        );
        let d = rs.decide(&facts("10.1.3.20", "10.1.1.10", 6, 5066, &v));
        assert_eq!(
            (d.allowed, rs.rule_name(&d)),
            (true, "EXCHANGE#1".to_string())
        );
        let d = rs.decide(&facts("10.1.4.5", "10.1.1.10", 6, 3389, &v));
        assert_eq!(
            (d.allowed, rs.rule_name(&d)),
            (false, "EXCHANGE#2".to_string())
        );
        let d = rs.decide(&facts("10.1.4.5", "10.1.1.10", 17, 53, &v));
        assert_eq!(
            (d.allowed, rs.rule_name(&d)),
            (false, "FORWARD default policy".to_string())
        );
        let e = parse_iptables(
            Path::new("fw"),
            "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -x 1 -j ACCEPT\nCOMMIT\n",
            "FORWARD",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "fw:3: option `-x` is not supported");
        // Issue 12: misspelt targets and chains are refused with the nearest name.
        let typo = |from: &str, to: &str| {
            parse_iptables(Path::new("fw"), &text.replacen(from, to, 1), "FORWARD")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            typo("--comment \"smtp to edge\" -j ACCEPT", "-j ACCPET"),
            "fw:12: `-j ACCPET`: `ACCPET` is not a chain of the filter table or a target; did you mean `ACCEPT`?"
        );
        assert_eq!(
            typo("-j EXCHANGE", "-g NOSUCHCHAIN"),
            "fw:13: `-g NOSUCHCHAIN`: `NOSUCHCHAIN` is not a chain of the filter table; valid: `INPUT`, `FORWARD`, `OUTPUT`, `EXCHANGE`"
        );
        assert!(typo("-j EXCHANGE", "-j EXCHNAGE").ends_with("did you mean `EXCHANGE`?"));
        assert_eq!(
            parse_iptables(Path::new("fw"), text, "FORWRD")
                .unwrap_err()
                .to_string(),
            "fw:1: no chain `FORWRD` in the filter table; did you mean `FORWARD`?"
        );
        // `-g`: the chain's end goes back where the calling chain would have returned to,
        // here the end of FORWARD: its default policy, not the LOG rule after the goto.
        let goto = parse_iptables(
            Path::new("fw"),
            &text.replace("-d 10.1.1.0/24 -j EXCHANGE", "-d 10.1.1.0/24 -g EXCHANGE"),
            "FORWARD",
        )
        .unwrap();
        let d = goto.decide(&facts("10.1.3.20", "10.1.1.10", 6, 5066, &v));
        assert_eq!((d.allowed, goto.rule_name(&d)), (true, "EXCHANGE#1".into()));
        let d = goto.decide(&facts("10.1.4.5", "10.1.1.10", 6, 80, &v));
        // A chain entered only by a state-only rule cannot be judged; one reached by new
        // flows whose rule matched nothing is a removal candidate.
        let est = "*filter\n:FORWARD DROP [0:0]\n:EST - [0:0]\n-A FORWARD -m state --state ESTABLISHED -j EST\n-A FORWARD -p tcp --dport 8443 -j ACCEPT\n-A EST -j ACCEPT\nCOMMIT\n";
        let rs = parse_iptables(Path::new("fw"), est, "FORWARD").unwrap();
        assert_eq!(
            rs.unused(&[0, 0, 0]),
            [
                (0, Unused::NotJudged("state ESTABLISHED".into())),
                (1, Unused::MatchedNothing),
                (
                    2,
                    Unused::NotJudged(
                        "chain EST is not traversed by new flows from FORWARD".into()
                    )
                ),
            ]
        );
        // The goto and EXCHANGE's RETURN matched on the way.
        assert_eq!((d.allowed, d.rule, d.passed), (false, None, vec![2, 6]));
        assert!(parse_iptables(Path::new("fw"), text, "NOPE").is_err());
        // A chain that jumps to itself ends.
        let looped = "*filter\n:FORWARD DROP [0:0]\n:L - [0:0]\n-A FORWARD -j L\n-A L -j L\n-A L -j L\nCOMMIT\n";
        let rs = parse_iptables(Path::new("fw"), looped, "FORWARD").unwrap();
        assert!(!rs.decide(&facts("10.0.0.1", "10.0.0.2", 6, 25, &v)).allowed);
    }

    /// Rule and policy files with bytes flipped: an error or a rule set, never a panic.
    #[test]
    fn damaged_files_do_not_panic() {
        let seeds = [
            include_str!("../../tests/policy/forgets-um-media.csv"),
            include_str!("../../tests/policy/forgets-um-media.iptables"),
            include_str!("../../examples/policy.toml"),
        ];
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) as usize
        };
        for text in seeds {
            for _ in 0..300 {
                let mut b = text.as_bytes().to_vec();
                for _ in 0..1 + next() % 4 {
                    let at = next() % b.len();
                    let alphabet = b" -:,/\"!#*0123456789az\n";
                    b[at] = alphabet[next() % alphabet.len()];
                }
                let t = String::from_utf8_lossy(&b);
                let _ = parse_csv(Path::new("f"), &t);
                let _ = parse_iptables(Path::new("f"), &t, "FORWARD");
                let _ = crate::policy::file::Policy::parse(Path::new("f"), &t);
            }
        }
    }
}
