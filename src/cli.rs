//! Command line: raw flags (clap) become one validated configuration before anything runs.

use crate::capture::live::{LiveCapture, LiveError, LiveOptions};
use crate::capture::CaptureError;
use crate::classify::Classifier;
use crate::decode::frag::FragLimits;
use crate::flow::Timeouts;
use crate::pipeline::{control, run, AuditConfig, AuditOutcome, Input, Output};
use crate::signatures::Signatures;
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    /// Records or the summary could not be written.
    pub const OUTPUT: i32 = 1;
    /// Bad command line (clap uses 2 as well).
    pub const USAGE: i32 = 2;
    /// The interface could not be opened for capture (live).
    pub const CAPTURE_OPEN: i32 = 3;
    /// Signature files are invalid.
    pub const SIGNATURES: i32 = 6;
    /// `--user`: the process could not become that user (live).
    pub const PRIVILEGES: i32 = 8;
}

#[derive(Parser, Debug)]
#[command(
    name = "exwatch",
    version,
    about = "Passive traffic classifier for Microsoft Exchange environments"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Classify the flows of capture files (pcap, pcapng, or - for standard input).
    Audit(AuditArgs),
    /// Classify the flows seen on a network interface (a SPAN or mirror port) until SIGINT or
    /// SIGTERM.
    Live(LiveArgs),
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Capture files, read in the order given; `-` reads standard input.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug)]
pub struct LiveArgs {
    /// The interface to capture on.
    #[arg(short = 'i', long, value_name = "IFACE")]
    pub interface: String,
    /// Capture filter (tcpdump/BPF syntax).
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,
    /// Bytes captured per packet.
    #[arg(long, value_name = "BYTES", default_value_t = 262_144)]
    pub snaplen: i32,
    /// Put the interface in promiscuous mode.
    #[arg(long)]
    pub promisc: bool,
    /// Kernel capture buffer, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub buffer_size: i32,
    /// Print capture statistics (received, kernel, interface and own drops) to standard
    /// error every SECS seconds; 0 = never.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub stats_interval: f64,
    /// After opening the capture and the output files, run as this user.
    #[arg(long, short = 'Z', value_name = "USER")]
    pub user: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options shared by `audit` and `live`: the same pipeline and the same records.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Write one JSON record per flow (NDJSON) to PATH; `-` for standard output.
    #[arg(long, value_name = "PATH")]
    pub json: Option<String>,
    /// Write the summary as JSON to PATH (`-` for standard output).
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Flows tracked at once across all workers; beyond it the least recently seen is evicted.
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    pub max_flows: usize,
    /// Idle timeout of established TCP flows, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub tcp_timeout: f64,
    /// Idle timeout of TCP connection attempts (SYN unanswered or handshake incomplete), seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub syn_timeout: f64,
    /// Idle timeout of UDP flows, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub udp_timeout: f64,
    /// Idle timeout of flows of other IP protocols (ICMP, ESP, GRE...), seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub other_timeout: f64,
    /// How long a closed TCP flow (FIN both ways, or RST) lingers for stray packets, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub tcp_close_timeout: f64,
    /// Interim record of a flow still alive every SECS seconds of capture time; 0 = none
    /// (default: 60 for live, none for audit).
    #[arg(long, value_name = "SECS")]
    pub active_timeout: Option<f64>,
    /// Memory for IP fragment reassembly, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 16)]
    pub frag_memory: usize,
    /// Load services.toml and ports.toml from DIR instead of the embedded signatures.
    #[arg(long, value_name = "DIR")]
    pub signatures: Option<PathBuf>,
    /// Do not print the summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Progress display on standard error: auto (when it is a terminal), always, never.
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub progress: String,
}

/// Parse the command line, run, and return the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    match cli.command {
        Command::Audit(a) => audit(a),
        Command::Live(l) => live(l),
    }
}

fn usage(msg: &str) -> i32 {
    eprintln!("exwatch: {msg}");
    exit::USAGE
}

/// An output file (or standard output for `-`) that can be reopened on SIGHUP.
struct FileOutput {
    path: Option<PathBuf>,
    /// Reopen (and, for live records, first open) in append mode: a restarted service or a
    /// SIGHUP without rotation never truncates records already written.
    append: bool,
    w: std::io::BufWriter<Box<dyn Write + Send>>,
}

