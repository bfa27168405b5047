//! IP fragment reassembly within a memory cap (SIP INVITEs with SDP often fragment over UDP).
//!
//! Runs in each worker (fragments are sharded by addresses, so all of a datagram's reach the
//! same one). Every fragment ends up either in a reassembled datagram or counted as undecodable
//! with a reason. When the memory is full, the oldest incomplete datagram makes room for a new
//! one (issue 13): junk first fragments cannot block reassembly for the whole timeout.

use super::{Fragment, IpPair, Undecodable};
use hashbrown::HashMap;
use std::collections::VecDeque;

/// Largest datagram payload an IP length field can describe.
const MAX_DATAGRAM: u32 = 65_535;

/// What one pending datagram costs besides its payload bytes: its key, state and map slot,
/// its list of received ranges and its place in the age queue (rounded up). It is charged
/// against `max_bytes`, so the memory limit also bounds how many datagrams are pending.
pub const PENDING_OVERHEAD: usize = 256;

/// Limits on what the reassembler holds.
#[derive(Debug, Clone, Copy)]
pub struct FragLimits {
    /// Bytes held in all: fragment payload plus `PENDING_OVERHEAD` per pending datagram
    /// (so at most `max_bytes / PENDING_OVERHEAD` datagrams are pending).
    pub max_bytes: usize,
    /// How long (capture time, ns) a datagram may wait for its missing fragments.
    pub timeout_ns: u64,
}

impl Default for FragLimits {
    fn default() -> Self {
        FragLimits {
            max_bytes: 16 << 20,
            timeout_ns: 30_000_000_000,
        }
    }
}

