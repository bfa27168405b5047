//! Decode stage: a captured frame becomes a view of its IP addresses, ports, flags and payload.
//!
//! Sits between `capture` (raw frames) and `flow` (per-connection state). Nothing here allocates
//! except the IP fragment reassembler, whose memory is capped.

pub mod frag;
pub mod link;

use etherparse::{LaxIpSlice, TcpSlice, UdpSlice};

/// IP protocol numbers exwatch treats specially.
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// TCP flag bits as they sit in the header's flags byte.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// Why a frame could not be turned into a flow packet; each reason is counted in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Undecodable {
    UnsupportedLinkType(i32),
    TruncatedLink,
    TooManyTags,
    NonIp(u16),
    BadIpVersion,
    BadIpHeader,
    TruncatedIp,
    TruncatedTransport,
    BadTransportHeader,
    /// A fragment whose datagram never completed (timeout or end of input).
    FragmentIncomplete,
    /// A fragment that overlapped others with different bytes, or ran past 64 KiB.
    FragmentInvalid,
    /// A fragment refused because its datagram alone is larger than the reassembly memory.
    FragmentLimit,
    /// A fragment of an incomplete datagram evicted, oldest first, to make room for a newer
    /// one when the reassembly memory was full.
    FragmentEvicted,
}

impl Undecodable {
    /// Short stable label for the summary and the JSON statistics.
    pub fn label(&self) -> &'static str {
        match self {
            Undecodable::UnsupportedLinkType(_) => "unsupported-link-type",
            Undecodable::TruncatedLink => "truncated-link-header",
            Undecodable::TooManyTags => "too-many-encapsulation-tags",
            Undecodable::NonIp(_) => "non-ip",
            Undecodable::BadIpVersion => "bad-ip-version",
            Undecodable::BadIpHeader => "bad-ip-header",
            Undecodable::TruncatedIp => "truncated-ip-header",
            Undecodable::TruncatedTransport => "truncated-transport-header",
            Undecodable::BadTransportHeader => "bad-transport-header",
            Undecodable::FragmentIncomplete => "ip-fragment-incomplete",
            Undecodable::FragmentInvalid => "ip-fragment-invalid",
            Undecodable::FragmentLimit => "ip-fragment-memory-cap",
            Undecodable::FragmentEvicted => "ip-fragment-evicted",
        }
    }
}

/// Transport layer of a decoded packet.
#[derive(Debug, Clone, Copy)]
pub enum L4<'a> {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        /// The payload bytes captured (may be shorter than on the wire).
        payload: &'a [u8],
        /// Payload length on the wire, from the IP length fields.
        payload_len: u32,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: &'a [u8],
        payload_len: u32,
    },
    /// ICMP or ICMPv6: type and code (type << 8 | code).
    Icmp { type_code: u16 },
    /// Any other IP protocol: counted as a flow without ports.
    Other,
}

/// Addresses of an IP packet: IPv4 sits in the first four bytes, the rest zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPair {
    pub v6: bool,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

/// A frame decoded down to its transport layer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub vlan: [u16; 2],
    pub ip: IpPair,
    pub proto: u8,
    /// IP-level bytes on the wire (header and payload), summed into the flow's byte counts.
    pub ip_len: u32,
    pub l4: L4<'a>,
    /// The IP payload when it is itself an IP packet (IP-in-IP, 6in4); empty otherwise.
    pub inner: &'a [u8],
}

/// One IP fragment, to be handed to the reassembler.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    pub vlan: [u16; 2],
    pub ip: IpPair,
    /// Protocol of the datagram the fragment belongs to.
    pub proto: u8,
    pub id: u32,
    /// Byte offset of `data` within the datagram's payload.
    pub offset: u32,
    pub more: bool,
    pub data: &'a [u8],
    /// Whether `data` holds every byte the header announced (no snaplen cut).
    pub complete: bool,
    pub ip_len: u32,
}

