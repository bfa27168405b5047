//! Named address groups: IPv4 and IPv6 CIDRs. An address belongs to every group whose
//! networks hold it (a server that is both domain controller and DNS server holds both
//! roles); a catch-all network (`0.0.0.0/0`, `::/0`) holds only what no other group holds.
//! Private, shared, link-local and unique-local addresses that no group lists are
//! `unlisted-internal`, never the catch-all `internet`.

use std::net::IpAddr;

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// IPv4 addresses are kept as IPv4-mapped IPv6 so one comparison serves both.
    net: u128,
    /// Prefix length counted on the 128-bit form.
    len: u8,
    v6: bool,
}

fn to_u128(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(a) => (u128::from(a.to_ipv6_mapped()), false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl Cidr {
    /// Parse `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a host).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IPv4 or IPv6 address or CIDR"))?;
        let (bits, v6) = to_u128(ip);
        let max = if v6 { 128 } else { 32 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0-{max}"))?,
        };
        let len = if v6 { len } else { len + 96 };
        Ok(Cidr {
            net: bits & mask(len),
            len,
            v6,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (bits, v6) = to_u128(ip);
        v6 == self.v6 && bits & mask(self.len) == self.net
    }

    /// The smallest list of networks covering exactly the addresses `a` to `b` (inclusive,
    /// both of one family): `10.1.10.21-10.1.10.23` is `10.1.10.21/32, 10.1.10.22/31`.
    pub fn range(a: IpAddr, b: IpAddr) -> Result<Vec<Cidr>, String> {
        let ((lo, v6), (hi, v6b)) = (to_u128(a), to_u128(b));
        if v6 != v6b {
            return Err(format!("`{a}-{b}` mixes IPv4 and IPv6"));
        }
        if lo > hi {
            return Err(format!("`{a}-{b}`: the first address is above the last"));
        }
        let min_len = if v6 { 0 } else { 96 };
        let mut out = Vec::new();
        let mut cur = lo;
        // At most two networks per prefix length: 256 in all.
        loop {
            // The largest block aligned at `cur` that stays within `hi`.
            let mut len: u8 = 128;
            while len > min_len {
                let size_bits = 128 - u32::from(len - 1);
                let block = if size_bits >= 128 {
                    u128::MAX
                } else {
                    (1u128 << size_bits) - 1
                };
                if cur & block != 0 || cur.checked_add(block).is_none_or(|end| end > hi) {
                    break;
                }
                len -= 1;
            }
            out.push(Cidr { net: cur, len, v6 });
            let size = 128 - u32::from(len);
            let last = if size >= 128 {
                u128::MAX
            } else {
                cur | ((1u128 << size) - 1)
            };
            if last >= hi {
                break;
            }
            cur = last + 1;
        }
        Ok(out)
    }

    /// Prefix length as written (0-32 for IPv4).
    pub fn prefix(&self) -> u8 {
        if self.v6 {
            self.len
        } else {
            self.len - 96
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = if self.v6 {
            IpAddr::V6(self.net.into())
        } else {
            IpAddr::V4(
                std::net::Ipv6Addr::from(self.net)
                    .to_ipv4_mapped()
                    .expect("stored mapped"),
            )
        };
        write!(f, "{ip}/{}", self.prefix())
    }
}

/// Named groups of networks.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    names: Vec<String>,
    cidrs: Vec<Vec<Cidr>>,
    /// (network, group index), longest prefix first.
    nets: Vec<(Cidr, usize)>,
}

impl Groups {
    /// Add a group; returns false when the name exists already.
    pub fn add(&mut self, name: &str, cidrs: Vec<Cidr>) -> bool {
        if self.index(name).is_some() {
            return false;
        }
        let i = self.names.len();
        self.names.push(name.to_string());
        self.nets.extend(cidrs.iter().map(|&c| (c, i)));
        self.nets.sort_by_key(|(c, _)| std::cmp::Reverse(c.len));
        self.cidrs.push(cidrs);
        true
    }

    /// Give more networks to an existing group (false when there is no such group).
    pub fn add_networks(&mut self, name: &str, cidrs: Vec<Cidr>) -> bool {
        let Some(i) = self.index(name) else {
            return false;
        };
        self.nets.extend(cidrs.iter().map(|&c| (c, i)));
        self.nets.sort_by_key(|(c, _)| std::cmp::Reverse(c.len));
        self.cidrs[i].extend(cidrs);
        true
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Every group holding `ip`, the most specific first (the first defined wins a tie),
    /// each once. Groups that hold it only through a catch-all network (prefix 0) count
    /// only when no other group holds it and it is not an internal address (those are
    /// [`UNLISTED_INTERNAL`]).
    pub fn lookup(&self, ip: IpAddr) -> Vec<&str> {
        let mut found: Vec<&str> = Vec::new();
        let mut catch_all: Vec<&str> = Vec::new();
        for &(c, i) in &self.nets {
            let name = self.names[i].as_str();
            let list = if c.prefix() == 0 {
                &mut catch_all
            } else {
                &mut found
            };
            if c.contains(ip) && !list.contains(&name) {
                list.push(name);
            }
        }
        if !found.is_empty() {
            found
        } else if internal_ranges().iter().any(|c| c.contains(ip)) {
            vec![UNLISTED_INTERNAL]
        } else {
            catch_all
        }
    }

    /// The most specific group of `ip` (what a learned rule names), or `any`.
    pub fn primary_of(&self, ip: IpAddr) -> &str {
        self.lookup(ip).first().copied().unwrap_or(ANY)
    }

    /// The groups of `ip` as records and findings show them: `dc+dns`, or `any` when no
    /// group holds it.
    pub fn name_of(&self, ip: IpAddr) -> String {
        label(&self.lookup(ip))
    }

    /// Pairs of groups that hold the same addresses: (group, network, other group, its
    /// network), where the first network lies inside the second (or equals it). Catch-all
    /// networks are left out: they never share an address.
    pub fn overlaps(&self) -> Vec<(&str, Cidr, &str, Cidr)> {
        let mut out = Vec::new();
        for (a, ca) in self.nets.iter().filter(|(c, _)| c.prefix() > 0) {
            for (b, cb) in self.nets.iter().filter(|(c, _)| c.prefix() > 0) {
                let inside = a.v6 == b.v6 && a.len >= b.len && a.net & mask(b.len) == b.net;
                // An equal network is reported once, from the later group.
                if ca != cb && inside && (a.len > b.len || ca > cb) {
                    out.push((self.names[*ca].as_str(), *a, self.names[*cb].as_str(), *b));
                }
            }
        }
        out.sort_by_key(|&(a, na, b, nb)| (self.index(a), na, self.index(b), nb));
        out.dedup();
        out
    }

    /// Groups in definition order with their networks.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Cidr])> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.cidrs.iter().map(Vec::as_slice))
    }

    /// The networks of a group; for [`UNLISTED_INTERNAL`], the internal ranges (wider than
    /// the group: they hold listed hosts too).
    pub fn cidrs_of(&self, name: &str) -> Option<&[Cidr]> {
        if name == UNLISTED_INTERNAL {
            return Some(internal_ranges());
        }
        self.index(name).map(|i| self.cidrs[i].as_slice())
    }
}

/// The group of internal addresses that no group lists; rules may name it without defining
/// it, and no group may take its name.
pub const UNLISTED_INTERNAL: &str = "unlisted-internal";

/// What [`UNLISTED_INTERNAL`] stands for: RFC 1918, the RFC 6598 shared address space
/// (100.64.0.0/10, carrier-grade NAT), IPv4 link-local, RFC 4193 unique-local and IPv6
/// link-local addresses.
pub const INTERNAL_RANGES: [&str; 7] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
];

fn internal_ranges() -> &'static [Cidr] {
    static NETS: std::sync::OnceLock<Vec<Cidr>> = std::sync::OnceLock::new();
    NETS.get_or_init(|| {
        INTERNAL_RANGES
            .iter()
            .map(|c| Cidr::parse(c).expect("valid range"))
            .collect()
    })
}

/// The name that matches every address, in rules and for addresses outside every group.
pub const ANY: &str = "any";

/// Groups joined as records show them (`dc+dns`); `any` for none.
pub fn label(groups: &[&str]) -> String {
    if groups.is_empty() {
        ANY.to_string()
    } else {
        groups.join("+")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Groups from `(name, networks)`.
    fn groups(defs: &[(&str, &[&str])]) -> Groups {
        let mut g = Groups::default();
        for (name, nets) in defs {
            g.add(name, nets.iter().map(|c| Cidr::parse(c).unwrap()).collect());
        }
        g
    }

    #[test]
    fn every_group_holding_an_address_counts_but_the_catch_all() {
        let mut g = groups(&[
            ("internet", &["0.0.0.0/0", "::/0"]),
            ("lan", &["10.0.0.0/8", "fd00::/8"]),
            ("mailbox", &["10.1.1.10", "fd00:1:1::10"]),
        ]);
        assert_eq!(g.lookup(ip("10.1.1.10")), ["mailbox", "lan"]);
        assert_eq!(g.lookup(ip("10.1.1.11")), ["lan"]);
        assert_eq!(g.lookup(ip("8.8.8.8")), ["internet"]);
        assert_eq!(g.lookup(ip("fd00:1:1::10")), ["mailbox", "lan"]);
        assert_eq!(g.lookup(ip("fd00:1:1::11")), ["lan"]);
        assert_eq!(g.lookup(ip("2001:db8::1")), ["internet"]);
        // An IPv4 /0 does not hold IPv6 addresses, nor IPv4-mapped ones.
        let mut v4 = Groups::default();
        v4.add("all4", vec![Cidr::parse("0.0.0.0/0").unwrap()]);
        assert!(v4.lookup(ip("::ffff:198.51.100.1")).is_empty());
        assert_eq!(v4.name_of(ip("2001:db8::1")), ANY);
        assert!(!g.add("lan", vec![]));
        // Issue 12: a domain controller that is also the DNS server holds both roles, in
        // definition order; the overlap is reported once.
        g.add("dc", vec![Cidr::parse("10.1.2.10").unwrap()]);
        g.add("dns", vec![Cidr::parse("10.1.2.10/32").unwrap()]);
        assert_eq!(g.lookup(ip("10.1.2.10")), ["dc", "dns", "lan"]);
        assert_eq!(g.name_of(ip("10.1.2.10")), "dc+dns+lan");
        assert_eq!(g.primary_of(ip("10.1.2.10")), "dc");
        let o: Vec<String> = g
            .overlaps()
            .iter()
            .map(|(a, na, b, nb)| format!("{a} {na} {b} {nb}"))
            .collect();
        assert_eq!(
            o,
            [
                "mailbox 10.1.1.10/32 lan 10.0.0.0/8",
                "mailbox fd00:1:1::10/128 lan fd00::/8",
                "dc 10.1.2.10/32 lan 10.0.0.0/8",
                "dns 10.1.2.10/32 lan 10.0.0.0/8",
                "dns 10.1.2.10/32 dc 10.1.2.10/32",
            ]
        );
    }

    /// Issue 12: internal addresses that no group lists are `unlisted-internal`, not the
    /// catch-all; with no catch-all, other addresses stay `any`.
    #[test]
    fn unlisted_internal_addresses_are_not_the_internet() {
        let g = groups(&[
            ("internet", &["0.0.0.0/0", "::/0"]),
            ("mailbox", &["10.1.1.10"]),
        ]);
        assert_eq!(g.lookup(ip("10.1.1.10")), ["mailbox"]);
        for a in [
            "10.1.4.5",
            "172.31.255.1",
            "192.168.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.1.1",
            "fd00:1:10::21",
            "fc00::1",
            "fe80::1",
        ] {
            assert_eq!(g.name_of(ip(a)), UNLISTED_INTERNAL, "{a}");
        }
        for a in [
            "172.32.0.1",
            "100.128.0.1",
            "11.0.0.1",
            "198.51.100.25",
            "2001:db8::1",
            "fec0::1",
        ] {
            assert_eq!(g.name_of(ip(a)), "internet", "{a}");
        }
        let none = groups(&[("mailbox", &["10.1.1.10"])]);
        assert_eq!(none.name_of(ip("10.1.4.5")), UNLISTED_INTERNAL);
        assert_eq!(none.name_of(ip("198.51.100.25")), ANY);
        assert_eq!(none.cidrs_of(UNLISTED_INTERNAL).unwrap().len(), 7);
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            Cidr::parse("10.1.2.3/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(
            Cidr::parse("2001:db8::1/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            Cidr::parse("192.0.2.1").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("mailbox").is_err());
        assert!(Cidr::parse("::/129").is_err());
    }

    #[test]
    fn address_ranges_become_the_fewest_networks() {
        let r = |a: &str, b: &str| {
            Cidr::range(a.parse().unwrap(), b.parse().unwrap())
                .unwrap()
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            r("10.1.10.21", "10.1.10.23"),
            ["10.1.10.21/32", "10.1.10.22/31"]
        );
        assert_eq!(r("10.0.0.0", "10.255.255.255"), ["10.0.0.0/8"]);
        assert_eq!(r("0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), ["::/0"]);
        assert_eq!(r("fd00::1", "fd00::2"), ["fd00::1/128", "fd00::2/128"]);
        assert_eq!(r("10.0.0.5", "10.0.0.5"), ["10.0.0.5/32"]);
        let many = Cidr::range(
            "0.0.0.1".parse().unwrap(),
            "255.255.255.254".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(many.len(), 62);
        assert!(Cidr::range("10.0.0.9".parse().unwrap(), "10.0.0.1".parse().unwrap()).is_err());
        assert!(Cidr::range("10.0.0.1".parse().unwrap(), "::1".parse().unwrap()).is_err());
    }
}
