//! The workers that run queued executions.
//!
//! A worker with nothing to do claims jobs for every idle worker of this
//! node in one transaction (a batch, with a lease each), keeps one and
//! hands the rest to the others through a local queue; each job is started
//! ([`RunQueue::start`]) just before it runs, so a job leased by a node
//! that died before starting it goes back to the queue. When the queue is
//! empty a worker sleeps until a run is accepted and wakes it (a
//! [`Notify`](tokio::sync::Notify) permit, so a run accepted between a
//! failed claim and the sleep is not missed): on this node by the
//! handler, on another through PostgreSQL's `NOTIFY` ([`super::cluster`]).
//! On SQLite nothing polls: an idle server does no database work.
//!
//! [`RunQueue::start`]: crate::engine::queue::RunQueue::start
//!
//! Executions run on a tokio runtime of their own, whose threads run at a
//! lower CPU priority (`nice` [`EXECUTION_NICE`]) than the API's. When the
//! cores are busy, accepting a run (a few hundred microseconds) goes first
//! and executing one (wasm, egress, recording) takes what is left, so a
//! backlog of executions never slows the API's answers; the queue bound
//! is what stops a backlog from growing without end. When the cores are
//! free, the executions get all of them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::engine::queue::Claimed;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::AppState;

/// How long a claim holds on SQLite. One `serve` owns a data directory,
/// so there a lease only names its owner; on PostgreSQL leases are
/// [`super::cluster::LEASE`] and renewed by a heartbeat.
const SQLITE_LEASE: Duration = Duration::from_secs(300);

/// Most jobs one claim takes.
const MAX_BATCH: usize = 64;

/// What the workers of one node share: jobs claimed for others, and how
/// many are idle.
#[derive(Debug, Default)]
struct Shared {
    claimed: std::sync::Mutex<std::collections::VecDeque<Claimed>>,
    idle: std::sync::atomic::AtomicUsize,
}

/// The `nice` value of the threads that run executions: the API's
/// threads keep 0. At 10 a busy execution thread gets about a tenth of a
/// core that an API thread also wants.
pub const EXECUTION_NICE: i32 = 10;

/// The running workers.
#[derive(Debug)]
pub struct Workers {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Workers {
    /// Starts `count` workers claiming jobs as `owner`, on a runtime of
    /// their own at a lower priority.
    pub fn start(state: &Arc<AppState>, owner: &str, count: usize) -> std::io::Result<Workers> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("narakim-exec")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let lease = match state.engine.store().backend() {
            crate::db::Backend::Sqlite => SQLITE_LEASE,
            crate::db::Backend::Postgres => state.config.lease,
        };
        let shared = Arc::new(Shared::default());
        shared.idle.store(count.max(1), Ordering::Release);
        for _ in 0..count.max(1) {
            tasks.spawn_on(
                work(
                    state.clone(),
                    shared.clone(),
                    owner.to_owned(),
                    lease,
                    stopped.clone(),
                ),
                runtime.handle(),
            );
        }
        Ok(Workers {
            tasks,
            stop,
            runtime: Some(runtime),
        })
    }

    /// Stops claiming and waits up to `bound` for running executions to
    /// finish. Returns how many workers were still busy when it gave up:
    /// their runs are recovered (marked interrupted) at the next start.
    pub async fn drain(mut self, bound: Duration) -> usize {
        let _ = self.stop.send(true);
        let finished = tokio::time::timeout(bound, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        let abandoned = if finished.is_ok() {
            0
        } else {
            self.tasks.len()
        };
        self.tasks.abort_all();
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime may not block inside another one.
            runtime.shutdown_background();
        }
        abandoned
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lowers the calling thread's CPU priority. On Linux the nice value is
/// per thread, and `who == 0` names the calling one; threads it spawns
/// inherit it. Failure (a sandbox forbidding it) only loses the priority.
fn lower_priority() {
    // SAFETY: setpriority reads its three integer arguments only.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, EXECUTION_NICE) };
    if rc != 0 {
        tracing::debug!(
            "could not lower the execution threads' priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

async fn work(
    state: Arc<AppState>,
    shared: Arc<Shared>,
    owner: String,
    lease: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let mine = shared
            .claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        let claimed = match mine {
            Some(job) => Ok(Some(job)),
            None => claim(&state, &shared, &owner, lease).await,
        };
        match claimed {
            Ok(Some(job)) => {
                shared.idle.fetch_sub(1, Ordering::AcqRel);
                run(&state, &owner, job).await;
                shared.idle.fetch_add(1, Ordering::AcqRel);
            }
            Ok(None) => {
                tokio::select! {
                    () = state.wake.notified() => {}
                    _ = stop.changed() => {}
                }
            }
            Err(problem) => {
                tracing::error!("claiming a queued run failed: {}", problem.detail);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// Claims a job for every idle worker; keeps the first and wakes a worker
/// for each of the rest.
async fn claim(
    state: &Arc<AppState>,
    shared: &Arc<Shared>,
    owner: &str,
    lease: Duration,
) -> Result<Option<Claimed>, crate::service::problem::Problem> {
    let want = shared.idle.load(Ordering::Acquire).clamp(1, MAX_BATCH);
    let owner = owner.to_owned();
    let jobs = state
        .blocking(move |s| Ok(s.engine.claim_many(&owner, lease, want)?))
        .await?;
    let mut jobs = jobs.into_iter();
    let first = jobs.next();
    let rest: Vec<Claimed> = jobs.collect();
    state
        .busy
        .fetch_add(rest.len() + usize::from(first.is_some()), Ordering::AcqRel);
    if !rest.is_empty() {
        let others = rest.len();
        shared
            .claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(rest);
        for _ in 0..others {
            state.wake.notify_one();
        }
    }
    Ok(first)
}

/// Starts a claimed job and runs it, unless its lease was lost.
async fn run(state: &Arc<AppState>, owner: &str, job: Claimed) {
    let id = job.id.clone();
    let (owner, start_id) = (owner.to_owned(), id.clone());
    let started = state
        .blocking(move |s| Ok(s.engine.start_claimed(&owner, &start_id)?))
        .await;
    match started {
        Ok(true) => match state.engine.run_claimed(job).await {
            Ok(report) => {
                state.metrics.execution_finished(&report);
                tracing::info!(execution = %id, bot = %report.bot, status = %report.status, duration_ms = report.duration_ms, "execution finished");
            }
            Err(e) => {
                state.metrics.execution_failed();
                tracing::warn!(execution = %id, "execution failed before its nodes ran: {e}");
            }
        },
        Ok(false) => {
            tracing::warn!(execution = %id, "not started: this node's lease on it lapsed");
        }
        Err(problem) => {
            tracing::error!(execution = %id, "starting a claimed run failed (its lease lapses and another node takes it): {}", problem.detail);
        }
    }
    state.busy.fetch_sub(1, Ordering::AcqRel);
}
