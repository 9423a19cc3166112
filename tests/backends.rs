//! The vault's promises, checked the same way on both databases: SQLite
//! (the embedded default) and PostgreSQL (what a cluster shares), with the
//! master key from a key file or from KMS (moto on loopback).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::services::{self, TestDatabase};
use narakim::vault::{
    KeySource, Scope, SecretName, SecretResolver, SecretValue, Vault, VaultConfig, VaultError,
};

/// A vault's place: a temp dir for its files, and a PostgreSQL database
/// when the backend is PostgreSQL.
struct Place {
    label: &'static str,
    root: tempfile::TempDir,
    db: Option<TestDatabase>,
}

impl Place {
    fn config(&self, key: KeySource) -> VaultConfig {
        let config = VaultConfig::new(self.root.path().join("data"), key);
        match &self.db {
            Some(db) => config.with_postgres(&db.url).unwrap(),
            None => config,
        }
    }

    fn key_file(&self) -> KeySource {
        KeySource::File(self.root.path().join("config/master.key"))
    }

    /// Every byte an attacker with the database would have.
    fn stored(&self) -> Vec<u8> {
        match &self.db {
            Some(db) => db.dump().into_bytes(),
            None => ["vault.db", "vault.db-wal"]
                .iter()
                .flat_map(|f| common::read_or_empty(&self.root.path().join("data").join(f)))
                .collect(),
        }
    }
}

/// SQLite, and PostgreSQL when its server is running.
fn places() -> Vec<Place> {
    let mut out = vec![Place {
        label: "sqlite",
        root: tempfile::tempdir().unwrap(),
        db: None,
    }];
    if let Some(db) = TestDatabase::create() {
        out.push(Place {
            label: "postgres",
            root: tempfile::tempdir().unwrap(),
            db: Some(db),
        });
    }
    out
}

fn name(n: &str) -> SecretName {
    SecretName::new(n).unwrap()
}

fn value(v: &str) -> SecretValue {
    SecretValue::new(v.to_owned()).unwrap()
}

fn bot(b: &str) -> Scope {
    Scope::Bot(b.into())
}

fn team(t: &str) -> Scope {
    Scope::Team(t.into())
}

