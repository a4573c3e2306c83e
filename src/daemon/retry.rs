//! One retry policy for the daemon's work, and the timers that bring work back: a key that
//! failed is tried again after a backoff that doubles with each consecutive failure (30 s,
//! 1 min, 2 min, ... at most 10 min) and is forgotten by a success, as kube-runtime's
//! `Action::requeue` with an error policy does. The queues hold the timers ([`Later`]) and
//! look at them when they hand out work, so no spawned task outlives the daemon.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// The first wait after a failure.
pub const FIRST: Duration = Duration::from_secs(30);
/// The longest wait, however often a key failed.
pub const MOST: Duration = Duration::from_secs(600);

/// Consecutive failures per key.
pub struct Backoff<K> {
    failures: HashMap<K, u32>,
}

impl<K> Default for Backoff<K> {
    fn default() -> Self {
        Backoff {
            failures: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash> Backoff<K> {
    /// `key` failed: how long until it is tried again.
    pub fn failed(&mut self, key: K) -> Duration {
        let n = self.failures.entry(key).or_insert(0);
        let wait = FIRST.saturating_mul(1 << (*n).min(16)).min(MOST);
        *n += 1;
        wait
    }

    /// `key` succeeded: its next failure waits [`FIRST`] again.
    pub fn succeeded(&mut self, key: &K) {
        self.failures.remove(key);
    }
}

/// Items due at instants: what a queue brings back when their time comes.
pub struct Later<T> {
    due: BTreeMap<(Instant, u64), T>,
    seq: u64,
}

impl<T> Default for Later<T> {
    fn default() -> Self {
        Later {
            due: BTreeMap::new(),
            seq: 0,
        }
    }
}

impl<T> Later<T> {
    pub fn add(&mut self, at: Instant, item: T) {
        self.seq += 1;
        self.due.insert((at, self.seq), item);
    }

    /// The items due at `now`, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<T> {
        let later = self.due.split_off(&(now, u64::MAX));
        std::mem::replace(&mut self.due, later)
            .into_values()
            .collect()
    }

    /// When the earliest item is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.keys().next().map(|(at, _)| *at)
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }
}

/// Sleeps until `at` (forever without one): the arm of a `select!` that brings work back.
pub async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_per_failure_up_to_its_most_and_a_success_resets_it() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..7).map(|_| b.failed(7u64).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(b.failed(8).as_secs(), 30, "per key");
        b.succeeded(&7);
        assert_eq!(b.failed(7).as_secs(), 30);
    }

    #[test]
    fn items_come_back_when_due_in_order() {
        let start = Instant::now();
        let mut l = Later::default();
        l.add(start + Duration::from_secs(20), "b");
        l.add(start + Duration::from_secs(10), "a");
        l.add(start + Duration::from_secs(10), "a2");
        assert_eq!(l.next_due(), Some(start + Duration::from_secs(10)));
        assert!(l.take_due(start).is_empty());
        assert_eq!(l.take_due(start + Duration::from_secs(10)), ["a", "a2"]);
        assert_eq!(l.len(), 1);
        assert_eq!(l.take_due(start + Duration::from_secs(60)), ["b"]);
        assert_eq!(l.next_due(), None);
    }
}
