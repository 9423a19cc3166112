//! Write [narakim](https://github.com/narakim/narakim) extensions in Rust.
//!
//! An extension is a WebAssembly component (target `wasm32-wasip2`) of the
//! `narakim:extension/extension` world. This crate holds the bindings of that
//! world, so an author writes only the logic:
//!
//! - implement [`Extension`]: a [`Description`] (what the extension is, which
//!   secrets it needs and where they may be sent) and a `run` function from a
//!   typed config and input to a typed output;
//! - export it with [`export_extension!`].
//!
//! Inside `run`, use [`credential`] for declared secrets: it gives a
//! placeholder that the host replaces with the value on the way out, in
//! the places the description declares ([`Injection`]), so the extension
//! never holds the value. [`secret`] hands over the plaintext instead, for
//! protocols that need it inside the extension; an extension that calls it
//! is marked as one that reveals secrets. Then use the logging macros
//! ([`info!`], [`warn!`], …), [`http`] for outbound requests (with
//! [`http::send_with_retry`] for rate limits and
//! [`http::Response::error_for_status`] for clear API errors, with
//! [`http::StatusErrors`] for what an API's 403 means) and
//! [`template::render`] for `{{input.PATH}}` placeholders.
//!
//! ```no_run
//! use narakim_extension::http::{Method, Request};
//! use narakim_extension::{Description, Error, Extension, Injection, credential, export_extension, info};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Config {
//!     city: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Output {
//!     forecast: String,
//! }
//!
//! struct Weather;
//!
//! impl Extension for Weather {
//!     type Config = Config;
//!     type Input = serde_json::Value;
//!     type Output = Output;
//!
//!     fn describe() -> Description {
//!         Description::new("weather", "0.1.0", "Fetches a forecast")
//!             .credential(
//!                 "WEATHER_API_KEY",
//!                 &["api.weather.example"],
//!                 Injection::header("Authorization", "Bearer {}"),
//!             )
//!             .allowed_host("api.weather.example")
//!     }
//!
//!     fn run(config: Config, _input: serde_json::Value) -> Result<Output, Error> {
//!         let key = credential("WEATHER_API_KEY")?;
//!         info!("fetching the forecast for {}", config.city);
//!         let response = narakim_extension::http::send_with_retry(
//!             || {
//!                 Request::new(Method::Get, format!("https://api.weather.example/v1/{}", config.city))
//!                     .credential("Authorization", "Bearer {}", &key)
//!             },
//!             narakim_extension::http::DEFAULT_MAX_WAIT,
//!         )?;
//!         response.error_for_status(Some("WEATHER_API_KEY"))?;
//!         Ok(Output { forecast: response.text() })
//!     }
//! }
//!
//! export_extension!(Weather);
//! ```

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod http;
pub mod log;
mod secret;
pub mod template;

pub use secret::{Credential, Secret, credential, secret};
// Authors derive with these; re-exported so versions always match.
pub use serde;
pub use serde_json;

/// The generated bindings of the `narakim:extension/extension` world
/// (wit-bindgen), including `wasi` for anyone who needs raw wasi:http.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "narakim:extension/extension@0.2.0",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_narakim_world",
        default_bindings_module: "narakim_extension::bindings",
    });
}

/// An error for the operator. Its message ends up in the execution record
/// (after scrubbing): say what went wrong and how to fix it, and never put a
/// secret value in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }

    /// Prefixes the message: `context: message`.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self(format!("{context}: {}", self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

impl From<http::HttpError> for Error {
    fn from(error: http::HttpError) -> Self {
        Self(error.to_string())
    }
}

/// A secret the extension always needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredSecret {
    /// `^[A-Z][A-Z0-9_]{0,127}$`, for example `DISCORD_BOT_TOKEN`.
    pub name: String,
    /// Hosts the secret may be sent to; empty: any allowed host.
    pub hosts: Vec<String>,
    /// Where the host may put its value into a request.
    pub injection: Injection,
}

