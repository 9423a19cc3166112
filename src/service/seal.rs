//! Secret values sealed in the browser, opened only here.
//!
//! The web UI never posts a value in the clear: the page seals it with
//! HPKE (RFC 9180, base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! AES-256-GCM) to this server's public key, which it reads from
//! `GET /api/v1/seal-key`. The key pair is derived from the vault
//! ([`crate::vault::ServiceKey::BrowserSeal`]), so every node of a cluster
//! holds the same one and a value sealed on a page one node served opens
//! on whichever node the load balancer sends the save to. Whoever could
//! open a captured box could open the vault itself.
//!
//! Threats this guards against, beyond TLS:
//! - a value in a proxy's, a load balancer's or a browser extension's
//!   request log: the body holds only the envelope;
//! - a captured envelope replayed onto another secret: the AAD binds the
//!   scope, the owner, the name and the version the writer expected
//!   ([`Binding`]), so opening it for any other write fails, and a replay
//!   onto the same write fails its version check;
//! - a value typed for one secret saved under another by a confused page:
//!   the same binding.

use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, Serializable};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::vault::{Precondition, Scope, SecretName};

/// The suite, as the seal-key route names it.
pub const SUITE: &str = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM";

/// HPKE `info`: fixes the purpose, so no other protocol's box opens here.
pub const INFO: &[u8] = b"narakim secret value v1";

type Kem = X25519HkdfSha256;

/// A sealed value, as a client sends it (every field base64url, unpadded).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Which server key it was sealed to ([`Sealer::key_id`]).
    pub key_id: String,
    /// The encapsulated key (32 bytes).
    pub enc: String,
    /// AES-256-GCM ciphertext with its tag.
    pub ciphertext: String,
}

/// What a sealed value is for. Its AAD is the JSON array
/// `["narakim-secret-v1", SCOPE, OWNER, NAME, EXPECTED]`, with `EXPECTED`
/// either `"new"` (create only) or the version to overwrite, as digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub scope: &'static str,
    pub owner: String,
    pub name: String,
    pub expected: String,
}

impl Binding {
    /// The binding of a write, or why a sealed value cannot make it: a
    /// sealed write must say which version it expects.
    pub fn of(scope: &Scope, name: &SecretName, expected: Precondition) -> Result<Binding, Error> {
        let (kind, owner) = match scope {
            Scope::Bot(bot) => ("bot", bot.clone()),
            Scope::Team(team) => ("team", team.clone()),
        };
        let expected = match expected {
            Precondition::Absent => "new".to_owned(),
            Precondition::Version(v) => v.to_string(),
            Precondition::Any => return Err(Error::Unbound),
        };
        Ok(Binding {
            scope: kind,
            owner,
            name: name.as_str().to_owned(),
            expected,
        })
    }

    pub fn aad(&self) -> Vec<u8> {
        serde_json::to_vec(&[
            "narakim-secret-v1",
            self.scope,
            &self.owner,
            &self.name,
            &self.expected,
        ])
        .expect("an array of strings serialises")
    }
}

/// Why a sealed value was not opened. None of these says anything about
/// the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error(
        "a sealed value must name the version it expects: send `If-None-Match: *` to create, or `If-Match: \"N\"` to overwrite version N"
    )]
    Unbound,
    #[error(
        "the value was sealed to key {got}, but this server's key is {current} (the page came from another vault); reload the page and enter the value again"
    )]
    StaleKey { got: String, current: String },
    #[error("the sealed value's {field} is not base64url")]
    Encoding { field: &'static str },
    #[error(
        "the sealed value does not open for this write: it was sealed for another secret, scope or version, or changed in transit; reload the page and enter the value again"
    )]
    Mismatch,
    #[error("the sealed value is not UTF-8 text")]
    NotText,
}

