//! Report stage: the Exchange inventory of a run. Each worker keeps one for the flows it owns
//! (which servers serve which services, who talks to whom, traffic by service over time) and
//! the writer merges them at the end, as it merges summaries; the roles each server's traffic
//! shows are derived from the merged tables. Every table has a cap, and what a capped table
//! keeps does not depend on which worker saw which flow: the inventory is the same for any
//! `--threads` (see [`keep`]).
//!
//! Only addresses, ports, service names, counts and policy group names are kept: nothing a
//! flow carried (no names, paths or credentials).

use crate::capture::time::rfc3339;
use crate::classify::{Flow, Verdict};
use crate::decode::transport_name;
use crate::decode::{IPPROTO_TCP, IPPROTO_UDP};
use crate::flow::key::to_ip;
use crate::flow::{ORIG, RESP};
use crate::policy::groups::Groups;
use crate::policy::Annotations;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Addresses itemised (servers and talkers): about 200 bytes each.
pub const MAX_HOSTS: usize = 65_536;
/// Address pairs itemised for the who-talks-to-whom matrix and the role pairs.
pub const MAX_PAIRS: usize = 65_536;
/// Services (service, transport, port) itemised per server: RTP and dynamic RPC ports would
/// otherwise grow without bound.
pub const MAX_SERVED: usize = 64;
/// Policy group pairs itemised.
pub const MAX_GROUP_PAIRS: usize = 4096;
/// Time buckets of the traffic-by-service series at most.
pub const MAX_BUCKETS: u64 = 120;
/// Rows of the top-talkers table.
pub const TOP_TALKERS: usize = 20;

/// Bucket widths in seconds, each a multiple of the one before, so that a series can be made
/// coarser exactly; past the last one the width doubles.
const WIDTHS: &[u64] = &[
    1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21_600, 43_200, 86_400, 604_800,
];

/// The roles a server's traffic shows, by the services it answers (Exchange port reference:
/// section 1 client access, 3 Edge, 4 UM, 5 Active Directory, 6 transport, 7 MAPI over RPC).
pub const ROLE_SERVICES: &[(&str, &[&str])] = &[
    (
        "Mailbox",
        &[
            "smtp-mailbox-transport",
            "smtp-client-proxy",
            "emsmdb",
            "async-emsmdb",
            "nspi",
            "rfr",
        ],
    ),
    (
        "CAS",
        &[
            "autodiscover",
            "activesync",
            "ews",
            "oab",
            "owa",
            "ecp",
            "remote-powershell",
            "mapi-http",
            "rpc-http",
            "rpc-http-store",
            "rpc-http-referral",
            "rpc-http-6003",
            "rpc-http-nspi",
            "rpc-client-access",
            "address-book",
            "imap4",
            "imap4s",
            "pop3",
            "pop3s",
            "smtp-submission",
            "smtp-outbound-proxy",
        ],
    ),
    ("Edge", &["edgesync", "adlds-ldap"]),
    (
        "DC/GC",
        &["kerberos", "ldap", "ldaps", "ldap-gc", "ldap-gcs"],
    ),
    ("UM", &["um-sip", "um-sips", "um-control", "um-rtp"]),
];

/// Roles shown by the services an address *uses*: EdgeSync runs from the Mailbox servers of
/// the subscribed site to the Edge, never back (reference section 3).
pub const ROLE_CLIENT_SERVICES: &[(&str, &[&str])] = &[("Mailbox", &["edgesync"])];

/// Role label of an address none of whose traffic shows a role.
pub const NO_ROLE: &str = "other";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Count {
    flows: u64,
    bytes: u64,
}

impl Count {
    fn add(&mut self, flows: u64, bytes: u64) {
        self.flows += flows;
        self.bytes += bytes;
    }
    fn merge(&mut self, o: Count) {
        self.add(o.flows, o.bytes);
    }
}

/// What a server answered: (service, protocol, IP protocol, port).
type ServedKey = (String, String, u8, u16);

