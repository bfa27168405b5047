//! The TLS record decryptor on arbitrary client and server streams, for every suite it knows
//! and both versions: never a panic, never more plaintext than its bound.
#![no_main]
use exwatch::classify::keylog::Secrets;
use exwatch::classify::tls_decrypt::{decrypt, Session, MAX_PLAIN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let ciphers = [0x1301u16, 0x1302, 0x1303, 0xc02f, 0xc030, 0xcca8, 0x0000];
    let cipher = ciphers[usize::from(sel) % ciphers.len()];
    let version = if sel & 0x80 != 0 { 0x0304 } else { 0x0303 };
    let cut = rest.len() / 2;
    let (ts, tc) = rest.split_at(cut);
    let len = if cipher == 0x1302 || cipher == 0xc030 { 48 } else { 32 };
    let s = vec![7u8; len];
    let secrets = Secrets {
        master: Some(vec![9u8; 48]),
        client_handshake: Some(s.clone()),
        server_handshake: Some(s.clone()),
        client_traffic: Some(s.clone()),
        server_traffic: Some(s),
    };
    let sess = Session {
        version,
        cipher,
        client_random: &[1u8; 32],
        server_random: &[2u8; 32],
    };
    if let Ok(p) = decrypt(&sess, &secrets, ts, tc) {
        assert!(p.ts.len() <= MAX_PLAIN && p.tc.len() <= MAX_PLAIN);
    }
});
