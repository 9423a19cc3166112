//! Where the vault lives and where its key comes from.

use std::path::{Component, Path, PathBuf};

use zeroize::Zeroizing;

use super::error::VaultError;
use super::key::KeySource;
use super::store::{DB_FILE, Database};

/// Where a vault's database and key are, and who is acting on it (for the
/// audit trail).
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Directory holding `vault.db` (and its WAL) on SQLite; on
    /// PostgreSQL, this node's own files (installed components, caches).
    pub data_dir: PathBuf,
    /// Where the vault's tables are: `vault.db` in `data_dir` (the
    /// default), or a PostgreSQL database.
    pub database: Database,
    /// Where the master key comes from.
    pub key: KeySource,
    /// Recorded in the audit trail for every change.
    pub actor: String,
}

impl VaultConfig {
    /// A config with an explicit data directory and key, acting as the
    /// current OS user.
    pub fn new(data_dir: PathBuf, key: KeySource) -> Self {
        Self {
            data_dir,
            database: Database::Sqlite,
            key,
            actor: default_actor(),
        }
    }

    /// The CLI's resolution order:
    /// - data dir: `data_dir` (from `--data-dir` or `NARAKIM_DATA_DIR`),
    ///   else `$XDG_DATA_HOME/narakim`, else `~/.local/share/narakim`;
    /// - key: `key_file` (from `--key-file` or `NARAKIM_KEY_FILE`), else
    ///   `NARAKIM_MASTER_KEY` (base64), else `$XDG_CONFIG_HOME/narakim/master.key`,
    ///   else `~/.config/narakim/master.key`. Giving both a key file and
    ///   `NARAKIM_MASTER_KEY` is refused as ambiguous.
    pub fn from_env(
        data_dir: Option<PathBuf>,
        key_file: Option<PathBuf>,
    ) -> Result<Self, VaultError> {
        let data_dir =
            data_dir.unwrap_or_else(|| xdg_dir("XDG_DATA_HOME", ".local/share").join("narakim"));
        let env_key = std::env::var("NARAKIM_MASTER_KEY")
            .ok()
            .filter(|k| !k.is_empty())
            .map(Zeroizing::new);
        let key = match (key_file, env_key) {
            (Some(path), Some(_)) => return Err(VaultError::KeySourceConflict { path }),
            (Some(path), None) => KeySource::File(path),
            (None, Some(text)) => KeySource::Env(text),
            (None, None) => {
                KeySource::File(xdg_dir("XDG_CONFIG_HOME", ".config").join("narakim/master.key"))
            }
        };
        Ok(Self::new(data_dir, key))
    }

    /// The same config with its tables in PostgreSQL at `url`. Every
    /// config for the same URL shares one connection pool.
    pub fn with_postgres(mut self, url: &str) -> Result<Self, VaultError> {
        self.database = Database::Postgres(
            crate::db::PgPool::shared(url).map_err(VaultError::db("connecting to PostgreSQL"))?,
        );
        Ok(self)
    }

    /// Where the vault's tables are, for messages: the SQLite file, or
    /// the PostgreSQL URL without its password.
    pub fn db_path(&self) -> PathBuf {
        match &self.database {
            Database::Sqlite => self.data_dir.join(DB_FILE),
            Database::Postgres(pool) => PathBuf::from(pool.shown()),
        }
    }

    pub(crate) fn key_path_for_messages(&self) -> PathBuf {
        match &self.key {
            KeySource::File(p) => p.clone(),
            KeySource::Env(_) => PathBuf::from("NARAKIM_MASTER_KEY"),
            KeySource::Kms(kms) => PathBuf::from(format!("AWS KMS key {}", kms.key_id())),
        }
    }

    /// Refuses a key file inside the data directory: a copy or backup of the
    /// data directory must never carry the key that opens it.
    pub(crate) fn check_key_apart(&self) -> Result<(), VaultError> {
        let KeySource::File(key) = &self.key else {
            return Ok(());
        };
        let (key_abs, data_abs) = (absolute(key), absolute(&self.data_dir));
        if key_abs.starts_with(&data_abs) {
            return Err(VaultError::KeyBesideDatabase {
                key: key.clone(),
                data_dir: self.data_dir.clone(),
            });
        }
        Ok(())
    }
}

/// `$VAR` if it is set to an absolute path (as the XDG spec asks), else
/// `$HOME/fallback`.
fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"))
            .join(fallback),
    }
}

/// An absolute, symlink-resolved form of `path` as far as it exists,
/// lexically normalised beyond that.
fn absolute(path: &Path) -> PathBuf {
    let joined = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    // Resolve the longest existing prefix, then append the rest.
    let mut existing = joined.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(ToOwned::to_owned),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_owned();
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for part in rest.into_iter().rev() {
        out.push(part);
    }
    out.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

fn default_actor() -> String {
    if let Ok(actor) = std::env::var("NARAKIM_ACTOR")
        && !actor.is_empty()
    {
        return actor;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    match std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| user_name(uid))
    {
        Some(user) => format!("{user} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// The login name of `uid` from the password database.
fn user_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 1024];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; getpwuid_r writes only
    // into `pwd` and `buf` (of the length given) and sets `found`.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string in `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    name.to_str().ok().map(str::to_owned)
}
