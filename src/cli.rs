//! Command line: raw flags (clap) become one validated configuration before anything runs.

use crate::capture::CaptureError;
use crate::classify::Classifier;
use crate::decode::frag::FragLimits;
use crate::flow::Timeouts;
use crate::pipeline::{run_audit_judged, AuditConfig};
use crate::policy::file::{parse_fail_on, Policy, PolicyError};
use crate::policy::firewall::RuleSet;
use crate::policy::groups::Cidr;
use crate::policy::learn::Learner;
use crate::policy::run::PolicyRun;
use crate::policy::{template, Kind};
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
    /// `audit --fail-on`: the policy found flows of the named kinds.
    pub const POLICY_FINDINGS: i32 = 7;
    /// `validate`: the rule set would deny observed flows.
    pub const WOULD_DENY: i32 = 8;
    /// A policy, groups or rules file is invalid (the message names file and line).
    pub const POLICY_FILE: i32 = 9;
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
    /// Would an ordered firewall rule set (CSV or iptables-save) let the captured flows through?
    Validate(ValidateArgs),
    /// Write the smallest policy that allows every flow of the captures.
    Learn(LearnArgs),
    /// Policy templates from the Exchange port reference, and policy file checks.
    #[command(subcommand)]
    Policy(PolicyCommand),
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
    /// Policy file whose [[group]] tables name the networks (its rules are ignored).
    #[arg(long, value_name = "FILE")]
    pub groups: PathBuf,
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
    /// Load a policy file and report its groups and rules, or the first error.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct TemplateArgs {
    /// Template name (`exwatch policy list`).
    #[arg(value_name = "NAME")]
    pub name: String,
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
    /// Judge every flow against this policy file (records get policy.*).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Exit with code 7 when the policy finds flows of these kinds: unexpected, mismatch, or both
    /// (comma-separated).
    #[arg(long, value_name = "KINDS", requires = "policy")]
    pub fail_on: Option<String>,
    /// Write the grouped findings (policy findings; for validate, denied flows) as CSV to PATH.
    #[arg(long, value_name = "PATH")]
    pub csv: Option<String>,
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
    }
}

fn policy_error(e: &PolicyError) -> i32 {
    eprintln!("exwatch: {e}");
    exit::POLICY_FILE
}

/// The judge of an audit: the policy when `--policy` is given.
fn audit_judge(a: &AuditArgs) -> Result<PolicyRun, i32> {
    let mut run = PolicyRun::default();
    if let Some(p) = &a.policy {
        run.policy = Some(Policy::load(p).map_err(|e| policy_error(&e))?);
    }
    Ok(run)
}

fn audit(a: AuditArgs) -> i32 {
    match audit_judge(&a) {
        Ok(mut run) => execute(&a, &mut run, Mode::Audit),
        Err(code) => code,
    }
}

fn validate(v: ValidateArgs) -> i32 {
    let mut run = match audit_judge(&v.audit) {
        Ok(r) => r,
        Err(code) => return code,
    };
    run.firewall = match RuleSet::load(&v.rules, &v.chain) {
        Ok(r) => Some(r),
        Err(e) => return policy_error(&e),
    };
    if let Some(g) = &v.groups {
        match Policy::load(g) {
            Ok(p) => run.label_groups = Some(p.groups),
            Err(e) => return policy_error(&e),
        }
    }
    execute(&v.audit, &mut run, Mode::Validate)
}

fn learn(l: LearnArgs) -> i32 {
    let mut run = match audit_judge(&l.audit) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let groups = match Policy::load(&l.groups) {
        Ok(p) => p.groups,
        Err(e) => return policy_error(&e),
    };
    run.learner = Some(Learner::new(groups));
    let code = execute(&l.audit, &mut run, Mode::Learn(l.output == "-"));
    if matches!(code, exit::USAGE | exit::SIGNATURES | exit::OUTPUT) {
        // Nothing was learned (or the records already failed): write no policy.
        return code;
    }
    let learner = run.learner.as_ref().expect("set above");
    let sources = l.audit.captures.join(" ");
    let mut written = open_output(&l.output).and_then(|mut w| {
        w.write_all(learner.policy_toml(&sources).as_bytes())
            .and_then(|_| w.flush())
    });
    if let (Ok(()), Some(p)) = (&written, &l.rules_csv) {
        written = open_output(p).and_then(|mut w| {
            w.write_all(learner.rules_csv().as_bytes())
                .and_then(|_| w.flush())
        });
    }
    if let Err(e) = written {
        eprintln!("exwatch: cannot write the learned policy: {e}");
        return exit::OUTPUT;
    }
    code
}

