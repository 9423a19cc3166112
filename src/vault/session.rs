//! Web UI sessions, kept beside the tokens they stand for.
//!
//! A session is opened by presenting a token, and from then on stands for
//! that token: every request made with it checks the token again (expiry,
//! revocation) exactly as a `Bearer` request would. The vault keeps only
//! the SHA-256 of the session's id and the token's id, never a token, so
//! a copy of the database opens no session. Because sessions live in the
//! database rather than in one process, every node of a cluster (and a
//! restarted node) knows every session; revoking the token ends its
//! sessions (by foreign key), and signing out ends one on every node.

use std::time::Duration;

use sha2::Digest;
use zeroize::Zeroizing;

use super::Vault;
use super::access::{AuthError, SESSION_TOKEN_SELECT, TokenInfo, token_info};
use super::audit;
use super::error::VaultError;
use crate::args;

/// Most sessions kept at once; past it, the oldest are ended.
pub const MAX_SESSIONS: i64 = 10_000;

/// A session just opened: its id (the cookie's value; shown once, never
/// stored) and when it ends (milliseconds since the epoch).
pub struct OpenedSession {
    pub id: Zeroizing<String>,
    pub expires_at: i64,
}

impl std::fmt::Debug for OpenedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedSession")
            .field("id", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

fn digest(id: &str) -> Vec<u8> {
    sha2::Sha256::digest(id.as_bytes()).to_vec()
}

impl Vault {
    /// Authenticates `presented` (a token, as a person pasted it) and opens
    /// a session for it that lasts `ttl`, or less if the token expires
    /// sooner. Records the sign-in in the audit trail.
    pub fn open_session(
        &mut self,
        presented: &str,
        ttl: Duration,
    ) -> Result<(TokenInfo, OpenedSession), AuthError> {
        let info = self.authenticate(presented)?;
        let now = super::now_ms();
        let mut expires_at = now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
        if let Some(at) = info.expires_at {
            expires_at = expires_at.min(at);
        }
        let id = Zeroizing::new(random_id()?);
        let tx = self
            .conn
            .begin(crate::db::Begin::Immediate)
            .map_err(VaultError::db("starting a transaction"))?;
        tx.execute("DELETE FROM ui_sessions WHERE expires_at <= ?1", args![now])
            .map_err(VaultError::db("ending expired sessions"))?;
        let open: i64 = tx
            .query_one("SELECT COUNT(*) FROM ui_sessions", args![], |r| r.get(0))
            .map_err(VaultError::db("counting sessions"))?;
        if open >= MAX_SESSIONS {
            tx.execute(
                "DELETE FROM ui_sessions WHERE digest IN
                     (SELECT digest FROM ui_sessions ORDER BY created_at, digest LIMIT ?1)",
                args![open - MAX_SESSIONS + 1],
            )
            .map_err(VaultError::db("ending the oldest sessions"))?;
        }
        tx.execute(
            "INSERT INTO ui_sessions(digest, token_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            args![digest(&id).as_slice(), &info.id, now, expires_at],
        )
        .map_err(VaultError::db("opening a session"))?;
        audit::record(&tx, &info.id, "session.open", None, None, "")?;
        tx.commit().map_err(VaultError::db("committing"))?;
        Ok((info, OpenedSession { id, expires_at }))
    }

    /// The token session `id` stands for, if the session is open and
    /// unexpired and its token still works. Records the token's use.
    pub fn session(&mut self, id: &str) -> Result<TokenInfo, AuthError> {
        let now = super::now_ms();
        let found: Option<(i64, Result<TokenInfo, VaultError>)> = self
            .conn
            .query_opt(
                &format!("{SESSION_TOKEN_SELECT} WHERE s.digest = ?1"),
                args![digest(id).as_slice()],
                |r| Ok((r.get::<i64>(8)?, token_info(r)?)),
            )
            .map_err(VaultError::db("looking up a session"))?;
        match found {
            Some((expires_at, info)) if expires_at > now => self.admit(info?, now),
            _ => Err(AuthError::Unknown),
        }
    }

    /// Ends session `id` on every node. Whether it was open.
    pub fn close_session(&mut self, id: &str) -> Result<bool, VaultError> {
        let tx = self
            .conn
            .begin(crate::db::Begin::Immediate)
            .map_err(VaultError::db("starting a transaction"))?;
        let token: Option<String> = tx
            .query_opt(
                "DELETE FROM ui_sessions WHERE digest = ?1 RETURNING token_id",
                args![digest(id).as_slice()],
                |r| r.get(0),
            )
            .map_err(VaultError::db("ending a session"))?;
        if let Some(token) = &token {
            audit::record(&tx, token, "session.close", None, None, "")?;
        }
        tx.commit().map_err(VaultError::db("committing"))?;
        Ok(token.is_some())
    }
}

/// 32 random bytes, base64url.
fn random_id() -> Result<String, VaultError> {
    use base64::Engine;
    let mut bytes = Zeroizing::new([0u8; 32]);
    super::key::fill_random(bytes.as_mut())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::access::{Capability, TokenScope};

    fn vault_with_token(expires_at: Option<i64>) -> (tempfile::TempDir, Vault, TokenInfo, String) {
        let (tmp, config) = crate::vault::scratch();
        let mut vault = Vault::open(config).unwrap();
        let (info, token) = vault
            .create_token(&TokenScope::Admin, &[Capability::SecretsList], expires_at)
            .unwrap();
        let token = token.expose().to_owned();
        (tmp, vault, info, token)
    }

    #[test]
    fn a_session_stands_for_its_token_until_closed() {
        let (_tmp, mut vault, info, token) = vault_with_token(None);
        let (opened_for, session) = vault.open_session(&token, Duration::from_secs(60)).unwrap();
        assert_eq!(opened_for.id, info.id);
        assert_eq!(vault.session(&session.id).unwrap().id, info.id);
        assert!(matches!(
            vault.session("not-a-session"),
            Err(AuthError::Unknown)
        ));
        assert!(vault.close_session(&session.id).unwrap());
        assert!(!vault.close_session(&session.id).unwrap());
        assert!(matches!(
            vault.session(&session.id),
            Err(AuthError::Unknown)
        ));
        let actions: Vec<String> = vault
            .audit(Some(100))
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert!(actions.contains(&"session.open".to_owned()), "{actions:?}");
        assert!(actions.contains(&"session.close".to_owned()), "{actions:?}");
    }

    #[test]
    fn revoking_the_token_ends_its_sessions() {
        let (_tmp, mut vault, info, token) = vault_with_token(None);
        let (_, session) = vault.open_session(&token, Duration::from_secs(60)).unwrap();
        vault.revoke_token(&info.id).unwrap();
        assert!(matches!(
            vault.session(&session.id),
            Err(AuthError::Unknown)
        ));
        let left: i64 = vault
            .conn
            .query_one("SELECT COUNT(*) FROM ui_sessions", args![], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn a_session_ends_with_its_ttl_or_its_token() {
        let (_tmp, mut vault, _, token) = vault_with_token(None);
        let (_, session) = vault.open_session(&token, Duration::ZERO).unwrap();
        assert!(matches!(
            vault.session(&session.id),
            Err(AuthError::Unknown)
        ));

        let soon = crate::vault::now_ms() + 30_000;
        let (_tmp, mut vault, _, token) = vault_with_token(Some(soon));
        let (_, session) = vault
            .open_session(&token, Duration::from_secs(3600))
            .unwrap();
        assert_eq!(session.expires_at, soon);
    }

    #[test]
    fn no_session_id_is_stored() {
        let (_tmp, mut vault, _, token) = vault_with_token(None);
        let (_, session) = vault.open_session(&token, Duration::from_secs(60)).unwrap();
        let stored: Vec<u8> = vault
            .conn
            .query_one("SELECT digest FROM ui_sessions", args![], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, session.id.as_bytes());
        assert_eq!(stored.len(), 32);
        assert!(
            vault
                .open_session("nrk_bogus", Duration::from_secs(60))
                .is_err()
        );
    }
}
