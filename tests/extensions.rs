//! The sample extensions (extensions/), built from source, run through the
//! `narakim extension run` command against loopback stand-ins of Discord and
//! OpenRouter that check every request against the official OpenAPI specs
//! (../shared/reference). The operator mapping (`--upstream`) points
//! discord.com and openrouter.ai at the stand-ins; extension code and
//! allow-lists are unchanged.

mod common;
#[path = "support/openapi.rs"]
mod openapi;

use common::extensions::extension;
use common::{Run, TestVault, encodings};
use std::time::Duration;

use narakim::standin::{
    ChatShape, DiscordCredentials, Kind, OpenRouterCredentials, Options, Scripted, StandIn,
};

const DISCORD_TOKEN: &str =
    "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GhXk2a.Zt8cYw3nQp1Lr6vBm0sJ4dKf9uEa7xHiO2gTqW";
const APPLICATION_ID: &str = "1100000000000000001";
const OPENROUTER_KEY: &str =
    "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";
const WRONG_DISCORD_TOKEN: &str =
    "MTEwMDAwMDAwMDAwMDAwMDAwMg.AbCdEf.WrongWrongWrongWrongWrongWrong1";
const WRONG_OPENROUTER_KEY: &str =
    "sk-or-v1-0000000000000000000000000000000000000000000000000000000000000000";

struct Harness {
    vault: TestVault,
    discord: StandIn,
    openrouter: StandIn,
    // Serves the stand-ins while the binary runs; dropped last.
    _tokio: tokio::runtime::Runtime,
}

/// Bots: `greeter` has the right secrets, `wrong` wrong ones, `empty`
/// none at all.
fn harness() -> Harness {
    let vault = TestVault::new();
    vault.run(&["team", "create", "ops"]).ok();
    for bot in ["greeter", "wrong", "empty"] {
        vault.run(&["bot", "create", bot, "--team", "ops"]).ok();
    }
    vault.set("DISCORD_BOT_TOKEN", "--bot", "greeter", DISCORD_TOKEN);
    vault.set("OPENROUTER_API_KEY", "--bot", "greeter", OPENROUTER_KEY);
    vault.set("DISCORD_BOT_TOKEN", "--bot", "wrong", WRONG_DISCORD_TOKEN);
    vault.set("OPENROUTER_API_KEY", "--bot", "wrong", WRONG_OPENROUTER_KEY);
    // The application id is shared by the team's bots.
    vault.set("DISCORD_APPLICATION_ID", "--team", "ops", APPLICATION_ID);

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _inside = tokio.enter();
    let discord = StandIn::start(
        Kind::Discord(DiscordCredentials {
            bot_token: DISCORD_TOKEN.into(),
            application_id: APPLICATION_ID.into(),
        }),
        Options {
            validator: Some(openapi::discord_validator()),
            ..Options::default()
        },
    )
    .unwrap();
    let openrouter = StandIn::start(
        Kind::OpenRouter(OpenRouterCredentials {
            api_key: OPENROUTER_KEY.into(),
        }),
        Options {
            validator: Some(openapi::openrouter_validator()),
            ..Options::default()
        },
    )
    .unwrap();
    drop(_inside);
    Harness {
        vault,
        discord,
        openrouter,
        _tokio: tokio,
    }
}

/// One sample extension and a config that works with the stand-ins.
struct Case {
    extension: &'static str,
    config: &'static str,
    /// Which stand-in it talks to.
    openrouter: bool,
    /// The secret that authenticates it, and how the header carries it.
    secret: &'static str,
    header_prefix: &'static str,
}

const CASES: [Case; 4] = [
    Case {
        extension: "discord-send-message",
        config: r#"{"channel_id":"123456789012345678","content":"Hello {{input.name}}!"}"#,
        openrouter: false,
        secret: "DISCORD_BOT_TOKEN",
        header_prefix: "Bot ",
    },
    Case {
        extension: "discord-register-command",
        config: r#"{"name":"ping","description":"Replies with pong"}"#,
        openrouter: false,
        secret: "DISCORD_BOT_TOKEN",
        header_prefix: "Bot ",
    },
    Case {
        extension: "openrouter-chat",
        config: r#"{"model":"openai/gpt-4o-mini","system":"Be brief.","prompt":"Greet {{input.name}}"}"#,
        openrouter: true,
        secret: "OPENROUTER_API_KEY",
        header_prefix: "Bearer ",
    },
    Case {
        extension: "http-request",
        config: r#"{"method":"POST","url":"https://openrouter.ai/api/v1/chat/completions",
            "body":{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]},
            "auth":{"secret":"OPENROUTER_API_KEY"}}"#,
        openrouter: true,
        secret: "OPENROUTER_API_KEY",
        header_prefix: "Bearer ",
    },
];

