//! Snapshots of an unchanged database reuse the sealed records read last
//! time; every kind of change must still show up in the next snapshot.

mod common;

use common::TestVault;
use narakim::vault::{Scope, SecretName, SecretResolver, SecretValue, Vault};

fn value_of(vault: &mut Vault, bot: &str, name: &str) -> Option<bool> {
    let snapshot = vault.snapshot_for_bot(bot).ok()?;
    snapshot
        .resolve(name)
        .ok()
        .map(|v| v.matches(b"second-value-2222"))
}

fn set(vault: &mut Vault, scope: &Scope, name: &str, value: &str) {
    vault
        .set_secret(
            scope,
            &SecretName::new(name).unwrap(),
            &SecretValue::new(value.into()).unwrap(),
        )
        .unwrap();
}

#[test]
fn changes_through_this_connection_reach_the_next_snapshot() {
    let v = TestVault::new();
    let mut vault = v.open();
    vault.create_team("ops").unwrap();
    vault.create_bot("greeter", "ops").unwrap();
    let bot = Scope::Bot("greeter".into());
    set(&mut vault, &bot, "TOKEN", "first-value-1111");
    assert_eq!(value_of(&mut vault, "greeter", "TOKEN"), Some(false));
    // Same state: the cached records resolve the same.
    assert_eq!(value_of(&mut vault, "greeter", "TOKEN"), Some(false));

    set(&mut vault, &bot, "TOKEN", "second-value-2222");
    assert_eq!(value_of(&mut vault, "greeter", "TOKEN"), Some(true));

    vault.rotate_key(|_, _| {}).unwrap();
    assert_eq!(value_of(&mut vault, "greeter", "TOKEN"), Some(true));

    vault
        .delete_secret(&bot, &SecretName::new("TOKEN").unwrap())
        .unwrap();
    assert_eq!(value_of(&mut vault, "greeter", "TOKEN"), None);
    assert!(vault.snapshot_for_bot("greeter").unwrap().is_empty());
}

#[test]
fn changes_through_another_connection_reach_the_next_snapshot() {
    let v = TestVault::new();
    let mut writer = v.open();
    writer.create_team("ops").unwrap();
    writer.create_bot("greeter", "ops").unwrap();
    let bot = Scope::Bot("greeter".into());
    set(&mut writer, &bot, "TOKEN", "first-value-1111");

    let mut reader = v.open();
    assert_eq!(value_of(&mut reader, "greeter", "TOKEN"), Some(false));
    set(&mut writer, &bot, "TOKEN", "second-value-2222");
    assert_eq!(value_of(&mut reader, "greeter", "TOKEN"), Some(true));

    // Through the CLI, another process: a team secret appears.
    v.set("SHARED", "--team", "ops", "team-value-3333");
    let snapshot = reader.snapshot_for_bot("greeter").unwrap();
    assert!(
        snapshot
            .resolve("SHARED")
            .unwrap()
            .matches(b"team-value-3333")
    );

    // And the bot's deletion, by another process.
    v.run(&["bot", "delete", "greeter"]).ok();
    assert!(reader.snapshot_for_bot("greeter").is_err());
}