impl FragLimits {
    /// Most datagrams pending at once under these limits.
    pub fn max_pending(&self) -> usize {
        self.max_bytes / PENDING_OVERHEAD
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
    /// Its place in `Reassembler::age` (entries whose number differs are stale).
    seq: u64,
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
    /// Pending datagrams oldest first, by arrival of their first fragment; entries of
    /// datagrams completed or dropped since are skipped when met (and compacted away).
    age: VecDeque<(u64, Key)>,
    next_seq: u64,
    /// Payload bytes held (without the per-datagram overhead).
    bytes_held: usize,
    last_sweep: u64,
    /// Fragments dropped since the caller last took the count, with why.
    dropped: Vec<(Undecodable, u32)>,
    /// Fragments of evicted datagrams not yet moved to `dropped`.
    evicted: u32,
}

impl Reassembler {
    pub fn new(limits: FragLimits) -> Self {
        Reassembler {
            limits,
            pending: HashMap::new(),
            age: VecDeque::new(),
            next_seq: 0,
            bytes_held: 0,
            last_sweep: 0,
            dropped: Vec::new(),
            evicted: 0,
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

    /// Bytes charged against the limit if `extra` payload bytes and `new` datagrams were added.
    fn charge(&self, extra: usize, new: usize) -> usize {
        self.bytes_held + extra + (self.pending.len() + new) * PENDING_OVERHEAD
    }

    /// Drop the oldest pending datagram other than `keep`; its fragments are counted as
    /// evicted. False when there is none.
    fn evict_oldest(&mut self, keep: &Key) -> bool {
        while let Some((seq, key)) = self.age.pop_front() {
            if self.pending.get(&key).is_none_or(|p| p.seq != seq) {
                continue; // stale entry
            }
            if key == *keep {
                self.age.push_back((seq, key));
                // `keep` was the oldest: look behind it once, then give up
                if self.age.len() == 1 {
                    return false;
                }
                continue;
            }
            let p = self.forget(&key).expect("present");
            self.evicted += p.packets;
            return true;
        }
        false
    }

    /// Offer one fragment seen at capture time `ts` (ns).
    pub fn offer(&mut self, f: &Fragment<'_>, ts: u64) -> Offer {
        self.sweep(ts);
        self.compact_age();
        let key = Self::key(f);
        let start = f.offset;
        let end = start + f.data.len() as u32;
        if !f.complete || end > MAX_DATAGRAM || (f.more && f.data.len() % 8 != 0) {
            let held = self.forget(&key).map_or(0, |p| p.packets);
            return Offer::Refused(Undecodable::FragmentInvalid, held);
        }
        if !self.pending.contains_key(&key) {
            if end as usize + PENDING_OVERHEAD > self.limits.max_bytes {
                // would not fit even alone
                return Offer::Refused(Undecodable::FragmentLimit, 0);
            }
            while self.charge(end as usize, 1) > self.limits.max_bytes {
                if !self.evict_oldest(&key) {
                    break;
                }
            }
            self.flush_evicted();
            let seq = self.next_seq;
            self.next_seq += 1;
            self.age.push_back((seq, key));
            self.pending.insert(
                key,
                Pending {
                    seq,
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
        while self.charge(grow, 0) > self.limits.max_bytes {
            if !self.evict_oldest(&key) {
                break;
            }
        }
        self.flush_evicted();
        if self.charge(grow, 0) > self.limits.max_bytes {
            // this datagram alone is larger than the memory
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
        self.compact_age();
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
        self.compact_age();
    }

    fn flush_evicted(&mut self) {
        if self.evicted > 0 {
            self.dropped.push((
                Undecodable::FragmentEvicted,
                std::mem::take(&mut self.evicted),
            ));
        }
    }

    /// Keep the age queue proportional to what is pending: drop its stale entries once they
    /// outnumber the live ones.
    fn compact_age(&mut self) {
        if self.age.len() > 2 * self.pending.len() + 64 {
            let pending = &self.pending;
            self.age
                .retain(|(seq, key)| pending.get(key).is_some_and(|p| p.seq == *seq));
        }
    }

    /// Fragments given up on (timeouts, evictions) since the last call.
    pub fn take_dropped(&mut self) -> Vec<(Undecodable, u32)> {
        std::mem::take(&mut self.dropped)
    }

    /// At end of input: every fragment still held is incomplete.
    pub fn finish(&mut self) -> u32 {
        let n = self.pending.values().map(|p| p.packets).sum();
        self.pending.clear();
        self.age.clear();
        self.bytes_held = 0;
        n
    }

    /// Payload bytes currently held (for tests and the summary).
    pub fn bytes_held(&self) -> usize {
        self.bytes_held
    }

    /// Datagrams currently pending.
    pub fn pending(&self) -> usize {
        self.pending.len()
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
    fn datagram_larger_than_memory_is_refused() {
        let mut r = Reassembler::new(FragLimits {
            max_bytes: PENDING_OVERHEAD + 64,
            timeout_ns: 10,
        });
        let a = [0u8; 40];
        assert!(matches!(r.offer(&frag(&a, 0, true, 1), 0), Offer::Held));
        // the same datagram grows past the memory: it goes, with the fragment held
        assert!(matches!(
            r.offer(&frag(&a, 40, true, 1), 0),
            Offer::Refused(Undecodable::FragmentLimit, 1)
        ));
        assert_eq!((r.pending(), r.bytes_held()), (0, 0));
        // a first fragment that cannot fit alone
        let big = [0u8; 72];
        assert!(matches!(
            r.offer(&frag(&big, 0, true, 2), 0),
            Offer::Refused(Undecodable::FragmentLimit, 0)
        ));
        assert!(r.take_dropped().is_empty());
    }

    /// Issue 13: a full memory pushes out the oldest incomplete datagram, counted as evicted,
    /// and a datagram arriving behind a flood of junk first fragments is still reassembled.
    #[test]
    fn full_memory_evicts_the_oldest() {
        // room for 3 datagrams of 8 payload bytes each
        let limits = FragLimits {
            max_bytes: 3 * (PENDING_OVERHEAD + 8),
            timeout_ns: 30_000_000_000,
        };
        assert_eq!(limits.max_pending(), 3);
        let mut r = Reassembler::new(limits);
        let junk = [7u8; 8];
        for id in 0..1000 {
            assert!(matches!(r.offer(&frag(&junk, 0, true, id), 0), Offer::Held));
            assert!(r.pending() <= 3);
        }
        let dropped: u32 = r
            .take_dropped()
            .iter()
            .map(|&(u, n)| {
                assert_eq!(u, Undecodable::FragmentEvicted);
                n
            })
            .sum();
        assert_eq!(dropped, 997, "one fragment per evicted datagram");
        // a datagram behind the flood gets room: the oldest (997) makes way for it
        let a = [1u8; 8];
        assert!(matches!(r.offer(&frag(&a, 0, true, 5000), 2), Offer::Held));
        assert_eq!(r.take_dropped(), vec![(Undecodable::FragmentEvicted, 1)]);
        // growing to 16 bytes needs the room of one more: 998 goes too
        assert!(matches!(
            r.offer(&frag(&a, 8, false, 5000), 3),
            Offer::Complete(d) if d.data.len() == 16 && d.packets == 2
        ));
        assert_eq!(r.take_dropped(), vec![(Undecodable::FragmentEvicted, 1)]);
        // the newest of the flood survived
        assert!(matches!(
            r.offer(&frag(&[1u8; 3], 8, false, 999), 4),
            Offer::Complete(d) if d.data.len() == 11
        ));
        // an evicted datagram's late fragment starts over: the old fragment is gone
        assert!(matches!(r.offer(&frag(&a, 8, false, 0), 5), Offer::Held));
        assert_eq!(r.finish(), 1, "the new 0");
        assert!(r.take_dropped().is_empty());
    }

    /// A growing datagram evicts older ones rather than being dropped itself.
    #[test]
    fn growth_evicts_others_not_itself() {
        let mut r = Reassembler::new(FragLimits {
            max_bytes: 2 * PENDING_OVERHEAD + 48,
            timeout_ns: 30_000_000_000,
        });
        let a = [3u8; 16];
        assert!(matches!(r.offer(&frag(&a, 0, true, 1), 0), Offer::Held));
        assert!(matches!(r.offer(&frag(&a, 0, true, 2), 0), Offer::Held));
        assert!(r.take_dropped().is_empty());
        // datagram 1 (the oldest) grows to 48 bytes: 48 + 16 + 2 overheads > limit, so 2 goes
        assert!(matches!(r.offer(&frag(&a, 16, true, 1), 1), Offer::Held));
        assert!(matches!(r.offer(&frag(&a, 32, true, 1), 1), Offer::Held));
        assert_eq!(r.take_dropped(), vec![(Undecodable::FragmentEvicted, 1)]);
        // growing past the memory on its own: refused, with its held fragments
        assert!(matches!(
            r.offer(&frag(&[3u8; 300], 48, false, 1), 2),
            Offer::Refused(Undecodable::FragmentLimit, 3)
        ));
        assert_eq!((r.pending(), r.bytes_held()), (0, 0));
    }

    #[test]
    fn age_queue_stays_bounded() {
        let mut r = Reassembler::new(FragLimits::default());
        let a = [1u8; 8];
        for id in 0..100_000 {
            assert!(matches!(r.offer(&frag(&a, 0, true, id), 0), Offer::Held));
            assert!(matches!(
                r.offer(&frag(&a, 8, false, id), 0),
                Offer::Complete(_)
            ));
        }
        assert!(r.age.len() <= 64 + 2, "{}", r.age.len());
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
