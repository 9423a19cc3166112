//! The workers that run queued executions.
//!
//! Each worker claims the oldest waiting job (with a lease), runs it, and
//! claims again; when the queue is empty it sleeps until a handler accepts
//! a run and wakes it (a [`Notify`](tokio::sync::Notify) permit, so a run
//! accepted between a failed claim and the sleep is not missed). Nothing
//! polls: an idle server does no database work.
//!
//! Executions run on a tokio runtime of their own, whose threads run at a
//! lower CPU priority (`nice` [`EXECUTION_NICE`]) than the API's. When the
//! cores are busy, accepting a run (a few hundred microseconds) goes first
//! and executing one (wasm, egress, recording) takes what is left, so a
//! backlog of executions never slows the API's answers; the queue bound
//! is what stops a backlog from growing without end. When the cores are
//! free, the executions get all of them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::AppState;

/// How long a claim holds. One `serve` owns a data directory, so today a
/// lease only names its owner; the length matters once several servers
/// share a queue (PostgreSQL, later).
const LEASE: Duration = Duration::from_secs(300);

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
        for _ in 0..count.max(1) {
            tasks.spawn_on(
                work(state.clone(), owner.to_owned(), stopped.clone()),
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

async fn work(state: Arc<AppState>, owner: String, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let owner_for_claim = owner.clone();
        let claimed = state
            .blocking(move |s| Ok(s.engine.claim(&owner_for_claim, LEASE)?))
            .await;
        match claimed {
            Ok(Some(job)) => {
                let id = job.id.clone();
                match state.engine.run_claimed(job).await {
                    Ok(report) => {
                        state.metrics.execution_finished(&report);
                        tracing::info!(execution = %id, bot = %report.bot, status = %report.status, duration_ms = report.duration_ms, "execution finished");
                    }
                    Err(e) => {
                        state.metrics.execution_failed();
                        tracing::warn!(execution = %id, "execution failed before its nodes ran: {e}");
                    }
                }
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
