//! Pipeline: one reader decodes and shards packets by flow hash to N workers over bounded
//! channels, in batches; each worker owns a flow table; one sink writes records and the summary.

pub mod reader;
pub mod worker;

use crate::capture::CaptureError;
use crate::classify::Classifier;
use crate::decode::frag::FragLimits;
use crate::flow::{EndReason, Flow};
use crate::flow::{FlowPacket, Timeouts};
use crate::report::record;
use crate::report::summary::{Summary, WorkerStats};
use crossbeam::channel;
use std::io::Write;
use std::sync::Arc;

/// Packets per batch handed from the reader to a worker.
pub const BATCH_PACKETS: usize = 512;
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
    /// End of input: the final capture clock decides which open flows count as idle.
    Finish {
        clock: u64,
    },
}

/// Messages from workers to the sink.
pub enum ToSink {
    /// Finished flows, to classify, write and count.
    Flows(Vec<(Flow, EndReason)>),
    Done(Box<WorkerStats>),
}

/// What an audit produced besides the records it wrote.
pub struct AuditOutcome {
    pub summary: Summary,
    pub errors: Vec<CaptureError>,
    /// Records could not be written (not counting a closed pipe).
    pub write_error: Option<std::io::Error>,
}

/// Run an offline audit, writing NDJSON records to `out`.
pub fn run_audit(cfg: &AuditConfig, out: &mut dyn Write) -> AuditOutcome {
    let n = cfg.workers.max(1);
    let per_worker = cfg.max_flows.div_ceil(n).max(1);
    let (sink_tx, sink_rx) = channel::bounded::<ToSink>(64);
    let (pool_tx, pool_rx) = channel::unbounded::<Batch>();
    let mut worker_txs = Vec::with_capacity(n);
    let mut summary = Summary::new();
    let mut write_error = None;
    let mut pipe_closed = false;
    let mut json: Vec<u8> = Vec::with_capacity(1 << 20);
    let (read_stats, errors) = std::thread::scope(|s| {
        for i in 0..n {
            let (tx, rx) = channel::bounded::<ToWorker>(32);
            worker_txs.push(tx);
            let sink_tx = sink_tx.clone();
            let pool_tx = pool_tx.clone();
            let classifier = cfg.classifier.clone();
            let timeouts = cfg.timeouts;
            std::thread::Builder::new()
                .name(format!("exwatch-worker-{i}"))
                .spawn_scoped(s, move || {
                    worker::Worker::new(classifier, per_worker, timeouts).run(rx, sink_tx, pool_tx)
                })
                .expect("spawning a worker thread");
        }
        drop(sink_tx);
        drop(pool_tx);
        let reader = std::thread::Builder::new()
            .name("exwatch-reader".into())
            .spawn_scoped(s, || reader::Reader::new(cfg, worker_txs, pool_rx).run())
            .expect("spawning the reader thread");
        for msg in sink_rx.iter() {
            match msg {
                ToSink::Flows(flows) => {
                    json.clear();
                    for (f, reason) in &flows {
                        let out = cfg.write_records.then_some(&mut json);
                        summary.add_flow(&record::write(f, *reason, &cfg.classifier, out));
                    }
                    if !pipe_closed && write_error.is_none() && !json.is_empty() {
                        if let Err(e) = out.write_all(&json) {
                            if e.kind() == std::io::ErrorKind::BrokenPipe {
                                pipe_closed = true;
                            } else {
                                write_error = Some(e);
                            }
                        }
                    }
                }
                ToSink::Done(w) => summary.add_worker(&w),
            }
        }
        reader.join().expect("reader thread panicked")
    });
    if !pipe_closed && write_error.is_none() {
        if let Err(e) = out.flush() {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                write_error = Some(e);
            }
        }
    }
    summary.read = read_stats;
    AuditOutcome {
        summary,
        errors,
        write_error,
    }
}
