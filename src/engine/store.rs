//! The engine's database: `engine.db` in the data directory, apart from the
//! vault's `vault.db`.
//!
//! The vault holds secrets and nothing else; everything the engine keeps
//! (installed extensions, deployed graphs, paused bots, execution history)
//! lives here. Keeping the two files apart means the engine's busy,
//! append-heavy history never shares a lock, a WAL or a backup policy with
//! the secrets, and this file can be inspected, copied or deleted without
//! touching them.
//!
//! **This database never holds a plaintext secret.** Everything passed in
//! (triggers, node outputs, errors, logs, stdout, stderr) has already been
//! scrubbed by the runtime of every value the invocation was handed;
//! `secrets_read` holds secret *names* only. The store does not scrub again:
//! it has no values to scrub with.
//!
//! Settings applied on every connection:
//! - `journal_mode=WAL` (persistent, set when the file is created), so
//!   readers (`narakim executions list`) never block the executor;
//! - `synchronous=NORMAL`: with WAL a power cut may lose the last few
//!   commits but never corrupts the file, which is the right trade for
//!   execution history (the vault, which holds secrets, uses `FULL`);
//! - `foreign_keys=ON`, so an execution's node runs go with it;
//! - a busy handler that waits up to 10 s in steps of 20 µs to 1 ms
//!   ([`crate::sqlite`]), so a CLI command, a running engine and the
//!   queue's commit thread share the file without sleeping past a free
//!   lock.
//!
//! The schema is versioned with `PRAGMA user_version` and append-only
//! [`MIGRATIONS`], like the vault's. Tables are `STRICT`.
//!
//! Times are Unix milliseconds throughout.
//!
//! One [`EngineStore`] is one connection. It is `Send` but not `Sync`:
//! the executor shares one behind a `Mutex`, which also serialises its
//! writes; other processes open their own.

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use serde::{Deserialize, Serialize};

use crate::args;
use crate::db::{Backend, Begin, Column, Conn, Database, DbError, Row, Value};

use crate::runtime::{EgressEvent, ExtensionDescription};

use super::ExtensionCatalog;
use super::queue::{
    Claimed, Enqueued, Fire, INTERRUPTED, NewRun, QueueDepth, Reaped, Recovery, RunQueue,
};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "engine.db";

/// Versioned migrations. Index `i` moves the schema from version `i` to
/// `i + 1` (recorded in `PRAGMA user_version`). Append only.
const MIGRATIONS: &[&str] = &[
    // 1: extensions, deployments, bot state, executions.
    r#"
    -- `path` is relative to the data directory, so the directory can move.
    CREATE TABLE extensions (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        name         TEXT NOT NULL,
        version      TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        description  TEXT NOT NULL,
        path         TEXT NOT NULL,
        installed_at INTEGER NOT NULL,
        UNIQUE (name, version)
    ) STRICT;

    CREATE TABLE deployments (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        bot           TEXT NOT NULL,
        graph         TEXT NOT NULL,
        graph_version TEXT NOT NULL,
        deployed_at   INTEGER NOT NULL,
        active        INTEGER NOT NULL CHECK (active IN (0, 1))
    ) STRICT;
    -- At most one active deployment per bot, enforced by SQLite.
    CREATE UNIQUE INDEX deployments_active ON deployments(bot) WHERE active = 1;
    CREATE INDEX deployments_bot ON deployments(bot, id);

    CREATE TABLE bot_state (
        bot        TEXT PRIMARY KEY,
        paused     INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
        updated_at INTEGER
    ) STRICT;

    CREATE TABLE executions (
        id            TEXT PRIMARY KEY,
        bot           TEXT NOT NULL,
        graph_version TEXT NOT NULL,
        status        TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        started_at    INTEGER NOT NULL,
        finished_at   INTEGER,
        trigger       TEXT NOT NULL,
        summary       TEXT
    ) STRICT;
    CREATE INDEX executions_bot_started ON executions(bot, started_at);
    CREATE INDEX executions_started ON executions(started_at);

    CREATE TABLE node_runs (
        execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
        node         TEXT NOT NULL,
        extension    TEXT NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'skipped')),
        started_at   INTEGER NOT NULL,
        duration_ms  INTEGER NOT NULL,
        output       TEXT,
        error        TEXT,
        logs         TEXT NOT NULL,
        stdout       TEXT NOT NULL,
        stderr       TEXT NOT NULL,
        secrets_read TEXT NOT NULL,
        PRIMARY KEY (execution_id, node)
    ) STRICT;
    "#,
    // 2: every request a node made, sent or refused, and how many went
    // unrecorded past the per-invocation bound.
    r#"
    ALTER TABLE node_runs ADD COLUMN egress TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE node_runs ADD COLUMN egress_dropped INTEGER NOT NULL DEFAULT 0;
    "#,
    // 3: what each node of a deployment was checked against: the exact
    // version and content hash of its extension (node id → pin, JSON).
    r#"
    ALTER TABLE deployments ADD COLUMN pins TEXT NOT NULL DEFAULT '{}';
    "#,
    // 4: the durable run queue of `narakim serve`. An execution may now be
    // `queued` (accepted, not yet picked up); `running_at` is when a worker
    // began it; `idempotency_key` makes a client's retry find the run it
    // already started; `started_by` is the API token that started it. A job row exists while its execution waits or runs,
    // and goes in the transaction that records the end. SQLite cannot alter
    // a CHECK, so `executions` is rebuilt (foreign keys are off during
    // migrations, so its node runs stay).
    r#"
    CREATE TABLE executions_v4 (
        id              TEXT PRIMARY KEY,
        bot             TEXT NOT NULL,
        graph_version   TEXT NOT NULL,
        status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
        started_at      INTEGER NOT NULL,
        finished_at     INTEGER,
        trigger         TEXT NOT NULL,
        summary         TEXT,
        running_at      INTEGER,
        idempotency_key TEXT,
        started_by      TEXT
    ) STRICT;
    INSERT INTO executions_v4(id, bot, graph_version, status, started_at, finished_at, trigger, summary, running_at)
        SELECT id, bot, graph_version, status, started_at, finished_at, trigger, summary, started_at
        FROM executions;
    DROP TABLE executions;
    ALTER TABLE executions_v4 RENAME TO executions;
    CREATE INDEX executions_bot_started ON executions(bot, started_at);
    CREATE INDEX executions_started ON executions(started_at);
    CREATE UNIQUE INDEX executions_idempotency ON executions(bot, idempotency_key)
        WHERE idempotency_key IS NOT NULL;

    -- `lease_owner` is the serve process that claimed the job and
    -- `lease_until` when its claim lapses (see `engine::queue`).
    CREATE TABLE jobs (
        execution_id TEXT PRIMARY KEY REFERENCES executions(id) ON DELETE CASCADE,
        queued_at    INTEGER NOT NULL,
        lease_owner  TEXT,
        lease_until  INTEGER
    ) STRICT;
    CREATE INDEX jobs_waiting ON jobs(queued_at) WHERE lease_owner IS NULL;
    "#,
    // 5: triggers. Each trigger a bot's graph declares gets an unguessable
    // id the first time it is deployed, kept across redeploys so a sender's
    // configured URL stays valid. A delivery's keys (its delivery id, the
    // digest of its signature) are kept until `expires_at`, so a repeat
    // within that time finds the run it started; they are written in the
    // transaction that queues that run.
    r#"
    CREATE TABLE triggers (
        id         TEXT PRIMARY KEY,
        bot        TEXT NOT NULL,
        name       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (bot, name)
    ) STRICT;

    CREATE TABLE deliveries (
        trigger_id   TEXT NOT NULL,
        key          TEXT NOT NULL,
        execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
        expires_at   INTEGER NOT NULL,
        PRIMARY KEY (trigger_id, key)
    ) STRICT;
    CREATE INDEX deliveries_expiry ON deliveries(expires_at);
    CREATE INDEX deliveries_execution ON deliveries(execution_id);

    -- A schedule trigger's next fire time (Unix milliseconds). A fire is
    -- claimed by moving it on, in the transaction that queues its run.
    CREATE TABLE schedules (
        trigger_id   TEXT PRIMARY KEY,
        bot          TEXT NOT NULL,
        next_fire_ms INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX schedules_due ON schedules(next_fire_ms);
    "#,
    // 6: a bot's draft graph, edited in the web UI before it is deployed.
    r#"
    CREATE TABLE drafts (
        bot      TEXT PRIMARY KEY,
        graph    TEXT NOT NULL,
        saved_at INTEGER NOT NULL,
        saved_by TEXT
    ) STRICT;
    "#,
];

/// The same schema for PostgreSQL (its version recorded in
/// `narakim_schema` under [`PG_STORE`]). PostgreSQL support began at
/// version 6, so its first migration makes that schema and the next five
/// are empty; from 7 on, each version appends to both lists. `rowid` is an
/// identity column here, so the queries' tie-breaks read the same.
const PG_MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE extensions (
        id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name         TEXT NOT NULL,
        version      TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        description  TEXT NOT NULL,
        path         TEXT NOT NULL,
        installed_at BIGINT NOT NULL,
        UNIQUE (name, version)
    );
    CREATE TABLE deployments (
        id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        bot           TEXT NOT NULL,
        graph         TEXT NOT NULL,
        graph_version TEXT NOT NULL,
        deployed_at   BIGINT NOT NULL,
        active        BIGINT NOT NULL CHECK (active IN (0, 1)),
        pins          TEXT NOT NULL DEFAULT '{}'
    );
    CREATE UNIQUE INDEX deployments_active ON deployments(bot) WHERE active = 1;
    CREATE INDEX deployments_bot ON deployments(bot, id);
    CREATE TABLE bot_state (
        bot        TEXT PRIMARY KEY,
        paused     BIGINT NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
        updated_at BIGINT
    );
    CREATE TABLE executions (
        id              TEXT PRIMARY KEY,
        rowid           BIGINT GENERATED ALWAYS AS IDENTITY,
        bot             TEXT NOT NULL,
        graph_version   TEXT NOT NULL,
        status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
        started_at      BIGINT NOT NULL,
        finished_at     BIGINT,
        trigger         TEXT NOT NULL,
        summary         TEXT,
        running_at      BIGINT,
        idempotency_key TEXT,
        started_by      TEXT
    );
    CREATE INDEX executions_bot_started ON executions(bot, started_at);
    CREATE INDEX executions_started ON executions(started_at);
    CREATE UNIQUE INDEX executions_idempotency ON executions(bot, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE TABLE node_runs (
        execution_id   TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
        rowid          BIGINT GENERATED ALWAYS AS IDENTITY,
        node           TEXT NOT NULL,
        extension      TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'skipped')),
        started_at     BIGINT NOT NULL,
        duration_ms    BIGINT NOT NULL,
        output         TEXT,
        error          TEXT,
        logs           TEXT NOT NULL,
        stdout         TEXT NOT NULL,
        stderr         TEXT NOT NULL,
        secrets_read   TEXT NOT NULL,
        egress         TEXT NOT NULL DEFAULT '[]',
        egress_dropped BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (execution_id, node)
    );
    CREATE TABLE jobs (
        execution_id TEXT PRIMARY KEY REFERENCES executions(id) ON DELETE CASCADE,
        rowid        BIGINT GENERATED ALWAYS AS IDENTITY,
        queued_at    BIGINT NOT NULL,
        lease_owner  TEXT,
        lease_until  BIGINT
    );
    CREATE INDEX jobs_waiting ON jobs(queued_at, rowid) WHERE lease_owner IS NULL;
    CREATE TABLE triggers (
        id         TEXT PRIMARY KEY,
        bot        TEXT NOT NULL,
        name       TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        UNIQUE (bot, name)
    );
    CREATE TABLE deliveries (
        trigger_id   TEXT NOT NULL,
        key          TEXT NOT NULL,
        execution_id TEXT NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
        expires_at   BIGINT NOT NULL,
        PRIMARY KEY (trigger_id, key)
    );
    CREATE INDEX deliveries_expiry ON deliveries(expires_at);
    CREATE INDEX deliveries_execution ON deliveries(execution_id);
    CREATE TABLE schedules (
        trigger_id   TEXT PRIMARY KEY,
        bot          TEXT NOT NULL,
        next_fire_ms BIGINT NOT NULL
    );
    CREATE INDEX schedules_due ON schedules(next_fire_ms);
    CREATE TABLE drafts (
        bot      TEXT PRIMARY KEY,
        graph    TEXT NOT NULL,
        saved_at BIGINT NOT NULL,
        saved_by TEXT
    );
    -- Installed components by content, so every node of a cluster can
    -- load what any node installed (each keeps a copy in its data dir).
    CREATE TABLE components (
        sha256 TEXT PRIMARY KEY,
        bytes  BYTEA NOT NULL
    );
    "#,
    "",
    "",
    "",
    "",
    "",
];

