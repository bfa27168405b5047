//! Cross-flow labels: flows that explain other flows. Workers publish facts stamped with
//! capture time (an expectation announced by SIP/SDP, an endpoint-mapper reply or an RPC over
//! HTTP request; a server endpoint confirmed by payload; a flow that started); the sink applies
//! them in capture-time order to two bounded tables, so the labels never depend on which
//! worker saw what first.

use crate::flow::community_id::community_id;
use crate::flow::FlowKey;
use std::collections::{HashMap, VecDeque};

/// The sink's tables are keyed by addresses from the wire: a fast hash, seeded per process.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::net::IpAddr;

/// Nanoseconds per second of capture time.
pub const SECOND: u64 = 1_000_000_000;
/// How long an announced expectation stays usable.
pub const LIFETIME: u64 = 300 * SECOND;
/// A flow may start this long before the announcement that explains it (the answerer's RTP
/// can beat the 200 OK that carries its SDP).
pub const SLACK: u64 = 2 * SECOND;
/// A finished flow waits this long (in capture time) for confirmations of its server.
pub const HOLD: u64 = 2 * SECOND;
/// Expectations kept at once; the oldest is evicted beyond it.
pub const MAX_EXPECTATIONS: usize = 65_536;
/// Learned server endpoints kept at once; the oldest is evicted beyond it.
pub const MAX_ENDPOINTS: usize = 65_536;

/// A transport endpoint in exwatch's 16-byte address form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: [u8; 16],
    pub v6: bool,
    pub port: u16,
    /// IP protocol (6 TCP, 17 UDP).
    pub proto: u8,
}

impl Endpoint {
    /// An endpoint from an `IpAddr`.
    pub fn new(ip: IpAddr, port: u16, proto: u8) -> Self {
        let mut addr = [0u8; 16];
        let v6 = match ip {
            IpAddr::V4(a) => {
                addr[..4].copy_from_slice(&a.octets());
                false
            }
            IpAddr::V6(a) => {
                addr = a.octets();
                true
            }
        };
        Endpoint {
            addr,
            v6,
            port,
            proto,
        }
    }
}

/// Which flows an expectation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pin {
    /// Flows with this endpoint at either end (RTP media, a dynamic RPC server port).
    Endpoint,
    /// Flows from this address (any port) to this port on any server (an RPC over HTTP proxy
    /// reaching its back end).
    ClientToPort,
}

/// What an expectation or a learned endpoint says a flow is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Label {
    /// `network.protocol` vocabulary.
    pub protocol: &'static str,
    /// Exchange service, when the announcer names one (else the port's applies).
    pub service: Option<String>,
    /// DCE/RPC interface name, for `dcerpc.interface`.
    pub interface: Option<String>,
    /// Evidence text: who announced or confirmed it, and how.
    pub how: String,
}

/// An expectation a flow announced.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Announcement {
    pub pin: Pin,
    pub at: Endpoint,
    pub label: Label,
    /// `network.community_id` of the announcing flow.
    pub parent: String,
}

/// A server endpoint whose service payload confirmed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Confirmation {
    pub server: Endpoint,
    pub label: Label,
    pub parent: String,
}

/// A flow whose ports could have been announced started.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Start {
    pub key: FlowKey,
    /// The flow's first packet time (its identity together with the key).
    pub first_ts: u64,
    /// The reader clock at that packet, which announcements are compared with.
    pub clock: u64,
    /// The worker that owns the flow: only its copy of the tables keeps the match.
    pub owner: u16,
}

/// What a worker reports besides finished flows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FactKind {
    // Boxed: start notices, one per candidate flow, are the common fact and stay small.
    Announced(Box<Announcement>),
    Confirmed(Box<Confirmation>),
    Started(Start),
}

/// A fact with the capture time at which the sink applies it. Ordered by that time, then by
/// content, so ties never depend on arrival order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fact {
    /// Capture time (ns) at which the fact takes effect.
    pub at: u64,
    pub kind: FactKind,
}

impl Fact {
    pub fn announced(ts: u64, a: Announcement) -> Self {
        Fact {
            at: ts,
            kind: FactKind::Announced(Box::new(a)),
        }
    }

    pub fn confirmed(ts: u64, c: Confirmation) -> Self {
        Fact {
            at: ts,
            kind: FactKind::Confirmed(Box::new(c)),
        }
    }

