//! ClickHouse output (`--clickhouse URL`): records inserted in batches over ClickHouse's HTTP
//! interface, as JSONEachRow rows into the table of `contrib/clickhouse/exwatch.sql`
//! (`exwatch schema --format clickhouse`). Capture never waits for the database: the writer
//! hands whole batches to a bounded queue and a sender thread inserts them, retrying with
//! back-off; a batch the queue has no room for, or that the server refused or never took, is
//! counted as lost records (summary and live statistics line).
//!
//! Rows carry the record's fields flattened, with `_` for the record's dots (`source_ip`,
//! `timestamp` for `@timestamp`): ClickHouse releases as old as Debian's 18.16 read no nested
//! JSON objects, and take array columns named `a.b` and `a.c` for a Nested structure whose
//! arrays must be of one length.

use super::schema::{Type, FIELDS};
use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Rows per insert: large enough that ClickHouse makes few parts, small enough that one lost
/// batch is a small loss.
const BATCH_ROWS: usize = 5000;
/// Batches waiting for the sender, beyond the one it is inserting.
const QUEUE_BATCHES: usize = 16;
/// A batch that has waited this long goes out even when small (live capture).
const BATCH_AGE: Duration = Duration::from_secs(1);
/// Attempts per batch while running (back-off 0.1 s doubling, at most 5 s: about 16 s in all).
const ATTEMPTS: u32 = 8;
/// How long the end of a run waits for the queue to drain before the rest counts as lost.
const DRAIN: Duration = Duration::from_secs(10);

/// Counters of the ClickHouse output, shared by the writer, the sender and the statistics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Rows the server acknowledged.
    pub inserted: AtomicU64,
    /// Rows that never reached the table: queue full, refused, or retries exhausted.
    pub lost: AtomicU64,
    pub batches: AtomicU64,
    pub retries: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl Stats {
    fn error(&self, e: String) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(e);
        }
    }

    /// The summary's `clickhouse` member.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "inserted": self.inserted.load(Relaxed),
            "lost": self.lost.load(Relaxed),
            "batches": self.batches.load(Relaxed),
            "retries": self.retries.load(Relaxed),
            "last_error": self.last_error.lock().ok().and_then(|e| e.clone()),
        })
    }

    /// The summary's text line.
    pub fn render(&self) -> String {
        let mut s = format!(
            "ClickHouse: {} records inserted in {} batches, {} lost, {} retries\n",
            self.inserted.load(Relaxed),
            self.batches.load(Relaxed),
            self.lost.load(Relaxed),
            self.retries.load(Relaxed)
        );
        if let Some(e) = self.last_error.lock().ok().and_then(|e| e.clone()) {
            s.push_str(&format!("ClickHouse: last error: {e}\n"));
        }
        s
    }
}

/// A batch of NDJSON record lines and how many there are.
struct Batch {
    lines: Vec<u8>,
    rows: u64,
}

/// The writer's side: takes the record stream (whole lines or not) and queues batches.
pub struct Pusher {
    tx: Option<Sender<Batch>>,
    stats: Arc<Stats>,
    pending: Batch,
    /// The start of a line whose end has not been written yet.
    carry: Vec<u8>,
    since: Instant,
}

/// The run's side: waits for the sender at the end and reports.
pub struct Handle {
    stats: Arc<Stats>,
    closing: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Where and how rows are inserted.
#[derive(Debug, Clone)]
pub struct Target {
    /// The insert URL: the server's URL with the INSERT query and settings added.
    url: String,
    /// The server's URL as given, for messages.
    pub shown: String,
}

impl Target {
    /// `url` is the server's HTTP interface (`http://host:8123/`, optionally with `?database=`
    /// or `user=` parameters); `table` the table to insert into.
    pub fn new(url: &str, table: &str) -> Result<Target, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("--clickhouse {url}: {e}"))?;
        if parsed.scheme() != "http" {
            return Err(format!(
                "--clickhouse {url}: only http:// is supported (ClickHouse's HTTP interface, port 8123)"
            ));
        }
        if table.is_empty()
            || !table
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
        {
            return Err(format!(
                "--clickhouse-table {table:?}: letters, digits, _ and . only"
            ));
        }
        let mut u = parsed.clone();
        u.query_pairs_mut()
            .append_pair("query", &format!("INSERT INTO {table} FORMAT JSONEachRow"))
            // Rows from a newer exwatch into an older table keep the columns it has.
            .append_pair("input_format_skip_unknown_fields", "1");
        Ok(Target {
            url: u.to_string(),
            shown: url.to_string(),
        })
    }
}

