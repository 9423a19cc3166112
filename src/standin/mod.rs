//! Loopback stand-ins of the Discord and OpenRouter HTTP APIs.
//!
//! Each [`StandIn`] is a real HTTP/1.1 server on `127.0.0.1` with a random
//! port. Extensions keep sending their requests to
//! `https://discord.com/api/v10/...` or `https://openrouter.ai/api/v1/...`;
//! the runtime's operator mapping ([`StandIn::upstream_arg`], for example
//! `discord.com=http://127.0.0.1:PORT`) rebases them onto the stand-in,
//! path kept. The integration tests and the offline demo use them.
//!
//! A stand-in answers like the real service does, shapes taken from the
//! services' OpenAPI documents (the routes are listed in [`discord`] and
//! [`openrouter`]):
//!
//! - credentials are checked exactly (`Authorization: Bot TOKEN` for
//!   Discord, `Authorization: Bearer KEY` for OpenRouter), and Discord's
//!   `User-Agent: DiscordBot (URL, VERSION)` rule too;
//! - bodies must be `Content-Type: application/json` and valid JSON; they are
//!   checked against the API's request schema when a [`Validator`] is given,
//!   and with a few structural checks always;
//! - errors come in each API's error shape, with Discord's rate-limit
//!   headers on Discord routes.
//!
//! Tests steer it: every request is recorded ([`StandIn::requests`]), a FIFO
//! of forced answers ([`StandIn::script`], [`StandIn::fail_next`]) is
//! consumed before normal handling (rate limits, error statuses and codes,
//! a moderation block, completions without a usable reply, a request that
//! is never answered), and [`StandIn::set_delay`] holds every answer
//! back for a while.

pub mod discord;
pub mod openrouter;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Largest request body a stand-in reads; larger ones get 413.
const MAX_BODY: usize = 8 << 20;

/// Checks a request body against a named schema of the API's OpenAPI
/// document (for example `MessageCreateRequest` or `ChatRequest`), giving a
/// human-readable reason when it does not conform.
///
/// It runs on the server's tokio worker for every request with a JSON body,
/// so it should be quick (cache compiled schemas).
pub type Validator = Arc<dyn Fn(&str, &Value) -> Result<(), String> + Send + Sync>;

/// The credentials the Discord stand-in accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct DiscordCredentials {
    /// Requests must carry `Authorization: Bot <bot_token>`.
    pub bot_token: String,
    /// The application (and bot user) id: a snowflake such as
    /// `"1100000000000000001"`. Commands can only be registered under it.
    pub application_id: String,
}

impl fmt::Debug for DiscordCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordCredentials")
            .field("bot_token", &"<hidden>")
            .field("application_id", &self.application_id)
            .finish()
    }
}

/// The credentials the OpenRouter stand-in accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenRouterCredentials {
    /// Requests must carry `Authorization: Bearer <api_key>`.
    pub api_key: String,
}

impl fmt::Debug for OpenRouterCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenRouterCredentials")
            .field("api_key", &"<hidden>")
            .finish()
    }
}

/// Which API a stand-in plays, with the credentials it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `discord.com`, routes under `/api/v10`.
    Discord(DiscordCredentials),
    /// `openrouter.ai`, routes under `/api/v1`.
    OpenRouter(OpenRouterCredentials),
}

impl Kind {
    /// A Discord stand-in accepting the `DISCORD_BOT_TOKEN` and
    /// `DISCORD_APPLICATION_ID` that `secrets` resolves (a bot's snapshot):
    /// for trying extensions locally with the bot's own credentials.
    pub fn discord_accepting(
        secrets: &dyn crate::vault::SecretResolver,
    ) -> Result<Kind, crate::vault::ResolveError> {
        Ok(Kind::Discord(DiscordCredentials {
            bot_token: secrets.resolve("DISCORD_BOT_TOKEN")?.expose().to_owned(),
            application_id: secrets
                .resolve("DISCORD_APPLICATION_ID")?
                .expose()
                .to_owned(),
        }))
    }

    /// An OpenRouter stand-in accepting the `OPENROUTER_API_KEY` that
    /// `secrets` resolves.
    pub fn openrouter_accepting(
        secrets: &dyn crate::vault::SecretResolver,
    ) -> Result<Kind, crate::vault::ResolveError> {
        Ok(Kind::OpenRouter(OpenRouterCredentials {
            api_key: secrets.resolve("OPENROUTER_API_KEY")?.expose().to_owned(),
        }))
    }

    /// The real host this stand-in replaces: `discord.com` or
    /// `openrouter.ai`.
    pub fn host(&self) -> &'static str {
        match self {
            Kind::Discord(_) => "discord.com",
            Kind::OpenRouter(_) => "openrouter.ai",
        }
    }
}

/// How a stand-in behaves beyond its credentials.
#[derive(Clone, Default)]
pub struct Options {
    /// Checks request bodies against the API's schemas; without one only the
    /// built-in structural checks run.
    pub validator: Option<Validator>,
    /// Every answer waits this long first (changeable later with
    /// [`StandIn::set_delay`]).
    pub delay: Duration,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("validator", &self.validator.as_ref().map(|_| "<fn>"))
            .field("delay", &self.delay)
            .finish()
    }
}

