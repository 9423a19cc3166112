//! Outbound HTTP: every request an extension makes through
//! `wasi:http/outgoing-handler` passes this policy before anything leaves.
//!
//! In order, a request is refused (the guest sees `HTTP-request-denied`, and
//! the refusal is recorded in the invocation's outcome) when:
//! 1. its host is not one of the extension's allowed hosts (or a host taken
//!    from a config field the extension marks as a URL);
//! 2. it is plain HTTP: secrets leave only over TLS (an operator's upstream
//!    mapping may still send it to a loopback stand-in);
//! 3. it has trailers (never forwarded), or would exceed the invocation's
//!    share: concurrent requests, bytes of request bodies in flight;
//! 4. any byte of it carries a value of the execution's snapshot to a host
//!    that value is not bound to. Every part is checked, as the receiver
//!    will decode it: the method, the authority (user info included), the
//!    path and query, each header name and value, and the body, each
//!    matched case-insensitively and again after percent- and JSON-escapes
//!    are undone (see [`Scrubber::names_in`]). A value's binding is the
//!    strictest across the execution: a value no node declared may go
//!    nowhere. Such a request is an attack, not a mistake: the invocation
//!    is stopped and fails, and every later request of it is refused
//!    unchecked, so refusals cannot be used to test guesses;
//! 5. its host is not mapped by the operator and resolves to a loopback,
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

use super::guard::Bound;
use super::inject::{self, Credentials};
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EgressEvent {
    pub method: String,
    pub host: String,
    /// `None` when sent; the reason when refused.
    pub refused: Option<String>,
    /// The URL as the guest wrote it, with `‹NAME›` where it held a
    /// credential's placeholder (empty in records from before it was kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// The headers the guest set, likewise (at most [`MAX_HEADERS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Secrets whose credentials the request carried: substituted when it
    /// was sent, named in the refusal when it was not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<String>,
}

/// Most headers of one request kept in its record.
const MAX_HEADERS: usize = 32;

/// What a record shows of a request beyond its method and host.
#[derive(Default)]
struct Shown {
    url: String,
    headers: Vec<(String, String)>,
    credentials: Vec<String>,
}

/// Most events one invocation records; past it they are counted.
pub(crate) const MAX_EVENTS: usize = 256;
/// Longest method, host or reason kept in a record (guest-chosen text).
const MAX_FIELD: usize = 256;

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    format!(
        "{}… [{} bytes]",
        &text[..text.floor_char_boundary(max)],
        text.len()
    )
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
    /// Requests in flight by bot and by host, across every invocation.
    pub(crate) shares: Arc<Shares>,
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
            shares: Arc::new(Shares::new(1024, 1024)),
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

/// The per-invocation part: which hosts, which value may go where, the
/// invocation's share of the pool, and the record.
pub(crate) struct InvocationEgress {
    /// The hosts this invocation may reach (its plan's), and each
    /// secret's hosts it may send that value to.
    pub(crate) bound: Bound,
    /// Matches every value of the execution's snapshot.
    pub(crate) scrubber: Arc<Scrubber>,
    pub(crate) limits: EgressLimits,
    in_flight: Mutex<InFlight>,
    record: Mutex<Record>,
    /// Who the invocation runs for (the bot), for its share of the pool.
    owner: Arc<str>,
    /// The placeholders the invocation was issued (`credentials.get`).
    credentials: Arc<Mutex<Credentials>>,
    /// Hosts a credential's value was sent to by this invocation.
    credentialed: Mutex<HashSet<String>>,
    /// Set by the first request that carried a value where it may not go,
    /// or that went past a limit.
    stop: Mutex<Option<Stop>>,
    stopped: tokio::sync::Notify,
}

/// Why egress stopped an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A request carried a value where it may not go.
    Violation(String),
    /// A request went past one of the invocation's, its bot's or its host's
    /// limits.
    Limit(String),
}

/// How much of the pool one invocation may hold at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EgressLimits {
    pub(crate) requests: usize,
    pub(crate) body_bytes: usize,
}

#[derive(Default)]
struct InFlight {
    requests: usize,
    body_bytes: usize,
}

#[derive(Default)]
struct Record {
    events: Vec<EgressEvent>,
    dropped: usize,
}

