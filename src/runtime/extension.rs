//! Loading a component as an extension: check it is a component of our
//! world, compile it once (cached on disk by content hash and engine
//! version), pre-link it, and read its self-description.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::bindings::{v1, v2};
use super::error::LoadError;
use super::inject::Injection;
use super::{Invocation, Runtime, host};
use crate::vault::{SecretName, SecretResolver, SecretValue};

/// A secret an extension always needs, and the hosts it may be sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredSecret {
    pub name: String,
    pub hosts: Vec<String>,
    /// Where its credential's placeholder may be substituted (0.2.0).
    #[serde(default, skip_serializing_if = "InjectionRule::is_empty")]
    pub injection: InjectionRule,
}

/// A config field whose value names a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretField {
    pub pointer: String,
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "InjectionRule::is_empty")]
    pub injection: InjectionRule,
}

/// Where a secret's placeholder may be substituted, as the extension
/// declared it: header names and formats may refer to the node's config
/// (`{/pointer}`, or `{/pointer|default}`), resolved per invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectionRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderFormat>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub query: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub body: bool,
}

impl InjectionRule {
    pub fn is_empty(&self) -> bool {
        *self == InjectionRule::default()
    }

    /// The rule for one invocation, with its config references resolved.
    fn resolve(&self, config: Option<&serde_json::Value>) -> Result<Injection, String> {
        let headers = self
            .headers
            .iter()
            .map(|h| {
                // Most rules name no config field: nothing to resolve.
                if !h.refers_to_config() {
                    return Ok((h.name.to_ascii_lowercase(), h.format.clone()));
                }
                Ok((
                    expand(&h.name, config, false)?.to_ascii_lowercase(),
                    expand(&h.format, config, true)?,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(Injection {
            headers,
            path: self.path,
            query: self.query,
            body: self.body,
        })
    }
}

/// A header a secret may be put into: its name and its value's format,
/// with `{}` where the secret goes (`Bot {}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderFormat {
    pub name: String,
    pub format: String,
}

impl HeaderFormat {
    /// Whether the name or the format takes text from the node's config.
    fn refers_to_config(&self) -> bool {
        self.name.contains("{/") || self.format.contains("{/")
    }
}

impl InjectionRule {
    /// Where the host puts the secret, one phrase a place, for operators:
    /// `header authorization: Bot {}`, `the path`. Empty: nowhere (the
    /// secret is read as plaintext).
    pub fn places(&self) -> Vec<String> {
        let mut places: Vec<String> = self
            .headers
            .iter()
            .map(|h| format!("header {}: {}", h.name, h.format))
            .collect();
        for (on, place) in [
            (self.path, "the path"),
            (self.query, "the query"),
            (self.body, "the body"),
        ] {
            if on {
                places.push(place.to_owned());
            }
        }
        places
    }
}

/// One piece of a header name or format.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    /// `{}`: where the secret goes.
    Slot,
    /// `{/pointer}` or `{/pointer|default}`.
    Config(&'a str, Option<&'a str>),
}

/// `template` in pieces, or why it is malformed.
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(format!("{template:?} has a }} that closes nothing"));
        }
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("{template:?} has a {{ that is never closed"))?
            + open;
        let inner = &rest[open + 1..close];
        out.push(match inner {
            "" => Piece::Slot,
            _ if inner.starts_with('/') => match inner.split_once('|') {
                Some((pointer, default)) => Piece::Config(pointer, Some(default)),
                None => Piece::Config(inner, None),
            },
            _ => {
                return Err(format!(
                    "{template:?} has {{{inner}}}, which is neither {{}} (the secret) nor {{/pointer}} (a config field)"
                ));
            }
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// `template` with its config references filled from `config`; `{}` kept
/// where `slot` allows it.
fn expand(
    template: &str,
    config: Option<&serde_json::Value>,
    slot: bool,
) -> Result<String, String> {
    let mut out = String::new();
    for piece in pieces(template)? {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Slot if slot => out.push_str("{}"),
            Piece::Slot => return Err(format!("{template:?} may not hold {{}}")),
            Piece::Config(pointer, default) => {
                let found = config.and_then(|c| c.pointer(pointer));
                let text = match (found, default) {
                    (Some(serde_json::Value::String(text)), _) => text.as_str(),
                    (None | Some(serde_json::Value::Null), Some(default)) => default,
                    (None | Some(serde_json::Value::Null), None) => {
                        return Err(format!(
                            "{pointer} is not set, and the secret's header needs it"
                        ));
                    }
                    (Some(_), _) => return Err(format!("{pointer} must be a string")),
                };
                if text.contains(['{', '}', '\r', '\n', '\0']) {
                    return Err(format!(
                        "{pointer} may not hold braces, line breaks or NUL (it is part of a header)"
                    ));
                }
                out.push_str(text);
            }
        }
    }
    Ok(out)
}

/// What an extension says about itself (`describe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionDescription {
    pub name: String,
    pub version: String,
    pub description: String,
    pub required_secrets: Vec<RequiredSecret>,
    pub secret_fields: Vec<SecretField>,
    pub allowed_hosts: Vec<String>,
    pub host_fields: Vec<String>,
    /// The `narakim:extension` version the component was built against.
    #[serde(default = "first_wit")]
    pub wit: String,
    /// Whether the component imports `secrets.get`, which hands it
    /// plaintext. Read from the component, not from `describe`; records
    /// stored before the mark existed count as revealing.
    #[serde(default = "revealing")]
    pub reveals_secrets: bool,
}

