//! Signature data: services and port hints, loaded from `signatures/` (embedded by default).
//!
//! The files are data, not code: `services.toml` names every service exwatch can report, and
//! `ports.toml` maps ports and ranges to services with their roles and reference section.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The embedded defaults, compiled from the repository's `signatures/` folder.
const EMBEDDED_SERVICES: &str = include_str!("../../signatures/services.toml");
const EMBEDDED_PORTS: &str = include_str!("../../signatures/ports.toml");

/// A signature file that could not be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {problem}")]
    Invalid {
        file: PathBuf,
        line: usize,
        problem: String,
    },
}

/// One reportable service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    pub protocol: String,
    #[serde(default)]
    pub description: String,
    /// Named for a flow whose payload speaks its protocol only when another flow announced
    /// it (an expectation): UM media is `um-rtp` when UM SIP set it up, any other RTP on the
    /// same ports is plain `rtp`.
    #[serde(default)]
    pub announced_only: bool,
}

/// Which transports a port entry covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
    Both,
}

impl Transport {
    pub fn covers(&self, proto: u8) -> bool {
        match self {
            Transport::Tcp => proto == crate::decode::IPPROTO_TCP,
            Transport::Udp => proto == crate::decode::IPPROTO_UDP,
            Transport::Both => {
                proto == crate::decode::IPPROTO_TCP || proto == crate::decode::IPPROTO_UDP
            }
        }
    }
}

/// One fact of the port reference: a port or range, its service, and who talks to whom.
#[derive(Debug, Clone)]
pub struct PortEntry {
    pub lo: u16,
    pub hi: u16,
    pub transport: Transport,
    /// Index into `Signatures::services`.
    pub service: usize,
    pub tls: bool,
    pub from: String,
    pub to: String,
    pub versions: Vec<String>,
    pub section: String,
    pub note: String,
    pub outside_seeds: bool,
}

impl PortEntry {
    pub fn width(&self) -> u32 {
        u32::from(self.hi) - u32::from(self.lo) + 1
    }
}

/// All signature data exwatch runs with.
#[derive(Debug, Clone)]
pub struct Signatures {
    pub services: Vec<Service>,
    pub ports: Vec<PortEntry>,
    /// Where the data came from, for messages ("embedded" or a folder).
    pub origin: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServicesFile {
    service: Vec<Spanned<Service>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    ports: Spanned<String>,
    transport: Spanned<String>,
    service: Spanned<String>,
    #[serde(default)]
    tls: bool,
    #[serde(default = "any")]
    from: String,
    #[serde(default = "any")]
    to: String,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    section: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    outside_seeds: bool,
}

fn any() -> String {
    "any".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortsFile {
    port: Vec<RawPort>,
}

pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

fn toml_error(file: &Path, text: &str, e: toml::de::Error) -> SignatureError {
    let line = e.span().map_or(0, |s| line_of(text, s.start));
    SignatureError::Invalid {
        file: file.to_path_buf(),
        line,
        problem: e.message().to_string(),
    }
}

/// Parse "25" or "5065-5068".
pub(crate) fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let parse = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("`{p}` is not a port number (1-65535)"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (lo, hi) = (parse(a)?, parse(b)?);
            if lo > hi {
                return Err(format!("range `{s}` runs backwards"));
            }
            Ok((lo, hi))
        }
        None => {
            let p = parse(s)?;
            Ok((p, p))
        }
    }
}

impl Signatures {
    /// The signatures compiled into the binary.
    pub fn embedded() -> Self {
        Self::parse(
            Path::new("signatures/services.toml (embedded)"),
            EMBEDDED_SERVICES,
            Path::new("signatures/ports.toml (embedded)"),
            EMBEDDED_PORTS,
        )
        .expect("embedded signatures are checked by the test suite")
    }

    /// Load `services.toml` and `ports.toml` from a folder (`--signatures DIR`).
    pub fn load_dir(dir: &Path) -> Result<Self, SignatureError> {
        let read = |name: &str| {
            let file = dir.join(name);
            std::fs::read_to_string(&file)
                .map(|t| (file.clone(), t))
                .map_err(|source| SignatureError::Read { file, source })
        };
        let (sf, st) = read("services.toml")?;
        let (pf, pt) = read("ports.toml")?;
        let mut s = Self::parse(&sf, &st, &pf, &pt)?;
        s.origin = dir.display().to_string();
        Ok(s)
    }

