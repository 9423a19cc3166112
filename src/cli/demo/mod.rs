//! `narakim demo`: the main job, offline, on a throwaway directory. It
//! creates a vault, a team and a bot, stores demo secrets, installs the
//! sample extensions, starts loopback stand-ins of OpenRouter and Discord,
//! deploys a two-node bot (OpenRouter writes a message, Discord posts it),
//! runs it and prints the execution, whose logs show `[REDACTED:…]`
//! wherever a value would have appeared. Then it does the same as a
//! service (`service`): it starts `narakim serve`, calls its API, and sends
//! a signed GitHub webhook and a signed Discord slash command. Each step is
//! shown as the command an operator would type.

mod http;
mod service;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use narakim::engine::executor::Engine;
use narakim::engine::graph::Graph;
use narakim::engine::registry::Registry;
use narakim::engine::store::EngineStore;
use narakim::redact::Scrubber;
use narakim::runtime::{Limits, Runtime};
use narakim::standin::{Kind, Options, StandIn};
use narakim::vault::{KeySource, Scope, SecretName, SecretValue, Vault, VaultConfig, store};

/// Demo secrets: shaped like the real thing, obviously fake.
const SECRETS: &[(&str, &str, &str)] = &[
    ("team", "DISCORD_APPLICATION_ID", "1234567890123456789"),
    (
        "team",
        "DISCORD_BOT_TOKEN",
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.demo00.team-token-not-real-0000000000",
    ),
    (
        "bot",
        "DISCORD_BOT_TOKEN",
        "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.demo11.bot-token-not-real-11111111111",
    ),
    (
        "bot",
        "OPENROUTER_API_KEY",
        "sk-or-v1-demo0000000000000000000000000000000000000000000000000000",
    ),
];

/// The sample extensions the demo installs, by crate name.
const EXTENSIONS: &[&str] = &[
    "openrouter-chat",
    "discord-send-message",
    "discord-register-command",
    "discord-followup",
    "http-request",
];

/// The demo bot: OpenRouter writes a welcome, Discord posts it. `debug`
/// makes both extensions log every request header as sent, the way a
/// careless extension would: the execution record shows what is left.
const GRAPH: &str = r#"{
  "name": "greeter",
  "description": "Welcome new members with a message written by an LLM",
  "nodes": [
    {
      "id": "write",
      "extension": "openrouter-chat",
      "config": {
        "model": "openai/gpt-4o-mini",
        "system": "You write one short, friendly Discord message.",
        "prompt": "Welcome {{trigger.user}} to the {{trigger.server}} server.",
        "debug": true
      }
    },
    {
      "id": "post",
      "extension": "discord-send-message",
      "depends_on": ["write"],
      "config": {
        "channel_id": "876543210987654321",
        "content": "{{nodes.write.output.reply}}",
        "debug": true
      }
    }
  ]
}
"#;

