//! The operator's everyday commands, driven through the real binary.

mod common;

use common::{TestVault, command, run_command};
use narakim::vault::SecretResolver;

const TEAM_TOKEN: &str = "team-token-AAAAAAAAAAAAAAAA";
const BOT_TOKEN: &str = "bot-token-BBBBBBBBBBBBBBBBBB";
const OPENROUTER: &str = "sk-or-v1-cccccccccccccccccccccccc";

fn vault_with_bot() -> TestVault {
    let v = TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    v
}

#[test]
fn init_creates_key_apart_with_0600_and_is_idempotent() {
    use std::os::unix::fs::PermissionsExt;
    let v = TestVault::uninitialised();
    let out = v.run(&["init"]);
    assert!(out.ok().contains("Created vault"), "{out:?}");
    let mode = std::fs::metadata(&v.key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(v.db_path().exists());
    assert_ne!(v.key_file.parent(), v.db_path().parent());
    let key_before = std::fs::read(&v.key_file).unwrap();
    let again = v.run(&["init"]);
    assert!(again.ok().contains("already exists"), "{again:?}");
    assert_eq!(
        std::fs::read(&v.key_file).unwrap(),
        key_before,
        "init never overwrites a key"
    );
}

#[test]
fn default_paths_follow_xdg() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("xdg-data");
    let config = home.path().join("xdg-config");
    let mut cmd = command();
    cmd.env("XDG_DATA_HOME", &data)
        .env("XDG_CONFIG_HOME", &config)
        .env("HOME", home.path())
        .arg("init");
    run_command(cmd, None).ok();
    assert!(data.join("narakim/vault.db").exists());
    assert!(config.join("narakim/master.key").exists());

    // NARAKIM_DATA_DIR and NARAKIM_KEY_FILE override them.
    let mut cmd = command();
    cmd.env("NARAKIM_DATA_DIR", home.path().join("d2"))
        .env("NARAKIM_KEY_FILE", home.path().join("k2/master.key"))
        .env("HOME", home.path())
        .arg("init");
    run_command(cmd, None).ok();
    assert!(home.path().join("d2/vault.db").exists());
    assert!(home.path().join("k2/master.key").exists());
}

#[test]
fn master_key_from_environment() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let data = dir.path().join("data");
    let run = |args: &[&str], key: &str| {
        let mut cmd = command();
        cmd.env("NARAKIM_MASTER_KEY", key)
            .arg("--data-dir")
            .arg(&data)
            .args(args);
        run_command(cmd, None)
    };
    run(&["init"], &key).ok();
    run(&["team", "create", "ops"], &key).ok();
    assert!(run(&["team", "list"], &key).ok().contains("ops"));
    let other = base64::engine::general_purpose::STANDARD.encode([8u8; 32]);
    run(&["team", "list"], &other).fails_with("wrong key");
    run(&["key", "rotate"], &key).fails_with("needs the master key in a file");
}

