//! What a SIP or endpoint-mapper flow announces is read from wire bytes: SDP bodies and
//! ept_map towers of any shape must give facts or nothing, never a panic, and a bounded number.
#![no_main]
use exwatch::classify::announce::{announcements, Announcer};
use exwatch::classify::Flow;
use exwatch::decode::IpPair;
use exwatch::flow::key::FlowKey;
use exwatch::flow::FlowPacket;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, payload)) = data.split_first() else { return };
    let mut ip = IpPair { v6: mode & 4 != 0, src: [0; 16], dst: [0; 16] };
    ip.src[..4].copy_from_slice(&[10, 0, 0, 1]);
    ip.dst[..4].copy_from_slice(&[10, 0, 0, 2]);
    let (who, proto, dport) = match mode & 3 {
        0 => (Announcer::Sip { um: false }, 17, 5060),
        1 => (Announcer::Sip { um: true }, 6, 5065),
        _ => (Announcer::Epm, 6, 135),
    };
    let (key, from_lo) = FlowKey::new(&ip, 50000, dport, proto, [0, 0]);
    let p = FlowPacket {
        ts: 1,
        clock: 1,
        hash: key.hash64(),
        key,
        from_lo,
        tcp_flags: 0x02,
        seq: 0,
        ack: 0,
        frames: 1,
        ip_bytes: 40,
        payload_len: 0,
        data_off: 0,
        data_len: 0,
        icmp: 0,
        macs: [[0; 6]; 2],
    };
    let f = Flow::new(&p, |_, port| port == dport);
    let mut out = Vec::new();
    let dir = usize::from(mode >> 7);
    announcements(&f, who, dir, payload, 1, &mut None, &mut out);
    assert!(out.len() <= payload.len() + 4, "facts beyond what the bytes can carry");
});
