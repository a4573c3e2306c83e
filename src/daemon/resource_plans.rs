//! A pull request's provisioner plans (docs/provisioner-plans.md): what the cloud would do.
//!
//! The plan job decides ([`prepare`]): which instances get a provisioner plan
//! (`core::deep::requests`), whether a bundle the pull request changes may run (the
//! preview rule, or a `capstan plan --deep` comment for that head), and which plans are
//! reused because bundle, inputs and deployed state are what they were. It records one row
//! per instance for the head, so the comment says at once what is being planned, and hands
//! the rest to the `resources` lane. There [`run`] runs them, at most
//! `provisioner_plans.parallel` at once over all pull requests, recording each piece as it
//! finishes and showing the comment and `capstan/plan` again. A newer head's job cancels
//! the older one's, which kills its commands. Deploys never wait for any of it: they have
//! their own lane.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::comment::{self, Creates};
use super::context::Shared;
use super::error::DaemonError;
use super::handoff::Pending;
use super::job::Job;
use super::previews;
use super::publish;
use super::revisions::CachedRevision;
use crate::core::commit::CommitId;
use crate::core::deep::{self, Finished, Outcome, Trust};
use crate::core::plan::Plan;
use crate::core::render::resources::{self, Piece};
use crate::deploy::deep::Planner;
use crate::github::{Client, PullRequest, StatusState};
use crate::state::ResourceRow;

pub const PLAN_CONTEXT: &str = "capstan/plan";

fn planner(shared: &Shared, pr: u64) -> Planner {
    let config = shared.config();
    let pp = &config.provisioner_plans;
    Planner {
        state_dir: config.state_dir.clone(),
        tf_pg: config.state.terraform_pg().cloned(),
        timeouts: crate::deploy::Timeouts {
            step: pp.timeout,
            ..Default::default()
        },
        env: pp
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect(),
        label: format!("pr-{pr}"),
    }
}

/// Decides pull request `pr`'s provisioner plans for `head` (whose instance plan against
/// the merge base `base` is `plan`) and records them; what must run goes to the
/// `resources` lane. Called by the plan job before it shows the comment.
pub(super) async fn prepare(
    shared: &Arc<Shared>,
    gh: &Client,
    pr: &PullRequest,
    head: &CommitId,
    plan: Option<&Plan>,
    base: &CachedRevision,
    head_revision: Option<&CachedRevision>,
) -> Result<(), DaemonError> {
    let number = pr.number;
    // A head already on the branch (merged, and GitHub not yet saying so) keeps what its
    // provisioner plans showed: the deploy report compares with it.
    if base.commit == head.as_str() {
        return Ok(());
    }
    let (Some(plan), Some(head_revision), true) = (
        plan,
        head_revision,
        shared.config().provisioner_plans.enabled,
    ) else {
        shared.store.start_resources(number, head, &[])?;
        forget(shared, number);
        return Ok(());
    };
    let state = shared.store.deployed()?;
    let checked = &head_revision.revision.checked;
    let requests = deep::requests(plan, checked, &base.revision.checked, &state);
    let refusal = if requests.iter().any(|r| r.trust == Trust::Changed) {
        refusal(gh, shared, pr, head).await?
    } else {
        None
    };
    let (runnable, refused): (Vec<_>, Vec<_>) = requests
        .into_iter()
        .partition(|r| r.trust == Trust::Merged || refusal.is_none());
    let mut done: Vec<Finished> = refused
        .into_iter()
        .map(|r| Finished {
            instance: r.instance,
            verb: r.verb,
            pending: r.pending,
            outcome: Outcome::NotRun {
                why: refusal.clone().unwrap_or_default(),
            },
        })
        .collect();
    let tree = Arc::new(head_revision.revision.tree().clone());
    let (work, failed) = crate::deploy::deep::work(
        runnable,
        checked,
        &tree,
        head,
        &state,
        shared.mirror.as_ref(),
    );
    done.extend(failed);
    let planner = planner(shared, number);
    // What this pull request showed before (kept across restarts), then what any pull
    // request planned (kept in memory).
    let stored = shared.store.reusable(number)?;
    // A head planned again (a review, the plan after its provisioner plans) counts nothing
    // twice.
    let again = shared.store.resources_head(number)?.as_ref() == Some(head);
    let count = |label| {
        if !again {
            shared.metrics.provisioner_plan(label);
        }
    };
    let mut rows: Vec<ResourceRow> = Vec::new();
    let mut to_run = Vec::new();
    for w in work {
        let key = w
            .request
            .key(&planner.deployed_key(&w.request, &w.bundle, w.record.as_ref()));
        let row_key = format!("{key}|{}", names(&w.request.pending));
        let instance = w.request.instance.to_string();
        let piece = stored.get(&row_key).cloned().or_else(|| {
            shared.handoff.reused(&key).map(|outcome| {
                let r = &w.request;
                resources::piece(&Finished {
                    instance: r.instance.clone(),
                    verb: r.verb,
                    pending: r.pending.clone(),
                    outcome,
                })
            })
        });
        if piece.is_some() {
            count("reused");
        } else {
            to_run.push(w);
        }
        rows.push(ResourceRow {
            instance,
            key: row_key,
            piece,
        });
    }
    for f in &done {
        count(f.outcome.label());
        rows.push(ResourceRow {
            instance: f.instance.to_string(),
            key: String::new(),
            piece: Some(resources::piece(f)),
        });
    }
    shared.store.start_resources(number, head, &rows)?;
    tracing::info!(
        instances = rows.len(),
        to_run = to_run.len(),
        "provisioner plans"
    );
    if to_run.is_empty() {
        forget(shared, number);
    } else {
        shared.handoff.hand(
            number,
            Pending {
                head: head.clone(),
                work: to_run,
            },
        );
        shared.resources.push(Job::Resources(number));
    }
    Ok(())
}