impl Harness {
    fn stand_in(&self, case: &Case) -> &StandIn {
        if case.openrouter {
            &self.openrouter
        } else {
            &self.discord
        }
    }

    fn run(&self, case: &Case, bot: &str) -> Run {
        self.run_config(case.extension, case.config, bot)
    }

    /// `extension` with `config`, input `{"name":"Ada"}`, both stand-ins
    /// mapped.
    fn run_config(&self, extension_name: &str, config: &str, bot: &str) -> Run {
        let path = extension(extension_name);
        self.vault.run(&[
            "extension",
            "run",
            path.to_str().unwrap(),
            "--bot",
            bot,
            "--config",
            config,
            "--input",
            r#"{"name":"Ada"}"#,
            "--upstream",
            &self.discord.upstream_arg(),
            "--upstream",
            &self.openrouter.upstream_arg(),
        ])
    }
}

/// No secret value, raw or encoded, in anything the run printed.
#[track_caller]
fn assert_clean(run: &Run) {
    let all = run.all_output();
    for value in [
        DISCORD_TOKEN,
        APPLICATION_ID,
        OPENROUTER_KEY,
        WRONG_DISCORD_TOKEN,
        WRONG_OPENROUTER_KEY,
    ] {
        for form in encodings(value) {
            assert!(
                !all.as_bytes().windows(form.len()).any(|w| w == form),
                "a secret leaked into the output: {run:#?}"
            );
        }
    }
}

#[test]
fn each_extension_succeeds_with_the_right_secret_and_never_shows_it() {
    let h = harness();
    for case in &CASES {
        let stand_in = h.stand_in(case);
        stand_in.take_requests();
        let run = h.run(case, "greeter");
        let output: serde_json::Value = serde_json::from_str(run.ok().trim())
            .unwrap_or_else(|e| panic!("{}: output is not JSON ({e}): {run:#?}", case.extension));
        assert_clean(&run);
        assert!(
            run.stderr.contains("secrets read: ") && run.stderr.contains(case.secret),
            "{}: {run:#?}",
            case.extension
        );

        // The stand-in saw the real credential, in the header the API
        // expects, and accepted the body against the spec.
        let seen = stand_in.take_requests();
        assert_eq!(seen.len(), 1, "{}: {seen:#?}", case.extension);
        let token = if case.openrouter {
            OPENROUTER_KEY
        } else {
            DISCORD_TOKEN
        };
        assert_eq!(
            seen[0].header("authorization"),
            Some(format!("{}{token}", case.header_prefix).as_str()),
            "{}",
            case.extension
        );
        assert!(
            matches!(seen[0].status, Some(200 | 201)),
            "{}: {:?}",
            case.extension,
            seen[0]
        );

        match case.extension {
            "discord-send-message" => {
                assert!(output["id"].as_str().is_some_and(|id| !id.is_empty()));
                assert_eq!(output["content"], "Hello Ada!");
                assert_eq!(
                    seen[0].path,
                    "/api/v10/channels/123456789012345678/messages"
                );
                assert!(
                    seen[0]
                        .header("user-agent")
                        .is_some_and(|ua| ua.starts_with("DiscordBot (")),
                    "{:?}",
                    seen[0]
                );
                assert_eq!(seen[0].json().unwrap()["content"], "Hello Ada!");
            }
            "discord-register-command" => {
                assert_eq!(output["name"], "ping");
                assert_eq!(
                    seen[0].path,
                    format!("/api/v10/applications/{APPLICATION_ID}/commands")
                );
            }
            "openrouter-chat" => {
                assert!(
                    output["reply"]
                        .as_str()
                        .is_some_and(|r| r.contains("Greet Ada")),
                    "{output}"
                );
                assert!(
                    output["usage"]["total_tokens"].as_u64().is_some(),
                    "{output}"
                );
                let body = seen[0].json().unwrap();
                assert_eq!(body["messages"][0]["role"], "system");
                assert_eq!(body["messages"][1]["content"], "Greet Ada");
            }
            "http-request" => {
                assert_eq!(output["status"], 200);
                assert!(output["body"]["choices"][0]["message"]["content"].is_string());
            }
            other => unreachable!("{other}"),
        }
    }
}

