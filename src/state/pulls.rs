//! The daemon's pull-request bookkeeping: which comment is ours on each pull request (and
//! a digest of what it shows), which commit statuses were posted, and which instances each
//! open pull request changes. With these, nothing is posted twice after any failure or
//! restart, and pull requests changing the same instances can name each other.

use std::collections::BTreeMap;

use super::db::{Value, args};
use super::{CommentRecord, StateError, Store};
use crate::core::commit::CommitId;
use crate::core::render::comment::Comment;

/// What a pull request's comment says about its previews beside the previews themselves;
/// stored as `<kind>:<text>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// No preview runs, and none will for this head (a fork, a head that does not validate).
    Refused(String),
    /// None runs until someone with write permission comments `capstan preview`.
    Awaiting(String),
    /// They were destroyed (the pull request closed).
    Gone(String),
}

impl Note {
    fn store(&self) -> String {
        match self {
            Note::Refused(t) => format!("refused:{t}"),
            Note::Awaiting(t) => format!("awaiting:{t}"),
            Note::Gone(t) => format!("gone:{t}"),
        }
    }

    fn load(text: &str) -> Option<Note> {
        let (kind, t) = text.split_once(':')?;
        let t = t.to_string();
        match kind {
            "refused" => Some(Note::Refused(t)),
            "awaiting" => Some(Note::Awaiting(t)),
            "gone" => Some(Note::Gone(t)),
            _ => None,
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Note::Refused(t) | Note::Awaiting(t) | Note::Gone(t) => t,
        }
    }
}

/// A pull request as the daemon last saw it, for the web view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRecord {
    pub number: u64,
    pub open: bool,
    /// The head and merge base last planned.
    pub head: Option<String>,
    pub base: Option<String>,
    pub planned_at: Option<crate::core::time::Timestamp>,
    /// The commit statuses posted on the head: (context, state, description).
    pub statuses: Vec<(String, String, String)>,
    /// The instances its plan changes.
    pub changes: Vec<String>,
}

/// The texts a pull request's row keeps, one column each (a closed set: column names
/// never come from outside).
#[derive(Clone, Copy)]
pub(super) enum Column {
    PlanSection,
    PlanStatus,
    PreviewNote,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::PlanSection => "plan_section",
            Column::PlanStatus => "plan_status",
            Column::PreviewNote => "preview_note",
        }
    }
}

impl Store {
    /// The latest `limit` pull requests, open first, newest first, with their head's
    /// statuses and changes.
    pub fn pulls(&self, limit: usize) -> Result<Vec<PullRecord>, StateError> {
        self.pull_records(
            "ORDER BY open DESC, number DESC LIMIT ?1",
            args![limit as i64],
        )
    }

    /// One pull request as [`Store::pulls`] lists it.
    pub fn pull(&self, number: u64) -> Result<Option<PullRecord>, StateError> {
        Ok(self
            .pull_records("WHERE number = ?1", args![number as i64])?
            .pop())
    }