const _: () = assert!(MIGRATIONS.len() == PG_MIGRATIONS.len());

/// The PostgreSQL channel a commit that queued runs notifies.
pub const JOBS_CHANNEL: &str = "narakim_jobs";

/// The PostgreSQL channel a deploy notifies: the schedules may have
/// changed.
pub const SCHEDULES_CHANNEL: &str = "narakim_schedules";

/// The engine's row in PostgreSQL's `narakim_schema`.
const PG_STORE: &str = "engine";

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Why the engine database could not do what was asked. Each message names
/// the operation and the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is not a narakim engine database: {reason}", path.display())]
    NotAnEngineDatabase { path: PathBuf, reason: String },

    #[error(
        "{} has schema version {found}, newer than this build supports ({supported}); upgrade narakim",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error("engine database {}: {operation} failed: {source}", path.display())]
    Db {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: DbError,
    },

    #[error(
        "extension {name} {version} is pinned by the deployed graph of bot{} {}; deploy {} to another version first",
        if bots.len() == 1 { "" } else { "s" },
        bots.join(", "),
        if bots.len() == 1 { "it" } else { "them" }
    )]
    ExtensionPinned {
        name: String,
        version: String,
        bots: Vec<String>,
    },
    #[error("extension {name} {version} is not installed; see `narakim extension list`")]
    ExtensionMissing { name: String, version: String },
    #[error("extension {name} {version} is already recorded in the engine database")]
    ExtensionExists { name: String, version: String },

    #[error("no execution {0}; see `narakim executions list`")]
    ExecutionNotFound(String),

    #[error("execution {execution} already has a recorded run of node {node}")]
    NodeRunExists { execution: String, node: String },

    #[error("the engine database cannot store {what}: {reason}")]
    Encode { what: &'static str, reason: String },

    #[error("the operating system's random number generator failed: {0}")]
    Random(String),

    #[error("the run queue is full ({bound} runs waiting); retry later")]
    QueueFull { bound: usize },

    #[error("bot {bot} is paused")]
    BotPaused { bot: String },

    #[error("bot {bot} is not deployed")]
    BotNotDeployed { bot: String },

    #[error(
        "the Idempotency-Key {key} was already used for bot {bot} by execution {execution}, with a different trigger; \
         send a new key for a new run, or the same trigger to find that one"
    )]
    IdempotencyKeyReused {
        bot: String,
        key: String,
        execution: String,
    },

    #[error("the run was not queued: {0}")]
    NotQueued(String),

    #[error("the write was undone, because the commit it shared failed: {0}")]
    NotWritten(String),

    #[error("this schedule's fire was already claimed")]
    FireClaimed,
}

impl StoreError {
    /// The database could not be reached (the statement may succeed on
    /// a new connection), or a shared commit failed.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db { source, .. } => source.is_connection(),
            StoreError::NotWritten(_) => true,
            _ => false,
        }
    }
}

/// An extension recorded as installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledExtension {
    pub id: i64,
    pub name: String,
    pub version: String,
    /// Hex SHA-256 of the stored component.
    pub sha256: String,
    pub description: ExtensionDescription,
    /// The stored component (absolute: the data directory joined with the
    /// relative path the database keeps).
    pub path: PathBuf,
    /// Unix milliseconds.
    pub installed_at: i64,
}

/// A graph deployed to a bot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub id: i64,
    pub bot: String,
    /// The graph as canonical JSON.
    pub graph: String,
    /// Hex hash of the canonical graph, recorded on each execution.
    pub graph_version: String,
    pub deployed_at: i64,
    pub active: bool,
    /// Node id → the extension it was checked against at deploy, and runs.
    pub pins: BTreeMap<String, Pin>,
}

/// The exact extension a deployed node runs: installing another version
/// changes nothing until the bot is deployed again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub name: String,
    pub version: String,
    /// Hex SHA-256 of the component checked at deploy.
    pub sha256: String,
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} (sha256 {})",
            self.name,
            self.version,
            &self.sha256[..self.sha256.len().min(12)]
        )
    }
}

/// An execution's id: `ex_` and 16 random hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecutionId(String);

impl ExecutionId {
    /// A fresh random id. 64 random bits: ids are only unique per database,
    /// and a collision is reported by the primary key rather than merged.
    pub fn generate() -> Result<Self, StoreError> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
        Ok(ExecutionId(format!("ex_{}", hex(&bytes))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Any string is accepted: an unknown id simply finds nothing.
impl From<&str> for ExecutionId {
    fn from(id: &str) -> Self {
        ExecutionId(id.to_owned())
    }
}

impl From<String> for ExecutionId {
    fn from(id: String) -> Self {
        ExecutionId(id)
    }
}

/// A trigger's id: `trg_` and 32 random hex digits (128 bits), the only
/// part of a webhook's URL a sender needs and nobody can guess. It is not
/// what authenticates a delivery (the signature is), so it may be shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TriggerId(String);

impl TriggerId {
    fn generate() -> Result<Self, StoreError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
        Ok(TriggerId(format!("trg_{}", hex(&bytes))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Any string is accepted: an unknown id simply finds nothing.
impl From<String> for TriggerId {
    fn from(id: String) -> Self {
        TriggerId(id)
    }
}

impl fmt::Display for TriggerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Defines a status enum stored as lower-case text.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?}", stringify!($name)
                    )),
                }
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: String| FromSqlError::Other(e.into()))
            }
        }

        impl Column for $name {
            fn from_sqlite(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Self> {
                row.get(idx)
            }
            fn from_postgres(row: &tokio_postgres::Row, idx: usize) -> Result<Self, DbError> {
                String::from_postgres(row, idx)?
                    .parse()
                    .map_err(|reason| DbError::Column { column: idx, reason })
            }
        }

        impl<'a> From<$name> for Value<'a> {
            fn from(v: $name) -> Value<'a> {
                Value::Text(v.as_str())
            }
        }
    };
}

text_enum!(
    /// Where an execution is.
    ExecutionStatus {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
);

text_enum!(
    /// How one node of an execution ended.
    NodeStatus {
        Succeeded => "succeeded",
        Failed => "failed",
        Skipped => "skipped",
    }
);

/// One execution, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionSummary {
    pub id: ExecutionId,
    pub bot: String,
    pub graph_version: String,
    pub status: ExecutionStatus,
    pub started_at: i64,
    /// `None` while running (or if the engine stopped mid-execution).
    pub finished_at: Option<i64>,
    pub summary: Option<String>,
}

/// One execution in full (its node runs come separately).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Execution {
    pub id: ExecutionId,
    pub bot: String,
    pub graph_version: String,
    pub status: ExecutionStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// The trigger payload as scrubbed JSON.
    pub trigger: String,
    pub summary: Option<String>,
    /// The API token that started it (`None` for `narakim run`).
    pub started_by: Option<String>,
}

/// One log call of an invocation, scrubbed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
}

/// What one node of an execution did. Every text field is already
/// scrubbed by the runtime; `secrets_read` holds names, never values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRun {
    pub execution_id: ExecutionId,
    pub node: String,
    /// `name@version` or however the executor names the extension it ran.
    pub extension: String,
    pub status: NodeStatus,
    pub started_at: i64,
    pub duration_ms: i64,
    /// The output JSON, when the node succeeded.
    pub output: Option<String>,
    /// The error message, when it failed or was skipped for a reason.
    pub error: Option<String>,
    pub logs: Vec<LogEntry>,
    pub stdout: String,
    pub stderr: String,
    pub secrets_read: Vec<String>,
    /// Every request the node made, sent or refused (scrubbed), up to the
    /// runtime's bound; `egress_dropped` counts the rest.
    pub egress: Vec<EgressEvent>,
    pub egress_dropped: usize,
}

/// The engine database: one connection to `engine.db`, or to the
/// PostgreSQL database a cluster shares.
#[derive(Debug)]
pub struct EngineStore {
    conn: Conn,
    database: Database,
    /// The data directory (stored component paths are relative to it).
    data_dir: PathBuf,
    /// `data_dir/engine.db`, or the PostgreSQL URL without its password,
    /// for messages.
    path: PathBuf,
    /// Waiting jobs as last counted by this connection plus what it queued
    /// since, and when it counted (see `enqueue_many`).
    waiting_estimate: Option<(u64, std::time::Instant)>,
}

/// How long `enqueue_many` trusts its waiting-jobs estimate: other
/// connections' enqueues are seen within this.
const RECOUNT_EVERY: Duration = Duration::from_secs(1);

/// Statically asserts `EngineStore: Send` (the executor moves it into a
/// `Mutex` shared across tasks).
const _: fn() = || {
    fn send<T: Send>() {}
    send::<EngineStore>();
};

impl EngineStore {
    /// Opens `data_dir/engine.db`, creating the directory (0700) and the
    /// file (0600) if needed and migrating the schema to this build's.
    pub fn open(data_dir: &Path) -> Result<EngineStore, StoreError> {
        Self::open_in(data_dir, &Database::Sqlite)
    }