/// `a,b`: producers as a key's part.
fn names(ids: &[crate::core::model::InstanceId]) -> String {
    ids.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(",")
}

fn forget(shared: &Shared, pr: u64) {
    shared.handoff.take(pr);
}

/// Why bundles this pull request changes may not run at `head`; `None` when they may:
/// from this repository by an author who can push, or after someone who can commented
/// `capstan plan --deep` on this head. A fork's changes never run.
async fn refusal(
    gh: &Client,
    shared: &Shared,
    pr: &PullRequest,
    head: &CommitId,
) -> Result<Option<String>, DaemonError> {
    if !pr.from_same_repository() {
        return Ok(Some(format!(
            "the pull request changes this bundle's code and comes from another repository ({}); capstan never runs a fork's code",
            pr.head_repo.as_deref().unwrap_or("deleted")
        )));
    }
    if gh.can_write(&pr.author).await? {
        return Ok(None);
    }
    if let Some(by) = shared.store.deep_approval(pr.number, head)? {
        tracing::info!(pr = pr.number, by, "provisioner plans allowed by a comment");
        return Ok(None);
    }
    Ok(Some(format!(
        "the pull request changes this bundle's code and @{} cannot push here; someone who can may comment `capstan plan --deep` to plan this head",
        pr.author
    )))
}

/// `capstan plan --deep`, commented on pull request `pr` by `by`: its head's changed bundles
/// may be planned, if `by` can push.
pub(super) async fn asked(shared: &Arc<Shared>, pr: u64, by: &str) -> Result<(), DaemonError> {
    let gh = shared.github();
    if !gh.can_write(by).await? {
        tracing::info!(
            pr,
            by,
            "capstan plan --deep from someone who cannot push; ignored"
        );
        return Ok(());
    }
    let head: CommitId = gh.pull(pr).await?.head_sha.as_str().into();
    shared.store.approve_deep(pr, &head, by)?;
    shared.push(Job::Plan(pr));
    Ok(())
}

