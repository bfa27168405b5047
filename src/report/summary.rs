//! The end-of-run summary: accounting of every packet read, and per-service tables.

use super::record::FlowSummary;
use super::rtt::{self, Rtts};
use crate::classify::expect::LinkStats;
use crate::flow::EndReason;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Servers whose RTT distribution is kept separately; more are folded into their service.
const MAX_SERVERS: usize = 1024;

/// RTTs per (service, server address, port), for at most `MAX_SERVERS` servers: the ones
/// with the smallest keys of all seen. A server that ends up in the table has every one of
/// its samples, and which servers those are does not depend on the order flows end in (nor
/// on how they were shared among workers): a new server past the bound takes the place of
/// the largest key if it is smaller, and a key once left out is never smaller than the
/// table's largest again.
#[derive(Debug, Default)]
struct ServerRtts {
    by: BTreeMap<String, BTreeMap<(IpAddr, u16), Rtts>>,
    len: usize,
}

impl ServerRtts {
    fn record(&mut self, svc: &str, server: (IpAddr, u16), us: u32) {
        if let Some(h) = self.slot(svc, server) {
            h.record(us);
        }
    }

    /// Fold in another table (a worker's, at the end).
    fn merge(&mut self, other: ServerRtts) {
        for (svc, servers) in other.by {
            for (server, h) in servers {
                if let Some(mine) = self.slot(&svc, server) {
                    mine.add(h);
                }
            }
        }
    }

    /// The server's entry, made (empty) if `admit` lets it in; `None` if it stays out.
    fn slot(&mut self, svc: &str, server: (IpAddr, u16)) -> Option<&mut Rtts> {
        let known = self.by.get(svc).is_some_and(|m| m.contains_key(&server));
        if !known {
            if !self.admit(svc, server) {
                return None;
            }
            self.len += 1;
        }
        if !self.by.contains_key(svc) {
            self.by.insert(svc.to_string(), BTreeMap::new());
        }
        Some(self.by.get_mut(svc)?.entry(server).or_default())
    }

    /// Whether a server not in the table goes in, making room when the table is full.
    fn admit(&mut self, svc: &str, server: (IpAddr, u16)) -> bool {
        if self.len < MAX_SERVERS {
            return true;
        }
        let Some(mut last) = self.by.last_entry() else {
            return false;
        };
        let largest = last.get().last_key_value().map(|(k, _)| *k);
        if largest.is_none_or(|k| (svc, server) > (last.key().as_str(), k)) {
            return false;
        }
        last.get_mut().pop_last();
        if last.get().is_empty() {
            last.remove();
        }
        self.len -= 1;
        true
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Samples in the table.
    fn samples(&self) -> u64 {
        self.by
            .values()
            .flat_map(|m| m.values())
            .map(Rtts::len)
            .sum()
    }

    /// Every (service, address, port) with its RTTs, busiest first.
    fn busiest(&self) -> Vec<((&str, IpAddr, u16), &Rtts)> {
        let mut v: Vec<_> = self
            .by
            .iter()
            .flat_map(|(s, m)| {
                m.iter()
                    .map(move |(&(ip, port), h)| ((s.as_str(), ip, port), h))
            })
            .collect();
        v.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        v
    }
}

/// What the reader saw: every packet read is either decoded or undecodable for a reason.
#[derive(Debug, Default, Clone)]
pub struct ReadStats {
    pub packets_read: u64,
    pub decoded: u64,
    pub undecodable: BTreeMap<&'static str, u64>,
    pub datagrams_reassembled: u64,
    pub files_read: u64,
    pub files_failed: u64,
    /// Records given in place of captures (`pipeline::replay`): final records judged, and
    /// interim or alert records skipped.
    pub records_read: u64,
    pub records_skipped: u64,
    /// Frames of capture files that `--bpf` left out (not in `packets_read`).
    pub filtered_out: u64,
    /// The same counts per capture, in the order read (a worker's entries have no name).
    pub captures: Vec<CaptureCounts>,
}

/// What one capture (file, standard input or interface) gave.
#[derive(Debug, Default, Clone)]
pub struct CaptureCounts {
    pub name: String,
    pub packets_read: u64,
    pub decoded: u64,
    pub undecodable: BTreeMap<&'static str, u64>,
    /// Why the capture could not be read to its end.
    pub error: Option<String>,
}

impl ReadStats {
    pub fn undecodable_total(&self) -> u64 {
        self.undecodable.values().sum()
    }

