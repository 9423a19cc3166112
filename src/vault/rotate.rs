//! Master key rotation as a crash-safe staged sequence, and whole-vault
//! verification.
//!
//! With the key file at `K`, `narakim key rotate` does:
//!
//! 1. write the new key to `K.new` (0600, fsync'd);
//! 2. in ONE SQLite transaction, re-wrap every record's data key under the
//!    new key, re-wrap the fingerprint key, and set the vault's current key
//!    id to the new key's id; commit;
//! 3. hard-link `K` to `K.previous` (the backup of the old key), then
//!    atomically rename `K.new` over `K`; fsync the directory;
//! 4. verify that every record opens with the key now in `K` (this decrypts
//!    each value and drops it at once; rotation never re-encrypts a value);
//! 5. shred `K.previous`.
//!
//! The database's key id is the single source of truth for which key is
//! current. After a crash, [`Vault::open`] looks at it:
//! - crash before step 2 commits: the database still names the old key, which
//!   is still in `K`; `K.new` never became current and is shredded;
//! - crash after the commit, before step 3 ends: the database names the key
//!   in `K.new`; open finishes step 3 and carries on;
//! - crash after step 3: `K` is current, and `K.previous` is retired once a
//!   full verification passes.
//!
//! So at every instant every secret opens with the key the vault says is
//! current, and that key is on disk.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::audit;
use super::error::VaultError;
use super::key::{self, KeyId, KeySource, MasterKey};
use super::pause;
use super::record::{self, Identity};
use super::scope::{Scope, ScopeKind};
use super::secrets::fingerprint;
use super::store;
use super::{
    META_FINGERPRINT_KEY, META_KEY_ID, META_PREVIOUS_KEY_ID, Vault, VaultConfig, fingerprint_label,
};
use subtle::ConstantTimeEq;

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    pub old_key: KeyId,
    pub new_key: KeyId,
    /// Records whose data keys were re-wrapped.
    pub rewrapped: usize,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    pub checked: usize,
    /// `NAME (bot "x")` for every secret that failed.
    pub failed: Vec<String>,
    /// The same secrets, each with what is wrong and what to do:
    /// `NAME (bot "x") cannot be decrypted: …`. Never a value.
    pub problems: Vec<String>,
}

impl VerifyReport {
    fn push(&mut self, row: &Row, problem: impl std::fmt::Display) {
        self.failed.push(row.label());
        self.problems.push(format!("{} {problem}", row.label()));
    }
}

/// What `key verify` says about a stored fingerprint that is not the
/// value's, or not bound to its record.
const FINGERPRINT_PROBLEM: &str = "has a fingerprint that does not match its record (the fingerprint column was changed outside narakim), so deploy could not recognise its value in a config; store it again with `narakim secret set`";

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

fn staged_path(key_file: &Path) -> PathBuf {
    sibling(key_file, ".new")
}

fn backup_path(key_file: &Path) -> PathBuf {
    sibling(key_file, ".previous")
}

/// A row of the secrets table, with its owner resolved.
struct Row {
    id: i64,
    kind: ScopeKind,
    owner_id: i64,
    owner: String,
    name: String,
    record: Vec<u8>,
    fingerprint: Vec<u8>,
    fingerprint_tag: Option<Vec<u8>>,
}

impl Row {
    fn identity(&self) -> Identity<'_> {
        Identity {
            kind: self.kind,
            owner_id: self.owner_id,
            name: &self.name,
        }
    }

    fn label(&self) -> String {
        let scope = match self.kind {
            ScopeKind::Bot => Scope::Bot(self.owner.clone()),
            ScopeKind::Team => Scope::Team(self.owner.clone()),
        };
        format!("{} ({scope})", self.name)
    }
}

fn all_rows(conn: &crate::db::Conn) -> Result<Vec<Row>, VaultError> {
    conn.query_map(
        "SELECT s.id, s.bot_id, s.team_id, COALESCE(b.name, t.name), s.name, s.record,
                s.fingerprint, s.fingerprint_tag
         FROM secrets s LEFT JOIN bots b ON b.id = s.bot_id LEFT JOIN teams t ON t.id = s.team_id
         ORDER BY s.id",
        crate::args![],
        |r| {
            let bot: Option<i64> = r.get(1)?;
            let team: Option<i64> = r.get(2)?;
            let (kind, owner_id) = match (bot, team) {
                (Some(b), _) => (ScopeKind::Bot, b),
                (None, t) => (ScopeKind::Team, t.unwrap_or_default()),
            };
            Ok(Row {
                id: r.get(0)?,
                kind,
                owner_id,
                owner: r.get(3)?,
                name: r.get(4)?,
                record: r.get(5)?,
                fingerprint: r.get(6)?,
                fingerprint_tag: r.get(7)?,
            })
        },
    )
    .map_err(VaultError::db("reading secrets"))
}

impl Vault {
    /// Opens every record with the current key and checks its fingerprint:
    /// recomputed from the value, it must equal the stored one, and the
    /// stored one must be bound to the record. The values are decrypted and
    /// dropped at once; nothing is returned but names and what is wrong.
    pub fn verify(&self) -> Result<VerifyReport, VaultError> {
        self.check_records(true)
    }

