//! Installed extensions: components copied into the data directory and
//! recorded in the engine database, by name, version and content hash.
//!
//! Layout: `DATA_DIR/extensions/<name>/<version>/<sha256>.wasm`, one row per
//! name and version in `engine.db` ([`EngineStore`]). A name and version
//! identify one content forever: reinstalling the same bytes is a no-op,
//! different bytes under an installed version are refused (a graph pinned
//! to `0.1.0` must never silently run other code), and a change has to come
//! as a new version. Installing a new version reports what it changes in
//! the extension's reach (secrets, their hosts, allowed hosts, fields), so
//! the operator sees a widened blast radius before deploying it.
//!
//! Install is all-or-nothing: the component is validated by the runtime
//! (a component of our world, with a valid self-description, compiled and
//! cached) before anything is written; it is then written to a temporary
//! file and renamed into place, and only then recorded. If recording fails,
//! the file is removed again. Nothing already installed is ever modified.
//!
//! Loading checks the stored file against the recorded hash before the
//! runtime sees it, so a component modified on disk after install is
//! refused rather than run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::runtime::{Extension, ExtensionDescription, InjectionRule, LoadError, Runtime};

use super::ExtensionCatalog;
use super::store::{EngineStore, InstalledExtension, StoreError};

/// The directory, under the data directory, holding installed components.
pub const EXTENSIONS_DIR: &str = "extensions";

/// Why an extension could not be installed, found or loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Load(#[from] LoadError),

    #[error(
        "{origin}: extension name {name:?} is invalid: it must be 1-64 characters of a-z, 0-9 and -, not starting with -"
    )]
    InvalidName { origin: String, name: String },

    #[error(
        "{origin}: extension version {version:?} is invalid: it must be 1-32 characters of A-Z, a-z, 0-9, ., + and -, starting with a letter or digit"
    )]
    InvalidVersion { origin: String, version: String },

    #[error(
        "{name} {version} is already installed with different content (sha256 {installed}, this file has {new}); bump the version in its describe()"
    )]
    Conflict {
        name: String,
        version: String,
        installed: String,
        new: String,
    },

    #[error("cannot store the component at {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("extension {name} is not installed; see `narakim extension list`")]
    NotInstalled { name: String },

    #[error(
        "extension {name} {version} now describes itself differently than when it was installed ({change}); the description stored at install is the contract, so it will not run. A component whose description changes is not to be trusted: remove it, or install a new version and redeploy"
    )]
    DescriptionChanged {
        name: String,
        version: String,
        change: String,
    },

    #[error(
        "extension {name} has no version {version} installed (installed: {}); see `narakim extension list`",
        installed.join(", ")
    )]
    VersionNotInstalled {
        name: String,
        version: String,
        installed: Vec<String>,
    },

    #[error(
        "cannot read the stored component of {name} {version} at {}: {source}; reinstall it with `narakim extension install FILE`",
        path.display()
    )]
    StoredUnreadable {
        name: String,
        version: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "the stored component of {name} {version} was modified: {} has sha256 {found}, but {expected} was installed; reinstall it from the original file with `narakim extension install FILE`",
        path.display()
    )]
    Modified {
        name: String,
        version: String,
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// The installed extension (the existing row when already installed).
    pub extension: InstalledExtension,
    pub outcome: InstallOutcome,
}

/// How an install ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    /// The first version of this name.
    Installed,
    /// The same name, version and content were installed already; nothing
    /// changed, except that a stored component found missing or modified
    /// was restored from these (hash-verified) bytes (`repaired`).
    AlreadyInstalled { repaired: bool },
    /// Another version of an installed extension; `diff` is against the
    /// newest version installed before (`previous`). Boxed: it is large
    /// next to the other variants.
    NewVersion {
        previous: String,
        diff: Box<DescriptionDiff>,
    },
}

impl fmt::Display for InstallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.extension;
        match &self.outcome {
            InstallOutcome::Installed => {
                write!(
                    f,
                    "installed {} {} (sha256 {})",
                    e.name, e.version, e.sha256
                )?;
                if e.description.reveals_secrets {
                    write!(
                        f,
                        "\n  reveals secrets: it imports secrets.get, so it holds the plaintext of the secrets it declares"
                    )?;
                }
                Ok(())
            }
            InstallOutcome::AlreadyInstalled { repaired } => {
                write!(
                    f,
                    "{} {} is already installed (sha256 {})",
                    e.name, e.version, e.sha256
                )?;
                if *repaired {
                    write!(
                        f,
                        "; its stored component was missing or modified and has been restored"
                    )?;
                }
                Ok(())
            }
            InstallOutcome::NewVersion { previous, diff } => {
                writeln!(
                    f,
                    "installed {} {} (sha256 {}); changes since {previous}:",
                    e.name, e.version, e.sha256
                )?;
                for line in diff.to_string().lines() {
                    writeln!(f, "  {line}")?;
                }
                Ok(())
            }
        }
    }
}

