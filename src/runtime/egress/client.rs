//! The pooled HTTP/1.1 client every request leaves through, once the policy
//! has let it pass.
//!
//! One [`Pool`] per [`Runtime`](crate::runtime::Runtime): connections (and
//! their TLS sessions) are kept alive between requests and between
//! invocations, up to [`MAX_IDLE_PER_HOST`] idle ones per scheme and
//! authority, each closed after [`IDLE_TIMEOUT`] unused.
//!
//! The connector resolves the name itself and refuses, at connect time, a
//! name resolving to an internal address (unless it is a loopback name or a
//! host the operator mapped a request to): the answer checked is the answer
//! connected to, so a rebinding between the policy's look-up and the connect
//! gets nowhere.
//!
//! Timeouts, all set by the host: the connector gives up on TCP connect plus
//! TLS handshake after the connect timeout ([`HttpError::ConnectionTimeout`]);
//! a response head that has not arrived within the first-byte timeout of
//! handing the request to the pool (connecting included) is
//! [`HttpError::ConnectionReadTimeout`]; so is a response body that stalls
//! longer than the between-bytes timeout between two frames.

use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, RwLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::is_internal;

/// How long an unused pooled connection is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most idle connections kept per scheme and authority.
pub(crate) const MAX_IDLE_PER_HOST: usize = 32;

/// The runtime-wide connection pool.
pub(crate) struct Pool {
    client: Client<Connector, Full<Bytes>>,
    /// Hosts requests were mapped to by the operator: shared with the
    /// connector, which lets them resolve to internal addresses.
    mapped: Arc<RwLock<HashSet<String>>>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// Why a request failed, as recorded and as the guest sees it.
pub(crate) struct Failure {
    pub(crate) reason: String,
    pub(crate) error: HttpError,
}

impl Pool {
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        let mapped: Arc<RwLock<HashSet<String>>> = Arc::default();
        let connector = Connector {
            mapped: mapped.clone(),
            connect_timeout,
            tls: TlsConnector::from(tls_config()),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Pool {
            client,
            mapped,
            connect_timeout,
        }
    }

    /// Lets the connector reach `host` even if it resolves to an internal
    /// address: the operator mapped a request there.
    pub(crate) fn trust_mapped(&self, host: &str) {
        let host = host.to_ascii_lowercase();
        let known = self
            .mapped
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&host);
        if !known {
            self.mapped
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(host);
        }
    }

    /// Sends `request` (absolute URI) over a pooled connection.
    pub(crate) async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
        first_byte_timeout: Duration,
        between_bytes_timeout: Duration,
    ) -> Result<http::Response<WasiBody>, Failure> {
        let response = match tokio::time::timeout(first_byte_timeout, self.client.request(request))
            .await
        {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(failure(&e)),
            Err(_elapsed) => {
                return Err(Failure {
                    reason: format!("sending failed: no response within {first_byte_timeout:?}"),
                    error: HttpError::ConnectionReadTimeout,
                });
            }
        };
        Ok(response.map(|incoming| {
            TimedBody {
                incoming,
                between_bytes: between_bytes_timeout,
                stall: None,
            }
            .boxed_unsync()
        }))
    }
}

