//! Pipeline: where a packet goes and which thread owns what.
//!
//! - A reader (`reader`) frames its input and hands raw frames, in batches, to the workers it
//!   feeds; it decodes nothing. A capture file that can be read more than once (a plain
//!   regular file) is read whole by every worker's own reader, on the worker's thread: each
//!   frames every packet, hashes its IP address pair, and keeps only the frames of its own
//!   worker, so no thread hands packets to another and each keeps the same capture clock.
//!   Standard input, FIFOs and compressed files have one reader thread for all workers, over
//!   bounded channels. A live interface with N workers has N capture sockets in one kernel
//!   fanout group (`capture::live`), each read on its own worker's thread: the kernel's
//!   symmetric flow hash did the sharding, so no thread touches every packet (one socket for
//!   several workers, without a fanout group, has a reader thread sharding to them). Each
//!   live reader keeps its worker's clock (packet times, or the wall clock on a quiet socket)
//!   and its socket's counters.
//! - Each worker (`worker`) owns its shard end to end: decoding, fragment reassembly, the flow
//!   table, payload inspection, its copy of the cross-flow tables (`linker`, fed by the facts
//!   every worker publishes through `exchange`), the policy judge's fork, the NDJSON records
//!   and its summary.
//! - The writer (this module, on the calling thread) writes the workers' record buffers as
//!   they come, prints the live statistics line (sums over the sockets), and merges the
//!   workers' summaries and judges and the readers' counts at the end.

pub mod control;
pub mod exchange;
pub mod linker;
pub mod progress;
pub mod reader;
pub mod replay;
pub mod worker;

use crate::capture::live::LiveCapture;
use crate::capture::CaptureError;
use crate::classify::expect::Fact;
use crate::classify::{Classifier, Flow};
use crate::decode::frag::FragLimits;
use crate::flow::EndReason;
use crate::flow::Timeouts;
use crate::policy::{FlowJudge, NoJudge};
use crate::report::record::RecordContext;
use crate::report::summary::{Activity, LiveStats, ReadStats, SocketStats, Summary};
use crossbeam::channel;
use exchange::Exchange;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::{Worker, WorkerConfig, WorkerResult};

/// Frames per batch handed from the reader to a worker.
pub const BATCH_PACKETS: usize = 512;
/// Every worker reports its clock to the sink at least this often in capture time (ns).
pub const TICK: u64 = crate::classify::expect::SECOND;
/// Payload bytes copied per packet: detectors look only at the first few KiB of a flow.
pub const MAX_COPY: usize = 2048;

/// Everything an audit run needs, validated.
pub struct AuditConfig {
    pub captures: Vec<String>,
    /// `--bpf` for capture files: frames it rejects are not read (live filters in the kernel).
    pub bpf: Option<String>,
    pub workers: usize,
    pub max_flows: usize,
    pub timeouts: Timeouts,
    pub frag: FragLimits,
    pub classifier: Arc<Classifier>,
    pub write_records: bool,
    /// Build a `--flows-csv` row for every finished flow.
    pub flows_csv: bool,
    /// Keep the inventory of the flows (`--report`, `--summary-json`).
    pub inventory: bool,
    pub progress: progress::Progress,
    /// Workers report each flow whose payload verdict is reached while it is alive
    /// (`ToSink::Decided`), for alerts that cannot wait for the flow's end.
    pub verdict_events: bool,
    /// Live capture: print capture statistics to standard error this often.
    pub stats_interval: Option<Duration>,
    /// What every record shares (observer, home networks, rule files).
    pub records: Arc<RecordContext>,
    /// More for the live statistics line (the ClickHouse output's losses).
    pub stats_suffix: Option<Arc<dyn Fn() -> String + Send + Sync>>,
}

/// Where the reader takes packets from.
pub enum Input {
    /// Capture files (or `-`), in order.
    Files(Vec<String>),
    /// An interface, until SIGINT or SIGTERM (`control`): one socket, read by one reader for
    /// all workers, or one socket per worker (a fanout group), each read by its own reader.
    Live(Vec<LiveCapture>),
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

/// Counters shared by the readers, the workers and the sink while a live capture runs, so the
/// sink can print them every `--stats-interval`.
#[derive(Default)]
pub struct Counters {
    /// One entry per reader (capture socket); each reader stores only its own.
    pub sockets: Vec<SocketCounters>,
    pub queue_full_waits: AtomicU64,
    pub flow_table_full: AtomicU64,
    /// Flows in the workers' tables (each worker adds the change after every message).
    pub active_flows: AtomicU64,
    /// Records written by the workers (final, interim and alert; none without an output).
    pub records: AtomicU64,
    /// Alert records among them.
    pub alerts: AtomicU64,
}

/// One capture socket's counters, as its reader last published them.
#[derive(Default)]
pub struct SocketCounters {
    pub packets_read: AtomicU64,
    pub received: AtomicU64,
    pub kernel_drops: AtomicU64,
    pub interface_drops: AtomicU64,
}

impl Counters {
    /// Counters for `readers` readers.
    pub fn new(readers: usize) -> Self {
        Counters {
            sockets: (0..readers.max(1))
                .map(|_| SocketCounters::default())
                .collect(),
            ..Counters::default()
        }
    }