/// A secret's or secret field's host binding that changed between versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsChange {
    /// The secret's name, or the secret field's JSON pointer.
    pub subject: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
}

/// What a new version changes in an extension's reach. Host lists are
/// compared as sets and kept sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescriptionDiff {
    /// Required secrets added, with their hosts.
    pub secrets_added: Vec<(String, Vec<String>)>,
    pub secrets_removed: Vec<(String, Vec<String>)>,
    /// Required secrets kept whose bound hosts changed.
    pub secret_hosts_changed: Vec<HostsChange>,
    pub allowed_hosts_added: Vec<String>,
    pub allowed_hosts_removed: Vec<String>,
    /// Secret fields (JSON pointers) added, with their hosts.
    pub secret_fields_added: Vec<(String, Vec<String>)>,
    pub secret_fields_removed: Vec<(String, Vec<String>)>,
    /// Secret fields kept whose bound hosts changed.
    pub secret_field_hosts_changed: Vec<HostsChange>,
    pub host_fields_added: Vec<String>,
    pub host_fields_removed: Vec<String>,
    /// `Some(now)` when the new version starts (`true`) or stops
    /// (`false`) importing `secrets.get`, which hands it plaintext.
    pub reveals_secrets: Option<bool>,
    /// Secrets (required, or secret fields) whose injection rule changed:
    /// where the host will put their values.
    pub injection_changed: Vec<String>,
}

impl DescriptionDiff {
    /// What changes from `before` to `after`.
    pub fn between(before: &ExtensionDescription, after: &ExtensionDescription) -> Self {
        let secrets = |d: &ExtensionDescription| -> BTreeMap<String, Vec<String>> {
            d.required_secrets
                .iter()
                .map(|s| (s.name.clone(), sorted(&s.hosts)))
                .collect()
        };
        let fields = |d: &ExtensionDescription| -> BTreeMap<String, Vec<String>> {
            d.secret_fields
                .iter()
                .map(|s| (s.pointer.clone(), sorted(&s.hosts)))
                .collect()
        };
        let (secrets_added, secrets_removed, secret_hosts_changed) =
            compare_bound(&secrets(before), &secrets(after));
        let (secret_fields_added, secret_fields_removed, secret_field_hosts_changed) =
            compare_bound(&fields(before), &fields(after));
        let (allowed_hosts_added, allowed_hosts_removed) =
            compare_sets(&before.allowed_hosts, &after.allowed_hosts);
        let (host_fields_added, host_fields_removed) =
            compare_sets(&before.host_fields, &after.host_fields);
        fn rules(d: &ExtensionDescription) -> BTreeMap<&str, &InjectionRule> {
            let required = d
                .required_secrets
                .iter()
                .map(|s| (s.name.as_str(), &s.injection));
            let fields = d
                .secret_fields
                .iter()
                .map(|f| (f.pointer.as_str(), &f.injection));
            required.chain(fields).collect()
        }
        let (rules_before, rules_after) = (rules(before), rules(after));
        let injection_changed = rules_after
            .iter()
            .filter(|(k, v)| rules_before.get(*k).is_some_and(|b| b != *v))
            .map(|(k, _)| (*k).to_owned())
            .collect();
        DescriptionDiff {
            reveals_secrets: (before.reveals_secrets != after.reveals_secrets)
                .then_some(after.reveals_secrets),
            injection_changed,
            secrets_added,
            secrets_removed,
            secret_hosts_changed,
            allowed_hosts_added,
            allowed_hosts_removed,
            secret_fields_added,
            secret_fields_removed,
            secret_field_hosts_changed,
            host_fields_added,
            host_fields_removed,
        }
    }

    /// Whether the two versions reach the same secrets and hosts.
    pub fn is_empty(&self) -> bool {
        *self == DescriptionDiff::default()
    }
}

