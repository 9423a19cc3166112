//! Command-line interface: parses arguments, opens the vault, prints
//! results. The only place that uses `anyhow`.

mod demo;
mod engine;
mod extension;
mod scrub;
mod secret_input;
mod serve;
mod standin;
mod token;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use narakim::runtime::Limits;
use narakim::vault::{
    InitOutcome, Scope, SecretName, SetOutcome, Vault, VaultConfig, VaultError, format_time,
};

/// The vault's config from the global flags: where the data is, and where
/// the master key comes from.
fn vault_config(cli: &Cli) -> Result<VaultConfig> {
    let mut config = VaultConfig::from_env(cli.data_dir.clone(), cli.key_file.clone())?;
    if let Some(url) = &cli.database {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!(
                "--database (NARAKIM_DATABASE_URL) must be a PostgreSQL URL, postgres://USER:PASSWORD@HOST:PORT/DATABASE; leave it unset to use the SQLite files in the data directory"
            );
        }
        config = config.with_postgres(url)?;
    }
    if let Some(key_id) = &cli.kms_key_id {
        if cli.key_file.is_some() {
            bail!(
                "give either --kms-key-id (NARAKIM_KMS_KEY_ID) or --key-file (NARAKIM_KEY_FILE), not both: the master key comes from one place"
            );
        }
        let region = cli
            .kms_region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .filter(|r| !r.is_empty())
            .context("--kms-key-id needs the KMS key's region: give --kms-region (NARAKIM_KMS_REGION) or set AWS_REGION")?;
        let kms = narakim::vault::kms::KmsConfig::new(
            region,
            key_id.clone(),
            cli.kms_endpoint.clone(),
            narakim::vault::kms::AwsCredentials::from_env()?,
        )
        .and_then(narakim::vault::kms::KmsClient::new)?;
        config.key = narakim::vault::KeySource::Kms(std::sync::Arc::new(kms));
    }
    Ok(config)
}

/// narakim: an encrypted secrets vault and sandboxed runtime for bot extensions.
#[derive(Parser, Debug)]
#[command(name = "narakim", version, about, long_about = None)]
struct Cli {
    /// Directory of the vault database [default: $XDG_DATA_HOME/narakim]
    #[arg(long, global = true, env = "NARAKIM_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Master key file [default: $XDG_CONFIG_HOME/narakim/master.key]; or set NARAKIM_MASTER_KEY (base64)
    #[arg(long, global = true, env = "NARAKIM_KEY_FILE", value_name = "FILE")]
    key_file: Option<PathBuf>,

    /// Keep the vault, the engine's store and the run queue in PostgreSQL
    /// (postgres://USER:PASSWORD@HOST:PORT/DATABASE) instead of SQLite files
    /// in the data directory; every node of a cluster gives the same URL
    #[arg(long, global = true, env = "NARAKIM_DATABASE_URL", value_name = "URL")]
    database: Option<String>,

    /// Keep the master key in AWS KMS: the KMS key (id, ARN or alias/NAME)
    /// whose data key is the master key. Credentials come from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN
    #[arg(long, global = true, env = "NARAKIM_KMS_KEY_ID", value_name = "KEY")]
    kms_key_id: Option<String>,

    /// The KMS key's region [default: AWS_REGION, else AWS_DEFAULT_REGION]
    #[arg(long, global = true, env = "NARAKIM_KMS_REGION", value_name = "REGION")]
    kms_region: Option<String>,

