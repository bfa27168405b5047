//! TLS record decryption with logged secrets (`--tls-keylog`), for classification only: the
//! application data of each direction's first records is decrypted into a bounded buffer and
//! handed to the HTTP detector; nothing decrypted is recorded. AES-128/256-GCM and
//! ChaCha20-Poly1305 for TLS 1.2 (RFC 5246 key block, RFC 5288 and RFC 7905 nonces) and TLS
//! 1.3 (RFC 8446 section 7 key schedule), with RustCrypto's AEADs, HKDF and HMAC.

use super::keylog::Secrets;
use aes_gcm::aead::{Aead as _, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

/// Application data kept per direction: as much as the inspection of a clear flow sees.
pub const MAX_PLAIN: usize = crate::classify::inspect::STREAM_CAP;
/// The largest TLS record ciphertext (2^14 + 256).
const MAX_RECORD: usize = 16384 + 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cipher {
    Aes128,
    Aes256,
    ChaCha,
}

/// A suite's AEAD and whether its hash is SHA-384.
fn suite(cipher: u16) -> Option<(Cipher, bool)> {
    Some(match cipher {
        0x1301 => (Cipher::Aes128, false),
        0x1302 => (Cipher::Aes256, true),
        0x1303 => (Cipher::ChaCha, false),
        0x009C | 0x009E | 0xC02B | 0xC02F => (Cipher::Aes128, false),
        0x009D | 0x009F | 0xC02C | 0xC030 => (Cipher::Aes256, true),
        0xCCA8..=0xCCAA => (Cipher::ChaCha, false),
        _ => return None,
    })
}

/// One direction's keys.
#[derive(Clone)]
struct Keys {
    aead: Cipher,
    key: Vec<u8>,
    /// 12 bytes (TLS 1.3, ChaCha20), or the 4-byte implicit part of a TLS 1.2 GCM nonce.
    iv: Vec<u8>,
}

impl Keys {
    /// Open one record: `nonce_tail` the explicit nonce (TLS 1.2 GCM) or empty.
    fn open(&self, seq: u64, explicit: &[u8], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; 12];
        if self.iv.len() == 4 {
            nonce[..4].copy_from_slice(&self.iv);
            nonce[4..].copy_from_slice(explicit.get(..8)?);
        } else {
            nonce.copy_from_slice(self.iv.get(..12)?);
            for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
                *n ^= s;
            }
        }
        let p = Payload { msg: ct, aad };
        match self.aead {
            Cipher::Aes128 => Aes128Gcm::new_from_slice(&self.key)
                .ok()?
                .decrypt(&nonce.into(), p)
                .ok(),
            Cipher::Aes256 => Aes256Gcm::new_from_slice(&self.key)
                .ok()?
                .decrypt(&nonce.into(), p)
                .ok(),
            Cipher::ChaCha => ChaCha20Poly1305::new_from_slice(&self.key)
                .ok()?
                .decrypt(&nonce.into(), p)
                .ok(),
        }
    }
}

fn key_len(a: Cipher) -> usize {
    match a {
        Cipher::Aes128 => 16,
        _ => 32,
    }
}

/// HMAC-SHA-256 or HMAC-SHA-384 of the concatenated `parts`.
fn hmac(sha384: bool, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    if sha384 {
        let mut m = <Hmac<Sha384> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
        parts.iter().for_each(|p| m.update(p));
        m.finalize().into_bytes().to_vec()
    } else {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
        parts.iter().for_each(|p| m.update(p));
        m.finalize().into_bytes().to_vec()
    }
}

/// TLS 1.2 PRF (RFC 5246 section 5): P_SHA256, or P_SHA384 for the SHA-384 suites.
fn prf(sha384: bool, secret: &[u8], label: &[u8], seed: &[u8], out: &mut [u8]) {
    let mut a = hmac(sha384, secret, &[label, seed]);
    let mut n = 0;
    while n < out.len() {
        let block = hmac(sha384, secret, &[&a, label, seed]);
        let k = block.len().min(out.len() - n);
        out[n..n + k].copy_from_slice(&block[..k]);
        n += k;
        a = hmac(sha384, secret, &[&a]);
    }
}

/// HKDF-Expand-Label (RFC 8446 section 7.1) with an empty context.
fn expand_label(sha384: bool, secret: &[u8], label: &str, len: usize) -> Option<Vec<u8>> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0);
    let mut out = vec![0u8; len];
    if sha384 {
        hkdf::Hkdf::<Sha384>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?;
    } else {
        hkdf::Hkdf::<Sha256>::from_prk(secret)
            .ok()?
            .expand(&info, &mut out)
            .ok()?;
    }
    Some(out)
}

fn tls13_keys(a: Cipher, sha384: bool, secret: &[u8]) -> Option<Keys> {
    Some(Keys {
        aead: a,
        key: expand_label(sha384, secret, "key", key_len(a))?,
        iv: expand_label(sha384, secret, "iv", 12)?,
    })
}