impl InvocationEgress {
    pub(crate) fn new(
        bound: Bound,
        scrubber: Arc<Scrubber>,
        limits: EgressLimits,
        owner: Arc<str>,
        credentials: Arc<Mutex<Credentials>>,
    ) -> Self {
        InvocationEgress {
            credentials,
            credentialed: Mutex::default(),
            bound,
            scrubber,
            limits,
            in_flight: Mutex::default(),
            record: Mutex::default(),
            owner,
            stop: Mutex::default(),
            stopped: tokio::sync::Notify::new(),
        }
    }

    fn record(&self, method: &str, host: &str, refused: Option<String>, shown: Shown) {
        let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        if record.events.len() >= MAX_EVENTS {
            record.dropped += 1;
            return;
        }
        record.events.push(EgressEvent {
            method: clip(method, MAX_FIELD),
            host: clip(host, MAX_FIELD),
            refused: refused.map(|r| clip(&r, MAX_FIELD * 2)),
            url: clip(&shown.url, MAX_FIELD * 8),
            headers: shown
                .headers
                .into_iter()
                .take(MAX_HEADERS)
                .map(|(n, v)| (clip(&n, MAX_FIELD), clip(&v, MAX_FIELD * 2)))
                .collect(),
            credentials: shown.credentials,
        });
    }

    /// What the record shows of a request: the URL and headers with
    /// `‹NAME›` for each of this invocation's placeholders.
    fn shown(&self, uri: &http::Uri, headers: &http::HeaderMap) -> Shown {
        let credentials = self.credentials.lock().unwrap_or_else(|e| e.into_inner());
        let url = uri.to_string();
        let mut names = credentials.names_in(url.as_bytes());
        let headers = headers
            .iter()
            .map(|(n, v)| {
                names.extend(credentials.names_in(v.as_bytes()));
                (
                    n.as_str().to_owned(),
                    credentials.shown(&String::from_utf8_lossy(v.as_bytes())),
                )
            })
            .collect();
        names.sort();
        names.dedup();
        Shown {
            url: credentials.shown(&url),
            headers,
            credentials: names,
        }
    }

    /// The recorded events, scrubbed, and how many were not recorded.
    pub(crate) fn take_events(&self) -> (Vec<EgressEvent>, usize) {
        let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        let scrub = |t: &str| self.scrubber.scrub_str(t);
        let events = std::mem::take(&mut record.events)
            .into_iter()
            .map(|e| EgressEvent {
                method: scrub(&e.method),
                host: scrub(&e.host),
                refused: e.refused.as_deref().map(scrub),
                url: scrub(&e.url),
                headers: e
                    .headers
                    .iter()
                    .map(|(n, v)| (scrub(n), scrub(v)))
                    .collect(),
                credentials: e.credentials,
            })
            .collect();
        (events, record.dropped)
    }

    /// Whether this invocation sent a credential's value to `host`.
    fn received_credential(&self, host: &str) -> bool {
        self.credentialed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(host)
    }

    /// Why egress stopped the invocation, if it did.
    pub(crate) fn stopped_by(&self) -> Option<Stop> {
        self.stop.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolves once egress stopped the invocation.
    pub(crate) async fn stopped(&self) {
        loop {
            let notified = self.stopped.notified();
            if self.stopped_by().is_some() {
                return;
            }
            notified.await;
        }
    }

    fn stop(&self, why: Stop) {
        self.stop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(why);
        self.stopped.notify_waiters();
    }

    fn may_carry(&self, secret: &str, host: &str) -> bool {
        self.bound.allows(secret, host)
    }

    /// The first value `part` carries that may not go to `host`.
    fn forbidden_in(&self, part: &[u8], host: &str) -> Option<String> {
        self.scrubber
            .names_in(part)
            .into_iter()
            .find(|secret| !self.may_carry(secret, host))
            .map(str::to_owned)
    }

    /// Takes a share of the pool for one request to `host`: refused past
    /// the invocation's own limit; past its bot's or the host's share it
    /// waits its turn (within the invocation's wall-clock limit), so a
    /// greedy bot or a stalled host queues behind itself and nobody else.
    async fn admit(&self, shares: &Shares, host: &str) -> Result<Admitted<'_>, String> {
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if in_flight.requests >= self.limits.requests {
                return Err(format!(
                    "more than {} requests at once from one invocation (the concurrent-request limit)",
                    self.limits.requests
                ));
            }
            in_flight.requests += 1;
        }
        let mut admitted = Admitted {
            egress: self,
            permits: Vec::new(),
            body_bytes: 0,
        };
        admitted.permits = shares.wait_for(&self.owner, host).await;
        Ok(admitted)
    }
}

