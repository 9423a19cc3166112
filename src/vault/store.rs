//! The vault's database: schema, migrations, and (in SQLite) the settings
//! that keep deleted bytes out of the file.
//!
//! The same tables live in SQLite (`vault.db` in the data directory, the
//! embedded default) or PostgreSQL (shared by a cluster), in the same
//! record format with the same AAD; only column types differ.
//!
//! SQLite settings applied on every connection:
//! - `journal_mode=WAL` (persistent, set once at init);
//! - `secure_delete=ON`, so SQLite zeroes freed cells and pages;
//! - `synchronous=FULL`, so a committed write survives power loss;
//! - `foreign_keys=ON`, so a bot's secrets go with the bot.
//!
//! After every change to secrets the WAL is checkpointed and truncated
//! ([`checkpoint`]), so an overwritten or deleted ciphertext survives
//! neither in the database file nor in its WAL.
//!
//! PostgreSQL keeps a superseded row version until vacuum reclaims it;
//! it holds ciphertext only, sealed under the master key, which is never in
//! the database.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::error::VaultError;
use crate::args;
pub use crate::db::Database;
use crate::db::{Conn, Tx};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "vault.db";

/// Versioned migrations. Index `i` moves the schema from version `i` to
/// `i + 1` (recorded in `PRAGMA user_version`). Append only, and keep
/// [`PG_MIGRATIONS`] in step.
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
    // 5: web UI sessions (see `vault::session`), shared by every node.
    // Only the SHA-256 of a session's id is stored; a token's sessions go
    // with it.
    r#"
    CREATE TABLE ui_sessions (
        digest     BLOB PRIMARY KEY,
        token_id   TEXT NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX ui_sessions_token ON ui_sessions(token_id);
    CREATE INDEX ui_sessions_expiry ON ui_sessions(expires_at);
    "#,
];