impl FileOutput {
    /// Open `path`; `-` is standard output.
    fn open(path: &str, append: bool) -> std::io::Result<Self> {
        let (path, inner): (_, Box<dyn Write + Send>) = if path == "-" {
            (None, Box::new(std::io::stdout()))
        } else {
            let p = PathBuf::from(path);
            let f = Self::file(&p, append)?;
            (Some(p), Box::new(f))
        };
        Ok(FileOutput {
            path,
            append,
            w: std::io::BufWriter::with_capacity(1 << 16, inner),
        })
    }

    fn file(p: &std::path::Path, append: bool) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .append(append)
            .truncate(!append)
            .open(p)
    }
}

impl Write for FileOutput {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.w.write(b)
    }
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.w.write_all(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

impl Output for FileOutput {
    fn reopen(&mut self) -> std::io::Result<()> {
        self.w.flush()?;
        if let Some(p) = &self.path {
            // Opened first, swapped after: on failure the old file keeps the records.
            let f = Self::file(p, self.append)?;
            self.w = std::io::BufWriter::with_capacity(1 << 16, Box::new(f));
        }
        Ok(())
    }
}

/// What `audit` and `live` share once the options are checked.
struct Prepared {
    cfg: AuditConfig,
    out: Box<dyn Output>,
    records_to_stdout: bool,
    summary_to_stdout: bool,
}

/// Check the shared options and open the records file.
fn prepare(a: &RunArgs, active_default: f64, append: bool) -> Result<Prepared, i32> {
    for (name, v) in [
        ("--tcp-timeout", a.tcp_timeout),
        ("--syn-timeout", a.syn_timeout),
        ("--udp-timeout", a.udp_timeout),
        ("--other-timeout", a.other_timeout),
        ("--tcp-close-timeout", a.tcp_close_timeout),
    ] {
        if !(v.is_finite() && v > 0.0 && v < 1e9) {
            return Err(usage(&format!(
                "{name} must be a positive number of seconds, not {v}"
            )));
        }
    }
    let active = a.active_timeout.unwrap_or(active_default);
    if !(active.is_finite() && (0.0..1e9).contains(&active)) {
        return Err(usage(&format!(
            "--active-timeout must be 0 or a positive number of seconds, not {active}"
        )));
    }
    if a.max_flows == 0 {
        return Err(usage("--max-flows must be at least 1"));
    }
    if a.threads == Some(0) {
        return Err(usage("--threads must be at least 1"));
    }
    let sigs = match &a.signatures {
        None => Signatures::embedded(),
        Some(dir) => match Signatures::load_dir(dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("exwatch: signatures: {e}");
                return Err(exit::SIGNATURES);
            }
        },
    };
    let records_to_stdout = a.json.as_deref() == Some("-");
    let summary_to_stdout = a.summary_json.as_deref() == Some("-");
    if records_to_stdout && summary_to_stdout {
        return Err(usage(
            "--json and --summary-json cannot both write to standard output",
        ));
    }
    let out: Box<dyn Output> = match &a.json {
        Some(p) => match FileOutput::open(p, append) {
            Ok(w) => Box::new(w),
            Err(e) => {
                eprintln!("exwatch: {p}: cannot create: {e}");
                return Err(exit::OUTPUT);
            }
        },
        None => Box::new(Discard),
    };
    let workers = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let progress = match a.progress.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stderr().is_terminal() && !a.quiet,
    };
    let cfg = AuditConfig {
        captures: Vec::new(),
        workers,
        max_flows: a.max_flows,
        timeouts: Timeouts::new(
            a.tcp_timeout,
            a.syn_timeout,
            a.udp_timeout,
            a.other_timeout,
            a.tcp_close_timeout,
        )
        .with_active(active),
        frag: FragLimits {
            max_bytes: a.frag_memory.max(1) << 20,
            ..FragLimits::default()
        },
        classifier: Arc::new(Classifier::new(Arc::new(sigs))),
        write_records: a.json.is_some(),
        progress,
        verdict_events: false,
        stats_interval: None,
    };
    Ok(Prepared {
        cfg,
        out,
        records_to_stdout,
        summary_to_stdout,
    })
}

/// No `--json`: records are built for nothing.
struct Discard;

