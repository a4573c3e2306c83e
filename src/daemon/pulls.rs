//! The pull-request reconciler: observe a pull request (its head and merge base fetched
//! and checked through the plan cache), let each concern decide from those facts (the
//! instance plan in `instance_plan.rs`, ownership in `owners.rs`, provisioner plans in
//! `resource_plans.rs`, previews in `previews.rs`), and make GitHub show exactly that: one
//! comment composed from their sections (`comment.rs`, found again by its hidden marker,
//! never duplicated) and the statuses `capstan/plan` and `capstan/ownership`. Nothing is
//! posted that GitHub already shows, so re-running is harmless.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::comment::{self, Creates};
use super::context::Shared;
use super::error::DaemonError;
use super::job::Job;
use super::metrics::PlanOutcome;
use super::revisions::{self, CachedRevision, Side};
use super::{instance_plan, owners, policies, previews, resource_plans};
use crate::core;
use crate::core::commit::CommitId;
use crate::core::ownership;
use crate::github::StatusState;
use crate::source::SourceError;
use crate::source::mirror::pull_ref;

/// Plans pull request `number` (the plan job): the comment and statuses
/// posted, the plan counted and timed; afterwards the plan cache is trimmed back to its
/// budget.
pub(super) async fn plan(
    shared: &Arc<Shared>,
    number: u64,
    cancel: &CancellationToken,
) -> Result<(), DaemonError> {
    shared.metrics.running.inc();
    let started = Instant::now();
    let result = reconcile(shared, number, cancel).await;
    let seconds = started.elapsed().as_secs_f64();
    shared.metrics.running.dec();
    match &result {
        Ok(outcome) => {
            tracing::info!(outcome = outcome.label(), seconds, "done");
            shared.metrics.plan(*outcome, seconds);
        }
        Err(_) => shared.metrics.plan(PlanOutcome::Error, seconds),
    }
    // After posting: the cache back within its budget and, when nothing else waits,
    // what the plans freed handed back to the system.
    let idle = shared.plans.depth() == 0 && shared.metrics.running.get() == 0;
    let after = shared.clone();
    let trimmed = tokio::task::spawn_blocking(move || {
        let held = after.revisions.trim();
        after.metrics.plan_cache_bytes.set(held as i64);
        if idle {
            revisions::release_free_memory();
        }
    });
    // Waited for: nothing a job starts outlives it.
    let _ = trimmed.await;
    result.map(drop)
}

async fn reconcile(
    shared: &Arc<Shared>,
    number: u64,
    cancel: &CancellationToken,
) -> Result<PlanOutcome, DaemonError> {
    let gh = shared.github();
    let config = shared.config();
    let pr = gh.pull(number).await?;
    // The number the work was asked for is the one everything is filed under.
    if pr.number != number {
        return Err(DaemonError::Renumbered {
            asked: number,
            got: pr.number,
        });
    }
    if !pr.open {
        shared.store.close(number)?;
        return Ok(PlanOutcome::Closed);
    }
    if pr.base_ref != config.repository.branch {
        tracing::info!(base = pr.base_ref, "targets another branch; not planned");
        return Ok(PlanOutcome::OtherBase);
    }
    let started = Instant::now();
    let Some(Facts {
        head,
        tip,
        base,
        head_revision,
        changed_files,
    }) = observe(shared, number, &pr.head_sha, started, cancel).await?
    else {
        return Ok(PlanOutcome::Superseded);
    };
    let checked_base = &base.revision.checked;
    let checked_head = head_revision.as_ref().map(|h| &h.revision.checked);
    // Previews are looked at when the head triggers one, or the pull request has some.
    let previews_wanted = checked_head.as_ref().is_ok_and(|h| {
        !core::preview::triggered(&h.repository, &changed_files, &pr.labels).is_empty()
    }) || previews::concern(&shared.store, number)?;

    // Each concern decides from the facts: the instance plan, its owners, the pull
    // requests changing the same instances, then the provisioner plans.
    let plan = instance_plan::plan_of(checked_base, checked_head);
    let sets = ownership::touched(
        &instance_plan::owners_from(checked_base, checked_head).repository,
        &changed_files,
    );
    let changed = plan
        .as_ref()
        .map(instance_plan::changed_instances)
        .unwrap_or_default();
    let reviews = gh.reviews(number).await?;
    let verdicts = owners::judge(&gh, &pr, sets, &reviews).await?;
    let overlaps = if changed.is_empty() {
        Vec::new()
    } else {
        shared
            .store
            .overlaps(number, &changed)?
            .into_iter()
            .collect()
    };
    let mut computed = instance_plan::decide(
        &pr,
        &head,
        &config.repository.root,
        checked_head,
        plan.as_ref(),
        &verdicts,
        overlaps,
    );
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "computed");
    if cancel.is_cancelled() {
        return Ok(PlanOutcome::Superseded);
    }
    resource_plans::prepare(
        shared,
        &gh,
        &pr,
        &head,
        plan.as_ref(),
        &base,
        head_revision.as_ref().ok(),
    )
    .await?;
    // The deploy branch's policies judge the plan, with the provisioner plans recorded for
    // this head so far.
    let judged = match (plan.as_ref(), checked_head) {
        (Some(plan), Ok(checked)) => {
            let branch = branch_checked(shared, &tip).await?;
            let resources = shared.store.resources(number)?.0;
            let resources = serde_json::Value::Array(
                resources
                    .into_iter()
                    .map(|p| p.json)
                    .filter(|j| !j.is_null())
                    .collect(),
            );
            policies::judge(
                &gh,
                &pr,
                &head,
                (&tip, &branch.revision.checked),
                checked,
                plan,
                &changed_files,
                &reviews,
                resources,
            )
            .await?
        }
        _ => None,
    };
    if let Some(judged) = &judged {
        computed.body.head.push_str(&policies::section(judged));
    }
    // A pull request that changes the policies says whom they would newly deny.
    if let (Some(_), Ok(checked)) = (plan.as_ref(), checked_head)
        && changed_files.iter().any(|f| f.starts_with("policies/"))
    {
        let branch = branch_checked(shared, &tip).await?;
        let found =
            policies::newly_denied(shared, number, &branch.revision.checked, checked).await?;
        computed
            .body
            .head
            .push_str(&policies::newly_denied_section(&found));
    }
    shared.store.set_plan_section(number, &computed.body)?;
    shared.store.set_plan_status(
        number,
        computed.plan_state.as_str(),
        &computed.plan_description,
    )?;

    // One comment composed from every section, then the statuses.
    comment::show(shared, &gh, number, previews::section, Creates::Yes).await?;
    resource_plans::status(shared, &gh, number, &head).await?;
    owners::publish(&gh, shared, &head, &verdicts).await?;
    if let Some(judged) = &judged {
        policies::publish(&gh, shared, &head, judged).await?;
    }

    // Previews follow the head (level-triggered: nothing happens when they are current).
    if previews_wanted {
        shared.push(Job::Preview(number));
    }

    // Tell the other pull requests sharing instances when what this one changes moved.
    let before: BTreeSet<String> = shared.store.changes(number)?.into_iter().collect();
    shared.store.record_plan(number, &head, &tip, &changed)?;
    let after: BTreeSet<String> = changed.iter().cloned().collect();
    if before != after {
        let touched: Vec<String> = before.union(&after).cloned().collect();
        for other in shared.store.overlaps(number, &touched)?.keys() {
            shared.push(Job::Plan(*other));
        }
    }
    Ok(if computed.plan_state == StatusState::Success {
        PlanOutcome::Planned
    } else {
        PlanOutcome::Failed
    })
}

