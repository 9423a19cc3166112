//! Triggers end to end, against the real `narakim serve` binary over
//! loopback HTTP: for every webhook verifier, a good delivery runs once, the
//! same delivery again does not run twice, and a bad, empty, truncated or
//! stale signature, a wrong key, or a paused bot is refused with nothing
//! queued. Requests are signed here with the `hmac` and `ed25519-dalek`
//! crates directly, independently of narakim's own verifiers.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::TestVault;
use common::extensions::extension;
use common::http::{Response, request};
use common::server::{Server, echo};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SW_KEY: &[u8; 24] = b"standard-webhooks-key-01";
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const STRIPE_SECRET: &str = "whsec_stripe0123456789abcdefghijkl";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const HMAC_SECRET: &str = "generic-hmac-secret-0123456789";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn mac(key: &[u8], content: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(content);
    m.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One verifier under test: how to sign a delivery, and how to spoil one.
#[derive(Clone, Copy, Debug)]
enum Scheme {
    StandardWebhooks,
    Github,
    Stripe,
    Slack,
    Hmac,
}

const SCHEMES: [Scheme; 5] = [
    Scheme::StandardWebhooks,
    Scheme::Github,
    Scheme::Stripe,
    Scheme::Slack,
    Scheme::Hmac,
];

/// How to damage a signature.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Spoil {
    None,
    /// One character of the signature changed.
    Flip,
    Empty,
    /// The first half of the right signature.
    Truncate,
    /// Signed with another key.
    WrongKey,
}

impl Scheme {
    fn id(self) -> &'static str {
        match self {
            Scheme::StandardWebhooks => "sw",
            Scheme::Github => "gh",
            Scheme::Stripe => "stripe",
            Scheme::Slack => "slack",
            Scheme::Hmac => "custom",
        }
    }

    fn trigger(self) -> Value {
        let verify = match self {
            Scheme::StandardWebhooks => {
                json!({"scheme": "standard-webhooks", "secret": "SW_SECRET"})
            }
            Scheme::Github => json!({"scheme": "github", "secret": "GITHUB_WEBHOOK_SECRET"}),
            Scheme::Stripe => json!({"scheme": "stripe", "secret": "STRIPE_WEBHOOK_SECRET"}),
            Scheme::Slack => json!({"scheme": "slack", "secret": "SLACK_SIGNING_SECRET"}),
            Scheme::Hmac => json!({
                "scheme": "hmac", "secret": "CUSTOM_SECRET", "header": "X-Signature",
                "prefix": "sha256=", "content": "{timestamp}.{body}",
                "timestamp_header": "X-Timestamp", "delivery_header": "X-Delivery",
            }),
        };
        json!({"id": self.id(), "kind": "webhook", "verify": verify})
    }

    fn timed(self) -> bool {
        !matches!(self, Scheme::Github)
    }

    /// Headers of a delivery of `body` with id `delivery` at `ts`.
    fn sign(self, body: &[u8], delivery: &str, ts: i64, spoil: Spoil) -> Vec<(String, String)> {
        let wrong = spoil == Spoil::WrongKey;
        let key = |right: &[u8]| -> Vec<u8> {
            if wrong {
                b"not-the-key-at-all-0000".to_vec()
            } else {
                right.to_vec()
            }
        };
        let damage = |sig: String| -> String {
            match spoil {
                Spoil::Flip => {
                    let mut chars: Vec<char> = sig.chars().collect();
                    let i = chars.len() / 2;
                    chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
                    chars.into_iter().collect()
                }
                Spoil::Empty => String::new(),
                Spoil::Truncate => sig[..sig.len() / 2].to_owned(),
                Spoil::None | Spoil::WrongKey => sig,
            }
        };
        let h = |pairs: &[(&str, String)]| {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect::<Vec<_>>()
        };
        match self {
            Scheme::StandardWebhooks => {
                let content = [format!("{delivery}.{ts}.").as_bytes(), body].concat();
                let sig = damage(B64.encode(mac(&key(SW_KEY), &content)));
                h(&[
                    ("webhook-id", delivery.to_owned()),
                    ("webhook-timestamp", ts.to_string()),
                    ("webhook-signature", format!("v1,{sig}")),
                ])
            }
            Scheme::Github => {
                let sig = damage(hex(&mac(&key(GITHUB_SECRET.as_bytes()), body)));
                h(&[
                    ("X-Hub-Signature-256", format!("sha256={sig}")),
                    ("X-GitHub-Delivery", delivery.to_owned()),
                    ("X-GitHub-Event", "push".to_owned()),
                ])
            }
            Scheme::Stripe => {
                let content = [format!("{ts}.").as_bytes(), body].concat();
                let sig = damage(hex(&mac(&key(STRIPE_SECRET.as_bytes()), &content)));
                h(&[("Stripe-Signature", format!("t={ts},v1={sig}"))])
            }
            Scheme::Slack => {
                let content = [format!("v0:{ts}:").as_bytes(), body].concat();
                let sig = damage(hex(&mac(&key(SLACK_SECRET.as_bytes()), &content)));
                h(&[
                    ("X-Slack-Request-Timestamp", ts.to_string()),
                    ("X-Slack-Signature", format!("v0={sig}")),
                ])
            }
            Scheme::Hmac => {
                let content = [format!("{ts}.").as_bytes(), body].concat();
                let sig = damage(hex(&mac(&key(HMAC_SECRET.as_bytes()), &content)));
                h(&[
                    ("X-Signature", format!("sha256={sig}")),
                    ("X-Timestamp", ts.to_string()),
                    ("X-Delivery", delivery.to_owned()),
                ])
            }
        }
    }

    /// A body that carries its delivery id where the scheme keeps it.
    fn body(self, n: u32, delivery: &str) -> Vec<u8> {
        match self {
            Scheme::Stripe => json!({"id": delivery, "type": "charge.succeeded", "n": n}),
            Scheme::Slack => json!({"event_id": delivery, "type": "event_callback", "n": n}),
            _ => json!({"n": n}),
        }
        .to_string()
        .into_bytes()
    }
}

