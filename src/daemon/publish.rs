//! The one place that writes to GitHub: comments and the drift issue (each found again by
//! its hidden marker and edited in place, never posted twice) and commit statuses (not sent
//! again when GitHub already shows them). Bodies arrive as [`Comment`]s and are cut here to GitHub's limit;
//! what was posted is recorded in the state database.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::context::Shared;
use super::error::DaemonError;
use crate::core::commit::CommitId;
use crate::core::render::comment::{Comment, MAX_COMMENT};
use crate::core::render::markdown::MARKER;
use crate::github::{Client, GitHubError, StatusState, truncate};
use crate::state::{CommentRecord, StateError, Store};

/// GitHub's limit for a commit status description, in characters.
const MAX_DESCRIPTION: usize = 140;

/// Which of our comments: the plan of a pull request, or the deploy of a commit on the pull
/// request that was merged into it.
pub(super) enum Slot<'a> {
    Plan(u64),
    Deploy { pr: u64, sha: &'a CommitId },
}

impl Slot<'_> {
    fn pr(&self) -> u64 {
        match self {
            Slot::Plan(n) | Slot::Deploy { pr: n, .. } => *n,
        }
    }

    fn marker(&self) -> String {
        match self {
            Slot::Plan(_) => MARKER.to_string(),
            Slot::Deploy { sha, .. } => crate::deploy::marker(sha),
        }
    }

    fn get(&self, store: &Store) -> Result<Option<CommentRecord>, StateError> {
        match self {
            Slot::Plan(n) => store.comment(*n),
            Slot::Deploy { pr, sha } => store.deploy_comment(sha, *pr),
        }
    }

    fn set(&self, store: &Store, record: Option<&CommentRecord>) -> Result<(), StateError> {
        match self {
            Slot::Plan(n) => store.set_comment(*n, record),
            Slot::Deploy { pr, sha } => store.set_deploy_comment(sha, *pr, record),
        }
    }

    /// Records what the comment shows now.
    fn posted(&self, store: &Store, record: &CommentRecord) -> Result<(), StateError> {
        self.set(store, Some(record))
    }
}

