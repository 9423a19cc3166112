//! The encrypted secrets vault.
//!
//! Values are sealed with AES-256-GCM under per-record data keys, which are
//! in turn wrapped by a master key kept outside the database (see
//! [`record`] for the exact byte layout and [`key`] for the key file). The
//! vault is write-only: nothing here returns a stored plaintext. The only
//! way to a value is a per-execution [`SecretSnapshot`] snapshot, which the
//! runtime asks for one declared name at a time.
//!
//! Threats it guards against:
//! - a stolen or copied database file (every value is encrypted; the key
//!   lives elsewhere; deleted and overwritten values are zeroed in the file
//!   and its WAL);
//! - rows moved between bots, teams or names, and tampered bytes (the AAD
//!   binds each record to its identity; GCM authenticates every bit);
//! - the wrong key, another vault's key, or a key readable by other users
//!   (each refused when the vault opens, before any secret is read);
//! - a crash during key rotation (a staged sequence that `open` completes).
//!
//! It does not guard against an attacker who can read this process's
//! memory or the master key file.
//!
//! ```
//! use narakim::vault::{Scope, SecretName, SecretResolver, SecretValue, Vault, VaultConfig, KeySource};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let config = VaultConfig::new(
//!     tmp.path().join("data"),
//!     KeySource::File(tmp.path().join("config/master.key")),
//! );
//! Vault::init(&config)?;
//! let mut vault = Vault::open(config)?;
//! vault.create_team("ops")?;
//! vault.create_bot("greeter", "ops")?;
//! let name = SecretName::new("DISCORD_BOT_TOKEN")?;
//! vault.set_secret(&Scope::Team("ops".into()), &name, &SecretValue::new("team-token-123".into())?)?;
//! vault.set_secret(&Scope::Bot("greeter".into()), &name, &SecretValue::new("bot-token-456".into())?)?;
//!
//! // The bot secret overrides the team secret of the same name.
//! let snapshot = vault.snapshot_for_bot("greeter")?;
//! assert!(snapshot.resolve("DISCORD_BOT_TOKEN")?.matches(b"bot-token-456"));
//! assert!(snapshot.resolve("OPENROUTER_API_KEY").is_err());
//! # Ok(()) }
//! ```

pub mod access;
mod audit;
mod config;
mod error;
pub mod key;
pub mod kms;
mod kms_key;
mod pause;
pub mod record;
mod rotate;
mod scope;
mod secrets;
pub mod session;
mod sigv4;
mod snapshot;
pub mod store;
pub mod token;
mod value;

use std::path::PathBuf;
use std::sync::Arc;

use crate::db::{Begin, Conn};
use zeroize::Zeroizing;

pub use audit::AuditEntry;
pub use config::VaultConfig;
pub use error::{InputError, RecordFault, ResolveError, VaultError};
pub use key::{KeyId, KeySource, MasterKey, VaultId};
pub use rotate::{RotationReport, VerifyReport};
pub use scope::{Scope, ScopeKind};
pub use secrets::{BotInfo, Precondition, SecretInfo, SetOutcome, StoredMatch, TeamInfo};
pub use snapshot::{ChangeStamp, Generation, SecretResolver, SecretSnapshot};
pub use store::Database;
pub use value::{MAX_NAME_LEN, MAX_VALUE_LEN, MIN_VALUE_LEN, SecretName, SecretValue};

/// A new vault in a temp dir (removed when the dir is dropped), for unit
/// tests: its database under `data/`, its key file under `config/`.
#[cfg(test)]
pub(crate) fn scratch() -> (tempfile::TempDir, VaultConfig) {
    let tmp = tempfile::tempdir().unwrap();
    let config = VaultConfig::new(
        tmp.path().join("data"),
        KeySource::File(tmp.path().join("config/master.key")),
    );
    Vault::init(&config).unwrap();
    (tmp, config)
}

/// What a [`Vault::service_key`] is for. Each purpose has its own label,
/// so no key derived here is another's (the token digest key and the
/// fingerprint tag key use labels of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKey {
    /// The HPKE key pair browsers seal secret values to.
    BrowserSeal,
    /// The web UI's CSRF tokens, a MAC of the session id.
    UiCsrf,
}