    /// Opens every record with the current key; with `fingerprints`, also
    /// checks each fingerprint (what the key's backup does not depend on).
    fn check_records(&self, fingerprints: bool) -> Result<VerifyReport, VaultError> {
        let rows = all_rows(&self.conn)?;
        let mut report = VerifyReport {
            checked: rows.len(),
            ..Default::default()
        };
        for row in &rows {
            let value = match record::open(&self.key, row.identity(), &row.record) {
                Ok(value) => value,
                Err(e) => {
                    report.push(row, e.fault(&row.record, self.previous_key_id));
                    continue;
                }
            };
            if !fingerprints {
                continue;
            }
            let recomputed = fingerprint(&self.fingerprint_key, &value);
            drop(value);
            let equal: bool = recomputed.ct_eq(&row.fingerprint).into();
            let bound = record::fingerprint_tag_matches(
                &self.fingerprint_tag_key,
                row.identity(),
                &row.fingerprint,
                &row.record,
                row.fingerprint_tag.as_deref(),
            );
            if !(equal && bound) {
                report.push(row, FINGERPRINT_PROBLEM);
            }
        }
        Ok(report)
    }

    /// Rotates the master key (see the module docs for the sequence).
    /// `progress(done, total)` is called as records are re-wrapped.
    pub fn rotate_key(
        &mut self,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<RotationReport, VaultError> {
        match self.config.key.clone() {
            KeySource::File(key_file) => self.rotate_file_key(&key_file, &mut progress),
            KeySource::Kms(kms) => self.rotate_kms_key(&kms, &mut progress),
            KeySource::Env(_) => Err(VaultError::RotateNeedsKeyFile),
        }
    }

    fn rotate_file_key(
        &mut self,
        key_file: &Path,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<RotationReport, VaultError> {
        let (staged, backup) = (staged_path(key_file), backup_path(key_file));
        // open() retires a verified backup, so one still here guards an
        // unverified rotation: keep it, and do not stack another on top.
        if backup.exists() {
            return Err(VaultError::RotationPending { backup });
        }
        // Left by a rotation that crashed before its commit: never current.
        key::shred_file(&staged)?;

        let old = self.key.clone();
        let new = MasterKey::generate()?;
        key::write_key_file(&staged, &new, self.vault_id)?;
        pause::point("rotate:staged");

        let rewrapped = match self.rewrap_all(&old, &new, None, progress) {
            Err(blocked @ VaultError::RotationBlocked { .. }) => {
                key::shred_file(&staged)?;
                return Err(blocked);
            }
            other => other?,
        };

        install_staged(key_file)?;
        let report = RotationReport {
            old_key: old.id(),
            new_key: new.id(),
            rewrapped,
        };
        self.key = std::sync::Arc::new(new);
        self.previous_key_id = Some(old.id());
        pause::point("rotate:installed");
        retire_verified_backup(self)?;
        if backup.exists() {
            // retire_verified_backup keeps it only when verification failed.
            let failed = self.check_records(false)?.problems;
            return Err(VaultError::RotationUnverified { failed, backup });
        }
        Ok(report)
    }

    /// With the key in KMS there are no files: the new data key's blob is
    /// stored by the transaction that re-wraps the records, and each
    /// re-wrapped record is opened with the new key before that commit, so
    /// a crash at any point leaves one consistent current key.
    fn rotate_kms_key(
        &mut self,
        kms: &super::kms::KmsClient,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<RotationReport, VaultError> {
        let old = self.key.clone();
        let (new, blob) = super::kms_key::generate(kms, self.vault_id)?;
        let rewrapped = self.rewrap_all(&old, &new, Some((&blob, kms.key_id())), progress)?;
        self.key = std::sync::Arc::new(new);
        self.previous_key_id = Some(old.id());
        Ok(RotationReport {
            old_key: old.id(),
            new_key: self.key.id(),
            rewrapped,
        })
    }

    /// Step 2: in one transaction, every record's data key re-wrapped from
    /// `old` to `new`, the fingerprint key re-wrapped, and the current key
    /// id (and, for KMS, its blob) set. Returns how many records moved.
    fn rewrap_all(
        &mut self,
        old: &MasterKey,
        new: &MasterKey,
        kms_blob: Option<(&[u8], &str)>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<usize, VaultError> {
        // Read inside the write transaction, so a secret another node
        // writes meanwhile waits for the rotation instead of being missed.
        let tx = super::secrets::begin_write(&self.conn)?;
        let rows = all_rows(&tx)?;
        let mut broken = VerifyReport::default();
        let total = rows.len();
        for (done, row) in rows.iter().enumerate() {
            match record::rewrap(old, new, row.identity(), &row.record) {
                Ok(moved) => {
                    if kms_blob.is_some() && record::open(new, row.identity(), &moved).is_err() {
                        broken.push(row, "it did not open with the new key after re-wrapping");
                        continue;
                    }
                    tx.execute(
                        "UPDATE secrets SET record = ?1 WHERE id = ?2",
                        crate::args![&moved, row.id],
                    )
                    .map(drop)
                    .map_err(VaultError::db("re-wrapping"))?
                }
                Err(e) => broken.push(row, e.fault(&row.record, self.previous_key_id)),
            }
            progress(done + 1, total);
            if done == total / 2 {
                pause::point("rotate:rewrapping");
            }
        }
        if !broken.failed.is_empty() {
            // A record that does not open now would be lost for good under a
            // new key: roll back and let the operator decide.
            return Err(VaultError::RotationBlocked {
                failed: broken.problems,
            });
        }
        let label = fingerprint_label(self.vault_id);
        let fingerprint_key = record::seal_blob(new, &label, &self.fingerprint_key)?;
        store::set_meta(&tx, META_FINGERPRINT_KEY, &fingerprint_key)?;
        store::set_meta(&tx, META_PREVIOUS_KEY_ID, &old.id().0)?;
        store::set_meta(&tx, META_KEY_ID, &new.id().0)?;
        if let Some((blob, kms_key)) = kms_blob {
            store::set_meta(&tx, super::kms_key::META_KMS_BLOB, blob)?;
            store::set_meta(&tx, super::kms_key::META_KMS_KEY, kms_key.as_bytes())?;
        }
        audit::record(
            &tx,
            &self.config.actor,
            "key.rotate",
            None,
            None,
            &format!(
                "key {} -> {}, {} record(s) re-wrapped",
                old.id(),
                new.id(),
                rows.len()
            ),
        )?;
        pause::point("rotate:before-commit");
        tx.commit()
            .map_err(VaultError::db("committing the rotation"))?;
        pause::point("rotate:committed");
        store::checkpoint(&self.conn)?;
        Ok(rows.len())
    }
}

/// Step 3: back up `K` as `K.previous`, then move `K.new` over `K`.
/// Idempotent, so `open` can finish it after a crash at any point inside.
fn install_staged(key_file: &Path) -> Result<(), VaultError> {
    let (staged, backup) = (staged_path(key_file), backup_path(key_file));
    if !backup.exists() {
        std::fs::hard_link(key_file, &backup).map_err(VaultError::io(&backup))?;
        key::set_private(&backup)?;
        key::sync_parent(&backup)?;
    }
    pause::point("rotate:backed-up");
    std::fs::rename(&staged, key_file).map_err(VaultError::io(key_file))?;
    key::sync_parent(key_file)
}

/// At open, when the key file matches the database: a staged key beside it
/// is left from a rotation that crashed before committing. Shred it.
pub(crate) fn discard_uncommitted(config: &VaultConfig) -> Result<(), VaultError> {
    match &config.key {
        KeySource::File(key_file) => key::shred_file(&staged_path(key_file)),
        KeySource::Env(_) | KeySource::Kms(_) => Ok(()),
    }
}

/// At open, when the key file does not match the database: if the staged
/// key does, a rotation committed but did not finish swapping files. Finish
/// it and return the (now installed) current key.
pub(crate) fn complete_interrupted(
    config: &VaultConfig,
    expected: KeyId,
) -> Result<Option<MasterKey>, VaultError> {
    let KeySource::File(key_file) = &config.key else {
        return Ok(None);
    };
    let staged = staged_path(key_file);
    if !staged.exists() {
        return Ok(None);
    }
    let loaded = KeySource::File(staged).load()?;
    if loaded.key.id() != expected {
        return Ok(None);
    }
    install_staged(key_file)?;
    Ok(Some(loaded.key))
}

/// After a rotation (or at open after a crash during one): once every record
/// opens with the current key, the previous key's backup is shredded. If any
/// record fails, the backup stays and a note says so.
pub(crate) fn retire_verified_backup(vault: &mut Vault) -> Result<(), VaultError> {
    let KeySource::File(key_file) = &vault.config.key else {
        return Ok(());
    };
    let backup = backup_path(key_file);
    if !backup.exists() {
        return Ok(());
    }
    // Verify the key as it is on disk, not just the one in memory.
    let on_disk = KeySource::File(key_file.clone()).load()?.key.id();
    if on_disk != vault.key.id() {
        vault.notes.push(format!(
            "the key file {} holds key {on_disk}, not the vault's key {}; the previous key is kept at {}",
            key_file.display(),
            vault.key.id(),
            backup.display()
        ));
        return Ok(());
    }
    // Only whether the records open matters for the backup: fingerprints
    // do not depend on the master key.
    let report = vault.check_records(false)?;
    if report.failed.is_empty() {
        pause::point("rotate:verified");
        key::shred_file(&backup)
    } else {
        vault.notes.push(format!(
            "{} record(s) do not open with the current key ({}); the previous key is kept at {}",
            report.failed.len(),
            report.problems.join("; "),
            backup.display()
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_names() {
        let k = Path::new("/etc/narakim/master.key");
        assert_eq!(staged_path(k), Path::new("/etc/narakim/master.key.new"));
        assert_eq!(
            backup_path(k),
            Path::new("/etc/narakim/master.key.previous")
        );
    }
}
