//! Vault hot paths, each beside a baseline measured in the same run:
//!
//! - `resolve/decrypt_one`: resolve and decrypt one secret from a snapshot
//!   (goal: p50 ≤ 10 µs). Baseline: one bare AES-256-GCM open of a value of
//!   the same size with a ready key schedule (`resolve/baseline_aes_gcm_open`).
//! - `resolve/snapshot_and_decrypt`: take a bot's snapshot from SQLite, then
//!   resolve one secret (what an execution start costs per bot).
//! - `set/durable_overwrite`: one durable `set_secret` (fsync'd WAL commit
//!   plus WAL truncation). Baseline: a bare SQLite `UPDATE` of a blob of the
//!   same size with the same durability settings (`set/baseline_sqlite_update`).
//! - `rotate/10000`: rotate the master key over 10,000 secrets, including
//!   the verification pass (goal: ≤ 2 s).
//!
//! Run with `cargo bench --bench vault`; results go in BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use narakim::vault::{
    KeySource, Scope, SecretName, SecretResolver, SecretValue, Vault, VaultConfig,
};

const TOKEN: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GhIjKl.bench-token-0000000000000000000000";

fn fresh_vault(dir: &std::path::Path) -> Vault {
    let config = VaultConfig::new(
        dir.join("data"),
        KeySource::File(dir.join("config/master.key")),
    );
    Vault::init(&config).expect("init");
    let mut vault = Vault::open(config).expect("open");
    vault.create_team("ops").unwrap();
    vault.create_bot("greeter", "ops").unwrap();
    vault
}

fn value(s: &str) -> SecretValue {
    SecretValue::new(s.to_owned()).unwrap()
}

fn resolve(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = fresh_vault(dir.path());
    let bot = Scope::Bot("greeter".into());
    for (name, v) in [
        ("DISCORD_BOT_TOKEN", TOKEN),
        ("DISCORD_APPLICATION_ID", "1234567890123456789"),
        (
            "OPENROUTER_API_KEY",
            "sk-or-v1-0123456789abcdef0123456789abcdef",
        ),
    ] {
        vault
            .set_secret(&bot, &SecretName::new(name).unwrap(), &value(v))
            .unwrap();
    }
    let snapshot = vault.snapshot_for_bot("greeter").unwrap();

    let mut group = c.benchmark_group("resolve");
    group.bench_function("decrypt_one", |b| {
        b.iter(|| black_box(snapshot.resolve(black_box("DISCORD_BOT_TOKEN")).unwrap()))
    });
    group.bench_function("snapshot_and_decrypt", |b| {
        b.iter(|| {
            let s = vault.snapshot_for_bot(black_box("greeter")).unwrap();
            black_box(s.resolve("DISCORD_BOT_TOKEN").unwrap())
        })
    });
    // Baseline: the AES-GCM work alone, on a value of the same length.
    let cipher = Aes256Gcm::new_from_slice(&[7u8; 32]).unwrap();
    let nonce = Nonce::from([9u8; 12]);
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: TOKEN.as_bytes(),
                aad: b"aad",
            },
        )
        .unwrap();
    group.bench_function("baseline_aes_gcm_open", |b| {
        b.iter(|| {
            black_box(
                cipher
                    .decrypt(
                        &nonce,
                        Payload {
                            msg: black_box(&sealed),
                            aad: b"aad",
                        },
                    )
                    .unwrap(),
            )
        })
    });
    group.finish();
}

fn set(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = fresh_vault(dir.path());
    let bot = Scope::Bot("greeter".into());
    let name = SecretName::new("DISCORD_BOT_TOKEN").unwrap();
    let token = value(TOKEN);
    let mut group = c.benchmark_group("set");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("durable_overwrite", |b| {
        b.iter(|| vault.set_secret(&bot, &name, &token).unwrap())
    });
    // Baseline: SQLite alone, same durability (WAL, synchronous=FULL,
    // secure_delete, truncating checkpoint), same blob size, no crypto.
    let raw = rusqlite::Connection::open(dir.path().join("baseline.db")).unwrap();
    raw.pragma_update(None, "journal_mode", "WAL").unwrap();
    raw.pragma_update(None, "synchronous", "FULL").unwrap();
    raw.pragma_update(None, "secure_delete", "ON").unwrap();
    raw.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL); INSERT INTO t VALUES (1, x'00');",
    )
    .unwrap();
    // Make sure the baseline really is as durable as the vault.
    let sync: i64 = raw
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!((sync, mode.as_str()), (2, "wal"));
    let mut blob = vec![0x5au8; narakim::vault::record::OVERHEAD + TOKEN.len()];
    let mut n = 0u64;
    group.bench_function("baseline_sqlite_update", |b| {
        b.iter(|| {
            // New bytes each time: SQLite skips writing an unchanged cell.
            n += 1;
            blob[..8].copy_from_slice(&n.to_le_bytes());
            raw.execute("UPDATE t SET v = ?1 WHERE id = 1", [&blob])
                .unwrap();
            raw.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        })
    });
    group.finish();
}

fn rotate(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = fresh_vault(dir.path());
    let bot = Scope::Bot("greeter".into());
    let team = Scope::Team("ops".into());
    let names: Vec<SecretName> = (0..10_000)
        .map(|i| SecretName::new(&format!("SECRET_{i:05}")).unwrap())
        .collect();
    let values: Vec<SecretValue> = (0..10_000)
        .map(|i| value(&format!("secret-value-{i:05}-{TOKEN}")))
        .collect();
    vault
        .set_secrets(
            names
                .iter()
                .zip(&values)
                .enumerate()
                .map(|(i, (n, v))| (if i % 2 == 0 { &bot } else { &team }, n, v)),
        )
        .unwrap();
    let mut group = c.benchmark_group("rotate");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("10000", |b| {
        b.iter_batched(
            || (),
            |()| {
                let report = vault.rotate_key(|_, _| {}).unwrap();
                assert_eq!(report.rewrapped, 10_000);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, resolve, set, rotate);
criterion_main!(benches);
