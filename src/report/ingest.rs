//! Reading records back: exwatch's own NDJSON flow records as input of `audit --policy`,
//! `validate` and `learn` (a month of records from a fleet of sensors, judged centrally).
//!
//! Only what the judges and the summary need is taken from a record; the rest stays in its
//! JSON value, so that a re-judged record keeps every field it had. Lines are bounded
//! ([`MAX_LINE`]) before they are parsed.

use crate::capture::time::parse_rfc3339;
use serde_json::Value;
use std::io::BufRead;
use std::net::IpAddr;

/// Longest record line read: exwatch's records are a few KiB at most; a longer line is not
/// one of them (and is never buffered whole).
pub const MAX_LINE: usize = 1 << 20;

/// What a final flow record says of its flow.
#[derive(Debug, Clone)]
pub struct FlowRecord {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub proto: u8,
    pub mid_stream: bool,
    pub protocol: String,
    pub service: String,
    pub confidence: String,
    pub evidence: String,
    pub port_mismatch: Option<String>,
    /// Capture times, nanoseconds since the Unix epoch (`event.start`, plus `event.duration`).
    pub first_ts: u64,
    pub last_ts: u64,
    /// Packets and IP-level bytes, originator then responder.
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub icmp_type_code: u16,
    pub rtt_us: u32,
    pub end_reason: String,
    /// `exwatch.conn_state` (Zeek's vocabulary; empty when absent).
    pub conn_state: String,
    /// Payload bytes, originator then responder.
    pub payload_bytes: [u64; 2],
    /// The whole record, for writing it again with new verdicts.
    pub value: Value,
}

/// One line of a records file.
#[derive(Debug)]
pub enum Line {
    Flow(Box<FlowRecord>),
    /// An interim or alert record: its flow's final record counts it.
    Interim,
    /// Nothing but white space.
    Blank,
}

/// Read the next line (without its end) into `buf`; false at the end of the input. A line
/// longer than [`MAX_LINE`] is an error, read no further than the bound.
pub fn next_line<R: BufRead + ?Sized>(r: &mut R, buf: &mut Vec<u8>) -> Result<bool, String> {
    buf.clear();
    let n = std::io::Read::take(&mut *r, MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|e| format!("read error: {e}"))?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_LINE {
        return Err(format!("line longer than {MAX_LINE} bytes"));
    }
    Ok(true)
}

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn text(v: &Value, path: &str) -> Result<String, String> {
    get(v, path)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("no {path}"))
}

fn number(v: &Value, path: &str) -> Result<u64, String> {
    get(v, path)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("no {path}"))
}

fn port(v: &Value, path: &str) -> Result<u16, String> {
    match get(v, path) {
        None => Ok(0),
        Some(p) => p
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("{path} is not a port")),
    }
}

fn address(v: &Value, path: &str) -> Result<IpAddr, String> {
    let t = text(v, path)?;
    t.parse()
        .map_err(|_| format!("{path} {t:?} is not an address"))
}