impl ServiceKey {
    fn label(self) -> &'static [u8] {
        match self {
            ServiceKey::BrowserSeal => b"narakim browser-seal v1",
            ServiceKey::UiCsrf => b"narakim ui-csrf v1",
        }
    }
}

const META_VAULT_ID: &str = "vault_id";
const META_KEY_ID: &str = "key_id";
const META_PREVIOUS_KEY_ID: &str = "previous_key_id";
const META_FINGERPRINT_KEY: &str = "fingerprint_key";
const FINGERPRINT_KEY_LABEL: &[u8] = b"fingerprint-key";

/// An open vault: a database connection and the verified master key.
pub struct Vault {
    conn: Conn,
    config: VaultConfig,
    key: Arc<MasterKey>,
    vault_id: VaultId,
    /// Keys the short fingerprints shown by `secret list`. Random per vault,
    /// stored wrapped by the master key, so fingerprints survive rotation.
    fingerprint_key: Zeroizing<Vec<u8>>,
    /// Derived from the fingerprint key: binds each row's fingerprint to
    /// its record (see [`record::fingerprint_tag`]).
    fingerprint_tag_key: Zeroizing<Vec<u8>>,
    /// Digests API tokens (see [`access`]), under a key derived from the
    /// fingerprint key.
    token_hasher: token::TokenHasher,
    /// The master key the last rotation replaced, to name records restored
    /// from a backup taken before it.
    previous_key_id: Option<KeyId>,
    notes: Vec<String>,
    /// Recent snapshots (sealed records only), reused while the database is
    /// unchanged: see [`snapshot::SnapshotCache`].
    snapshots: snapshot::SnapshotCache,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("data_dir", &self.config.data_dir)
            .field("vault_id", &self.vault_id)
            .field("key_id", &self.key.id())
            .finish_non_exhaustive()
    }
}

/// See [`Vault::acting_as`].
#[derive(Debug)]
pub struct ActingAs<'v> {
    vault: &'v mut Vault,
    configured: String,
}

impl std::ops::Deref for ActingAs<'_> {
    type Target = Vault;
    fn deref(&self) -> &Vault {
        self.vault
    }
}

impl std::ops::DerefMut for ActingAs<'_> {
    fn deref_mut(&mut self) -> &mut Vault {
        self.vault
    }
}

impl Drop for ActingAs<'_> {
    fn drop(&mut self) {
        self.vault.config.actor = std::mem::take(&mut self.configured);
    }
}

/// What `init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// Made a new database and, unless the key came from the environment, a
    /// new key file.
    Created { vault_id: VaultId, key_id: KeyId },
    /// The vault and its key already existed and match; nothing changed.
    AlreadyInitialized { vault_id: VaultId, key_id: KeyId },
}

impl Vault {
    /// Creates the database and the master key. Never overwrites a key.
    ///
    /// Running it again on an initialized vault checks that the key opens it
    /// and changes nothing.
    pub fn init(config: &VaultConfig) -> Result<InitOutcome, VaultError> {
        config.check_key_apart()?;
        let db = config.db_path();
        if store::exists(&config.database, &db)? {
            if !config.key.exists() {
                return Err(VaultError::VaultWithoutKey {
                    data_dir: config.data_dir.clone(),
                    key: config.key_path_for_messages(),
                });
            }
            let vault = Vault::open(config.clone())?;
            return Ok(InitOutcome::AlreadyInitialized {
                vault_id: vault.vault_id,
                key_id: vault.key.id(),
            });
        }
        if let KeySource::File(path) = &config.key
            && path.exists()
        {
            return Err(VaultError::KeyExists { path: path.clone() });
        }
        let vault_id = VaultId::generate()?;
        key::create_private_dir(&config.data_dir)?;
        let (key, written_key, kms_blob) = match &config.key {
            KeySource::File(path) => {
                let key = MasterKey::generate()?;
                key::write_key_file(path, &key, vault_id)?;
                (key, Some(path), None)
            }
            KeySource::Env(_) => (config.key.load()?.key, None, None),
            KeySource::Kms(kms) => {
                let (key, blob) = kms_key::generate(kms, vault_id)?;
                (key, None, Some((blob, kms.key_id().to_owned())))
            }
        };
        let created = Self::create_database(config, vault_id, &key, kms_blob.as_ref());
        if created.is_err() {
            // Leave nothing half-made: a retry must start clean. (On
            // PostgreSQL each migration and the init are transactions.)
            if let Database::Sqlite = config.database {
                for file in store::database_files(&config.data_dir) {
                    let _ = std::fs::remove_file(file);
                }
            }
            if let Some(path) = written_key {
                key::shred_file(path)?;
            }
        }
        created?;
        Ok(InitOutcome::Created {
            vault_id,
            key_id: key.id(),
        })
    }

