//! A worker thread: owns one shard of the traffic from its frames to its records. It decodes
//! the frames the reader hands it (raw, with their capture clock), reassembles fragments,
//! tracks and inspects its flows, labels them from the facts all workers publish (its own
//! copy of the cross-flow tables, `linker`), judges them against the policy with its own fork
//! of the judge, writes their NDJSON records into its own buffers and keeps its own summary.
//! The writer thread only concatenates the buffers; summaries and judges are merged at the end.

use super::exchange::{Exchange, Publication, UnwindGuard};
use super::linker::Linker;
use super::{Counters, RawBatch, RawFrame, Report, ToWorker, ToWriter, MAX_COPY, TICK};
use crate::classify::announce;
use crate::classify::detectors::REGISTRY;
use crate::classify::expect::{Fact, SLACK};
use crate::classify::inspect::{Inspector, Outcome};
use crate::classify::{Classifier, Detection, Flow, FlowTable, Verdict};
use crate::decode::frag::{FragLimits, Offer, Reassembler};
use crate::decode::tcp_flags::{ACK, SYN};
use crate::decode::{self, Decoded, IpPair, Undecodable, IPPROTO_TCP, IPPROTO_UDP, L4};
use crate::flow::{Class, EndReason, FlowKey, FlowPacket, Timeouts};
use crate::policy::{FlowFacts, FlowJudge, Kind};
use crate::report::flows_csv;
use crate::report::inventory::Inventory;
use crate::report::record::{self, RecordContext};
use crate::report::summary::{ReadStats, Summary, WorkerStats};
use crossbeam::channel::{Receiver, Sender};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Finished flows are handed to the linker in runs of this many.
pub(super) const FLUSH_FLOWS: usize = 1024;
/// One packet in this many has its processing time measured.
const SAMPLE_EVERY: u64 = 16;
/// Facts buffered before they are published anyway.
const FLUSH_FACTS: usize = 4096;
/// Record bytes buffered before they go to the writer.
const FLUSH_BYTES: usize = 256 << 10;

/// What became of a message a worker handled.
pub enum Step {
    /// A batch, emptied, for the reader to fill again.
    Spare(RawBatch),
    Next,
    /// The input has ended.
    Done,
}

/// What a worker hands back when its input has ended.
pub struct WorkerResult {
    pub stats: WorkerStats,
    pub summary: Summary,
    pub read: ReadStats,
    pub link: crate::classify::expect::LinkStats,
    pub judge: Box<dyn FlowJudge>,
    /// The inventory of this worker's flows (`None`: not asked for).
    pub inventory: Option<Inventory>,
}

/// How a worker is set up.
pub struct WorkerConfig {
    pub id: usize,
    pub classifier: Arc<Classifier>,
    pub max_flows: usize,
    pub timeouts: Timeouts,
    pub frag: FragLimits,
    pub write_records: bool,
    /// Build a `--flows-csv` row for every finished flow.
    pub flows_csv: bool,
    /// Keep an inventory of the flows (`--report`, `--summary-json`).
    pub inventory: bool,
    /// Live capture: records go to the writer after every batch and tick, not in large runs.
    pub flush_each: bool,
    /// Judge each flow when its payload verdict is reached while it is alive (alerts).
    pub notify_verdicts: bool,
    /// What every record shares (observer, home networks, rule set).
    pub records: Arc<RecordContext>,
}

