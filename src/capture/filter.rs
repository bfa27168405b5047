//! `--bpf EXPR` for capture files: libpcap's own compiler and matcher (`pcap_compile` on a
//! dead handle of each link type the files use, `pcap_offline_filter`), so an expression
//! means what it means to `tcpdump -r FILE EXPR`.

use pcap::{BpfProgram, Capture, Linktype};

/// Link type an expression is checked against before any file is read (Ethernet, what
/// captures mostly are): a syntax error is a usage error, not a failure of the first file.
const CHECK_LINKTYPE: i32 = 1;

/// A filter expression compiled for each link type it has met. Not `Send` (libpcap's
/// programs are raw pointers): the reader thread builds its own.
pub struct PacketFilter {
    expr: String,
    programs: Vec<(i32, Result<BpfProgram, String>)>,
}

fn compile(expr: &str, linktype: i32) -> Result<BpfProgram, String> {
    // Files carry LINKTYPE_ values, libpcap's handles DLT_ ones; they differ only below 104,
    // where raw IP (LINKTYPE_RAW 101) is DLT_RAW 12, as libpcap's own file reader maps it.
    let dlt = match linktype {
        100 => 11,
        101 => 12,
        102 => 15,
        103 => 16,
        lt => lt,
    };
    let dead = Capture::dead(Linktype(dlt)).map_err(|e| e.to_string())?;
    dead.compile(expr, true).map_err(|e| e.to_string())
}

impl PacketFilter {
    /// Check `expr` (compiles it for Ethernet) and keep it for the files to come.
    pub fn check(expr: &str) -> Result<(), String> {
        compile(expr, CHECK_LINKTYPE).map(drop)
    }

    pub fn new(expr: &str) -> Self {
        PacketFilter {
            expr: expr.to_string(),
            programs: Vec::new(),
        }
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Whether the frame `data` of link type `linktype` passes; an error when the expression
    /// cannot apply to that link type (`ether host` on raw IP), said once per link type.
    pub fn matches(&mut self, linktype: i32, data: &[u8]) -> Result<bool, &str> {
        let i = match self.programs.iter().position(|(lt, _)| *lt == linktype) {
            Some(i) => i,
            None => {
                self.programs
                    .push((linktype, compile(&self.expr, linktype)));
                self.programs.len() - 1
            }
        };
        match &self.programs[i].1 {
            Ok(p) => Ok(p.filter(data)),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpcap_decides_what_passes() {
        assert!(PacketFilter::check("tcp port 25 and host 10.0.0.1").is_ok());
        let e = PacketFilter::check("tcp prot 25").unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
        let mut f = PacketFilter::new("udp");
        // An Ethernet frame carrying IPv4/UDP, and the same IPv4 packet on raw IP (DLT 101).
        let mut ip = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip.extend_from_slice(&[0, 53, 0, 53, 0, 8, 0, 0]);
        let mut eth = vec![0; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        assert_eq!(f.matches(1, &eth), Ok(true));
        assert_eq!(f.matches(101, &ip), Ok(true));
        ip[9] = 6;
        assert_eq!(f.matches(101, &ip), Ok(false));
        let mut g = PacketFilter::new("ether host 00:11:22:33:44:55");
        assert!(g.matches(101, &ip).is_err());
    }
}
