//! TLS to PostgreSQL: libpq's `sslmode` settings, on rustls.
//!
//! The database URL's query holds the same TLS settings libpq reads, with
//! one difference that makes them safer: whenever TLS is used, the
//! server's certificate is verified. libpq's `require` accepts any
//! certificate; ours checks it as `verify-full` does.
//!
//! | `sslmode` | TLS | certificate chain | host name |
//! |---|---|---|---|
//! | `disable` | never | | |
//! | `prefer` (the default) | when the server offers it | verified | verified |
//! | `require`, `verify-full` | always | verified | verified |
//! | `verify-ca` | always | verified | not checked |
//!
//! `sslrootcert=PATH` names a PEM file of the CA certificates to trust in
//! place of the bundled Mozilla roots (`sslrootcert=system` keeps those).
//! `sslcert=PATH` and `sslkey=PATH` give a client certificate (PEM), both
//! or neither. `allow` is refused, as a mode that prefers plain text.
//!
//! Threats it guards against: a passive listener on the network path
//! (TLS 1.2 or 1.3 with ring's suites); an active one who presents a
//! certificate of their own (the chain and name checks, and SCRAM channel
//! binding, `tls-server-end-point`, which ties the password exchange to
//! the certificate the server showed). `prefer` cannot stop an attacker
//! who strips the server's offer of TLS: use `require` for a database
//! off the machine.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_rustls::rustls;

use super::DbError;

/// How a URL asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    /// `require` and `verify-full`.
    VerifyFull,
    VerifyCa,
}

/// The TLS settings of a database URL, split from the settings
/// tokio-postgres reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    /// `None`: the bundled Mozilla roots.
    pub root_cert: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Splits `url` into the URL tokio-postgres is given (without the TLS
/// settings, which it would not understand) and those settings.
pub fn split_url(url: &str) -> Result<(String, Settings), DbError> {
    let invalid =
        |why: String| DbError::Unavailable(format!("the database URL is not valid: {why}"));
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut kept = Vec::new();
    let mut mode = Mode::Prefer;
    let (mut root_cert, mut cert, mut key) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).ok_or_else(|| {
            invalid(format!(
                "the value of {name} is not valid percent-encoded UTF-8"
            ))
        })?;
        match name {
            "sslmode" => {
                mode = match value.as_str() {
                    "disable" => Mode::Disable,
                    "prefer" => Mode::Prefer,
                    "require" | "verify-full" => Mode::VerifyFull,
                    "verify-ca" => Mode::VerifyCa,
                    other => {
                        return Err(invalid(format!(
                            "sslmode={} is not supported; use disable, prefer, require, verify-ca or verify-full",
                            other.chars().take(32).collect::<String>()
                        )));
                    }
                }
            }
            "sslrootcert" if value == "system" => root_cert = None,
            "sslrootcert" => root_cert = Some(PathBuf::from(value)),
            "sslcert" => cert = Some(PathBuf::from(value)),
            "sslkey" => key = Some(PathBuf::from(value)),
            _ => kept.push(pair),
        }
    }
    let client_cert = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "sslcert and sslkey go together: give both (PEM files), or neither".into(),
            ));
        }
    };
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((
        url,
        Settings {
            mode,
            root_cert,
            client_cert,
        },
    ))
}

/// Strict, as libpq is: a `%` not followed by two hex digits is an error
/// (the `percent-encoding` crate's decoder would pass it through).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

impl Settings {
    /// What tokio-postgres is told: whether to ask for TLS, and whether to
    /// insist.
    pub fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::VerifyFull | Mode::VerifyCa => SslMode::Require,
        }
    }

    /// The connector for these settings, with the CA and client
    /// certificate files read now (so a wrong path shows before any
    /// connection).
    pub fn connector(&self) -> Result<MakeTls, DbError> {
        let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
            DbError::Unavailable(format!("the database URL's {what} {}: {e}", path.display()))
        };
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            None => roots.roots = webpki_roots::TLS_SERVER_ROOTS.into(),
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| bad("sslrootcert", path, &e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad("sslrootcert", path, &e))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(bad(
                        "sslrootcert",
                        path,
                        &"it holds no CA certificate (a PEM file of `BEGIN CERTIFICATE` blocks)",
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| DbError::Unavailable(format!("TLS setup: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            Mode::VerifyCa => Arc::new(ChainOnly(webpki)),
            _ => webpki,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| DbError::Unavailable(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| bad("sslcert", cert, &e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad("sslcert", cert, &e))?;
                let private =
                    PrivateKeyDer::from_pem_file(key).map_err(|e| bad("sslkey", key, &e))?;
                builder
                    .with_client_auth_cert(certs, private)
                    .map_err(|e| bad("sslcert", cert, &e))?
            }
        };
        Ok(MakeTls {
            config: Arc::new(config),
        })
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name the
/// certificate is for is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Makes TLS sessions to the database's host.
#[derive(Clone)]
pub struct MakeTls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for MakeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MakeTls")
    }
}

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> io::Result<Connect> {
        let name = ServerName::try_from(host.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host} is not a host name TLS can check"),
            )
        })?;
        Ok(Connect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            name,
        })
    }
}

/// One TLS handshake.
pub struct Connect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect").field("name", &self.name).finish()
    }
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            self.connector
                .connect(self.name, stream)
                .await
                .map(Stream)
                .map_err(|e| {
                    let hint = if e.to_string().contains("certificate") {
                        "; if the server's certificate is signed by your own CA, give it with sslrootcert=/path/to/ca.pem in the database URL"
                    } else {
                        ""
                    };
                    io::Error::new(e.kind(), format!("TLS to PostgreSQL failed: {e}{hint}"))
                })
        })
    }
}

