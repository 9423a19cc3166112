//! Rendering the Bot Dossier: the real `narakim serve` binary (release
//! build) on a loopback port, a bot whose graph has 20 nodes
//! (`http-request`, each naming its own credential secret: 10 set for the
//! bot, 5 for the team, 5 missing in the draft), and a signed-in session.
//!
//! Measured in one run, one request at a time on a kept-alive connection:
//!
//! - **server time** of `GET …/configurations`, as the server's own request
//!   log records it (from the first layer to the last byte handed to
//!   hyper), p50 and p99: for the deployed graph, then for a draft (parsed
//!   and validated on every render);
//! - the client's round trip for the same requests, and for `/healthz` on
//!   the same server and connection (the baseline: HTTP and loopback
//!   alone).
//!
//! Goal (issue 13): server time p50 ≤ 5 ms. Run with
//! `cargo bench --bench ui`; `NARAKIM_BENCH_REQUESTS` sets the number of
//! requests per phase (default 2,000).

#[path = "support/wasm.rs"]
mod wasm;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODES: usize = 20;

fn main() {
    let requests: usize = std::env::var("NARAKIM_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let root = tempfile::tempdir().unwrap();
    let f = Fixture {
        data_dir: root.path().join("data"),
        key_file: root.path().join("config/master.key"),
    };
    f.narakim(&["init"], None);
    f.narakim(&["team", "create", "ops"], None);
    f.narakim(&["bot", "create", "greeter", "--team", "ops"], None);
    for i in 0..NODES {
        let name = format!("SECRET_{i:02}");
        let value = format!("bench-value-{i:02}-0123456789abcdef");
        match i {
            0..10 => f.narakim(&["secret", "set", &name, "--bot", "greeter"], Some(&value)),
            _ => f.narakim(&["secret", "set", &name, "--team", "ops"], Some(&value)),
        };
    }
    let wasm = wasm::build("extensions", Some("http-request")).join("http_request.wasm");
    f.narakim(&["extension", "install", wasm.to_str().unwrap()], None);
    let token = f
        .narakim(
            &[
                "token",
                "create",
                "--team",
                "ops",
                "--can",
                "secrets:list",
                "bots:deploy",
            ],
            None,
        )
        .trim()
        .to_owned();

    let (mut child, addr, log) = serve(&f);
    let mut c = Conn::open(addr);
    // Deploy 20 nodes, every secret set.
    let graph = |missing: usize| {
        let nodes: Vec<serde_json::Value> = (0..NODES + missing)
            .map(|i| {
                serde_json::json!({
                    "id": format!("call{i:02}"), "extension": "http-request",
                    "config": {"url": "https://api.example.test/x", "auth": {"secret": format!("SECRET_{i:02}"), "header": "Authorization"}},
                })
            })
            .collect();
        serde_json::json!({ "nodes": nodes }).to_string()
    };
    let (status, _, _) = c.send(
        "PUT",
        "/api/v1/teams/ops/bots/greeter/deployment",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        graph(0).as_bytes(),
    );
    assert_eq!(status, 200, "deploy failed");

    // Sign in as a browser would.
    let (_, headers, _) = c.send("GET", "/ui/sign-in", &[], b"");
    let signin = cookie(&headers, "nrk_signin");
    let form = format!("csrf={signin}&token={token}");
    let (status, headers, _) = c.send(
        "POST",
        "/ui/sign-in",
        &[
            ("cookie", &format!("nrk_signin={signin}")),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        form.as_bytes(),
    );
    assert_eq!(status, 303, "sign-in failed");
    let session = format!("nrk_session={}", cookie(&headers, "nrk_session"));
    let page = "/ui/teams/ops/bots/greeter/configurations";
    let (status, _, body) = c.send("GET", page, &[("cookie", &session)], b"");
    assert_eq!(status, 200);
    assert_eq!(body.matches("data-node=").count(), NODES, "not 20 rows");

    let healthz = time(&mut c, "/healthz", &[], requests);
    let deployed_mark = log.lock().unwrap().len();
    let deployed = time(&mut c, page, &[("cookie", &session)], requests);
    let deployed_server = server_times(&log.lock().unwrap()[deployed_mark..]);

    // A draft with 5 more nodes whose secrets are missing.
    let (_, _, body) = c.send("GET", page, &[("cookie", &session)], b"");
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let draft = graph(5);
    let form = format!(
        "csrf={csrf}&graph={}",
        percent_encoding::utf8_percent_encode(&draft, percent_encoding::NON_ALPHANUMERIC)
    );
    let (status, _, _) = c.send(
        "POST",
        "/ui/teams/ops/bots/greeter/draft",
        &[
            ("cookie", &session),
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &format!("http://{addr}")),
        ],
        form.as_bytes(),
    );
    assert_eq!(status, 303, "saving the draft failed");
    let (_, _, body) = c.send("GET", page, &[("cookie", &session)], b"");
    assert!(
        body.contains("5 required secrets are missing"),
        "the draft's warning"
    );
    let draft_mark = log.lock().unwrap().len();
    let drafted = time(&mut c, page, &[("cookie", &session)], requests);
    let draft_server = server_times(&log.lock().unwrap()[draft_mark..]);

    let _ = child.kill();
    let _ = child.wait();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "ui/healthz round trip (baseline): p50 {:.3} ms, p99 {:.3} ms",
        ms(healthz.0),
        ms(healthz.1)
    );
    println!(
        "ui/dossier 20 nodes, deployed graph: server p50 {:.3} ms, p99 {:.3} ms; round trip p50 {:.3} ms, p99 {:.3} ms ({} samples)",
        deployed_server.0,
        deployed_server.1,
        ms(deployed.0),
        ms(deployed.1),
        deployed_server.2
    );
    println!(
        "ui/dossier 25 nodes, draft graph (5 missing): server p50 {:.3} ms, p99 {:.3} ms; round trip p50 {:.3} ms, p99 {:.3} ms ({} samples)",
        draft_server.0,
        draft_server.1,
        ms(drafted.0),
        ms(drafted.1),
        draft_server.2
    );
}

