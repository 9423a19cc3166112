//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! Every request goes through the host's egress policy: the host must be one
//! of the extension's allowed hosts (or the host of a declared URL field), and
//! a request carrying a secret may go only to the hosts that secret is bound
//! to. The host sets the timeouts.
//!
//! ```no_run
//! use narakim_extension::http::{Method, Request};
//! # fn main() -> Result<(), narakim_extension::Error> {
//! let response = Request::new(Method::Post, "https://api.example.test/v1/things")
//!     .header("User-Agent", "my-extension/0.1.0")
//!     .json(&serde_json::json!({"name": "thing"}))
//!     .send()?;
//! response.error_for_status(None)?;
//! let created: serde_json::Value = response.json()?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use zeroize::Zeroize;

use crate::bindings::wasi;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::{Credential, Error, Secret};

/// Responses larger than this are refused (16 MiB).
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// How long [`send_with_retry`] waits for a rate limit at most, by default.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);

/// Request bodies are written in chunks of this size (the most
/// `blocking-write-and-flush` takes at once).
const CHUNK: usize = 4096;

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    /// Parses `GET`, `post`, … (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            _ => return None,
        })
    }

    /// The method's name, upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
        }
    }

    fn to_wasi(self) -> WasiMethod {
        match self {
            Self::Get => WasiMethod::Get,
            Self::Head => WasiMethod::Head,
            Self::Post => WasiMethod::Post,
            Self::Put => WasiMethod::Put,
            Self::Patch => WasiMethod::Patch,
            Self::Delete => WasiMethod::Delete,
            Self::Options => WasiMethod::Options,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request got no response. Messages name the host, never a header
/// value or body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL or a header cannot be sent.
    InvalidRequest(String),
    /// The host's egress policy refused the request.
    Denied { host: String },
    /// No answer in time (connect, first byte or between bytes).
    Timeout { host: String },
    /// The name does not resolve.
    Dns { host: String },
    /// Nothing listens there, or it cannot be reached.
    Unreachable { host: String, reason: String },
    /// TLS failed.
    Tls { host: String, reason: String },
    /// The response body is over [`MAX_RESPONSE_BYTES`].
    TooLarge { host: String },
    /// Anything else.
    Failed { host: String, reason: String },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRequest(reason) => write!(f, "invalid request: {reason}"),
            Self::Denied { host } => write!(
                f,
                "the host refused the request to {host} (not an allowed host, or it carries a secret not bound to that host)"
            ),
            Self::Timeout { host } => write!(f, "{host} did not answer in time"),
            Self::Dns { host } => write!(f, "cannot resolve {host} (DNS lookup failed)"),
            Self::Unreachable { host, reason } => write!(f, "cannot connect to {host}: {reason}"),
            Self::Tls { host, reason } => write!(f, "TLS with {host} failed: {reason}"),
            Self::TooLarge { host } => write!(
                f,
                "the response from {host} is larger than {} MiB",
                MAX_RESPONSE_BYTES >> 20
            ),
            Self::Failed { host, reason } => write!(f, "the request to {host} failed: {reason}"),
        }
    }
}

impl std::error::Error for HttpError {}

fn map_error_code(host: &str, code: &ErrorCode) -> HttpError {
    let host = host.to_owned();
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied { host },
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => HttpError::Timeout { host },
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => HttpError::Dns { host },
        ErrorCode::ConnectionRefused => HttpError::Unreachable {
            host,
            reason: "connection refused (nothing listens there)".into(),
        },
        ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable => HttpError::Unreachable {
            host,
            reason: "destination unreachable".into(),
        },
        ErrorCode::ConnectionTerminated | ErrorCode::HttpResponseIncomplete => HttpError::Failed {
            host,
            reason: "the connection closed before the response was complete".into(),
        },
        ErrorCode::TlsProtocolError => HttpError::Tls {
            host,
            reason: "protocol error".into(),
        },
        ErrorCode::TlsCertificateError => HttpError::Tls {
            host,
            reason: "certificate not trusted".into(),
        },
        ErrorCode::TlsAlertReceived(alert) => HttpError::Tls {
            host,
            reason: format!(
                "alert received{}",
                alert
                    .alert_message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        },
        ErrorCode::InternalError(Some(message)) => HttpError::Failed {
            host,
            reason: message.clone(),
        },
        other => HttpError::Failed {
            host,
            reason: format!("{other:?}"),
        },
    }
}