/// A decoded frame: a whole packet, or a fragment that still needs its siblings.
#[derive(Debug, Clone, Copy)]
pub enum Decoded<'a> {
    Packet(Packet<'a>),
    Fragment(Fragment<'a>),
}

fn addr4(b: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&b);
    a
}

/// Which worker a frame goes to: a symmetric hash of its IP address pair, found by walking
/// the link header only. Every frame of a flow and every fragment of a datagram carry the same
/// pair, so they meet on one worker (IP-in-IP: the outer pair, which all of a tunnelled flow's
/// frames share). Frames without an IP pair hash to 0; their worker counts them as
/// undecodable.
pub fn shard_hash(linktype: i32, frame: &[u8]) -> u64 {
    // Most frames are untagged Ethernet carrying IPv4 that is not a tunnel: every reader of a
    // capture hashes every frame, so this path skips the general link walk.
    if linktype == link::dlt::EN10MB && frame.len() >= 34 && frame[12..15] == [0x08, 0x00, 0x45] {
        let proto = frame[14 + 9];
        if proto != IPPROTO_IPIP && proto != IPPROTO_IPV6 {
            let word = |at: usize| {
                u64::from(u32::from_le_bytes([
                    frame[at],
                    frame[at + 1],
                    frame[at + 2],
                    frame[at + 3],
                ]))
            };
            let (a, b) = (word(14 + 12), word(14 + 16));
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            return mix(lo.rotate_left(32) ^ mix(hi));
        }
    }
    let Ok(link) = link::strip(linktype, frame) else {
        return 0;
    };
    let mut ip = link.ip;
    // IP-in-IP and 6in4 are looked through one level, as `decode_ip` does: a tunnelled
    // flow is the inner packet's, and may reach the capture through several tunnels.
    if let Some(inner) = tunnelled(ip) {
        if matches!(inner.first().map(|b| b >> 4), Some(4 | 6)) {
            ip = inner;
        }
    }
    let word = |b: &[u8]| -> u64 {
        let mut w = [0u8; 8];
        w[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
        u64::from_le_bytes(w)
    };
    let (a, b) = match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => (word(&ip[12..16]), word(&ip[16..20])),
        Some(6) if ip.len() >= 40 => (
            word(&ip[8..16]) ^ word(&ip[16..24]).rotate_left(29),
            word(&ip[24..32]) ^ word(&ip[32..40]).rotate_left(29),
        ),
        _ => return 0,
    };
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    mix(lo.rotate_left(32) ^ mix(hi))
}

/// The inner packet of an unfragmented IP-in-IP or 6in4 packet.
fn tunnelled(ip: &[u8]) -> Option<&[u8]> {
    match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x3fff;
            let proto = *ip.get(9)?;
            (frag == 0 && ihl >= 20 && matches!(proto, IPPROTO_IPIP | IPPROTO_IPV6))
                .then(|| ip.get(ihl..))
                .flatten()
        }
        6 => matches!(*ip.get(6)?, IPPROTO_IPIP | IPPROTO_IPV6)
            .then(|| ip.get(40..))
            .flatten(),
        _ => None,
    }
}

/// splitmix64's finaliser: every input bit reaches every output bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The destination and source MAC addresses of an Ethernet frame (all zero for other link
/// types, or a frame too short to hold them).
pub fn macs(linktype: i32, frame: &[u8]) -> [[u8; 6]; 2] {
    let mut m = [[0u8; 6]; 2];
    if linktype == link::dlt::EN10MB && frame.len() >= 14 {
        m[0].copy_from_slice(&frame[..6]);
        m[1].copy_from_slice(&frame[6..12]);
    }
    m
}

/// Decode one frame of link type `linktype`.
pub fn decode(linktype: i32, frame: &[u8]) -> Result<Decoded<'_>, Undecodable> {
    let link = link::strip(linktype, frame)?;
    decode_ip(link.ip, link.vlan)
}

