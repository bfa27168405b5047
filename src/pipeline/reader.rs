//! A reader: capture files in order, or one live capture socket; frames go, undecoded, in
//! batches, to the worker their address pair hashes to (`decode::shard_hash`) among the
//! workers this reader feeds. A reader of a fanout group's socket feeds exactly one worker, on
//! that worker's own thread (`Feed::Inline`): the kernel already chose the socket by flow.
//!
//! Capture files that can be read more than once (`capture::offline::rereadable`) have one
//! reader per worker, on the worker's own thread (`Feed::Inline`): each frames every packet,
//! so each keeps the same capture clock a single reader would, and hands its worker, straight
//! from the read buffer, only the frames that hash to it, ending a "batch" where a batch of
//! the shared reader would end (so that the records are the same). No thread then sees every
//! packet's bytes but to frame and hash it, and no frame is copied.

use super::progress::Meter;
use super::worker::Worker;
use super::{control, AuditConfig, Counters, RawBatch, RawFrame, ToWorker, BATCH_PACKETS, TICK};
use crate::capture::filter::PacketFilter;
use crate::capture::live::{LiveCapture, Next};
use crate::capture::{CaptureError, OfflineCapture, RawPacket};
use crate::decode::{self, link};
use crate::flow::EndReason;
use crate::report::summary::{CaptureCounts, ReadStats};
use crossbeam::channel::{Receiver, Sender, TrySendError};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Live capture: partial batches go to the workers, and quiet workers get a clock tick, this
/// often in wall time, so records do not wait for a batch to fill on a slow link.
const LIVE_TICK: Duration = Duration::from_millis(100);
/// On a quiet link the capture clock follows the wall clock this far behind, so that a
/// packet stamped just before a read timeout but read after it is never older than the clock.
const WALL_LAG_NS: u64 = 1_000_000_000;

/// A reader of a capture that every worker reads says how far it has read this often (frames).
const PACE_EVERY: u64 = 1024;

/// What one reader reads.
pub enum Source {
    /// Capture files (or `-`), in order.
    Files(Vec<String>),
    /// One capture socket, until SIGINT or SIGTERM.
    Live(LiveCapture),
}

/// Where a reader's frames go.
pub enum Feed<'w, 'a> {
    /// Worker threads, over bounded channels; emptied batches come back through `pool`.
    Channels {
        txs: Vec<Sender<ToWorker>>,
        pool: Receiver<RawBatch>,
    },
    /// The one worker on this reader's own thread, handed each frame as it is read (nothing
    /// copied); `pending` frames since the last end of a batch.
    Inline {
        worker: &'w mut Worker<'a>,
        pending: usize,
    },
}

impl Feed<'_, '_> {
    fn workers(&self) -> usize {
        match self {
            Feed::Channels { txs, .. } => txs.len(),
            Feed::Inline { .. } => 1,
        }
    }
}

/// Of the shards a capture's frames hash to, the one this reader keeps (it reads every frame,
/// and drops the others').
#[derive(Clone, Copy)]
pub struct Keep {
    pub shard: usize,
    pub of: usize,
}

/// Reads its source and feeds its workers.
pub struct Reader<'w, 'a> {
    feed: Feed<'w, 'a>,
    keep: Option<Keep>,
    batches: Vec<RawBatch>,
    stats: ReadStats,
    clock: u64,
    /// The capture being read (index into `stats.captures`).
    file: u16,
    /// When every worker is next sent the clock, even one that gets no packets.
    next_tick: u64,
    progress: Option<Meter>,
    /// File bytes of the captures already read (progress).
    bytes_done: u64,
    counters: Arc<Counters>,
    /// This reader's entry in `counters.sockets`.
    socket: usize,
    /// `--bpf` (files only), compiled per link type by libpcap.
    filter: Option<PacketFilter>,
}

