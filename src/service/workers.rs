//! The workers that run queued executions.
//!
//! Each worker claims the oldest waiting job (with a lease), runs it, and
//! claims again; when the queue is empty it sleeps until a handler accepts
//! a run and wakes it (a [`Notify`](tokio::sync::Notify) permit, so a run
//! accepted between a failed claim and the sleep is not missed). Nothing
//! polls: an idle server does no database work.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::AppState;
use crate::engine::queue::RunQueue;

/// How long a claim holds. One `serve` owns a data directory, so today a
/// lease only names its owner; the length matters once several servers
/// share a queue (PostgreSQL, later).
const LEASE: Duration = Duration::from_secs(300);

/// The running workers.
#[derive(Debug)]
pub struct Workers {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Workers {
    /// Starts `count` workers claiming jobs as `owner`.
    pub fn start(state: &Arc<AppState>, owner: &str, count: usize) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for _ in 0..count.max(1) {
            tasks.spawn(work(state.clone(), owner.to_owned(), stopped.clone()));
        }
        Workers { tasks, stop }
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
        if finished.is_ok() {
            0
        } else {
            self.tasks.len()
        }
    }
}

async fn work(state: Arc<AppState>, owner: String, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let owner_for_claim = owner.clone();
        let claimed = state
            .blocking(move |s| Ok(s.engine.store().claim(&owner_for_claim, LEASE)?))
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
