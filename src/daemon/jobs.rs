//! Carrying jobs out: [`Job`]s (`job.rs`) are taken from a [`Lane`] by the one worker loop
//! ([`work`]), carried out by [`run`], and ended by the one error policy ([`after`]), as
//! kube-runtime's `reconcile -> Action` does.
//!
//! Two lanes exist, both the in-memory [`Queue`] (`queue.rs`): the pull requests' plans (as
//! many workers as configured; a newer head supersedes a running plan) and the deploy lane
//! (`Deploys::lane`: one worker, so one deploy at a time, the branch always first). A lane is
//! the interface a queue shared by several machines implements; the work does not change
//! with it.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::context::Shared;
use super::error::DaemonError;
use super::job::Job;
use super::metrics::{DeployResult, PreviewOutcome};
use super::queue::Queue;
use super::{branch, drift, previews, pulls, resource_plans};
use crate::error::chain;

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

impl Lane for Queue<Job> {
    async fn next(&self) -> Option<(Job, CancellationToken)> {
        Queue::next(self).await
    }

    fn end(&self, job: &Job, action: Action) {
        let key = job.key();
        match action {
            Action::Done => self.succeeded(&key),
            Action::Retry => {
                let wait = self.failed(job);
                tracing::info!(job = key, retry_in = ?wait, "again later");
            }
        }
        self.done(&key);
    }
}

/// The one worker loop: takes jobs from `lane` until it closes.
pub(super) async fn work<L: Lane>(shared: Arc<Shared>, lane: &L) {
    while let Some((job, cancel)) = lane.next().await {
        let action = run_one(&shared, &job, &cancel).await;
        lane.end(&job, action);
        shared.metrics.queue_depth.set(shared.plans.depth() as i64);
    }
}

/// Carries one job out, whichever queue it came from, and says what is to happen next.
pub(super) async fn run_one(shared: &Arc<Shared>, job: &Job, cancel: &CancellationToken) -> Action {
    let span = job.span();
    let result = run(shared, job, cancel).instrument(span.clone()).await;
    if let Err(e) = &result {
        let _enter = span.enter();
        match job {
            Job::Deploy(_) => shared.metrics.deploy(DeployResult::Error),
            Job::Preview(_) | Job::Sweep => shared.metrics.preview_run(PreviewOutcome::Error),
            Job::Plan(_) | Job::Resources(_) | Job::Drift => {}
        }
        tracing::error!(job = %job.key(), error = %chain(e), "failed");
    }
    after(job, &result)
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
        Job::Resources(n) => resource_plans::run(shared, *n, cancel).await,
        Job::Deploy(why) => {
            if !config.deploy.enabled {
                return Ok(());
            }
            let result = branch::deploy(shared, *why).await;
            // Live previews on what the branch deployed follow it; the drift issue shows
            // what the deploy healed.
            shared.push(Job::Sweep);
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
    use crate::core::run::Trigger;

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
}
