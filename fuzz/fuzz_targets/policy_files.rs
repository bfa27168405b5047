//! Policy files and firewall rule sets (CSV and iptables-save) are user input: any text gives
//! a rule set or an error that names the line, never a panic.
#![no_main]
use exwatch::policy::file::Policy;
use exwatch::policy::firewall::{parse_csv, parse_iptables};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match mode % 3 {
        0 => {
            let _ = Policy::parse(Path::new("p.toml"), &text);
        }
        1 => {
            let _ = parse_csv(Path::new("r.csv"), &text);
        }
        _ => {
            let _ = parse_iptables(Path::new("r.txt"), &text, "FORWARD");
        }
    }
});
