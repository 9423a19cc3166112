//! The scheduler: starts a run at each deployed schedule's fire time.
//!
//! Each schedule's next fire time is stored (`engine.db`, table
//! `schedules`). A fire is claimed by moving that time on, in the same
//! transaction that queues its run, so a fire runs at most once however
//! often the server restarts. A fire found more than
//! [`MISSED_AFTER_MS`](crate::trigger::MISSED_AFTER_MS) late was missed
//! (the server was down): the schedule's `missed` policy skips it (the
//! default) or runs once for all missed fires. Either way the schedule
//! goes on from its next time after now. A paused bot's fires are skipped.
//!
//! The scheduler sleeps until the soonest fire (on SQLite at most a
//! minute, for deploys by the CLI), or until a deploy wakes it (on
//! PostgreSQL every deploy notifies every node); an idle server does not
//! poll the database faster than once a minute, and an idle cluster not
//! at all for its schedules. `NARAKIM_TEST_CLOCK` names a file holding seconds to
//! add to the system clock, read on every tick, so tests can move time.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::AppState;
use super::problem::Problem;
use crate::engine::executor::EngineError;
use crate::engine::queue::{Fire, QueuedRun};
use crate::engine::store::StoreError;
use crate::trigger::{MISSED_AFTER_MS, Missed, now_ms};
use crate::vault::format_time;

/// Longest sleep between looks at the schedules.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// The tick when a test moves the clock.
const TEST_TICK: Duration = Duration::from_millis(100);

/// The scheduler's clock: the system's, or moved by a test.
struct Clock {
    offset_file: Option<std::path::PathBuf>,
}

impl Clock {
    fn from_env() -> Clock {
        Clock {
            offset_file: std::env::var_os("NARAKIM_TEST_CLOCK").map(Into::into),
        }
    }

    fn now_ms(&self) -> i64 {
        let offset: i64 = self
            .offset_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        now_ms().saturating_add(offset.saturating_mul(1000))
    }
}

pub(super) async fn run(state: Arc<AppState>) {
    let clock = Arc::new(Clock::from_env());
    // On SQLite a deploy by another process (the CLI) wakes no one, so the
    // scheduler looks at least once a minute. On PostgreSQL every deploy,
    // from any node or the CLI, notifies every node's scheduler: it sleeps
    // until the soonest fire, or for good while there is none, and an idle
    // cluster sends nothing for it.
    let longest = match state.engine.store().backend() {
        crate::db::Backend::Sqlite => Some(MAX_SLEEP),
        crate::db::Backend::Postgres => None,
    };
    while state.is_ready() {
        let now = clock.now_ms();
        let due = state.blocking(move |s| due_runs(s, now)).await;
        let next = match due {
            Ok((runs, next)) => {
                for run in runs {
                    queue(&state, run).await;
                }
                next
            }
            Err(problem) => {
                tracing::error!(detail = %problem.detail, "the scheduler could not read the schedules");
                None
            }
        };
        let mut sleep =
            next.map(|at| Duration::from_millis(at.saturating_sub(clock.now_ms()).max(0) as u64));
        if let Some(longest) = longest {
            sleep = Some(sleep.map_or(longest, |s| s.min(longest)));
        }
        if clock.offset_file.is_some() {
            sleep = Some(sleep.map_or(TEST_TICK, |s| s.min(TEST_TICK)));
        }
        let sleep = async {
            match sleep {
                Some(sleep) => tokio::time::sleep(sleep).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = state.schedules_changed.notified() => {}
        }
    }
}

/// The runs of every schedule due at `now`, with missed fires skipped as
/// their policy says; and the soonest fire time after that.
fn due_runs(s: &AppState, now: i64) -> Result<(Vec<QueuedRun>, Option<i64>), Problem> {
    let due = s.engine.store().due_schedules(now)?;
    let mut runs = Vec::new();
    for (trigger_id, bot, due_ms) in due {
        let deployed = s.engine.deployed_trigger(trigger_id.as_str())?;
        let schedule = deployed
            .as_ref()
            .and_then(|(_, t)| t.schedule().map(|s| (t, s)));
        let next_ms = schedule
            .as_ref()
            .and_then(|(_, s)| s.next_after(now))
            .unwrap_or(i64::MAX);
        let fire = Fire {
            trigger_id: trigger_id.to_string(),
            due_ms,
            next_ms,
        };
        let Some((trigger, _)) = schedule else {
            // Not a deployed schedule any more: move it out of the way.
            s.engine.store().skip_fire(&fire)?;
            continue;
        };
        let late = now - due_ms > MISSED_AFTER_MS;
        if late && trigger.missed() == Missed::Skip {
            if s.engine.store().skip_fire(&fire)? {
                tracing::info!(
                    %bot,
                    trigger = trigger.id(),
                    due = %format_time(due_ms),
                    next = %format_time(next_ms),
                    "a missed schedule fire was skipped (missed = \"skip\")"
                );
            }
            continue;
        }
        let input = json!({
            "kind": "schedule",
            "trigger": trigger.id(),
            "scheduled_for": format_time(due_ms),
            "fired_at": format_time(now),
            "missed": late,
        });
        let snapshot = s.vault().snapshot_for_bot(&bot)?;
        let mut run = s.engine.queued_run(
            &snapshot,
            &input,
            None,
            Some(&format!("trigger:{}", trigger.id())),
        )?;
        run.fire = Some(fire);
        runs.push(run);
    }
    let next = s.engine.store().next_schedule_fire()?;
    Ok((runs, next))
}

async fn queue(state: &Arc<AppState>, run: QueuedRun) {
    let bot = run.bot.clone();
    match state.engine.enqueue(run, state.config.queue_bound).await {
        Ok(_) => state.wake.notify_one(),
        Err(EngineError::Store(StoreError::FireClaimed)) => {}
        Err(EngineError::Paused(_)) => {
            tracing::info!(%bot, "a schedule fire was skipped: the bot is paused");
        }
        Err(e) => tracing::warn!(%bot, error = %e, "a schedule fire did not start a run"),
    }
}
