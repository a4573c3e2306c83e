//! Provisioner plans of pull requests (docs/provisioner-plans.md): each instance's resource
//! piece for the head it was planned at (none while it is planned), the instance plan's
//! own `capstan/plan` status that the pieces are combined with, and `capstan plan --deep`
//! approvals, each good for the head it was given on.

use std::collections::HashMap;

use super::db::args;
use super::pulls::Column;
use super::{StateError, Store};
use crate::core::commit::CommitId;
use crate::core::render::resources::Piece;

/// One instance's provisioner plan of a pull request, as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub instance: String,
    /// What the plan may be reused under (`core::deep::Request::key`, and what the piece
    /// shows besides).
    pub key: String,
    /// `None` while it is planned.
    pub piece: Option<Piece>,
}

impl Store {
    /// Pull request `pr`'s provisioner plans are now those of `rows` at `head`: each
    /// instance with the key its plan may be reused under, and its piece where it has one
    /// (reused, or decided without running); the rest are being planned.
    pub fn start_resources(
        &self,
        pr: u64,
        head: &CommitId,
        rows: &[Row],
    ) -> Result<(), StateError> {
        self.with(|c| {
            c.transaction(|tx| {
                tx.execute(
                    "DELETE FROM pull_request_resources WHERE number = ?1",
                    args![pr as i64],
                )?;
                for row in rows {
                    tx.execute(
                        "INSERT INTO pull_request_resources (number, head_sha, instance, reuse_key, piece)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        args![
                            pr as i64,
                            head,
                            &row.instance,
                            &row.key,
                            row.piece.as_ref().map(store)
                        ],
                    )?;
                }
                Ok(())
            })
        })
    }

    /// Records one instance's piece, if `head` is still the head its plans are for;
    /// whether it was.
    pub fn finish_resource(
        &self,
        pr: u64,
        head: &CommitId,
        piece: &Piece,
    ) -> Result<bool, StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE pull_request_resources SET piece = ?4
                 WHERE number = ?1 AND head_sha = ?2 AND instance = ?3",
                args![pr as i64, head, &piece.instance, store(piece)],
            )
            .map(|n| n > 0)
        })
    }

    /// The head pull request `pr`'s provisioner plans are recorded for.
    pub fn resources_head(&self, pr: u64) -> Result<Option<CommitId>, StateError> {
        self.with(|c| {
            c.query_opt(
                "SELECT head_sha FROM pull_request_resources WHERE number = ?1 LIMIT 1",
                args![pr as i64],
            )?
            .map(|r| r.get(0))
            .transpose()
        })
    }

    /// Pull request `pr`'s finished pieces by the key they were made under.
    pub fn reusable(&self, pr: u64) -> Result<HashMap<String, Piece>, StateError> {
        let rows: Vec<(String, String)> = self.with(|c| {
            c.query(
                "SELECT reuse_key, piece FROM pull_request_resources
                 WHERE number = ?1 AND piece IS NOT NULL",
                args![pr as i64],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, t)| Some((k, serde_json::from_str(&t).ok()?)))
            .collect())
    }

    /// Pull request `pr`'s pieces and how many instances are still being planned.
    pub fn resources(&self, pr: u64) -> Result<(Vec<Piece>, usize), StateError> {
        let rows: Vec<Option<String>> = self.with(|c| {
            c.query(
                "SELECT piece FROM pull_request_resources WHERE number = ?1 ORDER BY instance",
                args![pr as i64],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect()
        })?;
        let planning = rows.iter().filter(|r| r.is_none()).count();
        let pieces = rows
            .iter()
            .flatten()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect();
        Ok((pieces, planning))
    }

    /// The instance plan's own status of pull request `pr` (state name, description).
    pub fn plan_status(&self, pr: u64) -> Result<Option<(String, String)>, StateError> {
        let text = self.pull_column(pr, Column::PlanStatus)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    pub fn set_plan_status(
        &self,
        pr: u64,
        state: &str,
        description: &str,
    ) -> Result<(), StateError> {
        let text = serde_json::to_string(&(state, description)).expect("strings serialise");
        self.set_pull_column(pr, Column::PlanStatus, Some(&text))
    }

    /// Who allowed provisioner plans of changed bundles for pull request `pr` at `head`
    /// with a `capstan plan --deep` comment.
    pub fn deep_approval(&self, pr: u64, head: &CommitId) -> Result<Option<String>, StateError> {
        self.with(|c| {
            c.query_opt(
                "SELECT approved_by FROM deep_approvals WHERE number = ?1 AND head_sha = ?2",
                args![pr as i64, head],
            )?
            .map(|r| r.get(0))
            .transpose()
        })
    }

    pub fn approve_deep(&self, pr: u64, head: &CommitId, by: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO deep_approvals (number, head_sha, approved_by) VALUES (?1, ?2, ?3)
                 ON CONFLICT(number) DO UPDATE SET head_sha = ?2, approved_by = ?3",
                args![pr as i64, head, by],
            )
            .map(drop)
        })
    }
}

fn store(piece: &Piece) -> String {
    serde_json::to_string(piece).expect("plain data serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_server::both_stores;

    fn piece(instance: &str) -> Piece {
        Piece {
            instance: instance.into(),
            outcome: "planned".into(),
            ..Piece::default()
        }
    }

    #[test]
    fn pieces_of_an_older_head_are_not_recorded_and_approvals_hold_for_their_head() {
        for at in both_stores() {
            let store = at.open();
            let (old, new): (CommitId, CommitId) = ("aaa".into(), "bbb".into());
            let row = |i: &str, piece: Option<Piece>| Row {
                instance: i.into(),
                key: format!("k-{i}"),
                piece,
            };
            store
                .start_resources(7, &old, &[row("a", None), row("b", Some(piece("b")))])
                .unwrap();
            assert_eq!(store.resources(7).unwrap(), (vec![piece("b")], 1));
            assert_eq!(
                store.reusable(7).unwrap(),
                HashMap::from([("k-b".to_string(), piece("b"))])
            );
            store.start_resources(7, &new, &[row("a", None)]).unwrap();
            assert!(!store.finish_resource(7, &old, &piece("a")).unwrap());
            assert_eq!(store.resources(7).unwrap(), (vec![], 1));
            assert!(store.finish_resource(7, &new, &piece("a")).unwrap());
            assert_eq!(store.resources(7).unwrap(), (vec![piece("a")], 0));

            store.approve_deep(7, &old, "alice").unwrap();
            assert_eq!(
                store.deep_approval(7, &old).unwrap().as_deref(),
                Some("alice")
            );
            assert_eq!(store.deep_approval(7, &new).unwrap(), None);
        }
    }
}
