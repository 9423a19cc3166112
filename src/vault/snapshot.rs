//! Per-execution snapshots of a bot's secrets, and the resolver trait the
//! runtime reads them through.
//!
//! A snapshot copies the bot's sealed records (bot scope, then team scope)
//! in one read, so an execution sees one consistent set of values: an
//! overwrite or a key rotation after the snapshot is taken affects the next
//! execution, never one in flight. Nothing is decrypted until a name is
//! resolved, and each resolve decrypts afresh into a [`SecretValue`] the
//! caller drops when done.
//!
//! A bot's snapshot also keeps the team secrets its bot secrets override:
//! they are never resolved, but [`SecretSnapshot::all_values`] includes
//! them, so a scrubber built from it hides every value the bot or its team
//! holds.
//!
//! Taking a snapshot of an unchanged database reuses the sealed records read
//! last time (ciphertext only: the same bytes the database file holds). Any
//! write, by this connection (`total_changes`) or another
//! (`PRAGMA data_version`), and any key rotation, makes the next snapshot
//! read afresh.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, Weak};

use super::Vault;
use super::error::{ResolveError, VaultError};
use super::key::{KeyId, MasterKey};
use super::record::{self, Identity};
use super::scope::{Scope, ScopeKind};
use super::secrets::{bot_and_team_id, team_id};
use super::value::SecretValue;

/// Turns a secret name into its plaintext for one execution.
///
/// The vault implements it with [`BotSecrets`]; the runtime depends only on
/// this trait.
pub trait SecretResolver: Send + Sync {
    /// Decrypts `name`. Errors name the secret, never a value.
    fn resolve(&self, name: &str) -> Result<SecretValue, ResolveError>;

    /// Whether `name` is configured, without decrypting anything.
    fn contains(&self, name: &str) -> bool;
}

struct Sealed {
    kind: ScopeKind,
    owner_id: i64,
    owner: String,
    record: Vec<u8>,
}

/// The sealed records of one scope, read at one instant.
#[derive(Default)]
struct Records {
    /// What each name resolves to (bot secret over team secret).
    effective: HashMap<String, Sealed>,
    /// Team secrets a bot secret of the same name overrides.
    shadowed: Vec<(String, Sealed)>,
}

/// The sealed secrets a bot (or a team) can see, taken at one instant.
pub struct SecretSnapshot {
    scope: Scope,
    key: Arc<MasterKey>,
    /// The vault's previous master key, to name records restored from a
    /// backup taken before the last rotation.
    previous: Option<KeyId>,
    entries: Arc<Records>,
}

/// Where the vault database stood at one instant: any later commit, by
/// this connection or another, gives a different stamp. Cached snapshots
/// are keyed by it, and so is anything else a caller derives from the
/// vault's contents (the service's log scrubber).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStamp {
    /// SQLite: changes committed by other connections (`PRAGMA
    /// data_version`). PostgreSQL: the vault's change counter, which every
    /// write of a secret, bot, team or the key metadata bumps (by trigger),
    /// from any node.
    data_version: i64,
    /// SQLite: rows changed by this connection.
    total_changes: u64,
}

/// Most scopes whose sealed records are kept; past it the cache starts over.
const CACHED_SCOPES: usize = 4096;

/// Sealed records per scope, each with the stamp and key they were read
/// under.
#[derive(Default)]
pub(super) struct SnapshotCache {
    entries: Mutex<HashMap<Scope, Cached>>,
}

impl SnapshotCache {
    /// Drops what is kept for `scope` (a deleted bot): no later snapshot
    /// can be of those records, so whatever is keyed by their
    /// [`Generation`] can go at once.
    pub(super) fn forget(&self, scope: &Scope) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(scope);
    }
}

/// One scope's sealed records, and the stamp and key they were read under.
type Cached = (ChangeStamp, Arc<MasterKey>, Arc<Records>);

impl std::fmt::Debug for SecretSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.entries.effective.keys().collect();
        names.sort();
        f.debug_struct("SecretSnapshot")
            .field("scope", &self.scope)
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

/// Which sealed records a snapshot holds, without holding them: a later
/// snapshot [`is_of`](Generation::is_of) the same generation when nothing
/// was written and no key rotated in between. Holds no ciphertext and no
/// key (weak references only: the records and the key are dropped, and the
/// key wiped, as usual; their addresses alone stay reserved, so a new
/// generation can never be mistaken for an old one).
#[derive(Clone)]
pub struct Generation {
    scope: Scope,
    records: Weak<Records>,
    key: Weak<MasterKey>,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("scope", &self.scope)
            .field("live", &self.is_live())
            .finish()
    }
}

impl Generation {
    /// Whether `snapshot` holds exactly the records this generation names,
    /// sealed under the same key.
    pub fn is_of(&self, snapshot: &SecretSnapshot) -> bool {
        self.scope == snapshot.scope
            && Weak::ptr_eq(&self.records, &Arc::downgrade(&snapshot.entries))
            && Weak::ptr_eq(&self.key, &Arc::downgrade(&snapshot.key))
    }

