//! The sealed record format: envelope encryption with AES-256-GCM.
//!
//! Each value gets its own random 256-bit data key (DEK). The DEK encrypts
//! the value; the master key encrypts ("wraps") the DEK. Both layers bind
//! the secret's identity as AAD, so a record copied onto another bot, team
//! or name fails to open. Key rotation re-wraps only the 48-byte DEK layer:
//! the value's bytes are never re-encrypted (rotation still opens every
//! value layer, to check it before carrying it forward).
//!
//! Layout of format version 1 (all integers big-endian):
//!
//! ```text
//! offset  length  field
//!      0       1  format version = 0x01
//!      1       8  master key id
//!      9      12  wrap nonce (random)
//!     21      48  wrapped DEK = AES-256-GCM(master key, wrap nonce, DEK, AAD_wrap): 32 bytes + 16-byte tag
//!     69      12  value nonce (random)
//!     81    n+16  sealed value = AES-256-GCM(DEK, value nonce, UTF-8 value, AAD_value): n bytes + 16-byte tag
//!
//! identity  = scope (0x01 bot, 0x02 team) ‖ owner id (u64) ‖ name length (u8) ‖ name (ASCII)
//! AAD_wrap  = "narakim.dek" ‖ 0x01 ‖ master key id (8) ‖ identity
//! AAD_value = "narakim.val" ‖ 0x01 ‖ identity
//! ```
//!
//! The value layer leaves out the master key id on purpose: the DEK is
//! unique to this one value, and the DEK itself is bound to the key id.
//!
//! Each row also keeps the value's keyed fingerprint, bound to the record
//! by a tag (see [`fingerprint_tag`]), so a fingerprint zeroed or copied
//! from another row is detected without decrypting anything:
//!
//! ```text
//! fingerprint     = HMAC-SHA256(fingerprint key, UTF-8 value)
//! tag key         = HMAC-SHA256(fingerprint key, "narakim fingerprint-tag v1")
//! fingerprint_tag = HMAC-SHA256(tag key, "narakim.fpt" ‖ 0x01 ‖ identity ‖ fingerprint ‖ record[69..])
//! ```

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use zeroize::Zeroizing;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::{InputError, RecordFault, VaultError};
use super::key::{KeyId, MasterKey, fill_random};
use super::scope::ScopeKind;
use super::value::SecretValue;

pub const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const DEK_LEN: usize = 32;
const WRAPPED_DEK_LEN: usize = DEK_LEN + TAG_LEN;
const KEY_ID_AT: usize = 1;
const WRAP_NONCE_AT: usize = KEY_ID_AT + 8;
const WRAPPED_DEK_AT: usize = WRAP_NONCE_AT + NONCE_LEN;
const VALUE_NONCE_AT: usize = WRAPPED_DEK_AT + WRAPPED_DEK_LEN;
const VALUE_AT: usize = VALUE_NONCE_AT + NONCE_LEN;
/// Bytes a record adds to its value.
pub const OVERHEAD: usize = VALUE_AT + TAG_LEN;

/// Which secret a record belongs to. Owner ids are never reused, so a bot
/// deleted and created again under the same name cannot read old records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity<'a> {
    pub kind: ScopeKind,
    pub owner_id: i64,
    pub name: &'a str,
}

impl Identity<'_> {
    fn append_to(&self, aad: &mut Vec<u8>) {
        aad.push(self.kind.aad_byte());
        aad.extend_from_slice(&(self.owner_id as u64).to_be_bytes());
        // Names are at most 128 ASCII bytes (checked by SecretName).
        aad.push(self.name.len() as u8);
        aad.extend_from_slice(self.name.as_bytes());
    }

    fn wrap_aad(&self, key_id: KeyId) -> Vec<u8> {
        let mut aad = Vec::with_capacity(11 + 1 + 8 + 10 + self.name.len());
        aad.extend_from_slice(b"narakim.dek");
        aad.push(FORMAT_VERSION);
        aad.extend_from_slice(&key_id.0);
        self.append_to(&mut aad);
        aad
    }

    fn value_aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(11 + 1 + 10 + self.name.len());
        aad.extend_from_slice(b"narakim.val");
        aad.push(FORMAT_VERSION);
        self.append_to(&mut aad);
        aad
    }
}

