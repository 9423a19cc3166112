//! Several `narakim serve` processes on one PostgreSQL database, with the
//! master key in KMS (moto): the cluster promises of the run queue.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{Server, echo};
use common::services::{self, TestDatabase};
use common::{Run, run_command};
use serde_json::json;

/// One node: a data directory of its own, the shared database and KMS key.
struct Node {
    root: tempfile::TempDir,
    database: String,
    kms_key: String,
    kms_url: String,
}

impl Node {
    fn command(&self) -> Command {
        let mut cmd = common::command();
        cmd.arg("--data-dir")
            .arg(self.root.path().join("data"))
            .args(["--database", &self.database])
            .args(["--kms-key-id", &self.kms_key])
            .args(["--kms-endpoint", &self.kms_url])
            .args(["--kms-region", "us-east-1"])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing");
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        run_command(cmd, None)
    }

    fn serve(&self, extra: &[&str]) -> Server {
        Server::start_command(self.command(), extra)
    }
}

/// A database, a KMS key and `n` nodes, set up as [`set_up`] says, with
/// its team token; `None` when a service is missing.
fn cluster(n: usize) -> Option<(TestDatabase, Vec<Node>, String)> {
    let db = TestDatabase::create()?;
    let kms = services::kms()?;
    let kms_url = services::moto_url()?;
    let nodes = (0..n)
        .map(|_| Node {
            root: tempfile::tempdir().unwrap(),
            database: db.url.clone(),
            kms_key: kms.key_id().to_owned(),
            kms_url: kms_url.clone(),
        })
        .collect::<Vec<_>>();
    let token = set_up(&nodes);
    Some((db, nodes, token))
}

const CAPS: [&str; 6] = [
    "secrets:write",
    "secrets:list",
    "bots:deploy",
    "bots:pause",
    "runs:start",
    "executions:read",
];

/// The vault, a bot, the http-request extension (installed through the
/// first node only) and a team token.
fn set_up(nodes: &[Node]) -> String {
    let first = &nodes[0];
    let created = first.run(&["init"]);
    // No key to back up: it is in KMS, and the advice says so.
    assert!(
        created.ok().contains("wrapped by that KMS key") && !created.stdout.contains("Back up"),
        "{created:?}"
    );
    for node in &nodes[1..] {
        // Every node's init finds the vault and checks its key.
        assert!(
            node.run(&["init"]).ok().contains("already"),
            "a second init"
        );
    }
    first.run(&["team", "create", "ops"]).ok();
    first
        .run(&["bot", "create", "greeter", "--team", "ops"])
        .ok();
    first
        .run(&[
            "extension",
            "install",
            common::extensions::extension("http-request")
                .to_str()
                .unwrap(),
        ])
        .ok();
    let mut args = vec!["token", "create", "--team", "ops", "--can"];
    args.extend(CAPS);
    first.run(&args).ok().trim().to_owned()
}

fn deploy(s: &Server, token: &str) {
    let graph = json!({"nodes": [{
        "id": "call", "extension": "http-request",
        "config": {"url": "https://echo.test/{{trigger.n}}"}
    }]});
    s.deploy_greeter(token, graph);
}

/// A graph whose one node calls echo.test with `API_TOKEN` as its bearer.
fn deploy_calling_with_secret(s: &Server, token: &str) {
    let graph = json!({"nodes": [{
        "id": "call", "extension": "http-request",
        "config": {"url": "https://echo.test/x", "auth": {"secret": "API_TOKEN"}}
    }]});
    s.deploy_greeter(token, graph);
}

fn count(db: &TestDatabase, sql: &str) -> i64 {
    db.conn()
        .query_one(sql, narakim::args![], |r| r.get(0))
        .unwrap()
}

/// Waits until no run is queued or running, then checks that the runs
/// recorded are exactly `accepted`, each node run once, and no job is left.
fn assert_recorded_exactly_once(db: &TestDatabase, accepted: &BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let open = count(
            db,
            "SELECT count(*) FROM executions WHERE status IN ('queued', 'running')",
        );
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} runs never finished");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ids: BTreeSet<String> = db
        .conn()
        .query_map("SELECT id FROM executions", narakim::args![], |r| r.get(0))
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(&ids, accepted, "a run was lost, or one was added");
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM (SELECT execution_id FROM node_runs GROUP BY execution_id HAVING count(*) > 1) AS d"
        ),
        0,
        "a run was recorded twice"
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM jobs"),
        0,
        "jobs left behind"
    );
}

