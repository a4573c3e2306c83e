//! `capstan state migrate`: every row of one store copied into another (SQLite into
//! PostgreSQL, or back), in one transaction of the target, which must be empty. Ids are
//! kept (runs, steps and the instances that point at them), and the target's id counters
//! continue after them. Nothing is deployed or destroyed: the instances keep their
//! digests, so the next plan against the new store is the same as against the old.

use super::db::{Db, DbError};
use super::{StateError, Store};

/// Every table, parents before the tables that point at them.
const TABLES: &[&str] = &[
    "pull_requests",
    "pull_request_changes",
    "commit_statuses",
    "runs",
    "steps",
    "instances",
    "deploy_comments",
    "previews",
    "preview_approvals",
    "drift_issue",
    "pull_request_resources",
    "deep_approvals",
];

/// Columns the store maintains itself, never copied.
const MAINTAINED: &[&str] = &["changed"];

/// What was copied: rows per table, in [`TABLES`] order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied(pub Vec<(&'static str, usize)>);

impl Copied {
    pub fn total(&self) -> usize {
        self.0.iter().map(|(_, n)| n).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{to} already holds {rows} rows in {table}: the target of a migration must be empty")]
    NotEmpty {
        to: String,
        table: &'static str,
        rows: i64,
    },
    #[error("{0} and its target are the same store")]
    Same(String),
}

impl Store {
    /// Copies every row of `self` into the empty store `to`.
    pub fn copy_into(&self, to: &Store) -> Result<Copied, CopyError> {
        if self.location().to_string() == to.location().to_string() {
            return Err(CopyError::Same(self.location().to_string()));
        }
        for &table in TABLES {
            let rows: i64 = to.with(|c| {
                c.query_one(&format!("SELECT count(*) FROM {table}"), &[])?
                    .get(0)
            })?;
            if rows > 0 {
                return Err(CopyError::NotEmpty {
                    to: to.location().to_string(),
                    table,
                    rows,
                });
            }
        }
        let mut read = Vec::new();
        for &table in TABLES {
            let columns = self.with(|c| columns(c, table))?;
            let rows = self
                .with(|c| c.query(&format!("SELECT {} FROM {table}", columns.join(", ")), &[]))?;
            read.push((table, columns, rows));
        }
        let copied = to.with(|c| {
            c.transaction(|tx| {
                let mut copied = Copied::default();
                for (table, columns, rows) in &read {
                    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
                    let insert = format!(
                        "INSERT INTO {table} ({}) VALUES ({})",
                        columns.join(", "),
                        marks.join(", ")
                    );
                    for row in rows {
                        tx.execute(&insert, row.values())?;
                    }
                    copied.0.push((*table, rows.len()));
                }
                continue_ids(tx)?;
                Ok(copied)
            })
        })?;
        Ok(copied)
    }
}

/// `table`'s columns in order, without those the store maintains.
fn columns(db: &mut Db<'_>, table: &str) -> Result<Vec<String>, DbError> {
    let sql = match db {
        Db::Sqlite(_) => "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
        Db::Postgres(_) => {
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position"
        }
    };
    let rows = db.query(sql, super::db::args![table])?;
    rows.iter()
        .map(|r| r.get::<String>(0))
        .filter(|c| !c.as_ref().is_ok_and(|c| MAINTAINED.contains(&c.as_str())))
        .collect()
}

/// After ids were written by hand, PostgreSQL's identity counters start after the highest
/// (SQLite's AUTOINCREMENT already does).
fn continue_ids(db: &mut Db<'_>) -> Result<(), DbError> {
    if let Db::Postgres(_) = db {
        for table in ["runs", "steps"] {
            db.query_one(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
                ),
                &[],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::core::deployed::Inputs;
    use crate::core::model::InstanceId;
    use crate::core::run::{RunStatus, Trigger, Verb};
    use crate::state::NewStep;
    use crate::state::test_server::both_stores;

    /// A store with a deployed instance, a finished run, a pull request and a preview.
    fn fill(store: &Store) {
        let id = InstanceId("si-staging-vpc".into());
        let inputs = Inputs {
            bundle: "aws-vpc".into(),
            version: "1.0.0".into(),
            bundle_digest: "b".into(),
            params: serde_json::json!({"cidr": "10.0.0.0/16"}),
            connections: BTreeMap::new(),
        };
        let run = store.begin_run("c1", Trigger::Apply).unwrap();
        let step = store
            .begin_step(&NewStep {
                run,
                instance: &id,
                project: "si",
                environment: "staging",
                package: "vpc",
                action: Verb::Deploy,
                inputs: &inputs,
                commit: "c1",
                attributes: &BTreeMap::new(),
                sensitive: &[vec!["token".into()]],
                log_path: Some("/var/lib/capstan/logs/1.log"),
                fence: 0,
            })
            .unwrap();
        let mut record = store.instance(id.as_str()).unwrap().unwrap();
        record.digest = inputs.digest();
        record.artifacts = BTreeMap::from([("network".into(), serde_json::json!({"id": "vpc-1"}))]);
        store.finish_deploy(step, &record).unwrap();
        store
            .finish_run(run, RunStatus::Succeeded, "1 created")
            .unwrap();
        store
            .record_plan(7, &"h".into(), &"b".into(), &[id.as_str().into()])
            .unwrap();
        store
            .set_status(&"h".into(), "capstan/plan", "success", "1 to update")
            .unwrap();
    }

    #[test]
    fn every_row_moves_and_ids_continue_after_them() {
        let [sqlite, postgres] = both_stores();
        let (from, to) = (sqlite.open(), postgres.open());
        fill(&from);
        let copied = from.copy_into(&to).unwrap();
        assert_eq!(copied.total(), 6, "{copied:?}");
        assert_eq!(to.deployed().unwrap(), from.deployed().unwrap());
        assert_eq!(to.runs(10).unwrap(), from.runs(10).unwrap());
        assert_eq!(
            to.steps_of("si-staging-vpc", 10).unwrap(),
            from.steps_of("si-staging-vpc", 10).unwrap()
        );
        assert_eq!(to.pulls(10).unwrap(), from.pulls(10).unwrap());
        let next = to.begin_run("c2", Trigger::Apply).unwrap();
        assert_eq!(next, from.runs(1).unwrap()[0].id + 1);
        // A reader of changes sees every copied instance.
        assert_eq!(to.deployed_since(-1).unwrap().rows.len(), 1);

        let err = from.copy_into(&to).unwrap_err().to_string();
        assert!(err.contains("must be empty"), "{err}");
        assert!(err.contains("pull_requests"), "{err}");

        // And back, into a new SQLite file.
        let dir = tempfile::tempdir().unwrap();
        let back = Store::open(&dir.path().join("back.db")).unwrap();
        to.copy_into(&back).unwrap();
        assert_eq!(back.deployed().unwrap(), to.deployed().unwrap());
        assert_eq!(back.runs(10).unwrap(), to.runs(10).unwrap());
        assert!(back.begin_run("c3", Trigger::Apply).unwrap() > next);
    }

    /// A table added by a later migration is copied too, or said here why not.
    #[test]
    fn every_table_is_copied() {
        let [sqlite, _] = both_stores();
        let mut tables: Vec<String> = sqlite
            .open()
            .with(|c| {
                c.query(
                    "SELECT name FROM sqlite_master WHERE type = 'table'
                     AND name NOT LIKE 'sqlite_%' AND name NOT IN ('instance_sequence', 'fence') ORDER BY name",
                    &[],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect()
            })
            .unwrap();
        let mut copied: Vec<&str> = TABLES.to_vec();
        copied.sort();
        tables.sort();
        assert_eq!(
            tables, copied,
            "instance_sequence (kept by triggers) and fence (moved on by each takeover) are each store's own"
        );
    }
}
