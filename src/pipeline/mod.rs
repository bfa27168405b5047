//! Pipeline: one reader decodes and shards packets by flow hash to N workers over bounded
//! channels, in batches; each worker owns a flow table; one sink writes records and the summary.

pub mod control;
pub mod reader;
pub mod sink;
pub mod worker;

use crate::capture::live::LiveCapture;
use crate::capture::CaptureError;
use crate::classify::expect::Fact;
use crate::classify::{Classifier, Verdict};
use crate::decode::frag::FragLimits;
use crate::flow::{EndReason, Flow};
use crate::flow::{FlowPacket, Timeouts};
use crate::policy::{FlowFacts, FlowJudge, Kind, NoJudge};
use crate::report::record;
use crate::report::summary::{LiveStats, Summary, WorkerStats};
use crossbeam::channel;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Packets per batch handed from the reader to a worker.
pub const BATCH_PACKETS: usize = 512;
/// Every worker reports its clock to the sink at least this often in capture time (ns).
pub const TICK: u64 = crate::classify::expect::SECOND;
/// Payload bytes copied per packet: detectors look only at the first few KiB of a flow.
pub const MAX_COPY: usize = 2048;

/// Everything an audit run needs, validated.
pub struct AuditConfig {
    pub captures: Vec<String>,
    pub workers: usize,
    pub max_flows: usize,
    pub timeouts: Timeouts,
    pub frag: FragLimits,
    pub classifier: Arc<Classifier>,
    pub write_records: bool,
    pub progress: bool,
    /// Workers report each flow whose payload verdict is reached while it is alive
    /// (`ToSink::Decided`), for alerts that cannot wait for the flow's end.
    pub verdict_events: bool,
    /// Live capture: print capture statistics to standard error this often.
    pub stats_interval: Option<Duration>,
}

/// Where the reader takes packets from.
pub enum Input {
    /// Capture files (or `-`), in order.
    Files(Vec<String>),
    /// An interface, until SIGINT or SIGTERM (`control`).
    Live(Box<LiveCapture>),
}

/// Where records go: a writer that can be reopened on SIGHUP (a rotated log file).
pub trait Output: Write {
    /// Close and reopen the same path; a no-op for standard output and sinks.
    fn reopen(&mut self) -> std::io::Result<()>;
}

/// A plain writer that cannot be reopened.
struct Fixed<'a>(&'a mut dyn Write);