    fn capture(&mut self, file: usize) -> &mut CaptureCounts {
        if self.captures.len() <= file {
            self.captures.resize_with(file + 1, CaptureCounts::default);
        }
        &mut self.captures[file]
    }

    /// Count `n` packets of capture `file` as decoded.
    pub fn count_decoded(&mut self, file: usize, n: u64) {
        self.decoded += n;
        self.capture(file).decoded += n;
    }

    /// Count `n` packets of capture `file` as undecodable for `reason`.
    pub fn count_undecodable(&mut self, file: usize, reason: &'static str, n: u64) {
        *self.undecodable.entry(reason).or_default() += n;
        *self.capture(file).undecodable.entry(reason).or_default() += n;
    }

    /// Fold in what a worker decoded (the reader only counts frames and files).
    pub fn add_decoded(&mut self, w: &ReadStats) {
        self.decoded += w.decoded;
        self.datagrams_reassembled += w.datagrams_reassembled;
        for (k, v) in &w.undecodable {
            *self.undecodable.entry(k).or_default() += v;
        }
        for (i, c) in w.captures.iter().enumerate() {
            let mine = self.capture(i);
            mine.decoded += c.decoded;
            for (k, v) in &c.undecodable {
                *mine.undecodable.entry(k).or_default() += v;
            }
        }
    }

    /// The `captures` member of the summary JSON.
    pub fn captures_json(&self) -> Value {
        Value::Array(
            self.captures
                .iter()
                .map(|c| {
                    json!({
                        "file": c.name,
                        "status": c.error.as_deref().unwrap_or("read"),
                        "packets_read": c.packets_read,
                        "packets_decoded": c.decoded,
                        "packets_undecodable": c.undecodable.values().sum::<u64>(),
                        "undecodable": c.undecodable,
                    })
                })
                .collect(),
        )
    }
}

/// What one worker measured.
#[derive(Debug)]
pub struct WorkerStats {
    pub packets: u64,
    pub evictions: u64,
    /// Per-packet processing time in nanoseconds (sampled).
    pub proc_ns: Histogram<u64>,
}

impl WorkerStats {
    pub fn new() -> Self {
        WorkerStats {
            packets: 0,
            evictions: 0,
            proc_ns: Histogram::new_with_bounds(1, 60_000_000_000, 2).expect("valid bounds"),
        }
    }
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    flows: u64,
    packets: u64,
    bytes: u64,
}

/// Everything the summary reports, accumulated by the sink.
pub struct Summary {
    pub read: ReadStats,
    pub flows: u64,
    pub by_end: BTreeMap<&'static str, u64>,
    /// Protocol, then service (nested so that a flow's totals are found without building
    /// an owned key: the sink adds every flow here).
    by_service: BTreeMap<String, BTreeMap<String, Totals>>,
    rtt_service: BTreeMap<String, Rtts>,
    /// At most `MAX_SERVERS` entries of at most about 10 KB (see `rtt`).
    rtt_server: ServerRtts,
    pub proc_ns: Histogram<u64>,
    pub worker_packets: u64,
    pub evictions: u64,
    /// Interim records written (`--active-timeout`); not flows, so not in `flows`.
    pub interim_records: u64,
    /// Verdicts reported by workers while their flows were alive (see `ToSink::Decided`).
    pub live_verdicts: u64,
    /// Alert records written for live flows the policy found unexpected or mismatched.
    pub alerts: u64,
    /// Live capture accounting (`exwatch live`), absent for an offline audit.
    pub live: Option<LiveStats>,
    /// Expectations and learned endpoints (the sink's cross-flow tables).
    pub link: LinkStats,
}

/// What a live capture received and where packets were lost: a drop is always counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// libpcap's counters: received, dropped by the kernel (capture buffer full), dropped by
    /// the interface; the sums over `sockets`.
    pub capture: crate::capture::live::CaptureStats,
    /// The same per capture socket (one per worker with fanout), with the packets its reader
    /// read.
    pub sockets: Vec<SocketStats>,
    /// exwatch's own drops of packets because a worker queue was full. Always 0: the reader
    /// waits for a full queue instead, and a wait long enough to lose packets shows up as
    /// kernel drops.
    pub queue_full_drops: u64,
    /// How often the reader had to wait for a full worker queue.
    pub queue_full_waits: u64,
    /// Flows pushed out of a full flow table (`--max-flows`); their records are written.
    pub flow_table_full: u64,
}

