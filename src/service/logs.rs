//! The service's log: `tracing` events, one line each (`--log-format
//! text|json`, level from `RUST_LOG`, `info` by default), written to stderr
//! only after the line has passed through a scrubber of every secret value
//! in the vault.
//!
//! What is logged is chosen so that nothing secret should reach it: a
//! request line holds the method, the route, the status, the time taken
//! and the token id, never a body, a header value, a cookie or the query.
//! The scrubber is the second wall, for the line nobody foresaw.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, RwLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use zeroize::Zeroize;

use crate::redact::Scrubber;
use crate::vault::{ChangeStamp, ResolveError, Scope, SecretValue, Vault, VaultError};

/// How lines are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Why the log scrubber could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LogScrubberError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(
        "a stored secret cannot be decrypted, so the log could not be scrubbed of it ({0}); run `narakim key verify`"
    )]
    Undecryptable(#[from] ResolveError),
}

/// The scrubber every log line passes through, shared by the log writer
/// and the handlers that change secrets (which [`rebuild`](Self::rebuild)
/// it). Values set by another process (the CLI, beside a running `serve`)
/// are learnt by [`refresh`](Self::refresh).
#[derive(Debug, Clone, Default)]
pub struct LogScrubber(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    scrubber: RwLock<Arc<Scrubber>>,
    /// What it was built from: the secrets' versions, and the vault's
    /// stamp when they were last compared.
    built_from: Mutex<Option<BuiltFrom>>,
}

/// The vault's stamp when last compared, and the secrets' versions.
type BuiltFrom = (ChangeStamp, Vec<(i64, i64)>);

impl Default for Shared {
    fn default() -> Self {
        Shared {
            scrubber: RwLock::new(Scrubber::empty()),
            built_from: Mutex::new(None),
        }
    }
}

impl LogScrubber {
    /// A scrubber of every value stored in `vault`, bot and team.
    pub fn of_vault(vault: &mut Vault) -> Result<LogScrubber, LogScrubberError> {
        let scrubber = LogScrubber::default();
        scrubber.rebuild(vault)?;
        Ok(scrubber)
    }

    /// Rebuilds from what `vault` holds now. Fails closed: on an error the
    /// previous scrubber stays, and the caller reports it.
    pub fn rebuild(&self, vault: &mut Vault) -> Result<(), LogScrubberError> {
        let built_from = (vault.change_stamp()?, vault.secret_versions()?);
        self.build(vault)?;
        *self.built_from() = Some(built_from);
        Ok(())
    }

    /// Rebuilds if a value changed since the last build, whoever changed
    /// it. An unchanged vault costs one `PRAGMA data_version`; a write that
    /// changed no value (an audit entry, a token's last use) adds one read
    /// of the secrets' versions.
    pub fn refresh(&self, vault: &mut Vault) -> Result<(), LogScrubberError> {
        let stamp = vault.change_stamp()?;
        let mut built_from = self.built_from();
        if built_from.as_ref().is_some_and(|(seen, _)| *seen == stamp) {
            return Ok(());
        }
        let versions = vault.secret_versions()?;
        let changed = built_from
            .as_ref()
            .is_none_or(|(_, built)| *built != versions);
        // Recorded before the build: a build that fails is reported once
        // per change, not retried (and reported) on every request until
        // the next one.
        *built_from = Some((stamp, versions));
        drop(built_from);
        if changed { self.build(vault) } else { Ok(()) }
    }

    /// Replaces the scrubber with one of every value `vault` holds now.
    fn build(&self, vault: &mut Vault) -> Result<(), LogScrubberError> {
        let mut values: Vec<(String, SecretValue)> = Vec::new();
        for team in vault.list_teams()? {
            values.extend(vault.snapshot(&Scope::Team(team.name))?.all_values()?);
        }
        for bot in vault.list_bots()? {
            // Holds the team's values again too: a repeat costs nothing.
            values.extend(vault.snapshot(&Scope::Bot(bot.name))?.all_values()?);
        }
        let scrubber = Scrubber::new(values.iter().map(|(n, v)| (n.as_str(), v)));
        *self.0.scrubber.write().unwrap_or_else(|e| e.into_inner()) = scrubber;
        Ok(())
    }

