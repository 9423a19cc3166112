//! One node cannot starve the rest: a greedy invocation against a host that
//! never answers hits its own limit and fails with that limit's error,
//! while another bot's node in the same process finishes on time, and the
//! process's descriptors and memory stay within bounds. One execution's
//! records have one budget, whatever its number of nodes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::guests::component;
use common::recorder::Recorder;
use narakim::engine::executor::Engine;
use narakim::engine::graph::{Format, Graph};
use narakim::engine::registry::Registry;
use narakim::engine::store::{ExecutionStatus, NodeStatus};
use narakim::runtime::{Limits, Runtime, Upstream};
use narakim::vault::{KeySource, Scope, SecretName, SecretValue, Vault, VaultConfig};
use serde_json::json;

struct Fixture {
    _root: tempfile::TempDir,
    engine: Arc<Engine>,
    tokio: tokio::runtime::Runtime,
}

fn fixture(limits: Limits, upstreams: &[String]) -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let config = VaultConfig::new(
        data_dir.clone(),
        KeySource::File(root.path().join("config/master.key")),
    );
    Vault::init(&config).unwrap();
    let mut vault = Vault::open(config).unwrap();
    vault.create_team("ops").unwrap();
    for bot in ["greedy", "polite"] {
        vault.create_bot(bot, "ops").unwrap();
        vault
            .set_secret(
                &Scope::Bot(bot.into()),
                &SecretName::new("API_TOKEN").unwrap(),
                &SecretValue::new(format!("tok-{bot}-0123456789")).unwrap(),
            )
            .unwrap();
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let runtime = Arc::new(
        Runtime::new(limits, Some(root.path().join("cache")))
            .unwrap()
            .with_upstreams(upstreams.iter().map(|u| u.parse::<Upstream>().unwrap())),
    );
    let store = tokio.block_on(async {
        let mut registry = Registry::open(&data_dir, &runtime).unwrap();
        registry.install(&component("escape")).await.unwrap();
        registry.into_store()
    });
    Fixture {
        engine: Arc::new(Engine::new(runtime, vault, store)),
        tokio,
        _root: root,
    }
}

fn deploy(fx: &Fixture, bot: &str, nodes: serde_json::Value) {
    let graph = json!({"name": bot, "nodes": nodes}).to_string();
    fx.engine
        .deploy(bot, &Graph::parse(&graph, Some(Format::Json)).unwrap())
        .unwrap();
}

/// The tests share one process, and two of them count its descriptors
/// and connections: one at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_greedy_node_fails_at_its_limit_and_another_bots_node_finishes_on_time() {
    let _alone = one_at_a_time();
    let (silent, good) = (Recorder::start(true), Recorder::start(false));
    let limits = Limits {
        timeout: Duration::from_secs(20),
        ..Limits::default()
    };
    let fx = fixture(
        limits,
        &[
            silent.upstream("other.example.test"),
            good.upstream("api.example.test"),
        ],
    );
    deploy(
        &fx,
        "greedy",
        json!([{"id": "hog", "extension": "escape",
                "config": {"mode": "greedy", "count": 1500, "authority": "other.example.test"}}]),
    );
    deploy(
        &fx,
        "polite",
        json!([{"id": "fine", "extension": "escape",
                "config": {"mode": "ok-request", "authority": "api.example.test"}}]),
    );
    // Warm both (compiled, loaded) so the figures below are the requests'.
    let (fds_before, rss_before) = (open_descriptors(), rss_kib());

    let engine = fx.engine.clone();
    let greedy = fx
        .tokio
        .spawn(async move { engine.run("greedy", json!({})).await });
    let started = Instant::now();
    let polite = fx
        .tokio
        .block_on(fx.engine.run("polite", json!({})))
        .unwrap();
    let polite_took = started.elapsed();
    let (fds_during, rss_during) = (open_descriptors(), rss_kib());
    let greedy = fx.tokio.block_on(greedy).unwrap().unwrap();

    assert_eq!(polite.status, ExecutionStatus::Succeeded, "{polite:#?}");
    assert!(
        polite_took < Duration::from_secs(10),
        "the polite node took {polite_took:?}"
    );
    assert_eq!(greedy.status, ExecutionStatus::Failed, "{greedy:#?}");
    let error = greedy.nodes[0].error.as_deref().unwrap();
    assert!(
        error.contains("node hog") && error.contains("the concurrent-request limit"),
        "{error}"
    );
    // The invocation's 16 connections, counted at both ends (the silent
    // host runs in this process), and nothing like 1,500.
    assert!(
        fds_during <= fds_before + 64,
        "descriptors: {fds_before} before, {fds_during} during"
    );
    assert!(
        rss_during <= rss_before + 128 * 1024,
        "RSS: {rss_before} KiB before, {rss_during} KiB during"
    );
    eprintln!(
        "descriptors {fds_before} -> {fds_during}; RSS {rss_before} -> {rss_during} KiB; polite node {polite_took:?}"
    );
}

