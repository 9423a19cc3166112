//! What can go wrong in the vault, each variant saying what happened and how
//! to fix it. No variant ever carries a secret value.

use std::path::PathBuf;

use super::scope::Scope;

/// Input the vault refuses before anything is stored.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(
        "invalid secret name \"{name}\": names are 1 to 128 characters of A-Z, 0-9 and _, starting with a letter (for example DISCORD_BOT_TOKEN)"
    )]
    SecretName { name: String },

    #[error(
        "invalid {kind} name \"{name}\": use 1 to 64 characters of letters, digits, '.', '_' and '-', starting with a letter or digit"
    )]
    EntityName { kind: &'static str, name: String },

    #[error(
        "the value is {len} bytes; secrets must be at least 8 bytes, because a shorter value cannot be scrubbed from logs reliably"
    )]
    ValueTooShort { len: usize },

    #[error("the value is {len} bytes; secrets may be at most 65536 bytes (64 KiB)")]
    ValueTooLong { len: usize },

    #[error("the value contains a NUL byte; secrets must be text without NUL bytes")]
    ValueHasNul,

    #[error("the value is not valid UTF-8; secrets must be UTF-8 text")]
    ValueNotUtf8,
}

/// Why the vault could not be opened, read or changed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Input(#[from] InputError),

    #[error(
        "no vault at {}: run `narakim init` to create one, or point --data-dir (NARAKIM_DATA_DIR) at an existing vault", data_dir.display()
    )]
    NotInitialized { data_dir: PathBuf },

    #[error(
        "{} is not a narakim vault ({reason}); point --data-dir (NARAKIM_DATA_DIR) at a vault, or run `narakim init` in an empty directory", path.display()
    )]
    NotAVault { path: PathBuf, reason: String },

    #[error(
        "the vault at {} uses schema version {found}, but this narakim understands up to {supported}; upgrade narakim", path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error(
        "missing master key: {} does not exist. Restore the vault's key there, or point --key-file (NARAKIM_KEY_FILE) or NARAKIM_MASTER_KEY at it. Without it the secrets cannot be decrypted", path.display()
    )]
    KeyMissing { path: PathBuf },

    #[error(
        "the vault at {} exists but its master key {} does not; `narakim init` will not make a new key for an existing vault, because the stored secrets could never be decrypted with it. Restore the key, or point --key-file (NARAKIM_KEY_FILE) or NARAKIM_MASTER_KEY at it", data_dir.display(), key.display()
    )]
    VaultWithoutKey { data_dir: PathBuf, key: PathBuf },

    #[error(
        "a master key already exists at {} and `narakim init` never overwrites a key. To create a new vault with a new key, choose another --key-file; to reuse that key, restore the vault it belongs to", path.display()
    )]
    KeyExists { path: PathBuf },

    #[error(
        "master key file {} is accessible by group or others (mode {mode:03o}); only its owner may read it: fix it with `chmod 600 {}`", path.display(), path.display()
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },

    #[error(
        "master key file {} is malformed: {reason}. Restore the vault's key file from your backup, or point --key-file (NARAKIM_KEY_FILE) at the right file", path.display()
    )]
    KeyFileMalformed { path: PathBuf, reason: String },

    #[error(
        "NARAKIM_MASTER_KEY is malformed: {reason}; it must be the base64 of the vault's 32-byte master key"
    )]
    KeyEnvMalformed { reason: String },

    #[error(
        "both a key file ({}) and NARAKIM_MASTER_KEY are set; unset one so it is clear which key opens the vault", path.display()
    )]
    KeySourceConflict { path: PathBuf },

    #[error(
        "the master key file {} is inside the data directory {}; keep the key in another directory so a copy of the database never carries its key (the default is $XDG_CONFIG_HOME/narakim/master.key)", key.display(), data_dir.display()
    )]
    KeyBesideDatabase { key: PathBuf, data_dir: PathBuf },

    #[error(
        "wrong vault: this master key belongs to vault {key_vault}, but the vault at {} is {vault}; point --key-file at that vault's key", data_dir.display()
    )]
    WrongVault {
        key_vault: String,
        vault: String,
        data_dir: PathBuf,
    },

    #[error(
        "wrong key: this is the vault's previous master key (key id {key_id}), replaced by `narakim key rotate`; use the current key (key id {current})"
    )]
    StaleKey { key_id: String, current: String },

    #[error(
        "wrong key: the vault at {} is sealed with master key {expected}, but the key given is {got}; point --key-file (NARAKIM_KEY_FILE) or NARAKIM_MASTER_KEY at the vault's key", data_dir.display()
    )]
    WrongKey {
        expected: String,
        got: String,
        data_dir: PathBuf,
    },

    #[error("team \"{0}\" does not exist; `narakim team list` shows the teams there are")]
    TeamNotFound(String),

    #[error("bot \"{0}\" does not exist; `narakim bot list` shows the bots there are")]
    BotNotFound(String),

    #[error(
        "a token needs at least one capability; give them with --can (for example --can secrets:write)"
    )]
    TokenWithoutCapabilities,

    #[error(
        "the token would expire before it is created; give --expires a duration such as 30d, or `never`"
    )]
    TokenExpiresInThePast,

    #[error("bot \"{bot}\" is not in team \"{team}\"; `narakim bot list` shows each bot's team")]
    BotNotInTeam { bot: String, team: String },

    #[error("no token \"{0}\"; `narakim token list` shows the tokens there are")]
    TokenNotFound(String),

    #[error(
        "the stored token {id} is not valid ({reason}): the database was changed outside narakim; revoke it with `narakim token revoke {id}`"
    )]
    TokenRowInvalid { id: String, reason: String },

    #[error("team \"{0}\" already exists")]
    TeamExists(String),

    #[error("bot \"{0}\" already exists (bot names are unique across the vault)")]
    BotExists(String),

    #[error(
        "team \"{team}\" still has {} bot(s): {}; delete them first with `narakim bot delete NAME`", bots.len(), bots.join(", ")
    )]
    TeamHasBots { team: String, bots: Vec<String> },

    #[error("no secret {name} in {scope}; see `narakim secret list {}`", scope.flag())]
    SecretNotFound { name: String, scope: Scope },

    #[error("secret {name} in {scope} {}; nothing was changed: list the secrets to see the current version, then retry", version_mismatch(*.expected, *.current))]
    VersionMismatch {
        name: String,
        scope: Scope,
        expected: super::secrets::Precondition,
        current: Option<u64>,
    },

    #[error("{0}")]
    PreconditionUnsupported(&'static str),

    #[error("secret {name} in {scope} {fault}")]
    Undecryptable {
        name: String,
        scope: Scope,
        fault: RecordFault,
    },

    #[error(
        "cannot compare against the stored values: the fingerprint of {} does not match its record (the database was changed outside narakim), so a config holding that value would go unnoticed; run `narakim key verify`, then store each again with `narakim secret set`", secrets.join(", ")
    )]
    FingerprintMismatch { secrets: Vec<String> },

    #[error(
        "key rotation needs the master key in a file, but it came from NARAKIM_MASTER_KEY; rotate with --key-file pointing at a file holding that key, then store the new key where NARAKIM_MASTER_KEY comes from"
    )]
    RotateNeedsKeyFile,

    #[error(
        "cannot rotate the master key: {} secret(s) cannot be carried to a new key: {}. Overwrite them with `narakim secret set` or delete them, then rotate again; nothing was changed", failed.len(), failed.join("; ")
    )]
    RotationBlocked { failed: Vec<String> },

    #[error(
        "the previous master key from an earlier rotation is still at {} because that rotation could not be verified (see the note above); fix what the note names, run `narakim key verify`, then rotate again", backup.display()
    )]
    RotationPending { backup: PathBuf },

    #[error("{} secret(s) failed verification after key rotation: {}; the previous key is kept at {}", failed.len(), failed.join("; "), backup.display())]
    RotationUnverified {
        failed: Vec<String>,
        backup: PathBuf,
    },

    #[error(
        "{} exists but is not a directory; choose another --data-dir (NARAKIM_DATA_DIR) or --key-file location", path.display()
    )]
    NotADirectory { path: PathBuf },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "another narakim initialised this database at the same moment; run `narakim init` again to check that its key opens the vault"
    )]
    AlreadyInitialized,

    #[error(
        "the master key was rotated by another narakim while this change was being made; nothing was changed: try again"
    )]
    KeyRotatedMeanwhile,

    #[error("AWS KMS: {0}")]
    Kms(super::kms::KmsError),

    #[error(
        "this vault's master key is kept by AWS KMS, not in a key file: give --kms-key-id (NARAKIM_KMS_KEY_ID) with the KMS key it was initialised with, and AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    )]
    KeyInKms,

    #[error(
        "this vault's master key is not kept by AWS KMS (it was initialised with a key file or NARAKIM_MASTER_KEY); drop --kms-key-id and give its key with --key-file or NARAKIM_MASTER_KEY"
    )]
    KeyNotInKms,

    #[error("database error while {context}: {source}")]
    Db {
        context: &'static str,
        #[source]
        source: crate::db::DbError,
    },

    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