#[test]
fn secrets_teams_bots_and_tokens_behave_the_same_on_both_databases() {
    for place in places() {
        let at = place.label;
        let config = place.config(place.key_file());
        Vault::init(&config).unwrap();
        let mut vault = Vault::open(config.clone()).unwrap();
        vault.create_team("ops").unwrap();
        vault.create_bot("greeter", "ops").unwrap();
        vault.create_bot("helper", "ops").unwrap();
        let token = name("DISCORD_BOT_TOKEN");
        vault
            .set_secret(&team("ops"), &token, &value("team-token-value-1"))
            .unwrap();
        vault
            .set_secret(&bot("greeter"), &token, &value("bot-token-value-22"))
            .unwrap();
        assert!(
            matches!(
                vault.create_bot("greeter", "ops"),
                Err(VaultError::BotExists(_))
            ),
            "{at}"
        );

        // Bot over team; the team's value for a bot without its own.
        let greeter = vault.snapshot_for_bot("greeter").unwrap();
        assert!(
            greeter
                .resolve("DISCORD_BOT_TOKEN")
                .unwrap()
                .matches(b"bot-token-value-22"),
            "{at}"
        );
        let helper = vault.snapshot_for_bot("helper").unwrap();
        assert!(
            helper
                .resolve("DISCORD_BOT_TOKEN")
                .unwrap()
                .matches(b"team-token-value-1"),
            "{at}"
        );

        // Overwrite: a new version; the snapshot taken before keeps the old value.
        let (_, version) = vault
            .set_secret_checked(
                &bot("greeter"),
                &token,
                &value("bot-token-value-333"),
                narakim::vault::Precondition::Version(1),
            )
            .unwrap();
        assert_eq!(version, 2, "{at}");
        assert!(
            greeter
                .resolve("DISCORD_BOT_TOKEN")
                .unwrap()
                .matches(b"bot-token-value-22"),
            "{at}"
        );
        let now = vault.snapshot_for_bot("greeter").unwrap();
        assert!(
            now.resolve("DISCORD_BOT_TOKEN")
                .unwrap()
                .matches(b"bot-token-value-333"),
            "{at}"
        );
        let stale = vault.set_secret_checked(
            &bot("greeter"),
            &token,
            &value("bot-token-value-4444"),
            narakim::vault::Precondition::Version(1),
        );
        assert!(
            matches!(stale, Err(VaultError::VersionMismatch { .. })),
            "{at}: {stale:?}"
        );

        let listed = vault.list_secrets(&bot("greeter")).unwrap();
        assert_eq!(listed.len(), 2, "{at}");
        assert!(listed.iter().all(|s| s.fingerprint_verified), "{at}");
        assert_eq!(
            vault
                .stored_values_among(&["bot-token-value-333"])
                .unwrap()
                .len(),
            1,
            "{at}"
        );

        // Tokens: only a digest is stored, and it authenticates.
        let (info, api_token) = vault
            .create_token(
                &narakim::vault::access::TokenScope::Team("ops".into()),
                &[narakim::vault::access::Capability::RunsStart],
                None,
            )
            .unwrap();
        assert_eq!(
            vault.authenticate(api_token.expose()).unwrap().id,
            info.id,
            "{at}"
        );
        vault.revoke_token(&info.id).unwrap();
        assert!(vault.authenticate(api_token.expose()).is_err(), "{at}");

        // Deleting a bot deletes its secrets, in one transaction.
        assert_eq!(vault.delete_bot("greeter").unwrap(), 1, "{at}");
        assert!(vault.snapshot_for_bot("greeter").is_err(), "{at}");
        assert_eq!(vault.list_secrets(&team("ops")).unwrap().len(), 1, "{at}");

        let actions: Vec<String> = vault
            .audit(None)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        for action in [
            "vault.init",
            "secret.set",
            "secret.overwrite",
            "token.create",
            "bot.delete",
        ] {
            assert!(
                actions.iter().any(|a| a == action),
                "{at}: {action} in {actions:?}"
            );
        }
        assert_eq!(vault.audit(Some(2)).unwrap().len(), 2, "{at}");
        assert!(vault.verify().unwrap().failed.is_empty(), "{at}");

        // Nothing stored holds a value, in any encoding.
        let stored = place.stored();
        for planted in [
            "team-token-value-1",
            "bot-token-value-22",
            "bot-token-value-333",
        ] {
            for needle in common::encodings(planted) {
                assert!(
                    !common::contains(&stored, &needle),
                    "{at}: {planted} is stored"
                );
            }
        }
        assert!(
            !common::contains(&stored, api_token.expose().as_bytes()),
            "{at}"
        );
    }
}

#[test]
fn a_wrong_key_is_refused_before_anything_is_read_or_written() {
    for place in places() {
        let at = place.label;
        let config = place.config(place.key_file());
        Vault::init(&config).unwrap();
        let mut vault = Vault::open(config.clone()).unwrap();
        vault.create_team("ops").unwrap();
        drop(vault);
        let before = place.stored();
        let other = tempfile::tempdir().unwrap();
        let other_config = VaultConfig::new(
            other.path().join("data"),
            KeySource::File(other.path().join("config/master.key")),
        );
        Vault::init(&other_config).unwrap();
        let wrong = place.config(KeySource::File(other.path().join("config/master.key")));
        let err = Vault::open(wrong).unwrap_err();
        assert!(matches!(err, VaultError::WrongVault { .. }), "{at}: {err}");
        assert_eq!(place.stored(), before, "{at}: a refused open wrote nothing");
        // init on an existing vault checks its key and changes nothing.
        assert!(matches!(
            Vault::init(&config).unwrap(),
            narakim::vault::InitOutcome::AlreadyInitialized { .. }
        ));
    }
}

/// Two connections stand for two nodes: an overwrite through one is what
/// the other's next snapshot resolves, though it had that bot's records
/// cached.
#[test]
fn an_overwrite_through_one_connection_is_seen_by_the_next_snapshot_of_another() {
    for place in places() {
        let at = place.label;
        let config = place.config(place.key_file());
        Vault::init(&config).unwrap();
        let mut one = Vault::open(config.clone()).unwrap();
        let mut two = Vault::open(config.clone()).unwrap();
        one.create_team("ops").unwrap();
        one.create_bot("greeter", "ops").unwrap();
        let token = name("TOKEN");
        one.set_secret(&bot("greeter"), &token, &value("first-value-0001"))
            .unwrap();
        let cached = two.snapshot_for_bot("greeter").unwrap();
        assert!(
            cached
                .resolve("TOKEN")
                .unwrap()
                .matches(b"first-value-0001"),
            "{at}"
        );
        one.set_secret(&bot("greeter"), &token, &value("second-value-0002"))
            .unwrap();
        let next = two.snapshot_for_bot("greeter").unwrap();
        assert!(
            next.resolve("TOKEN").unwrap().matches(b"second-value-0002"),
            "{at}"
        );
        one.set_secret(&team("ops"), &name("SHARED"), &value("team-value-0003"))
            .unwrap();
        assert!(
            two.snapshot_for_bot("greeter").unwrap().contains("SHARED"),
            "{at}"
        );
    }
}

