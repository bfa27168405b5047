//! Policy files (TOML): named address groups and allow rules. Errors name file, line and
//! problem, as the signature loader's do; a misspelt group, transport, protocol or service
//! also names what it most likely meant.

use super::groups::{Cidr, Groups, ANY, UNLISTED_INTERNAL};
use super::suggest::hint;
use super::Kind;
use crate::signatures::{line_of, parse_range, Signatures};
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

/// A policy or rule file that could not be used, with where and why: the same error as the
/// signature files'.
pub use crate::signatures::SignatureError as PolicyError;

impl PolicyError {
    pub fn at(file: &Path, line: usize, problem: impl Into<String>) -> Self {
        PolicyError::Invalid {
            file: file.to_path_buf(),
            line,
            problem: problem.into(),
        }
    }
}

/// The protocol and service names a rule may require: what records can carry in
/// `network.protocol` and `exwatch.service`.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    pub protocols: Vec<String>,
    pub services: Vec<String>,
}

impl Vocabulary {
    /// The detectors' protocols and the signatures' services (a flow without a service of
    /// its own carries its protocol there, and HTTP names Exchange virtual directories).
    pub fn of(sigs: &Signatures) -> Self {
        let mut protocols: Vec<String> = crate::classify::PROTOCOLS
            .iter()
            .map(|p| p.to_string())
            .chain(sigs.services.iter().map(|s| s.protocol.clone()))
            .collect();
        protocols.sort();
        protocols.dedup();
        let mut services: Vec<String> = sigs
            .services
            .iter()
            .map(|s| s.name.clone())
            .chain(protocols.iter().cloned())
            .chain(
                crate::classify::detectors::http::PATHS
                    .iter()
                    .map(|(_, s)| s.to_string()),
            )
            .collect();
        services.sort();
        services.dedup();
        Vocabulary {
            protocols,
            services,
        }
    }

    /// The names of the embedded signatures (built once).
    pub fn embedded() -> &'static Self {
        static NAMES: std::sync::OnceLock<Vocabulary> = std::sync::OnceLock::new();
        NAMES.get_or_init(|| Self::of(&Signatures::embedded()))
    }
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Which IP protocols a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    Tcp,
    Udp,
    /// TCP and UDP.
    Both,
    /// One other IP protocol by number (icmp = 1, ipv6-icmp = 58, gre = 47...).
    Proto(u8),
    /// Every IP protocol.
    Any,
}

impl Transport {
    /// Parse `tcp`, `udp`, `both`, `any`, `icmp`, `ipv6-icmp`, `gre`, `esp`, or a number.
    pub fn parse(s: &str) -> Result<Transport, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            "both" | "tcp+udp" => Transport::Both,
            "any" | "all" | "ip" => Transport::Any,
            "icmp" => Transport::Proto(1),
            "ipv6-icmp" | "icmpv6" => Transport::Proto(58),
            "gre" => Transport::Proto(47),
            "esp" => Transport::Proto(50),
            "ah" => Transport::Proto(51),
            "igmp" => Transport::Proto(2),
            "ospf" => Transport::Proto(89),
            "sctp" => Transport::Proto(132),
            other => Transport::Proto(other.parse::<u8>().map_err(|_| {
                let names = ["tcp", "udp", "both", "any", "icmp", "ipv6-icmp", "gre", "esp", "ah", "igmp", "ospf", "sctp"];
                format!(
                    "transport `{s}` is not tcp, udp, both, any, icmp, ipv6-icmp, gre, esp, ah or a protocol number{}",
                    super::suggest::did_you_mean(s, &names)
                )
            })?),
        })
    }

    pub fn covers(&self, proto: u8) -> bool {
        use crate::decode::{IPPROTO_TCP, IPPROTO_UDP};
        match *self {
            Transport::Tcp => proto == IPPROTO_TCP,
            Transport::Udp => proto == IPPROTO_UDP,
            Transport::Both => proto == IPPROTO_TCP || proto == IPPROTO_UDP,
            Transport::Proto(p) => proto == p,
            Transport::Any => true,
        }
    }

    /// Whether ports mean anything for it.
    pub fn has_ports(&self) -> bool {
        matches!(self, Transport::Tcp | Transport::Udp | Transport::Both)
    }

    pub fn label(&self) -> String {
        match *self {
            Transport::Tcp => "tcp".into(),
            Transport::Udp => "udp".into(),
            Transport::Both => "both".into(),
            Transport::Any => "any".into(),
            Transport::Proto(p) => super::transport_label(p),
        }
    }
}

