//! The Discord and OpenRouter stand-ins, through real HTTP: they check
//! credentials and bodies like the services do and answer with the shapes
//! of the services' OpenAPI documents.

#[path = "support/openapi.rs"]
mod openapi;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use narakim::standin::{
    ChatShape, DiscordCredentials, Kind, OpenRouterCredentials, Options, Scripted, StandIn,
};
use openapi::Spec;
use serde_json::{Value, json};

const BOT_TOKEN: &str = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.standin.token";
const APP_ID: &str = "1100000000000000001";
const API_KEY: &str = "sk-or-v1-standin-key";
const UA: &str = "DiscordBot (https://github.com/narakim/narakim, 0.1.0)";
const CHANNEL: &str = "1200000000000000002";

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One request on a fresh connection.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Reply {
        status,
        headers,
        body,
    }
}

fn discord(validate: bool) -> StandIn {
    StandIn::start(
        Kind::Discord(DiscordCredentials {
            bot_token: BOT_TOKEN.into(),
            application_id: APP_ID.into(),
        }),
        Options {
            validator: validate.then(openapi::discord_validator),
            ..Options::default()
        },
    )
    .unwrap()
}

fn openrouter(validate: bool) -> StandIn {
    StandIn::start(
        Kind::OpenRouter(OpenRouterCredentials {
            api_key: API_KEY.into(),
        }),
        Options {
            validator: validate.then(openapi::openrouter_validator),
            ..Options::default()
        },
    )
    .unwrap()
}

async fn post_discord(s: &StandIn, path: &str, token: &str, ua: &str, body: &Value) -> Reply {
    let auth = format!("Bot {token}");
    send(
        s.addr(),
        "POST",
        path,
        &[
            ("authorization", &auth),
            ("user-agent", ua),
            ("content-type", "application/json"),
        ],
        Some(body.to_string().as_bytes()),
    )
    .await
}

async fn post_message(s: &StandIn, body: &Value) -> Reply {
    let path = format!("/api/v10/channels/{CHANNEL}/messages");
    post_discord(s, &path, BOT_TOKEN, UA, body).await
}

async fn post_chat(s: &StandIn, key: Option<&str>, body: &Value) -> Reply {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth));
    }
    send(
        s.addr(),
        "POST",
        "/api/v1/chat/completions",
        &headers,
        Some(body.to_string().as_bytes()),
    )
    .await
}

#[tokio::test]
async fn handle_names_its_upstream() {
    let d = discord(false);
    let o = openrouter(false);
    assert_eq!(
        d.upstream_arg(),
        format!("discord.com=http://127.0.0.1:{}", d.addr().port())
    );
    assert_eq!(
        o.base_url(),
        format!("http://127.0.0.1:{}", o.addr().port())
    );
    assert!(
        o.upstream_arg()
            .starts_with("openrouter.ai=http://127.0.0.1:")
    );
    assert_eq!(d.upstream().host, "discord.com");
}

#[tokio::test]
async fn discord_message_is_answered_in_the_spec_shape() {
    let s = discord(true);
    let sent = json!({"content": "hello", "embeds": [{"title": "t", "description": "d"}]});
    let r = post_message(&s, &sent).await;
    assert_eq!(r.status, 200, "{}", r.body);
    openapi::check(Spec::Discord, "MessageResponse", &r.body).unwrap();
    assert_eq!(r.body["content"], "hello");
    assert_eq!(r.body["channel_id"], CHANNEL);
    assert_eq!(r.body["author"]["id"], APP_ID);
    assert_eq!(r.body["author"]["bot"], true);
    assert_eq!(r.body["embeds"][0]["type"], "rich");
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-reset-after",
        "x-ratelimit-bucket",
    ] {
        assert!(r.header(h).is_some(), "missing {h}");
    }

    let recorded = s.requests();
    assert_eq!(recorded.len(), 1);
    let req = &recorded[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, format!("/api/v10/channels/{CHANNEL}/messages"));
    assert_eq!(
        req.header("Authorization"),
        Some(&*format!("Bot {BOT_TOKEN}"))
    );
    assert_eq!(req.json(), Some(sent));
    assert_eq!(req.status, Some(200));
    assert!(
        req.headers
            .iter()
            .all(|(n, _)| *n == n.to_ascii_lowercase())
    );

    // Message ids increase.
    let again = post_message(&s, &json!({"content": "again"})).await;
    let id = |r: &Reply| r.body["id"].as_str().unwrap().parse::<u64>().unwrap();
    assert!(id(&again) > id(&r));
}

