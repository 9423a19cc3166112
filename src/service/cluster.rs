//! What a node does when its store is PostgreSQL, which other nodes share.
//!
//! - **Wake-ups.** A commit that queues runs sends a payload-free `NOTIFY`
//!   (in that transaction, so no node hears of a job before its row is
//!   there). Each node keeps one connection of its own that `LISTEN`s and
//!   wakes a worker per notification; permits coalesce, and a woken worker
//!   claims as many jobs as there are idle workers, in one transaction.
//!   The connection has TCP keepalives, so a half-open one is noticed and
//!   made again; after every (re)connect the workers look once, for what
//!   was announced while it was down. A deploy notifies too, on a channel
//!   of its own, so every node's scheduler reads the schedules again.
//! - **Heartbeat.** While the node holds leases it renews them every third
//!   of a lease ([`LEASE`] by default); a node that dies stops renewing.
//! - **Reaper and fallback poll.** Every [`FALLBACK`] (by default) each node reaps
//!   lapsed leases (a dead node's jobs: requeued when they had not
//!   started, failed when they had, see [`RunQueue::reap`]) and, when jobs
//!   wait, wakes a worker. That one transaction per node per minute is all
//!   an idle cluster asks of the database.
//!
//! [`RunQueue::reap`]: crate::engine::queue::RunQueue::reap

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_postgres::AsyncMessage;

use super::AppState;
use crate::engine::store::{JOBS_CHANNEL, SCHEDULES_CHANNEL};

/// How long a claim holds on PostgreSQL without a renewal, by default
/// (`--lease-seconds`); it is renewed every third of that.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often an idle node looks at the database anyway, by default
/// (`--poll-seconds`).
pub const FALLBACK: Duration = Duration::from_secs(60);

/// The cluster tasks of one node, stopped when dropped.
#[derive(Debug)]
pub struct Cluster {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the listener, the heartbeat and the reaper of `owner`, on the
/// current runtime.
pub fn start(state: &Arc<AppState>, owner: &str, pool: &crate::db::PgPool) -> Cluster {
    Cluster {
        tasks: vec![
            tokio::spawn(listen(state.clone(), pool.clone())),
            tokio::spawn(heartbeat(state.clone(), owner.to_owned())),
            tokio::spawn(reaper(state.clone())),
        ],
    }
}

async fn listen(state: Arc<AppState>, pool: crate::db::PgPool) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen_once(&state, &pool).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(
                    "the wake-up connection to PostgreSQL failed (made again in {} ms; the fallback poll covers the gap): {e}",
                    backoff.as_millis()
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One LISTEN connection, until it ends.
async fn listen_once(state: &AppState, pool: &crate::db::PgPool) -> Result<(), String> {
    let mut config = pool.config().clone();
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .connect_timeout(Duration::from_secs(10));
    let (client, mut connection) = config
        .connect(pool.tls())
        .await
        .map_err(|e| crate::db::postgres::describe(&e))?;
    let statement = format!("LISTEN {JOBS_CHANNEL}; LISTEN {SCHEDULES_CHANNEL}");
    let subscribe = client.batch_execute(&statement);
    tokio::pin!(subscribe);
    let mut subscribed = false;
    loop {
        tokio::select! {
            done = &mut subscribe, if !subscribed => {
                done.map_err(|e| crate::db::postgres::describe(&e))?;
                subscribed = true;
                // Whatever was announced while no one listened.
                state.wake.notify_one();
                state.schedules_changed.notify_one();
            }
            message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == SCHEDULES_CHANNEL => {
                    state.schedules_changed.notify_one();
                }
                Some(Ok(AsyncMessage::Notification(_))) => state.wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(crate::db::postgres::describe(&e)),
                None => return Err("the server closed the connection".into()),
            },
        }
    }
}

async fn heartbeat(state: Arc<AppState>, owner: String) {
    let lease = state.config.lease;
    let mut tick = tokio::time::interval(lease / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if state.busy.load(Ordering::Acquire) == 0 {
            continue;
        }
        let owner = owner.clone();
        if let Err(problem) = state
            .blocking(move |s| Ok(s.engine.renew_leases(&owner, lease)?))
            .await
        {
            tracing::error!("renewing this node's leases failed: {}", problem.detail);
        }
    }
}

async fn reaper(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match state.blocking(|s| Ok(s.engine.reap()?)).await {
            Ok(reaped) => {
                if reaped.interrupted > 0 || reaped.requeued > 0 {
                    tracing::warn!(
                        requeued = reaped.requeued,
                        interrupted = reaped.interrupted,
                        "reaped the jobs of a node whose leases lapsed"
                    );
                }
                if reaped.waiting > 0 {
                    state.wake.notify_one();
                }
            }
            Err(problem) => tracing::error!("reaping lapsed leases failed: {}", problem.detail),
        }
    }
}
