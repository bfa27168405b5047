//! The detector registry: one file per protocol, each listed once here.
//!
//! Order matters only when two detectors would both claim the same bytes: the one the port
//! suggests is asked first, then this list in order.

mod ber;
pub mod dcerpc;
pub mod dns;
pub mod ftp;
pub mod h225ras;
pub mod h323;
pub mod http;
pub mod imap;
pub mod irc;
pub mod kerberos;
pub mod ldap;
pub mod mgcp;
pub mod netbios;
pub mod nntp;
pub mod ntp;
pub mod pop3;
pub mod quic;
pub mod rdp;
pub mod rdpudp;
pub mod rtp;
pub mod sip;
pub mod smb;
pub mod smtp;
pub mod snmp;
pub mod ssh;
pub mod stun;
pub mod syslog;
pub mod t120;
pub mod tls;
/// TPKT / X.224 parsing shared by rdp, x400, h323 and t120 (not a detector).
pub mod tpkt;
pub mod x400;

use super::detector::Detector;

/// Every payload detector, in probing order.
pub static REGISTRY: &[&dyn Detector] = &[
    // Byte-unambiguous binary protocols first.
    &tls::Tls,
    &ssh::Ssh,
    &quic::Quic,
    &stun::Stun,
    // RDP-UDP's SYN / SYN+ACK: fixed 1232-byte layout with zero padding.
    &rdpudp::RdpUdp,
    // Text protocols with unambiguous first lines (SMTP and FTP refuse each other; HTTP
    // refuses SIP/2.0 and SIP refuses HTTP/1.x).
    &smtp::Smtp,
    &ftp::Ftp,
    &http::Http,
    &sip::Sip,
    &imap::Imap,
    &pop3::Pop3,
    &nntp::Nntp,
    &irc::Irc,
    // Structured binary, checked down to the first fields.
    &kerberos::Kerberos,
    &ldap::Ldap,
    &dcerpc::Dcerpc,
    &smb::Smb,
    // NetBIOS name service is DNS-shaped: before dns.
    &netbios::Netbios,
    &snmp::Snmp,
    // The TPKT family, mutually exclusive by construction.
    &rdp::Rdp,
    &x400::X400,
    &h323::H323,
    &h225ras::H225Ras,
    &t120::T120,
    // Looser text checks.
    &mgcp::Mgcp,
    &syslog::Syslog,
    // Weak binary headers.
    &dns::Dns,
    &ntp::Ntp,
    // Multi-packet heuristic, the weakest: last.
    &rtp::Rtp,
];