/// Start the sender thread.
pub fn start(target: Target) -> (Pusher, Handle) {
    let (tx, rx) = channel::bounded::<Batch>(QUEUE_BATCHES);
    let stats = Arc::new(Stats::default());
    let closing = Arc::new(AtomicBool::new(false));
    let thread = {
        let (stats, closing) = (stats.clone(), closing.clone());
        std::thread::Builder::new()
            .name("exwatch-clickhouse".into())
            .spawn(move || send_all(&target, &rx, &stats, &closing))
            .expect("spawning the ClickHouse thread")
    };
    (
        Pusher {
            tx: Some(tx),
            stats: stats.clone(),
            pending: Batch {
                lines: Vec::new(),
                rows: 0,
            },
            carry: Vec::new(),
            since: Instant::now(),
        },
        Handle {
            stats,
            closing,
            thread: Some(thread),
        },
    )
}

impl Pusher {
    /// The counters (for the live statistics line).
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    fn push(&mut self, mut b: &[u8]) {
        while let Some(i) = memchr::memchr(b'\n', b) {
            let line = &b[..=i];
            if self.carry.is_empty() {
                self.pending.lines.extend_from_slice(line);
            } else {
                self.carry.extend_from_slice(line);
                self.pending.lines.append(&mut self.carry);
            }
            self.pending.rows += 1;
            if self.pending.rows as usize >= BATCH_ROWS {
                self.send();
            }
            b = &b[i + 1..];
        }
        self.carry.extend_from_slice(b);
        if self.pending.rows > 0 && self.since.elapsed() >= BATCH_AGE {
            self.send();
        }
    }

    /// Queue the pending batch, or count it lost when the queue is full.
    fn send(&mut self) {
        self.since = Instant::now();
        if self.pending.rows == 0 {
            return;
        }
        let cap = self.pending.lines.capacity();
        let batch = std::mem::replace(
            &mut self.pending,
            Batch {
                lines: Vec::with_capacity(cap),
                rows: 0,
            },
        );
        let Some(tx) = &self.tx else {
            return;
        };
        match tx.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(b)) => {
                self.stats.lost.fetch_add(b.rows, Relaxed);
                self.stats
                    .error("queue full: the server takes rows slower than they come".into());
            }
            Err(TrySendError::Disconnected(b)) => {
                self.stats.lost.fetch_add(b.rows, Relaxed);
            }
        }
    }
}

impl Write for Pusher {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.push(b);
        Ok(b.len())
    }

    /// A flush does not force a small batch out (live capture flushes after every packet
    /// batch); batches go when full or a second old.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.rows > 0 && self.since.elapsed() >= BATCH_AGE {
            self.send();
        }
        Ok(())
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.send();
        self.tx = None;
    }
}

impl Handle {
    /// Wait for the sender to insert what is queued (at most `DRAIN`; the rest counts as
    /// lost) and return the counters. The pusher must have been dropped.
    pub fn finish(mut self) -> Arc<Stats> {
        let deadline = Instant::now() + DRAIN;
        if let Some(t) = self.thread.take() {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            // Past the deadline the sender gives up on each remaining batch at once.
            self.closing.store(true, Relaxed);
            let _ = t.join();
        }
        self.stats.clone()
    }
}