/// The session a flow's hellos negotiated.
pub struct Session<'a> {
    /// The negotiated version (0x0303 or 0x0304).
    pub version: u16,
    pub cipher: u16,
    pub client_random: &'a [u8],
    pub server_random: &'a [u8],
}

fn need<'a>(x: &'a Option<Vec<u8>>, what: &str) -> Result<&'a [u8], String> {
    x.as_deref()
        .ok_or_else(|| format!("the key log has no {what} for this session"))
}

/// Each direction's keys: for TLS 1.3 the handshake and the application keys, for TLS 1.2 one.
struct DirKeys {
    handshake: Option<Keys>,
    application: Keys,
}

/// What decryption gave.
#[derive(Debug, Default)]
pub struct Plain {
    /// Application data from the originator and from the responder, each at most `MAX_PLAIN`.
    pub ts: Vec<u8>,
    pub tc: Vec<u8>,
    /// A record that the keys did not open (wrong key, damaged capture), with the direction.
    pub error: Option<String>,
}

/// Decrypt the application data at the start of both streams. `Err` when the session cannot
/// be decrypted at all (suite not supported, or the key log lacks its secrets).
pub fn decrypt(s: &Session<'_>, secrets: &Secrets, ts: &[u8], tc: &[u8]) -> Result<Plain, String> {
    let keys = cached_keys(s, secrets)?;
    let (client, server) = &*keys;
    let mut plain = Plain::default();
    let tls13 = s.version >= 0x0304;
    if let Err(e) = direction(tls13, client, ts, &mut plain.ts) {
        plain.error = Some(format!("client records: {e}"));
    }
    if let Err(e) = direction(tls13, server, tc, &mut plain.tc) {
        plain.error.get_or_insert(format!("server records: {e}"));
    }
    Ok(plain)
}

/// Sessions whose keys a worker derived last: a flow is probed on every packet until it is
/// decided, and deriving its keys costs more than decrypting its first records.
const KEY_CACHE: usize = 32;

type SessionKeys = std::rc::Rc<(DirKeys, DirKeys)>;
/// Client random, version and cipher of a session, and its keys.
type CacheEntry = ([u8; 32], u16, u16, SessionKeys);

thread_local! {
    static CACHE: std::cell::RefCell<Vec<CacheEntry>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn cached_keys(s: &Session<'_>, secrets: &Secrets) -> Result<SessionKeys, String> {
    let random: [u8; 32] = s
        .client_random
        .try_into()
        .map_err(|_| "the client random is not 32 bytes".to_string())?;
    let hit = CACHE.with(|c| {
        c.borrow()
            .iter()
            .find(|(r, v, ci, _)| *r == random && *v == s.version && *ci == s.cipher)
            .map(|e| e.3.clone())
    });
    if let Some(k) = hit {
        return Ok(k);
    }
    let k = SessionKeys::new(derive(s, secrets)?);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= KEY_CACHE {
            c.remove(0);
        }
        c.push((random, s.version, s.cipher, k.clone()));
    });
    Ok(k)
}

/// Each direction's keys from the logged secrets.
fn derive(s: &Session<'_>, secrets: &Secrets) -> Result<(DirKeys, DirKeys), String> {
    let (aead, sha384) = suite(s.cipher)
        .ok_or_else(|| format!("cipher suite 0x{:04x} is not decrypted", s.cipher))?;
    let (client, server) = if s.version >= 0x0304 {
        let keys = |x: &[u8]| tls13_keys(aead, sha384, x).ok_or("bad secret length".to_string());
        (
            DirKeys {
                handshake: Some(keys(need(
                    &secrets.client_handshake,
                    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                )?)?),
                application: keys(need(&secrets.client_traffic, "CLIENT_TRAFFIC_SECRET_0")?)?,
            },
            DirKeys {
                handshake: Some(keys(need(
                    &secrets.server_handshake,
                    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                )?)?),
                application: keys(need(&secrets.server_traffic, "SERVER_TRAFFIC_SECRET_0")?)?,
            },
        )
    } else {
        let master = secrets
            .master
            .as_deref()
            .ok_or("the key log has no CLIENT_RANDOM line for this session")?;
        let (kl, il) = (key_len(aead), if aead == Cipher::ChaCha { 12 } else { 4 });
        let mut block = vec![0u8; 2 * (kl + il)];
        let mut seed = Vec::with_capacity(64);
        seed.extend_from_slice(s.server_random);
        seed.extend_from_slice(s.client_random);
        prf(sha384, master, b"key expansion", &seed, &mut block);
        let k = |i: usize, len: usize| block[i..i + len].to_vec();
        (
            DirKeys {
                handshake: None,
                application: Keys {
                    aead,
                    key: k(0, kl),
                    iv: k(2 * kl, il),
                },
            },
            DirKeys {
                handshake: None,
                application: Keys {
                    aead,
                    key: k(kl, kl),
                    iv: k(2 * kl + il, il),
                },
            },
        )
    };
    Ok((client, server))
}

