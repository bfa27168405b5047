//! How workers tell each other what they learnt: every worker publishes its facts (SIP/SDP and
//! endpoint-mapper announcements, confirmed server endpoints, start notices) and its capture
//! clock to every other worker's inbox. Nothing else is shared between workers.
//!
//! Publications are small and rare (one per second of capture time per worker, or every
//! `FLUSH_FACTS` facts); an inbox is a mutex-guarded vector that its owner swaps out whole.

use crate::classify::expect::Fact;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// One worker's facts and the clock before which it has published every fact.
pub struct Publication {
    pub from: usize,
    pub clock: u64,
    pub facts: Vec<Fact>,
}

struct Inbox {
    queue: Mutex<Vec<Publication>>,
    arrived: Condvar,
}

/// The inboxes of all workers.
pub struct Exchange {
    inboxes: Vec<Inbox>,
    /// Frames each worker's own reader has read of a capture every worker reads whole
    /// (`u64::MAX` once it has read them all), so that none runs far ahead of the others.
    progress: Vec<AtomicU64>,
}

/// How many frames a worker's own reader may read beyond the slowest one's. A worker ahead in
/// capture time holds its finished flows until the others' clocks catch up (the watermark):
/// without this bound, on a machine whose other core is busy, one worker could hold a whole
/// flood. About the frames the queues of one shared reader held (32 batches of 512 frames per
/// worker).
pub const MAX_AHEAD: u64 = 32_768;

impl Exchange {
    pub fn new(workers: usize) -> Self {
        Exchange {
            inboxes: (0..workers)
                .map(|_| Inbox {
                    queue: Mutex::new(Vec::new()),
                    arrived: Condvar::new(),
                })
                .collect(),
            progress: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Worker `id`'s own reader has read `frames` frames; wait while that is more than
    /// [`MAX_AHEAD`] beyond the slowest reader. The slowest never waits, and a reader that has
    /// read everything says `u64::MAX`, so no reader waits for ever.
    pub fn pace(&self, id: usize, frames: u64) {
        if let Some(p) = self.progress.get(id) {
            p.store(frames, Relaxed);
        }
        if frames == u64::MAX {
            return;
        }
        let slowest = || self.progress.iter().map(|p| p.load(Relaxed)).min();
        while slowest().is_some_and(|s| frames > s.saturating_add(MAX_AHEAD)) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// Hand worker `from`'s facts and clock to every other worker.
    pub fn publish(&self, from: usize, clock: u64, facts: &[Fact]) {
        for (to, inbox) in self.inboxes.iter().enumerate() {
            if to == from {
                continue;
            }
            let p = Publication {
                from,
                clock,
                facts: facts.to_vec(),
            };
            // A poisoned inbox means a worker panicked; the scope's join reports that.
            if let Ok(mut q) = inbox.queue.lock() {
                q.push(p);
                inbox.arrived.notify_one();
            }
        }
    }

    /// Everything published to worker `to` so far (appended to `into`).
    pub fn take(&self, to: usize, into: &mut Vec<Publication>) {
        if let Ok(mut q) = self.inboxes[to].queue.lock() {
            into.append(&mut q);
        }
    }

    /// Like `take`, but wait up to `timeout` for something to arrive.
    pub fn wait(&self, to: usize, into: &mut Vec<Publication>, timeout: Duration) {
        let inbox = &self.inboxes[to];
        let Ok(q) = inbox.queue.lock() else { return };
        let mut q = if q.is_empty() {
            match inbox.arrived.wait_timeout(q, timeout) {
                Ok((q, _)) => q,
                Err(_) => return,
            }
        } else {
            q
        };
        into.append(&mut q);
    }
}

/// Publishes a worker's last clock if it unwinds, so that no other worker waits for it
/// forever at the end of the input (the panic itself surfaces when the scope joins).
pub struct UnwindGuard<'a> {
    pub exchange: &'a Exchange,
    pub id: usize,
}

impl Drop for UnwindGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.exchange.pace(self.id, u64::MAX);
            self.exchange.publish(self.id, u64::MAX, &[]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn a_reader_far_ahead_waits_for_the_slowest() {
        let ex = Arc::new(Exchange::new(2));
        let done = Arc::new(AtomicBool::new(false));
        let (ex2, done2) = (ex.clone(), done.clone());
        let ahead = std::thread::spawn(move || {
            // Worker 0 is MAX_AHEAD + 10,000 frames in; worker 1 has read nothing yet.
            ex2.pace(0, MAX_AHEAD + 10_000);
            done2.store(true, Relaxed);
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!done.load(Relaxed), "ran ahead of the slowest reader");
        // The slowest never waits, and once it is near enough the other goes on.
        ex.pace(1, 10_000);
        ahead.join().unwrap();
        assert!(done.load(Relaxed));
        // A reader that has read everything holds nobody back.
        ex.pace(1, u64::MAX);
        ex.pace(0, 10 * MAX_AHEAD);
    }
}
