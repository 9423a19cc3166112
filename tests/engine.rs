//! The engine end to end, at library level: a real vault and `engine.db` in
//! a temp dir, the sample extensions (extensions/, built from source)
//! installed through the registry, and loopback stand-ins of Discord and
//! OpenRouter that check every request against the official OpenAPI specs.
//! Nothing is mocked: each node is a real wasm invocation whose HTTP
//! requests cross the runtime's egress policy to a real local server.

mod common;
#[path = "support/openapi.rs"]
mod openapi;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::extensions::extension;
use common::{contains, encodings};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use narakim::engine::executor::{Engine, EngineError, ExecutionReport};
use narakim::engine::graph::{Format, Graph};
use narakim::engine::registry::Registry;
use narakim::engine::store::{ExecutionStatus, NodeStatus};
use narakim::runtime::{Limits, Runtime};
use narakim::standin::{
    DiscordCredentials, Kind, OpenRouterCredentials, Options, Scripted, StandIn,
};
use narakim::vault::{KeySource, Scope, SecretName, SecretValue, Vault, VaultConfig};
use serde_json::{Value, json};

const DISCORD_TOKEN: &str =
    "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GhXk2a.Zt8cYw3nQp1Lr6vBm0sJ4dKf9uEa7xHiO2gTqW";
const APPLICATION_ID: &str = "1100000000000000001";
const OPENROUTER_KEY: &str =
    "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";
const CHANNEL: &str = "123456789012345678";
const BOT: &str = "greeter";
const TEAM: &str = "ops";

/// Every value the fixture stores; none may ever reach `engine.db`.
const SECRET_VALUES: [&str; 3] = [DISCORD_TOKEN, APPLICATION_ID, OPENROUTER_KEY];

/// The graph of the brief: an LLM writes a greeting, Discord posts it.
fn greeting_graph() -> Graph {
    graph(json!({
        "name": "greeting",
        "nodes": [
            {
                "id": "write",
                "extension": "openrouter-chat",
                "config": {
                    "model": "openai/gpt-4o-mini",
                    "prompt": "Write a greeting for {{trigger.name}}"
                }
            },
            {
                "id": "post",
                "extension": "discord-send-message",
                "depends_on": ["write"],
                "config": {
                    "channel_id": CHANNEL,
                    "content": "{{nodes.write.output.reply}}"
                }
            }
        ]
    }))
}

fn graph(value: Value) -> Graph {
    Graph::parse(&value.to_string(), Some(Format::Json)).expect("a well-formed graph document")
}

/// A local HTTP server standing in for any service `http-request` may
/// call: it answers 200 with whether an Authorization arrived (never the
/// value: an output holding one fails its node) after `delay`, and records
/// `(path, authorization)` of every request.
struct Echo {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Echo {
    fn start(delay: Duration) -> Echo {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let recorded = seen.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        let recorded = recorded.clone();
                        async move {
                            let auth = req
                                .headers()
                                .get("authorization")
                                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                                .unwrap_or_default();
                            let path = req.uri().path().to_owned();
                            recorded.lock().unwrap().push((path.clone(), auth.clone()));
                            tokio::time::sleep(delay).await;
                            let body =
                                json!({"path": path, "authorized": !auth.is_empty()}).to_string();
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Echo { addr, seen, server }
    }

    fn upstream(&self) -> narakim::runtime::Upstream {
        format!("echo.test=http://{}", self.addr).parse().unwrap()
    }

    fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Fixture {
    data_dir: PathBuf,
    engine: Arc<Engine>,
    discord: StandIn,
    openrouter: StandIn,
    echo: Echo,
    tokio: tokio::runtime::Runtime,
    // Dropped last: the vault, the engine store and the cache live here.
    _root: tempfile::TempDir,
}

fn fixture() -> Fixture {
    fixture_with(Limits::default())
}

/// A vault with team `ops` and bot `greeter` holding the three secrets, the
/// stand-ins and echo server on a multi-thread runtime, and an engine with
/// the sample extensions installed.
fn fixture_with(limits: Limits) -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let config = VaultConfig::new(
        data_dir.clone(),
        KeySource::File(root.path().join("config/master.key")),
    );
    Vault::init(&config).unwrap();
    let mut vault = Vault::open(config).unwrap();
    vault.create_team(TEAM).unwrap();
    vault.create_bot(BOT, TEAM).unwrap();
    let bot = Scope::Bot(BOT.into());
    for (name, value) in [
        ("DISCORD_BOT_TOKEN", DISCORD_TOKEN),
        ("DISCORD_APPLICATION_ID", APPLICATION_ID),
        ("OPENROUTER_API_KEY", OPENROUTER_KEY),
    ] {
        set(&mut vault, &bot, name, value);
    }

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (discord, openrouter, echo) = {
        let _inside = tokio.enter();
        let discord = StandIn::start(
            Kind::Discord(DiscordCredentials {
                bot_token: DISCORD_TOKEN.into(),
                application_id: APPLICATION_ID.into(),
            }),
            Options {
                validator: Some(openapi::discord_validator()),
                ..Options::default()
            },
        )
        .unwrap();
        let openrouter = StandIn::start(
            Kind::OpenRouter(OpenRouterCredentials {
                api_key: OPENROUTER_KEY.into(),
            }),
            Options {
                validator: Some(openapi::openrouter_validator()),
                ..Options::default()
            },
        )
        .unwrap();
        (discord, openrouter, Echo::start(Duration::from_millis(15)))
    };
    let runtime = Arc::new(
        Runtime::new(limits, Some(root.path().join("cache")))
            .unwrap()
            .with_upstreams([discord.upstream(), openrouter.upstream(), echo.upstream()]),
    );
    let store = tokio.block_on(async {
        let mut registry = Registry::open(&data_dir, &runtime).unwrap();
        for name in ["openrouter-chat", "discord-send-message", "http-request"] {
            registry.install(&extension(name)).await.unwrap();
        }
        registry.into_store()
    });
    let engine = Arc::new(Engine::new(runtime, vault, store));
    Fixture {
        _root: root,
        data_dir,
        engine,
        discord,
        openrouter,
        echo,
        tokio,
    }
}

#[track_caller]
fn set(vault: &mut Vault, scope: &Scope, name: &str, value: &str) {
    vault
        .set_secret(
            scope,
            &SecretName::new(name).unwrap(),
            &SecretValue::new(value.to_owned()).unwrap(),
        )
        .unwrap();
}

impl Fixture {
    fn run(&self, bot: &str, trigger: Value) -> Result<ExecutionReport, EngineError> {
        self.tokio.block_on(self.engine.run(bot, trigger))
    }