/// Walk one direction's records from the start of its stream, appending decrypted
/// application data to `out` (at most `MAX_PLAIN`). A record cut by the end of the buffer
/// ends the walk quietly; one the keys do not open is an error.
fn direction(tls13: bool, keys: &DirKeys, mut b: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    // TLS 1.2: encrypted from the ChangeCipherSpec on. TLS 1.3: every application_data
    // record, first under the handshake keys, then the application keys.
    let mut encrypted = tls13;
    let mut in_handshake = tls13;
    let (mut seq, mut hs_seq) = (0u64, 0u64);
    while b.len() >= 5 && out.len() < MAX_PLAIN {
        let (ty, ver) = (b[0], u16::from_be_bytes([b[1], b[2]]));
        let len = usize::from(u16::from_be_bytes([b[3], b[4]]));
        if ver >> 8 != 3 || len > MAX_RECORD {
            return Err("not a TLS record".into());
        }
        let Some(body) = b.get(5..5 + len) else {
            return Ok(());
        };
        let header = &b[..5];
        b = &b[5 + len..];
        match ty {
            20 => {
                if !tls13 {
                    encrypted = true;
                }
                continue;
            }
            _ if !encrypted => continue,
            _ => {}
        }
        if tls13 {
            if ty != 23 {
                continue;
            }
            let inner = match (&keys.handshake, in_handshake) {
                (Some(h), true) => match h.open(hs_seq, &[], header, body) {
                    Some(p) => {
                        hs_seq += 1;
                        Some(p)
                    }
                    None => {
                        in_handshake = false;
                        None
                    }
                },
                _ => None,
            };
            let inner = match inner {
                Some(p) => p,
                None => {
                    let p = keys
                        .application
                        .open(seq, &[], header, body)
                        .ok_or_else(|| {
                            format!(
                                "record {} does not open with the logged keys",
                                seq + hs_seq + 1
                            )
                        })?;
                    seq += 1;
                    p
                }
            };
            // TLSInnerPlaintext: content, the real type, zero padding.
            let Some(end) = inner.iter().rposition(|&c| c != 0) else {
                continue;
            };
            match inner[end] {
                23 => append(out, &inner[..end]),
                21 => return Ok(()),
                _ => {}
            }
        } else {
            let (explicit, ct) = if keys.application.iv.len() == 4 {
                (
                    body.get(..8).unwrap_or_default(),
                    body.get(8..).unwrap_or_default(),
                )
            } else {
                (&[][..], body)
            };
            let plain_len = ct
                .len()
                .checked_sub(16)
                .ok_or("record shorter than its tag")?;
            let mut aad = [0u8; 13];
            aad[..8].copy_from_slice(&seq.to_be_bytes());
            aad[8..11].copy_from_slice(&header[..3]);
            aad[11..].copy_from_slice(&(plain_len as u16).to_be_bytes());
            let p = keys
                .application
                .open(seq, explicit, &aad, ct)
                .ok_or_else(|| format!("record {} does not open with the logged keys", seq + 1))?;
            seq += 1;
            match ty {
                23 => append(out, &p),
                21 => return Ok(()),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Whether `ts` (the client's stream) holds a complete encrypted record past the client's
/// Finished: the first that can carry a request. Cheap, so that a flow is not decrypted
/// again on every packet while its handshake is still arriving.
pub fn client_data_arrived(version: u16, mut b: &[u8]) -> bool {
    let (mut seen, mut encrypted) = (0, version >= 0x0304);
    while b.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([b[3], b[4]]));
        if b.len() < 5 + len {
            return false;
        }
        match b[0] {
            20 => encrypted = true,
            23 if encrypted => seen += 1,
            22 if encrypted => seen += 1,
            _ => {}
        }
        if seen >= 2 {
            return true;
        }
        b = &b[5 + len..];
    }
    false
}

fn append(out: &mut Vec<u8>, p: &[u8]) {
    let room = MAX_PLAIN - out.len().min(MAX_PLAIN);
    out.extend_from_slice(&p[..p.len().min(room)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls13_key_schedule_matches_rfc8448() {
        // RFC 8448 section 3: the server's handshake traffic secret and its key and IV.
        let hex = |s: &str| -> Vec<u8> {
            let s: String = s.split_whitespace().collect();
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let secret = hex("b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38");
        let k = tls13_keys(Cipher::Aes128, false, &secret).unwrap();
        assert_eq!(
            k.key,
            hex("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc")
        );
        assert_eq!(k.iv, hex("5d 31 3e b2 67 12 76 ee 13 00 0b 30"));
    }

    #[test]
    fn garbage_never_panics() {
        let keys = DirKeys {
            handshake: None,
            application: Keys {
                aead: Cipher::Aes128,
                key: vec![0; 16],
                iv: vec![0; 4],
            },
        };
        let mut out = Vec::new();
        for b in [
            &b"\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00\x05abcde"[..],
            b"\x17\x03\x03\xff\xff",
            b"\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00\x20aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            let _ = direction(false, &keys, b, &mut out);
        }
        assert!(out.is_empty());
    }
}