fn first_wit() -> String {
    "0.1.0".into()
}

fn revealing() -> bool {
    true
}

impl ExtensionDescription {
    /// Whether `other` declares the same: every field `describe` answers,
    /// leaving out what is read from the component itself.
    pub fn declares_same(&self, other: &ExtensionDescription) -> bool {
        let mut other = other.clone();
        other.wit.clone_from(&self.wit);
        other.reveals_secrets = self.reveals_secrets;
        *self == other
    }
}

/// A component pre-linked for the world version it was built against.
pub(crate) enum Pre {
    V1(v1::ExtensionPre<Invocation>),
    V2(v2::ExtensionPre<Invocation>),
}

impl Pre {
    /// Instantiates into `store` and runs the node.
    pub(crate) async fn run(
        &self,
        store: &mut wasmtime::Store<Invocation>,
        config: &str,
        input: &str,
    ) -> wasmtime::Result<Result<String, String>> {
        match self {
            Pre::V1(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.call_run(store, config, input).await
            }
            Pre::V2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.call_run(store, config, input).await
            }
        }
    }
}

/// A loaded, compiled, pre-linked extension. Cheap to invoke many times.
pub struct Extension {
    description: ExtensionDescription,
    pre: Pre,
    sha256: String,
    /// The plan of every invocation, made once at load, when no config
    /// can change it (no secret, host or header field reads the config).
    fixed_plan: Option<Arc<Plan>>,
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extension")
            .field("description", &self.description)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl Extension {
    pub fn name(&self) -> &str {
        &self.description.name
    }

    pub fn description(&self) -> &ExtensionDescription {
        &self.description
    }

    /// Hex SHA-256 of the component bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub(crate) fn pre(&self) -> &Pre {
        &self.pre
    }

    /// The names one invocation may read: the required secrets plus the
    /// names taken from this node's config fields that name a secret.
    pub fn declared_secrets(&self, config: &str) -> Result<HashSet<String>, String> {
        self.description.declared_secrets(config)
    }

    /// What one invocation with `config` may read and where it may send it.
    pub(crate) fn plan(&self, config: &str) -> Result<Arc<Plan>, String> {
        match &self.fixed_plan {
            Some(plan) => Ok(plan.clone()),
            None => self.description.plan(config).map(Arc::new),
        }
    }
}

