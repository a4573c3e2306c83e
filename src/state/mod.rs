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
mod copy;
mod db;
mod location;
mod locks;
mod queue;
mod rows;
mod schema;
pub mod test_server;

pub use copy::{Copied, CopyError};
pub use db::DbError;
pub use deploys::{Changed, NewStep, Recovered};
pub use history::{RunRecord, StepRecord};
pub use location::{Location, PgTarget};
pub use locks::{Lock, LockError, SessionLock};
pub use previews::{PreviewRecord, PreviewStatus};
pub use pulls::{Note, PullRecord};

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::core::time::Timestamp;
use db::{Db, PgConn};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("opening the state database {at}")]
    Open { at: String, source: DbError },
    #[error(
        "the state database {at} is at schema version {found}, newer than this capstan knows ({known}); upgrade capstan"
    )]
    TooNew {
        at: String,
        found: i64,
        known: usize,
    },
    #[error("creating the state database {path}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Location(String),
    #[error("state database query failed")]
    Query(#[from] DbError),
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
    db: Mutex<Backend>,
    location: Location,
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(PgConn),
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
    /// Opens (creating if needed) and migrates the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        Store::open_at(&Location::File(path.to_path_buf()))
    }

    /// Opens and migrates the store at `location`: an SQLite file (created if needed) or a
    /// PostgreSQL database (which must exist; its tables are created).
    pub fn open_at(location: &Location) -> Result<Store, StateError> {
        let open_err = |source| StateError::Open {
            at: location.to_string(),
            source,
        };
        let (backend, migrated) = match location {
            Location::File(path) => {
                let mut conn = open_sqlite(path)?;
                let migrated = schema::migrate_sqlite(&mut conn).map_err(open_err)?;
                (Backend::Sqlite(conn), migrated)
            }
            Location::Postgres(target) => {
                let mut conn = PgConn::connect(&target.config).map_err(open_err)?;
                let migrated = schema::migrate_postgres(&mut conn).map_err(open_err)?;
                (Backend::Postgres(conn), migrated)
            }
        };
        if let Err(schema::TooNew(found)) = migrated {
            return Err(StateError::TooNew {
                at: location.to_string(),
                found,
                known: schema::VERSION,
            });
        }
        Ok(Store {
            db: Mutex::new(backend),
            location: location.clone(),
        })
    }

    /// Where this store is (a PostgreSQL address without its password).
    pub fn location(&self) -> &Location {
        &self.location
    }

    fn with<T>(&self, f: impl FnOnce(&mut Db<'_>) -> Result<T, DbError>) -> Result<T, StateError> {
        // A panic while holding the lock cannot leave the database half-written
        // (transactions roll back), so a poisoned lock is still safe to use.
        let mut backend = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let mut db = match &mut *backend {
            Backend::Sqlite(conn) => Db::Sqlite(conn),
            Backend::Postgres(conn) => {
                // A server restarted or failed over: this call connects again; the call
                // that met the closed connection has already failed, and nothing of it
                // was committed unless its answer said so.
                if conn.is_closed()
                    && let Location::Postgres(target) = &self.location
                {
                    *conn = PgConn::connect(&target.config)?;
                }
                Db::Postgres(conn)
            }
        };
        Ok(f(&mut db)?)
    }
}

/// Opens the SQLite file at `path`, created owner-only first: its WAL and shared-memory
/// files take the database file's permissions, and the rows hold artifacts, secrets
/// included.
fn open_sqlite(path: &Path) -> Result<rusqlite::Connection, StateError> {
    let open_err = |source: rusqlite::Error| StateError::Open {
        at: path.display().to_string(),
        source: source.into(),
    };
    if !path.exists() {
        private_file(path).map_err(|source| StateError::Create {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let conn = rusqlite::Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_server::both_stores;

    #[test]
    fn migrates_once_and_keeps_rows_across_reopen() {
        for at in both_stores() {
            {
                let store = at.open();
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
            let store = at.open();
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
                vec![7],
                "{}",
                at.location
            );
        }
    }

    #[test]
    fn refuses_a_database_from_a_newer_capstan() {
        for at in both_stores() {
            let store = at.open();
            store
                .with(|c| match c {
                    Db::Sqlite(_) => c.batch("PRAGMA user_version = 999"),
                    Db::Postgres(_) => c.batch("UPDATE capstan_schema SET version = 999"),
                })
                .unwrap();
            drop(store);
            let err = Store::open_at(&at.location).err().unwrap();
            assert!(
                err.to_string().contains("newer than this capstan knows"),
                "{err}"
            );
        }
    }

    /// Both stores' migrations make the same tables with the same columns, in order.
    #[test]
    fn both_stores_have_the_same_tables_and_columns() {
        let [sqlite, postgres] = both_stores();
        let columns = |store: Store, sql: &str| {
            store
                .with(|c| {
                    c.query(sql, &[])?
                        .iter()
                        .map(|r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)))
                        .collect::<Result<Vec<_>, DbError>>()
                })
                .unwrap()
        };
        let lite = columns(
            sqlite.open(),
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
        );
        let pg = columns(
            postgres.open(),
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name != 'capstan_schema'
             ORDER BY table_name, ordinal_position",
        );
        assert!(lite.len() > 50, "{lite:?}");
        assert_eq!(lite, pg);
    }
}