    /// The pull requests `clause` selects, with their head's statuses and changes.
    fn pull_records(
        &self,
        clause: &str,
        args: &[Value<'_>],
    ) -> Result<Vec<PullRecord>, StateError> {
        let mut pulls: Vec<PullRecord> = self.with(|c| {
            c.query(
                &format!(
                    "SELECT number, open, head_sha, base_sha, planned_at FROM pull_requests {clause}"
                ),
                args,
            )?
            .iter()
            .map(|r| {
                Ok(PullRecord {
                    number: r.get::<i64>(0)? as u64,
                    open: r.get(1)?,
                    head: r.get(2)?,
                    base: r.get(3)?,
                    planned_at: r.get(4)?,
                    statuses: Vec::new(),
                    changes: Vec::new(),
                })
            })
            .collect()
        })?;
        for pull in &mut pulls {
            if let Some(head) = &pull.head {
                pull.statuses = self.with(|c| {
                    c.query(
                        "SELECT context, state, description FROM commit_statuses WHERE sha = ?1 ORDER BY context",
                        args![head],
                    )?
                    .iter()
                    .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .collect()
                })?;
            }
            pull.changes = self.changes(pull.number)?;
        }
        Ok(pulls)
    }

    pub fn comment(&self, pr: u64) -> Result<Option<CommentRecord>, StateError> {
        self.with(|c| {
            c.query_opt(
                "SELECT comment_id, comment_digest FROM pull_requests WHERE number = ?1 AND comment_id IS NOT NULL",
                args![pr as i64],
            )?
            .map(|r| {
                Ok(CommentRecord {
                    id: r.get::<i64>(0)? as u64,
                    digest: r.get::<Option<String>>(1)?.unwrap_or_default(),
                })
            })
            .transpose()
        })
    }

    pub fn set_comment(&self, pr: u64, record: Option<&CommentRecord>) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO pull_requests (number, comment_id, comment_digest) VALUES (?1, ?2, ?3)
                 ON CONFLICT(number) DO UPDATE SET comment_id = ?2, comment_digest = ?3",
                args![
                    pr as i64,
                    record.map(|r| r.id as i64),
                    record.map(|r| r.digest.as_str())
                ],
            )
            .map(drop)
        })
    }

    /// The plan section of pull request `pr`'s comment, as its worker last computed it;
    /// `None` before the first plan (or when what is stored is from another version).
    pub fn plan_section(&self, pr: u64) -> Result<Option<Comment>, StateError> {
        let text = self.pull_column(pr, Column::PlanSection)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    pub fn set_plan_section(&self, pr: u64, plan: &Comment) -> Result<(), StateError> {
        let text = serde_json::to_string(plan).expect("plain data serialises");
        self.set_pull_column(pr, Column::PlanSection, Some(&text))
    }

    /// What the comment says about previews of `pr` beside the previews themselves (why
    /// none runs, or that they were destroyed).
    pub fn preview_note(&self, pr: u64) -> Result<Option<Note>, StateError> {
        let text = self.pull_column(pr, Column::PreviewNote)?;
        Ok(text.as_deref().and_then(Note::load))
    }

    pub fn set_preview_note(&self, pr: u64, note: Option<&Note>) -> Result<(), StateError> {
        let text = note.map(Note::store);
        self.set_pull_column(pr, Column::PreviewNote, text.as_deref())
    }

    /// One of a pull request's stored texts; `None` when it has none.
    pub(super) fn pull_column(
        &self,
        pr: u64,
        column: Column,
    ) -> Result<Option<String>, StateError> {
        self.with(|c| {
            c.query_opt(
                &format!(
                    "SELECT {} FROM pull_requests WHERE number = ?1",
                    column.name()
                ),
                args![pr as i64],
            )?
            .map(|r| r.get::<Option<String>>(0))
            .transpose()
            .map(Option::flatten)
        })
    }

    /// Sets one of a pull request's stored texts (`None` clears it).
    pub(super) fn set_pull_column(
        &self,
        pr: u64,
        column: Column,
        text: Option<&str>,
    ) -> Result<(), StateError> {
        let name = column.name();
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO pull_requests (number, {name}) VALUES (?1, ?2)
                     ON CONFLICT(number) DO UPDATE SET {name} = ?2"
                ),
                args![pr as i64, text],
            )
            .map(drop)
        })
    }

    /// The status last posted for `context` on commit `sha`: (state, description).
    pub fn status(
        &self,
        sha: &CommitId,
        context: &str,
    ) -> Result<Option<(String, String)>, StateError> {
        self.with(|c| {
            c.query_opt(
                "SELECT state, description FROM commit_statuses WHERE sha = ?1 AND context = ?2",
                args![sha, context],
            )?
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .transpose()
        })
    }

    pub fn set_status(
        &self,
        sha: &CommitId,
        context: &str,
        state: &str,
        description: &str,
    ) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO commit_statuses (sha, context, state, description, posted_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(sha, context) DO UPDATE SET state = ?3, description = ?4, posted_at = ?5",
                args![sha, context, state, description, super::now()],
            )
            .map(drop)
        })
    }

    /// Records a finished plan of `pr`: the commits and the instances it changes.
    pub fn record_plan(
        &self,
        pr: u64,
        head_sha: &CommitId,
        base_sha: &CommitId,
        instances: &[String],
    ) -> Result<(), StateError> {
        self.with(|c| {
            c.transaction(|tx| {
                tx.execute(
                    "INSERT INTO pull_requests (number, open, head_sha, base_sha, planned_at) VALUES (?1, 1, ?2, ?3, ?4)
                     ON CONFLICT(number) DO UPDATE SET open = 1, head_sha = ?2, base_sha = ?3, planned_at = ?4",
                    args![pr as i64, head_sha, base_sha, super::now()],
                )?;
                tx.execute(
                    "DELETE FROM pull_request_changes WHERE number = ?1",
                    args![pr as i64],
                )?;
                for i in instances {
                    tx.execute(
                        "INSERT INTO pull_request_changes (number, instance) VALUES (?1, ?2)
                         ON CONFLICT DO NOTHING",
                        args![pr as i64, i],
                    )?;
                }
                Ok(())
            })
        })
    }

    /// The (head, base) commits `pr` was last planned at.
    pub fn planned(&self, pr: u64) -> Result<Option<(CommitId, CommitId)>, StateError> {
        self.with(|c| {
            c.query_opt(
                "SELECT head_sha, base_sha FROM pull_requests WHERE number = ?1 AND head_sha IS NOT NULL AND open = 1",
                args![pr as i64],
            )?
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .transpose()
        })
    }

    /// Other open pull requests changing any of `instances`, with the instances they share.
    pub fn overlaps(
        &self,
        pr: u64,
        instances: &[String],
    ) -> Result<BTreeMap<u64, Vec<String>>, StateError> {
        self.with(|c| {
            let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
            for i in instances {
                let rows = c.query(
                    "SELECT ch.number FROM pull_request_changes ch JOIN pull_requests p ON p.number = ch.number
                     WHERE ch.instance = ?1 AND ch.number != ?2 AND p.open = 1",
                    args![i, pr as i64],
                )?;
                for r in rows {
                    out.entry(r.get::<i64>(0)? as u64)
                        .or_default()
                        .push(i.clone());
                }
            }
            Ok(out)
        })
    }

    /// The instances `pr` changed at its last plan.
    pub fn changes(&self, pr: u64) -> Result<Vec<String>, StateError> {
        self.with(|c| {
            c.query(
                "SELECT instance FROM pull_request_changes WHERE number = ?1 ORDER BY instance",
                args![pr as i64],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect()
        })
    }

    /// Open pull requests the database knows, with the instances each changes.
    pub fn open_pulls(&self) -> Result<BTreeMap<u64, Vec<String>>, StateError> {
        self.with(|c| {
            let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
            let rows = c.query(
                "SELECT p.number, ch.instance FROM pull_requests p
                 LEFT JOIN pull_request_changes ch ON ch.number = p.number WHERE p.open = 1",
                &[],
            )?;
            for r in rows {
                let entry = out.entry(r.get::<i64>(0)? as u64).or_default();
                entry.extend(r.get::<Option<String>>(1)?);
            }
            Ok(out)
        })
    }

    /// A closed pull request no longer overlaps anything; its comment record is kept.
    pub fn close(&self, pr: u64) -> Result<(), StateError> {
        self.with(|c| {
            c.transaction(|tx| {
                tx.execute(
                    "UPDATE pull_requests SET open = 0 WHERE number = ?1",
                    args![pr as i64],
                )?;
                tx.execute(
                    "DELETE FROM pull_request_changes WHERE number = ?1",
                    args![pr as i64],
                )?;
                Ok(())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_server::both_stores;

    #[test]
    fn notes_keep_their_kind() {
        for note in [
            Note::Refused("a fork".into()),
            Note::Awaiting("approval".into()),
            Note::Gone("closed: x".into()),
        ] {
            assert_eq!(Note::load(&note.store()), Some(note));
        }
        assert!(Note::load("nonsense").is_none());
    }

    #[test]
    fn a_pull_request_is_listed_with_its_heads_statuses_and_changes() {
        for at in both_stores() {
            let store = at.open();
            let (head, base) = (CommitId::new("h1"), CommitId::new("b1"));
            store
                .record_plan(7, &head, &base, &["ecomm-staging-db".into()])
                .unwrap();
            store
                .record_plan(8, &CommitId::new("h2"), &base, &[])
                .unwrap();
            store
                .set_status(&head, "capstan/policy", "pending", "needs approval")
                .unwrap();
            store
                .set_status(&head, "capstan/plan", "success", "1 to update")
                .unwrap();
            store.close(8).unwrap();
            let seven = store.pull(7).unwrap().unwrap();
            assert_eq!(seven.head.as_deref(), Some("h1"));
            assert_eq!(seven.changes, ["ecomm-staging-db"]);
            assert_eq!(
                seven.statuses,
                [
                    (
                        "capstan/plan".into(),
                        "success".into(),
                        "1 to update".into()
                    ),
                    (
                        "capstan/policy".into(),
                        "pending".into(),
                        "needs approval".into()
                    ),
                ]
            );
            assert!(store.pull(9).unwrap().is_none());
            let listed: Vec<(u64, bool)> = store
                .pulls(10)
                .unwrap()
                .iter()
                .map(|p| (p.number, p.open))
                .collect();
            assert_eq!(listed, [(7, true), (8, false)], "open first");
        }
    }
}
