//! Pull-request previews in GitHub mode (docs/previews.md).
//!
//! All of it runs on the deploy worker, after any pending deploy of the branch: the same
//! deployer, lock and crash safety as the branch's deploys. Level-triggered like the rest:
//! [`reconcile`] makes one pull request's previews what the pull request asks for now (up
//! at its head, waiting for a slot, refused, or destroyed once it is closed), and [`sweep`]
//! looks at every recorded preview (past its TTL, of a pull request closed while capstan
//! was down, waiting for a slot that freed, or on shared infrastructure whose artifacts
//! changed). What previews look like is shown in a section of the pull request's one
//! comment, replaced in place ([`section`], [`refresh`]), and in the status
//! `capstan/preview`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use super::comment::{self, Creates};
use super::context::Shared;
use super::deploys::log_progress;
use super::error::DaemonError;
use super::job::Job;
use super::metrics::PreviewOutcome;
use super::preview_section::{self, Row, Shown};
use super::publish::{self};
use crate::core::commit::CommitId;
use crate::core::deployed::{Deployed, Status};
use crate::core::drift::Heal;
use crate::core::model::{EnvId, Preview, ProjectId};
use crate::core::run::Trigger;
use crate::core::source::SourceTree;
use crate::core::time::Timestamp;
use crate::core::{self, plan, preview};
use crate::deploy::{Report, Target};
use crate::error::chain;
use crate::github::{Client, PullRequest, StatusState};
use crate::source::Revisions;
use crate::source::mirror::pull_ref;
use crate::state::{Note, PreviewRecord, PreviewStatus, StateError, Store};

/// The commit status of previews.
pub const PREVIEW_CONTEXT: &str = "capstan/preview";

/// The previews of pull request `pr`, oldest first.
fn of_pull(store: &Store, pr: u64) -> Result<Vec<PreviewRecord>, StateError> {
    Ok(store
        .previews()?
        .into_iter()
        .filter(|p| p.pr == Some(pr))
        .collect())
}

/// The recorded instances a preview owns.
fn instances(store: &Store, record: &PreviewRecord) -> Result<Vec<Deployed>, StateError> {
    let scope = record.scope();
    Ok(store
        .deployed()?
        .into_values()
        .filter(|d| scope.owns(&d.project, &d.environment))
        .collect())
}

/// Everything the comment and status of `pr` are made from, to tell whether they change.
fn fingerprint(store: &Store, pr: u64) -> Result<String, StateError> {
    let mut out = store
        .preview_note(pr)?
        .map(|n| n.text().to_string())
        .unwrap_or_default();
    for p in of_pull(store, pr)? {
        let _ = write!(
            out,
            "|{}/{} {} {}",
            p.project,
            p.name,
            p.status.name(),
            p.head
        );
        for d in instances(store, &p)? {
            let _ = write!(out, ";{} {} {}", d.instance, d.status.name(), d.digest);
        }
    }
    Ok(out)
}

/// Whether pull request `pr` has previews, or a note about them, that a new head may change.
pub(super) fn concern(store: &Store, pr: u64) -> Result<bool, StateError> {
    Ok(!of_pull(store, pr)?.is_empty() || store.preview_note(pr)?.is_some())
}

/// Makes pull request `number`'s previews what it asks for now, then shows the result.
pub(super) async fn reconcile(shared: &Arc<Shared>, number: u64) -> Result<(), DaemonError> {
    let gh = shared.github();
    let before = fingerprint(&shared.store, number)?;
    let pr = gh.pull(number).await?;
    if pr.number != number {
        return Err(DaemonError::Renumbered {
            asked: number,
            got: pr.number,
        });
    }
    if !pr.open {
        close(shared, &pr).await?;
    } else if pr.base_ref == shared.config().repository.branch {
        bring_up(shared, &gh, &pr).await?;
    }
    if fingerprint(&shared.store, number)? != before {
        refresh(shared, &gh, number).await?;
    }
    if pr.open {
        status(shared, &gh, &pr).await?;
    }
    count(shared)?;
    Ok(())
}

