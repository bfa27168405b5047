//! A worker thread: owns one shard's flow table, classifies and serialises finished flows.

use super::{Batch, Counters, Report, ToSink, ToWorker, TICK};
use crate::classify::announce;
use crate::classify::detectors::REGISTRY;
use crate::classify::expect::Fact;
use crate::classify::inspect::{Inspector, Outcome};
use crate::classify::Classifier;
use crate::decode::tcp_flags::{ACK, SYN};
use crate::decode::{IPPROTO_TCP, IPPROTO_UDP};
use crate::flow::table::FlowTable;
use crate::flow::{Class, EndReason, Flow, FlowPacket, Timeouts};
use crate::report::summary::WorkerStats;
use crossbeam::channel::{Receiver, Sender};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// Finished flows are handed to the sink in batches of this many.
pub(super) const FLUSH_FLOWS: usize = 1024;
/// One packet in this many has its processing time measured.
const SAMPLE_EVERY: u64 = 16;

/// Facts buffered before a report is sent anyway.
const FLUSH_FACTS: usize = 4096;

/// Per-shard flow tracking.
pub struct Worker {
    id: usize,
    classifier: Arc<Classifier>,
    /// Facts for the sink's cross-flow tables, stamped with reader clocks.
    facts: Vec<Fact>,
    /// The clock of the last report sent to the sink.
    reported: u64,
    /// The input has ended: every fact has been sent.
    no_more_facts: bool,
    table: FlowTable,
    clock: u64,
    finished: Vec<(Flow, EndReason)>,
    stats: WorkerStats,
    expired: Vec<(Flow, EndReason)>,
    /// Snapshots of flows whose verdict was just reached, when `notify_verdicts`.
    decided: Vec<Flow>,
    notify_verdicts: bool,
    counters: Arc<Counters>,
    /// Emptied report buffers the sink hands back: a fresh buffer per report would be fresh
    /// memory the kernel has to zero (page faults showed in the profile).
    spares: Option<Receiver<Vec<(Flow, EndReason)>>>,
}

impl Worker {
    pub fn new(
        id: usize,
        classifier: Arc<Classifier>,
        max_flows: usize,
        timeouts: Timeouts,
    ) -> Self {
        Worker {
            id,
            classifier,
            facts: Vec::new(),
            reported: 0,
            no_more_facts: false,
            table: FlowTable::new(max_flows, timeouts),
            clock: 0,
            finished: Vec::with_capacity(FLUSH_FLOWS),
            stats: WorkerStats::new(),
            expired: Vec::new(),
            decided: Vec::new(),
            notify_verdicts: false,
            counters: Arc::default(),
            spares: None,
        }
    }

    /// Take report buffers for finished flows from `spares` when there are some.
    pub fn with_spares(mut self, spares: Receiver<Vec<(Flow, EndReason)>>) -> Self {
        self.spares = Some(spares);
        self
    }

    /// Share the live counters (flow-table-full evictions) and, with `notify_verdicts`,
    /// report each verdict reached while its flow is alive.
    pub fn with_counters(mut self, counters: Arc<Counters>, notify_verdicts: bool) -> Self {
        self.counters = counters;
        self.notify_verdicts = notify_verdicts;
        self
    }