/// Maps a client error to what is recorded and what the guest sees.
fn failure(e: &hyper_util::client::legacy::Error) -> Failure {
    let source = std::error::Error::source(e);
    if let Some(refused) = source.and_then(|s| s.downcast_ref::<ConnectError>()) {
        let error = match refused {
            ConnectError::Internal { .. } => HttpError::HttpRequestDenied,
            ConnectError::Timeout(_) => HttpError::ConnectionTimeout,
            ConnectError::Resolve { .. } => HttpError::DnsError {
                rcode: None,
                info_code: None,
            },
            ConnectError::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                HttpError::ConnectionRefused
            }
            ConnectError::Connect(e) => HttpError::Connect(io::Error::new(e.kind(), e.to_string())),
            ConnectError::Tls(e) => match e.get_ref().and_then(|i| i.downcast_ref()) {
                Some(rustls::Error::InvalidCertificate(_)) => HttpError::TlsCertificateError,
                _ => HttpError::Tls(io::Error::new(e.kind(), e.to_string())),
            },
            ConnectError::BadName(_) => HttpError::HttpRequestUriInvalid,
        };
        let reason = match refused {
            ConnectError::Internal { .. } => refused.to_string(),
            _ => format!("sending failed: {refused}"),
        };
        return Failure { reason, error };
    }
    let error = match source.and_then(|s| s.downcast_ref::<hyper::Error>()) {
        Some(h) => hyper_error(h),
        None => HttpError::InternalError(Some(e.to_string())),
    };
    let detail = source.map_or_else(|| e.to_string(), ToString::to_string);
    Failure {
        reason: format!("sending failed: {detail}"),
        error,
    }
}

fn hyper_error(e: &hyper::Error) -> HttpError {
    if e.is_timeout() {
        HttpError::HttpResponseTimeout
    } else if e.is_incomplete_message() {
        HttpError::HttpResponseIncomplete
    } else if e.is_parse() {
        HttpError::HttpProtocolError
    } else if e.is_canceled() || e.is_closed() {
        HttpError::ConnectionTerminated
    } else {
        HttpError::InternalError(Some(e.to_string()))
    }
}

/// One TLS configuration for the process: webpki roots, ring, HTTP/1.1.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    });
    CONFIG.clone()
}

/// Why the connector gave up.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("{host} resolves to the internal address {ip}")]
    Internal { host: String, ip: IpAddr },
    #[error("{host} does not resolve: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("connecting took over {0:?}")]
    Timeout(Duration),
    #[error("connecting: {0}")]
    Connect(io::Error),
    #[error("TLS: {0}")]
    Tls(io::Error),
    #[error("{0:?} is not a valid TLS server name")]
    BadName(String),
}

/// Resolves, checks the answer, connects and (for https) handshakes.
#[derive(Clone)]
struct Connector {
    mapped: Arc<RwLock<HashSet<String>>>,
    connect_timeout: Duration,
    tls: TlsConnector,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            tokio::time::timeout(this.connect_timeout, this.connect(uri))
                .await
                .map_err(|_| ConnectError::Timeout(this.connect_timeout))?
        })
    }
}

impl Connector {
    async fn connect(&self, uri: http::Uri) -> Result<TokioIo<Stream>, ConnectError> {
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        // `[::1]` in a URI, `::1` to the resolver and to rustls.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });

        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|source| ConnectError::Resolve {
                host: host.clone(),
                source,
            })?
            .collect();
        // Only an operator's mapping may lead to an internal address.
        let trusted = self
            .mapped
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&host);
        if !trusted && let Some(ip) = addrs.iter().map(SocketAddr::ip).find(|ip| is_internal(*ip)) {
            return Err(ConnectError::Internal { host, ip });
        }

        let mut last = io::Error::new(io::ErrorKind::NotFound, "no addresses");
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let tcp = tcp.ok_or(ConnectError::Connect(last))?;
        let _ = tcp.set_nodelay(true);
        if !https {
            return Ok(TokioIo::new(Stream::Plain(tcp)));
        }
        let name = match bare.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(bare.to_owned())
                .map_err(|_| ConnectError::BadName(bare.to_owned()))?,
        };
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(ConnectError::Tls)?;
        Ok(TokioIo::new(Stream::Tls(Box::new(tls))))
    }
}

