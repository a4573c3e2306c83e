//! The state database: embedded SQLite in the state directory, in WAL mode with
//! `synchronous=FULL`, with migrations versioned here (`PRAGMA user_version`). It holds
//! the daemon's pull-request bookkeeping (which comment is ours, what was posted, which
//! instances each open PR changes), so that after any failure or restart nothing is
//! posted twice; and what is deployed (`deploys.rs`): per instance its inputs, artifacts
//! and status, every run and step. Each write is one transaction, so a crash at any point
//! loses nothing that was committed.

mod deploys;

pub use deploys::{NewStep, Recovered, RunRecord, StepRecord};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

/// Each entry moves the schema one version up; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: pull-request bookkeeping of the daemon.
    "CREATE TABLE pull_requests (
         number INTEGER PRIMARY KEY,
         open INTEGER NOT NULL DEFAULT 1,
         head_sha TEXT,
         base_sha TEXT,
         planned_at INTEGER,
         comment_id INTEGER,
         comment_digest TEXT
     );
     CREATE TABLE pull_request_changes (
         number INTEGER NOT NULL REFERENCES pull_requests(number) ON DELETE CASCADE,
         instance TEXT NOT NULL,
         PRIMARY KEY (number, instance)
     );
     CREATE INDEX pull_request_changes_instance ON pull_request_changes(instance);
     CREATE TABLE commit_statuses (
         sha TEXT NOT NULL,
         context TEXT NOT NULL,
         state TEXT NOT NULL,
         description TEXT NOT NULL,
         posted_at INTEGER NOT NULL,
         PRIMARY KEY (sha, context)
     );",
    // 2: deploys (DESIGN section 10): what is deployed per instance, every run and step.
    "CREATE TABLE runs (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         commit_sha TEXT NOT NULL,
         trigger TEXT NOT NULL,
         status TEXT NOT NULL,
         summary TEXT NOT NULL DEFAULT '',
         started_at INTEGER NOT NULL,
         finished_at INTEGER
     );
     CREATE TABLE steps (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         run_id INTEGER NOT NULL REFERENCES runs(id),
         instance TEXT NOT NULL,
         action TEXT NOT NULL,
         status TEXT NOT NULL,
         message TEXT NOT NULL DEFAULT '',
         log_path TEXT,
         started_at INTEGER NOT NULL,
         finished_at INTEGER
     );
     CREATE INDEX steps_instance ON steps(instance, id);
     CREATE INDEX steps_run ON steps(run_id, id);
     CREATE TABLE instances (
         id TEXT PRIMARY KEY,
         project TEXT NOT NULL,
         environment TEXT NOT NULL,
         package TEXT NOT NULL,
         status TEXT NOT NULL,
         inputs TEXT NOT NULL,
         digest TEXT NOT NULL,
         artifacts TEXT NOT NULL,
         commit_sha TEXT NOT NULL,
         attributes TEXT NOT NULL,
         sensitive TEXT NOT NULL,
         updated_at INTEGER NOT NULL,
         step_id INTEGER REFERENCES steps(id)
     );
     CREATE TABLE deploy_comments (
         sha TEXT NOT NULL,
         pr INTEGER NOT NULL,
         comment_id INTEGER,
         digest TEXT,
         PRIMARY KEY (sha, pr)
     );",
];

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("opening the state database {path}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the state database {path} is at schema version {found}, newer than this capstan knows ({known}); upgrade capstan"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error("state database query failed")]
    Query(#[from] rusqlite::Error),
    #[error("the state database has an unreadable {what} for {key}")]
    Corrupt { what: &'static str, key: String },
}

/// What was last posted as our comment on a pull request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommentRecord {
    pub id: u64,
    /// SHA-256 of the body, so an identical body is not sent again.
    pub digest: String,
}

