//! One connection type over the two databases narakim keeps its stores in:
//! SQLite, the embedded default (one file per store, in the data
//! directory), and PostgreSQL, which several engine nodes share.
//!
//! The stores write their SQL once, in the dialect both accept, with
//! SQLite's numbered parameters (`?1`, `?2`, …); [`Conn`] rewrites those
//! to PostgreSQL's `$1` when it talks to PostgreSQL. Where the dialects
//! really differ (schema types, `FOR UPDATE SKIP LOCKED`), a store asks
//! [`Conn::backend`] and says each form.
//!
//! Values cross as [`Value`] (an integer, text, bytes or NULL), and come
//! back through [`Row::get`], so no store names a driver type. Every
//! SQLite statement is prepared once per connection (`prepare_cached`),
//! and every PostgreSQL one once per pooled connection.

pub mod postgres;
pub mod schema;
pub mod tls;

use std::fmt;

pub use postgres::{PgConn, PgPool};

/// Where a store's tables are.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite file in the data directory (`vault.db`, `engine.db`).
    Sqlite,
    /// One PostgreSQL database, shared by the vault, the engine and every
    /// node of a cluster.
    Postgres(PgPool),
}

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A parameter of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
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

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Blob(v)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Value<'a> {
    fn from(v: &'a [u8; N]) -> Self {
        Value::Blob(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Value<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The parameters of a statement, in order: `args![name, 3, bytes]`.
#[macro_export]
macro_rules! args {
    () => { &[][..] as &[$crate::db::Value<'_>] };
    ($($e:expr),+ $(,)?) => { &[$($crate::db::Value::from($e)),+][..] };
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(v),
            Value::Text(v) => ValueRef::Text(v.as_bytes()),
            Value::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

/// Why a statement failed. The text names what the database said, never a
/// parameter's value.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be had (the server is down or unreachable, or
    /// every pooled connection stayed busy).
    #[error("PostgreSQL: no connection: {0}")]
    Unavailable(String),
    #[error("the query returned no rows")]
    NoRows,
    /// A column held what its reader does not take (a store bug or a row
    /// written outside narakim).
    #[error("column {column}: {reason}")]
    Column { column: usize, reason: String },
}

impl DbError {
    /// A UNIQUE or PRIMARY KEY constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            DbError::Postgres(e) => {
                e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            _ => false,
        }
    }

    /// A FOREIGN KEY constraint refused the write.
    pub fn is_foreign_key_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
            }
            DbError::Postgres(e) => {
                e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
            }
            _ => false,
        }
    }

    /// The connection, not the statement, failed: the same work may
    /// succeed on a new connection.
    pub fn is_connection(&self) -> bool {
        match self {
            DbError::Postgres(e) => postgres::is_connection_error(e),
            DbError::Unavailable(_) => true,
            _ => false,
        }
    }
}

/// One row of a result, read by column index.
pub struct Row<'r>(RowOf<'r>);

enum RowOf<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r tokio_postgres::Row),
}

impl fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Row")
    }
}

impl Row<'_> {
    pub fn get<T: Column>(&self, idx: usize) -> Result<T, DbError> {
        match &self.0 {
            RowOf::Sqlite(r) => T::from_sqlite(r, idx).map_err(DbError::from),
            RowOf::Postgres(r) => T::from_postgres(r, idx),
        }
    }
}

/// A type a column can be read as.
pub trait Column: Sized {
    fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Self>;
    fn from_postgres(row: &tokio_postgres::Row, idx: usize) -> Result<Self, DbError>;
}

macro_rules! column_both {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Self> {
                row.get(idx)
            }
            fn from_postgres(row: &tokio_postgres::Row, idx: usize) -> Result<Self, DbError> {
                row.try_get(idx).map_err(DbError::from)
            }
        }
    )*};
}
column_both!(
    i64,
    Option<i64>,
    String,
    Option<String>,
    Vec<u8>,
    Option<Vec<u8>>
);

/// Flags are stored as the integers 0 and 1 in both databases.
impl Column for bool {
    fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Self> {
        row.get(idx)
    }
    fn from_postgres(row: &tokio_postgres::Row, idx: usize) -> Result<Self, DbError> {
        i64::from_postgres(row, idx).map(|v| v != 0)
    }
}

/// How a transaction begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// Reads first; SQLite takes the write lock at the first write.
    Deferred,
    /// Takes the write lock now (SQLite `BEGIN IMMEDIATE`), so a
    /// read-then-write cannot be overtaken. On PostgreSQL, the caller
    /// locks what it reads (`FOR UPDATE`) or takes an advisory lock.
    Immediate,
}

/// A connection to one store's database.
#[derive(Debug)]
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(PgConn),
}

