//! The engine end to end through the binary: install the sample extensions,
//! check and deploy a two-node graph, run it against loopback stand-ins of
//! OpenRouter and Discord, read the stored executions, pause and resume.

mod common;

use common::extensions::extension;
use common::{Run, TestVault, encodings};
use narakim::standin::{DiscordCredentials, Kind, OpenRouterCredentials, Options, StandIn};

const DISCORD_TOKEN: &str =
    "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GhXk2a.Zt8cYw3nQp1Lr6vBm0sJ4dKf9uEa7xHiO2gTqW";
const APPLICATION_ID: &str = "1100000000000000001";
const OPENROUTER_KEY: &str =
    "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";

const GRAPH: &str = r#"{
  "nodes": [
    {"id": "write", "extension": "openrouter-chat",
     "config": {"model": "openai/gpt-4o-mini", "prompt": "Welcome {{trigger.user}}", "debug": true}},
    {"id": "post", "extension": "discord-send-message@0.2.0", "depends_on": ["write"],
     "config": {"channel_id": "876543210987654321", "content": "{{nodes.write.output.reply}}", "debug": true}}
  ]
}"#;

struct Harness {
    vault: TestVault,
    discord: StandIn,
    openrouter: StandIn,
    graph: std::path::PathBuf,
    _tokio: tokio::runtime::Runtime,
}

fn harness() -> Harness {
    let vault = TestVault::new();
    vault.run(&["team", "create", "ops"]).ok();
    vault
        .run(&["bot", "create", "greeter", "--team", "ops"])
        .ok();
    vault.set("DISCORD_BOT_TOKEN", "--bot", "greeter", DISCORD_TOKEN);
    vault.set("DISCORD_APPLICATION_ID", "--team", "ops", APPLICATION_ID);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let inside = tokio.enter();
    let discord = StandIn::start(
        Kind::Discord(DiscordCredentials {
            bot_token: DISCORD_TOKEN.into(),
            application_id: APPLICATION_ID.into(),
        }),
        Options::default(),
    )
    .unwrap();
    let openrouter = StandIn::start(
        Kind::OpenRouter(OpenRouterCredentials {
            api_key: OPENROUTER_KEY.into(),
        }),
        Options::default(),
    )
    .unwrap();
    drop(inside);
    let graph = vault.root.path().join("greeter.json");
    std::fs::write(&graph, GRAPH).unwrap();
    Harness {
        vault,
        discord,
        openrouter,
        graph,
        _tokio: tokio,
    }
}

impl Harness {
    fn run_bot(&self) -> Run {
        self.vault.run(&[
            "run",
            "greeter",
            "--input",
            r#"{"user":"Ada"}"#,
            "--upstream",
            &self.discord.upstream_arg(),
            "--upstream",
            &self.openrouter.upstream_arg(),
        ])
    }

    fn graph(&self) -> &str {
        self.graph.to_str().unwrap()
    }
}

#[track_caller]
fn assert_clean(text: &str) {
    for value in [DISCORD_TOKEN, APPLICATION_ID, OPENROUTER_KEY] {
        for form in encodings(value) {
            assert!(
                !text.as_bytes().windows(form.len()).any(|w| w == form),
                "a secret leaked: {text}"
            );
        }
    }
}

