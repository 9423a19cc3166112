//! The Discord stand-in: a few routes of the HTTP API v10, prefix `/api/v10`.
//!
//! | route | schema of the body | answer |
//! |---|---|---|
//! | `POST /channels/{channel_id}/messages` | `MessageCreateRequest` | 200, a `MessageResponse` |
//! | `POST /applications/{application_id}/commands` | `ApplicationCommandCreateRequest` | 201 (new name) or 200 (overwritten), an `ApplicationCommandResponse` |
//! | `GET /applications/{application_id}/commands` | | 200, the commands registered so far |
//! | `PATCH /webhooks/{application_id}/{interaction_token}/messages/@original` | `IncomingWebhookUpdateRequestPartial` | 200, a `MessageResponse` |
//!
//! The stand-in also plays Discord's side of interactions:
//! [`StandIn::slash_command`](super::StandIn::slash_command) makes a slash
//! command interaction signed with [`TEST_INTERACTION_SEED`], as Discord
//! signs them (Ed25519 over `X-Signature-Timestamp` and the body), and
//! issues its token. The follow-up route needs no bot token, as on Discord
//! (the interaction token is the credential), and answers 404 `{"message":
//! "Unknown Webhook","code":10015}` for a token it did not issue, for
//! another application, or once 15 minutes have passed.
//!
//! Every request must carry `Authorization: Bot <bot_token>` (else 401
//! `{"message":"401: Unauthorized","code":0}`) and a `User-Agent` of the
//! form `DiscordBot (URL, VERSION)` (else 400). Bodies must be
//! `application/json` (else 415) and valid JSON (else 400, code 50109).
//! A body the [`Validator`] rejects, or that fails the
//! built-in checks (a message needs something to send and at most 2,000
//! characters of content; a command needs a valid name, and a description
//! when it is a slash command), gets 400 `{"code":50035,"errors":{...},
//! "message":"Invalid Form Body"}` like Discord's, the inner error codes
//! being strings as Discord sends them (the OpenAPI document says integers).
//! Commands go under the configured application only (else 403
//! `{"message":"Missing Access","code":50001}`). Unknown routes get 404
//! `{"message":"404: Not Found","code":0}`, known ones with another method
//! 405.
//!
//! Forced answers ([`Scripted`]) take the same shapes: `Status(403)` is
//! 50001 `Missing Access`; `Error` gives any code, such as 50013 `Missing
//! Permissions`.
//!
//! Answers on routes carry Discord's rate-limit headers (`X-RateLimit-Limit`,
//! `-Remaining`, `-Reset`, `-Reset-After`, `-Bucket`), with room left unless
//! a [`Scripted::RateLimited`] answer is forced.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{
    Answer, BodyProblem, DiscordCredentials, RecordedRequest, Scripted, Validator, json_object,
    lock, reason,
};

/// Discord's epoch, 2015-01-01T00:00:00Z, in Unix milliseconds.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// The longest message content a bot may send.
const MAX_CONTENT: usize = 2000;

/// Which rate-limit bucket a request falls in.
#[derive(Debug, Clone, Copy)]
enum Bucket {
    Messages,
    Commands,
    Other,
}

impl Bucket {
    fn id(self) -> &'static str {
        match self {
            Bucket::Messages => "80c17d2f203122d936070c88c8d10f33",
            Bucket::Commands => "5a6cb0e4d4c8f09c7e4bc2f8e1d3a7b9",
            Bucket::Other => "41f9cd9ee4bb6f6b1c34b1b0a6b3e1d2",
        }
    }
}

enum Route<'a> {
    EditOriginal {
        application_id: &'a str,
        token: &'a str,
    },
    CreateMessage {
        channel_id: &'a str,
    },
    CreateCommand {
        application_id: &'a str,
    },
    ListCommands {
        application_id: &'a str,
    },
}

/// The Discord stand-in's state: the commands registered, keyed by type and
/// name, as Discord does.
pub(super) struct Discord {
    creds: DiscordCredentials,
    commands: Mutex<HashMap<(u64, String), Value>>,
    last_snowflake: AtomicU64,
    /// Interaction tokens issued, with when (Unix milliseconds).
    tokens: Mutex<HashMap<String, u64>>,
}

