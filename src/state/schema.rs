//! The state's schema, versioned: one list of migrations per store, entry for entry the
//! same versions and the same tables and columns in each store's dialect (a test compares
//! them). SQLite records its version in `PRAGMA user_version`, PostgreSQL in the
//! one-row table `capstan_schema`. Each migration is one transaction; PostgreSQL's also
//! hold the store's write lock, so replicas starting together migrate once.

use super::db::{Db, DbError, PgConn};

/// How many versions this capstan knows.
pub const VERSION: usize = SQLITE.len();

/// SQLite's: each entry moves the schema one version up; never edit one that has shipped.
const SQLITE: &[&str] = &[
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
    // 8: fencing (docs/replicas.md): whoever takes the state over for deploying moves the
    // token on; each step records the token it started under, and its result is written
    // only while that token is still the current one.
    "CREATE TABLE fence (id INTEGER PRIMARY KEY CHECK (id = 1), token INTEGER NOT NULL);
     INSERT INTO fence (id, token) VALUES (1, 0);
     ALTER TABLE steps ADD COLUMN fence INTEGER;",
];

/// PostgreSQL's, version for version the same as SQLite's: integers are BIGINT (GitHub's
/// ids do not fit 32 bits), ids are identity columns, and the instance sequence is kept
/// by PL/pgSQL triggers. Never edit one that has shipped.
const POSTGRES: &[&str] = &[
    // 1
    "CREATE TABLE pull_requests (
         number BIGINT PRIMARY KEY,
         open BIGINT NOT NULL DEFAULT 1,
         head_sha TEXT,
         base_sha TEXT,
         planned_at BIGINT,
         comment_id BIGINT,
         comment_digest TEXT
     );
     CREATE TABLE pull_request_changes (
         number BIGINT NOT NULL REFERENCES pull_requests(number) ON DELETE CASCADE,
         instance TEXT NOT NULL,
         PRIMARY KEY (number, instance)
     );
     CREATE INDEX pull_request_changes_instance ON pull_request_changes(instance);
     CREATE TABLE commit_statuses (
         sha TEXT NOT NULL,
         context TEXT NOT NULL,
         state TEXT NOT NULL,
         description TEXT NOT NULL,
         posted_at BIGINT NOT NULL,
         PRIMARY KEY (sha, context)
     );",
    // 2
    "CREATE TABLE runs (
         id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
         commit_sha TEXT NOT NULL,
         trigger TEXT NOT NULL,
         status TEXT NOT NULL,
         summary TEXT NOT NULL DEFAULT '',
         started_at BIGINT NOT NULL,
         finished_at BIGINT
     );
     CREATE TABLE steps (
         id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
         run_id BIGINT NOT NULL REFERENCES runs(id),
         instance TEXT NOT NULL,
         action TEXT NOT NULL,
         status TEXT NOT NULL,
         message TEXT NOT NULL DEFAULT '',
         log_path TEXT,
         started_at BIGINT NOT NULL,
         finished_at BIGINT
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
         updated_at BIGINT NOT NULL,
         step_id BIGINT REFERENCES steps(id)
     );
     CREATE TABLE deploy_comments (
         sha TEXT NOT NULL,
         pr BIGINT NOT NULL,
         comment_id BIGINT,
         digest TEXT,
         PRIMARY KEY (sha, pr)
     );",
    // 3
    "CREATE TABLE previews (
         project TEXT NOT NULL,
         name TEXT NOT NULL,
         pr BIGINT,
         head_sha TEXT NOT NULL,
         status TEXT NOT NULL,
         created_at BIGINT NOT NULL,
         pushed_at BIGINT NOT NULL,
         ttl_secs BIGINT NOT NULL,
         PRIMARY KEY (project, name)
     );
     CREATE INDEX previews_pr ON previews(pr);
     CREATE TABLE preview_approvals (
         pr BIGINT PRIMARY KEY,
         approved_by TEXT NOT NULL,
         approved_at BIGINT NOT NULL
     );
     ALTER TABLE pull_requests ADD COLUMN comment_body TEXT;
     ALTER TABLE pull_requests ADD COLUMN preview_note TEXT;",
    // 4
    "ALTER TABLE instances ADD COLUMN drift_status TEXT;
     ALTER TABLE instances ADD COLUMN drift_since BIGINT;
     ALTER TABLE instances ADD COLUMN drift_summary TEXT;
     ALTER TABLE instances ADD COLUMN drift_checked_at BIGINT;
     CREATE TABLE drift_issue (
         id BIGINT PRIMARY KEY CHECK (id = 1),
         number BIGINT NOT NULL,
         open BIGINT NOT NULL,
         digest TEXT NOT NULL
     );",
    // 5
    "ALTER TABLE pull_requests ADD COLUMN plan_section TEXT;",
    // 6
    "CREATE TABLE pull_request_resources (
         number BIGINT NOT NULL,
         head_sha TEXT NOT NULL,
         instance TEXT NOT NULL,
         reuse_key TEXT NOT NULL,
         piece TEXT,
         PRIMARY KEY (number, instance)
     );
     CREATE TABLE deep_approvals (
         number BIGINT PRIMARY KEY,
         head_sha TEXT NOT NULL,
         approved_by TEXT NOT NULL
     );
     ALTER TABLE pull_requests ADD COLUMN plan_status TEXT;",
    // 7: a row's new number is set before it is written, so no trigger writes the row again.
    "ALTER TABLE instances ADD COLUMN changed BIGINT NOT NULL DEFAULT 0;
     CREATE TABLE instance_sequence (id BIGINT PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL);
     INSERT INTO instance_sequence (id, seq) VALUES (1, 1);
     UPDATE instances SET changed = 1;
     CREATE INDEX instances_changed ON instances(changed);
     CREATE FUNCTION capstan_instance_written() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         UPDATE instance_sequence SET seq = seq + 1 RETURNING seq INTO NEW.changed;
         RETURN NEW;
     END
     $$;
     CREATE TRIGGER instances_written BEFORE INSERT OR UPDATE ON instances
         FOR EACH ROW EXECUTE FUNCTION capstan_instance_written();
     CREATE FUNCTION capstan_instance_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         UPDATE instance_sequence SET seq = seq + 1;
         RETURN OLD;
     END
     $$;
     CREATE TRIGGER instances_deleted AFTER DELETE ON instances
         FOR EACH ROW EXECUTE FUNCTION capstan_instance_deleted();",
    // 8
    "CREATE TABLE fence (id BIGINT PRIMARY KEY CHECK (id = 1), token BIGINT NOT NULL);
     INSERT INTO fence (id, token) VALUES (1, 0);
     ALTER TABLE steps ADD COLUMN fence BIGINT;",
];