/// Why a record would not open. Callers turn this into an error that names
/// the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Too short, or an unknown format version.
    Malformed,
    /// Sealed under another master key.
    OtherKey,
    /// The tag did not verify: altered bytes or a different identity.
    Authentication,
    /// It authenticates, but the plaintext is no valid value (the reason).
    ForbiddenValue(&'static str),
}

impl OpenError {
    /// What to tell the operator about `record`, given the vault's previous
    /// master key (a record naming it was restored from an old backup).
    pub(crate) fn fault(self, record: &[u8], previous: Option<KeyId>) -> RecordFault {
        match self {
            OpenError::OtherKey if previous.is_some() && key_id_of(record) == previous => {
                RecordFault::PreviousKey
            }
            OpenError::OtherKey => RecordFault::OtherKey,
            OpenError::Malformed | OpenError::Authentication => RecordFault::Altered,
            OpenError::ForbiddenValue(why) => RecordFault::ForbiddenValue(why),
        }
    }
}

/// Checks decrypted bytes are a value the vault would store.
fn valid_value(plain: Zeroizing<Vec<u8>>) -> Result<SecretValue, OpenError> {
    SecretValue::from_bytes(plain.to_vec()).map_err(|e| {
        OpenError::ForbiddenValue(match e {
            InputError::ValueTooShort { .. } => "shorter than 8 bytes",
            InputError::ValueTooLong { .. } => "longer than 64 KiB",
            InputError::ValueHasNul => "it contains a NUL byte",
            InputError::ValueNotUtf8 => "it is not UTF-8",
            _ => "not a valid value",
        })
    })
}

/// Seals `value` for `identity` under `master`.
pub(crate) fn seal(
    master: &MasterKey,
    identity: Identity<'_>,
    value: &SecretValue,
) -> Result<Vec<u8>, VaultError> {
    let mut dek = Zeroizing::new([0u8; DEK_LEN]);
    fill_random(dek.as_mut())?;
    let mut record = Vec::with_capacity(OVERHEAD + value.len());
    record.push(FORMAT_VERSION);
    record.extend_from_slice(&master.id().0);
    append_sealed(
        &mut record,
        master.cipher(),
        dek.as_ref(),
        &identity.wrap_aad(master.id()),
    )?;
    let dek_cipher = dek_cipher(dek.as_ref());
    append_sealed(
        &mut record,
        &dek_cipher,
        value.expose().as_bytes(),
        &identity.value_aad(),
    )?;
    Ok(record)
}

/// Opens a record sealed by [`seal`].
pub(crate) fn open(
    master: &MasterKey,
    identity: Identity<'_>,
    record: &[u8],
) -> Result<SecretValue, OpenError> {
    let dek = unwrap_dek(master, identity, record)?;
    let dek_cipher = dek_cipher(dek.as_ref());
    let plain = Zeroizing::new(
        open_sealed(
            &dek_cipher,
            &record[VALUE_NONCE_AT..],
            &identity.value_aad(),
        )
        .ok_or(OpenError::Authentication)?,
    );
    // narakim seals only valid values: anything else was sealed elsewhere.
    valid_value(plain)
}

/// Re-wraps a record's DEK from `old` to `new`, leaving the sealed value's
/// bytes as they are (but checking it still opens to a valid value, so
/// rotation never carries a broken record forward silently).
pub(crate) fn rewrap(
    old: &MasterKey,
    new: &MasterKey,
    identity: Identity<'_>,
    record: &[u8],
) -> Result<Vec<u8>, OpenError> {
    let dek = unwrap_dek(old, identity, record)?;
    let dek_cipher = dek_cipher(dek.as_ref());
    // Check the value layer without keeping the plaintext around.
    drop(valid_value(Zeroizing::new(
        open_sealed(
            &dek_cipher,
            &record[VALUE_NONCE_AT..],
            &identity.value_aad(),
        )
        .ok_or(OpenError::Authentication)?,
    ))?);
    let mut out = Vec::with_capacity(record.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&new.id().0);
    append_sealed(
        &mut out,
        new.cipher(),
        dek.as_ref(),
        &identity.wrap_aad(new.id()),
    )
    .map_err(|_| OpenError::Malformed)?;
    out.extend_from_slice(&record[VALUE_NONCE_AT..]);
    Ok(out)
}

