//! One way to talk to either store: SQL written once, in the dialect SQLite and PostgreSQL
//! share (`?N` parameters, `ON CONFLICT`, `RETURNING`), run on an embedded SQLite
//! connection or on a PostgreSQL one. Rows come back as plain [`Value`]s, read with
//! [`Row::get`], so the queries in the rest of the state are the same for both.
//!
//! PostgreSQL is reached through `tokio-postgres`, a PostgreSQL-only driver (no second
//! copy of SQLite is linked). Its connection runs on a thread of its own; the store's
//! callers block on each answer as they do on SQLite's, from any thread, a tokio worker's
//! included. Every PostgreSQL transaction first takes one transaction-scoped advisory
//! lock, so writers take turns across machines as SQLite's writers do in one file.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::core::commit::CommitId;
use crate::core::time::Timestamp;

/// The advisory lock every PostgreSQL transaction of the store holds (an arbitrary
/// constant: "capstan" in ASCII).
const WRITE_LOCK: i64 = 0x6361_7073_7461_6e00;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL: the connection's thread could not start")]
    NoConnection,
    #[error("a query that answers one row answered none")]
    NoRow,
    #[error(
        "fenced off: this deploy holds fencing token {token}, but another has taken the state over since (token {current}); nothing was written"
    )]
    Fenced { token: i64, current: i64 },
    #[error("{0} need the state in PostgreSQL")]
    NeedsPostgres(&'static str),
    #[error("unknown {what} `{text}`")]
    Unknown { what: &'static str, text: String },
    #[error("column {column} holds {found}, not {wanted}")]
    Type {
        column: usize,
        wanted: &'static str,
        found: &'static str,
    },
}

/// tokio-postgres's errors print only "db error"; the server's own message says what.
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {} ({})", db.message(), db.code().code()),
        None => format!("PostgreSQL: {e}"),
    }
}

/// A parameter or a column's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Text(Cow<'a, str>),
}

impl Value<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Text(_) => "text",
        }
    }
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<Timestamp> for Value<'_> {
    fn from(v: Timestamp) -> Self {
        Value::Int(v.secs())
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(Cow::Borrowed(v))
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(Cow::Borrowed(v))
    }
}

impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Value::Text(Cow::Owned(v))
    }
}

impl<'a> From<&'a CommitId> for Value<'a> {
    fn from(v: &'a CommitId) -> Self {
        Value::Text(Cow::Borrowed(v.as_str()))
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Parameters for a query, each converted by [`Value::from`].
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        &[$($crate::state::db::Value::from($v)),*][..]
    };
}
pub(super) use args;

