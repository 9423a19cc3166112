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
use std::sync::{Arc, RwLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use zeroize::Zeroize;

use crate::redact::Scrubber;
use crate::vault::{ResolveError, Scope, SecretValue, Vault, VaultError};

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
/// it).
#[derive(Debug, Clone)]
pub struct LogScrubber(Arc<RwLock<Arc<Scrubber>>>);

impl Default for LogScrubber {
    fn default() -> Self {
        LogScrubber(Arc::new(RwLock::new(Scrubber::empty())))
    }
}

impl LogScrubber {
    /// A scrubber of every value stored in `vault`, bot and team.
    pub fn of_vault(vault: &Vault) -> Result<LogScrubber, LogScrubberError> {
        let scrubber = LogScrubber::default();
        scrubber.rebuild(vault)?;
        Ok(scrubber)
    }

    /// Rebuilds from what `vault` holds now. Fails closed: on an error the
    /// previous scrubber stays, and the caller reports it.
    pub fn rebuild(&self, vault: &Vault) -> Result<(), LogScrubberError> {
        let mut values: Vec<(String, SecretValue)> = Vec::new();
        for team in vault.list_teams()? {
            values.extend(vault.snapshot(&Scope::Team(team.name))?.all_values()?);
        }
        for bot in vault.list_bots()? {
            // Holds the team's values again too: a repeat costs nothing.
            values.extend(vault.snapshot(&Scope::Bot(bot.name))?.all_values()?);
        }
        let scrubber = Scrubber::new(values.iter().map(|(n, v)| (n.as_str(), v)));
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = scrubber;
        Ok(())
    }

    pub fn current(&self) -> Arc<Scrubber> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
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
