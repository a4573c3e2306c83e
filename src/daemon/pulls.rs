//! The pull-request reconciler: plan a pull request's head against its merge base, judge
//! ownership, and make GitHub show exactly that: one comment (found again by its hidden
//! marker, never duplicated) and the statuses `capstan/plan` and `capstan/ownership`.
//! Nothing is posted that GitHub already shows, so re-running is harmless.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::comment::{self, Creates};
use super::context::Shared;
use super::error::DaemonError;
use super::job::Job;
use super::metrics::PlanOutcome;
use super::previews;
use super::publish::{self};
use super::revisions::{self, Side};
use crate::core::commit::CommitId;
use crate::core::ownership::{self, Owner, Verdict};
use crate::core::plan::Plan;
use crate::core::render::comment::Comment;
use crate::core::render::markdown::{self, MARKER};
use crate::core::render::plan::summary;
use crate::core::{self, Checked};
use crate::error::chain;
use crate::github::{Client, PullRequest, StatusState};
use crate::source::SourceError;
use crate::source::mirror::pull_ref;

pub const PLAN_CONTEXT: &str = "capstan/plan";
pub const OWNERSHIP_CONTEXT: &str = "capstan/ownership";

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

/// What a plan of one pull request computed, before anything is posted.
struct Computed {
    body: Comment,
    plan_state: StatusState,
    plan_description: String,
    /// Instances the pull request creates, updates or destroys.
    changed: Vec<String>,
    verdicts: Vec<Verdict>,
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
    shared
        .fetch(vec![
            (format!("refs/pull/{number}/head"), pull_ref(number)),
            shared.branch_refs(),
        ])
        .await?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "fetched");
    let head: CommitId =
        if shared.mirror.has_commit(&pr.head_sha) {
            pr.head_sha.as_str().into()
        } else {
            // GitHub updates refs/pull/N/head a moment after the API; plan what git has and
            // let the next event or poll catch up.
            let fetched = shared.mirror.resolve(&pull_ref(number))?.ok_or_else(|| {
                DaemonError::NotFetched {
                    reference: format!("refs/pull/{number}/head"),
                }
            })?;
            tracing::warn!(
                api = pr.head_sha,
                git = fetched,
                "head not fetched yet; planning the fetched one"
            );
            fetched.into()
        };
    let tip = shared.branch_tip()?;
    let merge_base = shared.mirror.merge_base(&tip, &head)?;
    if cancel.is_cancelled() {
        return Ok(PlanOutcome::Superseded);
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
    let checked_base = &base.revision.checked;
    let checked_head = head_revision.as_ref().map(|h| &h.revision.checked);
    // Previews are looked at when the head triggers one, or the pull request has some.
    let previews_wanted = checked_head.as_ref().is_ok_and(|h| {
        !core::preview::triggered(&h.repository, &changed_files, &pr.labels).is_empty()
    }) || previews::concern(&shared.store, number)?;
    // Observe (the plan, then what GitHub and the state say), decide, act.
    let plan = plan_of(checked_base, checked_head);
    let sets = ownership::touched(
        &owners_from(checked_base, checked_head).repository,
        &changed_files,
    );
    let changed = plan.as_ref().map(changed_instances).unwrap_or_default();
    let gathered = gather(&gh, shared, &pr, &sets, &changed).await?;
    let computed = decide(
        &pr,
        &head,
        &config.repository.root,
        checked_head,
        plan,
        sets,
        gathered,
    );
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "computed");
    if cancel.is_cancelled() {
        return Ok(PlanOutcome::Superseded);
    }

    shared.store.set_plan_section(number, &computed.body)?;
    comment::show(shared, &gh, number, previews::section, Creates::Yes).await?;
    let ownership_ok = computed.verdicts.iter().all(Verdict::ok);
    let missing: Vec<String> = computed
        .verdicts
        .iter()
        .filter(|v| !v.ok())
        .map(|v| v.set.owners.join(", "))
        .collect();
    publish::status(
        &gh,
        shared,
        &head,
        PLAN_CONTEXT,
        computed.plan_state,
        &computed.plan_description,
    )
    .await?;
    let (own_state, own_description) = if ownership_ok {
        (
            StatusState::Success,
            "every owner set touched is satisfied".to_string(),
        )
    } else {
        (
            StatusState::Pending,
            format!("needs approval from {}", missing.join("; ")),
        )
    };
    publish::status(
        &gh,
        shared,
        &head,
        OWNERSHIP_CONTEXT,
        own_state,
        &own_description,
    )
    .await?;

    // Previews follow the head (level-triggered: nothing happens when they are current).
    if previews_wanted {
        shared.deploys.lane().push(Job::Preview(number));
    }

    // Tell the other pull requests sharing instances when what this one changes moved.
    let before: BTreeSet<String> = shared.store.changes(number)?.into_iter().collect();
    shared
        .store
        .record_plan(number, &head, &tip, &computed.changed)?;
    let after: BTreeSet<String> = computed.changed.iter().cloned().collect();
    if before != after {
        let touched: Vec<String> = before.union(&after).cloned().collect();
        for other in shared.store.overlaps(number, &touched)?.keys() {
            shared.plans.push(Job::Plan(*other));
        }
    }
    Ok(if computed.plan_state == StatusState::Success {
        PlanOutcome::Planned
    } else {
        PlanOutcome::Failed
    })
}