/// The previews an open pull request asks for: those of the projects it triggers, if its
/// head may run; every other preview of it is destroyed.
async fn bring_up(shared: &Arc<Shared>, gh: &Client, pr: &PullRequest) -> Result<(), DaemonError> {
    let store = &shared.store;
    let number = pr.number;
    shared
        .fetch(vec![
            (format!("refs/pull/{number}/head"), pull_ref(number)),
            shared.branch_refs(),
        ])
        .await?;
    let head = if shared.mirror.has_commit(&pr.head_sha) {
        pr.head_sha.clone()
    } else {
        shared
            .mirror
            .resolve(&pull_ref(number))?
            .ok_or_else(|| DaemonError::NotFetched {
                reference: format!("refs/pull/{number}/head"),
            })?
    };
    let tip = shared.branch_tip()?;
    let base = shared.mirror.merge_base(&tip, &head)?;
    // Checked through the plan cache, off the runtime: the plan of this head has
    // usually checked it already.
    let revision = shared.check_head(&head).await?.revision;
    let changed = {
        let (shared, head) = (shared.clone(), head.clone());
        tokio::task::spawn_blocking(move || shared.mirror.changed_files(&base, &head)).await??
    };
    let (tree, checked) = (revision.tree(), &revision.checked);
    let existing = of_pull(store, number)?;
    if checked.has_errors() {
        // Live previews stay at the last head that validated.
        if existing.is_empty() {
            store.set_preview_note(
                number,
                Some(&Note::Refused(
                    "No preview: the head does not validate (see the plan).".into(),
                )),
            )?;
        }
        shared.metrics.preview_run(PreviewOutcome::Invalid);
        return Ok(());
    }
    let wanted: Vec<(ProjectId, Preview)> =
        preview::triggered(&checked.repository, &changed, &pr.labels)
            .into_iter()
            .filter_map(|p| {
                let block = checked
                    .repository
                    .projects
                    .get(p.as_str())?
                    .preview
                    .clone()?;
                Some((p, block))
            })
            .collect();
    let names: BTreeSet<&str> = wanted.iter().map(|(p, _)| p.as_str()).collect();
    for gone in existing
        .iter()
        .filter(|r| !names.contains(r.project.as_str()))
    {
        tracing::info!(
            pr = number,
            project = gone.project,
            "no longer triggered; destroying its preview"
        );
        teardown(shared, gone, Then::Remove).await?;
    }
    if wanted.is_empty() {
        store.set_preview_note(number, None)?;
        return Ok(());
    }
    if let Err(note) = allowed(gh, store, pr).await? {
        shared.metrics.preview_run(PreviewOutcome::Refused);
        store.set_preview_note(number, Some(&note))?;
        for live in existing
            .iter()
            .filter(|r| names.contains(r.project.as_str()))
        {
            teardown(shared, live, Then::Remove).await?;
        }
        return Ok(());
    }
    store.set_preview_note(number, None)?;
    for (project, block) in wanted {
        up(shared, number, &head, tree, &project, &block).await?;
    }
    Ok(())
}

/// Whether pull request `pr` may run a preview (it runs the pull request's code): never
/// from a fork; from this repository when its author may push here, or once someone who
/// may has commented `capstan preview`.
async fn allowed(
    gh: &Client,
    store: &Store,
    pr: &PullRequest,
) -> Result<Result<(), Note>, DaemonError> {
    if !pr.from_same_repository() {
        return Ok(Err(Note::Refused(format!(
            "No preview: the head branch is in another repository ({}), and capstan never runs code from forks.",
            pr.head_repo.as_deref().unwrap_or("deleted")
        ))));
    }
    if gh.can_write(&pr.author).await? {
        return Ok(Ok(()));
    }
    if let Some(by) = store.preview_approval(pr.number)? {
        tracing::info!(pr = pr.number, by, "previews approved by a comment");
        return Ok(Ok(()));
    }
    Ok(Err(Note::Awaiting(format!(
        "No preview yet: a preview runs this pull request's code, and @{} cannot push to this repository. Someone who can may comment `capstan preview` to run it.",
        pr.author
    ))))
}

