//! Cross-flow labels, one copy per worker: every worker's `Linker` takes the reports of all
//! workers (facts and clocks, published through `exchange`) and the worker's own finished
//! flows, applies the facts to its copy of the expectation and learned-endpoint tables in
//! capture-time order once every worker has passed them (the watermark), and releases each of
//! its flows with its final verdict once no later fact can change it. Every copy applies the
//! same facts in the same order, so the copies agree, and only capture time decides, so the
//! labels are the same for any number of workers. A match of an expectation is kept only by
//! the copy of the worker that owns the starting flow. A flow no later fact can relabel is
//! released at once, and at most `max_held` flows wait: beyond it the one due first goes out
//! with the facts applied so far (counted), so a flood cannot outgrow `--max-flows`.

use super::Report;
use crate::classify::announce;
use crate::classify::expect::{
    key_community_id, Endpoint, Endpoints, Expectations, Fact, FactKind, FastMap, LinkStats, Match,
    HOLD, MAX_ENDPOINTS, MAX_EXPECTATIONS, SLACK,
};
use crate::classify::{Classifier, Confidence, Detection, Flow, Verdict};
use crate::decode::IPPROTO_TCP;
use crate::flow::key::to_ip;
use crate::flow::{EndReason, FlowKey};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

/// Matches kept for flows whose record has not come yet (open media and RPC connections);
/// the oldest are dropped beyond it.
const MAX_MATCHES: usize = 65_536;

/// A finished flow waiting for the watermark: its release order, and where it is parked. The
/// heap sifts these small entries rather than whole flows.
struct Held {
    due: u64,
    key: FlowKey,
    first_ts: u64,
    last_ts: u64,
    slot: u32,
}

impl Held {
    fn order_key(&self) -> (u64, &FlowKey, u64, u64) {
        (self.due, &self.key, self.first_ts, self.last_ts)
    }
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        self.order_key() == o.order_key()
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> Ordering {
        self.order_key().cmp(&o.order_key())
    }
}

/// Orders facts and flows by capture time and labels flows from other flows.
pub struct Linker {
    /// The worker this copy belongs to.
    me: usize,
    clocks: Vec<u64>,
    facts: BinaryHeap<Reverse<Fact>>,
    held: BinaryHeap<Reverse<Held>>,
    /// The flows `held` refers to, by slot; `None` once released.
    parked: Vec<Option<(Flow, EndReason)>>,
    /// Slots of `parked` free for reuse.
    free: Vec<u32>,
    expectations: Expectations,
    endpoints: Endpoints,
    matches: FastMap<(FlowKey, u64), Match>,
    match_order: VecDeque<(FlowKey, u64)>,
    /// Flows held at most; beyond it the one due first is released at once (counted).
    max_held: usize,
    pub stats: LinkStats,
}

impl Linker {
    /// Worker `me`'s linker, among `workers` workers, holding at most `max_held` flows.
    pub fn new(workers: usize, me: usize, max_held: usize) -> Self {
        Self::with_caps(workers, me, MAX_EXPECTATIONS, MAX_ENDPOINTS, max_held)
    }

    /// A linker with the given table bounds.
    pub fn with_caps(
        workers: usize,
        me: usize,
        expectations: usize,
        endpoints: usize,
        max_held: usize,
    ) -> Self {
        Linker {
            max_held: max_held.max(1),
            me,
            clocks: vec![0; workers],
            facts: BinaryHeap::new(),
            held: BinaryHeap::new(),
            parked: Vec::new(),
            free: Vec::new(),
            expectations: Expectations::new(expectations),
            endpoints: Endpoints::new(endpoints),
            matches: FastMap::default(),
            match_order: VecDeque::new(),
            stats: LinkStats::default(),
        }
    }