    /// A new bot of team `ops` with the given secrets.
    fn bot(&self, name: &str, secrets: &[(&str, &str)]) {
        let mut vault = self.engine.vault();
        vault.create_bot(name, TEAM).unwrap();
        for (secret, value) in secrets {
            set(&mut vault, &Scope::Bot(name.into()), secret, value);
        }
    }

    /// `engine.db` and its WAL (and shared memory), as they are on disk.
    fn engine_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        ["engine.db", "engine.db-wal", "engine.db-shm"]
            .into_iter()
            .map(|f| {
                let path = self.data_dir.join(f);
                let bytes = std::fs::read(&path).unwrap_or_default();
                (path, bytes)
            })
            .collect()
    }

    /// No value in `values`, in any encoding, in `engine.db` or its WAL.
    #[track_caller]
    fn assert_engine_db_clean(&self, values: &[&str]) {
        let files = self.engine_files();
        assert!(
            files[0].1.len() + files[1].1.len() > 0,
            "engine.db was not written"
        );
        for (path, bytes) in &files {
            for value in values {
                for form in encodings(value) {
                    assert!(
                        !contains(bytes, &form),
                        "{} holds a secret value (as {:?}…)",
                        path.display(),
                        String::from_utf8_lossy(&form[..6])
                    );
                }
            }
        }
    }
}

fn node<'r>(report: &'r ExecutionReport, id: &str) -> &'r narakim::engine::executor::NodeReport {
    report
        .nodes
        .iter()
        .find(|n| n.node == id)
        .unwrap_or_else(|| panic!("no node {id:?} in {report:#?}"))
}

