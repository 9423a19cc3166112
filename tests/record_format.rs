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

fn decrypt(key: &[u8], record: &[u8], scope: u8, owner_id: i64, name: &str) -> Option<String> {
    assert_eq!(record[0], 1, "format version");
    let kid = &record[1..9];
    assert_eq!(kid, key_id(key), "record names the key that sealed it");
    let wrap_nonce = &record[9..21];
    let wrapped_dek = &record[21..69];
    let value_nonce = &record[69..81];
    let sealed_value = &record[81..];

    let who = identity(scope, owner_id, name);
    let mut aad_wrap = b"narakim.dek".to_vec();
    aad_wrap.push(1);
    aad_wrap.extend_from_slice(kid);
    aad_wrap.extend_from_slice(&who);
    let mut aad_value = b"narakim.val".to_vec();
    aad_value.push(1);
    aad_value.extend_from_slice(&who);

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
        drop(db);
        v.run(&["key", "rotate"]).ok();
    }
}
