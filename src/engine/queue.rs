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
    /// Accepts runs in one durable commit: each one unless `bound` runs
    /// already wait ([`StoreError::QueueFull`] for that run). With an
    /// idempotency key that was used before for the bot, a run returns that
    /// earlier run and writes nothing. The outer error means nothing was
    /// accepted.
    fn enqueue_many(
        &mut self,
        runs: &[NewRun<'_>],
        bound: usize,
    ) -> Result<Vec<Result<Enqueued, StoreError>>, StoreError>;

    /// [`enqueue_many`](Self::enqueue_many) of one run.
    fn enqueue(&mut self, run: &NewRun<'_>, bound: usize) -> Result<Enqueued, StoreError> {
        self.enqueue_many(std::slice::from_ref(run), bound)?
            .pop()
            .expect("one run in, one result out")
    }

    /// Claims the oldest waiting job for `owner` for `lease`, marking its
    /// execution running.
    fn claim(&mut self, owner: &str, lease: Duration) -> Result<Option<Claimed>, StoreError>;

    /// Applies the recovery rule (see the module docs) to every job leased
    /// by an owner other than `owner`.
    fn recover(&mut self, owner: &str) -> Result<Recovery, StoreError>;

    fn depth(&self) -> Result<QueueDepth, StoreError>;
}

/// Most runs one commit accepts.
const MAX_BATCH: usize = 512;

/// A run waiting for the group commit, and where its answer goes.
struct Pending {
    run: OwnedRun,
    bound: usize,
    reply: std::sync::mpsc::SyncSender<Result<Enqueued, StoreError>>,
}

#[derive(Debug)]
struct OwnedRun {
    bot: String,
    graph_version: String,
    trigger_json: String,
    idempotency_key: Option<String>,
    started_by: Option<String>,
}

/// Group commit: every run accepted while one commit is being synced
/// waits for the next, and all of them share it (one fsync), so the
/// accept rate is bounded by the disk's sync rate times the batch size,
/// not by the sync rate alone. One thread owns its own connection to the
/// queue; callers block until their run is durable.
pub struct GroupCommit {
    sender: std::sync::mpsc::Sender<Pending>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the committing thread over `queue`.
    pub fn start<Q: RunQueue + Send + 'static>(mut queue: Q) -> GroupCommit {
        let (sender, receiver) = std::sync::mpsc::channel::<Pending>();
        std::thread::Builder::new()
            .name("narakim-group-commit".into())
            .spawn(move || {
                // Ends when every sender is gone.
                while let Ok(first) = receiver.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match receiver.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    commit(&mut queue, batch);
                }
            })
            .expect("spawning the group commit thread");
        GroupCommit { sender }
    }

    /// Accepts `run`, durably, sharing the commit with whatever else is
    /// being accepted now. Blocks until it is synced.
    pub fn enqueue(&self, run: &NewRun<'_>, bound: usize) -> Result<Enqueued, StoreError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let pending = Pending {
            run: OwnedRun {
                bot: run.bot.to_owned(),
                graph_version: run.graph_version.to_owned(),
                trigger_json: run.trigger_json.to_owned(),
                idempotency_key: run.idempotency_key.map(str::to_owned),
                started_by: run.started_by.map(str::to_owned),
            },
            bound,
            reply,
        };
        let stopped = || StoreError::NotQueued("the group commit thread stopped".into());
        self.sender.send(pending).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

fn commit<Q: RunQueue>(queue: &mut Q, batch: Vec<Pending>) {
    // Runs of one batch share one bound: the smallest asked for.
    let bound = batch.iter().map(|p| p.bound).min().unwrap_or(0);
    let runs: Vec<NewRun<'_>> = batch
        .iter()
        .map(|p| NewRun {
            bot: &p.run.bot,
            graph_version: &p.run.graph_version,
            trigger_json: &p.run.trigger_json,
            idempotency_key: p.run.idempotency_key.as_deref(),
            started_by: p.run.started_by.as_deref(),
        })
        .collect();
    match queue.enqueue_many(&runs, bound) {
        Ok(results) => {
            for (pending, result) in batch.iter().zip(results) {
                let _ = pending.reply.send(result);
            }
        }
        Err(e) => {
            // Nothing was committed: every caller hears why.
            let message = e.to_string();
            for pending in &batch {
                let _ = pending
                    .reply
                    .send(Err(StoreError::NotQueued(message.clone())));
            }
        }
    }
}