/// Brings preview `pr<N>` of `project` up at `head`, or makes it wait for a slot.
async fn up(
    shared: &Arc<Shared>,
    number: u64,
    head: &str,
    tree: &SourceTree,
    project: &ProjectId,
    block: &Preview,
) -> Result<(), DaemonError> {
    let store = &shared.store;
    let name = preview::of_pull(number);
    let record = store.preview(project.as_str(), name.as_str())?;
    let at = crate::state::now();
    let live = record
        .as_ref()
        .is_some_and(|r| r.status == PreviewStatus::Live);
    let created_at = record.as_ref().map_or(at, |r| r.created_at);
    // The TTL counts from the last push (or the revival of an expired preview).
    let pushed_at = match &record {
        Some(r) if r.head == head && r.status != PreviewStatus::Expired => r.pushed_at,
        _ => at,
    };
    let mut next = PreviewRecord {
        project: project.to_string(),
        name: name.to_string(),
        pr: Some(number),
        head: head.into(),
        status: PreviewStatus::Live,
        created_at,
        pushed_at,
        ttl: block.ttl,
    };
    if !live {
        let holders = holders(store, project.as_str(), name.as_str())?;
        if holders.len() >= block.max {
            next.status = PreviewStatus::Waiting;
            store.save_preview(&next)?;
            shared.metrics.preview_run(PreviewOutcome::Waiting);
            return Ok(());
        }
    }
    // The row first: from here on the preview's instances are the preview's.
    store.save_preview(&next)?;
    deploy(shared, &next, tree).await
}

/// Who holds the slots a waiting preview waits for: `#9` for a pull request's, else the
/// preview's name.
fn held_by(store: &Store, waiting: &PreviewRecord) -> Result<Vec<String>, StateError> {
    Ok(holders(store, &waiting.project, &waiting.name)?
        .iter()
        .map(|h| h.pr.map_or_else(|| h.name.clone(), |n| format!("#{n}")))
        .collect())
}

/// The live previews of `project` other than `name`.
fn holders(store: &Store, project: &str, name: &str) -> Result<Vec<PreviewRecord>, StateError> {
    Ok(store
        .previews()?
        .into_iter()
        .filter(|p| p.project == project && p.name != name && p.status == PreviewStatus::Live)
        .collect())
}

/// Deploys a live preview at its recorded head against what it has deployed; nothing
/// runs when that is current.
async fn deploy(
    shared: &Arc<Shared>,
    record: &PreviewRecord,
    tree: &SourceTree,
) -> Result<(), DaemonError> {
    let checked = preview::check(
        tree,
        &ProjectId(record.project.clone().into()),
        &EnvId(record.name.clone().into()),
    )?;
    if checked.has_errors() {
        tracing::warn!(
            project = record.project,
            preview = record.name,
            "the preview does not validate at its head; not deployed"
        );
        shared.metrics.preview_run(PreviewOutcome::Invalid);
        return Ok(());
    }
    let scope = record.scope();
    let heal = Heal::Environments(checked.repository.config.remediate.clone());
    let plan = plan::against_deployed(&shared.store.deployed()?, &checked, &scope, &heal);
    if plan.is_empty() {
        shared.metrics.preview_run(PreviewOutcome::Nothing);
        return Ok(());
    }
    tracing::info!(
        project = record.project,
        preview = record.name,
        head = %record.head,
        "{}",
        core::render::plan::summary(&plan)
    );
    let target = Target {
        commit: record.head.clone(),
        tree: Arc::new(tree.clone()),
        checked: Arc::new(checked),
        trigger: Trigger::Preview,
        scope,
        heal,
        only: None,
    };
    let config = shared.config();
    let report = shared
        .deploys
        .deploy(&target, &config.deploy, log_progress())
        .await?;
    shared.metrics.preview_run(report.status());
    tracing::info!(
        project = record.project,
        preview = record.name,
        run = report.run,
        "{}",
        report.summary()
    );
    Ok(())
}