/// Where the host may put a secret's value into an outgoing request, in
/// place of its credential's placeholder. Anywhere else, a placeholder
/// makes the host refuse the request.
///
/// ```
/// # use narakim_extension::Injection;
/// let discord = Injection::header("Authorization", "Bot {}");
/// let webhook_token = Injection::default().in_path();
/// assert!(webhook_token.path && discord.headers.len() == 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Injection {
    /// Header names and formats: `("Authorization", "Bot {}")`. `{}` is
    /// where the value goes; `{/pointer}` stands for a config field's text
    /// and `{/pointer|default}` for `default` when it is absent.
    pub headers: Vec<(String, String)>,
    /// Anywhere in the path (as a percent-encoded segment).
    pub path: bool,
    /// Anywhere in the query (percent-encoded).
    pub query: bool,
    /// Anywhere in the body (escaped for a JSON or form body).
    pub body: bool,
}

impl Injection {
    /// In header `name`, as `format` (`{}` once, where the value goes).
    pub fn header(name: &str, format: &str) -> Self {
        Self::default().and_header(name, format)
    }

    /// In one more header.
    pub fn and_header(mut self, name: &str, format: &str) -> Self {
        self.headers.push((name.to_owned(), format.to_owned()));
        self
    }

    /// Also in the path.
    pub fn in_path(mut self) -> Self {
        self.path = true;
        self
    }

    /// Also in the query string.
    pub fn in_query(mut self) -> Self {
        self.query = true;
        self
    }

    /// Also in the body.
    pub fn in_body(mut self) -> Self {
        self.body = true;
        self
    }
}

/// A config field whose value is the name of a secret the user chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretField {
    /// JSON pointer into the node config, for example `/auth/secret`.
    pub pointer: String,
    /// Hosts the named secret may be sent to; empty: any allowed host.
    pub hosts: Vec<String>,
    /// Where the host may put its value into a request.
    pub injection: Injection,
}

/// The static self-description of an extension, built with chained calls:
///
/// ```
/// # use narakim_extension::Description;
/// let d = Description::new("discord-send-message", "0.1.0", "Sends a message to a Discord channel")
///     .required_secret("DISCORD_BOT_TOKEN", &["discord.com"])
///     .allowed_host("discord.com");
/// assert_eq!(d.required_secrets[0].hosts, ["discord.com"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description {
    /// The extension's name, for example `discord-send-message`.
    pub name: String,
    /// Its version, for example `0.1.0`.
    pub version: String,
    /// One line for the operator.
    pub description: String,
    /// Secrets it always needs, each with the hosts it may be sent to.
    pub required_secrets: Vec<RequiredSecret>,
    /// Config fields (JSON pointers) naming a secret the user chose.
    pub secret_fields: Vec<SecretField>,
    /// Hosts outbound requests may go to.
    pub allowed_hosts: Vec<String>,
    /// JSON pointers to config fields holding a URL whose host is allowed
    /// for that invocation.
    pub host_fields: Vec<String>,
}

fn owned(hosts: &[&str]) -> Vec<String> {
    hosts.iter().map(|h| (*h).to_owned()).collect()
}

impl Description {
    /// A description with a name, version and one-line description, and no
    /// secrets or hosts yet.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            ..Self::default()
        }
    }

    /// Declares a secret the extension always uses, sent only to `hosts`
    /// (empty: any allowed host), and put into requests by the host where
    /// `injection` says: read it with [`credential`](crate::credential).
    pub fn credential(mut self, name: &str, hosts: &[&str], injection: Injection) -> Self {
        self.required_secrets.push(RequiredSecret {
            name: name.to_owned(),
            hosts: owned(hosts),
            injection,
        });
        self
    }

    /// Declares a secret the extension always reads as plaintext (with
    /// [`secret`](crate::secret)), sent only to `hosts` (empty: any allowed
    /// host). Prefer [`credential`](Self::credential).
    pub fn required_secret(self, name: &str, hosts: &[&str]) -> Self {
        self.credential(name, hosts, Injection::default())
    }

    /// Declares a config field (JSON pointer) whose value names a secret,
    /// sent only to `hosts` (empty: any allowed host) and put into requests
    /// where `injection` says.
    pub fn credential_field(mut self, pointer: &str, hosts: &[&str], injection: Injection) -> Self {
        self.secret_fields.push(SecretField {
            pointer: pointer.to_owned(),
            hosts: owned(hosts),
            injection,
        });
        self
    }

    /// Declares a config field (JSON pointer) whose value names a secret
    /// read as plaintext; that secret may be sent only to `hosts` (empty:
    /// any allowed host). Prefer [`credential_field`](Self::credential_field).
    pub fn secret_field(self, pointer: &str, hosts: &[&str]) -> Self {
        self.credential_field(pointer, hosts, Injection::default())
    }

    /// Allows outbound requests to `host`.
    pub fn allowed_host(mut self, host: &str) -> Self {
        self.allowed_hosts.push(host.to_owned());
        self
    }

    /// Declares a config field (JSON pointer) holding a URL whose host is
    /// allowed for that invocation.
    pub fn host_field(mut self, pointer: &str) -> Self {
        self.host_fields.push(pointer.to_owned());
        self
    }
}