#[tokio::test]
async fn discord_refuses_wrong_credentials_and_user_agents() {
    let s = discord(false);
    let path = format!("/api/v10/channels/{CHANNEL}/messages");
    let body = json!({"content": "hi"});

    let r = post_discord(&s, &path, "wrong", UA, &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body, json!({"message": "401: Unauthorized", "code": 0}));
    openapi::check(Spec::Discord, "ErrorResponse", &r.body).unwrap();

    // The token alone, without "Bot ", is not accepted either.
    let r = send(
        s.addr(),
        "POST",
        &path,
        &[
            ("authorization", BOT_TOKEN),
            ("user-agent", UA),
            ("content-type", "application/json"),
        ],
        Some(b"{\"content\":\"hi\"}"),
    )
    .await;
    assert_eq!(r.status, 401);

    for ua in ["curl/8.5.0", "DiscordBot", "DiscordBot (https://x.example)"] {
        let r = post_discord(&s, &path, BOT_TOKEN, ua, &body).await;
        assert_eq!(r.status, 400, "{ua}");
        assert!(r.body["message"].as_str().unwrap().contains("User-Agent"));
        assert_eq!(r.body["code"], 0);
    }
    assert!(s.requests().iter().all(|r| r.status != Some(200)));
}

#[tokio::test]
async fn discord_checks_bodies_against_the_spec() {
    let s = discord(true);
    // Content must be a string; `parse` takes only users, roles, everyone.
    for bad in [
        json!({"content": 5}),
        json!({"content": "hi", "allowed_mentions": {"parse": ["nonsense"]}}),
    ] {
        let r = post_message(&s, &bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.body["code"], 50035);
        assert_eq!(r.body["message"], "Invalid Form Body");
        let why = r.body["errors"]["_errors"][0]["message"].as_str().unwrap();
        assert!(why.contains("MessageCreateRequest"), "{why}");
    }
    let ok = json!({"content": "hi", "allowed_mentions": {"parse": ["users"]}});
    assert_eq!(post_message(&s, &ok).await.status, 200);
    let statuses: Vec<_> = s.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(400), Some(400), Some(200)]);

    // Without a validator the unknown mention type passes, but the
    // built-in checks remain.
    let s = discord(false);
    let r = post_message(
        &s,
        &json!({"content": "hi", "allowed_mentions": {"parse": ["nonsense"]}}),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = post_message(&s, &json!({"content": 5})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["errors"]["content"]["_errors"][0]["code"],
        "BASE_TYPE_STRING"
    );
    let r = post_message(&s, &json!({"content": "x".repeat(2001)})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["errors"]["content"]["_errors"][0]["code"],
        "BASE_TYPE_MAX_LENGTH"
    );
    assert_eq!(
        post_message(&s, &json!({"content": "x".repeat(2000)}))
            .await
            .status,
        200
    );
    let r = post_message(&s, &json!({"content": ""})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["code"], 50006);
    assert_eq!(
        post_message(&s, &json!({"embeds": [{"title": "only an embed"}]}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn discord_refuses_malformed_requests() {
    let s = discord(false);
    let auth = format!("Bot {BOT_TOKEN}");
    let path = format!("/api/v10/channels/{CHANNEL}/messages");

    let r = send(
        s.addr(),
        "POST",
        &path,
        &[
            ("authorization", &auth),
            ("user-agent", UA),
            ("content-type", "application/json"),
        ],
        Some(b"{not json"),
    )
    .await;
    assert_eq!((r.status, r.body["code"].as_u64()), (400, Some(50109)));

    let r = send(
        s.addr(),
        "POST",
        &path,
        &[("authorization", &auth), ("user-agent", UA)],
        Some(b"{\"content\":\"hi\"}"),
    )
    .await;
    assert_eq!(r.status, 415);

    let r = post_discord(
        &s,
        "/api/v10/channels/not-a-snowflake/messages",
        BOT_TOKEN,
        UA,
        &json!({"content": "hi"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["code"], 50035);

    let r = post_discord(&s, "/api/v10/nowhere", BOT_TOKEN, UA, &json!({})).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body, json!({"message": "404: Not Found", "code": 0}));
    let r = post_discord(&s, "/api/v9/channels/1/messages", BOT_TOKEN, UA, &json!({})).await;
    assert_eq!(r.status, 404);
    let r = send(s.addr(), "DELETE", &path, &[("authorization", &auth)], None).await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn discord_rate_limit_then_success() {
    let s = discord(true);
    s.script(vec![Scripted::RateLimited { retry_after: 1.5 }]);
    assert_eq!(s.scripted_left(), 1);

    let r = post_message(&s, &json!({"content": "hi"})).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-ratelimit-reset-after"), Some("1.500"));
    assert!(r.header("x-ratelimit-bucket").is_some());
    assert_eq!(r.body["retry_after"], 1.5);
    assert_eq!(r.body["global"], false);
    assert_eq!(r.body["message"], "You are being rate limited.");
    openapi::check(Spec::Discord, "RatelimitedResponse", &r.body).unwrap();

    let r = post_message(&s, &json!({"content": "hi"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.scripted_left(), 0);
    let statuses: Vec<_> = s.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(429), Some(200)]);
}

#[tokio::test]
async fn discord_scripted_statuses_come_in_order() {
    let s = discord(false);
    s.fail_next(503, 2);
    s.script(vec![Scripted::Status(403)]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(post_message(&s, &json!({"content": "hi"})).await);
    }
    let statuses: Vec<u16> = seen.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 403, 200]);
    assert_eq!(seen[0].body["message"], "503: Service Unavailable");
    assert_eq!(seen[2].body["code"], 50001);
}

#[tokio::test]
async fn discord_commands_overwrite_by_name() {
    let s = discord(true);
    let path = format!("/api/v10/applications/{APP_ID}/commands");
    let command = json!({"name": "ask", "description": "Ask the model", "type": 1});

    let first = post_discord(&s, &path, BOT_TOKEN, UA, &command).await;
    assert_eq!(first.status, 201, "{}", first.body);
    openapi::check(Spec::Discord, "ApplicationCommandResponse", &first.body).unwrap();
    assert_eq!(first.body["name"], "ask");
    assert_eq!(first.body["application_id"], APP_ID);

    let changed = json!({"name": "ask", "description": "Ask the model something"});
    let second = post_discord(&s, &path, BOT_TOKEN, UA, &changed).await;
    assert_eq!(second.status, 200);
    openapi::check(Spec::Discord, "ApplicationCommandResponse", &second.body).unwrap();
    assert_eq!(second.body["id"], first.body["id"]);
    assert_ne!(second.body["version"], first.body["version"]);
    assert_eq!(second.body["description"], "Ask the model something");

    let other = json!({"name": "help", "description": "Help"});
    assert_eq!(
        post_discord(&s, &path, BOT_TOKEN, UA, &other).await.status,
        201
    );

    let auth = format!("Bot {BOT_TOKEN}");
    let list = send(
        s.addr(),
        "GET",
        &path,
        &[("authorization", &auth), ("user-agent", UA)],
        None,
    )
    .await;
    assert_eq!(list.status, 200);
    let names: Vec<_> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, [json!("ask"), json!("help")]);

    // Another application's commands are out of reach.
    let r = post_discord(
        &s,
        "/api/v10/applications/1300000000000000003/commands",
        BOT_TOKEN,
        UA,
        &command,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body, json!({"message": "Missing Access", "code": 50001}));

    // Slash commands need a lowercase name and a description.
    for bad in [
        json!({"name": "Ask", "description": "d"}),
        json!({"name": "ask"}),
        json!({"description": "no name"}),
    ] {
        let r = post_discord(&s, &path, BOT_TOKEN, UA, &bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.body["code"], 50035);
    }
}

#[tokio::test]
async fn openrouter_completion_omits_the_fingerprint_on_purpose() {
    let s = openrouter(true);
    let request = json!({
        "model": "openai/gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is Narakim?"},
        ],
    });
    let r = post_chat(&s, Some(API_KEY), &request).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = &r.body;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "openai/gpt-4o-mini");
    assert!(body["id"].as_str().unwrap().starts_with("gen-"));
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        "Hello from the OpenRouter stand-in. You said: What is Narakim?"
    );
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );

    // The spec requires `system_fingerprint`; the stand-in omits it, as many
    // real responses do, so clients must not depend on it. That is the only
    // difference from the spec's shape.
    assert!(body.get("system_fingerprint").is_none());
    let why = openapi::check(Spec::OpenRouter, "ChatResult", body).unwrap_err();
    assert!(why.contains("system_fingerprint"), "{why}");
    let mut completed = body.clone();
    completed["system_fingerprint"] = Value::Null;
    openapi::check(Spec::OpenRouter, "ChatResult", &completed).unwrap();

    // The reply is something Discord takes as a message.
    let message = json!({"content": choice["message"]["content"]});
    openapi::check(Spec::Discord, "MessageCreateRequest", &message).unwrap();
}

