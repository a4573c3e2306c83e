//! Every piece of daemon work as a value: a [`Job`], with a kind and a key. Jobs are taken
//! from a [`Lane`] by the one worker loop ([`work`]), carried out by [`run`], and ended by
//! the one error policy ([`after`]), as kube-runtime's `reconcile -> Action` does.
//!
//! Two lanes exist, in memory: the pull requests' plans (`queue.rs`: as many workers as
//! configured, a newer head supersedes a running plan) and the deploy lane (`deploys.rs`:
//! one worker, the branch always first). A lane is the interface a queue shared by several
//! machines implements; the work does not change with it.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::context::Shared;
use super::deploys::{Deploys, Work};
use super::error::DaemonError;
use super::metrics::{DeployResult, PreviewOutcome};
use super::queue::Queue;
use super::{branch, drift, previews, pulls};
use crate::core::run::Trigger;
use crate::error::chain;

/// A piece of daemon work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Job {
    /// Plan pull request N's head and post its comment and statuses.
    Plan(u64),
    /// Deploy the branch.
    Deploy(Trigger),
    /// Check everything deployed for drift.
    Drift,
    /// Make pull request N's previews what it asks for.
    Preview(u64),
    /// Check every preview: TTLs, closed pull requests, free slots, shared producers.
    Sweep,
}

impl Job {
    pub fn kind(&self) -> &'static str {
        match self {
            Job::Plan(_) => "plan",
            Job::Deploy(_) => "deploy",
            Job::Drift => "drift",
            Job::Preview(_) => "preview",
            Job::Sweep => "sweep",
        }
    }

    /// What makes two jobs the same work (a pull request's number, or the kind alone).
    pub fn key(&self) -> String {
        match self {
            Job::Plan(n) | Job::Preview(n) => format!("{}/{n}", self.kind()),
            _ => self.kind().to_string(),
        }
    }

    fn span(&self) -> tracing::Span {
        match self {
            Job::Plan(n) => tracing::info_span!("plan", pr = n),
            Job::Deploy(why) => tracing::info_span!("deploy", trigger = why.name()),
            Job::Drift => tracing::info_span!("drift"),
            Job::Preview(n) => tracing::info_span!("preview", pr = n),
            Job::Sweep => tracing::info_span!("sweep"),
        }
    }
}

/// How a job ended, for its lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    Done,
    /// Again after the retry policy's backoff (`retry.rs`).
    Retry,
}

/// The one error policy. A failed plan or preview reconcile comes back after its backoff
/// (both are about one pull request, whose next event may be far off). A failed deploy,
/// drift check or sweep is logged and left to the next trigger (a push, a poll, the
/// schedules), which looks at everything anyway.
pub(super) fn after(job: &Job, result: &Result<(), DaemonError>) -> Action {
    match (job, result) {
        (Job::Plan(_) | Job::Preview(_), Err(_)) => Action::Retry,
        _ => Action::Done,
    }
}

/// Where jobs are taken from.
pub(super) trait Lane: Send + Sync {
    /// The next job and a token cancelled when it is superseded; `None` once closed.
    fn next(&self) -> impl Future<Output = Option<(Job, CancellationToken)>> + Send;
    /// `job` ended with `action`.
    fn end(&self, job: &Job, action: Action);
}

impl Lane for Queue<u64> {
    async fn next(&self) -> Option<(Job, CancellationToken)> {
        let (n, cancel) = Queue::next(self).await?;
        Some((Job::Plan(n), cancel))
    }

    fn end(&self, job: &Job, action: Action) {
        if let Job::Plan(n) = job {
            match action {
                Action::Done => self.succeeded(n),
                Action::Retry => {
                    let wait = self.failed(*n);
                    tracing::info!(pr = n, retry_in = ?wait, "planning again later");
                }
            }
            self.done(n);
        }
    }
}

impl Lane for Deploys {
    async fn next(&self) -> Option<(Job, CancellationToken)> {
        let job = match Deploys::next(self).await? {
            Work::Branch(why) => Job::Deploy(why),
            Work::Drift => Job::Drift,
            Work::Preview(n) => Job::Preview(n),
            Work::Sweep => Job::Sweep,
        };
        // The deploy lane runs one job at a time; nothing supersedes it.
        Some((job, CancellationToken::new()))
    }

    fn end(&self, job: &Job, action: Action) {
        if let Job::Preview(n) = job {
            match action {
                Action::Done => self.preview_succeeded(*n),
                Action::Retry => {
                    let wait = self.preview_failed(*n);
                    tracing::info!(pr = n, retry_in = ?wait, "reconciling previews again later");
                }
            }
        }
    }
}

/// The one worker loop: takes jobs from `lane` until it closes.
pub(super) async fn work<L: Lane>(shared: Arc<Shared>, lane: &L) {
    while let Some((job, cancel)) = lane.next().await {
        let span = job.span();
        let result = run(&shared, &job, &cancel).instrument(span.clone()).await;
        if let Err(e) = &result {
            let _enter = span.enter();
            match job {
                Job::Deploy(_) => shared.metrics.deploy(DeployResult::Error),
                Job::Preview(_) | Job::Sweep => shared.metrics.preview_run(PreviewOutcome::Error),
                Job::Plan(_) | Job::Drift => {}
            }
            tracing::error!(job = %job.key(), error = %chain(e), "failed");
        }
        lane.end(&job, after(&job, &result));
        shared.metrics.queue_depth.set(shared.queue.depth() as i64);
    }
}

/// Carries `job` out.
async fn run(
    shared: &Arc<Shared>,
    job: &Job,
    cancel: &CancellationToken,
) -> Result<(), DaemonError> {
    let config = shared.config();
    match job {
        Job::Plan(n) => pulls::plan(shared, *n, cancel).await,
        Job::Deploy(why) => {
            if !config.deploy.enabled {
                return Ok(());
            }
            let result = branch::deploy(shared, *why).await;
            // Live previews on what the branch deployed follow it; the drift issue shows
            // what the deploy healed.
            shared.deploys.request_sweep();
            if let Err(e) = drift::report(shared).await {
                tracing::error!(error = %chain(&e), "updating the drift issue");
            }
            result
        }
        Job::Drift => drift::pass(shared).await,
        Job::Preview(n) if config.previews.enabled => previews::reconcile(shared, *n).await,
        Job::Sweep if config.previews.enabled => previews::sweep(shared).await,
        Job::Preview(_) | Job::Sweep => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_and_preview_reconciles_are_retried_and_the_rest_waits_for_its_next_trigger() {
        let failed: Result<(), DaemonError> = Err(DaemonError::RemoteWithoutGitHub);
        for job in [Job::Plan(3), Job::Preview(3)] {
            assert_eq!(after(&job, &failed), Action::Retry, "{job:?}");
            assert_eq!(after(&job, &Ok(())), Action::Done, "{job:?}");
        }
        for job in [Job::Deploy(Trigger::Push), Job::Drift, Job::Sweep] {
            assert_eq!(after(&job, &failed), Action::Done, "{job:?}");
        }
    }

    #[test]
    fn a_job_is_keyed_by_its_pull_request_or_its_kind() {
        assert_eq!(Job::Plan(7).key(), "plan/7");
        assert_eq!(Job::Preview(7).key(), "preview/7");
        assert_eq!(Job::Deploy(Trigger::Push).key(), "deploy");
        assert_eq!(
            Job::Deploy(Trigger::Schedule).key(),
            Job::Deploy(Trigger::Push).key()
        );
    }
}