    /// Process messages until the reader says the input has ended.
    pub fn run(mut self, rx: Receiver<ToWorker>, sink: Sender<ToSink>, pool: Sender<Batch>) {
        for msg in rx.iter() {
            match msg {
                ToWorker::Batch(mut b) => {
                    for p in &b.pkts {
                        let sample = self.stats.packets % SAMPLE_EVERY == 0;
                        let t0 = sample.then(Instant::now);
                        self.packet(p, &b.data);
                        if let Some(t0) = t0 {
                            self.stats
                                .proc_ns
                                .saturating_record(t0.elapsed().as_nanos().max(1) as u64);
                        }
                        self.stats.packets += 1;
                    }
                    // Safe only after the batch: every packet in it is at or before its clock.
                    self.clock = self.clock.max(b.clock);
                    self.expire();
                    b.pkts.clear();
                    b.data.clear();
                    let _ = pool.send(b);
                    self.flush_if_full(&sink);
                    if self.clock >= self.reported.saturating_add(TICK) {
                        self.send(&sink);
                    }
                }
                ToWorker::Tick { clock } => {
                    self.clock = self.clock.max(clock);
                    self.expire();
                    self.send(&sink);
                }
                ToWorker::Finish {
                    clock,
                    reason: open,
                } => {
                    self.clock = self.clock.max(clock);
                    // Ending flows produce no facts: say so at once, so the sink can write
                    // the flows that follow instead of holding them for the other workers.
                    self.no_more_facts = true;
                    self.send(&sink);
                    for slot in 0..self.table.slots() {
                        let Some(f) = self.table.take(slot) else {
                            continue;
                        };
                        let reason = if self.table.is_idle(&f, self.clock) {
                            idle_reason(&f)
                        } else {
                            open
                        };
                        self.emit(f, reason);
                        self.flush_if_full(&sink);
                    }
                    break;
                }
            }
        }
        self.send(&sink);
        let stats = std::mem::take(&mut self.stats);
        let _ = sink.send(ToSink::Done(self.id, Box::new(stats)));
    }

    fn packet(&mut self, p: &FlowPacket, data: &[u8]) {
        if p.ts > self.clock {
            self.clock = p.ts;
        }
        let mut slot = self.table.find(&p.key, p.hash);
        if let Some(s) = slot {
            let f = self.table.get(s);
            let reuse = f.class == Class::Closed && p.tcp_flags & (SYN | ACK) == SYN;
            if reuse || self.table.is_idle(f, p.ts) {
                let f = self.table.remove(s);
                let reason = if reuse {
                    EndReason::Closed
                } else {
                    idle_reason(&f)
                };
                self.emit(f, reason);
                slot = None;
            }
        }
        if let Some(s) = slot {
            let f = self.table.get(s);
            if f.crosses_active_boundary(p.ts, self.table.timeouts.active) {
                // The flow as it stood before this packet: cumulative counters since its start.
                self.finished.push((f.snapshot(), EndReason::ActiveTimeout));
            }
        }
        let s = match slot {
            Some(s) => s,
            None => {
                if self.table.is_full() {
                    if let Some(old) = self.table.evict_oldest() {
                        self.stats.evictions += 1;
                        self.counters.flow_table_full.fetch_add(1, Relaxed);
                        self.emit(old, EndReason::Eviction);
                    }
                }
                let c = &self.classifier;
                let f = Flow::new(p, |proto, port| c.is_service_port(proto, port));
                if announce::may_be_announced(&f) {
                    self.facts.push(Fact::started(p.clock, f.key, f.first_ts));
                }
                self.table.insert(f, self.clock)
            }
        };
        let f = self.table.get_mut(s);
        f.update(p);
        if p.payload_len > 0 {
            let start = p.data_off as usize;
            let payload = data
                .get(start..start + p.data_len as usize)
                .unwrap_or_default();
            match f.detection.as_deref() {
                None => self.inspect(s, p, payload),
                Some(d) => {
                    // Decided announcers keep being read: the SDP answer, re-INVITEs and
                    // later ept_map replies come after the decision.
                    if let Some(who) = announce::announcer(f, d, &self.classifier)
                        .filter(|_| announce::watching(f))
                    {
                        let dir = f.dir_of(p.from_lo);
                        announce::announcements(
                            f,
                            who,
                            dir,
                            payload,
                            p.clock,
                            &mut None,
                            &mut self.facts,
                        );
                    }
                }
            }
        }
        self.table.touch(s, self.clock);
    }