#[test]
fn secrets_are_write_only_and_resolve_bot_before_team() {
    let v = vault_with_bot();
    v.set("DISCORD_BOT_TOKEN", "--team", "ops", TEAM_TOKEN);
    v.set("DISCORD_BOT_TOKEN", "--bot", "greeter", BOT_TOKEN);
    let set = v.run_with_stdin(
        &["secret", "set", "OPENROUTER_API_KEY", "--bot", "greeter"],
        Some(format!("{OPENROUTER}\n").as_bytes()),
    );
    assert!(set.ok().contains("Saved OPENROUTER_API_KEY"), "{set:?}");

    let list = v.run(&["secret", "list", "--bot", "greeter"]);
    let text = list.ok();
    assert!(text.contains("DISCORD_BOT_TOKEN"));
    assert!(text.contains("overridden by the bot secret"), "{text}");
    let team_list = v.run(&["secret", "list", "--team", "ops"]);
    assert!(team_list.ok().contains("DISCORD_BOT_TOKEN"));

    // No command shows a value.
    let mut everything = set.all_output() + &list.all_output() + &team_list.all_output();
    for args in [
        &["team", "list"][..],
        &["bot", "list"],
        &["audit", "list"],
        &["key", "verify"],
    ] {
        everything += &v.run(args).all_output();
    }
    for value in [TEAM_TOKEN, BOT_TOKEN, OPENROUTER] {
        for enc in common::encodings(value) {
            assert!(!everything.contains(&*String::from_utf8_lossy(&enc)));
        }
    }

    // The resolver (the only way to a value) sees the bot secret first, and
    // the trailing newline from stdin was dropped.
    let snapshot = v.open().snapshot_for_bot("greeter").unwrap();
    assert!(
        snapshot
            .resolve("DISCORD_BOT_TOKEN")
            .unwrap()
            .matches(BOT_TOKEN.as_bytes())
    );
    assert!(
        snapshot
            .resolve("OPENROUTER_API_KEY")
            .unwrap()
            .matches(OPENROUTER.as_bytes())
    );

    // Deleting the bot secret falls back to the team secret.
    v.run(&["secret", "delete", "DISCORD_BOT_TOKEN", "--bot", "greeter"])
        .ok();
    let snapshot = v.open().snapshot_for_bot("greeter").unwrap();
    assert!(
        snapshot
            .resolve("DISCORD_BOT_TOKEN")
            .unwrap()
            .matches(TEAM_TOKEN.as_bytes())
    );
}

#[test]
fn overwrite_takes_effect_on_the_next_snapshot_only() {
    let v = vault_with_bot();
    v.set("OPENROUTER_API_KEY", "--bot", "greeter", "first-value-1234");
    let mut vault = v.open();
    let in_flight = vault.snapshot_for_bot("greeter").unwrap();
    let before: Vec<i64> = v
        .raw_db()
        .query_row("SELECT id, created_at FROM secrets", [], |r| {
            Ok(vec![r.get(0)?, r.get(1)?])
        })
        .unwrap();
    let overwrite = v.run_with_stdin(
        &["secret", "set", "OPENROUTER_API_KEY", "--bot", "greeter"],
        Some(b"second-value-5678"),
    );
    assert!(overwrite.ok().contains("Overwrote"), "{overwrite:?}");
    let after: Vec<i64> = v
        .raw_db()
        .query_row("SELECT id, created_at FROM secrets", [], |r| {
            Ok(vec![r.get(0)?, r.get(1)?])
        })
        .unwrap();
    assert_eq!(before, after, "overwrite keeps the secret's identity");
    assert!(
        in_flight
            .resolve("OPENROUTER_API_KEY")
            .unwrap()
            .matches(b"first-value-1234")
    );
    let next = v.open().snapshot_for_bot("greeter").unwrap();
    assert!(
        next.resolve("OPENROUTER_API_KEY")
            .unwrap()
            .matches(b"second-value-5678")
    );
}

