//! Outbound HTTP: every request an extension makes through
//! `wasi:http/outgoing-handler` passes this policy before anything leaves.
//!
//! In order, a request is refused (the guest sees `HTTP-request-denied`, and
//! the refusal is recorded in the invocation's outcome) when:
//! 1. its host is not one of the extension's allowed hosts (or a host taken
//!    from a config field the extension marks as a URL);
//! 2. it is plain HTTP to anything but loopback: secrets leave only over TLS;
//! 3. it carries a value this invocation was handed (raw or in any encoding
//!    the scrubber knows, in the path, a header or the body) to a host that
//!    secret is not bound to;
//! 4. its host is not mapped by the operator and resolves to a loopback,
//!    private or link-local address (a DNS rebinding way into the host's
//!    network). The connector checks again the answer it connects to, so a
//!    name that rebinds between the two look-ups is refused all the same.
//!
//! Then operator mappings (`--upstream HOST=URL`) rewrite the destination,
//! without touching extension code or allow-lists: this is how tests and
//! the offline demo reach loopback stand-ins of Discord and OpenRouter.
//!
//! What passes leaves through [`client::Pool`], one per runtime: pooled
//! HTTP/1.1 connections (TLS by rustls with the webpki roots) reused across
//! requests and invocations, with connect, first-byte and between-bytes
//! timeouts set by the host.

mod client;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use self::client::Pool;

use crate::redact::Scrubber;

/// Most a request body may hold (it is buffered to be checked).
const MAX_BODY: usize = 8 << 20;

/// An operator's mapping of a host to another base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub base: http::Uri,
}

impl std::str::FromStr for Upstream {
    type Err = String;

    /// `HOST=URL`, for example `discord.com=http://127.0.0.1:8080`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (host, url) = s.split_once('=').ok_or_else(|| {
            format!("{s:?} is not HOST=URL (for example discord.com=http://127.0.0.1:8080)")
        })?;
        let base: http::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if base.scheme().is_none() || base.authority().is_none() {
            return Err(format!(
                "{url:?} needs a scheme and a host, like http://127.0.0.1:8080"
            ));
        }
        if host.is_empty() || host.contains('/') {
            return Err(format!("{host:?} is not a host name"));
        }
        Ok(Upstream {
            host: host.to_ascii_lowercase(),
            base,
        })
    }
}

/// One outbound request, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressEvent {
    pub method: String,
    pub host: String,
    /// `None` when sent; the reason when refused.
    pub refused: Option<String>,
}

/// The runtime-wide part: operator mappings, timeouts and the connection
/// pool. A clone (as `Runtime::with_upstreams` makes) shares the pool.
#[derive(Debug, Clone)]
pub(crate) struct EgressPolicy {
    pub(crate) upstreams: HashMap<String, http::Uri>,
    /// A response head must arrive within this of handing the request to
    /// the pool (connecting included); a guest may ask for less.
    first_byte_timeout: Duration,
    /// Longest wait for the next frame of a response body; a guest may ask
    /// for less.
    between_bytes_timeout: Duration,
    /// Also holds the connect timeout (TCP connect plus TLS handshake).
    pool: Arc<Pool>,
}

impl EgressPolicy {
    pub(crate) fn new(
        connect_timeout: Duration,
        first_byte_timeout: Duration,
        between_bytes_timeout: Duration,
    ) -> Self {
        EgressPolicy {
            upstreams: HashMap::new(),
            first_byte_timeout,
            between_bytes_timeout,
            pool: Arc::new(Pool::new(connect_timeout)),
        }
    }
}

impl Default for EgressPolicy {
    fn default() -> Self {
        EgressPolicy::new(
            Duration::from_secs(10),
            Duration::from_secs(30),
            Duration::from_secs(30),
        )
    }
}

/// The per-invocation part: which hosts, which secret may go where, the
/// values handed out so far, and the record.
pub(crate) struct InvocationEgress {
    pub(crate) allowed: HashSet<String>,
    /// Secret name → hosts it may be sent to (empty: any allowed host).
    pub(crate) bound: HashMap<String, Vec<String>>,
    pub(crate) revealed: Arc<Mutex<super::Revealed>>,
    pub(crate) events: Mutex<Vec<EgressEvent>>,
}

impl InvocationEgress {
    fn record(&self, method: &str, host: &str, refused: Option<String>) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(EgressEvent {
                method: method.to_owned(),
                host: host.to_owned(),
                refused,
            });
    }

    fn may_carry(&self, secret: &str, host: &str) -> bool {
        match self.bound.get(secret) {
            Some(hosts) if !hosts.is_empty() => hosts.iter().any(|h| h == host),
            _ => self.allowed.contains(host),
        }
    }

    /// A scrubber over the values handed out so far.
    fn scrubber(&self) -> Arc<Scrubber> {
        let revealed = self.revealed.lock().unwrap_or_else(|e| e.into_inner());
        Scrubber::new(revealed.iter().map(|(n, v)| (n.as_str(), v)))
    }
}

