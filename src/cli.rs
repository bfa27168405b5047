//! Command line: raw flags (clap) become one validated configuration before anything runs.

use crate::capture::live::{self, LiveError, LiveOptions};
use crate::capture::CaptureError;
use crate::classify::Classifier;
use crate::decode::frag::FragLimits;
use crate::flow::Timeouts;
use crate::pipeline::progress::Progress;
use crate::pipeline::{control, run, AuditConfig, AuditOutcome, Input, Output};
use crate::policy::file::{parse_fail_on, Policy, PolicyError, Vocabulary};
use crate::policy::firewall::RuleSet;
use crate::policy::groups::Cidr;
use crate::policy::learn::Learner;
use crate::policy::run::PolicyRun;
use crate::policy::{template, Kind};
use crate::report::clickhouse;
use crate::report::html::Meta;
use crate::report::record::{self, RecordContext};
use crate::signatures::Signatures;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Most worker threads `--threads` accepts (and the default on a machine with more cores).
pub const MAX_THREADS: usize = 256;

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
    /// `audit --fail-on`: the policy found flows of the named kinds.
    pub const POLICY_FINDINGS: i32 = 7;
    /// `validate`: the rule set would deny observed flows.
    pub const WOULD_DENY: i32 = 8;
    /// A policy, groups or rules file is invalid (the message names file and line).
    pub const POLICY_FILE: i32 = 9;
    /// `--user`: the process could not become that user (live).
    pub const PRIVILEGES: i32 = 11;
}

#[derive(Parser, Debug)]
#[command(
    name = "exwatch",
    version = version_text(),
    propagate_version = true,
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
    /// Would an ordered firewall rule set (CSV or iptables-save) let the captured flows through?
    Validate(ValidateArgs),
    /// Write the smallest policy that allows every flow of the captures.
    Learn(LearnArgs),
    /// Policy templates from the Exchange port reference, and policy file checks.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to standard output.
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output.
    Man,
    /// Print the record schema: an Elasticsearch index template, or the field table.
    Schema {
        /// elasticsearch (an index template mapping every field), clickhouse (the table's
        /// DDL), markdown (the README's table) or tsv (field, type, shape).
        #[arg(long, value_name = "FORMAT", default_value = "elasticsearch", value_parser = ["elasticsearch", "clickhouse", "markdown", "tsv"])]
        format: String,
    },
}

extern "C" {
    fn pcap_lib_version() -> *const libc::c_char;
}

/// `--version` on every subcommand: exwatch's version and the libpcap it runs with.
fn version_text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        // SAFETY: libpcap returns a static NUL-terminated string.
        let lib = unsafe { std::ffi::CStr::from_ptr(pcap_lib_version()) };
        format!("{} ({})", env!("CARGO_PKG_VERSION"), lib.to_string_lossy())
    })
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The rule set: CSV (name,action,source,destination,transport,ports) or iptables-save output.
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    /// iptables-save: the chain new flows enter (FORWARD for a firewall between networks,
    /// INPUT for a host firewall).
    #[arg(long, value_name = "NAME", default_value = "FORWARD")]
    pub chain: String,
    /// Name addresses in the findings by the groups of this policy file instead of addresses.
    #[arg(long, value_name = "FILE")]
    pub groups: Option<PathBuf>,
    #[command(flatten)]
    pub audit: AuditArgs,
}

