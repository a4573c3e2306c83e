//! The in-memory job queue, one per lane: one entry per key, never worked on twice at once.
//!
//! - A push for a queued key keeps the queued job (the worker reads the newest state anyway,
//!   and the first reason since the last run is the one reported).
//! - A push for a running key queues it again for when the running job ends; in a lane that
//!   *supersedes* (the pull requests' plans), it also cancels the running job, so a newer head
//!   supersedes an older plan, as kube-runtime's controller does.
//! - Jobs are handed out by rank, then in the order they were pushed: the deploy lane's
//!   branch deploy goes before its drift checks, preview reconciles and sweeps.
//! - A job that failed comes back by itself after the one retry policy's backoff
//!   (`retry.rs`), and [`Queue::push_at`] brings one back at a given instant, so no spawned
//!   task waits for it.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::retry::{self, Backoff, Later};

/// What the queue needs of a job.
pub trait Keyed: Clone {
    type Key: Clone + Eq + Hash;
    /// Two jobs with one key are the same work.
    fn key(&self) -> Self::Key;
    /// Lower ranks are handed out first.
    fn rank(&self) -> u8 {
        0
    }
}

pub struct Queue<J: Keyed> {
    inner: Mutex<Inner<J>>,
    wake: Notify,
    /// Whether a push for a running key cancels the running job.
    supersede: bool,
}

struct Inner<J: Keyed> {
    queued: VecDeque<J>,
    running: HashMap<J::Key, CancellationToken>,
    /// Running keys pushed again: queued when their job ends.
    again: HashMap<J::Key, J>,
    /// Jobs due back at an instant: failed ones after their backoff, and timers.
    later: Later<J>,
    backoff: Backoff<J::Key>,
    closed: bool,
}

impl<J: Keyed> Inner<J> {
    /// Queues `job` by rank, after the jobs of its rank, unless its key is queued already.
    fn enqueue(&mut self, job: J) -> bool {
        let key = job.key();
        if self.queued.iter().any(|q| q.key() == key) {
            return false;
        }
        let at = self
            .queued
            .iter()
            .position(|q| q.rank() > job.rank())
            .unwrap_or(self.queued.len());
        self.queued.insert(at, job);
        true
    }
}

