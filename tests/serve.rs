//! `narakim serve` through the real binary: a random loopback port, a real
//! SQLite file, real HTTP. Tokens, scopes and capabilities on every route,
//! write-only secrets with versions, bad input answered with problem
//! details and nothing changed, the durable queue with its recovery rule,
//! and a graceful stop.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestVault;
use common::extensions::extension;
use common::http::{Response, request, send_raw};
use common::server::{Server, echo};
use serde_json::{Value, json};

/// A value planted in the vault; it must never come back out.
const PLANTED: &str = "planted-Zq8vX2mK9wR4tY7uP3sL6nB1cF5hJ0dG";

/// Two teams, a bot in each (and a second bot in `ops`), a planted secret.
fn vault() -> TestVault {
    let v = TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["team", "create", "other"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    v.run(&["bot", "create", "sibling", "--team", "ops"]).ok();
    v.run(&["bot", "create", "stranger", "--team", "other"])
        .ok();
    v.set("PLANTED", "--bot", "greeter", PLANTED);
    v
}

fn token(v: &TestVault, args: &[&str]) -> String {
    v.token(args)
}

const ALL: [&str; 8] = [
    "secrets:write",
    "secrets:list",
    "bots:deploy",
    "bots:pause",
    "runs:start",
    "executions:read",
    "extensions:install",
    "audit:read",
];

fn all_caps(scope: &[&str]) -> Vec<String> {
    let _ = scope;
    ALL.iter().map(|s| s.to_string()).collect()
}

fn team_token(v: &TestVault, team: &str) -> String {
    let caps = all_caps(&[]);
    let mut args = vec!["--team", team, "--can"];
    args.extend(caps.iter().map(String::as_str));
    token(v, &args)
}

fn bot_token(v: &TestVault, team: &str, bot: &str) -> String {
    let caps = all_caps(&[]);
    let mut args = vec!["--team", team, "--bot", bot, "--can"];
    args.extend(caps.iter().map(String::as_str));
    token(v, &args)
}

#[track_caller]
fn assert_problem(r: &Response, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{r:?}"
    );
    let body = r.json();
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("https://narakim.dev/problems/"),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(detail.contains(needle), "expected {needle:?} in {detail:?}");
}

#[test]
fn health_readiness_and_metrics_answer_without_a_token() {
    let v = vault();
    let s = Server::start(&v, &[]);
    assert!(s.addr.ip().is_loopback());
    assert_eq!(s.call("GET", "/healthz", None, None).status, 200);
    assert_eq!(
        s.call("GET", "/readyz", None, None).json()["status"],
        "ready"
    );
    let metrics = s.call("GET", "/metrics", None, None);
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    for name in [
        "narakim_executions_total",
        "narakim_queue_depth",
        "narakim_node_duration_seconds_bucket",
        "narakim_egress_refusals_total",
        "narakim_api_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let (status, log) = s.stop();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn it_refuses_plain_http_off_loopback_and_a_second_server_on_one_data_dir() {
    let v = vault();
    let out = v.run(&["serve", "--listen", "0.0.0.0:0"]);
    out.fails_with("refusing to serve plain HTTP on 0.0.0.0:0");
    out.fails_with("--tls-cert and --tls-key");
    let out = v.run(&["serve", "--tls-cert", "/nonexistent.pem"]);
    assert_ne!(out.code, 0, "{out:?}");
    let out = v.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "/nonexistent.pem",
        "--tls-key",
        "/nonexistent.key",
    ]);
    out.fails_with("cannot read the TLS certificate /nonexistent.pem");

    let s = Server::start(&v, &[]);
    let second = v.run(&["serve", "--listen", "127.0.0.1:0"]);
    second.fails_with("another narakim serve already uses the data directory");
    drop(s);

    let uninitialised = TestVault::uninitialised();
    assert_ne!(
        uninitialised
            .run(&["serve", "--listen", "127.0.0.1:0"])
            .code,
        0
    );
}

