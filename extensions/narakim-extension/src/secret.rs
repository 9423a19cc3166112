//! Declared secrets, handed over one at a time by the host.

use std::fmt;

use zeroize::Zeroizing;

use crate::Error;
use crate::bindings::narakim::extension::secrets::{self, SecretError};

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

/// Reads the secret `name`, which the extension must have declared (a
/// required secret, or named by a secret field of this node's config).
///
/// Errors name the secret and say how to fix it; they never carry a value.
pub fn secret(name: &str) -> Result<Secret, Error> {
    match secrets::get(name) {
        Ok(value) => Ok(Secret {
            name: name.to_owned(),
            value: Zeroizing::new(value),
        }),
        Err(SecretError::NotDeclared(n)) => Err(Error::new(format!(
            "secret {n} is not declared by this extension: list it in describe() as a required secret, \
             or name it in a config field the extension declares as a secret field"
        ))),
        Err(SecretError::NotConfigured(n)) => Err(Error::new(format!(
            "secret {n} is not configured for this bot; set it with `narakim secret set {n} --bot BOT` \
             (or for the whole team with `--team TEAM`)"
        ))),
        Err(SecretError::Unavailable(n)) => Err(Error::new(format!(
            "secret {n} is configured but cannot be decrypted (altered, moved, or sealed with another key); \
             check the vault with `narakim key verify` and set it again with `narakim secret set {n} --bot BOT`"
        ))),
    }
}