/// The common case without etherparse's generality: IPv4, no options, not a fragment, a
/// sane total length. Anything else returns `None` and takes the general path.
fn fast_ipv4(data: &[u8], vlan: [u16; 2]) -> Option<Result<Decoded<'_>, Undecodable>> {
    let h = data.get(..20)?;
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff;
    if h[0] != 0x45 || frag != 0 || total < 20 {
        return None;
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..4].copy_from_slice(&h[12..16]);
    dst[..4].copy_from_slice(&h[16..20]);
    let payload = &data[20..total.min(data.len())];
    let proto = h[9];
    Some(decode_l4(proto, payload, total as u32 - 20).map(|l4| {
        Decoded::Packet(Packet {
            vlan,
            ip: IpPair {
                v6: false,
                src,
                dst,
            },
            proto,
            ip_len: total as u32,
            l4,
            inner: tunnel_payload(proto, payload),
        })
    }))
}

/// IP-in-IP (4) and IPv6-in-IPv4 (41): tunnels looked through, one level deep.
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;

/// Decode an IP packet (v4 or v6, extension headers walked, one IP-in-IP tunnel level
/// looked through: the flow is the inner packet's, the bytes the outer packet's).
pub fn decode_ip(data: &[u8], vlan: [u16; 2]) -> Result<Decoded<'_>, Undecodable> {
    let outer = match fast_ipv4(data, vlan) {
        Some(fast) => fast?,
        None => decode_ip_general(data, vlan)?,
    };
    if let Decoded::Packet(p) = &outer {
        if matches!(p.proto, IPPROTO_IPIP | IPPROTO_IPV6) {
            let bytes = p.inner;
            if let Ok(Decoded::Packet(mut inner)) =
                fast_ipv4(bytes, vlan).unwrap_or_else(|| decode_ip_general(bytes, vlan))
            {
                inner.ip_len = p.ip_len;
                inner.inner = &[];
                return Ok(Decoded::Packet(inner));
            }
        }
    }
    Ok(outer)
}

/// Any IP packet, through etherparse's lax slicing.
fn decode_ip_general(data: &[u8], vlan: [u16; 2]) -> Result<Decoded<'_>, Undecodable> {
    use etherparse::err::ip::LaxHeaderSliceError as E;
    let (ip, _ext_err) = LaxIpSlice::from_slice(data).map_err(|e| match e {
        E::Len(_) => Undecodable::TruncatedIp,
        E::Content(etherparse::err::ip::HeaderError::UnsupportedIpVersion { .. }) => {
            Undecodable::BadIpVersion
        }
        E::Content(_) => Undecodable::BadIpHeader,
    })?;
    let payload = ip.payload();
    let header_len = payload.payload.as_ptr() as usize - data.as_ptr() as usize;
    let (pair, ip_len, frag) = match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            let total = u32::from(h.total_len());
            // A zero or too-small total length (TSO captures) falls back to what was captured.
            let ip_len = if total as usize >= header_len {
                total
            } else {
                data.len() as u32
            };
            let pair = IpPair {
                v6: false,
                src: addr4(h.source()),
                dst: addr4(h.destination()),
            };
            let frag = if h.is_fragmenting_payload() {
                Some((
                    u32::from(h.identification()),
                    u32::from(h.fragments_offset().value()) * 8,
                    h.more_fragments(),
                ))
            } else {
                None
            };
            (pair, ip_len, frag)
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            let plen = u32::from(h.payload_length());
            let ip_len = if plen == 0 {
                data.len() as u32
            } else {
                40 + plen
            };
            let pair = IpPair {
                v6: true,
                src: h.source(),
                dst: h.destination(),
            };
            // Our own checked walk: etherparse 0.16's extension iterator reads out of bounds
            // on some truncated chains (found by the `frame` fuzz target).
            let frag = if v6.is_payload_fragmented() {
                ipv6_fragment_header(data)
            } else {
                None
            };
            (pair, ip_len, frag)
        }
    };
    let proto = payload.ip_number.0;
    let l4_wire_len = ip_len.saturating_sub(header_len as u32);
    if let Some((id, offset, more)) = frag {
        return Ok(Decoded::Fragment(Fragment {
            vlan,
            ip: pair,
            proto,
            id,
            offset,
            more,
            data: payload.payload,
            complete: payload.payload.len() as u32 >= l4_wire_len,
            ip_len,
        }));
    }
    let l4 = decode_l4(proto, payload.payload, l4_wire_len)?;
    Ok(Decoded::Packet(Packet {
        vlan,
        ip: pair,
        proto,
        ip_len,
        l4,
        inner: tunnel_payload(proto, payload.payload),
    }))
}