/// The key the fingerprint tags are made with, derived from the vault's
/// fingerprint key: `HMAC-SHA256(fingerprint key, "narakim fingerprint-tag v1")`.
pub(crate) fn fingerprint_tag_key(fingerprint_key: &[u8]) -> Zeroizing<Vec<u8>> {
    derived_key(fingerprint_key, b"narakim fingerprint-tag v1")
}

/// A key for one purpose, derived from the vault's fingerprint key:
/// `HMAC-SHA256(fingerprint key, label)`. Survives rotation, as the
/// fingerprint key does.
pub(crate) fn derived_key(fingerprint_key: &[u8], label: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(fingerprint_key)
        .expect("HMAC takes keys of any length");
    mac.update(label);
    Zeroizing::new(mac.finalize().into_bytes().to_vec())
}

/// The MAC binding a row's fingerprint to its record:
/// `HMAC-SHA256(tag key, "narakim.fpt" ‖ 0x01 ‖ identity ‖ fingerprint ‖ record[69..])`.
/// It covers the value layer (nonce, ciphertext, tag), which rotation never
/// changes, so tags survive rotation. `None` for a record too short to have
/// a value layer.
fn fingerprint_mac(
    tag_key: &[u8],
    identity: Identity<'_>,
    fingerprint: &[u8],
    record: &[u8],
) -> Option<Hmac<Sha256>> {
    let value_layer = record.get(VALUE_NONCE_AT..)?;
    let mut head = b"narakim.fpt".to_vec();
    head.push(FORMAT_VERSION);
    identity.append_to(&mut head);
    let mut mac =
        <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(tag_key).expect("HMAC takes any key");
    mac.update(&head);
    mac.update(fingerprint);
    mac.update(value_layer);
    Some(mac)
}

/// The tag to store beside `fingerprint` for `record`.
pub(crate) fn fingerprint_tag(
    tag_key: &[u8],
    identity: Identity<'_>,
    fingerprint: &[u8],
    record: &[u8],
) -> Option<Vec<u8>> {
    fingerprint_mac(tag_key, identity, fingerprint, record)
        .map(|mac| mac.finalize().into_bytes().to_vec())
}

/// Whether `tag` binds `fingerprint` to `record` (constant time).
pub(crate) fn fingerprint_tag_matches(
    tag_key: &[u8],
    identity: Identity<'_>,
    fingerprint: &[u8],
    record: &[u8],
    tag: Option<&[u8]>,
) -> bool {
    match (tag, fingerprint_mac(tag_key, identity, fingerprint, record)) {
        (Some(tag), Some(mac)) => mac.verify_slice(tag).is_ok(),
        _ => false,
    }
}

/// The master key id a record says it was sealed under.
pub(crate) fn key_id_of(record: &[u8]) -> Option<KeyId> {
    KeyId::from_slice(record.get(KEY_ID_AT..WRAP_NONCE_AT)?)
}

fn unwrap_dek(
    master: &MasterKey,
    identity: Identity<'_>,
    record: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    if record.len() < OVERHEAD || record[0] != FORMAT_VERSION {
        return Err(OpenError::Malformed);
    }
    if key_id_of(record) != Some(master.id()) {
        return Err(OpenError::OtherKey);
    }
    let dek = Zeroizing::new(
        open_sealed(
            master.cipher(),
            &record[WRAP_NONCE_AT..VALUE_NONCE_AT],
            &identity.wrap_aad(master.id()),
        )
        .ok_or(OpenError::Authentication)?,
    );
    if dek.len() != DEK_LEN {
        return Err(OpenError::Malformed);
    }
    Ok(dek)
}

fn dek_cipher(dek: &[u8]) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(dek).expect("data keys are 32 bytes")
}

/// Appends `nonce ‖ ciphertext ‖ tag`.
fn append_sealed(
    out: &mut Vec<u8>,
    cipher: &Aes256Gcm,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<(), VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encrypts any value up to 64 GiB");
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(())
}

/// Opens `nonce ‖ ciphertext ‖ tag`.
fn open_sealed(cipher: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let (nonce, body) = sealed.split_at_checked(NONCE_LEN)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: body, aad })
        .ok()
}

