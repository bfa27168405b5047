//! IP fragment reassembly within a memory cap (SIP INVITEs with SDP often fragment over UDP).
//!
//! Runs in the reader before sharding, since only the first fragment carries ports. Every
//! fragment ends up either in a reassembled datagram or counted as undecodable with a reason.

use super::{Fragment, IpPair, Undecodable};
use hashbrown::HashMap;

/// Largest datagram payload an IP length field can describe.
const MAX_DATAGRAM: u32 = 65_535;

/// Limits on what the reassembler holds.
#[derive(Debug, Clone, Copy)]
pub struct FragLimits {
    /// Datagrams being reassembled at once.
    pub max_pending: usize,
    /// Fragment payload bytes held in all.
    pub max_bytes: usize,
    /// How long (capture time, ns) a datagram may wait for its missing fragments.
    pub timeout_ns: u64,
}

impl Default for FragLimits {
    fn default() -> Self {
        FragLimits {
            max_pending: 4096,
            max_bytes: 16 << 20,
            timeout_ns: 30_000_000_000,
        }
    }
}

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct Key {
    ip: [u8; 33],
    proto: u8,
    id: u32,
    vlan: [u16; 2],
}

struct Pending {
    first_ts: u64,
    data: Vec<u8>,
    /// Received byte ranges, sorted and merged.
    have: Vec<(u32, u32)>,
    total: Option<u32>,
    packets: u32,
    ip_bytes: u64,
}

/// A datagram put back together from its fragments.
pub struct Datagram {
    pub vlan: [u16; 2],
    pub ip: IpPair,
    pub proto: u8,
    /// The transport header and payload.
    pub data: Vec<u8>,
    /// Fragments it was made of.
    pub packets: u32,
    /// IP-level bytes of all its fragments.
    pub ip_bytes: u64,
}

/// Result of offering one fragment.
pub enum Offer {
    /// Held until its siblings arrive.
    Held,
    /// This fragment completed a datagram.
    Complete(Datagram),
    /// The fragment (and, if given, this many fragments held with it) cannot be used.
    Refused(Undecodable, u32),
}

/// Reassembles IPv4 and IPv6 fragments keyed by addresses, protocol, id and VLAN.
pub struct Reassembler {
    limits: FragLimits,
    pending: HashMap<Key, Pending>,
    bytes_held: usize,
    last_sweep: u64,
    /// Fragments dropped since the caller last took the count, with why.
    dropped: Vec<(Undecodable, u32)>,
}

impl Reassembler {
    pub fn new(limits: FragLimits) -> Self {
        Reassembler {
            limits,
            pending: HashMap::new(),
            bytes_held: 0,
            last_sweep: 0,
            dropped: Vec::new(),
        }
    }

    fn key(f: &Fragment<'_>) -> Key {
        let mut ip = [0u8; 33];
        ip[..16].copy_from_slice(&f.ip.src);
        ip[16..32].copy_from_slice(&f.ip.dst);
        ip[32] = f.ip.v6 as u8;
        Key {
            ip,
            proto: f.proto,
            id: f.id,
            vlan: f.vlan,
        }
    }

    fn forget(&mut self, key: &Key) -> Option<Pending> {
        let p = self.pending.remove(key)?;
        self.bytes_held -= p.data.len();
        Some(p)
    }

    /// Offer one fragment seen at capture time `ts` (ns).
    pub fn offer(&mut self, f: &Fragment<'_>, ts: u64) -> Offer {
        self.sweep(ts);
        let key = Self::key(f);
        let start = f.offset;
        let end = start + f.data.len() as u32;
        if !f.complete || end > MAX_DATAGRAM || (f.more && f.data.len() % 8 != 0) {
            let held = self.forget(&key).map_or(0, |p| p.packets);
            return Offer::Refused(Undecodable::FragmentInvalid, held);
        }
        if !self.pending.contains_key(&key) {
            if self.pending.len() >= self.limits.max_pending
                || self.bytes_held + end as usize > self.limits.max_bytes
            {
                return Offer::Refused(Undecodable::FragmentLimit, 0);
            }
            self.pending.insert(
                key,
                Pending {
                    first_ts: ts,
                    data: Vec::new(),
                    have: Vec::new(),
                    total: None,
                    packets: 0,
                    ip_bytes: 0,
                },
            );
        }
        let grow = (end as usize).saturating_sub(self.pending[&key].data.len());
        if self.bytes_held + grow > self.limits.max_bytes {
            let held = self.forget(&key).map_or(0, |p| p.packets);
            return Offer::Refused(Undecodable::FragmentLimit, held);
        }
        let p = self.pending.get_mut(&key).expect("inserted above");
        // Overlaps are allowed only when they repeat the same bytes (retransmissions).
        let conflict = p.have.iter().any(|&(s, e)| {
            let (os, oe) = (s.max(start), e.min(end));
            os < oe
                && p.data[os as usize..oe as usize]
                    != f.data[(os - start) as usize..(oe - start) as usize]
        });
        let past_end =
            p.total.is_some_and(|t| end > t) || (!f.more && p.have.iter().any(|&(_, e)| e > end));
        if conflict || past_end {
            let held = self.forget(&key).map_or(0, |p| p.packets);
            return Offer::Refused(Undecodable::FragmentInvalid, held);
        }
        if p.data.len() < end as usize {
            p.data.resize(end as usize, 0);
            self.bytes_held += grow;
        }
        p.data[start as usize..end as usize].copy_from_slice(f.data);
        p.packets += 1;
        p.ip_bytes += u64::from(f.ip_len);
        if !f.more {
            p.total = Some(end);
        }
        insert_range(&mut p.have, start, end);
        let done = p
            .total
            .is_some_and(|t| p.have.len() == 1 && p.have[0] == (0, t));
        if !done {
            return Offer::Held;
        }
        let p = self.forget(&key).expect("present");
        Offer::Complete(Datagram {
            vlan: f.vlan,
            ip: f.ip,
            proto: f.proto,
            data: p.data,
            packets: p.packets,
            ip_bytes: p.ip_bytes,
        })
    }