    /// Packets read so far, all readers together.
    pub fn packets_read(&self) -> u64 {
        self.sockets
            .iter()
            .map(|c| c.packets_read.load(Relaxed))
            .sum()
    }

    /// A consistent-enough copy for a statistics line or the summary: per socket, and the
    /// sums.
    pub fn live_stats(&self) -> LiveStats {
        let mut s = LiveStats::default();
        for c in &self.sockets {
            let k = SocketStats {
                capture: crate::capture::live::CaptureStats {
                    received: c.received.load(Relaxed),
                    kernel_drops: c.kernel_drops.load(Relaxed),
                    interface_drops: c.interface_drops.load(Relaxed),
                },
                packets_read: c.packets_read.load(Relaxed),
            };
            s.capture.received += k.capture.received;
            s.capture.kernel_drops += k.capture.kernel_drops;
            s.capture.interface_drops += k.capture.interface_drops;
            s.sockets.push(k);
        }
        s.queue_full_waits = self.queue_full_waits.load(Relaxed);
        s.flow_table_full = self.flow_table_full.load(Relaxed);
        s
    }

    /// Active flows, records and alerts so far.
    pub fn activity(&self) -> Activity {
        Activity {
            active_flows: self.active_flows.load(Relaxed),
            records: self.records.load(Relaxed),
            alerts: self.alerts.load(Relaxed),
        }
    }
}

/// One frame in a batch, as read: where its bytes sit in the batch's buffer.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame {
    pub ts: u64,
    /// The reader's clock at this frame (the latest capture time read so far): never
    /// decreases, so facts stamped with it reach the other workers in order.
    pub clock: u64,
    pub linktype: i32,
    /// Which capture it came from (its index in the order read; saturates at `u16::MAX`).
    pub file: u16,
    pub off: u32,
    pub len: u32,
}

/// A run of frames for one worker, with the reader's clock when it was sent.
pub struct RawBatch {
    pub frames: Vec<RawFrame>,
    pub data: Vec<u8>,
    /// The latest capture time the reader had seen when it sent the batch.
    pub clock: u64,
}

impl RawBatch {
    fn new() -> Self {
        RawBatch {
            frames: Vec::with_capacity(BATCH_PACKETS),
            data: Vec::with_capacity(BATCH_PACKETS * 256),
            clock: 0,
        }
    }
}

/// Messages from the reader to a worker.
pub enum ToWorker {
    Batch(RawBatch),
    /// No packet for this worker lately: the capture clock has moved on to `clock`, so idle
    /// flows expire and the other workers' watermark moves.
    Tick {
        clock: u64,
    },
    /// End of input: the final capture clock decides which open flows count as idle; the
    /// others end with `reason` (end of input, or shutdown of a live capture).
    Finish {
        clock: u64,
        reason: EndReason,
        /// The last capture read: what is still pending at the end is counted against it.
        file: u16,
    },
}

/// What a worker's linker takes: a worker's facts and clock (every fact stamped before it
/// has been published), and, from the linker's own worker, its finished flows.
pub struct Report {
    pub worker: usize,
    pub clock: u64,
    pub flows: Vec<(Flow, EndReason)>,
    pub facts: Vec<Fact>,
}

/// Messages from workers to the writer.
pub enum ToWriter {
    /// NDJSON records, whole lines.
    Records(Vec<u8>),
    /// `--flows-csv` rows, whole lines.
    FlowRows(Vec<u8>),
}