#[test]
fn a_wrong_secret_fails_clearly_naming_the_secret() {
    let h = harness();
    for case in &CASES {
        let run = h.run(case, "wrong");
        let stderr = run.fails_with("rejected the credentials (HTTP 401)");
        assert!(
            stderr.contains(&format!("check secret {}", case.secret)),
            "{}: {run:#?}",
            case.extension
        );
        assert_clean(&run);
        // The stand-in got the wrong value, and answered 401 once: no retry.
        let seen = h.stand_in(case).take_requests();
        assert_eq!(seen.len(), 1, "{}: {seen:#?}", case.extension);
        assert_eq!(seen[0].status, Some(401));
    }
}

#[test]
fn a_missing_secret_blocks_the_extension_before_any_request() {
    let h = harness();
    for case in &CASES {
        h.stand_in(case).take_requests();
        let run = h.run(case, "empty");
        let stderr = run.fails_with(&format!("secret {} is not configured", case.secret));
        assert!(
            stderr.contains(&format!("narakim secret set {}", case.secret)),
            "{}: {run:#?}",
            case.extension
        );
        assert!(
            h.stand_in(case).take_requests().is_empty(),
            "{}: nothing may be sent without the secret",
            case.extension
        );
    }
}

#[test]
fn each_extension_survives_a_429_then_succeeds() {
    let h = harness();
    for case in &CASES {
        let stand_in = h.stand_in(case);
        stand_in.take_requests();
        stand_in.script(vec![Scripted::RateLimited { retry_after: 0.2 }]);
        let run = h.run(case, "greeter");
        run.ok();
        assert_clean(&run);
        let statuses: Vec<Option<u16>> = stand_in
            .take_requests()
            .into_iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses.len(), 2, "{}: {statuses:?}", case.extension);
        assert_eq!(statuses[0], Some(429), "{}", case.extension);
        assert!(matches!(statuses[1], Some(200 | 201)), "{}", case.extension);
    }
}

#[test]
fn rate_limits_past_the_bound_server_errors_and_bad_config_fail_clearly() {
    let h = harness();
    let send = &CASES[0];

    // Twice rate limited: one retry only, then a clear error.
    h.discord.script(vec![
        Scripted::RateLimited { retry_after: 0.1 },
        Scripted::RateLimited { retry_after: 0.1 },
    ]);
    h.run(send, "greeter")
        .fails_with("rate limited by discord.com (HTTP 429) again");

    // A wait longer than the bound is not waited for.
    h.discord
        .script(vec![Scripted::RateLimited { retry_after: 60.0 }]);
    h.run(send, "greeter")
        .fails_with("longer than the 10 s this extension waits");

    // Server errors.
    h.openrouter.fail_next(502, 1);
    let run = h.run(&CASES[2], "greeter");
    run.fails_with("openrouter.ai failed (HTTP 502)");
    assert_clean(&run);

    // Config validated before anything is sent.
    h.discord.take_requests();
    let path = extension("discord-send-message");
    let run = h.vault.run(&[
        "extension",
        "run",
        path.to_str().unwrap(),
        "--bot",
        "greeter",
        "--config",
        r#"{"channel_id":"general","content":"hi"}"#,
        "--upstream",
        &h.discord.upstream_arg(),
    ]);
    run.fails_with("channel_id");
    let run = h.vault.run(&[
        "extension",
        "run",
        path.to_str().unwrap(),
        "--bot",
        "greeter",
        "--config",
        r#"{"content":"hi"}"#,
        "--upstream",
        &h.discord.upstream_arg(),
    ]);
    run.fails_with("missing field `channel_id`");
    assert!(h.discord.take_requests().is_empty());
}

