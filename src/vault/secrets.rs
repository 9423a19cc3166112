//! Teams, bots and the secrets they own: every change goes through here,
//! in one transaction with its audit entry.

use crate::args;
use crate::db::{Begin, Conn, DbError, Row, Tx};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::audit;
use super::error::VaultError;
use super::key::{MasterKey, hex};
use super::record::{self, Identity};
use super::scope::{Scope, ScopeKind, validate_entity_name};
use super::store;
use super::value::{SecretName, SecretValue};
use super::{Vault, now_ms};

/// A team, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamInfo {
    pub name: String,
    pub bots: u64,
    pub secrets: u64,
    pub created_at_ms: i64,
}

/// A bot, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotInfo {
    pub name: String,
    pub team: String,
    pub secrets: u64,
    pub created_at_ms: i64,
}

/// A stored secret, as listed: everything but its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    /// Where it is stored.
    pub scope: Scope,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// 1 when created, one more on each overwrite.
    pub version: u64,
    /// The actor of the last write (`None` for secrets written before
    /// versions were recorded).
    pub updated_by: Option<String>,
    /// The first 6 bytes of HMAC-SHA256(vault fingerprint key, value), in
    /// hex. Equal values have equal fingerprints within one vault; without
    /// the master key nothing about the value can be learned from it.
    /// `(altered)` when the stored fingerprint does not match its record
    /// (see `fingerprint_verified`).
    pub fingerprint: String,
    /// Whether the stored fingerprint is bound to this record (its tag
    /// verifies). `false` means the database was changed outside narakim:
    /// `narakim key verify` names what is wrong.
    pub fingerprint_verified: bool,
    /// In a bot's listing: whether the bot resolves this name to this entry.
    /// A team secret shadowed by a bot secret of the same name is `false`.
    /// Always `true` in a team's listing.
    pub effective: bool,
}

/// What `set_secret` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    Created,
    /// Replaced the value (rotation); the old ciphertext is gone from the file.
    Overwritten,
}

/// What a write expects to find, checked in the write's own transaction so
/// two writers cannot both pass it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Create or overwrite, whatever is there.
    #[default]
    Any,
    /// Overwrite only this version (HTTP `If-Match`).
    Version(u64),
    /// Create only: fail if the secret exists (HTTP `If-None-Match: *`).
    Absent,
}

impl Vault {
    pub fn create_team(&mut self, name: &str) -> Result<(), VaultError> {
        validate_entity_name("team", name)?;
        self.change(|tx, actor| {
            let inserted = tx
                .execute(
                    "INSERT INTO teams(name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
                    args![name, now_ms()],
                )
                .map_err(VaultError::db("creating a team"))?;
            if inserted == 0 {
                return Err(VaultError::TeamExists(name.to_owned()));
            }
            audit::record(tx, actor, "team.create", Some(&Scope::Team(name.into())), None, "")
        })
    }

    pub fn list_teams(&self) -> Result<Vec<TeamInfo>, VaultError> {
        self.conn
            .query_map(
                "SELECT t.name, t.created_at,
                        (SELECT COUNT(*) FROM bots b WHERE b.team_id = t.id),
                        (SELECT COUNT(*) FROM secrets s WHERE s.team_id = t.id)
                 FROM teams t ORDER BY t.name",
                args![],
                |r| {
                    Ok(TeamInfo {
                        name: r.get(0)?,
                        created_at_ms: r.get(1)?,
                        bots: r.get::<i64>(2)? as u64,
                        secrets: r.get::<i64>(3)? as u64,
                    })
                },
            )
            .map_err(VaultError::db("listing teams"))
    }