fn digest(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// Makes the pull request show exactly one comment of `slot` with `comment`'s body.
///
/// The comment recorded in the state database is edited in place; without a record (or if
/// it was deleted) the comments are listed, every page, to find one with our marker; only
/// then is a comment created. A create whose answer is lost (5xx, dropped connection) is not
/// repeated blindly: the comments are listed again first, so it is never posted twice.
pub(super) async fn comment(
    gh: &Client,
    shared: &Arc<Shared>,
    slot: Slot<'_>,
    comment: &Comment,
) -> Result<(), DaemonError> {
    body(gh, shared, slot, comment.render(MAX_COMMENT)).await
}

/// Like [`comment`], with a body already fit to GitHub's limit.
pub(super) async fn body(
    gh: &Client,
    shared: &Arc<Shared>,
    slot: Slot<'_>,
    body: String,
) -> Result<(), DaemonError> {
    let digest = digest(&body);
    let number = slot.pr();
    let marker = slot.marker();
    if let Some(record) = slot.get(&shared.store)? {
        if record.digest == digest {
            tracing::debug!(comment = record.id, "comment already shows this");
            return Ok(());
        }
        match gh.update_comment(record.id, &body).await {
            Ok(()) => {
                let record = CommentRecord {
                    id: record.id,
                    digest,
                };
                slot.posted(&shared.store, &record)?;
                tracing::info!(comment = record.id, "comment updated");
                return Ok(());
            }
            Err(e) if e.status() == Some(404) => {
                tracing::warn!(
                    comment = record.id,
                    "our comment is gone; looking for it again"
                );
                slot.set(&shared.store, None)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let (marker, body) = (&marker, &body);
    let posted = find_or_create(
        shared,
        "the comment",
        move || async move {
            let comments = gh.comments(number).await?;
            let Some(found) = comments
                .into_iter()
                .find(|c| c.body.starts_with(marker.as_str()))
            else {
                return Ok(None);
            };
            if found.body != *body {
                gh.update_comment(found.id, body).await?;
                tracing::info!(
                    comment = found.id,
                    "found our comment by its marker; updated"
                );
            }
            Ok(Some(found.id))
        },
        move || async move { gh.create_comment(number, body).await },
    )
    .await?;
    slot.posted(&shared.store, &CommentRecord { id: posted, digest })?;
    Ok(())
}

/// The one way something of ours is created on GitHub: look for it (`find`), and only if
/// it is not there, create it. A create whose answer is lost (5xx, a dropped connection)
/// is not repeated blindly: it is looked for again first, up to the retry policy's
/// attempts. Returns its id or number.
async fn find_or_create<Find, Create>(
    shared: &Arc<Shared>,
    what: &str,
    mut find: impl FnMut() -> Find,
    mut create: impl FnMut() -> Create,
) -> Result<u64, DaemonError>
where
    Find: Future<Output = Result<Option<u64>, GitHubError>>,
    Create: Future<Output = Result<u64, GitHubError>>,
{
    let retry = shared.config().github.as_ref().map(|g| g.api.retry.clone());
    let attempts = retry.as_ref().map_or(3, |r| r.attempts.max(1));
    let backoff = retry.map_or(Duration::from_secs(1), |r| r.backoff);
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Some(found) = find().await? {
            return Ok(found);
        }
        match create().await {
            Ok(id) => {
                tracing::info!(id, "{what} created");
                return Ok(id);
            }
            Err(e) if e.is_transient() && attempt < attempts => {
                tracing::warn!(error = %e, "creating {what} failed; checking whether it exists before trying again");
                tokio::time::sleep(backoff).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What an issue of ours (the drift issue) should show: open with a body, or closed
/// with one.
pub(super) struct Issue<'a> {
    pub title: &'a str,
    /// Its hidden first line, by which it is found again.
    pub marker: &'a str,
    pub body: String,
    pub open: bool,
}

/// Makes GitHub show `issue`. The issue recorded in the state is edited in place (and
/// reopened or closed); without a record, the repository's issues are searched for the
/// marker before one is created. A closed issue that was never opened is not created.
pub(super) async fn issue(
    gh: &Client,
    shared: &Arc<Shared>,
    issue: Issue<'_>,
) -> Result<(), DaemonError> {
    let store = &shared.store;
    let record = store.drift_issue()?;
    let sum = digest(&issue.body);
    if let Some((number, open, known)) = &record {
        if *open == issue.open && *known == sum {
            return Ok(());
        }
        if !issue.open && !open {
            return Ok(());
        }
        match gh.update_issue(*number, &issue.body, issue.open).await {
            Ok(()) => {
                store.set_drift_issue(*number, issue.open, &sum)?;
                tracing::info!(issue = number, open = issue.open, "issue updated");
                return Ok(());
            }
            Err(e) if e.status() == Some(404) || e.status() == Some(410) => {
                tracing::warn!(issue = number, "our issue is gone; looking for it again");
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !issue.open {
        return Ok(());
    }
    let issue = &issue;
    let number = find_or_create(
        shared,
        "the issue",
        move || async move {
            let Some(found) = gh
                .issues()
                .await?
                .into_iter()
                .find(|i| i.body.starts_with(issue.marker))
            else {
                return Ok(None);
            };
            gh.update_issue(found.number, &issue.body, true).await?;
            tracing::info!(
                issue = found.number,
                "found our issue by its marker; updated"
            );
            Ok(Some(found.number))
        },
        move || async move { gh.create_issue(issue.title, &issue.body).await },
    )
    .await?;
    store.set_drift_issue(number, true, &sum)?;
    Ok(())
}

/// Sets a commit status unless GitHub already shows exactly this one.
pub(super) async fn status(
    gh: &Client,
    shared: &Arc<Shared>,
    sha: &CommitId,
    context: &str,
    state: StatusState,
    description: &str,
) -> Result<(), DaemonError> {
    let description = truncate(description, MAX_DESCRIPTION);
    if let Some((s, d)) = shared.store.status(sha, context)?
        && s == state.as_str()
        && d == description
    {
        return Ok(());
    }
    gh.set_status(sha, context, state, &description, None)
        .await?;
    shared
        .store
        .set_status(sha, context, state.as_str(), &description)?;
    Ok(())
}
