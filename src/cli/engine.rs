//! The engine's commands: install extensions, see and deploy a bot's graph,
//! pause and resume it, run it, and read executions.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use narakim::engine::executor::{BotStatus, Engine, ExecutionReport};
use narakim::engine::graph::{ExtensionRef, Graph};
use narakim::engine::registry::Registry;
use narakim::engine::store::{EngineStore, ExecutionId, ExecutionStatus, NodeStatus};
use narakim::redact::{printable, printable_lines};
use narakim::runtime::{Limits, Runtime, Upstream};
use narakim::vault::{Scope, Vault, VaultConfig, format_time};

use super::extension::{egress_lines, names_or_none, tokio};

/// The runtime with its compiled-component cache in the data directory.
fn runtime(config: &VaultConfig, limits: Limits, upstreams: Vec<Upstream>) -> Result<Runtime> {
    Ok(Runtime::new(limits, Some(config.data_dir.join("cache")))?.with_upstreams(upstreams))
}

/// An engine over `vault` and the data directory's `engine.db`.
pub fn engine(vault: Vault, limits: Limits, upstreams: Vec<Upstream>) -> Result<Arc<Engine>> {
    let runtime = Arc::new(runtime(vault.config(), limits, upstreams)?);
    let store = EngineStore::open_in(&vault.config().data_dir, &vault.config().database)?;
    Ok(Arc::new(Engine::new(runtime, vault, store)))
}

pub fn install(config: &VaultConfig, path: &Path) -> Result<()> {
    let runtime = runtime(config, Limits::default(), Vec::new())?;
    let mut registry = Registry::new(
        EngineStore::open_in(&config.data_dir, &config.database)?,
        &runtime,
    );
    let report = tokio()?.block_on(registry.install(path))?;
    println!("{report}");
    Ok(())
}

pub fn list(config: &VaultConfig) -> Result<()> {
    let store = EngineStore::open_in(&config.data_dir, &config.database)?;
    let installed = store.extensions()?;
    if installed.is_empty() {
        println!(
            "No extensions installed. Install one with `narakim extension install PATH.wasm`."
        );
        return Ok(());
    }
    println!(
        "{:<28} {:<10} {:<14} {:<44} ALLOWED HOSTS",
        "NAME", "VERSION", "SHA256", "REQUIRED SECRETS"
    );
    for e in installed {
        let d = &e.description;
        let secrets: Vec<&str> = d.required_secrets.iter().map(|s| s.name.as_str()).collect();
        let mut hosts = d.allowed_hosts.join(", ");
        if !d.host_fields.is_empty() {
            hosts.push_str(&format!(" + hosts from {}", d.host_fields.join(", ")));
        }
        println!(
            "{:<28} {:<10} {:<14} {:<44} {}",
            e.name,
            e.version,
            &e.sha256[..12],
            if secrets.is_empty() {
                "-".to_owned()
            } else {
                secrets.join(", ")
            },
            if hosts.is_empty() { "-" } else { &hosts }
        );
    }
    Ok(())
}

pub fn show(config: &VaultConfig, reference: &str) -> Result<()> {
    let reference: ExtensionRef = reference.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = EngineStore::open_in(&config.data_dir, &config.database)?;
    let runtime = runtime(config, Limits::default(), Vec::new())?;
    let registry = Registry::new(store, &runtime);
    let e = registry.show(&reference.name, reference.version.as_deref())?;
    let d = &e.description;
    println!("{} {}", e.name, e.version);
    println!("  {}", printable(&d.description));
    println!("  sha256:       {}", e.sha256);
    println!("  installed:    {}", format_time(e.installed_at));
    println!("  built for:    narakim:extension@{}", d.wit);
    println!(
        "  reveals secrets: {}",
        if d.reveals_secrets {
            "yes: it imports secrets.get, so it holds plaintext values"
        } else {
            "no: it holds placeholders only, and the host puts values into requests"
        }
    );
    println!("  required secrets:");
    if d.required_secrets.is_empty() {
        println!("    (none)");
    }
    for s in &d.required_secrets {
        println!(
            "    {:<28} may be sent to: {}",
            s.name,
            hosts_text(&s.hosts)
        );
        if let Some(places) = injection_text(&s.injection) {
            println!("    {:<28} put into: {places}", "");
        }
    }
    if !d.secret_fields.is_empty() {
        println!("  config fields naming a secret:");
        for f in &d.secret_fields {
            println!(
                "    {:<28} may be sent to: {}",
                f.pointer,
                hosts_text(&f.hosts)
            );
            if let Some(places) = injection_text(&f.injection) {
                println!("    {:<28} put into: {places}", "");
            }
        }
    }
    println!(
        "  allowed hosts: {}",
        if d.allowed_hosts.is_empty() {
            "(none)".to_owned()
        } else {
            d.allowed_hosts.join(", ")
        }
    );
    if !d.host_fields.is_empty() {
        println!(
            "  also the host of config fields: {}",
            d.host_fields.join(", ")
        );
    }
    let versions: Vec<String> = registry
        .store()
        .versions(&e.name)?
        .into_iter()
        .map(|v| v.version)
        .collect();
    if versions.len() > 1 {
        println!("  installed versions: {}", versions.join(", "));
    }
    Ok(())
}