    /// A start is matched once announcements up to `SLACK` after it can have arrived.
    pub fn started(owner: usize, clock: u64, key: FlowKey, first_ts: u64) -> Self {
        Fact {
            at: clock.saturating_add(SLACK),
            kind: FactKind::Started(Start {
                key,
                first_ts,
                clock,
                owner: owner as u16,
            }),
        }
    }
}

/// The Community ID of a flow key (symmetric, so the direction does not matter).
pub fn key_community_id(k: &FlowKey) -> String {
    use crate::flow::key::to_ip;
    community_id(
        0,
        k.proto,
        to_ip(&k.lo, k.v6),
        to_ip(&k.hi, k.v6),
        Some((k.lo_port, k.hi_port)),
    )
}

/// Counters for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub expectations_announced: u64,
    pub expectations_matched: u64,
    pub expectations_expired_unused: u64,
    pub expectations_evicted: u64,
    pub endpoints_learned: u64,
    pub endpoints_applied: u64,
    pub endpoints_evicted: u64,
    pub flows_held_peak: u64,
    /// Flows released before the watermark because their worker's linker held its limit.
    pub flows_released_early: u64,
    /// Start notices a worker did not send because its limit of notices waiting was reached.
    pub start_notices_dropped: u64,
}

impl LinkStats {
    /// Fold in one worker's figures. Every worker applies every fact to its own copy of the
    /// tables, so the table counters are taken from one copy (`tables`); flows held and
    /// labels applied are each worker's own.
    pub fn add_worker(&mut self, w: &LinkStats, tables: bool) {
        if tables {
            let (applied, held) = (self.endpoints_applied, self.flows_held_peak);
            let (early, dropped) = (self.flows_released_early, self.start_notices_dropped);
            *self = LinkStats {
                endpoints_applied: applied,
                flows_held_peak: held,
                flows_released_early: early,
                start_notices_dropped: dropped,
                ..*w
            };
        }
        self.endpoints_applied += w.endpoints_applied;
        self.flows_held_peak += w.flows_held_peak;
        self.flows_released_early += w.flows_released_early;
        self.start_notices_dropped += w.start_notices_dropped;
    }
}

#[derive(Debug)]
struct Entry {
    label: Label,
    parent: String,
    ts: u64,
    generation: u64,
    used: bool,
}

/// An expectation that matched a starting flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub label: Label,
    pub parent: String,
    pub ts: u64,
}

/// The expectations table: bounded in count (oldest evicted) and in time (`LIFETIME`).
#[derive(Debug)]
pub struct Expectations {
    map: FastMap<(Pin, Endpoint), Entry>,
    /// Insertion order (which is capture-time order) with generations; stale items skipped.
    order: VecDeque<((Pin, Endpoint), u64)>,
    next_gen: u64,
    cap: usize,
}

