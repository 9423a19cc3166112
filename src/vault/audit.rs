//! The audit trail: who changed what, and when. It records names and scopes,
//! never values.

use crate::args;
use crate::db::Conn;

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
    conn: &Conn,
    actor: &str,
    action: &str,
    scope: Option<&Scope>,
    name: Option<&str>,
    detail: &str,
) -> Result<(), VaultError> {
    conn.execute(
        "INSERT INTO audit(at, actor, action, scope, owner, name, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            now_ms(),
            actor,
            action,
            scope.map(|s| s.kind().as_str()),
            scope.map(Scope::owner),
            name,
            detail
        ],
    )
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
        let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let rows = self
            .conn
            .query_map(
                "SELECT id, at, actor, action, scope, owner, name, detail FROM
                   (SELECT * FROM audit ORDER BY id DESC LIMIT ?1) AS newest ORDER BY id",
                args![limit],
                |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        at_ms: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        scope: r.get(4)?,
                        owner: r.get(5)?,
                        name: r.get(6)?,
                        detail: r.get::<Option<String>>(7)?.unwrap_or_default(),
                    })
                },
            )
            .map_err(VaultError::db("reading the audit trail"))?;
        Ok(rows)
    }
}