    /// Take a worker's report (its own flows only from this linker's worker); flows whose
    /// verdict is now final go to `ready`. Returns the report's flow buffer, emptied, for reuse.
    pub fn report(
        &mut self,
        r: Report,
        classifier: &Classifier,
        ready: &mut Vec<(Flow, EndReason, Verdict)>,
    ) -> Vec<(Flow, EndReason)> {
        self.facts.extend(r.facts.into_iter().map(Reverse));
        let mut flows = r.flows;
        for (flow, reason) in flows.drain(..) {
            // Its start notice was stamped with the reader clock at its first packet, which
            // the reporting worker's clock has passed; with out-of-order capture times that
            // can be later than its own timestamps, so wait for it explicitly.
            let announced = announce::may_be_announced(&flow);
            let started = if announced {
                r.clock.saturating_add(SLACK)
            } else {
                0
            };
            // A flow no later fact can relabel waits for nothing: it was not announced, and
            // no learned endpoint can name it (endpoints are learned only on TCP server ports
            // above 1023; a flow seen mid-stream tries both ends).
            let learnable = flow.key.proto == IPPROTO_TCP
                && (flow.resp_port() >= 1024 || (flow.mid_stream && flow.orig_port() >= 1024));
            if !announced && !learnable {
                let (mut flow, reason) = (flow, reason);
                let verdict = self.label(&mut flow, reason, classifier);
                ready.push((flow, reason, verdict));
                continue;
            }
            let due = flow.last_ts.saturating_add(HOLD).max(started);
            let held = Held {
                due,
                key: flow.key,
                first_ts: flow.first_ts,
                last_ts: flow.last_ts,
                slot: self.park(flow, reason),
            };
            self.held.push(Reverse(held));
            if self.held.len() > self.max_held {
                // Memory is bounded by the flow limit, not by how many flows end within the
                // hold: the flow due first is labelled with the facts applied so far.
                self.stats.flows_released_early += 1;
                self.release_first(classifier, ready);
            }
        }
        self.stats.flows_held_peak = self.stats.flows_held_peak.max(self.held.len() as u64);
        if let Some(c) = self.clocks.get_mut(r.worker) {
            *c = (*c).max(r.clock);
        }
        self.advance(classifier, ready);
        flows
    }

    /// The slowest worker's clock: every fact stamped before it has been applied.
    pub fn watermark(&self) -> u64 {
        self.clocks.iter().copied().min().unwrap_or(u64::MAX)
    }

    /// Flows held for the watermark.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// A worker has sent everything.
    pub fn worker_done(
        &mut self,
        worker: usize,
        classifier: &Classifier,
        ready: &mut Vec<(Flow, EndReason, Verdict)>,
    ) {
        if let Some(c) = self.clocks.get_mut(worker) {
            *c = u64::MAX;
        }
        self.advance(classifier, ready);
    }

    /// Apply every fact before the watermark, then release the flows due before it. A worker
    /// has sent every fact stamped before its reported clock, hence the strict comparisons.
    fn advance(&mut self, classifier: &Classifier, ready: &mut Vec<(Flow, EndReason, Verdict)>) {
        let wm = self.clocks.iter().copied().min().unwrap_or(u64::MAX);
        while self
            .facts
            .peek()
            .is_some_and(|f| f.0.at < wm || wm == u64::MAX)
        {
            let Reverse(f) = self.facts.pop().expect("peeked");
            self.apply(f);
        }
        while self
            .held
            .peek()
            .is_some_and(|h| h.0.due < wm || wm == u64::MAX)
        {
            self.release_first(classifier, ready);
        }
    }

    /// Label and release the held flow due first.
    fn release_first(
        &mut self,
        classifier: &Classifier,
        ready: &mut Vec<(Flow, EndReason, Verdict)>,
    ) {
        let Some(Reverse(h)) = self.held.pop() else {
            return;
        };
        let (mut flow, reason) = self.parked[h.slot as usize]
            .take()
            .expect("a held flow is parked");
        self.free.push(h.slot);
        let verdict = self.label(&mut flow, reason, classifier);
        ready.push((flow, reason, verdict));
    }

