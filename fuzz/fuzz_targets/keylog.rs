//! The NSS key log parser on arbitrary bytes: never a panic, bad lines counted.
#![no_main]
use exwatch::classify::keylog::KeyLog;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = KeyLog::parse("fuzz", data);
    assert!(k.stats().bad_lines <= k.stats().lines);
});