impl<J: Keyed> Queue<J> {
    /// A queue whose pushes for a running key cancel the running job when `supersede`.
    pub fn new(supersede: bool) -> Self {
        Queue {
            inner: Mutex::new(Inner {
                queued: VecDeque::new(),
                running: HashMap::new(),
                again: HashMap::new(),
                later: Later::default(),
                backoff: Backoff::default(),
                closed: false,
            }),
            wake: Notify::new(),
            supersede,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<J>> {
        // Nothing here can panic half-way through an update; a poisoned lock is consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for `job` to be carried out (again).
    pub fn push(&self, job: J) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        let key = job.key();
        if let Some(token) = inner.running.get(&key) {
            if self.supersede {
                token.cancel();
            }
            inner.again.entry(key).or_insert(job);
        } else if inner.enqueue(job) {
            drop(inner);
            self.wake.notify_one();
        }
    }

    /// Pushes `job` at `at` (a deploy window opening).
    pub fn push_at(&self, at: Instant, job: J) {
        self.lock().later.add(at, job);
        // A waiting worker looks at the new timer.
        self.wake.notify_waiters();
    }

    /// Forgets `key` if it is waiting; a running job is cancelled and not repeated.
    pub fn remove(&self, key: &J::Key) {
        let mut inner = self.lock();
        inner.queued.retain(|q| &q.key() != key);
        inner.again.remove(key);
        if let Some(token) = inner.running.get(key) {
            token.cancel();
        }
    }

    /// `job` failed: it comes back after its backoff (returned).
    pub fn failed(&self, job: &J) -> std::time::Duration {
        let wait = self.lock().backoff.failed(job.key());
        self.push_at(Instant::now() + wait, job.clone());
        wait
    }

    /// The job of `key` succeeded: its next failure waits the shortest backoff again.
    pub fn succeeded(&self, key: &J::Key) {
        self.lock().backoff.succeeded(key);
    }

    /// The next job and a token cancelled when it is superseded; `None` once closed.
    pub async fn next(&self) -> Option<(J, CancellationToken)> {
        loop {
            let notified = self.wake.notified();
            let next_due;
            {
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                for job in inner.later.take_due(Instant::now()) {
                    if inner.running.contains_key(&job.key()) {
                        inner.again.entry(job.key()).or_insert(job);
                    } else {
                        inner.enqueue(job);
                    }
                }
                next_due = inner.later.next_due();
                if let Some(job) = inner.queued.pop_front() {
                    let token = CancellationToken::new();
                    inner.running.insert(job.key(), token.clone());
                    if !inner.queued.is_empty() {
                        self.wake.notify_one();
                    }
                    return Some((job, token));
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = retry::until(next_due) => {}
            }
        }
    }

    /// Marks the job of `key` finished; queues it again if it was pushed meanwhile.
    pub fn done(&self, key: &J::Key) {
        let mut inner = self.lock();
        inner.running.remove(key);
        if let Some(job) = inner.again.remove(key)
            && !inner.closed
            && inner.enqueue(job)
        {
            drop(inner);
            self.wake.notify_one();
        }
    }

    /// Jobs waiting (failed ones waiting for their retry included), for the queue-depth
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

    /// A job of the tests: a key, a rank and a payload that does not make it another job.
    #[derive(Clone, Debug, PartialEq)]
    struct T(u64, u8, &'static str);

    impl Keyed for T {
        type Key = u64;
        fn key(&self) -> u64 {
            self.0
        }
        fn rank(&self) -> u8 {
            self.1
        }
    }

    fn t(key: u64) -> T {
        T(key, 0, "")
    }

    #[tokio::test]
    async fn a_key_is_never_worked_on_twice_at_once_and_a_newer_push_supersedes() {
        let q = Queue::new(true);
        q.push(t(1));
        q.push(t(1));
        q.push(t(2));
        assert_eq!(q.depth(), 2, "a queued key is queued once");
        let (k, token) = q.next().await.unwrap();
        assert_eq!(k, t(1));
        q.push(t(1));
        assert!(token.is_cancelled(), "the running job is superseded");
        let (k2, _) = q.next().await.unwrap();
        assert_eq!(k2, t(2), "1 is running, so it is not handed out again");
        q.done(&1);
        let (k3, token3) = q.next().await.unwrap();
        assert_eq!(k3, t(1), "1 is queued again when its old job ends");
        assert!(!token3.is_cancelled());
        q.remove(&1);
        assert!(token3.is_cancelled());
        q.done(&1);
        q.done(&2);
        assert_eq!(q.depth(), 0);
        q.close();
        assert!(q.next().await.is_none());
    }

    #[tokio::test]
    async fn a_serial_lane_goes_by_rank_keeps_the_first_reason_and_never_cancels() {
        let q = Queue::new(false);
        q.push(T(3, 3, "sweep"));
        q.push(T(2, 2, "preview"));
        q.push(T(1, 0, "push"));
        q.push(T(1, 0, "schedule"));
        q.push(T(4, 2, "another preview"));
        let mut order = Vec::new();
        while q.depth() > 0 {
            let (job, token) = q.next().await.unwrap();
            if job.0 == 1 && order.is_empty() {
                q.push(T(1, 0, "window"));
                assert!(
                    !token.is_cancelled(),
                    "a deploy is never cancelled by a push"
                );
            }
            order.push(job.2);
            q.done(&job.0);
        }
        assert_eq!(
            order,
            ["push", "window", "preview", "another preview", "sweep"],
            "the branch first, its first reason, and again after it ran"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_job_comes_back_after_its_backoff_without_a_task_of_its_own() {
        let q = Queue::new(true);
        q.push(t(5));
        let (job, _) = q.next().await.unwrap();
        assert_eq!(q.failed(&job), retry::FIRST);
        q.done(&5);
        let started = Instant::now();
        let (again, _) = q.next().await.unwrap();
        assert_eq!(again, t(5));
        assert!(started.elapsed() >= retry::FIRST);
        q.succeeded(&5);
        q.done(&5);
        assert_eq!(
            q.failed(&again),
            retry::FIRST,
            "a success resets the backoff"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_brings_a_job_back_at_its_instant() {
        let q = Queue::new(false);
        let at = Instant::now() + std::time::Duration::from_secs(90);
        q.push_at(at, t(9));
        assert_eq!(q.depth(), 1);
        let (job, _) = q.next().await.unwrap();
        assert_eq!(job, t(9));
        assert!(Instant::now() >= at);
    }
}