impl VaultError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    pub(crate) fn db<E: Into<crate::db::DbError>>(context: &'static str) -> impl FnOnce(E) -> Self {
        move |source| Self::Db {
            context,
            source: source.into(),
        }
    }
}

/// Why a bot's snapshot could not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "secret {name} is not configured for this bot or its team; set it with `narakim secret set {name} --bot BOT` (or --team TEAM)"
    )]
    NotConfigured { name: String },

    #[error("secret {name} ({scope}) {fault}")]
    Undecryptable {
        name: String,
        scope: Scope,
        fault: RecordFault,
    },
}

/// Why a stored record cannot be used. Says what happened and what to do;
/// never carries a value. Displayed after the secret's name and scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFault {
    /// The record does not authenticate, or is not a record at all: its
    /// bytes were altered, or it was copied from another bot, team or name.
    Altered,
    /// Its key id is the vault's previous master key: a record restored
    /// from a backup taken before the last rotation.
    PreviousKey,
    /// Its key id is neither the current nor the previous master key.
    OtherKey,
    /// It authenticates, but holds something the vault never stores (the
    /// reason, such as "shorter than 8 bytes"; never the value).
    ForbiddenValue(&'static str),
}

impl std::fmt::Display for RecordFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordFault::Altered => f.write_str(
                "cannot be decrypted: its record was altered, copied from another bot, team or name, or sealed with another key",
            ),
            RecordFault::PreviousKey => f.write_str(
                "cannot be decrypted: it was sealed with the previous master key, so it was restored from a backup taken before the last key rotation; store it again with `narakim secret set`",
            ),
            RecordFault::OtherKey => f.write_str(
                "cannot be decrypted: it was sealed with a master key that is neither this vault's current nor its previous key (copied from another vault?)",
            ),
            RecordFault::ForbiddenValue(why) => write!(
                f,
                "decrypted, but holds a value the vault would never store ({why}), so it was written outside narakim; overwrite it with `narakim secret set` or delete it"
            ),
        }
    }
}

fn version_mismatch(expected: super::secrets::Precondition, current: Option<u64>) -> String {
    use super::secrets::Precondition;
    match (expected, current) {
        (Precondition::Absent, Some(v)) => format!("already exists (version {v})"),
        (Precondition::Version(want), Some(v)) => {
            format!("is at version {v}, not the expected version {want}")
        }
        (Precondition::Version(want), None) => {
            format!("does not exist (expected version {want})")
        }
        (_, _) => "does not meet the precondition".to_owned(),
    }
}
