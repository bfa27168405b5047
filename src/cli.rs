//! Command line: raw flags (clap) become one validated configuration before anything runs.

use crate::capture::CaptureError;
use crate::classify::Classifier;
use crate::decode::frag::FragLimits;
use crate::flow::Timeouts;
use crate::pipeline::{run_audit, AuditConfig};
use crate::signatures::Signatures;
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    /// Records or the summary could not be written.
    pub const OUTPUT: i32 = 1;
    /// Bad command line (clap uses 2 as well).
    pub const USAGE: i32 = 2;
    /// Signature files are invalid.
    pub const SIGNATURES: i32 = 6;
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
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Capture files, read in the order given; `-` reads standard input.
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<String>,
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
    }
}

fn usage(msg: &str) -> i32 {
    eprintln!("exwatch: {msg}");
    exit::USAGE
}

/// Open an output path; `-` is standard output.
fn open_output(path: &str) -> std::io::Result<Box<dyn Write + Send>> {
    if path == "-" {
        Ok(Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        )))
    } else {
        Ok(Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::fs::File::create(path)?,
        )))
    }
}

fn audit(a: AuditArgs) -> i32 {
    for (name, v) in [
        ("--tcp-timeout", a.tcp_timeout),
        ("--syn-timeout", a.syn_timeout),
        ("--udp-timeout", a.udp_timeout),
        ("--other-timeout", a.other_timeout),
        ("--tcp-close-timeout", a.tcp_close_timeout),
    ] {
        if !(v.is_finite() && v > 0.0 && v < 1e9) {
            return usage(&format!(
                "{name} must be a positive number of seconds, not {v}"
            ));
        }
    }
    if a.max_flows == 0 {
        return usage("--max-flows must be at least 1");
    }
    if a.threads == Some(0) {
        return usage("--threads must be at least 1");
    }
    if a.captures.iter().filter(|c| *c == "-").count() > 1 {
        return usage("standard input (-) can be read only once");
    }
    let sigs = match &a.signatures {
        None => Signatures::embedded(),
        Some(dir) => match Signatures::load_dir(dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("exwatch: signatures: {e}");
                return exit::SIGNATURES;
            }
        },
    };
    let records_to_stdout = a.json.as_deref() == Some("-");
    let summary_to_stdout = a.summary_json.as_deref() == Some("-");
    if records_to_stdout && summary_to_stdout {
        return usage("--json and --summary-json cannot both write to standard output");
    }
    let mut out: Box<dyn Write + Send> = match &a.json {
        Some(p) => match open_output(p) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("exwatch: {p}: cannot create: {e}");
                return exit::OUTPUT;
            }
        },
        None => Box::new(std::io::sink()),
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
        captures: a.captures.clone(),
        workers,
        max_flows: a.max_flows,
        timeouts: Timeouts::new(
            a.tcp_timeout,
            a.syn_timeout,
            a.udp_timeout,
            a.other_timeout,
            a.tcp_close_timeout,
        ),
        frag: FragLimits {
            max_bytes: a.frag_memory.max(1) << 20,
            ..FragLimits::default()
        },
        classifier: Arc::new(Classifier::new(Arc::new(sigs))),
        write_records: a.json.is_some(),
        progress,
    };
    let outcome = run_audit(&cfg, &mut out);
    drop(out);
    let mut code = exit::OK;
    if let Some(e) = &outcome.write_error {
        eprintln!("exwatch: writing records: {e}");
        code = exit::OUTPUT;
    }
    if !a.quiet {
        let text = outcome.summary.render();
        if records_to_stdout || summary_to_stdout {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    if let Some(p) = &a.summary_json {
        let written = open_output(p).and_then(|mut w| {
            serde_json::to_writer_pretty(&mut w, &outcome.summary.to_json())?;
            w.write_all(b"\n")?;
            w.flush()
        });
        if let Err(e) = written {
            eprintln!("exwatch: {p}: cannot write summary: {e}");
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
