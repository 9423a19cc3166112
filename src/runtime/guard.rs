//! What one execution may reveal, and where each value may go.
//!
//! A value can leave a node without that node reading it: node A reads a
//! token and outputs it reversed, node B reverses it back and sends it. So
//! every sink of every node of an execution (its requests, output, error,
//! logs, stdout and stderr) is checked against every value of the
//! execution's snapshot, not only against the values the node read; and a
//! value may be sent only where every node that declares it allows. The
//! guard holds both: one scrubber over all the snapshot's values (decrypted
//! once per execution) and each secret's strictest binding.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::extension::{ExtensionDescription, Plan};
use crate::redact::Scrubber;
use crate::vault::{Generation, ResolveError, Scope, SecretResolver, SecretSnapshot, SecretValue};

/// The execution-wide view of its secrets. Build one per execution and
/// pass it to every [`Runtime::invoke`](super::Runtime::invoke) of it.
pub struct ExecutionGuard {
    /// Whose execution it is (the snapshot's bot, or team), for its share
    /// of the connection pool.
    owner: Arc<str>,
    opened: Arc<Opened>,
    /// Secret → hosts: the intersection of the bindings of every node of
    /// the execution that declares it. A secret no node declares is absent:
    /// its value may go nowhere.
    bindings: Arc<Bindings>,
}

/// Secret → the hosts its value may go to in one execution (asked on
/// every request and credential: a fast hasher over names the
/// execution's own extensions declared).
type Bindings = HashMap<String, HashSet<String>, foldhash::fast::RandomState>;

/// Where one invocation may send each value: within the execution's
/// binding, and within the node's own binding for what it declares.
/// Answered from both on each question rather than merged up front, so
/// an invocation that sends nothing pays nothing for it.
#[derive(Clone)]
pub(crate) struct Bound {
    execution: Arc<Bindings>,
    plan: Arc<Plan>,
}

impl Bound {
    /// Whether `secret`'s value may be sent to `host`.
    pub(crate) fn allows(&self, secret: &str, host: &str) -> bool {
        self.execution
            .get(secret)
            .is_some_and(|hosts| hosts.contains(host))
            && (!self.plan.declared.contains(secret)
                || self
                    .plan
                    .bound
                    .get(secret)
                    .is_some_and(|mine| mine.contains(host)))
    }

    /// Nowhere, for nothing: `describe`'s.
    pub(crate) fn nowhere() -> Self {
        Bound {
            execution: Arc::default(),
            plan: Arc::default(),
        }
    }

    /// The invocation's plan: what it declared and where each placeholder
    /// may be substituted.
    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The hosts `secret`'s value may be sent to, sorted: the node's own
    /// list as it is when the execution allows all of it (as it does when
    /// no other node narrows it).
    pub(crate) fn hosts(&self, secret: &str) -> Arc<[String]> {
        if let Some(rule) = self.plan.credentials.get(secret) {
            return self.narrowed(secret, &rule.hosts);
        }
        let execution = self.execution.get(secret);
        let mut hosts: Vec<String> = execution.into_iter().flatten().cloned().collect();
        hosts.sort();
        hosts.into()
    }

    /// A declared secret's own hosts (`mine`, sorted) within the
    /// execution's binding for it: `mine` itself when that allows all.
    pub(crate) fn narrowed(&self, secret: &str, mine: &Arc<[String]>) -> Arc<[String]> {
        let execution = self.execution.get(secret);
        let within = |host: &String| execution.is_some_and(|hosts| hosts.contains(host));
        if mine.iter().all(within) {
            mine.clone()
        } else {
            mine.iter().filter(|h| within(h)).cloned().collect()
        }
    }
}

/// Every value of one snapshot, decrypted once: what `secrets.get` hands
/// out (the name's effective value) and the scrubber over all of them.
/// Zeroized when the last execution holding it, and the cache, let go.
pub(crate) struct Opened {
    /// Looked up on every read (a fast hasher: the names are the vault's).
    values: HashMap<String, SecretValue, foldhash::fast::RandomState>,
    pub(crate) scrubber: Arc<Scrubber>,
}

impl Opened {
    /// Decrypts every record of `snapshot`; fails closed on the first that
    /// does not open.
    fn of(snapshot: &SecretSnapshot) -> Result<Self, ResolveError> {
        Self::with_extra(snapshot, Vec::new())
    }

    /// [`of`](Self::of), plus `extra` values that live only for one
    /// execution; they override stored values of the same name.
    pub(crate) fn with_extra(
        snapshot: &SecretSnapshot,
        extra: Vec<(String, SecretValue)>,
    ) -> Result<Self, ResolveError> {
        let mut all = snapshot.all_values()?;
        // First, so they are the name's effective value below.
        all.splice(0..0, extra);
        let scrubber = Scrubber::new(all.iter().map(|(name, value)| (name.as_str(), value)));
        let mut values = HashMap::with_capacity_and_hasher(
            snapshot.len(),
            foldhash::fast::RandomState::default(),
        );
        // `all_values` puts a name's effective record (the bot's) first.
        for (name, value) in all {
            values.entry(name).or_insert(value);
        }
        Ok(Opened { values, scrubber })
    }
}