struct Fixture {
    data_dir: std::path::PathBuf,
    key_file: std::path::PathBuf,
}

impl Fixture {
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

    fn narakim(&self, args: &[&str], input: Option<&str>) -> String {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = input {
            stdin.write_all(input.as_bytes()).unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// `serve` with its request log (stderr) collected line by line.
fn serve(f: &Fixture) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut child = f
        .command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit",
            "1000000",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("://").next().unwrap().parse().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (child, addr, log)
}

/// p50, p99 (ms) and count of the logged times of the dossier route.
fn server_times(lines: &[String]) -> (f64, f64, usize) {
    let mut times: Vec<f64> = lines
        .iter()
        .filter(|l| l.contains("route=/ui/teams/{team}/bots/{bot}/configurations"))
        .filter_map(|l| l.split("ms=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (at(0.50), at(0.99), times.len())
}

fn time(c: &mut Conn, path: &str, headers: &[(&str, &str)], n: usize) -> (Duration, Duration) {
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            let (status, _, _) = c.send("GET", path, headers, b"");
            assert_eq!(status, 200);
            started.elapsed()
        })
        .collect();
    samples.sort();
    (samples[n / 2], samples[(n * 99 / 100).min(n - 1)])
}

fn cookie(headers: &str, name: &str) -> String {
    headers
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim()))
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no cookie {name} in {headers}"))
        .to_owned()
}

/// One kept-alive HTTP/1.1 connection.
struct Conn {
    stream: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream: BufReader::new(stream),
            addr,
        }
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, String) {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        let stream = self.stream.get_mut();
        stream.write_all(request.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut head = String::new();
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).unwrap();
        (status, head, String::from_utf8_lossy(&body).into_owned())
    }
}