pub fn run(dir: Option<PathBuf>, extensions: Option<PathBuf>) -> Result<()> {
    let root = match dir {
        Some(d) => {
            if d.exists() {
                bail!(
                    "{} already exists; the demo needs a fresh directory (omit --dir to use a temporary one)",
                    d.display()
                );
            }
            d
        }
        None => tempfile::Builder::new()
            .prefix("narakim-demo-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep(),
    };
    let components = sample_extensions(extensions)?;
    let data_dir = root.join("data");
    let key_file = root.join("config/master.key");
    let config = VaultConfig::new(data_dir.clone(), KeySource::File(key_file.clone()));
    let flags = format!(
        "--data-dir {} --key-file {}",
        data_dir.display(),
        key_file.display()
    );
    println!(
        "narakim demo: a throwaway vault and engine in {}",
        root.display()
    );

    step("narakim init");
    Vault::init(&config)?;
    let mut vault = Vault::open(config.clone())?;
    println!(
        "  vault {} sealed with master key {}",
        vault.vault_id(),
        vault.key_id()
    );
    println!(
        "  database {}  |  key {} (mode 0600, another directory)",
        data_dir.display(),
        key_file.display()
    );

    step("narakim team create ops");
    vault.create_team("ops")?;
    step("narakim bot create greeter --team ops");
    vault.create_bot("greeter", "ops")?;

    // Everything but the OpenRouter key, to show preflight first.
    for (scope, name, value) in &SECRETS[..3] {
        set_secret(&mut vault, scope, name, value)?;
    }

    // The stand-ins accept exactly the bot's credentials, as the real APIs
    // would; the runtime reaches them through operator upstream mappings.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (discord, openrouter) = {
        let _inside = tokio.enter();
        let discord = StandIn::start(
            Kind::Discord(narakim::standin::DiscordCredentials {
                bot_token: SECRETS[2].2.into(),
                application_id: SECRETS[0].2.into(),
            }),
            Options::default(),
        )?;
        let openrouter = StandIn::start(
            Kind::OpenRouter(narakim::standin::OpenRouterCredentials {
                api_key: SECRETS[3].2.into(),
            }),
            Options::default(),
        )?;
        (discord, openrouter)
    };
    println!(
        "\n# Loopback stand-ins of the two APIs (no network needed): {} and {}",
        discord.upstream_arg(),
        openrouter.upstream_arg()
    );

    let runtime = Arc::new(
        Runtime::new(Limits::default(), Some(data_dir.join("cache")))?
            .with_upstreams([discord.upstream(), openrouter.upstream()]),
    );
    let mut registry = Registry::open(&data_dir, &runtime)?;
    for name in EXTENSIONS {
        let path = components.join(format!("{}.wasm", name.replace('-', "_")));
        step(&format!("narakim extension install {}", path.display()));
        let report = tokio.block_on(registry.install(&path))?;
        println!("  {report}");
    }
    drop(registry);
    step("narakim extension list");
    super::engine::list(&config)?;

    let graph_file = root.join("greeter.json");
    std::fs::write(&graph_file, GRAPH).context("writing the demo graph")?;
    let graph = Graph::load(&graph_file)?;
    let engine = Arc::new(Engine::new(
        runtime.clone(),
        vault,
        EngineStore::open(&data_dir)?,
    ));

    step(&format!(
        "narakim bot status greeter --graph {}",
        graph_file.display()
    ));
    super::engine::status(&engine, "greeter", Some(&graph_file))?;
    step(&format!(
        "narakim bot deploy greeter --graph {}",
        graph_file.display()
    ));
    match engine.deploy("greeter", &graph) {
        Err(e) => println!(
            "  refused, as it should be:\n  {}",
            e.to_string().replace('\n', "\n  ")
        ),
        Ok(_) => bail!("deploy should be refused while OPENROUTER_API_KEY is missing"),
    }

    set_secret(
        &mut engine.vault(),
        SECRETS[3].0,
        SECRETS[3].1,
        SECRETS[3].2,
    )?;

    println!(
        "\n# A config that holds a secret's value is refused too (compared by keyed fingerprint):"
    );
    let pasted = GRAPH.replace("{{nodes.write.output.reply}}", SECRETS[2].2);
    let pasted_file = root.join("pasted-token.json");
    std::fs::write(&pasted_file, &pasted).context("writing the demo graph")?;
    step(&format!(
        "narakim bot deploy greeter --graph {}",
        pasted_file.display()
    ));
    match engine.deploy("greeter", &Graph::load(&pasted_file)?) {
        Err(e) => println!("  refused:\n  {}", e.to_string().replace('\n', "\n  ")),
        Ok(_) => bail!("a graph holding a token must be refused"),
    }

    step(&format!(
        "narakim bot deploy greeter --graph {}",
        graph_file.display()
    ));
    let deployment = engine.deploy("greeter", &graph)?;
    println!("  deployed graph {}", &deployment.graph_version[..12]);

    let trigger = serde_json::json!({"user": "Ada", "server": "Analytical Engines"});
    step(&format!("narakim run greeter --input '{trigger}'"));
    let report = tokio.block_on(engine.run("greeter", trigger))?;
    println!(
        "  execution {}: {} ({})",
        report.id,
        report.status.as_str(),
        report.summary
    );
    if report.status != narakim::engine::store::ExecutionStatus::Succeeded {
        bail!("the demo execution failed: {}", report.summary);
    }
    if let Some(posted) = discord.requests().last() {
        println!(
            "  the Discord stand-in received {} {} with the real token in its Authorization header: {}",
            posted.method,
            posted.path,
            posted.header("authorization") == Some(format!("Bot {}", SECRETS[2].2).as_str())
        );
    }

    step(&format!("narakim executions show {}", report.id));
    super::engine::executions_show(&engine.store(), report.id.as_str(), false)?;

    let exe_args = [
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
        "--key-file".to_owned(),
        key_file.display().to_string(),
    ];
    let values: Vec<&str> = SECRETS.iter().map(|(_, _, v)| *v).collect();
    let served = {
        let _inside = tokio.enter();
        service::run(
            &mut engine.vault(),
            &flags,
            &exe_args,
            &root,
            &discord,
            &openrouter,
            &values,
        )?
    };

    println!(
        "\n# Scrubbing outside an execution: a log that leaks the bot's secrets, raw and encoded, written 7 bytes at a time:"
    );
    step("narakim scrub --bot greeter < leaky.log");
    let snapshot = engine.vault().snapshot_for_bot("greeter")?;
    let scrubber = Scrubber::for_snapshot(&snapshot)?;
    let mut stream = scrubber.stream();
    let mut scrubbed = Vec::new();
    for piece in leaky_log().as_bytes().chunks(7) {
        stream.write(piece, &mut scrubbed);
    }
    stream.finish(&mut scrubbed);
    for line in String::from_utf8_lossy(&scrubbed).lines() {
        println!("  {line}");
    }

    step("narakim key rotate");
    let report = engine.vault().rotate_key(|_, _| {})?;
    println!(
        "  master key {} -> {}; {} record(s) re-wrapped, verified, previous key shredded",
        report.old_key, report.new_key, report.rewrapped
    );

    println!(
        "\n# Encryption at rest: search the vault and engine databases for every value, raw, hex and base64:"
    );
    drop(engine);
    let hits = scan(&data_dir, &served.planted)?;
    println!(
        "  {hits} occurrence(s) in vault.db, engine.db and their WAL files (the webhook secret and the interaction token too)"
    );
    if hits > 0 {
        bail!("a planted value was found in the database files");
    }
    drop((discord, openrouter));
    println!(
        "\nDone. Explore it yourself, for example:\n  narakim {flags} executions list\n  narakim {flags} bot status greeter\n  narakim {flags} serve"
    );
    Ok(())
}