pub struct Store {
    conn: Mutex<Connection>,
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        let open_err = |source| StateError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(open_err)?;
        if version as usize > MIGRATIONS.len() {
            return Err(StateError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known: MIGRATIONS.len(),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(open_err)?;
            tx.execute_batch(sql).map_err(open_err)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(open_err)?;
            tx.commit().map_err(open_err)?;
        }
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is still safe to use.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut conn)?)
    }

    pub fn comment(&self, pr: u64) -> Result<Option<CommentRecord>, StateError> {
        self.with(|c| {
            c.query_row(
                "SELECT comment_id, comment_digest FROM pull_requests WHERE number = ?1 AND comment_id IS NOT NULL",
                params![pr as i64],
                |r| {
                    Ok(CommentRecord {
                        id: r.get::<_, i64>(0)? as u64,
                        digest: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    })
                },
            )
            .optional()
        })
    }

    pub fn set_comment(&self, pr: u64, record: Option<&CommentRecord>) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO pull_requests (number, comment_id, comment_digest) VALUES (?1, ?2, ?3)
                 ON CONFLICT(number) DO UPDATE SET comment_id = ?2, comment_digest = ?3",
                params![
                    pr as i64,
                    record.map(|r| r.id as i64),
                    record.map(|r| r.digest.clone())
                ],
            )
            .map(drop)
        })
    }

    /// The status last posted for `context` on commit `sha`: (state, description).
    pub fn status(&self, sha: &str, context: &str) -> Result<Option<(String, String)>, StateError> {
        self.with(|c| {
            c.query_row(
                "SELECT state, description FROM commit_statuses WHERE sha = ?1 AND context = ?2",
                params![sha, context],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
    }

    pub fn set_status(
        &self,
        sha: &str,
        context: &str,
        state: &str,
        description: &str,
    ) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO commit_statuses (sha, context, state, description, posted_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(sha, context) DO UPDATE SET state = ?3, description = ?4, posted_at = ?5",
                params![sha, context, state, description, now()],
            )
            .map(drop)
        })
    }

    /// Records a finished plan of `pr`: the commits and the instances it changes.
    pub fn record_plan(
        &self,
        pr: u64,
        head_sha: &str,
        base_sha: &str,
        instances: &[String],
    ) -> Result<(), StateError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO pull_requests (number, open, head_sha, base_sha, planned_at) VALUES (?1, 1, ?2, ?3, ?4)
                 ON CONFLICT(number) DO UPDATE SET open = 1, head_sha = ?2, base_sha = ?3, planned_at = ?4",
                params![pr as i64, head_sha, base_sha, now()],
            )?;
            tx.execute(
                "DELETE FROM pull_request_changes WHERE number = ?1",
                params![pr as i64],
            )?;
            {
                let mut insert = tx.prepare(
                    "INSERT OR IGNORE INTO pull_request_changes (number, instance) VALUES (?1, ?2)",
                )?;
                for i in instances {
                    insert.execute(params![pr as i64, i])?;
                }
            }
            tx.commit()
        })
    }

    /// The (head, base) commits `pr` was last planned at.
    pub fn planned(&self, pr: u64) -> Result<Option<(String, String)>, StateError> {
        self.with(|c| {
            c.query_row(
                "SELECT head_sha, base_sha FROM pull_requests WHERE number = ?1 AND head_sha IS NOT NULL AND open = 1",
                params![pr as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
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
            let mut q = c.prepare(
                "SELECT ch.number FROM pull_request_changes ch JOIN pull_requests p ON p.number = ch.number
                 WHERE ch.instance = ?1 AND ch.number != ?2 AND p.open = 1",
            )?;
            for i in instances {
                let rows = q.query_map(params![i, pr as i64], |r| r.get::<_, i64>(0))?;
                for other in rows {
                    out.entry(other? as u64).or_default().push(i.clone());
                }
            }
            Ok(out)
        })
    }

    /// The instances `pr` changed at its last plan.
    pub fn changes(&self, pr: u64) -> Result<Vec<String>, StateError> {
        self.with(|c| {
            let mut q = c.prepare(
                "SELECT instance FROM pull_request_changes WHERE number = ?1 ORDER BY instance",
            )?;
            q.query_map(params![pr as i64], |r| r.get(0))?.collect()
        })
    }

    /// Open pull requests the database knows, with the instances each changes.
    pub fn open_pulls(&self) -> Result<BTreeMap<u64, Vec<String>>, StateError> {
        self.with(|c| {
            let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
            let mut q = c.prepare(
                "SELECT p.number, ch.instance FROM pull_requests p
                 LEFT JOIN pull_request_changes ch ON ch.number = p.number WHERE p.open = 1",
            )?;
            let rows = q.query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            for row in rows {
                let (n, instance) = row?;
                let entry = out.entry(n as u64).or_default();
                entry.extend(instance);
            }
            Ok(out)
        })
    }

    /// A closed pull request no longer overlaps anything; its comment record is kept.
    pub fn close(&self, pr: u64) -> Result<(), StateError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE pull_requests SET open = 0 WHERE number = ?1",
                params![pr as i64],
            )?;
            tx.execute(
                "DELETE FROM pull_request_changes WHERE number = ?1",
                params![pr as i64],
            )?;
            tx.commit()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_keeps_rows_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let store = Store::open(&path).unwrap();
            store
                .set_comment(
                    7,
                    Some(&CommentRecord {
                        id: 42,
                        digest: "d".into(),
                    }),
                )
                .unwrap();
            store
                .record_plan(7, "head", "base", &["si-staging-vpc".into()])
                .unwrap();
            store
                .record_plan(8, "h8", "b8", &["si-staging-vpc".into(), "x".into()])
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.comment(7).unwrap().unwrap().id, 42);
        assert_eq!(
            store.planned(7).unwrap(),
            Some(("head".into(), "base".into()))
        );
        let overlaps = store.overlaps(7, &["si-staging-vpc".into()]).unwrap();
        assert_eq!(
            overlaps.get(&8).unwrap(),
            &vec!["si-staging-vpc".to_string()]
        );
        store.close(8).unwrap();
        assert!(
            store
                .overlaps(7, &["si-staging-vpc".into()])
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .open_pulls()
                .unwrap()
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            vec![7]
        );
    }

    #[test]
    fn refuses_a_database_from_a_newer_capstan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 999)
            .unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(
            err.to_string().contains("newer than this capstan knows"),
            "{err}"
        );
    }
}