/// `+` added, `-` removed, `~` changed; one line each.
impl fmt::Display for DescriptionDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no change to secrets, hosts or fields");
        }
        match self.reveals_secrets {
            Some(true) => writeln!(
                f,
                "+ reveals secrets: imports secrets.get, so it holds plaintext values"
            )?,
            Some(false) => writeln!(
                f,
                "- reveals secrets: no longer imports secrets.get (credentials only)"
            )?,
            None => {}
        }
        for subject in &self.injection_changed {
            writeln!(
                f,
                "~ where the host puts {subject} into requests (its injection) changed"
            )?;
        }
        for (name, hosts) in &self.secrets_added {
            writeln!(f, "+ required secret {name} (hosts: {})", hosts_text(hosts))?;
        }
        for (name, hosts) in &self.secrets_removed {
            writeln!(f, "- required secret {name} (hosts: {})", hosts_text(hosts))?;
        }
        for c in &self.secret_hosts_changed {
            writeln!(
                f,
                "~ required secret {} hosts: {} -> {}",
                c.subject,
                hosts_text(&c.before),
                hosts_text(&c.after)
            )?;
        }
        for host in &self.allowed_hosts_added {
            writeln!(f, "+ allowed host {host}")?;
        }
        for host in &self.allowed_hosts_removed {
            writeln!(f, "- allowed host {host}")?;
        }
        for (pointer, hosts) in &self.secret_fields_added {
            writeln!(f, "+ secret field {pointer} (hosts: {})", hosts_text(hosts))?;
        }
        for (pointer, hosts) in &self.secret_fields_removed {
            writeln!(f, "- secret field {pointer} (hosts: {})", hosts_text(hosts))?;
        }
        for c in &self.secret_field_hosts_changed {
            writeln!(
                f,
                "~ secret field {} hosts: {} -> {}",
                c.subject,
                hosts_text(&c.before),
                hosts_text(&c.after)
            )?;
        }
        for pointer in &self.host_fields_added {
            writeln!(f, "+ host field {pointer}")?;
        }
        for pointer in &self.host_fields_removed {
            writeln!(f, "- host field {pointer}")?;
        }
        Ok(())
    }
}

type Bound = Vec<(String, Vec<String>)>;