/// What becomes of a preview's row once its instances are destroyed.
enum Then {
    Remove,
    /// Its pull request is still open: a push brings it back.
    Expire,
}

/// Destroys a preview's instances, dependants first; its row goes (or says expired) once
/// none is left, else it stays `closing` and the next sweep tries again.
async fn teardown(
    shared: &Arc<Shared>,
    record: &PreviewRecord,
    then: Then,
) -> Result<Report, DaemonError> {
    let store = &shared.store;
    store.save_preview(&PreviewRecord {
        status: PreviewStatus::Closing,
        ..record.clone()
    })?;
    let label = format!("preview {} of {}", record.name, record.project);
    let config = shared.config();
    let report = shared
        .deploys
        .teardown(&record.scope(), &label, &config.deploy, log_progress())
        .await?;
    if instances(store, record)?.is_empty() {
        match then {
            Then::Remove => store.remove_preview(&record.project, &record.name)?,
            Then::Expire => store.save_preview(&PreviewRecord {
                status: PreviewStatus::Expired,
                ..record.clone()
            })?,
        }
        shared.metrics.preview_run(match then {
            Then::Remove => PreviewOutcome::Destroyed,
            Then::Expire => PreviewOutcome::Expired,
        });
    } else {
        shared.metrics.preview_run(PreviewOutcome::Failed);
        tracing::warn!(
            project = record.project,
            preview = record.name,
            "{}; trying again at the next sweep",
            report.summary()
        );
    }
    Ok(report)
}

/// A closed pull request: its previews are destroyed, and the comment says so.
async fn close(shared: &Arc<Shared>, pr: &PullRequest) -> Result<(), DaemonError> {
    let records = of_pull(&shared.store, pr.number)?;
    if records.is_empty() {
        return Ok(());
    }
    let mut gone = Vec::new();
    for r in &records {
        teardown(shared, r, Then::Remove).await?;
        if shared.store.preview(&r.project, &r.name)?.is_none() {
            gone.push(format!("`{}-{}`", r.project, r.name));
        }
    }
    if !gone.is_empty() {
        let how = if pr.merge_commit.is_some() {
            "merged"
        } else {
            "closed"
        };
        let note = Note::Gone(format!(
            "Destroyed when the pull request was {how}: {}.",
            gone.join(", ")
        ));
        shared.store.set_preview_note(pr.number, Some(&note))?;
    }
    Ok(())
}