/// Inclusive port ranges; empty means every port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ports(pub Vec<(u16, u16)>);

impl Ports {
    pub fn covers(&self, port: u16) -> bool {
        self.0.is_empty() || self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&port))
    }

    /// Parse one item: `443`, `5065-5068`, or `any`.
    pub fn parse_item(s: &str) -> Result<Option<(u16, u16)>, String> {
        if s.trim().eq_ignore_ascii_case("any") {
            return Ok(None);
        }
        parse_range(s).map(Some)
    }

    /// `25`, `5065-5068` as written in policy files.
    pub fn items(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect()
    }
}

/// One allow rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// Group names, or `any`.
    pub from: String,
    pub to: String,
    pub transport: Transport,
    pub ports: Ports,
    /// When not empty, a flow whose payload names a protocol must name one of these.
    pub protocols: Vec<String>,
    /// When not empty, a flow whose payload names a service must name one of these.
    pub services: Vec<String>,
    /// Where the rule comes from (a reference section, "learned"...), for messages.
    pub section: String,
    /// Line in the policy file.
    pub line: usize,
}

impl Rule {
    /// Groups, transport and port match (the payload is judged separately). An address may
    /// hold several groups: the rule matches when it names any of them.
    pub fn matches(&self, src_groups: &[&str], dst_groups: &[&str], proto: u8, dport: u16) -> bool {
        (self.from == ANY || src_groups.contains(&self.from.as_str()))
            && (self.to == ANY || dst_groups.contains(&self.to.as_str()))
            && self.transport.covers(proto)
            && (!self.transport.has_ports() || self.ports.covers(dport))
    }
}

/// A loaded policy: groups plus allow rules (anything not allowed is unexpected).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub groups: Groups,
    /// Line of each group's definition, in definition order.
    pub group_lines: Vec<usize>,
    /// File of each group's definition (policies given several times are merged).
    pub group_files: Vec<String>,
    pub rules: Vec<Rule>,
    /// Where the policy was read from, for messages.
    pub origin: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    #[serde(default)]
    cidrs: Vec<Spanned<String>>,
    #[serde(default)]
    #[allow(dead_code)]
    note: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    from: Spanned<String>,
    to: Spanned<String>,
    #[serde(default = "any_transport")]
    transport: Spanned<String>,
    #[serde(default)]
    ports: Vec<Spanned<String>>,
    #[serde(default)]
    protocols: Vec<Spanned<String>>,
    #[serde(default)]
    services: Vec<Spanned<String>>,
    #[serde(default)]
    section: String,
    #[serde(default)]
    #[allow(dead_code)]
    note: String,
}