/// The parts of a URL a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `true` for `https`.
    pub https: bool,
    /// `host[:port]`.
    pub authority: String,
    /// The host alone (no port, no brackets around an IPv6 address).
    pub host: String,
    /// Path and query, at least `/`.
    pub path_and_query: String,
}

impl Url {
    /// Parses an absolute `http://` or `https://` URL. User info
    /// (`user:pass@`) is refused (put credentials in a header); a fragment is
    /// dropped.
    pub fn parse(url: &str) -> Result<Self, HttpError> {
        let invalid = |why: &str| HttpError::InvalidRequest(format!("URL {url:?}: {why}"));
        let (https, rest) = if let Some(rest) = strip_prefix_ci(url, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ci(url, "http://") {
            (false, rest)
        } else {
            return Err(invalid("must start with http:// or https://"));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(invalid(
                "user info (`user:password@`) is not supported; send credentials in a header",
            ));
        }
        if authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid("the host contains whitespace"));
        }
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default()
        } else {
            authority.split(':').next().unwrap_or_default()
        };
        if host.is_empty() {
            return Err(invalid("has no host"));
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("the path contains whitespace; percent-encode it"));
        }
        let path_and_query = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Self {
            https,
            authority: authority.to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            path_and_query,
        })
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()))
    .then(|| &s[prefix.len()..])
}

