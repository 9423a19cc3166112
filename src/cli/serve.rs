//! `narakim serve`: the engine as a service (see `narakim::service`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use narakim::runtime::Upstream;
use narakim::service::logs::{self, LogFormat, LogScrubber};
use narakim::service::{AppState, DataDirLock, ServiceConfig};
use narakim::vault::Vault;

use super::engine;
use super::extension::tokio;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback needs TLS or --insecure-http
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Executions run at once
    #[arg(long, value_name = "N", default_value_t = 4)]
    workers: usize,
    /// TLS certificate chain (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (TLS terminated in front)
    #[arg(long)]
    insecure_http: bool,
    /// Seconds running executions get to finish after SIGTERM or Ctrl-C
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    drain_seconds: u64,
    /// Log lines as text or JSON (level from RUST_LOG, default info)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    log_format: Format,
    /// Most runs waiting in the queue; past it a run answers 503 with Retry-After
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    queue_bound: usize,
    /// API requests per second per token (bursts of twice that)
    #[arg(long, value_name = "N", default_value_t = 100)]
    rate_limit: u32,
    /// Largest request body in KiB
    #[arg(long, value_name = "KIB", default_value_t = 1024)]
    body_limit: usize,
    /// On PostgreSQL: seconds a claimed run's lease holds without a renewal
    /// (renewed every third of it); a dead node's runs move on after it
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    lease_seconds: u64,
    /// On PostgreSQL: seconds between an idle node's looks at the queue
    /// (reaping lapsed leases; the fallback to NOTIFY)
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    poll_seconds: u64,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Executions run at once
    #[arg(long, value_name = "N", default_value_t = 4)]
    workers: usize,
    /// Seconds running executions get to finish after SIGTERM or Ctrl-C
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    drain_seconds: u64,
    /// Log lines as text or JSON (level from RUST_LOG, default info)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    log_format: Format,
    /// On PostgreSQL: seconds a claimed run's lease holds without a renewal
    /// (renewed every third of it); a dead node's runs move on after it
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    lease_seconds: u64,
    /// On PostgreSQL: seconds between an idle node's looks at the queue
    /// (reaping lapsed leases; the fallback to NOTIFY)
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    poll_seconds: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

pub fn run(vault: Vault, args: ServeArgs, upstreams: Vec<Upstream>) -> Result<()> {
    if args.workers == 0 || args.workers > 256 {
        bail!("--workers must be between 1 and 256 (got {})", args.workers);
    }
    if args.queue_bound == 0 || args.rate_limit == 0 || args.body_limit == 0 {
        bail!("--queue-bound, --rate-limit and --body-limit must be at least 1");
    }
    let config = ServiceConfig {
        listen: args.listen,
        workers: args.workers,
        tls: args.tls_cert.zip(args.tls_key),
        insecure_http: args.insecure_http,
        drain: Duration::from_secs(args.drain_seconds),
        queue_bound: args.queue_bound,
        rate_limit: args.rate_limit,
        body_limit: args.body_limit.saturating_mul(1024),
        lease: lease(args.lease_seconds)?,
        poll: poll(args.poll_seconds)?,
    };
    // Refuse a bad address or TLS files before anything else happens.
    narakim::service::listen::tls_for(&config)?;
    start(vault, config, args.log_format, upstreams, true)
}

/// `narakim worker`: the workers (and the scheduler) without HTTP.
pub fn worker(vault: Vault, args: WorkerArgs, upstreams: Vec<Upstream>) -> Result<()> {
    if args.workers == 0 || args.workers > 256 {
        bail!("--workers must be between 1 and 256 (got {})", args.workers);
    }
    if matches!(vault.config().database, narakim::db::Database::Sqlite) {
        bail!(
            "`narakim worker` shares a queue with `narakim serve` nodes, which needs PostgreSQL: give --database (NARAKIM_DATABASE_URL); with SQLite, `narakim serve` runs the executions itself"
        );
    }
    let config = ServiceConfig {
        workers: args.workers,
        drain: Duration::from_secs(args.drain_seconds),
        lease: lease(args.lease_seconds)?,
        poll: poll(args.poll_seconds)?,
        ..ServiceConfig::default()
    };
    start(vault, config, args.log_format, upstreams, false)
}

fn lease(seconds: u64) -> Result<Duration> {
    if !(3..=3600).contains(&seconds) {
        bail!("--lease-seconds must be between 3 and 3600 (got {seconds})");
    }
    Ok(Duration::from_secs(seconds))
}

fn poll(seconds: u64) -> Result<Duration> {
    if !(1..=3600).contains(&seconds) {
        bail!("--poll-seconds must be between 1 and 3600 (got {seconds})");
    }
    Ok(Duration::from_secs(seconds))
}

fn start(
    mut vault: Vault,
    config: ServiceConfig,
    log_format: Format,
    upstreams: Vec<Upstream>,
    http: bool,
) -> Result<()> {
    let _lock = DataDirLock::acquire(&vault.config().data_dir)?;
    let scrubber = LogScrubber::of_vault(&mut vault)?;
    logs::install(
        match log_format {
            Format::Text => LogFormat::Text,
            Format::Json => LogFormat::Json,
        },
        scrubber.clone(),
    );
    let requests_vault = narakim::vault::Vault::open(vault.config().clone())?;
    let engine = engine::engine(vault, narakim::runtime::Limits::default(), upstreams)?;
    let state = AppState::new(engine, requests_vault, config, scrubber);
    let runtime = tokio()?;
    let report = if http {
        runtime.block_on(narakim::service::run(
            state,
            shutdown_signal(),
            |addr, scheme| {
                // One line on stdout, for scripts that start us on port 0.
                println!("narakim serve: listening on {scheme}://{addr}");
            },
        ))?
    } else {
        println!("narakim worker: running queued executions");
        runtime.block_on(narakim::service::run_worker(state, shutdown_signal()))?
    };
    if report.abandoned > 0 {
        eprintln!(
            "warning: {} execution(s) were still running after --drain-seconds; the next start marks them interrupted",
            report.abandoned
        );
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