/// One address: what it sent and received, what it served and what it used.
#[derive(Debug, Default, Clone)]
struct Host {
    /// Flows it originated, and the bytes it sent and received in them.
    orig: Count,
    orig_received: u64,
    /// Flows it answered, and the bytes it sent in them (`resp.bytes`) and received.
    resp: Count,
    resp_received: u64,
    /// Flows it served (answered with data or a completed handshake), per service and port.
    served: BTreeMap<ServedKey, Count>,
    /// Flows of `served` not itemised there (over `MAX_SERVED`): worked out at the end.
    served_flows: Count,
    /// Services it used as a client (flows).
    used: BTreeMap<String, u64>,
    /// The policy group it was judged in (the least name, when flows say several).
    group: Option<String>,
    first_ts: u64,
    last_ts: u64,
}

impl Host {
    fn seen(&mut self, first: u64, last: u64) {
        if self.first_ts == 0 || first < self.first_ts {
            self.first_ts = first;
        }
        self.last_ts = self.last_ts.max(last);
    }

    fn set_group(&mut self, g: &str) {
        if g.is_empty() {
            return;
        }
        match &self.group {
            Some(mine) if mine.as_str() <= g => {}
            _ => self.group = Some(g.to_string()),
        }
    }

    fn merge(&mut self, o: Host) {
        self.orig.merge(o.orig);
        self.orig_received += o.orig_received;
        self.resp.merge(o.resp);
        self.resp_received += o.resp_received;
        self.served_flows.merge(o.served_flows);
        for (k, c) in o.served {
            if let Some(e) = keep(&mut self.served, MAX_SERVED, k, Count::default) {
                e.merge(c);
            }
        }
        for (s, n) in o.used {
            *self.used.entry(s).or_default() += n;
        }
        if let Some(g) = o.group {
            self.set_group(&g);
        }
        if o.first_ts != 0 {
            self.seen(o.first_ts, o.last_ts);
        }
    }
}

/// Traffic by service over time: bytes of the flows that started in each bucket.
#[derive(Debug, Clone)]
struct Timeline {
    /// Bucket width, seconds (from `WIDTHS`, or a doubling of its last).
    width: u64,
    buckets: BTreeMap<u64, BTreeMap<String, u64>>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            width: WIDTHS[0],
            buckets: BTreeMap::new(),
        }
    }
}

fn next_width(w: u64) -> u64 {
    WIDTHS
        .iter()
        .copied()
        .find(|&x| x > w)
        .unwrap_or_else(|| w.saturating_mul(2))
}

impl Timeline {
    fn add(&mut self, ts_ns: u64, service: &str, bytes: u64) {
        let b = ts_ns / 1_000_000_000 / self.width;
        let m = self.buckets.entry(b).or_default();
        match m.get_mut(service) {
            Some(v) => *v += bytes,
            None => {
                m.insert(service.to_string(), bytes);
            }
        }
        self.fit();
    }

    /// Make the buckets coarser until the series spans at most `MAX_BUCKETS`: the smallest
    /// width that fits depends only on the first and last start times, whoever counted them.
    fn fit(&mut self) {
        loop {
            let (Some(lo), Some(hi)) = (
                self.buckets.keys().next().copied(),
                self.buckets.keys().next_back().copied(),
            ) else {
                return;
            };
            if hi - lo < MAX_BUCKETS {
                return;
            }
            let w = next_width(self.width);
            self.coarsen(w);
        }
    }

    fn coarsen(&mut self, w: u64) {
        if w <= self.width {
            return;
        }
        let ratio = w / self.width;
        let old = std::mem::take(&mut self.buckets);
        for (b, m) in old {
            let e = self.buckets.entry(b / ratio).or_default();
            for (s, v) in m {
                *e.entry(s).or_default() += v;
            }
        }
        self.width = w;
    }

    fn merge(&mut self, mut o: Timeline) {
        let w = self.width.max(o.width);
        self.coarsen(w);
        o.coarsen(w);
        for (b, m) in o.buckets {
            let e = self.buckets.entry(b).or_default();
            for (s, v) in m {
                *e.entry(s).or_default() += v;
            }
        }
        self.fit();
    }
}

/// Find or make `key`'s entry in a map that keeps at most `cap` entries: the `cap` least
/// keys ever offered. A key evicted or refused was never among the least `cap` of what this
/// map saw, so it cannot be among the least of all the workers' keys either: each key kept
/// after a merge has every flow of it counted, and which keys are kept does not depend on
/// how flows were spread over workers. `None`: not kept.
fn keep<K: Ord, V>(
    map: &mut BTreeMap<K, V>,
    cap: usize,
    key: K,
    new: impl FnOnce() -> V,
) -> Option<&mut V> {
    if !map.contains_key(&key) && map.len() >= cap {
        match map.last_key_value() {
            Some((last, _)) if &key < last => {
                map.pop_last();
            }
            _ => return None,
        }
    }
    Some(map.entry(key).or_insert_with(new))
}