impl<'w, 'a> Reader<'w, 'a> {
    pub fn new(cfg: &AuditConfig, feed: Feed<'w, 'a>) -> Self {
        let batches = match feed {
            Feed::Channels { .. } => (0..feed.workers()).map(|_| RawBatch::new()).collect(),
            Feed::Inline { .. } => Vec::new(),
        };
        let progress = Meter::new(cfg.progress, &cfg.captures);
        Reader {
            feed,
            keep: None,
            batches,
            stats: ReadStats::default(),
            clock: 0,
            file: 0,
            next_tick: 0,
            progress,
            bytes_done: 0,
            counters: Arc::new(Counters::new(1)),
            socket: 0,
            filter: cfg.bpf.as_deref().map(PacketFilter::new),
        }
    }

    /// Share the live counters with the sink (statistics lines); this reader stores its own
    /// in `counters.sockets[socket]`.
    pub fn with_counters(mut self, counters: Arc<Counters>, socket: usize) -> Self {
        self.socket = socket.min(counters.sockets.len().saturating_sub(1));
        self.counters = counters;
        self
    }

    /// Read every frame but hand on only those of shard `keep.shard` (to the one worker fed).
    pub fn keeping(mut self, keep: Keep) -> Self {
        self.keep = Some(keep);
        self
    }

    /// Keep the progress display (`true`) or leave it to another reader.
    pub fn with_progress(mut self, keep: bool) -> Self {
        if !keep {
            self.progress = None;
        }
        self
    }

    /// Read the source to its end (or until SIGINT/SIGTERM for a live capture); returns what
    /// was read and the captures that failed.
    pub fn run(mut self, source: Source) -> (ReadStats, Vec<CaptureError>) {
        let (errors, reason) = match source {
            Source::Files(specs) => (self.read_files(&specs), EndReason::EndOfInput),
            Source::Live(cap) => (self.read_live(cap), EndReason::Shutdown),
        };
        for i in 0..self.feed.workers() {
            self.flush(i);
            let finish = ToWorker::Finish {
                clock: self.clock,
                reason,
                file: self.file,
            };
            match &mut self.feed {
                // A worker that is gone has panicked; its scope join reports that.
                Feed::Channels { txs, .. } => {
                    let _ = txs[i].send(finish);
                }
                Feed::Inline { worker, .. } => {
                    worker.handle(finish);
                }
            }
        }
        if let Feed::Inline { worker, .. } = &self.feed {
            // Read to the end: no other reader waits for this one any more.
            worker.pace(u64::MAX);
        }
        if let Some(m) = &self.progress {
            // Live, the other readers' packets too (files: only this reader counts).
            let read = self.counters.packets_read().max(self.stats.packets_read);
            m.finish(self.bytes_done, read);
        }
        (self.stats, errors)
    }