/// The `wasi:http` hooks of one invocation.
pub(crate) struct EgressHooks {
    pub(crate) policy: Arc<EgressPolicy>,
    pub(crate) invocation: Arc<InvocationEgress>,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
)>;

impl wasmtime_wasi_http::WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let (policy, invocation) = (self.policy.clone(), self.invocation.clone());
        Box::new(async move { send(&policy, &invocation, request, options).await })
    }
}

fn is_loopback_name(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Addresses a public host name must never resolve to.
pub(crate) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]) // CGNAT
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

async fn send(
    policy: &EgressPolicy,
    invocation: &InvocationEgress,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendResult {
    let (mut parts, body) = request.into_parts();
    let host = parts.uri.host().unwrap_or_default().to_ascii_lowercase();
    let method = parts.method.to_string();
    let refuse = |reason: String| {
        invocation.record(&method, &host, Some(reason));
        Err(HttpError::HttpRequestDenied)
    };
    if !invocation.allowed.contains(&host) {
        return refuse(format!(
            "{host} is not one of the extension's allowed hosts"
        ));
    }
    let https = parts.uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    if !https && !is_loopback_name(&host) {
        return refuse(format!(
            "plain http to {host}: requests leave over https only, except to loopback"
        ));
    }

    // Buffer the body (bounded) so it can be checked before it leaves.
    let mut body = body;
    let mut buffered = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if buffered.len() + data.len() > MAX_BODY {
                return refuse(format!("request body over {MAX_BODY} bytes"));
            }
            buffered.extend_from_slice(&data);
        }
    }
    let mut carried = buffered.clone();
    if let Some(pq) = parts.uri.path_and_query() {
        carried.extend_from_slice(pq.as_str().as_bytes());
    }
    for value in parts.headers.values() {
        carried.push(b'\n');
        carried.extend_from_slice(value.as_bytes());
    }
    let scrubber = invocation.scrubber();
    for secret in scrubber.names_in(&carried) {
        if !invocation.may_carry(secret, &host) {
            return refuse(format!(
                "the request carries secret {secret}, which may not be sent to {host}"
            ));
        }
    }
    zeroize::Zeroize::zeroize(&mut carried);

    match policy.upstreams.get(&host) {
        Some(base) => {
            parts.uri = rebase(base, &parts.uri);
            // The operator chose this destination: the connector may reach
            // it even if it is internal.
            if let Some(target) = parts.uri.host() {
                policy.pool.trust_mapped(target);
            }
        }
        None if !is_loopback_name(&host) => {
            let port = parts.uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(addrs) => {
                    if let Some(ip) = addrs.map(|a| a.ip()).find(|ip| is_internal(*ip)) {
                        return refuse(format!("{host} resolves to the internal address {ip}"));
                    }
                }
                Err(e) => return refuse(format!("{host} does not resolve: {e}")),
            }
        }
        None => {}
    }

    // The guest may shorten the host's timeouts, never lengthen them.
    let options = options.unwrap_or_default();
    let first_byte = options
        .first_byte_timeout
        .map_or(policy.first_byte_timeout, |t| {
            t.min(policy.first_byte_timeout)
        });
    let between_bytes = options
        .between_bytes_timeout
        .map_or(policy.between_bytes_timeout, |t| {
            t.min(policy.between_bytes_timeout)
        });
    let request = http::Request::from_parts(parts, Full::new(Bytes::from(buffered)));
    match policy.pool.send(request, first_byte, between_bytes).await {
        Ok(response) => {
            invocation.record(&method, &host, None);
            // The pool drives the connection; nothing is left to await.
            let io = async { Ok::<(), HttpError>(()) };
            Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        }
        Err(failure) => {
            invocation.record(&method, &host, Some(failure.reason));
            Err(failure.error)
        }
    }
}

/// `base` + the request's path and query (base path prefixed).
fn rebase(base: &http::Uri, original: &http::Uri) -> http::Uri {
    let prefix = base.path().trim_end_matches('/');
    let rest = original.path_and_query().map_or("/", |pq| pq.as_str());
    let mut builder = http::Uri::builder();
    if let Some(scheme) = base.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = base.authority() {
        builder = builder.authority(authority.clone());
    }
    builder
        .path_and_query(format!("{prefix}{rest}"))
        .build()
        .unwrap_or_else(|_| original.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_parsing_and_rebasing() {
        let up: Upstream = "Discord.com=http://127.0.0.1:9000/prefix/".parse().unwrap();
        assert_eq!(up.host, "discord.com");
        let uri: http::Uri = "https://discord.com/api/v10/channels/1?x=2"
            .parse()
            .unwrap();
        assert_eq!(
            rebase(&up.base, &uri).to_string(),
            "http://127.0.0.1:9000/prefix/api/v10/channels/1?x=2"
        );
        assert!("discord.com".parse::<Upstream>().is_err());
        assert!("discord.com=127.0.0.1".parse::<Upstream>().is_err());
    }

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "0.0.0.0",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "162.159.135.232", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
        assert!(
            is_loopback_name("localhost")
                && is_loopback_name("127.0.0.1")
                && is_loopback_name("[::1]")
        );
        assert!(!is_loopback_name("discord.com"));
    }
}