    /// Drop datagrams older than the timeout; their fragments become undecodable.
    fn sweep(&mut self, now: u64) {
        if now < self.last_sweep + 1_000_000_000 {
            return;
        }
        self.last_sweep = now;
        let timeout = self.limits.timeout_ns;
        let mut expired = 0u32;
        let mut freed = 0usize;
        self.pending.retain(|_, p| {
            let keep = p.first_ts + timeout >= now;
            if !keep {
                expired += p.packets;
                freed += p.data.len();
            }
            keep
        });
        self.bytes_held -= freed;
        if expired > 0 {
            self.dropped
                .push((Undecodable::FragmentIncomplete, expired));
        }
    }

    /// Fragments given up on by timeouts since the last call.
    pub fn take_dropped(&mut self) -> Vec<(Undecodable, u32)> {
        std::mem::take(&mut self.dropped)
    }

    /// At end of input: every fragment still held is incomplete.
    pub fn finish(&mut self) -> u32 {
        let n = self.pending.values().map(|p| p.packets).sum();
        self.pending.clear();
        self.bytes_held = 0;
        n
    }

    /// Payload bytes currently held (for tests and the summary).
    pub fn bytes_held(&self) -> usize {
        self.bytes_held
    }
}

fn insert_range(have: &mut Vec<(u32, u32)>, start: u32, end: u32) {
    if start == end {
        return;
    }
    have.push((start, end));
    have.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(have.len());
    for &(s, e) in have.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *have = merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(data: &[u8], offset: u32, more: bool, id: u32) -> Fragment<'_> {
        Fragment {
            vlan: [0, 0],
            ip: IpPair {
                v6: false,
                src: [1; 16],
                dst: [2; 16],
            },
            proto: 17,
            id,
            offset,
            more,
            data,
            complete: true,
            ip_len: data.len() as u32 + 20,
        }
    }

    #[test]
    fn out_of_order_fragments_reassemble() {
        let mut r = Reassembler::new(FragLimits::default());
        let a = [1u8; 16];
        let b = [2u8; 5];
        assert!(matches!(r.offer(&frag(&b, 16, false, 7), 0), Offer::Held));
        match r.offer(&frag(&a, 0, true, 7), 1) {
            Offer::Complete(d) => {
                assert_eq!(d.data.len(), 21);
                assert_eq!(d.packets, 2);
                assert_eq!(&d.data[16..], &b);
            }
            _ => panic!("not complete"),
        }
        assert_eq!(r.bytes_held(), 0);
    }

    #[test]
    fn duplicate_is_fine_conflict_is_not() {
        let mut r = Reassembler::new(FragLimits::default());
        let a = [1u8; 8];
        assert!(matches!(r.offer(&frag(&a, 0, true, 1), 0), Offer::Held));
        assert!(matches!(r.offer(&frag(&a, 0, true, 1), 0), Offer::Held));
        let c = [9u8; 8];
        assert!(matches!(
            r.offer(&frag(&c, 0, true, 1), 0),
            Offer::Refused(Undecodable::FragmentInvalid, 2)
        ));
    }

    #[test]
    fn memory_cap_refuses() {
        let mut r = Reassembler::new(FragLimits {
            max_pending: 2,
            max_bytes: 64,
            timeout_ns: 10,
        });
        let a = [0u8; 40];
        assert!(matches!(r.offer(&frag(&a, 0, true, 1), 0), Offer::Held));
        assert!(matches!(
            r.offer(&frag(&a, 0, true, 2), 0),
            Offer::Refused(Undecodable::FragmentLimit, 0)
        ));
        assert!(r.bytes_held() <= 64);
    }

    #[test]
    fn timeout_counts_incomplete() {
        let mut r = Reassembler::new(FragLimits {
            timeout_ns: 5,
            ..FragLimits::default()
        });
        let a = [0u8; 8];
        assert!(matches!(r.offer(&frag(&a, 0, true, 1), 0), Offer::Held));
        assert!(matches!(
            r.offer(&frag(&a, 0, true, 2), 2_000_000_000),
            Offer::Held
        ));
        assert_eq!(r.take_dropped(), vec![(Undecodable::FragmentIncomplete, 1)]);
        assert_eq!(r.finish(), 1);
    }

    #[test]
    fn offset_past_64k_is_invalid() {
        let mut r = Reassembler::new(FragLimits::default());
        let a = [0u8; 16];
        assert!(matches!(
            r.offer(&frag(&a, 65_528, false, 1), 0),
            Offer::Refused(Undecodable::FragmentInvalid, 0)
        ));
    }
}