#[test]
fn every_route_checks_the_token_its_scope_and_its_capabilities() {
    let v = vault();
    let ops = team_token(&v, "ops");
    let other = team_token(&v, "other");
    let greeter = bot_token(&v, "ops", "greeter");
    let list_only = token(&v, &["--team", "ops", "--can", "secrets:list"]);
    let admin = token(&v, &["--admin", "--can", "audit:read"]);
    let s = Server::start(&v, &[]);

    let bot_routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/v1/teams/ops/bots/greeter".into(), None),
        ("GET", "/api/v1/teams/ops/bots/greeter/secrets".into(), None),
        (
            "PUT",
            "/api/v1/teams/ops/bots/greeter/secrets/NEW_ONE".into(),
            Some(json!({"value": "a-new-value-123"})),
        ),
        (
            "DELETE",
            "/api/v1/teams/ops/bots/greeter/secrets/NOPE".into(),
            None,
        ),
        (
            "GET",
            "/api/v1/teams/ops/bots/greeter/secret-requirements".into(),
            None,
        ),
        (
            "GET",
            "/api/v1/teams/ops/bots/greeter/deployment".into(),
            None,
        ),
        (
            "PUT",
            "/api/v1/teams/ops/bots/greeter/deployment".into(),
            Some(json!({"nodes": []})),
        ),
        ("POST", "/api/v1/teams/ops/bots/greeter/pause".into(), None),
        ("POST", "/api/v1/teams/ops/bots/greeter/resume".into(), None),
        (
            "POST",
            "/api/v1/teams/ops/bots/greeter/runs".into(),
            Some(json!({})),
        ),
        (
            "GET",
            "/api/v1/teams/ops/bots/greeter/executions".into(),
            None,
        ),
        (
            "GET",
            "/api/v1/teams/ops/bots/greeter/executions/exe_0".into(),
            None,
        ),
    ];
    let team_routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/v1/teams/ops".into(), None),
        ("GET", "/api/v1/teams/ops/bots".into(), None),
        (
            "POST",
            "/api/v1/teams/ops/bots".into(),
            Some(json!({"name": "newbot"})),
        ),
        ("DELETE", "/api/v1/teams/ops/bots/sibling".into(), None),
        ("GET", "/api/v1/teams/ops/secrets".into(), None),
        (
            "PUT",
            "/api/v1/teams/ops/secrets/TEAM_ONE".into(),
            Some(json!({"value": "team-value-12345"})),
        ),
        ("DELETE", "/api/v1/teams/ops/secrets/NOPE".into(), None),
    ];
    let admin_routes: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            "/api/v1/teams".into(),
            Some(json!({"name": "newteam"})),
        ),
        ("DELETE", "/api/v1/teams/other".into(), None),
        ("GET", "/api/v1/audit".into(), None),
    ];

    let before = v.dump();
    for (method, path, body) in bot_routes.iter().chain(&team_routes).chain(&admin_routes) {
        // No token, a malformed one, a well-formed unknown one.
        assert_problem(
            &s.call(method, path, None, body.clone()),
            401,
            "needs an API token",
        );
        assert_problem(
            &s.call(method, path, Some("nrk_nope"), body.clone()),
            401,
            "",
        );
        let unknown = format!("nrk_{}", "A".repeat(49));
        assert_eq!(
            s.call(method, path, Some(&unknown), body.clone()).status,
            401,
            "{method} {path}"
        );
        // Another team's token, whatever its capabilities.
        assert_problem(
            &s.call(method, path, Some(&other), body.clone()),
            403,
            "scoped to team other",
        );
    }
    for (method, path, body) in &team_routes {
        // A bot token never reaches its team's own resources.
        assert_problem(
            &s.call(method, path, Some(&greeter), body.clone()),
            403,
            "scoped to bot greeter",
        );
    }
    for (method, path, body) in &admin_routes {
        assert_problem(
            &s.call(method, path, Some(&ops), body.clone()),
            403,
            "scoped to team ops",
        );
    }
    // A bot token on its sibling's routes.
    for (method, path, body) in &bot_routes {
        let sibling = path.replace("/bots/greeter", "/bots/sibling");
        assert_problem(
            &s.call(method, &sibling, Some(&greeter), body.clone()),
            403,
            "scoped to bot greeter",
        );
    }
    // A token without the capability.
    for (method, path, body) in [
        (
            "PUT",
            "/api/v1/teams/ops/bots/greeter/secrets/X_Y",
            Some(json!({"value": "a-new-value-123"})),
        ),
        (
            "POST",
            "/api/v1/teams/ops/bots/greeter/runs",
            Some(json!({})),
        ),
        ("POST", "/api/v1/teams/ops/bots/greeter/pause", None),
        (
            "PUT",
            "/api/v1/teams/ops/bots/greeter/deployment",
            Some(json!({"nodes": []})),
        ),
        ("GET", "/api/v1/teams/ops/bots/greeter/executions", None),
    ] {
        assert_problem(
            &s.call(method, path, Some(&list_only), body),
            403,
            "lacks the capability",
        );
    }
    // The admin token's scope covers everything, its capabilities do not.
    assert_problem(
        &s.call(
            "PUT",
            "/api/v1/teams/ops/secrets/X_Y",
            Some(&admin),
            Some(json!({"value": "a-new-value-123"})),
        ),
        403,
        "lacks the capability secrets:write",
    );
    drop(s);
    assert_eq!(before, v.dump(), "a refused request changed the vault");
}

#[test]
fn secrets_are_write_only_versioned_and_audited_as_the_token() {
    let v = vault();
    let ops = team_token(&v, "ops");
    let token_id = v
        .run(&["token", "list"])
        .ok()
        .split_whitespace()
        .find(|w| w.starts_with("tok_"))
        .unwrap()
        .to_owned();
    let s = Server::start(&v, &[]);
    let path = "/api/v1/teams/ops/bots/greeter/secrets/API_KEY";

    let first = "first-value-0123456789";
    let created = s.call("PUT", path, Some(&ops), Some(json!({ "value": first })));
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json()["version"], 1);
    assert_eq!(created.header("etag"), Some("\"1\""));

    let second = "second-value-9876543210";
    let overwritten = s.call("PUT", path, Some(&ops), Some(json!({ "value": second })));
    assert_eq!(overwritten.status, 200, "{overwritten:?}");
    assert_eq!(overwritten.json()["version"], 2);

    // A stale If-Match changes nothing.
    let before = v.dump();
    let stale = s.call_with(
        "PUT",
        path,
        Some(&ops),
        Some(json!({"value": "third-value-000000"})),
        &[("If-Match", "\"1\"")],
    );
    assert_problem(&stale, 412, "is at version 2, not the expected version 1");
    assert_eq!(stale.json()["current_version"], 2);
    let create_only = s.call_with(
        "PUT",
        path,
        Some(&ops),
        Some(json!({"value": "third-value-000000"})),
        &[("If-None-Match", "*")],
    );
    assert_problem(&create_only, 412, "already exists");
    let stale_delete = s.call_with("DELETE", path, Some(&ops), None, &[("If-Match", "\"7\"")]);
    assert_problem(&stale_delete, 412, "not the expected version 7");
    assert_eq!(before, v.dump(), "a refused write changed the vault");

    // The current If-Match works.
    let third = "third-value-000000";
    let r = s.call_with(
        "PUT",
        path,
        Some(&ops),
        Some(json!({ "value": third })),
        &[("If-Match", "\"2\"")],
    );
    assert_eq!(r.status, 200, "{r:?}");

    let list = s.call(
        "GET",
        "/api/v1/teams/ops/bots/greeter/secrets",
        Some(&ops),
        None,
    );
    assert_eq!(list.status, 200);
    let secrets = list.json()["secrets"].as_array().unwrap().clone();
    let entry = secrets.iter().find(|e| e["name"] == "API_KEY").unwrap();
    assert_eq!(entry["version"], 3);
    assert_eq!(entry["scope"], "bot");
    assert_eq!(entry["updated_by"], token_id.as_str());
    assert!(entry.get("value").is_none());

    let audit = v.run(&["audit", "list"]).ok().to_owned();
    assert!(
        audit.contains(&token_id),
        "the audit names the token: {audit}"
    );

    let deleted = s.call("DELETE", path, Some(&ops), None);
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_problem(
        &s.call("DELETE", path, Some(&ops), None),
        404,
        "no secret API_KEY",
    );

    // Nothing written ever comes back, in any response, log line or file.
    let (status, log) = s.stop();
    assert!(status.success());
    for value in [PLANTED, first, second, third] {
        assert!(!log.contains(value), "{value} in the log:\n{log}");
        assert!(!list.text().contains(value));
    }
    // Every file of the data directory: both databases and their WALs.
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&v.data_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    assert!(files.iter().any(|(p, _)| p.ends_with("engine.db")));
    for value in [PLANTED, first, second, third] {
        common::assert_absent(&files, value);
    }
    assert!(!log.to_lowercase().contains("authorization"), "{log}");
    assert!(!log.contains(&ops[4..]), "the token is in the log");
}

