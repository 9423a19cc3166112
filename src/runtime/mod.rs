//! The wasmtime host: runs one node invocation of an extension in a fresh,
//! bounded sandbox and hands it only the secrets it declared.
//!
//! Per invocation: a new `Store` (nothing survives between invocations or
//! crosses between bots), instantiated from a pre-linked `InstancePre`, with
//! no filesystem, no environment variables and no sockets (clocks, random and
//! outbound HTTP through the host only). Every limit is enforced and each
//! breach is its own error naming the extension and the node:
//! wall-clock time (epoch interruption, plus a tokio timeout for a guest
//! blocked inside a host call), linear memory, tables and instances, stack,
//! captured stdout/stderr (truncated, never trapping the guest) and output
//! size. Everything the invocation emits is scrubbed of every value it was
//! handed before anyone sees it.
//!
//! Outbound HTTP goes through [`egress`]: allowed hosts only, TLS except to
//! loopback, each secret only to the hosts it is bound to, no public name
//! resolving to an internal address, and operator upstream mappings.

mod bindings;
mod capture;
mod egress;
mod error;
mod extension;
mod guard;
mod host;
pub mod inject;
mod limits;
mod output;

pub use egress::{EgressEvent, Upstream, clip};
pub use error::{InvocationError, LoadError};
pub use extension::{
    Extension, ExtensionDescription, HeaderFormat, InjectionRule, RequiredSecret, SecretField,
    host_problem,
};
pub use guard::ExecutionGuard;
pub use limits::Limits;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How often the epoch ticks; the wall-clock timeout is counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The shared engine and linker: build one per process and share it.
pub struct Runtime {
    engine: Engine,
    linker: Linker<Invocation>,
    limits: Limits,
    /// Where compiled components are cached (`None`: no cache).
    cache_dir: Option<PathBuf>,
    egress: Arc<egress::EgressPolicy>,
    /// One permit per pooled instance slot: invocations past the pool's
    /// size wait for a slot instead of failing.
    slots: Arc<tokio::sync::Semaphore>,
    /// Decrypted values kept between a bot's executions.
    opened: Arc<guard::OpenedCache>,
    _ticker: Ticker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

/// Increments the engine's epoch every [`EPOCH_TICK`], and sweeps the
/// kept decrypted values every second, until dropped.
struct Ticker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// Epoch ticks between two sweeps of the kept decrypted values.
const SWEEP_TICKS: u32 = 100;

impl Ticker {
    fn start(engine: &Engine, opened: &Arc<guard::OpenedCache>) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (engine, flag) = (engine.weak(), stop.clone());
        let opened = Arc::downgrade(opened);
        std::thread::Builder::new()
            .name("narakim-epoch".into())
            .spawn(move || {
                let mut ticks = 0u32;
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                    ticks += 1;
                    if ticks == SWEEP_TICKS {
                        ticks = 0;
                        match opened.upgrade() {
                            Some(opened) => opened.sweep(Instant::now()),
                            None => break,
                        }
                    }
                }
            })
            .expect("spawning the epoch thread");
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What one invocation produced, scrubbed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The output JSON (canonical: parsed and serialised again), or the
    /// extension's error message.
    pub result: Result<String, String>,
    pub stdout: String,
    pub stderr: String,
    /// Log calls, in order.
    pub logs: Vec<(String, String)>,
    /// Names of the secrets the invocation read.
    pub secrets_read: Vec<String>,
    /// Every outbound request, sent or refused (the first
    /// [`EgressEvent`]s up to a bound; `egress_dropped` counts the rest).
    pub egress: Vec<EgressEvent>,
    pub egress_dropped: usize,
    pub duration: Duration,
}

/// What an invocation left behind, scrubbed, however it ended: kept with a
/// failed invocation's error for the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    pub stdout: String,
    pub stderr: String,
    pub logs: Vec<(String, String)>,
    pub secrets_read: Vec<String>,
    pub egress: Vec<EgressEvent>,
    pub egress_dropped: usize,
    pub duration: Duration,
}