/// Seals small vault-level material (the fingerprint key) under the master
/// key, bound to `label`.
pub(crate) fn seal_blob(
    master: &MasterKey,
    label: &[u8],
    plain: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let mut out = Vec::with_capacity(8 + NONCE_LEN + plain.len() + TAG_LEN);
    out.extend_from_slice(&master.id().0);
    append_sealed(
        &mut out,
        master.cipher(),
        plain,
        &blob_aad(master.id(), label),
    )?;
    Ok(out)
}

pub(crate) fn open_blob(
    master: &MasterKey,
    label: &[u8],
    sealed: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let (id, rest) = sealed.split_at_checked(8)?;
    if id != master.id().0 {
        return None;
    }
    open_sealed(master.cipher(), rest, &blob_aad(master.id(), label)).map(Zeroizing::new)
}

fn blob_aad(key_id: KeyId, label: &[u8]) -> Vec<u8> {
    let mut aad = b"narakim.blob".to_vec();
    aad.push(FORMAT_VERSION);
    aad.extend_from_slice(&key_id.0);
    aad.extend_from_slice(label);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: ScopeKind, owner_id: i64, name: &str) -> Identity<'_> {
        Identity {
            kind,
            owner_id,
            name,
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let key = MasterKey::generate().unwrap();
        let value = SecretValue::new("Bot MTIzNDU2Nzg5.abcdef".into()).unwrap();
        let who = id(ScopeKind::Bot, 7, "DISCORD_BOT_TOKEN");
        let rec = seal(&key, who, &value).unwrap();
        assert_eq!(rec.len(), OVERHEAD + value.len());
        assert_eq!(rec[0], 1);
        assert_eq!(key_id_of(&rec), Some(key.id()));
        assert!(
            open(&key, who, &rec)
                .unwrap()
                .matches(b"Bot MTIzNDU2Nzg5.abcdef")
        );
        // Two seals of one value never share nonces or ciphertext.
        assert_ne!(seal(&key, who, &value).unwrap(), rec);
    }

    #[test]
    fn identity_is_bound() {
        let key = MasterKey::generate().unwrap();
        let value = SecretValue::new("sk-or-v1-0123456789".into()).unwrap();
        let rec = seal(&key, id(ScopeKind::Bot, 1, "KEY"), &value).unwrap();
        for other in [
            id(ScopeKind::Bot, 2, "KEY"),
            id(ScopeKind::Team, 1, "KEY"),
            id(ScopeKind::Bot, 1, "KEY2"),
        ] {
            assert_eq!(
                open(&key, other, &rec).err(),
                Some(OpenError::Authentication)
            );
        }
        let other_key = MasterKey::generate().unwrap();
        assert_eq!(
            open(&other_key, id(ScopeKind::Bot, 1, "KEY"), &rec).err(),
            Some(OpenError::OtherKey)
        );
    }

    #[test]
    fn every_flipped_bit_fails() {
        let key = MasterKey::generate().unwrap();
        let who = id(ScopeKind::Team, 3, "WEBHOOK_SECRET");
        let rec = seal(
            &key,
            who,
            &SecretValue::new("whsec_abcdefgh".into()).unwrap(),
        )
        .unwrap();
        for byte in 0..rec.len() {
            for bit in 0..8 {
                let mut bad = rec.clone();
                bad[byte] ^= 1 << bit;
                assert!(open(&key, who, &bad).is_err(), "byte {byte} bit {bit}");
            }
        }
        assert!(open(&key, who, &rec[..rec.len() - 1]).is_err());
        assert!(open(&key, who, &rec[..10]).is_err());
    }

    #[test]
    fn rewrap_keeps_value() {
        let (a, b) = (
            MasterKey::generate().unwrap(),
            MasterKey::generate().unwrap(),
        );
        let who = id(ScopeKind::Bot, 9, "OPENROUTER_API_KEY");
        let rec = seal(
            &a,
            who,
            &SecretValue::new("sk-or-v1-zzzzzzzz".into()).unwrap(),
        )
        .unwrap();
        let moved = rewrap(&a, &b, who, &rec).unwrap();
        assert_eq!(moved[VALUE_NONCE_AT..], rec[VALUE_NONCE_AT..]);
        assert!(open(&b, who, &moved).unwrap().matches(b"sk-or-v1-zzzzzzzz"));
        assert_eq!(open(&a, who, &moved).err(), Some(OpenError::OtherKey));
    }
}