#[track_caller]
fn assert_no_value_in(text: &str, values: &[&str]) {
    for value in values {
        for form in encodings(value) {
            assert!(
                !contains(text.as_bytes(), &form),
                "a secret value (as {:?}…) is in: {text}",
                String::from_utf8_lossy(&form[..6])
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 1. deploy and run

#[test]
fn deploy_and_run_flows_outputs_through_templates_and_stores_a_scrubbed_execution() {
    let fx = fixture();
    let deployment = fx.engine.deploy(BOT, &greeting_graph()).unwrap();
    // What is deployed is the graph pinned to what was checked.
    let pinned = Graph::parse(&deployment.graph, Some(Format::Json)).unwrap();
    assert_eq!(deployment.graph_version, pinned.version());
    assert!(
        pinned
            .nodes
            .iter()
            .all(|n| n.extension.version.is_some() && deployment.pins.contains_key(&n.id)),
        "{deployment:#?}"
    );

    let report = fx.run(BOT, json!({"name": "Ada"})).unwrap();
    assert_eq!(report.status, ExecutionStatus::Succeeded, "{report:#?}");
    assert_eq!(report.summary, "2 succeeded, 0 failed, 0 skipped");
    assert_eq!(
        report
            .nodes
            .iter()
            .map(|n| n.node.as_str())
            .collect::<Vec<_>>(),
        ["write", "post"]
    );

    // The prompt was rendered from the trigger...
    let asked = fx.openrouter.take_requests();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    let body = asked[0].json().unwrap();
    assert_eq!(
        body["messages"].as_array().unwrap().last().unwrap()["content"],
        "Write a greeting for Ada"
    );
    // ... and the reply became Discord's message content, verbatim.
    let reply = node(&report, "write").output.as_ref().unwrap()["reply"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        reply,
        format!(
            "{}Write a greeting for Ada",
            narakim::standin::openrouter::REPLY_PREFIX
        )
    );
    let posted = fx.discord.take_requests();
    assert_eq!(posted.len(), 1, "{posted:#?}");
    assert_eq!(
        posted[0].path,
        format!("/api/v10/channels/{CHANNEL}/messages")
    );
    assert_eq!(posted[0].status, Some(200), "{posted:#?}");
    assert_eq!(posted[0].json().unwrap()["content"], reply.as_str());
    let post_output = node(&report, "post").output.clone().unwrap();
    assert_eq!(post_output["content"], reply.as_str());
    assert_eq!(post_output["channel_id"], CHANNEL);

    // The stored execution: both node runs, the names they read, outputs.
    let (execution, runs) = fx.engine.store().execution(&report.id).unwrap().unwrap();
    assert_eq!(execution.status, ExecutionStatus::Succeeded);
    assert_eq!(execution.bot, BOT);
    assert_eq!(execution.graph_version, deployment.graph_version);
    assert!(execution.finished_at.is_some());
    assert_eq!(execution.summary.as_deref(), Some(report.summary.as_str()));
    assert_eq!(
        serde_json::from_str::<Value>(&execution.trigger).unwrap(),
        json!({"name": "Ada"})
    );
    let runs: BTreeMap<&str, _> = runs.iter().map(|r| (r.node.as_str(), r)).collect();
    assert_eq!(runs.len(), 2);
    let (write, post) = (runs["write"], runs["post"]);
    assert_eq!(write.status, NodeStatus::Succeeded);
    assert_eq!(post.status, NodeStatus::Succeeded);
    assert!(
        write.extension.starts_with("openrouter-chat@"),
        "{write:#?}"
    );
    assert!(
        post.extension.starts_with("discord-send-message@"),
        "{post:#?}"
    );
    assert_eq!(write.secrets_read, ["OPENROUTER_API_KEY"]);
    assert!(
        post.secrets_read.contains(&"DISCORD_BOT_TOKEN".to_owned()),
        "{post:#?}"
    );
    assert!(
        post.secrets_read.iter().all(|n| n.starts_with("DISCORD_")),
        "{post:#?}"
    );
    // The samples hold credentials: each request names the one the host put
    // in, shows it as ‹NAME›, and each use is audited (secret, host, bot,
    // node).
    assert_eq!(post.egress[0].credentials, ["DISCORD_BOT_TOKEN"]);
    assert!(
        post.egress[0]
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v == "Bot ‹DISCORD_BOT_TOKEN›"),
        "{post:#?}"
    );
    assert_eq!(write.egress[0].credentials, ["OPENROUTER_API_KEY"]);
    let uses: Vec<(String, String, String)> = fx
        .engine
        .vault()
        .audit(None)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "credential.use")
        .map(|e| {
            (
                e.owner.unwrap_or_default(),
                e.name.unwrap_or_default(),
                e.detail,
            )
        })
        .collect();
    for (secret, detail) in [
        ("DISCORD_BOT_TOKEN", "node post: 1 request to discord.com"),
        (
            "OPENROUTER_API_KEY",
            "node write: 1 request to openrouter.ai",
        ),
    ] {
        assert!(
            uses.contains(&(BOT.into(), secret.into(), detail.into())),
            "{uses:#?}"
        );
    }
    let stored_write: Value = serde_json::from_str(write.output.as_deref().unwrap()).unwrap();
    assert_eq!(stored_write["reply"], reply.as_str());
    let stored_post: Value = serde_json::from_str(post.output.as_deref().unwrap()).unwrap();
    assert_eq!(stored_post["content"], reply.as_str());
    assert!(post.started_at >= write.started_at);

    // A secret value that reaches the graph another way (here: through the
    // trigger, so the runtime never handed it to the node that echoes it)
    // is scrubbed by the engine's own pass before anything is stored.
    let report = fx.run(BOT, json!({"name": APPLICATION_ID})).unwrap();
    assert_eq!(report.status, ExecutionStatus::Succeeded, "{report:#?}");
    let (execution, runs) = fx.engine.store().execution(&report.id).unwrap().unwrap();
    assert_no_value_in(&execution.trigger, &SECRET_VALUES);
    assert!(
        execution
            .trigger
            .contains("[REDACTED:DISCORD_APPLICATION_ID]"),
        "{execution:#?}"
    );
    for run in &runs {
        let text = format!("{run:?}");
        assert_no_value_in(&text, &SECRET_VALUES);
    }
    let write = runs.iter().find(|r| r.node == "write").unwrap();
    assert!(
        write
            .output
            .as_deref()
            .unwrap()
            .contains("[REDACTED:DISCORD_APPLICATION_ID]"),
        "{write:#?}"
    );
    assert_no_value_in(&serde_json::to_string(&report).unwrap(), &SECRET_VALUES);

    // Nothing anywhere in the engine's files, WAL included.
    fx.assert_engine_db_clean(&SECRET_VALUES);
}

// ---------------------------------------------------------------------------
// 2. a missing secret

#[test]
fn deploy_is_refused_while_a_required_secret_is_missing() {
    let fx = fixture();
    fx.bot(
        "nokey",
        &[
            ("DISCORD_BOT_TOKEN", DISCORD_TOKEN),
            ("DISCORD_APPLICATION_ID", APPLICATION_ID),
        ],
    );
    let err = fx.engine.deploy("nokey", &greeting_graph()).unwrap_err();
    assert!(matches!(err, EngineError::DeployRefused { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("required secrets are missing"), "{text}");
    assert!(
        text.contains("OPENROUTER_API_KEY (node \"write\", openrouter-chat@"),
        "{text}"
    );
    assert!(
        text.contains("narakim secret set OPENROUTER_API_KEY --bot nokey"),
        "{text}"
    );
    assert!(!text.contains("DISCORD_BOT_TOKEN"), "{text}");
    assert!(
        fx.engine
            .store()
            .active_deployment("nokey")
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        fx.run("nokey", json!({})),
        Err(EngineError::NotDeployed(_))
    ));

    // Once set, the same graph deploys and runs.
    set(
        &mut fx.engine.vault(),
        &Scope::Bot("nokey".into()),
        "OPENROUTER_API_KEY",
        OPENROUTER_KEY,
    );
    let status = fx.engine.status("nokey", Some(&greeting_graph())).unwrap();
    assert_eq!(status.missing().count(), 0, "{status:#?}");
    fx.engine.deploy("nokey", &greeting_graph()).unwrap();
    let report = fx.run("nokey", json!({"name": "Bo"})).unwrap();
    assert_eq!(report.status, ExecutionStatus::Succeeded, "{report:#?}");
}

// ---------------------------------------------------------------------------
// 3. credentials in a config

#[test]
fn deploy_is_refused_when_a_config_holds_a_stored_secret_or_a_credential() {
    let fx = fixture();

    // The bot's own Discord token pasted as the message content.
    let pasted = graph(json!({"nodes": [{
        "id": "post",
        "extension": "discord-send-message",
        "config": {"channel_id": CHANNEL, "content": DISCORD_TOKEN}
    }]}));
    let err = fx.engine.deploy(BOT, &pasted).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EngineError::DeployRefused { .. }), "{err:?}");
    assert!(
        text.contains("holds the value of the stored secret DISCORD_BOT_TOKEN"),
        "{text}"
    );
    assert!(text.contains("/content"), "{text}");
    assert_no_value_in(&text, &SECRET_VALUES);
    assert_no_value_in(&format!("{err:?}"), &SECRET_VALUES);

    // A stored value that is not credential-shaped at all (the application
    // id is just digits) is still recognised, by fingerprint.
    let pasted = graph(json!({"nodes": [{
        "id": "post",
        "extension": "discord-send-message",
        "config": {"channel_id": CHANNEL, "content": format!("app {APPLICATION_ID} here")}
    }]}));
    let text = fx.engine.deploy(BOT, &pasted).unwrap_err().to_string();
    assert!(
        text.contains("stored secret DISCORD_APPLICATION_ID"),
        "{text}"
    );
    assert_no_value_in(&text, &SECRET_VALUES);

    // Credential-shaped strings that are not stored anywhere.
    for (config, kind) in [
        (
            json!({"url": "https://echo.test/x",
                   "headers": {"Authorization": "Bearer abcdef0123456789abcdef"}}),
            "a Bearer token",
        ),
        (
            json!({"url": "https://echo.test/x",
                   "body": {"key": "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}),
            "an OpenRouter API key",
        ),
    ] {
        let g = graph(json!({"nodes": [{
            "id": "call", "extension": "http-request", "config": config
        }]}));
        let text = fx.engine.deploy(BOT, &g).unwrap_err().to_string();
        assert!(text.contains("looks like a credential"), "{text}");
        assert!(text.contains(kind), "{text}");
        assert!(text.contains("node \"call\""), "{text}");
        assert!(text.contains("Secrets belong in the vault"), "{text}");
        assert!(!text.contains("abcdef0123456789abcdef"), "{text}");
    }

    // A credential in a config that is also invalid: the validation problem
    // would quote the field (here the URL), so it is not shown; the
    // refusal names the secret and says other problems remain.
    let g = graph(json!({"nodes": [{
        "id": "call", "extension": "http-request",
        "config": {"url": format!("https://echo.test/ bad?key={OPENROUTER_KEY}")}
    }]}));
    let err = fx.engine.deploy(BOT, &g).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EngineError::DeployRefused { .. }), "{err:?}");
    assert!(text.contains("stored secret OPENROUTER_API_KEY"), "{text}");
    assert!(text.contains("1 other problem"), "{text}");
    assert_no_value_in(&text, &SECRET_VALUES);
    assert_no_value_in(&format!("{err:?}"), &SECRET_VALUES);
    assert!(fx.engine.store().active_deployment(BOT).unwrap().is_none());
}

// ---------------------------------------------------------------------------
// 4. validation errors

#[test]
fn invalid_graphs_are_refused_with_clear_errors() {
    let fx = fixture();
    let refused = |value: Value| -> String {
        let err = fx.engine.deploy(BOT, &graph(value)).unwrap_err();
        assert!(matches!(err, EngineError::Graph(_)), "{err:?}");
        err.to_string()
    };

    let text = refused(json!({"nodes": [{
        "id": "x", "extension": "slack-post", "config": {}
    }]}));
    assert!(
        text.contains("node \"x\": extension \"slack-post\" is not installed"),
        "{text}"
    );
    assert!(text.contains("narakim extension install"), "{text}");

    let chat = |prompt: &str| json!({"model": "m", "prompt": prompt});
    let text = refused(json!({"nodes": [
        {"id": "a", "extension": "openrouter-chat", "config": chat("x"), "depends_on": ["c"]},
        {"id": "b", "extension": "openrouter-chat", "config": chat("x"), "depends_on": ["a"]},
        {"id": "c", "extension": "openrouter-chat", "config": chat("x"), "depends_on": ["b"]},
    ]}));
    assert!(text.contains("the dependencies form a cycle"), "{text}");
    assert!(text.contains("a -> c -> b -> a"), "{text}");

    let text = refused(json!({"nodes": [
        {"id": "a", "extension": "openrouter-chat", "config": chat("{{nodes.ghost.output.reply}}")},
    ]}));
    assert!(
        text.contains(
            "node \"a\": config /prompt refers to node \"ghost\", which is not a node of this graph"
        ),
        "{text}"
    );

    let text = refused(json!({"nodes": [
        {"id": "a", "extension": "openrouter-chat", "config": chat("x")},
        {"id": "b", "extension": "openrouter-chat", "config": chat("{{nodes.a.output.reply}}")},
    ]}));
    assert!(text.contains("add \"a\" to depends_on of \"b\""), "{text}");

    let text = refused(json!({"nodes": [
        {"id": "a", "extension": "openrouter-chat", "config": chat("Hi {{trigger.name")},
    ]}));
    assert!(
        text.contains("node \"a\": config /prompt: bad template at character 4"),
        "{text}"
    );
    assert!(text.contains("is not closed by"), "{text}");

    let text = refused(json!({"nodes": [
        {"id": "a", "extension": "openrouter-chat", "config": chat("Hi {{secrets.KEY}}")},
    ]}));
    assert!(text.contains("is not a known placeholder"), "{text}");

    // Every problem at once.
    let text = refused(json!({"nodes": [
        {"id": "a", "extension": "slack-post", "config": {}},
        {"id": "b", "extension": "openrouter-chat", "config": chat("{{nodes.ghost.output}}")},
    ]}));
    assert!(text.starts_with("the graph has 2 problems:"), "{text}");
    assert!(fx.engine.store().active_deployment(BOT).unwrap().is_none());
}

// ---------------------------------------------------------------------------
// 5. failures

#[test]
fn a_failed_node_skips_its_dependents_and_fails_the_execution() {
    let fx = fixture();
    fx.engine.deploy(BOT, &greeting_graph()).unwrap();
    fx.openrouter.script(vec![Scripted::Status(500)]);
    let report = fx.run(BOT, json!({"name": "Ada"})).unwrap();
    assert_eq!(report.status, ExecutionStatus::Failed, "{report:#?}");
    let write = node(&report, "write");
    assert_eq!(write.status, NodeStatus::Failed);
    let error = write.error.as_deref().unwrap();
    assert!(error.contains("openrouter-chat@"), "{error}");
    assert!(error.contains("500"), "{error}");
    let post = node(&report, "post");
    assert_eq!(post.status, NodeStatus::Skipped);
    assert!(
        post.error
            .as_deref()
            .unwrap()
            .contains("depends on \"write\""),
        "{post:#?}"
    );
    assert!(
        report
            .summary
            .starts_with("0 succeeded, 1 failed, 1 skipped; node \"write\" failed:"),
        "{}",
        report.summary
    );
    assert!(fx.discord.take_requests().is_empty());

    let (execution, runs) = fx.engine.store().execution(&report.id).unwrap().unwrap();
    assert_eq!(execution.status, ExecutionStatus::Failed);
    assert_eq!(execution.summary.as_deref(), Some(report.summary.as_str()));
    let statuses: BTreeMap<&str, NodeStatus> =
        runs.iter().map(|r| (r.node.as_str(), r.status)).collect();
    assert_eq!(
        statuses,
        BTreeMap::from([("post", NodeStatus::Skipped), ("write", NodeStatus::Failed)])
    );
    assert_no_value_in(&format!("{runs:?}{execution:?}"), &SECRET_VALUES);
}

#[test]
fn independent_branches_finish_when_another_fails() {
    let fx = fixture();
    let g = graph(json!({"nodes": [
        {"id": "write", "extension": "openrouter-chat",
         "config": {"model": "m", "prompt": "Greet {{trigger.name}}"}},
        {"id": "post", "extension": "discord-send-message", "depends_on": ["write"],
         "config": {"channel_id": CHANNEL, "content": "{{nodes.write.output.reply}}"}},
        {"id": "notice", "extension": "discord-send-message",
         "config": {"channel_id": CHANNEL, "content": "Working on {{trigger.name}}"}},
    ]}));
    fx.engine.deploy(BOT, &g).unwrap();
    fx.openrouter.script(vec![Scripted::Status(503)]);
    let report = fx.run(BOT, json!({"name": "Ada"})).unwrap();
    assert_eq!(report.status, ExecutionStatus::Failed, "{report:#?}");
    assert_eq!(node(&report, "write").status, NodeStatus::Failed);
    assert_eq!(node(&report, "post").status, NodeStatus::Skipped);
    assert_eq!(node(&report, "notice").status, NodeStatus::Succeeded);
    assert_eq!(
        node(&report, "notice").output.as_ref().unwrap()["content"],
        "Working on Ada"
    );
    assert!(
        report
            .summary
            .starts_with("1 succeeded, 1 failed, 1 skipped"),
        "{}",
        report.summary
    );
    let posted = fx.discord.take_requests();
    assert_eq!(posted.len(), 1, "{posted:#?}");
    assert_eq!(posted[0].json().unwrap()["content"], "Working on Ada");
    let (_, runs) = fx.engine.store().execution(&report.id).unwrap().unwrap();
    assert_eq!(runs.len(), 3);
}

// ---------------------------------------------------------------------------
// 6. pause and resume

#[test]
fn a_paused_bot_does_not_run_until_resumed() {
    let fx = fixture();
    fx.engine.deploy(BOT, &greeting_graph()).unwrap();
    fx.engine.set_paused(BOT, true).unwrap();
    assert!(fx.engine.status(BOT, None).unwrap().paused);
    let err = fx.run(BOT, json!({"name": "Ada"})).unwrap_err();
    assert!(
        matches!(err, EngineError::Paused(ref b) if b == BOT),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("narakim bot resume greeter"),
        "{err}"
    );
    assert!(fx.openrouter.take_requests().is_empty());
    assert!(
        fx.engine
            .store()
            .executions(Some(BOT), 10)
            .unwrap()
            .is_empty()
    );

    fx.engine.set_paused(BOT, false).unwrap();
    assert!(!fx.engine.status(BOT, None).unwrap().paused);
    let report = fx.run(BOT, json!({"name": "Ada"})).unwrap();
    assert_eq!(report.status, ExecutionStatus::Succeeded, "{report:#?}");
    assert_eq!(
        fx.engine.store().executions(Some(BOT), 10).unwrap().len(),
        1
    );

    // Unknown bots are an error, not a silent no-op.
    assert!(fx.engine.set_paused("nobody", true).is_err());
}

#[test]
fn a_queued_run_runs_and_records_the_deployment_of_when_it_is_claimed() {
    let fx = fixture();
    let queue = |trigger: Value| {
        let snapshot = fx.engine.vault().snapshot_for_bot(BOT).unwrap();
        let run = fx
            .engine
            .queued_run(&snapshot, &trigger, None, None)
            .unwrap();
        fx.tokio.block_on(fx.engine.enqueue(run, 10)).unwrap().id
    };
    let claim_and_run = || {
        let claimed = fx
            .engine
            .claim("test", Duration::from_secs(60))
            .unwrap()
            .unwrap();
        let version = claimed.graph_version.clone();
        let report = fx.tokio.block_on(fx.engine.run_claimed(claimed)).unwrap();
        assert_eq!(report.status, ExecutionStatus::Succeeded, "{report:#?}");
        version
    };
    let recorded = |id| {
        fx.engine
            .store()
            .execution(&id)
            .unwrap()
            .unwrap()
            .0
            .graph_version
    };

    let first = fx.engine.deploy(BOT, &greeting_graph()).unwrap();
    let unchanged = queue(json!({"name": "Ada"}));
    assert_eq!(claim_and_run(), first.graph_version);
    assert_eq!(recorded(unchanged), first.graph_version);

    // Accepted under the first deployment, claimed after a redeploy: it
    // runs the new one, and its record says so.
    let between = queue(json!({"name": "Grace"}));
    let mut changed = greeting_graph();
    changed.nodes[0].config["prompt"] = json!("Greet {{trigger.name}} warmly");
    let second = fx.engine.deploy(BOT, &changed).unwrap();
    assert_ne!(first.graph_version, second.graph_version);
    assert_eq!(
        claim_and_run(),
        first.graph_version,
        "queued under the first"
    );
    assert_eq!(recorded(between), second.graph_version);
    let asked = fx.openrouter.take_requests();
    let last = asked.last().unwrap().json().unwrap();
    assert_eq!(
        last["messages"].as_array().unwrap().last().unwrap()["content"],
        "Greet Grace warmly"
    );
}

// ---------------------------------------------------------------------------
// 7. rotation during a stream of executions

#[test]
fn each_execution_uses_one_consistent_set_of_secrets_while_they_rotate() {
    let fx = fixture();
    let value = |generation: usize| format!("rotating-secret-value-{generation:04}-abcdef");
    set(
        &mut fx.engine.vault(),
        &Scope::Bot(BOT.into()),
        "ROTATING",
        &value(0),
    );
    // Two nodes reading the same secret, the second after the first, so a
    // rotation has every chance to land between them.
    let auth = json!({"secret": "ROTATING", "scheme": "Bearer"});
    fx.engine
        .deploy(
            BOT,
            &graph(json!({"nodes": [
                {"id": "first", "extension": "http-request",
                 "config": {"url": "https://echo.test/{{trigger.n}}/first", "auth": auth}},
                {"id": "second", "extension": "http-request", "depends_on": ["first"],
                 "config": {"url": "https://echo.test/{{trigger.n}}/second", "auth": auth}},
            ]})),
        )
        .unwrap();

    const EXECUTIONS: usize = 40;
    let mut handles = Vec::new();
    let mut generations = 1;
    for n in 0..EXECUTIONS {
        let engine = fx.engine.clone();
        handles.push(
            fx.tokio
                .spawn(async move { engine.run(BOT, json!({"n": format!("e{n}")})).await }),
        );
        // Overwrite after every 8th spawn (not after the last): execution
        // `n` is spawned after `n / 8` overwrites.
        if n % 8 == 7 && n + 1 < EXECUTIONS {
            std::thread::sleep(Duration::from_millis(10));
            set(
                &mut fx.engine.vault(),
                &Scope::Bot(BOT.into()),
                "ROTATING",
                &value(generations),
            );
            generations += 1;
        }
    }
    let reports: Vec<ExecutionReport> = fx.tokio.block_on(async {
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap().unwrap());
        }
        out
    });
    for report in &reports {
        assert_eq!(report.status, ExecutionStatus::Succeeded, "{report:#?}");
        for n in &report.nodes {
            assert_eq!(n.secrets_read, ["ROTATING"]);
            assert_eq!(
                n.output.as_ref().unwrap()["body"]["authorized"],
                true,
                "{report:#?}"
            );
        }
    }

    let mut by_execution: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (path, auth) in fx.echo.seen() {
        let mut parts = path.trim_start_matches('/').split('/');
        let (n, node) = (parts.next().unwrap(), parts.next().unwrap());
        let previous = by_execution
            .entry(n.to_owned())
            .or_default()
            .insert(node.to_owned(), auth);
        assert!(previous.is_none(), "{path} requested twice");
    }
    assert_eq!(by_execution.len(), EXECUTIONS);
    let all_values: Vec<String> = (0..generations).map(value).collect();
    let mut used = BTreeSet::new();
    for (n, sent) in &by_execution {
        assert_eq!(sent.len(), 2, "{n}: {sent:?}");
        assert_eq!(
            sent["first"], sent["second"],
            "execution {n} mixed two generations of the secret"
        );
        let token = sent["first"].strip_prefix("Bearer ").unwrap();
        let generation = all_values
            .iter()
            .position(|v| v == token)
            .unwrap_or_else(|| panic!("{n}: an unknown value was sent"));
        // Never older than the value current when the execution was spawned.
        let spawned_after: usize = n[1..].parse::<usize>().unwrap() / 8;
        assert!(
            generation >= spawned_after,
            "execution {n} used generation {generation}, older than {spawned_after}"
        );
        used.insert(generation);
    }
    assert!(
        used.len() >= 2,
        "the executions all saw one value; the rotation never landed: {used:?}"
    );
    // The last executions, spawned after the last overwrite, use it.
    for n in (EXECUTIONS - 8)..EXECUTIONS {
        assert_eq!(
            by_execution[&format!("e{n}")]["first"],
            format!("Bearer {}", value(generations - 1))
        );
    }

    let mut secret_values: Vec<&str> = all_values.iter().map(String::as_str).collect();
    secret_values.extend(SECRET_VALUES);
    fx.assert_engine_db_clean(&secret_values);
}