const _: () = assert!(
    SQLITE.len() == POSTGRES.len(),
    "one migration per version in each store"
);

/// A store at a version this capstan does not know.
#[derive(Debug)]
pub struct TooNew(pub i64);

/// Brings an SQLite store up to [`VERSION`].
pub fn migrate_sqlite(conn: &mut rusqlite::Connection) -> Result<Result<(), TooNew>, DbError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version as usize > VERSION {
        return Ok(Err(TooNew(version)));
    }
    for (i, sql) in SQLITE.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(Ok(()))
}

/// Brings a PostgreSQL store up to [`VERSION`], one transaction per version.
pub fn migrate_postgres(conn: &mut PgConn) -> Result<Result<(), TooNew>, DbError> {
    Db::Postgres(conn).transaction(|db| {
        db.batch(
            "CREATE TABLE IF NOT EXISTS capstan_schema (
                 id BIGINT PRIMARY KEY CHECK (id = 1),
                 version BIGINT NOT NULL
             );
             INSERT INTO capstan_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;",
        )
    })?;
    loop {
        let done = Db::Postgres(conn).transaction(|db| {
            let version: i64 = db
                .query_one("SELECT version FROM capstan_schema", &[])?
                .get(0)?;
            let Some(sql) = usize::try_from(version).ok().and_then(|v| POSTGRES.get(v)) else {
                return Ok(Some(version));
            };
            db.batch(sql)?;
            db.execute("UPDATE capstan_schema SET version = version + 1", &[])?;
            Ok(None)
        })?;
        if let Some(version) = done {
            return Ok(if version as usize > VERSION {
                Err(TooNew(version))
            } else {
                Ok(())
            });
        }
    }
}
