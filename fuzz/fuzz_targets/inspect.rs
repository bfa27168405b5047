//! The inspection engine with every registered detector, fed arbitrary segments in both
//! directions (out of order, overlapping, cut short), over TCP and UDP.
#![no_main]
use exwatch::classify::detectors::REGISTRY;
use exwatch::classify::inspect::{Inspector, Outcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let transport = if mode & 1 == 0 { 6 } else { 17 };
    let port = [25u16, 80, 88, 135, 389, 443, 445, 5060, 50636, 40000][(mode >> 1) as usize % 10];
    let mut insp = Inspector::new(REGISTRY, transport, None);
    let mut seq = [0u32; 2];
    while rest.len() >= 3 {
        let (h, tail) = rest.split_at(3);
        let len = (usize::from(h[1]) * 4).min(tail.len());
        let (seg, tail) = tail.split_at(len);
        rest = tail;
        let dir = usize::from(h[0] & 1);
        // Mostly in order, sometimes a jump back or ahead.
        let jump = i32::from(h[2] as i8);
        let s = if h[0] & 2 != 0 { seq[dir].wrapping_add_signed(jump) } else { seq[dir] };
        let wire = if h[0] & 4 != 0 { len as u32 + 100 } else { len as u32 };
        match insp.packet(REGISTRY, transport, dir, s, seg, wire, port, 50000) {
            Outcome::Undecided => {}
            Outcome::Decided(_) | Outcome::GaveUp(_) => return,
        }
        seq[dir] = s.wrapping_add(len as u32);
    }
    let _ = insp.finish(REGISTRY, transport, port, 50000);
});