    /// Opens the engine's tables in `database`: `data_dir/engine.db`, or
    /// PostgreSQL (migrated on first use; `data_dir` then holds only this
    /// node's installed components).
    pub fn open_in(data_dir: &Path, database: &Database) -> Result<EngineStore, StoreError> {
        if !data_dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data_dir)
                .map_err(|source| StoreError::Io {
                    action: "create the data directory",
                    path: data_dir.to_owned(),
                    source,
                })?;
        }
        let Database::Postgres(pool) = database else {
            return Self::open_sqlite(data_dir);
        };
        let store = EngineStore {
            conn: Conn::Postgres(pool.conn()),
            database: database.clone(),
            data_dir: data_dir.to_owned(),
            path: PathBuf::from(pool.shown()),
            waiting_estimate: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// `data_dir/engine.db`; `data_dir` exists (see [`open_in`](Self::open_in)).
    fn open_sqlite(data_dir: &Path) -> Result<EngineStore, StoreError> {
        let path = data_dir.join(DB_FILE);
        check_header(&path)?;
        // Create the file ourselves, 0600 whatever the umask: SQLite gives
        // its WAL and shared-memory files the same mode. `mode` only
        // applies when the file is created; an existing file keeps its own.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::Io {
                action: "create",
                path: path.clone(),
                source,
            })?;
        let db_err = |operation| {
            let path = path.clone();
            move |source: rusqlite::Error| StoreError::Db {
                operation,
                path,
                source: source.into(),
            }
        };
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err("opening the database"))?;
        crate::sqlite::configure(&mut conn).map_err(db_err("configuring the connection"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err("enabling WAL"))?;
        // Memory-mapped reads: another connection's commit empties this
        // one's page cache, and re-reading pages by `pread` on every
        // transaction cost the busy queue more than anything else.
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA mmap_size = 268435456;",
        )
        .map_err(db_err("configuring the connection"))?;
        let store = EngineStore {
            conn: Conn::Sqlite(conn),
            database: Database::Sqlite,
            data_dir: data_dir.to_owned(),
            path,
            waiting_estimate: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Where this store's tables are.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Which database this store is in.
    pub fn backend(&self) -> Backend {
        self.conn.backend()
    }

    /// Another connection to the same database.
    pub fn reopen(&self) -> Result<EngineStore, StoreError> {
        Self::open_in(&self.data_dir, &self.database)
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The data directory the store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Maps a database error to [`StoreError::Db`] naming `operation`.
    fn db<E: Into<DbError>>(
        &self,
        operation: &'static str,
    ) -> impl FnOnce(E) -> StoreError + use<E> {
        let path = self.path.clone();
        move |source| StoreError::Db {
            operation,
            path,
            source: source.into(),
        }
    }

    /// Applies every migration newer than the file's version, each in its
    /// own transaction. Refuses a file from a newer build.
    fn migrate(&self) -> Result<(), StoreError> {
        let Some(conn) = self.conn.sqlite() else {
            let found = crate::db::schema::pg_version(&self.conn, PG_STORE)
                .map_err(self.db("reading the schema version"))?;
            if found > SCHEMA_VERSION {
                return Err(StoreError::SchemaTooNew {
                    path: self.path.clone(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            return crate::db::schema::migrate(
                &self.conn,
                PG_STORE,
                PG_MIGRATIONS,
                &mut |_, _| Ok(()),
                &|e| self.db("migrating the schema")(e),
            );
        };
        let current: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.db("reading the schema version"))?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path: self.path.clone(),
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        if current == SCHEMA_VERSION {
            return Ok(());
        }
        // A migration may rebuild a table that others reference; with
        // foreign keys on, dropping the old one would cascade. The pragma
        // only takes effect outside a transaction, and every migration is
        // checked for dangling references before it commits.
        conn.execute_batch("PRAGMA foreign_keys = OFF;")
            .map_err(self.db("preparing to migrate"))?;
        let migrated = (|| {
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                let tx = conn
                    .unchecked_transaction()
                    .map_err(self.db("starting a migration"))?;
                tx.execute_batch(sql)
                    .map_err(self.db("migrating the schema"))?;
                let dangling: Option<String> = tx
                    .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })
                    .map_err(self.db("checking references after a migration"))?;
                if let Some(table) = dangling {
                    return Err(StoreError::NotAnEngineDatabase {
                        path: self.path.clone(),
                        reason: format!(
                            "migrating to schema version {} left rows of {table} pointing at nothing",
                            i + 1
                        ),
                    });
                }
                tx.pragma_update(None, "user_version", i as i64 + 1)
                    .and_then(|()| tx.commit())
                    .map_err(self.db("migrating the schema"))?;
            }
            Ok(())
        })();
        conn.execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(self.db("re-enabling foreign keys"))?;
        migrated
    }

    // ----- extensions -----

    /// Records an installed extension whose component is stored at `path`
    /// (inside the data directory; kept relative to it). Fails with
    /// [`StoreError::ExtensionExists`] if that name and version are
    /// already recorded: a recorded version is never overwritten.
    pub fn record_extension(
        &mut self,
        description: &ExtensionDescription,
        sha256: &str,
        path: &Path,
    ) -> Result<InstalledExtension, StoreError> {
        let relative = path.strip_prefix(&self.data_dir).unwrap_or(path);
        let relative_text = relative.to_str().ok_or_else(|| StoreError::Encode {
            what: "the component path",
            reason: format!("{} is not valid UTF-8", path.display()),
        })?;
        let description_json = to_json("the extension description", description)?;
        let installed_at = now_ms();
        let inserted = self.conn.query_one(
            "INSERT INTO extensions(name, version, sha256, description, path, installed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            args![
                &description.name,
                &description.version,
                sha256,
                &description_json,
                relative_text,
                installed_at
            ],
            |r| r.get::<i64>(0),
        );
        let id = match inserted {
            Ok(id) => id,
            Err(e) if e.is_unique_violation() => {
                return Err(StoreError::ExtensionExists {
                    name: description.name.clone(),
                    version: description.version.clone(),
                });
            }
            Err(e) => return Err(self.db("recording an installed extension")(e)),
        };
        Ok(InstalledExtension {
            id,
            name: description.name.clone(),
            version: description.version.clone(),
            sha256: sha256.to_owned(),
            description: description.clone(),
            path: self.data_dir.join(relative),
            installed_at,
        })
    }

    /// Keeps a component's bytes in the database a cluster shares (by
    /// content; nothing to do on SQLite, where the data directory is the
    /// only one).
    pub fn store_component(&mut self, sha256: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if self.backend() == Backend::Sqlite {
            return Ok(());
        }
        self.conn
            .execute(
                "INSERT INTO components(sha256, bytes) VALUES (?1, ?2) ON CONFLICT (sha256) DO NOTHING",
                args![sha256, bytes],
            )
            .map(drop)
            .map_err(self.db("storing a component"))
    }

    /// A component's bytes from the database a cluster shares, if there.
    pub fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if self.backend() == Backend::Sqlite {
            return Ok(None);
        }
        self.conn
            .query_opt(
                "SELECT bytes FROM components WHERE sha256 = ?1",
                args![sha256],
                |r| r.get(0),
            )
            .map_err(self.db("reading a component"))
    }

    /// Every installed extension, by name, newest version first.
    pub fn extensions(&self) -> Result<Vec<InstalledExtension>, StoreError> {
        let mut all = self.query_extensions(None)?;
        all.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| newest_first(a, b)));
        Ok(all)
    }

    /// Every installed version of `name`, newest first (see
    /// [`compare_versions`]); empty when none is installed.
    pub fn versions(&self, name: &str) -> Result<Vec<InstalledExtension>, StoreError> {
        let mut all = self.query_extensions(Some(name))?;
        all.sort_by(newest_first);
        Ok(all)
    }

    /// `name` at `version`, or its newest version when `version` is `None`.
    ///
    /// "Newest" is by version number ([`compare_versions`]), not by install
    /// time: installing 0.1.1 after 0.2.0 (a backport) must not make graphs
    /// that pin no version fall back to 0.1.1. Equal versions by number
    /// (`1.0` and `1.0.0`) are ordered by install time.
    pub fn extension(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<InstalledExtension>, StoreError> {
        match version {
            None => Ok(self.versions(name)?.into_iter().next()),
            Some(version) => Ok(self
                .query_extensions(Some(name))?
                .into_iter()
                .find(|e| e.version == version)),
        }
    }

    fn query_extensions(&self, name: Option<&str>) -> Result<Vec<InstalledExtension>, StoreError> {
        let rows = self
            .conn
            .query_map(
                "SELECT id, name, version, sha256, description, path, installed_at
                 FROM extensions WHERE CAST(?1 AS TEXT) IS NULL OR name = ?1",
                args![name],
                |r| {
                    let path: String = r.get(5)?;
                    Ok(InstalledExtension {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        version: r.get(2)?,
                        sha256: r.get(3)?,
                        description: json_column(r, 4)?,
                        path: self.data_dir.join(path),
                        installed_at: r.get(6)?,
                    })
                },
            )
            .map_err(self.db("listing installed extensions"))?;
        Ok(rows)
    }

    // ----- deployments and bot state -----

    /// Deploys `graph_json` (canonical JSON) to `bot`, deactivating its
    /// previous deployment in the same transaction. Old deployments are
    /// kept, inactive, as history.
    pub fn deploy(
        &mut self,
        bot: &str,
        graph_json: &str,
        graph_version: &str,
        pins: &BTreeMap<String, Pin>,
    ) -> Result<Deployment, StoreError> {
        self.deploy_with_triggers(bot, graph_json, graph_version, pins, &[])
    }

    /// [`deploy`](Self::deploy), and in the same transaction an id for each
    /// of `triggers` (the graph's trigger names, each with its first fire
    /// time when it is a schedule) that has none yet. The bot's schedules
    /// become exactly those given, each firing next at the time given.
    pub fn deploy_with_triggers(
        &mut self,
        bot: &str,
        graph_json: &str,
        graph_version: &str,
        pins: &BTreeMap<String, Pin>,
        triggers: &[(&str, Option<i64>)],
    ) -> Result<Deployment, StoreError> {
        let fresh: Vec<TriggerId> = triggers
            .iter()
            .map(|_| TriggerId::generate())
            .collect::<Result<_, _>>()?;
        let deployed_at = now_ms();
        let pins_json = to_json("the deployment's pins", pins)?;
        let tx = self
            .conn
            .atomic(Begin::Immediate)
            .map_err(db_err(&self.path, "starting a deployment"))?;
        if tx.backend() == Backend::Postgres {
            // Two nodes deploying one bot at once: one after the other, so
            // exactly one deployment ends active.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(?1, 0))",
                args![bot],
            )
            .map_err(db_err(&self.path, "starting a deployment"))?;
        }
        let id = tx
            .execute(
                "UPDATE deployments SET active = 0 WHERE bot = ?1 AND active = 1",
                args![bot],
            )
            .and_then(|_| {
                tx.query_one(
                    "INSERT INTO deployments(bot, graph, graph_version, deployed_at, active, pins)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5) RETURNING id",
                    args![bot, graph_json, graph_version, deployed_at, &pins_json],
                    |r| r.get::<i64>(0),
                )
            })
            .map_err(db_err(&self.path, "recording a deployment"))?;
        tx.execute("DELETE FROM schedules WHERE bot = ?1", args![bot])
            .map_err(db_err(&self.path, "recording a trigger"))?;
        for ((name, next_fire), fresh) in triggers.iter().zip(&fresh) {
            tx.execute(
                "INSERT INTO triggers(id, bot, name, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(bot, name) DO NOTHING",
                args![fresh.as_str(), bot, *name, deployed_at],
            )
            .and_then(|_| match next_fire {
                Some(at) => tx.execute(
                    "INSERT INTO schedules(trigger_id, bot, next_fire_ms)
                     SELECT id, bot, ?3 FROM triggers WHERE bot = ?1 AND name = ?2",
                    args![bot, *name, *at],
                ),
                None => Ok(0),
            })
            .map_err(db_err(&self.path, "recording a trigger"))?;
        }
        if tx.backend() == Backend::Postgres {
            // Every node's scheduler reads the schedules again.
            tx.execute("SELECT pg_notify(?1, '')", args![SCHEDULES_CHANNEL])
                .map_err(db_err(&self.path, "committing a deployment"))?;
        }
        tx.commit()
            .map_err(db_err(&self.path, "committing a deployment"))?;
        Ok(Deployment {
            id,
            bot: bot.to_owned(),
            graph: graph_json.to_owned(),
            graph_version: graph_version.to_owned(),
            deployed_at,
            active: true,
            pins: pins.clone(),
        })
    }

    /// Every trigger id `bot` was given, by trigger name. A name its
    /// deployed graph no longer declares keeps its id (it answers 404
    /// until a graph declares it again).
    pub fn triggers_of(&self, bot: &str) -> Result<BTreeMap<String, TriggerId>, StoreError> {
        self.conn
            .query_map(
                "SELECT name, id FROM triggers WHERE bot = ?1",
                args![bot],
                |r| Ok((r.get(0)?, TriggerId(r.get(1)?))),
            )
            .map(|rows| rows.into_iter().collect())
            .map_err(self.db("reading the bot's triggers"))
    }

    /// Schedules due at `now_ms`: (trigger id, bot, due time), oldest first.
    pub fn due_schedules(&self, now_ms: i64) -> Result<Vec<(TriggerId, String, i64)>, StoreError> {
        self.conn
            .query_map(
                "SELECT trigger_id, bot, next_fire_ms FROM schedules
                 WHERE next_fire_ms <= ?1 ORDER BY next_fire_ms",
                args![now_ms],
                |r| Ok((TriggerId(r.get(0)?), r.get(1)?, r.get(2)?)),
            )
            .map_err(self.db("reading the due schedules"))
    }

    /// The soonest fire time of any schedule.
    pub fn next_schedule_fire(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_one("SELECT min(next_fire_ms) FROM schedules", args![], |r| {
                r.get(0)
            })
            .map_err(self.db("reading the next schedule fire"))
    }

    /// Each schedule trigger of `bot` by name, with its next fire time.
    pub fn next_fires_of(&self, bot: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        self.conn
            .query_map(
                "SELECT t.name, s.next_fire_ms FROM schedules s JOIN triggers t ON t.id = s.trigger_id
                 WHERE s.bot = ?1",
                args![bot],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(|rows| rows.into_iter().collect())
            .map_err(self.db("reading the bot's schedules"))
    }

    /// Moves schedule `fire.trigger_id` on from `fire.due_ms` to
    /// `fire.next_ms` without a run (a missed fire skipped, or a fire of a
    /// removed trigger): `false` when another process moved it first.
    pub fn skip_fire(&mut self, fire: &Fire) -> Result<bool, StoreError> {
        claim_fire(&self.conn, fire).map_err(self.db("moving a schedule on"))
    }

    /// The bot and trigger name that `id` belongs to, if any.
    pub fn trigger(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        self.conn
            .query_opt(
                "SELECT bot, name FROM triggers WHERE id = ?1",
                args![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.db("looking up a trigger"))
    }

    /// The graph currently deployed to `bot`, if any.
    pub fn active_deployment(&self, bot: &str) -> Result<Option<Deployment>, StoreError> {
        self.conn
            .query_opt(
                "SELECT id, bot, graph, graph_version, deployed_at, active, pins
                 FROM deployments WHERE bot = ?1 AND active = 1",
                args![bot],
                deployment,
            )
            .map_err(self.db("reading the active deployment"))
    }

    /// Bots whose active deployment pins `name@version`, sorted.
    pub fn bots_pinning(&self, name: &str, version: &str) -> Result<Vec<String>, StoreError> {
        let deployments: Vec<Deployment> = self
            .conn
            .query_map(
                "SELECT id, bot, graph, graph_version, deployed_at, active, pins
                 FROM deployments WHERE active = 1 ORDER BY bot",
                args![],
                deployment,
            )
            .map_err(self.db("reading the active deployments"))?;
        Ok(deployments
            .into_iter()
            .filter(|d| {
                d.pins
                    .values()
                    .any(|p| p.name == name && p.version == version)
            })
            .map(|d| d.bot)
            .collect())
    }

    /// Forgets the installed `name@version` and deletes its stored
    /// component. Refused while an active deployment pins it.
    pub fn remove_extension(&mut self, name: &str, version: &str) -> Result<(), StoreError> {
        let pinned = self.bots_pinning(name, version)?;
        if !pinned.is_empty() {
            return Err(StoreError::ExtensionPinned {
                name: name.to_owned(),
                version: version.to_owned(),
                bots: pinned,
            });
        }
        let installed =
            self.extension(name, Some(version))?
                .ok_or_else(|| StoreError::ExtensionMissing {
                    name: name.to_owned(),
                    version: version.to_owned(),
                })?;
        self.conn
            .execute(
                "DELETE FROM extensions WHERE name = ?1 AND version = ?2",
                args![name, version],
            )
            .map_err(self.db("removing an extension"))?;
        // The row is gone first: a file left behind is only disk space.
        let _ = std::fs::remove_file(&installed.path);
        if let Some(version_dir) = installed.path.parent() {
            // Only when empty; then the name's directory, if empty too.
            let _ = std::fs::remove_dir(version_dir)
                .and_then(|()| version_dir.parent().map_or(Ok(()), std::fs::remove_dir));
        }
        Ok(())
    }

    /// Pauses or resumes `bot` (its triggers are not executed while
    /// paused). Works for a bot with no deployment yet.
    pub fn set_paused(&mut self, bot: &str, paused: bool) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO bot_state(bot, paused, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(bot) DO UPDATE SET paused = excluded.paused,
                                                updated_at = excluded.updated_at",
                args![bot, paused, now_ms()],
            )
            .map(drop)
            .map_err(self.db("setting the bot's paused state"))
    }

    /// Whether `bot` is paused; a bot never paused is not.
    /// Saves `graph` (a graph document, already checked to hold no
    /// credential) as `bot`'s draft, replacing any earlier one.
    pub fn save_draft(&mut self, bot: &str, graph: &str, by: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO drafts (bot, graph, saved_at, saved_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (bot) DO UPDATE SET graph = ?2, saved_at = ?3, saved_by = ?4",
                args![bot, graph, crate::trigger::now_ms(), by],
            )
            .map(|_| ())
            .map_err(self.db("saving the bot's draft graph"))
    }

    /// `bot`'s draft graph document, if one was saved.
    pub fn draft(&self, bot: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_opt("SELECT graph FROM drafts WHERE bot = ?1", args![bot], |r| {
                r.get(0)
            })
            .map_err(self.db("reading the bot's draft graph"))
    }

    pub fn is_paused(&self, bot: &str) -> Result<bool, StoreError> {
        paused(&self.conn, bot).map_err(self.db("reading the bot's paused state"))
    }

    // ----- executions -----

    /// Records the start of an execution (status `running`) and returns its
    /// new id. `trigger_json` must already be scrubbed.
    pub fn start_execution(
        &mut self,
        bot: &str,
        graph_version: &str,
        trigger_json: &str,
    ) -> Result<ExecutionId, StoreError> {
        let id = ExecutionId::generate()?;
        self.conn
            .execute(
                "INSERT INTO executions(id, bot, graph_version, status, started_at, trigger)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                args![
                    id.as_str(),
                    bot,
                    graph_version,
                    ExecutionStatus::Running,
                    now_ms(),
                    trigger_json
                ],
            )
            .map_err(self.db("recording the start of an execution"))?;
        Ok(id)
    }

    /// Records the graph version a queued execution actually runs (the
    /// bot's deployment when a worker began it).
    pub fn set_execution_graph(
        &mut self,
        id: &ExecutionId,
        graph_version: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE executions SET graph_version = ?2 WHERE id = ?1",
                args![id.as_str(), graph_version],
            )
            .map(drop)
            .map_err(self.db("recording an execution's graph"))
    }

    /// Records what one node did. Its execution must exist
    /// ([`StoreError::ExecutionNotFound`]) and the node must not have been
    /// recorded for it yet ([`StoreError::NodeRunExists`]).
    pub fn record_node_run(&mut self, run: &NodeRun) -> Result<(), StoreError> {
        let logs = to_json("the node's logs", &run.logs)?;
        let secrets_read = to_json("the names of the secrets read", &run.secrets_read)?;
        let egress = to_json("the node's requests", &run.egress)?;
        // Prepared once per connection: this runs for every node.
        // A savepoint inside a shared commit: a refused insert must not
        // abort the others' transaction (PostgreSQL would).
        let inserted = self.conn.atomic(Begin::Immediate).and_then(|tx| {
            tx.execute(
                "INSERT INTO node_runs(execution_id, node, extension, status, started_at,
                                   duration_ms, output, error, logs, stdout, stderr, secrets_read,
                                   egress, egress_dropped)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                args![
                    run.execution_id.as_str(),
                    &run.node,
                    &run.extension,
                    run.status,
                    run.started_at,
                    run.duration_ms,
                    run.output.as_ref(),
                    run.error.as_ref(),
                    &logs,
                    &run.stdout,
                    &run.stderr,
                    &secrets_read,
                    &egress,
                    run.egress_dropped as i64
                ],
            )?;
            tx.commit()
        });
        match inserted {
            Ok(()) => Ok(()),
            Err(e) if e.is_foreign_key_violation() => {
                Err(StoreError::ExecutionNotFound(run.execution_id.to_string()))
            }
            Err(e) if e.is_unique_violation() => Err(StoreError::NodeRunExists {
                execution: run.execution_id.to_string(),
                node: run.node.clone(),
            }),
            Err(e) => Err(self.db("recording a node run")(e)),
        }
    }

    /// Records how an execution ended (normally `succeeded` or `failed`)
    /// with an optional scrubbed one-line summary. Its queue job, if it had
    /// one, goes in the same transaction: a run is finished and dequeued
    /// together, or neither.
    pub fn finish_execution(
        &mut self,
        id: &ExecutionId,
        status: ExecutionStatus,
        summary: Option<&str>,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .atomic(Begin::Immediate)
            .map_err(db_err(&self.path, "recording the end of an execution"))?;
        let changed = tx
            .execute(
                "UPDATE executions SET status = ?2, finished_at = ?3, summary = ?4 WHERE id = ?1",
                args![id.as_str(), status, now_ms(), summary],
            )
            .and_then(|changed| {
                tx.execute(
                    "DELETE FROM jobs WHERE execution_id = ?1",
                    args![id.as_str()],
                )
                .map(|_| changed)
            })
            .map_err(db_err(&self.path, "recording the end of an execution"))?;
        if changed == 0 {
            return Err(StoreError::ExecutionNotFound(id.to_string()));
        }
        tx.commit()
            .map_err(db_err(&self.path, "recording the end of an execution"))
    }

    /// The newest `limit` executions, of `bot` or of every bot, newest
    /// first.
    pub fn executions(
        &self,
        bot: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ExecutionSummary>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.conn
            .query_map(
                "SELECT id, bot, graph_version, status, started_at, finished_at, summary
             FROM executions WHERE CAST(?1 AS TEXT) IS NULL OR bot = ?1
             ORDER BY started_at DESC, rowid DESC LIMIT ?2",
                args![bot, limit],
                |r| {
                    Ok(ExecutionSummary {
                        id: ExecutionId(r.get(0)?),
                        bot: r.get(1)?,
                        graph_version: r.get(2)?,
                        status: r.get(3)?,
                        started_at: r.get(4)?,
                        finished_at: r.get(5)?,
                        summary: r.get(6)?,
                    })
                },
            )
            .map_err(self.db("listing executions"))
    }

    /// One execution with its node runs in the order they started.
    pub fn execution(
        &self,
        id: &ExecutionId,
    ) -> Result<Option<(Execution, Vec<NodeRun>)>, StoreError> {
        let execution = self
            .conn
            .query_opt(
                "SELECT id, bot, graph_version, status, started_at, finished_at, trigger, summary, started_by
                 FROM executions WHERE id = ?1",
                args![id.as_str()],
                |r| {
                    Ok(Execution {
                        id: ExecutionId(r.get(0)?),
                        bot: r.get(1)?,
                        graph_version: r.get(2)?,
                        status: r.get(3)?,
                        started_at: r.get(4)?,
                        finished_at: r.get(5)?,
                        trigger: r.get(6)?,
                        summary: r.get(7)?,
                        started_by: r.get(8)?,
                    })
                },
            )
            .map_err(self.db("reading an execution"))?;
        let Some(execution) = execution else {
            return Ok(None);
        };
        let runs = self
            .conn
            .query_map(
                "SELECT execution_id, node, extension, status, started_at, duration_ms,
                        output, error, logs, stdout, stderr, secrets_read, egress, egress_dropped
                 FROM node_runs WHERE execution_id = ?1 ORDER BY started_at, rowid",
                args![id.as_str()],
                node_run,
            )
            .map_err(self.db("reading an execution's node runs"))?;
        Ok(Some((execution, runs)))
    }

    /// Deletes everything recorded for `bot` (deployments, paused state,
    /// executions and their node runs) in one transaction, for when the bot
    /// itself is deleted.
    pub fn delete_bot_data(&mut self, bot: &str) -> Result<(), StoreError> {
        let tx = self
            .conn
            .atomic(Begin::Immediate)
            .map_err(db_err(&self.path, "starting to delete a bot's data"))?;
        delete_bot_rows(&tx, bot)
            .and_then(|_| tx.commit())
            .map_err(db_err(&self.path, "deleting a bot's data"))
    }
}