/// One capture socket's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    pub capture: crate::capture::live::CaptureStats,
    /// Packets its reader handed to its worker.
    pub packets_read: u64,
}

/// What the workers are doing, for the live statistics line (not part of the summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Flows tracked now, all workers together.
    pub active_flows: u64,
    /// Records written so far: final, interim and alert records.
    pub records: u64,
    /// Alert records among them.
    pub alerts: u64,
}

impl LiveStats {
    /// One line for standard error (`--stats-interval`).
    pub fn line(&self, packets_read: u64, a: &Activity) -> String {
        let c = &self.capture;
        format!(
            "exwatch stats: received {} read {} kernel-drops {} interface-drops {} own drops: queue-full {} flow-table-full {} (queue-full waits {}) active-flows {} records {} alerts {}",
            c.received,
            packets_read,
            c.kernel_drops,
            c.interface_drops,
            self.queue_full_drops,
            self.flow_table_full,
            self.queue_full_waits,
            a.active_flows,
            a.records,
            a.alerts
        )
    }

    /// The `capture` member of the summary JSON.
    pub fn to_json(&self) -> Value {
        let c = &self.capture;
        json!({
            "received": c.received,
            "kernel_drops": c.kernel_drops,
            "interface_drops": c.interface_drops,
            "own_drops": {"queue_full": self.queue_full_drops, "flow_table_full": self.flow_table_full},
            "queue_full_waits": self.queue_full_waits,
            "sockets": self.sockets.iter().map(|s| json!({
                "received": s.capture.received,
                "kernel_drops": s.capture.kernel_drops,
                "interface_drops": s.capture.interface_drops,
                "packets_read": s.packets_read,
            })).collect::<Vec<_>>(),
        })
    }
}

impl Default for Summary {
    fn default() -> Self {
        Self::new()
    }
}

impl Summary {
    pub fn new() -> Self {
        Summary {
            read: ReadStats::default(),
            flows: 0,
            by_end: BTreeMap::new(),
            by_service: BTreeMap::new(),
            rtt_service: BTreeMap::new(),
            rtt_server: ServerRtts::default(),
            proc_ns: WorkerStats::new().proc_ns,
            worker_packets: 0,
            evictions: 0,
            interim_records: 0,
            live_verdicts: 0,
            alerts: 0,
            live: None,
            link: LinkStats::default(),
        }
    }

    /// Count one finished flow.
    pub fn add_flow(&mut self, f: &FlowSummary) {
        if f.end_reason == EndReason::ActiveTimeout {
            self.interim_records += 1;
            return;
        }
        self.flows += 1;
        *self.by_end.entry(f.end_reason.label()).or_default() += 1;
        let by_proto = match self.by_service.get_mut(f.protocol.as_str()) {
            Some(m) => m,
            None => self.by_service.entry(f.protocol.clone()).or_default(),
        };
        let t = match by_proto.get_mut(f.service.as_str()) {
            Some(t) => t,
            None => by_proto.entry(f.service.clone()).or_default(),
        };
        t.flows += 1;
        t.packets += f.packets;
        t.bytes += f.bytes;
        if f.rtt_us > 0 {
            let v = f.rtt_us;
            match self.rtt_service.get_mut(f.service.as_str()) {
                Some(h) => h.record(v),
                None => self
                    .rtt_service
                    .entry(f.service.clone())
                    .or_default()
                    .record(v),
            }
            self.rtt_server.record(&f.service, f.server, v);
        }
    }