/// Added, removed and re-bound entries between two `name → hosts` maps.
fn compare_bound(
    before: &BTreeMap<String, Vec<String>>,
    after: &BTreeMap<String, Vec<String>>,
) -> (Bound, Bound, Vec<HostsChange>) {
    let added = after
        .iter()
        .filter(|(k, _)| !before.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let removed = before
        .iter()
        .filter(|(k, _)| !after.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let changed = before
        .iter()
        .filter_map(|(k, old)| match after.get(k) {
            Some(new) if new != old => Some(HostsChange {
                subject: k.clone(),
                before: old.clone(),
                after: new.clone(),
            }),
            _ => None,
        })
        .collect();
    (added, removed, changed)
}

/// Added and removed items between two lists taken as sets, sorted.
fn compare_sets(before: &[String], after: &[String]) -> (Vec<String>, Vec<String>) {
    let (b, a): (BTreeSet<_>, BTreeSet<_>) = (before.iter().collect(), after.iter().collect());
    (
        a.difference(&b).map(|s| (*s).clone()).collect(),
        b.difference(&a).map(|s| (*s).clone()).collect(),
    )
}

fn sorted(hosts: &[String]) -> Vec<String> {
    let set: BTreeSet<_> = hosts.iter().cloned().collect();
    set.into_iter().collect()
}

/// An empty binding means the secret may go to any allowed host.
fn hosts_text(hosts: &[String]) -> String {
    if hosts.is_empty() {
        "any allowed host".into()
    } else {
        hosts.join(", ")
    }
}

/// The installed extensions of one data directory.
///
/// Owns its own [`EngineStore`] connection (the CLI opens one per command;
/// an engine that shares one store behind a mutex can instead look rows up
/// itself and call [`load_installed`], so no lock is held while the
/// component loads).
#[derive(Debug)]
pub struct Registry<'r> {
    store: EngineStore,
    runtime: &'r Runtime,
}

impl<'r> Registry<'r> {
    /// The registry of `data_dir`, opening (and creating) its `engine.db`.
    pub fn open(data_dir: &Path, runtime: &'r Runtime) -> Result<Self, RegistryError> {
        Ok(Self::new(EngineStore::open(data_dir)?, runtime))
    }

    /// The registry over an open store; components live under the store's
    /// data directory.
    pub fn new(store: EngineStore, runtime: &'r Runtime) -> Self {
        Registry { store, runtime }
    }

    pub fn store(&self) -> &EngineStore {
        &self.store
    }

    pub fn into_store(self) -> EngineStore {
        self.store
    }

    /// Installs the component at `path`; see the module docs for what is
    /// checked and the all-or-nothing guarantee.
    pub async fn install(&mut self, path: &Path) -> Result<InstallReport, RegistryError> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| RegistryError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.install_bytes(&bytes, &origin).await
    }

    /// Installs a component given as bytes (an upload); `origin` names it
    /// in messages. Same checks and guarantee as [`install`](Self::install).
    pub async fn install_bytes(
        &mut self,
        bytes: &[u8],
        origin: &str,
    ) -> Result<InstallReport, RegistryError> {
        let extension = self.runtime.load_bytes(bytes, origin).await?;
        let description = extension.description();
        let sha256 = extension.sha256();
        check_name(&description.name, origin)?;
        check_version(&description.version, origin)?;
        let (name, version) = (&description.name, &description.version);

        if let Some(installed) = self.store.extension(name, Some(version))? {
            if installed.sha256 != sha256 {
                return Err(RegistryError::Conflict {
                    name: name.clone(),
                    version: version.clone(),
                    installed: installed.sha256,
                    new: sha256.to_owned(),
                });
            }
            // Same content: restore the stored file if it went missing or
            // was modified (these bytes hash to the recorded value).
            let intact = std::fs::read(&installed.path)
                .is_ok_and(|stored| hex(&Sha256::digest(&stored)) == installed.sha256);
            if !intact {
                write_component(&installed.path, bytes)?;
            }
            return Ok(InstallReport {
                extension: installed,
                outcome: InstallOutcome::AlreadyInstalled { repaired: !intact },
            });
        }

        let previous = self.store.extension(name, None)?;
        let target = component_path(self.store.data_dir(), name, version, sha256);
        let existed = target.exists();
        write_component(&target, bytes)?;
        // Every node of a cluster can load it from there.
        self.store.store_component(sha256, bytes)?;
        let recorded = match self.store.record_extension(description, sha256, &target) {
            Ok(recorded) => recorded,
            Err(e) => {
                // Leave nothing behind that this install put there. A file
                // that was already in place (same hash, so same bytes) may
                // belong to a concurrent install of the same version.
                if !existed {
                    let _ = std::fs::remove_file(&target);
                    if let Some(version_dir) = target.parent() {
                        let _ = std::fs::remove_dir(version_dir);
                        if let Some(name_dir) = version_dir.parent() {
                            let _ = std::fs::remove_dir(name_dir);
                        }
                    }
                }
                return Err(e.into());
            }
        };
        let outcome = match previous {
            None => InstallOutcome::Installed,
            Some(previous) => InstallOutcome::NewVersion {
                diff: Box::new(DescriptionDiff::between(&previous.description, description)),
                previous: previous.version,
            },
        };
        Ok(InstallReport {
            extension: recorded,
            outcome,
        })
    }

    /// Every installed extension, by name, newest version first.
    pub fn list(&self) -> Result<Vec<InstalledExtension>, RegistryError> {
        Ok(self.store.extensions()?)
    }

    /// `name` at `version`, or its newest version when `version` is `None`
    /// (newest by version number: see
    /// [`compare_versions`](super::store::compare_versions)).
    pub fn show(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<InstalledExtension, RegistryError> {
        if let Some(found) = self.store.extension(name, version)? {
            return Ok(found);
        }
        let installed: Vec<String> = self
            .store
            .versions(name)?
            .into_iter()
            .map(|e| e.version)
            .collect();
        Err(match version {
            Some(version) if !installed.is_empty() => RegistryError::VersionNotInstalled {
                name: name.to_owned(),
                version: version.to_owned(),
                installed,
            },
            _ => RegistryError::NotInstalled {
                name: name.to_owned(),
            },
        })
    }

    /// Loads the stored component of `name` at `version` (newest when
    /// `None`) through the runtime, after checking its hash.
    pub async fn load(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Extension, RegistryError> {
        let installed = self.show(name, version)?;
        load_installed(self.runtime, &installed).await
    }
}

impl ExtensionCatalog for Registry<'_> {
    fn find(&self, name: &str, version: Option<&str>) -> Option<ExtensionDescription> {
        self.store.find(name, version)
    }
}

/// Writes `bytes` (from the database a cluster shares) where `installed`
/// is kept in this node's data directory, if they hash to its recorded
/// SHA-256; a mismatch is left for [`load_installed`] to report.
pub fn restore_component(
    installed: &InstalledExtension,
    bytes: &[u8],
) -> Result<(), RegistryError> {
    if hex(&Sha256::digest(bytes)) == installed.sha256 {
        write_component(&installed.path, bytes)?;
    }
    Ok(())
}

/// Loads an installed extension's stored component through `runtime`.
/// The file's SHA-256 is checked against the recorded one first, so a
/// component modified after install never runs (not even its describe()).
pub async fn load_installed(
    runtime: &Runtime,
    installed: &InstalledExtension,
) -> Result<Extension, RegistryError> {
    let bytes =
        std::fs::read(&installed.path).map_err(|source| RegistryError::StoredUnreadable {
            name: installed.name.clone(),
            version: installed.version.clone(),
            path: installed.path.clone(),
            source,
        })?;
    let found = hex(&Sha256::digest(&bytes));
    if found != installed.sha256 {
        return Err(RegistryError::Modified {
            name: installed.name.clone(),
            version: installed.version.clone(),
            path: installed.path.clone(),
            expected: installed.sha256.clone(),
            found,
        });
    }
    let loaded = runtime
        .load_bytes(&bytes, &installed.path.display().to_string())
        .await?;
    // describe() runs again on every load; its answer must be the one
    // reviewed and stored at install, or a component could look innocent
    // at install and widen its hosts later.
    if !installed.description.declares_same(loaded.description()) {
        return Err(RegistryError::DescriptionChanged {
            name: installed.name.clone(),
            version: installed.version.clone(),
            change: description_change(&installed.description, loaded.description()),
        });
    }
    Ok(loaded)
}

/// What differs between two descriptions, briefly (names and hosts only).
fn description_change(stored: &ExtensionDescription, live: &ExtensionDescription) -> String {
    let mut changes = Vec::new();
    if stored.allowed_hosts != live.allowed_hosts {
        changes.push(format!(
            "allowed hosts {:?} at install, {:?} now",
            stored.allowed_hosts, live.allowed_hosts
        ));
    }
    if stored.required_secrets != live.required_secrets {
        changes.push("its required secrets or their hosts changed".to_owned());
    }
    if stored.secret_fields != live.secret_fields || stored.host_fields != live.host_fields {
        changes.push("its secret or host fields changed".to_owned());
    }
    if changes.is_empty() {
        changes.push("its name, version or description text changed".to_owned());
    }
    changes.join("; ")
}

/// Where a component is stored: `DATA_DIR/extensions/<name>/<version>/<sha256>.wasm`.
/// Name and version are validated first, so neither can leave the directory.
fn component_path(data_dir: &Path, name: &str, version: &str, sha256: &str) -> PathBuf {
    data_dir
        .join(EXTENSIONS_DIR)
        .join(name)
        .join(version)
        .join(format!("{sha256}.wasm"))
}

/// Writes `bytes` to `target` atomically: a temporary file in the same
/// directory, synced, made 0644, then renamed over `target`. A failure
/// leaves no temporary file behind (it is removed on drop).
fn write_component(target: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| RegistryError::Write { path, source }
    };
    let dir = target.parent().expect("component paths have a parent");
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".install-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(failed(dir))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .and_then(|()| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
        })
        .map_err(failed(tmp.path()))?;
    tmp.persist(target).map_err(|e| RegistryError::Write {
        path: target.to_owned(),
        source: e.error,
    })?;
    // Make the rename durable; losing it only costs a reinstall.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `^[a-z0-9][a-z0-9-]{0,63}$`: a name is a directory name and appears in