impl SecretResolver for Opened {
    fn resolve(&self, name: &str) -> Result<SecretValue, ResolveError> {
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| ResolveError::NotConfigured {
                name: name.to_owned(),
            })
    }

    fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

impl std::fmt::Debug for ExecutionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutionGuard")
            .field("secrets", &self.opened.scrubber.names())
            .field("bindings", &self.bindings)
            .finish()
    }
}

impl ExecutionGuard {
    /// The guard of an execution of `nodes` (each an extension's stored
    /// description and the node's config) over `snapshot`. Decrypts every
    /// value of the snapshot; fails closed if one cannot be, since its
    /// value could then not be kept out of anything. A node whose config
    /// does not fit its extension adds no binding (its invocation fails on
    /// that config before it starts).
    ///
    /// [`Runtime::guard`](super::Runtime::guard) does the same, but reuses
    /// the values the bot's previous execution decrypted when its secrets
    /// are unchanged.
    pub fn new<'a>(
        snapshot: &SecretSnapshot,
        nodes: impl IntoIterator<Item = (&'a ExtensionDescription, &'a str)>,
    ) -> Result<Self, ResolveError> {
        Ok(Self::with(snapshot, Arc::new(Opened::of(snapshot)?), nodes))
    }

    pub(crate) fn with<'a>(
        snapshot: &SecretSnapshot,
        opened: Arc<Opened>,
        nodes: impl IntoIterator<Item = (&'a ExtensionDescription, &'a str)>,
    ) -> Self {
        let mut bindings = Bindings::default();
        for (description, config) in nodes {
            let Ok(plan) = description.plan(config) else {
                continue;
            };
            for (name, hosts) in plan.bound {
                match bindings.get_mut(&name) {
                    Some(existing) => existing.retain(|h| hosts.contains(h)),
                    None => {
                        bindings.insert(name, hosts);
                    }
                }
            }
        }
        let owner = match snapshot.scope() {
            Scope::Bot(bot) => bot.clone(),
            Scope::Team(team) => format!("team {team}"),
        };
        ExecutionGuard {
            owner: owner.into(),
            opened,
            bindings: Arc::new(bindings),
        }
    }

    /// What `secrets.get` reads: the snapshot's values, already decrypted.
    pub(crate) fn resolver(&self) -> Arc<dyn SecretResolver> {
        self.opened.clone()
    }

    /// Whose execution it is: the bot (or `team NAME`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The same, shared with each invocation's egress.
    pub(crate) fn owner_shared(&self) -> Arc<str> {
        self.owner.clone()
    }

    /// The scrubber over every value of the execution's snapshot.
    pub fn scrubber(&self) -> &Arc<Scrubber> {
        &self.opened.scrubber
    }

    /// The hosts `secret`'s value may be sent to in this execution.
    pub fn binding(&self, secret: &str) -> Option<&HashSet<String>> {
        self.bindings.get(secret)
    }

    /// Where one invocation with `plan` may send each value.
    pub(crate) fn bound_for(&self, plan: Arc<Plan>) -> Bound {
        Bound {
            execution: self.bindings.clone(),
            plan,
        }
    }
}

/// Most scopes whose decrypted values are kept at once; past it the
/// longest idle goes first.
const OPENED_SCOPES: usize = 1024;

/// The decrypted values of each bot's latest snapshot, kept for its next
/// execution for a short idle time ([`Limits::decrypted_idle`]), so a busy
/// bot decrypts once, not once per execution. An entry serves only a
/// snapshot of the very same sealed records ([`Generation`]): any write or
/// key rotation makes the next execution decrypt afresh. Idle or orphaned
/// entries are dropped (and wiped) by [`sweep`](OpenedCache::sweep), which
/// the runtime's clock thread calls every second.
///
/// [`Limits::decrypted_idle`]: super::Limits::decrypted_idle
pub(crate) struct OpenedCache {
    idle: Duration,
    entries: Mutex<HashMap<Scope, Kept>>,
}

struct Kept {
    generation: Generation,
    opened: Arc<Opened>,
    used: Instant,
}