/// The same migrations for PostgreSQL (the version is recorded in
/// `narakim_schema`): `BIGINT` for integers, `BYTEA` for blobs, identity
/// columns that are never reused for `AUTOINCREMENT`. Each write of the
/// tables a snapshot reads bumps `vault_changes` (by trigger, so no write
/// path can forget), which is how every node sees that its cached
/// snapshots are stale.
const PG_MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value BYTEA NOT NULL
    );
    CREATE TABLE teams (
        id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE bots (
        id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        team_id    BIGINT NOT NULL REFERENCES teams(id) ON DELETE RESTRICT,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX bots_team ON bots(team_id);
    CREATE TABLE secrets (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        bot_id      BIGINT REFERENCES bots(id) ON DELETE CASCADE,
        team_id     BIGINT REFERENCES teams(id) ON DELETE RESTRICT,
        name        TEXT NOT NULL,
        record      BYTEA NOT NULL,
        fingerprint BYTEA NOT NULL,
        created_at  BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL,
        CHECK ((bot_id IS NULL) <> (team_id IS NULL))
    );
    CREATE UNIQUE INDEX secrets_bot_name ON secrets(bot_id, name) WHERE bot_id IS NOT NULL;
    CREATE UNIQUE INDEX secrets_team_name ON secrets(team_id, name) WHERE team_id IS NOT NULL;
    CREATE TABLE audit (
        id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at     BIGINT NOT NULL,
        actor  TEXT NOT NULL,
        action TEXT NOT NULL,
        scope  TEXT,
        owner  TEXT,
        name   TEXT,
        detail TEXT
    );
    CREATE TABLE vault_changes (
        one     BIGINT PRIMARY KEY CHECK (one = 1),
        counter BIGINT NOT NULL
    );
    INSERT INTO vault_changes VALUES (1, 0);
    CREATE FUNCTION vault_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE vault_changes SET counter = counter + 1 WHERE one = 1;
        RETURN NULL;
    END $$;
    CREATE TRIGGER secrets_changed AFTER INSERT OR UPDATE OR DELETE ON secrets
        FOR EACH STATEMENT EXECUTE FUNCTION vault_changed();
    CREATE TRIGGER bots_changed AFTER INSERT OR UPDATE OR DELETE ON bots
        FOR EACH STATEMENT EXECUTE FUNCTION vault_changed();
    CREATE TRIGGER teams_changed AFTER INSERT OR UPDATE OR DELETE ON teams
        FOR EACH STATEMENT EXECUTE FUNCTION vault_changed();
    CREATE TRIGGER meta_changed AFTER INSERT OR UPDATE OR DELETE ON meta
        FOR EACH STATEMENT EXECUTE FUNCTION vault_changed();
    "#,
    r#"
    ALTER TABLE secrets ADD COLUMN fingerprint_tag BYTEA;
    "#,
    r#"
    CREATE TABLE api_tokens (
        id           TEXT PRIMARY KEY,
        digest       BYTEA NOT NULL UNIQUE,
        admin        BIGINT NOT NULL,
        team_id      BIGINT REFERENCES teams(id) ON DELETE CASCADE,
        bot_id       BIGINT REFERENCES bots(id) ON DELETE CASCADE,
        capabilities TEXT NOT NULL,
        created_at   BIGINT NOT NULL,
        expires_at   BIGINT,
        last_used_at BIGINT,
        CHECK ((admin = 1 AND team_id IS NULL AND bot_id IS NULL)
            OR (admin = 0 AND team_id IS NOT NULL))
    );
    "#,
    r#"
    ALTER TABLE secrets ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
    ALTER TABLE secrets ADD COLUMN updated_by TEXT;
    "#,
    r#"
    CREATE TABLE ui_sessions (
        digest     BYTEA PRIMARY KEY,
        token_id   TEXT NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX ui_sessions_token ON ui_sessions(token_id);
    CREATE INDEX ui_sessions_expiry ON ui_sessions(expires_at);
    "#,
];

const _: () = assert!(MIGRATIONS.len() == PG_MIGRATIONS.len());

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The row PostgreSQL keeps each store's schema version in.
const PG_STORE: &str = "vault";

/// Whether a vault exists in `database` (or at `db` for SQLite).
pub(crate) fn exists(database: &Database, db: &Path) -> Result<bool, VaultError> {
    match database {
        Database::Sqlite => Ok(db.exists()),
        Database::Postgres(pool) => {
            let conn = Conn::Postgres(pool.conn());
            // The tables alone are not a vault: `init` writes its id after
            // them.
            Ok(crate::db::schema::pg_version(&conn, PG_STORE)
                .map_err(VaultError::db("reading the schema version"))?
                > 0
                && get_meta(&conn, super::META_VAULT_ID)?.is_some())
        }
    }
}

/// Opens an existing vault without changing it: migrations run only
/// after the master key is verified (see [`migrate`]).
pub(crate) fn open_existing(database: &Database, db: &Path) -> Result<Conn, VaultError> {
    match database {
        Database::Sqlite => open_sqlite(db).map(Conn::Sqlite),
        Database::Postgres(pool) => {
            let conn = Conn::Postgres(pool.conn());
            let version = crate::db::schema::pg_version(&conn, PG_STORE)
                .map_err(VaultError::db("reading the schema version"))?;
            check_version(db, version)?;
            Ok(conn)
        }
    }
}

fn check_version(db: &Path, version: i64) -> Result<(), VaultError> {
    if version == 0 {
        return Err(VaultError::NotAVault {
            path: db.to_owned(),
            reason: "it has no narakim schema".into(),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(VaultError::SchemaTooNew {
            path: db.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

fn open_sqlite(db: &Path) -> Result<Connection, VaultError> {
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
    check_version(db, version)?;
    Ok(conn)
}

/// Creates a new vault's tables. Fails if a vault is there already.
pub(crate) fn create(database: &Database, db: &Path) -> Result<Conn, VaultError> {
    let conn = match database {
        Database::Sqlite => Conn::Sqlite(create_sqlite(db)?),
        Database::Postgres(pool) => Conn::Postgres(pool.conn()),
    };
    // A new database has no rows for a migration step to fill in.
    migrate(&conn, &mut |_, _| Ok(()))?;
    Ok(conn)
}

/// Creates a new database file. Fails if one exists.
fn create_sqlite(db: &Path) -> Result<Connection, VaultError> {
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
    Ok(conn)
}

fn configure(conn: &mut Connection) -> Result<(), VaultError> {
    crate::sqlite::configure(conn).map_err(VaultError::db("configuring the connection"))?;
    conn.execute_batch(
        "PRAGMA secure_delete = ON; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .map_err(VaultError::db("configuring the connection"))
}

/// Applies every migration newer than the database's version, each in its
/// own transaction. After the SQL of the migration to version `v`, and
/// before its commit, `fill(tx, v)` may move data that needs the vault's
/// keys; if it fails, that migration is rolled back whole. On PostgreSQL
/// nodes that start together take turns (see [`crate::db::schema`]).
pub(crate) fn migrate(
    conn: &Conn,
    fill: &mut dyn FnMut(&Tx<'_>, i64) -> Result<(), VaultError>,
) -> Result<(), VaultError> {
    crate::db::schema::migrate(
        conn,
        PG_STORE,
        match conn.backend() {
            crate::db::Backend::Sqlite => MIGRATIONS,
            crate::db::Backend::Postgres => PG_MIGRATIONS,
        },
        fill,
        &|e| VaultError::db("migrating the schema")(e),
    )
}

pub(crate) fn get_meta(conn: &Conn, key: &str) -> Result<Option<Vec<u8>>, VaultError> {
    conn.query_opt("SELECT value FROM meta WHERE key = ?1", args![key], |r| {
        r.get(0)
    })
    .map_err(VaultError::db("reading vault metadata"))
}

/// Writes a row `init` makes, refusing one that is there already: two
/// nodes initialising one database at once must not both win.
pub(crate) fn insert_meta(conn: &Conn, key: &str, value: &[u8]) -> Result<(), VaultError> {
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)",
        args![key, value],
    )
    .map(drop)
    .map_err(|e| {
        if e.is_unique_violation() {
            VaultError::AlreadyInitialized
        } else {
            VaultError::db("writing vault metadata")(e)
        }
    })
}

pub(crate) fn set_meta(conn: &Conn, key: &str, value: &[u8]) -> Result<(), VaultError> {
    conn.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        args![key, value],
    )
    .map(drop)
    .map_err(VaultError::db("writing vault metadata"))
}

/// Moves every committed page from the WAL into the database file and
/// truncates the WAL to zero bytes, so superseded page images (which may
/// hold an old ciphertext) do not linger there. Best effort under
/// concurrent readers: SQLite then checkpoints what it can, and the next
/// checkpoint finishes the job.
/// Nothing to do on PostgreSQL.
pub(crate) fn checkpoint(conn: &Conn) -> Result<(), VaultError> {
    let Some(conn) = conn.sqlite() else {
        return Ok(());
    };
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