    /// Whether some snapshot (or the vault's cache) still holds these
    /// records. Once not, no snapshot of this generation can be taken again.
    pub fn is_live(&self) -> bool {
        self.records.strong_count() > 0 && self.key.strong_count() > 0
    }
}

impl SecretSnapshot {
    /// Which records this snapshot holds (see [`Generation`]).
    pub fn generation(&self) -> Generation {
        Generation {
            scope: self.scope.clone(),
            records: Arc::downgrade(&self.entries),
            key: Arc::downgrade(&self.key),
        }
    }

    /// Whose secrets these are.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Configured names, each with the scope it resolves to.
    pub fn names(&self) -> impl Iterator<Item = (&str, Scope)> {
        self.entries
            .effective
            .iter()
            .map(|(name, s)| (name.as_str(), scope_of(s)))
    }

    /// Number of names it resolves.
    pub fn len(&self) -> usize {
        self.entries.effective.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.effective.is_empty()
    }

    /// Decrypts every record the snapshot holds, sorted by name, each with
    /// its name: what each name resolves to, and for a bot also the team
    /// secrets its bot secrets override (after the bot's value of the same
    /// name). For scrubbing, which must hide every value the bot or its
    /// team holds, not only those an extension receives. Fails on the first
    /// record that does not open, naming it.
    pub fn all_values(&self) -> Result<Vec<(String, SecretValue)>, ResolveError> {
        let mut records: Vec<(&str, &Sealed)> = self
            .entries
            .effective
            .iter()
            .chain(self.entries.shadowed.iter().map(|(n, s)| (n, s)))
            .map(|(n, s)| (n.as_str(), s))
            .collect();
        // Within a name the bot's record (the effective one) comes first.
        records.sort_by_key(|(name, s)| (*name, s.kind));
        records
            .into_iter()
            .map(|(name, sealed)| Ok((name.to_owned(), self.open(name, sealed)?)))
            .collect()
    }

    fn open(&self, name: &str, sealed: &Sealed) -> Result<SecretValue, ResolveError> {
        let identity = Identity {
            kind: sealed.kind,
            owner_id: sealed.owner_id,
            name,
        };
        record::open(&self.key, identity, &sealed.record).map_err(|e| ResolveError::Undecryptable {
            name: name.to_owned(),
            scope: scope_of(sealed),
            fault: e.fault(&sealed.record, self.previous),
        })
    }
}

fn scope_of(s: &Sealed) -> Scope {
    match s.kind {
        ScopeKind::Bot => Scope::Bot(s.owner.clone()),
        ScopeKind::Team => Scope::Team(s.owner.clone()),
    }
}

impl SecretResolver for SecretSnapshot {
    fn resolve(&self, name: &str) -> Result<SecretValue, ResolveError> {
        let sealed =
            self.entries
                .effective
                .get(name)
                .ok_or_else(|| ResolveError::NotConfigured {
                    name: name.to_owned(),
                })?;
        self.open(name, sealed)
    }

    fn contains(&self, name: &str) -> bool {
        self.entries.effective.contains_key(name)
    }
}

impl Vault {
    /// Where the database stands now (see [`ChangeStamp`]). Reads no table.
    pub fn change_stamp(&self) -> Result<ChangeStamp, VaultError> {
        const READING: &str = "reading the vault's change counter";
        match self.conn.sqlite() {
            Some(conn) => Ok(ChangeStamp {
                data_version: conn
                    .prepare_cached("PRAGMA data_version")
                    .and_then(|mut s| s.query_row([], |r| r.get(0)))
                    .map_err(VaultError::db(READING))?,
                total_changes: conn.total_changes(),
            }),
            None => Ok(ChangeStamp {
                data_version: self
                    .conn
                    .query_one(
                        "SELECT counter FROM vault_changes WHERE one = 1",
                        crate::args![],
                        |r| r.get(0),
                    )
                    .map_err(VaultError::db(READING))?,
                total_changes: 0,
            }),
        }
    }

