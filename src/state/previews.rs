//! Previews as recorded: one row per preview (project, name) with the pull request it is
//! for (if any), the head it was last brought to, its status and its clock (created, last
//! pushed, TTL). The row is written before a preview's first instance is deployed and
//! deleted only once its last instance is destroyed, so instances of a preview always have
//! a row naming them as the preview's, whatever happens in between. Also the `capstan
//! preview` approvals given on pull requests.

use std::collections::BTreeSet;
use std::time::Duration;

use super::db::{DbError, Row, args};
use super::{StateError, Store};
use crate::core::commit::CommitId;
use crate::core::run::Scope;
use crate::core::time::Timestamp;

/// Where a preview stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreviewStatus {
    /// Wanted up: deployed, or being deployed.
    Live,
    /// Wanted up, but the project's `max` previews are live: it starts when a slot frees.
    Waiting,
    /// Being torn down (closed, `preview down`); the row goes when its instances have.
    Closing,
    /// Torn down after its TTL while its pull request stays open; a push brings it back.
    Expired,
}

impl PreviewStatus {
    pub const ALL: [PreviewStatus; 4] = [
        PreviewStatus::Live,
        PreviewStatus::Waiting,
        PreviewStatus::Closing,
        PreviewStatus::Expired,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PreviewStatus::Live => "live",
            PreviewStatus::Waiting => "waiting",
            PreviewStatus::Closing => "closing",
            PreviewStatus::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Option<PreviewStatus> {
        PreviewStatus::ALL.into_iter().find(|s| s.name() == text)
    }
}

/// One preview's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewRecord {
    pub project: String,
    pub name: String,
    /// The pull request it previews; `None` for `capstan preview up`.
    pub pr: Option<u64>,
    /// The commit it was last brought up (or asked to come up) at.
    pub head: CommitId,
    pub status: PreviewStatus,
    pub created_at: Timestamp,
    /// The last push (or `preview up`); the TTL counts from here.
    pub pushed_at: Timestamp,
    pub ttl: Duration,
}

impl PreviewRecord {
    /// When it is destroyed if not pushed to again.
    pub fn expires_at(&self) -> Timestamp {
        self.pushed_at
            .plus(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX))
    }

    /// The run scope of its instances.
    pub fn scope(&self) -> Scope {
        Scope::Preview {
            project: self.project.clone(),
            name: self.name.clone(),
        }
    }
}

const COLUMNS: &str = "project, name, pr, head_sha, status, created_at, pushed_at, ttl_secs";

fn record(r: &Row) -> Result<(PreviewRecord, String), DbError> {
    let status: String = r.get(4)?;
    Ok((
        PreviewRecord {
            project: r.get(0)?,
            name: r.get(1)?,
            pr: r.get::<Option<i64>>(2)?.map(|n| n as u64),
            head: r.get(3)?,
            status: PreviewStatus::Live,
            created_at: r.get(5)?,
            pushed_at: r.get(6)?,
            ttl: Duration::from_secs(r.get::<i64>(7)?.max(0) as u64),
        },
        status,
    ))
}

fn with_status((mut rec, status): (PreviewRecord, String)) -> Result<PreviewRecord, StateError> {
    rec.status = PreviewStatus::parse(&status).ok_or_else(|| StateError::Corrupt {
        what: "preview status",
        key: format!("{}/{}", rec.project, rec.name),
    })?;
    Ok(rec)
}

impl Store {
    /// Every preview, oldest first.
    pub fn previews(&self) -> Result<Vec<PreviewRecord>, StateError> {
        let rows = self.with(|c| {
            c.query(
                &format!("SELECT {COLUMNS} FROM previews ORDER BY created_at, project, name"),
                &[],
            )?
            .iter()
            .map(record)
            .collect::<Result<Vec<_>, _>>()
        })?;
        rows.into_iter().map(with_status).collect()
    }