    /// Feed a payload to the flow's inspector, creating it on the first payload.
    fn inspect(&mut self, slot: u32, p: &FlowPacket, payload: &[u8]) {
        let proto = p.key.proto;
        if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
            return;
        }
        let f = self.table.get_mut(slot);
        if f.inspect.is_none() {
            let hint = self.classifier.port_hint(f);
            f.inspect = Some(Box::new(Inspector::new(REGISTRY, proto, hint)));
        }
        let dir = f.dir_of(p.from_lo);
        let (server, client) = (f.resp_port(), f.orig_port());
        let insp = f.inspect.as_mut().expect("created above");
        let outcome = insp.packet(
            REGISTRY,
            proto,
            dir,
            p.seq,
            payload,
            p.payload_len,
            server,
            client,
        );
        let f = &*f;
        let insp = f.inspect.as_deref().expect("created above");
        if let Outcome::Undecided = &outcome {
            if proto == IPPROTO_UDP
                && announce::looks_like_sip(payload)
                && insp.buffered()[dir] != payload
            {
                let um = announce::is_um_port(f, &self.classifier);
                let who = announce::Announcer::Sip { um };
                announce::announcements(f, who, dir, payload, p.clock, &mut None, &mut self.facts);
            }
        }
        if let Outcome::Decided(d) = &outcome {
            // What the decision tells about other flows, from everything buffered so far
            // (and the current datagram, which UDP buffers keep only when it is the first).
            let mut parent = None;
            announce::decided(
                f,
                d,
                &self.classifier,
                p.clock,
                &mut parent,
                &mut self.facts,
            );
            if let Some(who) = announce::announcer(f, d, &self.classifier) {
                let bufs = insp.buffered();
                for (i, b) in bufs.iter().enumerate() {
                    announce::announcements(f, who, i, b, p.clock, &mut parent, &mut self.facts);
                }
                if proto == IPPROTO_UDP && bufs[dir] != payload {
                    announce::announcements(
                        f,
                        who,
                        dir,
                        payload,
                        p.clock,
                        &mut parent,
                        &mut self.facts,
                    );
                }
            }
        }
        let f = self.table.get_mut(slot);
        if settle(f, outcome) && self.notify_verdicts {
            // The verdict is known while the flow lives: alerts need not wait for its end.
            self.decided.push(f.snapshot());
        }
    }

    fn expire(&mut self) {
        let mut expired = std::mem::take(&mut self.expired);
        self.table.expire(self.clock, &mut expired);
        for (f, reason) in expired.drain(..) {
            self.emit(f, reason);
        }
        self.expired = expired;
    }

    /// A flow has ended: settle its inspection here (the detectors' state is per worker),
    /// and leave classification and serialisation to the sink, which has a core to spare.
    fn emit(&mut self, mut f: Flow, reason: EndReason) {
        finish_inspection(&mut f);
        self.finished.push((f, reason));
    }

    fn flush_if_full(&mut self, sink: &Sender<ToSink>) {
        if self.finished.len() >= FLUSH_FLOWS || self.facts.len() >= FLUSH_FACTS {
            self.send(sink);
        }
    }

    /// Report finished flows, facts and the clock: every fact stamped before `clock` has
    /// now been sent.
    fn send(&mut self, sink: &Sender<ToSink>) {
        if !self.decided.is_empty() {
            let _ = sink.send(ToSink::Decided(std::mem::take(&mut self.decided)));
        }
        let flows = if self.finished.is_empty() {
            Vec::new()
        } else if let Some(mut spare) = self.spares.as_ref().and_then(|r| r.try_recv().ok()) {
            spare.append(&mut self.finished);
            spare
        } else {
            // Sized to what is sent: reports go out every second of capture time, mostly
            // small, and a fresh FLUSH_FLOWS-sized buffer each time costs page faults.
            self.finished.split_off(0)
        };
        let facts = std::mem::take(&mut self.facts);
        self.reported = self.clock;
        let clock = if self.no_more_facts {
            u64::MAX
        } else {
            self.clock
        };
        let _ = sink.send(ToSink::Report(Report {
            worker: self.id,
            clock,
            flows,
            facts,
        }));
    }
}

/// Record what inspection concluded and drop its state once it has; true when it has.
fn settle(f: &mut Flow, outcome: Outcome) -> bool {
    if let Outcome::Decided(d) | Outcome::GaveUp(d) = outcome {
        f.detection = Some(Box::new(d));
        f.inspect = None;
        return true;
    }
    false
}

/// A flow that ends while still undecided gets a last look at what it buffered.
fn finish_inspection(f: &mut Flow) {
    if let Some(mut insp) = f.inspect.take() {
        let (server, client) = (f.resp_port(), f.orig_port());
        settle(f, insp.finish(REGISTRY, f.key.proto, server, client));
    }
}

fn idle_reason(f: &Flow) -> EndReason {
    if f.class == Class::Closed {
        EndReason::Closed
    } else {
        EndReason::Idle
    }
}