fn send_all(target: &Target, rx: &Receiver<Batch>, stats: &Stats, closing: &AtomicBool) {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .build();
    let mut body = Vec::new();
    for batch in rx.iter() {
        if closing.load(Relaxed) {
            stats.lost.fetch_add(batch.rows, Relaxed);
            continue;
        }
        body.clear();
        let rows = flatten_rows(&batch.lines, &mut body);
        // Lines that were not records (none are expected) are lost records too.
        stats.lost.fetch_add(batch.rows - rows, Relaxed);
        let mut wait = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match agent
                .post(&target.url)
                .set("Content-Type", "application/x-ndjson")
                .send_bytes(&body)
            {
                Ok(_) => {
                    stats.inserted.fetch_add(rows, Relaxed);
                    stats.batches.fetch_add(1, Relaxed);
                    break;
                }
                Err(e) => {
                    // The server refused the rows (4xx: no such table, a column it cannot
                    // parse): retrying sends the same rows to the same answer.
                    let refused = matches!(&e, ureq::Error::Status(c, _) if *c < 500);
                    stats.error(describe(&target.shown, e));
                    if refused || attempt >= ATTEMPTS || closing.load(Relaxed) {
                        stats.lost.fetch_add(rows, Relaxed);
                        break;
                    }
                    stats.retries.fetch_add(1, Relaxed);
                    attempt += 1;
                    // Sleep in short steps, so that the end of the run is not held up.
                    let until = Instant::now() + wait;
                    while Instant::now() < until && !closing.load(Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

fn describe(shown: &str, e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, resp) => {
            let text = resp.into_string().unwrap_or_default();
            let first = text.lines().next().unwrap_or("").chars().take(300);
            format!("{shown}: HTTP {code}: {}", first.collect::<String>())
        }
        ureq::Error::Transport(t) => format!("{shown}: {t}"),
    }
}

/// Rewrite NDJSON records as JSONEachRow rows with dotted column names into `out`; returns
/// the rows written.
pub fn flatten_rows(lines: &[u8], out: &mut Vec<u8>) -> u64 {
    let mut n = 0;
    for line in lines.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        let Ok(Value::Object(rec)) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let mut flat = Map::new();
        flatten("", rec, &mut flat);
        if serde_json::to_writer(&mut *out, &flat).is_ok() {
            out.push(b'\n');
            n += 1;
        }
    }
    n
}

/// The column of a record field: its path with `_` for `.`, and `timestamp` for `@timestamp`.
pub fn column(path: &str) -> String {
    path.trim_start_matches('@').replace('.', "_")
}

fn flatten(prefix: &str, obj: Map<String, Value>, out: &mut Map<String, Value>) {
    for (k, v) in obj {
        let path = if prefix.is_empty() {
            column(&k)
        } else {
            format!("{prefix}_{k}")
        };
        match v {
            Value::Object(m) => flatten(&path, m, out),
            v => {
                out.insert(path, v);
            }
        }
    }
}

/// The table's DDL: one column per schema field, named by its dotted path.
pub fn ddl(table: &str) -> String {
    let mut s = format!(
        "-- exwatch flow records, one row per record: `exwatch audit --clickhouse URL` inserts into it.\n\
         -- Generated by `exwatch schema --format clickhouse`; a column is a record field with _ for . (timestamp: @timestamp).\n\
         CREATE TABLE IF NOT EXISTS {table}\n(\n"
    );
    let cols: Vec<String> = FIELDS
        .iter()
        .map(|f| {
            let base = match f.ty {
                Type::Long => "Int64",
                Type::Float => "Float64",
                Type::Boolean => "UInt8",
                // Dates stay RFC 3339 text with nanoseconds: DateTime64 is newer than the
                // releases this must run on.
                Type::Keyword | Type::Wildcard | Type::Date | Type::Ip => "String",
            };
            let ty = if f.array {
                format!("Array({base})")
            } else if ORDER_BY.contains(&f.path) {
                base.to_string()
            } else {
                format!("Nullable({base})")
            };
            format!("    {} {ty}", column(f.path))
        })
        .collect();
    s.push_str(&cols.join(",\n"));
    s.push_str("\n)\nENGINE = MergeTree()\nPARTITION BY substring(timestamp, 1, 7)\nORDER BY (");
    let key: Vec<String> = ORDER_BY.iter().map(|c| column(c)).collect();
    s.push_str(&key.join(", "));
    s.push_str(");\n");
    s
}

/// The sort key (fields every record has).
const ORDER_BY: &[&str] = &["network.protocol", "@timestamp"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_flat_and_partial_lines_wait() {
        let (mut p, h) = start(Target::new("http://127.0.0.1:9/", "t").unwrap());
        p.push(b"{\"a\":{\"b\":1}}\n{\"a\"");
        assert_eq!(p.pending.rows, 1);
        p.push(b":{\"c\":[\"x\"]}}\n");
        assert_eq!(p.pending.rows, 2);
        let mut out = Vec::new();
        assert_eq!(flatten_rows(&p.pending.lines, &mut out), 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a_b\":1}\n{\"a_c\":[\"x\"]}\n"
        );
        p.pending.rows = 0;
        drop(p);
        h.finish();
    }

    #[test]
    fn columns_are_one_per_field() {
        let cols: std::collections::BTreeSet<String> =
            FIELDS.iter().map(|f| column(f.path)).collect();
        assert_eq!(cols.len(), FIELDS.len(), "two fields share a column");
        assert_eq!(column("@timestamp"), "timestamp");
        assert_eq!(
            column("exwatch.payload_bytes.source"),
            "exwatch_payload_bytes_source"
        );
    }

    #[test]
    fn bad_targets_are_refused() {
        assert!(Target::new("https://h/", "t").is_err());
        assert!(Target::new("not a url", "t").is_err());
        assert!(Target::new("http://h/", "t; DROP").is_err());
        let t = Target::new("http://h:8123/?database=x", "flows").unwrap();
        assert!(t.url.contains("database=x"));
        assert!(t.url.contains("INSERT+INTO+flows+FORMAT+JSONEachRow"));
    }
}