/// Parse one line of exwatch's NDJSON records.
pub fn parse(line: &[u8]) -> Result<Line, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(Line::Blank);
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    if get(&value, "event.dataset").and_then(Value::as_str) != Some("exwatch.flow") {
        return Err("not an exwatch flow record (event.dataset is not exwatch.flow)".into());
    }
    let interim = get(&value, "exwatch.interim").and_then(Value::as_bool) == Some(true)
        || get(&value, "event.kind").and_then(Value::as_str) == Some("alert");
    if interim {
        return Ok(Line::Interim);
    }
    let start = text(&value, "event.start")?;
    let first_ts = parse_rfc3339(&start).ok_or_else(|| format!("event.start {start:?}"))?;
    let proto = text(&value, "network.iana_number")?;
    let proto: u8 = proto
        .parse()
        .map_err(|_| format!("network.iana_number {proto:?}"))?;
    let icmp_type_code = match (
        get(&value, "exwatch.icmp.type").and_then(Value::as_u64),
        get(&value, "exwatch.icmp.code").and_then(Value::as_u64),
    ) {
        (Some(t), Some(c)) => ((t.min(255) as u16) << 8) | c.min(255) as u16,
        _ => 0,
    };
    let rtt_us = get(&value, "exwatch.rtt_ms")
        .and_then(Value::as_f64)
        .map_or(0, |ms| {
            (ms * 1000.0).round().clamp(0.0, f64::from(u32::MAX)) as u32
        });
    let port_mismatch = get(&value, "exwatch.port_mismatch")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Line::Flow(Box::new(FlowRecord {
        src: address(&value, "source.ip")?,
        sport: port(&value, "source.port")?,
        dst: address(&value, "destination.ip")?,
        dport: port(&value, "destination.port")?,
        proto,
        mid_stream: get(&value, "exwatch.mid_stream").and_then(Value::as_bool) == Some(true),
        protocol: text(&value, "network.protocol")?,
        service: text(&value, "exwatch.service")?,
        confidence: text(&value, "exwatch.confidence")?,
        evidence: text(&value, "exwatch.evidence").unwrap_or_default(),
        port_mismatch,
        first_ts,
        last_ts: first_ts.saturating_add(number(&value, "event.duration")?),
        packets: [
            number(&value, "source.packets")?,
            number(&value, "destination.packets")?,
        ],
        bytes: [
            number(&value, "source.bytes")?,
            number(&value, "destination.bytes")?,
        ],
        icmp_type_code,
        rtt_us,
        end_reason: text(&value, "exwatch.end_reason")?,
        conn_state: text(&value, "exwatch.conn_state").unwrap_or_default(),
        payload_bytes: [
            number(&value, "exwatch.payload_bytes.source").unwrap_or(0),
            number(&value, "exwatch.payload_bytes.destination").unwrap_or(0),
        ],
        value,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::time::{parse_rfc3339, rfc3339_into};

    #[test]
    fn timestamps_read_back_as_written() {
        for ns in [
            0,
            1,
            999_999_999,
            1_700_000_000_123_456_789,
            951_782_400_000_000_000, // 2000-02-29
            4_102_444_799_999_999_999,
        ] {
            let mut b = [0u8; 30];
            assert_eq!(parse_rfc3339(rfc3339_into(ns, &mut b)), Some(ns), "{ns}");
        }
        assert_eq!(
            parse_rfc3339("2024-01-02T03:04:05Z"),
            Some(1_704_164_645_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2024-01-02T03:04:05.5Z"),
            Some(1_704_164_645_500_000_000)
        );
        for bad in [
            "",
            "2024-13-02T03:04:05Z",
            "2024-01-02 03:04:05Z",
            "2024-01-02T03:04:05.Z",
            "2024-01-02T03:04:05+01:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_are_bounded_and_bad_records_say_why() {
        let long = vec![b'x'; MAX_LINE + 10];
        let mut r = std::io::Cursor::new(long);
        let mut buf = Vec::new();
        assert!(next_line(&mut r, &mut buf).unwrap_err().contains("longer"));
        assert!(buf.len() <= MAX_LINE + 1);
        assert!(parse(b"{\"a\":1}").unwrap_err().contains("exwatch.flow"));
        assert!(parse(b"[1]").unwrap_err().contains("object"));
        assert!(parse(b"{\"event\":").unwrap_err().contains("not JSON"));
        assert!(matches!(parse(b"  "), Ok(Line::Blank)));
        let alert = br#"{"event":{"dataset":"exwatch.flow","kind":"alert"}}"#;
        assert!(matches!(parse(alert), Ok(Line::Interim)));
        let no_ip = br#"{"event":{"dataset":"exwatch.flow","kind":"event","start":"2024-01-02T03:04:05Z","duration":0},"network":{"iana_number":"6"}}"#;
        assert_eq!(parse(no_ip).unwrap_err(), "no source.ip");
    }
}
