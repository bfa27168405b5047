//! Sequences of IP fragments (offsets, flags, ids and payloads chosen by the fuzzer) must stay
//! within the reassembler's memory cap and never panic.
#![no_main]
use exwatch::decode::frag::{FragLimits, Offer, Reassembler};
use exwatch::decode::{Fragment, IpPair};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = FragLimits { max_bytes: 4096, timeout_ns: 1_000 };
    let mut r = Reassembler::new(limits);
    let ip = IpPair { v6: false, src: [1; 16], dst: [2; 16] };
    let mut rest = data;
    let mut ts = 0u64;
    while rest.len() >= 5 {
        let (h, tail) = rest.split_at(5);
        let len = (h[4] as usize).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        ts += u64::from(h[3]) * 100;
        let f = Fragment {
            vlan: [0, 0],
            ip,
            proto: 17,
            id: u32::from(h[0] & 3),
            offset: u32::from(u16::from_be_bytes([h[1], h[2]]) & 0x1fff) * 8,
            more: h[1] & 0x80 != 0,
            data: payload,
            complete: h[3] & 1 == 0,
            ip_len: payload.len() as u32 + 20,
        };
        if let Offer::Complete(d) = r.offer(&f, ts) {
            assert!(d.data.len() <= 65_535);
        }
        assert!(r.bytes_held() <= limits.max_bytes);
    }
});
