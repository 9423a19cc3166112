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

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::store::{ExecutionId, ExecutionStatus, StoreError};

/// The summary of a run that was running when its server stopped.
pub const INTERRUPTED: &str = "interrupted: the server stopped while this run was in progress; \
     it was not retried, because its nodes may already have had effects";

/// A run to accept. It runs the bot's deployment as it is when the run
/// is accepted: the queue checks, in the accepting transaction, that the
/// bot is deployed and not paused, and records the graph version.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    pub bot: &'a str,
    /// The trigger, already scrubbed.
    pub trigger_json: &'a str,
    /// A client's key for this run: a second run with the same key (for the
    /// same bot) finds the first instead of starting again.
    pub idempotency_key: Option<&'a str>,
    /// Who started it (an API token id), kept on the execution: run starts
    /// are recorded there rather than in the vault's audit trail, so that
    /// accepting a run writes one database.
    pub started_by: Option<&'a str>,
    /// The trigger delivery that started it, when one did: a delivery with
    /// any of the same keys finds this run instead of starting another.
    pub delivery: Option<&'a Delivery>,
    /// The schedule fire that started it: claimed in the accepting
    /// transaction, so a fire runs at most once whatever restarts.
    pub fire: Option<&'a Fire>,
    /// The execution id to queue it as, drawn by the caller with
    /// [`ExecutionId::generate`] (a fresh one when `None`).
    pub id: Option<&'a ExecutionId>,
}

/// One fire of a schedule trigger: due at `due_ms`, next at `next_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    pub trigger_id: String,
    pub due_ms: i64,
    pub next_ms: i64,
}

/// What identifies one delivery of a trigger, kept with the run it started
/// until `keep_until_ms` (unix milliseconds) so that repeats are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub trigger_id: String,
    /// Its delivery id, and the digest of the signature that verified it:
    /// a replay changes the first only when the id is unsigned, and cannot
    /// change the second.
    pub keys: Vec<String>,
    pub keep_until_ms: i64,
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
    /// The deployment's graph version when the run was accepted.
    pub graph_version: String,
}

/// What [`RunQueue::recover`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Runs interrupted mid-way by an earlier process, now failed.
    pub interrupted: usize,
    /// Runs waiting to be claimed.
    pub queued: usize,
}

/// What [`RunQueue::reap`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reaped {
    /// Lapsed jobs that had not started, back in the queue.
    pub requeued: usize,
    /// Lapsed jobs that had started, now failed as [`INTERRUPTED`].
    pub interrupted: usize,
    /// Jobs waiting to be claimed afterwards.
    pub waiting: usize,
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
    /// earlier run and writes nothing (or, when its trigger differs from
    /// that run's, [`StoreError::IdempotencyKeyReused`]); otherwise a run of
    /// a bot that is paused, or not deployed, is refused. The outer error
    /// means nothing was accepted.
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

    /// Claims the oldest waiting job for `owner` for `lease` and starts it
    /// ([`claim_many`](Self::claim_many) of one, then [`start`](Self::start)).
    fn claim(&mut self, owner: &str, lease: Duration) -> Result<Option<Claimed>, StoreError> {
        let Some(claimed) = self.claim_many(owner, lease, 1)?.pop() else {
            return Ok(None);
        };
        Ok(self.start(owner, &claimed.id)?.then_some(claimed))
    }

    /// Leases up to `max` of the oldest waiting jobs to `owner` for
    /// `lease`, in one transaction, without starting them: each is begun
    /// with [`start`](Self::start). On PostgreSQL other nodes claiming at
    /// the same moment skip the rows this claim locked (`FOR UPDATE SKIP
    /// LOCKED`) instead of waiting.
    fn claim_many(
        &mut self,
        owner: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Marks a job `owner` leased as running. `false` when its lease was
    /// lost (reaped, so maybe claimed by another node): it must not run.
    fn start(&mut self, owner: &str, id: &ExecutionId) -> Result<bool, StoreError>;

    /// Extends every lease `owner` holds to `lease` from now: the heartbeat
    /// of a live node. Returns how many it holds.
    fn renew(&mut self, owner: &str, lease: Duration) -> Result<usize, StoreError>;

    /// The reaper: every job whose lease lapsed (its node died or stopped
    /// renewing) is put back in the queue when it had not started, and
    /// failed as [`INTERRUPTED`] when it had (its nodes may have had
    /// effects), so nothing runs twice and nothing is lost.
    fn reap(&mut self) -> Result<Reaped, StoreError>;

    /// Applies the recovery rule (see the module docs) when `owner`
    /// starts. SQLite (one `serve` per data directory): every job leased by
    /// another owner. PostgreSQL (a cluster, whose other nodes may be
    /// alive): [`reap`](Self::reap), which touches lapsed leases only.
    fn recover(&mut self, owner: &str) -> Result<Recovery, StoreError>;

    fn depth(&self) -> Result<QueueDepth, StoreError>;

    /// Calls `write` until it returns false, all inside one transaction
    /// that is committed at the end: the executions' small writes (claims,
    /// node runs, ends) share a commit instead of paying one each. Each
    /// write must be atomic on its own, as [`EngineStore`]'s are, so one
    /// that fails changes nothing and the others stand. `Err` means none
    /// of them took effect.
    ///
    /// [`EngineStore`]: super::store::EngineStore
    fn write_together(
        &mut self,
        write: &mut dyn FnMut(&mut Self) -> bool,
    ) -> Result<(), StoreError>;
}