impl ExtensionDescription {
    /// Whether every invocation has the same plan, whatever its config:
    /// no secret or host field, and no header rule taking text from the
    /// config. The config is then not even parsed.
    fn plan_is_fixed(&self) -> bool {
        let rules = self
            .required_secrets
            .iter()
            .map(|s| &s.injection)
            .chain(self.secret_fields.iter().map(|f| &f.injection));
        self.secret_fields.is_empty()
            && self.host_fields.is_empty()
            && !rules
                .flat_map(|i| &i.headers)
                .any(HeaderFormat::refers_to_config)
    }

    /// Checks `config` against what the extension declared about it: each
    /// secret field, when present, is a string naming a secret, and each
    /// host field a URL with a host. The error says which field and why.
    pub fn check_config(&self, config: &str) -> Result<(), String> {
        self.plan(config).map(|_| ())
    }

    /// The names one invocation with `config` may read.
    pub fn declared_secrets(&self, config: &str) -> Result<HashSet<String>, String> {
        self.plan(config).map(|plan| plan.declared)
    }

    /// What one invocation with `config` may read and where it may send it.
    ///
    /// A secret's binding is the strictest of every rule that names it: a
    /// required secret's hosts, and the hosts of each secret field that
    /// names it (an empty list means the extension's allowed hosts). A
    /// field can narrow a required secret's binding, never widen it.
    pub(crate) fn plan(&self, config: &str) -> Result<Plan, String> {
        let d = self;
        let mut plan = Plan {
            declared: d.required_secrets.iter().map(|s| s.name.clone()).collect(),
            allowed_hosts: d.allowed_hosts.iter().cloned().collect(),
            bound: HashMap::new(),
            credentials: HashMap::default(),
        };
        let mut fields: Vec<(String, &[String])> = Vec::new();
        let mut injections: Vec<(String, &InjectionRule)> = d
            .required_secrets
            .iter()
            .map(|s| (s.name.clone(), &s.injection))
            .collect();
        let mut parsed = None;
        if !d.plan_is_fixed() {
            let config: serde_json::Value = serde_json::from_str(config)
                .map_err(|e| format!("config is not valid JSON: {e}"))?;
            for field in &d.secret_fields {
                match config.pointer(&field.pointer) {
                    None | Some(serde_json::Value::Null) => {}
                    Some(serde_json::Value::String(name)) => {
                        SecretName::new(name).map_err(|e| format!("{}: {e}", field.pointer))?;
                        plan.declared.insert(name.clone());
                        fields.push((name.clone(), &field.hosts));
                        injections.push((name.clone(), &field.injection));
                    }
                    Some(_) => {
                        return Err(format!(
                            "{} must be a string naming a secret, for example \"MY_API_KEY\"",
                            field.pointer
                        ));
                    }
                }
            }
            for pointer in &d.host_fields {
                if let Some(url) = config.pointer(pointer).and_then(|v| v.as_str()) {
                    let uri: http::Uri = url
                        .parse()
                        .map_err(|e| format!("{pointer}: {url:?} is not a URL: {e}"))?;
                    let host = uri
                        .host()
                        .ok_or_else(|| format!("{pointer}: {url:?} has no host"))?
                        .to_ascii_lowercase();
                    if let Some(problem) = host_problem(&host) {
                        return Err(format!(
                            "{pointer}: the host of {url:?} is {problem}; a URL must name a public DNS host (the operator can map it to a local service with --upstream HOST=URL)"
                        ));
                    }
                    plan.allowed_hosts.insert(host);
                }
            }
            parsed = Some(config);
        }
        // A secret named by several rules may be substituted where any of
        // them allows: each rule is the extension's own declaration.
        let mut merged_injections: HashMap<String, Injection> = HashMap::new();
        for (name, rule) in injections {
            if rule.is_empty() {
                continue;
            }
            let resolved = rule
                .resolve(parsed.as_ref())
                .map_err(|e| format!("the injection of {name}: {e}"))?;
            let merged = merged_injections.entry(name).or_default();
            merged.headers.extend(resolved.headers);
            merged.path |= resolved.path;
            merged.query |= resolved.query;
            merged.body |= resolved.body;
        }
        let hosts_of = |listed: &[String]| -> HashSet<String> {
            if listed.is_empty() {
                plan.allowed_hosts.clone()
            } else {
                listed
                    .iter()
                    .filter(|h| plan.allowed_hosts.contains(*h))
                    .cloned()
                    .collect()
            }
        };
        let rules = d
            .required_secrets
            .iter()
            .map(|s| (s.name.clone(), &s.hosts[..]))
            .chain(fields);
        let mut bound: HashMap<String, HashSet<String>> = HashMap::new();
        for (name, listed) in rules {
            let hosts = hosts_of(listed);
            match bound.get_mut(&name) {
                Some(existing) => existing.retain(|h| hosts.contains(h)),
                None => {
                    bound.insert(name, hosts);
                }
            }
        }
        // Every declared name has a binding, so a rule each.
        plan.credentials = bound
            .iter()
            .map(|(name, hosts)| {
                let mut hosts: Vec<String> = hosts.iter().cloned().collect();
                hosts.sort();
                let rule = CredentialRule {
                    hosts: hosts.into(),
                    injection: Arc::new(merged_injections.remove(name).unwrap_or_default()),
                };
                (name.clone(), rule)
            })
            .collect();
        plan.bound = bound;
        Ok(plan)
    }
}

