//! The SQLite file: schema, migrations and the settings that keep deleted
//! bytes out of it.
//!
//! Settings applied on every connection:
//! - `journal_mode=WAL` (persistent, set once at init);
//! - `secure_delete=ON`, so SQLite zeroes freed cells and pages;
//! - `synchronous=FULL`, so a committed write survives power loss;
//! - `foreign_keys=ON`, so a bot's secrets go with the bot.
//!
//! After every change to secrets the WAL is checkpointed and truncated
//! ([`checkpoint`]), so an overwritten or deleted ciphertext survives
//! neither in the database file nor in its WAL.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use super::error::VaultError;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "vault.db";

/// Versioned migrations. Index `i` moves the schema from version `i` to
/// `i + 1` (recorded in `PRAGMA user_version`). Append only.
const MIGRATIONS: &[&str] = &[
    // 1: the vault.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) STRICT;

    -- AUTOINCREMENT: ids are never reused, so a record sealed for a deleted
    -- bot can never open for a new bot that happens to get its id.
    CREATE TABLE teams (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE bots (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT NOT NULL UNIQUE,
        team_id    INTEGER NOT NULL REFERENCES teams(id) ON DELETE RESTRICT,
        created_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX bots_team ON bots(team_id);

    -- Exactly one of bot_id / team_id is set.
    CREATE TABLE secrets (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        bot_id      INTEGER REFERENCES bots(id) ON DELETE CASCADE,
        team_id     INTEGER REFERENCES teams(id) ON DELETE RESTRICT,
        name        TEXT NOT NULL,
        record      BLOB NOT NULL,
        fingerprint BLOB NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        CHECK ((bot_id IS NULL) <> (team_id IS NULL))
    ) STRICT;
    CREATE UNIQUE INDEX secrets_bot_name ON secrets(bot_id, name) WHERE bot_id IS NOT NULL;
    CREATE UNIQUE INDEX secrets_team_name ON secrets(team_id, name) WHERE team_id IS NOT NULL;

    -- Who changed what, when. Never a value.
    CREATE TABLE audit (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        at     INTEGER NOT NULL,
        actor  TEXT NOT NULL,
        action TEXT NOT NULL,
        scope  TEXT,
        owner  TEXT,
        name   TEXT,
        detail TEXT
    ) STRICT;
    "#,
    // 2: each fingerprint is bound to its record by a MAC (see
    // `record::fingerprint_tag`). The vault fills the column, recomputing
    // every fingerprint from its decrypted value, in the same transaction
    // (`Vault::open` passes that step to `migrate`). A record that does not
    // open keeps NULL, which every check reports.
    r#"
    ALTER TABLE secrets ADD COLUMN fingerprint_tag BLOB;
    "#,
    // 3: API tokens (see `vault::access`). Only a keyed digest of each
    // token is stored. A team's or bot's tokens go with it; revoking
    // deletes the row (the audit trail keeps its history).
    r#"
    CREATE TABLE api_tokens (
        id           TEXT PRIMARY KEY,
        digest       BLOB NOT NULL UNIQUE,
        admin        INTEGER NOT NULL,
        team_id      INTEGER REFERENCES teams(id) ON DELETE CASCADE,
        bot_id       INTEGER REFERENCES bots(id) ON DELETE CASCADE,
        capabilities TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER,
        last_used_at INTEGER,
        CHECK ((admin = 1 AND team_id IS NULL AND bot_id IS NULL)
            OR (admin = 0 AND team_id IS NOT NULL))
    ) STRICT;
    "#,
    // 4: every secret has a version (1 when created, +1 on each overwrite)
    // for the API's `If-Match`, and names who last wrote it.
    r#"
    ALTER TABLE secrets ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE secrets ADD COLUMN updated_by TEXT;
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens an existing database without changing it: migrations run only
/// after the master key is verified (see [`migrate`]).
pub(crate) fn open_existing(db: &Path) -> Result<Connection, VaultError> {
    let not_a_vault = |reason: String| VaultError::NotAVault {
        path: db.to_owned(),
        reason,
    };
    // Look before SQLite does: a junk file would otherwise fail deep inside
    // with "file is not a database".
    let mut header = [0u8; 16];
    let read = std::fs::File::open(db)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut header))
        .map_err(VaultError::io(db))?;
    if read < header.len() || &header != b"SQLite format 3\0" {
        return Err(not_a_vault("it is not a SQLite database".into()));
    }
    let mut conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(VaultError::db("opening the database"))?;
    configure(&mut conn)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| not_a_vault(e.to_string()))?;
    if version == 0 {
        return Err(not_a_vault("it has no narakim schema".into()));
    }
    if version > SCHEMA_VERSION {
        return Err(VaultError::SchemaTooNew {
            path: db.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

/// Creates a new database file. Fails if one exists.
pub(crate) fn create(db: &Path) -> Result<Connection, VaultError> {
    // Create the file ourselves, 0600 whatever the umask: SQLite gives its
    // WAL and shared-memory files the same mode.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db)
        .map_err(VaultError::io(db))?;
    let mut conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(VaultError::db("creating the database"))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(VaultError::db("enabling WAL"))?;
    configure(&mut conn)?;
    // A new database has no rows for a migration step to fill in.
    migrate(&conn, &mut |_, _| Ok(()))?;
    Ok(conn)
}

fn configure(conn: &mut Connection) -> Result<(), VaultError> {
    crate::sqlite::configure(conn).map_err(VaultError::db("configuring the connection"))?;
    conn.execute_batch(
        "PRAGMA secure_delete = ON; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .map_err(VaultError::db("configuring the connection"))
}

/// Applies every migration newer than the file's version, each in its own
/// transaction. After the SQL of the migration to version `v`, and before
/// its commit, `fill(tx, v)` may move data that needs the vault's keys; if
/// it fails, that migration is rolled back whole.
pub(crate) fn migrate(
    conn: &Connection,
    fill: &mut dyn FnMut(&Transaction<'_>, i64) -> Result<(), VaultError>,
) -> Result<(), VaultError> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(VaultError::db("reading the schema version"))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        let tx = conn
            .unchecked_transaction()
            .map_err(VaultError::db("starting a migration"))?;
        tx.execute_batch(sql)
            .map_err(VaultError::db("migrating the schema"))?;
        fill(&tx, version)?;
        tx.pragma_update(None, "user_version", version)
            .and_then(|()| tx.commit())
            .map_err(VaultError::db("migrating the schema"))?;
    }
    Ok(())
}

pub(crate) fn get_meta(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>, VaultError> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(VaultError::db("reading vault metadata"))
}

pub(crate) fn set_meta(conn: &Connection, key: &str, value: &[u8]) -> Result<(), VaultError> {
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
    .map(drop)
    .map_err(VaultError::db("writing vault metadata"))
}

/// Moves every committed page from the WAL into the database file and
/// truncates the WAL to zero bytes, so superseded page images (which may
/// hold an old ciphertext) do not linger there. Best effort under
/// concurrent readers: SQLite then checkpoints what it can, and the next
/// checkpoint finishes the job.
pub(crate) fn checkpoint(conn: &Connection) -> Result<(), VaultError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(VaultError::db("checkpointing the WAL"))
}

/// Files SQLite may keep beside the database: the database itself, its WAL,
/// its shared-memory index and a rollback journal.
pub fn database_files(data_dir: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| data_dir.join(format!("{DB_FILE}{suffix}")))
        .collect()
}
