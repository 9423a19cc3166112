//! AWS KMS as the home of the vault's master key.
//!
//! At init, `GenerateDataKey` (AES_256) under the operator's KMS key gives
//! the master key (kept only in memory) and its encrypted form (stored in
//! the database); at open, `Decrypt` of that blob gives the key back. Both
//! carry an encryption context binding the vault id, so a blob copied into
//! another vault's database does not open, and `Decrypt` names the key id,
//! so a blob made under another KMS key is refused.
//!
//! KMS is reached through its JSON API (awsJson1.1) signed with SigV4
//! ([`super::sigv4`]); no AWS SDK. The vault is synchronous and KMS calls
//! are rare (open, init, rotation), so every call runs on a fresh
//! short-lived thread with its own current-thread runtime: that works from
//! a plain thread, from `spawn_blocking`, and from inside a runtime alike.
//!
//! Secrets (plaintext keys, the secret access key, the session token) never
//! appear in an error or `Debug` output. Plaintext answers are parsed out of
//! zeroizing buffers; copies inside hyper's and rustls's own buffers are out
//! of reach.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, rustls};
use zeroize::{Zeroize, Zeroizing};

use super::sigv4;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// For the whole call, retries included, so no vault open hangs for long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pauses before the second and third attempts.
const BACKOFF: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];
/// KMS answers are a few hundred bytes; anything near this is not KMS.
const MAX_BODY: usize = 64 * 1024;
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const SERVICE: &str = "kms";

/// What went wrong talking to KMS, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("invalid KMS endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        endpoint: String,
        reason: &'static str,
    },
    #[error("invalid KMS configuration: {0}")]
    InvalidConfig(&'static str),
    #[error(
        "environment variable {0} is not set, empty, or not UTF-8: set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)"
    )]
    MissingCredential(&'static str),
    #[error(
        "cannot reach KMS at {endpoint}: {source}; check the endpoint, the region, DNS, and that \
         the network allows connections to it"
    )]
    Unreachable { endpoint: String, source: io::Error },
    #[error(
        "TLS with KMS at {endpoint} failed: {source}; check that the endpoint speaks HTTPS with a \
         valid certificate for its host name from a public CA"
    )]
    Tls { endpoint: String, source: io::Error },
    #[error("KMS {operation} at {endpoint}: the HTTP exchange failed: {source}")]
    Http {
        operation: &'static str,
        endpoint: String,
        source: hyper::Error,
    },
    #[error(
        "KMS {operation} at {endpoint} did not complete within {after:?} (retries included); \
         check the network path to the endpoint, then retry"
    )]
    Timeout {
        operation: &'static str,
        endpoint: String,
        after: Duration,
    },
    #[error("KMS refused {operation} (HTTP {status}, {code}): {message}{}", refusal_hint(.operation, *.status, .code))]
    Refused {
        operation: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    #[error(
        "KMS {operation} answered with something KMS does not send: {problem}; check that the \
         endpoint is an AWS KMS endpoint"
    )]
    BadResponse {
        operation: &'static str,
        problem: String,
    },
    #[error("could not run the KMS request: {0}")]
    Internal(String),
}

const CREDENTIALS_HINT: &str = "; check the AWS credentials (access key id, secret access key, \
    session token, system clock) and that they are allowed kms:GenerateDataKey and kms:Decrypt on \
    this key";

/// What the operator should do about a refusal KMS names.
fn refusal_hint(operation: &str, status: u16, code: &str) -> &'static str {
    match code {
        "AccessDeniedException" if operation == "Decrypt" => {
            "; the stored key blob was made under another KMS key than the configured key id, or \
             the AWS credentials are not allowed kms:Decrypt on this key"
        }
        "InvalidCiphertextException" | "IncorrectKeyException" => {
            "; the stored key blob does not open under this KMS key and encryption context: the \
             key id is wrong, or the database belongs to another vault"
        }
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignatureException"
        | "SignatureDoesNotMatch"
        | "InvalidClientTokenId"
        | "ExpiredTokenException"
        | "AccessDeniedException" => CREDENTIALS_HINT,
        "NotFoundException" => {
            "; no such KMS key in this account and region: check the key id and region"
        }
        "DisabledException" | "KMSInvalidStateException" => {
            "; the KMS key is disabled or pending deletion: enable it or cancel the deletion"
        }
        "ThrottlingException" => "; KMS is rate-limiting this account: retry later",
        _ if status == 401 || status == 403 => CREDENTIALS_HINT,
        _ if status >= 500 => "; KMS (or a proxy in front of it) failed: retry later",
        _ => "",
    }
}

