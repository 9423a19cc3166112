//! `narakim scrub`: the operator's log cleaner, through the real binary.

mod common;

use base64::Engine as _;
use common::TestVault;

const BOT_KEY: &str = "sk-or-v1-0123456789abcdef0123456789abcdef";
const TEAM_TOKEN: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.team-token-xyz";
const OVERRIDDEN: &str = "team-value-the-bot-overrides";
const BOT_OVERRIDE: &str = "bot-value-that-overrides";

fn fixture() -> TestVault {
    let v = TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    v.set("OPENROUTER_API_KEY", "--bot", "greeter", BOT_KEY);
    v.set("DISCORD_BOT_TOKEN", "--team", "ops", TEAM_TOKEN);
    v.set("WEBHOOK_SECRET", "--team", "ops", OVERRIDDEN);
    v.set("WEBHOOK_SECRET", "--bot", "greeter", BOT_OVERRIDE);
    v
}

#[test]
fn scrubs_every_value_of_the_bot_and_its_team_in_every_form() {
    let v = fixture();
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{BOT_KEY}\n"));
    let hex: String = TEAM_TOKEN.bytes().map(|b| format!("{b:02x}")).collect();
    let input = format!(
        "raw={BOT_KEY}\necho|base64={b64}\nhex={hex}\njson={}\nbot override={BOT_OVERRIDE}\nteam value it overrides={OVERRIDDEN}\n",
        serde_json::json!({ "token": TEAM_TOKEN })
    );
    let out = v.run_with_stdin(&["scrub", "--bot", "greeter"], Some(input.as_bytes()));
    assert_eq!(
        out.ok(),
        "raw=[REDACTED:OPENROUTER_API_KEY]\n\
         echo|base64=[REDACTED:OPENROUTER_API_KEY]\n\
         hex=[REDACTED:DISCORD_BOT_TOKEN]\n\
         json={\"token\":\"[REDACTED:DISCORD_BOT_TOKEN]\"}\n\
         bot override=[REDACTED:WEBHOOK_SECRET]\n\
         team value it overrides=[REDACTED:WEBHOOK_SECRET]\n"
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn team_scope_scrubs_team_secrets_only() {
    let v = fixture();
    let input = format!("{TEAM_TOKEN} {OVERRIDDEN} {BOT_KEY}");
    let out = v.run_with_stdin(&["scrub", "--team", "ops"], Some(input.as_bytes()));
    assert_eq!(
        out.ok(),
        format!("[REDACTED:DISCORD_BOT_TOKEN] [REDACTED:WEBHOOK_SECRET] {BOT_KEY}")
    );
}

#[test]
fn streams_large_input_across_read_boundaries() {
    let v = fixture();
    // ~6 MiB of lines with a secret every ~1000 bytes, so many straddle the
    // 64 KiB reads; the expected output is computed with plain replace.
    let mut input = String::new();
    let mut i = 0u64;
    while input.len() < 6 << 20 {
        i += 1;
        input.push_str(&format!("line {i:09} status=ok latency=12ms "));
        if i.is_multiple_of(17) {
            input.push_str(if i.is_multiple_of(2) {
                BOT_KEY
            } else {
                TEAM_TOKEN
            });
        }
        input.push('\n');
    }
    let expected = input
        .replace(BOT_KEY, "[REDACTED:OPENROUTER_API_KEY]")
        .replace(TEAM_TOKEN, "[REDACTED:DISCORD_BOT_TOKEN]");
    let out = v.run_with_stdin(&["scrub", "--bot", "greeter"], Some(input.as_bytes()));
    assert!(
        out.code == 0 && out.stdout == expected,
        "outputs differ (exit {})",
        out.code
    );
}

#[test]
fn a_bot_without_secrets_passes_input_through_with_a_note() {
    let v = TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["bot", "create", "quiet", "--team", "ops"]).ok();
    let out = v.run_with_stdin(&["scrub", "--bot", "quiet"], Some(b"nothing to hide\n"));
    assert_eq!(out.ok(), "nothing to hide\n");
    assert!(out.stderr.contains("has no secrets"), "{out:?}");
}

#[test]
fn fails_closed_when_a_secret_cannot_be_decrypted() {
    let v = fixture();
    let db = v.raw_db();
    let mut record: Vec<u8> = db
        .query_row(
            "SELECT record FROM secrets WHERE name = 'DISCORD_BOT_TOKEN'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let last = record.len() - 1;
    record[last] ^= 1;
    db.execute(
        "UPDATE secrets SET record = ?1 WHERE name = 'DISCORD_BOT_TOKEN'",
        [record],
    )
    .unwrap();
    drop(db);
    let input = format!("{TEAM_TOKEN} {BOT_KEY}\n");
    let out = v.run_with_stdin(&["scrub", "--bot", "greeter"], Some(input.as_bytes()));
    out.fails_with("DISCORD_BOT_TOKEN");
    assert_eq!(
        out.stdout, "",
        "nothing is released when the scrubber is incomplete"
    );
}

#[test]
fn unknown_scope_and_missing_scope_fail() {
    let v = fixture();
    v.run_with_stdin(&["scrub", "--bot", "nobody"], Some(b"x"))
        .fails_with("bot \"nobody\" does not exist");
    let out = v.run_with_stdin(&["scrub"], Some(b"x"));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--bot"), "{out:?}");
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    let v = fixture();
    let input = v.root.path().join("input.log");
    std::fs::write(&input, format!("some log line {BOT_KEY}\n").repeat(60_000)).unwrap();
    // narakim's own exit status: the reader (`head`) leaves after 100 bytes.
    let script = format!(
        "{} --data-dir {} --key-file {} scrub --bot greeter < {} | head -c 100 >/dev/null; exit ${{PIPESTATUS[0]}}",
        common::binary(),
        v.data_dir.display(),
        v.key_file.display(),
        input.display()
    );
    let status = std::process::Command::new("bash")
        .args(["-c", &script])
        .env_remove("NARAKIM_MASTER_KEY")
        .status()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// An operator cleaning logs wants every value the bot or its team holds
/// gone: a team secret the bot overrides may still have been used (by the
/// team's other bots, or by this bot before it got its own).
#[test]
fn a_team_value_the_bot_overrides_is_scrubbed_in_every_form() {
    let v = fixture();
    let b64 = base64::engine::general_purpose::STANDARD.encode(OVERRIDDEN);
    let hex: String = OVERRIDDEN.bytes().map(|b| format!("{b:02x}")).collect();
    let input = format!("old={OVERRIDDEN} b64={b64} hex={hex} new={BOT_OVERRIDE}\n");
    let out = v.run_with_stdin(&["scrub", "--bot", "greeter"], Some(input.as_bytes()));
    assert_eq!(
        out.ok(),
        "old=[REDACTED:WEBHOOK_SECRET] b64=[REDACTED:WEBHOOK_SECRET] hex=[REDACTED:WEBHOOK_SECRET] new=[REDACTED:WEBHOOK_SECRET]\n"
    );
    // A second bot of the team without an override sees the team value as
    // its own: the same result for it.
    v.run(&["bot", "create", "helper", "--team", "ops"]).ok();
    let out = v.run_with_stdin(&["scrub", "--bot", "helper"], Some(input.as_bytes()));
    assert_eq!(
        out.ok(),
        format!(
            "old=[REDACTED:WEBHOOK_SECRET] b64=[REDACTED:WEBHOOK_SECRET] hex=[REDACTED:WEBHOOK_SECRET] new={BOT_OVERRIDE}\n"
        )
    );
    // Fails closed on the overridden record too: it is part of the set.
    let db = v.raw_db();
    let row = "name = 'WEBHOOK_SECRET' AND team_id IS NOT NULL";
    let mut record: Vec<u8> = db
        .query_row(
            &format!("SELECT record FROM secrets WHERE {row}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    record[90] ^= 1;
    db.execute(
        &format!("UPDATE secrets SET record = ?1 WHERE {row}"),
        [record],
    )
    .unwrap();
    drop(db);
    let out = v.run_with_stdin(&["scrub", "--bot", "greeter"], Some(input.as_bytes()));
    out.fails_with("WEBHOOK_SECRET (team \"ops\")");
    assert_eq!(out.stdout, "");
}
