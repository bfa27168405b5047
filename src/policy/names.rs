//! Port names in rule files (`https`, `ldap`, `msrpc`): `signatures/port-names.toml`, then
//! the system's `/etc/services`.

use super::file::Transport;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Ports of a name: (transport, port), in file order.
type Named = BTreeMap<String, Vec<(Transport, u16)>>;

fn parse_item(s: &str) -> Option<(Transport, u16)> {
    let (port, proto) = s.split_once('/')?;
    let t = match proto {
        "tcp" => Transport::Tcp,
        "udp" => Transport::Udp,
        _ => return None,
    };
    Some((t, port.parse().ok()?))
}

fn table() -> &'static Named {
    static T: OnceLock<Named> = OnceLock::new();
    T.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct File {
            names: BTreeMap<String, Vec<String>>,
        }
        let f: File = toml::from_str(include_str!("../../signatures/port-names.toml"))
            .expect("signatures/port-names.toml is valid (tested)");
        let mut t: Named = f
            .names
            .into_iter()
            .map(|(n, v)| (n, v.iter().filter_map(|i| parse_item(i)).collect()))
            .collect();
        // /etc/services: `name port/proto aliases... # comment`; names already known win.
        let own: std::collections::BTreeSet<String> = t.keys().cloned().collect();
        if let Ok(text) = std::fs::read_to_string("/etc/services") {
            for line in text.lines().take(100_000) {
                let line = line.split('#').next().unwrap_or_default();
                let mut w = line.split_whitespace();
                let (Some(name), Some(item)) = (w.next(), w.next()) else {
                    continue;
                };
                let Some(p) = parse_item(item) else { continue };
                for n in std::iter::once(name).chain(w) {
                    let n = n.to_ascii_lowercase();
                    if own.contains(&n) {
                        continue;
                    }
                    let e = t.entry(n).or_default();
                    if !e.contains(&p) {
                        e.push(p);
                    }
                }
            }
        }
        t
    })
}

/// The ports a name stands for, or `None` for a name nobody defines.
pub fn ports_of(name: &str) -> Option<&'static [(Transport, u16)]> {
    table()
        .get(&name.to_ascii_lowercase())
        .map(Vec::as_slice)
        .filter(|v| !v.is_empty())
}

/// Every known name, for suggestions.
pub fn known() -> Vec<&'static str> {
    table().keys().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_signature_file_resolve() {
        assert_eq!(ports_of("HTTPS"), Some(&[(Transport::Tcp, 443)][..]));
        assert_eq!(
            ports_of("ldap"),
            Some(&[(Transport::Tcp, 389), (Transport::Udp, 389)][..])
        );
        assert_eq!(ports_of("msrpc"), Some(&[(Transport::Tcp, 135)][..]));
        assert!(ports_of("no-such-service-name").is_none());
        // Every item of the file parses.
        let f: toml::Value =
            toml::from_str(include_str!("../../signatures/port-names.toml")).unwrap();
        for (n, v) in f["names"].as_table().unwrap() {
            for i in v.as_array().unwrap() {
                assert!(parse_item(i.as_str().unwrap()).is_some(), "{n}: {i}");
            }
        }
    }
}