#[test]
fn the_samples_describe_themselves_as_documented() {
    let v = TestVault::new();
    let expect = [
        (
            "discord-send-message",
            vec!["DISCORD_BOT_TOKEN", "DISCORD_APPLICATION_ID"],
            "discord.com",
        ),
        (
            "discord-register-command",
            vec!["DISCORD_BOT_TOKEN", "DISCORD_APPLICATION_ID"],
            "discord.com",
        ),
        (
            "openrouter-chat",
            vec!["OPENROUTER_API_KEY"],
            "openrouter.ai",
        ),
    ];
    for (name, secrets, host) in expect {
        let path = extension(name);
        let shown: serde_json::Value = serde_json::from_str(
            v.run(&["extension", "inspect", path.to_str().unwrap()])
                .ok(),
        )
        .unwrap();
        assert_eq!(shown["name"], name);
        let required: Vec<&str> = shown["required_secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(required, secrets, "{name}");
        for s in shown["required_secrets"].as_array().unwrap() {
            assert_eq!(s["hosts"], serde_json::json!([host]), "{name}");
        }
        assert_eq!(shown["allowed_hosts"], serde_json::json!([host]), "{name}");
    }
    let path = extension("http-request");
    let shown: serde_json::Value = serde_json::from_str(
        v.run(&["extension", "inspect", path.to_str().unwrap()])
            .ok(),
    )
    .unwrap();
    assert_eq!(shown["secret_fields"][0]["pointer"], "/auth/secret");
    assert_eq!(
        shown["secret_fields"][0]["injection"],
        serde_json::json!({"headers": [{
            "name": "{/auth/header|Authorization}",
            "format": "{/auth/scheme|Bearer} {}"
        }]})
    );
    assert_eq!(shown["host_fields"], serde_json::json!(["/url"]));
    assert_eq!(shown["required_secrets"], serde_json::json!([]));
}

/// No sample ever holds a plaintext: each is built against 0.2.0, takes
/// every secret as a credential with a declared place, and does not import
/// `secrets.get`.
#[test]
fn no_sample_reveals_a_secret() {
    let v = TestVault::new();
    for (name, places) in [
        (
            "discord-send-message",
            vec![
                serde_json::json!({"headers": [{"name": "Authorization", "format": "Bot {}"}]}),
                serde_json::json!({"path": true}),
            ],
        ),
        (
            "discord-register-command",
            vec![
                serde_json::json!({"headers": [{"name": "Authorization", "format": "Bot {}"}]}),
                serde_json::json!({"path": true}),
            ],
        ),
        (
            "discord-followup",
            vec![
                serde_json::json!({"path": true}),
                serde_json::json!({"path": true}),
            ],
        ),
        (
            "openrouter-chat",
            vec![
                serde_json::json!({"headers": [{"name": "Authorization", "format": "Bearer {}"}]}),
            ],
        ),
        ("http-request", vec![]),
    ] {
        let path = extension(name);
        let shown: serde_json::Value = serde_json::from_str(
            v.run(&["extension", "inspect", path.to_str().unwrap()])
                .ok(),
        )
        .unwrap();
        assert_eq!(shown["wit"], "0.2.0", "{name}");
        assert_eq!(shown["reveals_secrets"], false, "{name}");
        let found: Vec<&serde_json::Value> = shown["required_secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["injection"])
            .collect();
        assert_eq!(found, places.iter().collect::<Vec<_>>(), "{name}");
    }
}

const CHAT: &str = "openrouter-chat";
const CHAT_CONFIG: &str = r#"{"model":"openai/gpt-4o-mini","prompt":"Greet {{input.name}}"}"#;

/// Runs openrouter-chat once against `answer`; gives the run and the
/// statuses the stand-in answered.
fn chat_against(h: &Harness, answer: Scripted) -> (Run, Vec<Option<u16>>) {
    h.openrouter.take_requests();
    h.openrouter.script(vec![answer]);
    let run = h.run_config(CHAT, CHAT_CONFIG, "greeter");
    assert_clean(&run);
    let statuses = h
        .openrouter
        .take_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    (run, statuses)
}

#[test]
fn openrouter_chat_fails_when_the_generation_failed_after_http_200() {
    let h = harness();
    // Cut short: the text so far must not pass as the reply.
    let (run, statuses) = chat_against(
        &h,
        Scripted::Chat(ChatShape::Failed {
            code: 502,
            message: "Provider disconnected mid-stream".into(),
            partial: "Hello Ad".into(),
        }),
    );
    run.fails_with(
        "openrouter.ai: the generation failed after 8 characters: \
         Provider disconnected mid-stream (code 502)",
    );
    assert_eq!(statuses, [Some(200)]);
    // Nothing generated at all.
    let (run, _) = chat_against(
        &h,
        Scripted::Chat(ChatShape::Failed {
            code: 500,
            message: "Internal error in the provider".into(),
            partial: String::new(),
        }),
    );
    run.fails_with("the generation failed: Internal error in the provider (code 500)");
}

#[test]
fn openrouter_chat_fails_on_a_reply_without_text() {
    let h = harness();
    let (run, _) = chat_against(&h, Scripted::Chat(ChatShape::ReasoningOnly));
    let stderr = run.fails_with("the model gave only reasoning and no reply text");
    assert!(
        stderr.contains(r#"finish_reason "length", native finish reason "max_tokens""#),
        "{run:#?}"
    );
    assert!(stderr.contains("max_completion_tokens"), "{run:#?}");

    let (run, _) = chat_against(&h, Scripted::Chat(ChatShape::ToolCalls));
    run.fails_with("the model answered with 1 tool call(s) (get_weather) and no text");
}

#[test]
fn openrouter_chat_reads_a_legacy_text_choice() {
    let h = harness();
    let (run, _) = chat_against(&h, Scripted::Chat(ChatShape::LegacyText));
    let output: serde_json::Value = serde_json::from_str(run.ok().trim()).unwrap();
    assert_eq!(
        output["reply"],
        format!("{}Greet Ada", narakim::standin::openrouter::REPLY_PREFIX)
    );
    assert_eq!(output["finish_reason"], "stop");
}

#[test]
fn openrouter_chat_passes_the_whole_usage_through() {
    let h = harness();
    h.openrouter.take_requests();
    let run = h.run_config(CHAT, CHAT_CONFIG, "greeter");
    let output: serde_json::Value = serde_json::from_str(run.ok().trim()).unwrap();
    let usage = &output["usage"];
    assert!(usage["cost"].as_f64().is_some_and(|c| c > 0.0), "{output}");
    assert_eq!(usage["is_byok"], false, "{output}");
    assert!(
        usage["prompt_tokens_details"]["cached_tokens"].is_u64(),
        "{output}"
    );
    assert!(
        usage["completion_tokens_details"]["reasoning_tokens"].is_u64(),
        "{output}"
    );
    assert!(
        usage["cost_details"]["upstream_inference_prompt_cost"].is_f64(),
        "{output}"
    );
    // What the stand-in sent, unchanged.
    openapi::check(openapi::Spec::OpenRouter, "ChatUsage", usage).unwrap();
    assert_eq!(h.openrouter.take_requests().len(), 1);
}

#[test]
fn openrouter_chat_sends_max_completion_tokens() {
    let h = harness();
    for (config, deprecated) in [
        (
            r#"{"model":"openai/gpt-4o-mini","prompt":"Greet {{input.name}}","max_completion_tokens":5}"#,
            false,
        ),
        // The deprecated name still works, and is sent as the new one.
        (
            r#"{"model":"openai/gpt-4o-mini","prompt":"Greet {{input.name}}","max_tokens":5}"#,
            true,
        ),
    ] {
        h.openrouter.take_requests();
        let run = h.run_config(CHAT, config, "greeter");
        let output: serde_json::Value = serde_json::from_str(run.ok().trim()).unwrap();
        // The stand-in checked the body against ChatRequest and honoured it.
        assert_eq!(output["finish_reason"], "length", "{output}");
        let seen = h.openrouter.take_requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].status, Some(200));
        let body = seen[0].json().unwrap();
        assert_eq!(body["max_completion_tokens"], 5, "{body}");
        assert!(body.get("max_tokens").is_none(), "{body}");
        openapi::check(openapi::Spec::OpenRouter, "ChatRequest", &body).unwrap();
        assert_eq!(
            run.stderr.contains("max_tokens is deprecated"),
            deprecated,
            "{run:#?}"
        );
    }
    let both = r#"{"model":"m","prompt":"p","max_tokens":5,"max_completion_tokens":5}"#;
    h.run_config(CHAT, both, "greeter")
        .fails_with("give max_completion_tokens or max_tokens (its deprecated alias), not both");
    let zero = r#"{"model":"m","prompt":"p","max_completion_tokens":0}"#;
    h.run_config(CHAT, zero, "greeter")
        .fails_with("max_completion_tokens must be at least 1");
    assert!(h.openrouter.take_requests().is_empty());
}

#[test]
fn openrouter_chat_honours_an_http_date_retry_after() {
    let h = harness();
    // About 3 s from now, as a date: waited for, then one retry.
    h.openrouter.take_requests();
    h.openrouter
        .script(vec![Scripted::RateLimitedUntil { retry_after: 3.0 }]);
    let run = h.run_config(CHAT, CHAT_CONFIG, "greeter");
    run.ok();
    let seen = h.openrouter.take_requests();
    let statuses: Vec<_> = seen.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(429), Some(200)]);
    let waited = seen[1].received - seen[0].received;
    assert!(
        (Duration::from_millis(2500)..Duration::from_secs(6)).contains(&waited),
        "waited {waited:?}"
    );

    // A date past the 10 s bound is not waited for.
    let (run, statuses) = chat_against(&h, Scripted::RateLimitedUntil { retry_after: 30.0 });
    run.fails_with("longer than the 10 s this extension waits");
    assert_eq!(statuses, [Some(429)]);
}

