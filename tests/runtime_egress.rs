//! Outbound HTTP from a real component, through the host's egress policy,
//! to loopback stand-ins reached by operator upstream mappings.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestVault;
use common::guests::component;
use common::recorder::request_len;
use narakim::runtime::{
    ExecutionGuard, Extension, InvocationError, Limits, Outcome, Runtime, Upstream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "tok-egress-5a4b3c2d1e0f";

/// A loopback HTTP/1.1 stand-in that records each request (head and body)
/// and answers `200 {}`, keeping the connection open for the next one; or,
/// when `silent`, accepts and never answers. It counts the connections it
/// accepted.
struct StandIn {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

async fn stand_in(silent: bool) -> StandIn {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let connections: Arc<AtomicUsize> = Arc::default();
    let (record, count) = (seen.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let record = record.clone();
            tokio::spawn(async move {
                if silent {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // Head, then as much body as content-length says.
                    while request_len(&buf).is_none() {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let request: Vec<u8> = buf.drain(..request_len(&buf).unwrap()).collect();
                    record
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&request).into_owned());
                    if conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    StandIn {
        port,
        seen,
        connections,
    }
}

struct Fixture {
    vault: TestVault,
    tokio: tokio::runtime::Runtime,
    api: StandIn,
    hooks: StandIn,
    silent: StandIn,
}

fn fixture() -> Fixture {
    let vault = TestVault::new();
    vault.run(&["team", "create", "ops"]).ok();
    vault
        .run(&["bot", "create", "greeter", "--team", "ops"])
        .ok();
    vault.set("API_TOKEN", "--bot", "greeter", TOKEN);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (api, hooks, silent) = tokio.block_on(async {
        (
            stand_in(false).await,
            stand_in(false).await,
            stand_in(true).await,
        )
    });
    Fixture {
        vault,
        tokio,
        api,
        hooks,
        silent,
    }
}

impl Fixture {
    /// A runtime mapping api.example.test and hooks.example.test (both in
    /// the hostile extension's allow-list) to the stand-ins, or, with
    /// `blackhole`, api.example.test to the silent one.
    fn runtime(&self, blackhole: bool) -> Runtime {
        let api = if blackhole {
            self.silent.port
        } else {
            self.api.port
        };
        let limits = Limits {
            timeout: Duration::from_secs(2),
            ..Limits::default()
        };
        Runtime::new(limits, None).unwrap().with_upstreams([
            format!("api.example.test=http://127.0.0.1:{api}")
                .parse::<Upstream>()
                .unwrap(),
            format!("hooks.example.test=http://127.0.0.1:{}", self.hooks.port)
                .parse::<Upstream>()
                .unwrap(),
        ])
    }

    fn invoke(
        &self,
        runtime: &Runtime,
        ext: &Extension,
        config: &str,
    ) -> Result<Outcome, InvocationError> {
        let snapshot = self.vault.open().snapshot_for_bot("greeter").unwrap();
        let guard = ExecutionGuard::new(&snapshot, [(ext.description(), config)]).unwrap();
        self.tokio
            .block_on(runtime.invoke(ext, "node-1", &guard, config, "{}"))
    }
}

fn http(authority: &str, leak: &str, plain: bool) -> String {
    format!(r#"{{"mode":"http","authority":"{authority}","leak":"{leak}","plain":{plain}}}"#)
}

/// `http` made `times` times in one invocation.
fn http_times(authority: &str, times: u32) -> String {
    format!(
        r#"{{"mode":"http","authority":"{authority}","leak":"none","plain":false,"times":"{times}"}}"#
    )
}

#[test]
fn a_secret_goes_to_its_own_host_and_nowhere_else() {
    let f = fixture();
    let runtime = f.runtime(false);
    let ext = f
        .tokio
        .block_on(runtime.load(&component("hostile")))
        .unwrap();

    // Allowed host, bound secret, over https (mapped to the loopback stand-in).
    let out = f
        .invoke(&runtime, &ext, &http("api.example.test", "header", false))
        .unwrap();
    assert_eq!(out.result, Ok("{\"status\":200}".into()), "{out:?}");
    assert_eq!(out.egress.len(), 1);
    assert_eq!(out.egress[0].refused, None);
    let seen = f.api.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0]
            .to_ascii_lowercase()
            .contains(&format!("authorization: bearer {TOKEN}").to_ascii_lowercase()),
        "{seen:?}"
    );

    // The same token to another allowed host it is not bound to: refused,
    // in a header or base64 in the body, the invocation is stopped, and
    // the stand-in never sees it.
    for leak in ["header", "body-base64"] {
        let err = f
            .invoke(&runtime, &ext, &http("hooks.example.test", leak, false))
            .unwrap_err();
        assert!(
            matches!(err, InvocationError::EgressViolation { .. }),
            "{leak}: {err:?}"
        );
        let captured = err.captured().unwrap();
        let reason = captured.egress[0].refused.as_deref().unwrap();
        assert!(
            reason.contains("carries secret API_TOKEN") && reason.contains("hooks.example.test"),
            "{reason}"
        );
    }
    assert!(f.hooks.seen.lock().unwrap().is_empty());

    // Without the token, that host is fine.
    let out = f
        .invoke(&runtime, &ext, &http("hooks.example.test", "none", false))
        .unwrap();
    assert_eq!(out.result, Ok("{\"status\":200}".into()), "{out:?}");
}

#[test]
fn connections_are_pooled_across_requests_and_invocations() {
    let f = fixture();
    let runtime = f.runtime(false);
    let ext = f
        .tokio
        .block_on(runtime.load(&component("hostile")))
        .unwrap();

    // Two requests in one invocation, then two more in the next one.
    for round in 1..=2 {
        let out = f
            .invoke(&runtime, &ext, &http_times("api.example.test", 2))
            .unwrap();
        assert_eq!(out.result, Ok("{\"status\":200}".into()), "{out:?}");
        assert_eq!(out.egress.len(), 2, "{out:?}");
        assert!(out.egress.iter().all(|e| e.refused.is_none()), "{out:?}");
        assert_eq!(f.api.seen.lock().unwrap().len(), 2 * round);
    }
    // All four over the one connection the first opened.
    assert_eq!(f.api.connections.load(Ordering::SeqCst), 1);

    // Another host gets its own connection, and keeps it too.
    for _ in 0..2 {
        let out = f
            .invoke(&runtime, &ext, &http("hooks.example.test", "none", false))
            .unwrap();
        assert_eq!(out.result, Ok("{\"status\":200}".into()), "{out:?}");
    }
    assert_eq!(f.hooks.connections.load(Ordering::SeqCst), 1);
    assert_eq!(f.api.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn hosts_outside_the_allow_list_and_plain_http_are_refused() {
    let f = fixture();
    let runtime = f.runtime(false);
    let ext = f
        .tokio
        .block_on(runtime.load(&component("hostile")))
        .unwrap();
    let out = f
        .invoke(&runtime, &ext, &http("evil.example.test", "none", false))
        .unwrap();
    assert!(
        out.result
            .as_ref()
            .unwrap_err()
            .contains("HttpRequestDenied"),
        "{out:?}"
    );
    assert!(
        out.egress[0]
            .refused
            .as_deref()
            .unwrap()
            .contains("not one of the extension's allowed hosts")
    );

    let out = f
        .invoke(&runtime, &ext, &http("api.example.test", "none", true))
        .unwrap();
    assert!(
        out.egress[0]
            .refused
            .as_deref()
            .unwrap()
            .contains("https only"),
        "{out:?}"
    );
    assert!(f.api.seen.lock().unwrap().is_empty());
}

#[test]
fn a_guest_blocked_inside_a_host_call_times_out_alone() {
    let f = fixture();
    let runtime = f.runtime(true);
    let ext = f
        .tokio
        .block_on(runtime.load(&component("hostile")))
        .unwrap();
    let err = f
        .invoke(&runtime, &ext, &http("api.example.test", "header", false))
        .unwrap_err();
    assert!(matches!(err, InvocationError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("extension hostile, node node-1"));
    // The runtime carries on.
    let ok = f
        .invoke(&runtime, &ext, &http("hooks.example.test", "none", false))
        .unwrap();
    assert_eq!(ok.result, Ok("{\"status\":200}".into()), "{ok:?}");
}

#[test]
fn upstreams_and_limits_from_the_command_line() {
    let f = fixture();
    let hostile = component("hostile");
    let file = f.vault.root.path().join("upstreams.txt");
    std::fs::write(
        &file,
        format!(
            "# stand-ins\napi.example.test=http://127.0.0.1:{}\n\n",
            f.api.port
        ),
    )
    .unwrap();
    let out = f.vault.run(&[
        "extension",
        "run",
        hostile.to_str().unwrap(),
        "--bot",
        "greeter",
        "--config",
        &http("api.example.test", "header", false),
        "--upstream-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.ok().trim(), "{\"status\":200}", "{out:?}");
    assert!(
        out.stderr.contains("[egress] POST api.example.test: sent"),
        "{out:?}"
    );
    assert!(!out.all_output().contains(TOKEN));

    let out = f.vault.run(&[
        "extension",
        "run",
        hostile.to_str().unwrap(),
        "--bot",
        "greeter",
        "--config",
        &http("hooks.example.test", "header", false),
        "--upstream-file",
        file.to_str().unwrap(),
    ]);
    out.fails_with("stopped: the request carries secret API_TOKEN");
    assert!(
        out.stderr
            .contains("REFUSED: the request carries secret API_TOKEN"),
        "{out:?}"
    );

    std::fs::write(&file, "api.example.test http://nope\n").unwrap();
    f.vault
        .run(&[
            "extension",
            "run",
            hostile.to_str().unwrap(),
            "--bot",
            "greeter",
            "--upstream-file",
            file.to_str().unwrap(),
        ])
        .fails_with("upstreams.txt:1:");

    let out = f.vault.run(&[
        "extension",
        "run",
        hostile.to_str().unwrap(),
        "--bot",
        "greeter",
        "--config",
        r#"{"mode":"loop"}"#,
        "--timeout",
        "1",
    ]);
    out.fails_with("timed out after 1s");
}
