//! Accepting runs over HTTP: the real `narakim serve` binary (release
//! build) on a loopback port, a real SQLite vault and `engine.db`, a bot
//! with a deployed 1-node graph (`http-request`, built from extensions/)
//! whose node calls a loopback server that answers at once.
//!
//! Each `POST …/runs` is answered only after the run is durably queued
//! (synced to disk, many runs sharing one commit). Measured in one run:
//!
//! - **baseline**: a bare axum handler that answers 202 with no work, in a
//!   process of its own (this binary, re-run), driven by the same client;
//! - **accepted runs per second**, closed loop, 64 connections;
//! - **accept latency** p50 and p99 at 1,000 runs per second offered (open
//!   loop: each request is timed from when it was due, so a stall is not
//!   hidden);
//! - **completed executions per second** for the same runs;
//! - **the disk's synced-commit latency** at the same rate (a scratch
//!   SQLite database beside `engine.db`, one 1-row commit each): the floor
//!   under any accept's latency;
//! - **an idle server**: CPU time and writes (`/proc/PID/io` `syscw`, and
//!   the database files' sizes and times) over 30 s.
//!
//! Then the triggers (issue 12), on the same server:
//!
//! - **verified webhooks per second**, closed loop: GitHub-signed
//!   deliveries, each verified (HMAC-SHA256 over the raw body, constant
//!   time), deduplicated and durably queued; the baseline, measured just
//!   before on the same server, is the same run started over the runs API
//!   with a token and no signature;
//! - **Discord interaction ack latency** p50 and p99 at 500 interactions
//!   per second offered (Ed25519-verified, queued, answered type 5).
//!
//! Goals: issue 11, ≥ 5,000 accepted/s on 2 cores; p99 ≤ 10 ms at
//! 1,000/s; 0 database writes when idle. Issue 12, Discord ack p99 ≤ 50 ms. The client shares the 2 cores with
//! the server, so both rates are lower bounds. Run with
//! `cargo bench --bench accept`; `NARAKIM_BENCH_SECONDS` sets each phase's
//! length (default 5).

#[path = "support/echo.rs"]
mod echo;
#[path = "../tests/common/listening.rs"]
mod listening;
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

