//! Loading a component as an extension: check it is a component of our
//! world, compile it once (cached on disk by content hash and engine
//! version), pre-link it, and read its self-description.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::bindings::{self, ExtensionPre};
use super::error::LoadError;
use super::{Invocation, Runtime, host};
use crate::vault::{SecretName, SecretResolver, SecretValue};

/// A secret an extension always needs, and the hosts it may be sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredSecret {
    pub name: String,
    pub hosts: Vec<String>,
}

/// A config field whose value names a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretField {
    pub pointer: String,
    pub hosts: Vec<String>,
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
}

/// A loaded, compiled, pre-linked extension. Cheap to invoke many times.
pub struct Extension {
    description: ExtensionDescription,
    pre: ExtensionPre<Invocation>,
    sha256: String,
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

    pub(crate) fn pre(&self) -> &ExtensionPre<Invocation> {
        &self.pre
    }

    /// The names one invocation may read: the required secrets plus the
    /// names taken from this node's config fields that name a secret.
    pub fn declared_secrets(&self, config: &str) -> Result<HashSet<String>, String> {
        self.description.declared_secrets(config)
    }

    /// What one invocation with `config` may read and where it may send it.
    pub(crate) fn plan(&self, config: &str) -> Result<Plan, String> {
        self.description.plan(config)
    }
}

impl ExtensionDescription {
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
        };
        let mut fields: Vec<(String, &[String])> = Vec::new();
        if !d.secret_fields.is_empty() || !d.host_fields.is_empty() {
            let config: serde_json::Value = serde_json::from_str(config)
                .map_err(|e| format!("config is not valid JSON: {e}"))?;
            for field in &d.secret_fields {
                match config.pointer(&field.pointer) {
                    None | Some(serde_json::Value::Null) => {}
                    Some(serde_json::Value::String(name)) => {
                        SecretName::new(name).map_err(|e| format!("{}: {e}", field.pointer))?;
                        plan.declared.insert(name.clone());
                        fields.push((name.clone(), &field.hosts));
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
        plan.bound = bound;
        Ok(plan)
    }
}

/// What one invocation may read, and where it may send what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) declared: HashSet<String>,
    pub(crate) allowed_hosts: HashSet<String>,
    /// Secret → the hosts it may be sent to (empty: nowhere).
    pub(crate) bound: HashMap<String, HashSet<String>>,
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
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let pre = ExtensionPre::new(pre).map_err(wrong_world)?;
        let description = self.describe(&pre, origin).await?;
        Ok(Extension {
            description,
            pre,
            sha256,
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

    async fn describe(
        &self,
        pre: &ExtensionPre<Invocation>,
        origin: &str,
    ) -> Result<ExtensionDescription, LoadError> {
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
            host::SecretsHost::new(Arc::new(NoSecrets), HashSet::new()),
            Box::new(host::DenyEgress),
            None,
            limit,
        );
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        };
        let d: bindings::narakim::extension::types::Description =
            match tokio::time::timeout(limit + super::EPOCH_TICK * 5, call).await {
                Ok(described) => {
                    described.map_err(|e| match e.downcast_ref::<wasmtime::Trap>() {
                        Some(wasmtime::Trap::Interrupt) => LoadError::DescribeTimeout {
                            path: origin.to_owned(),
                            limit,
                        },
                        _ => failed(e),
                    })?
                }
                Err(_elapsed) => {
                    return Err(LoadError::DescribeTimeout {
                        path: origin.to_owned(),
                        limit,
                    });
                }
            };
        let description = ExtensionDescription {
            name: d.name,
            version: d.version,
            description: d.description,
            required_secrets: d
                .required_secrets
                .into_iter()
                .map(|s| RequiredSecret {
                    name: s.name,
                    hosts: s.hosts,
                })
                .collect(),
            secret_fields: d
                .secret_fields
                .into_iter()
                .map(|f| SecretField {
                    pointer: f.pointer,
                    hosts: f.hosts,
                })
                .collect(),
            allowed_hosts: d.allowed_hosts,
            host_fields: d.host_fields,
        };
        validate(&description).map_err(|reason| LoadError::BadDescription {
            path: origin.to_owned(),
            reason,
        })?;
        Ok(description)
    }
}

fn validate(d: &ExtensionDescription) -> Result<(), String> {
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
            }],
            secret_fields: vec![SecretField {
                pointer: "/auth/secret".into(),
                hosts: field_hosts.iter().map(|h| h.to_string()).collect(),
            }],
            allowed_hosts: vec!["a.example".into(), "b.example".into()],
            host_fields: vec![],
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