impl Conn {
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, the WAL).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute(&self, sql: &str, args: &[Value<'_>]) -> Result<usize, DbError> {
        match self {
            Conn::Sqlite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(args))?),
            Conn::Postgres(c) => c.execute(sql, args).map(|n| n as usize),
        }
    }

    /// Runs statements with no parameters, one after another.
    pub fn batch(&self, sql: &str) -> Result<(), DbError> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(c) => c.batch(sql),
        }
    }

    /// Every row of a query, each read by `read`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        mut read: impl FnMut(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        match self {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(read(&Row(RowOf::Sqlite(r)))?);
                }
                Ok(out)
            }
            Conn::Postgres(c) => c
                .query(sql, args)?
                .iter()
                .map(|r| read(&Row(RowOf::Postgres(r))))
                .collect(),
        }
    }

    /// The first row of a query, if there is one.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        read: impl FnOnce(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        match self {
            Conn::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
                match rows.next()? {
                    Some(r) => read(&Row(RowOf::Sqlite(r))).map(Some),
                    None => Ok(None),
                }
            }
            Conn::Postgres(c) => match c.query(sql, args)?.first() {
                Some(r) => read(&Row(RowOf::Postgres(r))).map(Some),
                None => Ok(None),
            },
        }
    }

    /// The first row of a query; [`DbError::NoRows`] when there is none.
    pub fn query_one<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        read: impl FnOnce(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.query_opt(sql, args, read)?.ok_or(DbError::NoRows)
    }

    /// Whether a transaction is open on this connection.
    pub fn in_transaction(&self) -> bool {
        match self {
            Conn::Sqlite(c) => !c.is_autocommit(),
            Conn::Postgres(c) => c.in_transaction(),
        }
    }

    /// Begins a transaction the caller ends with [`Conn::end`]: for one
    /// that spans calls that each need the connection.
    pub fn begin_open(&self, how: Begin) -> Result<(), DbError> {
        std::mem::forget(self.begin(how)?);
        Ok(())
    }

    /// Ends the transaction [`Conn::begin_open`] began: commits it, or
    /// rolls it back.
    pub fn end(&self, commit: bool) -> Result<(), DbError> {
        let tx = Tx {
            conn: self,
            open: true,
            savepoint: false,
        };
        if commit {
            tx.commit()
        } else {
            drop(tx);
            Ok(())
        }
    }

    /// A transaction, or inside one already open a savepoint: atomic
    /// either way, undone when dropped without [`Tx::commit`], and a
    /// failed write inside leaves the outer transaction usable.
    pub fn atomic(&self, how: Begin) -> Result<Tx<'_>, DbError> {
        if self.in_transaction() {
            self.batch("SAVEPOINT atomic")?;
            return Ok(Tx {
                conn: self,
                open: true,
                savepoint: true,
            });
        }
        self.begin(how)
    }

    /// Begins a transaction, rolled back when the returned guard drops
    /// without [`Tx::commit`].
    pub fn begin(&self, how: Begin) -> Result<Tx<'_>, DbError> {
        match self {
            Conn::Sqlite(c) => c.execute_batch(match how {
                Begin::Deferred => "BEGIN DEFERRED",
                Begin::Immediate => "BEGIN IMMEDIATE",
            })?,
            Conn::Postgres(c) => c.begin()?,
        }
        Ok(Tx {
            conn: self,
            open: true,
            savepoint: false,
        })
    }
}

/// An open transaction on a [`Conn`]; statements run through it as
/// through the connection.
#[derive(Debug)]
pub struct Tx<'c> {
    conn: &'c Conn,
    open: bool,
    savepoint: bool,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<(), DbError> {
        self.open = false;
        if self.savepoint {
            return self.conn.batch("RELEASE atomic");
        }
        match self.conn {
            Conn::Sqlite(c) => c.execute_batch("COMMIT").map_err(|e| {
                // A failed COMMIT in SQLite may leave the transaction open.
                let _ = c.execute_batch("ROLLBACK");
                DbError::from(e)
            }),
            Conn::Postgres(c) => c.commit(),
        }
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open && self.savepoint {
            let _ = self.conn.batch("ROLLBACK TO atomic; RELEASE atomic");
        } else if self.open {
            match self.conn {
                Conn::Sqlite(c) => {
                    if !c.is_autocommit() {
                        let _ = c.execute_batch("ROLLBACK");
                    }
                }
                Conn::Postgres(c) => c.rollback(),
            }
        }
    }
}

/// Rewrites SQLite's numbered parameters (`?1`) as PostgreSQL's (`$1`).
/// The stores' SQL holds no `?` inside a string literal.
pub(crate) fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_dollars() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ?1 AND c IN (?2, ?10)"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $10)"
        );
        assert_eq!(to_postgres("SELECT '?' FROM t"), "SELECT '?' FROM t");
    }

    #[test]
    fn a_sqlite_connection_runs_statements_and_transactions() {
        let conn = Conn::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        conn.batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
            .unwrap();
        let tx = conn.begin(Begin::Immediate).unwrap();
        tx.execute(
            "INSERT INTO t(id, name, data) VALUES (?1, ?2, ?3)",
            args![1, "a", &b"xy"[..]],
        )
        .unwrap();
        drop(tx);
        assert_eq!(
            conn.query_one("SELECT COUNT(*) FROM t", args![], |r| r.get::<i64>(0))
                .unwrap(),
            0,
            "a dropped transaction rolls back"
        );
        let tx = conn.begin(Begin::Immediate).unwrap();
        tx.execute(
            "INSERT INTO t(id, name, data) VALUES (?1, ?2, ?3)",
            args![1, "a", None::<&str>],
        )
        .unwrap();
        tx.commit().unwrap();
        let rows = conn
            .query_map("SELECT id, name, data FROM t", args![], |r| {
                Ok((
                    r.get::<i64>(0)?,
                    r.get::<String>(1)?,
                    r.get::<Option<Vec<u8>>>(2)?,
                ))
            })
            .unwrap();
        assert_eq!(rows, [(1, "a".to_owned(), None)]);
        let err = conn
            .execute("INSERT INTO t(id) VALUES (?1)", args![1])
            .unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
    }
}