// ---------------------------------------------------------------------------
// 8. concurrency

#[test]
fn fifty_concurrent_executions_all_succeed() {
    let fx = fixture();
    fx.engine.deploy(BOT, &greeting_graph()).unwrap();
    fx.openrouter.set_delay(Duration::from_millis(20));
    fx.discord.set_delay(Duration::from_millis(20));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let engine = fx.engine.clone();
            fx.tokio
                .spawn(async move { engine.run(BOT, json!({"name": format!("user {i}")})).await })
        })
        .collect();
    let reports: Vec<ExecutionReport> = fx.tokio.block_on(async {
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap().unwrap());
        }
        out
    });
    let ids: BTreeSet<String> = reports.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(ids.len(), 50);
    for report in &reports {
        assert_eq!(report.status, ExecutionStatus::Succeeded, "{report:#?}");
    }
    let mut contents: Vec<String> = fx
        .discord
        .take_requests()
        .iter()
        .map(|r| r.json().unwrap()["content"].as_str().unwrap().to_owned())
        .collect();
    contents.sort();
    let mut expected: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "{}Write a greeting for user {i}",
                narakim::standin::openrouter::REPLY_PREFIX
            )
        })
        .collect();
    expected.sort();
    assert_eq!(contents, expected);
    let stored = fx.engine.store().executions(Some(BOT), 100).unwrap();
    assert_eq!(stored.len(), 50);
    assert!(
        stored
            .iter()
            .all(|e| e.status == ExecutionStatus::Succeeded && e.finished_at.is_some())
    );
    fx.assert_engine_db_clean(&SECRET_VALUES);
}