fn policy(p: PolicyCommand) -> i32 {
    match p {
        PolicyCommand::List => {
            for t in template::TEMPLATES {
                println!("{:<26} {}", t.name, t.about);
            }
            println!("\nRoles (--ROLE CIDR[,CIDR...]):");
            for (r, about) in template::ROLES {
                println!("  --{r:<10} {about}");
            }
            exit::OK
        }
        PolicyCommand::Check { file } => match Policy::load(&file) {
            Ok(p) => {
                println!(
                    "{}: {} groups, {} rules",
                    file.display(),
                    p.groups.iter().count(),
                    p.rules.len()
                );
                exit::OK
            }
            Err(e) => policy_error(&e),
        },
        PolicyCommand::Template(t) => {
            let Some(tpl) = template::find(&t.name) else {
                let names: Vec<&str> = template::TEMPLATES.iter().map(|t| t.name).collect();
                return usage(&format!(
                    "no template `{}`; templates: {}",
                    t.name,
                    names.join(", ")
                ));
            };
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
            let used = template::roles_of(tpl, &sigs);
            for role in roles.keys().filter(|r| !used.contains(r)) {
                eprintln!(
                    "exwatch: note: template `{}` has no rule for --{role}",
                    tpl.name
                );
            }
            print!("{}", template::render(tpl, &sigs, &roles));
            exit::OK
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

fn execute(a: &AuditArgs, run: &mut PolicyRun, mode: Mode) -> i32 {
    let fail_on = match a.fail_on.as_deref().map(parse_fail_on).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => return usage(&e),
    };
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
    let learn_to_stdout = mode == Mode::Learn(true);
    let csv_to_stdout = a.csv.as_deref() == Some("-");
    if [
        records_to_stdout,
        summary_to_stdout,
        learn_to_stdout,
        csv_to_stdout,
    ]
    .iter()
    .filter(|&&b| b)
    .count()
        > 1
    {
        return usage(
            "only one of --json, --summary-json, --csv and the learned policy can write to standard output",
        );
    }
    let text_to_stderr = records_to_stdout || summary_to_stdout || learn_to_stdout || csv_to_stdout;
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
    let outcome = run_audit_judged(&cfg, &mut out, run);
    drop(out);
    let mut code = exit::OK;
    if let Some(e) = &outcome.write_error {
        eprintln!("exwatch: writing records: {e}");
        code = exit::OUTPUT;
    }
    if !a.quiet {
        let mut text = outcome.summary.render();
        if run.policy.is_some() {
            text.push_str(&policy_report(run));
        }
        if mode == Mode::Validate {
            text.push_str(&run.render_firewall());
        }
        if text_to_stderr {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    if let Some(p) = &a.csv {
        let findings = if mode == Mode::Validate {
            &run.denied
        } else {
            &run.findings
        };
        if let Err(e) = open_output(p).and_then(|mut w| findings.write_csv(&mut w)) {
            eprintln!("exwatch: {p}: cannot write CSV: {e}");
            code = exit::OUTPUT;
        }
    }
    if let Some(p) = &a.summary_json {
        let mut json = outcome.summary.to_json();
        if let Some(obj) = json.as_object_mut() {
            if run.policy.is_some() {
                let [allowed, unexpected, mismatch] = run.verdicts;
                obj.insert(
                    "policy".into(),
                    serde_json::json!({"allowed": allowed, "unexpected": unexpected,
                        "mismatch": mismatch, "findings": run.findings.to_json()}),
                );
            }
            if run.firewall.is_some() {
                obj.insert("firewall".into(), run.firewall_json());
            }
        }
        let written = open_output(p).and_then(|mut w| {
            serde_json::to_writer_pretty(&mut w, &json)?;
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
    if code == exit::OK {
        let flagged = |k: Kind| run.verdicts[k as usize] > 0;
        if fail_on.iter().any(|&k| flagged(k)) {
            code = exit::POLICY_FINDINGS;
        } else if mode == Mode::Validate && !run.denied.is_empty() {
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