/// One shard's flows, from frames to records.
pub struct Worker<'a> {
    id: usize,
    classifier: Arc<Classifier>,
    exchange: &'a Exchange,
    /// Facts not yet published, stamped with reader clocks.
    facts: Vec<Fact>,
    /// The clock of the last publication.
    reported: u64,
    table: FlowTable,
    reasm: Reassembler,
    clock: u64,
    /// The capture of the frame being decoded (`RawFrame::file`).
    file: usize,
    finished: Vec<(Flow, EndReason)>,
    expired: Vec<(Flow, EndReason)>,
    stats: WorkerStats,
    read: ReadStats,
    linker: Linker,
    /// Reader clocks of this worker's start notices not yet due (oldest first).
    notices: VecDeque<u64>,
    max_notices: usize,
    ready: Vec<(Flow, EndReason, Verdict)>,
    inbox: Vec<Publication>,
    judge: Box<dyn FlowJudge>,
    summary: Summary,
    write_records: bool,
    flush_each: bool,
    notify_verdicts: bool,
    records: Arc<RecordContext>,
    json: Vec<u8>,
    /// `--flows-csv` rows (`None`: not asked for).
    rows: Option<Vec<u8>>,
    /// The inventory of finished flows (`None`: not asked for).
    inventory: Option<Inventory>,
    writer: Sender<ToWriter>,
    /// Emptied record buffers the writer hands back: a fresh buffer per flush would be fresh
    /// memory the kernel has to zero.
    spare_json: Receiver<Vec<u8>>,
    counters: Arc<Counters>,
    /// The table size last added to `counters.active_flows`.
    active_reported: u64,
}

