//! Who may use the API: tokens, their scope and their capabilities.
//!
//! A token is scoped to one team, or one bot of a team, or is an admin
//! token; it carries a set of [`Capability`]s. The vault stores only the
//! token's keyed digest ([`token::TokenHasher`]), under a key derived from
//! the vault's fingerprint key, so it survives master key rotation and a
//! copy of the database holds nothing a client could present. Creating,
//! revoking and (from the service) using a token are audited.
//!
//! No capability reads a secret value: none exists.

use std::fmt;
use std::str::FromStr;

use crate::args;
use crate::db::{DbError, Row};
use zeroize::Zeroizing;

use super::Vault;
use super::audit;
use super::error::VaultError;
use super::scope::Scope;
use super::secrets::{bot_and_team_id, team_id};
use super::token::{ApiToken, TokenDigest, TokenFormatError, TokenHasher};

/// What a token may do. Each is named `area:verb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    SecretsWrite,
    SecretsList,
    BotsDeploy,
    BotsPause,
    RunsStart,
    ExecutionsRead,
    ExtensionsInstall,
    AuditRead,
}

impl Capability {
    pub const ALL: [Capability; 8] = [
        Capability::SecretsWrite,
        Capability::SecretsList,
        Capability::BotsDeploy,
        Capability::BotsPause,
        Capability::RunsStart,
        Capability::ExecutionsRead,
        Capability::ExtensionsInstall,
        Capability::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::SecretsWrite => "secrets:write",
            Capability::SecretsList => "secrets:list",
            Capability::BotsDeploy => "bots:deploy",
            Capability::BotsPause => "bots:pause",
            Capability::RunsStart => "runs:start",
            Capability::ExecutionsRead => "executions:read",
            Capability::ExtensionsInstall => "extensions:install",
            Capability::AuditRead => "audit:read",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A capability name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability \"{name}\"; capabilities are: {}", Capability::ALL.map(Capability::as_str).join(", "))]
pub struct UnknownCapability {
    pub name: String,
}

impl FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCapability {
                // Quoted back, so bounded: it is what was typed, not a value.
                name: s.chars().take(64).collect(),
            })
    }
}

/// What a token is scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    /// Everything, including teams and bots. Only the CLI creates these.
    Admin,
    /// One team: its secrets, and every bot of it.
    Team(String),
    /// One bot of a team, and nothing else of the team.
    Bot { team: String, bot: String },
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenScope::Admin => f.write_str("admin"),
            TokenScope::Team(team) => write!(f, "team {team}"),
            TokenScope::Bot { team, bot } => write!(f, "bot {bot} (team {team})"),
        }
    }
}