    fn create_database(
        config: &VaultConfig,
        vault_id: VaultId,
        key: &MasterKey,
        kms_blob: Option<&(Vec<u8>, String)>,
    ) -> Result<(), VaultError> {
        let db = config.db_path();
        let mut fingerprint_key = Zeroizing::new(vec![0u8; 32]);
        key::fill_random(&mut fingerprint_key)?;
        let conn = store::create(&config.database, &db)?;
        let tx = conn
            .begin(Begin::Immediate)
            .map_err(VaultError::db("starting init"))?;
        store::insert_meta(&tx, META_VAULT_ID, &vault_id.0)?;
        store::insert_meta(&tx, META_KEY_ID, &key.id().0)?;
        if let Some((blob, kms_key)) = kms_blob {
            store::insert_meta(&tx, kms_key::META_KMS_BLOB, blob)?;
            store::insert_meta(&tx, kms_key::META_KMS_KEY, kms_key.as_bytes())?;
        }
        store::insert_meta(
            &tx,
            META_FINGERPRINT_KEY,
            &record::seal_blob(key, &fingerprint_label(vault_id), &fingerprint_key)?,
        )?;
        audit::record(
            &tx,
            &config.actor,
            "vault.init",
            None,
            None,
            &format!("vault {vault_id}, key {}", key.id()),
        )?;
        tx.commit().map_err(VaultError::db("finishing init"))
    }

    /// Opens the vault, verifying the master key before any secret row is
    /// read or anything is written.
    ///
    /// It also finishes a key rotation that a crash interrupted (see
    /// [`Vault::notes`]).
    pub fn open(config: VaultConfig) -> Result<Vault, VaultError> {
        config.check_key_apart()?;
        let db = config.db_path();
        if !store::exists(&config.database, &db)? {
            return Err(VaultError::NotInitialized {
                data_dir: match config.database {
                    Database::Sqlite => config.data_dir.clone(),
                    Database::Postgres(_) => db,
                },
            });
        }
        let conn = store::open_existing(&config.database, &db)?;
        let not_a_vault = |reason: &str| VaultError::NotAVault {
            path: db.clone(),
            reason: reason.to_owned(),
        };
        let vault_id = store::get_meta(&conn, META_VAULT_ID)?
            .and_then(|b| VaultId::from_slice(&b))
            .ok_or_else(|| not_a_vault("its vault id is missing"))?;
        let expected = store::get_meta(&conn, META_KEY_ID)?
            .and_then(|b| KeyId::from_slice(&b))
            .ok_or_else(|| not_a_vault("its key id is missing"))?;
        let previous =
            store::get_meta(&conn, META_PREVIOUS_KEY_ID)?.and_then(|b| KeyId::from_slice(&b));

        let kms_blob = store::get_meta(&conn, kms_key::META_KMS_BLOB)?;
        let loaded = match (&config.key, kms_blob) {
            (KeySource::Kms(kms), Some(blob)) => key::LoadedKey {
                key: kms_key::open(kms, vault_id, &blob)?,
                vault_id: Some(vault_id),
            },
            (KeySource::Kms(_), None) => return Err(VaultError::KeyNotInKms),
            (_, Some(_)) => return Err(VaultError::KeyInKms),
            (source, None) => source.load()?,
        };
        let mut notes = Vec::new();
        let key = if loaded.key.id() == expected {
            rotate::discard_uncommitted(&config)?;
            loaded.key
        } else if let Some(key) = rotate::complete_interrupted(&config, expected)? {
            notes.push(format!(
                "completed a key rotation that was interrupted after its database commit; the master key is now {expected}"
            ));
            key
        } else if let Some(key_vault) = loaded.vault_id.filter(|v| *v != vault_id) {
            return Err(VaultError::WrongVault {
                key_vault: key_vault.to_string(),
                vault: vault_id.to_string(),
                data_dir: config.data_dir.clone(),
            });
        } else if previous == Some(loaded.key.id()) {
            return Err(VaultError::StaleKey {
                key_id: loaded.key.id().to_string(),
                current: expected.to_string(),
            });
        } else {
            return Err(VaultError::WrongKey {
                expected: expected.to_string(),
                got: loaded.key.id().to_string(),
                data_dir: config.data_dir.clone(),
            });
        };

        // The fingerprint key's row is the same in every schema version.
        let fingerprint_key = store::get_meta(&conn, META_FINGERPRINT_KEY)?
            .and_then(|sealed| record::open_blob(&key, &fingerprint_label(vault_id), &sealed))
            .ok_or_else(|| not_a_vault("its fingerprint key cannot be unwrapped"))?;
        let fingerprint_tag_key = record::fingerprint_tag_key(&fingerprint_key);
        let token_hasher = access::token_hasher(&fingerprint_key);
        // The key is right: now the file may change.
        store::migrate(&conn, &mut |tx, version| match version {
            2 => secrets::fill_fingerprint_tags(tx, &key, &fingerprint_key, &fingerprint_tag_key),
            _ => Ok(()),
        })?;
        let mut vault = Vault {
            conn,
            config,
            key: Arc::new(key),
            vault_id,
            fingerprint_key,
            fingerprint_tag_key,
            token_hasher,
            previous_key_id: previous,
            notes,
            snapshots: Default::default(),
        };
        rotate::retire_verified_backup(&mut vault)?;
        Ok(vault)
    }

