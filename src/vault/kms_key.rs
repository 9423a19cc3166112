//! The master key kept by AWS KMS instead of a key file.
//!
//! At `init`, `GenerateDataKey` under the operator's KMS key gives 32 random
//! bytes (the master key, held only in memory) and their ciphertext blob,
//! which is stored in the vault's own `meta` table. Each node opens the
//! vault by asking KMS to `Decrypt` that blob: no node ever writes the
//! master key to disk, and revoking the node's KMS permission locks it out.
//!
//! Both calls carry the encryption context `narakim-vault` = the vault id,
//! which KMS binds into the blob: a blob copied into another vault's
//! database does not open there. The key id check that follows is the same
//! as for a key file, so a blob from another KMS key, or an old blob, is
//! refused before any secret row is read.
//!
//! Rotation asks for a new data key and stores its blob in the same
//! transaction that re-wraps every record: the database alone says which
//! key is current, so there is nothing to finish after a crash, and every
//! other node picks the new key up at its next snapshot
//! ([`super::Vault::snapshot`]).

use super::VaultId;
use super::error::VaultError;
use super::key::MasterKey;
use super::kms::KmsClient;

/// The `meta` row holding the master key's KMS ciphertext blob.
pub(crate) const META_KMS_BLOB: &str = "kms_master_key";
/// The `meta` row naming the KMS key that blob is under (for messages).
pub(crate) const META_KMS_KEY: &str = "kms_key_id";

const CONTEXT_KEY: &str = "narakim-vault";

/// A new master key for `vault`, with its blob to store.
pub(crate) fn generate(
    kms: &KmsClient,
    vault: VaultId,
) -> Result<(MasterKey, Vec<u8>), VaultError> {
    let hex = vault.to_string();
    let data_key = kms
        .generate_data_key(&[(CONTEXT_KEY, &hex)])
        .map_err(VaultError::Kms)?;
    Ok((
        MasterKey::from_bytes(data_key.plaintext),
        data_key.ciphertext,
    ))
}

/// The master key `blob` holds, opened by KMS for `vault`.
pub(crate) fn open(kms: &KmsClient, vault: VaultId, blob: &[u8]) -> Result<MasterKey, VaultError> {
    let hex = vault.to_string();
    let plaintext = kms
        .decrypt(blob, &[(CONTEXT_KEY, &hex)])
        .map_err(VaultError::Kms)?;
    Ok(MasterKey::from_bytes(plaintext))
}