/// Looks at every recorded preview: destroys those of pull requests closed meanwhile and
/// those idle past their TTL, starts waiting ones when a slot is free, and updates live
/// ones whose inputs changed (a shared producer's artifacts, a crash mid-deploy).
pub(super) async fn sweep(shared: &Arc<Shared>) -> Result<(), DaemonError> {
    let store = &shared.store;
    let records = store.previews()?;
    if records.is_empty() {
        count(shared)?;
        return Ok(());
    }
    let gh = shared.github();
    if records.iter().any(|r| r.pr.is_some()) {
        let open: BTreeSet<u64> = gh
            .open_pulls(&shared.config().repository.branch)
            .await?
            .into_iter()
            .map(|p| p.number)
            .collect();
        for n in records.iter().filter_map(|r| r.pr) {
            if !open.contains(&n) {
                shared.push(Job::Preview(n));
            }
        }
    }
    let at = crate::state::now();
    let mut refreshed = BTreeSet::new();
    for r in &records {
        match sweep_step(r.status, r.pr, at, r.expires_at()) {
            SweepStep::Reconcile(n) => shared.push(Job::Preview(n)),
            SweepStep::Remove => {
                teardown(shared, r, Then::Remove).await?;
            }
            SweepStep::Expire => {
                tracing::info!(
                    project = r.project,
                    preview = r.name,
                    "idle past its TTL; destroying it"
                );
                teardown(
                    shared,
                    r,
                    if r.pr.is_some() {
                        Then::Expire
                    } else {
                        Then::Remove
                    },
                )
                .await?;
                refreshed.extend(r.pr);
            }
            SweepStep::Update => {
                let before = match r.pr {
                    Some(n) => fingerprint(store, n)?,
                    None => String::new(),
                };
                let tree = {
                    let (shared, head) = (shared.clone(), r.head.clone());
                    tokio::task::spawn_blocking(move || shared.mirror.read(&head)).await?
                };
                match tree {
                    Ok(tree) => deploy(shared, r, &tree).await?,
                    Err(e) => {
                        tracing::warn!(project = r.project, preview = r.name, error = %chain(&e), "reading the preview's head")
                    }
                }
                if let Some(n) = r.pr
                    && fingerprint(store, n)? != before
                {
                    refreshed.insert(n);
                }
            }
            SweepStep::SlotFree(n) => {
                let max = max_of(shared, r).await?;
                if slot_free(holders(store, &r.project, &r.name)?.len(), max) {
                    shared.push(Job::Preview(n));
                }
            }
            SweepStep::Nothing => {}
        }
    }
    for n in refreshed {
        refresh(shared, &gh, n).await?;
        let pr = gh.pull(n).await?;
        if pr.open {
            status(shared, &gh, &pr).await?;
        }
    }
    count(shared)?;
    Ok(())
}

/// What a sweep does with one recorded preview.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SweepStep {
    /// Its pull request's previews are reconciled (being closed).
    Reconcile(u64),
    /// Destroyed and forgotten (closing without a pull request, or a CLI preview past its TTL).
    Remove,
    /// Idle past its TTL: destroyed, and recorded as expired.
    Expire,
    /// Live: brought up to date (shared producers may have changed).
    Update,
    /// Waiting: its pull request is reconciled if a slot is free (see [`slot_free`]).
    SlotFree(u64),
    Nothing,
}

/// The sweep's rule for a preview of `status`, of pull request `pr`, at `now`.
fn sweep_step(
    status: PreviewStatus,
    pr: Option<u64>,
    now: Timestamp,
    expires_at: Timestamp,
) -> SweepStep {
    match (status, pr) {
        (PreviewStatus::Closing, Some(n)) => SweepStep::Reconcile(n),
        (PreviewStatus::Closing, None) => SweepStep::Remove,
        (PreviewStatus::Live, _) if now >= expires_at => SweepStep::Expire,
        (PreviewStatus::Live, _) => SweepStep::Update,
        (PreviewStatus::Waiting, Some(n)) => SweepStep::SlotFree(n),
        _ => SweepStep::Nothing,
    }
}

/// Whether a project with `live` other previews has room under its `max`.
fn slot_free(live: usize, max: usize) -> bool {
    live < max
}

/// The `max` of a waiting preview's project, as its recorded head says (through the plan
/// cache, off the runtime).
async fn max_of(shared: &Arc<Shared>, r: &PreviewRecord) -> Result<usize, DaemonError> {
    let head = shared.check_head(&r.head).await?;
    Ok(head
        .revision
        .checked
        .repository
        .projects
        .get(r.project.as_str())
        .and_then(|p| p.preview.as_ref())
        .map_or(Preview::DEFAULT_MAX, |b| b.max))
}

/// `capstan preview`, commented on pull request `pr` by `by`: previews run once someone
/// who may push to the repository asks.
pub(super) async fn asked(shared: &Arc<Shared>, pr: u64, by: &str) -> Result<(), DaemonError> {
    if shared.github().can_write(by).await? {
        tracing::info!(pr, by, "previews approved");
        shared.store.approve_previews(pr, by)?;
        shared.push(Job::Preview(pr));
    } else {
        tracing::info!(
            pr,
            by,
            "a preview was asked for by someone who cannot push; ignored"
        );
    }
    Ok(())
}