/// A token as listed: everything but the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Public id (`tok_` and 16 hex digits), for listing and revoking.
    pub id: String,
    pub scope: TokenScope,
    /// Sorted, without repeats.
    pub capabilities: Vec<Capability>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl TokenInfo {
    pub fn can(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

/// Why a presented token is not accepted. The service answers every one
/// with the same 401, so a caller learns nothing about which tokens exist;
/// the variants are for the audit trail and the operator.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Malformed(#[from] TokenFormatError),
    #[error("no such token: it was revoked, or never issued by this vault")]
    Unknown,
    #[error("token {id} expired; create a new one with `narakim token create`")]
    Expired { id: String },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// The label the token digest key is derived with.
const TOKEN_KEY_LABEL: &[u8] = b"narakim api-token v1";

/// The hasher for a vault's tokens: `HMAC-SHA256` under
/// `HMAC-SHA256(fingerprint key, "narakim api-token v1")`, derived once
/// when the vault opens.
pub(super) fn token_hasher(fingerprint_key: &[u8]) -> TokenHasher {
    let derived = super::record::derived_key(fingerprint_key, TOKEN_KEY_LABEL);
    let key: Zeroizing<[u8; 32]> = Zeroizing::new(
        derived
            .as_slice()
            .try_into()
            .expect("HMAC-SHA256 output is 32 bytes"),
    );
    TokenHasher::new(&key)
}

impl Vault {
    /// Issues a token for `scope` with `capabilities` (at least one),
    /// expiring at `expires_at` (milliseconds since the epoch; `None`:
    /// never). Returns it once; only its digest is kept.
    pub fn create_token(
        &mut self,
        scope: &TokenScope,
        capabilities: &[Capability],
        expires_at: Option<i64>,
    ) -> Result<(TokenInfo, ApiToken), VaultError> {
        let mut capabilities = capabilities.to_vec();
        capabilities.sort();
        capabilities.dedup();
        if capabilities.is_empty() {
            return Err(VaultError::TokenWithoutCapabilities);
        }
        let now = super::now_ms();
        if let Some(at) = expires_at
            && at <= now
        {
            return Err(VaultError::TokenExpiresInThePast);
        }
        let token = ApiToken::generate().map_err(|e| VaultError::Random(e.to_string()))?;
        let digest = self.token_hasher.digest(&token);
        let mut id_bytes = [0u8; 8];
        super::key::fill_random(&mut id_bytes)?;
        let id = format!("tok_{}", super::key::hex(&id_bytes));
        let caps_text = capabilities
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        self.change(|tx, actor| {
            let (admin, team, bot, audit_scope) = match scope {
                TokenScope::Admin => (true, None, None, None),
                TokenScope::Team(team) => (
                    false,
                    Some(team_id(tx, team)?),
                    None,
                    Some(Scope::Team(team.clone())),
                ),
                TokenScope::Bot { team, bot } => {
                    let team_id = team_id(tx, team)?;
                    let (bot_id, bot_team) = bot_and_team_id(tx, bot)?;
                    if bot_team != team_id {
                        return Err(VaultError::BotNotInTeam {
                            bot: bot.clone(),
                            team: team.clone(),
                        });
                    }
                    (
                        false,
                        Some(team_id),
                        Some(bot_id),
                        Some(Scope::Bot(bot.clone())),
                    )
                }
            };
            tx.execute(
                "INSERT INTO api_tokens(id, digest, admin, team_id, bot_id, capabilities,
                                        created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                args![
                    &id,
                    digest.as_bytes().as_slice(),
                    admin,
                    team,
                    bot,
                    &caps_text,
                    now,
                    expires_at
                ],
            )
            .map_err(VaultError::db("storing a token"))?;
            audit::record(
                tx,
                actor,
                "token.create",
                audit_scope.as_ref(),
                Some(&id),
                &format!("{scope}; {caps_text}"),
            )
        })?;
        let info = TokenInfo {
            id,
            scope: scope.clone(),
            capabilities,
            created_at: now,
            expires_at,
            last_used_at: None,
        };
        Ok((info, token))
    }

    /// Every token, oldest first. Never the tokens themselves: the vault
    /// does not have them.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>, VaultError> {
        self.conn
            .query_map(
                &format!("{TOKEN_SELECT} ORDER BY k.created_at, k.id"),
                args![],
                token_info,
            )
            .map_err(VaultError::db("listing tokens"))?
            .into_iter()
            .collect()
    }

    /// Revokes (deletes) token `id`. Requests carrying it fail from now on.
    pub fn revoke_token(&mut self, id: &str) -> Result<(), VaultError> {
        let shown: String = id.chars().take(64).collect();
        self.change(|tx, actor| {
            let deleted = tx
                .execute("DELETE FROM api_tokens WHERE id = ?1", args![id])
                .map_err(VaultError::db("revoking a token"))?;
            if deleted == 0 {
                return Err(VaultError::TokenNotFound(shown.clone()));
            }
            audit::record(tx, actor, "token.revoke", None, Some(id), "")
        })
    }

    /// The token `presented` (as a client sent it) stands for, if it is
    /// well formed, issued by this vault, and not expired. Records its use.
    pub fn authenticate(&mut self, presented: &str) -> Result<TokenInfo, AuthError> {
        let token = ApiToken::parse(presented)?;
        let digest = self.token_hasher.digest(&token);
        let now = super::now_ms();
        let found: Option<(Vec<u8>, Result<TokenInfo, VaultError>)> = self
            .conn
            .query_opt(
                &format!("{TOKEN_SELECT} WHERE k.digest = ?1"),
                args![digest.as_bytes().as_slice()],
                |r| Ok((r.get::<Vec<u8>>(8)?, token_info(r)?)),
            )
            .map_err(VaultError::db("looking up a token"))?;
        let Some((stored, info)) = found else {
            return Err(AuthError::Unknown);
        };
        // The index found it by equality already; compare again in
        // constant time so no timing depends on how much of it matched.
        let stored: [u8; 32] = stored.try_into().map_err(|_| AuthError::Unknown)?;
        if !TokenDigest::from_bytes(stored).matches(&digest) {
            return Err(AuthError::Unknown);
        }
        self.admit(info?, now)
    }

    /// Refuses `info` if its token expired, and records its use.
    pub(super) fn admit(&mut self, mut info: TokenInfo, now: i64) -> Result<TokenInfo, AuthError> {
        if info.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Expired { id: info.id });
        }
        // Recorded to the minute: a busy client would otherwise cost a
        // synced write of vault.db per request.
        if info
            .last_used_at
            .is_none_or(|at| now - at >= LAST_USED_RESOLUTION_MS)
        {
            self.conn
                .execute(
                    "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
                    args![&info.id, now],
                )
                .map_err(VaultError::db("recording a token's use"))?;
            info.last_used_at = Some(now);
        }
        Ok(info)
    }
}

