//! `--flows-csv`: one CSV row per finished flow, written by the worker that owns the flow and
//! put in a stable order at the end (rows sort by start time first), so any `--threads` gives
//! the same file.

use crate::capture::time::rfc3339_into;
use crate::classify::{Flow, Verdict};
use crate::decode::transport_name;
use crate::decode::{IPPROTO_TCP, IPPROTO_UDP};
use crate::flow::key::to_ip;
use crate::flow::{EndReason, ORIG, RESP};
use crate::policy::findings::csv_cell;
use crate::policy::Annotations;
use std::io::Write;
use std::net::IpAddr;

/// The header row: the columns, in order (documented in the README).
pub const HEADER: &str = "start,end,source.ip,source.port,destination.ip,destination.port,transport,protocol,service,confidence,source.packets,source.bytes,destination.packets,destination.bytes,end_reason,policy.verdict,firewall.action";

/// What a row says of its flow, from a live flow or a record read back.
pub struct RowFacts<'a> {
    pub first_ts: u64,
    pub last_ts: u64,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub proto: u8,
    /// Originator, then responder.
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub end_reason: &'a str,
}

/// Append the row of a finished flow to `out`.
pub fn row(out: &mut Vec<u8>, flow: &Flow, reason: EndReason, v: &Verdict, notes: &Annotations) {
    let ((oa, op), (ra, rp)) = flow.endpoints();
    let (o, r) = (&flow.dirs[ORIG], &flow.dirs[RESP]);
    let facts = RowFacts {
        first_ts: flow.first_ts,
        last_ts: flow.last_ts,
        src: to_ip(&oa, flow.key.v6),
        sport: op,
        dst: to_ip(&ra, flow.key.v6),
        dport: rp,
        proto: flow.key.proto,
        packets: [o.packets, r.packets],
        bytes: [o.bytes, r.bytes],
        end_reason: reason.label(),
    };
    row_of(out, &facts, v, notes);
}

/// Append the row of `f` to `out`.
pub fn row_of(out: &mut Vec<u8>, f: &RowFacts<'_>, v: &Verdict, notes: &Annotations) {
    let ports = matches!(f.proto, IPPROTO_TCP | IPPROTO_UDP);
    let port = |p: u16| if ports { p.to_string() } else { String::new() };
    let (mut t1, mut t2) = ([0u8; 30], [0u8; 30]);
    let policy = notes.policy.as_ref().map_or("", |p| p.kind.label());
    let firewall = notes
        .firewall
        .as_ref()
        .map_or("", |f| if f.allowed { "allow" } else { "deny" });
    let _ = writeln!(
        out,
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{policy},{firewall}",
        rfc3339_into(f.first_ts, &mut t1),
        rfc3339_into(f.last_ts, &mut t2),
        f.src,
        port(f.sport),
        f.dst,
        port(f.dport),
        transport_name(f.proto),
        csv_cell(&v.protocol),
        csv_cell(&v.service),
        v.confidence.label(),
        f.packets[0],
        f.bytes[0],
        f.packets[1],
        f.bytes[1],
        f.end_reason,
    );
}

/// Write the header and the rows (whole lines, in any order) sorted.
pub fn write_sorted(w: &mut dyn Write, rows: &[u8]) -> std::io::Result<()> {
    let mut lines: Vec<&[u8]> = rows
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort_unstable();
    writeln!(w, "{HEADER}")?;
    for l in lines {
        w.write_all(l)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}
