//! The master key: how it is made, named, stored on disk and loaded.
//!
//! The key never lives in the database. By default it is a text file in
//! `$XDG_CONFIG_HOME/narakim/`, a different directory from the database, with
//! mode 0600. Its format (one `field: value` per line):
//!
//! ```text
//! narakim-master-key v1
//! vault-id: 6f0d3c0f6b9a4b1c8e2f1a7d5c3b9e01
//! key-id: 8c1f0e5a2b7d4c93
//! key: <base64 of the 32 key bytes>
//! ```
//!
//! `vault-id` tells which vault the key belongs to, so opening a vault with
//! another vault's key says exactly that. A file holding only the base64 of
//! 32 bytes (the same text `NARAKIM_MASTER_KEY` takes) is accepted too.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::VaultError;

/// Length of a master key in bytes (AES-256).
pub const KEY_LEN: usize = 32;
const FILE_HEADER: &str = "narakim-master-key v1";

/// A short public name of a master key: the first 8 bytes of
/// HMAC-SHA256(key, "narakim key-id v1"). It identifies the key without
/// revealing it, and doubles as a key check value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(KeyId)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A random 16-byte name given to a vault when it is created. The key file
/// records it so a key cannot silently be used on the wrong vault.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VaultId(pub [u8; 16]);

impl VaultId {
    pub(crate) fn generate() -> Result<Self, VaultError> {
        let mut id = [0u8; 16];
        fill_random(&mut id)?;
        Ok(VaultId(id))
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(VaultId)
    }

    fn parse_hex(s: &str) -> Option<Self> {
        unhex(s).and_then(|b| Self::from_slice(&b))
    }
}

impl fmt::Display for VaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for VaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultId({self})")
    }
}

/// A 256-bit master key, ready to wrap and unwrap data keys. Its bytes and
/// its AES key schedule are wiped on drop.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    cipher: Aes256Gcm,
    id: KeyId,
}

impl MasterKey {
    /// A fresh key from the operating system's RNG.
    pub fn generate() -> Result<Self, VaultError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(bytes.as_mut())?;
        Ok(Self::from_bytes(bytes))
    }

    pub(crate) fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let cipher = Aes256Gcm::new_from_slice(bytes.as_ref()).expect("AES-256 keys are 32 bytes");
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(bytes.as_ref())
            .expect("HMAC takes keys of any length");
        mac.update(b"narakim key-id v1");
        let tag = mac.finalize().into_bytes();
        let id = KeyId(tag[..8].try_into().expect("HMAC-SHA256 is 32 bytes"));
        Self { bytes, cipher, id }
    }

    /// Parses the base64 form (`NARAKIM_MASTER_KEY`, or a bare key file).
    fn from_base64(text: &str) -> Result<Self, String> {
        let decoded = Zeroizing::new(
            BASE64
                .decode(text.trim())
                .map_err(|_| "it is not valid base64".to_string())?,
        );
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            format!(
                "it decodes to {} bytes, but a master key is exactly {KEY_LEN} bytes",
                decoded.len()
            )
        })?;
        Ok(Self::from_bytes(Zeroizing::new(bytes)))
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(crate) fn cipher(&self) -> &Aes256Gcm {
        &self.cipher
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey {{ id: {}, bytes: [REDACTED] }}", self.id)
    }
}

/// Where the master key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// A key file (`--key-file`, `NARAKIM_KEY_FILE` or the default path).
    File(PathBuf),
    /// The base64 text of `NARAKIM_MASTER_KEY`.
    Env(Zeroizing<String>),
    /// A data key of an AWS KMS key, whose ciphertext blob the vault
    /// stores (see [`super::kms_key`]).
    Kms(std::sync::Arc<super::kms::KmsClient>),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "File({})", p.display()),
            KeySource::Env(_) => f.write_str("Env([REDACTED])"),
            KeySource::Kms(kms) => write!(f, "Kms({})", kms.key_id()),
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "{}", p.display()),
            KeySource::Env(_) => f.write_str("NARAKIM_MASTER_KEY"),
            KeySource::Kms(kms) => write!(f, "AWS KMS key {}", kms.key_id()),
        }
    }
}

/// A key as loaded, with the vault it says it belongs to (key files written
/// by narakim say; bare base64 keys do not).
pub(crate) struct LoadedKey {
    pub key: MasterKey,
    pub vault_id: Option<VaultId>,
}

impl KeySource {
    pub(crate) fn exists(&self) -> bool {
        match self {
            KeySource::File(p) => p.exists(),
            KeySource::Env(_) | KeySource::Kms(_) => true,
        }
    }

    pub(crate) fn load(&self) -> Result<LoadedKey, VaultError> {
        match self {
            KeySource::Env(text) => Ok(LoadedKey {
                key: MasterKey::from_base64(text)
                    .map_err(|reason| VaultError::KeyEnvMalformed { reason })?,
                vault_id: None,
            }),
            KeySource::File(path) => read_key_file(path),
            // Its blob is in the database: `Vault::open` asks KMS.
            KeySource::Kms(_) => Err(VaultError::KeyInKms),
        }
    }
}