    fn built_from(&self) -> std::sync::MutexGuard<'_, Option<BuiltFrom>> {
        self.0.built_from.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn current(&self) -> Arc<Scrubber> {
        self.0
            .scrubber
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Installs the global `tracing` subscriber writing scrubbed lines to
/// stderr. Call once per process.
pub fn install(format: LogFormat, scrubber: LogScrubber) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(ScrubbedStderr(scrubber))
        .with_ansi(false)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Hands `tracing` one buffer per event, scrubbed and written on drop.
#[derive(Debug, Clone)]
struct ScrubbedStderr(LogScrubber);

impl<'a> MakeWriter<'a> for ScrubbedStderr {
    type Writer = ScrubbedLine;
    fn make_writer(&'a self) -> ScrubbedLine {
        ScrubbedLine {
            scrubber: self.0.current(),
            line: Vec::with_capacity(256),
        }
    }
}

/// One event's text on its way to stderr.
struct ScrubbedLine {
    scrubber: Arc<Scrubber>,
    line: Vec<u8>,
}

impl Write for ScrubbedLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ScrubbedLine {
    fn drop(&mut self) {
        let clean = self.scrubber.scrub(&self.line);
        self.line.zeroize();
        let _ = io::stderr().lock().write_all(&clean);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::SecretName;

    fn set(vault: &mut Vault, bot: &str, name: &str, value: &str) {
        vault
            .set_secret(
                &Scope::Bot(bot.into()),
                &SecretName::new(name).unwrap(),
                &SecretValue::new(value.to_owned()).unwrap(),
            )
            .unwrap();
    }

    fn hides(scrubber: &LogScrubber, value: &str) -> bool {
        let line = format!("a line holding {value} once");
        !String::from_utf8_lossy(&scrubber.current().scrub(line.as_bytes())).contains(value)
    }

    #[test]
    fn refresh_learns_values_another_connection_set_and_only_rebuilds_on_a_value_change() {
        let (_tmp, config) = crate::vault::scratch();
        // `serve`'s connection, and the CLI's in another process.
        let mut serve = Vault::open(config.clone()).unwrap();
        let mut cli = Vault::open(config).unwrap();
        cli.create_team("ops").unwrap();
        cli.create_bot("greeter", "ops").unwrap();
        set(&mut cli, "greeter", "FIRST", "first-value-0123456789");
        let scrubber = LogScrubber::of_vault(&mut serve).unwrap();
        assert!(hides(&scrubber, "first-value-0123456789"));

        set(&mut cli, "greeter", "SECOND", "second-value-0123456789");
        assert!(
            !hides(&scrubber, "second-value-0123456789"),
            "nothing is learnt before a refresh"
        );
        scrubber.refresh(&mut serve).unwrap();
        assert!(hides(&scrubber, "second-value-0123456789"));

        // An overwrite is a new value; the old one stays hidden only while
        // a scope still holds it.
        set(&mut cli, "greeter", "SECOND", "rotated-value-0123456789");
        scrubber.refresh(&mut serve).unwrap();
        assert!(hides(&scrubber, "rotated-value-0123456789"));

        // A write that changes no value (an audit entry) keeps the scrubber.
        let before = scrubber.current();
        cli.audit_action("bot.pause", None, None, "").unwrap();
        scrubber.refresh(&mut serve).unwrap();
        assert!(
            Arc::ptr_eq(&before, &scrubber.current()),
            "rebuilt needlessly"
        );
        // Nor does an unchanged vault.
        scrubber.refresh(&mut serve).unwrap();
        assert!(Arc::ptr_eq(&before, &scrubber.current()));
    }
}