    /// Picks up a master key rotated by another process or node since this
    /// vault was opened (the database's key id is the truth): from KMS, the
    /// new blob; from a key file, the file again. Reads one row when
    /// nothing changed.
    pub(crate) fn refresh_key(&mut self) -> Result<(), VaultError> {
        let current = store::get_meta(&self.conn, META_KEY_ID)?.and_then(|b| KeyId::from_slice(&b));
        if current == Some(self.key.id()) {
            return Ok(());
        }
        let current = current.ok_or_else(|| VaultError::NotAVault {
            path: self.config.db_path(),
            reason: "its key id is missing".into(),
        })?;
        let key = match &self.config.key {
            KeySource::Kms(kms) => {
                let blob = store::get_meta(&self.conn, kms_key::META_KMS_BLOB)?
                    .ok_or(VaultError::KeyNotInKms)?;
                kms_key::open(kms, self.vault_id, &blob)?
            }
            source => source.load()?.key,
        };
        if key.id() != current {
            return Err(VaultError::StaleKey {
                key_id: key.id().to_string(),
                current: current.to_string(),
            });
        }
        self.previous_key_id =
            store::get_meta(&self.conn, META_PREVIOUS_KEY_ID)?.and_then(|b| KeyId::from_slice(&b));
        self.key = Arc::new(key);
        Ok(())
    }

    /// Things `open` did on its own that an operator should hear about, such
    /// as finishing an interrupted rotation.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn key_id(&self) -> KeyId {
        self.key.id()
    }

    pub fn vault_id(&self) -> VaultId {
        self.vault_id
    }

    /// A key the service uses for `purpose`, derived from the fingerprint
    /// key: the same on every node that opens this vault, unchanged by
    /// rotation, and useless for anything but its purpose.
    pub fn service_key(&self, purpose: ServiceKey) -> Zeroizing<[u8; 32]> {
        let derived = record::derived_key(&self.fingerprint_key, purpose.label());
        Zeroizing::new(
            derived
                .as_slice()
                .try_into()
                .expect("HMAC-SHA256 output is 32 bytes"),
        )
    }

    /// The vault with every change made through the returned handle audited
    /// as `actor` (the service passes the calling token's id). The
    /// configured actor comes back when the handle drops, even on a panic.
    pub fn acting_as(&mut self, actor: &str) -> ActingAs<'_> {
        let configured = std::mem::replace(&mut self.config.actor, actor.to_owned());
        ActingAs {
            vault: self,
            configured,
        }
    }

    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// Path of the database file.
    pub fn db_path(&self) -> PathBuf {
        self.config.db_path()
    }
}

fn fingerprint_label(vault: VaultId) -> Vec<u8> {
    let mut label = FINGERPRINT_KEY_LABEL.to_vec();
    label.extend_from_slice(&vault.0);
    label
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats a stored millisecond timestamp as RFC 3339 UTC.
pub fn format_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
