//! The engine itself: deploy preflight, and executions of a deployed graph.
//!
//! One [`Engine`] per process holds the runtime, the vault and the engine
//! store; executions share it (`Arc<Engine>`) and run concurrently.
//!
//! An execution:
//! 1. refuses a paused or undeployed bot;
//! 2. takes one snapshot of the bot's secrets, so a rotation or overwrite
//!    during the execution affects the next one, never this one;
//! 3. starts every node whose dependencies have finished, at once (a
//!    tokio task each), rendering `{{trigger.*}}` and
//!    `{{nodes.ID.output.*}}` into its config first;
//! 4. on a failure, skips everything downstream of the failed node and
//!    lets independent branches finish;
//! 5. stores the execution with every node's status, duration, output,
//!    logs and the names of the secrets it read, all scrubbed of every value
//!    of the bot's secrets (the runtime already scrubbed each node of the
//!    values it read; this second pass catches a value that reached a node
//!    another way, for example through the trigger).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use super::credentials::{self, CredentialFinding};
use super::graph::{ExtensionRef, Graph, GraphError, ValidatedGraph, ValidatedNode};
use super::queue::{Claimed, Enqueued, GroupCommit, QueuedRun, RunQueue};
use super::registry::{self, RegistryError};
use super::store::{
    Deployment, EngineStore, ExecutionId, ExecutionStatus, LogEntry, NodeRun, NodeStatus, Pin,
    StoreError, TriggerId,
};
use super::template::{self, Context};
use crate::runtime::{
    Captured, ExecutionGuard, Extension, ExtensionDescription, InvocationError, Runtime, clip,
};
use crate::vault::{Scope, SecretSnapshot, SecretValue, Vault, VaultError};

/// What went wrong, engine-side. Node failures are not errors: they are
/// recorded in the execution.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "bot {0:?} has no deployed graph; deploy one with `narakim bot deploy {0} --graph FILE`"
    )]
    NotDeployed(String),
    #[error("bot {0:?} is paused; resume it with `narakim bot resume {0}`")]
    Paused(String),
    #[error(
        "node {node:?} is pinned to {pinned}, but the installed extension is {found}; the deployed graph runs only what deploy checked: deploy the bot again to move it"
    )]
    PinMismatch {
        node: String,
        pinned: String,
        found: String,
    },
    #[error("deploy of bot {bot:?} refused:\n{reasons}")]
    DeployRefused { bot: String, reasons: String },
    #[error("the trigger must be a JSON value: {0}")]
    BadTrigger(String),
    #[error(
        "the secrets of bot {bot:?} cannot all be decrypted ({reason}), so its execution records could not be scrubbed; run `narakim key verify`"
    )]
    Unscrubbable { bot: String, reason: String },
}

/// Where a required secret of a node comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    Bot,
    Team,
    /// Not stored: a trigger of the graph hands it to each run it starts
    /// (a Discord interaction's token).
    Trigger,
    Missing,
}

/// One row of `bot status`: a node's required secret and where it resolves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretStatus {
    /// The node id, or `trigger:ID` for the key of a trigger's verifier
    /// (`:` never appears in a node id).
    pub node: String,
    pub extension: String,
    pub secret: String,
    pub source: SecretSource,
}

/// The configurations view of a bot.
#[derive(Debug, Clone, Serialize)]
pub struct BotStatus {
    pub bot: String,
    pub paused: bool,
    /// The deployed graph's version, if any.
    pub graph_version: Option<String>,
    pub secrets: Vec<SecretStatus>,
    /// Node id → the exact extension the deployed graph runs (empty when
    /// showing a graph from a file, or for a deployment that predates pins).
    pub pins: BTreeMap<String, Pin>,
    /// The deployed graph's triggers, each with where it listens.
    pub triggers: Vec<TriggerStatus>,
}

/// One trigger of a deployed graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerStatus {
    /// The trigger's id in the graph.
    pub trigger: String,
    pub kind: &'static str,
    /// The verifier's scheme.
    pub verify: &'static str,
    /// The secret holding its key.
    pub secret: Option<String>,
    /// The path a sender posts to, such as `/hooks/trg_…` (`None` until
    /// the graph is deployed, and for a schedule).
    pub path: Option<String>,
    /// A deployed schedule's next fire time (RFC 3339, UTC).
    pub next_fire: Option<String>,
}

/// A trigger of a deployed graph, found by its id for a delivery.
#[derive(Debug, Clone)]
pub struct LiveTrigger {
    pub id: TriggerId,
    pub bot: String,
    pub trigger: crate::trigger::Trigger,
    pub scheme: crate::trigger::verify::Scheme,
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecretSource::Bot => "bot scope",
            SecretSource::Team => "team scope",
            SecretSource::Trigger => "each run's trigger",
            SecretSource::Missing => "MISSING",
        })
    }
}

impl BotStatus {
    pub fn missing(&self) -> impl Iterator<Item = &SecretStatus> {
        self.secrets
            .iter()
            .filter(|s| s.source == SecretSource::Missing)
    }
}

/// A node's result within an execution.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub extension: String,
    pub status: NodeStatus,
    pub duration_ms: i64,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub secrets_read: Vec<String>,
    /// Requests the node made that the egress check refused.
    pub egress_refused: usize,
}

/// What `run` returns: the stored execution, in brief.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionReport {
    pub id: ExecutionId,
    pub bot: String,
    pub graph_version: String,
    pub status: ExecutionStatus,
    pub duration_ms: i64,
    pub nodes: Vec<NodeReport>,
    pub summary: String,
}

/// See [`Engine::prepare`].
struct Prepared {
    bot: String,
    deployment: Deployment,
    graph: Arc<ValidatedGraph>,
    guard: Arc<ExecutionGuard>,
}