    /// Deletes a team and its team secrets. Refused while the team has bots.
    pub fn delete_team(&mut self, name: &str) -> Result<(), VaultError> {
        self.change(|tx, actor| {
            let team_id = team_id(tx, name)?;
            let bots: Vec<String> = tx
                .query_map(
                    "SELECT name FROM bots WHERE team_id = ?1 ORDER BY name",
                    args![team_id],
                    |r| r.get(0),
                )
                .map_err(VaultError::db("listing the team's bots"))?;
            if !bots.is_empty() {
                return Err(VaultError::TeamHasBots {
                    team: name.to_owned(),
                    bots,
                });
            }
            let secrets = tx
                .execute("DELETE FROM secrets WHERE team_id = ?1", args![team_id])
                .and_then(|n| {
                    tx.execute("DELETE FROM teams WHERE id = ?1", args![team_id])
                        .map(|_| n)
                })
                .map_err(VaultError::db("deleting a team"))?;
            audit::record(
                tx,
                actor,
                "team.delete",
                Some(&Scope::Team(name.into())),
                None,
                &format!("{secrets} team secret(s) deleted"),
            )
        })
    }

    pub fn create_bot(&mut self, name: &str, team: &str) -> Result<(), VaultError> {
        validate_entity_name("bot", name)?;
        self.change(|tx, actor| {
            let team_id = team_id(tx, team)?;
            let inserted = tx
                .execute(
                    "INSERT INTO bots(name, team_id, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
                    args![name, team_id, now_ms()],
                )
                .map_err(VaultError::db("creating a bot"))?;
            if inserted == 0 {
                return Err(VaultError::BotExists(name.to_owned()));
            }
            audit::record(
                tx,
                actor,
                "bot.create",
                Some(&Scope::Bot(name.into())),
                None,
                &format!("team {team}"),
            )
        })
    }

    /// The team `bot` belongs to ([`VaultError::BotNotFound`] if none).
    pub fn team_of_bot(&self, bot: &str) -> Result<String, VaultError> {
        let (_, team_id) = bot_and_team_id(&self.conn, bot)?;
        self.conn
            .query_one(
                "SELECT name FROM teams WHERE id = ?1",
                args![team_id],
                |r| r.get(0),
            )
            .map_err(VaultError::db("looking up a bot's team"))
    }

    pub fn list_bots(&self) -> Result<Vec<BotInfo>, VaultError> {
        self.conn
            .query_map(
                "SELECT b.name, t.name, b.created_at,
                        (SELECT COUNT(*) FROM secrets s WHERE s.bot_id = b.id)
                 FROM bots b JOIN teams t ON t.id = b.team_id ORDER BY b.name",
                args![],
                |r| {
                    Ok(BotInfo {
                        name: r.get(0)?,
                        team: r.get(1)?,
                        created_at_ms: r.get(2)?,
                        secrets: r.get::<i64>(3)? as u64,
                    })
                },
            )
            .map_err(VaultError::db("listing bots"))
    }

    /// Deletes a bot and all its bot secrets in one transaction, then
    /// checkpoints so their ciphertexts are gone from the file and its WAL.
    /// Returns how many secrets went with it.
    pub fn delete_bot(&mut self, name: &str) -> Result<usize, VaultError> {
        self.delete_bot_with(name, |_| Ok(()))
    }

    /// [`delete_bot`](Self::delete_bot), with `along` run in the same
    /// transaction after the bot's rows are gone (for the engine's rows of
    /// the bot, when they live in the same database).
    pub fn delete_bot_with(
        &mut self,
        name: &str,
        along: impl FnOnce(&Conn) -> Result<(), DbError>,
    ) -> Result<usize, VaultError> {
        let mut deleted = 0;
        self.change(|tx, actor| {
            let bot_id = bot_id(tx, name)?;
            deleted = tx
                .execute("DELETE FROM secrets WHERE bot_id = ?1", args![bot_id])
                .and_then(|n| {
                    tx.execute("DELETE FROM bots WHERE id = ?1", args![bot_id])
                        .map(|_| n)
                })
                .map_err(VaultError::db("deleting a bot"))?;
            along(tx).map_err(VaultError::db("deleting the bot's deployments and runs"))?;
            audit::record(
                tx,
                actor,
                "bot.delete",
                Some(&Scope::Bot(name.into())),
                None,
                &format!("{deleted} bot secret(s) deleted"),
            )
        })?;
        self.snapshots.forget(&Scope::Bot(name.to_owned()));
        Ok(deleted)
    }

