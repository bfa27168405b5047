//! What the port reference says of one observed flow, for `learn`: a port the reference gives
//! as a range widens to that range, and a flow it would not allow is marked for review.

use super::groups::{Groups, ANY};
use super::template::ROLES;
use super::FlowFacts;
use crate::classify::compatible;
use crate::signatures::{PortEntry, Signatures};
use std::net::IpAddr;

/// The reference's word on a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// A single-port entry allows it: keep the port.
    Port,
    /// Only a range entry allows it (dynamic RPC, UM media...): the narrowest such range,
    /// with its section and service.
    Range {
        lo: u16,
        hi: u16,
        section: String,
        service: String,
    },
    /// No entry allows it; why.
    Off(String),
}

/// Whether a group of the learned policy can stand for a role of the reference: a group
/// named after another role cannot; a catch-all group is the Internet; a group named
/// otherwise (or no group) is not known, so it is not held against the flow.
fn fits(role: &str, groups: &[&str], catch_all: &dyn Fn(&str) -> bool) -> bool {
    if role == ANY || groups.is_empty() {
        return true;
    }
    groups.iter().any(|g| {
        *g == role
            || (role == "internet" && catch_all(g))
            || (!ROLES.iter().any(|(r, _)| r == g) && !catch_all(g))
    })
}

/// The reference's word on `f`, whose ends belong to `src_groups` and `dst_groups` (empty
/// when learning per address).
pub fn fit(sigs: &Signatures, groups: Option<&Groups>, f: &FlowFacts<'_>) -> Fit {
    let transport = super::transport_label(f.proto);
    if !f.has_ports() {
        return Fit::Off(format!(
            "{transport}: the reference lists TCP and UDP ports only"
        ));
    }
    let lookup = |ip: IpAddr| groups.map(|g| g.lookup(ip)).unwrap_or_default();
    let (src, dst) = (lookup(f.src), lookup(f.dst));
    let catch_all = |g: &str| {
        groups
            .and_then(|gs| gs.cidrs_of(g))
            .is_some_and(|c| c.iter().any(|c| c.prefix() == 0))
    };
    let port = f.dport;
    let candidates: Vec<&PortEntry> = sigs
        .ports
        .iter()
        .filter(|e| e.section != "general" && e.transport.covers(f.proto))
        .filter(|e| (e.lo..=e.hi).contains(&port))
        .collect();
    if candidates.is_empty() {
        return Fit::Off(format!("{port}/{transport} is not a port of the reference"));
    }
    // A flow the payload did not name carries the port's guess: still a protocol to match
    // (an unnamed flow on 3268 is not dynamic RPC).
    let protocol_ok = |e: &&PortEntry| {
        f.verdict.protocol == "unknown"
            || compatible(&sigs.services[e.service].protocol, &f.verdict.protocol)
    };
    let role_ok = |e: &&PortEntry| fits(&e.from, &src, &catch_all) && fits(&e.to, &dst, &catch_all);
    let ok: Vec<&PortEntry> = candidates
        .iter()
        .filter(|e| protocol_ok(e) && role_ok(e))
        .copied()
        .collect();
    if ok.iter().any(|e| e.lo == e.hi) {
        return Fit::Port;
    }
    if let Some(e) = ok.iter().min_by_key(|e| (e.width(), e.lo)) {
        return Fit::Range {
            lo: e.lo,
            hi: e.hi,
            section: e.section.clone(),
            service: sigs.services[e.service].name.clone(),
        };
    }
    let names = |v: &[&PortEntry]| {
        let mut n: Vec<&str> = v
            .iter()
            .map(|e| sigs.services[e.service].name.as_str())
            .collect();
        n.sort_unstable();
        n.dedup();
        n.join(", ")
    };
    let by_protocol: Vec<&PortEntry> = candidates
        .iter()
        .filter(|e| protocol_ok(e))
        .copied()
        .collect();
    if by_protocol.is_empty() {
        return Fit::Off(format!(
            "{} on {port}/{transport}, which the reference gives to {}",
            f.verdict.protocol,
            names(&candidates)
        ));
    }
    let e = by_protocol[0];
    let who = |g: &[&str]| {
        if g.is_empty() {
            ANY.to_string()
        } else {
            g.join("+")
        }
    };
    Fit::Off(format!(
        "{} -> {} on {port}/{transport}: the reference has {} only from {} to {}",
        who(&src),
        who(&dst),
        names(&by_protocol),
        e.from,
        e.to
    ))
}