#[tokio::test]
async fn openrouter_checks_requests_against_the_spec() {
    let minimal = json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]});
    openapi::check(Spec::OpenRouter, "ChatRequest", &minimal).unwrap();

    let s = openrouter(true);
    assert_eq!(post_chat(&s, Some(API_KEY), &minimal).await.status, 200);
    for bad in [
        json!({"model": "x", "messages": []}),
        json!({"model": "x", "messages": [{"role": "user"}]}),
        json!({"model": "x", "messages": [{"role": "robot", "content": "hi"}]}),
        json!({"model": 3, "messages": [{"role": "user", "content": "hi"}]}),
    ] {
        let r = post_chat(&s, Some(API_KEY), &bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.body["error"]["code"], 400);
        openapi::check(Spec::OpenRouter, "BadRequestResponse", &r.body).unwrap();
    }

    // Without the validator only the built-in checks apply.
    let s = openrouter(false);
    let no_content = json!({"model": "x", "messages": [{"role": "user"}]});
    assert_eq!(post_chat(&s, Some(API_KEY), &no_content).await.status, 200);
    let no_model = json!({"messages": [{"role": "user", "content": "hi"}]});
    let r = post_chat(&s, Some(API_KEY), &no_model).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model")
    );
}

#[tokio::test]
async fn openrouter_refuses_wrong_keys() {
    let s = openrouter(false);
    let body = json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]});

    let r = post_chat(&s, Some("sk-or-v1-wrong"), &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        json!({"error": {"code": 401, "message": "Invalid API key"}})
    );
    openapi::check(Spec::OpenRouter, "UnauthorizedResponse", &r.body).unwrap();

    let r = post_chat(&s, None, &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["message"], "No auth credentials found");

    let r = send(
        s.addr(),
        "GET",
        "/api/v1/nowhere",
        &[("authorization", &format!("Bearer {API_KEY}"))],
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], 404);
}

