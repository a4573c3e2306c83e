//! Durable work, when the state is in PostgreSQL (docs/replicas.md): every event (a
//! webhook, a poll's or a schedule's) and every job is a row of Graphile Worker's queue in
//! the same database before it is acknowledged, and any replica's worker may take it.
//!
//! - An event is queued as it comes (the webhook is answered 202 only once it is); taking
//!   it runs the same dispatch as one machine does, whose jobs are queued in turn.
//! - A job is queued under its key (`plan/7`, `deploy`), replacing one of that key still
//!   waiting: a newer head replaces the queued plan of the older one. Jobs of one pull
//!   request run one at a time (queue `pr-N`), and so do all jobs of the deploy lane (queue
//!   `deploy`: deploys, drift checks, previews, sweeps), across every replica.
//! - A job is leased by the replica that runs it: its worker's heartbeat renews the lease,
//!   and a replica whose heartbeat stops has its jobs taken back and run elsewhere
//!   ([`Lease`]). A deploy-lane job takes the deploy lock for itself (`Deploys::hold`), so a
//!   taken-back deploy goes through crash recovery and a fenced-off replica writes nothing.
//! - Provisioner plans of pull requests stay on the replica that planned the pull request
//!   (their hand-over is in memory); its next event plans them again anywhere.
//!
//! Graphile Worker (`graphile_worker`) does the leasing, heartbeats, recovery, retries and
//! serial queues; capstan only says what a unit of work is. This module puts work in;
//! `workers.rs` takes it out.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::events::Event;
use super::job::Job;
use crate::core::run::Trigger;
use crate::state::{StateError, Store};

/// How long a replica may be silent before its jobs are taken back, and what follows from
/// it: a heartbeat every sixth of it, a sweep for silent replicas every sixth, and the
/// sweep's threshold leaving room for one sweep and the job's start within the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease(pub Duration);

impl Default for Lease {
    fn default() -> Self {
        Lease(Duration::from_secs(30))
    }
}

impl Lease {
    pub fn heartbeat(self) -> Duration {
        self.0 / 6
    }

    pub fn sweep_interval(self) -> Duration {
        self.0 / 6
    }

    pub fn threshold(self) -> Duration {
        self.0 * 2 / 3
    }
}

/// The name every task of capstan's has in the queue.
pub const TASK: &str = "capstan";

/// The queue of durable work, in the state's database.
pub(super) struct Durable {
    store: Arc<Store>,
}

/// One unit of durable work as stored: an event or a job, by name, with its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Task {
    what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pr: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trigger: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    force: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
}

/// What a stored task is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unit {
    Event(Event),
    Job(Job),
}

impl Task {
    fn named(what: &str) -> Task {
        Task {
            what: what.into(),
            pr: None,
            trigger: None,
            force: None,
            by: None,
        }
    }

    fn pr(mut self, n: u64) -> Task {
        self.pr = Some(n);
        self
    }

    fn trigger(mut self, t: Trigger) -> Task {
        self.trigger = Some(t.name().into());
        self
    }

    fn by(mut self, by: &str) -> Task {
        self.by = Some(by.into());
        self
    }

    pub fn of_event(e: &Event) -> Task {
        match e {
            Event::Pull(n) => Task::named("event:pull").pr(*n),
            Event::PullClosed(n) => Task::named("event:pull-closed").pr(*n),
            Event::BranchMoved => Task::named("event:branch-moved"),
            Event::Sync { force } => Task {
                force: Some(*force),
                ..Task::named("event:sync")
            },
            Event::Deploy(t) => Task::named("event:deploy").trigger(*t),
            Event::Drift => Task::named("event:drift"),
            Event::DeepAsked { pr, by } => Task::named("event:deep-asked").pr(*pr).by(by),
            Event::PreviewAsked { pr, by } => Task::named("event:preview-asked").pr(*pr).by(by),
        }
    }

    pub fn of_job(j: &Job) -> Task {
        match j {
            Job::Plan(n) => Task::named("plan").pr(*n),
            Job::Resources(n) => Task::named("resources").pr(*n),
            Job::Deploy(t) => Task::named("deploy").trigger(*t),
            Job::Drift => Task::named("drift"),
            Job::Preview(n) => Task::named("preview").pr(*n),
            Job::Sweep => Task::named("sweep"),
        }
    }