/// What an audit produced besides the records it wrote.
pub struct AuditOutcome {
    pub summary: Summary,
    pub errors: Vec<CaptureError>,
    /// Records could not be written (not counting a closed pipe).
    pub write_error: Option<std::io::Error>,
    /// `--flows-csv` rows, whole lines in the order they came (see `report::flows_csv`).
    pub flow_rows: Vec<u8>,
    /// The inventory of the run's flows, merged from the workers' (when asked for).
    pub inventory: Option<crate::report::inventory::Inventory>,
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
///
/// Threads: each of `cfg.workers` workers owns its shard from decoding to serialised records;
/// readers frame the input (on each worker's own thread for plain capture files and for the
/// sockets of a fanout group; one reader thread for standard input, FIFOs, compressed files or
/// a single live socket shared by several workers, sharding frames by a hash of their address
/// pair); this thread only writes the workers' record buffers and merges their results at
/// the end.
pub fn run(
    cfg: &AuditConfig,
    input: Input,
    out: &mut dyn Output,
    on_reopen: &mut dyn FnMut() -> std::io::Result<()>,
    judge: &mut dyn FlowJudge,
) -> AuditOutcome {
    let live = matches!(input, Input::Live(_));
    let suffix = || cfg.stats_suffix.as_ref().map_or(String::new(), |f| f());
    let n = cfg.workers.max(1);
    let per_worker = cfg.max_flows.div_ceil(n).max(1);
    // One reader per worker, on the worker's own thread: for capture files every worker can
    // read for itself (each reads them all: `same_input`), and for a socket per worker (a
    // fanout group, or one worker).
    let (own_readers, same_input) = match &input {
        Input::Files(specs) => (
            n == 1 || specs.iter().all(|s| crate::capture::offline::rereadable(s)),
            true,
        ),
        Input::Live(caps) => (caps.len() >= n, false),
    };
    // What each reader reads: reader r feeds the workers j with j % readers == r.
    let sources: Vec<reader::Source> = match input {
        Input::Files(specs) if own_readers => (0..n)
            .map(|_| reader::Source::Files(specs.clone()))
            .collect(),
        Input::Files(specs) => vec![reader::Source::Files(specs)],
        // More sockets than workers is a caller's mistake: a closed socket leaves the group,
        // and the kernel hands its share to the others.
        Input::Live(caps) => caps.into_iter().take(n).map(reader::Source::Live).collect(),
    };
    let readers = if own_readers && same_input {
        1
    } else {
        sources.len().max(1)
    };
    let counters = Arc::new(Counters::new(readers));
    let exchange = Exchange::new(n);
    let (writer_tx, writer_rx) = channel::bounded::<ToWriter>(4 * n);
    let (pool_tx, pool_rx) = channel::unbounded::<RawBatch>();
    // Emptied record buffers go back to the workers.
    let (spare_tx, spare_rx) = channel::bounded::<Vec<u8>>(4 * n);
    let frag = FragLimits {
        max_bytes: (cfg.frag.max_bytes / n).max(1),
        ..cfg.frag
    };
    let mut writer = Writer {
        out,
        write_error: None,
        flush_each: live,
        flow_rows: Vec::new(),
    };
    let mut reader_txs: Vec<Vec<channel::Sender<ToWorker>>> = vec![Vec::new(); readers];
    let (own_sources, shared_sources) = if own_readers {
        (sources, Vec::new())
    } else {
        (Vec::new(), sources)
    };
    let mut own_sources = own_sources.into_iter();
    let (reads, errors, results) = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(n);
        let mut inline_handles = Vec::with_capacity(n);
        for i in 0..n {
            let wcfg = WorkerConfig {
                id: i,
                classifier: cfg.classifier.clone(),
                max_flows: per_worker,
                timeouts: cfg.timeouts,
                frag,
                write_records: cfg.write_records,
                flows_csv: cfg.flows_csv,
                inventory: cfg.inventory,
                flush_each: live,
                notify_verdicts: cfg.verdict_events,
                records: cfg.records.clone(),
            };
            let fork = judge.fork();
            let (writer_tx, pool_tx, spare_rx) =
                (writer_tx.clone(), pool_tx.clone(), spare_rx.clone());
            let (counters, reader_counters) = (counters.clone(), &counters);
            let exchange = &exchange;
            let worker =
                move || Worker::new(wcfg, n, exchange, fork, writer_tx, spare_rx, counters);
            let name = format!("exwatch-worker-{i}");
            if let Some(source) = own_sources.next() {
                // A capture file's readers each read every frame, keep their shard's, and
                // report only if they are the first (the others read the same and would say
                // the same); a socket's reader keeps all it reads and its own counters.
                let reader_counters = reader_counters.clone();
                let h = std::thread::Builder::new()
                    .name(name)
                    .spawn_scoped(s, move || {
                        let mut w = worker();
                        let _guard = w.unwind_guard();
                        let feed = reader::Feed::Inline {
                            worker: &mut w,
                            pending: 0,
                        };
                        let mut r = reader::Reader::new(cfg, feed).with_progress(i == 0);
                        r = if same_input {
                            r.keeping(reader::Keep { shard: i, of: n })
                        } else {
                            r.with_counters(reader_counters, i)
                        };
                        let read = r.run(source);
                        (w.finish(), read)
                    })
                    .expect("spawning a worker thread");
                inline_handles.push(h);
                continue;
            }
            let (tx, rx) = channel::bounded::<ToWorker>(32);
            reader_txs[i % readers].push(tx);
            let h = std::thread::Builder::new()
                .name(name)
                .spawn_scoped(s, move || worker().run(rx, pool_tx))
                .expect("spawning a worker thread");
            handles.push(h);
        }
        drop(writer_tx);
        drop(pool_tx);
        let mut reader_handles = Vec::with_capacity(readers);
        for (r, (source, txs)) in shared_sources.into_iter().zip(reader_txs).enumerate() {
            let reader_counters = counters.clone();
            let pool_rx = pool_rx.clone();
            let h = std::thread::Builder::new()
                .name(format!("exwatch-reader-{r}"))
                .spawn_scoped(s, move || {
                    let feed = reader::Feed::Channels { txs, pool: pool_rx };
                    reader::Reader::new(cfg, feed)
                        // One progress display: the first reader's, counting every reader.
                        .with_progress(r == 0)
                        .with_counters(reader_counters, r)
                        .run(source)
                })
                .expect("spawning a reader thread");
            reader_handles.push(h);
        }
        drop(pool_rx);
        if live {
            let mut next_stats = cfg.stats_interval.map(|d| (Instant::now() + d, d));
            loop {
                match writer_rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(msg) => writer.message(msg, &spare_tx),
                    Err(channel::RecvTimeoutError::Timeout) => {}
                    Err(channel::RecvTimeoutError::Disconnected) => break,
                }
                if control::take_reopen() {
                    writer.reopen(on_reopen);
                }
                if let Some((at, every)) = &mut next_stats {
                    if Instant::now() >= *at {
                        let read = counters.packets_read();
                        let line = counters.live_stats().line(read, &counters.activity());
                        crate::say!("{line}{}", suffix());
                        *at += *every;
                    }
                }
            }
        } else {
            for msg in writer_rx.iter() {
                writer.message(msg, &spare_tx);
            }
        }
        let mut results: Vec<WorkerResult> = Vec::with_capacity(n);
        let mut reads = Vec::with_capacity(readers);
        let mut errors = Vec::new();
        for (i, h) in inline_handles.into_iter().enumerate() {
            let (result, (read, mut errs)) = h.join().expect("worker thread panicked");
            results.push(result);
            // Readers of the same captures: the first one's counts and errors stand.
            if i == 0 || !same_input {
                reads.push(read);
                errors.append(&mut errs);
            }
        }
        for h in handles {
            results.push(h.join().expect("worker thread panicked"));
        }
        for h in reader_handles {
            let (read, mut errs) = h.join().expect("reader thread panicked");
            reads.push(read);
            errors.append(&mut errs);
        }
        (reads, errors, results)
    });
    let Writer {
        mut write_error,
        out,
        flow_rows,
        ..
    } = writer;
    if write_error.is_none() {
        if let Err(e) = out.flush() {
            write_error = Some(e);
        }
    }
    let mut summary = Summary::new();
    summary.read = merge_reads(reads);
    let mut inventory = cfg.inventory.then(crate::report::inventory::Inventory::new);
    for (i, r) in results.into_iter().enumerate() {
        if let (Some(all), Some(part)) = (&mut inventory, r.inventory) {
            all.merge(part);
        }
        summary.read.add_decoded(&r.read);
        summary.add_worker(&r.stats);
        summary.merge(r.summary);
        summary.link.add_worker(&r.link, i == 0);
        judge.merge(r.judge);
    }
    if live {
        let stats = counters.live_stats();
        if cfg.stats_interval.is_some() {
            // The last word on drops, however short the run.
            let line = stats.line(summary.read.packets_read, &counters.activity());
            crate::say!("{line}{}", suffix());
        }
        summary.live = Some(stats);
    }
    AuditOutcome {
        summary,
        errors,
        write_error,
        flow_rows,
        inventory,
    }
}