/// An outgoing request, built with chained calls and sent with
/// [`Request::send`]. Header values and the body are wiped when it is dropped.
#[derive(Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    error: Option<String>,
    verbose: bool,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values and the body may carry secrets: names only.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        for (_, value) in &mut self.headers {
            value.zeroize();
        }
        self.body.zeroize();
    }
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            error: None,
            verbose: false,
        }
    }

    /// Logs the request line, every header as sent and the response status
    /// at `debug` level, like `curl -v`. Header values go to the log as
    /// they are: narakim scrubs every secret value out of logs before anyone
    /// sees them (an `Authorization` header shows as
    /// `Bot [REDACTED:DISCORD_BOT_TOKEN]`), which is what makes this safe.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Adds a header (names are case-insensitive; adding one twice sends both).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `header: scheme secret` (`Authorization: Bearer …`); an empty
    /// scheme sends the secret bare.
    pub fn auth(self, header: &str, scheme: &str, secret: &Secret) -> Self {
        let value = if scheme.is_empty() {
            secret.expose().to_owned()
        } else {
            format!("{scheme} {}", secret.expose())
        };
        self.header(header, value)
    }

    /// Adds header `name` holding `credential`'s placeholder as `format`
    /// (`{}` where it goes: `"Bot {}"`). The host substitutes the value
    /// when the description declared this header with this format for the
    /// secret, and refuses the request otherwise.
    pub fn credential(self, name: &str, format: &str, credential: &Credential) -> Self {
        let value = format.replacen("{}", &credential.placeholder(), 1);
        self.header(name, value.trim())
    }

    /// Adds `Authorization: Bearer SECRET`.
    pub fn bearer(self, secret: &Secret) -> Self {
        self.auth("Authorization", "Bearer", secret)
    }

    /// Sets a JSON body, and `Content-Type: application/json` unless a
    /// content type is already set.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => self.body = bytes,
            Err(e) => self.error = Some(format!("the JSON body cannot be serialized: {e}")),
        }
        if self.header_value("content-type").is_none() {
            self.headers
                .push(("Content-Type".into(), "application/json".into()));
        }
        self
    }

    /// Sets the body as it is.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sends the request and reads the whole response. Any status is a
    /// response; see [`Response::error_for_status`] and [`send_with_retry`].
    pub fn send(&self) -> Result<Response, HttpError> {
        if let Some(error) = &self.error {
            return Err(HttpError::InvalidRequest(error.clone()));
        }
        let url = Url::parse(&self.url)?;
        let host = url.host.clone();
        if self.verbose {
            crate::debug!("> {} {}", self.method, self.url);
            for (name, value) in &self.headers {
                crate::debug!("> {name}: {value}");
            }
        }
        let invalid =
            |what: String| HttpError::InvalidRequest(format!("{} {}: {what}", self.method, host));

        let fields = Fields::new();
        for (name, value) in &self.headers {
            fields
                .append(name, value.as_bytes())
                .map_err(|e| invalid(format!("header `{name}` cannot be sent ({e:?})")))?;
        }
        let needs_length = !self.body.is_empty()
            || matches!(self.method, Method::Post | Method::Put | Method::Patch);
        if needs_length && self.header_value("content-length").is_none() {
            fields
                .append("content-length", self.body.len().to_string().as_bytes())
                .map_err(|e| invalid(format!("content-length ({e:?})")))?;
        }

        let request = OutgoingRequest::new(fields);
        request
            .set_method(&self.method.to_wasi())
            .map_err(|()| invalid("the method is refused".into()))?;
        request
            .set_scheme(Some(if url.https {
                &Scheme::Https
            } else {
                &Scheme::Http
            }))
            .map_err(|()| invalid("the scheme is refused".into()))?;
        request
            .set_authority(Some(&url.authority))
            .map_err(|()| invalid(format!("the authority {:?} is refused", url.authority)))?;
        request
            .set_path_with_query(Some(&url.path_and_query))
            .map_err(|()| invalid("the path is refused".into()))?;
        let outgoing = request
            .body()
            .map_err(|()| invalid("the body was already taken".into()))?;

        // Hand the request over first, so the host consumes the body while it
        // is written (a large body would otherwise fill the pipe and block).
        let future = wasi::http::outgoing_handler::handle(request, None)
            .map_err(|code| map_error_code(&host, &code))?;

        let write_failed = |e: StreamError| match e {
            StreamError::LastOperationFailed(e) => match wasi::http::types::http_error_code(&e) {
                Some(code) => map_error_code(&host, &code),
                None => HttpError::Failed {
                    host: host.clone(),
                    reason: e.to_debug_string(),
                },
            },
            StreamError::Closed => HttpError::Failed {
                host: host.clone(),
                reason: "the connection closed while the request body was sent".into(),
            },
        };
        {
            let stream = outgoing
                .write()
                .map_err(|()| invalid("the body stream was already taken".into()))?;
            for chunk in self.body.chunks(CHUNK) {
                if let Err(e) = stream.blocking_write_and_flush(chunk) {
                    // The response (or its error) says more than the write.
                    drop(stream);
                    drop(outgoing);
                    return match wait(&future, &host) {
                        Err(e) => Err(e),
                        Ok(_) => Err(write_failed(e)),
                    };
                }
            }
        }
        OutgoingBody::finish(outgoing, None).map_err(|code| map_error_code(&host, &code))?;

        let response = wait(&future, &host)?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let body = response.consume().map_err(|()| HttpError::Failed {
            host: host.clone(),
            reason: "the response body was already taken".into(),
        })?;
        let mut bytes = Vec::new();
        {
            let stream = body.stream().map_err(|()| HttpError::Failed {
                host: host.clone(),
                reason: "the response stream was already taken".into(),
            })?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => {
                        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                            return Err(HttpError::TooLarge { host });
                        }
                        bytes.extend_from_slice(&chunk);
                    }
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(write_failed(e)),
                }
            }
        }
        drop(IncomingBody::finish(body));
        if self.verbose {
            crate::debug!("< {status} ({} bytes)", bytes.len());
        }
        Ok(Response {
            status,
            headers,
            body: bytes,
            host,
        })
    }
}

fn wait(
    future: &wasi::http::types::FutureIncomingResponse,
    host: &str,
) -> Result<wasi::http::types::IncomingResponse, HttpError> {
    let result = loop {
        if let Some(result) = future.get() {
            break result;
        }
        future.subscribe().block();
    };
    match result {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(map_error_code(host, &code)),
        Err(()) => Err(HttpError::Failed {
            host: host.to_owned(),
            reason: "the response was already taken".into(),
        }),
    }
}