impl KmsError {
    /// Worth another attempt: the network, KMS itself, or throttling.
    fn is_transient(&self) -> bool {
        match self {
            KmsError::Unreachable { .. } => true,
            KmsError::Refused { status, code, .. } => {
                *status >= 500 || code == "ThrottlingException"
            }
            _ => false,
        }
    }
}

fn bad(operation: &'static str, problem: impl Into<String>) -> KmsError {
    KmsError::BadResponse {
        operation,
        problem: problem.into(),
    }
}

/// AWS credentials. `Debug` shows only the access key id.
#[derive(Clone)]
pub struct AwsCredentials {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
}

impl AwsCredentials {
    pub fn new(
        access_key_id: String,
        secret_access_key: Zeroizing<String>,
        session_token: Option<Zeroizing<String>>,
    ) -> Self {
        Self {
            access_key_id,
            secret_access_key,
            session_token,
        }
    }

    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN.
    pub fn from_env() -> Result<Self, KmsError> {
        fn var(name: &'static str) -> Option<Zeroizing<String>> {
            std::env::var(name)
                .ok()
                .map(Zeroizing::new)
                .filter(|v| !v.is_empty())
        }
        let id =
            var("AWS_ACCESS_KEY_ID").ok_or(KmsError::MissingCredential("AWS_ACCESS_KEY_ID"))?;
        let secret = var("AWS_SECRET_ACCESS_KEY")
            .ok_or(KmsError::MissingCredential("AWS_SECRET_ACCESS_KEY"))?;
        Ok(Self::new(id.to_string(), secret, var("AWS_SESSION_TOKEN")))
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[REDACTED]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// Where and as whom to reach KMS.
#[derive(Clone, Debug)]
pub struct KmsConfig {
    pub endpoint: String,
    pub region: String,
    pub key_id: String,
    pub credentials: AwsCredentials,
}

impl KmsConfig {
    /// `endpoint` defaults to `https://kms.{region}.amazonaws.com`; an
    /// explicit one must be `https://host[:port]`, or `http://` for a
    /// loopback test server.
    pub fn new(
        region: String,
        key_id: String,
        endpoint: Option<String>,
        credentials: AwsCredentials,
    ) -> Result<Self, KmsError> {
        validate_region(&region)?;
        let endpoint = endpoint.unwrap_or_else(|| format!("https://kms.{region}.amazonaws.com"));
        let endpoint = Endpoint::parse(&endpoint)?.url;
        let config = Self {
            endpoint,
            region,
            key_id,
            credentials,
        };
        config.validate()?;
        Ok(config)
    }

    /// Everything that would otherwise fail only once a request is built.
    fn validate(&self) -> Result<(), KmsError> {
        validate_region(&self.region)?;
        let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        let creds = &self.credentials;
        let token_ok = creds.session_token.as_ref().is_none_or(|t| printable(t));
        for (ok, problem) in [
            (
                !self.key_id.chars().any(char::is_control),
                "the KMS key id contains control characters",
            ),
            (
                printable(&creds.access_key_id),
                "the AWS access key id must be non-empty printable ASCII",
            ),
            (
                !creds.secret_access_key.is_empty(),
                "the AWS secret access key is empty",
            ),
            (
                token_ok,
                "the AWS session token must be non-empty printable ASCII",
            ),
        ] {
            if !ok {
                return Err(KmsError::InvalidConfig(problem));
            }
        }
        Ok(())
    }
}

/// The region becomes part of a host name and of the signing scope.
fn validate_region(region: &str) -> Result<(), KmsError> {
    let ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(KmsError::InvalidConfig(
            "the AWS region must look like us-east-1 (lower-case letters, digits, '-')",
        ))
    }
}

/// A parsed, checked endpoint.
#[derive(Debug)]
struct Endpoint {
    /// `scheme://authority`, as shown in errors.
    url: String,
    tls: bool,
    /// Without IPv6 brackets: for connecting and for SNI.
    host: String,
    port: u16,
    /// The `Host` header, which is signed.
    authority: String,
}

impl Endpoint {
    fn parse(endpoint: &str) -> Result<Self, KmsError> {
        let bad = |reason| KmsError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|_| bad("not a URL; expected https://host[:port]"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(bad(
                    "expected https://host[:port] (http:// only for a loopback test server)",
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| bad("no host; expected https://host[:port]"))?;
        let authority = authority.as_str().to_ascii_lowercase();
        let path_ok = matches!(uri.path(), "" | "/");
        if !path_ok || uri.query().is_some() || endpoint.contains('#') || authority.contains('@') {
            return Err(bad(
                "must be only https://host[:port], with no user, path, query or fragment",
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (
                host,
                port.parse()
                    .map_err(|_| bad("the port is not a number from 1 to 65535"))?,
            ),
            _ => (authority.as_str(), if tls { 443 } else { 80 }),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() || port == 0 {
            return Err(bad("no host or port 0; expected https://host[:port]"));
        }
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback {
            return Err(bad(
                "http:// is allowed only for loopback hosts (127.0.0.1, ::1, localhost); use https://",
            ));
        }
        let scheme = if tls { "https" } else { "http" };
        Ok(Self {
            url: format!("{scheme}://{authority}"),
            tls,
            host,
            port,
            authority,
        })
    }
}

/// A fresh data key: the plaintext lives only in zeroizing memory.
pub struct DataKey {
    pub plaintext: Zeroizing<[u8; 32]>,
    /// The KMS CiphertextBlob, safe to store.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &"[REDACTED]")
            .field(
                "ciphertext",
                &format_args!("<{} bytes>", self.ciphertext.len()),
            )
            .finish()
    }
}

/// A blocking KMS client for one key.
pub struct KmsClient {
    config: KmsConfig,
    endpoint: Endpoint,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KmsClient {
    /// Trusts Mozilla's roots (webpki-roots) for https endpoints.
    pub fn new(config: KmsConfig) -> Result<Self, KmsError> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        Self::with_roots(config, roots)
    }

    /// Tests pass their own root, since no public CA signs for 127.0.0.1.
    fn with_roots(mut config: KmsConfig, roots: rustls::RootCertStore) -> Result<Self, KmsError> {
        config.validate()?;
        let endpoint = Endpoint::parse(&config.endpoint)?;
        config.endpoint.clone_from(&endpoint.url);
        let tls = if endpoint.tls {
            let name = ServerName::try_from(endpoint.host.clone()).map_err(|_| {
                KmsError::InvalidEndpoint {
                    endpoint: endpoint.url.clone(),
                    reason: "the host is not a valid TLS server name",
                }
            })?;
            Some((TlsConnector::from(tls_config(roots)?), name))
        } else {
            None
        };
        Ok(Self {
            config,
            endpoint,
            tls,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.config.key_id
    }

    /// A new AES-256 data key under the configured KMS key, bound to `context`.
    pub fn generate_data_key(&self, context: &[(&str, &str)]) -> Result<DataKey, KmsError> {
        const OP: &str = "GenerateDataKey";
        #[derive(Deserialize)]
        struct Answer<'a> {
            #[serde(borrow, rename = "Plaintext")]
            plaintext: Cow<'a, str>,
            #[serde(rename = "CiphertextBlob")]
            ciphertext_blob: String,
        }
        let request = serde_json::json!({
            "KeyId": self.require_key_id()?,
            "KeySpec": "AES_256",
            "EncryptionContext": context_map(context),
        });
        let body = self.call(OP, &request)?;
        let answer: Answer = parse(OP, &body, "Plaintext and CiphertextBlob strings")?;
        let plaintext = decode_key(OP, answer.plaintext)?;
        let ciphertext = B64
            .decode(&answer.ciphertext_blob)
            .map_err(|_| bad(OP, "CiphertextBlob is not base64"))?;
        if ciphertext.is_empty() {
            return Err(bad(OP, "CiphertextBlob is empty"));
        }
        Ok(DataKey {
            plaintext,
            ciphertext,
        })
    }

    /// The data key inside `ciphertext`, if it was made under the configured
    /// key with the same `context`.
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        context: &[(&str, &str)],
    ) -> Result<Zeroizing<[u8; 32]>, KmsError> {
        const OP: &str = "Decrypt";
        #[derive(Deserialize)]
        struct Answer<'a> {
            #[serde(borrow, rename = "Plaintext")]
            plaintext: Cow<'a, str>,
        }
        let request = serde_json::json!({
            "KeyId": self.require_key_id()?,
            "CiphertextBlob": B64.encode(ciphertext),
            "EncryptionContext": context_map(context),
        });
        let body = self.call(OP, &request)?;
        let answer: Answer = parse(OP, &body, "a Plaintext string")?;
        decode_key(OP, answer.plaintext)
    }

    /// Creates a symmetric encryption key and returns its KeyId.
    pub fn create_key(&self, description: &str) -> Result<String, KmsError> {
        const OP: &str = "CreateKey";
        let request = serde_json::json!({
            "Description": description,
            "KeySpec": "SYMMETRIC_DEFAULT",
            "KeyUsage": "ENCRYPT_DECRYPT",
        });
        let body = self.call(OP, &request)?;
        let answer: serde_json::Value = parse(OP, &body, "KeyMetadata.KeyId")?;
        match answer
            .pointer("/KeyMetadata/KeyId")
            .and_then(|v| v.as_str())
        {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(bad(OP, "the JSON lacks KeyMetadata.KeyId")),
        }
    }

    fn require_key_id(&self) -> Result<&str, KmsError> {
        if self.config.key_id.is_empty() {
            return Err(KmsError::InvalidConfig(
                "no KMS key id is configured (create one with create_key)",
            ));
        }
        Ok(&self.config.key_id)
    }

    /// Runs one operation to completion on its own thread and runtime, so it
    /// blocks the caller whatever runtime the caller is (or is not) inside.
    fn call(
        &self,
        operation: &'static str,
        request: &serde_json::Value,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let payload = serde_json::to_vec(request)
            .map_err(|e| KmsError::Internal(format!("encoding the request: {e}")))?;
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("narakim-kms".into())
                .spawn_scoped(scope, || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| {
                            KmsError::Internal(format!("could not start a tokio runtime: {e}"))
                        })?;
                    runtime.block_on(self.with_retries(operation, &payload))
                })
                .map_err(|e| {
                    KmsError::Internal(format!("could not start the KMS request thread: {e}"))
                })?;
            worker
                .join()
                .map_err(|_| KmsError::Internal("the KMS request thread panicked".into()))?
        })
    }