/// The process's requests in flight by bot and by host: each gets a fair
/// share, so a greedy bot or a stalled host cannot hold every connection
/// and descriptor. A request past a share waits for a place.
#[derive(Debug, Default)]
pub(crate) struct Shares {
    per_bot: usize,
    per_host: usize,
    by_bot: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    by_host: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl Shares {
    pub(crate) fn new(per_bot: usize, per_host: usize) -> Self {
        Shares {
            per_bot,
            per_host,
            ..Shares::default()
        }
    }

    fn semaphore(
        map: &Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
        key: &str,
        size: usize,
    ) -> Arc<tokio::sync::Semaphore> {
        map.lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(size)))
            .clone()
    }

    /// A place in `bot`'s share and in `host`'s, in that order (FIFO).
    async fn wait_for(&self, bot: &str, host: &str) -> Vec<tokio::sync::OwnedSemaphorePermit> {
        let mut permits = Vec::with_capacity(2);
        for semaphore in [
            Self::semaphore(&self.by_bot, bot, self.per_bot),
            Self::semaphore(&self.by_host, host, self.per_host),
        ] {
            permits.push(
                semaphore
                    .acquire_owned()
                    .await
                    .expect("share semaphores are never closed"),
            );
        }
        permits
    }
}

/// One admitted request's share: released when the request is done.
struct Admitted<'a> {
    egress: &'a InvocationEgress,
    /// Its places in the bot's and the host's shares.
    permits: Vec<tokio::sync::OwnedSemaphorePermit>,
    body_bytes: usize,
}