fn any_transport() -> Spanned<String> {
    Spanned::new(0..0, "any".to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    group: Vec<RawGroup>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Policy {
    /// Read and check a policy file against the embedded signatures' names.
    pub fn load(file: &Path) -> Result<Policy, PolicyError> {
        Self::load_with(file, Vocabulary::embedded())
    }

    /// Read and check a policy file; rules may require the protocols and services of `names`.
    pub fn load_with(file: &Path, names: &Vocabulary) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(file).map_err(|source| PolicyError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse_with(file, &text, names)
    }

    /// Parse and check policy text against the embedded signatures' names; `file` names it
    /// in errors.
    pub fn parse(file: &Path, text: &str) -> Result<Policy, PolicyError> {
        Self::parse_with(file, text, Vocabulary::embedded())
    }

    /// Parse and check policy text. A misspelt group, transport, protocol or service is
    /// refused with its line and the name it most likely meant.
    pub fn parse_with(file: &Path, text: &str, names: &Vocabulary) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            PolicyError::at(file, line, e.message().trim())
        })?;
        let at = |span: std::ops::Range<usize>, p: String| {
            PolicyError::at(file, line_of(text, span.start), p)
        };
        let mut groups = Groups::default();
        let mut group_lines = Vec::with_capacity(raw.group.len());
        for g in raw.group {
            group_lines.push(line_of(text, g.name.span().start));
            let name = g.name.get_ref();
            if !valid_name(name) || name == ANY || name == UNLISTED_INTERNAL {
                return Err(at(
                    g.name.span(),
                    format!(
                        "group name `{name}` must be letters, digits, - _ . and not `{ANY}` \
                         or `{UNLISTED_INTERNAL}` (reserved)"
                    ),
                ));
            }
            let mut cidrs = Vec::with_capacity(g.cidrs.len());
            for c in &g.cidrs {
                cidrs.push(Cidr::parse(c.get_ref()).map_err(|p| at(c.span(), p))?);
            }
            if !groups.add(name, cidrs) {
                return Err(at(
                    g.name.span(),
                    format!("group `{name}` is defined twice"),
                ));
            }
        }
        let mut rules = Vec::with_capacity(raw.rule.len());
        for sr in raw.rule {
            let line = line_of(text, sr.span().start);
            let r = sr.into_inner();
            for g in [&r.from, &r.to] {
                let reserved = [ANY, UNLISTED_INTERNAL].contains(&g.get_ref().as_str());
                if !reserved && groups.index(g.get_ref()).is_none() {
                    let mut known: Vec<&str> = groups.iter().map(|(n, _)| n).collect();
                    known.extend([ANY, UNLISTED_INTERNAL]);
                    return Err(at(
                        g.span(),
                        format!(
                            "rule `{}`: group `{}` is not defined{}",
                            r.name.get_ref(),
                            g.get_ref(),
                            hint(g.get_ref(), &known)
                        ),
                    ));
                }
            }
            for (items, valid, what) in [
                (&r.protocols, &names.protocols, "protocol"),
                (&r.services, &names.services, "service"),
            ] {
                if let Some(bad) = items.iter().find(|i| !valid.contains(i.get_ref())) {
                    return Err(at(
                        bad.span(),
                        format!(
                            "rule `{}`: `{}` is not a {what} exwatch names{}",
                            r.name.get_ref(),
                            bad.get_ref(),
                            hint(bad.get_ref(), &as_strs(valid))
                        ),
                    ));
                }
            }
            let transport = Transport::parse(r.transport.get_ref()).map_err(|p| {
                let span = r.transport.span();
                if span.is_empty() {
                    PolicyError::at(file, line, p)
                } else {
                    at(span, p)
                }
            })?;
            let mut ports = Vec::with_capacity(r.ports.len());
            for p in &r.ports {
                match Ports::parse_item(p.get_ref()).map_err(|e| at(p.span(), e))? {
                    Some(range) => ports.push(range),
                    None => {
                        ports.clear();
                        break;
                    }
                }
            }
            if !ports.is_empty() && !transport.has_ports() {
                return Err(at(
                    r.name.span(),
                    format!(
                        "rule `{}`: ports need transport tcp, udp or both, not {}",
                        r.name.get_ref(),
                        transport.label()
                    ),
                ));
            }
            rules.push(Rule {
                name: r.name.into_inner(),
                from: r.from.into_inner(),
                to: r.to.into_inner(),
                transport,
                ports: Ports(ports),
                protocols: r.protocols.into_iter().map(Spanned::into_inner).collect(),
                services: r.services.into_iter().map(Spanned::into_inner).collect(),
                section: r.section,
                line,
            });
        }
        Ok(Policy {
            groups,
            group_files: vec![file.display().to_string(); group_lines.len()],
            group_lines,
            rules,
            origin: file.display().to_string(),
        })
    }
}

