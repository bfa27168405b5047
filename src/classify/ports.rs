//! Port hints: a direct lookup table from (transport, port) to the most specific signature entry.

use crate::decode::{IPPROTO_TCP, IPPROTO_UDP};
use crate::signatures::{PortEntry, Signatures};

/// Ranges at most this wide count as service ports for the originator heuristic (so that
/// 5065-5068 does, and the dynamic RPC or RTP ranges do not).
pub const SERVICE_RANGE_WIDTH: u32 = 64;

/// One slot per port and transport: index + 1 into `Signatures::ports`, 0 = no entry.
pub struct PortTable {
    tcp: Box<[u16]>,
    udp: Box<[u16]>,
    /// The same over entries with implicit TLS only: a port the reference lists both plain
    /// and implicit-TLS (465) names the TLS meaning when the payload is TLS.
    tcp_tls: Box<[u16]>,
}

impl PortTable {
    /// Build the table: for each port the narrowest covering entry wins, and among equally
    /// narrow ones the first in the file.
    pub fn new(sigs: &Signatures) -> Self {
        let mut tcp = vec![0u16; 65536].into_boxed_slice();
        let mut udp = vec![0u16; 65536].into_boxed_slice();
        let mut tcp_tls = vec![0u16; 65536].into_boxed_slice();
        let mut order: Vec<usize> = (0..sigs.ports.len()).collect();
        // Widest first, later file entries first within a width: what is written last wins.
        order.sort_by(|&a, &b| {
            sigs.ports[b]
                .width()
                .cmp(&sigs.ports[a].width())
                .then(b.cmp(&a))
        });
        for i in order {
            let e = &sigs.ports[i];
            for port in e.lo..=e.hi {
                if e.transport.covers(IPPROTO_TCP) {
                    tcp[port as usize] = (i + 1) as u16;
                }
                if e.transport.covers(IPPROTO_UDP) {
                    udp[port as usize] = (i + 1) as u16;
                }
                if e.tls && e.transport.covers(IPPROTO_TCP) {
                    tcp_tls[port as usize] = (i + 1) as u16;
                }
            }
        }
        PortTable { tcp, udp, tcp_tls }
    }

    /// The entry for a port, if any.
    pub fn lookup<'s>(&self, sigs: &'s Signatures, proto: u8, port: u16) -> Option<&'s PortEntry> {
        let slot = match proto {
            IPPROTO_TCP => self.tcp[port as usize],
            IPPROTO_UDP => self.udp[port as usize],
            _ => 0,
        };
        (slot != 0).then(|| &sigs.ports[slot as usize - 1])
    }

    /// The implicit-TLS entry for a TCP port, if the reference has one.
    pub fn lookup_tls<'s>(&self, sigs: &'s Signatures, port: u16) -> Option<&'s PortEntry> {
        let slot = self.tcp_tls[port as usize];
        (slot != 0).then(|| &sigs.ports[slot as usize - 1])
    }

    /// Whether a port belongs to a named service rather than a wide dynamic range.
    pub fn is_service_port(&self, sigs: &Signatures, proto: u8, port: u16) -> bool {
        self.lookup(sigs, proto, port)
            .is_some_and(|e| e.width() <= SERVICE_RANGE_WIDTH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_entry_wins() {
        let s = Signatures::embedded();
        let t = PortTable::new(&s);
        let name = |proto, port| {
            t.lookup(&s, proto, port)
                .map(|e| s.services[e.service].name.as_str())
        };
        assert_eq!(name(IPPROTO_TCP, 50636), Some("edgesync"));
        assert_eq!(name(IPPROTO_TCP, 25), Some("smtp"));
        assert_eq!(name(IPPROTO_UDP, 30000), Some("um-rtp"));
        assert_eq!(name(IPPROTO_TCP, 59532), Some("rpc-client-access"));
        assert_eq!(name(IPPROTO_TCP, 59600), Some("msrpc-static"));
        assert_eq!(name(IPPROTO_TCP, 16500), Some("um-control"));
        assert!(t.is_service_port(&s, IPPROTO_TCP, 5066));
        assert!(!t.is_service_port(&s, IPPROTO_TCP, 50000));
        assert!(!t.is_service_port(&s, IPPROTO_UDP, 40000));
    }
}