/// Walk an IPv6 packet's extension headers to its Fragment header: (id, offset, more).
/// Every length is checked; at most eight headers are walked.
fn ipv6_fragment_header(packet: &[u8]) -> Option<(u32, u32, bool)> {
    const HOP_BY_HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const AUTH: u8 = 51;
    const DEST_OPTS: u8 = 60;
    let mut next = *packet.get(6)?;
    let mut at = 40usize;
    for _ in 0..8 {
        let h = packet.get(at..at + 8)?;
        match next {
            FRAGMENT => {
                let off_flags = u16::from_be_bytes([h[2], h[3]]);
                let id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                return Some((id, u32::from(off_flags >> 3) * 8, off_flags & 1 == 1));
            }
            HOP_BY_HOP | ROUTING | DEST_OPTS => at += (usize::from(h[1]) + 1) * 8,
            AUTH => at += (usize::from(h[1]) + 2) * 4,
            _ => return None,
        }
        next = h[0];
    }
    None
}

fn tunnel_payload(proto: u8, payload: &[u8]) -> &[u8] {
    if matches!(proto, IPPROTO_IPIP | IPPROTO_IPV6) {
        payload
    } else {
        &[]
    }
}

/// Decode a TCP or UDP header from `data`, the captured part of `wire_len` transport bytes.
pub fn decode_l4(proto: u8, data: &[u8], wire_len: u32) -> Result<L4<'_>, Undecodable> {
    match proto {
        IPPROTO_TCP => {
            use etherparse::err::tcp::HeaderSliceError as E;
            let t = TcpSlice::from_slice(data).map_err(|e| match e {
                E::Len(_) => Undecodable::TruncatedTransport,
                E::Content(_) => Undecodable::BadTransportHeader,
            })?;
            let hlen = u32::from(t.data_offset()) * 4;
            let flags = data[13];
            Ok(L4::Tcp {
                sport: t.source_port(),
                dport: t.destination_port(),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                flags,
                payload: t.payload(),
                payload_len: wire_len.saturating_sub(hlen).max(t.payload().len() as u32),
            })
        }
        IPPROTO_UDP => {
            let u = UdpSlice::from_slice_lax(data).map_err(|_| Undecodable::TruncatedTransport)?;
            Ok(L4::Udp {
                sport: u.source_port(),
                dport: u.destination_port(),
                payload: u.payload(),
                payload_len: wire_len.saturating_sub(8).max(u.payload().len() as u32),
            })
        }
        1 | 58 => match data {
            [t, c, ..] => Ok(L4::Icmp {
                type_code: u16::from(*t) << 8 | u16::from(*c),
            }),
            _ => Err(Undecodable::TruncatedTransport),
        },
        _ => Ok(L4::Other),
    }
}

