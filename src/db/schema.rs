//! Versioned migrations, the same way for every store and both databases.
//!
//! SQLite keeps a file's version in `PRAGMA user_version` (one store per
//! file). PostgreSQL keeps one row per store in `narakim_schema`, since the
//! vault's and the engine's tables share a database. Each migration runs
//! in its own transaction with its version bump; on PostgreSQL that
//! transaction first takes an advisory lock and reads the version again,
//! so nodes that start at once migrate one after another and a migration
//! never runs twice.

use super::{Backend, Begin, Conn, DbError, Tx};
use crate::args;

/// The advisory lock every migration holds (any constant: it only has to
/// be the same in every narakim).
const MIGRATION_LOCK: i64 = 0x6e61_726b_696d_0001;

/// The version of `store` recorded in PostgreSQL: 0 when it has none.
pub fn pg_version(conn: &Conn, store: &str) -> Result<i64, DbError> {
    let has_table = conn.query_one(
        "SELECT COUNT(*) FROM pg_catalog.pg_tables
         WHERE schemaname = current_schema() AND tablename = 'narakim_schema'",
        args![],
        |r| r.get::<i64>(0),
    )?;
    if has_table == 0 {
        return Ok(0);
    }
    Ok(conn
        .query_opt(
            "SELECT version FROM narakim_schema WHERE store = ?1",
            args![store],
            |r| r.get::<i64>(0),
        )?
        .unwrap_or(0))
}

fn version(conn: &Conn, store: &str) -> Result<i64, DbError> {
    match conn.backend() {
        Backend::Sqlite => conn.query_one("PRAGMA user_version", args![], |r| r.get(0)),
        Backend::Postgres => pg_version(conn, store),
    }
}

/// Applies every migration past the store's version. `fill(tx, v)` runs
/// after the SQL of version `v`, inside its transaction.
pub fn migrate<E>(
    conn: &Conn,
    store: &str,
    migrations: &[&str],
    fill: &mut dyn FnMut(&Tx<'_>, i64) -> Result<(), E>,
    err: &dyn Fn(DbError) -> E,
) -> Result<(), E> {
    let current = version(conn, store).map_err(err)?;
    for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
        let target = i as i64 + 1;
        let tx = conn.begin(Begin::Immediate).map_err(err)?;
        if tx.backend() == Backend::Postgres {
            tx.execute("SELECT pg_advisory_xact_lock(?1)", args![MIGRATION_LOCK])
                .and_then(|_| {
                    tx.batch(
                        "CREATE TABLE IF NOT EXISTS narakim_schema (
                             store   TEXT PRIMARY KEY,
                             version BIGINT NOT NULL
                         )",
                    )
                })
                .map_err(err)?;
            if pg_version(&tx, store).map_err(err)? >= target {
                // Another node got there first.
                tx.commit().map_err(err)?;
                continue;
            }
        }
        tx.batch(sql).map_err(err)?;
        fill(&tx, target)?;
        match tx.backend() {
            Backend::Sqlite => tx.batch(&format!("PRAGMA user_version = {target}")),
            Backend::Postgres => tx
                .execute(
                    "INSERT INTO narakim_schema(store, version) VALUES (?1, ?2)
                     ON CONFLICT (store) DO UPDATE SET version = excluded.version",
                    args![store, target],
                )
                .map(drop),
        }
        .and_then(|()| tx.commit())
        .map_err(err)?;
    }
    Ok(())
}