/// The statements of [`EngineStore::delete_bot_data`], on `conn` (inside
/// its caller's transaction). On PostgreSQL the vault's tables share the
/// database, so the vault's delete of a bot runs these in its own
/// transaction: the bot, its secrets and its records go together or not
/// at all.
pub fn delete_bot_rows(conn: &Conn, bot: &str) -> Result<(), DbError> {
    for table in [
        "deployments",
        "bot_state",
        "executions",
        "triggers",
        "schedules",
        "drafts",
    ] {
        conn.execute(&format!("DELETE FROM {table} WHERE bot = ?1"), args![bot])?;
    }
    Ok(())
}

/// Checkpoints `engine.db`'s WAL on a thread and connection of its own,
/// for the writer thread of `serve` (see
/// [`EngineStore::hand_off_checkpoints`]). SQLite otherwise checkpoints
/// inside whichever commit takes the WAL past 1,000 pages: under load
/// that was the writer's, and every run waiting for it stalled for the
/// copy and its fsync (a p99 of 100 ms). Woken by commits only, so an idle
/// server does nothing.
#[derive(Debug)]
pub struct Checkpointer {
    wake: std::sync::mpsc::SyncSender<()>,
}

/// At most this often.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

impl Checkpointer {
    /// Asks for a checkpoint soon; never blocks.
    pub fn committed(&self) {
        let _ = self.wake.try_send(());
    }
}