impl OpenedCache {
    pub(crate) fn new(idle: Duration) -> Self {
        OpenedCache {
            idle,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Scope, Kept>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `snapshot`'s values: kept ones if they are of its very records,
    /// else decrypted now (outside the lock, so one bot's decryption never
    /// holds up another's execution) and kept.
    pub(crate) fn open(&self, snapshot: &SecretSnapshot) -> Result<Arc<Opened>, ResolveError> {
        if self.idle.is_zero() {
            return Ok(Arc::new(Opened::of(snapshot)?));
        }
        let now = Instant::now();
        if let Some(kept) = self.entries().get_mut(snapshot.scope())
            && kept.generation.is_of(snapshot)
        {
            kept.used = now;
            return Ok(kept.opened.clone());
        }
        let opened = Arc::new(Opened::of(snapshot)?);
        let mut entries = self.entries();
        if entries.len() >= OPENED_SCOPES && !entries.contains_key(snapshot.scope()) {
            let oldest = entries
                .iter()
                .min_by_key(|(_, kept)| kept.used)
                .map(|(scope, _)| scope.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            snapshot.scope().clone(),
            Kept {
                generation: snapshot.generation(),
                opened: opened.clone(),
                used: now,
            },
        );
        Ok(opened)
    }

    /// Drops entries unused for the idle time, and those whose records no
    /// snapshot can be of any more (rewritten, rotated, or deleted).
    pub(crate) fn sweep(&self, now: Instant) {
        self.entries().retain(|_, kept| {
            kept.generation.is_live() && now.saturating_duration_since(kept.used) < self.idle
        });
    }

    /// Scopes with values kept (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::{KeySource, SecretName, Vault, VaultConfig};

    fn vault(dir: &std::path::Path) -> Vault {
        let config = VaultConfig::new(
            dir.join("data"),
            KeySource::File(dir.join("config/master.key")),
        );
        Vault::init(&config).unwrap();
        let mut vault = Vault::open(config).unwrap();
        vault.create_team("ops").unwrap();
        vault.create_bot("greeter", "ops").unwrap();
        set(&mut vault, "first-value-1234");
        vault
    }

    fn set(vault: &mut Vault, value: &str) {
        vault
            .set_secret(
                &Scope::Bot("greeter".into()),
                &SecretName::new("API_TOKEN").unwrap(),
                &SecretValue::new(value.into()).unwrap(),
            )
            .unwrap();
    }

    /// What the cache gives an execution of greeter starting now.
    fn open(cache: &OpenedCache, vault: &mut Vault) -> Arc<Opened> {
        cache
            .open(&vault.snapshot_for_bot("greeter").unwrap())
            .unwrap()
    }

    fn token(opened: &Opened) -> SecretValue {
        opened.resolve("API_TOKEN").unwrap()
    }

    #[test]
    fn kept_values_serve_only_a_snapshot_of_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut vault = vault(dir.path());
        let cache = OpenedCache::new(Duration::from_secs(30));
        let first = open(&cache, &mut vault);
        let again = open(&cache, &mut vault);
        assert!(Arc::ptr_eq(&first, &again), "unchanged: decrypted once");
        assert!(token(&again).matches(b"first-value-1234"));

        // An overwrite: the next execution decrypts, and sees, the new value.
        set(&mut vault, "second-value-5678");
        let rotated = open(&cache, &mut vault);
        assert!(!Arc::ptr_eq(&first, &rotated));
        assert!(token(&rotated).matches(b"second-value-5678"));
        assert!(rotated.scrubber.names_in(b"first-value-1234").is_empty());

        // A key rotation: same values, new records, decrypted afresh.
        vault.rotate_key(|_, _| {}).unwrap();
        let rekeyed = open(&cache, &mut vault);
        assert!(!Arc::ptr_eq(&rotated, &rekeyed));
        assert!(token(&rekeyed).matches(b"second-value-5678"));

        // Another vault handle (another connection) never shares records.
        let mut other = Vault::open(vault.config().clone()).unwrap();
        let elsewhere = open(&cache, &mut other);
        assert!(!Arc::ptr_eq(&rekeyed, &elsewhere));
    }

    #[test]
    fn sweeping_drops_idle_and_orphaned_values_and_zero_keeps_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut vault = vault(dir.path());
        let cache = OpenedCache::new(Duration::from_secs(30));
        open(&cache, &mut vault);
        cache.sweep(Instant::now());
        assert_eq!(cache.len(), 1, "used just now: kept");
        cache.sweep(Instant::now() + Duration::from_secs(31));
        assert_eq!(cache.len(), 0, "idle past the limit: dropped");

        // A deleted bot's values go at the next sweep, idle or not.
        open(&cache, &mut vault);
        vault.delete_bot("greeter").unwrap();
        cache.sweep(Instant::now());
        assert_eq!(cache.len(), 0, "deleted: dropped");

        vault.create_bot("greeter", "ops").unwrap();
        set(&mut vault, "third-value-9012");
        let never = OpenedCache::new(Duration::ZERO);
        let a = open(&never, &mut vault);
        let b = open(&never, &mut vault);
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(never.len(), 0);
    }
}
