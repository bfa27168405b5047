//! How workers tell each other what they learnt: every worker publishes its facts (SIP/SDP and
//! endpoint-mapper announcements, confirmed server endpoints, start notices) and its capture
//! clock to every other worker's inbox. Nothing else is shared between workers.
//!
//! Publications are small and rare (one per second of capture time per worker, or every
//! `FLUSH_FACTS` facts); an inbox is a mutex-guarded vector that its owner swaps out whole.

use crate::classify::expect::Fact;
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
}

impl Exchange {
    pub fn new(workers: usize) -> Self {
        Exchange {
            inboxes: (0..workers)
                .map(|_| Inbox {
                    queue: Mutex::new(Vec::new()),
                    arrived: Condvar::new(),
                })
                .collect(),
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
            self.exchange.publish(self.id, u64::MAX, &[]);
        }
    }
}
