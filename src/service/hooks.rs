//! `POST /hooks/{trigger_id}`: a signed webhook starts a deployed bot.
//!
//! The request comes from the internet, so every step refuses before the
//! next one looks at more of it:
//! 1. the raw body is read under the server's body limit (413 past it);
//! 2. the trigger is found by its unguessable id (404), and a query string
//!    is refused (400): authentication travels only in headers;
//! 3. the signature is verified over the raw bytes, before any parsing,
//!    with the key read from the vault (401, saying which check failed);
//! 4. the signed timestamp must be within the trigger's tolerance (401);
//! 5. the delivery's keys (its delivery id, the digest of its signature)
//!    are looked up and written in the transaction that queues the run, so
//!    a repeat finds the first run and nothing runs twice;
//! 6. 202 with the execution id. A paused bot answers 409, with nothing
//!    queued.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::problem::Problem;
use crate::engine::executor::LiveTrigger;
use crate::engine::queue::{Delivery, QueuedRun};
use crate::engine::store::ExecutionId;
use crate::trigger::{self, verify};
use crate::vault::{SecretResolver, SecretSnapshot, SecretValue};

/// How long the keys of a delivery without a signed timestamp (GitHub's)
/// are kept: such a delivery never goes stale, so its replay is caught
/// only while its keys are kept.
const KEEP_UNTIMED: i64 = 7 * 24 * 3600;

/// A delivery whose signature and timestamp held, with what it needs next.
struct Verified {
    live: LiveTrigger,
    snapshot: SecretSnapshot,
    signed: verify::Signed,
    now: i64,
}

/// Steps 2 to 4 of the module docs, for a trigger of `kind`.
fn verify_delivery(
    s: &AppState,
    trigger_id: &str,
    kind: &'static str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verified, Problem> {
    let live = s
        .engine
        .live_trigger(trigger_id)?
        .filter(|live| live.trigger.kind() == kind)
        .ok_or_else(|| Problem::not_found(format!("no deployed {kind} trigger has this id")))?;
    let snapshot = s.vault().snapshot_for_bot(&live.bot)?;
    let secret = live.trigger.secret().unwrap_or_default();
    let key = snapshot.resolve(secret).map_err(|_| {
        // Deploy required it; it was deleted since. Fail closed.
        tracing::warn!(
            bot = %live.bot,
            trigger = live.trigger.id(),
            secret,
            "a delivery was refused: its trigger's key is no longer stored"
        );
        Problem::unauthorized("the signature cannot be verified")
    })?;
    let signed = live
        .scheme
        .verify(key.expose().as_bytes(), headers, body)
        .map_err(|e| Problem::unauthorized(e.to_string()))?;
    drop(key);
    let now = unix_now();
    if let Some(timestamp) = signed.timestamp {
        verify::check_timestamp(timestamp, now, live.trigger.tolerance())
            .map_err(|e| Problem::unauthorized(e.to_string()))?;
    }
    Ok(Verified {
        live,
        snapshot,
        signed,
        now,
    })
}

impl Verified {
    /// The run of `input`, carrying the delivery's keys: its delivery id
    /// and the digest of its signature.
    fn run(
        &self,
        s: &AppState,
        input: &serde_json::Value,
        delivery_id: Option<&str>,
    ) -> Result<QueuedRun, Problem> {
        let mut keys = vec![format!("sig:{}", hex(&self.signed.replay_key))];
        keys.extend(delivery_id.map(|id| format!("id:{id}")));
        let keep = match self.signed.timestamp {
            // Past twice the tolerance the timestamp check refuses it.
            Some(_) => 2 * i64::from(self.live.trigger.tolerance()),
            None => KEEP_UNTIMED,
        };
        let mut run = s.engine.queued_run(
            &self.snapshot,
            input,
            None,
            Some(&format!("trigger:{}", self.live.trigger.id())),
        )?;
        run.delivery = Some(Delivery {
            trigger_id: self.live.id.to_string(),
            keys,
            keep_until_ms: (self.now + keep) * 1000,
        });
        Ok(run)
    }
}

fn refuse_query(uri: &Uri) -> Result<(), Problem> {
    match uri.query() {
        Some(_) => Err(Problem::bad_request(
            "a trigger URL takes no query string: authentication travels only in headers, \
             because URLs end up in logs; configure the sender with the bare URL",
        )),
        None => Ok(()),
    }
}