    /// Totals per (protocol, service), in that order.
    fn services(&self) -> impl Iterator<Item = ((&String, &String), &Totals)> {
        self.by_service
            .iter()
            .flat_map(|(p, m)| m.iter().map(move |(s, t)| ((p, s), t)))
    }

    /// Handshakes whose server is not in the per-server table (past `MAX_SERVERS`).
    fn rtt_left_out(&self) -> u64 {
        let all: u64 = self.rtt_service.values().map(Rtts::len).sum();
        all.saturating_sub(self.rtt_server.samples())
    }

    /// Fold in the summary a worker kept of its own flows.
    pub fn merge(&mut self, w: Summary) {
        self.flows += w.flows;
        for (k, v) in w.by_end {
            *self.by_end.entry(k).or_default() += v;
        }
        for (p, m) in w.by_service {
            let mine = self.by_service.entry(p).or_default();
            for (svc, t) in m {
                let e = mine.entry(svc).or_default();
                e.flows += t.flows;
                e.packets += t.packets;
                e.bytes += t.bytes;
            }
        }
        for (svc, h) in w.rtt_service {
            match self.rtt_service.get_mut(&svc) {
                Some(mine) => mine.add(h),
                None => {
                    self.rtt_service.insert(svc, h);
                }
            }
        }
        self.rtt_server.merge(w.rtt_server);
        self.interim_records += w.interim_records;
        self.live_verdicts += w.live_verdicts;
        self.alerts += w.alerts;
    }

    /// Fold in a worker's statistics.
    pub fn add_worker(&mut self, w: &WorkerStats) {
        self.worker_packets += w.packets;
        self.evictions += w.evictions;
        let _ = self.proc_ns.add(&w.proc_ns);
    }

    /// Machine-readable form (`--summary-json`).
    pub fn to_json(&self) -> Value {
        let mut scratch = rtt::histogram();
        let services: Vec<Value> = self
            .services()
            .map(|((p, s), t)| {
                let mut v = json!({"protocol": p, "service": s, "flows": t.flows, "packets": t.packets, "bytes": t.bytes});
                if let Some(h) = self.rtt_service.get(s) {
                    let (a, b, c) = h.quantiles(1000.0, &mut scratch);
                    v["rtt_ms"] = json!({"p50": a, "p90": b, "p99": c, "count": h.len()});
                }
                v
            })
            .collect();
        let servers: Vec<Value> = self
            .rtt_server
            .busiest()
            .iter()
            .map(|((s, ip, port), h)| {
                let (a, b, c) = h.quantiles(1000.0, &mut scratch);
                json!({"service": s, "server": format!("{}", SocketFmt(*ip, *port)), "count": h.len(), "p50_ms": a, "p90_ms": b, "p99_ms": c})
            })
            .collect();
        let (p50, p90, p99) = rtt::quantiles(&self.proc_ns, 1.0);
        let mut v = json!({
            "packets_read": self.read.packets_read,
            "packets_decoded": self.read.decoded,
            "packets_undecodable": self.read.undecodable_total(),
            "undecodable": self.read.undecodable,
            "datagrams_reassembled": self.read.datagrams_reassembled,
            "files_read": self.read.files_read,
            "files_failed": self.read.files_failed,
            "records_read": self.read.records_read,
            "records_skipped": self.read.records_skipped,
            "packets_filtered_out": self.read.filtered_out,
            "captures": self.read.captures_json(),
            "flows": self.flows,
            "flows_by_end_reason": self.by_end,
            "evictions": self.evictions,
            "expectations": {
                "announced": self.link.expectations_announced,
                "matched": self.link.expectations_matched,
                "expired_unused": self.link.expectations_expired_unused,
                "evicted": self.link.expectations_evicted,
            },
            "endpoints": {
                "learned": self.link.endpoints_learned,
                "applied": self.link.endpoints_applied,
                "evicted": self.link.endpoints_evicted,
            },
            "flows_held_peak": self.link.flows_held_peak,
            "flows_released_early": self.link.flows_released_early,
            "start_notices_dropped": self.link.start_notices_dropped,
            "services": services,
            "rtt_by_server": servers,
            "rtt_by_server_left_out": self.rtt_left_out(),
            "packet_processing_ns": {"p50": p50, "p90": p90, "p99": p99, "samples": self.proc_ns.len()},
        });
        if self.interim_records > 0 {
            v["interim_records"] = json!(self.interim_records);
        }
        if self.alerts > 0 {
            v["alert_records"] = json!(self.alerts);
        }
        if let Some(l) = &self.live {
            v["capture"] = l.to_json();
        }
        v
    }

