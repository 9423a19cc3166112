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

/// A new vault at `place` with its master key in `kms`, holding team `ops`
/// and bot `greeter`, and its config (to open it again).
fn kms_vault(place: &Place, kms: &Arc<narakim::vault::kms::KmsClient>) -> (VaultConfig, Vault) {
    let config = place.config(KeySource::Kms(kms.clone()));
    Vault::init(&config).unwrap();
    let mut vault = Vault::open(config.clone()).unwrap();
    vault.create_team("ops").unwrap();
    vault.create_bot("greeter", "ops").unwrap();
    (config, vault)
}

#[test]
fn with_kms_no_key_is_written_and_the_vault_opens_only_through_kms() {
    let Some(kms) = services::kms() else {
        return;
    };
    let kms = Arc::new(kms);
    for place in places() {
        let at = place.label;
        let (config, mut vault) = kms_vault(&place, &kms);
        vault
            .set_secret(
                &bot("greeter"),
                &name("TOKEN"),
                &value("kms-sealed-value-01"),
            )
            .unwrap();
        drop(vault);
        // No key file anywhere under the vault's dirs.
        let files: Vec<_> = common::files_under(place.root.path());
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
        let (config, mut one) = kms_vault(&place, &kms);
        let mut two = Vault::open(config.clone()).unwrap();
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

/// An engine store in each place: `engine.db`, and PostgreSQL when it runs.
fn engine_stores() -> Vec<(
    &'static str,
    tempfile::TempDir,
    Option<TestDatabase>,
    narakim::engine::store::EngineStore,
)> {
    use narakim::engine::store::EngineStore;
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let store = EngineStore::open(dir.path()).unwrap();
    out.push(("sqlite", dir, None, store));
    if let Some(db) = TestDatabase::create() {
        let dir = tempfile::tempdir().unwrap();
        let database = narakim::db::Database::Postgres(narakim::db::PgPool::new(&db.url).unwrap());
        let store = EngineStore::open_in(dir.path(), &database).unwrap();
        out.push(("postgres", dir, Some(db), store));
    }
    out
}

fn node_run(
    id: &narakim::engine::store::ExecutionId,
    node: &str,
) -> narakim::engine::store::NodeRun {
    narakim::engine::store::NodeRun {
        execution_id: id.clone(),
        node: node.into(),
        extension: "x@1".into(),
        status: narakim::engine::store::NodeStatus::Succeeded,
        started_at: 1,
        duration_ms: 2,
        output: Some("{}".into()),
        error: None,
        logs: Vec::new(),
        stdout: String::new(),
        stderr: String::new(),
        secrets_read: vec!["TOKEN".into()],
        egress: Vec::new(),
        egress_dropped: 0,
    }
}

/// The engine's store and queue keep the same promises on both databases:
/// deployments and pins, trigger ids kept across redeploys, a schedule
/// fire claimed once, idempotency keys and delivery keys finding their
/// run, the queue's bound and order, leases, the reaper, node runs
/// recorded once, and a bot's data deleted together.
#[test]
fn the_engine_store_and_queue_behave_the_same_on_both_databases() {
    use narakim::engine::queue::{Delivery, Fire, NewRun, RunQueue};
    use narakim::engine::store::{ExecutionStatus, Pin, StoreError};
    for (at, _dir, _db, mut store) in engine_stores() {
        let pins = std::collections::BTreeMap::from([(
            "call".to_owned(),
            Pin {
                name: "x".into(),
                version: "1".into(),
                sha256: "ab".repeat(32),
            },
        )]);
        let first = store
            .deploy_with_triggers(
                "greeter",
                "{\"v\":1}",
                "v1",
                &pins,
                &[("hook", None), ("tick", Some(1_000))],
            )
            .unwrap();
        let ids = store.triggers_of("greeter").unwrap();
        let second = store
            .deploy_with_triggers(
                "greeter",
                "{\"v\":2}",
                "v2",
                &pins,
                &[("hook", None), ("tick", Some(1_000))],
            )
            .unwrap();
        assert!(second.id > first.id, "{at}");
        assert_eq!(
            store.triggers_of("greeter").unwrap(),
            ids,
            "{at}: trigger ids kept"
        );
        let active = store.active_deployment("greeter").unwrap().unwrap();
        assert_eq!(
            (active.graph_version.as_str(), active.pins.clone()),
            ("v2", pins.clone()),
            "{at}"
        );
        assert_eq!(store.bots_pinning("x", "1").unwrap(), ["greeter"], "{at}");

        // A schedule's fire is claimed once.
        let tick = ids["tick"].to_string();
        assert_eq!(store.due_schedules(5_000).unwrap().len(), 1, "{at}");
        let fire = Fire {
            trigger_id: tick.clone(),
            due_ms: 1_000,
            next_ms: 61_000,
        };
        let fired = store
            .enqueue(
                &NewRun {
                    fire: Some(&fire),
                    ..new_run("greeter")
                },
                100,
            )
            .unwrap();
        let again = store.enqueue(
            &NewRun {
                fire: Some(&fire),
                ..new_run("greeter")
            },
            100,
        );
        assert!(
            matches!(again, Err(StoreError::FireClaimed)),
            "{at}: {again:?}"
        );
        assert_eq!(store.next_schedule_fire().unwrap(), Some(61_000), "{at}");

        // Idempotency keys and delivery keys find their run.
        let keyed = NewRun {
            idempotency_key: Some("key-1"),
            trigger_json: "{\"a\":1}",
            ..new_run("greeter")
        };
        let one = store.enqueue(&keyed, 100).unwrap();
        let replay = store.enqueue(&keyed, 100).unwrap();
        assert!(replay.replayed && replay.id == one.id, "{at}");
        let reused = store.enqueue(
            &NewRun {
                trigger_json: "{\"a\":2}",
                ..keyed
            },
            100,
        );
        assert!(
            matches!(reused, Err(StoreError::IdempotencyKeyReused { .. })),
            "{at}"
        );
        let delivery = Delivery {
            trigger_id: ids["hook"].to_string(),
            keys: vec!["d-1".into(), "sig-1".into()],
            keep_until_ms: i64::MAX,
        };
        let delivered = store
            .enqueue(
                &NewRun {
                    delivery: Some(&delivery),
                    ..new_run("greeter")
                },
                100,
            )
            .unwrap();
        let repeat = Delivery {
            keys: vec!["d-other".into(), "sig-1".into()],
            ..delivery.clone()
        };
        let found = store
            .enqueue(
                &NewRun {
                    delivery: Some(&repeat),
                    ..new_run("greeter")
                },
                100,
            )
            .unwrap();
        assert!(found.replayed && found.id == delivered.id, "{at}");

        // The bound, then pause and no deployment.
        let full = store.enqueue(&new_run("greeter"), 3);
        assert!(
            matches!(full, Err(StoreError::QueueFull { .. })),
            "{at}: {full:?}"
        );
        store.set_paused("greeter", true).unwrap();
        assert!(
            matches!(
                store.enqueue(&new_run("greeter"), 100),
                Err(StoreError::BotPaused { .. })
            ),
            "{at}"
        );
        store.set_paused("greeter", false).unwrap();
        assert!(
            matches!(
                store.enqueue(&new_run("nobody"), 100),
                Err(StoreError::BotNotDeployed { .. })
            ),
            "{at}"
        );

        // Claimed oldest first, in a batch; started once; renewed; reaped.
        let lease = Duration::from_secs(60);
        let claimed = store.claim_many("node-a", lease, 2).unwrap();
        let claimed_ids: Vec<_> = claimed.iter().map(|c| c.id.clone()).collect();
        assert_eq!(claimed_ids, [fired.id.clone(), one.id.clone()], "{at}");
        assert!(store.start("node-a", &fired.id).unwrap(), "{at}");
        assert!(
            !store.start("node-a", &fired.id).unwrap(),
            "{at}: started twice"
        );
        assert!(
            !store.start("node-b", &one.id).unwrap(),
            "{at}: another node's lease"
        );
        assert_eq!(store.renew("node-a", lease).unwrap(), 2, "{at}");
        assert_eq!(store.reap().unwrap().requeued, 0, "{at}: nothing lapsed");
        store.renew("node-a", Duration::ZERO).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let reaped = store.reap().unwrap();
        assert_eq!(
            (reaped.interrupted, reaped.requeued, reaped.waiting),
            (1, 1, 2),
            "{at}"
        );
        let (interrupted, _) = store.execution(&fired.id).unwrap().unwrap();
        assert_eq!(interrupted.status, ExecutionStatus::Failed, "{at}");

        // A node run is recorded once; the end removes the job.
        let next = store.claim_many("node-b", lease, 1).unwrap().remove(0);
        assert!(store.start("node-b", &next.id).unwrap(), "{at}");
        store.record_node_run(&node_run(&next.id, "call")).unwrap();
        let twice = store.record_node_run(&node_run(&next.id, "call"));
        assert!(
            matches!(twice, Err(StoreError::NodeRunExists { .. })),
            "{at}"
        );
        store
            .finish_execution(&next.id, ExecutionStatus::Succeeded, None)
            .unwrap();
        let (done, runs) = store.execution(&next.id).unwrap().unwrap();
        assert_eq!(
            (done.status, runs.len()),
            (ExecutionStatus::Succeeded, 1),
            "{at}"
        );
        assert_eq!(runs[0].secrets_read, ["TOKEN"], "{at}");
        assert_eq!(store.depth().unwrap().waiting, 1, "{at}");
        assert_eq!(
            store.executions(Some("greeter"), 10).unwrap().len(),
            3,
            "{at}"
        );

        store.delete_bot_data("greeter").unwrap();
        assert!(
            store.active_deployment("greeter").unwrap().is_none(),
            "{at}"
        );
        assert!(store.executions(None, 10).unwrap().is_empty(), "{at}");
        assert_eq!(
            store.depth().unwrap().waiting,
            0,
            "{at}: jobs go with their runs"
        );
    }
}

/// On PostgreSQL the vault's and the engine's tables share the database,
/// so `bot delete` removes the bot, its secrets and its records in one
/// transaction: when the engine's part fails, nothing is deleted.
#[test]
fn on_postgres_a_bot_delete_is_one_transaction_across_vault_and_engine() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let run = |args: &[&str], input: Option<&[u8]>| {
        let mut cmd = common::command();
        cmd.arg("--data-dir")
            .arg(root.path().join("data"))
            .arg("--key-file")
            .arg(root.path().join("config/master.key"))
            .env("NARAKIM_DATABASE_URL", &db.url)
            .args(args);
        common::run_command(cmd, input)
    };
    run(&["init"], None).ok();
    run(&["team", "create", "ops"], None).ok();
    run(&["bot", "create", "greeter", "--team", "ops"], None).ok();
    run(
        &["secret", "set", "API_TOKEN", "--bot", "greeter"],
        Some(b"bot-token-value-9"),
    )
    .ok();
    // An engine row of the bot.
    run(&["bot", "pause", "greeter"], None).ok();
    let rows = |sql: &str| -> i64 {
        db.conn()
            .query_one(sql, narakim::args![], |r| r.get(0))
            .unwrap()
    };
    let state = "SELECT count(*) FROM bot_state WHERE bot = 'greeter'";
    let secrets =
        "SELECT count(*) FROM secrets s JOIN bots b ON b.id = s.bot_id WHERE b.name = 'greeter'";
    assert_eq!((rows(state), rows(secrets)), (1, 1));

    // The engine's part fails: the vault's part is rolled back with it.
    db.conn()
        .batch(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
             CREATE TRIGGER refuse_delete BEFORE DELETE ON bot_state
                 FOR EACH ROW EXECUTE FUNCTION refuse();",
        )
        .unwrap();
    run(&["bot", "delete", "greeter"], None).fails_with("refused by the test");
    assert_eq!((rows(state), rows(secrets)), (1, 1), "nothing was deleted");
    assert!(run(&["bot", "list"], None).ok().contains("greeter"));

    db.conn()
        .batch("DROP TRIGGER refuse_delete ON bot_state")
        .unwrap();
    assert!(
        run(&["bot", "delete", "greeter"], None)
            .ok()
            .contains("its 1 bot secret(s)")
    );
    assert_eq!((rows(state), rows(secrets)), (0, 0));
}