impl Write for Discard {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Output for Discard {
    fn reopen(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn audit(a: AuditArgs) -> i32 {
    if a.captures.iter().filter(|c| *c == "-").count() > 1 {
        return usage("standard input (-) can be read only once");
    }
    let mut p = match prepare(&a.run, 0.0, false) {
        Ok(p) => p,
        Err(code) => return code,
    };
    p.cfg.captures = a.captures.clone();
    let input = Input::Files(a.captures.clone());
    let outcome = run(&p.cfg, input, &mut *p.out, &mut || Ok(()));
    drop(p.out);
    let summary_out = a
        .run
        .summary_json
        .as_deref()
        .map(|path| FileOutput::open(path, false).map_err(|e| (path, e)));
    finish(
        &a.run,
        &outcome,
        p.records_to_stdout || p.summary_to_stdout,
        summary_out,
    )
}

fn live(l: LiveArgs) -> i32 {
    let stats_every = l.stats_interval;
    if !(stats_every.is_finite() && (0.0..1e9).contains(&stats_every)) {
        return usage(&format!(
            "--stats-interval must be 0 or a positive number of seconds, not {stats_every}"
        ));
    }
    if l.snaplen <= 0 {
        return usage("--snaplen must be at least 1");
    }
    if !(1..=2047).contains(&l.buffer_size) {
        return usage("--buffer-size must be between 1 and 2047 MiB");
    }
    let mut p = match prepare(&l.run, 60.0, true) {
        Ok(p) => p,
        Err(code) => return code,
    };
    p.cfg.progress = false;
    p.cfg.stats_interval = (stats_every > 0.0).then(|| Duration::from_secs_f64(stats_every));
    // The summary file is opened now, while we may still create it; it is written at the end.
    let mut summary_out = match l.run.summary_json.as_deref() {
        Some(path) => match FileOutput::open(path, false) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("exwatch: {path}: cannot create: {e}");
                return exit::OUTPUT;
            }
        },
        None => None,
    };
    let opts = LiveOptions {
        interface: l.interface.clone(),
        bpf: l.bpf.clone(),
        snaplen: l.snaplen,
        promisc: l.promisc,
        buffer_size: l.buffer_size << 20,
    };
    let cap = match LiveCapture::open(&opts) {
        Ok(c) => c,
        Err(e @ LiveError::Filter { .. }) => return usage(&e.to_string()),
        Err(e) => {
            eprintln!("exwatch: {e}");
            return exit::CAPTURE_OPEN;
        }
    };
    if let Some(user) = &l.user {
        if let Err(e) = crate::privilege::drop_to(user) {
            eprintln!("exwatch: {e}");
            return exit::PRIVILEGES;
        }
    }
    // Tests and service managers wait for this line: the capture is open from here on.
    eprintln!(
        "exwatch: capturing on {} (link type {}){}",
        cap.name(),
        cap.linktype(),
        l.user
            .as_deref()
            .map_or(String::new(), |u| format!(" as user {u}"))
    );
    if let Err(e) = control::install() {
        eprintln!("exwatch: installing signal handlers: {e}");
        return exit::OUTPUT;
    }
    let mut reopen_summary = || match &mut summary_out {
        Some(w) => w.reopen(),
        None => Ok(()),
    };
    let input = Input::Live(Box::new(cap));
    let outcome = run(&p.cfg, input, &mut *p.out, &mut reopen_summary);
    drop(p.out);
    let summary_out = summary_out.map(Ok);
    finish(
        &l.run,
        &outcome,
        p.records_to_stdout || p.summary_to_stdout,
        summary_out,
    )
}

/// Report write errors, print and write the summary, and choose the exit code.
fn finish(
    a: &RunArgs,
    outcome: &AuditOutcome,
    summary_to_stderr: bool,
    summary_out: Option<Result<FileOutput, (&str, std::io::Error)>>,
) -> i32 {
    let mut code = exit::OK;
    if let Some(e) = &outcome.write_error {
        eprintln!("exwatch: writing records: {e}");
        code = exit::OUTPUT;
    }
    if !a.quiet {
        let text = outcome.summary.render();
        if summary_to_stderr {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    if let Some(w) = summary_out {
        let path = a.summary_json.as_deref().unwrap_or("-");
        let written = w.map_err(|(_, e)| e).and_then(|mut w| {
            serde_json::to_writer_pretty(&mut w, &outcome.summary.to_json())?;
            w.write_all(b"\n")?;
            w.flush()
        });
        if let Err(e) = written {
            eprintln!("exwatch: {path}: cannot write summary: {e}");
            code = exit::OUTPUT;
        }
    }
    if code == exit::OK {
        code = outcome
            .errors
            .iter()
            .map(CaptureError::exit_code)
            .max()
            .unwrap_or(exit::OK);
    }
    code
}
