//! `narakim serve`: the engine as a long-running service with an HTTP API.
//!
//! The data path of a request, and the module that owns each step:
//!
//! - [`listen`]: the socket. Loopback unless told otherwise; any other
//!   address needs TLS (rustls) or an explicit `--insecure-http`. Slow
//!   clients are cut off; shutdown stops accepting and drains.
//! - [`auth`]: the `Bearer` API token, its capabilities and its scope, and
//!   a per-token rate limit.
//! - [`api`]: the `/api/v1` routes. Handlers are thin: they check the
//!   caller, call the vault or the engine, and shape JSON.
//! - [`problem`]: every error as RFC 9457 problem details.
//! - [`workers`]: the workers that run queued executions, woken in-process
//!   when a run is accepted (an idle server does no database work).
//! - [`metrics`]: `/metrics` in the Prometheus text format.
//! - [`openapi`]: the OpenAPI 3.1 document, generated from the route table.
//! - [`logs`]: `tracing` output, every line passed through a scrubber of
//!   every stored secret value.
//!
//! The service uses the same [`Engine`], vault and stores as the CLI.

pub mod api;
pub mod auth;
pub mod cluster;
mod hooks;
pub mod listen;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod problem;
mod schedules;
pub mod seal;
pub mod ui;
pub mod workers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::engine::executor::Engine;
use crate::vault::{ServiceKey, Vault};
use auth::RateLimiter;
use problem::Problem;

/// How `narakim serve` runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub listen: SocketAddr,
    /// Executions run at once.
    pub workers: usize,
    /// Certificate chain and private key (PEM), for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Allows plain HTTP on a non-loopback address.
    pub insecure_http: bool,
    /// How long running executions may take to finish after a shutdown
    /// signal.
    pub drain: Duration,
    /// Most runs waiting in the queue; past it a run answers 503.
    pub queue_bound: usize,
    /// Requests per second per token (bursts of twice that).
    pub rate_limit: u32,
    /// Largest request body, in bytes (larger ones answer 413).
    pub body_limit: usize,
    /// On PostgreSQL: how long a claimed job's lease holds without a
    /// renewal (renewed every third of it), and so how soon the jobs of a
    /// node that died go to the others.
    pub lease: Duration,
    /// On PostgreSQL: how often an idle node reaps lapsed leases and looks
    /// for jobs it was not told about (the fallback to `NOTIFY`).
    pub poll: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 4,
            tls: None,
            insecure_http: false,
            drain: Duration::from_secs(30),
            queue_bound: 10_000,
            rate_limit: 100,
            body_limit: 1024 * 1024,
            lease: cluster::LEASE,
            poll: cluster::FALLBACK,
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The requests' own connection to the vault. The engine's is the
    /// workers': a request never waits on a lock that a running execution
    /// holds (those run at a lower priority, see [`workers`]).
    vault: std::sync::Mutex<Vault>,
    pub metrics: metrics::Metrics,
    pub limiter: RateLimiter,
    pub config: ServiceConfig,
    /// Scrubs every log line (see [`logs`]); rebuilt when a secret changes.
    pub log_scrubber: logs::LogScrubber,
    /// Wakes a worker when a run is accepted.
    pub wake: Notify,
    /// Executions this node is running or has claimed (the heartbeat
    /// renews leases only while there are some).
    pub busy: std::sync::atomic::AtomicUsize,
    /// Wakes the scheduler when a deploy may have changed the schedules.
    pub schedules_changed: Notify,
    /// False once shutdown began (`/readyz` answers 503).
    pub ready: AtomicBool,
    /// The key pair browsers seal secret values to ([`seal`]).
    pub sealer: seal::Sealer,
    /// The web UI's sessions ([`ui`]).
    pub ui: ui::UiState,
}

impl AppState {
    /// `vault` is a connection of the requests' own, to the vault the
    /// engine uses.
    pub fn new(
        engine: Arc<Engine>,
        vault: Vault,
        config: ServiceConfig,
        log_scrubber: logs::LogScrubber,
    ) -> Arc<AppState> {
        // Derived from the vault, so every node of a cluster seals to the
        // same key and knows the same sessions' forms.
        let sealer = seal::Sealer::from_seed(&vault.service_key(ServiceKey::BrowserSeal));
        let ui = ui::UiState {
            sessions: ui::session::Sessions::new(vault.service_key(ServiceKey::UiCsrf)),
        };
        Arc::new(AppState {
            engine,
            vault: std::sync::Mutex::new(vault),
            metrics: metrics::Metrics::default(),
            limiter: RateLimiter::new(config.rate_limit),
            config,
            log_scrubber,
            wake: Notify::new(),
            busy: std::sync::atomic::AtomicUsize::new(0),
            schedules_changed: Notify::new(),
            ready: AtomicBool::new(true),
            sealer,
            ui,
        })
    }

    /// The requests' vault connection. Each use first brings the log
    /// scrubber up to date with values another process (the CLI) set.
    pub fn vault(&self) -> std::sync::MutexGuard<'_, Vault> {
        let mut vault = self.vault.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.log_scrubber.refresh(&mut vault) {
            tracing::error!("the log scrubber could not learn the vault's changes: {e}");
        }
        vault
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Runs `f` (which uses SQLite, and may fsync) off the async workers.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&AppState) -> Result<T, Problem> + Send + 'static,
    ) -> Result<T, Problem> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || f(&state))
            .await
            .map_err(|e| Problem::internal("handling the request", &e))?
    }
}

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
    #[error(
        "another narakim serve already uses the data directory {} (it holds {}); stop it first, or give this one another --data-dir",
        data_dir.display(), lock.display()
    )]
    DataDirInUse { data_dir: PathBuf, lock: PathBuf },
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::engine::store::StoreError),
    #[error("{0}")]
    Engine(String),
}