impl Admitted<'_> {
    /// Counts `more` body bytes against the invocation's budget.
    fn reserve(&mut self, more: usize) -> Result<(), String> {
        let limit = self.egress.limits.body_bytes;
        let mut in_flight = self
            .egress
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if in_flight.body_bytes + more > limit {
            return Err(format!(
                "request bodies in flight over {limit} bytes (the invocation's body budget; the per-request cap is {MAX_BODY})"
            ));
        }
        in_flight.body_bytes += more;
        self.body_bytes += more;
        Ok(())
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .egress
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        in_flight.requests -= 1;
        in_flight.body_bytes -= self.body_bytes;
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
    // Recorded as the guest built it, with `‹NAME›` for placeholders; taken
    // by the one record the request ends with.
    let shown = Mutex::new(Some(invocation.shown(&parts.uri, &parts.headers)));
    let take_shown = || {
        shown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default()
    };
    let refuse = |reason: String| {
        let shown = take_shown();
        let reason = match &shown.credentials[..] {
            [] => reason,
            names => format!(
                "{reason} (it carried the credential of {}, which was not substituted)",
                names.join(", ")
            ),
        };
        invocation.record(&method, &host, Some(reason), shown);
        Err(HttpError::HttpRequestDenied)
    };
    // Once stopped nothing is checked any more: every answer is the same,
    // so no request can test a guess.
    if invocation.stopped_by().is_some() {
        return refuse("the invocation was stopped by an earlier request".into());
    }
    if !invocation.bound.plan().allowed_hosts.contains(&host) {
        return refuse(format!(
            "{host} is not one of the extension's allowed hosts"
        ));
    }
    let https = parts.uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    if !https {
        return refuse(format!(
            "plain http to {host}: requests leave over https only"
        ));
    }
    // A refusal that stops the invocation is recorded before the stop: the
    // stop wakes the driver, which takes the records at once, and the
    // refusal must be among them.
    let stop_with = |why: fn(String) -> Stop, reason: String| {
        let refused = refuse(reason.clone());
        invocation.stop(why(reason));
        refused
    };
    // A limit is a limit: the invocation stops, as it would for memory.
    let limit = |reason: String| stop_with(Stop::Limit, reason);
    let mut share = match invocation.admit(&policy.shares, &host).await {
        Ok(share) => share,
        Err(reason) => return limit(reason),
    };

    // Buffer the body (bounded) so it can be checked before it leaves.
    let mut body = body;
    let mut buffered = zeroize::Zeroizing::new(Vec::new());
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if frame.is_trailers() {
            return refuse("the request has trailers, which narakim does not send".into());
        }
        if let Ok(data) = frame.into_data() {
            if buffered.len() + data.len() > MAX_BODY {
                return limit(format!(
                    "a request body over {MAX_BODY} bytes (the per-request cap)"
                ));
            }
            if let Err(reason) = share.reserve(data.len()) {
                return limit(reason);
            }
            buffered.extend_from_slice(&data);
        }
    }

    // Placeholders are substituted where their secrets declared, or the
    // request is refused with nothing substituted.
    if let Err(reason) = substitute(invocation, &mut parts, &mut buffered, https) {
        return refuse(reason);
    }

    // Every byte that leaves, part by part, as the receiver decodes it.
    let authority = parts.uri.authority().map_or("", |a| a.as_str());
    let path = parts.uri.path_and_query().map_or("", |pq| pq.as_str());
    let mut checked: Vec<&[u8]> = vec![method.as_bytes(), authority.as_bytes(), path.as_bytes()];
    for (name, value) in &parts.headers {
        checked.push(name.as_str().as_bytes());
        checked.push(value.as_bytes());
    }
    checked.push(&buffered);
    if let Some(secret) = checked
        .iter()
        .find_map(|part| invocation.forbidden_in(part, &host))
    {
        let reason = format!(
            "the request carries secret {secret}, which may not be sent to {host}; the invocation was stopped"
        );
        return stop_with(Stop::Violation, reason);
    }

    match policy.upstreams.get(&host) {
        Some(base) => {
            parts.uri = rebase(base, &parts.uri);
            // The operator chose this destination: the connector may reach
            // it even if it is internal.
            if let Some(target) = parts.uri.host() {
                policy.pool.trust_mapped(target);
            }
        }
        None => {
            let port = parts.uri.port_u16().unwrap_or(443);
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(addrs) => {
                    if let Some(ip) = addrs.map(|a| a.ip()).find(|ip| is_internal(*ip)) {
                        return refuse(format!("{host} resolves to the internal address {ip}"));
                    }
                }
                Err(e) => return refuse(format!("{host} does not resolve: {e}")),
            }
        }
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
    let body = Bytes::from(std::mem::take(&mut *buffered));
    let request = http::Request::from_parts(parts, Full::new(body));
    let sent = policy.pool.send(request, first_byte, between_bytes).await;
    drop(share);
    match sent {
        Ok(response) => {
            let response = match reflect(invocation, &host, response) {
                Ok(response) => response,
                Err(reason) => {
                    invocation.record(&method, &host, Some(reason), take_shown());
                    return Err(HttpError::HttpResponseContentCoding(None));
                }
            };
            invocation.record(&method, &host, None, take_shown());
            // The pool drives the connection; nothing is left to await.
            let io = async { Ok::<(), HttpError>(()) };
            Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        }
        Err(failure) => {
            invocation.record(&method, &host, Some(failure.reason), take_shown());
            Err(failure.error)
        }
    }
}

/// Puts the values of the invocation's credentials into the request where
/// they were declared, or says why the request is refused.
fn substitute(
    invocation: &InvocationEgress,
    parts: &mut http::request::Parts,
    body: &mut zeroize::Zeroizing<Vec<u8>>,
    https: bool,
) -> Result<(), String> {
    let credentials = invocation
        .credentials
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut request = inject::Request {
        method: parts.method.to_string(),
        host: parts.uri.host().unwrap_or_default().to_ascii_lowercase(),
        authority: parts
            .uri
            .authority()
            .map_or_else(String::new, |a| a.as_str().to_owned()),
        secure: https,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        // Moved, not copied: the buffer is zeroizing, a copy would not be.
        body: std::mem::take(&mut **body),
    };
    // Substituted, or as it was when nothing was or the request is refused.
    let substituted = credentials.substitute(&mut request);
    **body = std::mem::take(&mut request.body);
    let uses = substituted.map_err(|refusal| refusal.to_string())?;
    if uses.is_empty() {
        return Ok(());
    }
    // The reflector must see the bytes the guest will read: a piece of an
    // echo (a byte range) or a compressed one would carry the value past it.
    let names = || {
        let mut names: Vec<&str> = uses.iter().map(|u| u.name.as_str()).collect();
        names.dedup();
        names.join(", ")
    };
    if request
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("range") || n.eq_ignore_ascii_case("if-range"))
    {
        return Err(format!(
            "a request carrying the credential of {} may not ask for a byte range (Range), which could return pieces of the value",
            names()
        ));
    }
    invocation
        .credentialed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(request.host.clone());
    request
        .headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("accept-encoding"));
    request
        .headers
        .push(("accept-encoding".into(), b"identity".to_vec()));
    let path_and_query = match &request.query {
        Some(query) => format!("{}?{query}", request.path),
        None => request.path.clone(),
    };
    let mut uri = http::Uri::builder().path_and_query(path_and_query);
    if let Some(scheme) = parts.uri.scheme() {
        uri = uri.scheme(scheme.clone());
    }
    if let Some(authority) = parts.uri.authority() {
        uri = uri.authority(authority.clone());
    }
    let uri = uri
        .build()
        .map_err(|_| "a credential's value cannot stand in the URL".to_owned())?;
    let mut headers = http::HeaderMap::with_capacity(request.headers.len());
    for (name, value) in request.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| "a header name is not valid".to_owned())?;
        let value = http::HeaderValue::from_bytes(&value).map_err(|_| {
            format!("a credential's value cannot stand in header {name} (it holds a line break or a control character)")
        })?;
        headers.append(name, value);
    }
    parts.uri = uri;
    parts.headers = headers;
    Ok(())
}

