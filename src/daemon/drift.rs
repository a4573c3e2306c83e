//! Drift in the daemon (docs/drift.md): the `drift` schedule checks every deployed
//! instance on the deploy worker (so never beside a deploy), heals what `capstan.yaml`'s
//! `drift.remediate` names with a normal deploy of the branch, and keeps one GitHub issue,
//! `capstan: drift detected`, that lists what drifted: edited in place, closed when all is
//! back in sync, reopened when drift returns, never posted twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::context::Shared;
use super::error::DaemonError;
use super::job::Job;
use super::publish;
use crate::core::deployed::Deployed;
use crate::core::drift::{DriftStatus, Heal};
use crate::core::model::InstanceId;
use crate::core::render;
use crate::core::run::Trigger;

/// One drift pass: check, count, report, and ask the branch to heal what it may.
pub(super) async fn pass(shared: &Arc<Shared>) -> Result<(), DaemonError> {
    let config = shared.config();
    let checked = shared.deploys.checker(&config.deploy).check(&[]).await?;
    for c in &checked {
        shared.metrics.drift_check(c.check.status);
    }
    let drifted: Vec<_> = checked
        .iter()
        .filter(|c| c.check.status == DriftStatus::Drifted)
        .collect();
    tracing::info!(
        checked = checked.len(),
        drifted = drifted.len(),
        failed = checked
            .iter()
            .filter(|c| c.check.status == DriftStatus::CheckFailed)
            .count(),
        "drift checked"
    );
    for c in &drifted {
        tracing::warn!(instance = %c.instance, since = c.check.since.to_minute(), summary = c.check.summary, "drifted");
    }
    let heal = heal(shared).await?;
    if drifted.iter().any(|c| heal.heals(&c.attributes)) {
        tracing::info!("drift where drift.remediate heals it: deploying the branch");
        shared.push(Job::Deploy(Trigger::Drift));
    }
    report(shared).await
}

/// What the branch's `capstan.yaml` says to heal.
async fn heal(shared: &Arc<Shared>) -> Result<Heal, DaemonError> {
    let tip = shared.branch_tip()?;
    // Through the plan cache, off the runtime: the branch's tip is usually checked already.
    let head = shared.check_head(&tip).await?;
    Ok(Heal::Environments(
        head.revision.checked.repository.config.remediate.clone(),
    ))
}

/// Shows what is recorded as drifted in the drift issue (and the gauge), on GitHub.
pub(super) async fn report(shared: &Arc<Shared>) -> Result<(), DaemonError> {
    let state = shared.store.deployed()?;
    let drifted: BTreeMap<&InstanceId, &Deployed> = state
        .iter()
        .filter(|(_, d)| d.drifted().is_some())
        .collect();
    shared.metrics.drifted_instances.set(drifted.len() as i64);
    let heal = match heal(shared).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %crate::error::chain(&e), "reading drift.remediate");
            Heal::None
        }
    };
    let checked_at = state
        .values()
        .filter_map(|d| d.drift.as_ref().map(|c| c.checked_at))
        .max();
    let issue = publish::Issue {
        title: render::drift::TITLE,
        marker: render::drift::MARKER,
        body: render::drift::issue(&drifted, &heal, checked_at),
        open: !drifted.is_empty(),
    };
    publish::issue(&shared.github(), shared, issue).await
}