impl<'a> Worker<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: WorkerConfig,
        workers: usize,
        exchange: &'a Exchange,
        judge: Box<dyn FlowJudge>,
        writer: Sender<ToWriter>,
        spare_json: Receiver<Vec<u8>>,
        counters: Arc<Counters>,
    ) -> Self {
        Worker {
            id: cfg.id,
            classifier: cfg.classifier,
            exchange,
            facts: Vec::new(),
            reported: 0,
            table: FlowTable::new(cfg.max_flows, cfg.timeouts),
            reasm: Reassembler::new(cfg.frag),
            clock: 0,
            file: 0,
            finished: Vec::with_capacity(FLUSH_FLOWS),
            expired: Vec::new(),
            stats: WorkerStats::new(),
            read: ReadStats::default(),
            // Flows waiting for the watermark, and start notices waiting for their time, are
            // each bounded by the flow limit, so a flood of short flows cannot outgrow it.
            linker: Linker::new(workers, cfg.id, cfg.max_flows),
            notices: VecDeque::new(),
            max_notices: cfg.max_flows.max(1),
            ready: Vec::new(),
            inbox: Vec::new(),
            judge,
            summary: Summary::new(),
            write_records: cfg.write_records,
            flush_each: cfg.flush_each,
            notify_verdicts: cfg.notify_verdicts,
            records: cfg.records,
            json: Vec::new(),
            rows: cfg.flows_csv.then(Vec::new),
            inventory: cfg.inventory.then(Inventory::new),
            writer,
            spare_json,
            counters,
            active_reported: 0,
        }
    }

    /// Process messages until the reader says the input has ended, then wait for every other
    /// worker's last facts, write every remaining record and return what was counted.
    pub fn run(mut self, rx: Receiver<ToWorker>, pool: Sender<RawBatch>) -> WorkerResult {
        let _guard = self.unwind_guard();
        for msg in rx.iter() {
            match self.handle(msg) {
                Step::Spare(b) => {
                    let _ = pool.send(b);
                }
                Step::Next => {}
                Step::Done => break,
            }
        }
        self.finish()
    }

    /// Publishes this worker's last clock if its thread unwinds (held for the thread's life).
    pub fn unwind_guard(&self) -> UnwindGuard<'a> {
        UnwindGuard {
            exchange: self.exchange,
            id: self.id,
        }
    }

    /// This worker's own reader of a capture every worker reads whole has read `frames`
    /// frames (`u64::MAX`: all): it waits here while it is too far ahead of the others
    /// (`exchange::MAX_AHEAD`).
    pub fn pace(&self, frames: u64) {
        self.exchange.pace(self.id, frames);
    }

    /// One message from this worker's reader (a reader on the worker's own thread calls it
    /// directly): a batch comes back emptied, for the reader to fill again.
    pub fn handle(&mut self, msg: ToWorker) -> Step {
        match msg {
            ToWorker::Batch(mut b) => {
                self.batch(&b);
                self.end_batch(b.clock);
                b.frames.clear();
                b.data.clear();
                Step::Spare(b)
            }
            ToWorker::Tick { clock } => {
                self.clock = self.clock.max(clock);
                self.expire();
                self.publish(self.clock);
                self.collect();
                self.report_active();
                Step::Next
            }
            ToWorker::Finish {
                clock,
                reason: open,
                file,
            } => {
                self.clock = self.clock.max(clock);
                self.file = usize::from(file);
                self.expire();
                let incomplete = self.reasm.finish();
                count(
                    &mut self.read,
                    self.file,
                    Undecodable::FragmentIncomplete,
                    u64::from(incomplete),
                );
                // Ending flows produce no facts: say so at once, so that the flows that
                // follow are released as soon as every worker has said the same, instead
                // of all being held until this worker has emptied its table.
                self.publish(u64::MAX);
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
                    if self.finished.len() >= FLUSH_FLOWS {
                        self.publish(u64::MAX);
                        self.collect();
                    }
                }
                Step::Done
            }
        }
    }

    /// After the input's end: wait for every other worker's last facts, write every
    /// remaining record and return what was counted.
    pub fn finish(mut self) -> WorkerResult {
        // Every fact this worker will ever make is out.
        self.publish(u64::MAX);
        while self.linker.watermark() != u64::MAX {
            let mut inbox = std::mem::take(&mut self.inbox);
            self.exchange
                .wait(self.id, &mut inbox, Duration::from_millis(50));
            self.inbox = inbox;
            self.collect();
        }
        self.collect();
        self.send_records();
        self.report_active();
        let link = self.linker.stats;
        WorkerResult {
            stats: std::mem::take(&mut self.stats),
            summary: std::mem::take(&mut self.summary),
            read: std::mem::take(&mut self.read),
            link,
            judge: self.judge,
            inventory: self.inventory.take(),
        }
    }

    /// Decode the frames of a batch and track them.
    fn batch(&mut self, b: &RawBatch) {
        for fr in &b.frames {
            let frame = b
                .data
                .get(fr.off as usize..(fr.off + fr.len) as usize)
                .unwrap_or_default();
            self.take_frame(fr, frame);
        }
    }

    /// One frame, from a batch or straight from a reader on this worker's own thread (which
    /// then copies nothing, and calls `end_batch` where a batch would have ended).
    pub fn take_frame(&mut self, fr: &RawFrame, frame: &[u8]) {
        let sample = self.stats.packets % SAMPLE_EVERY == 0;
        let t0 = sample.then(Instant::now);
        self.file = usize::from(fr.file);
        self.frame(fr.linktype, fr.ts, fr.clock, frame);
        if let Some(t0) = t0 {
            self.stats
                .proc_ns
                .saturating_record(t0.elapsed().as_nanos().max(1) as u64);
        }
        self.stats.packets += 1;
    }

    /// After a batch of frames, every one at or before `clock`: the clock moves on, flows
    /// expire, and facts and finished flows go out when due.
    pub fn end_batch(&mut self, clock: u64) {
        // Safe only after the batch: every packet in it is at or before its clock.
        self.clock = self.clock.max(clock);
        self.expire();
        let due = self.clock >= self.reported.saturating_add(TICK)
            || self.finished.len() >= FLUSH_FLOWS
            || self.facts.len() >= FLUSH_FACTS;
        if due {
            self.publish(self.clock);
        }
        self.collect();
        self.report_active();
    }

    /// Decode one frame and track it (or the datagram it completes).
    fn frame(&mut self, lt: i32, ts: u64, clock: u64, frame: &[u8]) {
        let macs = decode::macs(lt, frame);
        let at = Stamp { ts, clock, macs };
        match decode::decode(lt, frame) {
            Err(u) => count(&mut self.read, self.file, u, 1),
            Ok(Decoded::Packet(p)) => {
                self.read.count_decoded(self.file, 1);
                self.dispatch(&p.ip, p.vlan, p.proto, &p.l4, &at, 1, p.ip_len);
            }
            Ok(Decoded::Fragment(f)) => {
                let offer = self.reasm.offer(&f, ts);
                for (u, n) in self.reasm.take_dropped() {
                    count(&mut self.read, self.file, u, u64::from(n));
                }
                match offer {
                    Offer::Held => {}
                    Offer::Refused(u, held) => {
                        count(&mut self.read, self.file, u, u64::from(held) + 1)
                    }
                    Offer::Complete(d) => {
                        self.read.datagrams_reassembled += 1;
                        let wire = d.data.len() as u32;
                        match decode::decode_l4(d.proto, &d.data, wire) {
                            Ok(l4) => {
                                self.read.count_decoded(self.file, u64::from(d.packets));
                                let bytes = d.ip_bytes.min(u64::from(u32::MAX)) as u32;
                                self.dispatch(&d.ip, d.vlan, d.proto, &l4, &at, d.packets, bytes);
                            }
                            Err(u) => count(&mut self.read, self.file, u, u64::from(d.packets)),
                        }
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &mut self,
        ip: &IpPair,
        vlan: [u16; 2],
        proto: u8,
        l4: &L4<'_>,
        at: &Stamp,
        frames: u32,
        ip_bytes: u32,
    ) {
        let (ts, clock) = (at.ts, at.clock);
        let (sport, dport, flags, seq, ack, payload, payload_len, icmp) = match *l4 {
            L4::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                payload,
                payload_len,
            } => (sport, dport, flags, seq, ack, payload, payload_len, 0),
            L4::Udp {
                sport,
                dport,
                payload,
                payload_len,
            } => (sport, dport, 0, 0, 0, payload, payload_len, 0),
            L4::Icmp { type_code } => (0, 0, 0, 0, 0, &[][..], 0, type_code),
            L4::Other => (0, 0, 0, 0, 0, &[][..], 0, 0),
        };
        let (key, from_lo) = FlowKey::new(ip, sport, dport, proto, vlan);
        let hash = key.hash64();
        // Detectors look only at the first few KiB of a flow: a packet's payload beyond
        // MAX_COPY is a hole to them, as a snaplen cut is.
        let payload = &payload[..payload.len().min(MAX_COPY)];
        let p = FlowPacket {
            ts,
            clock,
            hash,
            key,
            from_lo,
            tcp_flags: flags,
            seq,
            ack,
            frames,
            ip_bytes,
            payload_len,
            data_off: 0,
            data_len: payload.len() as u32,
            icmp,
            macs: at.macs,
        };
        if ts > self.clock {
            self.clock = ts;
        }
        self.packet(&p, payload);
    }

    fn packet(&mut self, p: &FlowPacket, payload: &[u8]) {
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
                    self.start_notice(p.clock, &f);
                }
                self.table.insert(f, self.clock)
            }
        };
        let f = self.table.get_mut(s);
        f.update(p);
        if p.payload_len > 0 {
            match f.state.detection.as_deref() {
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

    /// Tell every worker that a flow that could have been announced started. A notice takes
    /// effect `SLACK` after its clock; while `max_notices` are waiting for that, a new flow
    /// gets none (counted) and can match no expectation.
    fn start_notice(&mut self, clock: u64, f: &Flow) {
        let now = self.clock;
        while self
            .notices
            .front()
            .is_some_and(|&c| c.saturating_add(SLACK) <= now)
        {
            self.notices.pop_front();
        }
        if self.notices.len() >= self.max_notices {
            self.linker.stats.start_notices_dropped += 1;
            return;
        }
        self.notices.push_back(clock);
        self.facts
            .push(Fact::started(self.id, clock, f.key, f.first_ts));
    }

    /// Feed a payload to the flow's inspector, creating it on the first payload.
    fn inspect(&mut self, slot: u32, p: &FlowPacket, payload: &[u8]) {
        let proto = p.key.proto;
        if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
            return;
        }
        let f = self.table.get_mut(slot);
        if f.state.inspect.is_none() {
            let hint = self.classifier.port_hint(f);
            f.state.inspect = Some(Box::new(Inspector::new(REGISTRY, proto, hint)));
        }
        let dir = f.dir_of(p.from_lo);
        let (server, client) = (f.resp_port(), f.orig_port());
        let insp = f.state.inspect.as_mut().expect("created above");
        let mut outcome = insp.packet(
            REGISTRY,
            proto,
            dir,
            p.seq,
            payload,
            p.payload_len,
            server,
            client,
        );
        // A flow seen mid-stream whose payload shows the roles the other way round is turned
        // around before anything is announced from it (issue 15, class 8). The inspector's
        // buffers keep the old sides: `side` maps them.
        let mut turned = false;
        if let Outcome::Decided(d) = &mut outcome {
            turned = turn_if_reversed(f, d);
        }
        let side = |i: usize| if turned { 1 - i } else { i };
        let dir = side(dir);
        let f = &*f;
        let insp = f.state.inspect.as_deref().expect("created above");
        if let Outcome::Undecided = &outcome {
            // SDP announces when it is seen, whenever (or whether) the flow is decided: the
            // datagram, or the TCP stream so far (inspection keeps only the first datagram of
            // each UDP direction, and the answer is often a later one).
            let (seen, stream) = if proto == IPPROTO_UDP {
                (payload, false)
            } else {
                (insp.buffered()[dir], true)
            };
            let c = &self.classifier;
            announce::undecided_sip(f, c, dir, seen, stream, p.clock, &mut self.facts);
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
                    let i = side(i);
                    announce::announcements(f, who, i, b, p.clock, &mut parent, &mut self.facts);
                }
                if proto == IPPROTO_UDP && bufs[side(dir)] != payload {
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
        if settle(f, outcome, &self.classifier) && self.notify_verdicts {
            // The verdict is known while the flow lives: alerts need not wait for its end.
            let snap = f.snapshot();
            self.alert(&snap);
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

    /// A flow has ended: settle its inspection and hold it for the watermark.
    fn emit(&mut self, mut f: Flow, reason: EndReason) {
        finish_inspection(&mut f, &self.classifier);
        self.finished.push((f, reason));
    }

    /// Publish the facts and the clock to the other workers, and apply them here with the
    /// flows that finished: every fact stamped before `clock` is now out.
    fn publish(&mut self, clock: u64) {
        let facts = std::mem::take(&mut self.facts);
        self.exchange.publish(self.id, clock, &facts);
        self.reported = self.clock;
        let flows = std::mem::take(&mut self.finished);
        let r = Report {
            worker: self.id,
            clock,
            flows,
            facts,
        };
        let mut back = self.linker.report(r, &self.classifier, &mut self.ready);
        back.clear();
        self.finished = back;
        self.release();
    }

    /// Apply what the other workers published, and write what that released.
    fn collect(&mut self) {
        self.exchange.take(self.id, &mut self.inbox);
        for p in std::mem::take(&mut self.inbox) {
            let r = Report {
                worker: p.from,
                clock: p.clock,
                flows: Vec::new(),
                facts: p.facts,
            };
            self.linker.report(r, &self.classifier, &mut self.ready);
        }
        self.release();
        if self.flush_each || self.json.len() >= FLUSH_BYTES {
            self.send_records();
        }
    }

    /// Bring the shared count of active flows up to date with this worker's table.
    fn report_active(&mut self) {
        let now = self.table.len() as u64;
        let c = &self.counters.active_flows;
        if now > self.active_reported {
            c.fetch_add(now - self.active_reported, Relaxed);
        } else if now < self.active_reported {
            c.fetch_sub(self.active_reported - now, Relaxed);
        }
        self.active_reported = now;
    }

    /// Judge and write the flows whose final verdict is known.
    fn release(&mut self) {
        let ready = std::mem::take(&mut self.ready);
        if self.write_records && !ready.is_empty() {
            self.counters.records.fetch_add(ready.len() as u64, Relaxed);
        }
        for (f, reason, verdict) in ready {
            let out = self.write_records.then_some(&mut self.json);
            let facts = FlowFacts::new(&f, &verdict);
            let notes = if reason.is_interim() {
                self.judge.assess(&facts)
            } else {
                self.judge.judge(&facts)
            };
            if let (Some(rows), false) = (&mut self.rows, reason.is_interim()) {
                flows_csv::row(rows, &f, reason, &verdict, &notes);
            }
            if let (Some(inv), false) = (&mut self.inventory, reason.is_interim()) {
                inv.add(&f, &verdict, &notes);
            }
            let s = record::build_noted(&f, reason, verdict, &notes, &self.records, out);
            self.summary.add_flow(&s);
            // The end of input releases every open flow at once: records go out in runs, not
            // as one buffer of all of them.
            if self.json.len() >= FLUSH_BYTES {
                self.send_records();
            }
        }
    }

    /// A live flow's verdict was just reached: a flow the policy does not expect raises an
    /// alert record now, not at its end.
    fn alert(&mut self, f: &Flow) {
        let verdict = self.classifier.verdict(f);
        self.summary.live_verdicts += 1;
        let notes = self.judge.assess(&FlowFacts::new(f, &verdict));
        if notes
            .policy
            .as_ref()
            .is_some_and(|p| p.kind != Kind::Allowed)
        {
            self.summary.alerts += 1;
            self.counters.alerts.fetch_add(1, Relaxed);
            if self.write_records {
                self.counters.records.fetch_add(1, Relaxed);
            }
            let out = self.write_records.then_some(&mut self.json);
            record::build_noted(f, EndReason::Alert, verdict, &notes, &self.records, out);
        }
    }

    /// Hand the buffered records to the writer.
    fn send_records(&mut self) {
        if let Some(rows) = self.rows.as_mut().filter(|r| !r.is_empty()) {
            let _ = self.writer.send(ToWriter::FlowRows(std::mem::take(rows)));
        }
        if self.json.is_empty() {
            return;
        }
        let spare = self.spare_json.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.json, spare);
        // The writer is gone only when it gave up on the output; records are then lost
        // anyway, and it has said why.
        let _ = self.writer.send(ToWriter::Records(full));
    }
}

/// When and through which link addresses a frame arrived.
struct Stamp {
    ts: u64,
    clock: u64,
    macs: [[u8; 6]; 2],
}

fn count(read: &mut ReadStats, file: usize, u: Undecodable, n: u64) {
    if n > 0 {
        read.count_undecodable(file, u.label(), n);
    }
}

/// Turn a flow around when its payload showed the roles the other way round and its
/// originator was only guessed: a TCP flow seen mid-stream, or any UDP flow (the first sender
/// is a guess; a first datagram that answers a request the capture missed makes the flow one
/// seen mid-stream). True when turned.
fn turn_if_reversed(f: &mut Flow, d: &mut Detection) -> bool {
    if !d.reversed || !(f.mid_stream || f.key.proto == IPPROTO_UDP) {
        return false;
    }
    f.turn_around();
    f.mid_stream = true;
    d.reversed = false;
    true
}

/// Record what inspection concluded and drop its state once it has; true when it has.
fn settle(f: &mut Flow, outcome: Outcome, classifier: &Classifier) -> bool {
    if let Outcome::Decided(mut d) | Outcome::GaveUp(mut d) = outcome {
        // Decided at its end the other way round: turned around as when decided on a packet.
        turn_if_reversed(f, &mut d);
        classifier.name_tunnel_inner(&mut d);
        f.state.detection = Some(Box::new(d));
        f.state.inspect = None;
        return true;
    }
    false
}

/// A flow that ends while still undecided gets a last look at what it buffered.
fn finish_inspection(f: &mut Flow, classifier: &Classifier) {
    if let Some(mut insp) = f.state.inspect.take() {
        let (server, client) = (f.resp_port(), f.orig_port());
        settle(
            f,
            insp.finish(REGISTRY, f.key.proto, server, client),
            classifier,
        );
    }
}

fn idle_reason(f: &Flow) -> EndReason {
    if f.class == Class::Closed {
        EndReason::Closed
    } else {
        EndReason::Idle
    }
}