#[test]
fn a_bot_gets_only_its_share_of_the_process() {
    let _alone = one_at_a_time();
    let silent = Recorder::start(true);
    let good = Recorder::start(false);
    let limits = Limits {
        timeout: Duration::from_secs(4),
        bot_requests: 20,
        ..Limits::default()
    };
    let fx = fixture(
        limits,
        &[
            silent.upstream("other.example.test"),
            good.upstream("api.example.test"),
        ],
    );
    // Three nodes of ten requests each: 30, over the bot's 20. The host
    // never answers, so they end at the wall-clock limit.
    let hog = |id: &str| {
        json!({"id": id, "extension": "escape",
               "config": {"mode": "greedy", "count": 10, "authority": "other.example.test"}})
    };
    deploy(&fx, "greedy", json!([hog("a"), hog("b"), hog("c")]));
    deploy(
        &fx,
        "polite",
        json!([{"id": "fine", "extension": "escape",
                "config": {"mode": "ok-request", "authority": "api.example.test"}}]),
    );
    let engine = fx.engine.clone();
    let greedy = fx
        .tokio
        .spawn(async move { engine.run("greedy", json!({})).await });
    // Steady state, well before the wall-clock limit: the bot's share is
    // what reaches the host.
    std::thread::sleep(Duration::from_millis(2000));
    let at_once = silent.open_now();
    let polite = fx
        .tokio
        .block_on(fx.engine.run("polite", json!({})))
        .unwrap();
    assert_eq!(polite.status, ExecutionStatus::Succeeded, "{polite:#?}");
    let greedy = fx.tokio.block_on(greedy).unwrap().unwrap();
    // 30 requests wanted; the bot's share let 20 reach the host at once,
    // the rest waited their turn, and the other bot never waited at all.
    assert!(
        (1..=20).contains(&at_once),
        "{at_once} connections of one bot at once"
    );
    assert_eq!(greedy.status, ExecutionStatus::Failed, "{greedy:#?}");
}

#[test]
fn one_execution_stores_at_most_its_record_budget() {
    let _alone = one_at_a_time();
    let limits = Limits {
        execution_record_bytes: 64 << 10,
        ..Limits::default()
    };
    let fx = fixture(limits, &[]);
    let big = format!("\"{}\"", "x".repeat(20_000));
    let nodes: Vec<serde_json::Value> = (0..8)
        .map(|i| {
            json!({"id": format!("n{i}"), "extension": "escape",
                        "config": {"mode": "emit", "emit": big}})
        })
        .collect();
    deploy(&fx, "greedy", serde_json::Value::Array(nodes));
    let report = fx
        .tokio
        .block_on(fx.engine.run("greedy", json!({})))
        .unwrap();
    assert_eq!(report.status, ExecutionStatus::Failed);
    let over: Vec<_> = report
        .nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Failed)
        .collect();
    assert!(!over.is_empty(), "{report:#?}");
    for n in &over {
        let e = n.error.as_deref().unwrap();
        assert!(
            e.contains(&format!("node \"{}\"", n.node)) && e.contains("65536-byte record budget"),
            "{e}"
        );
    }
    let (_, runs) = fx.engine.store().execution(&report.id).unwrap().unwrap();
    let stored: usize = runs
        .iter()
        .map(|r| {
            r.output.as_ref().map_or(0, String::len)
                + r.error.as_ref().map_or(0, String::len)
                + r.stdout.len()
                + r.stderr.len()
        })
        .sum();
    assert!(stored <= (64 << 10) + 8 * 512, "stored {stored} bytes");
}