impl Write for Fixed<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.0.write_all(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Output for Fixed<'_> {
    fn reopen(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Counters shared by the reader, the workers and the sink while a live capture runs, so the
/// sink can print them every `--stats-interval`.
#[derive(Default)]
pub struct Counters {
    pub packets_read: AtomicU64,
    pub received: AtomicU64,
    pub kernel_drops: AtomicU64,
    pub interface_drops: AtomicU64,
    pub queue_full_waits: AtomicU64,
    pub flow_table_full: AtomicU64,
}

impl Counters {
    /// A consistent-enough copy for a statistics line or the summary.
    pub fn live_stats(&self) -> LiveStats {
        let mut s = LiveStats::default();
        s.capture.received = self.received.load(Relaxed);
        s.capture.kernel_drops = self.kernel_drops.load(Relaxed);
        s.capture.interface_drops = self.interface_drops.load(Relaxed);
        s.queue_full_waits = self.queue_full_waits.load(Relaxed);
        s.flow_table_full = self.flow_table_full.load(Relaxed);
        s
    }
}

/// A run of packets for one worker, with the reader's clock when it was sent.
pub struct Batch {
    pub pkts: Vec<FlowPacket>,
    pub data: Vec<u8>,
    /// The latest capture time the reader had seen when it sent the batch.
    pub clock: u64,
}

impl Batch {
    fn new() -> Self {
        Batch {
            pkts: Vec::with_capacity(BATCH_PACKETS),
            data: Vec::with_capacity(BATCH_PACKETS * 256),
            clock: 0,
        }
    }
}

/// Messages from the reader to a worker.
pub enum ToWorker {
    Batch(Batch),
    /// No packet for this worker lately (live capture): the capture clock has moved on to
    /// `clock`, so idle flows expire and finished records go out now.
    Tick {
        clock: u64,
    },
    /// End of input: the final capture clock decides which open flows count as idle; the
    /// others end with `reason` (end of input, or shutdown of a live capture).
    Finish {
        clock: u64,
        reason: EndReason,
    },
}

/// What a worker hands the sink: finished flows, facts for the cross-flow tables, and its
/// clock (every fact stamped before it has been sent).
pub struct Report {
    pub worker: usize,
    pub clock: u64,
    pub flows: Vec<(Flow, EndReason)>,
    pub facts: Vec<Fact>,
}

/// Messages from workers to the sink.
pub enum ToSink {
    /// Finished flows and facts, to label, classify, write and count.
    Report(Report),
    /// Flows still alive whose payload verdict was just reached (snapshots), when
    /// `verdict_events` is on.
    Decided(Vec<Flow>),
    Done(usize, Box<WorkerStats>),
}

/// What an audit produced besides the records it wrote.
pub struct AuditOutcome {
    pub summary: Summary,
    pub errors: Vec<CaptureError>,
    /// Records could not be written (not counting a closed pipe).
    pub write_error: Option<std::io::Error>,
}

/// Run an offline audit of `cfg.captures`, writing NDJSON records to `out`.
pub fn run_audit(cfg: &AuditConfig, out: &mut dyn Write) -> AuditOutcome {
    run(
        cfg,
        Input::Files(cfg.captures.clone()),
        &mut Fixed(out),
        &mut || Ok(()),
        &mut NoJudge,
    )
}

/// Run the pipeline on `input`, writing NDJSON records to `out`. On SIGHUP (live capture)
/// `out` is reopened and `on_reopen` is called for the caller's other files.
pub fn run(
    cfg: &AuditConfig,
    input: Input,
    out: &mut dyn Output,
    on_reopen: &mut dyn FnMut() -> std::io::Result<()>,
    judge: &mut dyn FlowJudge,
) -> AuditOutcome {
    let live = matches!(input, Input::Live(_));
    let n = cfg.workers.max(1);
    let per_worker = cfg.max_flows.div_ceil(n).max(1);
    let counters = Arc::new(Counters::default());
    let (sink_tx, sink_rx) = channel::bounded::<ToSink>(64);
    let (pool_tx, pool_rx) = channel::unbounded::<Batch>();
    // A few spare report buffers per worker are enough: reports go out once a second of
    // capture time, and the sink empties each at once.
    let (spare_tx, spare_rx) = channel::bounded::<Vec<(Flow, EndReason)>>(4 * n.max(1));
    let mut worker_txs = Vec::with_capacity(n);
    let mut sink = Sink {
        cfg,
        out,
        judge,
        summary: Summary::new(),
        write_error: None,
        pipe_closed: false,
        json: Vec::with_capacity(1 << 20),
        flush_each: live,
        linker: sink::Linker::new(n),
        ready: Vec::new(),
        spares: spare_tx,
    };
    let (read_stats, errors) = std::thread::scope(|s| {
        for i in 0..n {
            let (tx, rx) = channel::bounded::<ToWorker>(32);
            worker_txs.push(tx);
            let sink_tx = sink_tx.clone();
            let pool_tx = pool_tx.clone();
            let spare_rx = spare_rx.clone();
            let classifier = cfg.classifier.clone();
            let timeouts = cfg.timeouts;
            let counters = counters.clone();
            let notify = cfg.verdict_events;
            std::thread::Builder::new()
                .name(format!("exwatch-worker-{i}"))
                .spawn_scoped(s, move || {
                    worker::Worker::new(i, classifier, per_worker, timeouts)
                        .with_counters(counters, notify)
                        .with_spares(spare_rx)
                        .run(rx, sink_tx, pool_tx)
                })
                .expect("spawning a worker thread");
        }
        drop(sink_tx);
        drop(pool_tx);
        let reader_counters = counters.clone();
        let reader = std::thread::Builder::new()
            .name("exwatch-reader".into())
            .spawn_scoped(s, move || {
                reader::Reader::new(cfg, worker_txs, pool_rx)
                    .with_counters(reader_counters)
                    .run(input)
            })
            .expect("spawning the reader thread");
        if live {
            let mut next_stats = cfg.stats_interval.map(|d| (Instant::now() + d, d));
            loop {
                match sink_rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(msg) => sink.message(msg),
                    Err(channel::RecvTimeoutError::Timeout) => {}
                    Err(channel::RecvTimeoutError::Disconnected) => break,
                }
                if control::take_reopen() {
                    sink.reopen(on_reopen);
                }
                if let Some((at, every)) = &mut next_stats {
                    if Instant::now() >= *at {
                        let read = counters.packets_read.load(Relaxed);
                        eprintln!("{}", counters.live_stats().line(read));
                        *at += *every;
                    }
                }
            }
        } else {
            for msg in sink_rx.iter() {
                sink.message(msg);
            }
        }
        reader.join().expect("reader thread panicked")
    });
    let Sink {
        mut summary,
        linker,
        mut write_error,
        pipe_closed,
        out,
        ..
    } = sink;
    if !pipe_closed && write_error.is_none() {
        if let Err(e) = out.flush() {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                write_error = Some(e);
            }
        }
    }
    summary.read = read_stats;
    summary.link = linker.stats;
    if live {
        let stats = counters.live_stats();
        if cfg.stats_interval.is_some() {
            // The last word on drops, however short the run.
            eprintln!("{}", stats.line(summary.read.packets_read));
        }
        summary.live = Some(stats);
    }
    AuditOutcome {
        summary,
        errors,
        write_error,
    }
}