    fn read_files(&mut self, specs: &[String]) -> Vec<CaptureError> {
        let mut errors = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            self.file = u16::try_from(i).unwrap_or(u16::MAX);
            let before = self.stats.packets_read;
            let result = match OfflineCapture::open(spec) {
                Ok(cap) => self.read_capture(cap),
                Err(e) => Err(e),
            };
            let name = if spec == "-" { "standard input" } else { spec };
            let counts = CaptureCounts {
                name: name.to_string(),
                packets_read: self.stats.packets_read - before,
                error: result.as_ref().err().map(ToString::to_string),
                ..CaptureCounts::default()
            };
            match self.stats.captures.get_mut(usize::from(self.file)) {
                // Past u16::MAX captures, the last entry counts the rest.
                Some(c) => c.packets_read += counts.packets_read,
                None => self.stats.captures.push(counts),
            }
            match result {
                Ok(()) => self.stats.files_read += 1,
                Err(e) => {
                    if !self.quiet() {
                        crate::say!("exwatch: {e}");
                    }
                    self.stats.files_failed += 1;
                    errors.push(e);
                }
            }
        }
        errors
    }

    /// Read an interface until a stop is requested or the capture fails. On a quiet link
    /// the clock follows the wall clock, so idle flows still expire.
    fn read_live(&mut self, mut cap: LiveCapture) -> Vec<CaptureError> {
        let lt = cap.linktype();
        self.warn_linktype(lt, cap.name());
        let mut errors = Vec::new();
        let mut next_tick = Instant::now() + LIVE_TICK;
        while !control::stop_requested() {
            match cap.next_packet() {
                Ok(Next::Packet(raw)) => self.packet(lt, raw),
                Ok(Next::Quiet) => {
                    let wall = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64);
                    self.clock = self.clock.max(wall.saturating_sub(WALL_LAG_NS));
                }
                Err(e) => {
                    crate::say!("exwatch: {e}");
                    errors.push(CaptureError::Live(e));
                    // The other sockets' readers stop too: a capture with a dead socket
                    // would silently miss that socket's share of the flows.
                    control::request_stop();
                    break;
                }
            }
            if Instant::now() >= next_tick {
                self.tick();
                self.publish(&mut cap);
                let read = self.counters.packets_read();
                if let Some(m) = &mut self.progress {
                    m.update(0, read, cap.name());
                }
                next_tick = Instant::now() + LIVE_TICK;
            }
        }
        self.publish(&mut cap);
        self.stats.captures.push(CaptureCounts {
            name: cap.name().to_string(),
            packets_read: self.stats.packets_read,
            error: errors.first().map(ToString::to_string),
            ..CaptureCounts::default()
        });
        errors
    }

    /// Partial batches out, and a clock tick to every worker that had none. The sink's
    /// watermark is the slowest worker's clock, so each must advance at least once per
    /// second of capture time (and, live, every tenth of a second of wall time).
    fn tick(&mut self) {
        self.next_tick = self.clock.saturating_add(TICK);
        for i in 0..self.feed.workers() {
            if !self.pending(i) {
                self.send(i, ToWorker::Tick { clock: self.clock });
            } else {
                self.flush(i);
            }
        }
    }

    fn publish(&mut self, cap: &mut LiveCapture) {
        let s = cap.stats();
        let Some(c) = self.counters.sockets.get(self.socket) else {
            return;
        };
        c.packets_read.store(self.stats.packets_read, Relaxed);
        c.received.store(s.received, Relaxed);
        c.kernel_drops.store(s.kernel_drops, Relaxed);
        c.interface_drops.store(s.interface_drops, Relaxed);
    }

    /// A reader that keeps a shard other than the first reads what the first reads: it leaves
    /// the messages to that one.
    fn quiet(&self) -> bool {
        self.keep.is_some_and(|k| k.shard != 0)
    }

    fn warn_linktype(&self, lt: i32, name: &str) {
        if !link::supported(lt) && !self.quiet() {
            crate::say!(
                "exwatch: {name}: link type {lt} is not supported; its packets are counted as undecodable"
            );
        }
    }

    fn read_capture(&mut self, mut cap: OfflineCapture) -> Result<(), CaptureError> {
        let lt = cap.linktype();
        self.warn_linktype(lt, cap.name());
        let name = cap.name().to_string();
        loop {
            let before = cap.packets_returned();
            if before & 0x3fff == 0 {
                if let Some(m) = &mut self.progress {
                    let bytes = self.bytes_done + cap.file_bytes_read();
                    m.update(bytes, self.stats.packets_read, &name);
                }
            }
            let raw = match cap.next_packet()? {
                Some(r) => r,
                None => {
                    self.bytes_done += cap.file_bytes_read();
                    return Ok(());
                }
            };
            if let Some(f) = &mut self.filter {
                match f.matches(raw.linktype, raw.data) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.stats.filtered_out += 1;
                        continue;
                    }
                    Err(reason) => {
                        let reason = reason.to_string();
                        return Err(CaptureError::BadFilter {
                            file: name,
                            expr: f.expr().to_string(),
                            linktype: raw.linktype,
                            read: before,
                            reason,
                        });
                    }
                }
            }
            // pcapng files may mix link types: each frame is decoded with its interface's.
            self.packet(raw.linktype, raw);
        }
    }

    /// Hand one frame to the worker its address pair belongs to.
    fn packet(&mut self, lt: i32, raw: RawPacket<'_>) {
        let ts = raw.ts;
        self.stats.packets_read += 1;
        // Readers of the same capture keep within `exchange::MAX_AHEAD` frames of each other.
        if self.stats.packets_read % PACE_EVERY == 0 && self.keep.is_some_and(|k| k.of > 1) {
            if let Feed::Inline { worker, .. } = &self.feed {
                worker.pace(self.stats.packets_read);
            }
        }
        if ts > self.clock {
            self.clock = ts;
        }
        if self.clock >= self.next_tick {
            self.tick();
        }
        // Multiply-shift on the low half rather than `%`: a 64-bit division per packet was
        // the costliest instruction of the reader.
        let shard_of = |of: usize| {
            let hash = decode::shard_hash(lt, raw.data);
            (((hash & 0xffff_ffff) * of as u64) >> 32) as usize
        };
        let shard = match (self.keep, self.feed.workers()) {
            (Some(k), _) if k.of > 1 => {
                if shard_of(k.of) != k.shard {
                    return;
                }
                0
            }
            // One worker (`--threads 1`, or a fanout socket's reader): no hash to compute.
            (_, 1) => 0,
            (_, n) => shard_of(n),
        };
        let frame = RawFrame {
            ts,
            clock: self.clock,
            linktype: lt,
            file: self.file,
            off: 0,
            len: raw.data.len() as u32,
        };
        if let Feed::Inline { worker, pending } = &mut self.feed {
            worker.take_frame(&frame, raw.data);
            *pending += 1;
            if *pending >= BATCH_PACKETS {
                self.flush(0);
            }
            return;
        }
        let b = &mut self.batches[shard];
        b.frames.push(RawFrame {
            off: b.data.len() as u32,
            ..frame
        });
        b.data.extend_from_slice(raw.data);
        if b.frames.len() >= BATCH_PACKETS {
            self.flush(shard);
        }
    }

    /// Whether worker `shard` has frames since its last batch ended.
    fn pending(&self, shard: usize) -> bool {
        match &self.feed {
            Feed::Channels { .. } => !self.batches[shard].frames.is_empty(),
            Feed::Inline { pending, .. } => *pending > 0,
        }
    }

    /// End worker `shard`'s batch: send it, or, inline, tell the worker where it ended.
    fn flush(&mut self, shard: usize) {
        if !self.pending(shard) {
            return;
        }
        let pool = match &mut self.feed {
            Feed::Channels { pool, .. } => pool,
            Feed::Inline { worker, pending } => {
                worker.end_batch(self.clock);
                *pending = 0;
                return;
            }
        };
        let fresh = pool.try_recv().unwrap_or_else(|_| RawBatch::new());
        let mut full = std::mem::replace(&mut self.batches[shard], fresh);
        full.clock = self.clock;
        self.send(shard, ToWorker::Batch(full));
    }

    /// Hand a message to a worker, waiting while its queue is full: a lagging worker slows
    /// the reader rather than losing packets here. On a live link the kernel buffer then
    /// fills, and what it cannot hold libpcap counts as kernel drops. Each wait is counted.
    fn send(&mut self, shard: usize, msg: ToWorker) {
        let txs = match &mut self.feed {
            Feed::Channels { txs, .. } => txs,
            Feed::Inline { worker, .. } => {
                worker.handle(msg);
                return;
            }
        };
        let msg = match txs[shard].try_send(msg) {
            Ok(()) => return,
            Err(TrySendError::Full(m)) => {
                self.counters.queue_full_waits.fetch_add(1, Relaxed);
                m
            }
            // A worker that is gone has panicked; its scope join reports that.
            Err(TrySendError::Disconnected(_)) => return,
        };
        let _ = txs[shard].send(msg);
    }
}