impl Policy {
    /// Read several policy files as one (`--policy` given several times): each group once,
    /// each rule once. A group defined in two files must have the same networks in both (an
    /// error names both files and lines), or none in one of them (a placeholder, as templates
    /// write roles without networks); a rule that repeats another's groups, transport,
    /// ports, protocols and services is merged into it, keeping every citation.
    pub fn load_all(
        files: &[std::path::PathBuf],
        names: &Vocabulary,
    ) -> Result<Policy, PolicyError> {
        let mut it = files.iter();
        let first = it
            .next()
            .map_or_else(|| Ok(Policy::default()), |f| Self::load_with(f, names))?;
        it.try_fold(first, |acc, f| acc.merge(Self::load_with(f, names)?))
    }

    /// This policy with `other`'s groups and rules (see [`Policy::load_all`]).
    pub fn merge(mut self, other: Policy) -> Result<Policy, PolicyError> {
        for (i, (name, cidrs)) in other.groups.iter().enumerate() {
            let (file, line) = (&other.group_files[i], other.group_lines[i]);
            match self.groups.index(name) {
                Some(j) => {
                    let mut a: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
                    let mut b: Vec<String> = self
                        .groups
                        .cidrs_of(name)
                        .unwrap_or_default()
                        .iter()
                        .map(|c| c.to_string())
                        .collect();
                    a.sort();
                    b.sort();
                    if b.is_empty() {
                        // An empty group is a placeholder (a template's role without
                        // networks): the other file's networks fill it.
                        self.groups.add_networks(name, cidrs.to_vec());
                        self.group_files[j] = file.clone();
                        self.group_lines[j] = line;
                    } else if !a.is_empty() && a != b {
                        return Err(PolicyError::at(
                            Path::new(file),
                            line,
                            format!(
                                "group `{name}` is [{}] here but [{}] in {}:{}: a group given \
                                 in several policies must have the same networks",
                                a.join(", "),
                                b.join(", "),
                                self.group_files[j],
                                self.group_lines[j]
                            ),
                        ));
                    }
                }
                None => {
                    self.groups.add(name, cidrs.to_vec());
                    self.group_files.push(file.clone());
                    self.group_lines.push(line);
                }
            }
        }
        for r in other.rules {
            let same = self.rules.iter_mut().find(|q| {
                q.from == r.from
                    && q.to == r.to
                    && q.transport == r.transport
                    && q.ports.0 == r.ports.0
                    && q.protocols == r.protocols
                    && q.services == r.services
            });
            match same {
                Some(q) => {
                    for sec in r.section.split(',').filter(|x| !x.is_empty()) {
                        if !q.section.split(',').any(|x| x == sec) {
                            if !q.section.is_empty() {
                                q.section.push(',');
                            }
                            q.section.push_str(sec);
                        }
                    }
                }
                None => self.rules.push(r),
            }
        }
        self.origin = format!("{} + {}", self.origin, other.origin);
        Ok(self)
    }

    /// What `policy check` says of groups that share addresses: an address in several groups
    /// is judged with all of them (one line per pair, naming both definitions).
    pub fn overlap_notes(&self) -> Vec<String> {
        let at = |g: &str| {
            self.groups.index(g).map_or((self.origin.as_str(), 0), |i| {
                (self.group_files[i].as_str(), self.group_lines[i])
            })
        };
        self.groups
            .overlaps()
            .into_iter()
            .map(|(a, na, b, nb)| {
                let ((o, la), (ob, lb)) = (at(a), at(b));
                let where_b = if ob == o {
                    format!("line {lb}")
                } else {
                    format!("{ob}:{lb}")
                };
                let what = if na == nb {
                    format!("groups `{a}` and `{b}` ({where_b}) both hold {na}")
                } else {
                    format!("group `{a}` holds {na}, inside {nb} of group `{b}` ({where_b})")
                };
                format!(
                    "{o}:{la}: note: {what}: those addresses are judged as `{a}` and `{b}`, \
                     and a rule naming either matches"
                )
            })
            .collect()
    }
}