/// What one invocation may read, and where it may send what.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) declared: HashSet<String>,
    pub(crate) allowed_hosts: HashSet<String>,
    /// Secret → the hosts it may be sent to (empty: nowhere).
    pub(crate) bound: HashMap<String, HashSet<String>>,
    /// Each declared secret's rule as a credential: what
    /// `credentials.get` needs, in one lookup (a fast hasher: the keys
    /// are the extension's own declared names, a few per node).
    pub(crate) credentials: HashMap<String, CredentialRule, foldhash::fast::RandomState>,
}

/// Where one declared secret's placeholder may be substituted, and its
/// node's hosts for it, sorted (what `credential.hosts` answers when no
/// other node of the execution narrows them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CredentialRule {
    pub(crate) hosts: Arc<[String]>,
    pub(crate) injection: Arc<Injection>,
}

/// Why `host` may not be an extension's host, if it may not: only public
/// DNS names may be. An IP literal, a loopback, single-label or
/// internal-use name (or a cloud metadata name) would reach the host's own
/// network; only an operator's upstream mapping may point there.
pub fn host_problem(host: &str) -> Option<&'static str> {
    let dns = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if !dns {
        return Some("not a lower-case DNS name");
    }
    let last = host.rsplit('.').next().unwrap_or(host);
    // 127.1, 0x7f.0.0.1, 2130706433: every form inet_aton accepts ends in a
    // number, and no top-level domain is one.
    if last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x") {
        return Some("an IP address");
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Some("a loopback name");
    }
    if !host.contains('.') {
        return Some("a single-label name, which resolves through local search domains");
    }
    const INTERNAL: [&str; 13] = [
        "internal",
        "local",
        "localdomain",
        "home.arpa",
        "arpa",
        "lan",
        "intranet",
        "corp",
        "home",
        "private",
        "svc",
        "cluster",
        "in-addr.arpa",
    ];
    const METADATA: [&str; 3] = [
        "metadata.google.internal",
        "metadata.azure.com",
        "instance-data.ec2.internal",
    ];
    if METADATA.contains(&host) {
        return Some("a cloud metadata service name");
    }
    if INTERNAL
        .iter()
        .any(|suffix| host == *suffix || host.ends_with(&format!(".{suffix}")))
    {
        return Some("an internal-use name");
    }
    None
}