impl EngineStore {
    /// Stops this connection checkpointing on commit and starts a
    /// [`Checkpointer`] that does it instead, in passive mode (it never
    /// blocks a writer or a reader).
    /// On PostgreSQL there is nothing to hand off.
    pub fn hand_off_checkpoints(&mut self) -> Result<Checkpointer, StoreError> {
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let Some(conn) = self.conn.sqlite() else {
            drop(woken);
            return Ok(Checkpointer { wake });
        };
        let checkpointing = EngineStore::open(&self.data_dir)?;
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(self.db("handing checkpoints to their own thread"))?;
        std::thread::Builder::new()
            .name("narakim-checkpoint".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    if let Err(e) = checkpointing.conn.batch("PRAGMA wal_checkpoint(PASSIVE)") {
                        tracing::warn!(
                            "checkpointing engine.db failed (retried after the next commit): {e}"
                        );
                    }
                    std::thread::sleep(CHECKPOINT_EVERY);
                }
            })
            .map_err(|source| StoreError::Io {
                action: "start a checkpoint thread for",
                path: self.path.clone(),
                source,
            })?;
        Ok(Checkpointer { wake })
    }
}

/// Whether a run of a bot accepted now can run, and what.
#[derive(Debug, Clone)]
enum Runnable {
    /// The active deployment's graph version.
    Deployed(String),
    Paused,
    NotDeployed,
}

/// Whether `bot` is paused (no row: it never was).
/// Moves a schedule on from its due time, if nobody did: the claim of
/// that fire.
fn claim_fire(conn: &Conn, fire: &Fire) -> Result<bool, DbError> {
    conn.execute(
        "UPDATE schedules SET next_fire_ms = ?3 WHERE trigger_id = ?1 AND next_fire_ms = ?2",
        args![&fire.trigger_id, fire.due_ms, fire.next_ms],
    )
    .map(|changed| changed == 1)
}

fn paused(conn: &Conn, bot: &str) -> Result<bool, DbError> {
    conn.query_opt(
        "SELECT paused FROM bot_state WHERE bot = ?1",
        args![bot],
        |r| r.get(0),
    )
    .map(|paused| paused.unwrap_or(false))
}

fn runnable(tx: &Conn, bot: &str) -> Result<Runnable, DbError> {
    if paused(tx, bot)? {
        return Ok(Runnable::Paused);
    }
    let version: Option<String> = tx.query_opt(
        "SELECT graph_version FROM deployments WHERE bot = ?1 AND active = 1",
        args![bot],
        |r| r.get(0),
    )?;
    Ok(version.map_or(Runnable::NotDeployed, Runnable::Deployed))
}

