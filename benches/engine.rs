//! Engine concurrency: 1,000 executions at once of the 2-node greeting
//! graph (openrouter-chat, then discord-send-message with the reply),
//! against loopback stand-ins of OpenRouter and Discord that answer after
//! 100 ms. Every node is a real wasm invocation of a sample extension
//! (extensions/, built here) reading its secrets from a real vault, and
//! every execution is recorded in a real `engine.db`.
//!
//! Goals: all 1,000 finish within 1.5 s of wall time; peak RSS of the
//! engine process ≤ 300 MB.
//!
//! Also measured in the same run, as baselines:
//! - the process idle, with the engine set up and warmed (resident set);
//! - the network part alone: 1,000 concurrent chains of the same two
//!   requests (OpenRouter, then Discord with the reply) sent by a
//!   hyper-util client straight to the same delayed stand-ins.
//!
//! Peaks are `VmHWM` of /proc/self/status, reset before each phase through
//! /proc/self/clear_refs, so each phase's peak is its own.
//!
//! The stand-ins run without the OpenAPI validators the tests use: they
//! share the engine's cores here, and schema checks are not what is
//! measured. Run `cargo bench --bench engine` (it builds extensions/ first).
//! `NARAKIM_BENCH_EXECUTIONS` and `NARAKIM_BENCH_POOL` change the load and
//! the pool size.

#[path = "support/wasm.rs"]
mod wasm;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use narakim::engine::executor::Engine;
use narakim::engine::graph::{Format, Graph};
use narakim::engine::registry::Registry;
use narakim::engine::store::ExecutionStatus;
use narakim::runtime::{Limits, Runtime};
use narakim::standin::{DiscordCredentials, Kind, OpenRouterCredentials, Options, StandIn};
use narakim::vault::{KeySource, Scope, SecretName, SecretValue, Vault, VaultConfig};
use serde_json::{Value, json};

const DISCORD_TOKEN: &str =
    "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GhXk2a.Zt8cYw3nQp1Lr6vBm0sJ4dKf9uEa7xHiO2gTqW";
const APPLICATION_ID: &str = "1100000000000000001";
const OPENROUTER_KEY: &str =
    "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";
const CHANNEL: &str = "123456789012345678";
const BOT: &str = "greeter";
const DELAY: Duration = Duration::from_millis(100);
const ROUNDS: usize = 3;
const WARM_UP: usize = 10;
const GOAL_WALL: Duration = Duration::from_millis(1500);
const GOAL_RSS_MB: f64 = 300.0;

fn build_extensions() -> std::path::PathBuf {
    wasm::build("extensions", None)
}

/// A field of /proc/self/status in kB (`VmRSS`, `VmHWM`).
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time this process has used, user and system, from /proc/self/stat
/// (clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Resets `VmHWM` to the current resident set, so the next reading is the
/// peak from now on. Returns whether the kernel allowed it.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn greeting_graph() -> Graph {
    let doc = json!({
        "nodes": [
            {"id": "write", "extension": "openrouter-chat",
             "config": {"model": "openai/gpt-4o-mini",
                        "prompt": "Write a greeting for {{trigger.name}}"}},
            {"id": "post", "extension": "discord-send-message", "depends_on": ["write"],
             "config": {"channel_id": CHANNEL, "content": "{{nodes.write.output.reply}}"}}
        ]
    });
    Graph::parse(&doc.to_string(), Some(Format::Json)).unwrap()
}

struct Round {
    wall: Duration,
    p50: Duration,
    p99: Duration,
    failed: usize,
}

