//! Records moved, copied or altered in the database file fail to decrypt,
//! with an error that names the secret; wrong keys fail at open and write
//! nothing.

mod common;

use common::TestVault;
use narakim::vault::{ResolveError, SecretResolver};

/// Two teams, two bots each with the same secret names, distinct values.
fn fixture() -> TestVault {
    let v = TestVault::new();
    for team in ["red", "blue"] {
        v.run(&["team", "create", team]).ok();
        v.set(
            "TEAM_TOKEN",
            "--team",
            team,
            &format!("{team}-team-token-value"),
        );
    }
    for (bot, team) in [("alpha", "red"), ("beta", "blue")] {
        v.run(&["bot", "create", bot, "--team", team]).ok();
        v.set(
            "DISCORD_BOT_TOKEN",
            "--bot",
            bot,
            &format!("{bot}-discord-token-value"),
        );
        v.set(
            "OPENROUTER_API_KEY",
            "--bot",
            bot,
            &format!("{bot}-openrouter-key-value"),
        );
    }
    v
}

fn swap(v: &TestVault, where_a: &str, where_b: &str) {
    let db = v.raw_db();
    let get = |w: &str| -> (i64, Vec<u8>) {
        db.query_row(
            &format!("SELECT id, record FROM secrets WHERE {w}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let ((id_a, rec_a), (id_b, rec_b)) = (get(where_a), get(where_b));
    db.execute(
        "UPDATE secrets SET record = ?1 WHERE id = ?2",
        rusqlite::params![rec_b, id_a],
    )
    .unwrap();
    db.execute(
        "UPDATE secrets SET record = ?1 WHERE id = ?2",
        rusqlite::params![rec_a, id_b],
    )
    .unwrap();
}

fn bot_where(bot: &str, name: &str) -> String {
    format!("name = '{name}' AND bot_id = (SELECT id FROM bots WHERE name = '{bot}')")
}

fn team_where(team: &str, name: &str) -> String {
    format!("name = '{name}' AND team_id = (SELECT id FROM teams WHERE name = '{team}')")
}

#[track_caller]
fn assert_undecryptable(v: &TestVault, bot: &str, name: &str) {
    let snapshot = v.open().snapshot_for_bot(bot).unwrap();
    match snapshot.resolve(name) {
        Err(err @ ResolveError::Undecryptable { .. }) => {
            let msg = err.to_string();
            assert!(
                msg.contains(name) && msg.contains("cannot be decrypted"),
                "{msg}"
            );
        }
        Err(other) => panic!("{bot}/{name}: expected Undecryptable, got {other}"),
        Ok(_) => panic!("{bot}/{name}: a moved record decrypted"),
    }
}

#[test]
fn rows_swapped_between_bots_fail() {
    let v = fixture();
    swap(
        &v,
        &bot_where("alpha", "DISCORD_BOT_TOKEN"),
        &bot_where("beta", "DISCORD_BOT_TOKEN"),
    );
    assert_undecryptable(&v, "alpha", "DISCORD_BOT_TOKEN");
    assert_undecryptable(&v, "beta", "DISCORD_BOT_TOKEN");
    // The untouched secrets still work.
    let s = v.open().snapshot_for_bot("alpha").unwrap();
    assert!(
        s.resolve("OPENROUTER_API_KEY")
            .unwrap()
            .matches(b"alpha-openrouter-key-value")
    );
    // `key verify` names both and fails.
    let out = v.run(&["key", "verify"]);
    let err = out.fails_with("cannot be decrypted: its record was altered");
    assert!(
        err.contains("DISCORD_BOT_TOKEN (bot \"alpha\")")
            && err.contains("DISCORD_BOT_TOKEN (bot \"beta\")"),
        "{err}"
    );
}

#[test]
fn rows_swapped_between_teams_fail() {
    let v = fixture();
    swap(
        &v,
        &team_where("red", "TEAM_TOKEN"),
        &team_where("blue", "TEAM_TOKEN"),
    );
    assert_undecryptable(&v, "alpha", "TEAM_TOKEN");
    assert_undecryptable(&v, "beta", "TEAM_TOKEN");
    v.run(&["key", "verify"])
        .fails_with("TEAM_TOKEN (team \"red\")");
}

#[test]
fn rows_swapped_between_names_fail() {
    let v = fixture();
    swap(
        &v,
        &bot_where("alpha", "DISCORD_BOT_TOKEN"),
        &bot_where("alpha", "OPENROUTER_API_KEY"),
    );
    assert_undecryptable(&v, "alpha", "DISCORD_BOT_TOKEN");
    assert_undecryptable(&v, "alpha", "OPENROUTER_API_KEY");
}

#[test]
fn a_bot_record_copied_to_team_scope_fails() {
    let v = fixture();
    let db = v.raw_db();
    let record: Vec<u8> = db
        .query_row(
            &format!(
                "SELECT record FROM secrets WHERE {}",
                bot_where("alpha", "DISCORD_BOT_TOKEN")
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    db.execute(
        "INSERT INTO secrets(team_id, name, record, fingerprint, created_at, updated_at)
         VALUES ((SELECT id FROM teams WHERE name = 'blue'), 'DISCORD_BOT_TOKEN', ?1, x'00', 0, 0)",
        [record],
    )
    .unwrap();
    drop(db);
    // gamma has no bot secret of that name, so it resolves to the team row.
    v.run(&["bot", "create", "gamma", "--team", "blue"]).ok();
    assert_undecryptable(&v, "gamma", "DISCORD_BOT_TOKEN");
}

#[test]
fn a_record_replayed_onto_a_recreated_bot_of_the_same_name_fails() {
    let v = fixture();
    let record: Vec<u8> = v
        .raw_db()
        .query_row(
            &format!(
                "SELECT record FROM secrets WHERE {}",
                bot_where("alpha", "DISCORD_BOT_TOKEN")
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    v.run(&["bot", "delete", "alpha"]).ok();
    v.run(&["bot", "create", "alpha", "--team", "red"]).ok();
    v.raw_db()
        .execute(
            "INSERT INTO secrets(bot_id, name, record, fingerprint, created_at, updated_at)
             VALUES ((SELECT id FROM bots WHERE name = 'alpha'), 'DISCORD_BOT_TOKEN', ?1, x'00', 0, 0)",
            [record],
        )
        .unwrap();
    assert_undecryptable(&v, "alpha", "DISCORD_BOT_TOKEN");
}

#[test]
fn flipped_bits_anywhere_fail() {
    let v = fixture();
    let w = bot_where("beta", "OPENROUTER_API_KEY");
    let original: Vec<u8> = v
        .raw_db()
        .query_row(&format!("SELECT record FROM secrets WHERE {w}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    // Version, key id, wrap nonce, wrapped key, its tag, value nonce,
    // ciphertext, value tag.
    for at in [0, 1, 9, 21, 60, 69, 81, original.len() - 1] {
        let mut bad = original.clone();
        bad[at] ^= 0x10;
        v.raw_db()
            .execute(&format!("UPDATE secrets SET record = ?1 WHERE {w}"), [bad])
            .unwrap();
        assert_undecryptable(&v, "beta", "OPENROUTER_API_KEY");
        v.run(&["key", "verify"])
            .fails_with("OPENROUTER_API_KEY (bot \"beta\")");
    }
    v.raw_db()
        .execute(
            &format!("UPDATE secrets SET record = ?1 WHERE {w}"),
            [original],
        )
        .unwrap();
    v.run(&["key", "verify"]).ok();
}

#[test]
fn rotation_refuses_to_carry_a_broken_record_and_changes_nothing() {
    let v = fixture();
    swap(
        &v,
        &bot_where("alpha", "DISCORD_BOT_TOKEN"),
        &bot_where("beta", "DISCORD_BOT_TOKEN"),
    );
    let (dump, key) = (v.dump(), std::fs::read(&v.key_file).unwrap());
    v.run(&["key", "rotate"])
        .fails_with("DISCORD_BOT_TOKEN (bot \"alpha\")");
    assert_eq!(v.dump(), dump);
    assert_eq!(std::fs::read(&v.key_file).unwrap(), key);
    assert_eq!(
        std::fs::read_dir(v.key_file.parent().unwrap())
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn wrong_key_fails_at_open_and_writes_nothing() {
    let v = fixture();
    let other = TestVault::new(); // another vault, another key
    let before = v.file_bytes();
    let run = {
        let mut cmd = common::command();
        cmd.arg("--data-dir")
            .arg(&v.data_dir)
            .arg("--key-file")
            .arg(&other.key_file);
        cmd.args(["secret", "list", "--bot", "alpha"]);
        common::run_command(cmd, None)
    };
    run.fails_with("wrong vault");
    assert_eq!(
        v.file_bytes(),
        before,
        "a wrong key must not change any file"
    );

    // A bare key (no vault id in the file) is simply the wrong key.
    use base64::Engine as _;
    let bare = v.root.path().join("bare/master.key");
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    std::fs::write(
        &bare,
        base64::engine::general_purpose::STANDARD.encode([42u8; 32]),
    )
    .unwrap();
    std::fs::set_permissions(&bare, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut cmd = common::command();
    cmd.arg("--data-dir")
        .arg(&v.data_dir)
        .arg("--key-file")
        .arg(&bare);
    cmd.args(["secret", "set", "NEW_SECRET", "--bot", "alpha"]);
    common::run_command(cmd, Some(b"would-be-stored-value")).fails_with("wrong key");
    assert_eq!(v.file_bytes(), before);
}

#[test]
fn the_previous_key_after_rotation_is_named_as_such() {
    let v = fixture();
    let saved = v.root.path().join("saved/master.key");
    std::fs::create_dir_all(saved.parent().unwrap()).unwrap();
    std::fs::copy(&v.key_file, &saved).unwrap();
    v.run(&["key", "rotate"]).ok();
    let mut cmd = common::command();
    cmd.arg("--data-dir")
        .arg(&v.data_dir)
        .arg("--key-file")
        .arg(&saved)
        .args(["bot", "list"]);
    common::run_command(cmd, None).fails_with("previous master key");
}

/// A backup key that cannot be retired (a record fails verification) is kept,
/// reported on every command, and blocks a new rotation until fixed.
#[test]
fn an_unverified_rotation_keeps_its_backup_and_blocks_the_next() {
    let v = fixture();
    let backup = v.key_file.with_file_name("master.key.previous");
    std::fs::copy(&v.key_file, &backup).unwrap();
    let w = bot_where("alpha", "OPENROUTER_API_KEY");
    let db = v.raw_db();
    let mut record: Vec<u8> = db
        .query_row(&format!("SELECT record FROM secrets WHERE {w}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    record[90] ^= 1;
    db.execute(
        &format!("UPDATE secrets SET record = ?1 WHERE {w}"),
        [record],
    )
    .unwrap();
    drop(db);
    let out = v.run(&["bot", "list"]);
    out.ok();
    assert!(
        out.stderr.contains("note:") && out.stderr.contains("OPENROUTER_API_KEY (bot \"alpha\")"),
        "{out:?}"
    );
    assert!(backup.exists(), "the backup stays while a record fails");
    v.run(&["key", "rotate"])
        .fails_with("previous master key from an earlier rotation");
    // Fix what the note names, then `key verify` (as the message says): the
    // vault opens clean and retires the backup.
    v.run(&["secret", "delete", "OPENROUTER_API_KEY", "--bot", "alpha"])
        .ok();
    let verify = v.run(&["key", "verify"]);
    verify.ok();
    assert!(!verify.stderr.contains("note:"), "{verify:?}");
    assert!(!backup.exists());
    v.run(&["key", "rotate"]).ok();
    v.run(&["key", "verify"]).ok();
}

/// The stored values deploy compares configs against, through the library
/// (as the engine calls it).
fn stored_among(v: &TestVault, candidates: &[&str]) -> Result<Vec<(String, String)>, String> {
    v.open()
        .stored_values_among(candidates)
        .map(|found| {
            found
                .into_iter()
                .map(|m| (m.name, m.scope.to_string()))
                .collect()
        })
        .map_err(|e| e.to_string())
}

/// The `secret list --bot BOT` line of `name` in `scope`.
fn listed(v: &TestVault, bot: &str, name: &str, scope: &str) -> String {
    v.run(&["secret", "list", "--bot", bot])
        .ok()
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")) && l.contains(scope))
        .unwrap_or_else(|| panic!("no {name} line"))
        .to_owned()
}

#[test]
fn a_zeroed_fingerprint_is_detected_not_silently_skipped() {
    let v = fixture();
    let w = bot_where("alpha", "DISCORD_BOT_TOKEN");
    assert_eq!(
        stored_among(&v, &["alpha-discord-token-value"]),
        Ok(vec![("DISCORD_BOT_TOKEN".into(), "bot \"alpha\"".into())])
    );
    v.raw_db()
        .execute(
            &format!("UPDATE secrets SET fingerprint = zeroblob(32) WHERE {w}"),
            [],
        )
        .unwrap();

    // Deploy's check fails closed, naming the secret and what to run.
    let err = stored_among(&v, &["alpha-discord-token-value"]).unwrap_err();
    assert!(
        err.contains("DISCORD_BOT_TOKEN (bot \"alpha\")")
            && err.contains("does not match its record")
            && err.contains("narakim key verify")
            && !err.contains("beta"),
        "{err}"
    );
    // Even when the candidate is some other secret's value: the altered
    // row could hold it too.
    assert!(stored_among(&v, &["beta-discord-token-value"]).is_err());

    // The listing shows it; `key verify` fails naming it.
    assert!(
        listed(&v, "alpha", "DISCORD_BOT_TOKEN", "bot").contains("(altered)"),
        "{}",
        listed(&v, "alpha", "DISCORD_BOT_TOKEN", "bot")
    );
    assert!(!listed(&v, "alpha", "OPENROUTER_API_KEY", "bot").contains("(altered)"));
    let verify = v.run(&["key", "verify"]);
    let err = verify.fails_with(
        "DISCORD_BOT_TOKEN (bot \"alpha\") has a fingerprint that does not match its record",
    );
    assert!(err.contains("1 of 6 secret(s)"), "{err}");

    // Storing it again repairs it.
    v.set(
        "DISCORD_BOT_TOKEN",
        "--bot",
        "alpha",
        "alpha-discord-token-value",
    );
    v.run(&["key", "verify"]).ok();
    assert_eq!(
        stored_among(&v, &["alpha-discord-token-value"]),
        Ok(vec![("DISCORD_BOT_TOKEN".into(), "bot \"alpha\"".into())])
    );
}

#[test]
fn a_fingerprint_copied_from_another_row_is_detected() {
    let v = fixture();
    let (alpha, beta) = (
        bot_where("alpha", "DISCORD_BOT_TOKEN"),
        bot_where("beta", "DISCORD_BOT_TOKEN"),
    );
    // Copy beta's fingerprint onto alpha's row: without a binding, beta's
    // value would be reported as alpha's too, and alpha's never found.
    v.raw_db()
        .execute(
            &format!(
                "UPDATE secrets SET fingerprint = (SELECT fingerprint FROM secrets WHERE {beta}) WHERE {alpha}"
            ),
            [],
        )
        .unwrap();
    for candidate in ["alpha-discord-token-value", "beta-discord-token-value"] {
        let err = stored_among(&v, &[candidate]).unwrap_err();
        assert!(
            err.contains("DISCORD_BOT_TOKEN (bot \"alpha\")") && !err.contains("beta"),
            "{err}"
        );
    }
    // Its binding tag copied as well: the tag names beta's record.
    v.raw_db()
        .execute(
            &format!(
                "UPDATE secrets SET fingerprint_tag = (SELECT fingerprint_tag FROM secrets WHERE {beta}) WHERE {alpha}"
            ),
            [],
        )
        .unwrap();
    assert!(stored_among(&v, &["beta-discord-token-value"]).is_err());
    v.run(&["key", "verify"])
        .fails_with("DISCORD_BOT_TOKEN (bot \"alpha\") has a fingerprint");
}

#[test]
fn a_fingerprint_kept_from_an_earlier_value_is_detected() {
    let v = fixture();
    let w = bot_where("alpha", "OPENROUTER_API_KEY");
    let get = || -> (Vec<u8>, Vec<u8>) {
        v.raw_db()
            .query_row(
                &format!("SELECT fingerprint, fingerprint_tag FROM secrets WHERE {w}"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    let (old_fp, old_tag) = get();
    v.set(
        "OPENROUTER_API_KEY",
        "--bot",
        "alpha",
        "alpha-rotated-key-value",
    );
    assert_ne!(get().0, old_fp);
    // Put the old value's (valid) fingerprint and tag back beside the new record.
    v.raw_db()
        .execute(
            &format!("UPDATE secrets SET fingerprint = ?1, fingerprint_tag = ?2 WHERE {w}"),
            rusqlite::params![old_fp, old_tag],
        )
        .unwrap();
    let err = stored_among(&v, &["alpha-rotated-key-value"]).unwrap_err();
    assert!(err.contains("OPENROUTER_API_KEY (bot \"alpha\")"), "{err}");
    v.run(&["key", "verify"])
        .fails_with("OPENROUTER_API_KEY (bot \"alpha\") has a fingerprint");
}

/// A vault written before fingerprints were bound (schema version 1) is
/// migrated when it opens: every fingerprint is recomputed from its value
/// and bound, in one transaction, so one altered before the upgrade is
/// corrected; a record that does not open stays unbound and is reported.
#[test]
fn a_version_1_vault_gets_its_fingerprints_bound() {
    let v = fixture();
    let db = v.raw_db();
    // Back to the version 1 layout, with one fingerprint zeroed and one
    // record broken before the upgrade.
    let broken = team_where("blue", "TEAM_TOKEN");
    let mut record: Vec<u8> = db
        .query_row(
            &format!("SELECT record FROM secrets WHERE {broken}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    record[80] ^= 1;
    db.execute(
        &format!("UPDATE secrets SET record = ?1 WHERE {broken}"),
        [record],
    )
    .unwrap();
    db.execute_batch(&format!(
        "DROP TABLE ui_sessions;
         DROP TABLE api_tokens;
         ALTER TABLE secrets DROP COLUMN version;
         ALTER TABLE secrets DROP COLUMN updated_by;
         ALTER TABLE secrets DROP COLUMN fingerprint_tag;
         UPDATE secrets SET fingerprint = zeroblob(32) WHERE {};
         PRAGMA user_version = 1;",
        bot_where("alpha", "DISCORD_BOT_TOKEN"),
    ))
    .unwrap();
    drop(db);

    let err = v
        .run(&["key", "verify"])
        .fails_with("1 of 6 secret(s) failed verification")
        .to_owned();
    assert!(
        err.contains("TEAM_TOKEN (team \"blue\") cannot be decrypted") && !err.contains("alpha"),
        "{err}"
    );
    let db = v.raw_db();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, narakim::vault::store::SCHEMA_VERSION);
    let untagged: Vec<String> = db
        .prepare("SELECT name FROM secrets WHERE fingerprint_tag IS NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(untagged, ["TEAM_TOKEN"]);
    drop(db);
    // The zeroed fingerprint was recomputed; the broken row fails closed.
    let err = stored_among(&v, &["alpha-discord-token-value"]).unwrap_err();
    assert!(err.contains("TEAM_TOKEN (team \"blue\")"), "{err}");
    v.set("TEAM_TOKEN", "--team", "blue", "blue-team-token-value");
    v.run(&["key", "verify"]).ok();
    assert_eq!(
        stored_among(&v, &["alpha-discord-token-value"]),
        Ok(vec![("DISCORD_BOT_TOKEN".into(), "bot \"alpha\"".into())])
    );
}

#[test]
fn a_record_restored_from_before_the_last_rotation_is_named_as_such() {
    let v = fixture();
    let w = bot_where("alpha", "OPENROUTER_API_KEY");
    let old: Vec<u8> = v
        .raw_db()
        .query_row(&format!("SELECT record FROM secrets WHERE {w}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    v.run(&["key", "rotate"]).ok();
    // As if restored from a backup taken before the rotation.
    v.raw_db()
        .execute(&format!("UPDATE secrets SET record = ?1 WHERE {w}"), [old])
        .unwrap();

    let expected = "OPENROUTER_API_KEY (bot \"alpha\") cannot be decrypted: it was sealed with the previous master key, so it was restored from a backup taken before the last key rotation";
    let err = v.run(&["key", "verify"]).fails_with(expected).to_owned();
    assert!(!err.contains("altered"), "{err}");
    let snapshot = v.open().snapshot_for_bot("alpha").unwrap();
    let err = snapshot
        .resolve("OPENROUTER_API_KEY")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sealed with the previous master key") && !err.contains("altered"),
        "{err}"
    );
    v.run_with_stdin(&["scrub", "--bot", "alpha"], Some(b"log line\n"))
        .fails_with("sealed with the previous master key");
    v.run(&["key", "rotate"])
        .fails_with("OPENROUTER_API_KEY (bot \"alpha\") cannot be decrypted: it was sealed with the previous master key");
    // Storing it again repairs it.
    v.set(
        "OPENROUTER_API_KEY",
        "--bot",
        "alpha",
        "alpha-openrouter-key-value",
    );
    v.run(&["key", "verify"]).ok();
}