/// The seed of the stand-in's Ed25519 test key pair, which signs the
/// interactions it sends. A test key, public in this source: never a real
/// application's.
pub const TEST_INTERACTION_SEED: [u8; 32] = *b"narakim-standin-test-key-0000001";

/// How long Discord honours an interaction token.
const TOKEN_LIFETIME_MS: u64 = 15 * 60 * 1000;

/// A signed interaction, as Discord would POST it to an application's
/// interactions endpoint.
#[derive(Clone)]
pub struct Interaction {
    /// `X-Signature-Ed25519`, `X-Signature-Timestamp` and `Content-Type`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The interaction's id, which is also its delivery id.
    pub id: String,
    /// Its token, for checking where it ends up; it is in `body` too.
    pub token: String,
}

impl std::fmt::Debug for Interaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interaction")
            .field("id", &self.id)
            .field("token", &"<hidden>")
            .finish_non_exhaustive()
    }
}

/// The public key that verifies the stand-in's interactions, as hex: what
/// a test stores as `DISCORD_PUBLIC_KEY`.
pub fn test_public_key() -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&TEST_INTERACTION_SEED);
    key.verifying_key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Discord's signature headers for `body` sent at `timestamp`, by `seed`.
pub fn sign_interaction(seed: &[u8; 32], timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(seed);
    let message = [timestamp.to_string().as_bytes(), body].concat();
    let signature: String = key
        .sign(&message)
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    vec![
        ("X-Signature-Ed25519".to_owned(), signature),
        ("X-Signature-Timestamp".to_owned(), timestamp.to_string()),
        ("Content-Type".to_owned(), "application/json".to_owned()),
    ]
}

