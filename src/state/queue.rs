//! Putting work into the durable queue (Graphile Worker's, in its schema `graphile_worker`
//! of a PostgreSQL state) through its documented SQL functions, in the store's own
//! connection: `add_job`, whose job key replaces a job of that key still waiting (a running
//! one is left to finish, and the new one waits behind it), and `remove_job`. The daemon's
//! workers take the jobs (`daemon/durable.rs`).

use super::db::{Db, DbError, args};
use super::{StateError, Store};

impl Store {
    /// Queues task `identifier` with the JSON `payload` in serial queue `queue` (none: runs
    /// beside anything), under `key` (replacing a waiting job of that key), to start after
    /// `delay_secs`, tried at most `attempts` times.
    pub fn enqueue(
        &self,
        identifier: &str,
        payload: &str,
        queue: Option<&str>,
        key: Option<&str>,
        delay_secs: i64,
        attempts: i64,
    ) -> Result<(), StateError> {
        self.with(|c| {
            postgres_only(c)?;
            c.query_one(
                "SELECT id FROM graphile_worker.add_job(
                     identifier => ?1,
                     payload => CAST(CAST(?2 AS text) AS json),
                     queue_name => CAST(?3 AS text),
                     run_at => now() + CAST(?4 AS bigint) * interval '1 second',
                     max_attempts => CAST(?5 AS integer),
                     job_key => CAST(?6 AS text),
                     job_key_mode => 'replace')",
                args![identifier, payload, queue, delay_secs, attempts, key],
            )
            .map(drop)
        })
    }

    /// Drops the waiting job of `key`, if any (a running one finishes).
    pub fn unqueue(&self, key: &str) -> Result<(), StateError> {
        self.with(|c| {
            postgres_only(c)?;
            c.execute("SELECT graphile_worker.remove_job(?1)", args![key])
                .map(drop)
        })
    }
}

fn postgres_only(c: &Db<'_>) -> Result<(), DbError> {
    match c {
        Db::Postgres(_) => Ok(()),
        Db::Sqlite(_) => Err(DbError::NeedsPostgres("durable jobs")),
    }
}
