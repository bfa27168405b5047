//! Capture-file framing (classic pcap and pcapng) on arbitrary bytes: every packet or error
//! comes back without a panic, and no block makes the reader allocate past its bounds.
#![no_main]
use exwatch::capture::OfflineCapture;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Box::new(std::io::Cursor::new(data.to_vec()));
    if let Ok(mut cap) = OfflineCapture::from_reader("fuzz".into(), input) {
        for _ in 0..100_000 {
            match cap.next_packet() {
                Ok(Some(p)) => assert!(p.data.len() <= data.len()),
                Ok(None) | Err(_) => break,
            }
        }
    }
});
