//! Host-side injection: a 0.2.0 component holds placeholders, never values.
//! The `thief` guest (tests/guests/thief) asks for a credential and tries
//! every way to turn it into the value; an echoing loopback stand-in plays
//! a host that sends requests back.

mod common;

use std::sync::{Arc, Mutex};

use common::TestVault;
use common::guests::component;
use common::recorder::request_len;
use narakim::runtime::{ExecutionGuard, Extension, Limits, Outcome, Runtime, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "tok-inject-7f6e5d4c3b2a";

/// Answers every request with the whole request, head and body, as its
/// body, and its `authorization` header again as `x-echo-authorization`:
/// the worst a bound host can do.
struct Echo {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn echo() -> Echo {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while request_len(&buf).is_none() {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let request: Vec<u8> = buf.drain(..request_len(&buf).unwrap()).collect();
                    let text = String::from_utf8_lossy(&request).into_owned();
                    record.lock().unwrap().push(text.clone());
                    let auth = text
                        .lines()
                        .find_map(|l| l.strip_prefix("authorization: "))
                        .unwrap_or("")
                        .to_owned();
                    // On /gzip it claims a compressed body whatever was asked.
                    let encoding = if text.starts_with("POST /gzip") {
                        "content-encoding: gzip\r\n"
                    } else {
                        ""
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nx-echo-authorization: {auth}\r\n{encoding}content-length: {}\r\n\r\n",
                        request.len()
                    );
                    if conn.write_all(head.as_bytes()).await.is_err()
                        || conn.write_all(&request).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Echo { port, seen }
}

struct Fixture {
    vault: TestVault,
    tokio: tokio::runtime::Runtime,
    api: Echo,
    hooks: Echo,
    runtime: Runtime,
    thief: Extension,
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
    let (api, hooks) = tokio.block_on(async { (echo().await, echo().await) });
    let runtime = Runtime::new(Limits::default(), None)
        .unwrap()
        .with_upstreams([
            format!("api.example.test=http://127.0.0.1:{}", api.port)
                .parse::<Upstream>()
                .unwrap(),
            format!("hooks.example.test=http://127.0.0.1:{}", hooks.port)
                .parse::<Upstream>()
                .unwrap(),
        ]);
    let thief = tokio.block_on(runtime.load(&component("thief"))).unwrap();
    Fixture {
        vault,
        tokio,
        api,
        hooks,
        runtime,
        thief,
    }
}

impl Fixture {
    fn invoke(&self, config: &str) -> Outcome {
        let snapshot = self.vault.open().snapshot_for_bot("greeter").unwrap();
        let guard = ExecutionGuard::new(&snapshot, [(self.thief.description(), config)]).unwrap();
        self.tokio
            .block_on(
                self.runtime
                    .invoke(&self.thief, "node-1", &guard, config, "{}"),
            )
            .expect("the invocation itself completes")
    }

    /// Every request either stand-in received.
    fn seen(&self) -> Vec<String> {
        let mut all = self.api.seen.lock().unwrap().clone();
        all.extend(self.hooks.seen.lock().unwrap().iter().cloned());
        all
    }
}

/// Everything the invocation left for anyone to see, as one text.
fn everything(outcome: &Outcome) -> String {
    format!("{outcome:?}")
}

#[test]
fn the_value_goes_only_into_the_declared_header_and_comes_back_as_the_placeholder() {
    let f = fixture();
    let outcome = f.invoke(r#"{"mode":"header"}"#);
    let output = outcome.result.clone().expect("the request was sent");
    // The bound host got the value, in the declared header, with its format.
    let seen = f.api.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].contains(&format!("authorization: Bearer {TOKEN}\r\n")),
        "{}",
        seen[0]
    );
    assert!(
        !seen[0].contains("nrkph_"),
        "a placeholder left: {}",
        seen[0]
    );
    // The echo of the value, in a header and in the body, reached the
    // guest as the placeholder: the guest never held the value.
    assert!(!output.contains(TOKEN), "{output}");
    assert!(
        output.contains("x-echo-authorization: Bearer nrkph_"),
        "{output}"
    );
    assert!(output.contains("authorization: Bearer nrkph_"), "{output}");
    // The record names the secret where it went, and holds no placeholder.
    let event = &outcome.egress[0];
    assert_eq!(event.refused, None);
    assert_eq!(event.credentials, ["API_TOKEN"]);
    assert!(
        event
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v == "Bearer ‹API_TOKEN›"),
        "{event:?}"
    );
    assert!(!format!("{event:?}").contains("nrkph_"), "{event:?}");
    assert!(!everything(&outcome).contains(TOKEN));
    assert_eq!(outcome.secrets_read, ["API_TOKEN"]);
}

#[test]
fn a_placeholder_anywhere_else_is_refused_and_nothing_leaves() {
    let f = fixture();
    for (config, why) in [
        (r#"{"mode":"header","header":"x-debug"}"#, "header x-debug"),
        (r#"{"mode":"bare-header"}"#, "header authorization"),
        (r#"{"mode":"two"}"#, "header authorization"),
        (r#"{"mode":"path"}"#, "path"),
        (r#"{"mode":"query"}"#, "query"),
        (r#"{"mode":"body"}"#, "body"),
        (r#"{"mode":"body-escaped"}"#, "escaped in the body"),
        (r#"{"mode":"query-escaped"}"#, "escaped in the query"),
        (r#"{"mode":"upper"}"#, "header x-debug"),
        (r#"{"mode":"userinfo"}"#, "authority"),
        // An allowed host the secret is not bound to.
        (
            r#"{"mode":"header","host":"hooks.example.test"}"#,
            "may not be sent to hooks.example.test",
        ),
        // Not one of the extension's hosts at all.
        (
            r#"{"mode":"header","host":"evil.example.com"}"#,
            "not one of the extension's allowed hosts",
        ),
    ] {
        let outcome = f.invoke(config);
        let error = outcome.result.clone().expect_err(config);
        assert!(error.contains("HttpRequestDenied"), "{config}: {error}");
        let event = &outcome.egress[0];
        let reason = event.refused.clone().unwrap_or_default();
        assert!(reason.contains(why), "{config}: {reason}");
        assert!(reason.contains("API_TOKEN"), "{config}: {reason}");
        assert!(!everything(&outcome).contains(TOKEN), "{config}");
    }
    assert_eq!(f.seen(), Vec::<String>::new(), "a refused request left");
}

#[test]
fn a_placeholder_from_an_earlier_invocation_is_refused() {
    let f = fixture();
    let first = f.invoke(r#"{"mode":"placeholder"}"#);
    let old: serde_json::Value = serde_json::from_str(&first.result.unwrap()).unwrap();
    let old = old["placeholder"].as_str().unwrap();
    assert!(old.starts_with("nrkph_"), "{old}");
    // Records show which secret a placeholder stood for, not the
    // placeholder (the output is the next node's data, and kept).
    assert!(
        first.stdout.contains("placeholder ‹API_TOKEN›"),
        "{}",
        first.stdout
    );
    assert!(!first.stdout.contains(old));
    assert!(first.logs[0].1.contains("‹API_TOKEN›"));
    let outcome = f.invoke(&format!(r#"{{"mode":"header","reuse":"{old}"}}"#));
    let reason = outcome.egress[0].refused.clone().unwrap_or_default();
    assert!(reason.contains("did not issue"), "{reason}");
    assert_eq!(f.seen(), Vec::<String>::new());
}

#[test]
fn signatures_are_computed_by_the_host() {
    use hmac::{Hmac, Mac};
    let f = fixture();
    let outcome = f.invoke(r#"{"mode":"hmac"}"#);
    let output: serde_json::Value = serde_json::from_str(&outcome.result.unwrap()).unwrap();
    let mut mac = <Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(b"message to sign");
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(output["hmac"], expected);
    assert_eq!(output["hosts"], serde_json::json!(["api.example.test"]));
}

#[test]
fn the_mark_says_which_components_can_hold_plaintext() {
    let f = fixture();
    let thief = f.thief.description();
    assert_eq!(thief.wit, "0.2.0");
    assert!(!thief.reveals_secrets, "thief imports no secrets.get");
    assert_eq!(
        thief.required_secrets[0].injection.headers[0].format,
        "Bearer {}"
    );
    // Built against 0.1.0 and unchanged: loads, and is marked.
    let old = f
        .tokio
        .block_on(f.runtime.load(&component("well-behaved")))
        .unwrap();
    assert_eq!(old.description().wit, "0.1.0");
    assert!(old.description().reveals_secrets);
}

#[test]
fn a_credentialed_request_cannot_ask_for_a_piece_or_a_compressed_echo() {
    let f = fixture();
    // A byte range of the echo would hand over the value piece by piece.
    let outcome = f.invoke(r#"{"mode":"range"}"#);
    let reason = outcome.egress[0].refused.clone().unwrap_or_default();
    assert!(reason.contains("byte range"), "{reason}");
    assert!(f.seen().is_empty(), "a refused request left");
    // The request goes out asking for identity, whatever the guest asked;
    // a compressed answer anyway never reaches the guest.
    let outcome = f.invoke(r#"{"mode":"compressed"}"#);
    let error = outcome.result.clone().unwrap_err();
    assert!(error.contains("HttpResponseContentCoding"), "{error}");
    let reason = outcome.egress[0].refused.clone().unwrap_or_default();
    assert!(reason.contains("encoded (gzip)"), "{reason}");
    let seen = f.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].contains("accept-encoding: identity\r\n"),
        "{}",
        seen[0]
    );
    assert!(!seen[0].contains("accept-encoding: gzip"), "{}", seen[0]);
    assert!(!everything(&outcome).contains(TOKEN));
    // A host that never received the value may answer compressed: the
    // request goes as the guest built it, and the answer reaches it.
    let outcome = f.invoke(r#"{"mode":"plain-compressed","host":"hooks.example.test"}"#);
    assert!(outcome.result.is_ok(), "{outcome:?}");
    let seen = f.hooks.seen.lock().unwrap().clone();
    assert!(seen[0].contains("accept-encoding: gzip\r\n"), "{}", seen[0]);
}

#[test]
fn asking_again_and_again_holds_one_placeholder() {
    let f = fixture();
    let outcome = f.invoke(r#"{"mode":"many"}"#);
    assert_eq!(outcome.result.unwrap(), r#"{"same":true}"#);
}
