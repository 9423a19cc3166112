//! Scale-out (issue 15): the real `narakim serve` binary (release build)
//! on loopback, with its store in SQLite (one node) or PostgreSQL (one
//! node over plain TCP and one over verified TLS, then three on one
//! database over TLS), a bot with a deployed 1-node graph
//! (`http-request`) whose node calls a loopback server that answers at
//! once. Measured in one run, one configuration after the other:
//!
//! - **accepted runs per second**, closed loop, 64 connections spread
//!   over the nodes, for `NARAKIM_BENCH_SECONDS` (default 5);
//! - **completed runs per second**: those runs, from the first accept to
//!   the last run's end;
//! - **claim latency**, enqueue to start (`running_at - started_at` of
//!   each execution), p50 and p99, at 100 runs per second offered (open
//!   loop, well under capacity, so it measures the wake-up and the claim,
//!   not a backlog);
//! - **an idle cluster of three**, after that load: every transaction the
//!   database counted (`pg_stat_database`) over `NARAKIM_BENCH_IDLE_SECONDS`
//!   (default 120), as transactions per minute, once 75 s have passed for
//!   the load's own counts to arrive (and with autovacuum off for those
//!   tables, so the server's housekeeping is not counted as ours).
//!
//! Needs the services `.ci/services` starts (`NARAKIM_TEST_PG_URL`). Run
//! with `cargo bench --bench cluster`.

#[path = "support/echo.rs"]
mod echo;
#[path = "../tests/common/listening.rs"]
mod listening;
#[path = "../tests/common/services.rs"]
#[allow(dead_code)]
mod services;
#[path = "support/wasm.rs"]
mod wasm;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use narakim::db::Conn;

const CONNECTIONS: usize = 64;
const OFFERED_PER_SECOND: u64 = 100;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Where a configuration keeps its store.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    /// Over verified TLS, as the test server's URL says.
    PostgresTls,
    /// The same server with `sslmode=disable`.
    PostgresPlain,
}

/// A store: SQLite in the data directory, or a PostgreSQL database.
struct Store {
    root: tempfile::TempDir,
    database: Option<services::TestDatabase>,
    url: Option<String>,
    token: String,
}

impl Store {
    fn new(backend: Backend, wasm: &std::path::Path) -> Store {
        let database = match backend {
            Backend::Sqlite => None,
            _ => Some(services::TestDatabase::create().expect("PostgreSQL (`. .ci/services`)")),
        };
        let url = database.as_ref().map(|db| match backend {
            Backend::PostgresPlain => {
                let base = db.url.split_once('?').map_or(db.url.as_str(), |(b, _)| b);
                format!("{base}?sslmode=disable")
            }
            _ => db.url.clone(),
        });
        let mut store = Store {
            root: tempfile::tempdir().unwrap(),
            database,
            url,
            token: String::new(),
        };
        store.narakim(0, &["init"]);
        store.narakim(0, &["team", "create", "ops"]);
        store.narakim(0, &["bot", "create", "greeter", "--team", "ops"]);
        store.narakim(0, &["extension", "install", wasm.to_str().unwrap()]);
        let token = store.narakim(
            0,
            &[
                "token",
                "create",
                "--team",
                "ops",
                "--can",
                "runs:start",
                "bots:deploy",
            ],
        );
        store.token = token.trim().to_owned();
        store
    }