/// Sets the live-previews gauge of every project that has or had previews.
fn count(shared: &Arc<Shared>) -> Result<(), StateError> {
    let mut live = std::collections::BTreeMap::new();
    for r in shared.store.previews()? {
        *live.entry(r.project).or_insert(0) += usize::from(r.status == PreviewStatus::Live);
    }
    shared.metrics.previews(&live);
    Ok(())
}

/// The status `capstan/preview` on the pull request's head, from what is recorded.
async fn status(shared: &Arc<Shared>, gh: &Client, pr: &PullRequest) -> Result<(), DaemonError> {
    let store = &shared.store;
    let records = of_pull(store, pr.number)?;
    let note = store.preview_note(pr.number)?;
    let (state, text) = if records.is_empty() {
        match note {
            None | Some(Note::Gone(_)) => return Ok(()),
            Some(Note::Refused(t)) => (StatusState::Success, t),
            Some(Note::Awaiting(t)) => (StatusState::Pending, t),
        }
    } else {
        preview_section::verdict(&gather(store, pr.number)?)
    };
    publish::status(
        gh,
        shared,
        &CommitId::from(pr.head_sha.as_str()),
        PREVIEW_CONTEXT,
        state,
        &text,
    )
    .await
}

/// The preview section of pull request `pr`'s comment, from what is recorded; empty when
/// there is nothing to say.
pub(super) fn section(store: &Store, pr: u64) -> Result<String, StateError> {
    let note = store.preview_note(pr)?;
    Ok(preview_section::section(&gather(store, pr)?, note.as_ref()))
}

/// What the section and the status show of pull request `pr`'s previews, read from the
/// state: each preview with its instances (live ones) or the slots' holders (waiting ones).
fn gather(store: &Store, pr: u64) -> Result<Vec<Shown>, StateError> {
    let mut shown = Vec::new();
    for record in of_pull(store, pr)? {
        let mut rows = Vec::new();
        let mut held = Vec::new();
        match record.status {
            PreviewStatus::Live => {
                for deployed in instances(store, &record)? {
                    let why = match deployed.status {
                        Status::Failed | Status::DestroyFailed | Status::Interrupted => store
                            .steps_of(deployed.instance.as_str(), 1)?
                            .first()
                            .map(|s| s.message.clone())
                            .unwrap_or_default(),
                        _ => String::new(),
                    };
                    rows.push(Row { deployed, why });
                }
            }
            PreviewStatus::Waiting => held = held_by(store, &record)?,
            PreviewStatus::Closing | PreviewStatus::Expired => {}
        }
        shown.push(Shown { record, rows, held });
    }
    Ok(shown)
}

/// Shows the recorded previews in the pull request's comment, once it has one.
pub(super) async fn refresh(shared: &Arc<Shared>, gh: &Client, pr: u64) -> Result<(), DaemonError> {
    comment::show(shared, gh, pr, section, Creates::OnlyEdits).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_expires_idle_previews_updates_live_ones_and_frees_slots() {
        use PreviewStatus::*;
        let (now, later) = (Timestamp::from_secs(1_000), Timestamp::from_secs(2_000));
        assert_eq!(sweep_step(Live, Some(7), later, now), SweepStep::Expire);
        assert_eq!(sweep_step(Live, None, now, now), SweepStep::Expire);
        assert_eq!(sweep_step(Live, Some(7), now, later), SweepStep::Update);
        assert_eq!(
            sweep_step(Closing, Some(7), now, later),
            SweepStep::Reconcile(7)
        );
        assert_eq!(sweep_step(Closing, None, now, later), SweepStep::Remove);
        assert_eq!(
            sweep_step(Waiting, Some(7), now, later),
            SweepStep::SlotFree(7)
        );
        assert_eq!(sweep_step(Waiting, None, now, later), SweepStep::Nothing);
        assert_eq!(sweep_step(Expired, Some(7), later, now), SweepStep::Nothing);
        assert!(slot_free(2, 3));
        assert!(!slot_free(3, 3));
    }
}
