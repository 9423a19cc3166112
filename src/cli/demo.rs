//! `narakim demo`: the vault end to end on a throwaway directory, showing
//! each step as the command an operator would type.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use narakim::redact::Scrubber;
use narakim::vault::{
    KeySource, Scope, SecretName, SecretResolver, SecretValue, Vault, VaultConfig, store,
};

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

pub fn run(dir: Option<PathBuf>) -> Result<()> {
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
    let data_dir = root.join("data");
    let key_file = root.join("config/master.key");
    let config = VaultConfig::new(data_dir.clone(), KeySource::File(key_file.clone()));
    let flags = format!(
        "--data-dir {} --key-file {}",
        data_dir.display(),
        key_file.display()
    );
    println!("narakim demo: a throwaway vault in {}", root.display());

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

    for (scope, name, value) in SECRETS {
        let scope = match *scope {
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
            &SecretValue::new((*value).to_owned())?,
        )?;
        println!("  saved {name} for {scope}; the value is never shown again");
    }

    step("narakim secret list --bot greeter");
    for s in vault.list_secrets(&Scope::Bot("greeter".into()))? {
        println!(
            "  {:<24} {:<16} fingerprint {}  {}",
            s.name,
            s.scope.to_string(),
            s.fingerprint,
            if s.effective {
                "resolves"
            } else {
                "overridden by the bot secret"
            }
        );
    }

    println!("\n# The bot secret overrides the team secret of the same name:");
    let snapshot = vault.snapshot_for_bot("greeter")?;
    let token = snapshot.resolve("DISCORD_BOT_TOKEN")?;
    println!(
        "  greeter's DISCORD_BOT_TOKEN is the bot's own: {}; printing it shows {token}",
        token.matches(SECRETS[2].2.as_bytes())
    );
    drop(token);
    match snapshot.resolve("WEBHOOK_SECRET") {
        Err(e) => println!("  an unconfigured name fails clearly: {e}"),
        Ok(_) => bail!("WEBHOOK_SECRET should not resolve"),
    }

    println!(
        "\n# Scrubbing: a log that leaks the bot's secrets, raw and encoded, written 7 bytes at a time:"
    );
    step("narakim scrub --bot greeter < leaky.log");
    let leaky = leaky_log();
    let scrubber = Scrubber::for_snapshot(&snapshot)?;
    let mut stream = scrubber.stream();
    let mut scrubbed = Vec::new();
    for piece in leaky.as_bytes().chunks(7) {
        stream.write(piece, &mut scrubbed);
    }
    stream.finish(&mut scrubbed);
    for line in String::from_utf8_lossy(&scrubbed).lines() {
        println!("  {line}");
    }
    println!(
        "  (a Discord token begins with the base64 of the application id, so a token's replacement names both)"
    );

    step("narakim key rotate");
    let report = vault.rotate_key(|_, _| {})?;
    println!(
        "  master key {} -> {}; {} record(s) re-wrapped, verified, previous key shredded",
        report.old_key, report.new_key, report.rewrapped
    );
    step("narakim key verify");
    let verify = vault.verify()?;
    println!(
        "  {} secret(s) checked, {} failed",
        verify.checked,
        verify.failed.len()
    );

    println!(
        "\n# Encryption at rest: search the database files for every value, raw, hex and base64:"
    );
    drop(vault);
    let hits = scan(&data_dir)?;
    println!(
        "  {} occurrence(s) in {}",
        hits,
        store::database_files(&data_dir)
            .iter()
            .filter(|p| p.exists())
            .map(|p| p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if hits > 0 {
        bail!("a planted value was found in the database files");
    }

    step("narakim audit list");
    let vault = Vault::open(config)?;
    for e in vault.audit(None)? {
        println!(
            "  {:<17} {:<16} {}",
            e.action,
            e.owner.as_deref().unwrap_or("-"),
            e.name.as_deref().unwrap_or(&e.detail)
        );
    }
    println!("\nDone. Explore it yourself, for example:\n  narakim {flags} secret list --team ops");
    Ok(())
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

/// Counts occurrences of every demo value, raw, as lowercase hex and as
/// base64, in the database, its WAL and its journal.
fn scan(data_dir: &Path) -> Result<usize> {
    use base64::Engine as _;
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for (_, _, value) in SECRETS {
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
    for file in store::database_files(data_dir) {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for needle in &needles {
            hits += bytes.windows(needle.len()).filter(|w| w == needle).count();
        }
    }
    Ok(hits)
}