/// A response, read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers in the order received; names as the host gives them (lower case).
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
    /// The host the request went to (as the extension named it), for messages.
    pub host: String,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `true` for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(format!(
                "{} answered HTTP {} with a body that is not the expected JSON: {e}",
                self.host, self.status
            ))
        })
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The API's own error message, if the body has one: JSON `message`
    /// (Discord, with its `errors` details), `error.message` (OpenRouter,
    /// OpenAI), `error` as a string, or a short plain-text body. At most
    /// about 300 characters.
    pub fn api_message(&self) -> Option<String> {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(json) => ApiError::from_json(&json).and_then(|e| e.message),
            Err(_) => {
                let text = self.text();
                let text = text.trim();
                let looks_like_markup = text.starts_with('<');
                if text.is_empty() || looks_like_markup {
                    return None;
                }
                Some(truncate(text, 300))
            }
        }
    }

    /// The API's own error (code, message, metadata), if the body is a JSON
    /// error; see [`ApiError::from_json`].
    pub fn api_error(&self) -> Option<ApiError> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|json| ApiError::from_json(&json))
    }

    /// `Ok` for 1xx–3xx; otherwise an error for the operator, as
    /// [`StatusErrors`] reads it with `secret` named and no API-specific
    /// reading of 403:
    ///
    /// - 401: the credentials were rejected; with `secret`, names the secret
    ///   to check and how to set it (never its value);
    /// - 403: forbidden, which for many APIs means a missing permission as
    ///   often as a wrong credential, so both are said;
    /// - 429: rate limited (use [`send_with_retry`] to wait once first);
    /// - 5xx: the service failed, with its short message if it gave one;
    /// - other 4xx: the request was refused, with the API's message.
    pub fn error_for_status(&self, secret: Option<&str>) -> Result<(), Error> {
        let errors = match secret {
            Some(name) => StatusErrors::new().secret(name),
            None => StatusErrors::new(),
        };
        self.check(&errors)
    }

    /// `Ok` for 1xx–3xx; otherwise the error `errors` makes of this status
    /// and the API's own error in the body.
    pub fn check(&self, errors: &StatusErrors<'_>) -> Result<(), Error> {
        errors.check(
            &self.host,
            self.status,
            self.api_error().as_ref(),
            retry_after(self),
        )
    }
}

/// An API's own error, read from a JSON error body: Discord's
/// `{"code": 50013, "message": "Missing Permissions"}`, or OpenRouter's
/// (and OpenAI's) `{"error": {"code": 403, "message": …, "metadata": {…}}}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiError {
    /// `code`, a number or a string, as text (`50013`, `invalid_api_key`).
    pub code: Option<String>,
    /// `message` (with Discord's `errors` details), at most about 300
    /// characters.
    pub message: Option<String>,
    /// `metadata` (OpenRouter): free-form details, such as moderation
    /// `reasons` and `flagged_input`.
    pub metadata: Option<Value>,
}

impl ApiError {
    /// Reads top-level `message`/`code`, else the `error` object's
    /// `code`/`message`/`metadata`, else `error` or `detail` as a string.
    /// `None` when there is neither a message nor a code.
    pub fn from_json(json: &Value) -> Option<Self> {
        let nested = json.get("error").filter(|e| e.is_object());
        let (source, message) = match json.get("message").and_then(Value::as_str) {
            Some(message) => (json, Some(message)),
            None => match nested {
                Some(error) => (error, error.get("message").and_then(Value::as_str)),
                None => (
                    json,
                    json.get("error")
                        .and_then(Value::as_str)
                        .or_else(|| json.get("detail").and_then(Value::as_str)),
                ),
            },
        };
        let code = source
            .get("code")
            .filter(|c| !c.is_null())
            .map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        let message = message.map(|m| {
            let mut m = m.to_owned();
            if let Some(errors) = json.get("errors").filter(|e| !e.is_null()) {
                m.push_str(&format!(" {errors}"));
            }
            truncate(m.trim(), 300)
        });
        if code.is_none() && message.is_none() {
            return None;
        }
        let metadata = source.get("metadata").filter(|m| !m.is_null()).cloned();
        Some(Self {
            code,
            message,
            metadata,
        })
    }

