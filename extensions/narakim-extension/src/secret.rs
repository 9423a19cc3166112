//! Declared secrets: as credentials (a placeholder the host substitutes
//! outside the sandbox) or, for protocols that need it, as plaintext.

use std::fmt;

use zeroize::Zeroizing;

use crate::Error;
use crate::bindings::narakim::extension0_2_0::credentials;
use crate::bindings::narakim::extension0_2_0::secrets;
use crate::bindings::narakim::extension0_2_0::types::SecretError;

/// A secret's plaintext. Wiped from memory when dropped; `Debug` and
/// `Display` print `[REDACTED]`. Use [`Secret::expose`] only where the value
/// must go (a request header, for example).
pub struct Secret {
    name: String,
    value: Zeroizing<String>,
}

impl Secret {
    /// The plaintext. Never log it or put it in an error: the host scrubs
    /// everything the invocation emits, but it is better not to try.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The secret's name, for example `DISCORD_BOT_TOKEN`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}: [REDACTED])", self.name)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Reads the secret `name` as plaintext, which the extension must have
/// declared (a required secret, or named by a secret field of this node's
/// config). An extension that calls this is marked as one that reveals
/// secrets; prefer [`credential`].
///
/// Errors name the secret and say how to fix it; they never carry a value.
pub fn secret(name: &str) -> Result<Secret, Error> {
    secrets::get(name)
        .map(|value| Secret {
            name: name.to_owned(),
            value: Zeroizing::new(value),
        })
        .map_err(refused)
}

/// A declared secret as the extension may hold it: a placeholder, which the
/// host replaces with the value when a request carries it where the
/// description's [`Injection`](crate::Injection) allows, to the secret's
/// hosts, over HTTPS. The placeholder is new for every invocation and safe
/// to log.
pub struct Credential {
    name: String,
    handle: credentials::Credential,
}

impl Credential {
    /// The secret's name, for example `DISCORD_BOT_TOKEN`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The placeholder (`nrkph_` and 32 hex digits).
    pub fn placeholder(&self) -> String {
        self.handle.placeholder()
    }

    /// The hosts the host will send the value to.
    pub fn hosts(&self) -> Vec<String> {
        self.handle.hosts()
    }

    /// HMAC-SHA256 of `message` keyed by the value, computed by the host:
    /// for protocols that sign with a secret rather than send it.
    pub fn hmac_sha256(&self, message: &[u8]) -> Vec<u8> {
        self.handle.hmac_sha256(message)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({})", self.name)
    }
}

/// The credential of the secret `name`, which the extension must have
/// declared. Errors as for [`secret`].
pub fn credential(name: &str) -> Result<Credential, Error> {
    credentials::get(name)
        .map(|handle| Credential {
            name: name.to_owned(),
            handle,
        })
        .map_err(refused)
}

fn refused(error: SecretError) -> Error {
    match error {
        SecretError::NotDeclared(n) => Error::new(format!(
            "secret {n} is not declared by this extension: list it in describe() as a required secret, \
             or name it in a config field the extension declares as a secret field"
        )),
        SecretError::NotConfigured(n) => Error::new(format!(
            "secret {n} is not configured for this bot; set it with `narakim secret set {n} --bot BOT` \
             (or for the whole team with `--team TEAM`)"
        )),
        SecretError::Unavailable(n) => Error::new(format!(
            "secret {n} is configured but cannot be decrypted (altered, moved, or sealed with another key); \
             check the vault with `narakim key verify` and set it again with `narakim secret set {n} --bot BOT`"
        )),
    }
}