#[test]
fn install_check_deploy_run_and_read_executions() {
    let h = harness();

    // Install, list, show.
    for name in ["openrouter-chat", "discord-send-message"] {
        let path = extension(name);
        let out = h
            .vault
            .run(&["extension", "install", path.to_str().unwrap()]);
        assert!(
            out.ok().contains(&format!("installed {name} 0.2.0")),
            "{out:?}"
        );
        // Installing again changes nothing.
        let again = h
            .vault
            .run(&["extension", "install", path.to_str().unwrap()]);
        assert!(again.ok().contains("already installed"), "{again:?}");
    }
    let list = h.vault.run(&["extension", "list"]);
    assert!(list.ok().contains("openrouter-chat"), "{list:?}");
    assert!(
        list.stdout
            .contains("DISCORD_BOT_TOKEN, DISCORD_APPLICATION_ID")
    );
    let show = h.vault.run(&["extension", "show", "discord-send-message"]);
    assert!(
        show.ok().contains("DISCORD_BOT_TOKEN")
            && show.stdout.contains("may be sent to: discord.com"),
        "{show:?}"
    );
    h.vault
        .run(&["extension", "show", "no-such-thing"])
        .fails_with("not installed");

    // Status with a missing secret, and the refused deploy that lists the fix.
    let status = h
        .vault
        .run(&["bot", "status", "greeter", "--graph", h.graph()]);
    let out = status.ok();
    assert!(
        out.contains("OPENROUTER_API_KEY") && out.contains("MISSING"),
        "{status:?}"
    );
    assert!(
        out.contains("DISCORD_BOT_TOKEN") && out.contains("bot scope"),
        "{status:?}"
    );
    assert!(out.contains("DISCORD_APPLICATION_ID") && out.contains("team scope"));
    assert!(status.stderr.contains("warning:"), "{status:?}");
    let refused = h
        .vault
        .run(&["bot", "deploy", "greeter", "--graph", h.graph()]);
    refused.fails_with("narakim secret set OPENROUTER_API_KEY --bot greeter");
    h.vault
        .run(&["run", "greeter"])
        .fails_with("has no deployed graph");

    // A config holding the stored token is refused, naming it, never showing it.
    let pasted = h.vault.root.path().join("pasted.json");
    std::fs::write(
        &pasted,
        GRAPH.replace("{{nodes.write.output.reply}}", DISCORD_TOKEN),
    )
    .unwrap();
    h.vault
        .set("OPENROUTER_API_KEY", "--bot", "greeter", OPENROUTER_KEY);
    let refused = h.vault.run(&[
        "bot",
        "deploy",
        "greeter",
        "--graph",
        pasted.to_str().unwrap(),
    ]);
    refused.fails_with("stored secret DISCORD_BOT_TOKEN");
    assert!(
        refused.stderr.contains("belong in the vault"),
        "{refused:?}"
    );
    assert_clean(&refused.all_output());
    // A bad graph is refused with what is wrong.
    let cyclic = h.vault.root.path().join("cyclic.json");
    std::fs::write(
        &cyclic,
        r#"{"nodes":[{"id":"a","extension":"openrouter-chat","depends_on":["b"],"config":{"model":"m","prompt":"p"}},
                     {"id":"b","extension":"openrouter-chat","depends_on":["a"],"config":{"model":"m","prompt":"p"}}]}"#,
    )
    .unwrap();
    h.vault
        .run(&[
            "bot",
            "deploy",
            "greeter",
            "--graph",
            cyclic.to_str().unwrap(),
        ])
        .fails_with("cycle");

    // Deploy and run.
    let deployed = h
        .vault
        .run(&["bot", "deploy", "greeter", "--graph", h.graph()]);
    assert!(deployed.ok().contains("Deployed graph"), "{deployed:?}");
    let run = h.run_bot();
    let out = run.ok();
    assert!(out.contains("succeeded"), "{run:?}");
    assert_clean(&run.all_output());
    let id = out
        .split_whitespace()
        .find(|w| w.starts_with("ex_"))
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    // The Discord stand-in got the reply OpenRouter wrote, with the real token.
    let posted = h.discord.requests();
    let posted = posted.last().unwrap();
    assert_eq!(
        posted.header("authorization"),
        Some(format!("Bot {DISCORD_TOKEN}").as_str())
    );
    assert!(
        posted.json().unwrap()["content"]
            .as_str()
            .unwrap()
            .contains("Welcome Ada"),
        "{posted:?}"
    );

    let list = h.vault.run(&["executions", "list", "--bot", "greeter"]);
    assert!(list.ok().contains(&id), "{list:?}");
    let show = h.vault.run(&["executions", "show", &id]);
    let shown = show.ok();
    assert!(
        shown.contains("node write") && shown.contains("node post"),
        "{show:?}"
    );
    assert!(
        shown.contains("secrets read: OPENROUTER_API_KEY"),
        "{show:?}"
    );
    assert!(
        shown.contains("Authorization: Bot ‹DISCORD_BOT_TOKEN›"),
        "the verbose log shows which secret went where, and holds only a placeholder: {show:?}"
    );
    assert_clean(shown);
    let json = h.vault.run(&["executions", "show", &id, "--json"]);
    let parsed: serde_json::Value = serde_json::from_str(json.ok()).unwrap();
    assert_eq!(parsed["execution"]["status"], "succeeded");
    h.vault
        .run(&["executions", "show", "ex_0000000000000000"])
        .fails_with("executions list");

    // Pause and resume.
    h.vault.run(&["bot", "pause", "greeter"]).ok();
    h.run_bot().fails_with("paused");
    let status = h.vault.run(&["bot", "status", "greeter"]);
    assert!(status.ok().contains("PAUSED"), "{status:?}");
    h.vault.run(&["bot", "resume", "greeter"]).ok();
    h.run_bot().ok();
    // The CLI's deploy, pause and resume are on the trail, as the API's are.
    let audit = h.vault.run(&["audit", "list"]);
    let trail = audit.ok();
    for action in ["bot.deploy", "bot.pause", "bot.resume"] {
        assert!(
            trail
                .lines()
                .any(|l| l.contains(action) && l.contains("test-suite")),
            "missing {action} by the CLI's actor: {trail}"
        );
    }

    // A failing node fails its dependent and the execution, clearly.
    h.openrouter.fail_next(500, 1);
    let before = h.discord.requests().len();
    let failed = h.run_bot();
    let stderr = failed.fails_with("failed");
    assert!(
        failed.stdout.contains("skipped") && stderr.contains("node \"write\" failed"),
        "{failed:?}"
    );
    assert_eq!(h.discord.requests().len(), before, "post must not run");
    assert_clean(&failed.all_output());

    // Deleting the bot deletes its executions too.
    h.vault.run(&["bot", "delete", "greeter"]).ok();
    let list = h.vault.run(&["executions", "list"]);
    assert!(!list.ok().contains(&id), "{list:?}");
}