/// A request that would carry a credential where it was not declared is
/// refused, recorded, and audited with the secret's name, as the engine
/// runs it.
#[test]
fn a_refused_credential_is_recorded_and_audited_with_its_name() {
    let fx = fixture();
    fx.bot(
        "thief-bot",
        &[("API_TOKEN", "tok-engine-refused-0123456789")],
    );
    fx.tokio.block_on(async {
        let mut registry = Registry::open(&fx.data_dir, fx.engine.runtime()).unwrap();
        registry
            .install(&common::guests::component("thief"))
            .await
            .unwrap();
    });
    fx.engine
        .deploy(
            "thief-bot",
            &graph(json!({
                "name": "steal",
                "nodes": [{"id": "grab", "extension": "thief", "config": {"mode": "query"}}]
            })),
        )
        .unwrap();
    let report = fx.run("thief-bot", json!({})).unwrap();
    assert_eq!(report.status, ExecutionStatus::Failed, "{report:#?}");
    let (_, runs) = fx.engine.store().execution(&report.id).unwrap().unwrap();
    let event = &runs[0].egress[0];
    assert_eq!(event.credentials, ["API_TOKEN"], "{event:#?}");
    assert!(
        event
            .refused
            .as_deref()
            .is_some_and(|r| r.contains("API_TOKEN") && r.contains("query")),
        "{event:#?}"
    );
    assert!(event.url.contains("?key=‹API_TOKEN›"), "{event:#?}");
    let refused: Vec<_> = fx
        .engine
        .vault()
        .audit(None)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "credential.refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0].owner.as_deref(), Some("thief-bot"));
    assert_eq!(refused[0].name.as_deref(), Some("API_TOKEN"));
    assert!(
        refused[0]
            .detail
            .starts_with("node grab: 1 request to api.example.test refused: "),
        "{refused:#?}"
    );
    assert!(!format!("{runs:?}{refused:?}").contains("tok-engine-refused"));
}
