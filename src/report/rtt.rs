//! Handshake round-trip times of one service or server, for the summary's quantiles.
//!
//! Most servers of a capture are seen a few times, and a histogram that covers a minute with
//! two significant digits is about 10 KB of counters: a thousand servers made 10 MB of
//! memory per worker, touched for the first time at a flow's end, which cost more than the
//! records (the kernel clears each fresh page). So a distribution keeps its samples while
//! they are few and becomes a histogram only past [`FEW`]. Quantiles are taken from a
//! histogram either way, so the figures are those of a histogram of every sample.

use hdrhistogram::Histogram;

/// Samples kept as they are before they go into a histogram (256 bytes of them).
const FEW: usize = 64;

/// RTTs in microseconds, 2 significant digits, up to a minute (larger ones count as a minute).
pub fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid bounds")
}

/// p50, p90 and p99 of `h`, divided by `scale`.
pub fn quantiles<T: hdrhistogram::Counter>(h: &Histogram<T>, scale: f64) -> (f64, f64, f64) {
    let q = |p: f64| h.value_at_quantile(p) as f64 / scale;
    (q(0.5), q(0.9), q(0.99))
}

fn record_all(h: &mut Histogram<u32>, samples: &[u32]) {
    for &s in samples {
        h.saturating_record(u64::from(s));
    }
}

/// One distribution of RTTs in microseconds.
#[derive(Debug, Clone)]
pub enum Rtts {
    Few(Vec<u32>),
    Many(Box<Histogram<u32>>),
}

impl Default for Rtts {
    fn default() -> Self {
        Rtts::Few(Vec::new())
    }
}

impl Rtts {
    pub fn record(&mut self, us: u32) {
        match self {
            Rtts::Few(v) if v.len() < FEW => v.push(us),
            Rtts::Few(v) => {
                let mut h = histogram();
                record_all(&mut h, v);
                h.saturating_record(u64::from(us));
                *self = Rtts::Many(Box::new(h));
            }
            Rtts::Many(h) => h.saturating_record(u64::from(us)),
        }
    }

    /// Fold in another distribution (a worker's, at the end).
    pub fn add(&mut self, other: Rtts) {
        match other {
            Rtts::Few(v) => {
                for s in v {
                    self.record(s);
                }
            }
            Rtts::Many(h) => match self {
                Rtts::Many(mine) => {
                    let _ = mine.add(&*h);
                }
                Rtts::Few(v) => {
                    let mut h = h;
                    record_all(&mut h, v);
                    *self = Rtts::Many(h);
                }
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        match self {
            Rtts::Few(v) => v.len() as u64,
            Rtts::Many(h) => h.len(),
        }
    }

    /// p50, p90 and p99 divided by `scale`. `scratch` holds the few samples' histogram
    /// (one for a whole summary, not one per server).
    pub fn quantiles(&self, scale: f64, scratch: &mut Histogram<u32>) -> (f64, f64, f64) {
        let h = match self {
            Rtts::Many(h) => &**h,
            Rtts::Few(v) => {
                scratch.reset();
                record_all(scratch, v);
                &*scratch
            }
        };
        quantiles(h, scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quantiles of any mix of few and many, merged in any order, are those of one
    /// histogram of every sample.
    #[test]
    fn quantiles_are_those_of_one_histogram_of_every_sample() {
        let samples: Vec<u32> = (0..500u32)
            .map(|i| i.wrapping_mul(2_654_435_761) % 90_000_000)
            .collect();
        let mut whole = histogram();
        for &s in &samples {
            whole.saturating_record(u64::from(s));
        }
        let want = (
            whole.value_at_quantile(0.5) as f64,
            whole.value_at_quantile(0.9) as f64,
            whole.value_at_quantile(0.99) as f64,
        );
        let mut scratch = histogram();
        for cut in [0, 3, FEW, FEW + 1, 200, 500] {
            let (a, b) = samples.split_at(cut);
            for (first, second) in [(a, b), (b, a)] {
                let mut x = Rtts::default();
                first.iter().for_each(|&s| x.record(s));
                let mut y = Rtts::default();
                second.iter().for_each(|&s| y.record(s));
                x.add(y);
                assert_eq!(x.len(), 500, "cut at {cut}");
                assert_eq!(x.quantiles(1.0, &mut scratch), want, "cut at {cut}");
            }
        }
        let mut few = Rtts::default();
        [1500, 20, 7_000].iter().for_each(|&s| few.record(s));
        assert!(matches!(few, Rtts::Few(_)));
        let (p50, _, p99) = few.quantiles(1000.0, &mut scratch);
        assert!(
            (1.49..1.52).contains(&p50) && (6.9..7.1).contains(&p99),
            "{p50} {p99}"
        );
    }
}