    pub fn preview(&self, project: &str, name: &str) -> Result<Option<PreviewRecord>, StateError> {
        let row = self.with(|c| {
            c.query_opt(
                &format!("SELECT {COLUMNS} FROM previews WHERE project = ?1 AND name = ?2"),
                args![project, name],
            )?
            .as_ref()
            .map(record)
            .transpose()
        })?;
        row.map(with_status).transpose()
    }

    /// Writes the row (a new preview, or new values for one).
    pub fn save_preview(&self, p: &PreviewRecord) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO previews ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT(project, name) DO UPDATE SET pr = ?3, head_sha = ?4,
                       status = ?5, created_at = ?6, pushed_at = ?7, ttl_secs = ?8"
                ),
                args![
                    &p.project,
                    &p.name,
                    p.pr.map(|n| n as i64),
                    &p.head,
                    p.status.name(),
                    p.created_at,
                    p.pushed_at,
                    i64::try_from(p.ttl.as_secs()).unwrap_or(i64::MAX),
                ],
            )
            .map(drop)
        })
    }

    /// Forgets a preview, once none of its instances is recorded any more.
    pub fn remove_preview(&self, project: &str, name: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM previews WHERE project = ?1 AND name = ?2",
                args![project, name],
            )
            .map(drop)
        })
    }

    /// The scope of the branch's runs: everything but the recorded previews.
    pub fn branch_scope(&self) -> Result<Scope, StateError> {
        let previews: BTreeSet<(String, String)> = self
            .previews()?
            .into_iter()
            .map(|p| (p.project, p.name))
            .collect();
        Ok(Scope::Branch { previews })
    }

    /// Who approved previews of pull request `pr` with a `capstan preview` comment.
    pub fn preview_approval(&self, pr: u64) -> Result<Option<String>, StateError> {
        self.with(|c| {
            c.query_opt(
                "SELECT approved_by FROM preview_approvals WHERE pr = ?1",
                args![pr as i64],
            )?
            .map(|r| r.get(0))
            .transpose()
        })
    }

    pub fn approve_previews(&self, pr: u64, by: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO preview_approvals (pr, approved_by, approved_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(pr) DO NOTHING",
                args![pr as i64, by, super::now()],
            )
            .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_server::both_stores;

    fn record(name: &str, pr: Option<u64>, created_at: i64) -> PreviewRecord {
        let created_at = Timestamp::from_secs(created_at);
        PreviewRecord {
            project: "ecomm".into(),
            name: name.into(),
            pr,
            head: "abc".into(),
            status: PreviewStatus::Live,
            created_at,
            pushed_at: created_at,
            ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn previews_are_kept_updated_and_forgotten() {
        for at in both_stores() {
            let store = at.open();
            store.save_preview(&record("pr2", Some(2), 20)).unwrap();
            store.save_preview(&record("demo", None, 10)).unwrap();
            let mut waiting = record("pr2", Some(2), 20);
            waiting.status = PreviewStatus::Waiting;
            waiting.head = "def".into();
            store.save_preview(&waiting).unwrap();
            let all = store.previews().unwrap();
            assert_eq!(
                all.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
                ["demo", "pr2"],
                "oldest first"
            );
            assert_eq!(store.preview("ecomm", "pr2").unwrap(), Some(waiting));
            assert_eq!(all[0].expires_at(), Timestamp::from_secs(10 + 3600));
            assert_eq!(
                store.branch_scope().unwrap(),
                Scope::Branch {
                    previews: [
                        ("ecomm".into(), "demo".into()),
                        ("ecomm".into(), "pr2".into())
                    ]
                    .into_iter()
                    .collect()
                }
            );
            store.remove_preview("ecomm", "pr2").unwrap();
            assert_eq!(store.preview("ecomm", "pr2").unwrap(), None);
            store.approve_previews(7, "alice").unwrap();
            store.approve_previews(7, "mallory").unwrap();
            assert_eq!(store.preview_approval(7).unwrap().as_deref(), Some("alice"));
        }
    }
}