#[derive(Args, Debug)]
pub struct LearnArgs {
    /// Policy file whose [[group]] tables name the networks (its rules are ignored); without
    /// it, rules are learned per address (a group per host, /32 or /128).
    #[arg(long, value_name = "FILE")]
    pub groups: Option<PathBuf>,
    /// Where to write the learned policy (`-` = standard output).
    #[arg(long, short, value_name = "PATH", default_value = "-")]
    pub output: String,
    /// Also write the learned rules in the CSV rule format that `validate` reads.
    #[arg(long, value_name = "PATH")]
    pub rules_csv: Option<String>,
    #[command(flatten)]
    pub audit: AuditArgs,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print a ready policy built from the port reference for one deployment.
    Template(Box<TemplateArgs>),
    /// List the templates.
    List,
    /// Load a policy file and report its groups and rules, or the first error; several files
    /// are merged as `--policy` given several times merges them.
    Check {
        #[arg(value_name = "FILE", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct TemplateArgs {
    /// Template names (`exwatch policy list`); several compose one policy, each group and
    /// rule once.
    #[arg(value_name = "NAME", required = true, num_args = 1..)]
    pub names: Vec<String>,
    /// Networks of a role: `--ROLE CIDR[,CIDR...]`, repeatable.
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub clients: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub internet: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub mailbox: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub cas: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub hub: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub edge: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub um: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub ipgw: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub dc: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub dns: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub ocs: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub eop: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub adrms: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub admin: Vec<String>,
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub davmail: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Capture files, read in the order given; `-` reads standard input; a directory reads
    /// the .pcap, .pcapng and .cap files in it in name order; gzip and zstd are decompressed.
    /// exwatch's own NDJSON records may be given instead of captures (all inputs records).
    #[arg(value_name = "CAPTURE", required_unless_present = "read")]
    pub captures: Vec<String>,
    /// A capture to read, as with tcpdump -r (repeatable; read before the CAPTURE arguments).
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<String>,
    /// Read only the packets this filter passes (tcpdump/BPF syntax, libpcap's compiler, as
    /// tcpdump -r FILE EXPR).
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,
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
    /// Kernel fanout group (0 to 65535) the capture sockets join, one socket per worker:
    /// exwatch processes on one interface with the same ID share its traffic, flow by flow
    /// (default: a new group whose ID the kernel picks among unused ones; with --threads 1, no
    /// group).
    #[arg(long, value_name = "ID")]
    pub fanout_group: Option<u16>,
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
    /// Write the audit report to PATH: one self-contained HTML page (inventory, who talks to
    /// whom, findings, charts); `-` for standard output (live: at exit).
    #[arg(long, value_name = "PATH")]
    pub report: Option<String>,
    /// Worker threads, 1 to 256 (default: all cores, at most 256).
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
    /// Memory for IP fragment reassembly, MiB (payload plus 256 bytes per pending datagram;
    /// when full, the oldest incomplete datagram is evicted).
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
    /// Judge every flow against this policy file (records get exwatch.policy.*); given several
    /// times, the files are merged: each group and rule once, a group defined differently in
    /// two files is an error.
    #[arg(long, value_name = "FILE")]
    pub policy: Vec<PathBuf>,
    /// Exit with code 7 when the policy finds flows of these kinds: unexpected, mismatch, or both
    /// (comma-separated).
    #[arg(long, value_name = "KINDS", requires = "policy")]
    pub fail_on: Option<String>,
    /// Write one CSV row per flow to PATH (`-` for standard output), sorted by start time
    /// (audit, validate, learn; live writes it at exit).
    #[arg(long, value_name = "PATH")]
    pub flows_csv: Option<String>,
    /// Write the grouped findings (policy findings; for validate, denied flows) as CSV to PATH.
    #[arg(long, value_name = "PATH")]
    pub csv: Option<String>,
    /// The inside networks, for network.direction in records (comma-separated or repeated
    /// CIDRs or addresses; default: the networks of the policy's groups except catch-alls).
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub home_net: Vec<String>,
    /// Also insert every record into ClickHouse over its HTTP interface
    /// (http://HOST:8123/, optionally ?database=DB&user=U&password=P), in batches, without
    /// ever holding up capture: records the server does not take are counted as lost.
    #[arg(long, value_name = "URL")]
    pub clickhouse: Option<String>,
    /// The ClickHouse table (create it with `exwatch schema --format clickhouse`).
    #[arg(long, value_name = "NAME", default_value = "exwatch_flows")]
    pub clickhouse_table: String,
    /// Decrypt TLS sessions whose secrets this NSS key log (SSLKEYLOGFILE) holds, to name the
    /// Exchange service inside HTTPS (live: the file is read again as it grows).
    #[arg(long, value_name = "FILE")]
    pub tls_keylog: Option<PathBuf>,
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
        Command::Validate(v) => validate(v),
        Command::Learn(l) => learn(l),
        Command::Policy(p) => policy(p),
        Command::Live(l) => live(l),
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "exwatch", &mut buf);
            print_out(&buf)
        }
        Command::Schema { format } => {
            use crate::report::schema;
            let text = match format.as_str() {
                "markdown" => schema::markdown_table(),
                "clickhouse" => clickhouse::ddl("exwatch_flows"),
                "tsv" => schema::tsv(),
                _ => schema::elasticsearch_template(),
            };
            print_out(text.as_bytes())
        }
        Command::Man => {
            let mut buf = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut buf) {
                Ok(()) => print_out(&buf),
                Err(e) => {
                    crate::say!("exwatch: man: {e}");
                    exit::OUTPUT
                }
            }
        }
    }
}

/// Write text to standard output. Any failure, a closed pipe included, is reported and gives
/// exit 1: output cut short is not a success (issue 13). `print!` would panic instead.
fn print_out(b: &[u8]) -> i32 {
    emit(false, b)
}