    /// Stores `value` under `name` in `scope`, sealed under the current
    /// master key. Overwriting keeps the secret's identity and gives it a
    /// new data key, nonces and `updated_at`; the next snapshot sees the new
    /// value, while snapshots already taken keep the old one.
    pub fn set_secret(
        &mut self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretValue,
    ) -> Result<SetOutcome, VaultError> {
        self.set_secret_checked(scope, name, value, Precondition::Any)
            .map(|(outcome, _)| outcome)
    }

    /// [`set_secret`](Self::set_secret) if the stored secret meets
    /// `expected` ([`VaultError::VersionMismatch`] otherwise, with nothing
    /// changed). Returns the outcome and the new version.
    pub fn set_secret_checked(
        &mut self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretValue,
        expected: Precondition,
    ) -> Result<(SetOutcome, u64), VaultError> {
        self.refresh_key()?;
        let key = self.key.clone();
        let fingerprint = fingerprint(&self.fingerprint_key, value);
        let tag_key = self.fingerprint_tag_key.clone();
        let mut result = None;
        self.change(|tx, actor| {
            result = Some(store_one(
                tx,
                actor,
                (&*key, &tag_key[..]),
                (scope, name, value),
                &fingerprint,
                expected,
            )?);
            Ok(())
        })?;
        Ok(result.expect("a committed change stored the secret"))
    }

    /// Stores many secrets in one transaction (one fsync, one audit entry
    /// each): all are stored, or none is.
    pub fn set_secrets<'a>(
        &mut self,
        items: impl IntoIterator<Item = (&'a Scope, &'a SecretName, &'a SecretValue)>,
    ) -> Result<Vec<SetOutcome>, VaultError> {
        self.refresh_key()?;
        let key = self.key.clone();
        let fingerprint_key = self.fingerprint_key.clone();
        let tag_key = self.fingerprint_tag_key.clone();
        let mut outcomes = Vec::new();
        self.change(|tx, actor| {
            for (scope, name, value) in items {
                let fingerprint = fingerprint(&fingerprint_key, value);
                let (outcome, _) = store_one(
                    tx,
                    actor,
                    (&*key, &tag_key[..]),
                    (scope, name, value),
                    &fingerprint,
                    Precondition::Any,
                )?;
                outcomes.push(outcome);
            }
            Ok(())
        })?;
        Ok(outcomes)
    }

    pub fn delete_secret(&mut self, scope: &Scope, name: &SecretName) -> Result<(), VaultError> {
        self.delete_secret_checked(scope, name, Precondition::Any)
    }

    /// [`delete_secret`](Self::delete_secret) if the stored secret is at the
    /// expected version ([`Precondition::Version`]); `Absent` is refused.
    pub fn delete_secret_checked(
        &mut self,
        scope: &Scope,
        name: &SecretName,
        expected: Precondition,
    ) -> Result<(), VaultError> {
        self.change(|tx, actor| {
            let (kind, owner_id) = owner(tx, scope)?;
            let Some((_, current)) = current_version(tx, kind, owner_id, name)? else {
                return Err(VaultError::SecretNotFound {
                    name: name.to_string(),
                    scope: scope.clone(),
                });
            };
            if expected == Precondition::Absent {
                return Err(VaultError::PreconditionUnsupported(
                    "If-None-Match: * means \"create only\" and cannot apply to a delete",
                ));
            }
            check_precondition(scope, name, Some(current), expected)?;
            let deleted = tx
                .execute(
                    &format!(
                        "DELETE FROM secrets WHERE {} = ?1 AND name = ?2",
                        owner_column(kind)
                    ),
                    args![owner_id, name.as_str()],
                )
                .map_err(VaultError::db("deleting a secret"))?;
            if deleted == 0 {
                return Err(VaultError::SecretNotFound {
                    name: name.to_string(),
                    scope: scope.clone(),
                });
            }
            audit::record(
                tx,
                actor,
                "secret.delete",
                Some(scope),
                Some(name.as_str()),
                "",
            )
        })
    }

