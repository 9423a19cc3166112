//! `narakim extension inspect|run`: the extension author's loop.

use std::path::Path;

use anyhow::{Context, Result, bail};
use narakim::redact::{printable, printable_lines};
use narakim::runtime::{EgressEvent, Limits, Runtime, Upstream};
use narakim::vault::{Scope, Vault, VaultConfig};

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
    vault: &mut Vault,
    path: &Path,
    bot: &str,
    config_json: &str,
    input_json: &str,
    upstreams: Vec<Upstream>,
    limits: Limits,
) -> Result<()> {
    let snapshot = vault.snapshot(&Scope::Bot(bot.to_owned()))?;
    let runtime = runtime(vault.config(), limits)?.with_upstreams(upstreams);
    let tokio = tokio()?;
    let extension = tokio.block_on(runtime.load(path))?;
    let guard = runtime
        .guard(&snapshot, [(extension.description(), config_json)])
        .context("the bot's secrets cannot all be decrypted, so nothing the extension prints could be scrubbed; run `narakim key verify`")?;
    let node = "cli";
    let outcome = tokio.block_on(runtime.invoke(&extension, node, &guard, config_json, input_json));
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            if let Some(captured) = e.captured() {
                print_captured(
                    &captured.stdout,
                    &captured.stderr,
                    &captured.logs,
                    &captured.egress,
                    captured.egress_dropped,
                );
                eprintln!("secrets read: {}", names_or_none(&captured.secrets_read));
            }
            bail!("{}", printable(&e.to_string()));
        }
    };
    print_captured(
        &outcome.stdout,
        &outcome.stderr,
        &outcome.logs,
        &outcome.egress,
        outcome.egress_dropped,
    );
    eprintln!("secrets read: {}", names_or_none(&outcome.secrets_read));
    match outcome.result {
        Ok(output) => {
            println!("{output}");
            Ok(())
        }
        Err(message) => bail!(
            "extension {}, node {node} returned an error: {}",
            extension.name(),
            printable(&message)
        ),
    }
}

/// A guest's streams, logs and requests on stderr, one record a line:
/// nothing the guest wrote can start a line or steer the terminal.
pub fn print_captured(
    stdout: &str,
    stderr: &str,
    logs: &[(String, String)],
    egress: &[EgressEvent],
    egress_dropped: usize,
) {
    for line in printable_lines(stdout) {
        eprintln!("[stdout] {line}");
    }
    for line in printable_lines(stderr) {
        eprintln!("[stderr] {line}");
    }
    for (level, message) in logs {
        eprintln!("[log {}] {}", printable(level), printable(message));
    }
    for line in egress_lines(egress, egress_dropped) {
        eprintln!("{line}");
    }
}

/// One printable line per recorded request, and one for those not recorded.
pub fn egress_lines(egress: &[EgressEvent], dropped: usize) -> Vec<String> {
    let mut lines: Vec<String> = egress
        .iter()
        .map(|event| match &event.refused {
            None => format!(
                "[egress] {} {}: sent",
                printable(&event.method),
                printable(&event.host)
            ),
            Some(reason) => format!(
                "[egress] {} {}: REFUSED: {}",
                printable(&event.method),
                printable(&event.host),
                printable(reason)
            ),
        })
        .collect();
    if dropped > 0 {
        lines.push(format!(
            "[egress] {dropped} more requests not recorded (past the record limit)"
        ));
    }
    lines
}