    /// The error from a JSON value that is the error object itself
    /// (OpenRouter's `choices[].error`: `{code, message, metadata}`).
    pub fn from_object(error: &Value) -> Option<Self> {
        Self::from_json(&serde_json::json!({ "error": error }))
    }

    /// `code` as a number, when it is one.
    pub fn code_number(&self) -> Option<u64> {
        self.code.as_deref().and_then(|c| c.parse().ok())
    }
}

/// `Missing Permissions (code 50013)`; `code 50013` without a message.
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.message, &self.code) {
            (Some(message), Some(code)) => write!(f, "{message} (code {code})"),
            (Some(message), None) => f.write_str(message),
            (None, Some(code)) => write!(f, "code {code}"),
            (None, None) => f.write_str("no message"),
        }
    }
}

type Explain<'a> = Box<dyn Fn(&ApiError) -> String + 'a>;

/// How an API's error statuses read to the operator. The default knows
/// nothing of the API; say what it knows with [`StatusErrors::secret`] and
/// [`StatusErrors::forbidden`]:
///
/// ```
/// # use narakim_extension::http::StatusErrors;
/// let errors = StatusErrors::new()
///     .secret("DISCORD_BOT_TOKEN")
///     .forbidden(|e| match e.code_number() {
///         Some(50013) => "the bot lacks a permission in that channel".into(),
///         _ => "the bot may not do this".into(),
///     });
/// let error = errors.check("discord.com", 403, None, None).unwrap_err();
/// assert!(error.message().starts_with("discord.com accepted the credentials but refused the request (HTTP 403)"));
/// ```
#[derive(Default)]
pub struct StatusErrors<'a> {
    secret: Option<&'a str>,
    forbidden: Option<Explain<'a>>,
}

impl<'a> StatusErrors<'a> {
    /// No secret named, 403 read as "a permission or the credentials".
    pub fn new() -> Self {
        Self::default()
    }

    /// The secret that authenticates the request: a 401 (and a 403 without
    /// [`StatusErrors::forbidden`]) names it and how to set it.
    pub fn secret(mut self, name: &'a str) -> Self {
        self.secret = Some(name);
        self
    }

    /// For an API whose 403 means the credentials worked but the request is
    /// not allowed (a permission, a moderation block): `explain` says why in
    /// the operator's terms, from the API's error; the API's own message and
    /// code are added after it.
    pub fn forbidden(mut self, explain: impl Fn(&ApiError) -> String + 'a) -> Self {
        self.forbidden = Some(Box::new(explain));
        self
    }