/// graphs, so it is kept to a portable, unambiguous alphabet.
fn check_name(name: &str, origin: &str) -> Result<(), RegistryError> {
    let ok = (1..=64).contains(&name.len())
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidName {
            origin: origin.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// `^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$`: a version is a directory name, so
/// it must not be `.` or `..` (hence the leading letter or digit).
fn check_version(version: &str, origin: &str) -> Result<(), RegistryError> {
    let ok = (1..=32).contains(&version.len())
        && version.as_bytes()[0].is_ascii_alphanumeric()
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidVersion {
            origin: origin.to_owned(),
            version: version.to_owned(),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{RequiredSecret, SecretField};

    #[test]
    fn names_and_versions() {
        for name in ["a", "discord-send-message", "x1", &"a".repeat(64)] {
            assert!(check_name(name, "f").is_ok(), "{name}");
        }
        for name in ["", "-a", "A", "a_b", "a.b", "../x", &"a".repeat(65)] {
            assert!(check_name(name, "f").is_err(), "{name}");
        }
        for version in ["0.1.0", "1.0.0-rc.1+build.5", "v2", &"1".repeat(32)] {
            assert!(check_version(version, "f").is_ok(), "{version}");
        }
        for version in ["", ".", "..", ".1", "-1", "1/2", "1 0", &"1".repeat(33)] {
            assert!(check_version(version, "f").is_err(), "{version}");
        }
    }

    #[test]
    fn diff_lines() {
        let before = ExtensionDescription {
            name: "x".into(),
            version: "0.1.0".into(),
            description: String::new(),
            required_secrets: vec![
                RequiredSecret {
                    name: "TOKEN".into(),
                    hosts: vec!["a.example".into()],
                    injection: Default::default(),
                },
                RequiredSecret {
                    name: "OLD".into(),
                    hosts: vec![],
                    injection: Default::default(),
                },
            ],
            secret_fields: vec![SecretField {
                pointer: "/auth".into(),
                hosts: vec![],
                injection: Default::default(),
            }],
            allowed_hosts: vec!["a.example".into(), "old.example.com".into()],
            host_fields: vec!["/url".into()],
            wit: "0.1.0".into(),
            reveals_secrets: false,
        };
        let mut after = before.clone();
        after.version = "0.2.0".into();
        after.required_secrets = vec![
            RequiredSecret {
                name: "TOKEN".into(),
                hosts: vec!["b.example".into(), "a.example".into()],
                injection: Default::default(),
            },
            RequiredSecret {
                name: "FOO".into(),
                hosts: vec!["a.com".into()],
                injection: Default::default(),
            },
        ];
        after.allowed_hosts = vec!["a.example".into(), "b.example".into()];
        after.secret_fields[0].hosts = vec!["a.example".into()];
        after.host_fields = vec![];

        let diff = DescriptionDiff::between(&before, &after);
        assert_eq!(
            diff.to_string(),
            "+ required secret FOO (hosts: a.com)\n\
             - required secret OLD (hosts: any allowed host)\n\
             ~ required secret TOKEN hosts: a.example -> a.example, b.example\n\
             + allowed host b.example\n\
             - allowed host old.example.com\n\
             ~ secret field /auth hosts: any allowed host -> a.example\n\
             - host field /url\n"
        );
        let same = DescriptionDiff::between(&before, &before);
        assert!(same.is_empty());
        // Order of hosts does not matter.
        let mut reordered = before.clone();
        reordered.allowed_hosts.reverse();
        assert!(DescriptionDiff::between(&before, &reordered).is_empty());
    }

    #[test]
    fn a_version_that_starts_revealing_or_moves_a_credential_says_so() {
        let before = ExtensionDescription {
            name: "x".into(),
            version: "0.1.0".into(),
            description: String::new(),
            required_secrets: vec![RequiredSecret {
                name: "TOKEN".into(),
                hosts: vec!["a.example".into()],
                injection: crate::runtime::InjectionRule {
                    headers: vec![crate::runtime::HeaderFormat {
                        name: "authorization".into(),
                        format: "Bot {}".into(),
                    }],
                    ..Default::default()
                },
            }],
            secret_fields: vec![],
            allowed_hosts: vec!["a.example".into()],
            host_fields: vec![],
            wit: "0.2.0".into(),
            reveals_secrets: false,
        };
        let mut after = before.clone();
        after.reveals_secrets = true;
        after.required_secrets[0].injection.query = true;
        let diff = DescriptionDiff::between(&before, &after);
        assert!(!diff.is_empty());
        let text = diff.to_string();
        assert!(
            text.contains("+ reveals secrets: imports secrets.get"),
            "{text}"
        );
        assert!(
            text.contains("~ where the host puts TOKEN into requests"),
            "{text}"
        );
        let back = DescriptionDiff::between(&after, &before).to_string();
        assert!(back.contains("- reveals secrets"), "{back}");
    }
}