    async fn with_retries(
        &self,
        operation: &'static str,
        payload: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let attempts = async {
            let mut backoff = BACKOFF.iter();
            loop {
                match self.attempt(operation, payload).await {
                    Err(e) if e.is_transient() => match backoff.next() {
                        Some(pause) => tokio::time::sleep(*pause).await,
                        None => return Err(e),
                    },
                    other => return other,
                }
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, attempts)
            .await
            .map_err(|_| KmsError::Timeout {
                operation,
                endpoint: self.endpoint.url.clone(),
                after: REQUEST_TIMEOUT,
            })?
    }

    /// One signed request on one fresh connection; the body of a 2xx answer.
    async fn attempt(
        &self,
        operation: &'static str,
        payload: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let request = self.request(operation, payload)?;
        let url = &self.endpoint.url;
        let unreachable = |source| KmsError::Unreachable {
            endpoint: url.clone(),
            source,
        };
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port)),
        )
        .await
        .map_err(|_| {
            unreachable(io::Error::new(
                io::ErrorKind::TimedOut,
                "connecting took over 10 s",
            ))
        })?
        .map_err(unreachable)?;
        // Small request, one round trip: no reason to wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let (status, error_type, body) = match &self.tls {
            Some((connector, name)) => {
                let tls_error = |source| KmsError::Tls {
                    endpoint: url.clone(),
                    source,
                };
                let stream =
                    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| {
                            tls_error(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "the handshake took over 10 s",
                            ))
                        })?
                        .map_err(tls_error)?;
                self.exchange(operation, stream, request).await?
            }
            None => self.exchange(operation, tcp, request).await?,
        };
        if status.is_success() {
            return Ok(body);
        }
        Err(refusal(
            operation,
            status.as_u16(),
            error_type.as_deref(),
            &body,
        ))
    }

    fn request(
        &self,
        operation: &'static str,
        payload: &[u8],
    ) -> Result<http::Request<Full<Bytes>>, KmsError> {
        let amz_date = sigv4::amz_date(time::OffsetDateTime::now_utc())
            .map_err(|e| KmsError::Internal(format!("formatting the time: {e}")))?;
        let target = format!("TrentService.{operation}");
        let creds = &self.config.credentials;
        let mut headers = vec![
            ("content-type", CONTENT_TYPE),
            ("host", self.endpoint.authority.as_str()),
            ("x-amz-date", amz_date.as_str()),
            ("x-amz-target", target.as_str()),
        ];
        if let Some(token) = &creds.session_token {
            headers.push(("x-amz-security-token", token.as_str()));
        }
        let signed = sigv4::SignedRequest {
            method: "POST",
            uri: "/",
            query: "",
            headers: &headers,
            payload,
        };
        let authorization = sigv4::authorization(
            &creds.access_key_id,
            &creds.secret_access_key,
            &amz_date,
            &self.config.region,
            SERVICE,
            &signed,
        );
        let mut builder = http::Request::post("/")
            .header(http::header::CONTENT_LENGTH, payload.len())
            .header(http::header::AUTHORIZATION, authorization);
        for (name, value) in &headers {
            builder = builder.header(*name, *value);
        }
        builder
            .body(Full::new(Bytes::copy_from_slice(payload)))
            .map_err(|_| {
                KmsError::InvalidConfig(
                    "a credential or the key id is not a valid HTTP header value",
                )
            })
    }

    /// Sends `request` over `io` and reads the answer, at most [`MAX_BODY`]
    /// bytes, into zeroizing memory. Returns the status, the
    /// `x-amzn-ErrorType` header and the body.
    async fn exchange<S>(
        &self,
        operation: &'static str,
        io: S,
        request: http::Request<Full<Bytes>>,
    ) -> Result<(http::StatusCode, Option<String>, Zeroizing<Vec<u8>>), KmsError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let http_error = |source| KmsError::Http {
            operation,
            endpoint: self.endpoint.url.clone(),
            source,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(http_error)?;
        tokio::spawn(async move {
            // Its failures surface through `send_request` and the body.
            let _ = connection.await;
        });
        let (parts, mut incoming) = sender
            .send_request(request)
            .await
            .map_err(http_error)?
            .into_parts();
        let error_type = parts
            .headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Zeroizing::new(Vec::with_capacity(4096));
        while let Some(frame) = incoming.frame().await {
            let Ok(data) = frame.map_err(http_error)?.into_data() else {
                continue;
            };
            let fits = body.len() + data.len() <= MAX_BODY;
            if fits {
                append(&mut body, &data);
            }
            scrub(data);
            if !fits {
                return Err(bad(operation, "the body is larger than 64 KiB"));
            }
        }
        Ok((parts.status, error_type, body))
    }
}