    /// `Ok` for a status below 400; otherwise the error for `status` from
    /// `host`, with the API's error `api` and, for 429, the wait it asked
    /// for. Also for errors an API reports inside a 200 (OpenRouter's
    /// `{"error": {"code": 403, …}}`).
    pub fn check(
        &self,
        host: &str,
        status: u16,
        api: Option<&ApiError>,
        retry_after: Option<f64>,
    ) -> Result<(), Error> {
        let said = |prefix: &str| {
            api.filter(|a| a.message.is_some())
                .map(|a| format!("{prefix}{}", a.message.as_deref().unwrap_or_default()))
                .unwrap_or_default()
        };
        // 403s are told apart by the API's code, so it is shown too.
        let said_with_code = |prefix: &str| api.map(|a| format!("{prefix}{a}")).unwrap_or_default();
        let set = |name: &str| format!("`narakim secret set {name} --bot BOT`");
        Err(Error::new(match status {
            0..=399 => return Ok(()),
            401 => match self.secret {
                Some(name) => format!(
                    "{host} rejected the credentials (HTTP 401): check secret {name} ({}){}",
                    set(name),
                    said(&format!("; {host} said: "))
                ),
                None => format!("{host} refused the request (HTTP 401){}", said(": ")),
            },
            403 => match (&self.forbidden, self.secret) {
                (Some(explain), _) => format!(
                    "{host} accepted the credentials but refused the request (HTTP 403): {}{}",
                    explain(api.unwrap_or(&ApiError::default())),
                    said_with_code(&format!("; {host} said: "))
                ),
                (None, Some(name)) => format!(
                    "{host} refused the request (HTTP 403 Forbidden): the credentials lack a \
                     permission for it, or are the wrong ones; check what secret {name} may do \
                     (replace it with {}){}",
                    set(name),
                    said_with_code(&format!("; {host} said: "))
                ),
                (None, None) => {
                    format!(
                        "{host} refused the request (HTTP 403){}",
                        said_with_code(": ")
                    )
                }
            },
            429 => format!(
                "rate limited by {host} (HTTP 429){}",
                retry_after
                    .map(|s| format!("; retry after {} s", secs(s)))
                    .unwrap_or_default()
            ),
            500.. => format!("{host} failed (HTTP {status}){}", said(": ")),
            _ => format!("{host} refused the request (HTTP {status}){}", said(": ")),
        }))
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// How long a 429 asks to wait, in seconds: Discord's JSON `retry_after`
/// (seconds, fractional), else the `Retry-After` header, in seconds or as
/// an HTTP-date (counted from the wall clock now; a date passed is 0).
pub fn retry_after(response: &Response) -> Option<f64> {
    retry_after_at(response, SystemTime::now())
}

fn retry_after_at(response: &Response, now: SystemTime) -> Option<f64> {
    let from_body = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|json| json.get("retry_after").and_then(Value::as_f64));
    from_body
        .or_else(|| {
            let value = response.header("retry-after")?.trim();
            value.parse::<f64>().ok().or_else(|| {
                let at = UNIX_EPOCH + Duration::from_secs(parse_http_date(value)?);
                Some(at.duration_since(now).map_or(0.0, |d| d.as_secs_f64()))
            })
        })
        .filter(|s| s.is_finite() && *s >= 0.0)
}

/// Seconds since the Unix epoch of an HTTP-date (RFC 9110 §5.6.7): the
/// IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, or the obsolete forms a
/// recipient must still accept, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`
/// and asctime `Sun Nov  6 08:49:37 1994`. `None` for anything else, or a
/// date before 1970.
pub fn parse_http_date(value: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = |name: &str| MONTHS.iter().position(|m| *m == name).map(|i| i as u32 + 1);
    let number = |s: &str, digits: std::ops::RangeInclusive<usize>| {
        (digits.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let tokens: Vec<&str> = value.split_ascii_whitespace().collect();
    let (year, month, day, time) = match tokens.as_slice() {
        // IMF-fixdate.
        [weekday, day, mon, year, time, "GMT"] if weekday.ends_with(',') => (
            number(year, 4..=4)?,
            month(mon)?,
            number(day, 2..=2)?,
            *time,
        ),
        // RFC 850: two-digit years, read as 19xx from 70 on.
        [weekday, date, time, "GMT"] if weekday.ends_with(',') => {
            let mut parts = date.split('-');
            let (day, mon, yy) = (parts.next()?, parts.next()?, parts.next()?);
            let yy = number(yy, 2..=2)?;
            let year = if yy >= 70 { 1900 + yy } else { 2000 + yy };
            (year, month(mon)?, number(day, 2..=2)?, *time)
        }
        // asctime.
        [_, mon, day, time, year] => (
            number(year, 4..=4)?,
            month(mon)?,
            number(day, 1..=2)?,
            *time,
        ),
        _ => return None,
    };
    let mut hms = time.split(':');
    let (h, m, s) = (
        number(hms.next()?, 2..=2)?,
        number(hms.next()?, 2..=2)?,
        number(hms.next()?, 2..=2)?,
    );
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let seconds = days * 86_400 + i64::from(h * 3600 + m * 60 + s);
    u64::try_from(seconds).ok()
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn secs(s: f64) -> String {
    let rounded = (s * 1000.0).round() / 1000.0;
    format!("{rounded}")
}

/// Sleeps for `duration` (wasi monotonic clock).
pub fn sleep(duration: Duration) {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    wasi::clocks::monotonic_clock::subscribe_duration(nanos).block();
}

/// Sends the request `build` makes; on HTTP 429, waits as long as the
/// response asks (JSON `retry_after`, or the `Retry-After` header in
/// seconds or as an HTTP-date; 1 s if it says nothing) if that is at most
/// `max_wait`, and sends a new request from
/// `build` once more. A second 429, or a longer wait, is an error:
/// `rate limited by discord.com (HTTP 429); retry after 12.5 s, longer than
/// the 10 s this extension waits`. Any other status is returned as it is.
pub fn send_with_retry(build: impl Fn() -> Request, max_wait: Duration) -> Result<Response, Error> {
    let response = build().send()?;
    if response.status != 429 {
        return Ok(response);
    }
    let wait = retry_after(&response).unwrap_or(1.0);
    if wait > max_wait.as_secs_f64() {
        return Err(Error::new(format!(
            "rate limited by {} (HTTP 429); retry after {} s, longer than the {} s this extension waits",
            response.host,
            secs(wait),
            secs(max_wait.as_secs_f64())
        )));
    }
    crate::debug!(
        "rate limited by {}; retrying in {} s",
        response.host,
        secs(wait)
    );
    sleep(Duration::from_secs_f64(wait));
    let again = build().send()?;
    if again.status == 429 {
        return Err(Error::new(format!(
            "rate limited by {} (HTTP 429) again after waiting {} s{}",
            again.host,
            secs(wait),
            retry_after(&again)
                .map(|s| format!("; retry after {} s", secs(s)))
                .unwrap_or_default()
        )));
    }
    Ok(again)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).into(), (*v).into()))
                .collect(),
            body: body.as_bytes().to_vec(),
            host: "discord.com".into(),
        }
    }

    #[test]
    fn parses_urls() {
        let url =
            Url::parse("https://Discord.com/api/v10/channels/1/messages?wait=true#frag").unwrap();
        assert!(url.https);
        assert_eq!(url.authority, "discord.com");
        assert_eq!(url.path_and_query, "/api/v10/channels/1/messages?wait=true");
        let url = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (
                url.host.as_str(),
                url.authority.as_str(),
                url.path_and_query.as_str()
            ),
            ("127.0.0.1", "127.0.0.1:8080", "/")
        );
        assert_eq!(Url::parse("http://[::1]:80/x").unwrap().host, "::1");
        assert!(Url::parse("ftp://x").is_err());
        assert!(Url::parse("https://").is_err());
        assert!(Url::parse("https://user:pw@host/").is_err());
    }

    #[test]
    fn reads_retry_after_and_messages() {
        let limited = response(
            429,
            &[],
            r#"{"message":"You are being rate limited.","retry_after":12.5,"global":false}"#,
        );
        assert_eq!(retry_after(&limited), Some(12.5));
        assert_eq!(
            retry_after(&response(429, &[("Retry-After", "3")], "")),
            Some(3.0)
        );
        let bad = response(
            400,
            &[],
            r#"{"message":"Invalid Form Body","code":50035,"errors":{"content":{"_errors":[{"code":"BASE_TYPE_MAX_LENGTH"}]}}}"#,
        );
        let error = bad
            .error_for_status(Some("DISCORD_BOT_TOKEN"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("discord.com refused the request (HTTP 400): Invalid Form Body {"),
            "{error}"
        );
        let denied = response(401, &[], r#"{"message":"401: Unauthorized","code":0}"#);
        let error = denied
            .error_for_status(Some("DISCORD_BOT_TOKEN"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("discord.com rejected the credentials (HTTP 401): check secret DISCORD_BOT_TOKEN (`narakim secret set DISCORD_BOT_TOKEN --bot BOT`)"), "{error}");
        let failed = response(502, &[], "<html>bad gateway</html>");
        assert_eq!(
            failed.error_for_status(None).unwrap_err().to_string(),
            "discord.com failed (HTTP 502)"
        );
        let openrouter = response(
            503,
            &[],
            r#"{"error":{"code":503,"message":"No instances available"}}"#,
        );
        assert_eq!(
            openrouter.error_for_status(None).unwrap_err().to_string(),
            "discord.com failed (HTTP 503): No instances available"
        );
        let long = response(
            400,
            &[],
            &format!(r#"{{"message":"{}"}}"#, "x".repeat(1000)),
        );
        assert!(long.api_message().unwrap().chars().count() <= 301);
        assert!(response(204, &[], "").error_for_status(None).is_ok());
    }

    #[test]
    fn reads_api_errors() {
        let discord = ApiError::from_json(
            &serde_json::json!({"message": "Missing Permissions", "code": 50013}),
        )
        .unwrap();
        assert_eq!(discord.code_number(), Some(50013));
        assert_eq!(discord.to_string(), "Missing Permissions (code 50013)");
        let openrouter = ApiError::from_json(&serde_json::json!({"error": {
            "code": 403, "message": "Your input was flagged",
            "metadata": {"reasons": ["harassment"], "flagged_input": "..."},
        }}))
        .unwrap();
        assert_eq!(openrouter.code.as_deref(), Some("403"));
        assert_eq!(openrouter.metadata.unwrap()["reasons"][0], "harassment");
        let choice = ApiError::from_object(&serde_json::json!({"code": 502, "message": "x"}));
        assert_eq!(choice.unwrap().to_string(), "x (code 502)");
        assert!(ApiError::from_json(&serde_json::json!({"id": 1})).is_none());
    }

    #[test]
    fn a_403_is_a_permission_when_the_api_says_so() {
        let missing = response(
            403,
            &[],
            r#"{"message":"Missing Permissions","code":50013}"#,
        );
        // Unknown API: both causes, the secret named, the API's code shown.
        let error = missing
            .error_for_status(Some("DISCORD_BOT_TOKEN"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("discord.com refused the request (HTTP 403 Forbidden): the credentials lack a permission for it, or are the wrong ones; check what secret DISCORD_BOT_TOKEN may do"),
            "{error}"
        );
        assert!(
            error.ends_with("discord.com said: Missing Permissions (code 50013)"),
            "{error}"
        );
        // An API whose 403 means "authenticated, not allowed".
        let errors = StatusErrors::new()
            .secret("DISCORD_BOT_TOKEN")
            .forbidden(|e| format!("no permission ({})", e.code.as_deref().unwrap_or("?")));
        let error = missing.check(&errors).unwrap_err().to_string();
        assert_eq!(
            error,
            "discord.com accepted the credentials but refused the request (HTTP 403): no permission (50013); discord.com said: Missing Permissions (code 50013)"
        );
        assert!(!error.contains("check secret"), "{error}");
        // 401 still names the secret.
        let denied = response(401, &[], r#"{"message":"401: Unauthorized","code":0}"#);
        assert!(
            denied
                .check(&errors)
                .unwrap_err()
                .to_string()
                .contains("check secret DISCORD_BOT_TOKEN")
        );
        assert!(response(200, &[], "{}").check(&errors).is_ok());
    }

    #[test]
    fn parses_http_dates() {
        // RFC 9110's example instant, in its three forms.
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(date), Some(784_111_777), "{date}");
        }
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(1_835_481_599)
        );
        for bad in [
            "",
            "3",
            "Wed, 21 Oct 2015 07:28:00 UTC",
            "Wed, 21 Foo 2015 07:28:00 GMT",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 24:00:00 GMT",
            "Wed, 21 Oct 2015 07:28 GMT",
            "Wed, 01 Jan 1960 00:00:00 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_reads_an_http_date_against_the_clock() {
        let now = UNIX_EPOCH + Duration::from_millis(1_445_412_475_500);
        let at = |date: &str| retry_after_at(&response(429, &[("Retry-After", date)], ""), now);
        assert_eq!(at("Wed, 21 Oct 2015 07:28:00 GMT"), Some(4.5));
        // A date passed: no wait.
        assert_eq!(at("Wed, 21 Oct 2015 07:27:00 GMT"), Some(0.0));
        assert_eq!(at("soon"), None);
        // Seconds still work, and Discord's body wins over the header.
        assert_eq!(at("7"), Some(7.0));
        let both = response(
            429,
            &[("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")],
            r#"{"retry_after":0.25}"#,
        );
        assert_eq!(retry_after_at(&both, now), Some(0.25));
    }
}