impl Expectations {
    pub fn new(cap: usize) -> Self {
        Expectations {
            map: FastMap::default(),
            order: VecDeque::new(),
            next_gen: 0,
            cap: cap.max(1),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Items in the order queue (live and stale), for memory tests.
    pub fn queue_len(&self) -> usize {
        self.order.len()
    }

    fn live(&self, k: &(Pin, Endpoint), g: u64) -> bool {
        self.map.get(k).is_some_and(|e| e.generation == g)
    }

    /// Record an announcement made at `ts`. Repeating an identical one only refreshes it.
    pub fn announce(&mut self, ts: u64, a: Announcement, stats: &mut LinkStats) {
        let k = (a.pin, a.at);
        let generation = self.next_gen;
        self.next_gen += 1;
        if let Some(e) = self.map.get_mut(&k) {
            if e.label != a.label || e.parent != a.parent {
                stats.expectations_announced += 1;
                e.label = a.label;
                e.parent = a.parent;
                e.used = false;
            }
            e.ts = ts;
            e.generation = generation;
        } else {
            while self.map.len() >= self.cap {
                let Some((ok, og)) = self.order.pop_front() else {
                    break;
                };
                if self.live(&ok, og) {
                    self.map.remove(&ok);
                    stats.expectations_evicted += 1;
                }
            }
            stats.expectations_announced += 1;
            self.map.insert(
                k,
                Entry {
                    label: a.label,
                    parent: a.parent,
                    ts,
                    generation,
                    used: false,
                },
            );
        }
        self.order.push_back((k, generation));
        if self.order.len() > 2 * self.cap + 16 {
            let order = std::mem::take(&mut self.order);
            self.order = order
                .into_iter()
                .filter(|(k, g)| self.live(k, *g))
                .collect();
        }
    }

    /// Drop expectations that no flow starting at `now - SLACK` or later can use.
    pub fn expire(&mut self, now: u64, stats: &mut LinkStats) {
        let horizon = now.saturating_sub(SLACK);
        while let Some(&(k, g)) = self.order.front() {
            match self.map.get(&k) {
                Some(e) if e.generation == g => {
                    if e.ts.saturating_add(LIFETIME) >= horizon {
                        break;
                    }
                    if !e.used {
                        stats.expectations_expired_unused += 1;
                    }
                    self.map.remove(&k);
                }
                _ => {}
            }
            self.order.pop_front();
        }
    }

    /// The expectation a flow starting at reader clock `s.clock` matches: announced no later than `SLACK`
    /// after its start and alive at it; among several, the latest announcement, then the
    /// smallest parent and label.
    pub fn lookup(&mut self, s: &Start, stats: &mut LinkStats) -> Option<Match> {
        let k = &s.key;
        let ep = |a: [u8; 16], port| Endpoint {
            addr: a,
            v6: k.v6,
            port,
            proto: k.proto,
        };
        let keys = [
            (Pin::Endpoint, ep(k.lo, k.lo_port)),
            (Pin::Endpoint, ep(k.hi, k.hi_port)),
            (Pin::ClientToPort, ep(k.lo, k.hi_port)),
            (Pin::ClientToPort, ep(k.hi, k.lo_port)),
        ];
        let best = keys
            .iter()
            .filter(|key| {
                self.map.get(key).is_some_and(|e| {
                    e.ts <= s.clock.saturating_add(SLACK)
                        && e.ts.saturating_add(LIFETIME) >= s.clock
                })
            })
            .min_by(|a, b| {
                let (ea, eb) = (&self.map[a], &self.map[b]);
                eb.ts
                    .cmp(&ea.ts)
                    .then_with(|| ea.parent.cmp(&eb.parent))
                    .then_with(|| ea.label.cmp(&eb.label))
            })
            .copied()?;
        let e = self.map.get_mut(&best).expect("filtered above");
        e.used = true;
        stats.expectations_matched += 1;
        Some(Match {
            label: e.label.clone(),
            parent: e.parent.clone(),
            ts: e.ts,
        })
    }
}

#[derive(Debug)]
struct Learned {
    label: Label,
    parent: String,
    ts: u64,
    /// When another confirmation named a different service on the same endpoint.
    conflict_ts: Option<u64>,
}

/// Server endpoints whose service payload confirmed; bounded in count, oldest evicted.
#[derive(Debug)]
pub struct Endpoints {
    map: FastMap<Endpoint, Learned>,
    order: VecDeque<Endpoint>,
    cap: usize,
}

impl Endpoints {
    pub fn new(cap: usize) -> Self {
        Endpoints {
            map: FastMap::default(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Record a confirmation at `ts`. The first one names the endpoint; a later one that
    /// names another service makes it ambiguous from then on (only the protocol is kept).
    pub fn confirm(&mut self, ts: u64, c: Confirmation, stats: &mut LinkStats) {
        if let Some(l) = self.map.get_mut(&c.server) {
            let same = l.label.protocol == c.label.protocol
                && l.label.service == c.label.service
                && l.label.interface == c.label.interface;
            if !same && l.conflict_ts.is_none() {
                l.conflict_ts = Some(ts);
            }
            return;
        }
        while self.map.len() >= self.cap {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if self.map.remove(&old).is_some() {
                stats.endpoints_evicted += 1;
            }
        }
        stats.endpoints_learned += 1;
        self.order.push_back(c.server);
        self.map.insert(
            c.server,
            Learned {
                label: c.label,
                parent: c.parent,
                ts,
                conflict_ts: None,
            },
        );
    }

    /// The label confirmed for `server` no later than `until`, by a flow other than the one
    /// whose Community ID `own` gives (computed only when there is an entry).
    pub fn lookup(
        &self,
        server: &Endpoint,
        until: u64,
        own: impl FnOnce() -> String,
    ) -> Option<(Label, String)> {
        let l = self.map.get(server).filter(|l| l.ts <= until)?;
        if l.parent == own() {
            return None;
        }
        let label = match l.conflict_ts {
            Some(t) if t <= until => Label {
                protocol: l.label.protocol,
                service: None,
                interface: None,
                how: format!(
                    "{} (several services confirmed on this endpoint)",
                    l.label.protocol
                ),
            },
            _ => l.label.clone(),
        };
        Some((label, l.parent.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ep(last: u8, port: u16) -> Endpoint {
        Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), port, 17)
    }

    fn label(p: &'static str) -> Label {
        Label {
            protocol: p,
            service: None,
            interface: None,
            how: format!("test {p}"),
        }
    }

    fn ann(at: Endpoint, p: &'static str, parent: &str) -> Announcement {
        Announcement {
            pin: Pin::Endpoint,
            at,
            label: label(p),
            parent: parent.into(),
        }
    }

    fn start(a: Endpoint, b: Endpoint, first_ts: u64) -> Start {
        let (lo, hi) = if (a.addr, a.port) <= (b.addr, b.port) {
            (a, b)
        } else {
            (b, a)
        };
        Start {
            key: FlowKey {
                lo: lo.addr,
                hi: hi.addr,
                lo_port: lo.port,
                hi_port: hi.port,
                proto: 17,
                v6: false,
                vlan: [0, 0],
            },
            first_ts,
            clock: first_ts,
            owner: 0,
        }
    }

    /// One start notice is queued per candidate flow for a few seconds of capture time.
    #[test]
    fn facts_stay_small() {
        assert!(
            std::mem::size_of::<Fact>() <= 80,
            "{}",
            std::mem::size_of::<Fact>()
        );
    }

    #[test]
    fn match_within_slack_and_lifetime() {
        let mut t = Expectations::new(16);
        let mut s = LinkStats::default();
        t.announce(10 * SECOND, ann(ep(1, 6000), "rtp", "p1"), &mut s);
        // Started one second before the announcement: within the slack.
        let m = t.lookup(&start(ep(1, 6000), ep(2, 7000), 9 * SECOND), &mut s);
        assert_eq!(m.unwrap().parent, "p1");
        // Started three seconds before: not explained by it.
        assert!(t
            .lookup(&start(ep(1, 6000), ep(2, 7000), 7 * SECOND), &mut s)
            .is_none());
        // After the lifetime: dead.
        assert!(t
            .lookup(
                &start(ep(1, 6000), ep(2, 7000), 11 * SECOND + LIFETIME),
                &mut s
            )
            .is_none());
        assert_eq!(s.expectations_announced, 1);
        assert_eq!(s.expectations_matched, 1);
    }

    #[test]
    fn ties_prefer_latest_then_smallest_parent() {
        let mut t = Expectations::new(16);
        let mut s = LinkStats::default();
        t.announce(5, ann(ep(1, 6000), "rtp", "b"), &mut s);
        t.announce(5, ann(ep(2, 7000), "rtcp", "a"), &mut s);
        let m = t
            .lookup(&start(ep(1, 6000), ep(2, 7000), 6), &mut s)
            .unwrap();
        assert_eq!((m.parent.as_str(), m.label.protocol), ("a", "rtcp"));
        t.announce(6, ann(ep(1, 6000), "rtp", "c"), &mut s);
        let m = t
            .lookup(&start(ep(1, 6000), ep(2, 7000), 6), &mut s)
            .unwrap();
        assert_eq!(m.parent, "c", "the later announcement wins");
        // Same result whatever the insertion order.
        let mut u = Expectations::new(16);
        u.announce(5, ann(ep(2, 7000), "rtcp", "a"), &mut s);
        u.announce(5, ann(ep(1, 6000), "rtp", "b"), &mut s);
        let m = u
            .lookup(&start(ep(1, 6000), ep(2, 7000), 6), &mut s)
            .unwrap();
        assert_eq!(m.parent, "a");
    }

    #[test]
    fn expiry_counts_unused_only() {
        let mut t = Expectations::new(16);
        let mut s = LinkStats::default();
        t.announce(0, ann(ep(1, 6000), "rtp", "p"), &mut s);
        t.announce(0, ann(ep(1, 6001), "rtcp", "p"), &mut s);
        t.lookup(&start(ep(1, 6000), ep(2, 7000), 1), &mut s)
            .unwrap();
        t.expire(LIFETIME + SLACK, &mut s);
        assert_eq!(
            t.len(),
            2,
            "still alive for a flow starting at the lifetime's end"
        );
        t.expire(LIFETIME + SLACK + 1, &mut s);
        assert!(t.is_empty());
        assert_eq!(s.expectations_expired_unused, 1);
    }

    #[test]
    fn re_announcement_refreshes_and_updates() {
        let mut t = Expectations::new(16);
        let mut s = LinkStats::default();
        t.announce(0, ann(ep(1, 6000), "rtp", "p"), &mut s);
        t.announce(100 * SECOND, ann(ep(1, 6000), "rtp", "p"), &mut s);
        assert_eq!(
            s.expectations_announced, 1,
            "identical repeat only refreshes"
        );
        t.expire(LIFETIME + 50 * SECOND, &mut s);
        assert_eq!(t.len(), 1, "the refresh extended its life");
        t.announce(101 * SECOND, ann(ep(1, 6000), "rtcp", "p"), &mut s);
        assert_eq!(
            s.expectations_announced, 2,
            "a re-INVITE that changes it counts"
        );
        let m = t
            .lookup(&start(ep(1, 6000), ep(2, 1), 101 * SECOND), &mut s)
            .unwrap();
        assert_eq!(m.label.protocol, "rtcp");
    }

    /// A flood of distinct announcements: the table and its queue stay within their bounds,
    /// and every entry beyond the bound is counted as evicted.
    #[test]
    fn flood_of_announcements_stays_bounded() {
        let cap = 1024;
        let mut t = Expectations::new(cap);
        let mut s = LinkStats::default();
        for i in 0..200_000u32 {
            let e = Endpoint::new(IpAddr::V4(Ipv4Addr::from(i)), (i % 60_000) as u16, 17);
            t.announce(u64::from(i), ann(e, "rtp", "flood"), &mut s);
            // Repeats of a few hot entries must not grow the queue without bound either.
            t.announce(u64::from(i), ann(ep(1, 6000), "rtp", "hot"), &mut s);
            assert!(t.len() <= cap);
            assert!(t.queue_len() <= 2 * cap + 17);
        }
        assert_eq!(
            s.expectations_announced - s.expectations_evicted,
            t.len() as u64
        );
        let mut l = Endpoints::new(cap);
        for i in 0..200_000u32 {
            let e = Endpoint::new(IpAddr::V4(Ipv4Addr::from(i)), 1032, 6);
            let c = Confirmation {
                server: e,
                label: label("dcerpc"),
                parent: "x".into(),
            };
            l.confirm(u64::from(i), c, &mut s);
            assert!(l.len() <= cap && l.order.len() <= cap);
        }
        assert_eq!(s.endpoints_learned - s.endpoints_evicted, cap as u64);
    }

    #[test]
    fn learned_endpoint_until_and_conflict() {
        let mut l = Endpoints::new(8);
        let mut s = LinkStats::default();
        let srv = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 1032, 6);
        let mut lab = label("dcerpc");
        lab.service = Some("emsmdb".into());
        l.confirm(
            10,
            Confirmation {
                server: srv,
                label: lab.clone(),
                parent: "a".into(),
            },
            &mut s,
        );
        let z = || "z".to_string();
        assert!(l.lookup(&srv, 9, z).is_none(), "confirmed later than asked");
        assert!(
            l.lookup(&srv, 10, || "a".into()).is_none(),
            "not its own parent"
        );
        assert_eq!(l.lookup(&srv, 10, z).unwrap().0, lab);
        lab.service = Some("nspi".into());
        l.confirm(
            20,
            Confirmation {
                server: srv,
                label: lab,
                parent: "b".into(),
            },
            &mut s,
        );
        assert_eq!(
            l.lookup(&srv, 15, z).unwrap().0.service.as_deref(),
            Some("emsmdb")
        );
        assert_eq!(l.lookup(&srv, 25, z).unwrap().0.service, None);
        assert_eq!(s.endpoints_learned, 1);
    }
}