/// Write text to standard output or standard error, as `print_out`.
fn emit(to_stderr: bool, b: &[u8]) -> i32 {
    let (written, name) = if to_stderr {
        let mut e = std::io::stderr().lock();
        (e.write_all(b).and_then(|_| e.flush()), "standard error")
    } else {
        let mut o = std::io::stdout().lock();
        (o.write_all(b).and_then(|_| o.flush()), "standard output")
    };
    match written {
        Ok(()) => exit::OK,
        Err(e) => {
            // stderr may be the stream that failed: nothing more can be said then
            let _ = writeln!(std::io::stderr(), "exwatch: {name}: {e}");
            exit::OUTPUT
        }
    }
}

/// The captures to read: `-r` files, then the arguments, with each directory replaced by
/// the capture files in it in name order.
fn expand_captures(a: &AuditArgs) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for spec in a.read.iter().chain(&a.captures) {
        let path = std::path::Path::new(spec);
        if spec == "-" || !path.is_dir() {
            out.push(spec.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| format!("{spec}: cannot read: {e}"))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_capture_name(p))
            .collect();
        if found.is_empty() {
            return Err(format!(
                "{spec}: the directory holds no .pcap, .pcapng or .cap file (compressed or not)"
            ));
        }
        found.sort();
        out.extend(found.into_iter().map(|p| p.to_string_lossy().into_owned()));
    }
    Ok(out)
}

/// Whether the inputs are exwatch's own records rather than captures (all of one kind; a
/// mix is refused). An input that cannot be opened counts as a capture, so that reading it
/// reports its error in turn.
fn inputs_are_records(inputs: &[String]) -> Result<bool, String> {
    use crate::capture::offline::{sniff, Content};
    let kinds: Vec<(&String, Content)> = inputs
        .iter()
        .map(|i| (i, sniff(i).unwrap_or(Content::Capture)))
        .collect();
    let records = kinds.iter().filter(|(_, k)| *k == Content::Records).count();
    if records == 0 {
        return Ok(false);
    }
    if records < kinds.len() {
        let (r, _) = kinds.iter().find(|(_, k)| *k == Content::Records).unwrap();
        let (c, _) = kinds.iter().find(|(_, k)| *k == Content::Capture).unwrap();
        return Err(format!(
            "{r} holds exwatch records and {c} does not: give either captures or records, not both"
        ));
    }
    Ok(true)
}

/// `.pcap`, `.pcapng` and `.cap`, also compressed (`.pcap.gz`, `.pcapng.zst`...).
fn is_capture_name(p: &std::path::Path) -> bool {
    let name = p
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let name = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".zst"))
        .unwrap_or(&name);
    [".pcap", ".pcapng", ".cap"]
        .iter()
        .any(|e| name.ends_with(e) && name.len() > e.len())
}

fn policy_error(e: &PolicyError) -> i32 {
    crate::say!("exwatch: {e}");
    exit::POLICY_FILE
}

/// The judge of an audit: the policy when `--policy` is given.
fn audit_judge(a: &RunArgs) -> Result<PolicyRun, i32> {
    let mut run = PolicyRun::default();
    if !a.policy.is_empty() {
        // Rules may require the protocols and services of the signatures in use.
        let custom;
        let names = match &a.signatures {
            None => Vocabulary::embedded(),
            Some(dir) => match Signatures::load_dir(dir) {
                Ok(s) => {
                    custom = Vocabulary::of(&s);
                    &custom
                }
                Err(e) => {
                    crate::say!("exwatch: signatures: {e}");
                    return Err(exit::SIGNATURES);
                }
            },
        };
        run.policy = Some(Policy::load_all(&a.policy, names).map_err(|e| policy_error(&e))?);
    }
    Ok(run)
}

fn audit(a: AuditArgs) -> i32 {
    match audit_judge(&a.run) {
        Ok(mut judge) => run_files(&a, &mut judge, Mode::Audit, None),
        Err(code) => code,
    }
}

fn validate(v: ValidateArgs) -> i32 {
    let mut run = match audit_judge(&v.audit.run) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if let Some(g) = &v.groups {
        match Policy::load(g) {
            Ok(p) => run.label_groups = Some(p.groups),
            Err(e) => return policy_error(&e),
        }
    }
    run.firewall = match RuleSet::load(&v.rules, &v.chain, run.label_groups.as_ref()) {
        Ok(r) => {
            for n in &r.notes {
                crate::say!("exwatch: {n}");
            }
            Some(r)
        }
        Err(e) => return policy_error(&e),
    };
    run_files(&v.audit, &mut run, Mode::Validate, Some(&v.rules))
}

