//! API tokens through the real binary: issued once, stored as a keyed
//! digest only, listed without the token, revoked; every bad input refused
//! with a clear error and nothing changed.

mod common;

use common::{TestVault, assert_absent};
use narakim::vault::access::{AuthError, Capability, TokenScope};

fn vault() -> TestVault {
    let v = TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["team", "create", "other"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    v.run(&["bot", "create", "stranger", "--team", "other"])
        .ok();
    v
}

/// Runs `token create ARGS…` and returns the token it printed.
fn create(v: &TestVault, args: &[&str]) -> String {
    let args: Vec<&str> = ["token", "create"].iter().chain(args).copied().collect();
    v.run(&args).ok().trim().to_owned()
}

#[test]
fn a_token_is_printed_once_and_only_its_digest_is_stored() {
    let v = vault();
    let out = v.run(&[
        "token",
        "create",
        "--team",
        "ops",
        "--bot",
        "greeter",
        "--can",
        "secrets:write",
        "runs:start",
        "--expires",
        "30d",
    ]);
    let token = out.ok().trim().to_owned();
    assert!(token.starts_with("nrk_") && token.len() == 53, "{out:?}");
    assert!(out.stderr.contains("bot greeter (team ops)"), "{out:?}");
    assert!(out.stderr.contains("(secrets:write runs:start)"), "{out:?}");
    assert!(out.stderr.contains("shown only now"), "{out:?}");

    let list = v.run(&["token", "list"]);
    let listed = list.ok();
    assert!(
        !listed.contains(&token[4..]),
        "the list shows the token: {listed}"
    );
    assert!(listed.contains("bot greeter (team ops)"), "{listed}");
    assert!(listed.contains("never"), "not used yet: {listed}");
    // Nowhere on disk, in any encoding: not in the database, its WAL, or
    // the audit trail.
    assert_absent(&v.file_bytes(), &token);

    // The library accepts it, and records its use.
    let mut vault = v.open();
    let info = vault.authenticate(&token).unwrap();
    assert_eq!(
        info.scope,
        TokenScope::Bot {
            team: "ops".into(),
            bot: "greeter".into()
        }
    );
    assert!(info.can(Capability::RunsStart) && !info.can(Capability::AuditRead));
    assert!(
        v.run(&["token", "list"]).ok().matches("never").count() < listed.matches("never").count()
    );

    // It survives a master key rotation: the digest key does not depend
    // on the master key.
    drop(vault);
    v.run(&["key", "rotate"]).ok();
    assert!(v.open().authenticate(&token).is_ok());

    // Revoked: refused from now on, and the audit trail names the id.
    let id = info.id;
    assert!(v.run(&["token", "revoke", &id]).ok().contains(&id));
    assert!(matches!(
        v.open().authenticate(&token),
        Err(AuthError::Unknown)
    ));
    let audit = v.run(&["audit", "list"]);
    assert!(audit.ok().contains("token.create") && audit.ok().contains("token.revoke"));
    assert!(audit.ok().contains(&id));
}

#[test]
fn malformed_unknown_and_expired_tokens_are_refused() {
    let v = vault();
    let token = create(
        &v,
        &["--team", "ops", "--can", "secrets:list", "--expires", "1s"],
    );
    let mut vault = v.open();
    let typo = format!(
        "{}{}",
        &token[..20],
        if &token[20..21] == "a" { "b" } else { "a" }
    );
    let typo = format!("{typo}{}", &token[21..]);
    assert!(matches!(
        vault.authenticate(&typo),
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(
        vault.authenticate("Bearer x"),
        Err(AuthError::Malformed(_))
    ));
    // Well formed, never issued.
    let stranger = narakim::vault::token::ApiToken::generate().unwrap();
    assert!(matches!(
        vault.authenticate(stranger.expose()),
        Err(AuthError::Unknown)
    ));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(matches!(
        vault.authenticate(&token),
        Err(AuthError::Expired { .. })
    ));
}

#[test]
fn deleting_a_bot_deletes_its_tokens() {
    let v = vault();
    let token = create(
        &v,
        &["--team", "ops", "--bot", "greeter", "--can", "runs:start"],
    );
    v.run(&["bot", "delete", "greeter"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    assert!(matches!(
        v.open().authenticate(&token),
        Err(AuthError::Unknown)
    ));
    assert!(v.run(&["token", "list"]).ok().contains("No tokens yet"));
}

#[test]
fn bad_token_commands_fail_clearly_and_change_nothing() {
    let v = vault();
    v.run(&["token", "create", "--admin"]).ok();
    let before = v.dump();
    let cases: &[(&[&str], &str)] = &[
        (&["token", "create", "--team", "ops"], "--can"),
        (
            &["token", "create", "--team", "ops", "--can", "secrets:read"],
            "unknown capability \"secrets:read\"",
        ),
        (
            &[
                "token",
                "create",
                "--team",
                "ops",
                "--can",
                "secrets:write",
                "--expires",
                "1y",
            ],
            "is not a duration",
        ),
        (
            &[
                "token",
                "create",
                "--team",
                "ops",
                "--can",
                "secrets:write",
                "--expires",
                "0d",
            ],
            "above 0",
        ),
        (
            &[
                "token",
                "create",
                "--team",
                "nope",
                "--can",
                "secrets:write",
            ],
            "team \"nope\" does not exist",
        ),
        (
            &[
                "token",
                "create",
                "--team",
                "ops",
                "--bot",
                "stranger",
                "--can",
                "runs:start",
            ],
            "bot \"stranger\" is not in team \"ops\"",
        ),
        (
            &[
                "token",
                "create",
                "--team",
                "ops",
                "--bot",
                "ghost",
                "--can",
                "runs:start",
            ],
            "bot \"ghost\" does not exist",
        ),
        (
            &["token", "create", "--bot", "greeter", "--can", "runs:start"],
            "--team",
        ),
        (
            &["token", "create", "--admin", "--team", "ops"],
            "cannot be used with",
        ),
        (
            &["token", "revoke", "tok_0000000000000000"],
            "no token \"tok_0000000000000000\"",
        ),
    ];
    for (args, needle) in cases {
        v.run(args).fails_with(needle);
        assert_eq!(v.dump(), before, "{args:?} changed something");
    }
}
