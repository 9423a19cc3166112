//! Host implementations of the `narakim:extension` interfaces, one per
//! interface, on the invocation's state.

use std::sync::{Arc, Mutex};

use wasmtime::component::Resource;

use super::Invocation;
use super::bindings::{v1, v2};
use super::guard::Bound;
use super::inject::Credentials;
use crate::vault::{ResolveError, SecretResolver};

/// Why a secret was not handed over, before it is lowered into the
/// version of the interface the guest was built against.
enum Refused {
    NotDeclared(String),
    NotConfigured(String),
    Unavailable(String),
}

impl From<Refused> for v1::narakim::extension0_1_0::secrets::SecretError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::NotDeclared(n) => Self::NotDeclared(n),
            Refused::NotConfigured(n) => Self::NotConfigured(n),
            Refused::Unavailable(n) => Self::Unavailable(n),
        }
    }
}

impl From<Refused> for v2::narakim::extension0_2_0::types::SecretError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::NotDeclared(n) => Self::NotDeclared(n),
            Refused::NotConfigured(n) => Self::NotConfigured(n),
            Refused::Unavailable(n) => Self::Unavailable(n),
        }
    }
}

/// `secrets.get` and `credentials.get`: declared names only, read from the
/// execution's guard (decrypted once per execution, or kept from the bot's
/// last one), which holds the only host copy of each value.
pub(crate) struct SecretsHost {
    resolver: Arc<dyn SecretResolver>,
    /// What the node declared (its plan), where each placeholder may be
    /// substituted, and the hosts each value may go to.
    bound: Bound,
    /// Placeholders issued, shared with the invocation's egress, which
    /// substitutes them.
    issued: Arc<Mutex<Credentials>>,
    /// Names of the secrets read so far, in either form (a few: a list).
    read: Vec<String>,
}

/// A credential the guest holds: a name and a placeholder, never a value.
pub struct Credential {
    name: String,
    placeholder: String,
}

impl SecretsHost {
    pub(crate) fn new(
        resolver: Arc<dyn SecretResolver>,
        bound: Bound,
        issued: Arc<Mutex<Credentials>>,
    ) -> Self {
        SecretsHost {
            resolver,
            bound,
            issued,
            read: Vec::new(),
        }
    }

    /// The value of a declared secret, for the host's own use.
    fn open(&mut self, name: &str) -> Result<crate::vault::SecretValue, Refused> {
        if !self.bound.plan().declared.contains(name) {
            return Err(Refused::NotDeclared(name.to_owned()));
        }
        self.read_value(name)
    }

    /// The value of `name`, recorded as read; whether it was declared is
    /// the caller's to check.
    fn read_value(&mut self, name: &str) -> Result<crate::vault::SecretValue, Refused> {
        match self.resolver.resolve(name) {
            Ok(value) => {
                if !self.read.iter().any(|r| r == name) {
                    self.read.push(name.to_owned());
                }
                Ok(value)
            }
            Err(ResolveError::NotConfigured { .. }) => Err(Refused::NotConfigured(name.to_owned())),
            Err(ResolveError::Undecryptable { .. }) => Err(Refused::Unavailable(name.to_owned())),
        }
    }

    /// The plaintext for the guest. The copy lowered into guest memory is
    /// the guest's to keep; the resolver's copy is wiped when dropped here.
    fn reveal(&mut self, name: &str) -> Result<String, Refused> {
        self.open(name).map(|value| value.expose().to_owned())
    }

    /// A fresh placeholder for a declared secret, registered with the
    /// invocation's egress. One lookup of the node's rule for it: this is
    /// on every invocation's path.
    fn credential(&mut self, name: String) -> Result<Credential, Refused> {
        let Some(rule) = self.bound.plan().credentials.get(name.as_str()) else {
            return Err(Refused::NotDeclared(name));
        };
        let (mine, injection) = (rule.hosts.clone(), rule.injection.clone());
        let value = self.read_value(&name)?;
        let hosts = self.bound.narrowed(&name, &mine);
        let placeholder = self.issued.lock().unwrap_or_else(|e| e.into_inner()).issue(
            &name,
            value.into_zeroizing(),
            hosts,
            injection,
        );
        Ok(Credential { name, placeholder })
    }