impl Discord {
    pub(super) fn new(creds: DiscordCredentials) -> Self {
        Discord {
            creds,
            commands: Mutex::new(HashMap::new()),
            last_snowflake: AtomicU64::new(0),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// A slash command interaction for `/name` with `options`, from a user
    /// in a guild channel, signed now with the test key; its token is
    /// issued and honoured by the follow-up route for 15 minutes.
    pub(super) fn slash_command(&self, name: &str, options: Value) -> Interaction {
        let id = self.snowflake();
        let mut raw = [0u8; 32];
        let _ = getrandom::fill(&mut raw);
        // Discord's tokens are long and URL-safe; this one is too.
        let token: String = format!(
            "aW50ZXJhY3Rpb246{}",
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        lock(&self.tokens).insert(token.clone(), now_millis());
        let body = json!({
            "id": id,
            "application_id": self.creds.application_id,
            "type": 2,
            "token": token,
            "version": 1,
            "guild_id": "1100000000000000100",
            "channel_id": "1100000000000000200",
            "member": {"user": {"id": "1100000000000000300", "username": "tester", "discriminator": "0"}},
            "data": {"id": self.snowflake(), "name": name, "type": 1, "options": options},
            "locale": "en-US",
        })
        .to_string()
        .into_bytes();
        let timestamp = (now_millis() / 1000) as i64;
        Interaction {
            headers: sign_interaction(&TEST_INTERACTION_SEED, timestamp, &body),
            body,
            id,
            token,
        }
    }

    /// The follow-up: the interaction token is the credential.
    fn edit_original(
        &self,
        req: &RecordedRequest,
        application_id: &str,
        token: &str,
        validator: Option<&Validator>,
    ) -> Answer {
        let issued = lock(&self.tokens).get(token).copied();
        let live = issued.is_some_and(|at| now_millis().saturating_sub(at) < TOKEN_LIFETIME_MS);
        if application_id != self.creds.application_id || !live {
            return error(404, 10015, "Unknown Webhook");
        }
        let body = match body(req, "IncomingWebhookUpdateRequestPartial", validator) {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        if let Err(answer) = check_message(&body) {
            return answer;
        }
        let mut message = self.message("1100000000000000200", &body);
        message["webhook_id"] = json!(application_id);
        Answer::new(200, message)
    }

    /// A new id, increasing, in Discord's format.
    fn snowflake(&self) -> String {
        let ms = now_millis().saturating_sub(DISCORD_EPOCH_MS);
        let candidate = ms << 22;
        let mut last = self.last_snowflake.load(Ordering::Relaxed);
        loop {
            let next = candidate.max(last + 1);
            match self.last_snowflake.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next.to_string(),
                Err(seen) => last = seen,
            }
        }
    }

    pub(super) fn scripted(&self, req: &RecordedRequest, scripted: &Scripted) -> Answer {
        let bucket = route_of(req).map_or(Bucket::Other, |(_, b)| b);
        let limited = |status: u16, answer: Answer| {
            if status < 500 {
                with_limits(answer, bucket)
            } else {
                answer
            }
        };
        match scripted {
            Scripted::RateLimited { retry_after } => rate_limited(*retry_after, bucket),
            Scripted::RateLimitedUntil { retry_after } => {
                let mut answer = rate_limited(*retry_after, bucket);
                for (name, value) in &mut answer.headers {
                    if *name == "retry-after" {
                        *value = super::http_date_in(*retry_after);
                    }
                }
                answer
            }
            Scripted::Status(429) => rate_limited(1.0, bucket),
            Scripted::Status(status) => {
                let answer = match status {
                    403 => error(403, 50001, "Missing Access"),
                    _ => error(*status, 0, &format!("{status}: {}", reason(*status))),
                };
                limited(*status, answer)
            }
            Scripted::Error {
                status,
                code,
                message,
            } => limited(*status, error(*status, *code, message)),
            // OpenRouter's; and Hang is handled by the server before it gets here.
            Scripted::Moderated { .. } | Scripted::Chat(_) | Scripted::Hang => {
                error(500, 0, "500: Internal Server Error")
            }
        }
    }

    pub(super) fn handle(&self, req: &RecordedRequest, validator: Option<&Validator>) -> Answer {
        let Some((route, bucket)) = route_of(req) else {
            return error(404, 0, "404: Not Found");
        };
        let Some(route) = route else {
            return error(405, 0, "405: Method Not Allowed");
        };
        with_limits(self.route(req, route, validator), bucket)
    }

    fn route(
        &self,
        req: &RecordedRequest,
        route: Route<'_>,
        validator: Option<&Validator>,
    ) -> Answer {
        if let Route::EditOriginal {
            application_id,
            token,
        } = route
        {
            return self.edit_original(req, application_id, token, validator);
        }
        let expected = format!("Bot {}", self.creds.bot_token);
        if req.header("authorization") != Some(expected.as_str()) {
            return error(401, 0, "401: Unauthorized");
        }
        if !user_agent_ok(req.header("user-agent")) {
            return error(
                400,
                0,
                "400: Bad Request: the User-Agent header must be \
                 \"DiscordBot ($url, $versionNumber)\"",
            );
        }
        match route {
            // Answered above, before the bot token is asked for.
            Route::EditOriginal { .. } => error(404, 0, "404: Not Found"),
            Route::CreateMessage { channel_id } => {
                if !is_snowflake(channel_id) {
                    return invalid_form(json!({ "channel_id": field_error(
                        "NUMBER_TYPE_COERCE",
                        &format!("Value \"{channel_id}\" is not snowflake."),
                    )}));
                }
                let body = match body(req, "MessageCreateRequest", validator) {
                    Ok(body) => body,
                    Err(answer) => return answer,
                };
                if let Err(answer) = check_message(&body) {
                    return answer;
                }
                Answer::new(200, self.message(channel_id, &body))
            }
            Route::CreateCommand { application_id } => {
                if application_id != self.creds.application_id {
                    return error(403, 50001, "Missing Access");
                }
                let body = match body(req, "ApplicationCommandCreateRequest", validator) {
                    Ok(body) => body,
                    Err(answer) => return answer,
                };
                let kind = match check_command(&body) {
                    Ok(kind) => kind,
                    Err(answer) => return answer,
                };
                self.register(kind, &body)
            }
            Route::ListCommands { application_id } => {
                if application_id != self.creds.application_id {
                    return error(403, 50001, "Missing Access");
                }
                let commands = lock(&self.commands);
                let mut list: Vec<&Value> = commands.values().collect();
                list.sort_by_key(|c| c["id"].as_str().and_then(|id| id.parse::<u64>().ok()));
                Answer::new(200, json!(list))
            }
        }
    }

    /// The `MessageResponse` Discord would give for `body`, sent by the bot.
    fn message(&self, channel_id: &str, body: &Value) -> Value {
        let embeds: Vec<Value> = body["embeds"]
            .as_array()
            .map(|embeds| {
                embeds
                    .iter()
                    .map(|embed| {
                        // Stored embeds always have a type, `rich` by default,
                        // and no null fields.
                        let mut embed: serde_json::Map<String, Value> = embed
                            .as_object()
                            .map(|o| {
                                o.iter()
                                    .filter(|(_, v)| !v.is_null())
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        embed.entry("type").or_insert_with(|| json!("rich"));
                        Value::Object(embed)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut message = json!({
            "type": 0,
            "content": body["content"].as_str().unwrap_or(""),
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": embeds,
            "timestamp": timestamp(),
            "edited_timestamp": null,
            "flags": body["flags"].as_i64().unwrap_or(0),
            "components": [],
            "id": self.snowflake(),
            "channel_id": channel_id,
            "author": self.bot_user(),
            "pinned": false,
            "mention_everyone": false,
            "tts": body["tts"].as_bool().unwrap_or(false),
        });
        if let Some(nonce) = body.get("nonce").filter(|n| !n.is_null()) {
            message["nonce"] = nonce.clone();
        }
        message
    }

    /// The bot's own user, whose id is the application's.
    fn bot_user(&self) -> Value {
        json!({
            "id": self.creds.application_id,
            "username": "narakim-standin",
            "avatar": null,
            "discriminator": "0000",
            "public_flags": 0,
            "flags": 0,
            "bot": true,
            "global_name": null,
            "primary_guild": null,
        })
    }

    /// Creates or overwrites a command: 201 when its name is new for its
    /// type, 200 otherwise (same id, new version).
    fn register(&self, kind: u64, body: &Value) -> Answer {
        let name = body["name"].as_str().unwrap_or_default().to_owned();
        let mut commands = lock(&self.commands);
        let existing = commands.get(&(kind, name.clone())).cloned();
        let id = existing
            .as_ref()
            .and_then(|c| c["id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| self.snowflake());
        let permissions = match &body["default_member_permissions"] {
            Value::Number(n) => json!(n.to_string()),
            Value::String(s) => json!(s),
            _ => Value::Null,
        };
        let mut command = json!({
            "id": id,
            "application_id": self.creds.application_id,
            "version": self.snowflake(),
            "default_member_permissions": permissions,
            "type": kind,
            "name": name,
            "description": body["description"].as_str().unwrap_or(""),
            "dm_permission": body["dm_permission"].as_bool().unwrap_or(true),
            "contexts": body.get("contexts").cloned().unwrap_or(Value::Null),
            "integration_types": body["integration_types"].as_array().cloned().unwrap_or_else(|| vec![json!(0)]),
            "nsfw": body["nsfw"].as_bool().unwrap_or(false),
        });
        for optional in ["name_localizations", "description_localizations", "options"] {
            if let Some(v) = body.get(optional).filter(|v| !v.is_null()) {
                command[optional] = v.clone();
            }
        }
        if let Some(handler) = body.get("handler").filter(|v| !v.is_null()) {
            command["handler"] = handler.clone();
        }
        commands.insert((kind, name), command.clone());
        Answer::new(if existing.is_some() { 200 } else { 201 }, command)
    }
}

/// The route of a request, `None` outside the known paths; `Some(None)` for
/// a known path with another method.
fn route_of(req: &RecordedRequest) -> Option<(Option<Route<'_>>, Bucket)> {
    let rest = req.path.strip_prefix("/api/v10/")?;
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match segments.as_slice() {
        ["channels", channel_id, "messages"] => Some((
            (req.method == "POST").then_some(Route::CreateMessage { channel_id }),
            Bucket::Messages,
        )),
        ["webhooks", application_id, token, "messages", "@original"] => Some((
            (req.method == "PATCH").then_some(Route::EditOriginal {
                application_id,
                token,
            }),
            Bucket::Messages,
        )),
        ["applications", application_id, "commands"] => {
            let route = match req.method.as_str() {
                "POST" => Some(Route::CreateCommand { application_id }),
                "GET" => Some(Route::ListCommands { application_id }),
                _ => None,
            };
            Some((route, Bucket::Commands))
        }
        _ => None,
    }
}

/// `DiscordBot (URL, VERSION)`, anything after it allowed.
fn user_agent_ok(ua: Option<&str>) -> bool {
    let Some(inner) = ua.and_then(|ua| ua.strip_prefix("DiscordBot (")) else {
        return false;
    };
    let Some((inside, _)) = inner.split_once(')') else {
        return false;
    };
    inside
        .split_once(", ")
        .is_some_and(|(url, version)| !url.trim().is_empty() && !version.trim().is_empty())
}

fn is_snowflake(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.parse::<u64>().is_ok()
}

/// The body as a JSON object, validated against `schema` when a validator
/// is set.
fn body(
    req: &RecordedRequest,
    schema: &str,
    validator: Option<&Validator>,
) -> Result<Value, Answer> {
    let body = json_object(req).map_err(|problem| match problem {
        BodyProblem::ContentType => error(
            415,
            0,
            "415: Unsupported Media Type: send the body as Content-Type: application/json",
        ),
        BodyProblem::NotJson => error(400, 50109, "The request body contains invalid JSON."),
    })?;
    if let Some(validate) = validator
        && let Err(why) = validate(schema, &body)
    {
        return Err(invalid_form(json!({
            "_errors": [{ "code": "SCHEMA_VALIDATION_FAILED", "message": why }],
        })));
    }
    Ok(body)
}

fn check_message(body: &Value) -> Result<(), Answer> {
    let content = &body["content"];
    match content {
        Value::Null | Value::String(_) => {}
        _ => {
            return Err(invalid_form(
                json!({ "content": field_error("BASE_TYPE_STRING", "Must be a string.") }),
            ));
        }
    }
    let content = content.as_str().unwrap_or("");
    if content.chars().count() > MAX_CONTENT {
        return Err(invalid_form(json!({ "content": field_error(
            "BASE_TYPE_MAX_LENGTH",
            &format!("Must be {MAX_CONTENT} or fewer in length."),
        )})));
    }
    match &body["embeds"] {
        Value::Null => {}
        Value::Array(embeds) if embeds.iter().all(Value::is_object) => {}
        _ => {
            return Err(invalid_form(
                json!({ "embeds": field_error("BASE_TYPE_ARRAY", "Must be an array of objects.") }),
            ));
        }
    }
    let non_empty = |field: &str| body[field].as_array().is_some_and(|a| !a.is_empty());
    let something = !content.trim().is_empty()
        || ["embeds", "sticker_ids", "components", "attachments"]
            .into_iter()
            .any(non_empty)
        || body["poll"].is_object();
    if !something {
        return Err(error(400, 50006, "Cannot send an empty message"));
    }
    Ok(())
}

/// Checks a command's name, type and description; gives its type.
fn check_command(body: &Value) -> Result<u64, Answer> {
    let kind = match &body["type"] {
        Value::Null => 1,
        Value::Number(n) if matches!(n.as_u64(), Some(1..=4)) => n.as_u64().unwrap_or(1),
        _ => {
            return Err(invalid_form(
                json!({ "type": field_error("BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4}.") }),
            ));
        }
    };
    let Some(name) = body["name"].as_str() else {
        return Err(invalid_form(
            json!({ "name": field_error("BASE_TYPE_REQUIRED", "This field is required") }),
        ));
    };
    if !(1..=32).contains(&name.chars().count()) {
        return Err(invalid_form(json!({ "name": field_error(
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 32 in length.",
        )})));
    }
    // Slash command names: letters, digits, `-`, `_` and `'`, lowercase
    // where a letter has a lowercase form.
    let valid_chat_name = name.chars().all(|c| {
        (c.is_alphanumeric() || matches!(c, '-' | '_' | '\'')) && c.to_lowercase().eq([c])
    });
    if kind == 1 && !valid_chat_name {
        return Err(invalid_form(json!({ "name": field_error(
            "APPLICATION_COMMAND_INVALID_NAME",
            "Command name is invalid",
        )})));
    }
    if kind == 1 {
        let description = body["description"].as_str().unwrap_or("");
        if !(1..=100).contains(&description.chars().count()) {
            return Err(invalid_form(json!({ "description": field_error(
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )})));
        }
    }
    Ok(kind)
}

/// Discord's error body: `{"message": ..., "code": ...}`.
pub(super) fn error(status: u16, code: u32, message: &str) -> Answer {
    Answer::new(status, json!({ "message": message, "code": code }))
}

/// 400 Invalid Form Body with the given `errors` tree.
fn invalid_form(errors: Value) -> Answer {
    Answer::new(
        400,
        json!({ "code": 50035, "errors": errors, "message": "Invalid Form Body" }),
    )
}

fn field_error(code: &str, message: &str) -> Value {
    json!({ "_errors": [{ "code": code, "message": message }] })
}

/// A 429 as Discord sends it, for a per-route limit.
fn rate_limited(retry_after: f64, bucket: Bucket) -> Answer {
    let retry_after = if retry_after.is_finite() && retry_after > 0.0 {
        retry_after
    } else {
        0.0
    };
    let reset = now_millis() as f64 / 1000.0 + retry_after;
    Answer::new(
        429,
        json!({
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": false,
            "code": 0,
        }),
    )
    .header("retry-after", format!("{}", retry_after.ceil() as u64))
    .header("x-ratelimit-limit", "5")
    .header("x-ratelimit-remaining", "0")
    .header("x-ratelimit-reset", format!("{reset:.3}"))
    .header("x-ratelimit-reset-after", format!("{retry_after:.3}"))
    .header("x-ratelimit-bucket", bucket.id())
    .header("x-ratelimit-scope", "user")
}

/// Adds the rate-limit headers of a request that had room left.
fn with_limits(answer: Answer, bucket: Bucket) -> Answer {
    let reset = now_millis() as f64 / 1000.0 + 1.0;
    answer
        .header("x-ratelimit-limit", "5")
        .header("x-ratelimit-remaining", "4")
        .header("x-ratelimit-reset", format!("{reset:.3}"))
        .header("x-ratelimit-reset-after", "1.000")
        .header("x-ratelimit-bucket", bucket.id())
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Now, as Discord writes timestamps: `2026-01-02T03:04:05.678000+00:00`.
fn timestamp() -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
    );
    time::OffsetDateTime::now_utc()
        .format(FORMAT)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000+00:00".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents() {
        assert!(user_agent_ok(Some("DiscordBot (https://example.com, 1.0)")));
        assert!(user_agent_ok(Some(
            "DiscordBot (https://example.com, 1.0) narakim/0.1"
        )));
        assert!(!user_agent_ok(Some("DiscordBot")));
        assert!(!user_agent_ok(Some("DiscordBot (https://example.com)")));
        assert!(!user_agent_ok(Some("curl/8.0")));
        assert!(!user_agent_ok(None));
    }

    #[test]
    fn snowflakes() {
        assert!(is_snowflake("1100000000000000001"));
        assert!(is_snowflake("0"));
        assert!(!is_snowflake("01"));
        assert!(!is_snowflake("abc"));
        assert!(!is_snowflake("99999999999999999999999"));
        let d = Discord::new(DiscordCredentials {
            bot_token: "t".into(),
            application_id: "1".into(),
        });
        let (a, b) = (d.snowflake(), d.snowflake());
        assert!(a.parse::<u64>().unwrap() < b.parse::<u64>().unwrap());
        assert!(is_snowflake(&a));
    }
}