#[test]
fn openrouter_403_is_a_block_not_a_bad_key() {
    let h = harness();
    let (run, statuses) = chat_against(
        &h,
        Scripted::Moderated {
            reasons: vec!["harassment".into(), "violence".into()],
        },
    );
    let stderr =
        run.fails_with("openrouter.ai accepted the credentials but refused the request (HTTP 403)");
    for part in [
        "not a bad key",
        "flagged for: harassment, violence",
        r#"flagged input: "Greet Ada""#,
        "(by OpenAI for openai/gpt-4o-mini)",
        "Your input was flagged for \"harassment\", \"violence\"",
        "(code 403)",
    ] {
        assert!(stderr.contains(part), "{part:?}: {run:#?}");
    }
    assert!(!stderr.contains("check secret"), "{run:#?}");
    assert_eq!(statuses, [Some(403)], "no retry");

    // A key without the permission: the API's own words.
    let (run, _) = chat_against(&h, Scripted::Status(403));
    let stderr = run.fails_with("accepted the credentials but refused the request (HTTP 403)");
    assert!(
        stderr.contains("Only management keys can perform this operation (code 403)"),
        "{run:#?}"
    );
    assert!(!stderr.contains("check secret"), "{run:#?}");
}

#[test]
fn discord_403_is_a_missing_permission_not_a_bad_token() {
    let h = harness();
    let send = &CASES[0];
    h.discord.take_requests();
    h.discord.script(vec![Scripted::Error {
        status: 403,
        code: 50013,
        message: "Missing Permissions".into(),
    }]);
    let run = h.run(send, "greeter");
    let stderr =
        run.fails_with("discord.com accepted the credentials but refused the request (HTTP 403)");
    assert!(stderr.contains("the bot lacks a permission"), "{run:#?}");
    assert!(
        stderr.contains("discord.com said: Missing Permissions (code 50013)"),
        "{run:#?}"
    );
    assert!(!stderr.contains("check secret"), "{run:#?}");
    assert_clean(&run);

    // 50001 Missing Access: the bot cannot see the channel.
    h.discord.script(vec![Scripted::Status(403)]);
    let stderr = h.run(send, "greeter").fails_with("(HTTP 403)").to_owned();
    assert!(stderr.contains("Missing Access (code 50001)"), "{stderr}");
    assert!(stderr.contains("cannot view that channel"), "{stderr}");

    // Under another application: the application id is the suspect.
    h.discord.script(vec![Scripted::Status(403)]);
    let stderr = h
        .run(&CASES[1], "greeter")
        .fails_with("(HTTP 403)")
        .to_owned();
    assert!(
        stderr.contains("check that secret DISCORD_APPLICATION_ID"),
        "{stderr}"
    );
    let statuses: Vec<_> = h.discord.take_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(403); 3], "no retry");

    // A bad token is still a 401 naming it.
    h.run(send, "wrong").fails_with(
        "discord.com rejected the credentials (HTTP 401): check secret DISCORD_BOT_TOKEN",
    );
}