    /// HMAC-SHA256 of `message` keyed by the secret's value.
    fn hmac(&mut self, name: &str, message: &[u8]) -> Result<Vec<u8>, Refused> {
        use hmac::{Hmac, Mac};
        let value = self.open(name)?;
        let mut mac =
            <Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(value.expose().as_bytes())
                .expect("HMAC takes a key of any length");
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    /// Names of the secrets read, sorted.
    pub(crate) fn finish(mut self) -> Vec<String> {
        self.read.sort();
        self.read
    }
}

impl v1::narakim::extension0_1_0::secrets::Host for Invocation {
    fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<String, v1::narakim::extension0_1_0::secrets::SecretError>> {
        Ok(self.secrets.reveal(&name).map_err(Into::into))
    }
}

impl v2::narakim::extension0_2_0::secrets::Host for Invocation {
    fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<String, v2::narakim::extension0_2_0::types::SecretError>> {
        Ok(self.secrets.reveal(&name).map_err(Into::into))
    }
}

impl v2::narakim::extension0_2_0::credentials::Host for Invocation {
    fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<
        Result<Resource<Credential>, v2::narakim::extension0_2_0::types::SecretError>,
    > {
        match self.secrets.credential(name) {
            Ok(credential) => Ok(Ok(self.table.push(credential)?)),
            Err(refused) => Ok(Err(refused.into())),
        }
    }
}

impl v2::narakim::extension0_2_0::credentials::HostCredential for Invocation {
    fn placeholder(&mut self, this: Resource<Credential>) -> wasmtime::Result<String> {
        Ok(self.table.get(&this)?.placeholder.clone())
    }

    fn hosts(&mut self, this: Resource<Credential>) -> wasmtime::Result<Vec<String>> {
        let name = &self.table.get(&this)?.name;
        Ok(self.secrets.bound.hosts(name).to_vec())
    }

    fn hmac_sha256(
        &mut self,
        this: Resource<Credential>,
        message: Vec<u8>,
    ) -> wasmtime::Result<Vec<u8>> {
        let name = self.table.get(&this)?.name.clone();
        // Declared and configured when it was issued; a failure now (the
        // record cannot be opened) traps rather than answering wrongly.
        self.secrets
            .hmac(&name, &message)
            .map_err(|_| wasmtime::format_err!("secret {name} cannot be opened"))
    }

    fn drop(&mut self, this: Resource<Credential>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
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

    fn log(&mut self, level: &'static str, message: String) {
        let cost = message.len() + LOG_ENTRY_COST;
        if self.entries.len() >= self.max_entries || self.bytes + cost > self.limit {
            self.dropped += 1;
            return;
        }
        self.bytes += cost;
        self.entries.push((level, message));
    }
}

/// One `log` implementation for both versions of the interface, whose
/// `level` enums are distinct types with the same cases.
macro_rules! log_host {
    ($($log:ident)::+) => {
        impl $($log)::+::Host for Invocation {
            fn log(&mut self, level: $($log)::+::Level, message: String) -> wasmtime::Result<()> {
                use $($log)::+::Level;
                let level = match level {
                    Level::Trace => "trace",
                    Level::Debug => "debug",
                    Level::Info => "info",
                    Level::Warn => "warn",
                    Level::Error => "error",
                };
                self.logs.log(level, message);
                Ok(())
            }
        }
    };
}

log_host!(v1::narakim::extension0_1_0::log);
log_host!(v2::narakim::extension0_2_0::log);

impl v1::narakim::extension0_1_0::types::Host for Invocation {}
impl v2::narakim::extension0_2_0::types::Host for Invocation {}

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
