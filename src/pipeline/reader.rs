//! The reader thread: capture files in order, decode, reassemble fragments, shard by flow hash.

use super::{AuditConfig, Batch, ToWorker, BATCH_PACKETS, MAX_COPY};
use crate::capture::{CaptureError, OfflineCapture};
use crate::decode::frag::{Offer, Reassembler};
use crate::decode::{self, link, Decoded, IpPair, Undecodable, L4};
use crate::flow::{FlowKey, FlowPacket};
use crate::report::summary::ReadStats;
use crossbeam::channel::{Receiver, Sender};

/// Reads every capture and feeds the workers.
pub struct Reader<'c> {
    cfg: &'c AuditConfig,
    txs: Vec<Sender<ToWorker>>,
    pool: Receiver<super::Batch>,
    batches: Vec<Batch>,
    stats: ReadStats,
    reasm: Reassembler,
    clock: u64,
    progress: Option<indicatif::ProgressBar>,
}

impl<'c> Reader<'c> {
    pub fn new(cfg: &'c AuditConfig, txs: Vec<Sender<ToWorker>>, pool: Receiver<Batch>) -> Self {
        let batches = (0..txs.len()).map(|_| Batch::new()).collect();
        let progress = cfg.progress.then(|| {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {elapsed} {human_pos} packets {msg}",
                )
                .expect("valid template"),
            );
            pb
        });
        Reader {
            cfg,
            txs,
            pool,
            batches,
            stats: ReadStats::default(),
            reasm: Reassembler::new(cfg.frag),
            clock: 0,
            progress,
        }
    }

    /// Read all captures; returns what was read and the captures that failed.
    pub fn run(mut self) -> (ReadStats, Vec<CaptureError>) {
        let mut errors = Vec::new();
        for spec in &self.cfg.captures {
            match OfflineCapture::open(spec) {
                Ok(cap) => {
                    if let Err(e) = self.read_capture(cap) {
                        eprintln!("exwatch: {e}");
                        self.stats.files_failed += 1;
                        errors.push(e);
                    } else {
                        self.stats.files_read += 1;
                    }
                }
                Err(e) => {
                    eprintln!("exwatch: {e}");
                    self.stats.files_failed += 1;
                    errors.push(e);
                }
            }
        }
        let incomplete = self.reasm.finish();
        self.count_undecodable(Undecodable::FragmentIncomplete, u64::from(incomplete));
        for i in 0..self.txs.len() {
            self.flush(i);
            // A worker that is gone has panicked; its scope join reports that.
            let _ = self.txs[i].send(ToWorker::Finish { clock: self.clock });
        }
        if let Some(pb) = &self.progress {
            pb.finish_and_clear();
        }
        (self.stats, errors)
    }

    fn read_capture(&mut self, mut cap: OfflineCapture) -> Result<(), CaptureError> {
        let lt = cap.linktype();
        if !link::supported(lt) {
            eprintln!(
                "exwatch: {}: link type {lt} is not supported; its packets are counted as undecodable",
                cap.name()
            );
        }
        let name = cap.name().to_string();
        if let Some(pb) = &self.progress {
            pb.set_message(name.clone());
        }
        loop {
            let raw = match cap.next_packet()? {
                Some(r) => r,
                None => return Ok(()),
            };
            let ts = raw.ts;
            self.stats.packets_read += 1;
            if ts > self.clock {
                self.clock = ts;
            }
            if self.stats.packets_read & 0xffff == 0 {
                if let Some(pb) = &self.progress {
                    pb.set_position(self.stats.packets_read);
                    let rate =
                        self.stats.packets_read as f64 / pb.elapsed().as_secs_f64().max(1e-3);
                    pb.set_message(format!("({:.0} k/s) {name}", rate / 1e3));
                }
            }
            // Borrow juggling: decode borrows the capture's buffer, dispatch borrows self.
            match decode::decode(lt, raw.data) {
                Err(u) => self.count_undecodable(u, 1),
                Ok(Decoded::Packet(p)) => {
                    self.stats.decoded += 1;
                    self.dispatch(&p.ip, p.vlan, p.proto, &p.l4, ts, 1, p.ip_len);
                }
                Ok(Decoded::Fragment(f)) => {
                    let offer = self.reasm.offer(&f, ts);
                    for (u, n) in self.reasm.take_dropped() {
                        self.count_undecodable(u, u64::from(n));
                    }
                    match offer {
                        Offer::Held => {}
                        Offer::Refused(u, held) => self.count_undecodable(u, u64::from(held) + 1),
                        Offer::Complete(d) => {
                            self.stats.datagrams_reassembled += 1;
                            let wire = d.data.len() as u32;
                            match decode::decode_l4(d.proto, &d.data, wire) {
                                Ok(l4) => {
                                    self.stats.decoded += u64::from(d.packets);
                                    let bytes = d.ip_bytes.min(u64::from(u32::MAX)) as u32;
                                    self.dispatch(
                                        &d.ip, d.vlan, d.proto, &l4, ts, d.packets, bytes,
                                    );
                                }
                                Err(u) => self.count_undecodable(u, u64::from(d.packets)),
                            }
                        }
                    }
                }
            }
        }
    }

    fn count_undecodable(&mut self, u: Undecodable, n: u64) {
        if n > 0 {
            *self.stats.undecodable.entry(u.label()).or_default() += n;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &mut self,
        ip: &IpPair,
        vlan: [u16; 2],
        proto: u8,
        l4: &L4<'_>,
        ts: u64,
        frames: u32,
        ip_bytes: u32,
    ) {
        let (sport, dport, flags, seq, ack, payload, payload_len, icmp) = match *l4 {
            L4::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                payload,
                payload_len,
            } => (sport, dport, flags, seq, ack, payload, payload_len, 0),
            L4::Udp {
                sport,
                dport,
                payload,
                payload_len,
            } => (sport, dport, 0, 0, 0, payload, payload_len, 0),
            L4::Icmp { type_code } => (0, 0, 0, 0, 0, &[][..], 0, type_code),
            L4::Other => (0, 0, 0, 0, 0, &[][..], 0, 0),
        };
        let (key, from_lo) = FlowKey::new(ip, sport, dport, proto, vlan);
        let hash = key.hash64();
        // Multiply-shift on the low half rather than `%`: a 64-bit division per packet was
        // the costliest instruction of the reader. (The flow table indexes by the lowest
        // bits and tags by the top ones, so neither correlates with the shard.)
        let shard = (((hash & 0xffff_ffff) * self.txs.len() as u64) >> 32) as usize;
        let b = &mut self.batches[shard];
        let copy = &payload[..payload.len().min(MAX_COPY)];
        let data_off = b.data.len() as u32;
        b.data.extend_from_slice(copy);
        b.pkts.push(FlowPacket {
            ts,
            hash,
            key,
            from_lo,
            tcp_flags: flags,
            seq,
            ack,
            frames,
            ip_bytes,
            payload_len,
            data_off,
            data_len: copy.len() as u32,
            icmp,
        });
        if b.pkts.len() >= BATCH_PACKETS {
            self.flush(shard);
        }
    }

    fn flush(&mut self, shard: usize) {
        if self.batches[shard].pkts.is_empty() {
            return;
        }
        let fresh = self.pool.try_recv().unwrap_or_else(|_| Batch::new());
        let mut full = std::mem::replace(&mut self.batches[shard], fresh);
        full.clock = self.clock;
        let _ = self.txs[shard].send(ToWorker::Batch(full));
    }
}
