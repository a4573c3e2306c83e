//! What the GitHub-mode tasks share: the configuration (swapped on SIGHUP), the GitHub
//! client, the mirror, the state, the deploy passes, the pull-request queue, metrics, and
//! the event channel.

use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc;

use super::config::{Config, Source};
use super::deploys::Deploys;
use super::durable::Durable;
use super::error::DaemonError;
use super::events::Event;
use super::handoff::Handoff;
use super::health::Health;
use super::job::Job;
use super::metrics::Metrics;
use super::queue::Queue;
use super::revisions::{CachedRevision, RevisionCache, Side};
use crate::core::commit::CommitId;
use crate::github::Client;
use crate::source::mirror::{Credentials, Mirror, branch_ref};
use crate::state::{StateError, Store};

pub(super) struct Shared {
    pub config: RwLock<Arc<Config>>,
    pub github: RwLock<Client>,
    pub mirror: Arc<Mirror>,
    pub store: Arc<Store>,
    pub deploys: Arc<Deploys>,
    /// The pull requests' plans (the deploy lane is `deploys.lane()`).
    pub plans: Queue<Job>,
    pub metrics: Arc<Metrics>,
    pub events: mpsc::UnboundedSender<Event>,
    pub health: Arc<Health>,
    /// The deploy branch's commit when open pull requests were last planned.
    pub branch_tip: Mutex<Option<CommitId>>,
    /// Wakes the scheduler and poller after a reload.
    pub reloaded: tokio::sync::Notify,
    /// Checked revisions for the next plans (`plan_cache_mib`, read at start).
    pub revisions: RevisionCache,
    /// The pull requests' provisioner plans (`resource_plans.rs`), superseding like plans.
    pub resources: Queue<Job>,
    /// Provisioner plans running at once, over all pull requests (`provisioner_plans.parallel`,
    /// read at start).
    pub plan_slots: Arc<tokio::sync::Semaphore>,
    /// Provisioner plans handed from the plan job to the `resources` lane, and those kept
    /// for reuse.
    pub handoff: Handoff,
    /// With the state in PostgreSQL, the durable queue every event and job goes through
    /// (`durable.rs`); `None`: this process's in-memory lanes.
    pub durable: Option<Durable>,
}

impl Shared {
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn github(&self) -> Client {
        self.github
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Hands `event` over to be acted on: queued durably (PostgreSQL), or to this process.
    /// An error means it was not taken (the database is unreachable): a webhook is then
    /// answered 503, and GitHub delivers it again.
    pub fn send(&self, event: Event) -> Result<(), StateError> {
        match &self.durable {
            Some(durable) => durable.event(&event),
            None => {
                // The receiver lives as long as the daemon; after shutdown there is nothing
                // to do.
                let _ = self.events.send(event);
                Ok(())
            }
        }
    }

    /// Queues `job` in its lane: durably (PostgreSQL), or in this process's queue.
    /// Provisioner plans stay in this process either way (their hand-over is in memory).
    pub fn push(&self, job: Job) {
        self.push_after(job, std::time::Duration::ZERO);
    }

    /// Queues `job` to start after `delay` (a deploy window opening).
    pub fn push_after(&self, job: Job, delay: std::time::Duration) {
        match (&self.durable, &job) {
            (_, Job::Resources(_)) => self.resources.push(job),
            (Some(durable), _) => {
                if let Err(e) = durable.job(&job, delay) {
                    tracing::error!(job = %job.key(), error = %crate::error::chain(&e), "queueing a job; the next event or schedule asks for it again");
                }
            }
            (None, Job::Plan(_)) => self.plans.push(job),
            (None, _) if delay.is_zero() => self.deploys.lane().push(job),
            (None, _) => self
                .deploys
                .lane()
                .push_at(tokio::time::Instant::now() + delay, job),
        }
    }

    /// Drops `job` if it waits (a closed pull request's plan).
    pub fn unqueue(&self, job: &Job) {
        match &self.durable {
            Some(durable) => {
                if let Err(e) = durable.remove(job) {
                    tracing::warn!(job = %job.key(), error = %crate::error::chain(&e), "dropping a queued job");
                }
            }
            None => self.plans.remove(&job.key()),
        }
    }

    /// Fetches `(remote ref, local ref)` pairs into the mirror.
    pub async fn fetch(self: &Arc<Self>, refs: Vec<(String, String)>) -> Result<(), DaemonError> {
        let config = self.config();
        let mut creds = Credentials::default();
        if let Source::Remote { ssh_key, .. } = &config.repository.source {
            creds.ssh_key = ssh_key.clone();
        }
        creds.token = Some(self.github().git_token().await?);
        let shared = self.clone();
        tokio::task::spawn_blocking(move || shared.mirror.fetch(&refs, &creds)).await??;
        Ok(())
    }

    /// `commit` read and checked as a head through the plan cache, off the runtime: a
    /// revision already checked is not read or checked again.
    pub async fn check_head(self: &Arc<Self>, commit: &str) -> Result<CachedRevision, DaemonError> {
        let (shared, commit) = (self.clone(), commit.to_string());
        let (checked, _) = tokio::task::spawn_blocking(move || {
            shared
                .revisions
                .check(&shared.mirror, &commit, Side::Head, None)
        })
        .await??;
        Ok(checked)
    }

    /// The deploy branch on the remote and where the mirror keeps it.
    pub fn branch_refs(&self) -> (String, String) {
        let branch = self.config().repository.branch.clone();
        (format!("refs/heads/{branch}"), branch_ref(&branch))
    }

    /// The deploy branch's commit in the mirror.
    pub fn branch_tip(&self) -> Result<CommitId, DaemonError> {
        let reference = self.branch_refs().1;
        self.mirror
            .resolve(&reference)?
            .map(CommitId::from)
            .ok_or(DaemonError::NotFetched { reference })
    }
}