#[tokio::test]
async fn openrouter_scripted_failures() {
    let s = openrouter(false);
    let body = json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]});

    s.fail_next(500, 1);
    let r = post_chat(&s, Some(API_KEY), &body).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body["error"]["code"], 500);
    openapi::check(Spec::OpenRouter, "InternalServerResponse", &r.body).unwrap();

    s.script(vec![Scripted::RateLimited { retry_after: 0.2 }]);
    let r = post_chat(&s, Some(API_KEY), &body).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        r.body,
        json!({"error": {"code": 429, "message": "Rate limit exceeded"}})
    );
    openapi::check(Spec::OpenRouter, "TooManyRequestsResponse", &r.body).unwrap();

    assert_eq!(post_chat(&s, Some(API_KEY), &body).await.status, 200);
}

#[tokio::test]
async fn a_hung_request_is_recorded_and_never_answered() {
    let s = openrouter(false);
    s.script(vec![Scripted::Hang]);
    let body = json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]});
    let hung = tokio::time::timeout(
        Duration::from_millis(300),
        post_chat(&s, Some(API_KEY), &body),
    )
    .await;
    assert!(hung.is_err(), "a hung request was answered");
    let recorded = s.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status, None);

    // The next one is answered.
    assert_eq!(post_chat(&s, Some(API_KEY), &body).await.status, 200);
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delayed_answers_under_concurrency() {
    let s = discord(false);
    s.set_delay(Duration::from_millis(100));
    let addr = s.addr();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        tasks.spawn(async move {
            let auth = format!("Bot {BOT_TOKEN}");
            let body = json!({"content": format!("message {i}")}).to_string();
            send(
                addr,
                "POST",
                &format!("/api/v10/channels/{CHANNEL}/messages"),
                &[
                    ("authorization", &auth),
                    ("user-agent", UA),
                    ("content-type", "application/json"),
                ],
                Some(body.as_bytes()),
            )
            .await
            .status
        });
    }
    let mut answered = 0;
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
        answered += 1;
    }
    assert_eq!(answered, 200);
    assert_eq!(s.requests().len(), 200);
}