const CONNECTIONS: usize = 64;
const OFFERED_PER_SECOND: u64 = 1_000;
const INTERACTIONS_PER_SECOND: u64 = 500;
const GITHUB_SECRET: &str = "bench-github-webhook-secret-0123456789";
const IDLE: Duration = Duration::from_secs(30);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn main() {
    if std::env::var_os("NARAKIM_BENCH_BARE").is_some() {
        return bare_server();
    }
    // `cargo bench` passes --bench; any other argument is a filter, which
    // this bench does not take.
    let seconds: u64 = std::env::var("NARAKIM_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let phase = Duration::from_secs(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let echo = runtime.block_on(echo::echo_server());
    let fixture = Fixture::new(echo);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONNECTIONS)
        .build_http();

    // Baseline: the same requests to a bare axum 202.
    let bare = Server::bare();
    let path = "/api/v1/teams/ops/bots/greeter/runs";
    let bare_rate = runtime.block_on(closed_loop(
        &client,
        runs(bare.addr, path, &fixture.token),
        202,
        phase,
    ));
    drop(bare);

    let serve = fixture.serve();
    runtime.block_on(deploy(&client, serve.addr, &fixture.token));
    let before = fixture.finished();
    let started = Instant::now();
    let accept_rate = runtime.block_on(closed_loop(
        &client,
        runs(serve.addr, path, &fixture.token),
        202,
        phase,
    ));
    let accepted = fixture.total() - before.total();
    // Completed: from the first accept until every accepted run finished.
    fixture.wait_drained();
    let completed_rate = accepted as f64 / started.elapsed().as_secs_f64();

    // The disk's own floor, in the same run: one synced SQLite commit at a
    // time, at the offered rate, next to engine.db. An accept cannot be
    // answered sooner than its commit is synced.
    let (sync50, sync99) = disk_sync(&fixture.data_dir, phase);
    let (p50, p99, sent) = runtime.block_on(open_loop(
        &client,
        runs(serve.addr, path, &fixture.token),
        202,
        OFFERED_PER_SECOND,
        phase,
    ));
    fixture.wait_drained();
    let after = fixture.finished();

    // Triggers (issue 12): verified webhooks, each durably queued, against
    // the same run over the runs API (a token, no signature) in the same
    // run; then Discord's ack latency at 500 interactions per second.
    let (webhook_path, interactions_path) =
        runtime.block_on(paths(&client, serve.addr, &fixture.token));
    let unverified_rate = runtime.block_on(closed_loop(
        &client,
        runs(serve.addr, path, &fixture.token),
        202,
        phase,
    ));
    fixture.wait_drained();
    let webhook_rate = runtime.block_on(closed_loop(
        &client,
        github_webhook(serve.addr, &webhook_path),
        202,
        phase,
    ));
    fixture.wait_drained();
    let (ack50, ack99, acks) = runtime.block_on(open_loop(
        &client,
        discord_interaction(serve.addr, &interactions_path),
        200,
        INTERACTIONS_PER_SECOND,
        phase,
    ));
    fixture.wait_drained();

    // Idle: nothing sent for IDLE.
    std::thread::sleep(Duration::from_secs(2));
    let files_before = fixture.file_states();
    let (cpu_before, writes_before) = proc_usage(serve.child.id());
    std::thread::sleep(IDLE);
    let (cpu_after, writes_after) = proc_usage(serve.child.id());
    let files_after = fixture.file_states();
    let idle_cpu = (cpu_after - cpu_before) / IDLE.as_secs_f64() * 100.0;
    let idle_writes = (writes_after - writes_before) as f64 * 60.0 / IDLE.as_secs_f64();
    let files_changed = files_before != files_after;

    println!(
        "accept/bare_axum_202         {bare_rate:>8.0} requests/s ({CONNECTIONS} connections, {seconds} s)"
    );
    println!(
        "accept/narakim_durable       {accept_rate:>8.0} runs/s accepted ({:.2}x the baseline's time per request; goal >= 5000/s)",
        bare_rate / accept_rate
    );
    println!(
        "accept/completed             {completed_rate:>8.0} executions/s ({accepted} runs, accepted and finished)"
    );
    println!(
        "accept/latency_at_{OFFERED_PER_SECOND}_per_s     p50 {:.2} ms, p99 {:.2} ms ({sent} runs; goal p99 <= 10 ms)",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
    println!(
        "accept/disk_sync_at_{OFFERED_PER_SECOND}_per_s   p50 {:.2} ms, p99 {:.2} ms (one synced 1-row commit each, same disk, same run)",
        sync50.as_secs_f64() * 1000.0,
        sync99.as_secs_f64() * 1000.0
    );
    println!(
        "accept/idle                  CPU {idle_cpu:.2} % of a core, {idle_writes:.0} write calls/min, database files {} over {} s (goal: 0 writes)",
        if files_changed {
            "CHANGED"
        } else {
            "unchanged"
        },
        IDLE.as_secs()
    );
    println!(
        "accept/recorded              {} succeeded, {} failed of {} accepted in all",
        after.succeeded - before.succeeded,
        after.failed - before.failed,
        after.total() - before.total()
    );
    println!(
        "triggers/runs_api_baseline   {unverified_rate:>8.0} runs/s accepted (token, no signature; same server, same run)"
    );
    println!(
        "triggers/github_webhooks     {webhook_rate:>8.0} verified deliveries/s, each durably queued ({:.2}x the baseline's time per request)",
        unverified_rate / webhook_rate
    );
    println!(
        "triggers/discord_ack_at_{INTERACTIONS_PER_SECOND}_per_s p50 {:.2} ms, p99 {:.2} ms ({acks} interactions, Ed25519-verified, queued, answered type 5; goal p99 <= 50 ms)",
        ack50.as_secs_f64() * 1000.0,
        ack99.as_secs_f64() * 1000.0
    );
    drop(serve);
}

/// The baseline server: axum, one route answering 202 with no work.
fn bare_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = axum::Router::new().route(
            "/api/v1/teams/{team}/bots/{bot}/runs",
            axum::routing::post(|| async { axum::http::StatusCode::ACCEPTED }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening on http://{}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}

/// A child server and its address.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(mut command: Command) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("starting a server");
        let addr = listening::address(child.stdout.take().unwrap())
            .unwrap_or_else(|line| panic!("no address in {line:?}"));
        Server { child, addr }
    }

    fn bare() -> Server {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.env("NARAKIM_BENCH_BARE", "1");
        Server::start(command)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: the graceful path.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// A vault with a team, a bot, a token and the http-request extension.
struct Fixture {
    _root: tempfile::TempDir,
    data_dir: std::path::PathBuf,
    key_file: std::path::PathBuf,
    token: String,
    echo: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    queued: u64,
    succeeded: u64,
    failed: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.queued + self.succeeded + self.failed
    }
}

impl Fixture {
    fn new(echo: SocketAddr) -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let data_dir = root.path().join("data");
        let key_file = root.path().join("config/master.key");
        let f = Fixture {
            _root: root,
            data_dir,
            key_file,
            token: String::new(),
            echo,
        };
        f.narakim(&["init"]);
        f.narakim(&["team", "create", "ops"]);
        f.narakim(&["bot", "create", "greeter", "--team", "ops"]);
        f.narakim_with_stdin(
            &["secret", "set", "GITHUB_WEBHOOK_SECRET", "--bot", "greeter"],
            GITHUB_SECRET,
        );
        f.narakim_with_stdin(
            &["secret", "set", "DISCORD_PUBLIC_KEY", "--bot", "greeter"],
            &narakim::standin::discord::test_public_key(),
        );
        let wasm = build_extensions().join("http_request.wasm");
        f.narakim(&["extension", "install", wasm.to_str().unwrap()]);
        let token = f.narakim(&[
            "token",
            "create",
            "--team",
            "ops",
            "--can",
            "runs:start",
            "bots:deploy",
        ]);
        Fixture {
            token: token.trim().to_owned(),
            ..f
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_narakim"));
        command
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--key-file")
            .arg(&self.key_file)
            .env("NARAKIM_ACTOR", "bench");
        command
    }

    fn narakim(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn narakim_with_stdin(&self, args: &[&str], input: &str) {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn serve(&self) -> Server {
        let mut command = self.command();
        command.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit",
            "1000000",
            "--queue-bound",
            "1000000",
            "--upstream",
            &format!("echo.test=http://{}", self.echo),
        ]);
        command.env("RUST_LOG", "warn");
        Server::start(command)
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.data_dir.join("engine.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    fn finished(&self) -> Counts {
        let db = self.db();
        let count = |status: &str| -> u64 {
            db.query_row(
                "SELECT count(*) FROM executions WHERE status = ?1",
                [status],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or(0) as u64
        };
        Counts {
            queued: count("queued") + count("running"),
            succeeded: count("succeeded"),
            failed: count("failed"),
        }
    }

    fn total(&self) -> u64 {
        self.finished().total()
    }

    fn wait_drained(&self) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.finished().queued > 0 {
            assert!(Instant::now() < deadline, "the queue never drained");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Size and modification time of every file in the data directory.
    fn file_states(&self) -> Vec<(String, u64, std::time::SystemTime)> {
        let mut states: Vec<_> = std::fs::read_dir(&self.data_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                meta.is_file().then(|| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        meta.len(),
                        meta.modified().unwrap(),
                    )
                })
            })
            .collect();
        states.sort();
        states
    }
}

/// CPU seconds (user + system) and write calls of process `pid`.
fn proc_usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let syscw = io
        .lines()
        .find_map(|l| l.strip_prefix("syscw: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (ticks / hz, syscw)
}

fn build_extensions() -> std::path::PathBuf {
    wasm::build("extensions", None)
}

/// The deployed triggers' paths: the webhook's and the interactions'.
async fn paths(client: &HttpClient, addr: SocketAddr, token: &str) -> (String, String) {
    let request = hyper::Request::get(format!("http://{addr}/api/v1/teams/ops/bots/greeter"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let bot: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let path = |id: &str| {
        bot["triggers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["trigger"] == id)
            .and_then(|t| t["path"].as_str())
            .unwrap_or_else(|| panic!("no path for trigger {id}: {bot}"))
            .to_owned()
    };
    (path("push"), path("slash"))
}

async fn deploy(client: &HttpClient, addr: SocketAddr, token: &str) {
    let graph = serde_json::json!({
        "nodes": [{
            "id": "call", "extension": "http-request",
            "config": {"url": "https://echo.test/run"}
        }],
        "triggers": [
            {"id": "push", "kind": "webhook", "verify": {"scheme": "github", "secret": "GITHUB_WEBHOOK_SECRET"}},
            {"id": "slash", "kind": "discord-interactions"},
        ],
    });
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

/// Builds the `n`th request of a phase.
type MakeRequest = Arc<dyn Fn(usize) -> hyper::Request<Full<Bytes>> + Send + Sync>;

/// `POST …/runs` with a token: the runs API.
fn runs(addr: SocketAddr, path: &str, token: &str) -> MakeRequest {
    let (path, token) = (path.to_owned(), token.to_owned());
    Arc::new(move |n| {
        hyper::Request::post(format!("http://{addr}{path}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!("{{\"n\": {n}}}"))))
            .unwrap()
    })
}

/// A GitHub-signed webhook delivery to `path`, a new delivery each time.
fn github_webhook(addr: SocketAddr, path: &str) -> MakeRequest {
    let path = path.to_owned();
    Arc::new(move |n| {
        let body = format!("{{\"n\": {n}}}");
        let headers = narakim::trigger::verify::github::sign(
            GITHUB_SECRET.as_bytes(),
            Some(&format!("delivery-{n}")),
            body.as_bytes(),
        )
        .unwrap();
        let mut request = hyper::Request::post(format!("http://{addr}{path}"))
            .header("content-type", "application/json");
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        request.body(Full::new(Bytes::from(body))).unwrap()
    })
}

/// A signed Discord slash command interaction to `path`, a new one each
/// time, signed by the stand-in's test key.
fn discord_interaction(addr: SocketAddr, path: &str) -> MakeRequest {
    let path = path.to_owned();
    Arc::new(move |n| {
        let body = serde_json::json!({
            "id": format!("{}", 1_200_000_000_000_000_000u64 + n as u64),
            "application_id": "1100000000000000001",
            "type": 2,
            "token": format!("aW50ZXJhY3Rpb246bench{n:08}"),
            "version": 1,
            "data": {"id": "1100000000000000002", "name": "ping", "type": 1},
        })
        .to_string();
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let headers = narakim::standin::discord::sign_interaction(
            &narakim::standin::discord::TEST_INTERACTION_SEED,
            timestamp,
            body.as_bytes(),
        );
        let mut request = hyper::Request::post(format!("http://{addr}{path}"));
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        request.body(Full::new(Bytes::from(body))).unwrap()
    })
}

/// Requests per second with `CONNECTIONS` clients sending back to back.
async fn closed_loop(client: &HttpClient, make: MakeRequest, expect: u16, length: Duration) -> f64 {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CONNECTIONS {
        let (client, done, make) = (client.clone(), done.clone(), make.clone());
        tasks.spawn(async move {
            let mut n = c;
            while started.elapsed() < length {
                let response = client.request(make(n)).await.unwrap();
                assert_eq!(response.status(), expect, "a request was not accepted");
                let _ = response.into_body().collect().await;
                done.fetch_add(1, Ordering::Relaxed);
                n += CONNECTIONS;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// p50 and p99 latency at `OFFERED_PER_SECOND`, each request timed from
/// when it was due.
/// p50 and p99 of one synced commit (WAL, `synchronous = FULL`, as an
/// accept's) of a 1-row insert, issued at `OFFERED_PER_SECOND` for
/// `length`, in a scratch database in `dir`.
fn disk_sync(dir: &std::path::Path, length: Duration) -> (Duration, Duration) {
    let path = dir.join("disk-sync-baseline.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL);",
    )
    .unwrap();
    let count = (OFFERED_PER_SECOND * length.as_secs()) as usize;
    let interval = Duration::from_secs(1) / OFFERED_PER_SECOND as u32;
    let start = Instant::now();
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let due = start + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        conn.execute("INSERT INTO t (at, body) VALUES (?1, '{}')", [i as i64])
            .unwrap();
        times.push(due.elapsed());
    }
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (at(0.50), at(0.99))
}

async fn open_loop(
    client: &HttpClient,
    make: MakeRequest,
    expect: u16,
    per_second: u64,
    length: Duration,
) -> (Duration, Duration, usize) {
    let count = (per_second * length.as_secs()) as usize;
    let interval = Duration::from_secs(1) / per_second as u32;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let due = start + interval * i as u32;
        let (client, make) = (client.clone(), make.clone());
        tasks.spawn(async move {
            tokio::time::sleep_until(due).await;
            let response = client.request(make(i)).await.unwrap();
            assert_eq!(response.status(), expect, "a request was not accepted");
            let _ = response.into_body().collect().await;
            due.elapsed()
        });
    }
    let mut latencies = Vec::with_capacity(count);
    while let Some(latency) = tasks.join_next().await {
        latencies.push(latency.unwrap());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (at(0.50), at(0.99), count)
}