    /// The KMS endpoint [default: https://kms.REGION.amazonaws.com]; http://
    /// only for a loopback stand-in
    #[arg(long, global = true, env = "NARAKIM_KMS_ENDPOINT", value_name = "URL")]
    kms_endpoint: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the vault database and its master key (never overwrites a key)
    Init,
    /// Manage teams
    #[command(subcommand)]
    Team(TeamCommand),
    /// Manage bots
    #[command(subcommand)]
    Bot(BotCommand),
    /// Store, list and delete secrets (values are write-only)
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Rotate or verify the master key
    #[command(subcommand)]
    Key(KeyCommand),
    /// Read the audit trail
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Issue, list and revoke API tokens (for `narakim serve`)
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Inspect and run extensions (WebAssembly components)
    #[command(subcommand)]
    Extension(ExtensionCommand),
    /// Run a bot's deployed graph once and print the execution
    Run {
        /// The bot to run
        bot: String,
        /// The trigger payload, available to templates as {{trigger.*}}: JSON, or @FILE
        #[arg(long, value_name = "JSON|@FILE")]
        input: Option<String>,
        #[command(flatten)]
        upstreams: UpstreamArgs,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List and show stored executions
    #[command(subcommand)]
    Executions(ExecutionsCommand),
    /// Print the OpenAPI 3.1 document of the `serve` API (as committed in docs/openapi.json)
    Openapi,
    /// Run the engine as a service: the HTTP API, a durable run queue and its workers
    Serve {
        #[command(flatten)]
        args: serve::ServeArgs,
        #[command(flatten)]
        upstreams: UpstreamArgs,
    },
    /// Run queued executions without serving HTTP: a node of a cluster on PostgreSQL (--database) that only works
    Worker {
        #[command(flatten)]
        args: serve::WorkerArgs,
        #[command(flatten)]
        upstreams: UpstreamArgs,
    },
    /// Copy stdin to stdout with every value of a bot's (or team's) secrets, raw or encoded, replaced by [REDACTED:NAME]
    Scrub {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Serve a loopback stand-in of Discord or OpenRouter that accepts the bot's credentials (for `extension run --upstream`)
    Standin {
        #[arg(value_enum)]
        api: standin::Api,
        /// The bot whose credentials the stand-in accepts
        #[arg(long)]
        bot: String,
        /// Answer every request after this many milliseconds
        #[arg(long, value_name = "MS", default_value_t = 0)]
        delay_ms: u64,
    },
    /// The main job, offline: a throwaway vault, team and bot, the sample extensions installed, stand-ins of OpenRouter and Discord, a two-node bot deployed, run, and its scrubbed execution shown
    Demo {
        /// Directory for the demo vault (must not exist yet) [default: a new temporary directory]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Directory of the built sample extensions (.wasm) [default: build extensions/ of this source tree]
        #[arg(long, value_name = "DIR")]
        extensions: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum TeamCommand {
    /// Create a team
    Create {
        /// Team name: 1-64 of A-Z a-z 0-9 . _ -
        name: String,
    },
    /// List teams with their bot and secret counts
    List,
    /// Delete a team and its team secrets (refused while it has bots)
    Delete {
        /// Team name
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum ExecutionsCommand {
    /// List executions, newest first
    List {
        /// Only this bot's
        #[arg(long)]
        bot: Option<String>,
        /// At most N
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },
    /// Show one execution: every node's status, duration, secrets read, output and logs (all scrubbed)
    Show {
        /// The execution id (from `executions list` or `run`)
        id: String,
        /// Print it as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum BotCommand {
    /// Create a bot in a team
    Create {
        /// Bot name, unique across the vault: 1-64 of A-Z a-z 0-9 . _ -
        name: String,
        /// The team the bot belongs to
        #[arg(long)]
        team: String,
    },
    /// List bots
    List,
    /// Delete a bot and all its bot secrets
    Delete {
        /// Bot name
        name: String,
    },
    /// Show, for each node of the deployed graph (or --graph FILE), where each required secret comes from: bot scope, team scope, or MISSING
    Status {
        /// Bot name
        name: String,
        /// Check this graph document instead of the deployed one
        #[arg(long, value_name = "FILE")]
        graph: Option<PathBuf>,
    },
    /// Validate a graph document (JSON or TOML) and deploy it; refused while a required secret is missing or a config holds a credential
    Deploy {
        /// Bot name
        name: String,
        /// The graph document
        #[arg(long, value_name = "FILE")]
        graph: PathBuf,
    },
    /// Stop the bot from executing
    Pause {
        /// Bot name
        name: String,
    },
    /// Let a paused bot execute again
    Resume {
        /// Bot name
        name: String,
    },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct ScopeArgs {
    /// A bot secret (overrides a team secret of the same name)
    #[arg(long, value_name = "BOT")]
    bot: Option<String>,
    /// A team secret (shared by every bot of the team)
    #[arg(long, value_name = "TEAM")]
    team: Option<String>,
}

impl ScopeArgs {
    fn scope(&self) -> Scope {
        match (&self.bot, &self.team) {
            (Some(bot), _) => Scope::Bot(bot.clone()),
            (None, Some(team)) => Scope::Team(team.clone()),
            (None, None) => unreachable!("clap requires --bot or --team"),
        }
    }
}

#[derive(Subcommand, Debug)]
enum SecretCommand {
    /// Store or overwrite a secret. The value is read from stdin when it is
    /// not a terminal, otherwise asked for twice at a hidden prompt. It is
    /// never accepted on the command line.
    Set {
        /// Secret name, for example DISCORD_BOT_TOKEN
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Refused: a value on the command line is visible to other users.
        #[arg(long, hide = true, value_name = "VALUE")]
        value: Option<String>,
        /// Refused: a value on the command line is visible to other users.
        #[arg(hide = true, num_args = 0..)]
        extra: Vec<String>,
    },
    /// List secret names, scopes and update times (never values)
    List {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Delete a secret
    Delete {
        /// Secret name
        name: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Re-wrap every secret under a new master key (crash-safe)
    Rotate,
    /// Check that every secret decrypts with the current key
    Verify,
}

#[derive(Subcommand, Debug)]
enum ExtensionCommand {
    /// Print a component's self-description (rejects anything that is not an extension)
    Inspect {
        /// The component (.wasm built for wasm32-wasip2)
        path: PathBuf,
    },
    /// Check, precompile and store a component by name, version and content hash; a new version shows what changed in its secrets and hosts
    Install {
        /// The component (.wasm built for wasm32-wasip2)
        path: PathBuf,
    },
    /// List installed extensions with their required secrets and allowed hosts
    List,
    /// Show an installed extension: required secrets, where each may be sent, allowed hosts
    Show {
        /// NAME or NAME@VERSION (default: the newest version)
        name: String,
    },
    /// Remove an installed version; refused while a deployed bot is pinned to it
    Remove {
        /// NAME@VERSION
        name: String,
    },
    /// Run one invocation with a bot's secrets: output JSON to stdout, logs to stderr
    Run {
        /// The component (.wasm built for wasm32-wasip2)
        path: PathBuf,
        /// The bot whose secrets (bot scope, then team scope) the invocation may read
        #[arg(long)]
        bot: String,
        /// Node config: JSON, or @FILE
        #[arg(long, value_name = "JSON|@FILE")]
        config: Option<String>,
        /// Input: JSON, or @FILE
        #[arg(long, value_name = "JSON|@FILE")]
        input: Option<String>,
        #[command(flatten)]
        upstreams: UpstreamArgs,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

/// Operator mappings of hosts to other base URLs.
#[derive(Args, Debug)]
struct UpstreamArgs {
    /// Send requests for HOST to URL instead (repeatable), e.g. discord.com=http://127.0.0.1:8080
    #[arg(long, value_name = "HOST=URL")]
    upstream: Vec<narakim::runtime::Upstream>,
    /// Read more HOST=URL mappings from a file, one per line (# comments)
    #[arg(long, value_name = "FILE", env = "NARAKIM_UPSTREAMS")]
    upstream_file: Option<PathBuf>,
}

impl UpstreamArgs {
    /// The `--upstream` mappings, then the file's.
    fn all(self) -> Result<Vec<narakim::runtime::Upstream>> {
        let mut all = self.upstream;
        if let Some(file) = self.upstream_file {
            all.extend(extension::upstream_file(&file)?);
        }
        Ok(all)
    }
}

/// Invocation limits; each defaults to the runtime's default.
#[derive(Args, Debug)]
struct LimitArgs {
    /// Wall-clock limit in seconds [default: 30]
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// Linear memory limit in MiB [default: 64]
    #[arg(long, value_name = "MIB")]
    memory: Option<usize>,
    /// Captured stdout and stderr limit, each, in KiB [default: 1024]
    #[arg(long, value_name = "KIB")]
    capture: Option<usize>,
    /// Output size limit in KiB [default: 1024]
    #[arg(long, value_name = "KIB")]
    output: Option<usize>,
}

impl LimitArgs {
    fn limits(&self) -> narakim::runtime::Limits {
        let mut limits = narakim::runtime::Limits::default();
        if let Some(s) = self.timeout {
            limits.timeout = std::time::Duration::from_secs(s);
        }
        if let Some(m) = self.memory {
            limits.memory_bytes = m << 20;
        }
        if let Some(k) = self.capture {
            limits.capture_bytes = k << 10;
        }
        if let Some(k) = self.output {
            limits.output_bytes = k << 10;
        }
        limits
    }
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Show the audit trail, oldest first
    List {
        /// Show only the newest N entries
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
}

pub fn run() -> Result<()> {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        let document = narakim::service::openapi::document();
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    if let Command::Demo { dir, extensions } = &cli.command {
        return demo::run(dir.clone(), extensions.clone());
    }
    let config = vault_config(&cli)?;
    if let Command::Init = cli.command {
        return init(&config);
    }
    match &cli.command {
        Command::Extension(ExtensionCommand::Inspect { path }) => {
            return extension::inspect(&config, path);
        }
        Command::Extension(ExtensionCommand::Install { path }) => {
            return engine::install(&config, path);
        }
        Command::Extension(ExtensionCommand::List) => return engine::list(&config),
        Command::Extension(ExtensionCommand::Show { name }) => return engine::show(&config, name),
        Command::Extension(ExtensionCommand::Remove { name }) => {
            return engine::remove(&config, name);
        }
        _ => {}
    }
    // Validate what can be validated before the vault is even opened.
    if let Command::Secret(SecretCommand::Set { value, extra, .. }) = &cli.command
        && (value.is_some() || !extra.is_empty())
    {
        bail!(
            "secret values are never accepted on the command line, because other users can read a process's arguments; pipe the value on stdin (`printf %s \"$VALUE\" | narakim secret set NAME --bot BOT`) or run the command in a terminal to type it at a hidden prompt"
        );
    }
    let mut vault = Vault::open(config)?;
    for note in vault.notes() {
        eprintln!("note: {note}");
    }
    match cli.command {
        Command::Init | Command::Demo { .. } | Command::Openapi => unreachable!("handled above"),
        Command::Team(cmd) => team(&mut vault, cmd),
        Command::Secret(cmd) => secret(&mut vault, cmd),
        Command::Key(cmd) => key(&mut vault, cmd),
        Command::Audit(AuditCommand::List { limit }) => audit(&vault, limit),
        Command::Token(cmd) => token::run(&mut vault, cmd),
        Command::Scrub { scope } => scrub::run(&mut vault, &scope.scope()),
        Command::Standin { api, bot, delay_ms } => standin::run(&mut vault, api, &bot, delay_ms),
        Command::Extension(
            ExtensionCommand::Inspect { .. }
            | ExtensionCommand::Install { .. }
            | ExtensionCommand::List
            | ExtensionCommand::Show { .. }
            | ExtensionCommand::Remove { .. },
        ) => unreachable!("handled above"),
        Command::Bot(BotCommand::Status { name, graph }) => {
            let engine = engine::engine(vault, Limits::default(), Vec::new())?;
            engine::status(&engine, &name, graph.as_deref())
        }
        Command::Bot(BotCommand::Deploy { name, graph }) => {
            let engine = engine::engine(vault, Limits::default(), Vec::new())?;
            engine::deploy(&engine, &name, &graph)
        }
        Command::Bot(BotCommand::Pause { name }) => {
            let engine = engine::engine(vault, Limits::default(), Vec::new())?;
            engine::set_paused(&engine, &name, true)
        }
        Command::Bot(BotCommand::Resume { name }) => {
            let engine = engine::engine(vault, Limits::default(), Vec::new())?;
            engine::set_paused(&engine, &name, false)
        }
        Command::Serve { args, upstreams } => serve::run(vault, args, upstreams.all()?),
        Command::Worker { args, upstreams } => serve::worker(vault, args, upstreams.all()?),
        Command::Run {
            bot,
            input,
            upstreams,
            limits,
        } => {
            let input = extension::json_arg("input", input.as_deref())?;
            let engine = engine::engine(vault, limits.limits(), upstreams.all()?)?;
            engine::run(&engine, &bot, &input)
        }
        Command::Bot(cmd) => bot(&mut vault, cmd),
        Command::Executions(cmd) => {
            let store = narakim::engine::store::EngineStore::open_in(
                &vault.config().data_dir,
                &vault.config().database,
            )?;
            match cmd {
                ExecutionsCommand::List { bot, limit } => {
                    engine::executions_list(&store, bot.as_deref(), limit)
                }
                ExecutionsCommand::Show { id, json } => engine::executions_show(&store, &id, json),
            }
        }
        Command::Extension(ExtensionCommand::Run {
            path,
            bot,
            config,
            input,
            upstreams,
            limits,
        }) => {
            let config = extension::json_arg("config", config.as_deref())?;
            let input = extension::json_arg("input", input.as_deref())?;
            let upstream = upstreams.all()?;
            extension::run(
                &mut vault,
                &path,
                &bot,
                &config,
                &input,
                upstream,
                limits.limits(),
            )
        }
    }
}

fn init(config: &VaultConfig) -> Result<()> {
    match Vault::init(config)? {
        InitOutcome::Created { vault_id, key_id } => {
            println!("Created vault {vault_id}");
            println!("  database:   {}", config.db_path().display());
            println!("  master key: {} (key id {key_id})", config.key);
            match config.key {
                narakim::vault::KeySource::Kms(_) => println!(
                    "The master key is wrapped by that KMS key and kept in the database: without access to the KMS key no secret can be decrypted, so keep the key (do not schedule its deletion)."
                ),
                _ => println!(
                    "Back up the master key separately from the database: without it no secret can be decrypted."
                ),
            }
        }
        InitOutcome::AlreadyInitialized { vault_id, key_id } => {
            println!(
                "Vault {vault_id} already exists at {} and its master key (key id {key_id}) opens it; nothing changed.",
                config.db_path().display()
            );
        }
    }
    Ok(())
}

fn team(vault: &mut Vault, cmd: TeamCommand) -> Result<()> {
    match cmd {
        TeamCommand::Create { name } => {
            vault.create_team(&name)?;
            println!("Created team \"{name}\".");
        }
        TeamCommand::List => {
            let teams = vault.list_teams()?;
            if teams.is_empty() {
                println!("No teams yet. Create one with `narakim team create NAME`.");
                return Ok(());
            }
            println!("{:<24} {:>5} {:>8}  CREATED", "TEAM", "BOTS", "SECRETS");
            for t in teams {
                println!(
                    "{:<24} {:>5} {:>8}  {}",
                    t.name,
                    t.bots,
                    t.secrets,
                    format_time(t.created_at_ms)
                );
            }
        }
        TeamCommand::Delete { name } => {
            vault.delete_team(&name)?;
            println!("Deleted team \"{name}\" and its team secrets.");
        }
    }
    Ok(())
}

fn bot(vault: &mut Vault, cmd: BotCommand) -> Result<()> {
    match cmd {
        BotCommand::Create { name, team } => {
            vault.create_bot(&name, &team).map_err(|err| match err {
                VaultError::TeamNotFound(_) => {
                    anyhow::anyhow!("{err}; create it with `narakim team create {team}`")
                }
                other => other.into(),
            })?;
            println!("Created bot \"{name}\" in team \"{team}\".");
        }
        BotCommand::List => {
            let bots = vault.list_bots()?;
            if bots.is_empty() {
                println!("No bots yet. Create one with `narakim bot create NAME --team TEAM`.");
                return Ok(());
            }
            println!("{:<24} {:<24} {:>8}  CREATED", "BOT", "TEAM", "SECRETS");
            for b in bots {
                println!(
                    "{:<24} {:<24} {:>8}  {}",
                    b.name,
                    b.team,
                    b.secrets,
                    format_time(b.created_at_ms)
                );
            }
        }
        BotCommand::Delete { name } => {
            // Its deployments and execution records go with it: in the
            // same transaction on PostgreSQL, where they share the
            // database; first on SQLite, so a failure between the two
            // files leaves an undeployed bot a second delete removes.
            let n = match vault.config().database.clone() {
                narakim::db::Database::Postgres(_) => vault.delete_bot_with(&name, |tx| {
                    narakim::engine::store::delete_bot_rows(tx, &name)
                })?,
                narakim::db::Database::Sqlite => {
                    // An unknown bot fails here, before anything changes.
                    vault.list_secrets(&Scope::Bot(name.clone()))?;
                    narakim::engine::store::EngineStore::open_in(
                        &vault.config().data_dir,
                        &vault.config().database,
                    )?
                    .delete_bot_data(&name)?;
                    vault.delete_bot(&name)?
                }
            };
            println!("Deleted bot \"{name}\" and its {n} bot secret(s).");
        }
        BotCommand::Status { .. }
        | BotCommand::Deploy { .. }
        | BotCommand::Pause { .. }
        | BotCommand::Resume { .. } => unreachable!("engine commands are handled in run()"),
    }
    Ok(())
}

fn secret(vault: &mut Vault, cmd: SecretCommand) -> Result<()> {
    match cmd {
        SecretCommand::Set { name, scope, .. } => {
            let name = SecretName::new(&name)?;
            let scope = scope.scope();
            // Fail on an unknown bot or team before asking for a value.
            vault.list_secrets(&scope)?;
            let value = secret_input::read_value(&name)?;
            let outcome = vault.set_secret(&scope, &name, &value)?;
            let verb = match outcome {
                SetOutcome::Created => "Saved",
                SetOutcome::Overwritten => "Overwrote",
            };
            println!(
                "{verb} {name} for {scope} ({} bytes). The value will not be shown again; it takes effect on the next execution.",
                value.len()
            );
        }
        SecretCommand::List { scope } => {
            let scope = scope.scope();
            let secrets = vault.list_secrets(&scope)?;
            if secrets.is_empty() {
                println!(
                    "No secrets for {scope}. Store one with `narakim secret set NAME {}`.",
                    scope.flag()
                );
                return Ok(());
            }
            let is_bot = matches!(scope, Scope::Bot(_));
            print!(
                "{:<32} {:<28} {:<20}  {:<8} {:<12}",
                "NAME", "STORED IN", "UPDATED", "VERSION", "FINGERPRINT"
            );
            println!("{}", if is_bot { "  RESOLVES" } else { "" });
            for s in secrets {
                print!(
                    "{:<32} {:<28} {:<20}  {:<8} {:<12}",
                    s.name,
                    s.scope.to_string(),
                    format_time(s.updated_at_ms),
                    s.version,
                    s.fingerprint
                );
                if is_bot {
                    print!(
                        "  {}",
                        if s.effective {
                            "yes"
                        } else {
                            "no (overridden by the bot secret)"
                        }
                    );
                }
                println!();
            }
        }
        SecretCommand::Delete { name, scope } => {
            let name = SecretName::new(&name)?;
            let scope = scope.scope();
            vault.delete_secret(&scope, &name)?;
            println!("Deleted {name} from {scope}.");
        }
    }
    Ok(())
}

fn key(vault: &mut Vault, cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Rotate => {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "re-wrapping {bar:40} {pos}/{len} secrets ({eta} left)",
                )
                .context("progress bar template")?,
            );
            let report = vault.rotate_key(|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            println!(
                "Rotated the master key: {} -> {}; {} secret(s) re-wrapped and verified; the previous key was shredded.",
                report.old_key, report.new_key, report.rewrapped
            );
        }
        KeyCommand::Verify => {
            let report = vault.verify()?;
            if report.failed.is_empty() {
                println!(
                    "All {} secret(s) decrypt with master key {}.",
                    report.checked,
                    vault.key_id()
                );
            } else {
                bail!(
                    "{} of {} secret(s) failed verification with master key {}: {}",
                    report.failed.len(),
                    report.checked,
                    vault.key_id(),
                    report.problems.join("; ")
                );
            }
        }
    }
    Ok(())
}

fn audit(vault: &Vault, limit: Option<usize>) -> Result<()> {
    let entries = vault.audit(limit)?;
    println!(
        "{:<20}  {:<18} {:<20} {:<30} DETAIL",
        "TIME", "ACTION", "ACTOR", "SUBJECT"
    );
    for e in entries {
        let subject = match (&e.scope, &e.owner, &e.name) {
            (Some(kind), Some(owner), Some(name)) => format!("{name} ({kind} {owner})"),
            (Some(kind), Some(owner), None) => format!("{kind} {owner}"),
            _ => String::new(),
        };
        println!(
            "{:<20}  {:<18} {:<20} {:<30} {}",
            format_time(e.at_ms),
            e.action,
            e.actor,
            subject,
            e.detail
        );
    }
    Ok(())
}