/// A resolver with nothing in it, for `describe` (which must not read secrets).
struct NoSecrets;

impl SecretResolver for NoSecrets {
    fn resolve(&self, name: &str) -> Result<SecretValue, crate::vault::ResolveError> {
        Err(crate::vault::ResolveError::NotConfigured {
            name: name.to_owned(),
        })
    }

    fn contains(&self, _: &str) -> bool {
        false
    }
}

impl Runtime {
    /// Loads the component at `path`.
    pub async fn load(&self, path: &Path) -> Result<Extension, LoadError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: shown.clone(),
            source,
        })?;
        self.load_bytes(&bytes, &shown).await
    }

    /// Loads a component from bytes; `origin` names it in errors.
    pub async fn load_bytes(&self, bytes: &[u8], origin: &str) -> Result<Extension, LoadError> {
        let not_component = |reason: &str| LoadError::NotAComponent {
            path: origin.to_owned(),
            reason: reason.to_owned(),
        };
        if bytes.get(..4) != Some(b"\0asm") {
            return Err(not_component("it does not start with the wasm magic bytes"));
        }
        if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
            return Err(not_component("it is a core wasm module"));
        }
        let sha256 = hex(&Sha256::digest(bytes));
        let component = self.compile(bytes, &sha256, origin)?;
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            path: origin.to_owned(),
            reason: format!("{e:#}"),
        };
        let imports = Imports::of(&component, &self.engine);
        let linked = self
            .linker
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        // The world is chosen by the package the component imports; one that
        // imports neither version is tried as the newer, then the older.
        let pre = match imports.version {
            Some(Version::V1) => Pre::V1(v1::ExtensionPre::new(linked).map_err(wrong_world)?),
            Some(Version::V2) => Pre::V2(v2::ExtensionPre::new(linked).map_err(wrong_world)?),
            None => match v2::ExtensionPre::new(linked.clone()) {
                Ok(pre) => Pre::V2(pre),
                Err(_) => Pre::V1(v1::ExtensionPre::new(linked).map_err(wrong_world)?),
            },
        };
        let mut description = self.describe(&pre, origin).await?;
        description.reveals_secrets = imports.reveals;
        let fixed_plan = if description.plan_is_fixed() {
            description.plan("{}").ok().map(Arc::new)
        } else {
            None
        };
        Ok(Extension {
            description,
            pre,
            sha256,
            fixed_plan,
        })
    }

    /// Compiles, or loads the compiled form from the cache.
    fn compile(&self, bytes: &[u8], sha256: &str, origin: &str) -> Result<Component, LoadError> {
        let compile = || {
            Component::new(&self.engine, bytes).map_err(|e| LoadError::NotAComponent {
                path: origin.to_owned(),
                reason: format!("{e:#}"),
            })
        };
        let Some(dir) = &self.cache_dir else {
            return compile();
        };
        let engine_hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            self.engine.precompile_compatibility_hash().hash(&mut h);
            format!("{:016x}", h.finish())
        };
        let dir = dir.join(format!(
            "wasmtime-{}-{engine_hash}",
            env!("CARGO_PKG_VERSION")
        ));
        let file = dir.join(format!("{sha256}.cwasm"));
        if file.exists() {
            // SAFETY: the file was written by `Component::serialize` of this
            // engine version (its name holds the engine's compatibility hash)
            // into narakim's private data directory.
            if let Ok(component) = unsafe { Component::deserialize_file(&self.engine, &file) } {
                return Ok(component);
            }
        }
        let component = compile()?;
        // A cache that cannot be written only costs a recompile next time.
        if let Ok(serialized) = component.serialize() {
            // Unique per process and per write: two threads may compile the
            // same component at once, and each must rename a whole file.
            static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = dir.join(format!("{sha256}.cwasm.tmp{}-{n}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&tmp, serialized))
                .and_then(|()| std::fs::rename(&tmp, &file));
        }
        Ok(component)
    }

    async fn describe(&self, pre: &Pre, origin: &str) -> Result<ExtensionDescription, LoadError> {
        let failed = |e: wasmtime::Error| LoadError::Describe {
            path: origin.to_owned(),
            reason: format!("{e:#}"),
        };
        // Describe is static data: no secrets, no network, two seconds,
        // whether it spins (the epoch deadline) or waits inside a host call
        // such as a sleep (the tokio timeout).
        let limit = std::time::Duration::from_secs(2);
        let _slot = self.slot().await;
        let mut store = self.sandbox(
            host::SecretsHost::new(
                Arc::new(NoSecrets),
                super::guard::Bound::nowhere(),
                Arc::default(),
            ),
            Box::new(host::DenyEgress),
            None,
            limit,
        );
        let call = async {
            match pre {
                Pre::V1(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instance.call_describe(&mut store).await.map(from_v1)
                }
                Pre::V2(pre) => {
                    let instance = pre.instantiate_async(&mut store).await?;
                    instance.call_describe(&mut store).await.map(from_v2)
                }
            }
        };
        let description = match tokio::time::timeout(limit + super::EPOCH_TICK * 5, call).await {
            Ok(described) => described.map_err(|e| match e.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::Interrupt) => LoadError::DescribeTimeout {
                    path: origin.to_owned(),
                    limit,
                },
                _ => failed(e),
            })?,
            Err(_elapsed) => {
                return Err(LoadError::DescribeTimeout {
                    path: origin.to_owned(),
                    limit,
                });
            }
        };
        validate(&description).map_err(|reason| LoadError::BadDescription {
            path: origin.to_owned(),
            reason,
        })?;
        Ok(description)
    }
}