    /// Parse and cross-check both files.
    pub fn parse(
        services_file: &Path,
        services_text: &str,
        ports_file: &Path,
        ports_text: &str,
    ) -> Result<Self, SignatureError> {
        let sfile: ServicesFile = toml::from_str(services_text)
            .map_err(|e| toml_error(services_file, services_text, e))?;
        let mut services: Vec<Service> = Vec::with_capacity(sfile.service.len());
        for sp in sfile.service {
            let line = line_of(services_text, sp.span().start);
            let s = sp.into_inner();
            let bad = |problem: String| SignatureError::Invalid {
                file: services_file.to_path_buf(),
                line,
                problem,
            };
            if s.name.is_empty()
                || !s
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(bad(format!(
                    "service name `{}` must be lowercase letters, digits and hyphens",
                    s.name
                )));
            }
            if services.iter().any(|o| o.name == s.name) {
                return Err(bad(format!("service `{}` is defined twice", s.name)));
            }
            services.push(s);
        }
        let pfile: PortsFile =
            toml::from_str(ports_text).map_err(|e| toml_error(ports_file, ports_text, e))?;
        let mut ports = Vec::with_capacity(pfile.port.len());
        for raw in pfile.port {
            let bad = |span: std::ops::Range<usize>, problem: String| SignatureError::Invalid {
                file: ports_file.to_path_buf(),
                line: line_of(ports_text, span.start),
                problem,
            };
            let (lo, hi) =
                parse_range(raw.ports.get_ref()).map_err(|p| bad(raw.ports.span(), p))?;
            let transport = match raw.transport.get_ref().as_str() {
                "tcp" => Transport::Tcp,
                "udp" => Transport::Udp,
                "both" => Transport::Both,
                other => {
                    return Err(bad(
                        raw.transport.span(),
                        format!("transport `{other}` is not tcp, udp or both"),
                    ))
                }
            };
            let service = services
                .iter()
                .position(|s| s.name == *raw.service.get_ref())
                .ok_or_else(|| {
                    bad(
                        raw.service.span(),
                        format!(
                            "service `{}` is not defined in services.toml",
                            raw.service.get_ref()
                        ),
                    )
                })?;
            ports.push(PortEntry {
                lo,
                hi,
                transport,
                service,
                tls: raw.tls,
                from: raw.from,
                to: raw.to,
                versions: raw.versions,
                section: raw.section,
                note: raw.note,
                outside_seeds: raw.outside_seeds,
            });
        }
        Ok(Signatures {
            services,
            ports,
            origin: "embedded".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_signatures_load() {
        let s = Signatures::embedded();
        assert!(s.services.len() > 20);
        assert!(s
            .ports
            .iter()
            .any(|p| p.lo == 50636 && s.services[p.service].name == "edgesync"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let services = "[[service]]\nname = \"smtp\"\nprotocol = \"smtp\"\n";
        let ports = "[[port]]\nports = \"25\"\ntransport = \"tcp\"\nservice = \"smtp\"\n\n[[port]]\nports = \"70000\"\ntransport = \"tcp\"\nservice = \"smtp\"\n";
        let e = Signatures::parse(Path::new("s.toml"), services, Path::new("p.toml"), ports)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "p.toml:7: `70000` is not a port number (1-65535)");
        let ports = "[[port]]\nports = \"25\"\ntransport = \"tcp\"\nservice = \"nope\"\n";
        let e = Signatures::parse(Path::new("s.toml"), services, Path::new("p.toml"), ports)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "p.toml:4: service `nope` is not defined in services.toml"
        );
        let e = Signatures::parse(
            Path::new("s.toml"),
            "[[service]\n",
            Path::new("p.toml"),
            ports,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("s.toml:1: "), "{e}");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("5065-5068"), Ok((5065, 5068)));
        assert!(parse_range("10-5").is_err());
        assert!(parse_range("0").is_err());
    }
}