/// Appends without leaving a stale copy behind: growing moves into a new
/// zeroizing buffer and the old one is wiped on drop.
fn append(buf: &mut Zeroizing<Vec<u8>>, data: &[u8]) {
    if buf.capacity() - buf.len() < data.len() {
        let wanted = (buf.len() + data.len())
            .max(buf.capacity() * 2)
            .min(MAX_BODY);
        let mut bigger = Zeroizing::new(Vec::with_capacity(wanted));
        bigger.extend_from_slice(buf);
        std::mem::swap(buf, &mut bigger);
    }
    buf.extend_from_slice(data);
}

/// Wipes a body chunk if nothing else shares it (hyper's read buffer may).
fn scrub(data: Bytes) {
    if let Ok(mut data) = data.try_into_mut() {
        data.as_mut().zeroize();
    }
}

/// The error KMS named in a non-2xx answer: `__type` (after its last `#`)
/// or the `x-amzn-ErrorType` header, and `message`/`Message`.
fn refusal(
    operation: &'static str,
    status: u16,
    error_type: Option<&str>,
    body: &[u8],
) -> KmsError {
    #[derive(Deserialize, Default)]
    struct ErrorBody {
        #[serde(rename = "__type")]
        kind: Option<String>,
        #[serde(alias = "Message")]
        message: Option<String>,
    }
    // Not JSON: moto (like AWS's query-protocol services) sends auth errors
    // as XML `<Code>`/`<Message>`.
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_else(|_| {
        let text = std::str::from_utf8(body).unwrap_or("");
        let tag = |name: &str| {
            let (_, rest) = text.split_once(&format!("<{name}>"))?;
            Some(rest.split_once(&format!("</{name}>"))?.0.to_owned())
        };
        ErrorBody {
            kind: tag("Code"),
            message: tag("Message"),
        }
    });
    let header_code = error_type.and_then(|t| t.split(':').next());
    let code = match (parsed.kind.as_deref(), header_code) {
        (Some(kind), _) => kind.rsplit('#').next().unwrap_or(kind),
        (None, Some(code)) => code,
        (None, None) => "",
    };
    let code = if code.is_empty() {
        "no error code".to_owned()
    } else {
        code.chars().take(100).collect()
    };
    let message = match parsed.message {
        Some(m) if !m.trim().is_empty() => m
            .trim()
            .trim_end_matches('.')
            .chars()
            .filter(|c| !c.is_control())
            .take(500)
            .collect(),
        _ => "(no message)".to_owned(),
    };
    KmsError::Refused {
        operation,
        status,
        code,
        message,
    }
}