    /// Park a flow until its release; its slot.
    fn park(&mut self, flow: Flow, reason: EndReason) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                self.parked[slot as usize] = Some((flow, reason));
                slot
            }
            None => {
                self.parked.push(Some((flow, reason)));
                (self.parked.len() - 1) as u32
            }
        }
    }

    fn apply(&mut self, f: Fact) {
        self.expectations.expire(f.at, &mut self.stats);
        match f.kind {
            FactKind::Announced(a) => self.expectations.announce(f.at, *a, &mut self.stats),
            FactKind::Confirmed(c) => self.endpoints.confirm(f.at, *c, &mut self.stats),
            FactKind::Started(s) => {
                let found = self.expectations.lookup(&s, &mut self.stats);
                if let Some(m) = found.filter(|_| usize::from(s.owner) == self.me) {
                    let k = (s.key, s.first_ts);
                    while self.matches.len() >= MAX_MATCHES {
                        match self.match_order.pop_front() {
                            Some(old) => {
                                self.matches.remove(&old);
                            }
                            None => break,
                        }
                    }
                    if self.matches.insert(k, m).is_none() {
                        self.match_order.push_back(k);
                    }
                }
                if self.match_order.len() > 2 * MAX_MATCHES {
                    let order = std::mem::take(&mut self.match_order);
                    self.match_order = order
                        .into_iter()
                        .filter(|k| self.matches.contains_key(k))
                        .collect();
                }
            }
        }
    }

    /// The final verdict of a flow: an expectation it matched, else a learned endpoint when
    /// its own payload says nothing, else its own verdict.
    fn label(&mut self, f: &mut Flow, reason: EndReason, classifier: &Classifier) -> Verdict {
        let own = classifier.verdict(f);
        let payload = f
            .state
            .detection
            .as_deref()
            .filter(|d| d.confidence == Confidence::Payload && d.protocol != "unknown")
            .map(|d| d.protocol);
        // An interim record leaves the match for the flow's later records.
        let k = (f.key, f.first_ts);
        let m = if reason.is_interim() {
            self.matches.get(&k).cloned()
        } else {
            self.matches.remove(&k)
        };
        if let Some(m) = m {
            let agrees =
                |p: &str| p == m.label.protocol || (is_media(p) && is_media(m.label.protocol));
            match payload {
                Some(p) if !agrees(p) => {
                    let mut v = own;
                    v.evidence.push_str(&format!(
                        "; payload wins over the expectation ({}, announced by {})",
                        m.label.protocol, m.parent
                    ));
                    return v;
                }
                Some(_) => {
                    // Only here is the flow's own evidence needed (most flows match nothing).
                    let ev = f
                        .state
                        .detection
                        .as_deref()
                        .map_or("", |d| d.evidence.as_str());
                    let how = format!("{}; payload agrees: {ev}", m.label.how);
                    return self.relabel(
                        f,
                        classifier,
                        &m.label,
                        how,
                        &m.parent,
                        Confidence::Expectation,
                    );
                }
                None => {
                    let how = m.label.how.clone();
                    return self.relabel(
                        f,
                        classifier,
                        &m.label,
                        how,
                        &m.parent,
                        Confidence::Expectation,
                    );
                }
            }
        }
        let weak =
            matches!(own.confidence, Confidence::Port | Confidence::None) || own.protocol == "tls";
        // DCE/RPC seen only after its bind (a connection joined mid-stream) proves the protocol
        // but not the interface: a learned interface on its endpoint completes it.
        let bare_rpc = own.protocol == "dcerpc"
            && own.confidence == Confidence::Payload
            && f.state.detection.as_deref().is_some_and(|d| {
                !d.fields
                    .iter()
                    .any(|(k, _)| *k == "exwatch.dcerpc.interface")
            });
        if (weak || bare_rpc) && f.key.proto == IPPROTO_TCP && !self.endpoints.is_empty() {
            let ((oa, op), (ra, rp)) = f.endpoints();
            let until = f.last_ts.saturating_add(HOLD);
            // A flow seen mid-stream may have its server guessed wrong: try both sides.
            let sides = [(ra, rp), (oa, op)];
            let n = if f.mid_stream { 2 } else { 1 };
            let found = sides[..n]
                .iter()
                .find_map(|&(a, p)| {
                    let server = Endpoint::new(to_ip(&a, f.key.v6), p, IPPROTO_TCP);
                    self.endpoints
                        .lookup(&server, until, || key_community_id(&f.key))
                })
                .filter(|(l, _)| weak || (l.protocol == "dcerpc" && l.interface.is_some()));
            if let Some((label, parent)) = found {
                self.stats.endpoints_applied += 1;
                let how = if weak {
                    label.how.clone()
                } else {
                    format!("{}; payload agrees: {}", label.how, own.evidence)
                };
                return self.relabel(f, classifier, &label, how, &parent, Confidence::Endpoint);
            }
        }
        own
    }

    /// Give a flow the label of another flow and classify it again (port hints and implicit
    /// TLS still apply); its own detection fields are kept.
    fn relabel(
        &mut self,
        f: &mut Flow,
        classifier: &Classifier,
        label: &crate::classify::expect::Label,
        how: String,
        parent: &str,
        confidence: Confidence,
    ) -> Verdict {
        let mut fields = f
            .state
            .detection
            .as_deref()
            .map(|d| d.fields.clone())
            .unwrap_or_default();
        if let Some(i) = &label.interface {
            fields.retain(|(k, _)| *k != "exwatch.dcerpc.interface");
            fields.push(("exwatch.dcerpc.interface", i.clone()));
        }
        fields.push(("exwatch.parent", parent.to_string()));
        f.state.detection = Some(Box::new(Detection {
            reversed: false,
            protocol: label.protocol,
            service: label.service.clone(),
            confidence,
            evidence: how,
            fields,
        }));
        classifier.verdict(f)
    }
}