/// Where the host puts a credential's value, or `None` when nowhere was
/// declared (a secret read as plaintext).
fn injection_text(rule: &narakim::runtime::InjectionRule) -> Option<String> {
    let places = rule.places();
    (!places.is_empty()).then(|| printable(&places.join("; ")).into_owned())
}

fn hosts_text(hosts: &[String]) -> String {
    if hosts.is_empty() {
        "any allowed host".to_owned()
    } else {
        hosts.join(", ")
    }
}

pub fn status(engine: &Engine, bot: &str, graph: Option<&Path>) -> Result<()> {
    let graph = graph.map(Graph::load).transpose()?;
    let status = engine.status(bot, graph.as_ref())?;
    print_status(&status, graph.is_some());
    Ok(())
}

fn print_status(status: &BotStatus, from_file: bool) {
    println!(
        "bot {}: {}, {}",
        status.bot,
        if status.paused { "PAUSED" } else { "active" },
        match (&status.graph_version, from_file) {
            (_, true) => "showing the graph from --graph".to_owned(),
            (Some(v), false) => format!("deployed graph {}", &v[..12.min(v.len())]),
            (None, false) => "no graph deployed (pass --graph FILE to check one)".to_owned(),
        }
    );
    for (node, pin) in &status.pins {
        println!("  node {node}: pinned to {pin}");
    }
    for t in &status.triggers {
        if t.kind == "schedule" {
            println!(
                "  trigger {}: schedule, next fire {}",
                t.trigger,
                t.next_fire.as_deref().unwrap_or("once deployed")
            );
            continue;
        }
        println!(
            "  trigger {}: {} verified by {} with secret {}, {}",
            t.trigger,
            t.kind,
            t.verify,
            t.secret.as_deref().unwrap_or("(none)"),
            match &t.path {
                Some(path) => format!("listening at POST {path}"),
                None => "listening once deployed".to_owned(),
            }
        );
    }
    if status.secrets.is_empty() {
        return;
    }
    println!("{:<16} {:<32} {:<28} SOURCE", "NODE", "EXTENSION", "SECRET");
    for s in &status.secrets {
        println!(
            "{:<16} {:<32} {:<28} {}",
            s.node, s.extension, s.secret, s.source
        );
    }
    for s in status.missing() {
        eprintln!(
            "warning: node {:?} needs secret {}, which is not configured; set it with `narakim secret set {} --bot {}`",
            s.node, s.secret, s.secret, status.bot
        );
    }
}

pub fn deploy(engine: &Engine, bot: &str, graph: &Path) -> Result<()> {
    let graph = Graph::load(graph)?;
    let (deployment, changes) = engine.deploy_with_changes(bot, &graph)?;
    // The same trail entry as the API's deploy, with the CLI's actor.
    engine.vault().audit_action(
        "bot.deploy",
        Some(&Scope::Bot(bot.to_owned())),
        None,
        &format!("graph {}", deployment.graph_version),
    )?;
    println!(
        "Deployed graph {} to bot \"{bot}\" ({} node(s)). Run it with `narakim run {bot}`.",
        &deployment.graph_version[..12],
        graph.nodes.len()
    );
    for (node, pin) in &deployment.pins {
        println!("  node {node}: pinned to {pin}");
    }
    if !changes.is_empty() {
        println!("Changes from the previous deployment:");
        for line in changes {
            println!("  {line}");
        }
    }
    Ok(())
}

/// `narakim extension remove NAME@VERSION`: refused while a deployed bot
/// pins that version.
pub fn remove(config: &VaultConfig, reference: &str) -> Result<()> {
    let reference: ExtensionRef = reference.parse().map_err(anyhow::Error::msg)?;
    let Some(version) = reference.version else {
        bail!(
            "name the version to remove, as NAME@VERSION (for example {}@0.1.0); see `narakim extension show {}`",
            reference.name,
            reference.name
        );
    };
    let mut store = EngineStore::open_in(&config.data_dir, &config.database)?;
    store.remove_extension(&reference.name, &version)?;
    println!("Removed extension {}@{version}.", reference.name);
    Ok(())
}