/// How stale a token's recorded last use may be.
pub const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// Columns 0–7 are what [`token_info`] reads; 8 is the digest.
const TOKEN_SELECT: &str = "SELECT k.id, k.admin, t.name, b.name, k.capabilities, k.created_at,
            k.expires_at, k.last_used_at, k.digest
     FROM api_tokens k
     LEFT JOIN teams t ON t.id = k.team_id
     LEFT JOIN bots b ON b.id = k.bot_id";

/// [`TOKEN_SELECT`] for the token a UI session stands for: columns 0–7
/// as there, 8 the session's expiry (see [`super::session`]).
pub(super) const SESSION_TOKEN_SELECT: &str =
    "SELECT k.id, k.admin, t.name, b.name, k.capabilities, k.created_at,
            k.expires_at, k.last_used_at, s.expires_at
     FROM ui_sessions s
     JOIN api_tokens k ON k.id = s.token_id
     LEFT JOIN teams t ON t.id = k.team_id
     LEFT JOIN bots b ON b.id = k.bot_id";

pub(super) fn token_info(r: &Row<'_>) -> Result<Result<TokenInfo, VaultError>, DbError> {
    let id: String = r.get(0)?;
    let admin: bool = r.get(1)?;
    let team: Option<String> = r.get(2)?;
    let bot: Option<String> = r.get(3)?;
    let caps: String = r.get(4)?;
    let scope = match (admin, team, bot) {
        (true, _, _) => TokenScope::Admin,
        (false, Some(team), None) => TokenScope::Team(team),
        (false, Some(team), Some(bot)) => TokenScope::Bot { team, bot },
        (false, None, _) => {
            return Ok(Err(VaultError::TokenRowInvalid {
                id,
                reason: "it names no team".into(),
            }));
        }
    };
    let capabilities: Result<Vec<Capability>, UnknownCapability> =
        caps.split_whitespace().map(str::parse).collect();
    let capabilities = match capabilities {
        Ok(c) => c,
        Err(e) => {
            return Ok(Err(VaultError::TokenRowInvalid {
                id,
                reason: e.to_string(),
            }));
        }
    };
    Ok(Ok(TokenInfo {
        id,
        scope,
        capabilities,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        last_used_at: r.get(7)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::{Scope, SecretName, SecretValue};

    /// The statements a request and an execution run are planned once per
    /// connection, however often they run (see `crate::sqlite`).
    #[test]
    fn the_per_request_statements_are_prepared_once() {
        let (_tmp, config) = crate::vault::scratch();
        let mut vault = Vault::open(config).unwrap();
        vault.create_team("ops").unwrap();
        vault.create_bot("greeter", "ops").unwrap();
        let scope = TokenScope::Bot {
            team: "ops".into(),
            bot: "greeter".into(),
        };
        let (_, token) = vault
            .create_token(&scope, &[Capability::RunsStart], None)
            .unwrap();
        let bot = Scope::Bot("greeter".into());
        for round in 0..3 {
            // A write each round, so the snapshot reads its records again.
            let value = SecretValue::new(format!("value-of-round-{round}-0123456789")).unwrap();
            vault
                .set_secret(&bot, &SecretName::new("TOKEN").unwrap(), &value)
                .unwrap();
            for _ in 0..2 {
                assert_eq!(vault.authenticate(token.expose()).unwrap().scope, scope);
            }
            assert_eq!(vault.team_of_bot("greeter").unwrap(), "ops");
            assert_eq!(vault.snapshot_for_bot("greeter").unwrap().len(), 1);
            assert_eq!(vault.list_secrets(&bot).unwrap().len(), 1);
            assert_eq!(vault.tokens().unwrap().len(), 1);
            vault.change_stamp().unwrap();
            vault.secret_versions().unwrap();
        }
        assert_eq!(crate::sqlite::reprepared(vault.conn.sqlite().unwrap()), []);
    }
}