/// The response with every value of the invocation's credentials put back
/// as its placeholder, in the headers and, as it streams, in the body.
fn reflect(
    invocation: &InvocationEgress,
    host: &str,
    response: http::Response<WasiBody>,
) -> Result<http::Response<WasiBody>, String> {
    let credentials = invocation
        .credentials
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if credentials.is_empty() {
        return Ok(response);
    }
    let (mut parts, body) = response.into_parts();
    let encoding = parts
        .headers
        .get(http::header::CONTENT_ENCODING)
        .filter(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"));
    // An encoded body from a host that never received a value of this
    // invocation cannot echo one: it passes, headers reflected. From a host
    // that did, a body the reflector cannot read (compressed although the
    // request asked for identity) does not reach the guest.
    let reflector = credentials.reflector();
    if encoding.is_some() && !invocation.received_credential(host) {
        reflect_headers(&reflector, &mut parts.headers);
        return Ok(http::Response::from_parts(parts, body));
    }
    if let Some(encoding) = encoding {
        return Err(format!(
            "the response is encoded ({}), so narakim cannot put placeholders back over the credential's value; it was not handed to the extension",
            String::from_utf8_lossy(encoding.as_bytes())
        ));
    }
    reflect_headers(&reflector, &mut parts.headers);
    let body = ReflectBody {
        inner: body,
        reflector,
        trailers: None,
        done: false,
    };
    Ok(http::Response::from_parts(parts, body.boxed_unsync()))
}

/// Header values with each credential's value put back as its
/// placeholder; a header whose name holds a value is dropped.
fn reflect_headers(reflector: &inject::Reflector, headers: &mut http::HeaderMap) {
    let named: Vec<http::HeaderName> = headers
        .keys()
        .filter(|n| reflector.replace(n.as_str().as_bytes()) != n.as_str().as_bytes())
        .cloned()
        .collect();
    for name in named {
        headers.remove(name);
    }
    for value in headers.values_mut() {
        let reflected = reflector.replace(value.as_bytes());
        if reflected != value.as_bytes() {
            match http::HeaderValue::from_bytes(&reflected) {
                Ok(new) => *value = new,
                Err(_) => *value = http::HeaderValue::from_static(""),
            }
        }
    }
}

/// A response body passed through an [`inject::Reflector`].
struct ReflectBody {
    inner: WasiBody,
    reflector: inject::Reflector,
    /// Trailers wait until the held-back bytes are out.
    trailers: Option<http::HeaderMap>,
    done: bool,
}

impl http_body::Body for ReflectBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        use std::task::Poll;
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(
                    this.trailers
                        .take()
                        .map(|t| Ok(http_body::Frame::trailers(t))),
                );
            }
            match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = this.reflector.push(&data);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(frame) => {
                        if let Ok(mut trailers) = frame.into_trailers() {
                            reflect_headers(&this.reflector, &mut trailers);
                            this.trailers = Some(trailers);
                        }
                    }
                },
                Poll::Ready(None) => {
                    this.done = true;
                    let rest = this.reflector.finish();
                    if !rest.is_empty() {
                        return Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(rest)))));
                    }
                }
            }
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
    }
}
