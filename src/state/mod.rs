//! The state database: embedded SQLite in the state directory, in WAL mode with
//! `synchronous=FULL`, with migrations versioned here (`PRAGMA user_version`). It holds
//! the daemon's pull-request bookkeeping (`pulls.rs`: which comment is ours, what was
//! posted, which instances each open PR changes), so that after any failure or restart
//! nothing is posted twice; what is deployed (`deploys.rs`): per instance its inputs,
//! artifacts and status, every run and step; and the previews (`previews.rs`). Each write is one transaction, so a crash at
//! any point loses nothing that was committed.
//!
//! The state owns its rows: `rows.rs` holds the wire types stored as JSON, converted by
//! hand to and from the core's values, and enums are stored by their names.

mod deploys;
mod history;
mod previews;
mod pulls;
mod resources;
pub use resources::Row as ResourceRow;
mod rows;
mod sql;

pub use deploys::{Changed, NewStep, Recovered};
pub use history::{RunRecord, StepRecord};
pub use previews::{PreviewRecord, PreviewStatus};
pub use pulls::{Note, PullRecord};

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;

use crate::core::time::Timestamp;

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
    // 2: deploys (docs/deploying.md): what is deployed per instance, every run and step.
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
    // 3: previews (docs/previews.md): one row per preview, and `capstan preview` approvals.
    "CREATE TABLE previews (
         project TEXT NOT NULL,
         name TEXT NOT NULL,
         pr INTEGER,
         head_sha TEXT NOT NULL,
         status TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         pushed_at INTEGER NOT NULL,
         ttl_secs INTEGER NOT NULL,
         PRIMARY KEY (project, name)
     );
     CREATE INDEX previews_pr ON previews(pr);
     CREATE TABLE preview_approvals (
         pr INTEGER PRIMARY KEY,
         approved_by TEXT NOT NULL,
         approved_at INTEGER NOT NULL
     );
     ALTER TABLE pull_requests ADD COLUMN comment_body TEXT;
     ALTER TABLE pull_requests ADD COLUMN preview_note TEXT;",
    // 4: drift (docs/drift.md): each instance's last check since its last deploy, and
    // the one drift issue on GitHub.
    "ALTER TABLE instances ADD COLUMN drift_status TEXT;
     ALTER TABLE instances ADD COLUMN drift_since INTEGER;
     ALTER TABLE instances ADD COLUMN drift_summary TEXT;
     ALTER TABLE instances ADD COLUMN drift_checked_at INTEGER;
     CREATE TABLE drift_issue (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         number INTEGER NOT NULL,
         open INTEGER NOT NULL,
         digest TEXT NOT NULL
     );",
    // 5: the pull request's comment composed from its sections: the plan section as the
    // worker computed it (JSON), instead of the rendered body the previews were spliced into.
    "ALTER TABLE pull_requests ADD COLUMN plan_section TEXT;",
    // 6: provisioner plans (docs/provisioner-plans.md): per pull request, each instance's
    // resource piece for a head (NULL while it is planned) and the key it may be reused
    // under, the instance plan's own status
    // (combined with them into capstan/plan), and `capstan plan --deep` approvals, which
    // hold for the head they were given on.
    "CREATE TABLE pull_request_resources (
         number INTEGER NOT NULL,
         head_sha TEXT NOT NULL,
         instance TEXT NOT NULL,
         reuse_key TEXT NOT NULL,
         piece TEXT,
         PRIMARY KEY (number, instance)
     );
     CREATE TABLE deep_approvals (
         number INTEGER PRIMARY KEY,
         head_sha TEXT NOT NULL,
         approved_by TEXT NOT NULL
     );
     ALTER TABLE pull_requests ADD COLUMN plan_status TEXT;",
    // Every write of an instance's row, whoever makes it, takes the next number of one
    // sequence (a delete moves it too), so a reader can fetch what changed since it last
    // looked (`Store::deployed_since`).
    "ALTER TABLE instances ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE instance_sequence (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
     INSERT INTO instance_sequence (id, seq) VALUES (1, 1);
     UPDATE instances SET changed = 1;
     CREATE INDEX instances_changed ON instances(changed);
     CREATE TRIGGER instances_inserted AFTER INSERT ON instances BEGIN
         UPDATE instance_sequence SET seq = seq + 1;
         UPDATE instances SET changed = (SELECT seq FROM instance_sequence) WHERE id = NEW.id;
     END;
     CREATE TRIGGER instances_updated AFTER UPDATE ON instances WHEN NEW.changed = OLD.changed BEGIN
         UPDATE instance_sequence SET seq = seq + 1;
         UPDATE instances SET changed = (SELECT seq FROM instance_sequence) WHERE id = NEW.id;
     END;
     CREATE TRIGGER instances_deleted AFTER DELETE ON instances BEGIN
         UPDATE instance_sequence SET seq = seq + 1;
     END;",
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
    #[error("creating the state database {path}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
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

/// Creates `path` and any missing parents readable by their owner only (0700): the state
/// directory holds artifacts and logs with secrets, as a Terraform state does.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Creates the state folder `path` like [`private_dir`], with a `.gitignore` that ignores
/// everything in it: by default the folder lies inside the checkout it deploys, and its
/// database, logs and working folders (secrets among them) belong in no commit.
pub fn state_folder(path: &Path) -> std::io::Result<()> {
    private_dir(path)?;
    let ignore = path.join(".gitignore");
    if !ignore.exists() {
        use std::io::Write;
        private_file(&ignore)?.write_all(
            b"# capstan's state: a database, logs and working folders with secrets. Never commit it.\n*\n",
        )?;
    }
    Ok(())
}

/// Opens `path` for appending, creating it readable by its owner only (0600).
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Now, by the system clock (the epoch on a clock set before it), to the second.
pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Timestamp::from_secs(secs)
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        let open_err = |source| StateError::Open {
            path: path.to_path_buf(),
            source,
        };
        // Created owner-only before SQLite opens it: its WAL and shared-memory files take
        // the database file's permissions, and the rows hold artifacts, secrets included.
        if !path.exists() {
            private_file(path).map_err(|source| StateError::Create {
                path: path.to_path_buf(),
                source,
            })?;
        }
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
                .record_plan(
                    7,
                    &"head".into(),
                    &"base".into(),
                    &["si-staging-vpc".into()],
                )
                .unwrap();
            store
                .record_plan(
                    8,
                    &"h8".into(),
                    &"b8".into(),
                    &["si-staging-vpc".into(), "x".into()],
                )
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