#[test]
fn bad_input_gets_a_precise_problem_and_changes_nothing() {
    let v = vault();
    let ops = team_token(&v, "ops");
    let admin = token(&v, &["--admin", "--can", "audit:read"]);
    let revoked = token(&v, &["--team", "ops", "--can", "secrets:list"]);
    let revoked_id = v
        .run(&["token", "list"])
        .ok()
        .lines()
        .filter(|l| l.contains("secrets:list") && !l.contains("secrets:write"))
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("tok_")))
        .unwrap()
        .to_owned();
    v.run(&["token", "revoke", &revoked_id]).ok();
    let s = Server::start(&v, &["--body-limit", "1"]);
    let admin = format!("Bearer {admin}");
    let admin = ("Authorization", admin.as_str());
    let revoked = format!("Bearer {revoked}");
    let mut typo = ops.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    let typo = format!("Bearer {}", String::from_utf8(typo).unwrap());
    let long_key = "k".repeat(256);
    let big_trigger = format!("{{\"pad\": \"{}\"}}", "x".repeat(2048));
    let graph = "/api/v1/teams/ops/bots/greeter/deployment";
    let runs = "/api/v1/teams/ops/bots/greeter/runs";
    let secret = "/api/v1/teams/ops/bots/greeter/secrets/GOOD_NAME";
    let json_ct = ("Content-Type", "application/json");
    let auth = format!("Bearer {ops}");
    let auth = ("Authorization", auth.as_str());
    let before = v.dump();

    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "PUT",
            secret,
            vec![auth, json_ct],
            b"{\"value\": \"x\"}".to_vec(),
            422,
            "at least",
        ),
        (
            "PUT",
            secret,
            vec![auth, json_ct],
            b"{\"value\": 12345678}".to_vec(),
            422,
            "exactly {\"value\"",
        ),
        (
            "PUT",
            secret,
            vec![auth, json_ct],
            b"{\"value\": \"abcdefgh\", \"x\": 1}".to_vec(),
            422,
            "exactly",
        ),
        (
            "PUT",
            secret,
            vec![auth, json_ct],
            b"{\"value\": ".to_vec(),
            400,
            "ends before",
        ),
        (
            "PUT",
            secret,
            vec![auth, json_ct],
            b"not json".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "PUT",
            secret,
            vec![auth],
            b"{\"value\": \"abcdefgh\"}".to_vec(),
            415,
            "Content-Type: application/json",
        ),
        (
            "PUT",
            secret,
            vec![auth, ("Content-Type", "text/plain")],
            b"abcdefgh".to_vec(),
            415,
            "JSON",
        ),
        (
            "PUT",
            "/api/v1/teams/ops/bots/greeter/secrets/bad-name",
            vec![auth, json_ct],
            b"{\"value\": \"abcdefgh\"}".to_vec(),
            422,
            "secret name",
        ),
        (
            "PUT",
            "/api/v1/teams/ops/bots/greeter/secrets/GOOD_NAME",
            vec![auth, json_ct, ("If-Match", "soon")],
            b"{\"value\": \"abcdefgh\"}".to_vec(),
            400,
            "If-Match",
        ),
        (
            "PUT",
            secret,
            vec![auth, json_ct, ("If-None-Match", "\"3\"")],
            b"{\"value\": \"abcdefgh\"}".to_vec(),
            400,
            "If-None-Match",
        ),
        (
            "PUT",
            secret,
            vec![auth, json_ct, ("If-Match", "\"1\""), ("If-None-Match", "*")],
            b"{\"value\": \"abcdefgh\"}".to_vec(),
            400,
            "not both",
        ),
        (
            "PUT",
            secret,
            vec![auth, json_ct],
            vec![b'a'; 2048],
            413,
            "limit",
        ),
        (
            "GET",
            "/api/v1/teams/nope/bots",
            vec![auth],
            vec![],
            403,
            "scoped to team ops",
        ),
        (
            "GET",
            "/api/v1/teams/ops/bots/nope/secrets",
            vec![auth],
            vec![],
            404,
            "nope",
        ),
        (
            "GET",
            "/api/v1/teams/ops/bots/stranger/secrets",
            vec![auth],
            vec![],
            404,
            "team ops has no bot stranger",
        ),
        (
            "GET",
            "/api/v1/teams/ops/bots/greeter/executions/exe_missing",
            vec![auth],
            vec![],
            404,
            "no execution",
        ),
        (
            "PATCH",
            secret,
            vec![auth],
            vec![],
            405,
            "does not take that method",
        ),
        (
            "GET",
            "/api/v2/anything",
            vec![auth],
            vec![],
            404,
            "no such route",
        ),
        (
            "GET",
            "/api/v1/teams",
            vec![("Authorization", "Basic dXNlcjpwYXNz")],
            vec![],
            401,
            "Bearer",
        ),
        (
            "GET",
            "/api/v1/teams",
            vec![("Authorization", "Bearer nrk_short")],
            vec![],
            401,
            "",
        ),
        (
            "POST",
            "/api/v1/teams/ops/bots",
            vec![auth, json_ct],
            b"{\"name\": \"Bad Name!\"}".to_vec(),
            422,
            "bot",
        ),
        (
            "POST",
            "/api/v1/teams/ops/bots",
            vec![auth, json_ct],
            b"{\"name\": \"greeter\"}".to_vec(),
            409,
            "greeter",
        ),
        (
            "POST",
            "/api/v1/teams/ops/bots",
            vec![auth, json_ct],
            b"[]".to_vec(),
            422,
            "wrong shape",
        ),
        (
            "POST",
            "/api/v1/teams/ops/bots/greeter/runs",
            vec![auth, json_ct],
            b"{}".to_vec(),
            409,
            "no deployed graph",
        ),
        (
            "POST",
            "/api/v1/teams/ops/bots/greeter/runs",
            vec![auth, json_ct, ("Idempotency-Key", "")],
            b"{}".to_vec(),
            400,
            "Idempotency-Key",
        ),
        (
            "PUT",
            "/api/v1/teams/ops/bots/greeter/deployment",
            vec![auth, json_ct],
            b"{\"nodes\": 5}".to_vec(),
            422,
            "",
        ),
        (
            "PUT",
            graph,
            vec![auth, json_ct],
            b"{nodes".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "PUT",
            graph,
            vec![auth, ("Content-Type", "text/yaml")],
            b"nodes: []".to_vec(),
            415,
            "JSON",
        ),
        (
            "PUT",
            graph,
            vec![auth, json_ct],
            br#"{"nodes": [{"id": "a", "extension": "not-installed", "config": {}}]}"#.to_vec(),
            422,
            "not-installed",
        ),
        (
            "PUT",
            graph,
            vec![auth, json_ct],
            vec![0xff, 0xfe],
            400,
            "UTF-8",
        ),
        (
            "POST",
            runs,
            vec![auth, json_ct],
            b"{\"n\":".to_vec(),
            400,
            "ends before",
        ),
        (
            "POST",
            runs,
            vec![auth, ("Content-Type", "text/plain")],
            b"hello".to_vec(),
            415,
            "JSON",
        ),
        (
            "POST",
            runs,
            vec![auth, json_ct],
            big_trigger.clone().into_bytes(),
            413,
            "limit",
        ),
        (
            "POST",
            runs,
            vec![auth, json_ct, ("Idempotency-Key", &long_key)],
            b"{}".to_vec(),
            400,
            "1 to 255",
        ),
        (
            "POST",
            runs,
            vec![auth, json_ct, ("Idempotency-Key", "two words")],
            b"{}".to_vec(),
            400,
            "visible ASCII",
        ),
        (
            "PUT",
            secret,
            vec![auth, json_ct],
            br#"{"value": "abc\u0000defgh"}"#.to_vec(),
            422,
            "NUL",
        ),
        (
            "PUT",
            secret,
            vec![auth, json_ct, ("If-Match", "\"0\"")],
            b"{\"value\": \"abcdefgh\"}".to_vec(),
            400,
            "If-Match",
        ),
        (
            "DELETE",
            secret,
            vec![auth, ("If-None-Match", "*")],
            vec![],
            404,
            "no secret GOOD_NAME",
        ),
        (
            "GET",
            "/api/v1/teams",
            vec![("Authorization", &typo)],
            vec![],
            401,
            "checksum",
        ),
        (
            "GET",
            "/api/v1/teams",
            vec![("Authorization", &revoked)],
            vec![],
            401,
            "",
        ),
        (
            "GET",
            "/api/v1/teams",
            vec![("Authorization", "Bearer")],
            vec![],
            401,
            "Bearer",
        ),
        (
            "POST",
            "/api/v1/teams/ops/bots",
            vec![auth, json_ct],
            br#"{"name": "ok", "extra": 1}"#.to_vec(),
            422,
            "unknown field",
        ),
        (
            "POST",
            "/api/v1/teams/ops/bots",
            vec![auth],
            vec![],
            415,
            "JSON",
        ),
        (
            "POST",
            "/api/v1/teams/ops/bots",
            vec![auth, json_ct],
            b"null".to_vec(),
            422,
            "wrong shape",
        ),
        (
            "POST",
            "/api/v1/teams/ops/bots/nope/pause",
            vec![auth],
            vec![],
            404,
            "nope",
        ),
        (
            "POST",
            "/api/v1/teams",
            vec![admin, json_ct],
            br#"{"name": "-bad"}"#.to_vec(),
            422,
            "team",
        ),
        (
            "POST",
            "/api/v1/teams",
            vec![admin, json_ct],
            br#"{"name": "ops"}"#.to_vec(),
            409,
            "ops",
        ),
        (
            "DELETE",
            "/api/v1/teams/ops",
            vec![admin],
            vec![],
            409,
            "greeter",
        ),
        (
            "DELETE",
            "/api/v1/teams/nope",
            vec![admin],
            vec![],
            404,
            "nope",
        ),
        (
            "GET",
            "/api/v1/teams/ops/bots/gr%00eter/secrets",
            vec![auth],
            vec![],
            422,
            "invalid bot name",
        ),
    ];
    let count = cases.len();
    for (method, path, headers, body, status, needle) in cases {
        let r = request(s.addr, method, path, &headers, &body);
        assert_problem(&r, status, needle);
        assert!(!r.text().contains(PLANTED));
    }
    // Malformed HTTP itself: hyper answers 400 and the server lives on.
    let r = send_raw(
        s.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert_eq!(s.call("GET", "/healthz", None, None).status, 200);
    assert!(count >= 40, "{count} kinds");
    drop(s);
    assert_eq!(before, v.dump(), "bad input changed the vault");
}