/// Most runs one commit accepts.
const MAX_BATCH: usize = 512;

/// Longest the writer spends on one shared commit of executions' writes
/// before it commits and looks for accepts again, which also end it.
const WRITE_ROUND: Duration = Duration::from_millis(1);

/// A run waiting for the group commit, and where its answer goes: straight
/// to the waiting task, so no thread is parked for each run in flight.
struct Pending {
    run: QueuedRun,
    bound: usize,
    reply: tokio::sync::oneshot::Sender<Result<Enqueued, StoreError>>,
}

/// What the writer thread is asked to do.
enum Message<Q> {
    Enqueue(Box<Pending>),
    /// Any other write, run on the writer's connection in its turn. What
    /// it returns delivers its result once its shared commit is known
    /// (`Err` when that commit failed and undid it).
    Write(Write<Q>),
}

type Write<Q> = Box<dyn FnOnce(&mut Q) -> Deliver + Send>;
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A [`NewRun`] that owns its fields, to hand to another thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRun {
    pub bot: String,
    /// The trigger, already scrubbed.
    pub trigger_json: String,
    pub idempotency_key: Option<String>,
    pub started_by: Option<String>,
    pub delivery: Option<Delivery>,
    pub fire: Option<Fire>,
    /// See [`NewRun::id`]: a caller that holds values for the run
    /// ([`Engine::hold_execution_values`]) must know its id first.
    ///
    /// [`Engine::hold_execution_values`]: super::executor::Engine::hold_execution_values
    pub id: Option<ExecutionId>,
}

impl QueuedRun {
    pub fn as_new(&self) -> NewRun<'_> {
        NewRun {
            bot: &self.bot,
            trigger_json: &self.trigger_json,
            idempotency_key: self.idempotency_key.as_deref(),
            started_by: self.started_by.as_deref(),
            delivery: self.delivery.as_ref(),
            fire: self.fire.as_ref(),
            id: self.id.as_ref(),
        }
    }
}

/// The queue's one writer. Every run accepted while one commit is being
/// synced waits for the next, and all of them share it (one fsync): group
/// commit, so the accept rate is bounded by the disk's sync rate times the
/// batch size, not by the sync rate alone.
///
/// The executions' own writes (claims, node runs, ends) come through the
/// same thread ([`write`](Self::write)). One writer means no two
/// connections of this process ever contend for SQLite's write lock, so
/// none waits on a busy handler; and the writer runs at the API's priority,
/// so a write asked for by an execution thread (which runs at a lower one)
/// never holds the lock while that thread waits for a core. Accepts go
/// first: a client waits on each. The writes share commits too
/// ([`RunQueue::write_together`]), and a round of them ends after
/// [`WRITE_ROUND`] or as soon as an accept arrives, so an accept waits for
/// at most one small write, not for every write queued before it.
pub struct GroupCommit<Q> {
    sender: std::sync::mpsc::Sender<Message<Q>>,
}