/// One worker's inventory (and, merged, the run's).
#[derive(Debug, Default, Clone)]
pub struct Inventory {
    /// Final flows counted (interim and alert records are not flows).
    flows: Count,
    hosts: BTreeMap<IpAddr, Host>,
    /// Originator address, responder address.
    pairs: BTreeMap<(IpAddr, IpAddr), Count>,
    /// Policy source group, destination group (as judged); empty without `--policy`.
    groups: BTreeMap<(String, String), Count>,
    timeline: Timeline,
}

/// Whether the responder of a flow served it: it sent payload, or completed a TCP handshake.
fn served(f: &Flow) -> bool {
    served_by(
        f.key.proto,
        f.dirs[RESP].payload_bytes,
        f.dirs[RESP].packets,
        f.conn_state(),
    )
}

/// Whether the responder served: it sent payload, completed a TCP handshake, or answered
/// over UDP (from a live flow or a record read back).
pub fn served_by(proto: u8, resp_payload: u64, resp_packets: u64, conn_state: &str) -> bool {
    if resp_payload > 0 {
        return true;
    }
    match proto {
        IPPROTO_TCP => matches!(conn_state, "S1" | "SF" | "S2" | "S3" | "RSTO" | "RSTR"),
        IPPROTO_UDP => resp_packets > 0,
        _ => false,
    }
}

/// What the inventory counts of a finished flow.
pub struct FlowView {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The responder's port.
    pub rp: u16,
    pub proto: u8,
    pub first_ts: u64,
    pub last_ts: u64,
    /// IP-level bytes, originator then responder.
    pub bytes: [u64; 2],
    /// See [`served_by`].
    pub served: bool,
}

