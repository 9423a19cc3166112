//! Who owns a secret: one bot, or a whole team.

use std::fmt;

use super::error::InputError;
use super::value::printable;

/// The owner of a secret, by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A bot secret: visible to that bot only. It overrides a team secret
    /// of the same name.
    Bot(String),
    /// A team secret: visible to every bot of the team.
    Team(String),
}

impl Scope {
    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::Bot(_) => ScopeKind::Bot,
            Scope::Team(_) => ScopeKind::Team,
        }
    }

    pub fn owner(&self) -> &str {
        match self {
            Scope::Bot(n) | Scope::Team(n) => n,
        }
    }

    /// The CLI flag that names this scope, for messages that say what to type.
    pub fn flag(&self) -> String {
        format!("--{} {}", self.kind().as_str(), self.owner())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} \"{}\"", self.kind().as_str(), self.owner())
    }
}

/// Bot or team, without the owner's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeKind {
    Bot,
    Team,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Bot => "bot",
            ScopeKind::Team => "team",
        }
    }

    /// The byte that stands for the kind in a record's AAD.
    pub(crate) fn aad_byte(self) -> u8 {
        match self {
            ScopeKind::Bot => 0x01,
            ScopeKind::Team => 0x02,
        }
    }
}

/// Validates a team or bot name: 1 to 64 of `[A-Za-z0-9._-]`, starting with
/// a letter or digit.
pub(crate) fn validate_entity_name(kind: &'static str, name: &str) -> Result<(), InputError> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if first_ok && rest_ok && name.len() <= 64 {
        Ok(())
    } else {
        Err(InputError::EntityName {
            kind,
            name: printable(name),
        })
    }
}