fn deployed_vault(delay: Duration) -> (TestVault, String, SocketAddr, Arc<Mutex<usize>>) {
    let v = vault();
    v.run(&[
        "extension",
        "install",
        extension("http-request").to_str().unwrap(),
    ])
    .ok();
    let ops = team_token(&v, "ops");
    let (echo, hits) = echo(delay);
    (v, ops, echo, hits)
}

fn deploy(s: &Server, ops: &str) {
    let graph = json!({"nodes": [{
        "id": "call", "extension": "http-request",
        "config": {"url": "https://echo.test/{{trigger.n}}"}
    }]});
    s.deploy_greeter(ops, graph);
}

#[test]
fn a_run_is_queued_durably_executed_by_a_worker_and_never_started_twice() {
    let (v, ops, echo, hits) = deployed_vault(Duration::ZERO);
    let upstream = format!("echo.test=http://{echo}");
    let s = Server::start(&v, &["--upstream", &upstream]);
    deploy(&s, &ops);

    let runs = "/api/v1/teams/ops/bots/greeter/runs";
    let accepted = s.call_with(
        "POST",
        runs,
        Some(&ops),
        Some(json!({"n": 1})),
        &[("Idempotency-Key", "order-1")],
    );
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let body = accepted.json();
    assert_eq!(body["replayed"], false);
    let location = body["location"].as_str().unwrap().to_owned();
    assert_eq!(accepted.header("location"), Some(location.as_str()));
    let done = s.wait_finished(&ops, &location);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["nodes"][0]["status"], "succeeded", "{done}");
    assert!(
        done["started_by"].as_str().unwrap().starts_with("tok_"),
        "{done}"
    );

    // The client retries with the same key: the same run, not a second one.
    let retry = s.call_with(
        "POST",
        runs,
        Some(&ops),
        Some(json!({"n": 1})),
        &[("Idempotency-Key", "order-1")],
    );
    assert_eq!(retry.status, 202);
    assert_eq!(retry.json()["replayed"], true);
    assert_eq!(retry.json()["execution_id"], body["execution_id"]);
    // The same key with another trigger is a client bug: refused, and
    // nothing queued.
    let reused = s.call_with(
        "POST",
        runs,
        Some(&ops),
        Some(json!({"n": 2})),
        &[("Idempotency-Key", "order-1")],
    );
    assert_eq!(reused.status, 422, "{reused:?}");
    assert_eq!(
        reused.json()["type"],
        "https://narakim.dev/problems/idempotency-key-reused",
        "{reused:?}"
    );
    assert_eq!(reused.json()["execution_id"], body["execution_id"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(*hits.lock().unwrap(), 1, "the retry ran the graph again");

    let list = s.call(
        "GET",
        "/api/v1/teams/ops/bots/greeter/executions",
        Some(&ops),
        None,
    );
    assert_eq!(list.json()["executions"].as_array().unwrap().len(), 1);
    let metrics = s.call("GET", "/metrics", None, None).text();
    assert!(
        metrics.contains("narakim_executions_total{status=\"succeeded\"} 1"),
        "{metrics}"
    );

    // A paused bot accepts no run.
    assert_eq!(
        s.call(
            "POST",
            "/api/v1/teams/ops/bots/greeter/pause",
            Some(&ops),
            None
        )
        .status,
        200
    );
    assert_problem(
        &s.call("POST", runs, Some(&ops), Some(json!({}))),
        409,
        "paused",
    );
    let (status, _) = s.stop();
    assert!(status.success());
    let audit = v.run(&["audit", "list"]).ok().to_owned();
    for action in ["bot.deploy", "bot.pause"] {
        assert!(audit.contains(action), "{action} not audited: {audit}");
    }
}

#[test]
fn after_kill_9_every_accepted_run_is_recorded_exactly_once() {
    const RUNS: usize = 500;
    let (v, ops, echo, hits) = deployed_vault(Duration::from_millis(5));
    let upstream = format!("echo.test=http://{echo}");
    let s = Server::start(
        &v,
        &[
            "--upstream",
            &upstream,
            "--workers",
            "1",
            "--rate-limit",
            "100000",
        ],
    );
    deploy(&s, &ops);
    let runs = "/api/v1/teams/ops/bots/greeter/runs";
    let mut accepted = std::collections::BTreeSet::new();
    for n in 0..RUNS {
        let key = format!("k-{n}");
        let r = s.call_with(
            "POST",
            runs,
            Some(&ops),
            Some(json!({"n": n})),
            &[("Idempotency-Key", &key)],
        );
        assert_eq!(r.status, 202, "{r:?}");
        accepted.insert(r.json()["execution_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(accepted.len(), RUNS);
    // kill -9 while runs are queued and one is running.
    s.kill();
    let engine_db = || rusqlite::Connection::open(v.data_dir.join("engine.db")).unwrap();
    let waiting: i64 = engine_db()
        .query_row(
            "SELECT count(*) FROM executions WHERE status = 'queued'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        waiting > 0,
        "every run finished before the kill: the test proves nothing"
    );

    // Restart: the interrupted run fails by the rule, queued ones run, and
    // a client retrying with its key finds its run instead of a new one.
    let s = Server::start(
        &v,
        &[
            "--upstream",
            &upstream,
            "--workers",
            "2",
            "--rate-limit",
            "100000",
        ],
    );
    let retry = s.call_with(
        "POST",
        runs,
        Some(&ops),
        Some(json!({"n": 0})),
        &[("Idempotency-Key", "k-0")],
    );
    assert_eq!(retry.json()["replayed"], true, "{retry:?}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let open: i64 = engine_db()
            .query_row(
                "SELECT count(*) FROM executions WHERE status IN ('queued', 'running')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} runs never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    let db = engine_db();
    let ids: std::collections::BTreeSet<String> = db
        .prepare("SELECT id FROM executions")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids, accepted, "a run was lost, or one was added");
    let doubled: i64 = db
        .query_row("SELECT count(*) FROM (SELECT execution_id FROM node_runs GROUP BY execution_id HAVING count(*) > 1)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(doubled, 0, "a run was recorded twice");
    let jobs: i64 = db
        .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(jobs, 0, "finished runs left jobs behind");
    let interrupted: i64 = db
        .query_row("SELECT count(*) FROM executions WHERE status = 'failed' AND summary LIKE 'interrupted%'", [], |r| r.get(0))
        .unwrap();
    let failed_otherwise: i64 = db
        .query_row("SELECT count(*) FROM executions WHERE status = 'failed' AND summary NOT LIKE 'interrupted%'", [], |r| r.get(0))
        .unwrap();
    assert!(
        interrupted <= 1,
        "one worker ran one run at a time, yet {interrupted} were interrupted"
    );
    assert_eq!(failed_otherwise, 0);
    // Each succeeded run called the echo once; the interrupted one at most once.
    let succeeded = RUNS - interrupted as usize;
    let calls = *hits.lock().unwrap();
    assert!(
        (succeeded..=RUNS).contains(&calls),
        "{calls} calls for {succeeded} succeeded runs"
    );
    drop(s);
}

/// Polls the execution at `location` until `status` reads `want`.
fn wait_status(s: &Server, token: &str, location: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = s.call("GET", location, Some(token), None).json();
        if body["status"] == want {
            return;
        }
        assert!(Instant::now() < deadline, "never {want}: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_drains_running_executions_and_leaves_queued_work_for_the_next_start() {
    let (v, ops, echo, hits) = deployed_vault(Duration::from_millis(1500));
    let upstream = format!("echo.test=http://{echo}");
    let s = Server::start(&v, &["--upstream", &upstream, "--workers", "1"]);
    deploy(&s, &ops);
    let runs = "/api/v1/teams/ops/bots/greeter/runs";
    let first = s.call("POST", runs, Some(&ops), Some(json!({"n": 1})));
    let first = first.json()["location"].as_str().unwrap().to_owned();
    wait_status(&s, &ops, &first, "running");
    let second = s.call("POST", runs, Some(&ops), Some(json!({"n": 2})));
    let second = second.json()["location"].as_str().unwrap().to_owned();

    // SIGTERM while the first runs and the second waits.
    let addr = s.addr;
    let (status, log) = s.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after the stop"
    );
    let db = rusqlite::Connection::open(v.data_dir.join("engine.db")).unwrap();
    let status_of = |location: &str| -> String {
        let id = location.rsplit('/').next().unwrap();
        db.query_row("SELECT status FROM executions WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
    };
    assert_eq!(
        status_of(&first),
        "succeeded",
        "the running execution was not drained"
    );
    assert_eq!(status_of(&second), "queued", "queued work must stay queued");
    assert_eq!(*hits.lock().unwrap(), 1);

    // The next start runs what was left.
    let s = Server::start(&v, &["--upstream", &upstream]);
    let done = s.wait_finished(&ops, &second);
    assert_eq!(done["status"], "succeeded", "{done}");
}

#[test]
fn a_drain_past_its_bound_leaves_the_run_to_the_recovery_rule() {
    let (v, ops, echo, _) = deployed_vault(Duration::from_secs(5));
    let upstream = format!("echo.test=http://{echo}");
    let s = Server::start(&v, &["--upstream", &upstream, "--drain-seconds", "1"]);
    deploy(&s, &ops);
    let r = s.call(
        "POST",
        "/api/v1/teams/ops/bots/greeter/runs",
        Some(&ops),
        Some(json!({"n": 1})),
    );
    let location = r.json()["location"].as_str().unwrap().to_owned();
    wait_status(&s, &ops, &location, "running");
    let started = Instant::now();
    let (status, log) = s.stop();
    assert!(status.success(), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the drain bound was not kept"
    );
    let s = Server::start(&v, &["--upstream", &upstream]);
    let done = s.wait_finished(&ops, &location);
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["summary"].as_str().unwrap().starts_with("interrupted"),
        "{done}"
    );
    assert!(
        s.log().contains("interrupted by the last stop"),
        "{}",
        s.log()
    );
}

#[test]
fn a_full_queue_and_a_busy_token_answer_with_retry_after() {
    let (v, ops, echo, _) = deployed_vault(Duration::from_millis(1500));
    let upstream = format!("echo.test=http://{echo}");
    let s = Server::start(
        &v,
        &[
            "--upstream",
            &upstream,
            "--workers",
            "1",
            "--queue-bound",
            "1",
        ],
    );
    deploy(&s, &ops);
    let runs = "/api/v1/teams/ops/bots/greeter/runs";
    let first = s.call("POST", runs, Some(&ops), Some(json!({"n": 1})));
    let first = first.json()["location"].as_str().unwrap().to_owned();
    wait_status(&s, &ops, &first, "running");
    let second = s.call("POST", runs, Some(&ops), Some(json!({"n": 1})));
    assert_eq!(second.status, 202);
    let depth = s.call("GET", "/metrics", None, None).text();
    assert!(
        depth.contains("narakim_queue_depth{state=\"waiting\"} 1"),
        "{depth}"
    );
    let full = s.call("POST", runs, Some(&ops), Some(json!({"n": 1})));
    assert_problem(&full, 503, "queue is full");
    assert_eq!(full.header("retry-after"), Some("1"));
    drop(s);
    let count: i64 = rusqlite::Connection::open(v.data_dir.join("engine.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM executions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 2, "a refused run was stored");

    let s = Server::start(&v, &["--rate-limit", "1"]);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(s.call("GET", "/api/v1/teams", Some(&ops), None));
    }
    let limited = statuses
        .iter()
        .find(|r| r.status == 429)
        .expect("no 429 past the burst");
    assert_problem(limited, 429, "rate limit");
    assert!(limited.header("retry-after").is_some());
    // Another token has its own budget.
    let other = team_token(&v, "other");
    assert_eq!(
        s.call("GET", "/api/v1/teams", Some(&other), None).status,
        200
    );
}

#[test]
fn json_logs_are_one_object_per_line_and_never_hold_a_token_or_value() {
    let v = vault();
    let ops = team_token(&v, "ops");
    let s = Server::start(&v, &["--log-format", "json"]);
    let value = "json-log-value-0123456789";
    let path = "/api/v1/teams/ops/bots/greeter/secrets/LOGGED";
    assert_eq!(
        s.call("PUT", path, Some(&ops), Some(json!({ "value": value })))
            .status,
        201
    );
    // A request whose path holds a stored value: the log line is scrubbed.
    s.call(
        "GET",
        &format!("/api/v1/teams/ops/bots/{PLANTED}"),
        Some(&ops),
        None,
    );
    let (status, log) = s.stop();
    assert!(status.success());
    let mut requests = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if event["message"] == "request" {
            requests += 1;
            assert!(
                event["route"].is_string() && event["status"].is_number(),
                "{event}"
            );
        }
    }
    assert!(requests >= 2, "{log}");
    for secret in [value, PLANTED, &ops[4..]] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn https_with_a_certificate_and_key_on_any_address() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let v = vault();
    let s = Server::start(
        &v,
        &[
            "--listen",
            "0.0.0.0:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let port = s.addr.port();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Plain HTTP to the TLS port gets nowhere.
    let plain =
        std::panic::catch_unwind(|| send_raw(s.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(plain.is_err() || plain.unwrap().status != 200);
    // A broken key is refused before anything listens.
    std::fs::write(&key, "not a key").unwrap();
    v.run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .fails_with("cannot read the TLS key");
}

#[test]
fn the_openapi_document_is_committed_served_and_describes_only_live_routes() {
    let generated: Value = serde_json::from_str(
        common::command()
            .arg("openapi")
            .output()
            .map(|o| String::from_utf8(o.stdout).unwrap())
            .unwrap()
            .as_str(),
    )
    .unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(
        generated == committed,
        "docs/openapi.json is stale: run `cargo run -- openapi > docs/openapi.json`"
    );
    assert_eq!(generated["openapi"], "3.1.0");

    let v = vault();
    let s = Server::start(&v, &[]);
    let served = s.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(served.json(), generated);

    let paths = generated["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{team}", "ops")
            .replace("{bot}", "greeter")
            .replace("{name}", "SOME_NAME")
            .replace("{id}", "exe_missing")
            .replace("{trigger_id}", "trg_00000000000000000000000000000000");
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let r = s.call(&method.to_uppercase(), &concrete, None, None);
            // Every documented operation exists: no fallback, no 405.
            assert_ne!(
                r.status, 405,
                "{method} {path} is documented but not routed"
            );
            assert!(
                !(r.status == 404 && r.text().contains("no such route")),
                "{method} {path} is documented but not routed"
            );
            let secured = !op["security"].as_array().unwrap().is_empty();
            if secured {
                assert_eq!(
                    r.status, 401,
                    "{method} {path} answered without a token: {r:?}"
                );
            } else if path.contains("{trigger_id}") {
                // Signed by the sender, not a token: an unknown id is 404.
                assert_eq!(r.status, 404, "{method} {path}: {r:?}");
            } else {
                assert_eq!(r.status, 200, "{method} {path}: {r:?}");
            }
            assert!(
                op["responses"].get(r.status.to_string()).is_some(),
                "{method} {path} answered {}, which its document does not list",
                r.status
            );
        }
    }
    assert!(operations >= 26, "{operations}");
    // And nothing is routed that the document leaves out: a route outside
    // it answers the fallback.
    for path in [
        "/api/v1",
        "/api/v1/tokens",
        "/api/v1/teams/ops/bots/greeter/secrets/X/value",
    ] {
        let r = s.call("GET", path, None, None);
        assert!(
            r.status == 404 && r.text().contains("no such route"),
            "{path}: {r:?}"
        );
    }
}

#[test]
fn extensions_are_uploaded_installed_listed_and_shown_over_the_api() {
    let v = vault();
    let ops = team_token(&v, "ops");
    let greeter = bot_token(&v, "ops", "greeter");
    let reader = token(&v, &["--team", "ops", "--can", "secrets:list"]);
    let s = Server::start(&v, &[]);
    let wasm = std::fs::read(extension("http-request")).unwrap();
    let upload = |token: &str, content_type: &str, body: &[u8]| {
        let auth = format!("Bearer {token}");
        request(
            s.addr,
            "POST",
            "/api/v1/extensions",
            &[("Authorization", &auth), ("Content-Type", content_type)],
            body,
        )
    };

    assert_problem(
        &upload(&greeter, "application/wasm", &wasm),
        403,
        "scoped to bot greeter",
    );
    assert_problem(
        &upload(&reader, "application/wasm", &wasm),
        403,
        "extensions:install",
    );
    assert_problem(
        &upload(&ops, "application/octet-stream", &wasm),
        415,
        "application/wasm",
    );
    assert_problem(
        &upload(&ops, "application/wasm", b"\0asm not really"),
        422,
        "",
    );
    assert_eq!(
        s.call("GET", "/api/v1/extensions", Some(&ops), None).json()["extensions"],
        json!([])
    );

    let installed = upload(&ops, "application/wasm", &wasm);
    assert_eq!(installed.status, 201, "{installed:?}");
    let body = installed.json();
    assert_eq!(body["name"], "http-request");
    assert_eq!(body["outcome"], "installed");
    assert!(
        body.get("path").is_none(),
        "the server's file layout is not the client's business"
    );
    let again = upload(&ops, "application/wasm", &wasm);
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json()["outcome"], "already_installed");

    let list = s.call("GET", "/api/v1/extensions", Some(&ops), None).json();
    assert_eq!(list["extensions"][0]["name"], "http-request");
    let shown = s.call("GET", "/api/v1/extensions/http-request", Some(&ops), None);
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(shown.json()["versions"], json!(["0.2.0"]));
    assert_problem(
        &s.call("GET", "/api/v1/extensions/nope", Some(&ops), None),
        404,
        "nope",
    );
    assert_problem(
        &s.call(
            "GET",
            "/api/v1/extensions/http-request?version=9.9.9",
            Some(&ops),
            None,
        ),
        404,
        "no version 9.9.9",
    );
    assert_problem(
        &s.call("GET", "/api/v1/extensions", Some(&greeter), None),
        403,
        "scoped to bot greeter",
    );
    // The CLI sees what the API installed, and the audit names the token.
    assert!(v.run(&["extension", "list"]).ok().contains("http-request"));
    drop(s);
    let audit = v.run(&["audit", "list"]).ok().to_owned();
    assert!(
        audit.contains("extension.install") && audit.contains("tok_"),
        "{audit}"
    );
}

#[test]
fn a_request_in_flight_at_sigterm_is_answered_before_the_server_exits() {
    use std::io::Write;
    let v = vault();
    let ops = team_token(&v, "ops");
    let s = Server::start(&v, &[]);
    let body = br#"{"value": "in-flight-value-0123456789"}"#;
    let head = format!(
        "PUT /api/v1/teams/ops/bots/greeter/secrets/IN_FLIGHT HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ops}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(s.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // SIGTERM with the body half sent.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body[10..]).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let (status, log) = s.stop();
    assert!(status.success(), "{log}");
    assert!(
        v.run(&["secret", "list", "--bot", "greeter"])
            .ok()
            .contains("IN_FLIGHT")
    );
}

#[test]
fn a_sealed_value_opens_only_for_the_write_it_was_sealed_for() {
    use narakim::service::seal::{Binding, seal};
    let v = vault();
    let ops = team_token(&v, "ops");
    let s = Server::start(&v, &[]);
    let key = s.call("GET", "/api/v1/seal-key", None, None).json();
    assert_eq!(key["kem_id"], 0x20, "{key}");
    let (public, key_id) = (
        key["public_key"].as_str().unwrap(),
        key["key_id"].as_str().unwrap(),
    );
    let value = "sealed-value-Hk3Lm9Qw2Er5Ty8U";
    let binding = |scope, owner: &str, name: &str, expected: &str| Binding {
        scope,
        owner: owner.into(),
        name: name.into(),
        expected: expected.into(),
    };
    let sealed = seal(
        public,
        key_id,
        &binding("team", "ops", "SEALED_KEY", "new"),
        value,
    )
    .unwrap();
    let body = json!({"sealed": {"key_id": sealed.key_id, "enc": sealed.enc, "ciphertext": sealed.ciphertext}});
    let create = [("If-None-Match", "*")];
    let put = |path: &str, headers: &[(&str, &str)]| {
        s.call_with("PUT", path, Some(&ops), Some(body.clone()), headers)
    };

    // Replays onto another name, scope or version, and an unversioned
    // write: refused, nothing stored.
    let before = v.dump();
    assert_problem(
        &put("/api/v1/teams/ops/secrets/OTHER_KEY", &create),
        422,
        "does not open",
    );
    assert_problem(
        &put("/api/v1/teams/ops/bots/greeter/secrets/SEALED_KEY", &create),
        422,
        "does not open",
    );
    assert_problem(
        &put(
            "/api/v1/teams/other/secrets/SEALED_KEY",
            &[("If-None-Match", "*")],
        ),
        403,
        "",
    );
    assert_problem(
        &put(
            "/api/v1/teams/ops/secrets/SEALED_KEY",
            &[("If-Match", "\"1\"")],
        ),
        422,
        "does not open",
    );
    assert_problem(
        &put("/api/v1/teams/ops/secrets/SEALED_KEY", &[]),
        400,
        "If-None-Match",
    );
    let both = json!({"value": value, "sealed": body["sealed"].clone()});
    let r = s.call_with(
        "PUT",
        "/api/v1/teams/ops/secrets/SEALED_KEY",
        Some(&ops),
        Some(both),
        &create,
    );
    assert_problem(&r, 422, "exactly");
    let mut stale = body.clone();
    stale["sealed"]["key_id"] = json!("an-older-key");
    let r = s.call_with(
        "PUT",
        "/api/v1/teams/ops/secrets/SEALED_KEY",
        Some(&ops),
        Some(stale),
        &create,
    );
    assert_problem(&r, 422, "reload the page");
    assert_eq!(before, v.dump(), "a refused sealed write changed the vault");

    // The write it was sealed for, once.
    assert_eq!(
        put("/api/v1/teams/ops/secrets/SEALED_KEY", &create).status,
        201
    );
    assert_problem(
        &put("/api/v1/teams/ops/secrets/SEALED_KEY", &create),
        412,
        "",
    );
    let (_, log) = s.stop();
    assert!(!log.contains(value));
    // The value sealed in the vault is the one the client sealed.
    let listed = v.run(&["secret", "list", "--team", "ops"]).ok().to_owned();
    assert!(listed.contains("SEALED_KEY"), "{listed}");
    common::assert_absent(&v.file_bytes(), value);
}