fn learn(l: LearnArgs) -> i32 {
    let mut run = match audit_judge(&l.audit.run) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let groups = match l.groups.as_deref().map(Policy::load) {
        None => None,
        Some(Ok(p)) => Some(p.groups),
        Some(Err(e)) => return policy_error(&e),
    };
    let sigs = match &l.audit.run.signatures {
        None => Arc::new(Signatures::embedded()),
        Some(dir) => match Signatures::load_dir(dir) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                crate::say!("exwatch: signatures: {e}");
                return exit::SIGNATURES;
            }
        },
    };
    run.learner = Some(Learner::new(groups, sigs));
    let code = run_files(&l.audit, &mut run, Mode::Learn(l.output == "-"), None);
    if matches!(code, exit::USAGE | exit::SIGNATURES | exit::OUTPUT) {
        // Nothing was learned (or the records already failed): write no policy.
        return code;
    }
    let learner = run.learner.as_ref().expect("set above");
    // The rules a reviewer must look at before the policy is used.
    for r in learner.reviews() {
        crate::say!("exwatch: learned rule {r}: not in the reference, review it");
    }
    let sources: Vec<&str> = l
        .audit
        .read
        .iter()
        .chain(&l.audit.captures)
        .map(String::as_str)
        .collect();
    let sources = sources.join(" ");
    let mut written = FileOutput::open(&l.output, false).and_then(|mut w| {
        w.write_all(learner.policy_toml(&sources).as_bytes())
            .and_then(|_| w.flush())
    });
    if let (Ok(()), Some(p)) = (&written, &l.rules_csv) {
        written = FileOutput::open(p, false).and_then(|mut w| {
            w.write_all(learner.rules_csv().as_bytes())
                .and_then(|_| w.flush())
        });
    }
    if let Err(e) = written {
        crate::say!("exwatch: cannot write the learned policy: {e}");
        return exit::OUTPUT;
    }
    code
}

fn policy(p: PolicyCommand) -> i32 {
    match p {
        PolicyCommand::List => {
            let mut text = String::new();
            for t in template::TEMPLATES {
                text.push_str(&format!("{:<26} {}\n", t.name, t.about));
            }
            for (alias, t) in template::ALIASES {
                text.push_str(&format!(
                    "{alias:<26} the {t} set (same ports as Exchange 2016)\n"
                ));
            }
            text.push_str("\nRoles (--ROLE CIDR[,CIDR...]):\n");
            for (r, about) in template::ROLES {
                text.push_str(&format!("  --{r:<10} {about}\n"));
            }
            print_out(text.as_bytes())
        }
        PolicyCommand::Check { files } => match Policy::load_all(&files, Vocabulary::embedded()) {
            Ok(p) => {
                let mut text = format!(
                    "{}: {} groups, {} rules\n",
                    p.origin,
                    p.groups.iter().count(),
                    p.rules.len()
                );
                for note in p.overlap_notes() {
                    text.push_str(&note);
                    text.push('\n');
                }
                print_out(text.as_bytes())
            }
            Err(e) => policy_error(&e),
        },
        PolicyCommand::Template(t) => {
            let mut tpls = Vec::with_capacity(t.names.len());
            for name in &t.names {
                let Some(tpl) = template::find(name) else {
                    return usage(&format!(
                        "no template `{name}`{}; templates: {}",
                        crate::policy::suggest::did_you_mean(name, &template::names()),
                        template::names().join(", ")
                    ));
                };
                tpls.push(tpl);
            }
            let mut roles = std::collections::BTreeMap::new();
            for (role, cidrs) in [
                ("clients", &t.clients),
                ("internet", &t.internet),
                ("mailbox", &t.mailbox),
                ("cas", &t.cas),
                ("hub", &t.hub),
                ("edge", &t.edge),
                ("um", &t.um),
                ("ipgw", &t.ipgw),
                ("dc", &t.dc),
                ("dns", &t.dns),
                ("ocs", &t.ocs),
                ("eop", &t.eop),
                ("adrms", &t.adrms),
                ("admin", &t.admin),
                ("davmail", &t.davmail),
            ] {
                if cidrs.is_empty() {
                    continue;
                }
                let mut v = Vec::with_capacity(cidrs.len());
                for c in cidrs {
                    match Cidr::parse(c) {
                        Ok(c) => v.push(c),
                        Err(e) => return usage(&format!("--{role}: {e}")),
                    }
                }
                roles.insert(role.to_string(), v);
            }
            let sigs = Signatures::embedded();
            let used = template::roles_of(&tpls, &sigs);
            let names: Vec<&str> = t.names.iter().map(String::as_str).collect();
            for role in roles.keys().filter(|r| !used.contains(r)) {
                crate::say!(
                    "exwatch: note: {} `{}` has no rule for --{role}",
                    if names.len() == 1 {
                        "template"
                    } else {
                        "templates"
                    },
                    names.join(" + ")
                );
            }
            print_out(template::render(&names, &sigs, &roles).as_bytes())
        }
    }
}