/// The sink's state: classifies finished flows, writes their records, keeps the summary.
struct Sink<'a> {
    cfg: &'a AuditConfig,
    out: &'a mut dyn Output,
    /// Policy, firewall rules or learning: sees every final record; interim and alert records
    /// are only assessed, so that findings count each flow once.
    judge: &'a mut dyn FlowJudge,
    summary: Summary,
    write_error: Option<std::io::Error>,
    pipe_closed: bool,
    json: Vec<u8>,
    /// Flush the output after every message (live: records appear as flows end).
    flush_each: bool,
    /// Cross-flow labels: holds finished flows until the facts that may explain them are in.
    linker: sink::Linker,
    /// Flows whose final verdict is known, to write.
    ready: Vec<(Flow, EndReason, Verdict)>,
    /// Emptied report buffers go back to the workers (see `Worker::with_spares`).
    spares: channel::Sender<Vec<(Flow, EndReason)>>,
}

impl Sink<'_> {
    fn message(&mut self, msg: ToSink) {
        match msg {
            ToSink::Report(r) => {
                let spare = self.linker.report(r, &self.cfg.classifier, &mut self.ready);
                // Dropped when the workers hold enough already, or when it is one of the rare
                // large ones (end of input, a burst of expiries): spares stay a few MB at most.
                if spare.capacity() > 0 && spare.capacity() <= 4 * worker::FLUSH_FLOWS {
                    let _ = self.spares.try_send(spare);
                }
                self.release();
            }
            ToSink::Decided(flows) => {
                self.json.clear();
                for f in &flows {
                    // The verdict of a live flow is known here, before its end: a flow the
                    // policy does not expect raises an alert record now, not at its end.
                    let verdict = self.cfg.classifier.verdict(f);
                    self.summary.live_verdicts += 1;
                    let notes = self.judge.assess(&FlowFacts::new(f, &verdict));
                    if notes
                        .policy
                        .as_ref()
                        .is_some_and(|p| p.kind != Kind::Allowed)
                    {
                        self.summary.alerts += 1;
                        let out = self.cfg.write_records.then_some(&mut self.json);
                        record::build_noted(f, EndReason::Alert, verdict, &notes, out);
                    }
                }
                self.write();
            }
            ToSink::Done(i, w) => {
                self.summary.add_worker(&w);
                self.linker
                    .worker_done(i, &self.cfg.classifier, &mut self.ready);
                self.release();
            }
        }
    }

    /// Write the flows whose final verdict is known: the one place every record passes
    /// through, where the judge (policy, firewall rules, learning) sees it.
    fn release(&mut self) {
        if self.ready.is_empty() {
            return;
        }
        self.json.clear();
        for (f, reason, verdict) in self.ready.drain(..) {
            let out = self.cfg.write_records.then_some(&mut self.json);
            let facts = FlowFacts::new(&f, &verdict);
            let notes = if reason.is_interim() {
                self.judge.assess(&facts)
            } else {
                self.judge.judge(&facts)
            };
            let s = record::build_noted(&f, reason, verdict, &notes, out);
            self.summary.add_flow(&s);
        }
        self.write();
    }

    fn write(&mut self) {
        if self.pipe_closed || self.write_error.is_some() || self.json.is_empty() {
            return;
        }
        let mut r = self.out.write_all(&self.json);
        if r.is_ok() && self.flush_each {
            r = self.out.flush();
        }
        if let Err(e) = r {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                self.pipe_closed = true;
            } else {
                self.write_error = Some(e);
            }
        }
    }

    /// SIGHUP: flush and reopen every output file; a failure is reported, not fatal (the
    /// records keep going to the old file when it could not be replaced).
    fn reopen(&mut self, on_reopen: &mut dyn FnMut() -> std::io::Result<()>) {
        let _ = self.out.flush();
        if let Err(e) = self.out.reopen() {
            eprintln!("exwatch: SIGHUP: cannot reopen the records file: {e}");
        }
        if let Err(e) = on_reopen() {
            eprintln!("exwatch: SIGHUP: cannot reopen the summary file: {e}");
        }
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use crate::signatures::Signatures;

    pub fn config(capture: &str, verdict_events: bool) -> AuditConfig {
        AuditConfig {
            captures: vec![format!("{}/pcaps/{capture}", env!("CARGO_MANIFEST_DIR"))],
            workers: 2,
            max_flows: 1000,
            timeouts: Timeouts::default(),
            frag: FragLimits::default(),
            classifier: Arc::new(Classifier::new(Arc::new(Signatures::embedded()))),
            write_records: true,
            progress: false,
            verdict_events,
            stats_interval: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::config;
    use super::*;

    #[test]
    fn verdicts_reached_while_alive_reach_the_sink_once_per_flow() {
        let (mut on, mut off) = (Vec::new(), Vec::new());
        let a = run_audit(&config("http-exchange-plain.pcap", true), &mut on);
        let b = run_audit(&config("http-exchange-plain.pcap", false), &mut off);
        assert_eq!(b.summary.live_verdicts, 0, "off unless asked for");
        // Every flow here carries HTTP, decided while the connection is open; each at most once.
        assert!(a.summary.live_verdicts > 0);
        assert!(a.summary.live_verdicts <= a.summary.flows);
        // Workers hand flows over in any order: compare the records as sets.
        let lines = |v: &[u8]| {
            let mut l: Vec<Vec<u8>> = v.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
            l.sort();
            l
        };
        assert_eq!(
            lines(&on),
            lines(&off),
            "reporting verdicts changes no record"
        );
    }
}

#[cfg(test)]
mod alert_tests {
    use super::tests_support::config;
    use super::*;
    use crate::policy::file::Policy;
    use crate::policy::run::PolicyRun;

    fn audit(verdict_events: bool) -> (Vec<serde_json::Value>, AuditOutcome, PolicyRun) {
        let policy = format!("{}/examples/policy.toml", env!("CARGO_MANIFEST_DIR"));
        let mut judge = PolicyRun {
            policy: Some(Policy::load(std::path::Path::new(&policy)).unwrap()),
            ..PolicyRun::default()
        };
        let cfg = config("policy-cases.pcap", verdict_events);
        let mut out = Vec::new();
        let input = Input::Files(cfg.captures.clone());
        let o = run(
            &cfg,
            input,
            &mut Fixed(&mut out),
            &mut || Ok(()),
            &mut judge,
        );
        let records = out
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        (records, o, judge)
    }

    #[test]
    fn live_flows_the_policy_does_not_expect_raise_one_alert_before_their_final_record() {
        let (with, o, judge) = audit(true);
        let (without, _, plain) = audit(false);
        let alerts: Vec<&serde_json::Value> = with
            .iter()
            .filter(|r| r["event"]["kind"] == "alert")
            .collect();
        assert!(!alerts.is_empty(), "the cases hold unexpected flows");
        assert_eq!(o.summary.alerts, alerts.len() as u64);
        let finals: Vec<&serde_json::Value> = with
            .iter()
            .filter(|r| r["event"]["kind"] != "alert")
            .collect();
        assert_eq!(
            finals.len(),
            without.len(),
            "alerts are records of their own"
        );
        for a in &alerts {
            assert_ne!(a["policy"]["verdict"], "allowed");
            assert_eq!(a["exwatch"]["end_reason"], "alert");
            assert_eq!(a["exwatch"]["interim"], true);
            let cid = &a["network"]["community_id"];
            let last = finals
                .iter()
                .find(|r| &r["network"]["community_id"] == cid)
                .expect("the final record follows");
            assert_eq!(last["policy"]["verdict"], a["policy"]["verdict"]);
        }
        // Alerts are not findings of their own: the same tables with or without them.
        assert_eq!(judge.verdicts, plain.verdicts);
    }
}
