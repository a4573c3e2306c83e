//! Locks held across machines when the state is in PostgreSQL: session advisory locks, each
//! on a connection of its own (never through a transaction pooler, which would hand the
//! session to someone else), released when the connection closes, so a process that dies
//! lets go as a dead process's `flock` does. The connection's `application_name` says who
//! holds it, so a refused process can name the holder.

use super::db::{Db, DbError, PgConn, args};
use super::{Location, StateError, Store};

/// Which lock.
#[derive(Clone, Copy, Debug)]
pub enum Lock {
    /// Deploys of the branch, and everything else that takes the state over.
    Deploy,
    /// The replica that runs the schedules and polling.
    Leader,
}

impl Lock {
    fn key(self) -> i64 {
        match self {
            // "capdeploy" in ASCII, cut to 64 bits: any constant no other program uses.
            Lock::Deploy => 0x6361_7064_6570_6c6f,
            // "capleadr".
            Lock::Leader => 0x6361_706c_6561_6472,
        }
    }
}

/// Held while alive; dropping it closes its connection, which releases the lock.
pub struct SessionLock {
    conn: PgConn,
}

impl SessionLock {
    /// Whether the lock is still held: its connection answers. A connection the server
    /// or the network dropped has lost the lock (the server released it).
    pub fn alive(&mut self) -> bool {
        !self.conn.is_closed()
            && Db::Postgres(&mut self.conn)
                .query_one("SELECT 1", &[])
                .is_ok()
    }
}

impl Store {
    /// Takes `lock` if no one holds it, naming the holder `holder` (e.g. `capstan serve
    /// pid 123 on web-1`). `Ok(None)` for a store that needs no such lock (SQLite: one
    /// machine, where the state folder's file lock serves); `Err(Busy)` with who holds it.
    pub fn try_lock(&self, lock: Lock, holder: &str) -> Result<Option<SessionLock>, LockError> {
        let Location::Postgres(target) = self.location() else {
            return Ok(None);
        };
        let mut config = target.config.clone();
        config.application_name(holder);
        let mut conn = PgConn::connect(&config).map_err(StateError::from)?;
        let mut db = Db::Postgres(&mut conn);
        let taken: bool = db
            .query_one("SELECT pg_try_advisory_lock(?1)", args![lock.key()])
            .and_then(|r| r.get(0))
            .map_err(StateError::from)?;
        if taken {
            return Ok(Some(SessionLock { conn }));
        }
        let holder = holder_of(&mut db, lock).map_err(StateError::from)?;
        Err(LockError::Busy(holder))
    }
}

/// The `application_name` of whoever holds `lock` (empty if it was just released).
fn holder_of(db: &mut Db<'_>, lock: Lock) -> Result<String, DbError> {
    let key = lock.key();
    let row = db.query_opt(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted
           AND l.classid::bigint = ?1 AND l.objid::bigint = ?2 AND l.objsubid = 1",
        args![key >> 32, key & 0xffff_ffff],
    )?;
    match row {
        Some(r) => r.get(0),
        None => Ok(String::new()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    State(#[from] StateError),
    /// Someone holds it: their name.
    #[error("held by {0}")]
    Busy(String),
}