#[test]
fn two_nodes_initialising_one_database_at_once_make_one_vault() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let roots: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = roots
            .iter()
            .map(|root| {
                let config = VaultConfig::new(
                    root.path().join("data"),
                    KeySource::File(root.path().join("config/master.key")),
                )
                .with_postgres(&db.url)
                .unwrap();
                s.spawn(move || Vault::init(&config))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(narakim::vault::InitOutcome::Created { .. })))
        .count();
    assert_eq!(created, 1, "{outcomes:?}");
    // The others were told, or found a vault their key does not open.
    for outcome in &outcomes {
        match outcome {
            Ok(_) => {}
            Err(VaultError::AlreadyInitialized | VaultError::WrongVault { .. }) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
}

#[test]
fn with_kms_no_key_is_written_and_the_vault_opens_only_through_kms() {
    let Some(kms) = services::kms() else {
        return;
    };
    let kms = Arc::new(kms);
    for place in places() {
        let at = place.label;
        let config = place.config(KeySource::Kms(kms.clone()));
        Vault::init(&config).unwrap();
        let mut vault = Vault::open(config.clone()).unwrap();
        vault.create_team("ops").unwrap();
        vault.create_bot("greeter", "ops").unwrap();
        vault
            .set_secret(
                &bot("greeter"),
                &name("TOKEN"),
                &value("kms-sealed-value-01"),
            )
            .unwrap();
        drop(vault);
        // No key file anywhere under the vault's dirs.
        let files: Vec<_> = walk(place.root.path());
        assert!(
            files.iter().all(|f| !f.to_string_lossy().contains("key")),
            "{at}: {files:?}"
        );

        let mut reopened = Vault::open(config.clone()).unwrap();
        let snapshot = reopened.snapshot_for_bot("greeter").unwrap();
        assert!(
            snapshot
                .resolve("TOKEN")
                .unwrap()
                .matches(b"kms-sealed-value-01"),
            "{at}"
        );

        // Without KMS: told where the key is.
        let err = Vault::open(place.config(place.key_file())).unwrap_err();
        assert!(matches!(err, VaultError::KeyInKms), "{at}: {err}");
        // Another KMS key cannot open its blob.
        let url = services::moto_url().unwrap();
        let other_key = services::kms_client(&url, "")
            .create_key("another")
            .unwrap();
        let other = Arc::new(services::kms_client(&url, &other_key));
        let err = Vault::open(place.config(KeySource::Kms(other))).unwrap_err();
        assert!(matches!(err, VaultError::Kms(_)), "{at}: {err}");
    }
}

#[test]
fn a_kms_blob_copied_into_another_vault_does_not_open_there() {
    let Some(kms) = services::kms() else {
        return;
    };
    let kms = Arc::new(kms);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config_a = VaultConfig::new(a.path().join("data"), KeySource::Kms(kms.clone()));
    let config_b = VaultConfig::new(b.path().join("data"), KeySource::Kms(kms.clone()));
    Vault::init(&config_a).unwrap();
    Vault::init(&config_b).unwrap();
    let blob: Vec<u8> = rusqlite::Connection::open(a.path().join("data/vault.db"))
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'kms_master_key'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    rusqlite::Connection::open(b.path().join("data/vault.db"))
        .unwrap()
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'kms_master_key'",
            [&blob],
        )
        .unwrap();
    let err = Vault::open(config_b).unwrap_err();
    assert!(err.to_string().contains("InvalidCiphertext"), "{err}");
}