/// The server's sealing key pair.
pub struct Sealer {
    secret: <Kem as hpke::Kem>::PrivateKey,
    public: Vec<u8>,
    key_id: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// The key pair `seed` derives (RFC 9180 `DeriveKeyPair`): the same
    /// seed, the same pair.
    pub fn from_seed(seed: &Zeroizing<[u8; 32]>) -> Sealer {
        let (secret, public) = Kem::derive_keypair(seed.as_ref());
        let public = public.to_bytes().to_vec();
        use sha2::Digest;
        let digest = sha2::Sha256::digest(&public);
        let key_id = b64(&digest[..12]);
        Sealer {
            secret,
            public,
            key_id,
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key, base64url.
    pub fn public_key(&self) -> String {
        b64(&self.public)
    }

    /// Opens `envelope` for the write `binding` describes.
    pub fn open(&self, envelope: &Envelope, binding: &Binding) -> Result<Zeroizing<String>, Error> {
        if envelope.key_id != self.key_id {
            return Err(Error::StaleKey {
                got: envelope.key_id.chars().take(32).collect(),
                current: self.key_id.clone(),
            });
        }
        let enc = unb64(&envelope.enc).ok_or(Error::Encoding { field: "enc" })?;
        let ciphertext = unb64(&envelope.ciphertext).ok_or(Error::Encoding {
            field: "ciphertext",
        })?;
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc).map_err(|_| Error::Mismatch)?;
        let plain = hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.secret,
            &enc,
            INFO,
            &ciphertext,
            &binding.aad(),
        )
        .map_err(|_| Error::Mismatch)?;
        let plain = Zeroizing::new(plain);
        match std::str::from_utf8(&plain) {
            Ok(text) => Ok(Zeroizing::new(text.to_owned())),
            Err(_) => Err(Error::NotText),
        }
    }
}

/// Seals `value` to `public_key` (base64url) for `binding`: what the
/// browser does, for clients written in Rust and for the tests.
pub fn seal(
    public_key: &str,
    key_id: &str,
    binding: &Binding,
    value: &str,
) -> Result<Envelope, Error> {
    let public = unb64(public_key).ok_or(Error::Encoding {
        field: "public key",
    })?;
    let public =
        <Kem as hpke::Kem>::PublicKey::from_bytes(&public).map_err(|_| Error::Encoding {
            field: "public key",
        })?;
    let (enc, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, Kem>(
        &hpke::OpModeS::Base,
        &public,
        INFO,
        value.as_bytes(),
        &binding.aad(),
    )
    .map_err(|_| Error::Mismatch)?;
    Ok(Envelope {
        key_id: key_id.to_owned(),
        enc: b64(&enc.to_bytes()),
        ciphertext: b64(&ciphertext),
    })
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(name: &str, expected: Precondition) -> Binding {
        Binding::of(
            &Scope::Team("ops".into()),
            &SecretName::new(name).unwrap(),
            expected,
        )
        .unwrap()
    }

    fn keyed(seed: u8) -> Sealer {
        Sealer::from_seed(&Zeroizing::new([seed; 32]))
    }

    #[test]
    fn opens_only_for_the_write_it_was_sealed_for() {
        let sealer = keyed(1);
        let meant = binding("API_KEY", Precondition::Absent);
        let sealed = seal(
            &sealer.public_key(),
            sealer.key_id(),
            &meant,
            "s3cret-value",
        )
        .unwrap();
        assert_eq!(
            sealer.open(&sealed, &meant).unwrap().as_str(),
            "s3cret-value"
        );
        let others = [
            binding("OTHER_KEY", Precondition::Absent),
            binding("API_KEY", Precondition::Version(1)),
            Binding::of(
                &Scope::Bot("ops".into()),
                &SecretName::new("API_KEY").unwrap(),
                Precondition::Absent,
            )
            .unwrap(),
            Binding::of(
                &Scope::Team("dev".into()),
                &SecretName::new("API_KEY").unwrap(),
                Precondition::Absent,
            )
            .unwrap(),
        ];
        for other in others {
            assert_eq!(
                sealer.open(&sealed, &other),
                Err(Error::Mismatch),
                "{other:?}"
            );
        }
        // Another node of the same vault (the same seed) opens it; a
        // server of another vault cannot.
        assert_eq!(
            keyed(1).open(&sealed, &meant).unwrap().as_str(),
            "s3cret-value"
        );
        assert!(matches!(
            keyed(2).open(&sealed, &meant),
            Err(Error::StaleKey { .. })
        ));
        // A flipped bit in transit.
        let mut tampered = sealed.clone();
        tampered.ciphertext.replace_range(
            0..1,
            if tampered.ciphertext.starts_with('A') {
                "B"
            } else {
                "A"
            },
        );
        assert_eq!(sealer.open(&tampered, &meant), Err(Error::Mismatch));
    }

    #[test]
    fn an_unversioned_write_cannot_be_sealed() {
        assert_eq!(
            Binding::of(
                &Scope::Team("ops".into()),
                &SecretName::new("API_KEY").unwrap(),
                Precondition::Any
            ),
            Err(Error::Unbound)
        );
    }

    #[test]
    fn the_debug_form_shows_no_key() {
        let sealer = keyed(3);
        assert!(!format!("{sealer:?}").contains(&sealer.public_key()));
    }
}
