//! Records as input: exwatch's own NDJSON records (files or `-`, gzip or zstd too) judged in
//! place of captures, so that a month of records shipped by a fleet of sensors can be audited,
//! validated against a new rule set, or learned from centrally.
//!
//! A record keeps everything the judges read of a flow (addresses, ports, transport, the
//! payload verdict, times, bytes), so the verdicts, findings, rule hits, learned rules and
//! exit codes are those of the captures the records came from. Interim and alert records are
//! skipped: the flow's final record counts it. One thread: parsing a record costs a few
//! microseconds, far below what its flow cost to classify.

use super::{AuditConfig, AuditOutcome, Output};
use crate::capture::offline::open_stream;
use crate::capture::CaptureError;
use crate::classify::{Confidence, Verdict};
use crate::flow::EndReason;
use crate::policy::{FlowFacts, FlowJudge};
use crate::report::flows_csv::{row_of, RowFacts};
use crate::report::ingest::{self, FlowRecord, Line};
use crate::report::inventory::{served_by, FlowView, Inventory};
use crate::report::record::{rejudge, FlowSummary};
use crate::report::summary::Summary;
use std::io::BufReader;

/// Judge the records of `specs`, in order, writing them re-judged to `out` when
/// `cfg.write_records`. A file that fails stops at the failing line, after the lines before it.
pub fn run_records(
    cfg: &AuditConfig,
    specs: &[String],
    out: &mut dyn Output,
    judge: &mut dyn FlowJudge,
) -> AuditOutcome {
    let mut summary = Summary::new();
    let mut errors = Vec::new();
    let mut write_error: Option<std::io::Error> = None;
    let mut flow_rows = Vec::new();
    let mut line = Vec::new();
    let mut json = Vec::new();
    let mut inventory = cfg.inventory.then(Inventory::new);
    for spec in specs {
        let (name, input) = match open_stream(spec) {
            Ok(s) => s,
            Err(e) => {
                crate::say!("exwatch: {e}");
                summary.read.files_failed += 1;
                errors.push(e);
                continue;
            }
        };
        let mut input = BufReader::with_capacity(1 << 16, input);
        let mut number = 0u64;
        let mut read = 0u64;
        let failed = loop {
            let more = ingest::next_line(&mut input, &mut line);
            number += 1;
            let parsed = match more {
                Ok(false) => break None,
                Ok(true) => ingest::parse(&line),
                Err(e) => Err(e),
            };
            let rec = match parsed.and_then(|l| match l {
                Line::Flow(r) => checked(*r).map(Some),
                Line::Interim => {
                    summary.read.records_skipped += 1;
                    Ok(None)
                }
                Line::Blank => Ok(None),
            }) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(reason) => {
                    break Some(CaptureError::BadRecord {
                        file: name.clone(),
                        line: number,
                        read,
                        reason,
                    })
                }
            };
            read += 1;
            summary.read.records_read += 1;
            let (mut rec, verdict, reason) = rec;
            let facts = FlowFacts {
                src: rec.src,
                sport: rec.sport,
                dst: rec.dst,
                dport: rec.dport,
                proto: rec.proto,
                mid_stream: rec.mid_stream,
                verdict: &verdict,
                first_ts: rec.first_ts,
                last_ts: rec.last_ts,
                bytes: rec.bytes[0] + rec.bytes[1],
                icmp_type_code: rec.icmp_type_code,
            };
            let notes = judge.judge(&facts);
            summary.add_flow(&FlowSummary {
                protocol: verdict.protocol.clone(),
                service: verdict.service.clone(),
                packets: rec.packets[0] + rec.packets[1],
                bytes: rec.bytes[0] + rec.bytes[1],
                rtt_us: rec.rtt_us,
                server: (rec.dst, rec.dport),
                end_reason: reason,
            });
            if let Some(inv) = &mut inventory {
                let view = FlowView {
                    src: rec.src,
                    dst: rec.dst,
                    rp: rec.dport,
                    proto: rec.proto,
                    first_ts: rec.first_ts,
                    last_ts: rec.last_ts,
                    bytes: rec.bytes,
                    served: served_by(
                        rec.proto,
                        rec.payload_bytes[1],
                        rec.packets[1],
                        &rec.conn_state,
                    ),
                };
                inv.add_view(&view, &verdict, &notes);
            }
            if cfg.flows_csv {
                let row = RowFacts {
                    first_ts: rec.first_ts,
                    last_ts: rec.last_ts,
                    src: rec.src,
                    sport: rec.sport,
                    dst: rec.dst,
                    dport: rec.dport,
                    proto: rec.proto,
                    packets: rec.packets,
                    bytes: rec.bytes,
                    end_reason: reason.label(),
                };
                row_of(&mut flow_rows, &row, &verdict, &notes);
            }
            if cfg.write_records && write_error.is_none() {
                rejudge(&mut rec.value, &notes, &cfg.records, (rec.src, rec.dst));
                json.clear();
                let w = serde_json::to_writer(&mut json, &rec.value)
                    .map_err(std::io::Error::other)
                    .and_then(|()| {
                        json.push(b'\n');
                        out.write_all(&json)
                    });
                if let Err(e) = w {
                    write_error = Some(e);
                }
            }
        };
        match failed {
            None => summary.read.files_read += 1,
            Some(e) => {
                crate::say!("exwatch: {e}");
                summary.read.files_failed += 1;
                errors.push(e);
            }
        }
    }
    if write_error.is_none() {
        if let Err(e) = out.flush() {
            write_error = Some(e);
        }
    }
    AuditOutcome {
        summary,
        errors,
        write_error,
        flow_rows,
        inventory,
    }
}

/// A record's verdict and end as the judges take them; a record whose names exwatch does not
/// know is refused, not judged on a guess.
fn checked(mut r: FlowRecord) -> Result<(FlowRecord, Verdict, EndReason), String> {
    let confidence = Confidence::from_label(&r.confidence)
        .ok_or_else(|| format!("unknown exwatch.confidence {:?}", r.confidence))?;
    let reason = EndReason::from_label(&r.end_reason)
        .ok_or_else(|| format!("unknown exwatch.end_reason {:?}", r.end_reason))?;
    let verdict = Verdict {
        protocol: std::mem::take(&mut r.protocol),
        service: std::mem::take(&mut r.service),
        confidence,
        evidence: std::mem::take(&mut r.evidence),
        port_mismatch: r.port_mismatch.take(),
    };
    Ok((r, verdict, reason))
}