impl Inventory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count a finished flow (final records only), with its verdict and what the judges said.
    pub fn add(&mut self, f: &Flow, v: &Verdict, notes: &Annotations) {
        let ((oa, _), (ra, rp)) = f.endpoints();
        let view = FlowView {
            src: to_ip(&oa, f.key.v6),
            dst: to_ip(&ra, f.key.v6),
            rp,
            proto: f.key.proto,
            first_ts: f.first_ts,
            last_ts: f.last_ts,
            bytes: [f.dirs[ORIG].bytes, f.dirs[RESP].bytes],
            served: served(f),
        };
        self.add_view(&view, v, notes);
    }

    /// [`Inventory::add`] for a flow given by its parts (a record read back).
    pub fn add_view(&mut self, f: &FlowView, v: &Verdict, notes: &Annotations) {
        let (src, dst, rp) = (f.src, f.dst, f.rp);
        let [ob, rb] = f.bytes;
        let bytes = ob + rb;
        self.flows.add(1, bytes);
        let has_ports = matches!(f.proto, IPPROTO_TCP | IPPROTO_UDP);
        let (sg, dg) = notes.policy.as_ref().map_or(("", ""), |p| {
            if p.reversed {
                (p.destination_group.as_str(), p.source_group.as_str())
            } else {
                (p.source_group.as_str(), p.destination_group.as_str())
            }
        });
        if let Some(h) = keep(&mut self.hosts, MAX_HOSTS, src, Host::default) {
            h.orig.add(1, ob);
            h.orig_received += rb;
            h.seen(f.first_ts, f.last_ts);
            h.set_group(sg);
            if f.served && v.service != "unknown" && !v.service.is_empty() {
                match h.used.get_mut(v.service.as_str()) {
                    Some(n) => *n += 1,
                    None => {
                        h.used.insert(v.service.clone(), 1);
                    }
                }
            }
        }
        if let Some(h) = keep(&mut self.hosts, MAX_HOSTS, dst, Host::default) {
            h.resp.add(1, rb);
            h.resp_received += ob;
            h.seen(f.first_ts, f.last_ts);
            h.set_group(dg);
            if f.served && has_ports {
                h.served_flows.add(1, bytes);
                let key = (v.service.clone(), v.protocol.clone(), f.proto, rp);
                if let Some(c) = keep(&mut h.served, MAX_SERVED, key, Count::default) {
                    c.add(1, bytes);
                }
            }
        }
        if let Some(c) = keep(&mut self.pairs, MAX_PAIRS, (src, dst), Count::default) {
            c.add(1, bytes);
        }
        if notes.policy.is_some() {
            let key = (sg.to_string(), dg.to_string());
            if let Some(c) = keep(&mut self.groups, MAX_GROUP_PAIRS, key, Count::default) {
                c.add(1, bytes);
            }
        }
        self.timeline.add(f.first_ts, &v.service, bytes);
    }

    /// Fold in another worker's inventory.
    pub fn merge(&mut self, o: Inventory) {
        self.flows.merge(o.flows);
        for (k, h) in o.hosts {
            if let Some(e) = keep(&mut self.hosts, MAX_HOSTS, k, Host::default) {
                e.merge(h);
            }
        }
        for (k, c) in o.pairs {
            if let Some(e) = keep(&mut self.pairs, MAX_PAIRS, k, Count::default) {
                e.merge(c);
            }
        }
        for (k, c) in o.groups {
            if let Some(e) = keep(&mut self.groups, MAX_GROUP_PAIRS, k, Count::default) {
                e.merge(c);
            }
        }
        self.timeline.merge(o.timeline);
    }

    /// The roles an address's traffic shows, each with the services that show it.
    fn roles(h: &Host) -> BTreeMap<&'static str, BTreeSet<String>> {
        let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        for (svc, ..) in h.served.keys() {
            for (role, svcs) in ROLE_SERVICES {
                if svcs.contains(&svc.as_str()) {
                    out.entry(role).or_default().insert(svc.clone());
                }
            }
        }
        for svc in h.used.keys() {
            for (role, svcs) in ROLE_CLIENT_SERVICES {
                if svcs.contains(&svc.as_str()) {
                    out.entry(role)
                        .or_default()
                        .insert(format!("{svc} (client)"));
                }
            }
        }
        out
    }

    /// The role label of every itemised address: its roles in `ROLE_SERVICES` order, joined
    /// by `+`, or `NO_ROLE`.
    fn role_labels(&self) -> BTreeMap<IpAddr, String> {
        self.hosts
            .iter()
            .map(|(ip, h)| {
                let roles = Self::roles(h);
                let label: Vec<&str> = ROLE_SERVICES
                    .iter()
                    .map(|(r, _)| *r)
                    .filter(|r| roles.contains_key(r))
                    .collect();
                let label = if label.is_empty() {
                    NO_ROLE.to_string()
                } else {
                    label.join("+")
                };
                (*ip, label)
            })
            .collect()
    }

    /// The `inventory` member of `--summary-json`, which the HTML report renders. `names`
    /// (`validate --groups`) names addresses when no policy judged the flows.
    pub fn to_json(&self, names: Option<&Groups>) -> Value {
        let group_of = |ip: &IpAddr, h: &Host| -> Option<String> {
            h.group.clone().or_else(|| names.map(|g| g.name_of(*ip)))
        };
        let labels = self.role_labels();
        let mut servers = Vec::new();
        for (ip, h) in &self.hosts {
            if h.served_flows.flows == 0 {
                continue;
            }
            let roles = Self::roles(h);
            let ordered: Vec<&str> = ROLE_SERVICES
                .iter()
                .map(|(r, _)| *r)
                .filter(|r| roles.contains_key(r))
                .collect();
            let evidence: BTreeMap<&str, Vec<&String>> = roles
                .iter()
                .map(|(r, s)| (*r, s.iter().collect()))
                .collect();
            let mut services: Vec<Value> = h
                .served
                .iter()
                .map(|((svc, proto, ipp, port), c)| {
                    json!({"service": svc, "protocol": proto, "transport": transport_name(*ipp),
                        "port": port, "flows": c.flows, "bytes": c.bytes})
                })
                .collect();
            let itemised: Count = h.served.values().fold(Count::default(), |mut a, c| {
                a.merge(*c);
                a
            });
            let rest = Count {
                flows: h.served_flows.flows - itemised.flows.min(h.served_flows.flows),
                bytes: h.served_flows.bytes - itemised.bytes.min(h.served_flows.bytes),
            };
            if rest.flows > 0 {
                services.push(
                    json!({"service": "(more ports)", "protocol": "", "transport": "",
                    "port": Value::Null, "flows": rest.flows, "bytes": rest.bytes}),
                );
            }
            let ports: BTreeSet<String> = h
                .served
                .keys()
                .map(|(_, _, ipp, port)| format!("{port}/{}", transport_name(*ipp)))
                .collect();
            servers.push(json!({
                "address": ip.to_string(),
                "roles": ordered,
                "role_evidence": evidence,
                "group": group_of(ip, h),
                "flows_served": h.served_flows.flows,
                "bytes_served": h.served_flows.bytes,
                "ports": ports,
                "services": services,
                "first_seen": rfc3339(h.first_ts),
                "last_seen": rfc3339(h.last_ts),
            }));
        }
        let mut talkers: Vec<(&IpAddr, &Host)> = self.hosts.iter().collect();
        let total = |h: &Host| h.orig.bytes + h.orig_received + h.resp.bytes + h.resp_received;
        talkers.sort_by(|a, b| total(b.1).cmp(&total(a.1)).then(a.0.cmp(b.0)));
        let talkers: Vec<Value> = talkers
            .into_iter()
            .take(TOP_TALKERS)
            .map(|(ip, h)| {
                json!({
                    "address": ip.to_string(),
                    "role": labels.get(ip),
                    "group": group_of(ip, h),
                    "flows": h.orig.flows + h.resp.flows,
                    "flows_originated": h.orig.flows,
                    "flows_answered": h.resp.flows,
                    "bytes_sent": h.orig.bytes + h.resp.bytes,
                    "bytes_received": h.orig_received + h.resp_received,
                    "bytes": total(h),
                })
            })
            .collect();
        let mut role_pairs: BTreeMap<(&str, &str), Count> = BTreeMap::new();
        let mut itemised = Count::default();
        for ((s, d), c) in &self.pairs {
            itemised.merge(*c);
            let sl = labels.get(s).map_or(NO_ROLE, String::as_str);
            let dl = labels.get(d).map_or(NO_ROLE, String::as_str);
            role_pairs.entry((sl, dl)).or_default().merge(*c);
        }
        let role_pairs: Vec<Value> = role_pairs
            .iter()
            .map(|((s, d), c)| {
                json!({"source": s, "destination": d, "flows": c.flows, "bytes": c.bytes})
            })
            .collect();
        let matrix = self.matrix(names);
        let t = &self.timeline;
        let mut by_service: BTreeMap<&str, u64> = BTreeMap::new();
        for m in t.buckets.values() {
            for (s, v) in m {
                *by_service.entry(s).or_default() += v;
            }
        }
        let buckets: Vec<Value> = t
            .buckets
            .iter()
            .map(|(b, m)| json!({"start": rfc3339(b * t.width * 1_000_000_000), "bytes": m}))
            .collect();
        json!({
            "flows": self.flows.flows,
            "bytes": self.flows.bytes,
            "hosts": self.hosts.len(),
            "servers": servers,
            "top_talkers": talkers,
            "matrix": matrix,
            "role_pairs": role_pairs,
            "pairs_not_itemised": {
                "flows": self.flows.flows - itemised.flows.min(self.flows.flows),
                "bytes": self.flows.bytes - itemised.bytes.min(self.flows.bytes),
            },
            "timeline": {"bucket_seconds": t.width, "services": by_service, "buckets": buckets},
        })
    }

    /// Who talks to whom: by policy group when the flows were judged, else by the groups of
    /// `names`, else by address when there are few, else by /24 (IPv6 /64).
    fn matrix(&self, names: Option<&Groups>) -> Value {
        let by = |f: &dyn Fn(&IpAddr) -> String| {
            let mut m: BTreeMap<(String, String), Count> = BTreeMap::new();
            for ((a, b), c) in &self.pairs {
                m.entry((f(a), f(b))).or_default().merge(*c);
            }
            m
        };
        let (grouping, cells): (&str, BTreeMap<(String, String), Count>) =
            if !self.groups.is_empty() {
                ("policy group", self.groups.clone())
            } else if let Some(g) = names {
                ("group", by(&|a| g.name_of(*a)))
            } else {
                let addrs: BTreeSet<&IpAddr> =
                    self.pairs.keys().flat_map(|(a, b)| [a, b]).collect();
                if addrs.len() <= 16 {
                    ("address", by(&|a| a.to_string()))
                } else {
                    ("network (/24, IPv6 /64)", by(&net_of))
                }
            };
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for (s, d) in cells.keys() {
            names.insert(s);
            names.insert(d);
        }
        json!({
            "grouping": grouping,
            "groups": names,
            "cells": cells.iter().map(|((s, d), c)| json!({"source": s, "destination": d, "flows": c.flows, "bytes": c.bytes})).collect::<Vec<_>>(),
        })
    }
}