/// What a component imports of ours: which version, and whether it can
/// be handed plaintext.
struct Imports {
    version: Option<Version>,
    reveals: bool,
}

#[derive(Clone, Copy)]
enum Version {
    V1,
    V2,
}

impl Imports {
    fn of(component: &Component, engine: &wasmtime::Engine) -> Self {
        let mut found = Imports {
            version: None,
            reveals: false,
        };
        for (name, item) in component.component_type().imports(engine) {
            let Some(rest) = name.strip_prefix("narakim:extension/") else {
                continue;
            };
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            found.version = match version {
                "0.1.0" => Some(Version::V1),
                "0.2.0" => Some(Version::V2),
                _ => found.version,
            };
            // A component may import the interface for its error type
            // alone; only the function hands out a value.
            if interface == "secrets"
                && let wasmtime::component::types::ComponentItem::ComponentInstance(instance) =
                    item.ty
                && instance.get_export(engine, "get").is_some()
            {
                found.reveals = true;
            }
        }
        found
    }
}

fn from_v1(d: v1::narakim::extension0_1_0::types::Description) -> ExtensionDescription {
    ExtensionDescription {
        name: d.name,
        version: d.version,
        description: d.description,
        required_secrets: d
            .required_secrets
            .into_iter()
            .map(|s| RequiredSecret {
                name: s.name,
                hosts: s.hosts,
                injection: InjectionRule::default(),
            })
            .collect(),
        secret_fields: d
            .secret_fields
            .into_iter()
            .map(|f| SecretField {
                pointer: f.pointer,
                hosts: f.hosts,
                injection: InjectionRule::default(),
            })
            .collect(),
        allowed_hosts: d.allowed_hosts,
        host_fields: d.host_fields,
        wit: "0.1.0".into(),
        reveals_secrets: false,
    }
}

