//! The socket: where the service listens, TLS, and a graceful stop.
//!
//! Secure defaults, as an operator of Vault expects:
//! - loopback unless told otherwise;
//! - any other address is refused without TLS (`--tls-cert`, `--tls-key`),
//!   unless `--insecure-http` says plain HTTP is meant (behind a proxy that
//!   terminates TLS, say);
//! - a client gets 10 s to send its request head, so a slow client cannot
//!   hold a connection open for free.
//!
//! On shutdown the listener stops accepting, in-flight requests finish,
//! and idle keep-alive connections close.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use super::ServiceConfig;

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the service could not listen.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "refusing to serve plain HTTP on {addr}, which is not a loopback address: API tokens and secret values would cross the network in clear. Give --tls-cert and --tls-key, or --insecure-http if TLS is terminated in front of narakim"
    )]
    PlainHttpOffLoopback { addr: SocketAddr },
    #[error("cannot read the TLS {what} {}: {reason}", path.display())]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the TLS certificate and key do not work together: {0}")]
    TlsConfig(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A bound socket, with TLS if configured.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.tcp.local_addr().ok())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Checks the address policy and loads TLS, before anything binds.
pub fn tls_for(config: &ServiceConfig) -> Result<Option<TlsAcceptor>, ListenError> {
    let tls = match &config.tls {
        Some((cert, key)) => Some(load_tls(cert, key)?),
        None => None,
    };
    if tls.is_none() && !config.listen.ip().is_loopback() && !config.insecure_http {
        return Err(ListenError::PlainHttpOffLoopback {
            addr: config.listen,
        });
    }
    Ok(tls)
}

impl Listener {
    pub async fn bind(config: &ServiceConfig) -> Result<Listener, ListenError> {
        let tls = tls_for(config)?;
        let tcp = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ListenError::Bind {
                addr: config.listen,
                source,
            })?;
        Ok(Listener { tcp, tls })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serves `router` until `shutdown` completes, then lets in-flight
    /// requests finish (up to `grace`).
    pub async fn serve(self, router: Router, shutdown: impl Future<Output = ()>, grace: Duration) {
        let graceful = GracefulShutdown::new();
        let service = TowerToHyperService::new(router);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, _peer) = tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors, say: wait instead of spinning.
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            // Each connection is watched from the start (a TLS handshake
            // included), so the shutdown below waits for it.
            let (service, tls, watcher) = (service.clone(), self.tls.clone(), graceful.watcher());
            tokio::spawn(async move {
                let builder = {
                    let mut b = hyper::server::conn::http1::Builder::new();
                    b.timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT);
                    b
                };
                match tls {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        let _ = watcher.watch(conn).await;
                    }
                    Some(tls) => {
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await
                        else {
                            return;
                        };
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        let _ = watcher.watch(conn).await;
                    }
                }
            });
        }
        drop(self.tcp);
        let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
    }
}

fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor, ListenError> {
    let file_error = |what, path: &Path| {
        let path = path.to_owned();
        move |e: rustls_pki_types::pem::Error| ListenError::TlsFile {
            what,
            path,
            reason: e.to_string(),
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(file_error("certificate", cert))?
        .collect::<Result<_, _>>()
        .map_err(file_error("certificate", cert))?;
    if certs.is_empty() {
        return Err(ListenError::TlsFile {
            what: "certificate",
            path: cert.to_owned(),
            reason: "it holds no PEM CERTIFICATE block".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(file_error("key", key))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ListenError::TlsConfig(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