/// The state of one invocation's `Store`.
pub(crate) struct Invocation {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Box<dyn wasmtime_wasi_http::WasiHttpHooks>,
    pub(crate) limiter: limits::Limiter,
    pub(crate) secrets: host::SecretsHost,
    pub(crate) logs: host::LogSink,
}

impl WasiView for Invocation {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Invocation {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut *self.hooks,
        }
    }
}

impl Runtime {
    /// A runtime with `limits`, caching compiled components under
    /// `cache_dir` when given.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self, LoadError> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(limits.stack_bytes);
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.max_memory_size(limits.memory_bytes)
            .total_component_instances(limits.pooled_instances)
            .total_memories(limits.pooled_instances * 2)
            .total_tables(limits.pooled_instances * 2)
            .total_core_instances(limits.pooled_instances * 4)
            .pagemap_scan(wasmtime::Enabled::Auto)
            // Reset small memories and tables by zeroing in place rather
            // than returning pages to the kernel: no page faults, no TLB
            // shootdowns on the next instantiation.
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(1 << 16);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(e.to_string()))?;
        let mut linker: Linker<Invocation> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            // Our own interfaces; WASI and wasi:http come from the lines above.
            .and_then(|()| {
                use bindings::v1::narakim::extension0_1_0 as v1;
                use bindings::v2::narakim::extension0_2_0 as v2;
                use wasmtime::component::HasSelf;
                v1::secrets::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
                v1::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
                v2::credentials::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
                v2::secrets::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
                v2::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            })
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        let opened = Arc::new(guard::OpenedCache::new(limits.decrypted_idle));
        let ticker = Ticker::start(&engine, &opened);
        let mut egress = egress::EgressPolicy::default();
        egress.shares = Arc::new(egress::Shares::new(
            limits.bot_requests,
            limits.host_requests,
        ));
        let slots = Arc::new(tokio::sync::Semaphore::new(
            limits.pooled_instances as usize,
        ));
        Ok(Runtime {
            engine,
            linker,
            limits,
            cache_dir,
            egress: Arc::new(egress),
            slots,
            opened,
            _ticker: ticker,
        })
    }

    /// Maps hosts to other base URLs for every invocation (`--upstream`).
    pub fn with_upstreams(mut self, upstreams: impl IntoIterator<Item = Upstream>) -> Self {
        let mut policy = (*self.egress).clone();
        policy
            .upstreams
            .extend(upstreams.into_iter().map(|u| (u.host, u.base)));
        self.egress = Arc::new(policy);
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The wasmtime engine every invocation runs on (for embedders that
    /// link their own host against the same engine, and for the invocation
    /// benchmark's baseline).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The guard of an execution of `nodes` over `snapshot`, as
    /// [`ExecutionGuard::new`] builds it, but reusing the values the bot's
    /// previous execution decrypted if they are of the very same sealed
    /// records and were used within [`Limits::decrypted_idle`].
    pub fn guard<'a>(
        &self,
        snapshot: &crate::vault::SecretSnapshot,
        nodes: impl IntoIterator<Item = (&'a ExtensionDescription, &'a str)>,
    ) -> Result<ExecutionGuard, crate::vault::ResolveError> {
        Ok(ExecutionGuard::with(
            snapshot,
            self.opened.open(snapshot)?,
            nodes,
        ))
    }

    /// [`guard`](Self::guard), with `extra` values that live only for this
    /// execution (a Discord interaction's token): `secrets.get` hands them
    /// out to the nodes that declare them, and the scrubber covers them
    /// like stored values. Decrypts the snapshot afresh rather than adding
    /// them to the values cached for the bot's other executions.
    pub fn guard_with<'a>(
        &self,
        snapshot: &crate::vault::SecretSnapshot,
        nodes: impl IntoIterator<Item = (&'a ExtensionDescription, &'a str)>,
        extra: Vec<(String, crate::vault::SecretValue)>,
    ) -> Result<ExecutionGuard, crate::vault::ResolveError> {
        if extra.is_empty() {
            return self.guard(snapshot, nodes);
        }
        let opened = guard::Opened::with_extra(snapshot, extra)?;
        Ok(ExecutionGuard::with(snapshot, Arc::new(opened), nodes))
    }

    /// The scrubber over every value of `snapshot` (decrypted once per
    /// snapshot generation, and cached as for [`guard`](Self::guard)).
    pub fn scrubber(
        &self,
        snapshot: &crate::vault::SecretSnapshot,
    ) -> Result<Arc<crate::redact::Scrubber>, crate::vault::ResolveError> {
        Ok(self.opened.open(snapshot)?.scrubber.clone())
    }

    /// Waits for a free instance slot of the pool.
    pub(crate) async fn slot(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.slots
            .acquire()
            .await
            .expect("the slot semaphore is never closed")
    }

    /// A fresh store with the sandbox every guest call runs in: no
    /// filesystem, environment or sockets, the memory and table limiter, and
    /// an epoch deadline of `timeout`. `stdio` captures stdout and stderr
    /// (none: discarded).
    pub(crate) fn sandbox(
        &self,
        secrets: host::SecretsHost,
        hooks: Box<dyn wasmtime_wasi_http::WasiHttpHooks>,
        stdio: Option<(capture::Capture, capture::Capture)>,
        timeout: Duration,
    ) -> Store<Invocation> {
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some((stdout, stderr)) = stdio {
            wasi.stdout(stdout).stderr(stderr);
        }
        // Host-side memory is bounded too: live resources by count, each
        // header map by bytes.
        let mut table = ResourceTable::new();
        table.set_max_capacity(self.limits.host_resources);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(self.limits.field_bytes);
        let mut store = Store::new(
            &self.engine,
            Invocation {
                wasi: wasi.build(),
                http,
                table,
                hooks,
                limiter: limits::Limiter::new(&self.limits),
                secrets,
                logs: host::LogSink::new(self.limits.capture_bytes, self.limits.log_entries),
            },
        );
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(timeout.as_millis() as u64 / EPOCH_TICK.as_millis() as u64 + 1);
        store.epoch_deadline_trap();
        store
    }

    /// Runs one node invocation. `guard` is the execution's: the
    /// invocation may read only the names the extension declared for this
    /// node's `config`, from the guard's snapshot; everything it emits is
    /// scrubbed of, and every request it makes checked against, every value
    /// of that snapshot.
    pub async fn invoke(
        &self,
        extension: &Extension,
        node: &str,
        guard: &ExecutionGuard,
        config: &str,
        input: &str,
    ) -> Result<Outcome, InvocationError> {
        let started = Instant::now();
        let plan = extension
            .plan(config)
            .map_err(|reason| InvocationError::BadConfig {
                extension: extension.name().to_owned(),
                node: node.to_owned(),
                reason,
            })?;
        // Declared before the store, so dropped after it: the slot is free
        // only once the instance is gone.
        let _slot = self.slot().await;
        let bound = guard.bound_for(plan);
        let issued = Arc::new(std::sync::Mutex::new(inject::Credentials::default()));
        let egress = Arc::new(egress::InvocationEgress::new(
            bound.clone(),
            guard.scrubber().clone(),
            egress::EgressLimits {
                requests: self.limits.concurrent_requests,
                body_bytes: self.limits.request_body_bytes,
            },
            guard.owner_shared(),
            issued.clone(),
        ));
        let placeholders = issued.clone();
        let (stdout, stderr) = (
            capture::Capture::new(self.limits.capture_bytes),
            capture::Capture::new(self.limits.capture_bytes),
        );
        let mut store = self.sandbox(
            host::SecretsHost::new(guard.resolver(), bound, issued),
            Box::new(egress::EgressHooks {
                policy: self.egress.clone(),
                invocation: egress.clone(),
            }),
            Some((stdout.clone(), stderr.clone())),
            self.limits.timeout,
        );

        let call = extension.pre().run(&mut store, config, input);
        // The tokio timeout catches a guest blocked inside a host call, where
        // epochs are not checked; a request that carried a secret where it
        // may not go stops the invocation at once.
        let called = tokio::select! {
            called = tokio::time::timeout(self.limits.timeout + EPOCH_TICK * 5, call) => Some(called),
            () = egress.stopped() => None,
        };

        // Everything below is scrubbed of every value of the execution.
        // What operators read shows `‹NAME›` for each placeholder: it says
        // which secret went there, and leaves nothing to replay. The output
        // is data for the next node and stays as it is.
        let scrubber = guard.scrubber();
        let placeholders = placeholders.lock().unwrap_or_else(|e| e.into_inner());
        let shown = |text: String| {
            if placeholders.is_empty() || text.is_empty() {
                text
            } else {
                placeholders.shown(&text)
            }
        };
        let state = store.into_data();
        let secrets_read = state.secrets.finish();
        let scrub = |bytes: &[u8], dropped: u64| {
            let mut text = shown(scrubber.scrub_str(&String::from_utf8_lossy(bytes)));
            if dropped > 0 {
                text.push_str(&format!(
                    "\n[narakim: {dropped} more bytes dropped past the capture limit]\n"
                ));
            }
            text
        };
        let (out, out_dropped) = stdout.take();
        let (err, err_dropped) = stderr.take();
        let memory_hit = state.limiter.memory_denied();
        let (egress_events, egress_dropped) = egress.take_events();
        let captured = Box::new(Captured {
            stdout: scrub(&out, out_dropped),
            stderr: scrub(&err, err_dropped),
            logs: state
                .logs
                .take()
                .into_iter()
                .map(|(level, message)| (level, shown(scrubber.scrub_str(&message))))
                .collect(),
            secrets_read,
            egress: egress_events,
            egress_dropped,
            duration: started.elapsed(),
        });

        // Named only when it failed: a success needs no copies.
        let extension_name = || extension.name().to_owned();
        let node_name = || node.to_owned();
        match egress.stopped_by() {
            Some(egress::Stop::Violation(reason)) => {
                return Err(InvocationError::EgressViolation {
                    extension: extension_name(),
                    node: node_name(),
                    reason: scrubber.scrub_str(&reason),
                    captured,
                });
            }
            Some(egress::Stop::Limit(reason)) => {
                return Err(InvocationError::EgressLimit {
                    extension: extension_name(),
                    node: node_name(),
                    reason: scrubber.scrub_str(&reason),
                    captured,
                });
            }
            None => {}
        }
        let result = match called {
            None | Some(Err(_)) => {
                return Err(InvocationError::Timeout {
                    extension: extension_name(),
                    node: node_name(),
                    limit: self.limits.timeout,
                    captured,
                });
            }
            Some(Ok(Err(error))) => {
                return Err(error::classify(
                    error,
                    extension_name(),
                    node_name(),
                    &self.limits,
                    memory_hit,
                    scrubber,
                    captured,
                ));
            }
            Some(Ok(Ok(Ok(output)))) => {
                match output::canonical(&output, self.limits.output_bytes, scrubber) {
                    Ok(output) => Ok(output),
                    Err(output::OutputProblem::TooLarge(size)) => {
                        return Err(InvocationError::OutputTooLarge {
                            extension: extension_name(),
                            node: node_name(),
                            size,
                            limit: self.limits.output_bytes,
                            captured,
                        });
                    }
                    Err(output::OutputProblem::NotJson) => {
                        return Err(InvocationError::OutputNotJson {
                            extension: extension_name(),
                            node: node_name(),
                            captured,
                        });
                    }
                    Err(output::OutputProblem::HoldsSecret(names)) => {
                        return Err(InvocationError::OutputHoldsSecret {
                            extension: extension_name(),
                            node: node_name(),
                            names,
                            captured,
                        });
                    }
                }
            }
            Some(Ok(Ok(Err(message)))) => {
                let message = shown(scrubber.scrub_str(&message));
                Err(egress::clip(&message, self.limits.output_bytes))
            }
        };
        let Captured {
            stdout,
            stderr,
            logs,
            secrets_read,
            egress,
            egress_dropped,
            duration,
        } = *captured;
        Ok(Outcome {
            result,
            stdout,
            stderr,
            logs,
            secrets_read,
            egress,
            egress_dropped,
            duration,
        })
    }
}