/// A value read from a column.
pub trait FromValue: Sized {
    const WANTED: &'static str;
    fn from_value(v: Value<'static>) -> Option<Self>;
}

impl FromValue for i64 {
    const WANTED: &'static str = "an integer";
    fn from_value(v: Value<'static>) -> Option<Self> {
        match v {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }
}

impl FromValue for bool {
    const WANTED: &'static str = "a boolean";
    fn from_value(v: Value<'static>) -> Option<Self> {
        i64::from_value(v).map(|i| i != 0)
    }
}

impl FromValue for String {
    const WANTED: &'static str = "text";
    fn from_value(v: Value<'static>) -> Option<Self> {
        match v {
            Value::Text(t) => Some(t.into_owned()),
            _ => None,
        }
    }
}

impl FromValue for Timestamp {
    const WANTED: &'static str = "a time";
    fn from_value(v: Value<'static>) -> Option<Self> {
        i64::from_value(v).map(Timestamp::from_secs)
    }
}

impl FromValue for CommitId {
    const WANTED: &'static str = "a commit";
    fn from_value(v: Value<'static>) -> Option<Self> {
        String::from_value(v).map(CommitId::from)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const WANTED: &'static str = T::WANTED;
    fn from_value(v: Value<'static>) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row of a query's answer.
#[derive(Debug)]
pub struct Row(Vec<Value<'static>>);

impl Row {
    /// Every column's value, in order.
    pub fn values(&self) -> &[Value<'static>] {
        &self.0
    }

    pub fn get<T: FromValue>(&self, column: usize) -> Result<T, DbError> {
        let v = self.0.get(column).cloned().unwrap_or(Value::Null);
        let found = v.kind();
        T::from_value(v).ok_or(DbError::Type {
            column,
            wanted: T::WANTED,
            found,
        })
    }
}

/// An open PostgreSQL connection, with the statements it has prepared.
pub struct PgConn {
    client: tokio_postgres::Client,
    statements: HashMap<String, tokio_postgres::Statement>,
}

impl PgConn {
    /// Connects on a thread of its own, which drives the connection until the client goes.
    pub fn connect(config: &tokio_postgres::Config) -> Result<PgConn, DbError> {
        let config = config.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("capstan-postgres".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the PostgreSQL connection's runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    match config.connect(tokio_postgres::NoTls).await {
                        Ok((client, connection)) => {
                            if tx.send(Ok(client)).is_ok()
                                && let Err(e) = connection.await
                            {
                                tracing::warn!(error = %postgres_message(&e), "the PostgreSQL connection ended");
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the PostgreSQL connection's thread");
        }
        match rx.recv() {
            Ok(client) => Ok(PgConn {
                client: client?,
                statements: HashMap::new(),
            }),
            // The thread ended without a word: its runtime could not start (logged above).
            Err(_) => Err(DbError::NoConnection),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn statement(&mut self, sql: &str) -> Result<tokio_postgres::Statement, DbError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let text = dollar_parameters(sql);
        let statement = block_on(self.client.prepare(&text))?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    fn query(&mut self, sql: &str, args: &[Value<'_>]) -> Result<Vec<Row>, DbError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        let rows = block_on(self.client.query(&statement, &params))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<_, Value<'static>>(i).map_err(DbError::from))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect()
    }

    fn execute(&mut self, sql: &str, args: &[Value<'_>]) -> Result<u64, DbError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        Ok(block_on(self.client.execute(&statement, &params))?)
    }

    pub fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(block_on(self.client.batch_execute(sql))?)
    }
}

/// Waits for `f` on this thread. The connection's I/O runs on its own thread, so this
/// never needs (nor disturbs) a tokio runtime of the caller's.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

/// `?N` (SQLite's numbered parameter) as `$N` (PostgreSQL's), outside quoted text.
fn dollar_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be stored as {ty}").into()),
            },
            Value::Text(t) => t.as_ref().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value<'static> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            _ => Value::Text(Cow::Owned(String::from_sql(ty, raw)?)),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL)
            || <String as FromSql>::accepts(ty)
    }
}

/// Either store's connection, for one call.
pub enum Db<'c> {
    Sqlite(&'c rusqlite::Connection),
    Postgres(&'c mut PgConn),
}

impl Db<'_> {
    /// Every row `sql` selects.
    pub fn query(&mut self, sql: &str, args: &[Value<'_>]) -> Result<Vec<Row>, DbError> {
        match self {
            Db::Sqlite(c) => {
                let mut q = c.prepare_cached(sql)?;
                let n = q.column_count();
                let params = rusqlite::params_from_iter(args.iter());
                let mut rows = q.query(params)?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(Row((0..n)
                        .map(|i| sqlite_value(r, i))
                        .collect::<Result<_, _>>()?));
                }
                Ok(out)
            }
            Db::Postgres(c) => c.query(sql, args),
        }
    }

    /// The first row `sql` selects, if any.
    pub fn query_opt(&mut self, sql: &str, args: &[Value<'_>]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The one row `sql` selects (an aggregate, `RETURNING`).
    pub fn query_one(&mut self, sql: &str, args: &[Value<'_>]) -> Result<Row, DbError> {
        match self.query_opt(sql, args)? {
            Some(r) => Ok(r),
            None => Err(DbError::NoRow),
        }
    }

    /// Runs `sql`; how many rows it changed.
    pub fn execute(&mut self, sql: &str, args: &[Value<'_>]) -> Result<u64, DbError> {
        match self {
            Db::Sqlite(c) => {
                let mut q = c.prepare_cached(sql)?;
                Ok(q.execute(rusqlite::params_from_iter(args.iter()))? as u64)
            }
            Db::Postgres(c) => c.execute(sql, args),
        }
    }

    /// Runs statements without parameters (a migration).
    pub fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(c) => c.batch(sql),
        }
    }

    /// Runs `f` in one transaction: all of it is committed, or (on an error) none.
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Db<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        match self {
            Db::Sqlite(c) => c.execute_batch("BEGIN")?,
            Db::Postgres(c) => {
                c.batch("BEGIN")?;
                if let Err(e) = c.execute("SELECT pg_advisory_xact_lock(?1)", args![WRITE_LOCK]) {
                    let _ = c.batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        let result = f(self);
        let end = match (&result, &mut *self) {
            (Ok(_), Db::Sqlite(c)) => c.execute_batch("COMMIT").map_err(DbError::from),
            (Ok(_), Db::Postgres(c)) => c.batch("COMMIT"),
            (Err(_), Db::Sqlite(c)) => c.execute_batch("ROLLBACK").map_err(DbError::from),
            (Err(_), Db::Postgres(c)) => c.batch("ROLLBACK"),
        };
        let value = result?;
        end?;
        Ok(value)
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

fn sqlite_value(r: &rusqlite::Row<'_>, i: usize) -> Result<Value<'static>, DbError> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Text(t) => Value::Text(Cow::Owned(String::from_utf8_lossy(t).into_owned())),
        ValueRef::Real(_) => {
            return Err(DbError::Type {
                column: i,
                wanted: "an integer or text",
                found: "a real number",
            });
        }
        ValueRef::Blob(_) => {
            return Err(DbError::Type {
                column: i,
                wanted: "an integer or text",
                found: "a blob",
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_dollars_outside_quotes() {
        assert_eq!(
            dollar_parameters("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12"
        );
    }
}