/// A TLS session to the database.
pub struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S> std::fmt::Debug for Stream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stream(TLS)")
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for Stream<S> {
    /// `tls-server-end-point` (RFC 5929): the hash of the certificate the
    /// server showed, with the hash its signature uses (SHA-256 for MD5
    /// and SHA-1), as PostgreSQL computes it.
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        let Some(cert) = session.peer_certificates().and_then(|c| c.first()) else {
            return ChannelBinding::none();
        };
        use sha2::Digest;
        match signature_hash(cert.as_ref()) {
            Some(Hash::Sha256) => {
                ChannelBinding::tls_server_end_point(sha2::Sha256::digest(cert).to_vec())
            }
            Some(Hash::Sha384) => {
                ChannelBinding::tls_server_end_point(sha2::Sha384::digest(cert).to_vec())
            }
            Some(Hash::Sha512) => {
                ChannelBinding::tls_server_end_point(sha2::Sha512::digest(cert).to_vec())
            }
            None => ChannelBinding::none(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// The hash of a certificate's signature algorithm (its outer
/// `signatureAlgorithm`), for channel binding; `None` for algorithms
/// without one that binding defines (Ed25519, RSA-PSS), or DER that does
/// not parse.
fn signature_hash(der: &[u8]) -> Option<Hash> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, ... }
    let (tag, certificate, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, after_tbs) = tlv(certificate)?;
    let (tag, algorithm, _) = tlv(after_tbs)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = tlv(algorithm)?;
    if tag != 0x06 {
        return None;
    }
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    match oid {
        // md5WithRSA (4), sha1WithRSA (5), sha256WithRSA (11).
        [rsa @ .., 0x04 | 0x05 | 0x0b] if rsa == RSA => Some(Hash::Sha256),
        [rsa @ .., 0x0c] if rsa == RSA => Some(Hash::Sha384),
        [rsa @ .., 0x0d] if rsa == RSA => Some(Hash::Sha512),
        // ecdsa-with-SHA1 (1.2.840.10045.4.1).
        [ec @ .., 0x01] if ec == ECDSA => Some(Hash::Sha256),
        // ecdsa-with-SHA256/384/512 (1.2.840.10045.4.3.2/3/4).
        [ec @ .., 0x03, 0x02] if ec == ECDSA => Some(Hash::Sha256),
        [ec @ .., 0x03, 0x03] if ec == ECDSA => Some(Hash::Sha384),
        [ec @ .., 0x03, 0x04] if ec == ECDSA => Some(Hash::Sha512),
        _ => None,
    }
}

/// One DER element: its tag, its contents, and what follows it.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |l, &b| (l << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_settings_are_split_from_the_url() {
        let (url, s) = split_url(
            "postgres://u:p@db:5432/n?sslmode=verify-ca&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://u:p@db:5432/n?application_name=x");
        assert_eq!(s.mode, Mode::VerifyCa);
        assert_eq!(s.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        let (url, s) = split_url("postgres://db/n").unwrap();
        assert_eq!((url.as_str(), s.mode), ("postgres://db/n", Mode::Prefer));
        assert_eq!(
            split_url("postgres://db/n?sslmode=require").unwrap().1.mode,
            Mode::VerifyFull
        );
        assert_eq!(
            split_url("postgres://db/n?sslrootcert=system")
                .unwrap()
                .1
                .root_cert,
            None
        );
    }

    #[test]
    fn unsafe_or_incomplete_settings_are_refused() {
        for (url, says) in [
            (
                "postgres://db/n?sslmode=allow",
                "sslmode=allow is not supported",
            ),
            (
                "postgres://db/n?sslmode=bogus",
                "use disable, prefer, require",
            ),
            (
                "postgres://db/n?sslcert=/c.pem",
                "sslcert and sslkey go together",
            ),
            (
                "postgres://db/n?sslkey=/k.pem",
                "sslcert and sslkey go together",
            ),
        ] {
            let e = split_url(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
        }
        let (_, s) = split_url("postgres://db/n?sslrootcert=/nonexistent/ca.pem").unwrap();
        let e = s.connector().unwrap_err().to_string();
        assert!(e.contains("sslrootcert /nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn the_binding_hash_follows_the_signature_algorithm() {
        // A certificate's outline: SEQUENCE { tbs, SEQUENCE { OID } }.
        let cert = |oid: &[u8]| {
            let mut alg = vec![0x06, oid.len() as u8];
            alg.extend_from_slice(oid);
            let mut inner = vec![0x30, 0x01, 0x00, 0x30, alg.len() as u8];
            inner.extend(alg);
            let mut der = vec![0x30, inner.len() as u8];
            der.extend(inner);
            der
        };
        let ecdsa_sha384 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
        let rsa_sha256 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
        let rsa_sha1 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
        let ed25519 = [0x2b, 0x65, 0x70];
        assert_eq!(signature_hash(&cert(&ecdsa_sha384)), Some(Hash::Sha384));
        assert_eq!(signature_hash(&cert(&rsa_sha256)), Some(Hash::Sha256));
        assert_eq!(signature_hash(&cert(&rsa_sha1)), Some(Hash::Sha256));
        assert_eq!(signature_hash(&cert(&ed25519)), None);
        assert_eq!(signature_hash(b"\x30\x05junk"), None);
    }
}
