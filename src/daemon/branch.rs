//! Deploying the branch in GitHub mode: fetch it, deploy its commit through [`Deploys`],
//! and report with the status `capstan/deploy` on the commit and one comment on the pull
//! request merged into it (through the one publisher).

use std::sync::Arc;

use super::context::Shared;
use super::deploys::{DEPLOY_CONTEXT, Prepared, log_progress};
use super::error::DaemonError;
use super::metrics::DeployResult;
use super::publish::{self, Slot};
use crate::core::run::{RunStatus, Trigger};
use crate::deploy::DeployError;
use crate::github::StatusState;

/// The GitHub side of a deploy pass: fetch the branch, deploy its commit, and report with
/// the status `capstan/deploy` on the commit and a comment on the pull request merged
/// into it.
pub(super) async fn deploy(shared: &Arc<Shared>, why: Trigger) -> Result<(), DaemonError> {
    let gh = shared.github();
    shared.fetch(vec![shared.branch_refs()]).await?;
    let tip = shared.branch_tip()?;
    let config = shared.config();
    let status = |state, text: String| {
        let (gh, tip) = (gh.clone(), tip.clone());
        async move { publish::status(&gh, shared, &tip, DEPLOY_CONTEXT, state, &text).await }
    };
    let (target, plan) = match shared.deploys.prepare(&tip, why).await? {
        Prepared::Invalid(_) => {
            shared.metrics.deploy(DeployResult::Invalid);
            tracing::warn!(
                commit = %tip,
                "the branch does not validate; nothing deployed"
            );
            return status(
                StatusState::Failure,
                "this commit does not validate; nothing was deployed".into(),
            )
            .await;
        }
        Prepared::Nothing(plan) => {
            shared.metrics.deploy(DeployResult::Nothing);
            tracing::info!(commit = %tip, "nothing to deploy");
            // A commit already reported (e.g. deployed before a restart) keeps its status.
            if shared.store.status(&tip, DEPLOY_CONTEXT)?.is_some() {
                return Ok(());
            }
            return status(
                StatusState::Success,
                format!(
                    "deployed: {} as desired",
                    crate::core::render::plural(plan.unchanged, "instance")
                ),
            )
            .await;
        }
        Prepared::Ready(target, plan) => (target, plan),
    };
    tracing::info!(commit = %tip, changes = plan.changes.len(), "deploying");
    status(
        StatusState::Pending,
        format!("deploying: {}", crate::core::render::plan::summary(&plan)),
    )
    .await?;
    let report = match shared
        .deploys
        .deploy(&target, &config.deploy, log_progress())
        .await
    {
        Ok(report) => report,
        // The policies stopped it before any step: said on the commit, as a failure.
        Err(DaemonError::Deploy(
            e @ (DeployError::Denied { .. } | DeployError::Undecided { .. }),
        )) => {
            shared.metrics.deploy(DeployResult::Denied);
            tracing::warn!(commit = %tip, error = %e, "the policies stopped the deploy");
            let why = match &e {
                DeployError::Denied { .. } => {
                    "denied by the policies (capstan/policy); nothing was deployed"
                }
                _ => "the policies could not decide; nothing was deployed",
            };
            return status(StatusState::Failure, why.into()).await;
        }
        Err(e) => return Err(e),
    };
    shared.metrics.deploy(report.status());
    tracing::info!(
        commit = %tip,
        run = report.run,
        result = report.status().name(),
        "{}",
        report.summary()
    );
    let (state, text) = match report.status() {
        RunStatus::Succeeded => (
            StatusState::Success,
            format!("deployed: {}", report.summary()),
        ),
        RunStatus::Waiting => (
            StatusState::Pending,
            match report.next_window() {
                Some(at) => format!(
                    "waiting for a deploy window until {at}: {}",
                    report.summary()
                ),
                None => format!("waiting for a deploy window: {}", report.summary()),
            },
        ),
        _ => (
            StatusState::Failure,
            format!("deploy failed: {}", report.summary()),
        ),
    };
    status(state, text).await?;
    for pr in gh.pulls_of_commit(&tip).await? {
        if pr.merge_commit.as_deref() == Some(tip.as_str()) || tip == pr.head_sha {
            // What the pull request's provisioner plans showed, as an apply counts.
            let planned = shared
                .store
                .resources(pr.number)?
                .0
                .iter()
                .filter(|p| p.outcome == "planned")
                .map(|p| (p.instance.clone(), p.counts().applied()))
                .collect();
            let differences = crate::deploy::differences(&report, &planned);
            let body = crate::deploy::markdown(&report, &differences);
            publish::comment(
                &gh,
                shared,
                Slot::Deploy {
                    pr: pr.number,
                    sha: &tip,
                },
                &body,
            )
            .await?;
        }
    }
    Ok(())
}