/// Runs pull request `pr`'s provisioner plans that [`prepare`] handed over, showing each
/// as it finishes; a cancel (a newer head) stops them and records nothing more.
pub(super) async fn run(
    shared: &Arc<Shared>,
    pr: u64,
    cancel: &CancellationToken,
) -> Result<(), DaemonError> {
    let Some(pending) = shared.handoff.take(pr) else {
        return Ok(());
    };
    let gh = shared.github();
    let planner = Arc::new(planner(shared, pr));
    let mut running = planner.start(pending.work, &shared.plan_slots, cancel);
    // A GitHub failure while showing one result must not stop the others: each is recorded,
    // and the next show carries every recorded one.
    let mut failed = None;
    let mut ran = false;
    while let Some((finished, key)) = running.next().await {
        if cancel.is_cancelled() {
            shared.metrics.provisioner_plan("cancelled");
            continue;
        }
        // What policies read changed only where resources were planned.
        ran |= matches!(finished.outcome, Outcome::Planned { .. });
        shared.metrics.provisioner_plan(finished.outcome.label());
        if !matches!(finished.outcome, Outcome::Failed { .. }) {
            shared.handoff.keep(key, finished.outcome.clone());
        }
        if shared
            .store
            .finish_resource(pr, &pending.head, &resources::piece(&finished))?
        {
            let shown = async {
                comment::show(shared, &gh, pr, previews::section, Creates::OnlyEdits).await?;
                status(shared, &gh, pr, &pending.head).await
            };
            if let Err(e) = shown.await {
                tracing::warn!(pr, error = %crate::error::chain(&e), "showing a provisioner plan; the next one shows it");
                failed = Some(e);
            }
        }
    }
    // The policies judge again with every resource known (the plan job finds them all
    // recorded, and runs nothing more).
    if ran && !cancel.is_cancelled() {
        shared.push(Job::Plan(pr));
    }
    failed.map_or(Ok(()), Err)
}

/// Posts `capstan/plan` on `head`: the instance plan's own verdict, combined with the
/// provisioner plans recorded for it.
pub(super) async fn status(
    shared: &Arc<Shared>,
    gh: &Client,
    pr: u64,
    head: &CommitId,
) -> Result<(), DaemonError> {
    let Some((state, description)) = shared.store.plan_status(pr)? else {
        return Ok(());
    };
    let (pieces, planning) = shared.store.resources(pr)?;
    let (state, description) = combine(
        StatusState::parse(&state).unwrap_or(StatusState::Error),
        &description,
        &pieces,
        planning,
    );
    publish::status(gh, shared, head, PLAN_CONTEXT, state, &description).await
}

/// `capstan/plan` from the instance plan's verdict and the provisioner plans: a failed
/// provisioner plan fails it; while some run it is pending; a refused instance plan stays
/// what it is.
fn combine(
    state: StatusState,
    description: &str,
    pieces: &[Piece],
    planning: usize,
) -> (StatusState, String) {
    if state != StatusState::Success {
        return (state, description.to_string());
    }
    let failed = pieces.iter().filter(|p| p.failed()).count();
    if failed > 0 {
        return (
            StatusState::Failure,
            format!(
                "{} failed; see the comment",
                crate::core::render::plural(failed, "provisioner plan")
            ),
        );
    }
    if planning > 0 {
        return (
            StatusState::Pending,
            format!(
                "{description}; planning the resources of {}",
                crate::core::render::plural(planning, "instance")
            ),
        );
    }
    if pieces.is_empty() {
        return (StatusState::Success, description.to_string());
    }
    let mut total = crate::core::resources::Counts::default();
    for p in pieces {
        total += p.counts();
    }
    (
        StatusState::Success,
        format!("{description}; {}", resources::counts(&total)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(outcome: &str, counts: [usize; 7]) -> Piece {
        Piece {
            instance: "x".into(),
            outcome: outcome.into(),
            counts,
            ..Piece::default()
        }
    }

    #[test]
    fn the_plan_status_waits_for_provisioner_plans_and_fails_with_them() {
        let ok = "Plan: 0 to create, 1 to update";
        assert_eq!(
            combine(StatusState::Success, ok, &[], 2),
            (
                StatusState::Pending,
                format!("{ok}; planning the resources of 2 instances")
            )
        );
        assert_eq!(
            combine(
                StatusState::Success,
                ok,
                &[piece("planned", [1, 0, 0, 1, 0, 0, 0])],
                0
            ),
            (
                StatusState::Success,
                format!("{ok}; Resources: 1 to add, 0 to change, 0 to destroy, 1 to replace")
            )
        );
        assert_eq!(
            combine(
                StatusState::Success,
                ok,
                &[piece("failed", [0; 7]), piece("planned", [0; 7])],
                1
            ),
            (
                StatusState::Failure,
                "1 provisioner plan failed; see the comment".to_string()
            )
        );
        assert_eq!(
            combine(
                StatusState::Failure,
                "refused",
                &[piece("failed", [0; 7])],
                0
            ),
            (StatusState::Failure, "refused".to_string())
        );
        assert_eq!(
            combine(StatusState::Success, ok, &[], 0),
            (StatusState::Success, ok.to_string())
        );
    }
}