    /// The human-readable summary.
    pub fn render(&self) -> String {
        let mut scratch = rtt::histogram();
        let mut s = String::new();
        let r = &self.read;
        let _ = writeln!(s, "exwatch summary");
        let records = r.records_read + r.records_skipped > 0;
        if records {
            let _ = writeln!(
                s,
                "  records read {:>12}   (interim and alert records skipped: {})",
                r.records_read, r.records_skipped
            );
        } else {
            let _ = writeln!(
                s,
                "  packets read {:>12}   decoded {:>12}   undecodable {:>10}",
                r.packets_read,
                r.decoded,
                r.undecodable_total()
            );
        }
        if r.filtered_out > 0 {
            let _ = writeln!(s, "    left out by --bpf: {:>10}", r.filtered_out);
        }
        for (reason, n) in &r.undecodable {
            let _ = writeln!(s, "    undecodable: {reason:<28} {n:>10}");
        }
        if r.datagrams_reassembled > 0 {
            let _ = writeln!(
                s,
                "  IP datagrams reassembled from fragments: {}",
                r.datagrams_reassembled
            );
        }
        let ends: Vec<String> = self
            .by_end
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            s,
            "  flows {:>12}   ({})   evictions {}",
            self.flows,
            ends.join(", "),
            self.evictions
        );
        if self.interim_records > 0 {
            let _ = writeln!(
                s,
                "  interim records (active timeout) {}",
                self.interim_records
            );
        }
        if self.alerts > 0 {
            let _ = writeln!(s, "  alert records (policy) {}", self.alerts);
        }
        if let Some(l) = &self.live {
            let c = &l.capture;
            let _ = writeln!(
                s,
                "  capture: received {}   kernel drops {}   interface drops {}   own drops: queue full {}, flow table full {}",
                c.received, c.kernel_drops, c.interface_drops, l.queue_full_drops, l.flow_table_full
            );
            if l.sockets.len() > 1 {
                s.push_str("  per socket (fanout):");
                for (i, k) in l.sockets.iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    let _ = write!(
                        s,
                        "{sep}#{i} received {} kernel drops {} interface drops {}",
                        k.capture.received, k.capture.kernel_drops, k.capture.interface_drops
                    );
                }
                s.push('\n');
            }
        }
        let l = &self.link;
        if !records {
            let _ = writeln!(
                s,
                "  expectations: announced {}, matched {}, expired unused {}, evicted {}\n  learned endpoints: {}, applied {}, evicted {}; flows held in the sink at peak {}, released early {}, start notices dropped {}",
                l.expectations_announced,
                l.expectations_matched,
                l.expectations_expired_unused,
                l.expectations_evicted,
                l.endpoints_learned,
                l.endpoints_applied,
                l.endpoints_evicted,
                l.flows_held_peak,
                l.flows_released_early,
                l.start_notices_dropped
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  {:<10} {:<24} {:>9} {:>11} {:>14}  {:>28}",
            "protocol", "service", "flows", "packets", "bytes", "handshake RTT ms p50/p90/p99"
        );
        let mut rows: Vec<_> = self.services().collect();
        rows.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0)));
        for ((p, svc), t) in rows {
            let rtt = self.rtt_service.get(svc).map_or(String::new(), |h| {
                let (a, b, c) = h.quantiles(1000.0, &mut scratch);
                format!("{a:.2}/{b:.2}/{c:.2}")
            });
            let _ = writeln!(
                s,
                "  {:<10} {:<24} {:>9} {:>11} {:>14}  {:>28}",
                p, svc, t.flows, t.packets, t.bytes, rtt
            );
        }
        if !self.rtt_server.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "  handshake RTT by server (top 10 by handshakes seen)");
            let left_out = self.rtt_left_out();
            if left_out > 0 {
                let _ = writeln!(
                    s,
                    "    (kept for the first {MAX_SERVERS} servers by service, address and port; \
                     {left_out} handshakes to the others are in their service's row only)"
                );
            }
            for ((svc, ip, port), h) in self.rtt_server.busiest().into_iter().take(10) {
                let (a, b, c) = h.quantiles(1000.0, &mut scratch);
                let _ = writeln!(
                    s,
                    "    {:<46} {:<20} n={:<7} {a:.2}/{b:.2}/{c:.2} ms",
                    SocketFmt(ip, port).to_string(),
                    svc,
                    h.len()
                );
            }
        }
        if !self.proc_ns.is_empty() {
            let (a, b, c) = rtt::quantiles(&self.proc_ns, 1.0);
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "  per-packet processing time (flow stage, sampled): p50 {a:.0} ns, p90 {b:.0} ns, p99 {c:.0} ns"
            );
        }
        s
    }
}