/// Kinds that `--fail-on` can name.
pub fn parse_fail_on(s: &str) -> Result<Vec<Kind>, String> {
    s.split(',')
        .map(|k| match k.trim() {
            "unexpected" => Ok(Kind::Unexpected),
            "mismatch" => Ok(Kind::Mismatch),
            other => Err(format!(
                "--fail-on takes unexpected, mismatch or both separated by a comma, not `{other}`"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[group]]
name = "internet"
cidrs = ["0.0.0.0/0", "::/0"]

[[group]]
name = "mailbox"
cidrs = ["10.1.1.10", "fd00:1:1::10/128"]

[[rule]]
name = "smtp-in"
from = "internet"
to = "mailbox"
transport = "tcp"
ports = ["25", "587"]
protocols = ["smtp"]
"#;

    #[test]
    fn loads_groups_and_rules() {
        let p = Policy::parse(Path::new("p.toml"), GOOD).unwrap();
        assert_eq!(p.rules.len(), 1);
        assert_eq!(p.rules[0].line, 10);
        assert!(p.rules[0].matches(&["internet"], &["mailbox"], 6, 587));
        assert!(!p.rules[0].matches(&["internet"], &["mailbox"], 17, 25));
        assert!(!p.rules[0].matches(&["mailbox"], &["internet"], 6, 25));
        assert!(p.rules[0].matches(&["internet"], &["dc", "mailbox"], 6, 25));
    }

    fn err(text: &str) -> String {
        Policy::parse(Path::new("p.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        assert_eq!(
            err(&GOOD.replace("\"10.1.1.10\"", "\"10.1.1.300\"")),
            "p.toml:8: `10.1.1.300` is not an IPv4 or IPv6 address or CIDR"
        );
        assert_eq!(
            err(&GOOD.replace("to = \"mailbox\"", "to = \"mbx\"")),
            "p.toml:13: rule `smtp-in`: group `mbx` is not defined; did you mean `mailbox`?"
        );
        assert_eq!(
            err(&GOOD.replace("\"587\"", "\"587-25\"")),
            "p.toml:15: range `587-25` runs backwards"
        );
        assert_eq!(
            err(&GOOD.replace("\"tcp\"", "\"tcpp\"")),
            "p.toml:14: transport `tcpp` is not tcp, udp, both, any, icmp, ipv6-icmp, gre, esp, ah or a protocol number; did you mean `tcp`?"
        );
        assert!(
            err(&GOOD.replace("name = \"mailbox\"", "name = \"internet\""))
                .starts_with("p.toml:7: group `internet` is defined twice")
        );
        assert!(
            err(&GOOD.replace("protocols", "protocol")).starts_with("p.toml:16: "),
            "{}",
            err(&GOOD.replace("protocols", "protocol"))
        );
        assert!(err("[[rule]\n").starts_with("p.toml:1: "));
        // Issue 12: misspelt protocols and services are refused with the nearest name.
        assert_eq!(
            err(&GOOD.replace("[\"smtp\"]", "[\"smpt\"]")),
            "p.toml:16: rule `smtp-in`: `smpt` is not a protocol exwatch names; did you mean `smtp`?"
        );
        assert_eq!(
            err(&GOOD.replace("protocols = [\"smtp\"]", "services = [\"smtp\", \"edgsync\"]")),
            "p.toml:16: rule `smtp-in`: `edgsync` is not a service exwatch names; did you mean `edgesync`?"
        );
        assert!(
            err(&GOOD.replace("[\"smtp\"]", "[\"zzzzzz\"]")).contains("; valid: `dcerpc`, "),
            "{}",
            err(&GOOD.replace("[\"smtp\"]", "[\"zzzzzz\"]"))
        );
        // Every protocol a detector reports and every service of the signatures is accepted.
        let v = Vocabulary::embedded();
        for d in crate::classify::detectors::REGISTRY {
            assert!(
                v.protocols.iter().any(|p| p == d.protocol()),
                "{}",
                d.protocol()
            );
        }
        assert!(v.protocols.iter().any(|p| p == "rtp") && v.services.iter().any(|s| s == "owa"));
        for (p, svc) in v.protocols.iter().zip(v.services.iter()) {
            let text = GOOD.replace(
                "protocols = [\"smtp\"]",
                &format!("protocols = [\"{p}\"]\nservices = [\"{svc}\"]"),
            );
            assert!(
                Policy::parse(Path::new("p.toml"), &text).is_ok(),
                "{p} {svc}"
            );
        }
        assert!(
            err(&GOOD.replace("name = \"mailbox\"", "name = \"unlisted-internal\""))
                .starts_with("p.toml:7: group name `unlisted-internal` must be"),
        );
        // Rules may name the unlisted internal addresses without defining them.
        let p = Policy::parse(
            Path::new("p.toml"),
            &GOOD.replace("from = \"internet\"", "from = \"unlisted-internal\""),
        )
        .unwrap();
        assert!(p.rules[0].matches(&["unlisted-internal"], &["mailbox"], 6, 25));
    }

    /// Every transport name a record or a learned policy can carry parses back.
    #[test]
    fn transport_labels_parse_back() {
        for p in 0..=255u8 {
            let t = match p {
                6 => Transport::Tcp,
                17 => Transport::Udp,
                p => Transport::Proto(p),
            };
            assert_eq!(Transport::parse(&t.label()), Ok(t), "{p}");
        }
    }

    #[test]
    fn embedded_example_policy_loads() {
        let p = Policy::parse(
            Path::new("examples/policy.toml"),
            include_str!("../../examples/policy.toml"),
        )
        .unwrap();
        assert!(p.rules.len() > 10);
    }

    /// Merged files: a rule repeated in the second keeps both citations, a placeholder group
    /// takes the other file's networks, and a conflicting group names both definitions.
    #[test]
    fn merged_policies_give_each_group_and_rule_once() {
        let a = Policy::parse(
            Path::new("a.toml"),
            "[[group]]\nname = \"mbx\"\ncidrs = [\"10.1.1.0/24\"]\n[[group]]\nname = \"dc\"\ncidrs = []\n\
             [[rule]]\nname = \"ldap\"\nfrom = \"mbx\"\nto = \"dc\"\ntransport = \"tcp\"\nports = [\"389\"]\nsection = \"5\"\n",
        )
        .unwrap();
        let b_text = "[[group]]\nname = \"dc\"\ncidrs = [\"10.1.2.10\"]\n[[group]]\nname = \"mbx\"\ncidrs = [\"10.1.1.0/24\"]\n\
             [[rule]]\nname = \"dir\"\nfrom = \"mbx\"\nto = \"dc\"\ntransport = \"tcp\"\nports = [\"389\"]\nsection = \"1\"\n";
        let b = Policy::parse(Path::new("b.toml"), b_text).unwrap();
        let m = a.clone().merge(b).unwrap();
        assert_eq!(m.groups.iter().count(), 2);
        assert_eq!(m.rules.len(), 1);
        assert_eq!(m.rules[0].section, "5,1");
        assert_eq!(m.groups.lookup("10.1.2.10".parse().unwrap()), vec!["dc"]);
        assert_eq!(m.origin, "a.toml + b.toml");
        let c = Policy::parse(
            Path::new("c.toml"),
            &b_text.replace("10.1.1.0/24", "10.1.9.0/24"),
        )
        .unwrap();
        let e = a.merge(c).unwrap_err().to_string();
        assert!(e.starts_with("c.toml:5:"), "{e}");
        assert!(e.contains("in a.toml:2:"), "{e}");
    }
}