/// What a run is for: decides the report and the exit code beyond capture errors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Audit,
    Validate,
    /// The learned policy goes to standard output (true) or a file.
    Learn(bool),
}

fn usage(msg: &str) -> i32 {
    crate::say!("exwatch: {msg}");
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
    /// The ClickHouse sender (`--clickhouse`), to wait for at the end.
    clickhouse: Option<clickhouse::Handle>,
    /// Something else goes to standard output: the summary text goes to standard error.
    text_to_stderr: bool,
}

/// Check the shared options and open the records file.
fn prepare(
    a: &RunArgs,
    active_default: f64,
    append: bool,
    learn_to_stdout: bool,
) -> Result<Prepared, i32> {
    if let Some(Err(e)) = a.fail_on.as_deref().map(parse_fail_on) {
        return Err(usage(&e));
    }
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
    if let Some(n) = a.threads.filter(|&n| n > MAX_THREADS) {
        return Err(usage(&format!(
            "--threads {n} is more than {MAX_THREADS}, the most exwatch runs (each worker holds \
             about 4 MB of buffers, and the reader shards flows over them)"
        )));
    }
    let sigs = match &a.signatures {
        None => Signatures::embedded(),
        Some(dir) => match Signatures::load_dir(dir) {
            Ok(s) => s,
            Err(e) => {
                crate::say!("exwatch: signatures: {e}");
                return Err(exit::SIGNATURES);
            }
        },
    };
    let records_to_stdout = a.json.as_deref() == Some("-");
    let summary_to_stdout = a.summary_json.as_deref() == Some("-");
    let csv_to_stdout = a.csv.as_deref() == Some("-");
    let flows_to_stdout = a.flows_csv.as_deref() == Some("-");
    let report_to_stdout = a.report.as_deref() == Some("-");
    let to_stdout = [
        records_to_stdout,
        summary_to_stdout,
        learn_to_stdout,
        csv_to_stdout,
        flows_to_stdout,
        report_to_stdout,
    ];
    if to_stdout.iter().filter(|&&b| b).count() > 1 {
        return Err(usage(
            "only one of --json, --summary-json, --csv, --flows-csv, --report and the learned policy can write to standard output",
        ));
    }
    if let Some(path) = &a.tls_keylog {
        match crate::classify::keylog::KeyLog::load(path) {
            Ok(k) => {
                let st = k.stats();
                for r in &st.reported {
                    crate::say!("exwatch: --tls-keylog: {r} (line skipped)");
                }
                if st.bad_lines > st.reported.len() as u64 {
                    crate::say!(
                        "exwatch: --tls-keylog {}: {} bad lines in all",
                        path.display(),
                        st.bad_lines
                    );
                }
                crate::classify::keylog::install(k, active_default > 0.0);
            }
            Err(e) => {
                return Err(usage(&format!("--tls-keylog {}: {e}", path.display())));
            }
        }
    }
    let target = match &a.clickhouse {
        Some(u) => Some(clickhouse::Target::new(u, &a.clickhouse_table).map_err(|e| usage(&e))?),
        None => None,
    };
    let mut out: Box<dyn Output> = match &a.json {
        Some(p) => match FileOutput::open(p, append) {
            Ok(w) => Box::new(w),
            Err(e) => {
                crate::say!("exwatch: {p}: cannot create: {e}");
                return Err(exit::OUTPUT);
            }
        },
        None => Box::new(Discard),
    };
    let mut handle = None;
    let mut stats_suffix = None;
    if let Some(t) = target {
        let (pusher, h) = clickhouse::start(t);
        let stats = pusher.stats();
        stats_suffix = Some(Arc::new(move || {
            format!(
                " clickhouse-lost {}",
                stats.lost.load(std::sync::atomic::Ordering::Relaxed)
            )
        }) as Arc<dyn Fn() -> String + Send + Sync>);
        out = Box::new(Tee {
            first: out,
            second: pusher,
        });
        handle = Some(h);
    }
    let workers = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
    });
    let tty = std::io::stderr().is_terminal();
    let progress = match a.progress.as_str() {
        "always" if tty => Progress::Bar,
        "always" => Progress::Lines,
        "auto" if tty && !a.quiet => Progress::Bar,
        _ => Progress::Off,
    };
    let cfg = AuditConfig {
        captures: Vec::new(),
        bpf: None,
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
        write_records: a.json.is_some() || handle.is_some(),
        flows_csv: a.flows_csv.is_some(),
        inventory: a.report.is_some() || a.summary_json.is_some(),
        progress,
        verdict_events: false,
        stats_interval: None,
        records: Arc::default(),
        stats_suffix,
    };
    Ok(Prepared {
        cfg,
        out,
        clickhouse: handle,
        text_to_stderr: to_stdout.contains(&true),
    })
}