pub fn set_paused(engine: &Engine, bot: &str, paused: bool) -> Result<()> {
    engine.set_paused(bot, paused)?;
    engine.vault().audit_action(
        if paused { "bot.pause" } else { "bot.resume" },
        Some(&Scope::Bot(bot.to_owned())),
        None,
        "",
    )?;
    if paused {
        println!("Paused bot \"{bot}\": it will not execute until `narakim bot resume {bot}`.");
    } else {
        println!("Resumed bot \"{bot}\".");
    }
    Ok(())
}

/// Runs the bot once and prints the execution; fails when it failed.
pub fn run(engine: &Arc<Engine>, bot: &str, input: &str) -> Result<()> {
    let trigger: serde_json::Value =
        serde_json::from_str(input).context("the input is not JSON")?;
    let report = tokio()?.block_on(engine.run(bot, trigger))?;
    print_report(&report);
    if report.status == ExecutionStatus::Failed {
        bail!(
            "execution {} of bot {bot} failed: {}; see `narakim executions show {}`",
            report.id,
            printable(&report.summary),
            report.id
        );
    }
    Ok(())
}

fn print_report(report: &ExecutionReport) {
    println!(
        "execution {} of bot {}: {} in {} ms ({})",
        report.id,
        report.bot,
        report.status.as_str(),
        report.duration_ms,
        printable(&report.summary)
    );
    for n in &report.nodes {
        println!(
            "  node {:<14} {:<9} {:>6} ms  {}  secrets read: {}",
            n.node,
            n.status.as_str(),
            n.duration_ms,
            n.extension,
            names_or_none(&n.secrets_read)
        );
        if let Some(output) = &n.output {
            println!("      output: {}", printable(&output.to_string()));
        }
        if let Some(error) = &n.error {
            println!("      error:  {}", printable(error));
        }
    }
}

pub fn executions_list(store: &EngineStore, bot: Option<&str>, limit: usize) -> Result<()> {
    let list = store.executions(bot, limit)?;
    if list.is_empty() {
        println!("No executions yet. Run a deployed bot with `narakim run BOT`.");
        return Ok(());
    }
    println!(
        "{:<22} {:<16} {:<10} {:<20} {:>8}  SUMMARY",
        "ID", "BOT", "STATUS", "STARTED", "MS"
    );
    for e in list {
        println!(
            "{:<22} {:<16} {:<10} {:<20} {:>8}  {}",
            e.id,
            e.bot,
            e.status.as_str(),
            format_time(e.started_at),
            e.finished_at
                .map_or("-".to_owned(), |f| (f - e.started_at).to_string()),
            printable(&e.summary.unwrap_or_default())
        );
    }
    Ok(())
}

pub fn executions_show(store: &EngineStore, id: &str, json: bool) -> Result<()> {
    let id = ExecutionId::from(id);
    let (execution, nodes) = store
        .execution(&id)?
        .ok_or_else(|| anyhow::anyhow!("no execution {id}; see `narakim executions list`"))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "execution": execution,
                "nodes": nodes,
            }))?
        );
        return Ok(());
    }
    println!("execution {}", execution.id);
    println!("  bot:      {}", execution.bot);
    println!("  graph:    {}", execution.graph_version);
    println!("  status:   {}", execution.status.as_str());
    println!("  started:  {}", format_time(execution.started_at));
    if let Some(f) = execution.finished_at {
        println!("  took:     {} ms", f - execution.started_at);
    }
    println!("  trigger:  {}", printable(&execution.trigger));
    if let Some(s) = &execution.summary {
        println!("  summary:  {}", printable(s));
    }
    for n in &nodes {
        println!();
        println!(
            "  node {} ({}): {} in {} ms",
            n.node,
            n.extension,
            n.status.as_str(),
            n.duration_ms
        );
        println!("    secrets read: {}", names_or_none(&n.secrets_read));
        for log in &n.logs {
            println!(
                "    [log {}] {}",
                printable(&log.level),
                printable(&log.message)
            );
        }
        for line in printable_lines(&n.stdout) {
            println!("    [stdout] {line}");
        }
        for line in printable_lines(&n.stderr) {
            println!("    [stderr] {line}");
        }
        for line in egress_lines(&n.egress, n.egress_dropped) {
            println!("    {line}");
        }
        if let Some(o) = &n.output {
            println!("    output: {}", printable(o));
        }
        if let Some(e) = &n.error {
            println!("    error:  {}", printable(e));
        }
    }
    if nodes.iter().any(|n| n.status == NodeStatus::Failed) {
        println!();
        println!("  (failed nodes make their dependents skip)");
    }
    Ok(())
}
