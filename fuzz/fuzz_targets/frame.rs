//! Whole frames through every link type's decoder, and fragments through the reassembler.
#![no_main]
use exwatch::decode::frag::{FragLimits, Reassembler};
use exwatch::decode::{decode, decode_l4, Decoded};
use libfuzzer_sys::fuzz_target;

const LINKTYPES: [i32; 10] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else { return };
    let lt = LINKTYPES[sel as usize % LINKTYPES.len()];
    if let Ok(Decoded::Fragment(f)) = decode(lt, frame) {
        let mut r = Reassembler::new(FragLimits::default());
        if let exwatch::decode::frag::Offer::Complete(d) = r.offer(&f, 0) {
            let _ = decode_l4(d.proto, &d.data, d.data.len() as u32);
        }
    }
});
