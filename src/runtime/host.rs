//! Host implementations of the `narakim:extension` interfaces, one per
//! interface, on the invocation's state.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use super::Invocation;
use super::bindings::narakim::extension::{log, secrets, types};
use crate::vault::{ResolveError, SecretResolver};

/// `secrets.get`: declared names only, read from the execution's guard
/// (decrypted once per execution, or kept from the bot's last one), which
/// holds the only host copy of each value.
pub(crate) struct SecretsHost {
    resolver: Arc<dyn SecretResolver>,
    declared: HashSet<String>,
    /// Names of the secrets read so far.
    read: BTreeSet<String>,
}

impl SecretsHost {
    pub(crate) fn new(resolver: Arc<dyn SecretResolver>, declared: HashSet<String>) -> Self {
        SecretsHost {
            resolver,
            declared,
            read: BTreeSet::new(),
        }
    }

    /// The plaintext for the guest. The copy lowered into guest memory is
    /// the guest's to keep; the resolver's copy is wiped when dropped here.
    fn get(&mut self, name: &str) -> Result<String, secrets::SecretError> {
        if !self.declared.contains(name) {
            return Err(secrets::SecretError::NotDeclared(name.to_owned()));
        }
        match self.resolver.resolve(name) {
            Ok(value) => {
                self.read.insert(name.to_owned());
                Ok(value.expose().to_owned())
            }
            Err(ResolveError::NotConfigured { .. }) => {
                Err(secrets::SecretError::NotConfigured(name.to_owned()))
            }
            Err(ResolveError::Undecryptable { .. }) => {
                Err(secrets::SecretError::Unavailable(name.to_owned()))
            }
        }
    }

    /// Names of the secrets read, sorted.
    pub(crate) fn finish(self) -> Vec<String> {
        self.read.into_iter().collect()
    }
}

impl secrets::Host for Invocation {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, secrets::SecretError>> {
        Ok(self.secrets.get(&name))
    }
}

/// Log calls, kept raw until the scrubber sees them, bounded by count and
/// by bytes (each call costs its text plus [`LOG_ENTRY_COST`], so empty
/// calls are not free).
pub(crate) struct LogSink {
    entries: Vec<(&'static str, String)>,
    bytes: usize,
    limit: usize,
    max_entries: usize,
    dropped: usize,
}

/// Bytes each kept log call counts beyond its text: what the host spends
/// on it, roughly.
pub(crate) const LOG_ENTRY_COST: usize = 64;

impl LogSink {
    pub(crate) fn new(limit: usize, max_entries: usize) -> Self {
        LogSink {
            entries: Vec::new(),
            bytes: 0,
            limit,
            max_entries,
            dropped: 0,
        }
    }

    pub(crate) fn take(self) -> Vec<(String, String)> {
        let mut entries: Vec<(String, String)> = self
            .entries
            .into_iter()
            .map(|(level, message)| (level.to_owned(), message))
            .collect();
        if self.dropped > 0 {
            entries.push((
                "warn".into(),
                format!(
                    "[narakim: {} more log calls dropped past the capture limit]",
                    self.dropped
                ),
            ));
        }
        entries
    }
}

impl log::Host for Invocation {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let sink = &mut self.logs;
        let cost = message.len() + LOG_ENTRY_COST;
        if sink.entries.len() >= sink.max_entries || sink.bytes + cost > sink.limit {
            sink.dropped += 1;
            return Ok(());
        }
        sink.bytes += cost;
        let level = match level {
            log::Level::Trace => "trace",
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        };
        sink.entries.push((level, message));
        Ok(())
    }
}

impl types::Host for Invocation {}

/// Outbound HTTP for `describe`, which has no business making requests.
pub(crate) struct DenyEgress;

impl wasmtime_wasi_http::WasiHttpHooks for DenyEgress {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