/// The runtime, the vault and the engine store, shared by every execution.
pub struct Engine {
    runtime: Arc<Runtime>,
    vault: Mutex<Vault>,
    store: Mutex<EngineStore>,
    /// Loaded (compiled, pre-linked) extensions by `name@version`.
    loaded: Mutex<HashMap<String, Arc<Extension>>>,
    /// Validated graphs by graph version.
    graphs: Mutex<HashMap<String, Arc<ValidatedGraph>>>,
    /// Accepts queued runs in shared commits, once started.
    group_commit: std::sync::OnceLock<GroupCommit<EngineStore>>,
    /// Values that live only for one run, by its execution id, held in
    /// memory from before the run is queued until a worker takes them: a
    /// Discord interaction's token is never written to disk.
    execution_values: Mutex<HashMap<ExecutionId, HeldValues>>,
}

struct HeldValues {
    since: Instant,
    values: Vec<(String, SecretValue)>,
}

/// Longest execution values are held: a Discord interaction token is
/// worthless after 15 minutes.
const HOLD_EXECUTION_VALUES: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A store's refusal of a run, as the engine states it.
fn refusal(e: StoreError) -> EngineError {
    match e {
        StoreError::BotPaused { bot } => EngineError::Paused(bot),
        StoreError::BotNotDeployed { bot } => EngineError::NotDeployed(bot),
        other => other.into(),
    }
}

/// How long a write of an execution's record is retried while PostgreSQL
/// is unreachable.
const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(60);

impl EngineError {
    /// The database was unreachable (see [`StoreError::is_transient`]).
    fn is_transient(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_transient(),
            EngineError::Vault(VaultError::Db { source, .. }) => source.is_connection(),
            _ => false,
        }
    }
}

impl Engine {
    pub fn new(runtime: Arc<Runtime>, vault: Vault, store: EngineStore) -> Self {
        Engine {
            runtime,
            vault: Mutex::new(vault),
            store: Mutex::new(store),
            loaded: Mutex::default(),
            graphs: Mutex::default(),
            group_commit: std::sync::OnceLock::new(),
            execution_values: Mutex::default(),
        }
    }

    /// Holds `values` for the run that will be queued as `id` (see
    /// [`QueuedRun::id`]): its nodes read them through the secrets
    /// interface and every record of it scrubs them, and they are never
    /// stored. Call before queueing, so no worker can claim the run first.
    /// Keyed by the execution id, which the server draws at random, so no
    /// other run (one started over the API with a made-up trigger, say)
    /// can take them. A run recovered after a restart finds none.
    pub fn hold_execution_values(&self, id: &ExecutionId, values: Vec<(String, SecretValue)>) {
        let mut held = lock(&self.execution_values);
        held.retain(|_, h| h.since.elapsed() < HOLD_EXECUTION_VALUES);
        held.insert(
            id.clone(),
            HeldValues {
                since: Instant::now(),
                values,
            },
        );
    }

    /// Forgets what [`hold_execution_values`](Self::hold_execution_values)
    /// held for `id` (the run was not queued as `id`).
    pub fn drop_execution_values(&self, id: &ExecutionId) {
        lock(&self.execution_values).remove(id);
    }

    fn take_execution_values(&self, id: &ExecutionId) -> Vec<(String, SecretValue)> {
        lock(&self.execution_values)
            .remove(id)
            .filter(|h| h.since.elapsed() < HOLD_EXECUTION_VALUES)
            .map(|h| h.values)
            .unwrap_or_default()
    }

    /// From now on, [`enqueue`](Self::enqueue) shares commits between
    /// concurrent callers (see [`GroupCommit`]), over a connection of its
    /// own to `engine.db`.
    pub fn start_group_commit(&self) -> Result<(), EngineError> {
        if self.group_commit.get().is_none() {
            let mut store = self.store().reopen()?;
            let checkpointer = store.hand_off_checkpoints()?;
            let _ = self
                .group_commit
                .set(GroupCommit::start(store, move || checkpointer.committed()));
        }
        Ok(())
    }