/// What a plan of a pull request is decided from: its head as fetched, the branch's tip,
/// the merge base and the head checked (through the plan cache), and the files changed.
struct Facts {
    head: CommitId,
    tip: CommitId,
    base: CachedRevision,
    head_revision: Result<CachedRevision, SourceError>,
    changed_files: Vec<String>,
}

/// Fetches pull request `number`'s head (GitHub says `api_head`) and the branch, and
/// checks the merge base and the head; `None` when a newer head superseded the job.
async fn observe(
    shared: &Arc<Shared>,
    number: u64,
    api_head: &str,
    started: Instant,
    cancel: &CancellationToken,
) -> Result<Option<Facts>, DaemonError> {
    shared
        .fetch(vec![
            (format!("refs/pull/{number}/head"), pull_ref(number)),
            shared.branch_refs(),
        ])
        .await?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "fetched");
    let head: CommitId =
        if shared.mirror.has_commit(api_head) {
            api_head.into()
        } else {
            // GitHub updates refs/pull/N/head a moment after the API; plan what git has and
            // let the next event or poll catch up.
            let fetched = shared.mirror.resolve(&pull_ref(number))?.ok_or_else(|| {
                DaemonError::NotFetched {
                    reference: format!("refs/pull/{number}/head"),
                }
            })?;
            tracing::warn!(
                api = api_head,
                git = fetched,
                "head not fetched yet; planning the fetched one"
            );
            fetched.into()
        };
    let tip = shared.branch_tip()?;
    let merge_base = shared.mirror.merge_base(&tip, &head)?;
    if cancel.is_cancelled() {
        return Ok(None);
    }

    // The merge base is usually checked already (every pull request on the branch shares
    // it); the head is read and checked next to it.
    let (base, head_revision, changed_files) = {
        let shared = shared.clone();
        let (merge_base, head) = (merge_base.clone(), head.clone());
        tokio::task::spawn_blocking(move || -> Result<_, DaemonError> {
            let cache = &shared.revisions;
            let (base, reuse) = cache.check(&shared.mirror, &merge_base, Side::Base, None)?;
            let head_revision = cache
                .check(&shared.mirror, &head, Side::Head, Some(&base))
                .map(|(head, head_reuse)| {
                    for r in [reuse, head_reuse].iter().flatten() {
                        shared.metrics.plan_cache(r);
                    }
                    tracing::debug!(
                        ms = started.elapsed().as_millis() as u64,
                        base = ?reuse,
                        head = ?head_reuse,
                        "checked (None: kept whole)"
                    );
                    head
                });
            let files = shared.mirror.changed_files(&merge_base, &head)?;
            Ok((base, head_revision, files))
        })
        .await??
    };
    Ok(Some(Facts {
        head,
        tip,
        base,
        head_revision,
        changed_files,
    }))
}

/// The deploy branch's tip, checked through the plan cache (every pull request shares it):
/// whose policies judge pull requests.
async fn branch_checked(
    shared: &Arc<Shared>,
    tip: &CommitId,
) -> Result<CachedRevision, DaemonError> {
    let (shared, tip) = (shared.clone(), tip.clone());
    let (checked, _) = tokio::task::spawn_blocking(move || {
        shared
            .revisions
            .check(&shared.mirror, &tip, Side::Base, None)
    })
    .await??;
    Ok(checked)
}
