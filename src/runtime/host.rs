//! Host implementations of the `narakim:extension` interfaces, one per
//! interface, on the invocation's state.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use super::Invocation;
use super::bindings::narakim::extension::{log, secrets, types};
use crate::vault::{ResolveError, SecretResolver};

/// `secrets.get`: declared names only, decrypted on first use, kept in
/// zeroizing memory until the invocation ends.
pub(crate) struct SecretsHost {
    resolver: Arc<dyn SecretResolver>,
    declared: HashSet<String>,
    /// Shared with the egress check, which must know what was handed out.
    revealed: Arc<Mutex<super::Revealed>>,
    read: BTreeSet<String>,
}

impl SecretsHost {
    pub(crate) fn new(
        resolver: Arc<dyn SecretResolver>,
        declared: HashSet<String>,
        revealed: Arc<Mutex<super::Revealed>>,
    ) -> Self {
        SecretsHost {
            resolver,
            declared,
            revealed,
            read: BTreeSet::new(),
        }
    }

    /// The plaintext for the guest. The copy lowered into guest memory is
    /// the guest's to keep; the host keeps its own only inside the zeroizing
    /// `SecretValue`.
    fn get(&mut self, name: &str) -> Result<String, secrets::SecretError> {
        if !self.declared.contains(name) {
            return Err(secrets::SecretError::NotDeclared(name.to_owned()));
        }
        let mut revealed = self.revealed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, value)) = revealed.iter().find(|(n, _)| n == name) {
            return Ok(value.expose().to_owned());
        }
        match self.resolver.resolve(name) {
            Ok(value) => {
                self.read.insert(name.to_owned());
                let plain = value.expose().to_owned();
                revealed.push((name.to_owned(), value));
                Ok(plain)
            }
            Err(ResolveError::NotConfigured { .. }) => {
                Err(secrets::SecretError::NotConfigured(name.to_owned()))
            }
            Err(ResolveError::Undecryptable { .. }) => {
                Err(secrets::SecretError::Unavailable(name.to_owned()))
            }
        }
    }

    /// The values handed out (for the scrubber) and the names read.
    pub(crate) fn finish(self) -> (super::Revealed, Vec<String>) {
        let revealed =
            std::mem::take(&mut *self.revealed.lock().unwrap_or_else(|e| e.into_inner()));
        (revealed, self.read.into_iter().collect())
    }
}

impl secrets::Host for Invocation {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, secrets::SecretError>> {
        Ok(self.secrets.get(&name))
    }
}

/// Log calls, kept raw (bounded) until the scrubber sees them.
pub(crate) struct LogSink {
    entries: Vec<(String, String)>,
    bytes: usize,
    limit: usize,
    dropped: usize,
}

impl LogSink {
    pub(crate) fn new(limit: usize) -> Self {
        LogSink {
            entries: Vec::new(),
            bytes: 0,
            limit,
            dropped: 0,
        }
    }

    pub(crate) fn take(self) -> Vec<(String, String)> {
        let mut entries = self.entries;
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
        if sink.bytes + message.len() > sink.limit {
            sink.dropped += 1;
            return Ok(());
        }
        sink.bytes += message.len();
        let level = match level {
            log::Level::Trace => "trace",
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        };
        sink.entries.push((level.to_owned(), message));
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
