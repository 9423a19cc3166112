//! Decrypts a stored record with nothing but the README's description of the
//! format and raw crypto primitives: no narakim code on the decryption path.
//! If the README and the code ever disagree, this fails.

mod common;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// README "Key file": the `key:` line holds base64 of the 32 key bytes.
fn key_from_file(path: &std::path::Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("key: ")).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .unwrap()
}

/// README "Key id": first 8 bytes of HMAC-SHA256(key, "narakim key-id v1").
fn key_id(key: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).unwrap();
    mac.update(b"narakim key-id v1");
    mac.finalize().into_bytes()[..8].to_vec()
}

/// README "Record format": identity = scope ‖ owner id (u64 BE) ‖ name len ‖ name.
fn identity(scope: u8, owner_id: i64, name: &str) -> Vec<u8> {
    let mut out = vec![scope];
    out.extend_from_slice(&(owner_id as u64).to_be_bytes());
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    out
}

/// README "Record": AAD_wrap and AAD_value.
fn aads(kid: &[u8], who: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut aad_wrap = b"narakim.dek".to_vec();
    aad_wrap.push(1);
    aad_wrap.extend_from_slice(kid);
    aad_wrap.extend_from_slice(who);
    let mut aad_value = b"narakim.val".to_vec();
    aad_value.push(1);
    aad_value.extend_from_slice(who);
    (aad_wrap, aad_value)
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).unwrap();
    out
}

/// Seals arbitrary bytes as a record, following the README's table: what
/// another implementation (or someone holding the key) would write.
fn seal(key: &[u8], plain: &[u8], scope: u8, owner_id: i64, name: &str) -> Vec<u8> {
    let kid = key_id(key);
    let (aad_wrap, aad_value) = aads(&kid, &identity(scope, owner_id, name));
    let dek: [u8; 32] = random();
    let (wrap_nonce, value_nonce): ([u8; 12], [u8; 12]) = (random(), random());
    let wrapped = Aes256Gcm::new_from_slice(key)
        .unwrap()
        .encrypt(
            &Nonce::from(wrap_nonce),
            Payload {
                msg: &dek,
                aad: &aad_wrap,
            },
        )
        .unwrap();
    let sealed = Aes256Gcm::new_from_slice(&dek)
        .unwrap()
        .encrypt(
            &Nonce::from(value_nonce),
            Payload {
                msg: plain,
                aad: &aad_value,
            },
        )
        .unwrap();
    let mut record = vec![1u8];
    record.extend_from_slice(&kid);
    record.extend_from_slice(&wrap_nonce);
    record.extend_from_slice(&wrapped);
    record.extend_from_slice(&value_nonce);
    record.extend_from_slice(&sealed);
    record
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// README "Vault metadata": the fingerprint key, unwrapped from `meta`.
fn fingerprint_key(key: &[u8], db: &rusqlite::Connection) -> Vec<u8> {
    let meta = |k: &str| -> Vec<u8> {
        db.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
            .unwrap()
    };
    let (vault_id, sealed) = (meta("vault_id"), meta("fingerprint_key"));
    assert_eq!(vault_id.len(), 16);
    let kid = &sealed[..8];
    assert_eq!(kid, key_id(key));
    let mut aad = b"narakim.blob".to_vec();
    aad.push(1);
    aad.extend_from_slice(kid);
    aad.extend_from_slice(b"fingerprint-key");
    aad.extend_from_slice(&vault_id);
    let nonce: [u8; 12] = sealed[8..20].try_into().unwrap();
    let fk = Aes256Gcm::new_from_slice(key)
        .unwrap()
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &sealed[20..],
                aad: &aad,
            },
        )
        .unwrap();
    assert_eq!(fk.len(), 32);
    fk
}

/// README "Vault metadata": a row's fingerprint, and the tag that binds it
/// to the row's record.
fn check_fingerprint(
    db: &rusqlite::Connection,
    fk: &[u8],
    (row, value): (&str, &str),
    (scope, owner_id, name): (u8, i64, &str),
) {
    let (record, fingerprint, tag): (Vec<u8>, Vec<u8>, Vec<u8>) = db
        .query_row(
            &format!("SELECT record, fingerprint, fingerprint_tag FROM secrets WHERE {row}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(fingerprint, hmac(fk, &[value.as_bytes()]), "{name}");
    let tag_key = hmac(fk, &[b"narakim fingerprint-tag v1"]);
    let expected = hmac(
        &tag_key,
        &[
            b"narakim.fpt\x01",
            &identity(scope, owner_id, name),
            &fingerprint,
            &record[69..],
        ],
    );
    assert_eq!(tag, expected, "{name}");
}

fn decrypt(key: &[u8], record: &[u8], scope: u8, owner_id: i64, name: &str) -> Option<String> {
    assert_eq!(record[0], 1, "format version");
    let kid = &record[1..9];
    assert_eq!(kid, key_id(key), "record names the key that sealed it");
    let wrap_nonce = &record[9..21];
    let wrapped_dek = &record[21..69];
    let value_nonce = &record[69..81];
    let sealed_value = &record[81..];

    let (aad_wrap, aad_value) = aads(kid, &identity(scope, owner_id, name));

    let master = Aes256Gcm::new_from_slice(key).unwrap();
    let nonce: [u8; 12] = wrap_nonce.try_into().unwrap();
    let dek = master
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: wrapped_dek,
                aad: &aad_wrap,
            },
        )
        .ok()?;
    let dek = Aes256Gcm::new_from_slice(&dek).unwrap();
    let nonce: [u8; 12] = value_nonce.try_into().unwrap();
    let plain = dek
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: sealed_value,
                aad: &aad_value,
            },
        )
        .ok()?;
    Some(String::from_utf8(plain).unwrap())
}

