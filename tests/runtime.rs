//! The wasmtime host: real components, built from tests/guests, on a real
//! vault. Each hostile behaviour fails alone with its own error, the next
//! invocation on the same runtime still works, and no secret value appears
//! in anything captured.

mod common;

use std::time::Duration;

use common::TestVault;
use common::guests::component;
use narakim::runtime::{Extension, InvocationError, Limits, LoadError, Outcome, Runtime};

const TOKEN: &str = "tok-3f9a8b7c6d5e4f3a2b1c";
const APP_ID: &str = "app-1234567890";
const CUSTOM: &str = "custom-key-abcdefgh";
const OTHER: &str = "other-bots-secret-value";

struct Fixture {
    vault: TestVault,
    runtime: Runtime,
    tokio: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let vault = TestVault::new();
    vault.run(&["team", "create", "ops"]).ok();
    vault
        .run(&["bot", "create", "greeter", "--team", "ops"])
        .ok();
    vault.run(&["bot", "create", "other", "--team", "ops"]).ok();
    vault.set("API_TOKEN", "--bot", "greeter", TOKEN);
    vault.set("APP_ID", "--team", "ops", APP_ID);
    vault.set("CUSTOM_KEY", "--bot", "greeter", CUSTOM);
    vault.set("OTHER_BOTS_SECRET", "--bot", "other", OTHER);
    let limits = Limits {
        timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    Fixture {
        runtime: Runtime::new(limits, Some(vault.root.path().join("cache"))).unwrap(),
        tokio: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        vault,
    }
}

impl Fixture {
    fn load(&self, name: &str) -> Extension {
        self.tokio
            .block_on(self.runtime.load(&component(name)))
            .unwrap()
    }

