//! The work queue: one entry per key (a pull request), never worked on twice at once. A
//! push for a queued key does nothing (the worker reads the newest state anyway); a push for
//! a running key cancels the running job and queues the key again, so a newer head
//! supersedes an older plan (kube-runtime's controller does the same). A key whose job
//! failed comes back by itself after the one retry policy's backoff (`retry.rs`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::retry::{self, Backoff, Later};

pub struct Queue<K> {
    inner: Mutex<Inner<K>>,
    wake: Notify,
}

struct Inner<K> {
    queued: VecDeque<K>,
    running: HashMap<K, CancellationToken>,
    /// Running keys pushed again: queued when their job ends.
    again: HashSet<K>,
    /// Keys that failed, due back after their backoff.
    later: Later<K>,
    backoff: Backoff<K>,
    closed: bool,
}

impl<K: Clone + Eq + Hash> Default for Queue<K> {
    fn default() -> Self {
        Queue {
            inner: Mutex::new(Inner {
                queued: VecDeque::new(),
                running: HashMap::new(),
                again: HashSet::new(),
                later: Later::default(),
                backoff: Backoff::default(),
                closed: false,
            }),
            wake: Notify::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> Queue<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        // Nothing here can panic half-way through an update; a poisoned lock is consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for `key` to be worked on (again).
    pub fn push(&self, key: K) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        if let Some(token) = inner.running.get(&key) {
            token.cancel();
            inner.again.insert(key);
        } else if !inner.queued.contains(&key) {
            inner.queued.push_back(key);
            drop(inner);
            self.wake.notify_one();
        }
    }

    /// Forgets `key` if it is waiting; a running job is cancelled and not repeated.
    pub fn remove(&self, key: &K) {
        let mut inner = self.lock();
        inner.queued.retain(|k| k != key);
        inner.again.remove(key);
        if let Some(token) = inner.running.get(key) {
            token.cancel();
        }
    }

    /// The job of `key` failed: it comes back after its backoff (returned).
    pub fn failed(&self, key: K) -> std::time::Duration {
        let mut inner = self.lock();
        let wait = inner.backoff.failed(key.clone());
        inner.later.add(Instant::now() + wait, key);
        drop(inner);
        // A waiting worker looks at the new timer.
        self.wake.notify_waiters();
        wait
    }

    /// The job of `key` succeeded: its next failure waits the shortest backoff again.
    pub fn succeeded(&self, key: &K) {
        self.lock().backoff.succeeded(key);
    }

    /// The next key and a token cancelled when it is superseded; `None` once closed.
    pub async fn next(&self) -> Option<(K, CancellationToken)> {
        loop {
            let notified = self.wake.notified();
            let next_due;
            {
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                for key in inner.later.take_due(Instant::now()) {
                    if !inner.queued.contains(&key) && !inner.running.contains_key(&key) {
                        inner.queued.push_back(key);
                    }
                }
                next_due = inner.later.next_due();
                if let Some(key) = inner.queued.pop_front() {
                    let token = CancellationToken::new();
                    inner.running.insert(key.clone(), token.clone());
                    if !inner.queued.is_empty() {
                        self.wake.notify_one();
                    }
                    return Some((key, token));
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = retry::until(next_due) => {}
            }
        }
    }

    /// Marks the job of `key` finished; queues it again if it was pushed meanwhile.
    pub fn done(&self, key: &K) {
        let mut inner = self.lock();
        inner.running.remove(key);
        if inner.again.remove(key) && !inner.closed {
            inner.queued.push_back(key.clone());
            drop(inner);
            self.wake.notify_one();
        }
    }

    /// Keys waiting (failed ones waiting for their retry included), for the queue-depth
    /// metric.
    pub fn depth(&self) -> usize {
        let inner = self.lock();
        inner.queued.len() + inner.again.len() + inner.later.len()
    }

    pub fn running(&self) -> usize {
        self.lock().running.len()
    }

    /// Stops handing out work; running jobs finish (or are cancelled by the caller).
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_waiters();
    }

    pub fn cancel_running(&self) {
        for token in self.lock().running.values() {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_never_worked_on_twice_at_once_and_a_newer_push_supersedes() {
        let q = Queue::default();
        q.push(1u64);
        q.push(1);
        q.push(2);
        assert_eq!(q.depth(), 2, "a queued key is queued once");
        let (k, token) = q.next().await.unwrap();
        assert_eq!(k, 1);
        q.push(1);
        assert!(token.is_cancelled(), "the running job is superseded");
        let (k2, _) = q.next().await.unwrap();
        assert_eq!(k2, 2, "1 is running, so it is not handed out again");
        q.done(&1);
        let (k3, token3) = q.next().await.unwrap();
        assert_eq!(k3, 1, "1 is queued again when its old job ends");
        assert!(!token3.is_cancelled());
        q.remove(&1);
        assert!(token3.is_cancelled());
        q.done(&1);
        q.done(&2);
        assert_eq!(q.depth(), 0);
        q.close();
        assert!(q.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_key_comes_back_after_its_backoff_without_a_task_of_its_own() {
        let q = Queue::default();
        q.push(5u64);
        let (k, _) = q.next().await.unwrap();
        assert_eq!(q.failed(k), retry::FIRST);
        q.done(&k);
        let started = Instant::now();
        let (again, _) = q.next().await.unwrap();
        assert_eq!(again, 5);
        assert!(started.elapsed() >= retry::FIRST);
        q.succeeded(&again);
        q.done(&again);
        assert_eq!(
            q.failed(again),
            retry::FIRST,
            "a success resets the backoff"
        );
    }
}