/// A forced answer, consumed (first in, first out) before normal handling,
/// whatever the request. Every one comes in the API's documented shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Scripted {
    /// 429 with `Retry-After: ceil(retry_after)` and the API's body; for
    /// Discord `{"message":"You are being rate limited.","retry_after":X,
    /// "global":false,"code":0}` and `X-RateLimit-*` headers.
    RateLimited {
        /// Seconds, as Discord sends them (fractional).
        retry_after: f64,
    },
    /// 429 whose `Retry-After` is an HTTP-date (IMF-fixdate, `Wed, 21 Oct
    /// 2015 07:28:00 GMT`) `retry_after` seconds from now, rounded up to the
    /// whole second; otherwise as [`Scripted::RateLimited`] (Discord's body
    /// still carries `retry_after`, as Discord's always does).
    RateLimitedUntil {
        /// Seconds from now.
        retry_after: f64,
    },
    /// This status with the API's error body (for example 401, 403, 500,
    /// 502 or 503).
    Status(u16),
    /// This status with the API's error body carrying this code and
    /// message: Discord `{"message","code"}` (403, 50013, `Missing
    /// Permissions`), OpenRouter `{"error":{"code","message"}}`.
    Error {
        status: u16,
        code: u32,
        message: String,
    },
    /// OpenRouter: 403, the input flagged by moderation, with the
    /// moderation metadata (`reasons`, `flagged_input` from the last user
    /// message, `provider_name`, `model_slug` from the request). Discord
    /// answers 500.
    Moderated {
        /// The categories flagged, for example `harassment`.
        reasons: Vec<String>,
    },
    /// OpenRouter: a 200 chat completion that is not a plain reply.
    /// Discord answers 500.
    Chat(ChatShape),
    /// Read the request and never answer (until the stand-in shuts down):
    /// for timeout tests.
    Hang,
}

/// The shapes of a 200 OpenRouter completion that carry no usable reply.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatShape {
    /// The generation failed after it started: `finish_reason` and
    /// `native_finish_reason` `"error"`, the choice's `error` `{code,
    /// message}`, and `partial` as the content so far.
    Failed {
        code: u16,
        message: String,
        partial: String,
    },
    /// A reasoning model that ran out of tokens: `content` `""`,
    /// `reasoning` text, `finish_reason` `"length"`.
    ReasoningOnly,
    /// `content` null and one `get_weather` tool call, `finish_reason`
    /// `"tool_calls"`.
    ToolCalls,
    /// The usual reply, in a legacy (non-chat) choice: `{index,
    /// finish_reason, text}` without `message`.
    LegacyText,
}

/// One request a stand-in received, whatever it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without the query, for example `/api/v10/channels/1/messages`.
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// In the order received; names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status answered (or about to be, after the delay); `None` for a
    /// request never answered ([`Scripted::Hang`]).
    pub status: Option<u16>,
    /// When its body had arrived.
    pub received: Instant,
}

