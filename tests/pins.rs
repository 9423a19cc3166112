//! A deployed bot runs exactly what deploy checked: each node is pinned to
//! the extension version and content hash it was checked against. Through
//! the real binary.

mod common;

use common::TestVault;
use common::guests::component;

fn vault() -> TestVault {
    let v = TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    v.set("API_TOKEN", "--bot", "greeter", "tok-pins-0123456789");
    v.set("APP_ID", "--team", "ops", "app-pins-0123456789");
    v.set("SIGNING_KEY", "--bot", "greeter", "sig-pins-0123456789");
    v
}

fn install(v: &TestVault, guest: &str) -> String {
    let path = component(guest);
    v.run(&["extension", "install", path.to_str().unwrap()])
        .ok()
        .to_owned()
}

fn deploy(v: &TestVault) -> common::Run {
    let file = v.root.path().join("graph.json");
    std::fs::write(
        &file,
        r#"{"name":"pinned","nodes":[{"id":"a","extension":"well-behaved","config":{}}]}"#,
    )
    .unwrap();
    v.run(&[
        "bot",
        "deploy",
        "greeter",
        "--graph",
        file.to_str().unwrap(),
    ])
}

#[test]
fn installing_a_new_version_changes_no_deployed_bot() {
    let v = vault();
    install(&v, "well-behaved");
    let deployed = deploy(&v);
    assert!(
        deployed
            .ok()
            .contains("node a: pinned to well-behaved@0.1.0"),
        "{deployed:#?}"
    );
    // v2 widens its hosts; the deployed bot must not pick it up.
    install(&v, "well-behaved-v2");
    let run = v.run(&["run", "greeter"]);
    assert!(run.ok().contains("well-behaved@0.1.0"), "{run:#?}");
    assert!(!run.stdout.contains("0.2.0"), "{run:#?}");
    let status = v.run(&["bot", "status", "greeter"]);
    assert!(
        status.ok().contains("node a: pinned to well-behaved@0.1.0"),
        "{status:#?}"
    );

    // Moving to v2 is a redeploy, which shows what changes.
    let redeployed = deploy(&v);
    let out = redeployed.ok();
    assert!(
        out.contains("node a: pinned to well-behaved@0.2.0"),
        "{out}"
    );
    assert!(
        out.contains("Changes from the previous deployment"),
        "{out}"
    );
    assert!(
        out.contains("well-behaved@0.1.0") && out.contains("-> well-behaved@0.2.0"),
        "{out}"
    );
    assert!(out.contains("+ allowed host api2.example.test"), "{out}");
    assert!(out.contains("+ required secret SIGNING_KEY"), "{out}");
    let run = v.run(&["run", "greeter"]);
    assert!(run.ok().contains("well-behaved@0.2.0"), "{run:#?}");

    // The pinned version cannot be removed; the other one can.
    v.run(&["extension", "remove", "well-behaved@0.2.0"])
        .fails_with("pinned by the deployed graph of bot greeter");
    v.run(&["extension", "remove", "well-behaved"])
        .fails_with("NAME@VERSION");
    v.run(&["extension", "remove", "well-behaved@0.1.0"]).ok();
    assert!(!v.data_dir.join("extensions/well-behaved/0.1.0").exists());
    v.run(&["extension", "remove", "well-behaved@0.1.0"])
        .fails_with("is not installed");
    // The bot still runs its pinned v2.
    v.run(&["run", "greeter"]).ok();
}

#[test]
fn a_pinned_component_that_changed_on_disk_fails_the_run_clearly() {
    let v = vault();
    install(&v, "well-behaved");
    deploy(&v).ok();
    let dir = v.data_dir.join("extensions/well-behaved/0.1.0");
    let stored = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wasm"))
        .unwrap();
    // Swap in other bytes under the same name.
    std::fs::write(
        &stored,
        std::fs::read(component("well-behaved-v2")).unwrap(),
    )
    .unwrap();
    let run = v.run(&["run", "greeter"]);
    run.fails_with("failed");
    assert!(run.all_output().contains("was modified"), "{run:#?}");
}