/// Records to two places: the `--json` output (or nothing) and the ClickHouse queue.
struct Tee {
    first: Box<dyn Output>,
    second: clickhouse::Pusher,
}

impl Write for Tee {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.write_all(b)?;
        Ok(b.len())
    }
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        // The queue never fails and never waits: it goes first, so that a failing file does
        // not also cost the database its records.
        self.second.write_all(b)?;
        self.first.write_all(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.second.flush()?;
        self.first.flush()
    }
}

impl Output for Tee {
    fn reopen(&mut self) -> std::io::Result<()> {
        self.first.reopen()
    }
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

/// What the records of a run share: this host as observer, `interface` when live, the home
/// networks (`--home-net`, else the policy's groups) and the files that judge the flows.
fn record_context(
    a: &RunArgs,
    judge: &PolicyRun,
    interface: Option<&str>,
    rules_file: Option<&Path>,
) -> Result<Arc<RecordContext>, i32> {
    let home_net = if a.home_net.is_empty() {
        judge
            .policy
            .as_ref()
            .map(|p| record::home_net_of(&p.groups))
            .unwrap_or_default()
    } else {
        let mut v = Vec::new();
        for c in &a.home_net {
            match Cidr::parse(c.trim()) {
                Ok(c) => v.push(c),
                Err(e) => return Err(usage(&format!("--home-net {c}: {e}"))),
            }
        }
        v
    };
    let mut ctx = RecordContext::new(&RecordContext::hostname(), interface, home_net);
    if !a.policy.is_empty() {
        let files: Vec<String> = a.policy.iter().map(|p| p.display().to_string()).collect();
        ctx.policy_file = Some(files.join(","));
    }
    ctx.rules_file = rules_file.map(|p| p.display().to_string());
    Ok(Arc::new(ctx))
}

/// Read capture files through the pipeline, judged by `judge`, and report for `mode`.
fn run_files(a: &AuditArgs, judge: &mut PolicyRun, mode: Mode, rules_file: Option<&Path>) -> i32 {
    let captures = match expand_captures(a) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    if captures.iter().filter(|c| *c == "-").count() > 1 {
        return usage("standard input (-) can be read only once");
    }
    let mut p = match prepare(&a.run, 0.0, false, mode == Mode::Learn(true)) {
        Ok(p) => p,
        Err(code) => return code,
    };
    p.cfg.captures = captures.clone();
    p.cfg.records = match record_context(&a.run, judge, None, rules_file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let bpf = a.bpf.as_deref().filter(|e| !e.trim().is_empty());
    if let Some(expr) = bpf {
        if let Err(e) = crate::capture::filter::PacketFilter::check(expr) {
            return usage(&format!("bad --bpf filter {expr:?}: {e}"));
        }
    }
    p.cfg.bpf = bpf.map(str::to_string);
    let outcome = match inputs_are_records(&captures) {
        Ok(true) if bpf.is_some() => {
            return usage("--bpf filters packets: records given as input have none")
        }
        Ok(true) => crate::pipeline::replay::run_records(&p.cfg, &captures, &mut *p.out, judge),
        Ok(false) => run(
            &p.cfg,
            Input::Files(captures),
            &mut *p.out,
            &mut || Ok(()),
            judge,
        ),
        Err(e) => return usage(&e),
    };
    drop(p.out);
    let ch = p.clickhouse.map(clickhouse::Handle::finish);
    let summary_out = a
        .run
        .summary_json
        .as_deref()
        .map(|path| FileOutput::open(path, false).map_err(|e| (path, e)));
    let report_out = a
        .run
        .report
        .as_deref()
        .map(|path| FileOutput::open(path, false).map_err(|e| (path, e)));
    let meta = Meta {
        mode: match mode {
            Mode::Audit => "audit",
            Mode::Validate => "validate",
            Mode::Learn(_) => "learn",
        }
        .into(),
        sources: p.cfg.captures.clone(),
        ..Meta::default()
    };
    finish(
        &a.run,
        &outcome,
        p.text_to_stderr,
        Files {
            summary: summary_out,
            report: report_out,
            meta,
        },
        judge,
        mode,
        ch.as_deref(),
    )
}

/// Open an output file that is written only at the end, now (before privileges are dropped);
/// a path that cannot be created is exit 1 before anything is captured.
fn create_now(path: Option<&str>) -> Result<Option<FileOutput>, i32> {
    let Some(path) = path else {
        return Ok(None);
    };
    FileOutput::open(path, false).map(Some).map_err(|e| {
        crate::say!("exwatch: {path}: cannot create: {e}");
        exit::OUTPUT
    })
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
    let mut judge = match audit_judge(&l.run) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let mut p = match prepare(&l.run, 60.0, true, false) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // With a policy, flows are judged as soon as their payload verdict is known, so that
    // unexpected and mismatched flows raise an alert record while they are still alive.
    p.cfg.verdict_events = judge.policy.is_some();
    // Live has its statistics lines; a progress display only when asked for.
    if l.run.progress != "always" {
        p.cfg.progress = Progress::Off;
    }
    p.cfg.records = match record_context(&l.run, &judge, Some(&l.interface), None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    p.cfg.stats_interval = (stats_every > 0.0).then(|| Duration::from_secs_f64(stats_every));
    // The summary file is opened now, while we may still create it; it is written at the end.
    let mut summary_out = match create_now(l.run.summary_json.as_deref()) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let opts = LiveOptions {
        interface: l.interface.clone(),
        bpf: l.bpf.clone(),
        snaplen: l.snaplen,
        promisc: l.promisc,
        buffer_size: l.buffer_size << 20,
    };
    // One capture socket per worker, joined to one fanout group (or one plain socket).
    let (caps, group) = match live::open_sockets(&opts, p.cfg.workers, l.fanout_group) {
        Ok(c) => c,
        Err(e @ (LiveError::Filter { .. } | LiveError::Fanout { .. })) => {
            return usage(&e.to_string())
        }
        Err(e) => {
            crate::say!("exwatch: {e}");
            return exit::CAPTURE_OPEN;
        }
    };
    let Some(cap) = caps.first() else {
        crate::say!("exwatch: {}: no capture socket was opened", l.interface);
        return exit::CAPTURE_OPEN;
    };
    let (name, linktype) = (cap.name().to_string(), cap.linktype());
    let fanout = group.map_or(String::new(), |g| {
        let n = caps.len();
        format!(
            ", {n} socket{} in fanout group {g}",
            if n == 1 { "" } else { "s" }
        )
    });
    if let Some(user) = &l.user {
        if let Err(e) = crate::privilege::drop_to(user) {
            crate::say!("exwatch: {e}");
            return exit::PRIVILEGES;
        }
    }
    // Tests and service managers wait for this line: the capture is open from here on.
    crate::say!(
        "exwatch: capturing on {} (link type {}{fanout}){}",
        name,
        linktype,
        l.user
            .as_deref()
            .map_or(String::new(), |u| format!(" as user {u}"))
    );
    if let Err(e) = control::install() {
        crate::say!("exwatch: installing signal handlers: {e}");
        return exit::OUTPUT;
    }
    // The report too: written at exit, perhaps by a user who could not create it.
    let report_out = match create_now(l.run.report.as_deref()) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let mut reopen_summary = || match &mut summary_out {
        Some(w) => w.reopen(),
        None => Ok(()),
    };
    let input = Input::Live(caps);
    let outcome = run(&p.cfg, input, &mut *p.out, &mut reopen_summary, &mut judge);
    drop(p.out);
    let ch = p.clickhouse.map(clickhouse::Handle::finish);
    let meta = Meta {
        mode: "live".into(),
        sources: vec![l.interface.clone()],
        ..Meta::default()
    };
    let files = Files {
        summary: summary_out.map(Ok),
        report: report_out.map(Ok),
        meta,
    };
    finish(
        &l.run,
        &outcome,
        p.text_to_stderr,
        files,
        &mut judge,
        Mode::Audit,
        ch.as_deref(),
    )
}

/// The files written at the end of a run, opened (or not) by the caller, and what the report
/// says about the run.
struct Files<'a> {
    summary: Option<Result<FileOutput, (&'a str, std::io::Error)>>,
    report: Option<Result<FileOutput, (&'a str, std::io::Error)>>,
    meta: Meta,
}

/// Report write errors, print and write the summary and the findings, and choose the exit code.
fn finish(
    a: &RunArgs,
    outcome: &AuditOutcome,
    summary_to_stderr: bool,
    files: Files<'_>,
    judge: &mut PolicyRun,
    mode: Mode,
    clickhouse: Option<&clickhouse::Stats>,
) -> i32 {
    let fail_on = a
        .fail_on
        .as_deref()
        .map(parse_fail_on)
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut code = exit::OK;
    if let Some(e) = &outcome.write_error {
        crate::say!("exwatch: writing records: {e}");
        code = exit::OUTPUT;
    }
    if !a.quiet {
        let mut text = outcome.summary.render();
        if judge.policy.is_some() {
            text.push_str(&policy_report(judge));
        }
        if mode == Mode::Validate {
            text.push_str(&judge.render_firewall());
        }
        if let Some(c) = clickhouse {
            text.push_str(&c.render());
        }
        if emit(summary_to_stderr, text.as_bytes()) != exit::OK {
            code = exit::OUTPUT;
        }
    }
    if let Some(p) = &a.csv {
        let written = FileOutput::open(p, false).and_then(|mut w| {
            if mode == Mode::Validate {
                judge.write_firewall_csv(&mut w)
            } else {
                judge.findings.write_csv(&mut w)
            }
        });
        if let Err(e) = written {
            crate::say!("exwatch: {p}: cannot write CSV: {e}");
            code = exit::OUTPUT;
        }
    }
    if let Some(p) = &a.flows_csv {
        let written = FileOutput::open(p, false)
            .and_then(|mut w| crate::report::flows_csv::write_sorted(&mut w, &outcome.flow_rows));
        if let Err(e) = written {
            crate::say!("exwatch: {p}: cannot write the flows CSV: {e}");
            code = exit::OUTPUT;
        }
    }
    let Files {
        summary: summary_out,
        report: report_out,
        mut meta,
    } = files;
    if summary_out.is_some() || report_out.is_some() {
        let mut json = outcome.summary.to_json();
        if let Some(obj) = json.as_object_mut() {
            if let Some(inv) = &outcome.inventory {
                obj.insert("inventory".into(), inv.to_json(judge.label_groups.as_ref()));
            }
            if judge.policy.is_some() {
                let [allowed, unexpected, mismatch] = judge.verdicts;
                obj.insert(
                    "policy".into(),
                    serde_json::json!({"allowed": allowed, "unexpected": unexpected,
                        "mismatch": mismatch, "findings": judge.findings.to_json()}),
                );
            }
            if judge.firewall.is_some() {
                obj.insert("firewall".into(), judge.firewall_json());
            }
            if let Some(c) = clickhouse {
                obj.insert("clickhouse".into(), c.to_json());
            }
        }
        if let Some(w) = summary_out {
            let path = a.summary_json.as_deref().unwrap_or("-");
            let written = w.map_err(|(_, e)| e).and_then(|mut w| {
                serde_json::to_writer_pretty(&mut w, &json)?;
                w.write_all(b"\n")?;
                w.flush()
            });
            if let Err(e) = written {
                crate::say!("exwatch: {path}: cannot write summary: {e}");
                code = exit::OUTPUT;
            }
        }
        if let Some(w) = report_out {
            let path = a.report.as_deref().unwrap_or("-");
            meta.policy = judge.policy.as_ref().map(|p| p.origin.clone());
            meta.rules = judge.firewall.as_ref().map(|r| r.origin.clone());
            meta.hostname = RecordContext::hostname();
            let page = crate::report::html::render(&json, &meta);
            let written = w
                .map_err(|(_, e)| e)
                .and_then(|mut w| w.write_all(page.as_bytes()).and_then(|_| w.flush()));
            if let Err(e) = written {
                crate::say!("exwatch: {path}: cannot write the report: {e}");
                code = exit::OUTPUT;
            }
        }
    }
    // Records the database did not take are records lost: the run says so, as for a file.
    if let Some(c) = clickhouse {
        let lost = c.lost.load(std::sync::atomic::Ordering::Relaxed);
        if lost > 0 {
            let why = c
                .last_error
                .lock()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or_default();
            crate::say!("exwatch: ClickHouse: {lost} records lost ({why})");
            code = code.max(exit::OUTPUT);
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
    if code == exit::OK {
        let flagged = |k: Kind| judge.verdicts[k as usize] > 0;
        if fail_on.iter().any(|&k| flagged(k)) {
            code = exit::POLICY_FINDINGS;
        } else if mode == Mode::Validate && !judge.denied.is_empty() {
            code = exit::WOULD_DENY;
        }
    }
    code
}

/// The policy part of the summary: verdict counts and the findings table.
fn policy_report(run: &PolicyRun) -> String {
    let [allowed, unexpected, mismatch] = run.verdicts;
    let origin = run.policy.as_ref().map_or("", |p| p.origin.as_str());
    let mut s = format!(
        "\nPolicy {origin}: {allowed} flows allowed, {unexpected} unexpected, {mismatch} mismatched\n"
    );
    s.push_str(&run.findings.render("Unexpected and mismatched flows"));
    s
}