impl RecordedRequest {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A running stand-in. Dropping it (or [`StandIn::shutdown`]) stops the
/// server and closes every connection.
pub struct StandIn {
    kind: &'static str,
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl fmt::Debug for StandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandIn")
            .field("kind", &self.kind)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl StandIn {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime (it spawns the server there).
    pub fn start(kind: Kind, options: Options) -> std::io::Result<StandIn> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        // Room for a burst of a thousand connections arriving at once.
        let listener = socket.listen(4096)?;
        let addr = listener.local_addr()?;
        let host = kind.host();
        let api = match kind {
            Kind::Discord(creds) => Api::Discord(discord::Discord::new(creds)),
            Kind::OpenRouter(creds) => Api::OpenRouter(openrouter::OpenRouter::new(creds)),
        };
        let shared = Arc::new(Shared {
            api,
            validator: options.validator,
            script: Mutex::new(VecDeque::new()),
            delay_nanos: AtomicU64::new(duration_nanos(options.delay)),
            requests: Mutex::new(Vec::new()),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(StandIn {
            kind: host,
            addr,
            shared,
            server,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The real host it replaces: `discord.com` or `openrouter.ai`.
    pub fn host(&self) -> &'static str {
        self.kind
    }

    /// The operator mapping that sends the real host here, as given to
    /// `--upstream`: `discord.com=http://127.0.0.1:PORT`.
    pub fn upstream_arg(&self) -> String {
        format!("{}={}", self.kind, self.base_url())
    }

    /// [`StandIn::upstream_arg`], parsed.
    pub fn upstream(&self) -> crate::runtime::Upstream {
        self.upstream_arg()
            .parse()
            .expect("a loopback base URL is a valid upstream")
    }

    /// A signed slash command interaction for `/name` (see
    /// [`discord`]'s module docs), or `None` when this is not the Discord
    /// stand-in.
    pub fn slash_command(&self, name: &str, options: Value) -> Option<discord::Interaction> {
        match &self.shared.api {
            Api::Discord(d) => Some(d.slash_command(name, options)),
            Api::OpenRouter(_) => None,
        }
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Every request received so far, forgetting them.
    pub fn take_requests(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut *lock(&self.shared.requests))
    }

    /// Queues forced answers after any already queued.
    pub fn script(&self, answers: Vec<Scripted>) {
        lock(&self.shared.script).extend(answers);
    }

    /// Queues `times` answers of `status` with the API's error body.
    pub fn fail_next(&self, status: u16, times: usize) {
        self.script(vec![Scripted::Status(status); times]);
    }

    /// Forced answers not yet consumed.
    pub fn scripted_left(&self) -> usize {
        lock(&self.shared.script).len()
    }

    /// Holds every answer (forced ones too) back this long from now on;
    /// zero answers at once.
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_nanos
            .store(duration_nanos(delay), Ordering::Relaxed);
    }

    /// Stops accepting and closes every connection, answered or not.
    /// Idempotent; dropping the stand-in does the same.
    pub fn shutdown(&self) {
        self.server.abort();
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared by the handle and every connection.
struct Shared {
    api: Api,
    validator: Option<Validator>,
    script: Mutex<VecDeque<Scripted>>,
    delay_nanos: AtomicU64,
    requests: Mutex<Vec<RecordedRequest>>,
}

enum Api {
    Discord(discord::Discord),
    OpenRouter(openrouter::OpenRouter),
}

impl Api {
    fn handle(&self, req: &RecordedRequest, validator: Option<&Validator>) -> Answer {
        match self {
            Api::Discord(d) => d.handle(req, validator),
            Api::OpenRouter(o) => o.handle(req, validator),
        }
    }

    fn scripted(&self, req: &RecordedRequest, scripted: &Scripted) -> Answer {
        match self {
            Api::Discord(d) => d.scripted(req, scripted),
            Api::OpenRouter(o) => o.scripted(req, scripted),
        }
    }

    fn too_large(&self) -> Answer {
        match self {
            Api::Discord(_) => discord::error(413, 40005, "Request entity too large"),
            Api::OpenRouter(_) => openrouter::error(413, "Request body too large"),
        }
    }
}

/// A response before it becomes HTTP: always a JSON body.
#[derive(Debug)]
pub(crate) struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Value,
}

impl Answer {
    pub(crate) fn new(status: u16, body: Value) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn into_response(self) -> hyper::Response<Full<Bytes>> {
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut builder = hyper::Response::builder()
            .status(self.status)
            .header("content-type", "application/json");
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        builder
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| {
                let mut r = hyper::Response::new(Full::new(Bytes::new()));
                *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                r
            })
    }
}

/// The reason phrase of a status (`"Internal Server Error"`).
pub(crate) fn reason(status: u16) -> &'static str {
    hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

/// An HTTP-date (IMF-fixdate) `seconds` from now, rounded up to the whole
/// second: `Wed, 21 Oct 2015 07:28:00 GMT`.
pub(crate) fn http_date_in(seconds: f64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let seconds = if seconds.is_finite() {
        seconds.max(0.0)
    } else {
        0.0
    };
    let now = time::OffsetDateTime::now_utc();
    let at = (now + Duration::from_secs_f64(seconds)).unix_timestamp_nanos();
    let whole = at.div_euclid(1_000_000_000) + i128::from(at.rem_euclid(1_000_000_000) > 0);
    i64::try_from(whole)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 GMT".to_owned())
}

/// Why a body could not be taken as a JSON object.
pub(crate) enum BodyProblem {
    /// `Content-Type` is missing or not `application/json`.
    ContentType,
    /// Not JSON, or JSON but not an object.
    NotJson,
}

/// The body as a JSON object, checking `Content-Type` first.
pub(crate) fn json_object(req: &RecordedRequest) -> Result<Value, BodyProblem> {
    let is_json = req.header("content-type").is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if !is_json {
        return Err(BodyProblem::ContentType);
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(BodyProblem::NotJson),
    }
}

/// Accepts connections until aborted; aborting drops the set, which aborts
/// every connection task with it.
async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, shared.clone()));
                }
                // Out of descriptors and the like: back off a little.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished connections so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(answer(&shared, req).await) }
    });
    // A client hanging up mid-request is not our problem.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn answer(shared: &Shared, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let (body, too_large) = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => (collected.to_bytes().to_vec(), false),
        Err(_) => (Vec::new(), true),
    };
    let mut recorded = RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        status: None,
        received: Instant::now(),
    };

    let scripted = lock(&shared.script).pop_front();
    let answer = match scripted {
        Some(Scripted::Hang) => {
            lock(&shared.requests).push(recorded);
            return std::future::pending().await;
        }
        Some(forced) => shared.api.scripted(&recorded, &forced),
        None if too_large => shared.api.too_large(),
        None => shared.api.handle(&recorded, shared.validator.as_ref()),
    };
    recorded.status = Some(answer.status);
    lock(&shared.requests).push(recorded);

    let delay = shared.delay_nanos.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_nanos(delay)).await;
    }
    answer.into_response()
}