fn set_secret(vault: &mut Vault, scope: &str, name: &str, value: &str) -> Result<()> {
    let scope = match scope {
        "team" => Scope::Team("ops".into()),
        _ => Scope::Bot("greeter".into()),
    };
    step(&format!(
        "printf %s \"$VALUE\" | narakim secret set {name} {}",
        scope.flag()
    ));
    vault.set_secret(
        &scope,
        &SecretName::new(name)?,
        &SecretValue::new(value.to_owned())?,
    )?;
    println!("  saved {name} for {scope}; the value is never shown again");
    Ok(())
}

/// The directory of the built sample extensions: `--extensions DIR`, or
/// `extensions/` of this source tree, built for wasm32-wasip2 first (a
/// no-op when up to date).
fn sample_extensions(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("extensions");
    if !source.join("Cargo.toml").exists() {
        bail!(
            "the demo builds the sample extensions from the source tree, which is not at {}; run it from a checkout (`cargo run -- demo`) or pass --extensions DIR with the built .wasm files",
            source.display()
        );
    }
    println!("building the sample extensions (extensions/, wasm32-wasip2) ...");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&source)
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--target",
            "wasm32-wasip2",
        ])
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .context("running cargo to build the sample extensions")?;
    if !status.success() {
        bail!(
            "building extensions/ for wasm32-wasip2 failed; is the target installed? `rustup target add wasm32-wasip2`"
        );
    }
    Ok(source.join("target/wasm32-wasip2/release"))
}

/// A log line per leak form: raw, `echo | base64`, hex, JSON, a URL.
fn leaky_log() -> String {
    use base64::Engine as _;
    let token = SECRETS[2].2;
    let key = SECRETS[3].2;
    let app = SECRETS[0].2;
    format!(
        "POST /channels/1/messages Authorization: Bot {token}\n\
         debug: echo $OPENROUTER_API_KEY | base64 -> {}\n\
         hexdump of the header: {}\n\
         request body: {}\n\
         GET https://example.invalid/hook?app={app}&key={key}\n",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}\n")),
        token
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        format_args!("{{\"token\":\"{token}\"}}"),
    )
}

fn step(command: &str) {
    println!("\n$ {command}");
}

/// Counts occurrences of every demo value and of `more`, raw, as lowercase hex and as
/// base64, in the database, its WAL and its journal.
fn scan(data_dir: &Path, more: &[String]) -> Result<usize> {
    use base64::Engine as _;
    let mut needles: Vec<Vec<u8>> = Vec::new();
    let values = SECRETS.iter().map(|(_, _, v)| *v);
    for value in values.chain(more.iter().map(String::as_str)) {
        needles.push(value.as_bytes().to_vec());
        needles.push(
            value
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        );
        needles.push(
            base64::engine::general_purpose::STANDARD
                .encode(value)
                .into_bytes(),
        );
    }
    let mut hits = 0;
    let mut files = store::database_files(data_dir);
    files.extend(["engine.db", "engine.db-wal", "engine.db-shm"].map(|f| data_dir.join(f)));
    for file in files {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for needle in &needles {
            hits += bytes.windows(needle.len()).filter(|w| w == needle).count();
        }
    }
    Ok(hits)
}