pub(super) async fn webhook(
    State(state): State<Arc<AppState>>,
    Path(trigger_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    refuse_query(&uri)?;
    let run = state
        .blocking(move |s| {
            let v = verify_delivery(s, &trigger_id, "webhook", &headers, &body)?;
            let parsed = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            let delivery_id = v
                .signed
                .delivery_id
                .clone()
                .or_else(|| trigger::body_delivery_id(&v.live.scheme, &parsed));
            drop(parsed);
            let input = trigger::delivery_input(
                &v.live.trigger,
                &v.live.scheme,
                delivery_id.as_deref(),
                &headers,
                &body,
            );
            Ok((
                v.live.bot.clone(),
                v.run(s, &input, delivery_id.as_deref())?,
            ))
        })
        .await;
    let (bot, run) = match run {
        Ok(run) => run,
        Err(problem) => {
            state.metrics.webhook_refused();
            return Err(problem);
        }
    };
    let enqueued = state.engine.enqueue(run, state.config.queue_bound).await?;
    if !enqueued.replayed {
        state.wake.notify_one();
    }
    state.metrics.webhook_accepted();
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "execution_id": enqueued.id.as_str(),
            "status": enqueued.status,
            "replayed": enqueued.replayed,
            "bot": bot,
        })),
    )
        .into_response())
}

/// Discord's interaction types this endpoint answers.
const PING: u64 = 1;
const AUTOCOMPLETE: u64 = 4;

/// `POST /interactions/{trigger_id}`: Discord's interactions endpoint.
///
/// The signature is checked as for a webhook (Ed25519 over the timestamp
/// and the raw body; 401 when it fails, as Discord requires). A PING gets
/// a PONG. A command, component or modal submit is queued and then
/// acknowledged with a deferred response (type 5), so the graph may take
/// up to 15 minutes to post its answer through the follow-up webhook. The
/// interaction's token is cut out of the stored trigger and handed to the
/// run as the secret `DISCORD_INTERACTION_TOKEN`, held in memory only.
pub(super) async fn interaction(
    State(state): State<Arc<AppState>>,
    Path(trigger_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    refuse_query(&uri)?;
    let queued = state
        .blocking(move |s| {
            let v = verify_delivery(s, &trigger_id, "discord-interactions", &headers, &body)?;
            let mut interaction: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|_| Problem::bad_request("the interaction is not JSON"))?;
            let kind = interaction.get("type").and_then(serde_json::Value::as_u64);
            match kind {
                Some(PING) => return Ok(None),
                // Suggestions must come back at once; a graph cannot.
                Some(AUTOCOMPLETE) => {
                    return Ok(Some(Err(json!({"type": 8, "data": {"choices": []}}))));
                }
                Some(_) => {}
                None => {
                    return Err(Problem::bad_request(
                        "the interaction has no numeric \"type\"",
                    ));
                }
            }
            let id = trigger::body_delivery_id(&v.live.scheme, &interaction)
                .ok_or_else(|| Problem::bad_request("the interaction has no \"id\""))?;
            let token = match interaction.as_object_mut().and_then(|o| o.remove("token")) {
                Some(serde_json::Value::String(token)) if !token.is_empty() => token,
                _ => return Err(Problem::bad_request("the interaction has no \"token\"")),
            };
            let token = SecretValue::new(token).map_err(|_| {
                Problem::bad_request("the interaction's \"token\" is not a usable value")
            })?;
            let input = json!({
                "kind": "discord-interactions",
                "trigger": v.live.trigger.id(),
                "delivery_id": id,
                "application_id": interaction.get("application_id"),
                "interaction": interaction,
            });
            let mut run = v.run(s, &input, Some(&id))?;
            let execution = ExecutionId::generate()?;
            s.engine.hold_execution_values(
                &execution,
                vec![(trigger::DISCORD_INTERACTION_TOKEN.to_owned(), token)],
            );
            run.id = Some(execution.clone());
            Ok(Some(Ok((execution, run))))
        })
        .await;
    let (execution, run) = match queued {
        Ok(None) => {
            state.metrics.webhook_accepted();
            return Ok(axum::Json(json!({"type": 1})).into_response());
        }
        Ok(Some(Err(answer))) => {
            state.metrics.webhook_accepted();
            return Ok(axum::Json(answer).into_response());
        }
        Ok(Some(Ok((execution, run)))) => (execution, run),
        Err(problem) => {
            state.metrics.webhook_refused();
            return Err(problem);
        }
    };
    let enqueued = match state.engine.enqueue(run, state.config.queue_bound).await {
        Ok(enqueued) => enqueued,
        Err(e) => {
            state.engine.drop_execution_values(&execution);
            state.metrics.webhook_refused();
            return Err(e.into());
        }
    };
    if enqueued.id != execution {
        // A repeat: its first run holds the token it needs.
        state.engine.drop_execution_values(&execution);
    }
    if !enqueued.replayed {
        state.wake.notify_one();
    }
    state.metrics.webhook_accepted();
    // DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: "thinking…" until the follow-up.
    Ok(axum::Json(json!({"type": 5})).into_response())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
