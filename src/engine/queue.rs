//! The durable run queue behind `narakim serve`.
//!
//! A run is accepted by one transaction that writes its execution row
//! (`queued`) and its job, synced to disk before the API answers: there is
//! no second store that could disagree with the history. Workers claim a
//! job with a lease, run it, and record the end and remove the job in one
//! transaction, so an accepted run is recorded exactly once.
//!
//! **Recovery rule.** When `serve` starts, a job still leased by an earlier
//! process was interrupted mid-run: its nodes may already have had effects
//! (a message posted, a charge made), so it is **marked failed, not
//! retried**, with [`INTERRUPTED`] as its summary. Jobs never claimed run
//! as normal. One `serve` at a time owns a data directory (it holds a lock
//! on it), so every lease from another owner belongs to a dead process.
//!
//! The queue is a trait so that a PostgreSQL store can implement it later;
//! [`EngineStore`](super::store::EngineStore) is the SQLite implementation.

use std::time::Duration;

use super::store::{ExecutionId, ExecutionStatus, StoreError};

/// The summary of a run that was running when its server stopped.
pub const INTERRUPTED: &str = "interrupted: the server stopped while this run was in progress; \
     it was not retried, because its nodes may already have had effects";

/// A run to accept.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    pub bot: &'a str,
    pub graph_version: &'a str,
    /// The trigger, already scrubbed.
    pub trigger_json: &'a str,
    /// A client's key for this run: a second run with the same key (for the
    /// same bot) finds the first instead of starting again.
    pub idempotency_key: Option<&'a str>,
    /// Who started it (an API token id), kept on the execution: run starts
    /// are recorded there rather than in the vault's audit trail, so that
    /// accepting a run writes one database.
    pub started_by: Option<&'a str>,
}

/// What [`RunQueue::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: ExecutionId,
    pub status: ExecutionStatus,
    /// The idempotency key was already used: this is that earlier run.
    pub replayed: bool,
}

/// A job a worker claimed: its execution is now `running`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: ExecutionId,
    pub bot: String,
    pub trigger_json: String,
}

/// What [`RunQueue::recover`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Runs interrupted mid-way by an earlier process, now failed.
    pub interrupted: usize,
    /// Runs waiting to be claimed.
    pub queued: usize,
}

/// Jobs waiting and jobs claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    pub waiting: usize,
    pub running: usize,
}

/// A durable queue of runs.
pub trait RunQueue {
    /// Accepts a run, durably, unless `bound` runs already wait
    /// ([`StoreError::QueueFull`]). With an idempotency key that was used
    /// before for the bot, returns that run and writes nothing.
    fn enqueue(&mut self, run: &NewRun<'_>, bound: usize) -> Result<Enqueued, StoreError>;

    /// Claims the oldest waiting job for `owner` for `lease`, marking its
    /// execution running.
    fn claim(&mut self, owner: &str, lease: Duration) -> Result<Option<Claimed>, StoreError>;

    /// Applies the recovery rule (see the module docs) to every job leased
    /// by an owner other than `owner`.
    fn recover(&mut self, owner: &str) -> Result<Recovery, StoreError>;

    fn depth(&self) -> Result<QueueDepth, StoreError>;
}