/// What a plan of one pull request is decided from, besides the checked revisions: what
/// GitHub and the state say (gathered by [`gather`]).
struct Gathered {
    approvers: Vec<String>,
    /// (org, team, user in lower case) to whether the user is a member.
    membership: BTreeMap<(String, String, String), bool>,
    /// Other open pull requests changing the same instances.
    overlaps: Vec<(u64, Vec<String>)>,
}

/// The plan of a head that validates against its merge base; `None` when it does not.
fn plan_of(base: &Checked, head: Result<&Checked, &SourceError>) -> Option<Plan> {
    match head {
        Ok(head) if !head.has_errors() => Some(core::plan::plan(base, head)),
        _ => None,
    }
}

/// Whose owners judge the pull request: the merge base's, or the head's when the base
/// predates capstan (its change introduces capstan).
fn owners_from<'a>(base: &'a Checked, head: Result<&'a Checked, &SourceError>) -> &'a Checked {
    if base.repository.config.owners.is_empty() && base.repository.projects.is_empty() {
        head.unwrap_or(base)
    } else {
        base
    }
}

/// Asks GitHub for the reviews and for each (team, candidate) membership once (the
/// candidates are the author and the approvers), and the state for overlapping pull
/// requests.
async fn gather(
    gh: &Client,
    shared: &Arc<Shared>,
    pr: &PullRequest,
    sets: &[ownership::OwnerSet],
    changed: &[String],
) -> Result<Gathered, DaemonError> {
    let reviews: Vec<(String, String)> = gh
        .reviews(pr.number)
        .await?
        .into_iter()
        .map(|r| (r.user, r.state))
        .collect();
    let approvers = ownership::approvers(&reviews);
    let mut membership: BTreeMap<(String, String, String), bool> = BTreeMap::new();
    let candidates: Vec<&String> = std::iter::once(&pr.author)
        .chain(approvers.iter())
        .collect();
    for set in sets {
        for owner in &set.owners {
            if let Owner::Team { org, team } = ownership::parse_owner(owner) {
                for user in &candidates {
                    let key = (org.to_string(), team.to_string(), user.to_lowercase());
                    if let std::collections::btree_map::Entry::Vacant(slot) = membership.entry(key)
                    {
                        slot.insert(gh.team_member(org, team, user).await?);
                    }
                }
            }
        }
    }
    let overlaps = if changed.is_empty() {
        Vec::new()
    } else {
        shared
            .store
            .overlaps(pr.number, changed)?
            .into_iter()
            .collect()
    };
    Ok(Gathered {
        approvers,
        membership,
        overlaps,
    })
}

/// The comment, statuses and changed instances of a plan: a pure decision over the
/// checked revisions, the plan and what was gathered.
#[allow(clippy::too_many_arguments)]
fn decide(
    pr: &PullRequest,
    head: &str,
    root: &str,
    checked_head: Result<&Checked, &SourceError>,
    plan: Option<Plan>,
    sets: Vec<ownership::OwnerSet>,
    gathered: Gathered,
) -> Computed {
    let link_base = (!pr.repo_html_url.is_empty()).then(|| {
        let root = if root.is_empty() {
            String::new()
        } else {
            format!("{root}/")
        };
        format!("{}/blob/{head}/{root}", pr.repo_html_url)
    });
    let member = |org: &str, team: &str, user: &str| {
        gathered
            .membership
            .get(&(org.to_string(), team.to_string(), user.to_lowercase()))
            .copied()
            .unwrap_or(false)
    };
    let verdicts = ownership::judge(sets, &pr.author, &gathered.approvers, &member);
    let mut opts = markdown::Options::new(link_base);
    opts.ownership = Some(verdicts.clone());
    match (checked_head, plan) {
        (Ok(head), Some(plan)) => {
            let changed = changed_instances(&plan);
            opts.overlaps = gathered.overlaps;
            let body = markdown::plan(&plan, &head.diagnostics, &opts);
            let (plan_state, plan_description) = if plan.is_refused() {
                (
                    StatusState::Failure,
                    format!(
                        "changes {} of deployed instances; see the comment",
                        core::render::plural(plan.errors.len(), "immutable param")
                    ),
                )
            } else {
                (StatusState::Success, summary(&plan))
            };
            Computed {
                body,
                plan_state,
                plan_description,
                changed,
                verdicts,
            }
        }
        (Ok(head), None) => {
            let errors = head
                .diagnostics
                .iter()
                .filter(|d| d.severity() == core::diag::Severity::Error)
                .count();
            Computed {
                body: markdown::diagnostics(&head.diagnostics, &opts),
                plan_state: StatusState::Failure,
                plan_description: format!(
                    "the head has {} error{}; see the comment",
                    errors,
                    if errors == 1 { "" } else { "s" }
                ),
                changed: Vec::new(),
                verdicts,
            }
        }
        (Err(e), _) => Computed {
            body: Comment {
                head: format!(
                    "{MARKER}\n**Plan failed: the head is not a capstan repository.**\n\n{}\n",
                    chain(e)
                ),
                ..Comment::default()
            },
            plan_state: StatusState::Failure,
            plan_description: "the head is not a capstan repository".into(),
            changed: Vec::new(),
            verdicts,
        },
    }
}

