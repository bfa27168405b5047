//! Community ID v1 flow hashes (https://github.com/corelight/community-id-spec), seed 0.

use base64::Engine;
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// ICMP types and the type that answers them, so both directions hash alike (spec table).
fn icmp_counterpart(v6: bool, t: u8) -> Option<u8> {
    let pairs: &[(u8, u8)] = if v6 {
        &[
            (128, 129),
            (133, 134),
            (135, 136),
            (130, 131),
            (144, 145),
            (146, 147),
        ]
    } else {
        &[(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)]
    };
    pairs.iter().find_map(|&(a, b)| {
        if t == a {
            Some(b)
        } else if t == b {
            Some(a)
        } else {
            None
        }
    })
}

/// The Community ID of a flow from its originator to its responder. `ports` are the transport
/// ports (or ICMP type and code); `None` for protocols without ports.
pub fn community_id(
    seed: u16,
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    ports: Option<(u16, u16)>,
) -> String {
    let mut buf = [0u8; 30];
    community_id_into(seed, proto, src, dst, ports, &mut buf).to_string()
}

/// The same into a stack buffer: `1:` and 28 base64 characters.
pub fn community_id_into(
    seed: u16,
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    ports: Option<(u16, u16)>,
    buf: &mut [u8; 30],
) -> &str {
    let (mut b1, mut b2) = ([0u8; 16], [0u8; 16]);
    let bytes = |a: IpAddr, b: &mut [u8; 16]| -> usize {
        match a {
            IpAddr::V4(v) => {
                b[..4].copy_from_slice(&v.octets());
                4
            }
            IpAddr::V6(v) => {
                b.copy_from_slice(&v.octets());
                16
            }
        }
    };
    let (n1, n2) = (bytes(src, &mut b1), bytes(dst, &mut b2));
    let (mut sa, mut da): (&[u8], &[u8]) = (&b1[..n1], &b2[..n2]);
    let mut ports = ports;
    let is_icmp = proto == 1 || proto == 58;
    let mut one_way = false;
    if is_icmp {
        if let Some((t, code)) = ports {
            match icmp_counterpart(proto == 58, t as u8) {
                Some(c) => ports = Some((t, u16::from(c))),
                None => {
                    ports = Some((t, code));
                    one_way = true;
                }
            }
        }
    }
    let swap = !one_way
        && match ports {
            Some((sp, dp)) => (sa, sp) > (da, dp),
            None => sa > da,
        };
    if swap {
        std::mem::swap(&mut sa, &mut da);
        ports = ports.map(|(s, d)| (d, s));
    }
    // RustCrypto's SHA-1 uses the CPU's SHA extensions where present (one hash per record).
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(sa);
    h.update(da);
    h.update([proto, 0]);
    if let Some((sp, dp)) = ports {
        h.update(sp.to_be_bytes());
        h.update(dp.to_be_bytes());
    }
    buf[..2].copy_from_slice(b"1:");
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(h.finalize(), &mut buf[2..])
        .expect("20 bytes encode to 28 characters");
    std::str::from_utf8(&buf[..2 + n]).expect("base64 is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn spec_vectors() {
        // From the Community ID specification's baseline.
        assert_eq!(
            community_id(
                0,
                6,
                ip("128.232.110.120"),
                ip("66.35.250.204"),
                Some((34855, 80))
            ),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            community_id(
                0,
                6,
                ip("66.35.250.204"),
                ip("128.232.110.120"),
                Some((80, 34855))
            ),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            community_id(1, 17, ip("8.8.8.8"), ip("192.168.1.52"), Some((53, 54585))),
            "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="
        );
        assert_eq!(
            community_id(0, 1, ip("192.168.0.89"), ip("192.168.0.1"), Some((20, 1))),
            "1:tz/fHIDUHs19NkixVVoOZywde+I="
        );
        assert_eq!(
            community_id(
                0,
                58,
                ip("fe80::200:86ff:fe05:80da"),
                ip("fe80::260:97ff:fe07:69ea"),
                Some((135, 0))
            ),
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="
        );
        assert_eq!(
            community_id(0, 17, ip("192.168.1.52"), ip("8.8.8.8"), Some((54585, 53))),
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ="
        );
        assert_eq!(
            community_id(0, 1, ip("192.168.0.89"), ip("192.168.0.1"), Some((8, 0))),
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="
        );
        assert_eq!(
            community_id(0, 1, ip("192.168.0.1"), ip("192.168.0.89"), Some((0, 8))),
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="
        );
    }
}
