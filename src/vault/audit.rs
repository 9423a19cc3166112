//! The audit trail: who changed what, and when. It records names and scopes,
//! never values.

use rusqlite::{Connection, params};

use super::error::VaultError;
use super::scope::Scope;
use super::{Vault, now_ms};

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub actor: String,
    /// For example `secret.set`, `secret.overwrite`, `bot.delete`, `key.rotate`.
    pub action: String,
    /// `bot` or `team`, where the action concerns one.
    pub scope: Option<String>,
    pub owner: Option<String>,
    pub name: Option<String>,
    pub detail: String,
}

pub(crate) fn record(
    conn: &Connection,
    actor: &str,
    action: &str,
    scope: Option<&Scope>,
    name: Option<&str>,
    detail: &str,
) -> Result<(), VaultError> {
    conn.prepare_cached(
        "INSERT INTO audit(at, actor, action, scope, owner, name, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            now_ms(),
            actor,
            action,
            scope.map(|s| s.kind().as_str()),
            scope.map(Scope::owner),
            name,
            detail
        ])
    })
    .map(drop)
    .map_err(VaultError::db("writing the audit trail"))
}

impl Vault {
    /// Records an action taken outside the vault (a deploy, a pause, an
    /// extension install through the API) in the audit trail, with the
    /// current actor. `detail` must hold no value.
    pub fn audit_action(
        &mut self,
        action: &str,
        scope: Option<&Scope>,
        name: Option<&str>,
        detail: &str,
    ) -> Result<(), VaultError> {
        self.change(|tx, actor| record(tx, actor, action, scope, name, detail))
    }

    /// Records several actions (`(action, scope, name, detail)`) in one
    /// transaction: all of them or none. Each `detail` must hold no value.
    pub fn audit_actions(
        &mut self,
        entries: &[(&str, Option<&Scope>, Option<&str>, &str)],
    ) -> Result<(), VaultError> {
        self.change(|tx, actor| {
            for (action, scope, name, detail) in entries {
                record(tx, actor, action, *scope, *name, detail)?;
            }
            Ok(())
        })
    }

    /// The audit trail, oldest first; `limit` keeps only the newest entries.
    pub fn audit(&self, limit: Option<usize>) -> Result<Vec<AuditEntry>, VaultError> {
        let limit = limit.map_or(-1, |l| l as i64);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, at, actor, action, scope, owner, name, detail FROM
                   (SELECT * FROM audit ORDER BY id DESC LIMIT ?1) ORDER BY id",
            )
            .map_err(VaultError::db("reading the audit trail"))?;
        let rows = stmt
            .query_map([limit], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at_ms: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    scope: r.get(4)?,
                    owner: r.get(5)?,
                    name: r.get(6)?,
                    detail: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(VaultError::db("reading the audit trail"))?;
        Ok(rows)
    }
}