    /// Every stored secret's row id and version, in id order: it differs
    /// whenever a value was set, overwritten or deleted, and stays the same
    /// across writes that change no value (audit entries, a key rotation).
    pub fn secret_versions(&self) -> Result<Vec<(i64, i64)>, VaultError> {
        self.conn
            .query_map(
                "SELECT id, version FROM secrets ORDER BY id",
                crate::args![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(VaultError::db("listing secret versions"))
    }

    /// Takes a snapshot of `bot`'s secrets: its bot secrets, and its team's
    /// secrets for names it does not override.
    pub fn snapshot_for_bot(&mut self, bot: &str) -> Result<SecretSnapshot, VaultError> {
        self.snapshot(&Scope::Bot(bot.to_owned()))
    }

    /// Takes a snapshot of the secrets `scope` resolves: for a bot, its own
    /// and its team's (bot first); for a team, the team secrets.
    pub fn snapshot(&mut self, scope: &Scope) -> Result<SecretSnapshot, VaultError> {
        let mut stamp = self.change_stamp()?;
        let cached = self
            .snapshots
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(scope)
            .is_some_and(|(at, _, _)| *at == stamp);
        if !cached {
            // Something changed: perhaps the key, rotated elsewhere.
            let before = self.key.id();
            self.refresh_key()?;
            if self.key.id() != before {
                stamp = self.change_stamp()?;
            }
        }
        let mut cache = self
            .snapshots
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((at, key, entries)) = cache.get(scope)
            && *at == stamp
            && Arc::ptr_eq(key, &self.key)
        {
            return Ok(SecretSnapshot {
                scope: scope.clone(),
                key: self.key.clone(),
                previous: self.previous_key_id,
                entries: entries.clone(),
            });
        }
        let entries = Arc::new(self.read_sealed(scope)?);
        if cache.len() >= CACHED_SCOPES {
            cache.clear();
        }
        cache.insert(scope.clone(), (stamp, self.key.clone(), entries.clone()));
        Ok(SecretSnapshot {
            scope: scope.clone(),
            key: self.key.clone(),
            previous: self.previous_key_id,
            entries,
        })
    }

    /// Reads the sealed records `scope` resolves, in one query.
    fn read_sealed(&self, scope: &Scope) -> Result<Records, VaultError> {
        let (bot_id, team_id) = match scope {
            Scope::Bot(bot) => {
                let (bot_id, team_id) = bot_and_team_id(&self.conn, bot)?;
                (Some(bot_id), team_id)
            }
            Scope::Team(team) => (None, team_id(&self.conn, team)?),
        };
        let mut entries = Records::default();
        let rows = self
            .conn
            .query_map(
                "SELECT s.name, s.record, s.bot_id, t.name
                 FROM secrets s JOIN teams t ON t.id = ?2
                 WHERE s.bot_id = ?1 OR s.team_id = ?2",
                crate::args![bot_id, team_id],
                |r| {
                    Ok((
                        r.get::<String>(0)?,
                        r.get::<Vec<u8>>(1)?,
                        r.get::<Option<i64>>(2)?.is_some(),
                        r.get::<String>(3)?,
                    ))
                },
            )
            .map_err(VaultError::db("taking a snapshot"))?;
        for (name, record, is_bot, team) in rows {
            let sealed = match (is_bot, bot_id) {
                (true, Some(bot_id)) => Sealed {
                    kind: ScopeKind::Bot,
                    owner_id: bot_id,
                    owner: scope.owner().to_owned(),
                    record,
                },
                _ => Sealed {
                    kind: ScopeKind::Team,
                    owner_id: team_id,
                    owner: team,
                    record,
                },
            };
            // A bot secret overrides the team secret of the same name; the
            // team's is kept aside, for scrubbing only.
            // (The unique indexes allow one of each per name.)
            match entries.effective.entry(name) {
                Entry::Vacant(slot) => {
                    slot.insert(sealed);
                }
                Entry::Occupied(mut slot) => {
                    let team = if is_bot {
                        std::mem::replace(slot.get_mut(), sealed)
                    } else {
                        sealed
                    };
                    entries.shadowed.push((slot.key().clone(), team));
                }
            }
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::SecretName;

    fn value(v: &str) -> SecretValue {
        SecretValue::new(v.to_owned()).unwrap()
    }

    #[test]
    fn all_values_include_the_team_secrets_a_bot_overrides() {
        let (_tmp, config) = crate::vault::scratch();
        let mut vault = Vault::open(config).unwrap();
        vault.create_team("ops").unwrap();
        vault.create_bot("greeter", "ops").unwrap();
        let (team, bot) = (Scope::Team("ops".into()), Scope::Bot("greeter".into()));
        let webhook = SecretName::new("WEBHOOK_SECRET").unwrap();
        let team_only = SecretName::new("TEAM_ONLY").unwrap();
        vault
            .set_secret(&team, &webhook, &value("team-webhook-value"))
            .unwrap();
        vault
            .set_secret(&team, &team_only, &value("team-only-value"))
            .unwrap();
        vault
            .set_secret(&bot, &webhook, &value("bot-webhook-value"))
            .unwrap();
        // The second snapshot comes from the cache.
        for _ in 0..2 {
            let snapshot = vault.snapshot_for_bot("greeter").unwrap();
            assert_eq!(snapshot.len(), 2);
            assert!(
                snapshot
                    .resolve("WEBHOOK_SECRET")
                    .unwrap()
                    .matches(b"bot-webhook-value")
            );
            let all = snapshot.all_values().unwrap();
            let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["TEAM_ONLY", "WEBHOOK_SECRET", "WEBHOOK_SECRET"]);
            assert!(all[0].1.matches(b"team-only-value"));
            assert!(all[1].1.matches(b"bot-webhook-value"));
            assert!(all[2].1.matches(b"team-webhook-value"));
        }
        let team_snapshot = vault.snapshot(&team).unwrap();
        assert_eq!(team_snapshot.all_values().unwrap().len(), 2);
    }
}