fn is_media(p: &str) -> bool {
    p == "rtp" || p == "rtcp"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::expect::{Announcement, Label, Pin, SECOND};
    use crate::flow::EndReason;
    use crate::signatures::Signatures;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    fn announcement(i: u32) -> Announcement {
        Announcement {
            pin: Pin::Endpoint,
            at: Endpoint::new(IpAddr::V4(Ipv4Addr::from(i)), 6000, 17),
            label: Label {
                protocol: "rtp",
                service: None,
                interface: None,
                how: "flood".into(),
            },
            parent: "1:flood".into(),
        }
    }

    fn flow_to(sport: u16, port: u16, mid_stream: bool, detection: Option<Detection>) -> Flow {
        let p = crate::flow::tests::pkt(20, sport, 2, port, 0x18, 10 * SECOND);
        let mut f = Flow::new(&p, |_, _| false);
        f.update(&p);
        f.mid_stream = mid_stream;
        f.state.detection = detection.map(Box::new);
        f
    }

    fn rpc(interface: Option<&str>) -> Detection {
        Detection {
            reversed: false,
            protocol: "dcerpc",
            service: interface.map(str::to_string),
            confidence: Confidence::Payload,
            evidence: "DCE/RPC v5 request".into(),
            fields: interface
                .map(|i| vec![("exwatch.dcerpc.interface", i.to_string())])
                .unwrap_or_default(),
        }
    }

    /// A bound EMSMDB connection teaches its endpoint; a payload-less connection and one seen
    /// only after its bind take its label with confidence `endpoint`, whatever order the
    /// workers report them in; a connection to another port does not.
    #[test]
    fn learned_endpoint_labels_flows_without_evidence_of_their_own() {
        let c = Classifier::new(Arc::new(Signatures::embedded()));
        let bound = flow_to(50000, 1032, false, Some(rpc(Some("emsmdb"))));
        let confirm = Fact::confirmed(
            10 * SECOND,
            crate::classify::expect::Confirmation {
                server: Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 1032, 6),
                label: Label {
                    protocol: "dcerpc",
                    service: Some("emsmdb".into()),
                    interface: Some("emsmdb".into()),
                    how: "confirmed".into(),
                },
                parent: key_community_id(&bound.key),
            },
        );
        for flip in [false, true] {
            let mut l = Linker::new(2, 0, 1 << 20);
            let mut ready = Vec::new();
            let flows = vec![
                (flow_to(50001, 1032, true, None), EndReason::EndOfInput),
                (
                    flow_to(50002, 1032, true, Some(rpc(None))),
                    EndReason::EndOfInput,
                ),
                (flow_to(50003, 1033, true, None), EndReason::EndOfInput),
            ];
            let a = Report {
                worker: usize::from(flip),
                clock: 11 * SECOND,
                flows,
                facts: Vec::new(),
            };
            let b = Report {
                worker: usize::from(!flip),
                clock: 11 * SECOND,
                flows: Vec::new(),
                facts: vec![confirm.clone()],
            };
            let (first, second) = if flip { (b, a) } else { (a, b) };
            l.report(first, &c, &mut ready);
            l.report(second, &c, &mut ready);
            l.worker_done(0, &c, &mut ready);
            l.worker_done(1, &c, &mut ready);
            assert_eq!(ready.len(), 3);
            let v = |client: u16| {
                &ready
                    .iter()
                    .find(|(f, _, _)| f.orig_port() == client)
                    .unwrap()
                    .2
            };
            let none = v(50001);
            assert_eq!(
                (none.confidence, none.service.as_str()),
                (Confidence::Endpoint, "emsmdb")
            );
            let bare = v(50002);
            assert_eq!(bare.confidence, Confidence::Endpoint);
            assert!(
                bare.evidence.contains("payload agrees"),
                "{}",
                bare.evidence
            );
            assert_eq!(v(50003).confidence, Confidence::Port);
            assert_eq!(l.stats.endpoints_applied, 2);
        }
    }

    /// A flow no fact can relabel (TCP to 443) is released before any clock has passed it;
    /// flows to a port above 1023 wait, at most `max_held` of them, the rest going out early.
    #[test]
    fn waiting_flows_are_bounded_and_unlabellable_ones_do_not_wait() {
        let c = Classifier::new(Arc::new(Signatures::embedded()));
        let mut l = Linker::new(2, 0, 2);
        let mut ready = Vec::new();
        let flows = (0..5)
            .map(|i| (flow_to(50000 + i, 1032, false, None), EndReason::Eviction))
            .chain(std::iter::once((
                flow_to(50010, 443, false, None),
                EndReason::Eviction,
            )))
            .collect();
        let r = Report {
            worker: 0,
            clock: 11 * SECOND,
            flows,
            facts: Vec::new(),
        };
        l.report(r, &c, &mut ready);
        // Worker 1 has reported nothing: the watermark is 0.
        assert_eq!(l.held(), 2);
        assert_eq!(l.stats.flows_released_early, 3);
        assert_eq!(ready.len(), 4);
        assert!(ready.iter().any(|(f, _, _)| f.resp_port() == 443));
        l.worker_done(0, &c, &mut ready);
        l.worker_done(1, &c, &mut ready);
        assert_eq!((ready.len(), l.held()), (6, 0));
    }

    /// Two workers flood the sink with announcements for ten minutes of capture time: the
    /// table never holds more than its bound, pending facts are drained as the watermark
    /// passes them, and what was pushed out is counted (evicted or expired).
    #[test]
    fn flood_of_announcements_keeps_the_sink_bounded() {
        let c = Classifier::new(Arc::new(Signatures::embedded()));
        let cap = 4096;
        let mut l = Linker::with_caps(2, 0, cap, cap, 1 << 20);
        let mut ready = Vec::new();
        let per_report = 500u32;
        let mut i = 0u32;
        for step in 0..1200u64 {
            let clock = step * SECOND / 2;
            for w in 0..2 {
                let facts = (0..per_report)
                    .map(|_| {
                        i += 1;
                        Fact::announced(clock, announcement(i))
                    })
                    .collect();
                let r = Report {
                    worker: w,
                    clock: clock + 1,
                    flows: Vec::new(),
                    facts,
                };
                l.report(r, &c, &mut ready);
            }
            assert!(l.expectations.len() <= cap);
            assert!(l.expectations.queue_len() <= 2 * cap + 17);
            assert!(
                l.facts.is_empty(),
                "facts before the watermark are applied at once"
            );
        }
        let st = l.stats;
        assert_eq!(st.expectations_announced, u64::from(i));
        assert_eq!(
            st.expectations_announced - st.expectations_evicted - st.expectations_expired_unused,
            l.expectations.len() as u64
        );
        assert!(st.expectations_evicted > 0);
    }
}