    /// The event or job, or `None` for a task this capstan does not know (a newer one's).
    pub fn unit(&self) -> Option<Unit> {
        let pr = || self.pr;
        let trigger = || self.trigger.as_deref().and_then(Trigger::parse);
        let by = || self.by.clone();
        Some(match self.what.as_str() {
            "event:pull" => Unit::Event(Event::Pull(pr()?)),
            "event:pull-closed" => Unit::Event(Event::PullClosed(pr()?)),
            "event:branch-moved" => Unit::Event(Event::BranchMoved),
            "event:sync" => Unit::Event(Event::Sync {
                force: self.force.unwrap_or(false),
            }),
            "event:deploy" => Unit::Event(Event::Deploy(trigger()?)),
            "event:drift" => Unit::Event(Event::Drift),
            "event:deep-asked" => Unit::Event(Event::DeepAsked {
                pr: pr()?,
                by: by()?,
            }),
            "event:preview-asked" => Unit::Event(Event::PreviewAsked {
                pr: pr()?,
                by: by()?,
            }),
            "plan" => Unit::Job(Job::Plan(pr()?)),
            "resources" => Unit::Job(Job::Resources(pr()?)),
            "deploy" => Unit::Job(Job::Deploy(trigger()?)),
            "drift" => Unit::Job(Job::Drift),
            "preview" => Unit::Job(Job::Preview(pr()?)),
            "sweep" => Unit::Job(Job::Sweep),
            _ => return None,
        })
    }
}

/// The serial queue a job runs in: one per pull request for its plans, one for everything
/// that changes what is deployed.
fn queue_of(job: &Job) -> String {
    match job {
        Job::Plan(n) | Job::Resources(n) => format!("pr-{n}"),
        Job::Deploy(_) | Job::Drift | Job::Preview(_) | Job::Sweep => "deploy".into(),
    }
}

/// How often a failed job is tried, as the one error policy (`jobs::after`) says: plans and
/// previews come back after a backoff, the rest wait for the next trigger.
fn attempts_of(job: &Job) -> i64 {
    match job {
        Job::Plan(_) | Job::Preview(_) => 8,
        _ => 1,
    }
}

impl Durable {
    pub fn new(store: Arc<Store>) -> Durable {
        Durable { store }
    }

    /// Queues `event`; once this returns, it will be acted on whatever happens to us.
    pub fn event(&self, event: &Event) -> Result<(), StateError> {
        let payload = serde_json::to_string(&Task::of_event(event)).expect("plain data");
        self.store.enqueue(TASK, &payload, None, None, 0, 3)
    }

    /// Queues `job` under its key, replacing a waiting one, to start after `delay`.
    pub fn job(&self, job: &Job, delay: Duration) -> Result<(), StateError> {
        let payload = serde_json::to_string(&Task::of_job(job)).expect("plain data");
        self.store.enqueue(
            TASK,
            &payload,
            Some(&queue_of(job)),
            Some(&job.key()),
            i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
            attempts_of(job),
        )
    }

    /// Drops `job` if it is waiting (a closed pull request's plan).
    pub fn remove(&self, job: &Job) -> Result<(), StateError> {
        self.store.unqueue(&job.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_and_job_reads_back_as_itself() {
        let events = [
            Event::Pull(7),
            Event::PullClosed(7),
            Event::BranchMoved,
            Event::Sync { force: true },
            Event::Deploy(Trigger::Schedule),
            Event::Drift,
            Event::DeepAsked {
                pr: 3,
                by: "alice".into(),
            },
            Event::PreviewAsked {
                pr: 4,
                by: "bob".into(),
            },
        ];
        for e in events {
            let text = serde_json::to_string(&Task::of_event(&e)).unwrap();
            let task: Task = serde_json::from_str(&text).unwrap();
            assert_eq!(task.unit(), Some(Unit::Event(e)), "{text}");
        }
        let jobs = [
            Job::Plan(7),
            Job::Resources(7),
            Job::Deploy(Trigger::Push),
            Job::Drift,
            Job::Preview(9),
            Job::Sweep,
        ];
        for j in jobs {
            let text = serde_json::to_string(&Task::of_job(&j)).unwrap();
            let task: Task = serde_json::from_str(&text).unwrap();
            assert_eq!(task.unit(), Some(Unit::Job(j)), "{text}");
        }
        let unknown: Task = serde_json::from_str(r#"{"what":"reticulate"}"#).unwrap();
        assert_eq!(unknown.unit(), None);
    }

    #[test]
    fn a_lease_is_taken_back_within_its_length() {
        let lease = Lease::default();
        assert!(lease.threshold() + lease.sweep_interval() < lease.0);
        assert!(lease.heartbeat() * 3 < lease.threshold());
    }
}