/// The instances a plan creates, updates or destroys.
fn changed_instances(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .map(|c| c.instance.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::source::{Content, SourceFile, SourceTree};

    fn example() -> SourceTree {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("example-repo");
        crate::source::read_dir(&root).expect("the example reads")
    }

    fn edited(tree: &SourceTree, path: &str, from: &str, to: &str) -> SourceTree {
        let files = tree
            .files()
            .iter()
            .map(|f| match (&f.content, f.path == path) {
                (Content::Bytes(b), true) => SourceFile {
                    content: Content::Bytes(
                        String::from_utf8_lossy(b)
                            .replacen(from, to, 1)
                            .into_bytes()
                            .into(),
                    ),
                    ..f.clone()
                },
                _ => f.clone(),
            })
            .collect();
        SourceTree::new(files)
    }

    fn pr(author: &str) -> PullRequest {
        PullRequest {
            number: 7,
            open: true,
            head_sha: "abc".into(),
            base_ref: "main".into(),
            author: author.into(),
            repo_html_url: "https://github.com/acme/infra".into(),
            merge_commit: None,
            labels: Vec::new(),
            head_repo: Some("acme/infra".into()),
            base_repo: "acme/infra".into(),
        }
    }

    fn nothing_gathered() -> Gathered {
        Gathered {
            approvers: Vec::new(),
            membership: BTreeMap::new(),
            overlaps: Vec::new(),
        }
    }

    #[test]
    fn a_change_is_planned_and_waits_for_its_owners_approval() {
        let base = core::check(&example());
        let head = core::check(&edited(
            &example(),
            "projects/si/project.yaml",
            "high_availability: true",
            "high_availability: false",
        ));
        let changed = vec!["projects/si/project.yaml".to_string()];
        let plan = plan_of(&base, Ok(&head));
        let sets = ownership::touched(&owners_from(&base, Ok(&head)).repository, &changed);
        let computed = decide(
            &pr("mallory"),
            "abc",
            "",
            Ok(&head),
            plan,
            sets,
            nothing_gathered(),
        );
        assert_eq!(computed.plan_state, StatusState::Success);
        assert!(
            computed
                .plan_description
                .starts_with("Plan: 0 to create, 3 to update"),
            "{}",
            computed.plan_description
        );
        assert_eq!(computed.changed.len(), 3);
        assert!(
            !computed.verdicts.iter().all(Verdict::ok),
            "si's owners have not approved"
        );
        assert!(
            computed
                .body
                .head
                .contains("**Plan: 0 to create, 3 to update"),
            "{}",
            computed.body.head
        );
    }

    #[test]
    fn a_head_that_does_not_validate_fails_with_its_error_count() {
        let base = core::check(&example());
        let head = core::check(&edited(
            &example(),
            "projects/ecomm/project.yaml",
            "bundle: aws-eks-cluster",
            "bundle: aws-eks",
        ));
        let plan = plan_of(&base, Ok(&head));
        assert!(plan.is_none());
        let computed = decide(
            &pr("alice"),
            "abc",
            "",
            Ok(&head),
            plan,
            Vec::new(),
            nothing_gathered(),
        );
        assert_eq!(computed.plan_state, StatusState::Failure);
        assert_eq!(
            computed.plan_description,
            "the head has 1 error; see the comment"
        );
        assert!(computed.changed.is_empty());
    }
}