fn parse<'a, T: Deserialize<'a>>(
    operation: &'static str,
    body: &'a [u8],
    expected: &str,
) -> Result<T, KmsError> {
    // serde_json's message may quote the body; say only what kind of wrong.
    serde_json::from_slice(body).map_err(|e| {
        let problem = if e.is_data() {
            format!("the JSON lacks {expected}")
        } else {
            "the body is not JSON".to_owned()
        };
        bad(operation, problem)
    })
}

/// Base64 `Plaintext` to exactly 32 bytes, touching only zeroizing memory.
fn decode_key(
    operation: &'static str,
    encoded: Cow<'_, str>,
) -> Result<Zeroizing<[u8; 32]>, KmsError> {
    let mut buf = Zeroizing::new([0u8; 48]);
    let decoded = B64.decode_slice(encoded.as_bytes(), &mut *buf);
    if let Cow::Owned(mut owned) = encoded {
        owned.zeroize();
    }
    let len = decoded.map_err(|_| bad(operation, "Plaintext is not base64 of an AES-256 key"))?;
    if len != 32 {
        return Err(bad(
            operation,
            format!("Plaintext is {len} bytes, not the 32 of an AES-256 key"),
        ));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&buf[..32]);
    Ok(key)
}

fn context_map<'a>(context: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
    context.iter().copied().collect()
}