impl From<Description> for bindings::Description {
    fn from(d: Description) -> Self {
        use bindings::narakim::extension0_2_0::types;
        let rule = |i: Injection| types::Injection {
            headers: i
                .headers
                .into_iter()
                .map(|(name, format)| types::HeaderFormat { name, format })
                .collect(),
            path: i.path,
            query: i.query,
            body: i.body,
        };
        Self {
            name: d.name,
            version: d.version,
            description: d.description,
            required_secrets: d
                .required_secrets
                .into_iter()
                .map(|s| types::RequiredSecret {
                    name: s.name,
                    hosts: s.hosts,
                    injection: rule(s.injection),
                })
                .collect(),
            secret_fields: d
                .secret_fields
                .into_iter()
                .map(|s| types::SecretField {
                    pointer: s.pointer,
                    hosts: s.hosts,
                    injection: rule(s.injection),
                })
                .collect(),
            allowed_hosts: d.allowed_hosts,
            host_fields: d.host_fields,
        }
    }
}

/// What an extension implements. Export it with [`export_extension!`].
pub trait Extension {
    /// The node's config, parsed from JSON. A parse failure is reported as
    /// `NAME: config: …` (for example ``missing field `channel_id` ``).
    type Config: DeserializeOwned;
    /// The node's input, parsed from JSON (`serde_json::Value` takes anything).
    type Input: DeserializeOwned;
    /// The output, serialized to JSON.
    type Output: Serialize;

    /// The static self-description. Must not read secrets, log or make
    /// requests: the host calls it with no imports available.
    fn describe() -> Description;

    /// Runs one node invocation.
    fn run(config: Self::Config, input: Self::Input) -> Result<Self::Output, Error>;
}

/// Glue between the generated bindings and [`Extension`]; used by
/// [`export_extension!`].
#[doc(hidden)]
pub mod __glue {
    use super::*;

    pub fn describe<E: Extension>() -> bindings::Description {
        E::describe().into()
    }

    fn parse<T: DeserializeOwned>(what: &str, json: &str) -> Result<T, String> {
        let json = if json.trim().is_empty() { "null" } else { json };
        serde_json::from_str(json).map_err(|e| format!("{what}: {e}"))
    }

    pub fn run<E: Extension>(config: &str, input: &str) -> Result<String, String> {
        let named = |message: String| format!("{}: {message}", E::describe().name);
        let config: E::Config = parse("config", config).map_err(named)?;
        let input: E::Input = parse("input", input).map_err(named)?;
        let output = E::run(config, input).map_err(|e| e.0)?;
        serde_json::to_string(&output).map_err(|e| named(format!("output: {e}")))
    }
}

/// Exports a type implementing [`Extension`] as the component's `describe`
/// and `run`. Use it once, at the crate root of a `cdylib` crate:
///
/// ```ignore
/// narakim_extension::export_extension!(MyExtension);
/// ```
#[macro_export]
macro_rules! export_extension {
    ($ty:ty) => {
        const _: () = {
            struct __NarakimExtension;

            impl $crate::bindings::Guest for __NarakimExtension {
                fn describe() -> $crate::bindings::Description {
                    $crate::__glue::describe::<$ty>()
                }

                fn run(
                    config: ::std::string::String,
                    input: ::std::string::String,
                ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                    $crate::__glue::run::<$ty>(&config, &input)
                }
            }

            $crate::bindings::__export_narakim_world!(
                __NarakimExtension with_types_in $crate::bindings
            );
        };
    };
}
