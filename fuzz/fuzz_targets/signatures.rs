//! Signature files are user input too: any text must give a result or an error, never a panic.
#![no_main]
use exwatch::signatures::Signatures;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (services, ports) = text.split_once("\n%%\n").unwrap_or((&text, ""));
    let _ = Signatures::parse(Path::new("s.toml"), services, Path::new("p.toml"), ports);
});