/// ring, TLS 1.2 and 1.3, HTTP/1.1 only.
fn tls_config(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, KmsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| KmsError::Internal(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;

    fn creds() -> AwsCredentials {
        AwsCredentials::new(
            "AKIDEXAMPLE".into(),
            Zeroizing::new("very-secret-key".into()),
            Some(Zeroizing::new("session-token-xyz".into())),
        )
    }

    fn config(endpoint: &str) -> Result<KmsConfig, KmsError> {
        KmsConfig::new(
            "us-east-1".into(),
            "key-1".into(),
            Some(endpoint.into()),
            creds(),
        )
    }

    /// A one-thread HTTP server answering each connection with the next
    /// canned answer (the last one repeats); records the request heads.
    fn mock(answers: Vec<(u16, String)>) -> (KmsClient, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let (mut head, mut length) = (String::new(), 0);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                log.lock()
                    .expect("lock")
                    .push(head + &String::from_utf8_lossy(&body));
                let (status, body) = &answers[i.min(answers.len() - 1)];
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: {CONTENT_TYPE}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let client = KmsClient::new(config(&format!("http://127.0.0.1:{port}")).expect("config"))
            .expect("client");
        (client, seen)
    }

    fn plaintext_answer(len: usize) -> String {
        format!(
            r#"{{"KeyId":"key-1","Plaintext":"{}"}}"#,
            B64.encode(vec![7u8; len])
        )
    }

    #[test]
    fn endpoint_validation() {
        let e = config("http://kms.example.com").expect_err("plain http to a remote host");
        assert!(e.to_string().contains("loopback"), "{e}");
        assert!(config("https://kms.example.com/path").is_err());
        assert!(config("https://kms.example.com?x=1").is_err());
        assert!(config("https://user@kms.example.com").is_err());
        assert!(config("ftp://kms.example.com").is_err());
        assert!(config("https://kms.example.com:0").is_err());
        assert_eq!(
            config("https://KMS.example.com:8443/")
                .expect("ok")
                .endpoint,
            "https://kms.example.com:8443"
        );
        for ok in [
            "http://127.0.0.1:4566",
            "http://[::1]:4566",
            "http://localhost",
            "http://127.0.0.2",
        ] {
            assert!(config(ok).is_ok(), "{ok}");
        }
        let default =
            KmsConfig::new("eu-west-1".into(), "k".into(), None, creds()).expect("default");
        assert_eq!(default.endpoint, "https://kms.eu-west-1.amazonaws.com");
        assert!(KmsConfig::new("eu west".into(), "k".into(), None, creds()).is_err());
        let client = KmsClient::new(default).expect("https client");
        assert_eq!(
            (client.endpoint.host.as_str(), client.endpoint.port),
            ("kms.eu-west-1.amazonaws.com", 443)
        );
        let v6 = KmsClient::new(config("http://[::1]:4566").expect("v6")).expect("client");
        assert_eq!(
            (v6.endpoint.host.as_str(), v6.endpoint.authority.as_str()),
            ("::1", "[::1]:4566")
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let shown = format!("{:?}", config("http://127.0.0.1:1").expect("config"));
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(
            !shown.contains("very-secret-key") && !shown.contains("session-token-xyz"),
            "{shown}"
        );
        let key = DataKey {
            plaintext: Zeroizing::new([0x41; 32]),
            ciphertext: vec![1, 2, 3],
        };
        let shown = format!("{key:?}");
        assert!(
            shown.contains("[REDACTED]") && !shown.contains("65"),
            "{shown}"
        );
    }

    #[test]
    fn credentials_from_env_name_the_missing_variable() {
        // SAFETY: no other test in this binary reads or writes these variables.
        unsafe {
            std::env::remove_var("AWS_ACCESS_KEY_ID");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "s");
        }
        let e = AwsCredentials::from_env().expect_err("no key id");
        assert!(
            e.to_string()
                .starts_with("environment variable AWS_ACCESS_KEY_ID"),
            "{e}"
        );
        unsafe {
            std::env::set_var("AWS_ACCESS_KEY_ID", "id");
            std::env::remove_var("AWS_SECRET_ACCESS_KEY");
        }
        let e = AwsCredentials::from_env().expect_err("no secret");
        assert!(
            e.to_string()
                .starts_with("environment variable AWS_SECRET_ACCESS_KEY"),
            "{e}"
        );
        unsafe { std::env::set_var("AWS_SECRET_ACCESS_KEY", "s") };
        let c = AwsCredentials::from_env().expect("both set");
        assert_eq!(c.access_key_id(), "id");
    }

    #[test]
    fn signs_and_sends_the_json_protocol() {
        let (client, seen) = mock(vec![(200, plaintext_answer(32))]);
        let key = client
            .decrypt(b"blob", &[("narakim-vault", "v1")])
            .expect("decrypt");
        assert_eq!(*key, [7u8; 32]);
        let request = seen.lock().expect("lock")[0].to_ascii_lowercase();
        for needle in [
            "post / http/1.1",
            "x-amz-target: trentservice.decrypt",
            "content-type: application/x-amz-json-1.1",
            "host: 127.0.0.1:",
            "x-amz-security-token: session-token-xyz",
            "credential=akidexample/",
            "/us-east-1/kms/aws4_request, signedheaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, signature=",
            r#""ciphertextblob":"ymxvyg==""#,
            r#""encryptioncontext":{"narakim-vault":"v1"}"#,
            r#""keyid":"key-1""#,
        ] {
            assert!(request.contains(needle), "{needle} not in {request}");
        }
    }

    #[test]
    fn server_errors_are_retried_three_times() {
        let (client, seen) = mock(vec![(503, String::new())]);
        let e = client.create_key("x").expect_err("503");
        assert!(matches!(e, KmsError::Refused { status: 503, .. }), "{e}");
        assert!(e.to_string().contains("retry later"), "{e}");
        assert_eq!(seen.lock().expect("lock").len(), 3);
    }

    #[test]
    fn throttling_is_retried() {
        let throttled = r#"{"__type":"ThrottlingException","message":"slow down"}"#.to_owned();
        let (client, seen) = mock(vec![(400, throttled), (200, plaintext_answer(32))]);
        assert!(client.decrypt(b"blob", &[]).is_ok());
        assert_eq!(seen.lock().expect("lock").len(), 2);
    }

    #[test]
    fn client_errors_are_not_retried_and_explained() {
        let body = r#"{"__type":"com.amazonaws.kms#InvalidCiphertextException","Message":"nope"}"#;
        let (client, seen) = mock(vec![(400, body.to_owned())]);
        let e = client.decrypt(b"blob", &[]).expect_err("refused");
        let text = e.to_string();
        assert!(
            text.contains("Decrypt (HTTP 400, InvalidCiphertextException): nope"),
            "{text}"
        );
        assert!(text.contains("another vault"), "{text}");
        assert_eq!(seen.lock().expect("lock").len(), 1);
    }

    #[test]
    fn bad_answers_are_refused_without_echoing_them() {
        let short = plaintext_answer(16);
        let (client, _) = mock(vec![(200, short.clone())]);
        let e = client.decrypt(b"blob", &[]).expect_err("16 bytes");
        assert!(
            e.to_string().contains("16 bytes") && !e.to_string().contains("BwcH"),
            "{e}"
        );

        let (client, _) = mock(vec![(200, r#"{"Plaintext": "c2VjcmV0" "#.to_owned())]);
        let e = client.decrypt(b"blob", &[]).expect_err("not JSON");
        assert!(
            e.to_string().contains("not JSON") && !e.to_string().contains("c2Vj"),
            "{e}"
        );

        let (client, _) = mock(vec![(200, r#"{"Plaintext": 5}"#.to_owned())]);
        let e = client.decrypt(b"blob", &[]).expect_err("wrong type");
        assert!(e.to_string().contains("lacks a Plaintext string"), "{e}");

        let (client, _) = mock(vec![(200, "x".repeat(MAX_BODY + 1))]);
        let e = client.decrypt(b"blob", &[]).expect_err("too big");
        assert!(e.to_string().contains("64 KiB"), "{e}");
    }

    #[test]
    fn missing_key_id_is_caught_before_sending() {
        let mut config = config("http://127.0.0.1:1").expect("config");
        config.key_id.clear();
        let e = KmsClient::new(config)
            .expect("client")
            .generate_data_key(&[])
            .expect_err("no key id");
        assert!(matches!(e, KmsError::InvalidConfig(_)), "{e}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn works_inside_a_current_thread_runtime() {
        let (client, _) = mock(vec![(200, plaintext_answer(32))]);
        assert!(client.decrypt(b"blob", &[]).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn works_inside_spawn_blocking() {
        let (client, _) = mock(vec![(200, plaintext_answer(32))]);
        let key = tokio::task::spawn_blocking(move || client.decrypt(b"blob", &[]))
            .await
            .expect("join");
        assert!(key.is_ok());
    }

    /// Makes a self-signed certificate for 127.0.0.1 (PEM files for moto,
    /// DER for the root store).
    const MAKE_CERT: &str = r#"
import datetime, sys
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
import ipaddress
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
    .public_key(key.public_key()).serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
    .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    .sign(key, hashes.SHA256()))
d = sys.argv[1]
open(d + "/cert.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(d + "/cert.der", "wb").write(cert.public_bytes(serialization.Encoding.DER))
open(d + "/key.pem", "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
"#;

    /// The https path end to end (rustls handshake, SNI for an IP, hyper
    /// over TLS) against moto serving TLS with a certificate we trust.
    #[test]
    fn https_round_trip_against_moto_with_a_private_root() {
        use std::process::{Command, Stdio};
        let has_moto = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_moto {
            // CI installs it (`.ci/services`); a developer may not have.
            assert!(std::env::var_os("CI").is_none(), "CI needs moto[server]");
            eprintln!("skipped: moto[server] is not installed");
            return;
        }
        let dir = std::env::temp_dir().join(format!("kms-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let d = dir.to_str().expect("utf-8 path");
        let made = Command::new("python3").args(["-c", MAKE_CERT, d]).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "python3 with cryptography (comes with moto) makes the certificate"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let (cert, key) = (format!("{d}/cert.pem"), format!("{d}/key.pem"));
        let mut moto = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-c",
                &cert,
                "-k",
                &key,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]')");
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let der = std::fs::read(format!("{d}/cert.der")).expect("cert.der");
        let config = config(&format!("https://127.0.0.1:{port}")).expect("config");
        let result = KmsClient::with_roots(config.clone(), roots_of(&der)).and_then(|c| {
            let key_id = c.create_key("tls")?;
            let mut config = config.clone();
            config.key_id = key_id;
            let c = KmsClient::with_roots(config, roots_of(&der))?;
            let data_key = c.generate_data_key(&[("narakim-vault", "v")])?;
            let plain = c.decrypt(&data_key.ciphertext, &[("narakim-vault", "v")])?;
            Ok(*plain == *data_key.plaintext)
        });
        let _ = moto.kill();
        let _ = moto.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            result.expect("https round trip"),
            "decrypt gives back the data key"
        );
    }

    fn roots_of(der: &[u8]) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der.to_vec().into()).expect("root");
        roots
    }

    #[test]
    #[ignore = "takes the full 30 s request timeout"]
    fn a_silent_server_times_out_after_30_s() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let client = KmsClient::new(config(&format!("http://127.0.0.1:{port}")).expect("config"))
            .expect("client");
        let started = std::time::Instant::now();
        let e = client.decrypt(b"blob", &[]).expect_err("no answer");
        assert!(matches!(e, KmsError::Timeout { .. }), "{e}");
        assert!(
            (30..32).contains(&started.elapsed().as_secs()),
            "{:?}",
            started.elapsed()
        );
        drop(listener);
    }
}
