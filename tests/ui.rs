//! The web UI in a real browser: `tests/ui/flows.mjs` (Playwright driving
//! Debian's Chromium headless) against the real `narakim serve`, on a vault
//! prepared here. Afterwards the server's log and every database file are
//! searched for the canary values the browser typed.
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium`) and `npm ci` in
//! `tests/ui`; `.ci/run` installs both. Without them the test fails under
//! CI (or with `NARAKIM_BROWSER_TESTS=1`) and is skipped, loudly, elsewhere.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::guests::component;
use common::server::Server;
use common::{TestVault, assert_absent};

/// What the browser types: the team secret, the bot's token, the team
/// secret's second version, a stale tab's value (never stored) and the
/// webhook trigger's key; and the courier bot's credential, which its
/// extension never holds and no page may show.
const CANARIES: [&str; 6] = [
    "canary-team-APPID-q8Lw2Xz4Pk7Hm3Vn",
    "canary-bot-TOKEN-R3vN8mQ1sY6TjB0c",
    "canary-team-APPID2-d5Fg7Hj9Kl1Zx3",
    "canary-stale-TAB-w2Er4Ty6Ui8Op0As",
    "canary-hook-KEY-z7Xc5Vb3Nm1Qa9Sd",
    "canary-courier-CRED-h4Jk6Lm8Nb0Vc2",
];

const CAPS: [&str; 6] = [
    "secrets:write",
    "secrets:list",
    "bots:deploy",
    "bots:pause",
    "runs:start",
    "executions:read",
];

fn browser_ready(ui: &Path) -> Result<PathBuf, String> {
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    if !chromium.exists() {
        return Err(format!(
            "{} is missing: `apt-get install chromium`",
            chromium.display()
        ));
    }
    if !ui.join("node_modules/playwright-core").exists() {
        return Err(format!(
            "playwright-core is missing: `npm ci` in {}",
            ui.display()
        ));
    }
    Ok(chromium)
}

#[test]
fn the_web_ui_in_a_real_browser() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let chromium = match browser_ready(&ui) {
        Ok(c) => c,
        Err(missing) => {
            let required = std::env::var_os("CI").is_some()
                || std::env::var_os("NARAKIM_BROWSER_TESTS").is_some();
            assert!(
                !required,
                "the browser tests cannot run: {missing} (bash .ci/run installs both)"
            );
            eprintln!("SKIPPED the browser tests: {missing} (bash .ci/run installs both)");
            return;
        }
    };

    let v = TestVault::new();
    v.run(&["team", "create", "ops"]).ok();
    v.run(&["bot", "create", "greeter", "--team", "ops"]).ok();
    v.run(&["bot", "create", "sibling", "--team", "ops"]).ok();
    v.run(&[
        "extension",
        "install",
        component("well-behaved").to_str().unwrap(),
    ])
    .ok();
    // Built against 0.2.0 and holding placeholders only: the Extensions
    // page marks the two kinds apart.
    v.run(&[
        "extension",
        "install",
        component("placeholders").to_str().unwrap(),
    ])
    .ok();
    // A sibling bot whose hostile node writes text meant to become markup.
    v.run(&[
        "extension",
        "install",
        component("hostile").to_str().unwrap(),
    ])
    .ok();
    v.set("API_TOKEN", "--bot", "sibling", "sibling-token-0123456789");
    v.set(
        "OTHER_BOTS_SECRET",
        "--bot",
        "sibling",
        "sibling-other-0123456789",
    );
    let graph = v.root.path().join("hostile.json");
    std::fs::write(
        &graph,
        r#"{"nodes": [{"id": "forge", "extension": "hostile", "config": {"mode": "markup"}}]}"#,
    )
    .unwrap();
    v.run(&[
        "bot",
        "deploy",
        "sibling",
        "--graph",
        graph.to_str().unwrap(),
    ])
    .ok();
    v.run(&["run", "sibling"]).fails_with("failed");

    // A bot whose 0.2.0 node sends its credential to a loopback stand-in:
    // the request record shows ‹API_TOKEN› and copies as curl.
    let stand_in = common::recorder::Recorder::start(false);
    v.run(&["bot", "create", "courier", "--team", "ops"]).ok();
    v.run(&["extension", "install", component("thief").to_str().unwrap()])
        .ok();
    v.set("API_TOKEN", "--bot", "courier", CANARIES[5]);
    let courier = v.root.path().join("courier.json");
    std::fs::write(
        &courier,
        r#"{"nodes": [{"id": "send", "extension": "thief", "config": {"mode": "header"}}]}"#,
    )
    .unwrap();
    v.run(&[
        "bot",
        "deploy",
        "courier",
        "--graph",
        courier.to_str().unwrap(),
    ])
    .ok();
    v.run(&[
        "run",
        "courier",
        "--upstream",
        &format!("api.example.test=http://127.0.0.1:{}", stand_in.port),
    ])
    .ok();
    let sent = String::from_utf8_lossy(&stand_in.requests().concat()).into_owned();
    assert!(
        sent.contains(&format!("authorization: Bearer {}", CANARIES[5])),
        "the host did not put the credential in: {sent}"
    );

    let mut team_args = vec!["--team", "ops", "--can"];
    team_args.extend(CAPS);
    let team_token = v.token(&team_args);
    let mut bot_args = vec!["--team", "ops", "--bot", "greeter", "--can"];
    bot_args.extend(CAPS);
    let bot_token = v.token(&bot_args);
    let admin_token = v.token(&["--admin", "--can", "audit:read"]);

    let s = Server::start(&v, &[]);
    let shots = match std::env::var_os("NARAKIM_UPDATE_SCREENSHOTS") {
        Some(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots"),
    };
    let out = Command::new("node")
        .arg(ui.join("flows.mjs"))
        .current_dir(&ui)
        .env("NARAKIM_UI_BASE", format!("http://{}", s.addr))
        .env("NARAKIM_UI_TEAM_TOKEN", &team_token)
        .env("NARAKIM_UI_BOT_TOKEN", &bot_token)
        .env("NARAKIM_UI_ADMIN_TOKEN", &admin_token)
        .env("NARAKIM_UI_SHOTS", &shots)
        .env("NARAKIM_UI_CANARIES", CANARIES.join(","))
        .env("CHROMIUM", &chromium)
        .output()
        .expect("running node");
    let (_, log) = s.stop();
    assert!(
        out.status.success(),
        "the browser flows failed:\n{}\n{}\nserver log:\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // What the browser typed is nowhere on the server side but sealed.
    let mut files = v.file_bytes();
    for name in ["engine.db", "engine.db-wal", "engine.db-shm"] {
        let path = v.data_dir.join(name);
        files.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
    }
    files.push((PathBuf::from("the server's log"), log.into_bytes()));
    for canary in CANARIES {
        assert_absent(&files, canary);
    }
    // The stale tab's value was never stored; the others were, sealed.
    let secrets = v.run(&["secret", "list", "--team", "ops"]).ok().to_owned();
    assert!(secrets.contains("APP_ID"), "{secrets}");
}
