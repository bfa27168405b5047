//! Firewall rule sets as CSV, as vendors' exports and spreadsheets write them: columns found
//! by header name in any order, `,` or `;` between cells, quoted lists in a cell, service
//! names, port and address ranges, address objects from `--groups`, a disabled rule skipped.

use super::file::{PolicyError, Ports, Transport};
use super::firewall::{Action, Chain, FwRule, RuleSet};
use super::groups::{Cidr, Groups};
use super::names;
use super::suggest::{did_you_mean, hint};
use std::net::IpAddr;
use std::path::Path;

/// The columns a rule set may have, each with the header names that mean it.
const COLUMNS: &[(&str, &[&str])] = &[
    (
        "name",
        &["name", "rule-name", "rulename", "rule", "id", "rule-id"],
    ),
    ("action", &["action", "decision", "verdict", "target"]),
    (
        "source",
        &[
            "source",
            "src",
            "source-address",
            "source-addresses",
            "from",
            "source-ip",
            "sources",
        ],
    ),
    (
        "destination",
        &[
            "destination",
            "dst",
            "destination-address",
            "destination-addresses",
            "to",
            "destination-ip",
            "destinations",
        ],
    ),
    (
        "transport",
        &["transport", "protocol", "proto", "ip-protocol"],
    ),
    (
        "ports",
        &[
            "ports",
            "port",
            "dport",
            "dports",
            "destination-port",
            "destination-ports",
            "dst-port",
            "service",
            "services",
        ],
    ),
    ("enabled", &["enabled", "enable", "status", "state"]),
    ("disabled", &["disabled"]),
];

/// Header text as a column key: lower case, spaces and `_` as `-`.
fn key(h: &str) -> String {
    h.trim()
        .to_ascii_lowercase()
        .replace([' ', '_'], "-")
        .trim_end_matches("(s)")
        .to_string()
}

/// `,` unless the header line has more `;` outside quotes.
fn delimiter(header: &str) -> u8 {
    let (mut quoted, mut commas, mut semis) = (false, 0, 0);
    for c in header.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => commas += 1,
            ';' if !quoted => semis += 1,
            _ => {}
        }
    }
    if semis > commas {
        b';'
    } else {
        b','
    }
}

/// Items of a cell: `"389,3268,88"`, `10.1.10.0/24 10.1.4.5`, `80;443`.
fn items(cell: &str) -> impl Iterator<Item = &str> {
    cell.split([',', ';', ' ', '\n', '\r', '\t'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
}

fn is_any(s: &str) -> bool {
    ["any", "*", "all", "0.0.0.0/0 ::/0"].contains(&s.to_ascii_lowercase().as_str())
}

/// Networks of an address cell: CIDRs, addresses, ranges `a-b`, names of `--groups` groups.
fn addresses(cell: &str, groups: Option<&Groups>) -> Result<Vec<Cidr>, String> {
    let mut out = Vec::new();
    for item in items(cell) {
        if is_any(item) {
            return Ok(Vec::new());
        }
        if let Some((a, b)) = item.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
                out.extend(Cidr::range(a, b)?);
                continue;
            }
        }
        if let Ok(c) = Cidr::parse(item) {
            out.push(c);
            continue;
        }
        let group = groups.and_then(|g| {
            g.cidrs_of(item).or_else(|| {
                g.iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(item))
                    .map(|(_, c)| c)
            })
        });
        match (group, groups) {
            (Some(c), _) if !c.is_empty() => out.extend_from_slice(c),
            (Some(_), _) => return Err(format!("address object `{item}` has no networks")),
            (None, Some(g)) => {
                let names: Vec<&str> = g.iter().map(|(n, _)| n).collect();
                return Err(format!(
                    "`{item}` is not an address, a CIDR, a range or a group of --groups{}",
                    hint(item, &names)
                ));
            }
            (None, None) => {
                return Err(format!(
                    "`{item}` is not an address, a CIDR or a range (address objects need \
                     --groups FILE with a group of that name)"
                ))
            }
        }
    }
    Ok(out)
}

/// Ports of a cell, each with its transport: numbers and ranges (`5065-5068`, `5065:5068`,
/// `tcp/443`, `443/tcp`) take `transport`, names (`https`, `ldap`) their own.
fn ports(cell: &str, transport: Transport) -> Result<Vec<(Transport, u16, u16)>, String> {
    let mut out = Vec::new();
    for item in items(cell) {
        if is_any(item) {
            return Ok(Vec::new());
        }
        let (t, rest) = match item.split_once('/') {
            Some((a, b)) if Transport::parse(a).is_ok_and(|t| t.has_ports()) => {
                (Transport::parse(a)?, b)
            }
            Some((a, b)) if Transport::parse(b).is_ok_and(|t| t.has_ports()) => {
                (Transport::parse(b)?, a)
            }
            _ => (transport, item),
        };
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            let (lo, hi) = crate::signatures::parse_range(&rest.replace(':', "-"))?;
            out.push((t, lo, hi));
        } else if let Some(named) = names::ports_of(rest) {
            let wanted: Vec<_> = named
                .iter()
                .filter(|(nt, _)| !t.has_ports() || t.covers(nt_proto(*nt)))
                .collect();
            if wanted.is_empty() {
                return Err(format!("service `{rest}` has no {} port", t.label()));
            }
            out.extend(wanted.iter().map(|&&(nt, p)| (nt, p, p)));
        } else {
            return Err(format!(
                "`{rest}` is not a port, a range or a service name{}",
                did_you_mean(rest, &names::known())
            ));
        }
    }
    Ok(out)
}

fn nt_proto(t: Transport) -> u8 {
    match t {
        Transport::Udp => crate::decode::IPPROTO_UDP,
        _ => crate::decode::IPPROTO_TCP,
    }
}

