//! Link layers: strip the frame header of each supported link type down to the IP packet.

use super::Undecodable;

/// Link types exwatch decodes (libpcap DLT values).
pub mod dlt {
    /// BSD loopback: 4-byte address family in host byte order.
    pub const NULL: i32 = 0;
    /// Ethernet II (and 802.3 with SNAP, rarely IP).
    pub const EN10MB: i32 = 1;
    /// Raw IP as Linux names it.
    pub const RAW_LINUX: i32 = 12;
    /// Raw IP as OpenBSD names it.
    pub const RAW_BSD: i32 = 14;
    /// Raw IP, the LINKTYPE value found in files.
    pub const RAW: i32 = 101;
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: i32 = 108;
    /// Linux cooked capture v1.
    pub const LINUX_SLL: i32 = 113;
    /// Raw IPv4.
    pub const IPV4: i32 = 228;
    /// Raw IPv6.
    pub const IPV6: i32 = 229;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: i32 = 276;
}

/// Whether exwatch can decode frames of this link type.
pub fn supported(linktype: i32) -> bool {
    matches!(
        linktype,
        dlt::NULL
            | dlt::EN10MB
            | dlt::RAW_LINUX
            | dlt::RAW_BSD
            | dlt::RAW
            | dlt::LOOP
            | dlt::LINUX_SLL
            | dlt::IPV4
            | dlt::IPV6
            | dlt::LINUX_SLL2
    )
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_PPPOE_SESSION: u16 = 0x8864;
const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MCAST: u16 = 0x8848;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
/// MPLS labels popped before the frame is refused.
const MAX_MPLS_LABELS: usize = 8;
/// VLAN tags walked before the frame is refused: QinQ is two, three is already unusual.
const MAX_VLAN_TAGS: usize = 4;

/// The IP packet inside a frame, with the VLAN tags met on the way (outer first, 0 = none).
pub struct LinkPayload<'a> {
    pub ip: &'a [u8],
    pub vlan: [u16; 2],
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

/// Look through PPPoE sessions and MPLS label stacks, which SPAN ports often carry, to IP.
fn encapsulated(ty: u16, rest: &[u8]) -> Result<(u16, &[u8]), Undecodable> {
    match ty {
        ETH_PPPOE_SESSION => {
            // 6-byte PPPoE header, then the 2-byte PPP protocol.
            let proto = be16(rest, 6).ok_or(Undecodable::TruncatedLink)?;
            let ip = rest.get(8..).ok_or(Undecodable::TruncatedLink)?;
            match proto {
                PPP_IPV4 => Ok((ETH_IPV4, ip)),
                PPP_IPV6 => Ok((ETH_IPV6, ip)),
                _ => Err(Undecodable::NonIp(ty)),
            }
        }
        ETH_MPLS | ETH_MPLS_MCAST => {
            let mut off = 0;
            for _ in 0..MAX_MPLS_LABELS {
                let entry = rest.get(off..off + 4).ok_or(Undecodable::TruncatedLink)?;
                off += 4;
                if entry[2] & 1 == 1 {
                    // Bottom of stack: MPLS does not say what follows, the IP version nibble does.
                    let ip = &rest[off..];
                    return match ip.first().map(|b| b >> 4) {
                        Some(4) => Ok((ETH_IPV4, ip)),
                        Some(6) => Ok((ETH_IPV6, ip)),
                        _ => Err(Undecodable::NonIp(ty)),
                    };
                }
            }
            Err(Undecodable::TooManyTags)
        }
        _ => Ok((ty, rest)),
    }
}

/// Strip the link header of `frame` and return the IP packet, or why that was impossible.
pub fn strip(linktype: i32, frame: &[u8]) -> Result<LinkPayload<'_>, Undecodable> {
    let mut vlan = [0u16; 2];
    let (ethertype, rest) = match linktype {
        dlt::EN10MB => {
            let mut ty = be16(frame, 12).ok_or(Undecodable::TruncatedLink)?;
            let mut off = 14;
            let mut tags = 0;
            while matches!(ty, ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD) {
                if tags == MAX_VLAN_TAGS {
                    return Err(Undecodable::TooManyTags);
                }
                let tci = be16(frame, off).ok_or(Undecodable::TruncatedLink)?;
                if tags < 2 {
                    vlan[tags] = tci & 0x0fff;
                }
                tags += 1;
                ty = be16(frame, off + 2).ok_or(Undecodable::TruncatedLink)?;
                off += 4;
            }
            encapsulated(ty, frame.get(off..).ok_or(Undecodable::TruncatedLink)?)?
        }
        dlt::LINUX_SLL => {
            let ty = be16(frame, 14).ok_or(Undecodable::TruncatedLink)?;
            (ty, frame.get(16..).ok_or(Undecodable::TruncatedLink)?)
        }
        dlt::LINUX_SLL2 => {
            let ty = be16(frame, 0).ok_or(Undecodable::TruncatedLink)?;
            (ty, frame.get(20..).ok_or(Undecodable::TruncatedLink)?)
        }
        dlt::NULL | dlt::LOOP => {
            let fam = frame.get(..4).ok_or(Undecodable::TruncatedLink)?;
            // DLT_NULL is host byte order of the capturing machine, so accept either order.
            let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let family = if linktype == dlt::LOOP || le > 0xffff {
                be
            } else {
                le
            };
            let ty = match family {
                2 => ETH_IPV4,
                10 | 24 | 28 | 30 => ETH_IPV6,
                other => return Err(Undecodable::NonIp(other as u16)),
            };
            (ty, &frame[4..])
        }
        dlt::RAW_LINUX | dlt::RAW_BSD | dlt::RAW | dlt::IPV4 | dlt::IPV6 => {
            let ty = match frame.first().map(|b| b >> 4) {
                Some(4) => ETH_IPV4,
                Some(6) => ETH_IPV6,
                Some(_) => return Err(Undecodable::BadIpVersion),
                None => return Err(Undecodable::TruncatedLink),
            };
            (ty, frame)
        }
        other => return Err(Undecodable::UnsupportedLinkType(other)),
    };
    match ethertype {
        ETH_IPV4 | ETH_IPV6 => Ok(LinkPayload { ip: rest, vlan }),
        other => Err(Undecodable::NonIp(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(tags: &[u16], ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for t in tags {
            f.extend_from_slice(&ETH_VLAN.to_be_bytes());
            f.extend_from_slice(&t.to_be_bytes());
        }
        f.extend_from_slice(&ty.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn ethernet_with_qinq_keeps_both_tags() {
        let f = eth(&[100, 0x2000 | 200], ETH_IPV4, &[0x45, 0]);
        let p = strip(dlt::EN10MB, &f).ok().unwrap();
        assert_eq!(p.vlan, [100, 200]);
        assert_eq!(p.ip, &[0x45, 0]);
    }

    #[test]
    fn truncated_vlan_tag_is_refused() {
        let mut f = eth(&[], ETH_VLAN, &[]);
        f.push(0);
        assert!(matches!(
            strip(dlt::EN10MB, &f),
            Err(Undecodable::TruncatedLink)
        ));
    }

    #[test]
    fn endless_vlan_tags_are_refused() {
        let f = eth(&[1, 2, 3, 4, 5], ETH_IPV4, &[0x45]);
        assert!(matches!(
            strip(dlt::EN10MB, &f),
            Err(Undecodable::TooManyTags)
        ));
    }

    #[test]
    fn pppoe_and_mpls_reach_ip() {
        let mut pppoe = vec![0x11, 0, 0, 1, 0, 2];
        pppoe.extend_from_slice(&PPP_IPV4.to_be_bytes());
        pppoe.push(0x45);
        let f = eth(&[10, 20], ETH_PPPOE_SESSION, &pppoe);
        let p = strip(dlt::EN10MB, &f).ok().unwrap();
        assert_eq!((p.ip, p.vlan), (&[0x45][..], [10, 20]));
        let f = eth(&[], ETH_MPLS, &[0, 1, 0, 64, 0, 2, 1, 64, 0x60]);
        assert_eq!(strip(dlt::EN10MB, &f).ok().unwrap().ip, &[0x60]);
        let f = eth(&[], ETH_MPLS, &[0, 1, 0, 64]);
        assert!(strip(dlt::EN10MB, &f).is_err());
    }

    #[test]
    fn arp_is_not_ip() {
        let f = eth(&[], 0x0806, &[0; 28]);
        assert!(matches!(
            strip(dlt::EN10MB, &f),
            Err(Undecodable::NonIp(0x0806))
        ));
    }

    #[test]
    fn null_loopback_either_byte_order() {
        let mut le = vec![2, 0, 0, 0, 0x45];
        assert_eq!(strip(dlt::NULL, &le).ok().unwrap().ip, &[0x45]);
        le[..4].copy_from_slice(&[0, 0, 0, 30]);
        assert!(strip(dlt::NULL, &le).is_ok());
    }

    #[test]
    fn sll_and_sll2() {
        let mut sll = vec![0u8; 16];
        sll[14..16].copy_from_slice(&ETH_IPV6.to_be_bytes());
        sll.push(0x60);
        assert_eq!(strip(dlt::LINUX_SLL, &sll).ok().unwrap().ip, &[0x60]);
        let mut sll2 = vec![0u8; 20];
        sll2[0..2].copy_from_slice(&ETH_IPV4.to_be_bytes());
        sll2.push(0x45);
        assert_eq!(strip(dlt::LINUX_SLL2, &sll2).ok().unwrap().ip, &[0x45]);
        assert!(strip(dlt::LINUX_SLL2, &sll2[..10]).is_err());
    }

    #[test]
    fn raw_ip_checks_version() {
        assert!(strip(dlt::RAW, &[0x45]).is_ok());
        assert!(matches!(
            strip(dlt::RAW, &[0x15]),
            Err(Undecodable::BadIpVersion)
        ));
        assert!(matches!(
            strip(dlt::RAW, &[]),
            Err(Undecodable::TruncatedLink)
        ));
    }
}
