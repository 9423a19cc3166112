//! Containment, attacked through the real binary: hostile components
//! (tests/guests/escape and friends) and hostile graphs try to get a secret
//! to a host it is not bound to, into an output or a terminal, or to make
//! the host fall over. Each class of attack has its own test; what left
//! the sandbox is checked at a loopback recorder, byte for byte.

mod common;

use std::path::PathBuf;

use common::guests::component;
use common::recorder::Recorder;
use common::{Run, TestVault};

/// Mixed case and digits only, so it is also a valid HTTP method and
/// header name.
const TOKEN: &str = "tokAbC123xyz789QRSwvu";
/// A team secret no node declares.
const TEAM_KEY: &str = "teamKey0987ZYXwvuTSR";
const PIN: &str = "8675309123";

fn vault() -> TestVault {
    let v = TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    v.set("API_TOKEN", "--bot", "greeter", TOKEN);
    v.set("TEAM_KEY", "--team", "ops", TEAM_KEY);
    v.set("NUMERIC_PIN", "--team", "ops", PIN);
    v
}

/// No form of any planted value (raw, hex, base64, percent, JSON, case
/// folded) is in `bytes`.
#[track_caller]
fn assert_no_value(bytes: &[u8], what: &str) {
    let folded = bytes.to_ascii_lowercase();
    for value in [TOKEN, TEAM_KEY, PIN] {
        for form in common::encodings(value) {
            assert!(
                !common::contains(&folded, &form.to_ascii_lowercase()),
                "a form of a secret reached {what}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

fn extension_run(v: &TestVault, guest: &str, config: &str, extra: &[&str]) -> Run {
    let path = component(guest);
    let mut args = vec![
        "extension",
        "run",
        path.to_str().unwrap(),
        "--bot",
        "greeter",
        "--config",
        config,
    ];
    args.extend_from_slice(extra);
    v.run(&args)
}

#[test]
fn every_part_of_a_request_is_checked_as_the_receiver_decodes_it() {
    let v = vault();
    let other = Recorder::start(false);
    let up = other.upstream("other.example.test");
    for mode in [
        "method",
        "header-name",
        "header-value",
        "userinfo",
        "path-partial-percent",
        "query-partial-percent",
        "json-all-unicode",
        "json-some-unicode",
        "body-raw",
    ] {
        let run = extension_run(
            &v,
            "escape",
            &format!(r#"{{"mode":"{mode}","authority":"other.example.test"}}"#),
            &["--upstream", &up],
        );
        run.fails_with("stopped");
        assert!(
            run.stderr.contains("carries secret API_TOKEN"),
            "{mode}: {run:#?}"
        );
        assert_no_value(run.all_output().as_bytes(), mode);
    }
    assert!(
        other.requests().is_empty(),
        "a request reached the unbound host"
    );
}

#[test]
fn a_bound_host_still_gets_its_secret_and_trailers_are_refused() {
    let v = vault();
    let api = Recorder::start(false);
    let up = api.upstream("api.example.test");
    let run = extension_run(
        &v,
        "escape",
        r#"{"mode":"header-value","authority":"api.example.test"}"#,
        &["--upstream", &up],
    );
    assert_eq!(run.ok().trim(), r#"{"status":200}"#);
    let seen = api.requests();
    assert_eq!(seen.len(), 1);
    assert!(common::contains(&seen[0], TOKEN.as_bytes()));

    let run = extension_run(
        &v,
        "escape",
        r#"{"mode":"trailers","authority":"api.example.test"}"#,
        &["--upstream", &up],
    );
    run.fails_with("http error");
    assert!(run.stderr.contains("trailers"), "{run:#?}");
    assert_eq!(api.requests().len(), 1, "the request with trailers left");
}

#[test]
fn a_secret_field_narrows_a_required_secrets_binding_never_widens_it() {
    let v = vault();
    let hooks = Recorder::start(false);
    let api = Recorder::start(false);
    for authority in ["hooks.example.test", "api.example.test"] {
        // API_TOKEN is bound to api.example.test; the field naming it to
        // hooks.example.test. Together: nowhere.
        let run = extension_run(
            &v,
            "escape",
            &format!(
                r#"{{"mode":"header-value","auth":{{"secret":"API_TOKEN"}},"authority":"{authority}"}}"#
            ),
            &[
                "--upstream",
                &hooks.upstream("hooks.example.test"),
                "--upstream",
                &api.upstream("api.example.test"),
            ],
        );
        run.fails_with("carries secret API_TOKEN");
    }
    assert!(hooks.requests().is_empty() && api.requests().is_empty());
}

/// A bot graph in a file, deployed.
fn deploy(v: &TestVault, graph: &serde_json::Value) -> Run {
    let file = v.root.path().join(format!("graph-{}.json", rand_suffix()));
    std::fs::write(&file, graph.to_string()).unwrap();
    v.run(&[
        "bot",
        "deploy",
        "greeter",
        "--graph",
        file.to_str().unwrap(),
    ])
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn install(v: &TestVault, guest: &str) -> Run {
    let path = component(guest);
    v.run(&["extension", "install", path.to_str().unwrap()])
}

fn execution_id(run: &Run) -> String {
    let text = run.all_output();
    let at = text.find("execution ").expect("an execution id") + "execution ".len();
    text[at..].split_whitespace().next().unwrap().to_owned()
}

fn show(v: &TestVault, id: &str) -> String {
    v.run(&["executions", "show", id]).ok().to_owned()
}

#[test]
fn a_value_laundered_through_another_node_is_checked_against_its_binding() {
    let v = vault();
    install(&v, "escape").ok();
    let other = Recorder::start(false);
    deploy(
        &v,
        &serde_json::json!({
            "name": "launder",
            "nodes": [
                {"id": "a", "extension": "escape", "config": {"mode": "reverse-output"}},
                {"id": "b", "extension": "escape", "depends_on": ["a"],
                 "config": {"mode": "unreverse-send", "from": "a", "authority": "other.example.test"}}
            ]
        }),
    )
    .ok();
    let run = v.run(&[
        "run",
        "greeter",
        "--upstream",
        &other.upstream("other.example.test"),
    ]);
    run.fails_with("failed");
    let shown = show(&v, &execution_id(&run));
    assert!(
        shown.contains("carries secret API_TOKEN"),
        "node b's request was not stopped: {shown}"
    );
    assert!(other.requests().is_empty(), "the laundered token left");
    assert_no_value(shown.as_bytes(), "the execution record");
    assert_no_value(run.all_output().as_bytes(), "narakim run");
}

#[test]
fn outputs_are_canonical_and_hold_no_value_and_redaction_is_no_oracle() {
    let v = vault();
    install(&v, "escape").ok();
    // An output that \u-escapes the token fails the node; it is never
    // printed, stored or passed on, escaped or not.
    deploy(
        &v,
        &serde_json::json!({
            "name": "escaped",
            "nodes": [{"id": "a", "extension": "escape", "config": {"mode": "emit-secret-escaped"}}]
        }),
    )
    .ok();
    let run = v.run(&["run", "greeter"]);
    run.fails_with("failed");
    assert!(
        run.all_output()
            .contains("holds the value of secret API_TOKEN"),
        "{run:#?}"
    );
    assert_no_value(run.all_output().as_bytes(), "narakim run");
    assert_no_value(show(&v, &execution_id(&run)).as_bytes(), "the record");

    // A guess at the start of a numeric secret passes through unchanged:
    // whether it was a prefix is not shown to the next node.
    deploy(
        &v,
        &serde_json::json!({
            "name": "oracle",
            "nodes": [
                {"id": "a", "extension": "escape", "config": {"mode": "emit", "emit": "{{trigger.guess}}"}},
                {"id": "b", "extension": "escape", "depends_on": ["a"],
                 "config": {"mode": "emit", "emit": "{\"got\":{{nodes.a.output}}}"}}
            ]
        }),
    )
    .ok();
    let guess = &PIN[..7];
    let run = v.run(&[
        "run",
        "greeter",
        "--input",
        &format!(r#"{{"guess":"{guess}"}}"#),
    ]);
    run.ok();
    assert!(
        run.stdout.contains(&format!(r#"{{"got":{guess}}}"#)),
        "{run:#?}"
    );
    // The whole value in the trigger is scrubbed before any node sees it.
    let run = v.run(&[
        "run",
        "greeter",
        "--input",
        &format!(r#"{{"guess":"{PIN}"}}"#),
    ]);
    assert_no_value(run.all_output().as_bytes(), "narakim run");
    assert_no_value(show(&v, &execution_id(&run)).as_bytes(), "the record");
}

#[test]
fn templates_may_not_choose_the_secret_or_the_host() {
    let v = vault();
    install(&v, "escape").ok();
    let run = deploy(
        &v,
        &serde_json::json!({
            "name": "pick",
            "nodes": [{"id": "a", "extension": "escape",
                       "config": {"mode": "header-value", "auth": "{{trigger.auth}}"}}]
        }),
    );
    run.fails_with("config /auth is a template, and it holds /auth/secret");
}

#[test]
fn extensions_may_not_name_loopback_ip_or_metadata_hosts() {
    let v = vault();
    for (guest, problem) in [
        ("loopback-host", "\"localhost\" is a loopback name"),
        (
            "metadata-host",
            "\"metadata.google.internal\" is a cloud metadata service name",
        ),
        ("ip-host", "\"127.0.0.1\" is an IP address"),
    ] {
        install(&v, guest).fails_with(problem);
        extension_run(&v, guest, "{}", &[]).fails_with(problem);
    }
}

#[test]
fn the_description_stored_at_install_is_the_contract() {
    // shifty's describe() adds evil.example.test half the time. Install
    // until the stored description is the narrow one.
    let evil = Recorder::start(false);
    let v = (0..40)
        .map(|_| {
            let v = vault();
            install(&v, "shifty").ok();
            v
        })
        .find(|v| {
            !v.run(&["extension", "show", "shifty"])
                .ok()
                .contains("evil.example.test")
        })
        .expect("describe() gave the narrow answer at least once in 40 installs");
    deploy(
        &v,
        &serde_json::json!({
            "name": "shifty",
            "nodes": [{"id": "a", "extension": "shifty", "config": {"authority": "api.example.test"}}]
        }),
    )
    .ok();
    let mut changed = 0;
    for _ in 0..12 {
        let run = v.run(&[
            "run",
            "greeter",
            "--upstream",
            &evil.upstream("evil.example.test"),
            "--upstream",
            &evil.upstream("api.example.test"),
        ]);
        if run.all_output().contains("describes itself differently") {
            changed += 1;
        }
    }
    assert!(changed > 0, "12 loads never saw the wider description");
    // Only the narrow contract ever ran: api.example.test, never evil.
    for request in evil.requests() {
        let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
        assert!(!head.contains("evil.example.test"), "{head}");
    }
}

#[test]
fn describe_that_blocks_times_out_everywhere() {
    let v = vault();
    let path = component("slow-describe");
    let started = std::time::Instant::now();
    v.run(&["extension", "inspect", path.to_str().unwrap()])
        .fails_with("describe() did not return within 2s");
    install(&v, "slow-describe").fails_with("did not return within");
    extension_run(&v, "slow-describe", "{}", &[]).fails_with("did not return within");
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn guest_text_cannot_forge_lines_or_steer_the_terminal() {
    let v = vault();
    let run = extension_run(&v, "escape", r#"{"mode":"forge"}"#, &[]);
    run.ok();
    check_printable(&run.all_output());
    install(&v, "escape").ok();
    deploy(
        &v,
        &serde_json::json!({
            "name": "forge",
            "nodes": [{"id": "a", "extension": "escape", "config": {"mode": "forge"}}]
        }),
    )
    .ok();
    let run = v.run(&["run", "greeter"]);
    check_printable(&run.all_output());
    check_printable(&show(&v, &execution_id(&run)));
}

#[track_caller]
fn check_printable(text: &str) {
    for line in text.lines() {
        assert!(
            !line.starts_with("[egress] POST evil.example"),
            "a forged line: {text}"
        );
        assert!(
            !line.trim_start().starts_with("[egress] POST evil"),
            "{text}"
        );
    }
    for c in text.chars() {
        assert!(
            c == '\n' || !(c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "control character {c:?} printed: {text:?}"
        );
    }
}

#[test]
fn an_error_just_over_the_limit_ending_in_a_multibyte_character_fails_cleanly() {
    let v = vault();
    let run = extension_run(&v, "escape", r#"{"mode":"long-error"}"#, &[]);
    run.fails_with("returned an error");
    assert!(
        !run.stderr.contains("panicked"),
        "{}",
        &run.stderr[..200.min(run.stderr.len())]
    );
    install(&v, "escape").ok();
    deploy(
        &v,
        &serde_json::json!({
            "name": "long",
            "nodes": [{"id": "a", "extension": "escape", "config": {"mode": "long-error"}}]
        }),
    )
    .ok();
    let run = v.run(&["run", "greeter"]);
    run.fails_with("failed");
    let list = v.run(&["executions", "list"]).ok().to_owned();
    assert!(
        list.contains("failed") && !list.contains("running"),
        "{list}"
    );
}

#[test]
fn a_node_that_times_out_or_traps_keeps_its_audit_trail() {
    let v = vault();
    install(&v, "escape").ok();
    let api = Recorder::start(false);
    for mode in ["audit-then-hang", "audit-then-sleep", "audit-then-trap"] {
        deploy(
            &v,
            &serde_json::json!({
                "name": mode,
                "nodes": [{"id": "a", "extension": "escape",
                           "config": {"mode": mode, "authority": "api.example.test"}}]
            }),
        )
        .ok();
        let run = v.run(&[
            "run",
            "greeter",
            "--timeout",
            "2",
            "--upstream",
            &api.upstream("api.example.test"),
        ]);
        run.fails_with("failed");
        let shown = show(&v, &execution_id(&run));
        for expected in [
            "[log info] before hang",
            "[stdout] stdout before hang",
            "[egress] GET api.example.test: sent",
        ] {
            assert!(
                shown.contains(expected),
                "{mode}: {expected:?} missing: {shown}"
            );
        }
        assert_no_value(shown.as_bytes(), "the record");
    }
}

/// Peak RSS (KiB) of one `narakim extension run` of `guest` with
/// `config`, from wait4's rusage of the child.
fn peak_rss_kib(v: &TestVault, guest: &str, config: &str) -> (i64, Run) {
    let path: PathBuf = component(guest);
    let (out_path, err_path) = (
        v.root.path().join(format!("rss-{}.out", rand_suffix())),
        v.root.path().join(format!("rss-{}.err", rand_suffix())),
    );
    let mut cmd = v.command();
    cmd.args([
        "extension",
        "run",
        path.to_str().unwrap(),
        "--bot",
        "greeter",
        "--config",
        config,
        "--timeout",
        "20",
    ])
    .stdin(std::process::Stdio::null())
    .stdout(std::fs::File::create(&out_path).unwrap())
    .stderr(std::fs::File::create(&err_path).unwrap());
    // Reaped by wait4 below, which also reports the child's peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let read = |p: &PathBuf| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    (
        usage.ru_maxrss,
        Run {
            code,
            stdout: read(&out_path),
            stderr: read(&err_path),
        },
    )
}

#[test]
fn host_memory_stays_bounded_under_hostile_floods() {
    let v = vault();
    // Twice: the first run also compiles the component into the cache.
    peak_rss_kib(&v, "escape", r#"{"mode":"reverse-output"}"#)
        .1
        .ok();
    let (baseline, run) = peak_rss_kib(&v, "escape", r#"{"mode":"reverse-output"}"#);
    run.ok();
    // The guest's own linear memory may reach 64 MiB; the host may add at
    // most 64 MiB on top of that, whatever the guest does.
    let bound = baseline + 128 * 1024;
    for (config, expect) in [
        (
            r#"{"mode":"refusal-flood","count":2000}"#,
            "more requests not recorded",
        ),
        (r#"{"mode":"fields-flood"}"#, "too many live host resources"),
        (
            r#"{"mode":"log-flood","count":5000000}"#,
            "more log calls dropped",
        ),
        (r#"{"mode":"header-flood","count":100000}"#, ""),
    ] {
        let (rss, run) = peak_rss_kib(&v, "escape", config);
        assert!(
            run.all_output().contains(expect),
            "{config}: {}",
            &run.all_output()[..run.all_output().len().min(2000)]
        );
        assert!(
            rss <= bound,
            "{config}: peak RSS {rss} KiB, over the bound of {bound} KiB (baseline {baseline} KiB)"
        );
        eprintln!("{config}: peak RSS {rss} KiB (baseline {baseline} KiB)");
    }
}