/// What a finished `serve` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeReport {
    /// Runs marked interrupted at start (the recovery rule).
    pub recovered_interrupted: usize,
    /// Runs found waiting at start.
    pub recovered_queued: usize,
    /// Workers still busy when the drain bound ran out.
    pub abandoned: usize,
}

/// Holds the data directory for one `serve` (an advisory `flock`, released
/// when the process exits, even by kill -9).
#[derive(Debug)]
pub struct DataDirLock(#[allow(dead_code)] std::fs::File);

impl DataDirLock {
    pub fn acquire(data_dir: &std::path::Path) -> Result<DataDirLock, ServeError> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let path = data_dir.join("serve.lock");
        // A node of a PostgreSQL cluster may start with no files yet.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|source| ServeError::Lock {
                path: path.clone(),
                source,
            })?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| ServeError::Lock {
                path: path.clone(),
                source,
            })?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if locked != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(ServeError::DataDirInUse {
                    data_dir: data_dir.to_owned(),
                    lock: path,
                });
            }
            return Err(ServeError::Lock {
                path,
                source: error,
            });
        }
        Ok(DataDirLock(file))
    }
}

/// Runs the service until `shutdown` completes: recovers the queue,
/// starts the workers, serves HTTP, then drains. `on_listening` learns the
/// bound address (for `--listen 127.0.0.1:0`) and scheme once the socket
/// is open.
pub async fn run(
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
    on_listening: impl FnOnce(SocketAddr, &str),
) -> Result<ServeReport, ServeError> {
    let listener = listen::Listener::bind(&state.config).await?;
    let node = Node::start(&state)?;
    let addr = listener
        .local_addr()
        .map_err(|source| listen::ListenError::Bind {
            addr: state.config.listen,
            source,
        })?;
    on_listening(addr, listener.scheme());
    let scheduler = tokio::spawn(schedules::run(state.clone()));
    tracing::info!(%addr, queued = node.recovery.queued, workers = state.config.workers, "listening");
    let router = api::router(state.clone());
    let drain = state.config.drain;
    let shutting_down = {
        let state = state.clone();
        async move {
            shutdown.await;
            state.ready.store(false, Ordering::Release);
            tracing::info!("shutting down: no new requests; draining running executions");
        }
    };
    listener.serve(router, shutting_down, drain).await;
    scheduler.abort();
    Ok(node.stop(drain).await)
}

/// `narakim worker`: [`run`] without HTTP, for operators who run the API
/// and the executions on different machines. It claims and runs queued
/// executions (and fires schedules) until `shutdown`, then drains.
pub async fn run_worker(
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<ServeReport, ServeError> {
    let node = Node::start(&state)?;
    let scheduler = tokio::spawn(schedules::run(state.clone()));
    tracing::info!(
        queued = node.recovery.queued,
        workers = state.config.workers,
        "working"
    );
    shutdown.await;
    state.ready.store(false, Ordering::Release);
    tracing::info!("shutting down: draining running executions");
    scheduler.abort();
    Ok(node.stop(state.config.drain).await)
}

/// What both [`run`] and [`run_worker`] start: the queue's recovery, the
/// group commit, the workers and, on PostgreSQL, the cluster tasks.
struct Node {
    recovery: crate::engine::queue::Recovery,
    workers: workers::Workers,
    _cluster: Option<cluster::Cluster>,
}

impl Node {
    fn start(state: &Arc<AppState>) -> Result<Node, ServeError> {
        use crate::engine::queue::RunQueue;
        let owner = format!("serve-{}-{:016x}", std::process::id(), {
            let mut b = [0u8; 8];
            let _ = getrandom::fill(&mut b);
            u64::from_le_bytes(b)
        });
        let (recovery, database) = {
            let mut store = state.engine.store();
            (store.recover(&owner)?, store.database().clone())
        };
        state
            .engine
            .start_group_commit()
            .map_err(|e| ServeError::Engine(e.to_string()))?;
        if recovery.interrupted > 0 {
            tracing::warn!(
                runs = recovery.interrupted,
                "runs interrupted by the last stop were marked failed (not retried: their nodes may already have had effects)"
            );
        }
        let workers = workers::Workers::start(state, &owner, state.config.workers)
            .map_err(|e| ServeError::Engine(format!("starting the execution threads: {e}")))?;
        let cluster = match &database {
            crate::db::Database::Postgres(pool) => Some(cluster::start(state, &owner, pool)),
            crate::db::Database::Sqlite => None,
        };
        Ok(Node {
            recovery,
            workers,
            _cluster: cluster,
        })
    }

    async fn stop(self, drain: Duration) -> ServeReport {
        let abandoned = self.workers.drain(drain).await;
        if abandoned > 0 {
            tracing::warn!(
                workers = abandoned,
                "executions still running after --drain-seconds; the next start marks them interrupted"
            );
        }
        tracing::info!("stopped");
        ServeReport {
            recovered_interrupted: self.recovery.interrupted,
            recovered_queued: self.recovery.queued,
            abandoned,
        }
    }
}