/// `ip:port`, with brackets around IPv6 addresses.
struct SocketFmt(IpAddr, u16);

impl std::fmt::Display for SocketFmt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past `MAX_SERVERS`, the per-server table holds the same servers with the same samples
    /// whatever order the flows end in and however they were shared among workers.
    #[test]
    fn the_server_table_does_not_depend_on_order_or_workers() {
        // 3,000 servers of two services, a few handshakes each, in a scrambled order.
        let mut samples: Vec<(&str, (IpAddr, u16), u32)> = (0..9_000u32)
            .map(|i| {
                let n = i.wrapping_mul(2_654_435_761) % 3_000;
                let svc = if n % 3 == 0 { "https" } else { "activesync" };
                (
                    svc,
                    (IpAddr::from([10, 0, (n >> 8) as u8, n as u8]), 443),
                    100 + i,
                )
            })
            .collect();
        let render = |t: &ServerRtts| -> Vec<String> {
            let mut scratch = rtt::histogram();
            t.busiest()
                .into_iter()
                .map(|(k, h)| format!("{k:?} {} {:?}", h.len(), h.quantiles(1.0, &mut scratch)))
                .collect()
        };
        let mut one = ServerRtts::default();
        for &(s, srv, v) in &samples {
            one.record(s, srv, v);
        }
        let want = render(&one);
        assert_eq!(want.len(), MAX_SERVERS);
        // Every kept server has all of its samples, and they are the smallest keys.
        let mut keys: Vec<_> = samples.iter().map(|&(s, srv, _)| (s, srv)).collect();
        keys.sort();
        keys.dedup();
        let kept: std::collections::BTreeSet<_> = keys[..MAX_SERVERS].iter().copied().collect();
        let in_kept = samples
            .iter()
            .filter(|(s, srv, _)| kept.contains(&(*s, *srv)))
            .count();
        assert_eq!(one.samples(), in_kept as u64);
        samples.reverse();
        for workers in [1usize, 2, 3] {
            let mut parts: Vec<ServerRtts> = (0..workers).map(|_| ServerRtts::default()).collect();
            for (i, &(s, srv, v)) in samples.iter().enumerate() {
                parts[(i * 7) % workers].record(s, srv, v);
            }
            let mut all = ServerRtts::default();
            for p in parts {
                all.merge(p);
            }
            assert_eq!(render(&all), want, "{workers} workers");
        }
    }
}