/// The tests that share the PostgreSQL server take turns with the one
/// that restarts it.
static SERVER: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// 3,000 runs across three nodes, one killed (-9) half way: every
/// accepted run is recorded exactly once, none is lost, none runs twice,
/// and a retry through another node finds its run.
#[test]
fn three_nodes_share_one_queue_and_a_killed_node_loses_nothing() {
    const RUNS: usize = 3000;
    let _turn = SERVER.read().unwrap_or_else(|e| e.into_inner());
    let Some((db, nodes, token)) = cluster(3) else {
        return;
    };
    let (echo, hits) = echo(Duration::from_millis(2));
    let upstream = format!("echo.test=http://{echo}");
    let flags = [
        "--upstream",
        &upstream,
        "--workers",
        "2",
        "--rate-limit",
        "100000",
        "--lease-seconds",
        "3",
        "--poll-seconds",
        "1",
    ];
    let mut servers: Vec<Option<Server>> = nodes.iter().map(|n| Some(n.serve(&flags))).collect();
    deploy(servers[0].as_ref().unwrap(), &token);
    let runs = "/api/v1/teams/ops/bots/greeter/runs";
    let mut accepted = BTreeSet::new();
    let mut killed_log = String::new();
    for n in 0..RUNS {
        if n == RUNS / 2 {
            let killed = servers[1].take().unwrap();
            killed_log = killed.kill();
        }
        let live: Vec<&Server> = servers.iter().flatten().collect();
        let s = live[n % live.len()];
        let key = format!("k-{n}");
        let r = s.call_with(
            "POST",
            runs,
            Some(&token),
            Some(json!({"n": n})),
            &[("Idempotency-Key", &key)],
        );
        assert_eq!(r.status, 202, "{r:?}\n{}", s.log());
        accepted.insert(r.json()["execution_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(accepted.len(), RUNS);
    // A client's retry through another node finds the run it started.
    let retry = servers[2].as_ref().unwrap().call_with(
        "POST",
        runs,
        Some(&token),
        Some(json!({"n": 0})),
        &[("Idempotency-Key", "k-0")],
    );
    assert_eq!(retry.json()["replayed"], true, "{retry:?}");

    assert_recorded_exactly_once(&db, &accepted);
    let interrupted = count(
        &db,
        "SELECT count(*) FROM executions WHERE status = 'failed' AND summary LIKE 'interrupted%'",
    );
    let failed_otherwise = count(
        &db,
        "SELECT count(*) FROM executions WHERE status = 'failed' AND summary NOT LIKE 'interrupted%'",
    );
    assert_eq!(failed_otherwise, 0);
    assert!(
        interrupted <= 2,
        "the killed node ran two runs at a time, yet {interrupted} were interrupted"
    );
    // Each run that succeeded called the echo once; an interrupted one at
    // most once.
    let succeeded = RUNS - interrupted as usize;
    let calls = *hits.lock().unwrap();
    assert!(
        (succeeded..=RUNS).contains(&calls),
        "{calls} calls for {succeeded} succeeded runs"
    );
    // Every node ran some: the queue was shared.
    assert!(killed_log.contains("execution finished"), "{killed_log}");
    for s in servers.iter().flatten() {
        assert!(s.log().contains("execution finished"), "{}", s.log());
    }
}

/// Waits until the execution a run answer points at has finished.
fn finished(s: &Server, token: &str, accepted: &common::http::Response) -> serde_json::Value {
    s.wait_finished(token, accepted.header("location").expect("a Location"))
}

/// A secret overwritten through one node is what the next execution on
/// every node sends; a pause through one node stops runs on all of them;
/// a delete through one removes the bot and its records everywhere.
#[test]
fn an_overwrite_and_a_pause_through_one_node_take_effect_on_every_node() {
    let _turn = SERVER.read().unwrap_or_else(|e| e.into_inner());
    let Some((db, nodes, token)) = cluster(3) else {
        return;
    };
    let recorder = common::recorder::Recorder::start(false);
    let upstream = recorder.upstream("echo.test");
    let flags = [
        "--upstream",
        &upstream,
        "--workers",
        "1",
        "--poll-seconds",
        "1",
    ];
    let servers: Vec<Server> = nodes.iter().map(|n| n.serve(&flags)).collect();
    let put = |s: &Server, value: &str| {
        let r = s.call(
            "PUT",
            "/api/v1/teams/ops/bots/greeter/secrets/API_TOKEN",
            Some(&token),
            Some(json!({ "value": value })),
        );
        assert!(r.status == 200 || r.status == 201, "{r:?}");
    };
    put(&servers[0], "first-token-value-1");
    deploy_calling_with_secret(&servers[0], &token);
    let runs = "/api/v1/teams/ops/bots/greeter/runs";
    let run_everywhere = |expect: &str| {
        let before = recorder.requests().len();
        for s in &servers {
            let r = s.call("POST", runs, Some(&token), Some(json!({})));
            assert_eq!(r.status, 202, "{r:?}");
            let done = finished(s, &token, &r);
            assert_eq!(done["status"], "succeeded", "{done}");
        }
        let sent = recorder.requests();
        assert_eq!(sent.len(), before + 3);
        for request in &sent[before..] {
            let text = String::from_utf8_lossy(request).to_lowercase();
            assert!(
                text.contains(&format!("authorization: bearer {expect}")),
                "{text}"
            );
        }
    };
    run_everywhere("first-token-value-1");
    put(&servers[1], "second-token-value-2");
    run_everywhere("second-token-value-2");

    // Paused through node 2: no node accepts a run.
    let r = servers[2].call(
        "POST",
        "/api/v1/teams/ops/bots/greeter/pause",
        Some(&token),
        None,
    );
    assert!(r.status < 300, "{r:?}");
    for s in &servers {
        let r = s.call("POST", runs, Some(&token), Some(json!({})));
        assert_eq!(r.status, 409, "{r:?}");
    }

    // Deleted through node 1: the bot, its secret and its records go in
    // one transaction, and no node knows the bot any more.
    let r = servers[1].call(
        "DELETE",
        "/api/v1/teams/ops/bots/greeter",
        Some(&token),
        None,
    );
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM executions WHERE bot = 'greeter'"),
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM secrets"), 0);
    for s in &servers {
        let r = s.call("POST", runs, Some(&token), Some(json!({})));
        assert_eq!(r.status, 404, "{r:?}");
    }
}

/// The value of cookie `name` that `r` sets.
fn set_cookie(r: &common::http::Response, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The hidden `csrf` field of a page.
fn csrf_field(page: &common::http::Response) -> String {
    let text = page.text();
    let at = text
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no CSRF field in {page:?}"));
    let rest = &text[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// Behind a load balancer each request of a browser may reach another
/// node: a session opened on one is known on all, a value sealed to the
/// key one node's page showed opens on another, and a sign-out on one
/// ends the session everywhere. Nothing of the token or the session id
/// is stored.
#[test]
fn the_web_ui_works_whichever_node_serves_each_request() {
    let _turn = SERVER.read().unwrap_or_else(|e| e.into_inner());
    let Some((db, nodes, token)) = cluster(3) else {
        return;
    };
    let recorder = common::recorder::Recorder::start(false);
    let upstream = recorder.upstream("echo.test");
    let flags = ["--upstream", &upstream, "--workers", "1"];
    let servers: Vec<Server> = nodes.iter().map(|n| n.serve(&flags)).collect();
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    let get = |s: &Server, path: &str, cookie: &str| {
        common::http::request(s.addr, "GET", path, &[("Cookie", cookie)], b"")
    };
    let post = |s: &Server, path: &str, cookie: &str, body: &[u8]| {
        common::http::request(
            s.addr,
            "POST",
            path,
            &[
                ("Cookie", cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body,
        )
    };

    // The sign-in page from A, the sign-in posted to B.
    let page = get(a, "/ui/sign-in", "");
    let sign_in = set_cookie(&page, "nrk_signin").expect("a sign-in cookie");
    assert_eq!(csrf_field(&page), sign_in);
    let signed = post(
        b,
        "/ui/sign-in",
        &format!("nrk_signin={sign_in}"),
        &form(&[("csrf", &sign_in), ("token", &token)]),
    );
    assert_eq!(signed.status, 303, "{signed:?}");
    let session = set_cookie(&signed, "nrk_session").expect("a session cookie");
    let cookie = format!("nrk_session={session}");

    // Every node knows the session, and shows the same CSRF token.
    let secrets = "/ui/teams/ops/secrets";
    let csrf: Vec<String> = servers
        .iter()
        .map(|s| {
            let page = get(s, secrets, &cookie);
            assert_eq!(page.status, 200, "{page:?}");
            csrf_field(&page)
        })
        .collect();
    assert!(csrf.iter().all(|t| *t == csrf[0]), "{csrf:?}");

    // Every node offers the same sealing key; a value sealed to A's is
    // saved through B.
    let keys: Vec<serde_json::Value> = servers
        .iter()
        .map(|s| s.call("GET", "/api/v1/seal-key", None, None).json())
        .collect();
    assert!(keys.iter().all(|k| k["key_id"] == keys[0]["key_id"]));
    let value = "sealed-on-a-opened-on-b-7Hq2";
    let binding = narakim::service::seal::Binding::of(
        &narakim::vault::Scope::Team("ops".into()),
        &narakim::vault::SecretName::new("API_TOKEN").unwrap(),
        narakim::vault::Precondition::Absent,
    )
    .unwrap();
    let envelope = narakim::service::seal::seal(
        keys[0]["public_key"].as_str().unwrap(),
        keys[0]["key_id"].as_str().unwrap(),
        &binding,
        value,
    )
    .unwrap();
    let sealed = json!({
        "key_id": envelope.key_id, "enc": envelope.enc, "ciphertext": envelope.ciphertext,
    })
    .to_string();
    let saved = post(
        b,
        secrets,
        &cookie,
        &form(&[
            ("csrf", &csrf[0]),
            ("name", "API_TOKEN"),
            ("expected", "new"),
            ("sealed", &sealed),
        ]),
    );
    assert_eq!(saved.status, 303, "{saved:?}");

    // C runs with it (the bot inherits the team's secret).
    deploy_calling_with_secret(c, &token);
    let r = c.call(
        "POST",
        "/api/v1/teams/ops/bots/greeter/runs",
        Some(&token),
        Some(json!({})),
    );
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(finished(c, &token, &r)["status"], "succeeded");
    let sent = recorder.requests();
    let sent = String::from_utf8_lossy(sent.last().unwrap()).into_owned();
    assert!(sent.contains(&format!("Bearer {value}")), "{sent}");

    // Neither the token nor the session id is in the database, in any
    // table.
    let dump: String = db
        .conn()
        .query_map(
            "SELECT string_agg(t::text, ' ') FROM (
                 SELECT row_to_json(s)::text AS t FROM ui_sessions s
                 UNION ALL SELECT row_to_json(k)::text FROM api_tokens k
                 UNION ALL SELECT row_to_json(a)::text FROM audit a) x",
            narakim::args![],
            |r| r.get::<Option<String>>(0),
        )
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert!(dump.contains("session.open"), "{dump}");
    for needle in [&token, &session, &sign_in] {
        assert!(!dump.contains(needle.as_str()));
    }

    // Signed out through C: A no longer knows the session.
    let out = post(c, "/ui/sign-out", &cookie, &form(&[("csrf", &csrf[0])]));
    assert_eq!(out.status, 303, "{out:?}");
    let after = get(a, secrets, &cookie);
    assert!(
        after.status == 303 && after.header("location") == Some("/ui/sign-in"),
        "{after:?}"
    );
    // A made-up session's form is refused on every node.
    let forged = post(
        a,
        secrets,
        "nrk_session=forged",
        &form(&[("csrf", &csrf[0]), ("name", "API_TOKEN"), ("expected", "1")]),
    );
    assert_eq!(forged.status, 403, "{forged:?}");
}

/// The same webhook delivery, and the same `Idempotency-Key`, sent to all
/// three nodes at the same moment: each makes one run, and every node
/// answers with that run.
#[test]
fn a_delivery_or_an_idempotency_key_sent_to_every_node_at_once_runs_once() {
    use hmac::{Hmac, KeyInit, Mac};
    let _turn = SERVER.read().unwrap_or_else(|e| e.into_inner());
    let Some((db, nodes, token)) = cluster(3) else {
        return;
    };
    let (echo_addr, _) = echo(Duration::ZERO);
    let upstream = format!("echo.test=http://{echo_addr}");
    let servers: Vec<Server> = nodes
        .iter()
        .map(|n| n.serve(&["--upstream", &upstream]))
        .collect();
    let secret = "github-webhook-secret-Zq8";
    let r = servers[0].call(
        "PUT",
        "/api/v1/teams/ops/bots/greeter/secrets/GITHUB_WEBHOOK_SECRET",
        Some(&token),
        Some(json!({ "value": secret })),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let graph = json!({
        "nodes": [{
            "id": "call", "extension": "http-request",
            "config": {"url": "https://echo.test/{{trigger.body.n}}"}
        }],
        "triggers": [{"id": "gh", "kind": "webhook",
                      "verify": {"scheme": "github", "secret": "GITHUB_WEBHOOK_SECRET"}}],
    });
    servers[1].deploy_greeter(&token, graph);
    let bot = servers[2].call("GET", "/api/v1/teams/ops/bots/greeter", Some(&token), None);
    assert_eq!(bot.status, 200, "{bot:?}");
    let path = bot.json()["triggers"][0]["path"]
        .as_str()
        .expect("the webhook's path")
        .to_owned();

    // Each round: one request per node, released together.
    let at_once = |send: &(dyn Fn(&Server) -> common::http::Response + Sync)| {
        let barrier = std::sync::Barrier::new(servers.len());
        let answers: Vec<serde_json::Value> = std::thread::scope(|scope| {
            let handles: Vec<_> = servers
                .iter()
                .map(|s| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        let r = send(s);
                        assert_eq!(r.status, 202, "{r:?}");
                        r.json()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ids: BTreeSet<&str> = answers
            .iter()
            .map(|a| a["execution_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 1, "one run for all three: {answers:?}");
        let first = answers.iter().filter(|a| a["replayed"] == false).count();
        assert_eq!(first, 1, "exactly one made the run: {answers:?}");
    };
    const ROUNDS: usize = 10;
    for n in 0..ROUNDS {
        let body = json!({ "n": n }).to_string();
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        let signature: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let signature = format!("sha256={signature}");
        let delivery = format!("delivery-{n}");
        at_once(&|s: &Server| {
            common::http::request(
                s.addr,
                "POST",
                &path,
                &[
                    ("Content-Type", "application/json"),
                    ("X-Hub-Signature-256", &signature),
                    ("X-GitHub-Delivery", &delivery),
                    ("X-GitHub-Event", "push"),
                ],
                body.as_bytes(),
            )
        });
        let key = format!("same-key-{n}");
        at_once(&|s: &Server| {
            s.call_with(
                "POST",
                "/api/v1/teams/ops/bots/greeter/runs",
                Some(&token),
                Some(json!({ "n": n })),
                &[("Idempotency-Key", &key)],
            )
        });
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM executions"),
        2 * ROUNDS as i64
    );
}

/// PostgreSQL restarts while two nodes accept and run: clients retry what
/// was refused meanwhile, and every accepted run completes exactly once,
/// with no node restarted.
#[test]
fn the_database_restarting_under_load_loses_nothing() {
    const RUNS: usize = 600;
    let _alone = SERVER.write().unwrap_or_else(|e| e.into_inner());
    let Some(ctl) = std::env::var("NARAKIM_TEST_PG_CTL")
        .ok()
        .filter(|c| !c.is_empty())
    else {
        services::missing("a PostgreSQL server this test may restart (NARAKIM_TEST_PG_CTL)");
        return;
    };
    let Some((db, nodes, token)) = cluster(2) else {
        return;
    };
    let (echo, hits) = echo(Duration::from_millis(2));
    let upstream = format!("echo.test=http://{echo}");
    let flags = [
        "--upstream",
        &upstream,
        "--workers",
        "2",
        "--rate-limit",
        "100000",
        "--lease-seconds",
        "15",
        "--poll-seconds",
        "1",
    ];
    let servers: Vec<Server> = nodes.iter().map(|n| n.serve(&flags)).collect();
    deploy(&servers[0], &token);
    let runs = "/api/v1/teams/ops/bots/greeter/runs";
    let mut accepted = BTreeSet::new();
    let mut refused = 0;
    let mut restart = None;
    for n in 0..RUNS {
        if n == RUNS / 3 {
            let ctl = ctl.clone();
            restart = Some(std::thread::spawn(move || {
                let status = Command::new("sh")
                    .arg("-c")
                    .arg(format!("{ctl} restart -m fast"))
                    .stdout(std::process::Stdio::null())
                    .status()
                    .unwrap();
                assert!(status.success(), "pg_ctl restart failed");
            }));
        }
        let key = format!("k-{n}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = &servers[(n + refused) % servers.len()];
            let r = s.call_with(
                "POST",
                runs,
                Some(&token),
                Some(json!({"n": n})),
                &[("Idempotency-Key", &key)],
            );
            if r.status == 202 {
                accepted.insert(r.json()["execution_id"].as_str().unwrap().to_owned());
                break;
            }
            // Refused while the database was away: nothing was accepted.
            assert!(r.status >= 500, "{r:?}");
            assert!(Instant::now() < deadline, "never accepted again: {r:?}");
            refused += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    restart.unwrap().join().unwrap();
    assert!(
        refused > 0,
        "the restart refused nothing: the test proves nothing"
    );
    assert_eq!(accepted.len(), RUNS);

    assert_recorded_exactly_once(&db, &accepted);
    let succeeded = count(
        &db,
        "SELECT count(*) FROM executions WHERE status = 'succeeded'",
    );
    assert_eq!(
        succeeded as usize, RUNS,
        "every accepted run ran to the end"
    );
    assert_eq!(*hits.lock().unwrap(), RUNS, "each ran its request once");
}

/// A schedule deployed through one node fires once per tick across the
/// cluster, though every node's scheduler sees it due.
#[test]
fn a_schedule_fires_once_per_tick_across_the_cluster() {
    let _turn = SERVER.read().unwrap_or_else(|e| e.into_inner());
    let Some((db, nodes, token)) = cluster(3) else {
        return;
    };
    let (echo, hits) = echo(Duration::ZERO);
    let upstream = format!("echo.test=http://{echo}");
    // The clock the test controls: seconds added to the system's.
    let clock = nodes[0].root.path().join("clock-offset");
    std::fs::write(&clock, "0").unwrap();
    let serve = |node: &Node| {
        let mut cmd = node.command();
        cmd.env("NARAKIM_TEST_CLOCK", &clock);
        Server::start_command(cmd, &["--upstream", &upstream, "--poll-seconds", "1"])
    };
    let mut first_node = Some(serve(&nodes[0]));
    let graph = json!({
        "nodes": [{"id": "call", "extension": "http-request",
                   "config": {"url": "https://echo.test/tick"}}],
        "triggers": [{"id": "every-minute", "kind": "schedule", "cron": "* * * * *",
                      "timezone": "UTC", "missed": "skip"}],
    });
    // The others start first: they hear of the deploy by NOTIFY.
    let _others: Vec<Server> = nodes[1..].iter().map(serve).collect();
    let deployer = first_node.as_ref().unwrap();
    deployer.deploy_greeter(&token, graph);
    let bot = deployer.call("GET", "/api/v1/teams/ops/bots/greeter", Some(&token), None);
    let first: i64 = bot.json()["triggers"][0]["next_fire"]
        .as_str()
        .unwrap_or_else(|| panic!("no next fire: {bot:?}"))
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    for tick in 0..3i64 {
        if tick == 1 {
            // The deploying node goes: the other two race for each fire.
            first_node.take().unwrap().kill();
        }
        let due = first + tick * 60_000;
        let offset = ((due - now_ms()) / 1000 + 1).max(0);
        std::fs::write(&clock, offset.to_string()).unwrap();
        let want = tick + 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        while count(&db, "SELECT count(*) FROM executions") < want {
            assert!(Instant::now() < deadline, "tick {tick} never fired");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            count(&db, "SELECT count(*) FROM executions"),
            want,
            "tick {tick} fired more than once"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while *hits.lock().unwrap() < 3 {
        assert!(Instant::now() < deadline, "the fires never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(*hits.lock().unwrap(), 3);
}
