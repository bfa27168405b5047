//! Grouped findings: unexpected and mismatched flows (audit) or denied flows (validate),
//! aggregated by source, destination, transport, port and protocol, as a terminal table, CSV
//! and JSON.

use super::FlowFacts;
use crate::capture::time::rfc3339_into;
use std::collections::BTreeMap;
use std::io::Write;

/// What a group of flows shares.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// `unexpected`, `mismatch`, `deny`...
    pub finding: String,
    pub source: String,
    pub destination: String,
    pub transport: String,
    /// 0 for protocols without ports.
    pub port: u16,
    pub protocol: String,
    /// The rule involved (the mismatching rule, the denying firewall rule), or empty.
    pub rule: String,
}

/// Counts of one group.
#[derive(Debug, Clone)]
pub struct Agg {
    pub flows: u64,
    pub bytes: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    /// `src:port -> dst:port` of the first flow, and why it was flagged.
    pub example: String,
    /// Which flow the example is: the one that ended first (then started first), whatever
    /// order the workers judged them in.
    example_at: (u64, u64),
}

/// Findings of one run, in a stable order.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    pub groups: BTreeMap<Key, Agg>,
}

fn endpoint(ip: std::net::IpAddr, port: u16, has_ports: bool) -> String {
    match (ip, has_ports) {
        (std::net::IpAddr::V6(a), true) => format!("[{a}]:{port}"),
        (a, true) => format!("{a}:{port}"),
        (a, false) => a.to_string(),
    }
}

fn time(ts: u64) -> String {
    let mut b = [0u8; 30];
    rfc3339_into(ts, &mut b).to_string()
}

impl Findings {
    /// Count a flagged flow.
    pub fn add(&mut self, key: Key, f: &FlowFacts<'_>, why: &str) {
        let at = (f.last_ts, f.first_ts);
        let example = || {
            format!(
                "{} -> {}: {why}",
                endpoint(f.src, f.sport, f.has_ports()),
                endpoint(f.dst, f.dport, f.has_ports())
            )
        };
        let e = self.groups.entry(key).or_insert_with(|| Agg {
            flows: 0,
            bytes: 0,
            first_ts: f.first_ts,
            last_ts: f.last_ts,
            example: example(),
            example_at: at,
        });
        if at <= e.example_at && e.flows > 0 {
            let x = example();
            if (at, &x) < (e.example_at, &e.example) {
                e.example = x;
                e.example_at = at;
            }
        }
        e.flows += 1;
        e.bytes += f.bytes;
        e.first_ts = e.first_ts.min(f.first_ts);
        e.last_ts = e.last_ts.max(f.last_ts);
    }

    /// Fold in the findings of another worker.
    pub fn merge(&mut self, other: Findings) {
        for (k, a) in other.groups {
            match self.groups.get_mut(&k) {
                None => {
                    self.groups.insert(k, a);
                }
                Some(e) => {
                    e.flows += a.flows;
                    e.bytes += a.bytes;
                    e.first_ts = e.first_ts.min(a.first_ts);
                    e.last_ts = e.last_ts.max(a.last_ts);
                    if (a.example_at, &a.example) < (e.example_at, &e.example) {
                        e.example = a.example;
                        e.example_at = a.example_at;
                    }
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn flows(&self) -> u64 {
        self.groups.values().map(|a| a.flows).sum()
    }

    /// A terminal table under `title`.
    pub fn render(&self, title: &str) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n{title}: {} flows in {} groups",
            self.flows(),
            self.groups.len()
        );
        if self.groups.is_empty() {
            return s;
        }
        // Rows as cells, then columns as wide as their widest cell (IPv6 addresses, long
        // group names).
        let mut rows: Vec<[String; 10]> = vec![[
            "finding",
            "source",
            "destination",
            "port",
            "protocol",
            "flows",
            "bytes",
            "first seen",
            "last seen",
            "rule",
        ]
        .map(String::from)];
        for (k, a) in &self.groups {
            let port = if k.port == 0 {
                k.transport.clone()
            } else {
                format!("{}/{}", k.port, k.transport)
            };
            rows.push([
                k.finding.clone(),
                k.source.clone(),
                k.destination.clone(),
                port,
                k.protocol.clone(),
                a.flows.to_string(),
                a.bytes.to_string(),
                time(a.first_ts)[..19].to_string(),
                time(a.last_ts)[..19].to_string(),
                if k.rule.is_empty() {
                    "-".into()
                } else {
                    k.rule.clone()
                },
            ]);
        }
        let mut width = [0usize; 10];
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let examples =
            std::iter::once("example").chain(self.groups.values().map(|a| a.example.as_str()));
        for (r, example) in rows.iter().zip(examples) {
            s.push(' ');
            for (i, (c, w)) in r.iter().zip(width).enumerate() {
                // Counts are right-aligned, text left-aligned.
                if i == 5 || i == 6 {
                    let _ = write!(s, " {c:>w$}");
                } else {
                    let _ = write!(s, " {c:<w$}");
                }
            }
            let _ = writeln!(s, "  {example}");
        }
        s
    }

    /// CSV with a header row (RFC 4180 quoting).
    pub fn write_csv(&self, w: &mut dyn Write) -> std::io::Result<()> {
        writeln!(w, "{CSV_HEADER}")?;
        for cells in self.csv_rows() {
            let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
            writeln!(w, "{}", line.join(","))?;
        }
        w.flush()
    }

    /// The same with a first column `kind`, `kind` on every row (more rows may follow).
    pub fn write_csv_kind(&self, w: &mut dyn Write, kind: &str) -> std::io::Result<()> {
        writeln!(w, "kind,{CSV_HEADER}")?;
        for cells in self.csv_rows() {
            write_csv_row(w, kind, &cells)?;
        }
        Ok(())
    }

    fn csv_rows(&self) -> Vec<[String; 12]> {
        self.groups
            .iter()
            .map(|(k, a)| {
                [
                    k.finding.clone(),
                    k.source.clone(),
                    k.destination.clone(),
                    k.transport.clone(),
                    if k.port == 0 {
                        String::new()
                    } else {
                        k.port.to_string()
                    },
                    k.protocol.clone(),
                    k.rule.clone(),
                    a.flows.to_string(),
                    a.bytes.to_string(),
                    time(a.first_ts),
                    time(a.last_ts),
                    a.example.clone(),
                ]
            })
            .collect()
    }

    /// For `--summary-json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.groups
                .iter()
                .map(|(k, a)| {
                    serde_json::json!({
                        "finding": k.finding, "source": k.source, "destination": k.destination,
                        "transport": k.transport, "port": k.port, "protocol": k.protocol,
                        "rule": k.rule, "flows": a.flows, "bytes": a.bytes,
                        "first_seen": time(a.first_ts), "last_seen": time(a.last_ts),
                        "example": a.example,
                    })
                })
                .collect(),
        )
    }
}

/// Columns of the findings CSV.
const CSV_HEADER: &str =
    "finding,source,destination,transport,port,protocol,rule,flows,bytes,first_seen,last_seen,example";

/// One CSV row: `kind`, then the cells.
pub fn write_csv_row(w: &mut dyn Write, kind: &str, cells: &[String]) -> std::io::Result<()> {
    let line: Vec<String> = std::iter::once(kind)
        .chain(cells.iter().map(String::as_str))
        .map(csv_cell)
        .collect();
    writeln!(w, "{}", line.join(","))
}

/// Quote a CSV cell when it needs it.
pub fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
