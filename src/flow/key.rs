//! Symmetric flow keys: both directions of a conversation map to the same key and hash.

use crate::decode::IpPair;
use std::hash::{BuildHasher, Hash};

/// A conversation's identity with its two endpoints in canonical (sorted) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// The lower (address, port) endpoint.
    pub lo: [u8; 16],
    /// The higher (address, port) endpoint.
    pub hi: [u8; 16],
    pub lo_port: u16,
    pub hi_port: u16,
    pub proto: u8,
    pub v6: bool,
    /// Outer and inner VLAN id (0 = untagged): the same 5-tuple on two VLANs is two flows.
    pub vlan: [u16; 2],
}

impl FlowKey {
    /// Build the key for a packet and say whether its sender is the `lo` endpoint.
    pub fn new(ip: &IpPair, sport: u16, dport: u16, proto: u8, vlan: [u16; 2]) -> (FlowKey, bool) {
        let sender_lo = (ip.src, sport) <= (ip.dst, dport);
        let (lo, lo_port, hi, hi_port) = if sender_lo {
            (ip.src, sport, ip.dst, dport)
        } else {
            (ip.dst, dport, ip.src, sport)
        };
        (
            FlowKey {
                lo,
                hi,
                lo_port,
                hi_port,
                proto,
                v6: ip.v6,
                vlan,
            },
            sender_lo,
        )
    }

    /// A hash that is the same in every thread and run, used for sharding and the flow table.
    /// Every packet computes it once: the key is folded as five words rather than fed to a
    /// hasher field by field (the derived `Hash` made it about 120 instructions a packet).
    pub fn hash64(&self) -> u64 {
        let w = |b: &[u8; 16], i: usize| {
            u64::from_le_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        let tail = u64::from(self.lo_port)
            | u64::from(self.hi_port) << 16
            | u64::from(self.proto) << 32
            | u64::from(self.v6) << 40
            | u64::from(self.vlan[0] & 0x0fff) << 41
            | u64::from(self.vlan[1] & 0x0fff) << 53;
        let seed = foldhash::fast::FixedState::with_seed(0x0065_7877_6174_6368);
        seed.hash_one((
            w(&self.lo, 0),
            w(&self.lo, 8),
            w(&self.hi, 0),
            w(&self.hi, 8),
            tail,
        ))
    }
}

/// Turn exwatch's 16-byte address form back into an `IpAddr`.
pub fn to_ip(a: &[u8; 16], v6: bool) -> std::net::IpAddr {
    if v6 {
        std::net::IpAddr::from(*a)
    } else {
        std::net::IpAddr::from([a[0], a[1], a[2], a[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_share_key_and_hash() {
        let mut a = IpPair {
            v6: false,
            src: [0; 16],
            dst: [0; 16],
        };
        a.src[..4].copy_from_slice(&[10, 0, 0, 9]);
        a.dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        let b = IpPair {
            v6: false,
            src: a.dst,
            dst: a.src,
        };
        let (k1, s1) = FlowKey::new(&a, 50000, 25, 6, [0, 0]);
        let (k2, s2) = FlowKey::new(&b, 25, 50000, 6, [0, 0]);
        assert_eq!(k1, k2);
        assert_eq!(k1.hash64(), k2.hash64());
        assert_ne!(s1, s2);
        assert_eq!(to_ip(&k1.lo, k1.v6).to_string(), "10.0.0.2");
    }
}