/// Spawns `n` executions at once and waits for all of them.
async fn engine_round(engine: &Arc<Engine>, n: usize, tag: &str) -> Round {
    let started = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let engine = engine.clone();
            let trigger = json!({"name": format!("{tag}-{i}")});
            tokio::spawn(async move {
                let t = Instant::now();
                let ok = matches!(
                    engine.run(BOT, trigger).await,
                    Ok(r) if r.status == ExecutionStatus::Succeeded
                );
                (t.elapsed(), ok)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(n);
    let mut failed = 0;
    for h in handles {
        let (latency, ok) = h.await.expect("an execution task panicked");
        latencies.push(latency);
        failed += usize::from(!ok);
    }
    let wall = started.elapsed();
    latencies.sort();
    Round {
        wall,
        p50: latencies[n / 2],
        p99: latencies[(n * 99 / 100).min(n - 1)],
        failed,
    }
}

/// The network part alone: `n` concurrent chains of the same two requests
/// the graph makes, straight to the stand-ins.
async fn http_round(
    client: &Client<HttpConnector, Full<Bytes>>,
    openrouter: &str,
    discord: &str,
    n: usize,
) -> Round {
    let started = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let client = client.clone();
            let (openrouter, discord) = (openrouter.to_owned(), discord.to_owned());
            tokio::spawn(async move {
                let t = Instant::now();
                let ask = json!({"model": "openai/gpt-4o-mini", "messages": [
                    {"role": "user", "content": format!("Write a greeting for http-{i}")}]});
                let Some(answer) = post(
                    &client,
                    &format!("{openrouter}/api/v1/chat/completions"),
                    &format!("Bearer {OPENROUTER_KEY}"),
                    &ask,
                )
                .await
                else {
                    return (t.elapsed(), false);
                };
                let reply = answer["choices"][0]["message"]["content"].clone();
                let ok = post(
                    &client,
                    &format!("{discord}/api/v10/channels/{CHANNEL}/messages"),
                    &format!("Bot {DISCORD_TOKEN}"),
                    &json!({"content": reply}),
                )
                .await
                .is_some();
                (t.elapsed(), ok)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(n);
    let mut failed = 0;
    for h in handles {
        let (latency, ok) = h.await.expect("a request task panicked");
        latencies.push(latency);
        failed += usize::from(!ok);
    }
    let wall = started.elapsed();
    latencies.sort();
    Round {
        wall,
        p50: latencies[n / 2],
        p99: latencies[(n * 99 / 100).min(n - 1)],
        failed,
    }
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    auth: &str,
    body: &Value,
) -> Option<Value> {
    let request = hyper::Request::post(url)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            "DiscordBot (https://github.com/narakim, 0.1.0)",
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .ok()?;
    let response = client.request(request).await.ok()?;
    let ok = response.status().is_success();
    let bytes = response.into_body().collect().await.ok()?.to_bytes();
    ok.then(|| serde_json::from_slice(&bytes).ok()).flatten()
}

fn median(mut walls: Vec<Duration>) -> Duration {
    walls.sort();
    walls[walls.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it too,
    // where a 1,000-execution load has no place.
    if std::env::args().any(|a| a == "--test" || a == "--list")
        || !std::env::args().any(|a| a == "--bench")
    {
        println!("engine: skipped (run it with `cargo bench --bench engine`)");
        return;
    }
    let executions = env_usize("NARAKIM_BENCH_EXECUTIONS", 1000);
    let pool = env_usize("NARAKIM_BENCH_POOL", 1024) as u32;
    let wasm_dir = build_extensions();

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let config = VaultConfig::new(
        data_dir.clone(),
        KeySource::File(tmp.path().join("config/master.key")),
    );
    Vault::init(&config).unwrap();
    let mut vault = Vault::open(config).unwrap();
    vault.create_team("ops").unwrap();
    vault.create_bot(BOT, "ops").unwrap();
    for (name, value) in [
        ("DISCORD_BOT_TOKEN", DISCORD_TOKEN),
        ("DISCORD_APPLICATION_ID", APPLICATION_ID),
        ("OPENROUTER_API_KEY", OPENROUTER_KEY),
    ] {
        vault
            .set_secret(
                &Scope::Bot(BOT.into()),
                &SecretName::new(name).unwrap(),
                &SecretValue::new(value.into()).unwrap(),
            )
            .unwrap();
    }

    let (discord, openrouter) = {
        let _inside = tokio.enter();
        let options = Options {
            delay: DELAY,
            ..Options::default()
        };
        (
            StandIn::start(
                Kind::Discord(DiscordCredentials {
                    bot_token: DISCORD_TOKEN.into(),
                    application_id: APPLICATION_ID.into(),
                }),
                options.clone(),
            )
            .unwrap(),
            StandIn::start(
                Kind::OpenRouter(OpenRouterCredentials {
                    api_key: OPENROUTER_KEY.into(),
                }),
                options,
            )
            .unwrap(),
        )
    };

    let limits = Limits {
        pooled_instances: pool,
        ..Limits::default()
    };
    let runtime = match Runtime::new(limits, Some(tmp.path().join("cache"))) {
        Ok(r) => r,
        Err(e) => panic!("a runtime with {pool} pooled instances: {e}"),
    };
    let runtime = Arc::new(runtime.with_upstreams([discord.upstream(), openrouter.upstream()]));
    let store = tokio.block_on(async {
        let mut registry = Registry::open(&data_dir, &runtime).unwrap();
        for file in ["openrouter_chat.wasm", "discord_send_message.wasm"] {
            registry.install(&wasm_dir.join(file)).await.unwrap();
        }
        registry.into_store()
    });
    let engine = Arc::new(Engine::new(runtime, vault, store));
    engine.deploy(BOT, &greeting_graph()).unwrap();

    // Warm-up: loads (compiles) the extensions, fills the connection pool.
    let warm = tokio.block_on(engine_round(&engine, WARM_UP, "warm"));
    assert_eq!(warm.failed, 0, "warm-up executions failed");
    discord.take_requests();
    openrouter.take_requests();
    std::thread::sleep(Duration::from_millis(200));
    let idle_rss = status_kb("VmRSS");
    let hwm_before = status_kb("VmHWM");

    let can_reset = reset_peak();
    let mut rounds = Vec::new();
    let mut engine_peak = 0;
    let engine_cpu_start = cpu_time();
    for round in 0..ROUNDS {
        let r = tokio.block_on(engine_round(&engine, executions, &format!("r{round}")));
        engine_peak = engine_peak.max(status_kb("VmHWM"));
        assert_eq!(
            discord.take_requests().len(),
            executions - r.failed,
            "Discord did not get one message per execution"
        );
        openrouter.take_requests();
        rounds.push(r);
    }
    let after_engine_rss = status_kb("VmRSS");
    let engine_cpu = cpu_time().saturating_sub(engine_cpu_start);

    reset_peak();
    let http_start_rss = status_kb("VmRSS");
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::MAX)
        .build_http();
    let mut http_rounds = Vec::new();
    let http_cpu_start = cpu_time();
    for _ in 0..ROUNDS {
        let _inside = tokio.enter();
        http_rounds.push(tokio.block_on(http_round(
            &client,
            &openrouter.base_url(),
            &discord.base_url(),
            executions,
        )));
        discord.take_requests();
        openrouter.take_requests();
    }
    let http_peak = status_kb("VmHWM");
    let http_cpu = cpu_time().saturating_sub(http_cpu_start);

    println!();
    println!(
        "Engine concurrency: {executions} executions at once of a 2-node graph, stand-ins answering after {} ms, pool of {pool} instances, {} cores",
        DELAY.as_millis(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| round | engine wall | p50 | p99 | failed | HTTP-only wall | p50 | p99 | failed |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (i, (e, h)) in rounds.iter().zip(&http_rounds).enumerate() {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            ms(e.wall),
            ms(e.p50),
            ms(e.p99),
            e.failed,
            ms(h.wall),
            ms(h.p50),
            ms(h.p99),
            h.failed
        );
    }
    let engine_median = median(rounds.iter().map(|r| r.wall).collect());
    let http_median = median(http_rounds.iter().map(|r| r.wall).collect());
    println!(
        "| median | {} | | | | {} | | | |",
        ms(engine_median),
        ms(http_median)
    );
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "wall: median {} (goal ≤ {}: {}); engine overhead over the network part: {}",
        ms(engine_median),
        ms(GOAL_WALL),
        verdict(engine_median <= GOAL_WALL && rounds.iter().all(|r| r.failed == 0)),
        ms(engine_median.saturating_sub(http_median))
    );
    let per = |cpu: Duration| cpu.as_micros() as usize / (ROUNDS * executions);
    println!(
        "CPU (both cores, stand-ins included): engine rounds {} per round, {} µs per execution; HTTP-only rounds {} per round, {} µs per chain",
        ms(engine_cpu / ROUNDS as u32),
        per(engine_cpu),
        ms(http_cpu / ROUNDS as u32),
        per(http_cpu),
    );
    println!(
        "RSS: idle (engine set up and warmed) {:.1} MB; peak during the engine rounds {:.1} MB (goal ≤ {GOAL_RSS_MB} MB: {}); delta {:.1} MB; after the rounds {:.1} MB",
        mb(idle_rss),
        mb(engine_peak),
        verdict(mb(engine_peak) <= GOAL_RSS_MB),
        mb(engine_peak.saturating_sub(idle_rss)),
        mb(after_engine_rss),
    );
    println!(
        "RSS: HTTP-only rounds peak {:.1} MB, {:.1} MB over their start; peak before the load (setup, warm-up) {:.1} MB{}",
        mb(http_peak),
        mb(http_peak.saturating_sub(http_start_rss)),
        mb(hwm_before),
        if can_reset {
            ""
        } else {
            " (clear_refs refused: peaks are cumulative)"
        }
    );
}