struct Setup {
    v: TestVault,
    s: Server,
    token: String,
    hits: std::sync::Arc<std::sync::Mutex<usize>>,
}

/// Team `ops` with bot `greeter`, the sample `extension` installed, and a
/// token of the team that deploys, pauses and reads.
fn bot_vault(extension_name: &str) -> (TestVault, String) {
    let v = TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    v.run(&[
        "extension",
        "install",
        extension(extension_name).to_str().unwrap(),
    ])
    .ok();
    let token = v
        .run(&[
            "token",
            "create",
            "--team",
            "ops",
            "--can",
            "bots:deploy",
            "bots:pause",
            "executions:read",
            "secrets:list",
        ])
        .ok()
        .trim()
        .to_owned();
    (v, token)
}

fn setup() -> Setup {
    let (v, token) = bot_vault("http-request");
    let sw = format!("whsec_{}", B64.encode(SW_KEY));
    for (name, value) in [
        ("SW_SECRET", sw.as_str()),
        ("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET),
        ("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET),
        ("SLACK_SIGNING_SECRET", SLACK_SECRET),
        ("CUSTOM_SECRET", HMAC_SECRET),
    ] {
        v.set(name, "--bot", "greeter", value);
    }
    let (echo, hits) = echo(Duration::ZERO);
    let upstream = format!("echo.test=http://{echo}");
    let s = Server::start(&v, &["--upstream", &upstream]);
    Setup { v, s, token, hits }
}

fn graph() -> Value {
    json!({
        "nodes": [{
            "id": "call", "extension": "http-request",
            "config": {"url": "https://echo.test/{{trigger.body.n}}"}
        }],
        "triggers": SCHEMES.iter().map(|s| s.trigger()).collect::<Vec<_>>(),
    })
}

impl Setup {
    fn api(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        self.s.call(method, path, Some(&self.token), body)
    }

    fn deploy(&self, graph: Value) -> Response {
        self.api(
            "PUT",
            "/api/v1/teams/ops/bots/greeter/deployment",
            Some(graph),
        )
    }

    /// Trigger id → path, from the API's bot view.
    fn paths(&self) -> std::collections::HashMap<String, String> {
        let bot = self.api("GET", "/api/v1/teams/ops/bots/greeter", None);
        assert_eq!(bot.status, 200, "{bot:?}");
        bot.json()["triggers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["trigger"].as_str().unwrap().to_owned(),
                    t["path"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn deliver(&self, path: &str, headers: &[(String, String)], body: &[u8]) -> Response {
        let mut all: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        all.push(("Content-Type", "application/json"));
        request(self.s.addr, "POST", path, &all, body)
    }

    fn executions(&self) -> Vec<Value> {
        let r = self.api("GET", "/api/v1/teams/ops/bots/greeter/executions", None);
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["executions"].as_array().unwrap().clone()
    }

    fn wait_finished(&self, id: &str) -> Value {
        self.s.wait_finished(
            &self.token,
            &format!("/api/v1/teams/ops/bots/greeter/executions/{id}"),
        )
    }
}

#[track_caller]
fn assert_refused(r: &Response, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let detail = r.json()["detail"].as_str().unwrap_or("").to_owned();
    assert!(detail.contains(needle), "expected {needle:?} in {detail:?}");
}

#[test]
fn every_verifier_runs_a_good_delivery_once_and_refuses_every_bad_one() {
    let t = setup();
    let deployed = t.deploy(graph());
    assert_eq!(deployed.status, 200, "{deployed:?}");
    let paths = t.paths();
    let mut runs = 0;
    for (i, scheme) in SCHEMES.into_iter().enumerate() {
        let path = &paths[scheme.id()];
        assert!(path.starts_with("/hooks/trg_"), "{path}");
        let delivery = format!("delivery-{i}");
        let body = scheme.body(i as u32, &delivery);
        let ts = now();

        // Every bad signature is refused before anything is queued.
        for spoil in [Spoil::Flip, Spoil::Empty, Spoil::Truncate, Spoil::WrongKey] {
            let r = t.deliver(path, &scheme.sign(&body, &delivery, ts, spoil), &body);
            assert_eq!(r.status, 401, "{scheme:?} {spoil:?}: {r:?}");
        }
        // Headers missing altogether.
        assert_eq!(t.deliver(path, &[], &body).status, 401, "{scheme:?}");
        // A body changed after signing.
        let mut tampered = body.clone();
        tampered.push(b' ');
        let r = t.deliver(
            path,
            &scheme.sign(&body, &delivery, ts, Spoil::None),
            &tampered,
        );
        assert_eq!(r.status, 401, "{scheme:?} tampered body: {r:?}");
        if scheme.timed() {
            let stale = scheme.sign(&body, &delivery, ts - 301, Spoil::None);
            assert_refused(&t.deliver(path, &stale, &body), 401, "tolerance");
            // Not +301: the server's clock may have moved on a second since `ts`.
            let early = scheme.sign(&body, &delivery, ts + 305, Spoil::None);
            assert_refused(&t.deliver(path, &early, &body), 401, "tolerance");
        }
        assert_eq!(
            t.executions().len(),
            runs,
            "{scheme:?}: a refused delivery was queued"
        );

        // A good one runs once.
        let headers = scheme.sign(&body, &delivery, ts, Spoil::None);
        let first = t.deliver(path, &headers, &body);
        assert_eq!(first.status, 202, "{scheme:?}: {first:?}");
        assert_eq!(first.json()["replayed"], false);
        let id = first.json()["execution_id"].as_str().unwrap().to_owned();
        runs += 1;
        let done = t.wait_finished(&id);
        assert_eq!(done["status"], "succeeded", "{scheme:?}: {done}");
        assert_eq!(done["started_by"], format!("trigger:{}", scheme.id()));
        assert_eq!(done["trigger"]["trigger"], scheme.id(), "{done}");
        assert_eq!(done["trigger"]["body"]["n"], i, "{done}");

        // The same delivery again finds the first run.
        let again = t.deliver(path, &headers, &body);
        assert_eq!(again.status, 202, "{scheme:?}: {again:?}");
        assert_eq!(again.json()["replayed"], true);
        assert_eq!(again.json()["execution_id"], id.as_str());
        assert_eq!(t.executions().len(), runs);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(*t.hits.lock().unwrap(), runs, "a delivery ran twice");

    // A GitHub replay with a new (unsigned) delivery id is still a repeat:
    // the signature's digest is a key of the delivery too.
    let gh = &paths["gh"];
    let body = Scheme::Github.body(1, "delivery-1");
    let replay = Scheme::Github.sign(&body, "another-id", now(), Spoil::None);
    let r = t.deliver(gh, &replay, &body);
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.json()["replayed"], true, "{r:?}");

    let metrics = t.s.call("GET", "/metrics", None, None).text();
    assert!(
        metrics.contains("narakim_trigger_deliveries_total{outcome=\"accepted\"}"),
        "{metrics}"
    );
}

#[test]
fn a_paused_bot_refuses_deliveries_and_urls_take_no_query_or_unknown_id() {
    let t = setup();
    assert_eq!(t.deploy(graph()).status, 200);
    let path = t.paths()["gh"].clone();
    // `bot status` shows where each trigger listens.
    let status = t.v.run(&["bot", "status", "greeter"]).ok().to_owned();
    assert!(
        status.contains(&format!(
            "trigger gh: webhook verified by github with secret GITHUB_WEBHOOK_SECRET, listening at POST {path}"
        )),
        "{status}"
    );
    let body = Scheme::Github.body(7, "p-1");
    let headers = Scheme::Github.sign(&body, "p-1", now(), Spoil::None);

    // A token in the query string is refused, even with a good signature.
    assert_refused(
        &t.deliver(&format!("{path}?token=abc"), &headers, &body),
        400,
        "no query string",
    );
    // An unknown id, and an id of the right shape that was never issued.
    assert_refused(
        &t.deliver("/hooks/nope", &headers, &body),
        404,
        "no deployed webhook",
    );
    assert_refused(
        &t.deliver(&format!("/hooks/trg_{}", "0".repeat(32)), &headers, &body),
        404,
        "no deployed webhook",
    );

    let pause = t.api("POST", "/api/v1/teams/ops/bots/greeter/pause", None);
    assert_eq!(pause.status, 200, "{pause:?}");
    assert_refused(&t.deliver(&path, &headers, &body), 409, "paused");
    assert!(t.executions().is_empty(), "a paused bot queued a delivery");
    // Resumed, the sender's retry goes through.
    t.api("POST", "/api/v1/teams/ops/bots/greeter/resume", None);
    assert_eq!(t.deliver(&path, &headers, &body).status, 202);

    // Redeploying keeps the URL; removing the trigger closes it.
    assert_eq!(t.deploy(graph()).status, 200);
    assert_eq!(t.paths()["gh"], path);
    let mut without = graph();
    without["triggers"] = json!([Scheme::Stripe.trigger()]);
    assert_eq!(t.deploy(without).status, 200);
    let body = Scheme::Github.body(8, "p-2");
    let headers = Scheme::Github.sign(&body, "p-2", now(), Spoil::None);
    assert_eq!(t.deliver(&path, &headers, &body).status, 404);
    drop(t.v);
}

#[test]
fn deploy_refuses_a_trigger_without_a_verifier_a_literal_key_or_a_missing_one() {
    let t = setup();
    let cases = [
        (
            json!({"id": "open", "kind": "webhook"}),
            "must verify its sender",
        ),
        (
            json!({"id": "open", "kind": "webhook", "verify": {"scheme": "none"}}),
            "must verify its sender",
        ),
        (
            json!({"id": "lit", "kind": "webhook", "verify": {"scheme": "github", "secret": GITHUB_SECRET}}),
            "never the key itself",
        ),
        (
            json!({"id": "tpl", "kind": "webhook", "verify": {"scheme": "github", "secret": "{{trigger.body.key}}"}}),
            "not a template",
        ),
        (
            json!({"id": "gone", "kind": "webhook", "verify": {"scheme": "github", "secret": "NOT_STORED"}}),
            "NOT_STORED",
        ),
        (
            // Standard Webhooks keys are whsec_ + base64: this one is not.
            json!({"id": "bad", "kind": "webhook", "verify": {"scheme": "standard-webhooks", "secret": "GITHUB_WEBHOOK_SECRET"}}),
            "cannot be its standard-webhooks key",
        ),
    ];
    for (trigger, needle) in cases {
        let mut g = graph();
        g["triggers"] = json!([trigger]);
        let r = t.deploy(g);
        assert_eq!(r.status, 422, "{trigger}: {r:?}");
        let text = r.text();
        assert!(
            text.contains(needle),
            "{trigger}: expected {needle:?} in {text}"
        );
        assert!(!text.contains(GITHUB_SECRET), "a key was echoed: {text}");
    }
    // Nothing was deployed.
    let d = t.api("GET", "/api/v1/teams/ops/bots/greeter/deployment", None);
    assert_eq!(d.status, 404, "{d:?}");
    // The configurations view lists a trigger's key as a requirement.
    let mut g = graph();
    g["triggers"] = json!([{"id": "gh", "kind": "webhook", "verify": {"scheme": "github", "secret": "GITHUB_WEBHOOK_SECRET"}}]);
    assert_eq!(t.deploy(g).status, 200);
    let req = t.api(
        "GET",
        "/api/v1/teams/ops/bots/greeter/secret-requirements",
        None,
    );
    let rows = req.json()["requirements"].clone();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["node"] == "trigger:gh"
                && r["secret"] == "GITHUB_WEBHOOK_SECRET"
                && r["source"] == "bot"),
        "{rows}"
    );
}

#[test]
fn a_webhook_body_cannot_choose_the_secret_a_node_reads_or_where_it_goes() {
    let t = setup();
    // Templates where a secret is named, or above it, or in a URL's host,
    // are refused at deploy.
    for config in [
        json!({"url": "https://echo.test/x", "auth": {"secret": "{{trigger.body.secret}}"}}),
        json!({"url": "https://echo.test/x", "auth": "{{trigger.body.auth}}"}),
        json!({"url": "https://{{trigger.body.host}}/x", "auth": {"secret": "GITHUB_WEBHOOK_SECRET"}}),
        json!({"url": "{{trigger.body.url}}", "auth": {"secret": "GITHUB_WEBHOOK_SECRET"}}),
    ] {
        let mut g = graph();
        g["nodes"][0]["config"] = config.clone();
        let r = t.deploy(g);
        assert_eq!(r.status, 422, "{config}: {r:?}");
    }
    // Allowed: a template after the host. A body that tries to move the
    // request elsewhere through it still reaches echo.test, and a body that
    // carries template text is data, never rendered again.
    let mut g = graph();
    g["nodes"][0]["config"] = json!({
        "url": "https://echo.test/{{trigger.body.path}}",
        "auth": {"secret": "SLACK_SIGNING_SECRET"},
    });
    g["triggers"] = json!([Scheme::Github.trigger()]);
    assert_eq!(t.deploy(g).status, 200);
    let path = t.paths()["gh"].clone();
    for (i, attack) in [
        "@evil.test/x",
        "..%2F..%2F@evil.test",
        "{{nodes.call.output}}",
        "x#@evil.test",
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"path": attack, "secret": "GITHUB_WEBHOOK_SECRET"}).to_string();
        let delivery = format!("attack-{i}");
        let headers = Scheme::Github.sign(body.as_bytes(), &delivery, now(), Spoil::None);
        let r = t.deliver(&path, &headers, body.as_bytes());
        assert_eq!(r.status, 202, "{r:?}");
        let done = t.wait_finished(r.json()["execution_id"].as_str().unwrap());
        let node = &done["nodes"][0];
        // Whatever happened, only the declared secret was read, and every
        // request went to echo.test.
        assert_eq!(
            node["secrets_read"],
            json!(["SLACK_SIGNING_SECRET"]),
            "{done}"
        );
        let egress = node["egress"].as_array().cloned().unwrap_or_default();
        for request in &egress {
            assert_eq!(request["host"], "echo.test", "a request left: {done}");
        }
    }
}

#[path = "support/openapi.rs"]
mod openapi;

#[test]
fn a_discord_slash_command_is_acked_deferred_run_and_answered_through_the_follow_up() {
    use narakim::standin::discord::test_public_key;
    use narakim::standin::{DiscordCredentials, Kind, Options, StandIn};
    const APPLICATION_ID: &str = "1100000000000000001";

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let discord = {
        let _inside = tokio.enter();
        StandIn::start(
            Kind::Discord(DiscordCredentials {
                bot_token: "unused-bot-token".into(),
                application_id: APPLICATION_ID.into(),
            }),
            Options {
                validator: Some(openapi::discord_validator()),
                ..Options::default()
            },
        )
        .unwrap()
    };
    let (v, token) = bot_vault("discord-followup");
    v.set("DISCORD_PUBLIC_KEY", "--bot", "greeter", &test_public_key());
    // Stored as a secret, as the Discord samples need it: it is then
    // scrubbed from the run's input, and the follow-up must still work.
    v.set("DISCORD_APPLICATION_ID", "--bot", "greeter", APPLICATION_ID);
    let s = Server::start(&v, &["--upstream", &discord.upstream_arg()]);
    let t = Setup {
        v,
        s,
        token,
        hits: Default::default(),
    };
    let graph = json!({
        "nodes": [{
            "id": "answer", "extension": "discord-followup",
            "config": {"content": "pong for {{trigger.interaction.member.user.username}}: {{trigger.interaction.data.options.0.value}}"}
        }],
        "triggers": [{"id": "slash", "kind": "discord-interactions"}],
    });
    let deployed = t.deploy(graph);
    assert_eq!(deployed.status, 200, "{deployed:?}");
    // The interaction token is a requirement that each run provides.
    let req = t.api(
        "GET",
        "/api/v1/teams/ops/bots/greeter/secret-requirements",
        None,
    );
    let rows = req.json()["requirements"].clone();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["secret"] == "DISCORD_INTERACTION_TOKEN" && r["source"] == "trigger"),
        "{rows}"
    );
    let path = t.paths()["slash"].clone();
    assert!(path.starts_with("/interactions/trg_"), "{path}");

    // Discord's PING when the endpoint is saved in the Developer Portal.
    let ping = br#"{"id":"1100000000000000009","application_id":"1100000000000000001","type":1,"token":"ping-token","version":1}"#;
    let headers = narakim::standin::discord::sign_interaction(
        &narakim::standin::discord::TEST_INTERACTION_SEED,
        now(),
        ping,
    );
    let pong = t.deliver(&path, &headers, ping);
    assert_eq!(pong.status, 200, "{pong:?}");
    assert_eq!(pong.json(), json!({"type": 1}));
    // Discord also checks that a bad signature is refused with 401.
    let mut bad = headers.clone();
    bad[0].1 = "0".repeat(128);
    assert_eq!(t.deliver(&path, &bad, ping).status, 401);
    assert!(t.executions().is_empty(), "a PING started a run");

    let interaction = discord
        .slash_command(
            "ping",
            json!([{"name": "text", "type": 3, "value": "hello"}]),
        )
        .unwrap();
    let started = Instant::now();
    let ack = t.deliver(&path, &interaction.headers, &interaction.body);
    let took = started.elapsed();
    assert_eq!(ack.status, 200, "{ack:?}");
    assert_eq!(ack.json(), json!({"type": 5}), "a deferred response");
    assert!(
        took < Duration::from_secs(3),
        "Discord's deadline is 3 s: {took:?}"
    );
    // The same interaction again does not run twice.
    let again = t.deliver(&path, &interaction.headers, &interaction.body);
    assert_eq!(again.json(), json!({"type": 5}));

    let deadline = Instant::now() + Duration::from_secs(60);
    let execution = loop {
        let list = t.executions();
        if let Some(e) = list.first()
            && e["status"] != "queued"
            && e["status"] != "running"
        {
            assert_eq!(list.len(), 1, "{list:?}");
            break t.wait_finished(e["id"].as_str().unwrap());
        }
        assert!(Instant::now() < deadline, "never ran: {list:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(execution["status"], "succeeded", "{execution}");
    assert_eq!(
        execution["nodes"][0]["secrets_read"],
        json!(["DISCORD_APPLICATION_ID", "DISCORD_INTERACTION_TOKEN"])
    );
    // The follow-up reached the stand-in, valid against the spec (the
    // stand-in's validator), with the token in its path.
    let followups: Vec<_> = discord
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(followups.len(), 1, "{followups:?}");
    assert_eq!(
        followups[0].path,
        format!(
            "/api/v10/webhooks/{APPLICATION_ID}/{}/messages/@original",
            interaction.token
        )
    );
    assert_eq!(
        followups[0].json().unwrap()["content"],
        "pong for tester: hello"
    );
    assert_eq!(
        execution["nodes"][0]["output"]["content"],
        "pong for tester: hello"
    );
    // The token is in no record of the execution, nor in the engine's
    // database, nor in the server's log.
    let text = execution.to_string();
    assert!(!text.contains(&interaction.token), "{text}");
    assert!(execution["trigger"]["interaction"].get("token").is_none());
    let engine_db = std::fs::read(t.v.data_dir.join("engine.db")).unwrap();
    let wal = std::fs::read(t.v.data_dir.join("engine.db-wal")).unwrap_or_default();
    for bytes in [&engine_db, &wal] {
        assert!(
            !bytes
                .windows(interaction.token.len())
                .any(|w| w == interaction.token.as_bytes()),
            "the interaction token was written to engine.db"
        );
    }
    assert!(!t.s.log().contains(&interaction.token));
    drop(tokio);
}

#[test]
fn a_schedule_fires_on_time_once_never_twice_across_restarts_and_follows_its_missed_policy() {
    let (v, token) = bot_vault("http-request");
    let (echo, hits) = echo(Duration::ZERO);
    let upstream = format!("echo.test=http://{echo}");
    // The clock the test controls: seconds added to the system's.
    let clock = v.root.path().join("clock-offset");
    std::fs::write(&clock, "0").unwrap();
    let clock_env = clock.to_str().unwrap().to_owned();
    let start = |v: &TestVault| {
        Server::start_with_env(
            v,
            &["--upstream", &upstream],
            &[("NARAKIM_TEST_CLOCK", &clock_env)],
        )
    };
    let schedule = |missed: &str| {
        json!({
            "nodes": [{"id": "call", "extension": "http-request",
                       "config": {"url": "https://echo.test/tick"}}],
            "triggers": [{"id": "every-minute", "kind": "schedule", "cron": "* * * * *",
                          "timezone": "Europe/Berlin", "missed": missed}],
        })
    };
    let s = start(&v);
    let mut t = Setup { v, s, token, hits };
    assert_eq!(t.deploy(schedule("skip")).status, 200);
    let next_fire = |t: &Setup| -> i64 {
        let bot = t.api("GET", "/api/v1/teams/ops/bots/greeter", None);
        let fire = bot.json()["triggers"][0]["next_fire"]
            .as_str()
            .unwrap_or_else(|| panic!("no next fire: {bot:?}"))
            .to_owned();
        fire.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    };
    let first = next_fire(&t);
    let real_now = now() * 1000;
    assert!(
        first > real_now - 1000 && first <= real_now + 61_000,
        "{first}"
    );
    let status = t.v.run(&["bot", "status", "greeter"]).ok().to_owned();
    assert!(
        status.contains("trigger every-minute: schedule, next fire 20"),
        "{status}"
    );
    // Not before its time (unless the system clock itself gets there).
    if first - now() * 1000 > 3000 {
        std::thread::sleep(Duration::from_millis(400));
        assert!(t.executions().is_empty(), "fired before its time");
    }

    // Move the clock just past the fire time: it fires once, on time.
    let offset = |at_ms: i64| ((at_ms - now() * 1000) / 1000 + 1).max(0);
    let set = |seconds: i64| std::fs::write(&clock, seconds.to_string()).unwrap();
    let on_time = offset(first);
    set(on_time);
    let wait_runs = |t: &Setup, n: usize| -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let list = t.executions();
            if list.len() >= n {
                return list;
            }
            assert!(Instant::now() < deadline, "expected {n} runs: {list:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let runs = wait_runs(&t, 1);
    let done = t.wait_finished(runs[0]["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["trigger"]["kind"], "schedule");
    assert_eq!(done["trigger"]["missed"], false, "{done}");
    assert_eq!(done["started_by"], "trigger:every-minute");
    assert!(next_fire(&t) > first, "the next fire moved on");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(t.executions().len(), 1, "fired twice");

    // A restart at the same moment does not fire it again.
    let (status, _) = t.s.stop();
    assert!(status.success());
    t.s = start(&t.v);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(t.executions().len(), 1, "a restart fired it again");

    // Ten minutes of downtime: with "skip" the missed fires do not run,
    // and the schedule goes on from now.
    let (status, _) = t.s.stop();
    assert!(status.success());
    set(on_time + 600);
    t.s = start(&t.v);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(t.executions().len(), 1, "a missed fire ran under \"skip\"");
    assert!(
        next_fire(&t) > first + 600_000,
        "not moved past the downtime"
    );

    // With "run-once", the missed fires run once in all. The redeploy sets
    // the next fire from the system clock, which is ten minutes behind the
    // test's: it is missed at once.
    assert_eq!(t.deploy(schedule("run-once")).status, 200);
    let runs = wait_runs(&t, 2);
    let done = t.wait_finished(runs[0]["id"].as_str().unwrap());
    assert_eq!(done["trigger"]["missed"], true, "{done}");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(t.executions().len(), 2, "run-once ran more than once");

    // A paused bot's fires are skipped, not kept for later.
    t.api("POST", "/api/v1/teams/ops/bots/greeter/pause", None);
    set(on_time + 600 + 120);
    std::thread::sleep(Duration::from_millis(800));
    t.api("POST", "/api/v1/teams/ops/bots/greeter/resume", None);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(t.executions().len(), 2, "a paused bot's fire ran");
    assert_eq!(*t.hits.lock().unwrap(), 2);
}