    /// The stored secrets, anywhere in the vault, whose value equals one of
    /// `candidates`: how deploy refuses a config that holds a stored value.
    /// Compares keyed fingerprints (HMAC with the vault's fingerprint key),
    /// so nothing is decrypted and no value is ever returned; each match
    /// names the candidate by its index, and the secret by scope and name.
    ///
    /// Every stored fingerprint is checked against its record first (its
    /// tag): if any was altered, this fails closed with
    /// [`VaultError::FingerprintMismatch`] naming those secrets, since a
    /// config holding their values could not be recognised.
    pub fn stored_values_among(&self, candidates: &[&str]) -> Result<Vec<StoredMatch>, VaultError> {
        if candidates.iter().all(|c| c.len() < super::MIN_VALUE_LEN) {
            return Ok(Vec::new());
        }
        let rows = self
            .conn
            .query_map(
                "SELECT s.name, s.fingerprint, s.fingerprint_tag, s.record, s.bot_id, s.team_id, b.name, t.name
                 FROM secrets s LEFT JOIN teams t ON t.id = s.team_id LEFT JOIN bots b ON b.id = s.bot_id
                 ORDER BY s.id",
                args![],
                FingerprintRow::read,
            )
            .map_err(VaultError::db("comparing fingerprints"))?;
        let mut stored: std::collections::HashMap<Vec<u8>, Vec<(Scope, String)>> =
            std::collections::HashMap::new();
        let mut altered = Vec::new();
        for row in rows {
            if !row.verified(&self.fingerprint_tag_key) {
                altered.push(format!("{} ({})", row.name, row.scope));
                continue;
            }
            stored
                .entry(row.fingerprint)
                .or_default()
                .push((row.scope, row.name));
        }
        if !altered.is_empty() {
            return Err(VaultError::FingerprintMismatch { secrets: altered });
        }
        let mut out = Vec::new();
        for (index, candidate) in candidates.iter().enumerate() {
            // Shorter strings cannot be stored values.
            if candidate.len() < super::MIN_VALUE_LEN {
                continue;
            }
            let fingerprint = fingerprint_bytes(&self.fingerprint_key, candidate.as_bytes());
            for (scope, name) in stored.get(&fingerprint).into_iter().flatten() {
                out.push(StoredMatch {
                    candidate: index,
                    scope: scope.clone(),
                    name: name.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Names, scopes, times and fingerprints of the secrets in `scope`. For a
    /// bot this includes its team's secrets, each marked with whether the
    /// bot resolves to it.
    pub fn list_secrets(&self, scope: &Scope) -> Result<Vec<SecretInfo>, VaultError> {
        let (bot, team) = match scope {
            Scope::Bot(name) => {
                let (bot_id, team_id) = bot_and_team_id(&self.conn, name)?;
                (Some(bot_id), team_id)
            }
            Scope::Team(name) => (None, team_id(&self.conn, name)?),
        };
        let tag_key = &self.fingerprint_tag_key;
        let mut out: Vec<SecretInfo> = self
            .conn
            .query_map(
                "SELECT s.name, s.fingerprint, s.fingerprint_tag, s.record, s.bot_id, s.team_id, b.name, t.name,
                        s.created_at, s.updated_at, s.version, s.updated_by
                 FROM secrets s LEFT JOIN teams t ON t.id = s.team_id LEFT JOIN bots b ON b.id = s.bot_id
                 WHERE s.bot_id = ?1 OR s.team_id = ?2
                 ORDER BY s.name, s.bot_id IS NULL",
                args![bot, team],
                |r| {
                    let row = FingerprintRow::read(r)?;
                    let verified = row.verified(tag_key);
                    Ok(SecretInfo {
                        created_at_ms: r.get(8)?,
                        updated_at_ms: r.get(9)?,
                        version: r.get::<i64>(10)?.max(0) as u64,
                        updated_by: r.get(11)?,
                        fingerprint: if verified {
                            hex(&row.fingerprint[..row.fingerprint.len().min(6)])
                        } else {
                            ALTERED_FINGERPRINT.to_owned()
                        },
                        fingerprint_verified: verified,
                        name: row.name,
                        scope: row.scope,
                        effective: true,
                    })
                },
            )
            .map_err(VaultError::db("listing secrets"))?;
        // Rows are ordered bot-before-team within a name: later duplicates are shadowed.
        for i in 1..out.len() {
            if out[i].name == out[i - 1].name {
                out[i].effective = false;
            }
        }
        Ok(out)
    }

    /// Runs `f` in one write transaction, then checkpoints the WAL so no
    /// superseded page (with an old ciphertext) outlives the change.
    /// Vault writes take turns across every node (see [`begin_write`]).
    pub(super) fn change(
        &mut self,
        f: impl FnOnce(&Tx<'_>, &str) -> Result<(), VaultError>,
    ) -> Result<(), VaultError> {
        let tx = begin_write(&self.conn)?;
        // A rotation on another node since `refresh_key`: a record sealed
        // now under the old key would not open under the new one.
        if store::get_meta(&tx, super::META_KEY_ID)?.as_deref() != Some(&self.key.id().0[..]) {
            return Err(VaultError::KeyRotatedMeanwhile);
        }
        f(&tx, &self.config.actor)?;
        tx.commit().map_err(VaultError::db("committing"))?;
        store::checkpoint(&self.conn)
    }
}

/// What a listing shows in place of a fingerprint that does not match its
/// record.
pub const ALTERED_FINGERPRINT: &str = "(altered)";

/// A secret row as far as its fingerprint is concerned. Columns, in order:
/// name, fingerprint, fingerprint_tag, record, bot_id, team_id, bot name,
/// team name.
struct FingerprintRow {
    name: String,
    scope: Scope,
    kind: ScopeKind,
    owner_id: i64,
    fingerprint: Vec<u8>,
    tag: Option<Vec<u8>>,
    record: Vec<u8>,
}

impl FingerprintRow {
    fn read(r: &Row<'_>) -> Result<Self, DbError> {
        let (bot_id, team_id): (Option<i64>, Option<i64>) = (r.get(4)?, r.get(5)?);
        let (kind, owner_id, scope) = match bot_id {
            Some(id) => (ScopeKind::Bot, id, Scope::Bot(r.get(6)?)),
            None => (
                ScopeKind::Team,
                team_id.unwrap_or_default(),
                Scope::Team(r.get(7)?),
            ),
        };
        Ok(FingerprintRow {
            name: r.get(0)?,
            fingerprint: r.get(1)?,
            tag: r.get(2)?,
            record: r.get(3)?,
            kind,
            owner_id,
            scope,
        })
    }

    /// Whether the stored fingerprint is the one the vault bound to this
    /// record.
    fn verified(&self, tag_key: &[u8]) -> bool {
        record::fingerprint_tag_matches(
            tag_key,
            Identity {
                kind: self.kind,
                owner_id: self.owner_id,
                name: &self.name,
            },
            &self.fingerprint,
            &self.record,
            self.tag.as_deref(),
        )
    }
}

/// Migration 2: binds every fingerprint to its record. Each fingerprint is
/// recomputed from the decrypted value (so one altered before the upgrade
/// is corrected too) and tagged. A record that does not open is left
/// untagged: `key verify` and every fingerprint check report it.
pub(crate) fn fill_fingerprint_tags(
    tx: &Tx<'_>,
    key: &MasterKey,
    fingerprint_key: &[u8],
    tag_key: &[u8],
) -> Result<(), VaultError> {
    // id, bot_id, team_id, name, record
    type SealedRow = (i64, Option<i64>, Option<i64>, String, Vec<u8>);
    let rows: Vec<SealedRow> = tx
        .query_map(
            "SELECT id, bot_id, team_id, name, record FROM secrets ORDER BY id",
            args![],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .map_err(VaultError::db("reading secrets to tag their fingerprints"))?;
    for (id, bot_id, team_id, name, sealed) in rows {
        let identity = match bot_id {
            Some(bot) => Identity {
                kind: ScopeKind::Bot,
                owner_id: bot,
                name: &name,
            },
            None => Identity {
                kind: ScopeKind::Team,
                owner_id: team_id.unwrap_or_default(),
                name: &name,
            },
        };
        let Ok(value) = record::open(key, identity, &sealed) else {
            continue;
        };
        let fingerprint = fingerprint(fingerprint_key, &value);
        drop(value);
        let tag = record::fingerprint_tag(tag_key, identity, &fingerprint, &sealed);
        tx.execute(
            "UPDATE secrets SET fingerprint = ?1, fingerprint_tag = ?2 WHERE id = ?3",
            args![&fingerprint, tag.as_ref(), id],
        )
        .map_err(VaultError::db("tagging fingerprints"))?;
    }
    Ok(())
}

/// HMAC-SHA256(fingerprint key, value).
pub(crate) fn fingerprint(fingerprint_key: &[u8], value: &SecretValue) -> Vec<u8> {
    fingerprint_bytes(fingerprint_key, value.expose().as_bytes())
}

fn fingerprint_bytes(fingerprint_key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(fingerprint_key)
        .expect("HMAC takes keys of any length");
    mac.update(value);
    mac.finalize().into_bytes().to_vec()
}

/// A stored secret whose value equals a candidate string (see
/// [`Vault::stored_values_among`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMatch {
    /// Index of the candidate that matched.
    pub candidate: usize,
    pub scope: Scope,
    pub name: String,
}

/// Seals and stores one value inside the caller's transaction, with its
/// audit entry.
fn store_one(
    tx: &Tx<'_>,
    actor: &str,
    (key, tag_key): (&MasterKey, &[u8]),
    (scope, name, value): (&Scope, &SecretName, &SecretValue),
    fingerprint: &[u8],
    expected: Precondition,
) -> Result<(SetOutcome, u64), VaultError> {
    let (kind, owner_id) = owner(tx, scope)?;
    let identity = Identity {
        kind,
        owner_id,
        name: name.as_str(),
    };
    let current = current_version(tx, kind, owner_id, name)?;
    check_precondition(scope, name, current.map(|(_, v)| v), expected)?;
    let sealed = record::seal(key, identity, value)?;
    let tag = record::fingerprint_tag(tag_key, identity, fingerprint, &sealed)
        .expect("a sealed record has a value layer");
    let now = now_ms();
    let column = owner_column(kind);
    let (outcome, version) = match current {
        Some((id, version)) => tx
            .execute(
                "UPDATE secrets SET record = ?1, fingerprint = ?2, fingerprint_tag = ?3, updated_at = ?4,
                                    version = ?5, updated_by = ?6 WHERE id = ?7",
                args![&sealed, fingerprint, &tag, now, version as i64 + 1, actor, id],
            )
            .map(|_| (SetOutcome::Overwritten, version + 1)),
        None => tx
            .execute(
                &format!(
                    "INSERT INTO secrets({column}, name, record, fingerprint, fingerprint_tag, created_at, updated_at,
                                         version, updated_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1, ?7)"
                ),
                args![owner_id, name.as_str(), &sealed, fingerprint, &tag, now, actor],
            )
            .map(|_| (SetOutcome::Created, 1)),
    }
    .map_err(VaultError::db("storing a secret"))?;
    let action = match outcome {
        SetOutcome::Created => "secret.set",
        SetOutcome::Overwritten => "secret.overwrite",
    };
    audit::record(
        tx,
        actor,
        action,
        Some(scope),
        Some(name.as_str()),
        &format!("version {version}"),
    )?;
    Ok((outcome, version))
}

/// The row id and version of `name` in the owner's secrets, if stored.
fn current_version(
    tx: &Tx<'_>,
    kind: ScopeKind,
    owner_id: i64,
    name: &SecretName,
) -> Result<Option<(i64, u64)>, VaultError> {
    tx.query_opt(
        &format!(
            "SELECT id, version FROM secrets WHERE {} = ?1 AND name = ?2",
            owner_column(kind)
        ),
        args![owner_id, name.as_str()],
        |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?.max(0) as u64)),
    )
    .map_err(VaultError::db("looking up a secret"))
}

fn check_precondition(
    scope: &Scope,
    name: &SecretName,
    current: Option<u64>,
    expected: Precondition,
) -> Result<(), VaultError> {
    let holds = match expected {
        Precondition::Any => true,
        Precondition::Version(v) => current == Some(v),
        Precondition::Absent => current.is_none(),
    };
    if holds {
        return Ok(());
    }
    Err(VaultError::VersionMismatch {
        name: name.to_string(),
        scope: scope.clone(),
        expected,
        current,
    })
}

fn owner_column(kind: ScopeKind) -> &'static str {
    match kind {
        ScopeKind::Bot => "bot_id",
        ScopeKind::Team => "team_id",
    }
}

fn owner(conn: &Conn, scope: &Scope) -> Result<(ScopeKind, i64), VaultError> {
    Ok(match scope {
        Scope::Bot(name) => (ScopeKind::Bot, bot_id(conn, name)?),
        Scope::Team(name) => (ScopeKind::Team, team_id(conn, name)?),
    })
}

pub(crate) fn team_id(conn: &Conn, name: &str) -> Result<i64, VaultError> {
    // An invalid name cannot exist; saying so also keeps raw input out of
    // the not-found message.
    validate_entity_name("team", name)?;
    conn.query_opt("SELECT id FROM teams WHERE name = ?1", args![name], |r| {
        r.get(0)
    })
    .map_err(VaultError::db("looking up a team"))?
    .ok_or_else(|| VaultError::TeamNotFound(name.to_owned()))
}

fn bot_id(conn: &Conn, name: &str) -> Result<i64, VaultError> {
    bot_and_team_id(conn, name).map(|(bot, _)| bot)
}

pub(crate) fn bot_and_team_id(conn: &Conn, name: &str) -> Result<(i64, i64), VaultError> {
    validate_entity_name("bot", name)?;
    conn.query_opt(
        "SELECT id, team_id FROM bots WHERE name = ?1",
        args![name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(VaultError::db("looking up a bot"))?
    .ok_or_else(|| VaultError::BotNotFound(name.to_owned()))
}

/// Begins a vault write. SQLite's `BEGIN IMMEDIATE` takes the file's write
/// lock; on PostgreSQL an advisory lock does the same for every node, so a
/// check and the write it allows (a version, a name not yet taken) cannot
/// be overtaken by another node's write.
pub(crate) fn begin_write(conn: &Conn) -> Result<Tx<'_>, VaultError> {
    let tx = conn
        .begin(Begin::Immediate)
        .map_err(VaultError::db("starting a transaction"))?;
    if tx.backend() == crate::db::Backend::Postgres {
        tx.execute("SELECT pg_advisory_xact_lock(?1)", args![VAULT_WRITE_LOCK])
            .map_err(VaultError::db("starting a transaction"))?;
    }
    Ok(tx)
}

/// The advisory lock of vault writes on PostgreSQL.
const VAULT_WRITE_LOCK: i64 = 0x6e61_726b_696d_0002;