/// Whether an `enabled` / `disabled` cell turns the rule off.
fn disabled(enabled: Option<&str>, disabled: Option<&str>) -> bool {
    let off = |s: &str| {
        ["no", "false", "0", "off", "disabled", "disable", "n"]
            .contains(&s.to_ascii_lowercase().as_str())
    };
    let on = |s: &str| {
        ["yes", "true", "1", "on", "enabled", "y"].contains(&s.to_ascii_lowercase().as_str())
    };
    enabled.is_some_and(off) || disabled.is_some_and(on)
}

/// A CSV rule set: first match wins, anything unmatched is denied; `#` starts a comment line.
pub fn parse(file: &Path, text: &str, groups: Option<&Groups>) -> Result<RuleSet, PolicyError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Comment and blank lines are blanked, not removed, so that record lines stay file lines.
    let body: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with('#') {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let Some(header_line) = body.lines().find(|l| !l.trim().is_empty()) else {
        return Err(PolicyError::at(
            file,
            1,
            "no header line: not a CSV rule set",
        ));
    };
    let mut rd = csv::ReaderBuilder::new()
        .delimiter(delimiter(header_line))
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(None)
        .from_reader(body.as_bytes());
    let head_err = |p: String| PolicyError::at(file, 1, p);
    let header = rd.headers().map_err(|e| head_err(e.to_string()))?.clone();
    let header_line_no = text
        .lines()
        .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap_or(0)
        + 1;
    let col = |name: &str| -> Option<usize> {
        let aliases = COLUMNS.iter().find(|(n, _)| *n == name)?.1;
        // The first alias the header has wins (`Rule Name` over `Rule ID`).
        aliases
            .iter()
            .find_map(|a| header.iter().position(|h| key(h) == *a))
    };
    let (c_name, c_action, c_src, c_dst) = (
        col("name"),
        col("action"),
        col("source"),
        col("destination"),
    );
    let (c_tr, c_ports, c_en, c_dis) = (
        col("transport"),
        col("ports"),
        col("enabled"),
        col("disabled"),
    );
    let missing: Vec<&str> = [
        ("action", c_action),
        ("source", c_src),
        ("destination", c_dst),
    ]
    .iter()
    .filter(|(_, c)| c.is_none())
    .map(|(n, _)| *n)
    .collect();
    if !missing.is_empty() {
        let found: Vec<&str> = header.iter().collect();
        return Err(PolicyError::at(
            file,
            header_line_no,
            format!(
                "the header has no {} column (found: {}); expected columns such as \
                 name,action,source,destination,transport,ports",
                missing.join(", "),
                found.join(", ")
            ),
        ));
    }
    let mut rules = Vec::new();
    let mut notes = Vec::new();
    for rec in rd.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            PolicyError::at(file, line, e.to_string())
        })?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let bad = |p: String| PolicyError::at(file, line, p);
        let cell = |c: Option<usize>| c.and_then(|i| rec.get(i)).unwrap_or("");
        let name = match cell(c_name) {
            "" => format!("line {line}"),
            n => n.to_string(),
        };
        if disabled(c_en.map(|_| cell(c_en)), c_dis.map(|_| cell(c_dis))) {
            notes.push(format!(
                "{}:{line}: rule `{name}` is disabled: skipped",
                file.display()
            ));
            continue;
        }
        let action = match cell(c_action).to_ascii_lowercase().as_str() {
            "allow" | "accept" | "permit" | "pass" => Action::Allow,
            "deny" | "drop" | "reject" | "block" => Action::Deny,
            other => {
                let actions = [
                    "allow", "accept", "permit", "pass", "deny", "drop", "reject", "block",
                ];
                let near = did_you_mean(other, &actions);
                return Err(bad(format!("action `{other}` is not allow or deny{near}")));
            }
        };
        let t_cell = cell(c_tr);
        let mut transport = if t_cell.is_empty() || t_cell == "*" {
            Transport::Any
        } else {
            let ts: Vec<&str> = items(t_cell).collect();
            match ts.as_slice() {
                [a, b]
                    if [a, b].iter().all(|x| {
                        x.eq_ignore_ascii_case("tcp") || x.eq_ignore_ascii_case("udp")
                    }) =>
                {
                    Transport::Both
                }
                _ => Transport::parse(&t_cell.replace('/', "+")).map_err(bad)?,
            }
        };
        let services = ports(cell(c_ports), transport).map_err(bad)?;
        // A rule of named services alone takes their transports.
        if transport == Transport::Any && !services.is_empty() {
            let tcp = services.iter().any(|s| s.0 == Transport::Tcp);
            let udp = services.iter().any(|s| s.0 == Transport::Udp);
            transport = match (tcp, udp) {
                (true, true) => Transport::Both,
                (true, false) => Transport::Tcp,
                (false, true) => Transport::Udp,
                _ => Transport::Any,
            };
        }
        let mut r = FwRule::new(line);
        r.name = name;
        r.action = action;
        r.src = addresses(cell(c_src), groups).map_err(bad)?;
        r.dst = addresses(cell(c_dst), groups).map_err(bad)?;
        r.transport = transport;
        if services
            .iter()
            .all(|s| s.0 == transport || s.0 == Transport::Any)
        {
            r.dports = Ports(services.iter().map(|s| (s.1, s.2)).collect());
        } else {
            r.services = services;
        }
        rules.push(r);
    }
    Ok(RuleSet {
        chains: vec![Chain {
            name: "rules".into(),
            rules: (0..rules.len()).collect(),
            policy: Some(Action::Deny),
        }],
        rules,
        start: 0,
        origin: file.display().to_string(),
        notes,
    })
}