/// The /24 (IPv4) or /64 (IPv6) an address is in, as text.
fn net_of(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed pseudo-random order (xorshift), so that tests need no dependency.
    fn shuffled(n: u64) -> Vec<u64> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut v: Vec<u64> = (0..n).collect();
        for i in (1..v.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.swap(i, (x % (i as u64 + 1)) as usize);
        }
        v
    }

    #[test]
    fn capped_maps_keep_the_same_keys_and_counts_however_the_flows_were_split() {
        // Every key k comes k % 7 + 1 times, in a shuffled order.
        let events: Vec<u64> = shuffled(2000).into_iter().map(|i| i % 500).collect();
        let offer = |m: &mut BTreeMap<u64, u64>, k: u64| {
            if let Some(c) = keep(m, 10, k, || 0) {
                *c += 1;
            }
        };
        let mut whole = BTreeMap::new();
        for &k in &events {
            offer(&mut whole, k);
        }
        for workers in [2, 3, 7] {
            let mut parts = vec![BTreeMap::new(); workers];
            for (i, &k) in events.iter().enumerate() {
                offer(&mut parts[(k as usize * 31 + i) % workers], k);
            }
            let mut merged = BTreeMap::new();
            for p in parts {
                for (k, c) in p {
                    if let Some(e) = keep(&mut merged, 10, k, || 0) {
                        *e += c;
                    }
                }
            }
            assert_eq!(merged, whole, "{workers} workers");
        }
        assert_eq!(whole.len(), 10);
        assert_eq!(
            whole.keys().copied().collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert!(whole.values().all(|&c| c == 4), "{whole:?}");
    }

    #[test]
    fn the_timeline_width_and_buckets_do_not_depend_on_how_flows_were_split() {
        let base = 1_795_420_800u64 * 1_000_000_000;
        // Ten hours of flows, one every 97 seconds, over three services.
        let flows: Vec<(u64, &str, u64)> = (0..371u64)
            .map(|i| {
                (
                    base + i * 97_000_000_000,
                    ["smtp", "ews", "dns"][(i % 3) as usize],
                    i,
                )
            })
            .collect();
        let mut whole = Timeline::default();
        for (ts, s, b) in &flows {
            whole.add(*ts, s, *b);
        }
        assert_eq!(whole.width, 300, "10 h in at most {MAX_BUCKETS} buckets");
        let span = whole.buckets.keys().next_back().unwrap() - whole.buckets.keys().next().unwrap();
        assert!(span < MAX_BUCKETS);
        let total: u64 = whole.buckets.values().flat_map(|m| m.values()).sum();
        assert_eq!(total, (0..371).sum::<u64>());
        let (mut a, mut b) = (Timeline::default(), Timeline::default());
        for (i, (ts, s, by)) in flows.iter().enumerate() {
            // One part sees only the first hour: a finer width until merged.
            if i < 30 { &mut a } else { &mut b }.add(*ts, s, *by);
        }
        assert!(a.width < b.width);
        a.merge(b);
        assert_eq!(a.width, whole.width);
        assert_eq!(a.buckets, whole.buckets);
    }

    #[test]
    fn widths_divide_each_other_so_coarsening_is_exact() {
        let mut w = WIDTHS[0];
        for _ in 0..40 {
            let n = next_width(w);
            assert_eq!(n % w, 0, "{n} is a multiple of {w}");
            w = n;
        }
    }

    #[test]
    fn networks_are_slash_24_and_slash_64() {
        assert_eq!(net_of(&"10.1.2.3".parse().unwrap()), "10.1.2.0/24");
        assert_eq!(net_of(&"fd00:1:10::21".parse().unwrap()), "fd00:1:10::/64");
    }
}