/// Name of an IP protocol for `network.transport`.
pub fn transport_name(proto: u8) -> std::borrow::Cow<'static, str> {
    std::borrow::Cow::Borrowed(match proto {
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        1 => "icmp",
        58 => "ipv6-icmp",
        2 => "igmp",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        132 => "sctp",
        89 => "ospf",
        other => return std::borrow::Cow::Owned(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 + TCP SYN from 10.0.0.1:40000 to 10.0.0.2:25, no payload.
    pub(crate) const SYN: [u8; 40] = [
        0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, //
        0x9c, 0x40, 0, 25, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];

    #[test]
    fn shard_hash_fast_path_agrees_with_the_link_walk() {
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&SYN);
        // Ethernet takes the fast path, raw IP the general one: the same pair, the same hash.
        let fast = shard_hash(link::dlt::EN10MB, &eth);
        assert_eq!(fast, shard_hash(link::dlt::RAW, &SYN));
        assert_ne!(fast, 0);
        // Both directions meet.
        let mut back = eth.clone();
        back[26..30].copy_from_slice(&SYN[16..20]);
        back[30..34].copy_from_slice(&SYN[12..16]);
        assert_eq!(shard_hash(link::dlt::EN10MB, &back), fast);
        // A VLAN tag goes the long way and still agrees.
        let mut tagged = eth[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x07, 0x08, 0x00]);
        tagged.extend_from_slice(&SYN);
        assert_eq!(shard_hash(link::dlt::EN10MB, &tagged), fast);
    }

    #[test]
    fn ipv4_tcp_syn() {
        let Ok(Decoded::Packet(p)) = decode_ip(&SYN, [0, 0]) else {
            panic!("not decoded")
        };
        assert_eq!(p.ip_len, 40);
        assert_eq!(&p.ip.src[..4], &[10, 0, 0, 1]);
        match p.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
                payload_len,
                ..
            } => {
                assert_eq!((sport, dport, flags, payload_len), (40000, 25, 0x02, 0));
            }
            _ => panic!("not tcp"),
        }
    }

    /// The fast IPv4 path and etherparse's general path agree on what both can take.
    #[test]
    fn fast_path_matches_general_path() {
        let mut with_payload = SYN.to_vec();
        with_payload[3] = 45;
        with_payload.extend_from_slice(b"EHLO ");
        let mut cut = SYN.to_vec();
        cut[3] = 140;
        let mut udp = SYN[..20].to_vec();
        udp[9] = 17;
        udp[3] = 30;
        udp.extend_from_slice(&[0x13, 0xc4, 0x13, 0xc4, 0, 10, 0, 0, b'h', b'i']);
        let mut short_tcp = SYN[..30].to_vec();
        short_tcp[3] = 30;
        for p in [&SYN[..], &with_payload, &cut, &udp, &short_tcp] {
            let fast = fast_ipv4(p, [1, 2]).expect("fast path takes it");
            assert_eq!(
                format!("{fast:?}"),
                format!("{:?}", decode_ip_general(p, [1, 2]))
            );
        }
        let mut options = SYN.to_vec();
        options[0] = 0x46;
        assert!(fast_ipv4(&options, [0, 0]).is_none());
        let mut frag = SYN.to_vec();
        frag[6] = 0x20;
        assert!(fast_ipv4(&frag, [0, 0]).is_none());
    }

    #[test]
    fn truncated_tcp_header_is_counted_not_panicking() {
        let mut short = SYN[..30].to_vec();
        short[3] = 30;
        assert_eq!(
            decode_ip(&short, [0, 0]).err(),
            Some(Undecodable::TruncatedTransport)
        );
    }

    #[test]
    fn snaplen_cut_keeps_wire_length() {
        let mut p = SYN.to_vec();
        p[3] = 140; // 100 payload bytes on the wire, none captured
        let Ok(Decoded::Packet(p)) = decode_ip(&p, [0, 0]) else {
            panic!()
        };
        assert_eq!(p.ip_len, 140);
        assert!(matches!(p.l4, L4::Tcp { payload_len: 100, payload, .. } if payload.is_empty()));
    }

    #[test]
    fn hostile_ihl_and_version() {
        let mut p = SYN.to_vec();
        p[0] = 0x44;
        assert_eq!(decode_ip(&p, [0, 0]).err(), Some(Undecodable::BadIpHeader));
        p[0] = 0x75;
        assert_eq!(decode_ip(&p, [0, 0]).err(), Some(Undecodable::BadIpVersion));
        assert_eq!(decode_ip(&[], [0, 0]).err(), Some(Undecodable::TruncatedIp));
    }

    #[test]
    fn ipv4_fragment_is_reported_as_fragment() {
        let mut p = SYN.to_vec();
        p[6] = 0x20; // more fragments, offset 0
        assert!(matches!(
            decode_ip(&p, [0, 0]),
            Ok(Decoded::Fragment(Fragment {
                offset: 0,
                more: true,
                ..
            }))
        ));
    }

    /// Found by the `frame` fuzz target: a truncated IPv6 extension chain made etherparse's
    /// iterator read out of bounds. It must decode to an error or a fragment, nothing else.
    #[test]
    fn fuzz_regression_truncated_ipv6_extension_chain() {
        let crash: &[u8] = &[
            0x5d, 0x66, 0x00, 0x00, 0x2c, 0x2c, 0x2c, 0x2c, 0x00, 0x00, 0x02, 0x00, 0x06, 0x06,
            0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x24, 0x06, 0x06, 0x06, 0x06, 0x06,
            0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x23, 0x0f, 0x00, 0x00, 0x00,
            0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
            0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0xdf, 0x06, 0x06,
            0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
            0x06, 0x06, 0x06, 0x06, 0x00, 0xfb, 0x7b, 0x78, 0x79, 0xcd, 0x7b, 0x23, 0x0f, 0x00,
            0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0x13, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x78, 0x23, 0x21, 0x7b,
        ];
        // The fuzz input's first byte picked the link type: 0x5d % 10 = 3, raw IP (101).
        let _ = decode(link::dlt::RAW, &crash[1..]);
        for cut in 0..crash.len() {
            let _ = decode_ip(&crash[1..cut.max(1)], [0, 0]);
        }
    }

    #[test]
    fn ipv6_fragment_header_is_found_behind_hop_by_hop() {
        let mut p = vec![0x60, 0, 0, 0, 0, 24, 0, 64];
        p.extend_from_slice(&[0; 32]);
        p.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop, next = fragment
        p.extend_from_slice(&[17, 0, 0x00, 0x11, 0, 0, 0x12, 0x34]); // offset 2 (16 bytes), M
        p.extend_from_slice(&[0; 8]);
        assert_eq!(ipv6_fragment_header(&p), Some((0x1234, 16, true)));
        assert_eq!(ipv6_fragment_header(&p[..50]), None);
    }

    #[test]
    fn six_in_four_is_looked_through() {
        let mut inner = vec![0x60, 0, 0, 0, 0, 10, 17, 64];
        inner.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        inner.extend_from_slice(&[0; 12]);
        inner.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        inner.extend_from_slice(&[0; 11]);
        inner.push(2);
        inner.extend_from_slice(&[0xc0, 0x01, 0x02, 0x02, 0, 10, 0, 0, b'<', b'1']);
        let mut outer = SYN[..20].to_vec();
        outer[9] = 41;
        let total = (20 + inner.len()) as u16;
        outer[2..4].copy_from_slice(&total.to_be_bytes());
        outer.extend_from_slice(&inner);
        let Ok(Decoded::Packet(p)) = decode_ip(&outer, [0, 0]) else {
            panic!()
        };
        assert!(p.ip.v6);
        assert_eq!(p.ip_len, u32::from(total));
        assert!(matches!(p.l4, L4::Udp { dport: 514, .. }));
    }

    #[test]
    fn ipv6_udp_behind_hop_by_hop() {
        let mut p = vec![0x60, 0, 0, 0, 0, 24, 0, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 12]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(1);
        // hop-by-hop: next = UDP, len 0 (8 bytes), PadN
        p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&[0x13, 0xc4, 0x13, 0xc4, 0, 16, 0, 0]);
        p.extend_from_slice(b"INVITE s");
        let Ok(Decoded::Packet(pk)) = decode_ip(&p, [0, 0]) else {
            panic!()
        };
        assert!(pk.ip.v6);
        assert!(
            matches!(pk.l4, L4::Udp { sport: 5060, dport: 5060, payload, payload_len: 8 } if payload == b"INVITE s")
        );
    }
}
