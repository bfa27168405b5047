//! `--progress`: how far the reader is. Files whose size is known get a percentage and the
//! time left; standard input, FIFOs and live capture a running count. On a terminal it is an
//! indicatif bar; with `--progress always` and standard error not a terminal, a plain line
//! every few seconds (for logs and CI).

use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Off,
    /// A bar redrawn in place (standard error is a terminal).
    Bar,
    /// A line every [`LINE_EVERY`].
    Lines,
}

/// How often a progress line is written when standard error is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// The reader's progress display.
pub struct Meter {
    bar: Option<indicatif::ProgressBar>,
    lines: bool,
    /// Bytes of all inputs, when every one is a regular file.
    total: Option<u64>,
    started: Instant,
    next_line: Instant,
}

impl Meter {
    /// A meter over `inputs` (`-` and other streams have no size).
    pub fn new(mode: Progress, inputs: &[String]) -> Option<Self> {
        if mode == Progress::Off {
            return None;
        }
        let total = inputs.iter().try_fold(0u64, |sum, i| {
            let m = std::fs::metadata(i)
                .ok()
                .filter(|m| i != "-" && m.is_file())?;
            Some(sum + m.len())
        });
        let total = total.filter(|_| !inputs.is_empty());
        let bar = (mode == Progress::Bar).then(|| {
            let (pb, template) = match total {
                Some(t) => (
                    indicatif::ProgressBar::new(t),
                    "{wide_bar} {percent:>3}% {bytes}/{total_bytes} {eta} left {msg}",
                ),
                None => (
                    indicatif::ProgressBar::new_spinner(),
                    "{spinner} {elapsed} {human_pos} packets {msg}",
                ),
            };
            pb.set_style(
                indicatif::ProgressStyle::with_template(template).expect("valid template"),
            );
            pb
        });
        let now = Instant::now();
        Some(Meter {
            bar,
            lines: mode == Progress::Lines,
            total,
            started: now,
            next_line: now,
        })
    }

    /// `bytes` of the inputs read so far (compressed bytes for compressed files), `packets`
    /// framed, in the file `name`.
    pub fn update(&mut self, bytes: u64, packets: u64, name: &str) {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = packets as f64 / elapsed;
        if let Some(pb) = &self.bar {
            pb.set_position(if self.total.is_some() { bytes } else { packets });
            pb.set_message(format!("{:.0} k packets/s {name}", rate / 1e3));
        }
        if self.lines && Instant::now() >= self.next_line {
            self.next_line = Instant::now() + LINE_EVERY;
            crate::say!("{}", line(bytes, self.total, packets, elapsed, name));
        }
    }

    /// The end: the bar is cleared; lines end with the totals.
    pub fn finish(&self, bytes: u64, packets: u64) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
        if self.lines {
            let elapsed = self.started.elapsed().as_secs_f64();
            crate::say!("{}", line(bytes, self.total, packets, elapsed, "done"));
        }
    }
}

/// A progress line: percentage and time left when the size is known.
fn line(bytes: u64, total: Option<u64>, packets: u64, elapsed: f64, name: &str) -> String {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    match total {
        Some(t) if t > 0 => {
            let done = (bytes as f64 / t as f64).min(1.0);
            let left = if done > 0.0 {
                elapsed * (1.0 - done) / done
            } else {
                0.0
            };
            format!(
                "exwatch: progress {:.0}% ({:.1} of {:.1} MiB), about {:.0} s left, {packets} packets, {name}",
                done * 100.0,
                mib(bytes),
                mib(t),
                left
            )
        }
        _ if bytes == 0 => format!("exwatch: progress {packets} packets in {elapsed:.0} s, {name}"),
        _ => format!(
            "exwatch: progress {:.1} MiB read, {packets} packets in {elapsed:.0} s, {name}",
            mib(bytes)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_percent_and_time_left_when_the_size_is_known() {
        let l = line(25 << 20, Some(100 << 20), 1000, 10.0, "a.pcap");
        assert_eq!(
            l,
            "exwatch: progress 25% (25.0 of 100.0 MiB), about 30 s left, 1000 packets, a.pcap"
        );
        let l = line(3 << 20, None, 7, 2.0, "<stdin>");
        assert_eq!(
            l,
            "exwatch: progress 3.0 MiB read, 7 packets in 2 s, <stdin>"
        );
        let l = line(0, None, 9, 4.0, "eth0");
        assert_eq!(l, "exwatch: progress 9 packets in 4 s, eth0");
    }
}