    /// Node `n`'s command: its own data directory, the shared key file
    /// and database.
    fn command(&self, n: usize) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_narakim"));
        command
            .arg("--data-dir")
            .arg(self.root.path().join(format!("node{n}")))
            .arg("--key-file")
            .arg(self.root.path().join("config/master.key"))
            .env("NARAKIM_ACTOR", "bench");
        if let Some(url) = &self.url {
            command.env("NARAKIM_DATABASE_URL", url);
        }
        command
    }

    fn narakim(&self, n: usize, args: &[&str]) -> String {
        let out = self.command(n).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn serve(&self, n: usize, echo: SocketAddr) -> Node {
        let mut command = self.command(n);
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--rate-limit",
                "1000000",
            ])
            .args(["--queue-bound", "1000000"])
            .args(["--upstream", &format!("echo.test=http://{echo}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null());
        let mut child = command.spawn().expect("starting narakim serve");
        let addr = listening::address(child.stdout.take().unwrap())
            .unwrap_or_else(|line| panic!("no address in {line:?}"));
        Node { child, addr }
    }

    /// The engine's tables, read by the bench.
    fn conn(&self) -> Conn {
        match &self.database {
            Some(db) => db.conn(),
            None => Conn::Sqlite(
                rusqlite::Connection::open(self.root.path().join("node0/engine.db")).unwrap(),
            ),
        }
    }

    fn count(&self, sql: &str) -> u64 {
        self.conn()
            .query_one(sql, narakim::args![], |r| r.get::<i64>(0))
            .unwrap() as u64
    }

    fn wait_drained(&self) {
        let deadline = Instant::now() + Duration::from_secs(900);
        while self.count("SELECT count(*) FROM executions WHERE status IN ('queued', 'running')")
            > 0
        {
            assert!(Instant::now() < deadline, "the queue never drained");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Enqueue-to-start of the executions accepted from `since_ms` on.
    fn claim_latencies(&self, since_ms: i64) -> Vec<i64> {
        let mut all: Vec<i64> = self
            .conn()
            .query_map(
                "SELECT running_at - started_at FROM executions
                 WHERE started_at >= ?1 AND running_at IS NOT NULL",
                narakim::args![since_ms],
                |r| r.get(0),
            )
            .unwrap();
        all.sort_unstable();
        all
    }

    /// Transactions committed or rolled back in this database so far, read
    /// on `conn` (one connection for every reading: each new connection's
    /// start-up is a transaction too).
    fn transactions(conn: &Conn) -> u64 {
        conn.query_one(
            "SELECT (xact_commit + xact_rollback)::BIGINT FROM pg_stat_database
                 WHERE datname = current_database()",
            narakim::args![],
            |r| r.get::<i64>(0),
        )
        .unwrap() as u64
    }
}

struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn post_run(addr: SocketAddr, token: &str, n: usize) -> hyper::Request<Full<Bytes>> {
    hyper::Request::post(format!("http://{addr}/api/v1/teams/ops/bots/greeter/runs"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!("{{\"n\": {n}}}"))))
        .unwrap()
}

async fn deploy(client: &HttpClient, addr: SocketAddr, token: &str) {
    let graph = serde_json::json!({"nodes": [{
        "id": "call", "extension": "http-request",
        "config": {"url": "https://echo.test/run"}
    }]});
    let request = hyper::Request::put(format!(
        "http://{addr}/api/v1/teams/ops/bots/greeter/deployment"
    ))
    .header("authorization", format!("Bearer {token}"))
    .header("content-type", "application/json")
    .body(Full::new(Bytes::from(graph.to_string())))
    .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200, "deploy failed");
}

/// Accepted runs per second over `nodes`, closed loop.
async fn accept_closed(
    client: &HttpClient,
    nodes: &[SocketAddr],
    token: &str,
    length: Duration,
) -> usize {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let (client, done, token) = (client.clone(), done.clone(), token.to_owned());
        let addr = nodes[c % nodes.len()];
        tasks.spawn(async move {
            let mut n = c;
            while started.elapsed() < length {
                let response = client.request(post_run(addr, &token, n)).await.unwrap();
                assert_eq!(response.status(), 202, "a run was not accepted");
                let _ = response.into_body().collect().await;
                done.fetch_add(1, Ordering::Relaxed);
                n += CONNECTIONS;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    done.load(Ordering::Relaxed)
}

/// Runs offered at `OFFERED_PER_SECOND`, spread over `nodes`.
async fn offer(client: &HttpClient, nodes: &[SocketAddr], token: &str, length: Duration) {
    let total = (OFFERED_PER_SECOND as f64 * length.as_secs_f64()) as usize;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / OFFERED_PER_SECOND as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, token, addr) = (client.clone(), token.to_owned(), nodes[n % nodes.len()]);
        tasks.spawn(async move {
            let response = client.request(post_run(addr, &token, n)).await.unwrap();
            assert_eq!(response.status(), 202);
            let _ = response.into_body().collect().await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds: u64 = std::env::var("NARAKIM_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let idle: u64 = std::env::var("NARAKIM_BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let length = Duration::from_secs(seconds);
    let wasm = wasm::build("extensions", None).join("http_request.wasm");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let echo = runtime.block_on(echo::echo_server());
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    println!(
        "| store | nodes | accepted/s | completed/s | claim latency p50 / p99 (ms) |\n|---|---|---|---|---|"
    );
    let mut idle_cluster = None;
    for (label, backend, count) in [
        ("SQLite", Backend::Sqlite, 1),
        ("PostgreSQL, plain TCP", Backend::PostgresPlain, 1),
        ("PostgreSQL, TLS", Backend::PostgresTls, 1),
        ("PostgreSQL, TLS", Backend::PostgresTls, 3),
    ] {
        let store = Store::new(backend, &wasm);
        let nodes: Vec<Node> = (0..count).map(|n| store.serve(n, echo)).collect();
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        runtime.block_on(deploy(&client, addrs[0], &store.token));
        let started = Instant::now();
        let accepted = runtime.block_on(accept_closed(&client, &addrs, &store.token, length));
        let accept_time = started.elapsed();
        store.wait_drained();
        let complete_time = started.elapsed();
        let since = now_ms();
        runtime.block_on(offer(&client, &addrs, &store.token, length));
        store.wait_drained();
        let latencies = store.claim_latencies(since);
        println!(
            "| {label} | {count} | {:.0} | {:.0} | {} / {} |",
            accepted as f64 / accept_time.as_secs_f64(),
            accepted as f64 / complete_time.as_secs_f64(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
        );
        if count == 3 {
            idle_cluster = Some((store, nodes));
        }
    }
    let (store, _nodes) = idle_cluster.unwrap();
    // The server's own housekeeping after the load (autovacuum, analyze)
    // is not the cluster's traffic: kept out of the count.
    let admin = store.database.as_ref().unwrap().conn();
    let tables: Vec<String> = admin
        .query_map(
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()",
            narakim::args![],
            |r| r.get(0),
        )
        .unwrap();
    for table in tables {
        admin
            .batch(&format!(
                "ALTER TABLE {table} SET (autovacuum_enabled = false)"
            ))
            .unwrap();
    }
    // Backends report their transactions to `pg_stat_database` late under
    // load (PostgreSQL defers a busy backend's stats up to 60 s): wait that
    // out, or the load's own transactions trickle into the idle window.
    std::thread::sleep(Duration::from_secs(75));
    let before = Store::transactions(&admin);
    std::thread::sleep(Duration::from_secs(idle));
    let after = Store::transactions(&admin);
    // The first reading's own transaction is among those counted.
    let counted = after.saturating_sub(before).saturating_sub(1);
    println!(
        "\nidle cluster of 3 nodes: {counted} transactions in {idle} s = {:.1} per minute (autovacuum off for the window)",
        counted as f64 * 60.0 / idle as f64
    );
}