fn read_key_file(path: &Path) -> Result<LoadedKey, VaultError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(VaultError::KeyMissing {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(VaultError::io(path)(e)),
    };
    let malformed = |reason: &str| VaultError::KeyFileMalformed {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if !meta.is_file() {
        return Err(malformed("it is not a regular file"));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    if meta.len() > 4096 {
        return Err(malformed("it is larger than any key file narakim writes"));
    }
    let text = Zeroizing::new(fs::read(path).map_err(VaultError::io(path))?);
    let text = std::str::from_utf8(&text).map_err(|_| malformed("it is not text"))?;
    parse_key_file(text).map_err(|reason| VaultError::KeyFileMalformed {
        path: path.to_owned(),
        reason,
    })
}

fn parse_key_file(text: &str) -> Result<LoadedKey, String> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let Some(first) = lines.next() else {
        return Err("it is empty".into());
    };
    if first != FILE_HEADER {
        // A bare base64 key.
        if lines.next().is_some() {
            return Err(format!("the first line should be \"{FILE_HEADER}\""));
        }
        return Ok(LoadedKey {
            key: MasterKey::from_base64(first)?,
            vault_id: None,
        });
    }
    let (mut vault_id, mut key_id, mut key) = (None, None, None);
    for line in lines {
        let Some((field, value)) = line.split_once(':') else {
            return Err(format!(
                "line \"{}\" is not `field: value`",
                field_only(line)
            ));
        };
        let value = value.trim();
        match field.trim() {
            "vault-id" => {
                vault_id = Some(VaultId::parse_hex(value).ok_or("vault-id is not 32 hex digits")?)
            }
            "key-id" => key_id = Some(value.to_owned()),
            "key" => key = Some(MasterKey::from_base64(value).map_err(|e| format!("key: {e}"))?),
            other => return Err(format!("unknown field \"{}\"", field_only(other))),
        }
    }
    let key = key.ok_or("it has no `key:` line")?;
    if let Some(key_id) = key_id
        && key_id != key.id().to_string()
    {
        return Err(format!(
            "its key-id line says {key_id} but its key is {}; the file was edited or damaged",
            key.id()
        ));
    }
    Ok(LoadedKey { key, vault_id })
}

/// Never echo a line of a key file that might hold key material.
fn field_only(s: &str) -> String {
    s.chars().take(24).filter(|c| !c.is_control()).collect()
}

/// Writes a new key file with mode 0600, refusing to replace an existing
/// file, and makes it durable (file and directory fsync).
pub(crate) fn write_key_file(
    path: &Path,
    key: &MasterKey,
    vault: VaultId,
) -> Result<(), VaultError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let text = Zeroizing::new(format!(
        "{FILE_HEADER}\n# The master key of a narakim vault. Keep it secret and apart from the database.\nvault-id: {vault}\nkey-id: {}\nkey: {}\n",
        key.id(),
        Zeroizing::new(BASE64.encode(key.bytes.as_ref())).as_str()
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                VaultError::KeyExists {
                    path: path.to_owned(),
                }
            } else {
                VaultError::io(path)(e)
            }
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(VaultError::io(path))?;
    sync_parent(path)
}

/// Creates a directory (and parents) readable by its owner only.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), VaultError> {
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        return Err(VaultError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(VaultError::io(dir))
}

/// fsync the directory holding `path`, so a create, rename or unlink in it
/// survives a crash.
pub(crate) fn sync_parent(path: &Path) -> Result<(), VaultError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(VaultError::io(dir))
}

/// Overwrites a key file with zeros before unlinking it, so the old key is
/// not left in the file's blocks on simple file systems. Best effort: on
/// copy-on-write or journaled data the old blocks may survive.
pub(crate) fn shred_file(path: &Path) -> Result<(), VaultError> {
    if let Ok(meta) = fs::metadata(path)
        && let Ok(mut f) = OpenOptions::new().write(true).open(path)
    {
        let _ = f.write_all(&vec![0u8; meta.len() as usize]);
        let _ = f.sync_all();
    }
    match fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(VaultError::io(path)(e)),
    }
}

/// Sets mode 0600 on a file narakim just made by hard link or rename.
pub(crate) fn set_private(path: &Path) -> Result<(), VaultError> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(VaultError::io(path))
}

pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), VaultError> {
    getrandom::fill(buf).map_err(|e| VaultError::Random(e.to_string()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let key = MasterKey::generate().unwrap();
        let vault = VaultId::generate().unwrap();
        write_key_file(&path, &key, vault).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let loaded = KeySource::File(path.clone()).load().unwrap();
        assert_eq!(loaded.key.id(), key.id());
        assert_eq!(loaded.vault_id, Some(vault));
        // Never overwritten.
        assert!(matches!(
            write_key_file(&path, &key, vault),
            Err(VaultError::KeyExists { .. })
        ));
    }

    #[test]
    fn group_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        write_key_file(
            &path,
            &MasterKey::generate().unwrap(),
            VaultId::generate().unwrap(),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = KeySource::File(path).load().err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn bare_base64_and_bad_forms() {
        let key = MasterKey::generate().unwrap();
        let b64 = Zeroizing::new(BASE64.encode(key.bytes.as_ref()));
        let loaded = KeySource::Env(b64.clone()).load().unwrap();
        assert_eq!(loaded.key.id(), key.id());
        assert!(parse_key_file(&b64).is_ok());
        let short = BASE64.encode([1u8; 16]);
        let err = parse_key_file(&short).err().unwrap();
        assert!(err.contains("16 bytes"), "{err}");
        assert!(parse_key_file("not base64!").is_err());
        let tampered = format!(
            "{FILE_HEADER}\nkey-id: 0000000000000000\nkey: {}\n",
            b64.as_str()
        );
        assert!(parse_key_file(&tampered).err().unwrap().contains("damaged"));
    }

    #[test]
    fn debug_hides_key() {
        let key = MasterKey::generate().unwrap();
        let shown = format!("{key:?} {:?}", KeySource::Env(Zeroizing::new("abc".into())));
        assert!(
            shown.contains("REDACTED") && !shown.contains("abc"),
            "{shown}"
        );
    }
}