#[test]
fn deleting_a_bot_deletes_its_secrets_and_team_rules_hold() {
    let v = vault_with_bot();
    v.set("DISCORD_BOT_TOKEN", "--bot", "greeter", BOT_TOKEN);
    v.set("OPENROUTER_API_KEY", "--bot", "greeter", OPENROUTER);
    v.set(
        "DISCORD_APPLICATION_ID",
        "--team",
        "ops",
        "123456789012345678",
    );
    v.run(&["team", "delete", "ops"])
        .fails_with("still has 1 bot(s): greeter");
    let out = v.run(&["bot", "delete", "greeter"]);
    assert!(out.ok().contains("2 bot secret(s)"), "{out:?}");
    let left: i64 = v
        .raw_db()
        .query_row(
            "SELECT COUNT(*) FROM secrets WHERE bot_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    // A new bot with the same name sees nothing of the old one.
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    let snapshot = v.open().snapshot_for_bot("greeter").unwrap();
    assert!(snapshot.resolve("DISCORD_BOT_TOKEN").is_err());
    assert!(snapshot.resolve("DISCORD_APPLICATION_ID").is_ok());
    v.run(&["bot", "delete", "greeter"]).ok();
    v.run(&["team", "delete", "ops"]).ok();
    assert!(v.run(&["team", "list"]).ok().contains("No teams yet"));
}

#[test]
fn audit_trail_records_every_change_without_values() {
    let v = vault_with_bot();
    v.set("DISCORD_BOT_TOKEN", "--bot", "greeter", BOT_TOKEN);
    v.set("DISCORD_BOT_TOKEN", "--bot", "greeter", TEAM_TOKEN);
    v.run(&["secret", "delete", "DISCORD_BOT_TOKEN", "--bot", "greeter"])
        .ok();
    v.run(&["key", "rotate"]).ok();
    let out = v.run(&["audit", "list"]);
    let text = out.ok();
    for action in [
        "vault.init",
        "team.create",
        "bot.create",
        "secret.set",
        "secret.overwrite",
        "secret.delete",
        "key.rotate",
    ] {
        assert!(text.contains(action), "missing {action}: {text}");
    }
    assert!(text.contains("test-suite"), "actor recorded: {text}");
    assert!(text.contains("DISCORD_BOT_TOKEN (bot greeter)"), "{text}");
    assert!(!text.contains(BOT_TOKEN) && !text.contains(TEAM_TOKEN));
    let last = v.run(&["audit", "list", "--limit", "1"]);
    assert!(last.ok().contains("key.rotate") && !last.stdout.contains("vault.init"));
}

#[test]
fn key_rotate_rewraps_everything_and_shreds_the_old_key() {
    let v = vault_with_bot();
    v.set("DISCORD_BOT_TOKEN", "--bot", "greeter", BOT_TOKEN);
    v.set("DISCORD_BOT_TOKEN", "--team", "ops", TEAM_TOKEN);
    let old_key = std::fs::read(&v.key_file).unwrap();
    let out = v.run(&["key", "rotate"]);
    assert!(
        out.ok().contains("2 secret(s) re-wrapped and verified"),
        "{out:?}"
    );
    assert_ne!(std::fs::read(&v.key_file).unwrap(), old_key);
    let siblings: Vec<_> = std::fs::read_dir(v.key_file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        siblings,
        vec![std::ffi::OsString::from("master.key")],
        "no backup or staged key left"
    );
    let snapshot = v.open().snapshot_for_bot("greeter").unwrap();
    assert!(
        snapshot
            .resolve("DISCORD_BOT_TOKEN")
            .unwrap()
            .matches(BOT_TOKEN.as_bytes())
    );
    assert!(v.run(&["key", "verify"]).ok().contains("All 2 secret(s)"));
}

#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("demo");
    let mut cmd = command();
    cmd.args(["demo", "--dir"]).arg(&target);
    let out = run_command(cmd, None);
    let text = out.ok();
    // Preflight: the missing key is shown and blocks the first deploy; a
    // graph holding the token is refused by name.
    assert!(text.contains("MISSING"), "{text}");
    assert!(
        text.contains("narakim secret set OPENROUTER_API_KEY --bot greeter"),
        "{text}"
    );
    assert!(text.contains("stored secret DISCORD_BOT_TOKEN"), "{text}");
    // The bot ran against the stand-ins, and its record shows where the
    // values would have been.
    assert!(
        text.contains("succeeded (2 succeeded, 0 failed, 0 skipped)"),
        "{text}"
    );
    assert!(
        text.contains("real token in its Authorization header: true"),
        "{text}"
    );
    assert!(
        text.contains("Authorization: Bearer ‹OPENROUTER_API_KEY›"),
        "{text}"
    );
    assert!(
        text.contains("Authorization: Bot ‹DISCORD_BOT_TOKEN›"),
        "{text}"
    );
    assert!(
        text.contains("base64 -> [REDACTED:OPENROUTER_API_KEY]"),
        "{text}"
    );
    // The service part: a verified webhook ran once (its retry answered
    // with the same run), a forgery was refused, a slash command was
    // acknowledged deferred and answered, and the interaction token shows
    // only redacted.
    assert!(
        text.contains("narakim serve: listening on http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("202 {\"bot\":\"greeter\""), "{text}");
    assert!(text.contains("\"replayed\":true"), "{text}");
    assert!(text.contains("401 {"), "{text}");
    assert!(text.contains("200 {\"type\":5}"), "{text}");
    assert!(
        text.contains("/‹DISCORD_INTERACTION_TOKEN›/messages/@original"),
        "{text}"
    );
    assert!(
        text.contains("holds the real interaction token: true"),
        "{text}"
    );
    assert!(
        text.contains("0 with a secret value or the interaction token"),
        "{text}"
    );
    assert_eq!(
        text.matches("\"status\": \"succeeded\"").count(),
        6,
        "{text}"
    );
    assert!(text.contains("0 occurrence(s)"), "{text}");
    for value in [
        "sk-or-v1-demo",
        "demo11.bot-token",
        "demo00.team-token",
        "gh-webhook-demo-secret",
        // The stand-in's interaction tokens all start so.
        "aW50ZXJhY3Rpb246",
    ] {
        assert!(!text.contains(value), "{value} leaked: {text}");
    }
    assert!(target.join("data/vault.db").exists());
    assert!(target.join("data/engine.db").exists());
}

/// At a terminal, `secret set` asks twice at a hidden prompt. `script` gives
/// the binary a real pseudo-terminal; each line is typed only after its
/// prompt shows, as a person would.
#[test]
fn hidden_prompt_asks_twice_and_never_echoes() {
    use std::io::{Read, Write};
    use std::process::Stdio;

    fn type_at_prompts(v: &TestVault, name: &str, lines: [&str; 2]) -> String {
        let cmdline = format!(
            "{} --data-dir {} --key-file {} secret set {name} --team ops",
            common::binary(),
            v.data_dir.display(),
            v.key_file.display()
        );
        let mut child = command_for_script(&cmdline)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("`script` (util-linux) runs the binary on a pseudo-terminal");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        for (prompt, line) in ["(input hidden): ", "Repeat the value"].iter().zip(lines) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !String::from_utf8_lossy(&seen).contains(prompt) {
                assert!(std::time::Instant::now() < deadline, "no prompt: {seen:?}");
                let mut buf = [0u8; 256];
                let n = stdout.read(&mut buf).unwrap();
                assert!(
                    n > 0,
                    "terminal closed early: {}",
                    String::from_utf8_lossy(&seen)
                );
                seen.extend_from_slice(&buf[..n]);
            }
            // Let the prompt finish switching echo off before typing.
            std::thread::sleep(std::time::Duration::from_millis(200));
            stdin.write_all(format!("{line}\r").as_bytes()).unwrap();
            stdin.flush().unwrap();
        }
        stdout.read_to_end(&mut seen).unwrap();
        drop(stdin);
        child.wait().unwrap();
        String::from_utf8_lossy(&seen).into_owned()
    }

    fn command_for_script(cmdline: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new("script");
        // A clean environment: no NARAKIM_* from the machine running the tests.
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(["-qec", cmdline, "/dev/null"])
            .env("NARAKIM_ACTOR", "test-suite");
        cmd
    }

    let v = vault_with_bot();
    let screen = type_at_prompts(&v, "TYPED_TOKEN", ["typed-value-1234", "typed-value-1234"]);
    assert!(screen.contains("Saved TYPED_TOKEN"), "{screen}");
    assert!(!screen.contains("typed-value-1234"), "echoed: {screen}");
    let snapshot = v.open().snapshot_for_bot("greeter").unwrap();
    assert!(
        snapshot
            .resolve("TYPED_TOKEN")
            .unwrap()
            .matches(b"typed-value-1234")
    );

    let dump = v.dump();
    let screen = type_at_prompts(&v, "OTHER_TOKEN", ["first-typing-123", "second-typing-45"]);
    assert!(screen.contains("differ; nothing was saved"), "{screen}");
    assert!(!screen.contains("first-typing") && !screen.contains("second-typing"));
    assert_eq!(v.dump(), dump, "a mismatch stores nothing");
}