    fn invoke(&self, ext: &Extension, bot: &str, config: &str) -> Result<Outcome, InvocationError> {
        let snapshot = self.vault.open().snapshot_for_bot(bot).unwrap();
        let guard = self
            .runtime
            .guard(&snapshot, [(ext.description(), config)])
            .unwrap();
        self.tokio.block_on(
            self.runtime
                .invoke(ext, "node-1", &guard, config, "{\"n\":1}"),
        )
    }
}

/// Asserts no secret value, raw or in a common encoding, is in `text`.
#[track_caller]
fn assert_clean(text: &str) {
    for value in [TOKEN, APP_ID, CUSTOM, OTHER] {
        for form in common::encodings(value) {
            assert!(
                !text.contains(&*String::from_utf8_lossy(&form)),
                "a secret leaked into: {text}"
            );
        }
    }
}

fn everything(o: &Outcome) -> String {
    let logs: Vec<String> = o.logs.iter().map(|(l, m)| format!("{l}:{m}")).collect();
    format!(
        "{:?}\n{}\n{}\n{}",
        o.result,
        o.stdout,
        o.stderr,
        logs.join("\n")
    )
}

#[test]
fn inspect_reads_the_self_description() {
    let f = fixture();
    let ext = f.load("well-behaved");
    let d = ext.description();
    assert_eq!(d.name, "well-behaved");
    assert_eq!(
        d.required_secrets
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["API_TOKEN", "APP_ID"]
    );
    assert_eq!(d.secret_fields[0].pointer, "/auth/secret");
    assert_eq!(d.allowed_hosts, ["api.example.test"]);
    assert_eq!(ext.sha256().len(), 64);
}

#[test]
fn things_that_are_not_extensions_are_refused_clearly() {
    let f = fixture();
    let dir = f.vault.root.path();
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    for (path, expect) in [
        (junk, "not a WebAssembly component"),
        (core, "core wasm module"),
        (component("not-an-extension"), "not a narakim extension"),
    ] {
        let err = f.tokio.block_on(f.runtime.load(&path)).unwrap_err();
        assert!(err.to_string().contains(expect), "{path:?}: {err}");
        assert!(matches!(
            err,
            LoadError::NotAComponent { .. } | LoadError::WrongWorld { .. }
        ));
    }
}

#[test]
fn a_well_behaved_extension_reads_what_it_declared_and_leaks_nothing() {
    let f = fixture();
    let ext = f.load("well-behaved");
    let out = f
        .invoke(
            &ext,
            "greeter",
            r#"{"chatty":true,"auth":{"secret":"CUSTOM_KEY"}}"#,
        )
        .unwrap();
    let output: serde_json::Value = serde_json::from_str(out.result.as_ref().unwrap()).unwrap();
    assert_eq!(output["token_len"], TOKEN.len());
    assert_eq!(output["app_len"], APP_ID.len());
    assert_eq!(output["extra_len"], CUSTOM.len());
    assert_eq!(output["input"]["n"], 1);
    assert_eq!(out.secrets_read, ["API_TOKEN", "APP_ID", "CUSTOM_KEY"]);
    assert!(
        out.stdout.contains("stdout sees [REDACTED:API_TOKEN]"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("stderr sees [REDACTED:APP_ID]"),
        "{out:?}"
    );
    assert_eq!(out.logs[0].0, "info");
    assert!(out.logs[0].1.contains("[REDACTED:API_TOKEN]"), "{out:?}");
    assert_clean(&everything(&out));
}

#[test]
fn undeclared_and_other_bots_names_are_refused_by_name() {
    let f = fixture();
    let ext = f.load("hostile");
    let out = f
        .invoke(&ext, "greeter", r#"{"mode":"undeclared"}"#)
        .unwrap();
    assert_eq!(
        out.result,
        Err("SecretError::NotDeclared(\"NOT_DECLARED_ANYWHERE\")".into())
    );
    // Declared, but only the other bot has it: not configured for this bot.
    let out = f
        .invoke(&ext, "greeter", r#"{"mode":"other-bot"}"#)
        .unwrap();
    assert_eq!(
        out.result,
        Err("SecretError::NotConfigured(\"OTHER_BOTS_SECRET\")".into())
    );
    assert!(out.secrets_read.is_empty());
    // A config field cannot smuggle in a name the bot does not have either.
    let out = f
        .invoke(
            &ext,
            "greeter",
            r#"{"mode":"undeclared","auth":{"secret":"NOT_DECLARED_ANYWHERE"}}"#,
        )
        .unwrap();
    assert_eq!(
        out.result,
        Err("SecretError::NotConfigured(\"NOT_DECLARED_ANYWHERE\")".into())
    );
}

#[test]
fn printed_returned_and_panicked_secrets_are_scrubbed() {
    let f = fixture();
    let ext = f.load("hostile");
    let out = f.invoke(&ext, "greeter", r#"{"mode":"print"}"#).unwrap();
    assert!(
        out.stdout.contains("raw [REDACTED:API_TOKEN]"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("base64 [REDACTED:API_TOKEN]"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("hex [REDACTED:API_TOKEN]"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("split [REDACTED:API_TOKEN] end"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("{\"leak\":\"[REDACTED:API_TOKEN]\"}"),
        "{}",
        out.stdout
    );
    assert_clean(&everything(&out));

    // An output holding a value is refused, not redacted: the next node
    // would otherwise learn that its guess was right.
    let err = f
        .invoke(&ext, "greeter", r#"{"mode":"return-output"}"#)
        .unwrap_err();
    assert!(
        matches!(err, InvocationError::OutputHoldsSecret { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("holds the value of secret API_TOKEN")
    );
    assert_clean(&err.to_string());
    let out = f
        .invoke(&ext, "greeter", r#"{"mode":"return-error"}"#)
        .unwrap();
    assert_eq!(out.result, Err("failed with [REDACTED:API_TOKEN]".into()));

    let err = f
        .invoke(&ext, "greeter", r#"{"mode":"panic"}"#)
        .unwrap_err();
    assert!(matches!(err, InvocationError::Trap { .. }), "{err}");
    assert!(
        err.to_string().contains("extension hostile, node node-1"),
        "{err}"
    );
    assert!(
        err.stderr().contains("panicking with [REDACTED:API_TOKEN]"),
        "{}",
        err.stderr()
    );
    assert_clean(&format!("{err} {}", err.stderr()));
}

#[test]
fn each_limit_breach_fails_alone_with_its_own_error() {
    let f = fixture();
    let hostile = f.load("hostile");
    let good = f.load("well-behaved");
    type IsExpected = fn(&InvocationError) -> bool;
    let cases: [(&str, IsExpected); 3] = [
        ("loop", |e| matches!(e, InvocationError::Timeout { .. })),
        ("alloc", |e| {
            matches!(e, InvocationError::MemoryLimit { .. })
        }),
        ("recurse", |e| {
            matches!(e, InvocationError::StackOverflow { .. })
        }),
    ];
    for (mode, expected) in cases {
        let err = f
            .invoke(&hostile, "greeter", &format!("{{\"mode\":\"{mode}\"}}"))
            .unwrap_err();
        assert!(expected(&err), "{mode}: {err:?}");
        assert!(
            err.to_string().contains("extension hostile, node node-1"),
            "{err}"
        );
        assert_clean(&format!("{err} {}", err.stderr()));
        // The next invocation on the same runtime still works.
        let out = f.invoke(&good, "greeter", "{}").unwrap();
        assert!(out.result.is_ok(), "after {mode}: {out:?}");
    }
}

#[test]
fn flooding_stdout_is_truncated_without_trapping() {
    let f = fixture();
    let ext = f.load("hostile");
    let out = f.invoke(&ext, "greeter", r#"{"mode":"flood"}"#).unwrap();
    assert_eq!(out.result, Ok("{}".into()));
    assert!(out.stdout.len() < (1 << 20) + 1024, "{}", out.stdout.len());
    assert!(out.stdout.contains("bytes dropped past the capture limit"));
    assert!(out.stdout.starts_with("[REDACTED:API_TOKEN] flooding\n"));
    assert_clean(&out.stdout);
}

#[test]
fn extension_commands_through_the_binary() {
    let f = fixture();
    let good = component("well-behaved");
    let good = good.to_str().unwrap();
    let inspect = f.vault.run(&["extension", "inspect", good]);
    let shown: serde_json::Value = serde_json::from_str(inspect.ok()).unwrap();
    assert_eq!(shown["name"], "well-behaved");
    assert_eq!(shown["required_secrets"][0]["name"], "API_TOKEN");

    let run = f.vault.run(&[
        "extension",
        "run",
        good,
        "--bot",
        "greeter",
        "--config",
        r#"{"chatty":true}"#,
        "--input",
        r#"{"x":2}"#,
    ]);
    let output: serde_json::Value = serde_json::from_str(run.ok().trim()).unwrap();
    assert_eq!(output["input"]["x"], 2);
    assert!(
        run.stderr
            .contains("[log info] using token [REDACTED:API_TOKEN]"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("secrets read: API_TOKEN, APP_ID"),
        "{run:?}"
    );
    assert_clean(&run.all_output());

    // Errors: an extension error, a trap, a non-extension, bad JSON.
    let hostile = component("hostile");
    let hostile = hostile.to_str().unwrap();
    let out = f.vault.run(&[
        "extension",
        "run",
        hostile,
        "--bot",
        "greeter",
        "--config",
        r#"{"mode":"return-error"}"#,
    ]);
    out.fails_with("returned an error: failed with [REDACTED:API_TOKEN]");
    let out = f.vault.run(&[
        "extension",
        "run",
        hostile,
        "--bot",
        "greeter",
        "--config",
        r#"{"mode":"recurse"}"#,
    ]);
    out.fails_with("stack overflow");
    assert_clean(&out.all_output());
    f.vault
        .run(&[
            "extension",
            "inspect",
            component("not-an-extension").to_str().unwrap(),
        ])
        .fails_with("is not a narakim extension");
    f.vault
        .run(&[
            "extension",
            "run",
            good,
            "--bot",
            "greeter",
            "--config",
            "{not json",
        ])
        .fails_with("config is not valid JSON");
    f.vault
        .run(&[
            "extension",
            "run",
            good,
            "--bot",
            "greeter",
            "--upstream",
            "nonsense",
        ])
        .fails_with("is not HOST=URL");
}