fn from_v2(d: v2::narakim::extension0_2_0::types::Description) -> ExtensionDescription {
    let rule = |i: v2::narakim::extension0_2_0::types::Injection| InjectionRule {
        headers: i
            .headers
            .into_iter()
            .map(|h| HeaderFormat {
                name: h.name,
                format: h.format,
            })
            .collect(),
        path: i.path,
        query: i.query,
        body: i.body,
    };
    ExtensionDescription {
        name: d.name,
        version: d.version,
        description: d.description,
        required_secrets: d
            .required_secrets
            .into_iter()
            .map(|s| RequiredSecret {
                name: s.name,
                hosts: s.hosts,
                injection: rule(s.injection),
            })
            .collect(),
        secret_fields: d
            .secret_fields
            .into_iter()
            .map(|f| SecretField {
                pointer: f.pointer,
                hosts: f.hosts,
                injection: rule(f.injection),
            })
            .collect(),
        allowed_hosts: d.allowed_hosts,
        host_fields: d.host_fields,
        wit: "0.2.0".into(),
        reveals_secrets: false,
    }
}

/// Checks one injection rule's templates: names hold no `{}`, each format
/// exactly one, and every reference is a JSON pointer.
fn validate_injection(owner: &str, rule: &InjectionRule) -> Result<(), String> {
    for h in &rule.headers {
        let name = pieces(&h.name).map_err(|e| format!("{owner}: header name {e}"))?;
        if name.contains(&Piece::Slot) || h.name.is_empty() {
            return Err(format!(
                "{owner}: header name {:?} must be a name (or {{/pointer}}), without {{}}",
                h.name
            ));
        }
        let format = pieces(&h.format).map_err(|e| format!("{owner}: header format {e}"))?;
        if format.iter().filter(|p| **p == Piece::Slot).count() != 1 {
            return Err(format!(
                "{owner}: header format {:?} must hold {{}} exactly once, where the secret goes",
                h.format
            ));
        }
    }
    Ok(())
}