impl RunQueue for EngineStore {
    fn enqueue_many(
        &mut self,
        runs: &[NewRun<'_>],
        bound: usize,
    ) -> Result<Vec<Result<Enqueued, StoreError>>, StoreError> {
        let path = self.path.clone();
        let err = |operation| db_err(&path, operation);
        // The answer "accepted" must survive a power cut: this commit syncs
        // the WAL, whatever the connection's everyday setting. (PostgreSQL
        // syncs every commit: `synchronous_commit` is on by default.)
        if let Some(conn) = self.conn.sqlite() {
            conn.execute_batch("PRAGMA synchronous = FULL;")
                .map_err(db_err(&self.path, "queueing a run"))?;
        }
        let estimate = self.waiting_estimate;
        let enqueued = (|| {
            let mut counted_at = None;
            let tx = self
                .conn
                .begin(Begin::Immediate)
                .map_err(err("queueing a run"))?;
            let mut waiting = match estimate {
                Some((n, at))
                    if n.saturating_add(runs.len() as u64) < bound as u64
                        && at.elapsed() < RECOUNT_EVERY =>
                {
                    n
                }
                _ => {
                    let counted: i64 = tx
                        .query_one(
                            "SELECT count(*) FROM jobs WHERE lease_owner IS NULL",
                            args![],
                            |r| r.get(0),
                        )
                        .map_err(err("measuring the queue"))?;
                    counted_at = Some(std::time::Instant::now());
                    counted.max(0) as u64
                }
            };
            if tx.backend() == Backend::Postgres {
                // Another node may accept a repeat of one of these runs at
                // this moment: each key's check and insert take turns
                // across the cluster. Locked in one order, so two batches
                // cannot wait on each other.
                let mut keys: Vec<String> = runs
                    .iter()
                    .flat_map(|run| {
                        let delivery = run.delivery.into_iter().flat_map(|d| {
                            d.keys
                                .iter()
                                .map(|k| format!("delivery\n{}\n{k}", d.trigger_id))
                        });
                        let idempotency = run
                            .idempotency_key
                            .map(|k| format!("idempotency\n{}\n{k}", run.bot));
                        delivery.chain(idempotency)
                    })
                    .collect();
                keys.sort();
                keys.dedup();
                for key in &keys {
                    tx.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended(?1, 0))",
                        args![key],
                    )
                    .map_err(err("queueing a run"))?;
                }
            }
            let mut results = Vec::with_capacity(runs.len());
            // Per bot, once per batch: its deployed graph version, or why
            // it cannot run.
            let mut bots: HashMap<&str, Runnable> = HashMap::new();
            let now = now_ms();
            if runs.iter().any(|r| r.delivery.is_some()) {
                tx.execute("DELETE FROM deliveries WHERE expires_at <= ?1", args![now])
                    .map_err(err("forgetting old deliveries"))?;
            }
            for run in runs {
                // A schedule's fire is claimed first, whether or not its run
                // is then accepted: a paused bot's fire is skipped, not kept.
                if let Some(fire) = run.fire
                    && !claim_fire(&tx, fire).map_err(err("claiming a schedule's fire"))?
                {
                    results.push(Err(StoreError::FireClaimed));
                    continue;
                }
                // A repeated delivery finds its run; earlier runs of this
                // batch are visible here too.
                if let Some(delivery) = run.delivery {
                    let mut found: Option<(String, ExecutionStatus)> = None;
                    for key in &delivery.keys {
                        found = tx
                            .query_opt(
                                "SELECT e.id, e.status FROM deliveries d JOIN executions e ON e.id = d.execution_id
                                 WHERE d.trigger_id = ?1 AND d.key = ?2",
                                args![&delivery.trigger_id, key],
                                |r| Ok((r.get(0)?, r.get(1)?)),
                            )
                            .map_err(err("looking up a delivery"))?;
                        if found.is_some() {
                            break;
                        }
                    }
                    if let Some((id, status)) = found {
                        results.push(Ok(Enqueued {
                            id: ExecutionId(id),
                            status,
                            replayed: true,
                        }));
                        continue;
                    }
                }
                // Earlier runs of this batch are visible here: two requests
                // with one key in one batch still start one run.
                if let Some(key) = run.idempotency_key {
                    let existing: Option<(String, ExecutionStatus, String)> = tx
                        .query_opt(
                            "SELECT id, status, trigger FROM executions WHERE bot = ?1 AND idempotency_key = ?2",
                            args![run.bot, key],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                        )
                        .map_err(err("looking up an idempotency key"))?;
                    if let Some((id, status, trigger)) = existing {
                        // A retry repeats its request; another request under
                        // the same key is a client bug, and answering it with
                        // the first run would hide that its own never ran.
                        if trigger != run.trigger_json {
                            results.push(Err(StoreError::IdempotencyKeyReused {
                                bot: run.bot.to_owned(),
                                key: key.to_owned(),
                                execution: id,
                            }));
                            continue;
                        }
                        results.push(Ok(Enqueued {
                            id: ExecutionId(id),
                            status,
                            replayed: true,
                        }));
                        continue;
                    }
                }
                let state = match bots.entry(run.bot) {
                    Entry::Occupied(known) => known.get().clone(),
                    Entry::Vacant(slot) => slot
                        .insert(runnable(&tx, run.bot).map_err(err("checking the bot"))?)
                        .clone(),
                };
                let graph_version = match state {
                    Runnable::Deployed(version) => version,
                    Runnable::Paused => {
                        let bot = run.bot.to_owned();
                        results.push(Err(StoreError::BotPaused { bot }));
                        continue;
                    }
                    Runnable::NotDeployed => {
                        let bot = run.bot.to_owned();
                        results.push(Err(StoreError::BotNotDeployed { bot }));
                        continue;
                    }
                };
                if waiting >= bound as u64 {
                    results.push(Err(StoreError::QueueFull { bound }));
                    continue;
                }
                let id = match run.id {
                    Some(id) => id.clone(),
                    None => ExecutionId::generate()?,
                };
                tx.execute(
                    "INSERT INTO executions(id, bot, graph_version, status, started_at, trigger, idempotency_key, started_by)
                     VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7)",
                    args![
                        id.as_str(),
                        run.bot,
                        &graph_version,
                        now,
                        run.trigger_json,
                        run.idempotency_key,
                        run.started_by
                    ],
                )
                .and_then(|_| {
                    tx.execute(
                        "INSERT INTO jobs(execution_id, queued_at) VALUES (?1, ?2)",
                        args![id.as_str(), now],
                    )
                })
                .map_err(err("queueing a run"))?;
                if let Some(delivery) = run.delivery {
                    for key in &delivery.keys {
                        tx.execute(
                            "INSERT INTO deliveries(trigger_id, key, execution_id, expires_at)
                             VALUES (?1, ?2, ?3, ?4)",
                            args![
                                &delivery.trigger_id,
                                key,
                                id.as_str(),
                                delivery.keep_until_ms
                            ],
                        )
                        .map_err(err("recording a delivery"))?;
                    }
                }
                waiting += 1;
                results.push(Ok(Enqueued {
                    id,
                    status: ExecutionStatus::Queued,
                    replayed: false,
                }));
            }
            if tx.backend() == Backend::Postgres
                && results.iter().any(|r| matches!(r, Ok(e) if !e.replayed))
            {
                // Wakes every node's workers when this commits (and not
                // before: a job is never announced ahead of its row). No
                // payload; PostgreSQL sends one per transaction.
                tx.execute("SELECT pg_notify(?1, '')", args![JOBS_CHANNEL])
                    .map_err(err("queueing a run"))?;
            }
            tx.commit().map_err(err("queueing a run"))?;
            Ok((results, waiting, counted_at))
        })();
        if let Some(conn) = self.conn.sqlite() {
            conn.execute_batch("PRAGMA synchronous = NORMAL;")
                .map_err(db_err(&self.path, "queueing a run"))?;
        }
        let (results, waiting, counted_at) = match enqueued {
            Ok(done) => done,
            Err(e) => {
                self.waiting_estimate = None;
                return Err(e);
            }
        };
        // Claims only shrink the waiting set, so between counts this
        // overstates it; it is recounted when it nears the bound, or after
        // RECOUNT_EVERY (for other connections' enqueues).
        self.waiting_estimate = match (counted_at, estimate) {
            (Some(at), _) | (None, Some((_, at))) => Some((waiting, at)),
            (None, None) => None,
        };
        Ok(results)
    }

    fn claim_many(
        &mut self,
        owner: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let until = now_ms().saturating_add(lease.as_millis() as i64);
        let max = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
        let tx = self
            .conn
            .atomic(Begin::Immediate)
            .map_err(db_err(&self.path, "claiming queued runs"))?;
        let ids: Vec<String> = tx
            .query_map(
                match tx.backend() {
                    Backend::Sqlite => {
                        "UPDATE jobs SET lease_owner = ?1, lease_until = ?2
                         WHERE execution_id IN (SELECT execution_id FROM jobs WHERE lease_owner IS NULL
                                                ORDER BY queued_at, rowid LIMIT ?3)
                         RETURNING execution_id"
                    }
                    Backend::Postgres => {
                        "UPDATE jobs SET lease_owner = ?1, lease_until = ?2
                         WHERE execution_id IN (SELECT execution_id FROM jobs WHERE lease_owner IS NULL
                                                ORDER BY queued_at, rowid LIMIT ?3
                                                FOR UPDATE SKIP LOCKED)
                         RETURNING execution_id"
                    }
                },
                args![owner, until, max],
                |r| r.get(0),
            )
            .map_err(db_err(&self.path, "claiming queued runs"))?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let (bot, trigger_json, graph_version, queued_at, rowid): (_, _, _, i64, i64) = tx
                .query_one(
                    "SELECT e.bot, e.trigger, e.graph_version, j.queued_at, j.rowid
                     FROM executions e JOIN jobs j ON j.execution_id = e.id WHERE e.id = ?1",
                    args![&id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .map_err(db_err(&self.path, "claiming queued runs"))?;
            claimed.push((
                (queued_at, rowid),
                Claimed {
                    id: ExecutionId(id),
                    bot,
                    trigger_json,
                    graph_version,
                },
            ));
        }
        tx.commit()
            .map_err(db_err(&self.path, "claiming queued runs"))?;
        // Oldest first, as they were queued.
        claimed.sort_by_key(|(order, _)| *order);
        Ok(claimed.into_iter().map(|(_, c)| c).collect())
    }

    fn start(&mut self, owner: &str, id: &ExecutionId) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "UPDATE executions SET status = 'running', running_at = ?3
                 WHERE id = ?1 AND status = 'queued'
                   AND EXISTS (SELECT 1 FROM jobs WHERE execution_id = ?1 AND lease_owner = ?2)",
                args![id.as_str(), owner, now_ms()],
            )
            .map(|changed| changed == 1)
            .map_err(self.db("starting a queued run"))
    }

    fn renew(&mut self, owner: &str, lease: Duration) -> Result<usize, StoreError> {
        let until = now_ms().saturating_add(lease.as_millis() as i64);
        self.conn
            .execute(
                "UPDATE jobs SET lease_until = ?2 WHERE lease_owner = ?1",
                args![owner, until],
            )
            .map_err(self.db("renewing the node's leases"))
    }

    fn reap(&mut self) -> Result<Reaped, StoreError> {
        let now = now_ms();
        let tx = self
            .conn
            .atomic(Begin::Immediate)
            .map_err(db_err(&self.path, "reaping lapsed leases"))?;
        let interrupted = tx
            .execute(
                "UPDATE executions SET status = 'failed', finished_at = ?1, summary = ?2
                 WHERE status = 'running'
                   AND id IN (SELECT execution_id FROM jobs WHERE lease_until < ?1)",
                args![now, INTERRUPTED],
            )
            .and_then(|n| {
                tx.execute(
                    "DELETE FROM jobs WHERE lease_until < ?1
                       AND execution_id IN (SELECT id FROM executions WHERE status <> 'queued')",
                    args![now],
                )
                .map(|_| n)
            })
            .and_then(|n| {
                tx.execute(
                    "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE lease_until < ?1",
                    args![now],
                )
                .map(|requeued| (n, requeued))
            })
            .and_then(|(n, requeued)| {
                tx.query_one(
                    "SELECT count(*) FROM jobs WHERE lease_owner IS NULL",
                    args![],
                    |r| r.get::<i64>(0),
                )
                .map(|waiting| (n, requeued, waiting))
            })
            .and_then(|done| tx.commit().map(|()| done))
            .map_err(db_err(&self.path, "reaping lapsed leases"))?;
        Ok(Reaped {
            interrupted: interrupted.0,
            requeued: interrupted.1,
            waiting: interrupted.2.max(0) as usize,
        })
    }

    fn recover(&mut self, owner: &str) -> Result<Recovery, StoreError> {
        if self.backend() == Backend::Postgres {
            let reaped = self.reap()?;
            return Ok(Recovery {
                interrupted: reaped.interrupted,
                queued: reaped.waiting,
            });
        }
        let tx = self
            .conn
            .begin(Begin::Immediate)
            .map_err(db_err(&self.path, "recovering the queue"))?;
        let interrupted = tx
            .execute(
                "UPDATE executions SET status = 'failed', finished_at = ?2, summary = ?3
                 WHERE id IN (SELECT execution_id FROM jobs
                              WHERE lease_owner IS NOT NULL AND lease_owner <> ?1)",
                args![owner, now_ms(), INTERRUPTED],
            )
            .and_then(|n| {
                tx.execute(
                    "DELETE FROM jobs WHERE lease_owner IS NOT NULL AND lease_owner <> ?1",
                    args![owner],
                )
                .map(|_| n)
            })
            .map_err(db_err(&self.path, "recovering the queue"))?;
        let queued: i64 = tx
            .query_one(
                "SELECT count(*) FROM jobs WHERE lease_owner IS NULL",
                args![],
                |r| r.get(0),
            )
            .map_err(db_err(&self.path, "recovering the queue"))?;
        tx.commit()
            .map_err(db_err(&self.path, "recovering the queue"))?;
        Ok(Recovery {
            interrupted,
            queued: queued.max(0) as usize,
        })
    }

    fn write_together(
        &mut self,
        write: &mut dyn FnMut(&mut Self) -> bool,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = db_err(&path, "committing the executions' writes");
        if let Err(e) = self.conn.begin_open(Begin::Immediate) {
            // Each write still runs, in a transaction of its own.
            tracing::warn!("sharing a commit between writes failed (each commits alone): {e}");
            while write(self) {}
            return Ok(());
        }
        while write(self) {
            if !self.conn.in_transaction() {
                // The database rolled the whole transaction back (a full
                // disk, an I/O error, a dropped connection): stop here, so
                // no later write commits alone.
                break;
            }
        }
        if !self.conn.in_transaction() {
            return Err(err(DbError::Unavailable(
                "the transaction was rolled back by a failed write".into(),
            )));
        }
        self.conn.end(true).map_err(err)
    }

    fn depth(&self) -> Result<QueueDepth, StoreError> {
        self.conn
            .query_one(
                "SELECT count(*) FILTER (WHERE lease_owner IS NULL),
                        count(*) FILTER (WHERE lease_owner IS NOT NULL) FROM jobs",
                args![],
                |r| {
                    Ok(QueueDepth {
                        waiting: r.get::<i64>(0)?.max(0) as usize,
                        running: r.get::<i64>(1)?.max(0) as usize,
                    })
                },
            )
            .map_err(self.db("measuring the queue"))
    }
}

impl ExtensionCatalog for EngineStore {
    /// A database error reads as "not installed" here: the trait has no
    /// error channel, and deploy preflight reports a missing extension
    /// clearly anyway.
    fn find(&self, name: &str, version: Option<&str>) -> Option<ExtensionDescription> {
        self.extension(name, version)
            .ok()
            .flatten()
            .map(|e| e.description)
    }
}

/// `value` as JSON text; `what` names it in the error.
fn to_json(what: &'static str, value: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// Column `idx` as JSON, failing the row (not panicking) on bad data.
fn json_column<T: serde::de::DeserializeOwned>(r: &Row<'_>, idx: usize) -> Result<T, DbError> {
    let text: String = r.get(idx)?;
    serde_json::from_str(&text).map_err(|e| DbError::Column {
        column: idx,
        reason: e.to_string(),
    })
}

fn node_run(r: &Row<'_>) -> Result<NodeRun, DbError> {
    Ok(NodeRun {
        execution_id: ExecutionId(r.get(0)?),
        node: r.get(1)?,
        extension: r.get(2)?,
        status: r.get(3)?,
        started_at: r.get(4)?,
        duration_ms: r.get(5)?,
        output: r.get(6)?,
        error: r.get(7)?,
        logs: json_column(r, 8)?,
        stdout: r.get(9)?,
        stderr: r.get(10)?,
        secrets_read: json_column(r, 11)?,
        egress: json_column(r, 12)?,
        egress_dropped: r.get::<i64>(13)?.max(0) as usize,
    })
}

fn deployment(r: &Row<'_>) -> Result<Deployment, DbError> {
    Ok(Deployment {
        id: r.get(0)?,
        bot: r.get(1)?,
        graph: r.get(2)?,
        graph_version: r.get(3)?,
        deployed_at: r.get(4)?,
        active: r.get(5)?,
        pins: json_column(r, 6)?,
    })
}

/// Refuses an existing, non-empty file that is not SQLite, before SQLite
/// fails deep inside with "file is not a database".
fn check_header(path: &Path) -> Result<(), StoreError> {
    let mut header = [0u8; 16];
    let read = match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                action: "open",
                path: path.to_owned(),
                source,
            });
        }
        Ok(mut file) => {
            std::io::Read::read(&mut file, &mut header).map_err(|source| StoreError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            })?
        }
    };
    if read == 0 {
        return Ok(());
    }
    if read < header.len() || &header != b"SQLite format 3\0" {
        return Err(StoreError::NotAnEngineDatabase {
            path: path.to_owned(),
            reason: "it is not a SQLite database".into(),
        });
    }
    Ok(())
}

fn db_err<E: Into<DbError>>(path: &Path, operation: &'static str) -> impl FnOnce(E) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Db {
        operation,
        path,
        source: source.into(),
    }
}