/// A connection, plain (loopback only, by policy) or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A response body that fails with [`HttpError::ConnectionReadTimeout`]
/// when the peer keeps it waiting longer than `between_bytes` for a frame.
/// The clock runs only while the body is actually waited on, so a guest
/// slow to read is not blamed on the peer.
struct TimedBody {
    incoming: Incoming,
    between_bytes: Duration,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.stall = None;
                Poll::Ready(frame.map(|f| f.map_err(|e| hyper_error(&e))))
            }
            Poll::Pending => {
                let limit = this.between_bytes;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                ready!(stall.as_mut().poll(cx));
                this.stall = None;
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn get(uri: &str) -> http::Request<Full<Bytes>> {
        http::Request::get(uri).body(Full::default()).unwrap()
    }

    /// A loopback server answering each connection with `reply`, then
    /// holding it open.
    async fn server(reply: &'static [u8]) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    let _ = conn.write_all(reply).await;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn internal_addresses_are_refused_at_connect_unless_mapped() {
        let pool = Pool::new(Duration::from_secs(1));
        let second = Duration::from_secs(1);
        let port = server(b"HTTP/1.1 204 No Content\r\n\r\n").await;

        // 0.0.0.0 reaches the loopback server on Linux, but is no loopback
        // name: refused before connecting.
        let Err(refused) = pool
            .send(get(&format!("http://0.0.0.0:{port}/")), second, second)
            .await
        else {
            panic!("connected to 0.0.0.0");
        };
        assert_eq!(
            refused.reason,
            "0.0.0.0 resolves to the internal address 0.0.0.0"
        );
        assert!(matches!(refused.error, HttpError::HttpRequestDenied));

        // Once the operator mapped a request there, it is reached.
        pool.trust_mapped("0.0.0.0");
        let mapped = pool
            .send(get(&format!("http://0.0.0.0:{port}/")), second, second)
            .await
            .map_err(|f| f.reason);
        assert_eq!(mapped.unwrap().status(), 204);

        // Loopback too: only an operator's mapping leads there.
        for host in ["127.0.0.1", "localhost"] {
            let refused = pool
                .send(get(&format!("http://{host}:{port}/")), second, second)
                .await;
            assert!(refused.is_err(), "{host} reached without a mapping");
            pool.trust_mapped(host);
            let response = pool
                .send(get(&format!("http://{host}:{port}/")), second, second)
                .await
                .map_err(|f| f.reason)
                .unwrap();
            assert_eq!(response.status(), 204);
        }
    }

    #[tokio::test]
    async fn first_byte_and_between_bytes_timeouts() {
        let pool = Pool::new(Duration::from_secs(1));
        pool.trust_mapped("127.0.0.1");
        let short = Duration::from_millis(200);

        let silent = server(b"").await;
        let Err(f) = pool
            .send(get(&format!("http://127.0.0.1:{silent}/")), short, short)
            .await
        else {
            panic!("a silent server answered");
        };
        assert!(
            matches!(f.error, HttpError::ConnectionReadTimeout),
            "{}",
            f.reason
        );

        let stalls = server(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{\"a\"").await;
        let response = pool
            .send(get(&format!("http://127.0.0.1:{stalls}/")), short, short)
            .await
            .map_err(|f| f.reason)
            .unwrap();
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "{\"a\"");
        let stalled = body.frame().await.unwrap().unwrap_err();
        assert!(
            matches!(stalled, HttpError::ConnectionReadTimeout),
            "{stalled}"
        );
    }

    #[tokio::test]
    async fn https_handshakes_with_rustls() {
        assert_eq!(tls_config().alpn_protocols, [b"http/1.1".to_vec()]);
        // A plain HTTP server behind an https URL: the handshake fails.
        let port = server(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        let second = Duration::from_secs(1);
        let pool = Pool::new(second);
        pool.trust_mapped("127.0.0.1");
        let Err(f) = pool
            .send(get(&format!("https://127.0.0.1:{port}/")), second, second)
            .await
        else {
            panic!("TLS to a plain server succeeded");
        };
        assert!(matches!(f.error, HttpError::Tls(_)), "{}", f.reason);
        assert!(
            f.reason.starts_with("sending failed: TLS: "),
            "{}",
            f.reason
        );
    }
}