fn validate(d: &ExtensionDescription) -> Result<(), String> {
    for s in &d.required_secrets {
        validate_injection(&format!("required secret {}", s.name), &s.injection)?;
    }
    for f in &d.secret_fields {
        validate_injection(&format!("secret field {}", f.pointer), &f.injection)?;
    }
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !name_ok(&d.name) {
        return Err(format!(
            "name {:?} must be 1-64 characters of a-z, 0-9 and -",
            d.name
        ));
    }
    // Shown on terminals and pages: plain text only.
    if d.description.len() > 1024 || d.description.chars().any(crate::redact::is_unprintable) {
        return Err(
            "the description text must be at most 1024 bytes with no control, line-separator or bidi characters".into(),
        );
    }
    for s in &d.required_secrets {
        SecretName::new(&s.name).map_err(|e| e.to_string())?;
    }
    for p in d
        .secret_fields
        .iter()
        .map(|f| &f.pointer)
        .chain(&d.host_fields)
    {
        if !p.starts_with('/') {
            return Err(format!(
                "{p:?} is not a JSON pointer (it must start with /)"
            ));
        }
    }
    let hosts = d
        .allowed_hosts
        .iter()
        .chain(d.required_secrets.iter().flat_map(|s| &s.hosts))
        .chain(d.secret_fields.iter().flat_map(|f| &f.hosts));
    for h in hosts {
        if let Some(problem) = host_problem(h) {
            return Err(format!(
                "host {h:?} is {problem}; extensions may name only public DNS hosts (an operator maps one to a local service with --upstream HOST=URL)"
            ));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_dns_names_may_be_hosts() {
        for bad in [
            "localhost",
            "api.localhost",
            "127.0.0.1",
            "127.1",
            "2130706433",
            "0x7f.0.0.1",
            "0x7f000001",
            "169.254.169.254",
            "metadata",
            "metadata.google.internal",
            "instance-data.ec2.internal",
            "printer.local",
            "nas.home.arpa",
            "1.0.0.127.in-addr.arpa",
            "db.svc",
            "[::1]",
            "Discord.com",
            "",
            "a..b",
        ] {
            assert!(host_problem(bad).is_some(), "{bad:?} was accepted");
        }
        for good in [
            "discord.com",
            "api.openrouter.ai",
            "echo.test",
            "x-1.example.org",
        ] {
            assert_eq!(host_problem(good), None, "{good:?}");
        }
    }

    fn described(required: &[&str], field_hosts: &[&str]) -> ExtensionDescription {
        ExtensionDescription {
            name: "x".into(),
            version: "0.1.0".into(),
            description: String::new(),
            required_secrets: vec![RequiredSecret {
                name: "TOKEN".into(),
                hosts: required.iter().map(|h| h.to_string()).collect(),
                injection: Default::default(),
            }],
            secret_fields: vec![SecretField {
                pointer: "/auth/secret".into(),
                hosts: field_hosts.iter().map(|h| h.to_string()).collect(),
                injection: Default::default(),
            }],
            allowed_hosts: vec!["a.example".into(), "b.example".into()],
            host_fields: vec![],
            wit: "0.1.0".into(),
            reveals_secrets: false,
        }
    }

    #[test]
    fn injection_formats_take_the_users_header_and_scheme_from_the_config() {
        let mut d = described(&[], &[]);
        d.secret_fields[0].injection = InjectionRule {
            headers: vec![HeaderFormat {
                name: "{/auth/header|Authorization}".into(),
                format: "{/auth/scheme|Bearer} {}".into(),
            }],
            ..InjectionRule::default()
        };
        validate_injection("field", &d.secret_fields[0].injection).unwrap();
        let plan = |config: &str| {
            d.plan(config)
                .map(|p| p.credentials.get("KEY").map(|r| (*r.injection).clone()))
        };
        let defaults = plan(r#"{"auth":{"secret":"KEY"}}"#).unwrap().unwrap();
        assert_eq!(
            defaults.headers,
            [("authorization".into(), "Bearer {}".into())]
        );
        let chosen = plan(r#"{"auth":{"secret":"KEY","header":"X-Api-Key","scheme":""}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(chosen.headers, [("x-api-key".into(), " {}".into())]);
        // The config cannot smuggle another slot or a line break in.
        for bad in [
            r#"{"auth":{"secret":"KEY","scheme":"{} x"}}"#,
            r#"{"auth":{"secret":"KEY","header":"a\r\nb"}}"#,
            r#"{"auth":{"secret":"KEY","scheme":7}}"#,
        ] {
            assert!(plan(bad).is_err(), "{bad}");
        }
        // Malformed declarations are refused at load.
        for (name, format) in [
            ("x", "Bot"),
            ("x", "{} {}"),
            ("{}", "{}"),
            ("x", "{oops} {}"),
            ("x", "{}}"),
        ] {
            let rule = InjectionRule {
                headers: vec![HeaderFormat {
                    name: name.into(),
                    format: format.into(),
                }],
                ..InjectionRule::default()
            };
            assert!(validate_injection("r", &rule).is_err(), "{name} {format}");
        }
    }

    #[test]
    fn a_secret_field_only_narrows_a_required_secrets_binding() {
        let hosts = |d: &ExtensionDescription, config: &str| {
            let mut v: Vec<String> = d.plan(config).unwrap().bound["TOKEN"]
                .iter()
                .cloned()
                .collect();
            v.sort();
            v
        };
        let naming = r#"{"auth":{"secret":"TOKEN"}}"#;
        // Required to a, field to b: together nowhere.
        assert!(hosts(&described(&["a.example"], &["b.example"]), naming).is_empty());
        // Required anywhere allowed, field to b: b.
        assert_eq!(
            hosts(&described(&[], &["b.example"]), naming),
            ["b.example"]
        );
        // Required to a, field anywhere: still a.
        assert_eq!(
            hosts(&described(&["a.example"], &[]), naming),
            ["a.example"]
        );
        // Without the field: the required binding.
        assert_eq!(
            hosts(&described(&["a.example"], &["b.example"]), "{}"),
            ["a.example"]
        );
    }
}
