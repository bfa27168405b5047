//! The `h225ras` detector alone: arbitrary bytes to server and to client, over TCP and UDP.
#![no_main]
use exwatch::classify::detector::{DatagramHead, Payloads};
use exwatch::classify::detectors::REGISTRY;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(det) = REGISTRY.iter().find(|d| d.name() == "h225ras") else { return };
    let Some((&mode, rest)) = data.split_first() else { return };
    let cut = (usize::from(mode) * 7).min(rest.len());
    let (ts, tc) = rest.split_at(cut);
    let heads: Vec<DatagramHead> = rest
        .chunks(16)
        .take(16)
        .enumerate()
        .map(|(i, c)| DatagramHead::new(i % 2 == 0, c, c.len() as u32 * 9))
        .collect();
    let p = Payloads {
        transport: if mode & 1 == 0 { 6 } else { 17 },
        ts,
        tc,
        datagrams: &heads,
        server_port: u16::from(mode) * 257,
        client_port: 50000,
        last_chance: mode & 2 != 0,
    };
    let _ = det.probe(&p);
});