/// What the readers read, as one: a single reader's stats as they are; the readers of one
/// interface's sockets as one capture of that interface.
fn merge_reads(mut reads: Vec<ReadStats>) -> ReadStats {
    if reads.len() <= 1 {
        return reads.pop().unwrap_or_default();
    }
    let mut all = ReadStats::default();
    for r in reads {
        all.packets_read += r.packets_read;
        all.filtered_out += r.filtered_out;
        for c in r.captures {
            match all.captures.iter_mut().find(|a| a.name == c.name) {
                Some(a) => {
                    a.packets_read += c.packets_read;
                    if a.error.is_none() {
                        a.error = c.error;
                    }
                }
                None => all.captures.push(c),
            }
        }
    }
    all
}

/// The one serial stage after the reader: writes the record buffers workers send, in the
/// order they arrive (each buffer holds whole lines).
struct Writer<'a> {
    out: &'a mut dyn Output,
    /// The first write that failed, a closed pipe included (records cut short are an output
    /// error, issue 13); nothing more is written after it.
    write_error: Option<std::io::Error>,
    /// Flush the output after every buffer (live: records appear as flows end).
    flush_each: bool,
    /// `--flows-csv` rows, sorted and written at the end.
    flow_rows: Vec<u8>,
}

impl Writer<'_> {
    fn message(&mut self, msg: ToWriter, spares: &channel::Sender<Vec<u8>>) {
        match msg {
            ToWriter::Records(mut buf) => {
                self.write(&buf);
                buf.clear();
                // Dropped when the workers hold enough spares already.
                if buf.capacity() <= 4 << 20 {
                    let _ = spares.try_send(buf);
                }
            }
            ToWriter::FlowRows(buf) => self.flow_rows.extend_from_slice(&buf),
        }
    }

    fn write(&mut self, buf: &[u8]) {
        if self.write_error.is_some() || buf.is_empty() {
            return;
        }
        let mut r = self.out.write_all(buf);
        if r.is_ok() && self.flush_each {
            r = self.out.flush();
        }
        if let Err(e) = r {
            self.write_error = Some(e);
        }
    }

    /// SIGHUP: flush and reopen every output file; a failure is reported, not fatal (the
    /// records keep going to the old file when it could not be replaced).
    fn reopen(&mut self, on_reopen: &mut dyn FnMut() -> std::io::Result<()>) {
        let _ = self.out.flush();
        if let Err(e) = self.out.reopen() {
            crate::say!("exwatch: SIGHUP: cannot reopen the records file: {e}");
        }
        if let Err(e) = on_reopen() {
            crate::say!("exwatch: SIGHUP: cannot reopen the summary file: {e}");
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
            flows_csv: false,
            inventory: false,
            progress: progress::Progress::Off,
            bpf: None,
            verdict_events,
            stats_interval: None,
            records: Arc::default(),
            stats_suffix: None,
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
mod live_tests {
    use super::*;
    use crate::report::summary::CaptureCounts;

    #[test]
    fn live_stats_are_the_sums_of_the_sockets_and_list_each() {
        let c = Counters::new(2);
        for (i, k) in c.sockets.iter().enumerate() {
            let i = i as u64;
            k.received.store(10 + i, Relaxed);
            k.packets_read.store(9 + i, Relaxed);
            k.kernel_drops.store(1, Relaxed);
            k.interface_drops.store(i, Relaxed);
        }
        let s = c.live_stats();
        assert_eq!(s.sockets.len(), 2);
        assert_eq!(s.sockets[1].capture.received, 11);
        assert_eq!(s.sockets[1].packets_read, 10);
        assert_eq!(s.capture.received, 21);
        assert_eq!(s.capture.kernel_drops, 2);
        assert_eq!(s.capture.interface_drops, 1);
        assert_eq!(c.packets_read(), 19);
        let j = s.to_json();
        assert_eq!(j["received"], 21);
        assert_eq!(j["sockets"][0]["received"], 10);
        assert_eq!(j["sockets"][1]["packets_read"], 10);
    }

    #[test]
    fn the_readers_of_one_interface_make_one_capture() {
        let part = |n: u64, error: Option<&str>| ReadStats {
            packets_read: n,
            captures: vec![CaptureCounts {
                name: "eth1".into(),
                packets_read: n,
                error: error.map(str::to_string),
                ..CaptureCounts::default()
            }],
            ..ReadStats::default()
        };
        let all = merge_reads(vec![part(3, None), part(4, Some("gone")), part(5, None)]);
        assert_eq!(all.packets_read, 12);
        assert_eq!(all.captures.len(), 1);
        assert_eq!(all.captures[0].name, "eth1");
        assert_eq!(all.captures[0].packets_read, 12);
        assert_eq!(all.captures[0].error.as_deref(), Some("gone"));
        assert_eq!(merge_reads(vec![part(7, None)]).packets_read, 7);
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
