//! What is on disk: no planted value, in any encoding, in the database, its
//! WAL or its journal; and no superseded ciphertext after an overwrite,
//! a delete or a key rotation.

mod common;

use common::{TestVault, assert_absent, contains};
use narakim::vault::{Scope, SecretName, SecretValue};

const VALUES: &[&str] = &[
    "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.planted-discord-token-000000",
    "sk-or-v1-planted0123456789abcdef0123456789abcdef0123456789abcdef",
    "whsec_planted_webhook_signing_secret",
    "12345678",
];

fn record_of(v: &TestVault, name: &str) -> Vec<u8> {
    v.raw_db()
        .query_row("SELECT record FROM secrets WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .unwrap()
}

/// The sealed-value part of a record (everything after the 81-byte header):
/// unique to one write, so finding it means the old ciphertext survived.
fn sealed_value(record: &[u8]) -> &[u8] {
    &record[81..]
}

fn wrapped_dek(record: &[u8]) -> &[u8] {
    &record[21..69]
}

/// 32-byte samples of a sealed value, every 997 bytes. A large record spans
/// overflow pages, so it is not contiguous in the file; each sample almost
/// always is.
fn samples(record: &[u8]) -> Vec<&[u8]> {
    let sealed = sealed_value(record);
    (0..sealed.len().saturating_sub(32))
        .step_by(997)
        .map(|at| &sealed[at..at + 32])
        .collect()
}

fn found(bytes: &[u8], record: &[u8]) -> usize {
    samples(record)
        .into_iter()
        .filter(|s| contains(bytes, s))
        .count()
}

#[test]
fn planted_values_never_reach_the_files_through_the_cli() {
    let v = TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    for (i, value) in VALUES.iter().enumerate() {
        v.set(&format!("SECRET_{i}"), "--bot", "greeter", value);
        v.set(&format!("TEAM_{i}"), "--team", "ops", value);
        assert_absent(&v.file_bytes(), value);
    }
    // Overwrite each with a new planted value; both old and new stay absent.
    let mut later = Vec::new();
    for i in 0..VALUES.len() {
        let next = format!("overwritten-value-{i}-{}", "x".repeat(i * 7));
        v.set(&format!("SECRET_{i}"), "--bot", "greeter", &next);
        later.push(next);
    }
    v.run(&["secret", "delete", "TEAM_0", "--team", "ops"]).ok();
    v.run(&["key", "rotate"]).ok();
    v.run(&["bot", "delete", "greeter"]).ok();
    let files = v.file_bytes();
    for value in VALUES
        .iter()
        .copied()
        .chain(later.iter().map(String::as_str))
    {
        assert_absent(&files, value);
    }
}

#[test]
fn overwritten_and_deleted_ciphertexts_are_gone_from_db_and_wal() {
    let v = TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    // A large value spans overflow pages; a small one lives in the b-tree page.
    v.set("BIG", "--bot", "greeter", &"B".repeat(40_000));
    v.set("SMALL", "--bot", "greeter", "small-secret-value");
    v.set("GONE", "--bot", "greeter", "to-be-deleted-value");
    let (big, small, gone) = (
        record_of(&v, "BIG"),
        record_of(&v, "SMALL"),
        record_of(&v, "GONE"),
    );

    // Keep a connection open through the library, as a long-running engine
    // would, so the WAL stays in use while we look at it.
    let mut vault = v.open();
    let bot = Scope::Bot("greeter".into());
    vault
        .set_secret(
            &bot,
            &SecretName::new("BIG").unwrap(),
            &SecretValue::new("C".repeat(40_000)).unwrap(),
        )
        .unwrap();
    vault
        .set_secret(
            &bot,
            &SecretName::new("SMALL").unwrap(),
            &SecretValue::new("new-small-value".into()).unwrap(),
        )
        .unwrap();
    vault
        .delete_secret(&bot, &SecretName::new("GONE").unwrap())
        .unwrap();

    let files = v.file_bytes();
    let wal_len = files
        .iter()
        .find(|(p, _)| p.to_string_lossy().ends_with("-wal"))
        .map(|(_, b)| b.len());
    assert_eq!(
        wal_len.unwrap_or(0),
        0,
        "the WAL is truncated after each change"
    );
    for (path, bytes) in &files {
        for (label, old) in [("BIG", &big), ("SMALL", &small), ("GONE", &gone)] {
            assert_eq!(
                found(bytes, old),
                0,
                "part of the old sealed value of {label} survives in {}",
                path.display()
            );
            assert!(
                !contains(bytes, wrapped_dek(old)),
                "the old wrapped data key of {label} survives in {}",
                path.display()
            );
        }
    }
    assert_absent(&files, &"B".repeat(40_000));
    // The scan does find what is there: the current records.
    let db = &files[0].1;
    for name in ["BIG", "SMALL"] {
        let current = record_of(&v, name);
        let total = samples(&current).len();
        assert!(
            found(db, &current) * 10 >= total * 9,
            "{name} not found by the scan"
        );
    }
    drop(vault);
}

#[test]
fn rotation_leaves_no_old_wrapped_key_and_bot_delete_leaves_no_record() {
    let v = TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    v.set("DISCORD_BOT_TOKEN", "--bot", "greeter", VALUES[0]);
    v.set("OPENROUTER_API_KEY", "--team", "ops", VALUES[1]);
    let before = [
        record_of(&v, "DISCORD_BOT_TOKEN"),
        record_of(&v, "OPENROUTER_API_KEY"),
    ];
    v.run(&["key", "rotate"]).ok();
    let after = [
        record_of(&v, "DISCORD_BOT_TOKEN"),
        record_of(&v, "OPENROUTER_API_KEY"),
    ];
    for (old, new) in before.iter().zip(&after) {
        // Rotation re-wraps the data key and leaves the sealed value alone.
        assert_eq!(sealed_value(old), sealed_value(new));
        assert_ne!(wrapped_dek(old), wrapped_dek(new));
        for (path, bytes) in v.file_bytes() {
            assert!(
                !contains(&bytes, wrapped_dek(old)),
                "old wrapped key in {}",
                path.display()
            );
        }
    }
    v.run(&["bot", "delete", "greeter"]).ok();
    for (path, bytes) in v.file_bytes() {
        assert!(
            !contains(&bytes, sealed_value(&after[0])),
            "deleted bot's record in {}",
            path.display()
        );
        assert!(contains(&bytes, sealed_value(&after[1])) || !path.ends_with("vault.db"));
    }
}