    /// Runs a write of `engine.db`: on the writer thread once
    /// [`start_group_commit`](Self::start_group_commit) ran (see
    /// [`GroupCommit`] for why), else on the shared connection.
    fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&mut EngineStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match self.group_commit.get() {
            Some(writer) => writer.write(write),
            None => write(&mut self.store()),
        }
    }

    /// Audits each credential a node's requests carried: one entry per
    /// secret, host and outcome (`credential.use`, with how many requests;
    /// `credential.refused`, with the first reason). Names only.
    fn audit_credentials(
        &self,
        bot: &str,
        node: &str,
        egress: &[crate::runtime::EgressEvent],
    ) -> Result<(), VaultError> {
        let mut uses: std::collections::BTreeMap<(&str, &str, bool), (usize, Option<&str>)> =
            std::collections::BTreeMap::new();
        for event in egress {
            for name in &event.credentials {
                let entry = uses
                    .entry((name, &event.host, event.refused.is_none()))
                    .or_insert((0, event.refused.as_deref()));
                entry.0 += 1;
            }
        }
        if uses.is_empty() {
            return Ok(());
        }
        let scope = Scope::Bot(bot.to_owned());
        let details: Vec<(&str, &str, String)> = uses
            .into_iter()
            .map(|((name, host, sent), (count, reason))| {
                let requests = if count == 1 { "request" } else { "requests" };
                match (sent, reason) {
                    (true, _) => (
                        "credential.use",
                        name,
                        format!("node {node}: {count} {requests} to {host}"),
                    ),
                    (false, reason) => (
                        "credential.refused",
                        name,
                        format!(
                            "node {node}: {count} {requests} to {host} refused: {}",
                            reason.unwrap_or("")
                        ),
                    ),
                }
            })
            .collect();
        let entries: Vec<(&str, Option<&Scope>, Option<&str>, &str)> = details
            .iter()
            .map(|(action, name, detail)| (*action, Some(&scope), Some(*name), detail.as_str()))
            .collect();
        self.vault().audit_actions(&entries)
    }

    /// Claims the oldest waiting run for `owner` (see [`RunQueue::claim`]).
    pub fn claim(
        &self,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let owner = owner.to_owned();
        self.write(move |store| store.claim(&owner, lease))
    }

    /// Leases up to `max` waiting runs to `owner` (see
    /// [`RunQueue::claim_many`]); each is begun with [`Engine::start_claimed`].
    pub fn claim_many(
        &self,
        owner: &str,
        lease: std::time::Duration,
        max: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let owner = owner.to_owned();
        self.write(move |store| store.claim_many(&owner, lease, max))
    }

    /// Marks a leased run as running: `false` when the lease was lost and
    /// the run must not start here.
    pub fn start_claimed(&self, owner: &str, id: &ExecutionId) -> Result<bool, StoreError> {
        let (owner, id) = (owner.to_owned(), id.clone());
        self.write(move |store| store.start(&owner, &id))
    }

    /// The heartbeat: extends `owner`'s leases (see [`RunQueue::renew`]).
    pub fn renew_leases(
        &self,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<usize, StoreError> {
        let owner = owner.to_owned();
        self.write(move |store| store.renew(&owner, lease))
    }

    /// The reaper (see [`RunQueue::reap`]).
    pub fn reap(&self) -> Result<crate::engine::queue::Reaped, StoreError> {
        self.write(|store| store.reap())
    }

    fn finish(
        &self,
        id: &ExecutionId,
        status: ExecutionStatus,
        summary: Option<String>,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        self.write_durably(move |store| store.finish_execution(&id, status, summary.as_deref()))
    }

    /// [`write`](Self::write), tried again while PostgreSQL is unreachable
    /// (a dropped connection, a restart), for up to [`RETRY_FOR`]: what an
    /// execution did is recorded once the database is back, instead of its
    /// run being reaped as interrupted. Each write is idempotent or, for a
    /// node run, recognised when an earlier try committed.
    fn write_durably<T: Send + 'static>(
        &self,
        write: impl Fn(&mut EngineStore) -> Result<T, StoreError> + Send + Sync + 'static,
    ) -> Result<T, StoreError> {
        let write = Arc::new(write);
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            let attempt = write.clone();
            match self.write(move |store| attempt(store)) {
                Err(e)
                    if e.is_transient()
                        && self.store().backend() == crate::db::Backend::Postgres
                        && started.elapsed() < RETRY_FOR =>
                {
                    tracing::warn!("the engine database is unreachable; trying again: {e}");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
                done => return done,
            }
        }
    }

    /// Records a node run durably; a retry that finds the run an earlier
    /// try committed is that run.
    fn record_durably(&self, run: NodeRun) -> Result<NodeRun, StoreError> {
        let first = std::sync::atomic::AtomicBool::new(true);
        self.write_durably(move |store| {
            let retry = !first.swap(false, std::sync::atomic::Ordering::AcqRel);
            match store.record_node_run(&run) {
                Err(StoreError::NodeRunExists { .. }) if retry => Ok(run.clone()),
                done => done.map(|()| run.clone()),
            }
        })
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The vault, for commands that manage secrets alongside the engine.
    pub fn vault(&self) -> MutexGuard<'_, Vault> {
        lock(&self.vault)
    }

    /// The engine store, for listing executions and extensions.
    pub fn store(&self) -> MutexGuard<'_, EngineStore> {
        lock(&self.store)
    }

    /// Where each required secret of each node of `graph` resolves for
    /// `bot`: its own scope, its team's, or missing.
    pub fn secret_status(
        &self,
        bot: &str,
        graph: &ValidatedGraph,
    ) -> Result<Vec<SecretStatus>, EngineError> {
        let snapshot = self.vault().snapshot_for_bot(bot)?;
        let scopes: HashMap<&str, Scope> = snapshot.names().collect();
        let provided: std::collections::HashSet<&str> = graph
            .graph()
            .triggers
            .iter()
            .flat_map(|t| t.provides().iter().copied())
            .collect();
        let mut out = Vec::new();
        for node in graph.topological_order() {
            let config = node.node.config.to_string();
            let mut names: Vec<String> = node
                .extension
                .declared_secrets(&config)
                .unwrap_or_default()
                .into_iter()
                .collect();
            names.sort();
            for secret in names {
                let source = match scopes.get(secret.as_str()) {
                    _ if provided.contains(secret.as_str()) => SecretSource::Trigger,
                    Some(Scope::Bot(_)) => SecretSource::Bot,
                    Some(Scope::Team(_)) => SecretSource::Team,
                    None => SecretSource::Missing,
                };
                out.push(SecretStatus {
                    node: node.node.id.clone(),
                    extension: extension_label(node),
                    secret,
                    source,
                });
            }
        }
        for trigger in &graph.graph().triggers {
            let (Some(secret), Ok(scheme)) = (trigger.secret(), trigger.scheme()) else {
                continue;
            };
            let source = match scopes.get(secret) {
                Some(Scope::Bot(_)) => SecretSource::Bot,
                Some(Scope::Team(_)) => SecretSource::Team,
                None => SecretSource::Missing,
            };
            out.push(SecretStatus {
                node: format!("trigger:{}", trigger.id()),
                extension: format!("{} verifier ({})", trigger.kind(), scheme.name()),
                secret: secret.to_owned(),
                source,
            });
        }
        Ok(out)
    }

    /// Why a stored trigger key cannot be used by its verifier (the key
    /// itself is never shown). Missing keys are reported elsewhere.
    fn trigger_key_reasons(&self, bot: &str, graph: &Graph) -> Result<Vec<String>, EngineError> {
        use crate::vault::SecretResolver;
        if graph.triggers.is_empty() {
            return Ok(Vec::new());
        }
        let snapshot = self.vault().snapshot_for_bot(bot)?;
        let mut reasons = Vec::new();
        for trigger in &graph.triggers {
            let (Some(secret), Ok(scheme)) = (trigger.secret(), trigger.scheme()) else {
                continue;
            };
            let Ok(key) = snapshot.resolve(secret) else {
                continue;
            };
            if let Err(e) = scheme.check_key(key.expose().as_bytes()) {
                reasons.push(format!(
                    "trigger {:?}: the secret {secret} cannot be its {} key: {e}; store the key as the sender shows it with `narakim secret set {secret} --bot {bot}`",
                    trigger.id(),
                    scheme.name()
                ));
            }
        }
        Ok(reasons)
    }

    /// The deployed trigger `id` is, with its bot: `None` when no deployed
    /// graph declares it (an unknown id, a removed trigger, an undeployed
    /// bot). Whether the bot is paused is checked when the run is queued.
    pub fn live_trigger(&self, id: &str) -> Result<Option<LiveTrigger>, EngineError> {
        let Some((bot, trigger)) = self.deployed_trigger(id)? else {
            return Ok(None);
        };
        let Ok(scheme) = trigger.scheme() else {
            return Ok(None);
        };
        Ok(Some(LiveTrigger {
            id: TriggerId::from(id.to_owned()),
            bot,
            trigger,
            scheme,
        }))
    }

    /// The trigger `id` is, as the deployed graph of its bot declares it,
    /// with the bot; `None` when no deployed graph declares it.
    pub fn deployed_trigger(
        &self,
        id: &str,
    ) -> Result<Option<(String, crate::trigger::Trigger)>, EngineError> {
        let (found, deployment) = {
            let store = self.store();
            let Some((bot, name)) = store.trigger(id)? else {
                return Ok(None);
            };
            let deployment = store.active_deployment(&bot)?;
            ((bot, name), deployment)
        };
        let ((bot, name), Some(deployment)) = (found, deployment) else {
            return Ok(None);
        };
        let graph = self.deployed_graph(&deployment)?;
        Ok(graph
            .graph()
            .triggers
            .iter()
            .find(|t| t.id() == name)
            .map(|t| (bot, t.clone())))
    }

    /// `bot status`: the deployed graph's secrets, or `graph`'s when given.
    pub fn status(&self, bot: &str, graph: Option<&Graph>) -> Result<BotStatus, EngineError> {
        // Fails clearly for an unknown bot.
        self.vault().snapshot_for_bot(bot)?;
        let (paused, deployment) = {
            let store = self.store();
            (store.is_paused(bot)?, store.active_deployment(bot)?)
        };
        let validated = match (graph, &deployment) {
            (Some(graph), _) => {
                // Validation messages may quote config text: refuse to
                // look at a graph that holds a credential first.
                let reasons = self.credential_reasons(graph)?;
                if !reasons.is_empty() {
                    return Err(EngineError::DeployRefused {
                        bot: bot.to_owned(),
                        reasons: reasons.join("\n"),
                    });
                }
                Some(Arc::new(self.validate(graph)?))
            }
            (None, Some(d)) => Some(self.deployed_graph(d)?),
            (None, None) => None,
        };
        let secrets = match &validated {
            Some(g) => self.secret_status(bot, g)?,
            None => Vec::new(),
        };
        let pins = match (graph, &deployment) {
            (None, Some(d)) => d.pins.clone(),
            _ => BTreeMap::new(),
        };
        let (ids, fires) = match graph {
            None => {
                let store = self.store();
                (store.triggers_of(bot)?, store.next_fires_of(bot)?)
            }
            Some(_) => (BTreeMap::new(), BTreeMap::new()),
        };
        let triggers = validated
            .iter()
            .flat_map(|g| g.graph().triggers.iter())
            .map(|t| TriggerStatus {
                trigger: t.id().to_owned(),
                kind: t.kind(),
                verify: match t {
                    crate::trigger::Trigger::Schedule { .. } => "cron",
                    _ => t.scheme().map(|s| s.name()).unwrap_or("none"),
                },
                secret: t.secret().map(str::to_owned),
                path: ids
                    .get(t.id())
                    .and_then(|id| crate::trigger::path(t, id.as_str())),
                next_fire: fires.get(t.id()).map(|&ms| crate::vault::format_time(ms)),
            })
            .collect();
        Ok(BotStatus {
            bot: bot.to_owned(),
            paused,
            graph_version: deployment.map(|d| d.graph_version),
            secrets,
            pins,
            triggers,
        })
    }

    fn validate(&self, graph: &Graph) -> Result<ValidatedGraph, EngineError> {
        Ok(graph.validate(&*self.store())?)
    }

    /// Why `graph` holds a credential: something that looks like one, or
    /// the value of a stored secret (compared by keyed fingerprint: nothing
    /// is decrypted, nothing printed but names). Empty when it holds none.
    pub fn credential_reasons(&self, graph: &Graph) -> Result<Vec<String>, EngineError> {
        let mut reasons = Vec::new();

        // Raw credentials in configs or templates.
        let findings: Vec<CredentialFinding> = graph.credential_findings();
        if !findings.is_empty() {
            reasons.push(credentials::refusal_message(&findings));
        }

        // Stored secret values pasted into a config, compared by keyed
        // fingerprint: nothing is decrypted, nothing printed but names.
        let mut candidates = Vec::new();
        for node in &graph.nodes {
            for (pointer, candidate) in credentials::candidate_values(&node.config) {
                candidates.push((node.id.clone(), pointer, candidate));
            }
        }
        let texts: Vec<&str> = candidates.iter().map(|(_, _, c)| c.as_str()).collect();
        let matches = self.vault().stored_values_among(&texts)?;
        let mut seen = std::collections::BTreeSet::new();
        for m in matches {
            let (node, pointer, _) = &candidates[m.candidate];
            if seen.insert((node.clone(), pointer.clone(), m.name.clone())) {
                reasons.push(format!(
                    "node {node:?}: config {pointer} holds the value of the stored secret {} ({}); \
                     a config must not contain a secret: remove it and let the extension read {} from the vault",
                    m.name,
                    m.scope,
                    m.name
                ));
            }
        }
        drop(candidates);
        Ok(reasons)
    }

    /// Every reason `graph` may not be deployed for `bot`, or the validated
    /// graph. Nothing is changed.
    pub fn preflight(&self, bot: &str, graph: &Graph) -> Result<ValidatedGraph, EngineError> {
        // The credential checks come first: they need only the document,
        // and validation messages may quote config text (an extension's
        // own check echoes a bad URL, for example), which must not be shown
        // when that text holds a credential.
        let mut reasons = self.credential_reasons(graph)?;

        let validated = match self.validate(graph) {
            Ok(validated) => validated,
            Err(e) if reasons.is_empty() => return Err(e),
            Err(e) => {
                let count = match &e {
                    EngineError::Graph(GraphError::Invalid(problems)) => problems.len(),
                    _ => 1,
                };
                let problems = if count == 1 { "problem" } else { "problems" };
                reasons.push(format!(
                    "the graph also has {count} other {problems}, not shown while it holds a \
                     credential (a message could quote it); remove the credential and deploy \
                     again to see {}",
                    if count == 1 { "it" } else { "them" }
                ));
                return Err(EngineError::DeployRefused {
                    bot: bot.to_owned(),
                    reasons: reasons.join("\n"),
                });
            }
        };

        // Every required secret configured.
        let missing: Vec<SecretStatus> = self
            .secret_status(bot, &validated)?
            .into_iter()
            .filter(|s| s.source == SecretSource::Missing)
            .collect();
        if !missing.is_empty() {
            let mut text = String::from("required secrets are missing:");
            let mut names = std::collections::BTreeSet::new();
            for s in &missing {
                text.push_str(&format!(
                    "\n  - {} (node {:?}, {})",
                    s.secret, s.node, s.extension
                ));
                names.insert(s.secret.clone());
            }
            text.push_str("\nset them with:");
            for name in names {
                text.push_str(&format!(
                    "\n  narakim secret set {name} --bot {bot}    (or --team TEAM to share it)"
                ));
            }
            reasons.push(text);
        }
        reasons.extend(self.trigger_key_reasons(bot, graph)?);

        if reasons.is_empty() {
            Ok(validated)
        } else {
            Err(EngineError::DeployRefused {
                bot: bot.to_owned(),
                reasons: reasons.join("\n"),
            })
        }
    }

    /// Deploys `graph` for `bot` after [`Engine::preflight`].
    pub fn deploy(&self, bot: &str, graph: &Graph) -> Result<Deployment, EngineError> {
        self.deploy_with_changes(bot, graph).map(|(d, _)| d)
    }

    /// Deploys `graph` for `bot` after [`Engine::preflight`], pinning every
    /// node to the exact version and content hash it was checked against,
    /// and says what changed against the bot's previous deployment: which
    /// node moved to which version, with the change in its secrets and
    /// hosts. Installing a new version later changes nothing until the bot
    /// is deployed again.
    pub fn deploy_with_changes(
        &self,
        bot: &str,
        graph: &Graph,
    ) -> Result<(Deployment, Vec<String>), EngineError> {
        let validated = self.preflight(bot, graph)?;
        let mut pinned = graph.clone();
        let mut pins = BTreeMap::new();
        let mut store = self.store();
        for node in &mut pinned.nodes {
            let checked = &validated
                .node(&node.id)
                .expect("validation keeps every node")
                .extension;
            let installed = store
                .extension(&checked.name, Some(&checked.version))?
                .ok_or_else(|| RegistryError::NotInstalled {
                    name: checked.name.clone(),
                })?;
            node.extension = ExtensionRef {
                name: checked.name.clone(),
                version: Some(checked.version.clone()),
            };
            pins.insert(
                node.id.clone(),
                Pin {
                    name: installed.name,
                    version: installed.version,
                    sha256: installed.sha256,
                },
            );
        }
        let changes = match store.active_deployment(bot)? {
            Some(previous) => pin_changes(&store, &previous.pins, &pins)?,
            None => Vec::new(),
        };
        let version = pinned.version();
        // A schedule fires first at its next time after the deploy; a
        // redeploy moves it on the same way, so it never fires twice.
        let now = crate::trigger::now_ms();
        let triggers: Vec<(&str, Option<i64>)> = pinned
            .triggers
            .iter()
            .map(|t| (t.id(), t.schedule().and_then(|s| s.next_after(now))))
            .collect();
        let deployment = store.deploy_with_triggers(
            bot,
            &pinned.canonical_json(),
            &version,
            &pins,
            &triggers,
        )?;
        drop(store);
        lock(&self.graphs).insert(version, Arc::new(validated));
        Ok((deployment, changes))
    }

    pub fn set_paused(&self, bot: &str, paused: bool) -> Result<(), EngineError> {
        self.vault().snapshot_for_bot(bot)?;
        Ok(self.store().set_paused(bot, paused)?)
    }

    fn deployed_graph(&self, deployment: &Deployment) -> Result<Arc<ValidatedGraph>, EngineError> {
        if let Some(g) = lock(&self.graphs).get(&deployment.graph_version) {
            return Ok(g.clone());
        }
        let graph = Graph::parse(&deployment.graph, Some(super::graph::Format::Json))?;
        let validated = Arc::new(self.validate(&graph)?);
        lock(&self.graphs).insert(deployment.graph_version.clone(), validated.clone());
        Ok(validated)
    }

    async fn extension_for(
        &self,
        node: &ValidatedNode,
        pin: Option<&Pin>,
    ) -> Result<Arc<Extension>, EngineError> {
        let loaded = self.load_extension(node).await?;
        if let Some(pin) = pin
            && (pin.version != node.extension.version || pin.sha256 != loaded.sha256())
        {
            return Err(EngineError::PinMismatch {
                node: node.node.id.clone(),
                pinned: pin.to_string(),
                found: format!(
                    "{}@{} (sha256 {})",
                    node.extension.name,
                    node.extension.version,
                    &loaded.sha256()[..12]
                ),
            });
        }
        Ok(loaded)
    }

    async fn load_extension(&self, node: &ValidatedNode) -> Result<Arc<Extension>, EngineError> {
        // An installed name and version never changes content (installing
        // other bytes under it is refused), so it keys the loaded cache and
        // a node of a warm extension costs no database read.
        let label = extension_label(node);
        if let Some(e) = lock(&self.loaded).get(&label) {
            return Ok(e.clone());
        }
        let installed = self
            .store()
            .extension(&node.extension.name, Some(&node.extension.version))?
            .ok_or_else(|| RegistryError::NotInstalled {
                name: node.extension.name.clone(),
            })?;
        // Installed through another node of a cluster: its bytes are in the
        // database, and land in this node's data directory once.
        if !installed.path.exists() {
            let bytes = self.store().component(&installed.sha256)?;
            if let Some(bytes) = bytes {
                registry::restore_component(&installed, &bytes)?;
            }
        }
        let loaded = Arc::new(registry::load_installed(&self.runtime, &installed).await?);
        lock(&self.loaded).insert(label, loaded.clone());
        Ok(loaded)
    }

    /// What every execution of `bot` starts from: its active deployment,
    /// the validated graph, and the guard over one snapshot of its secrets.
    /// Refuses a paused or undeployed bot.
    fn prepare(
        &self,
        bot: &str,
        extra: Vec<(String, SecretValue)>,
    ) -> Result<Prepared, EngineError> {
        let deployment = {
            let store = self.store();
            if store.is_paused(bot)? {
                return Err(EngineError::Paused(bot.to_owned()));
            }
            store
                .active_deployment(bot)?
                .ok_or_else(|| EngineError::NotDeployed(bot.to_owned()))?
        };
        let graph = self.deployed_graph(&deployment)?;
        // One snapshot per execution: a rotation mid-way affects the next.
        let snapshot = self.vault().snapshot_for_bot(bot)?;
        // Every value of the snapshot, and each one's strictest binding
        // across the graph: what every node's sinks are checked against.
        let configs: Vec<(ExtensionDescription, String)> = graph
            .topological_order()
            .map(|n| {
                // Placeholders rendered as `x`, as validation checked them:
                // they stand only where no secret or host is chosen.
                let config = super::graph::dummy_config(&n.node.config).to_string();
                (n.extension.clone(), config)
            })
            .collect();
        let guard = Arc::new(
            self.runtime
                .guard_with(
                    &snapshot,
                    configs.iter().map(|(d, c)| (d, c.as_str())),
                    extra,
                )
                .map_err(|e| EngineError::Unscrubbable {
                    bot: bot.to_owned(),
                    reason: e.to_string(),
                })?,
        );
        Ok(Prepared {
            bot: bot.to_owned(),
            deployment,
            graph,
            guard,
        })
    }

    /// Runs the bot's deployed graph once with `trigger`.
    pub async fn run(
        self: &Arc<Self>,
        bot: &str,
        trigger: Value,
    ) -> Result<ExecutionReport, EngineError> {
        let started = Instant::now();
        let prepared = self.prepare(bot, Vec::new())?;
        // The trigger comes from outside: no node sees a value in it.
        let trigger = prepared.guard.scrubber().scrub_json(&trigger);
        let id = self.store().start_execution(
            bot,
            &prepared.deployment.graph_version,
            &trigger.to_string(),
        )?;
        self.execute(prepared, id, trigger, started).await
    }

    /// A run of the snapshot's bot with `trigger`, ready for
    /// [`enqueue`](Self::enqueue): the trigger scrubbed of the bot's secret
    /// values before it is stored.
    ///
    /// `snapshot` is the bot's secrets as the caller read them, from its own
    /// vault connection rather than the engine's: accepting a run takes no
    /// lock that a running execution holds, and none across the commit.
    pub fn queued_run(
        &self,
        snapshot: &SecretSnapshot,
        trigger: &Value,
        idempotency_key: Option<&str>,
        started_by: Option<&str>,
    ) -> Result<QueuedRun, EngineError> {
        let Scope::Bot(bot) = snapshot.scope() else {
            return Err(EngineError::Unscrubbable {
                bot: String::new(),
                reason: "a run needs its bot's snapshot, and this one is a team's".into(),
            });
        };
        let scrubber = self
            .runtime
            .scrubber(snapshot)
            .map_err(|e| EngineError::Unscrubbable {
                bot: bot.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(QueuedRun {
            bot: bot.to_owned(),
            trigger_json: scrubber.scrub_json(trigger).to_string(),
            idempotency_key: idempotency_key.map(str::to_owned),
            started_by: started_by.map(str::to_owned),
            delivery: None,
            fire: None,
            id: None,
        })
    }

    /// Accepts `run` into the durable queue (see [`queue`](super::queue)),
    /// unless `bound` runs already wait; refused if the bot cannot run
    /// (paused, not deployed: checked in the accepting transaction).
    ///
    /// Once [`start_group_commit`](Self::start_group_commit) ran, the run
    /// shares a commit with the others arriving meanwhile, and the task
    /// waits for it without holding a thread. Before (the CLI, tests), it
    /// commits on the calling thread.
    pub async fn enqueue(&self, run: QueuedRun, bound: usize) -> Result<Enqueued, EngineError> {
        let enqueued = match self.group_commit.get() {
            Some(group) => group.enqueue(run, bound).await,
            None => self.store().enqueue(&run.as_new(), bound),
        };
        enqueued.map_err(refusal)
    }

    /// Runs a job claimed from the queue with the bot's deployment as it is
    /// now. If the bot can no longer run (paused or undeployed since), the
    /// run is recorded as failed with the reason.
    pub async fn run_claimed(
        self: &Arc<Self>,
        claimed: Claimed,
    ) -> Result<ExecutionReport, EngineError> {
        let started = Instant::now();
        let trigger: Value = serde_json::from_str(&claimed.trigger_json).unwrap_or(Value::Null);
        let extra = self.take_execution_values(&claimed.id);
        // Nothing has run yet, so a database that is briefly unreachable is
        // waited for rather than failing the run.
        let mut pause = std::time::Duration::from_millis(50);
        let prepared = loop {
            match self.prepare(&claimed.bot, extra.clone()) {
                Err(e) if e.is_transient() && started.elapsed() < RETRY_FOR => {
                    tracing::warn!(execution = %claimed.id, "the database is unreachable; waiting to start: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
                done => break done,
            }
        };
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                self.finish(
                    &claimed.id,
                    ExecutionStatus::Failed,
                    Some(format!("not run: {e}")),
                )?;
                return Err(e);
            }
        };
        // It runs the deployment of now: recorded if a deploy came between.
        if prepared.deployment.graph_version != claimed.graph_version {
            let (id, version) = (
                claimed.id.clone(),
                prepared.deployment.graph_version.clone(),
            );
            self.write_durably(move |store| store.set_execution_graph(&id, &version))?;
        }
        self.execute(prepared, claimed.id, trigger, started).await
    }

    /// Runs the prepared graph as execution `id` (already recorded as
    /// running), recording every node and the end.
    async fn execute(
        self: &Arc<Self>,
        prepared: Prepared,
        id: ExecutionId,
        trigger: Value,
        started: Instant,
    ) -> Result<ExecutionReport, EngineError> {
        let Prepared {
            bot,
            deployment,
            graph,
            guard,
        } = prepared;
        let bot = bot.as_str();
        let scrubber = guard.scrubber().clone();
        let output_limit = self.runtime.limits().output_bytes;

        // Whatever stops the execution early (a store error), it is not
        // left "running": record it as failed, with the reason.
        let executed: Result<ExecutionReport, EngineError> = async {
            let mut outputs: HashMap<String, Value> = HashMap::new();
            let mut reports: BTreeMap<String, NodeReport> = BTreeMap::new();
            let mut schedule = graph.schedule();
            let mut running = tokio::task::JoinSet::new();
            // Which node each task runs, so a task that panicked still ends
            // as that node's failure.
            let mut tasks: HashMap<tokio::task::Id, (String, String, i64)> = HashMap::new();
            let mut failed = false;
            let record_budget = self.runtime.limits().execution_record_bytes;
            let mut stored = 0usize;
            loop {
                for node in schedule.start() {
                    let rendered = template::render(
                        &node.node.config,
                        &Context {
                            trigger: &trigger,
                            outputs: &outputs,
                        },
                    );
                    // Outputs reach here canonical and holding no value of
                    // the execution, and the trigger was scrubbed: a node's
                    // input holds no value at all.
                    let input = serde_json::json!({
                        "trigger": trigger,
                        "nodes": node.dependencies.iter()
                            .map(|d| (d.clone(), serde_json::json!({"output": outputs.get(d)})))
                            .collect::<serde_json::Map<_, _>>(),
                    });
                    let extension = self
                        .extension_for(node, deployment.pins.get(&node.node.id))
                        .await;
                    let (engine, guard) = (self.clone(), guard.clone());
                    let deployed = super::graph::dummy_config(&node.node.config).to_string();
                    let (node_id, label) = (node.node.id.clone(), extension_label(node));
                    let begun = now_ms();
                    let task_node = node_id.clone();
                    let handle = running.spawn(async move {
                        let clock = Instant::now();
                        let result = match (rendered, extension) {
                            (Err(e), _) => Err(NodeFailure::Engine(format!("rendering the config: {e}"))),
                            (_, Err(e)) => Err(NodeFailure::Engine(e.to_string())),
                            (Ok(config), Ok(extension)) => {
                                let config = config.to_string();
                                match same_plan(&extension, &deployed, &config) {
                                    Err(reason) => Err(NodeFailure::Engine(reason)),
                                    Ok(()) => engine
                                        .runtime
                                        .invoke(
                                            &extension,
                                            &task_node,
                                            &guard,
                                            &config,
                                            &input.to_string(),
                                        )
                                        .await
                                        .map_err(NodeFailure::Invocation),
                                }
                            }
                        };
                        (task_node, clock.elapsed(), result)
                    });
                    tasks.insert(handle.id(), (node_id, label, begun));
                }
                let Some(joined) = running.join_next_with_id().await else {
                    break;
                };
                let (task, elapsed, result) = match joined {
                    Ok((task, (_, elapsed, result))) => (task, elapsed, result),
                    Err(join_error) => (
                        join_error.id(),
                        std::time::Duration::ZERO,
                        Err(NodeFailure::Engine(
                            "the node's task panicked inside narakim (a bug: please report it); the execution goes on without it".into(),
                        )),
                    ),
                };
                let (node, extension, begun) = tasks
                    .remove(&task)
                    .expect("every spawned task is recorded");
                let mut run = node_run(&id, &node, &extension, NodeStatus::Succeeded, begun);
                run.duration_ms = elapsed.as_millis() as i64;
                let mut output_value = None;
                let scrub = |text: &str| scrubber.scrub_str(text);
                let keep = |run: &mut NodeRun, c: &Captured| {
                    run.logs = c
                        .logs
                        .iter()
                        .map(|(level, message)| LogEntry {
                            level: level.clone(),
                            message: scrub(message),
                        })
                        .collect();
                    run.stdout = scrub(&c.stdout);
                    run.stderr = scrub(&c.stderr);
                    run.secrets_read = c.secrets_read.clone();
                    run.egress = c.egress.clone();
                    run.egress_dropped = c.egress_dropped;
                };
                match result {
                    Ok(outcome) => {
                        keep(&mut run, &Captured {
                            stdout: outcome.stdout,
                            stderr: outcome.stderr,
                            logs: outcome.logs,
                            secrets_read: outcome.secrets_read,
                            egress: outcome.egress,
                            egress_dropped: outcome.egress_dropped,
                            duration: outcome.duration,
                        });
                        match outcome.result {
                            // Canonical and free of every value already
                            // (the runtime refuses an output that holds one).
                            Ok(output) => {
                                output_value = serde_json::from_str::<Value>(&output).ok();
                                run.output = Some(output);
                            }
                            Err(message) => {
                                run.status = NodeStatus::Failed;
                                run.error = Some(clip(
                                    &scrub(&format!(
                                        "extension {extension} returned an error: {message}"
                                    )),
                                    output_limit,
                                ));
                            }
                        }
                    }
                    Err(NodeFailure::Invocation(error)) => {
                        if let Some(captured) = error.captured() {
                            keep(&mut run, captured);
                        }
                        run.status = NodeStatus::Failed;
                        run.error = Some(clip(&scrub(&error.to_string()), output_limit));
                    }
                    Err(NodeFailure::Engine(message)) => {
                        run.status = NodeStatus::Failed;
                        run.error = Some(clip(&scrub(&message), output_limit));
                    }
                }
                // One budget for the whole execution, whatever its number
                // of nodes: a node past it fails and keeps only its error.
                let size = record_size(&run);
                if stored + size > record_budget {
                    run.status = NodeStatus::Failed;
                    run.error = Some(format!(
                        "node {node:?}: its record ({size} bytes) would take the execution past its {record_budget}-byte record budget ({stored} bytes already stored); its output, logs and streams were not kept"
                    ));
                    run.output = None;
                    output_value = None;
                    run.logs.clear();
                    run.stdout.clear();
                    run.stderr.clear();
                }
                stored += record_size(&run);
                self.audit_credentials(bot, &node, &run.egress)?;
                let run = self.record_durably(run)?;
                reports.insert(node.clone(), report_of(&run, output_value.clone()));
                if run.status == NodeStatus::Succeeded {
                    outputs.insert(node.clone(), output_value.unwrap_or(Value::Null));
                    schedule.finish(&node);
                } else {
                    failed = true;
                    for skipped in schedule.fail(&node) {
                        let skipped_node = graph.node(skipped).expect("scheduled nodes exist");
                        let mut run = node_run(
                            &id,
                            skipped,
                            &extension_label(skipped_node),
                            NodeStatus::Skipped,
                            now_ms(),
                        );
                        run.error = Some(format!("not run: it depends on {node:?}, which failed"));
                        let run = self.record_durably(run)?;
                        reports.insert(skipped.to_owned(), report_of(&run, None));
                    }
                }
            }

            let status = if failed {
                ExecutionStatus::Failed
            } else {
                ExecutionStatus::Succeeded
            };
            let nodes: Vec<NodeReport> = graph
                .topological_order()
                .filter_map(|n| reports.remove(&n.node.id))
                .collect();
            let summary = summarize(&nodes);
            self.finish(&id, status, Some(summary.clone()))?;
            Ok(ExecutionReport {
                id: id.clone(),
                bot: bot.to_owned(),
                graph_version: deployment.graph_version,
                status,
                duration_ms: started.elapsed().as_millis() as i64,
                nodes,
                summary,
            })
        }
        .await;
        if let Err(e) = &executed {
            let _ = self.finish(
                &id,
                ExecutionStatus::Failed,
                Some(scrubber.scrub_str(&format!("engine error: {e}"))),
            );
        }
        executed
    }
}

/// Bytes a node run takes in the store, roughly: its texts and records.
fn record_size(run: &NodeRun) -> usize {
    run.output.as_ref().map_or(0, String::len)
        + run.error.as_ref().map_or(0, String::len)
        + run.stdout.len()
        + run.stderr.len()
        + run
            .logs
            .iter()
            .map(|l| l.level.len() + l.message.len() + 32)
            .sum::<usize>()
        + run
            .egress
            .iter()
            .map(|e| e.method.len() + e.host.len() + e.refused.as_ref().map_or(0, String::len) + 48)
            .sum::<usize>()
}

/// One line per node whose pin moves from `before` to `after`, with the
/// change in the secrets and hosts its extension reaches.
fn pin_changes(
    store: &EngineStore,
    before: &BTreeMap<String, Pin>,
    after: &BTreeMap<String, Pin>,
) -> Result<Vec<String>, EngineError> {
    let mut lines = Vec::new();
    for (node, new) in after {
        match before.get(node) {
            None => lines.push(format!("node {node:?}: added, runs {new}")),
            Some(old) if old == new => {}
            Some(old) => {
                lines.push(format!("node {node:?}: {old} -> {new}"));
                let described = |p: &Pin| {
                    store
                        .extension(&p.name, Some(&p.version))
                        .map(|e| e.map(|e| e.description))
                };
                if let (Some(a), Some(b)) = (described(old)?, described(new)?) {
                    for line in registry::DescriptionDiff::between(&a, &b)
                        .to_string()
                        .lines()
                    {
                        lines.push(format!("    {line}"));
                    }
                }
            }
        }
    }
    for node in before.keys().filter(|n| !after.contains_key(*n)) {
        lines.push(format!("node {node:?}: removed"));
    }
    Ok(lines)
}

/// Why a node failed: the runtime's error (with what the guest left
/// behind), or the engine's own.
enum NodeFailure {
    Invocation(InvocationError),
    Engine(String),
}

/// Refuses a rendered config that reads other secrets, or sends them to
/// other hosts, than the deployed one: templates may fill in data, never
/// choose a secret or a destination (deploy refuses templates on those
/// paths; this holds the line at run time too).
fn same_plan(extension: &Extension, deployed: &str, rendered: &str) -> Result<(), String> {
    let after = extension
        .plan(rendered)
        .map_err(|e| format!("the rendered config does not fit the extension: {e}"))?;
    let before = extension
        .plan(deployed)
        .map_err(|e| format!("the deployed config does not fit the extension: {e}"))?;
    if before == after {
        Ok(())
    } else {
        Err("the rendered config reads other secrets, or may send them to other hosts, than the deployed graph; templates may not choose a secret or a destination".into())
    }
}

/// A node run with nothing recorded yet: no output, error, logs or reads.
fn node_run(
    execution: &ExecutionId,
    node: &str,
    extension: &str,
    status: NodeStatus,
    started_at: i64,
) -> NodeRun {
    NodeRun {
        execution_id: execution.clone(),
        node: node.to_owned(),
        extension: extension.to_owned(),
        status,
        started_at,
        duration_ms: 0,
        output: None,
        error: None,
        logs: Vec::new(),
        stdout: String::new(),
        stderr: String::new(),
        secrets_read: Vec::new(),
        egress: Vec::new(),
        egress_dropped: 0,
    }
}

fn extension_label(node: &ValidatedNode) -> String {
    format!("{}@{}", node.extension.name, node.extension.version)
}

fn report_of(run: &NodeRun, output: Option<Value>) -> NodeReport {
    NodeReport {
        node: run.node.clone(),
        extension: run.extension.clone(),
        status: run.status,
        duration_ms: run.duration_ms,
        output,
        error: run.error.clone(),
        secrets_read: run.secrets_read.clone(),
        egress_refused: run.egress.iter().filter(|e| e.refused.is_some()).count(),
    }
}

/// One line: how many nodes did what, and the first failure.
fn summarize(nodes: &[NodeReport]) -> String {
    let count = |s: NodeStatus| nodes.iter().filter(|n| n.status == s).count();
    let mut text = format!(
        "{} succeeded, {} failed, {} skipped",
        count(NodeStatus::Succeeded),
        count(NodeStatus::Failed),
        count(NodeStatus::Skipped)
    );
    if let Some(first) = nodes.iter().find(|n| n.status == NodeStatus::Failed) {
        text.push_str(&format!(
            "; node {:?} failed: {}",
            first.node,
            first.error.as_deref().unwrap_or("unknown error")
        ));
    }
    text
}
