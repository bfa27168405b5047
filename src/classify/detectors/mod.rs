//! The detector registry: one file per protocol, each listed once here.
//!
//! Order matters only when two detectors would both claim the same bytes: the one the port
//! suggests is asked first, then this list in order.

mod ber;
pub mod dns;
pub mod ftp;
pub mod http;
pub mod imap;
pub mod irc;
pub mod kerberos;
pub mod ldap;
pub mod mgcp;
pub mod nntp;
pub mod ntp;
pub mod pop3;
pub mod quic;
pub mod smtp;
pub mod snmp;
pub mod ssh;
pub mod stun;
pub mod syslog;
pub mod tls;

use super::detector::Detector;

/// Every payload detector, in probing order.
pub static REGISTRY: &[&dyn Detector] = &[
    // Byte-unambiguous binary protocols first.
    &tls::Tls,
    &ssh::Ssh,
    &quic::Quic,
    &stun::Stun,
    // Text protocols with unambiguous first lines (SMTP and FTP refuse each other).
    &smtp::Smtp,
    &ftp::Ftp,
    &http::Http,
    &imap::Imap,
    &pop3::Pop3,
    &nntp::Nntp,
    &irc::Irc,
    // Structured binary, checked down to the first fields.
    &kerberos::Kerberos,
    &ldap::Ldap,
    &snmp::Snmp,
    // Looser text checks.
    &mgcp::Mgcp,
    &syslog::Syslog,
    // Weak binary headers last.
    &dns::Dns,
    &ntp::Ntp,
];