/// `ChatResult` less the `system_fingerprint` the stand-in leaves out on
/// purpose (see `openrouter_completion_omits_the_fingerprint_on_purpose`).
fn check_chat_result(body: &Value) -> Result<(), String> {
    let mut completed = body.clone();
    completed["system_fingerprint"] = Value::Null;
    openapi::check(Spec::OpenRouter, "ChatResult", &completed)
}

/// The HTTP-dates (IMF-fixdate) of the whole seconds `from..=to` from the
/// Unix epoch.
fn http_dates(from: i64, to: i64) -> Vec<String> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    (from..=to)
        .map(|s| {
            time::OffsetDateTime::from_unix_timestamp(s)
                .unwrap()
                .format(format)
                .unwrap()
        })
        .collect()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn openrouter_usage_is_the_full_chat_usage() {
    let s = openrouter(true);
    let request = json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]});
    let r = post_chat(&s, Some(API_KEY), &request).await;
    assert_eq!(r.status, 200);
    check_chat_result(&r.body).unwrap();
    let usage = &r.body["usage"];
    openapi::check(Spec::OpenRouter, "ChatUsage", usage).unwrap();
    let (prompt, completion) = (
        usage["cost_details"]["upstream_inference_prompt_cost"]
            .as_f64()
            .unwrap(),
        usage["cost_details"]["upstream_inference_completions_cost"]
            .as_f64()
            .unwrap(),
    );
    assert!((usage["cost"].as_f64().unwrap() - (prompt + completion)).abs() < 1e-12);
    assert_eq!(usage["is_byok"], false);
    assert!(usage["prompt_tokens_details"]["cached_tokens"].is_u64());
    assert!(usage["completion_tokens_details"]["reasoning_tokens"].is_u64());
    assert_eq!(r.body["choices"][0]["native_finish_reason"], "stop");
}

#[tokio::test]
async fn openrouter_honours_max_completion_tokens() {
    let s = openrouter(true);
    for limit in ["max_completion_tokens", "max_tokens"] {
        let request = json!({
            "model": "x",
            "messages": [{"role": "user", "content": "a long question about many things"}],
            limit: 3,
        });
        openapi::check(Spec::OpenRouter, "ChatRequest", &request).unwrap();
        let r = post_chat(&s, Some(API_KEY), &request).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let choice = &r.body["choices"][0];
        assert_eq!(choice["finish_reason"], "length", "{limit}");
        assert_eq!(
            choice["message"]["content"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            12
        );
        assert_eq!(r.body["usage"]["completion_tokens"], 3);
    }
}

#[tokio::test]
async fn openrouter_scripted_completions_without_a_usable_reply() {
    let s = openrouter(true);
    let body =
        json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});

    s.script(vec![Scripted::Chat(ChatShape::Failed {
        code: 502,
        message: "Provider disconnected".into(),
        partial: "Hel".into(),
    })]);
    let r = post_chat(&s, Some(API_KEY), &body).await;
    assert_eq!(r.status, 200);
    check_chat_result(&r.body).unwrap();
    let choice = &r.body["choices"][0];
    assert_eq!(choice["finish_reason"], "error");
    assert_eq!(choice["native_finish_reason"], "error");
    assert_eq!(
        choice["error"],
        json!({"code": 502, "message": "Provider disconnected"})
    );
    assert_eq!(choice["message"]["content"], "Hel");

    s.script(vec![Scripted::Chat(ChatShape::ReasoningOnly)]);
    let r = post_chat(&s, Some(API_KEY), &body).await;
    check_chat_result(&r.body).unwrap();
    let choice = &r.body["choices"][0];
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(choice["message"]["content"], "");
    assert!(choice["message"]["reasoning"].as_str().unwrap().len() > 10);

    s.script(vec![Scripted::Chat(ChatShape::ToolCalls)]);
    let r = post_chat(&s, Some(API_KEY), &body).await;
    check_chat_result(&r.body).unwrap();
    let choice = &r.body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );

    // The legacy choice is OpenRouter's documented `NonChatChoice`, which
    // the OpenAPI document lacks: it fails `ChatResult` at `message` only.
    s.script(vec![Scripted::Chat(ChatShape::LegacyText)]);
    let r = post_chat(&s, Some(API_KEY), &body).await;
    let choice = &r.body["choices"][0];
    assert_eq!(
        choice["text"],
        "Hello from the OpenRouter stand-in. You said: hi"
    );
    assert!(choice.get("message").is_none());
    let why = check_chat_result(&r.body).unwrap_err();
    assert!(why.contains("message"), "{why}");
    let mut with_message = r.body.clone();
    with_message["choices"][0]["message"] = json!({"role": "assistant", "content": "x"});
    check_chat_result(&with_message).unwrap();
    assert_eq!(s.scripted_left(), 0);
}