impl<Q> std::fmt::Debug for GroupCommit<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<Q: RunQueue + Send + 'static> GroupCommit<Q> {
    /// Starts the writer thread over `queue`; `committed` is called after
    /// each of its commits.
    pub fn start(mut queue: Q, committed: impl Fn() + Send + 'static) -> GroupCommit<Q> {
        let (sender, receiver) = std::sync::mpsc::channel::<Message<Q>>();
        std::thread::Builder::new()
            .name("narakim-group-commit".into())
            .spawn(move || {
                let mut accepts = Vec::new();
                let mut writes = VecDeque::new();
                loop {
                    if accepts.is_empty() && writes.is_empty() {
                        // Ends when every sender is gone.
                        match receiver.recv() {
                            Ok(message) => sort(message, &mut accepts, &mut writes),
                            Err(_) => break,
                        }
                    }
                    // Bounded, so a stream of either cannot hold the other
                    // for long.
                    while accepts.len() < MAX_BATCH && writes.len() < MAX_BATCH {
                        match receiver.try_recv() {
                            Ok(message) => sort(message, &mut accepts, &mut writes),
                            Err(_) => break,
                        }
                    }
                    if !accepts.is_empty() {
                        commit(&mut queue, std::mem::take(&mut accepts));
                        committed();
                    }
                    if !writes.is_empty() {
                        write_round(&mut queue, &receiver, &mut accepts, &mut writes);
                        committed();
                    }
                }
            })
            .expect("spawning the group commit thread");
        GroupCommit { sender }
    }

    /// Accepts `run`, durably, sharing the commit with whatever else is
    /// being accepted now. Resolves once it is synced.
    pub async fn enqueue(&self, run: QueuedRun, bound: usize) -> Result<Enqueued, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.sender
            .send(Message::Enqueue(Box::new(Pending { run, bound, reply })))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `write` on the writer's connection and returns its result.
    /// Blocks until it ran.
    pub fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&mut Q) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.sender
            .send(Message::Write(Box::new(move |queue| {
                let result = write(queue);
                Box::new(move |committed: Result<(), String>| {
                    let _ = reply.send(match committed {
                        Ok(()) => result,
                        // What it wrote was undone with the rest.
                        Err(reason) => result.and(Err(StoreError::NotWritten(reason))),
                    });
                })
            })))
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

fn sort<Q>(message: Message<Q>, accepts: &mut Vec<Pending>, writes: &mut VecDeque<Write<Q>>) {
    match message {
        Message::Enqueue(pending) => accepts.push(*pending),
        Message::Write(write) => writes.push_back(write),
    }
}

/// Runs waiting writes in one shared commit, until none waits, the round
/// has lasted [`WRITE_ROUND`], or an accept arrives (left in `accepts`).
fn write_round<Q: RunQueue>(
    queue: &mut Q,
    receiver: &std::sync::mpsc::Receiver<Message<Q>>,
    accepts: &mut Vec<Pending>,
    writes: &mut VecDeque<Write<Q>>,
) {
    let started = Instant::now();
    let mut delivers = Vec::new();
    let outcome = queue.write_together(&mut |queue| {
        let Some(write) = writes.pop_front() else {
            return false;
        };
        delivers.push(write(queue));
        if started.elapsed() >= WRITE_ROUND {
            return false;
        }
        match receiver.try_recv() {
            Ok(Message::Enqueue(pending)) => {
                accepts.push(*pending);
                false
            }
            Ok(Message::Write(write)) => {
                writes.push_back(write);
                true
            }
            Err(_) => !writes.is_empty(),
        }
    });
    let outcome = outcome.map_err(|e| e.to_string());
    for deliver in delivers {
        deliver(outcome.clone());
    }
}

fn stopped() -> StoreError {
    StoreError::NotQueued("the group commit thread stopped".into())
}

fn commit<Q: RunQueue>(queue: &mut Q, batch: Vec<Pending>) {
    // Runs of one batch share one bound: the smallest asked for.
    let bound = batch.iter().map(|p| p.bound).min().unwrap_or(0);
    let runs: Vec<NewRun<'_>> = batch.iter().map(|p| p.run.as_new()).collect();
    let outcome = queue.enqueue_many(&runs, bound);
    drop(runs);
    match outcome {
        Ok(results) => {
            for (pending, result) in batch.into_iter().zip(results) {
                let _ = pending.reply.send(result);
            }
        }
        Err(e) => {
            // Nothing was committed: every caller hears why.
            let message = e.to_string();
            for pending in batch {
                let _ = pending
                    .reply
                    .send(Err(StoreError::NotQueued(message.clone())));
            }
        }
    }
}