#[test]
fn the_documented_format_decrypts_bot_and_team_records() {
    let v = common::TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    v.set(
        "DISCORD_BOT_TOKEN",
        "--bot",
        "greeter",
        "documented-bot-token-value",
    );
    v.set(
        "WEBHOOK_SECRET",
        "--team",
        "ops",
        "documented-team-webhook-secret",
    );
    // After a rotation the same procedure works with the new key.
    for round in 0..2 {
        let key = key_from_file(&v.key_file);
        let db = v.raw_db();
        let (bot_id, bot_rec): (i64, Vec<u8>) = db
            .query_row(
                "SELECT bot_id, record FROM secrets WHERE name = 'DISCORD_BOT_TOKEN'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let (team_id, team_rec): (i64, Vec<u8>) = db
            .query_row(
                "SELECT team_id, record FROM secrets WHERE name = 'WEBHOOK_SECRET'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            decrypt(&key, &bot_rec, 0x01, bot_id, "DISCORD_BOT_TOKEN").as_deref(),
            Some("documented-bot-token-value"),
            "round {round}"
        );
        assert_eq!(
            decrypt(&key, &team_rec, 0x02, team_id, "WEBHOOK_SECRET").as_deref(),
            Some("documented-team-webhook-secret"),
            "round {round}"
        );
        // The AAD really binds the identity: any other one fails.
        assert_eq!(
            decrypt(&key, &bot_rec, 0x02, bot_id, "DISCORD_BOT_TOKEN"),
            None
        );
        assert_eq!(
            decrypt(&key, &bot_rec, 0x01, bot_id + 1, "DISCORD_BOT_TOKEN"),
            None
        );
        assert_eq!(
            decrypt(&key, &bot_rec, 0x01, bot_id, "DISCORD_BOT_TOKEM"),
            None
        );
        // The fingerprints, recomputed from the README (they survive rotation).
        let fk = fingerprint_key(&key, &db);
        check_fingerprint(
            &db,
            &fk,
            ("name = 'DISCORD_BOT_TOKEN'", "documented-bot-token-value"),
            (0x01, bot_id, "DISCORD_BOT_TOKEN"),
        );
        check_fingerprint(
            &db,
            &fk,
            ("name = 'WEBHOOK_SECRET'", "documented-team-webhook-secret"),
            (0x02, team_id, "WEBHOOK_SECRET"),
        );
        // Owner ids are the `id` columns of `bots` and `teams`.
        let ids: (i64, i64) = db
            .query_row(
                "SELECT (SELECT id FROM bots WHERE name = 'greeter'), (SELECT id FROM teams WHERE name = 'ops')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(ids, (bot_id, team_id));
        // Timestamps are integer milliseconds since the Unix epoch.
        let updated: i64 = db
            .query_row(
                "SELECT updated_at FROM secrets WHERE name = 'DISCORD_BOT_TOKEN'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!(
            updated <= now_ms && now_ms - updated < 10 * 60 * 1000,
            "{updated}"
        );
        drop(db);
        v.run(&["key", "rotate"]).ok();
    }
}

/// A record that authenticates but holds something narakim never stores
/// (written by another implementation, or by someone holding the key) is
/// reported as exactly that: not as altered or sealed with another key.
#[test]
fn a_record_that_decrypts_to_a_forbidden_value_is_reported_as_such() {
    let v = common::TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    v.set("API_TOKEN", "--bot", "greeter", "an-acceptable-token-value");
    let key = key_from_file(&v.key_file);
    let bot_id: i64 = v
        .raw_db()
        .query_row("SELECT id FROM bots WHERE name = 'greeter'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let cases: [(&[u8], &str); 3] = [
        (b"s3cr3t!", "shorter than 8 bytes"),
        (b"\xff\xfe-not-utf8-at-all", "it is not UTF-8"),
        (b"nul-in\0-the-middle", "it contains a NUL byte"),
    ];
    for (plain, why) in cases {
        let record = seal(&key, plain, 0x01, bot_id, "API_TOKEN");
        v.raw_db()
            .execute(
                "UPDATE secrets SET record = ?1 WHERE name = 'API_TOKEN'",
                [record],
            )
            .unwrap();
        let expected = format!(
            "API_TOKEN (bot \"greeter\") decrypted, but holds a value the vault would never store ({why})"
        );
        let verify = v.run(&["key", "verify"]);
        verify.fails_with(&expected);
        let scrub = v.run_with_stdin(&["scrub", "--bot", "greeter"], Some(b"a log line\n"));
        scrub.fails_with(
            "secret API_TOKEN (bot \"greeter\") decrypted, but holds a value the vault would never store",
        );
        assert_eq!(scrub.stdout, "");
        let rotate = v.run(&["key", "rotate"]);
        rotate.fails_with(&expected);
        for out in [&verify, &scrub, &rotate] {
            let text = out.all_output();
            assert!(
                !text.contains("altered") && !text.contains("another key"),
                "{text}"
            );
            let shown = String::from_utf8_lossy(plain);
            assert!(!text.contains(shown.as_ref()), "{text}");
        }
    }
    v.set("API_TOKEN", "--bot", "greeter", "an-acceptable-token-value");
    v.run(&["key", "verify"]).ok();
}