#[tokio::test]
async fn openrouter_scripted_403s_are_forbidden_responses() {
    let s = openrouter(false);
    let long = "x".repeat(150);
    let body =
        json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": long}]});

    s.script(vec![Scripted::Moderated {
        reasons: vec!["harassment".into()],
    }]);
    let r = post_chat(&s, Some(API_KEY), &body).await;
    assert_eq!(r.status, 403);
    openapi::check(Spec::OpenRouter, "ForbiddenResponse", &r.body).unwrap();
    let error = &r.body["error"];
    assert_eq!(error["code"], 403);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Your input was flagged for \"harassment\"")
    );
    let metadata = &error["metadata"];
    assert_eq!(metadata["reasons"], json!(["harassment"]));
    assert_eq!(metadata["model_slug"], "openai/gpt-4o-mini");
    assert_eq!(metadata["provider_name"], "OpenAI");
    // At most 100 characters, cut in the middle.
    let flagged = metadata["flagged_input"].as_str().unwrap();
    assert_eq!(flagged.chars().count(), 100);
    assert!(flagged.contains("..."));

    s.fail_next(403, 1);
    let r = post_chat(&s, Some(API_KEY), &body).await;
    assert_eq!(r.status, 403);
    openapi::check(Spec::OpenRouter, "ForbiddenResponse", &r.body).unwrap();

    s.script(vec![Scripted::Error {
        status: 403,
        code: 403,
        message: "Request blocked: prompt injection patterns detected".into(),
    }]);
    let r = post_chat(&s, Some(API_KEY), &body).await;
    openapi::check(Spec::OpenRouter, "ForbiddenResponse", &r.body).unwrap();
    assert_eq!(
        r.body["error"]["message"],
        "Request blocked: prompt injection patterns detected"
    );
}

#[tokio::test]
async fn scripted_http_date_retry_after() {
    let s = openrouter(false);
    let body = json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]});
    let before = unix_now();
    s.script(vec![Scripted::RateLimitedUntil { retry_after: 5.0 }]);
    let r = post_chat(&s, Some(API_KEY), &body).await;
    let after = unix_now();
    assert_eq!(r.status, 429);
    openapi::check(Spec::OpenRouter, "TooManyRequestsResponse", &r.body).unwrap();
    let date = r.header("retry-after").unwrap();
    let dates = http_dates((before + 5.0).floor() as i64, (after + 5.0).ceil() as i64);
    assert!(dates.iter().any(|d| d == date), "{date} not in {dates:?}");

    // Discord sends the date too, and its body's retry_after as always.
    let d = discord(false);
    d.script(vec![Scripted::RateLimitedUntil { retry_after: 2.0 }]);
    let before = unix_now();
    let r = post_message(&d, &json!({"content": "hi"})).await;
    let after = unix_now();
    assert_eq!(r.status, 429);
    openapi::check(Spec::Discord, "RatelimitedResponse", &r.body).unwrap();
    assert_eq!(r.body["retry_after"], 2.0);
    let dates = http_dates((before + 2.0).floor() as i64, (after + 2.0).ceil() as i64);
    let date = r.header("retry-after").unwrap();
    assert!(dates.iter().any(|d| d == date), "{date} not in {dates:?}");
}

#[tokio::test]
async fn discord_scripted_error_codes() {
    let s = discord(false);
    s.script(vec![Scripted::Error {
        status: 403,
        code: 50013,
        message: "Missing Permissions".into(),
    }]);
    let r = post_message(&s, &json!({"content": "hi"})).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.body,
        json!({"message": "Missing Permissions", "code": 50013})
    );
    openapi::check(Spec::Discord, "ErrorResponse", &r.body).unwrap();
    assert_eq!(r.header("x-ratelimit-remaining"), Some("4"));
    // OpenRouter's answers are not Discord's.
    s.script(vec![Scripted::Chat(ChatShape::LegacyText)]);
    assert_eq!(
        post_message(&s, &json!({"content": "hi"})).await.status,
        500
    );
    assert_eq!(
        post_message(&s, &json!({"content": "hi"})).await.status,
        200
    );
}