/// A rotation through one node: the other node's next snapshot and its
/// next write use the new key, with no restart; nothing was lost.
#[test]
fn a_kms_rotation_on_one_node_takes_effect_on_the_others() {
    let Some(kms) = services::kms() else {
        return;
    };
    let kms = Arc::new(kms);
    for place in places() {
        let at = place.label;
        let config = place.config(KeySource::Kms(kms.clone()));
        Vault::init(&config).unwrap();
        let mut one = Vault::open(config.clone()).unwrap();
        let mut two = Vault::open(config.clone()).unwrap();
        one.create_team("ops").unwrap();
        one.create_bot("greeter", "ops").unwrap();
        for i in 0..20 {
            one.set_secret(
                &bot("greeter"),
                &name(&format!("S{i}")),
                &value(&format!("rotating-value-{i:04}")),
            )
            .unwrap();
        }
        assert_eq!(two.snapshot_for_bot("greeter").unwrap().len(), 20, "{at}");
        let before = one.key_id();
        let report = one.rotate_key(|_, _| {}).unwrap();
        assert_eq!(report.rewrapped, 20, "{at}");
        assert_ne!(one.key_id(), before, "{at}");

        // The other node: its next snapshot opens every record.
        let snapshot = two.snapshot_for_bot("greeter").unwrap();
        for i in 0..20 {
            let v = snapshot.resolve(&format!("S{i}")).unwrap();
            assert!(
                v.matches(format!("rotating-value-{i:04}").as_bytes()),
                "{at}"
            );
        }
        assert_eq!(two.key_id(), one.key_id(), "{at}");
        // And its writes are sealed under the new key.
        two.set_secret(
            &bot("greeter"),
            &name("AFTER"),
            &value("written-after-rotation"),
        )
        .unwrap();
        assert!(one.verify().unwrap().failed.is_empty(), "{at}");
        drop((one, two));
        let mut reopened = Vault::open(config).unwrap();
        assert_eq!(
            reopened.snapshot_for_bot("greeter").unwrap().len(),
            21,
            "{at}"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Ends every other connection to the test database, as a proxy dropping
/// them or a failover would.
fn drop_connections(db: &TestDatabase) -> i64 {
    db.conn()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            narakim::args![],
            |r| r.get(0),
        )
        .unwrap()
}

fn new_run(bot: &str) -> narakim::engine::queue::NewRun<'_> {
    narakim::engine::queue::NewRun {
        bot,
        trigger_json: "{}",
        idempotency_key: None,
        started_by: None,
        delivery: None,
        fire: None,
        id: None,
    }
}

/// A connection that drops in the middle of a transaction: the
/// transaction is gone whole (nothing half-written), the store says so,
/// and its next statement works on a new connection with no restart.
#[test]
fn a_connection_dropped_mid_transaction_loses_nothing_and_the_store_carries_on() {
    use narakim::engine::queue::RunQueue;
    use narakim::engine::store::EngineStore;
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let database = narakim::db::Database::Postgres(narakim::db::PgPool::new(&db.url).unwrap());
    let mut store = EngineStore::open_in(dir.path(), &database).unwrap();
    store
        .deploy("greeter", "{\"nodes\":[]}", "v1", &Default::default())
        .unwrap();
    let queued = store.enqueue(&new_run("greeter"), 100).unwrap();

    let lease = Duration::from_secs(30);
    let mut step = 0;
    let outcome = store.write_together(&mut |store| {
        step += 1;
        match step {
            1 => {
                let claimed = store.claim_many("node-a", lease, 10).unwrap();
                assert_eq!(claimed.len(), 1);
                true
            }
            2 => {
                assert!(drop_connections(&db) >= 1);
                true
            }
            3 => {
                let started = store.start("node-a", &queued.id);
                assert!(started.is_err(), "{started:?}");
                true
            }
            _ => false,
        }
    });
    assert!(outcome.is_err(), "the shared commit cannot have happened");
    // The claim was undone with the transaction; the store works again.
    let depth = store.depth().unwrap();
    assert_eq!((depth.waiting, depth.running), (1, 0));
    let claimed = store.claim_many("node-b", lease, 10).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, queued.id);
    assert!(store.start("node-b", &queued.id).unwrap());

    // The vault too: a statement after a drop runs on a new connection.
    let root = tempfile::tempdir().unwrap();
    let config = VaultConfig::new(
        root.path().join("data"),
        KeySource::File(root.path().join("config/master.key")),
    )
    .with_postgres(&db.url)
    .unwrap();
    Vault::init(&config).unwrap();
    let mut vault = Vault::open(config).unwrap();
    vault.create_team("ops").unwrap();
    drop_connections(&db);
    vault.create_bot("greeter", "ops").unwrap();
    drop_connections(&db);
    vault
        .set_secret(&bot("greeter"), &name("TOKEN"), &value("after-the-drop-1"))
        .unwrap();
    drop_connections(&db);
    assert!(
        vault
            .snapshot_for_bot("greeter")
            .unwrap()
            .resolve("TOKEN")
            .unwrap()
            .matches(b"after-the-drop-1")
    );
}