/// Orders installed versions newest first: by [`compare_versions`], then
/// by install time and id.
fn newest_first(a: &InstalledExtension, b: &InstalledExtension) -> Ordering {
    compare_versions(&b.version, &a.version)
        .then(b.installed_at.cmp(&a.installed_at))
        .then(b.id.cmp(&a.id))
}

/// Compares two versions the way people read them, without requiring
/// semver: split on `.`, and compare segment by segment by the leading
/// number (numerically), then by what follows it, where nothing beats
/// something (`0` > `0-rc1`, so a release is newer than its pre-release).
/// A version that runs out of segments first is older (`1.0` < `1.0.1`).
/// Build metadata after `+` is ignored.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(segment: &str) -> (Option<u64>, &str) {
        let digits = segment.bytes().take_while(u8::is_ascii_digit).count();
        (segment[..digits].parse().ok(), &segment[digits..])
    }
    fn strip(v: &str) -> &str {
        v.split_once('+').map_or(v, |(v, _)| v)
    }
    let (mut a, mut b) = (strip(a).split('.'), strip(b).split('.'));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ((xn, xr), (yn, yr)) = (split(x), split(y));
                let by_rest = match (xr.is_empty(), yr.is_empty()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    (false, false) => xr.cmp(yr),
                };
                let ordering = xn.cmp(&yn).then(by_rest);
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RequiredSecret;

    fn store() -> (tempfile::TempDir, EngineStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = EngineStore::open(&dir.path().join("data")).unwrap();
        (dir, store)
    }

    fn description(name: &str, version: &str) -> ExtensionDescription {
        ExtensionDescription {
            name: name.into(),
            version: version.into(),
            description: "test".into(),
            required_secrets: vec![RequiredSecret {
                name: "TOKEN".into(),
                hosts: vec!["api.example.test".into()],
                injection: Default::default(),
            }],
            secret_fields: vec![],
            allowed_hosts: vec!["api.example.test".into()],
            host_fields: vec![],
            wit: "0.1.0".into(),
            reveals_secrets: false,
        }
    }

    fn run(id: &ExecutionId, node: &str) -> NodeRun {
        NodeRun {
            execution_id: id.clone(),
            node: node.into(),
            extension: "echo@0.1.0".into(),
            status: NodeStatus::Succeeded,
            started_at: now_ms(),
            duration_ms: 3,
            output: Some(r#"{"ok":true}"#.into()),
            error: None,
            logs: vec![LogEntry {
                level: "info".into(),
                message: "hello [TOKEN]".into(),
            }],
            stdout: "out".into(),
            stderr: String::new(),
            secrets_read: vec!["TOKEN".into()],
            egress: vec![EgressEvent {
                method: "POST".into(),
                host: "echo.test".into(),
                refused: None,
                url: String::new(),
                headers: vec![],
                credentials: vec![],
            }],
            egress_dropped: 2,
        }
    }

    #[test]
    fn creates_a_private_wal_file_with_the_current_schema() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, store) = store();
        let path = dir.path().join("data").join(DB_FILE);
        assert_eq!(store.path(), path);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (journal, version, fk): (String, i64, i64) = store
            .conn
            .sqlite()
            .unwrap()
            .query_row(
                "SELECT (SELECT journal_mode FROM pragma_journal_mode),
                        (SELECT user_version FROM pragma_user_version),
                        (SELECT foreign_keys FROM pragma_foreign_keys)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((journal.as_str(), version, fk), ("wal", SCHEMA_VERSION, 1));
        drop(store);
        // Reopening migrates nothing and keeps the data.
        EngineStore::open(&dir.path().join("data")).unwrap();
    }

    #[test]
    fn refuses_junk_and_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), b"this is not a database at all").unwrap();
        let err = EngineStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::NotAnEngineDatabase { .. }),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        drop(EngineStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = EngineStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
        assert!(err.to_string().contains("upgrade narakim"), "{err}");
    }

    #[test]
    fn extensions_are_recorded_once_and_the_newest_is_by_version() {
        let (dir, mut store) = store();
        let file = dir.path().join("data/extensions/echo/0.10.0/abc.wasm");
        for version in ["0.2.0", "0.10.0", "0.9.1"] {
            store
                .record_extension(&description("echo", version), "abc", &file)
                .unwrap();
        }
        store
            .record_extension(&description("zed", "1.0.0"), "def", &file)
            .unwrap();
        let err = store
            .record_extension(&description("echo", "0.2.0"), "other", &file)
            .unwrap_err();
        assert!(matches!(err, StoreError::ExtensionExists { .. }), "{err}");

        let newest = store.extension("echo", None).unwrap().unwrap();
        assert_eq!(newest.version, "0.10.0");
        assert_eq!(newest.path, file);
        assert_eq!(newest.description, description("echo", "0.10.0"));
        let pinned = store.extension("echo", Some("0.2.0")).unwrap().unwrap();
        assert_eq!(pinned.version, "0.2.0");
        assert!(store.extension("echo", Some("9.9.9")).unwrap().is_none());
        assert!(store.extension("nope", None).unwrap().is_none());
        let versions: Vec<_> = store
            .versions("echo")
            .unwrap()
            .into_iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(versions, ["0.10.0", "0.9.1", "0.2.0"]);
        let all: Vec<_> = store
            .extensions()
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {}", e.name, e.version))
            .collect();
        assert_eq!(
            all,
            ["echo 0.10.0", "echo 0.9.1", "echo 0.2.0", "zed 1.0.0"]
        );
        assert_eq!(
            store.find("echo", None).map(|d| d.version),
            Some("0.10.0".into())
        );
        // The path is kept relative to the data directory.
        let stored: String = store
            .conn
            .sqlite()
            .unwrap()
            .query_row("SELECT path FROM extensions LIMIT 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, "extensions/echo/0.10.0/abc.wasm");
    }

    #[test]
    fn version_order() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0.0", "1.0.0", Equal),
            ("0.10.0", "0.9.0", Greater),
            ("1.0", "1.0.1", Less),
            ("1.0.0", "1.0.0-rc1", Greater),
            ("1.0.0-rc2", "1.0.0-rc1", Greater),
            ("1.0.0+build5", "1.0.0", Equal),
            ("2", "10", Less),
            ("abc", "abd", Less),
        ] {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn one_active_deployment_per_bot_and_pause_state() {
        let (_dir, mut store) = store();
        assert!(store.active_deployment("greeter").unwrap().is_none());
        let first = store
            .deploy("greeter", "{\"v\":1}", "aaa", &BTreeMap::new())
            .unwrap();
        let second = store
            .deploy("greeter", "{\"v\":2}", "bbb", &BTreeMap::new())
            .unwrap();
        store
            .deploy("other", "{}", "ccc", &BTreeMap::new())
            .unwrap();
        assert_ne!(first.id, second.id);
        assert_eq!(store.active_deployment("greeter").unwrap(), Some(second));
        let active: i64 = store
            .conn
            .sqlite()
            .unwrap()
            .query_row(
                "SELECT count(*) FROM deployments WHERE bot = 'greeter' AND active = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(active, 1);

        assert!(!store.is_paused("greeter").unwrap());
        store.set_paused("greeter", true).unwrap();
        assert!(store.is_paused("greeter").unwrap());
        assert!(!store.is_paused("other").unwrap());
        store.set_paused("greeter", false).unwrap();
        assert!(!store.is_paused("greeter").unwrap());
    }

    #[test]
    fn executions_and_node_runs_round_trip() {
        let (_dir, mut store) = store();
        let id = store
            .start_execution("greeter", "aaa", r#"{"text":"hi"}"#)
            .unwrap();
        assert!(
            id.as_str().starts_with("ex_") && id.as_str().len() == 19,
            "{id}"
        );
        let second = store.start_execution("other", "ccc", "{}").unwrap();
        assert_ne!(id, second);

        let a = run(&id, "a");
        let mut b = run(&id, "b");
        b.status = NodeStatus::Failed;
        b.output = None;
        b.error = Some("boom".into());
        b.started_at = a.started_at + 1;
        store.record_node_run(&a).unwrap();
        store.record_node_run(&b).unwrap();
        let err = store.record_node_run(&a).unwrap_err();
        assert!(matches!(err, StoreError::NodeRunExists { .. }), "{err}");
        let err = store
            .record_node_run(&run(&ExecutionId::from("ex_missing"), "a"))
            .unwrap_err();
        assert!(matches!(err, StoreError::ExecutionNotFound(_)), "{err}");
        assert!(err.to_string().contains("narakim executions list"), "{err}");

        store
            .finish_execution(&id, ExecutionStatus::Failed, Some("node b failed"))
            .unwrap();
        let err = store
            .finish_execution(&"ex_nope".into(), ExecutionStatus::Succeeded, None)
            .unwrap_err();
        assert!(matches!(err, StoreError::ExecutionNotFound(_)), "{err}");

        let (execution, runs) = store.execution(&id).unwrap().unwrap();
        assert_eq!(execution.status, ExecutionStatus::Failed);
        assert_eq!(execution.trigger, r#"{"text":"hi"}"#);
        assert_eq!(execution.summary.as_deref(), Some("node b failed"));
        assert!(execution.finished_at.is_some());
        assert_eq!(runs, vec![a, b]);
        assert!(store.execution(&"ex_nope".into()).unwrap().is_none());

        let listed = store.executions(None, 10).unwrap();
        assert_eq!(listed.len(), 2);
        let mine = store.executions(Some("greeter"), 10).unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].id, id);
        assert_eq!(mine[0].status, ExecutionStatus::Failed);
        assert_eq!(store.executions(None, 1).unwrap().len(), 1);
    }

    #[test]
    fn deleting_a_bot_removes_only_its_data() {
        let (_dir, mut store) = store();
        store.deploy("gone", "{}", "aaa", &BTreeMap::new()).unwrap();
        store.set_paused("gone", true).unwrap();
        let id = store.start_execution("gone", "aaa", "{}").unwrap();
        store.record_node_run(&run(&id, "a")).unwrap();
        store.deploy("kept", "{}", "bbb", &BTreeMap::new()).unwrap();
        let kept = store.start_execution("kept", "bbb", "{}").unwrap();

        store.delete_bot_data("gone").unwrap();
        assert!(store.active_deployment("gone").unwrap().is_none());
        assert!(!store.is_paused("gone").unwrap());
        assert!(store.execution(&id).unwrap().is_none());
        let orphans: i64 = store
            .conn
            .sqlite()
            .unwrap()
            .query_row("SELECT count(*) FROM node_runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(orphans, 0);
        assert!(store.active_deployment("kept").unwrap().is_some());
        assert!(store.execution(&kept).unwrap().is_some());
    }

    #[test]
    fn the_queue_migration_keeps_every_execution_and_node_run() {
        let (dir, mut store) = store();
        let id = store.start_execution("greeter", "aaa", "{}").unwrap();
        store.record_node_run(&run(&id, "a")).unwrap();
        store
            .finish_execution(&id, ExecutionStatus::Succeeded, Some("ok"))
            .unwrap();
        // Back to the version 3 layout (no queue, no triggers, the old CHECK).
        store
            .conn
            .sqlite()
            .unwrap()
            .execute_batch(
                "PRAGMA foreign_keys = OFF;
                 DROP TABLE drafts;
                 DROP TABLE schedules;
                 DROP TABLE deliveries;
                 DROP TABLE triggers;
                 DROP TABLE jobs;
                 CREATE TABLE executions_v3 (
                     id TEXT PRIMARY KEY, bot TEXT NOT NULL, graph_version TEXT NOT NULL,
                     status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
                     started_at INTEGER NOT NULL, finished_at INTEGER, trigger TEXT NOT NULL, summary TEXT
                 ) STRICT;
                 INSERT INTO executions_v3 SELECT id, bot, graph_version, status, started_at, finished_at, trigger, summary FROM executions;
                 DROP TABLE executions;
                 ALTER TABLE executions_v3 RENAME TO executions;
                 PRAGMA user_version = 3;
                 PRAGMA foreign_keys = ON;",
            )
            .unwrap();
        drop(store);

        let mut store = EngineStore::open(&dir.path().join("data")).unwrap();
        let (execution, runs) = store.execution(&id).unwrap().unwrap();
        assert_eq!(execution.status, ExecutionStatus::Succeeded);
        assert_eq!(runs.len(), 1, "the rebuild dropped the node runs");
        let fk: i64 = store
            .conn
            .sqlite()
            .unwrap()
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1, "foreign keys stay on after migrating");
        // The new table still cascades to node runs.
        store.delete_bot_data("greeter").unwrap();
        let orphans: i64 = store
            .conn
            .sqlite()
            .unwrap()
            .query_row("SELECT count(*) FROM node_runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(orphans, 0);
    }

    #[test]
    fn a_queued_run_is_claimed_once_finished_once_and_recovered_by_the_rule() {
        let (_dir, mut store) = store();
        let new = |key| NewRun {
            bot: "greeter",
            trigger_json: "{}",
            idempotency_key: key,
            started_by: Some("tok_test"),
            delivery: None,
            fire: None,
            id: None,
        };
        // Refused, nothing written, while the bot cannot run.
        assert!(matches!(
            store.enqueue(&new(Some("k1")), 10),
            Err(StoreError::BotNotDeployed { bot }) if bot == "greeter"
        ));
        store
            .deploy("greeter", "{}", "aaa", &BTreeMap::new())
            .unwrap();
        store.set_paused("greeter", true).unwrap();
        assert!(matches!(
            store.enqueue(&new(Some("k1")), 10),
            Err(StoreError::BotPaused { bot }) if bot == "greeter"
        ));
        assert_eq!(store.depth().unwrap(), QueueDepth::default());
        store.set_paused("greeter", false).unwrap();

        let first = store.enqueue(&new(Some("k1")), 10).unwrap();
        assert!(!first.replayed);
        let (execution, _) = store.execution(&first.id).unwrap().unwrap();
        assert_eq!(execution.graph_version, "aaa", "the deployment's version");
        assert_eq!(first.status, ExecutionStatus::Queued);
        let again = store.enqueue(&new(Some("k1")), 10).unwrap();
        assert!(again.replayed);
        assert_eq!(again.id, first.id);
        // The same key with another trigger is refused, not replayed.
        let other_trigger = NewRun {
            trigger_json: r#"{"other":1}"#,
            ..new(Some("k1"))
        };
        assert!(matches!(
            store.enqueue(&other_trigger, 10),
            Err(StoreError::IdempotencyKeyReused { execution, .. }) if execution == first.id.as_str()
        ));
        let second = store.enqueue(&new(None), 10).unwrap();
        assert_eq!(
            store.depth().unwrap(),
            QueueDepth {
                waiting: 2,
                running: 0
            }
        );
        // Full: refused, nothing written.
        assert!(matches!(
            store.enqueue(&new(None), 2),
            Err(StoreError::QueueFull { bound: 2 })
        ));

        let claimed = store.claim("a", Duration::from_secs(60)).unwrap().unwrap();
        assert_eq!(claimed.id, first.id, "oldest first");
        let (execution, _) = store.execution(&first.id).unwrap().unwrap();
        assert_eq!(execution.status, ExecutionStatus::Running);
        let other = store.claim("a", Duration::from_secs(60)).unwrap().unwrap();
        assert_eq!(other.id, second.id);
        assert!(store.claim("a", Duration::from_secs(60)).unwrap().is_none());
        store
            .finish_execution(&second.id, ExecutionStatus::Succeeded, None)
            .unwrap();

        // A new owner starts: the run `a` still held was interrupted.
        let recovery = store.recover("b").unwrap();
        assert_eq!(
            recovery,
            Recovery {
                interrupted: 1,
                queued: 0
            }
        );
        let (execution, _) = store.execution(&first.id).unwrap().unwrap();
        assert_eq!(execution.status, ExecutionStatus::Failed);
        assert_eq!(execution.summary.as_deref(), Some(INTERRUPTED));
        assert_eq!(store.depth().unwrap(), QueueDepth::default());
        // Its own leases are not recovered from under it.
        let third = store.enqueue(&new(None), 10).unwrap();
        store.claim("b", Duration::from_secs(60)).unwrap().unwrap();
        assert_eq!(store.recover("b").unwrap().interrupted, 0);
        let (execution, _) = store.execution(&third.id).unwrap().unwrap();
        assert_eq!(execution.status, ExecutionStatus::Running);
        // The queue's statements ran many times, each planned once.
        assert_eq!(crate::sqlite::reprepared(store.conn.sqlite().unwrap()), []);
    }

    /// A queued run of a deployed bot, for the write tests.
    #[test]
    fn a_delivery_finds_its_run_by_either_key_until_its_keys_expire() {
        use crate::engine::queue::Delivery;
        let (_dir, mut store) = store();
        let deployed = store
            .deploy_with_triggers("greeter", "{}", "aaa", &BTreeMap::new(), &[("hook", None)])
            .unwrap();
        assert!(deployed.active);
        let ids = store.triggers_of("greeter").unwrap();
        let id = ids["hook"].clone();
        assert!(id.as_str().starts_with("trg_") && id.as_str().len() == 36);
        assert_eq!(
            store.trigger(id.as_str()).unwrap(),
            Some(("greeter".to_owned(), "hook".to_owned()))
        );
        // A redeploy keeps the id.
        store
            .deploy_with_triggers(
                "greeter",
                "{}",
                "aaa",
                &BTreeMap::new(),
                &[("hook", None), ("other", None)],
            )
            .unwrap();
        assert_eq!(store.triggers_of("greeter").unwrap()["hook"], id);

        let far = now_ms() + 600_000;
        let delivery = |keys: &[&str], keep_until_ms| Delivery {
            trigger_id: id.to_string(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            keep_until_ms,
        };
        let run = |d: &Delivery| {
            let d = d.clone();
            move |store: &mut EngineStore| {
                store.enqueue(
                    &NewRun {
                        bot: "greeter",
                        trigger_json: "{}",
                        idempotency_key: None,
                        started_by: None,
                        delivery: Some(&d),
                        fire: None,
                        id: None,
                    },
                    100,
                )
            }
        };
        let first = run(&delivery(&["id:1", "sig:a"], far))(&mut store).unwrap();
        assert!(!first.replayed);
        // Either key finds it; the unsigned id changed, the signature not.
        for keys in [&["id:1", "sig:b"][..], &["id:2", "sig:a"][..]] {
            let again = run(&delivery(keys, far))(&mut store).unwrap();
            assert!(again.replayed, "{keys:?}");
            assert_eq!(again.id, first.id);
        }
        // Another delivery runs.
        let other = run(&delivery(&["id:3", "sig:c"], now_ms() - 1))(&mut store).unwrap();
        assert!(!other.replayed);
        // Its keys had already expired: the next batch forgets them.
        let late = run(&delivery(&["id:3", "sig:c"], far))(&mut store).unwrap();
        assert!(!late.replayed);
        assert_ne!(late.id, other.id);
        // Deleting the bot deletes its triggers and, with its executions,
        // their deliveries.
        store.delete_bot_data("greeter").unwrap();
        assert!(store.triggers_of("greeter").unwrap().is_empty());
        let left: i64 = store
            .conn
            .sqlite()
            .unwrap()
            .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    fn queued(store: &mut EngineStore) -> ExecutionId {
        if store.active_deployment("greeter").unwrap().is_none() {
            store
                .deploy("greeter", "{}", "aaa", &BTreeMap::new())
                .unwrap();
        }
        let run = NewRun {
            bot: "greeter",
            trigger_json: "{}",
            idempotency_key: None,
            started_by: None,
            delivery: None,
            fire: None,
            id: None,
        };
        store.enqueue(&run, 100).unwrap().id
    }

    /// Turns a node run of no execution into an error of the commit, not
    /// of its insert: a commit that fails, without breaking the disk.
    fn orphan_at_commit(store: &mut EngineStore) -> Result<(), StoreError> {
        store
            .conn
            .sqlite()
            .unwrap()
            .execute_batch("PRAGMA defer_foreign_keys = ON;")
            .unwrap();
        store.record_node_run(&run(&ExecutionId("no-such-run".into()), "a"))
    }

    #[test]
    fn writes_together_commit_once_and_a_failed_write_undoes_only_itself() {
        let (dir, mut store) = store();
        let first = queued(&mut store);
        let second = queued(&mut store);
        let other = Connection::open(dir.path().join("data").join(DB_FILE)).unwrap();
        let running = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM executions WHERE status = 'running'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        let mut results = Vec::new();
        let mut step = 0;
        store
            .write_together(&mut |store| {
                step += 1;
                match step {
                    1 => results.push(store.claim("w", Duration::from_secs(60)).map(drop)),
                    2 => results.push(store.record_node_run(&run(&first, "a"))),
                    // Fails, inside the shared transaction.
                    3 => results.push(store.record_node_run(&run(&first, "a"))),
                    4 => {
                        results.push(store.claim("w", Duration::from_secs(60)).map(drop));
                        // Nothing is visible to another connection yet.
                        assert_eq!(running(&other), 0);
                    }
                    _ => return false,
                }
                true
            })
            .unwrap();
        assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
        assert!(
            matches!(&results[2], Err(StoreError::NodeRunExists { .. })),
            "{:?}",
            results[2]
        );
        // Both claims and the one node run stand, committed.
        assert_eq!(running(&other), 2);
        let (_, runs) = store.execution(&first).unwrap().unwrap();
        assert_eq!(runs.len(), 1);
        assert!(store.execution(&second).unwrap().is_some());
        assert!(!store.conn.in_transaction());
    }

    #[test]
    fn writes_together_are_undone_together_when_their_commit_fails() {
        let (_dir, mut store) = store();
        queued(&mut store);
        let mut step = 0;
        let mut results = Vec::new();
        let outcome = store.write_together(&mut |store| {
            step += 1;
            match step {
                1 => results.push(store.claim("w", Duration::from_secs(60)).map(drop)),
                2 => results.push(orphan_at_commit(store)),
                _ => return false,
            }
            true
        });
        // Each write succeeded on its own; the commit refused them all.
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let err = outcome.unwrap_err();
        assert!(
            err.to_string()
                .contains("committing the executions' writes"),
            "{err}"
        );
        assert!(
            !store.conn.in_transaction(),
            "the failed commit was rolled back"
        );
        assert_eq!(
            store.depth().unwrap(),
            QueueDepth {
                waiting: 1,
                running: 0
            },
            "the claim was undone"
        );
        // The connection works on.
        assert!(store.claim("w", Duration::from_secs(60)).unwrap().is_some());
    }

    #[test]
    fn the_writer_reports_a_write_its_failed_commit_undid() {
        let (dir, mut store) = store();
        let id = queued(&mut store);
        let writer = crate::engine::queue::GroupCommit::start(
            EngineStore::open(&dir.path().join("data")).unwrap(),
            || {},
        );
        let err = writer.write(orphan_at_commit).unwrap_err();
        assert!(matches!(err, StoreError::NotWritten(_)), "{err}");
        // The writer goes on, with its next writes in a fresh transaction.
        let claimed = writer
            .write(|store| store.claim("w", Duration::from_secs(60)))
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, id);
        writer
            .write(move |store| store.finish_execution(&id, ExecutionStatus::Succeeded, None))
            .unwrap();
        assert_eq!(store.depth().unwrap(), QueueDepth::default());
    }
}
