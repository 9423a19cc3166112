//! `narakim extension inspect|run`: the extension author's loop.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use narakim::runtime::{Limits, Runtime, Upstream};
use narakim::vault::{Scope, SecretResolver, Vault, VaultConfig};

/// A tokio runtime for one command.
pub fn tokio() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .enable_io()
        .build()
        .context("starting the async runtime")
}

/// The wasmtime runtime, caching compiled components in the data directory
/// when one exists.
fn runtime(config: &VaultConfig, limits: Limits) -> Result<Runtime> {
    let cache = config
        .data_dir
        .is_dir()
        .then(|| config.data_dir.join("cache"));
    Ok(Runtime::new(limits, cache)?)
}

/// Secret names as a list, or `none`.
pub fn names_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// `HOST=URL` mappings, one per line; blank lines and `#` comments skipped.
pub fn upstream_file(path: &Path) -> Result<Vec<Upstream>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the upstream file {}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| (i, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(i, line)| {
            line.parse::<Upstream>()
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

pub fn inspect(config: &VaultConfig, path: &Path) -> Result<()> {
    let runtime = runtime(config, Limits::default())?;
    let extension = tokio()?.block_on(runtime.load(path))?;
    let mut shown = serde_json::to_value(extension.description())?;
    shown["sha256"] = extension.sha256().into();
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

/// `JSON` as is, or `@FILE` for a file's contents; must parse as JSON.
pub fn json_arg(what: &str, arg: Option<&str>) -> Result<String> {
    let text = match arg {
        None => return Ok("{}".into()),
        Some(a) => match a.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("reading the {what} file {file}"))?,
            None => a.to_owned(),
        },
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
        bail!("the {what} is not valid JSON ({e}); pass JSON, or @FILE to read it from a file");
    }
    Ok(text)
}

pub fn run(
    vault: &Vault,
    path: &Path,
    bot: &str,
    config_json: &str,
    input_json: &str,
    upstreams: Vec<Upstream>,
    limits: Limits,
) -> Result<()> {
    let snapshot: Arc<dyn SecretResolver> = Arc::new(vault.snapshot(&Scope::Bot(bot.to_owned()))?);
    let runtime = runtime(vault.config(), limits)?.with_upstreams(upstreams);
    let tokio = tokio()?;
    let extension = tokio.block_on(runtime.load(path))?;
    let node = "cli";
    let outcome =
        tokio.block_on(runtime.invoke(&extension, node, snapshot, config_json, input_json));
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            for line in e.stderr().lines() {
                eprintln!("[stderr] {line}");
            }
            return Err(e.into());
        }
    };
    for line in outcome.stdout.lines() {
        eprintln!("[stdout] {line}");
    }
    for line in outcome.stderr.lines() {
        eprintln!("[stderr] {line}");
    }
    for (level, message) in &outcome.logs {
        eprintln!("[log {level}] {message}");
    }
    for event in &outcome.egress {
        match &event.refused {
            None => eprintln!("[egress] {} {}: sent", event.method, event.host),
            Some(reason) => eprintln!(
                "[egress] {} {}: REFUSED: {reason}",
                event.method, event.host
            ),
        }
    }
    eprintln!("secrets read: {}", names_or_none(&outcome.secrets_read));
    match outcome.result {
        Ok(output) => {
            println!("{output}");
            Ok(())
        }
        Err(message) => bail!(
            "extension {}, node {node} returned an error: {message}",
            extension.name()
        ),
    }
}
