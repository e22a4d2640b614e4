//! TLS for connections: which server certificates each `sslmode` accepts (rustls), and the
//! connector that hands the encrypted stream to the connection's watcher.
//!
//! As in libpq, `prefer` and `require` encrypt without checking the certificate unless a
//! root certificate is given, in which case they check it as `verify-ca` does.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::wire::{Watched, Wire};

/// libpq's `sslmode` values (`allow` is read as `prefer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Result<SslMode> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => bail!(
                "invalid sslmode \"{other}\": expected disable, allow, prefer, require, verify-ca or verify-full"
            ),
        })
    }

    /// What tokio-postgres negotiates for this mode (certificates are rustls's business).
    pub fn negotiation(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Negotiation;
        match self {
            SslMode::Disable => Negotiation::Disable,
            SslMode::Prefer => Negotiation::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Negotiation::Require,
        }
    }
}

/// The TLS settings of a connection: `sslmode` and `sslrootcert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

/// The rustls connector for `host` (None with `sslmode=disable`), used alike by sessions,
/// their cancel requests and liveness checks.
pub fn connector<S>(
    tls: &TlsSettings,
    host: &str,
) -> Result<Option<<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if tls.mode == SslMode::Disable {
        return Ok(None);
    }
    let mut make = MakeRustlsConnect::new(tls_client_config(tls.mode, tls.root_cert.as_deref())?);
    let connect = MakeTlsConnect::<S>::make_tls_connect(&mut make, host)
        .unwrap_or_else(|never| match never {});
    Ok(Some(connect))
}

/// A TLS connector whose encrypted stream reports to a connection's [`Wire`]. Without an
/// inner connector (`sslmode=disable`) tokio-postgres never asks it to connect.
pub struct WatchedTls<T> {
    pub inner: Option<T>,
    pub wire: Wire,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, T> TlsConnect<S> for WatchedTls<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
    T::Stream: Send + 'static,
{
    type Stream = Watched<T::Stream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, BoxError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let Some(inner) = self.inner else {
            return Box::pin(std::future::ready(Err::<Self::Stream, BoxError>(
                "TLS is off for this connection (sslmode=disable)".into(),
            )));
        };
        self.wire.start_tls();
        let wire = self.wire;
        let handshake = inner.connect(stream);
        Box::pin(async move {
            let stream = handshake.await.map_err(Into::into)?;
            Ok(wire.tls(stream))
        })
    }
}

pub(super) fn mode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// The rustls configuration for a mode: which certificates are accepted.
pub fn tls_client_config(mode: SslMode, root_cert: Option<&Path>) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let root_cert = match (mode, root_cert) {
        (_, Some(path)) => Some(path.to_path_buf()),
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            // libpq's default: ~/.postgresql/root.crt.
            let default =
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql/root.crt"));
            match default.filter(|p| p.exists()) {
                Some(path) => Some(path),
                None => bail!(
                    "sslmode {} needs a root certificate: add sslrootcert=/path/to/ca.pem to the URL or set PGSSLROOTCERT",
                    mode_name(mode)
                ),
            }
        }
        _ => None,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS setup")?;
    let verifier: Arc<dyn ServerCertVerifier> = match root_cert {
        None => Arc::new(AcceptAnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        }),
        Some(path) => {
            let roots = load_roots(&path)?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .context("TLS setup")?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(IgnoreHostName { inner: webpki })
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn load_roots(path: &Path) -> Result<RootCertStore> {
    if path.as_os_str() == "system" {
        bail!("sslrootcert=system is not supported; give the path of the CA certificate file");
    }
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read sslrootcert {}", path.display()))?;
    for cert in certs {
        let cert = cert.with_context(|| {
            format!(
                "sslrootcert {} is not a PEM certificate file",
                path.display()
            )
        })?;
        roots
            .add(cert)
            .with_context(|| format!("sslrootcert {}: invalid certificate", path.display()))?;
    }
    if roots.is_empty() {
        bail!("sslrootcert {} holds no certificate", path.display());
    }
    Ok(roots)
}

/// `sslmode=require` (or prefer) without a root certificate: encrypt, check nothing about
/// who the server is, as libpq does. The handshake signatures are still checked.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the root certificate; the host name is not checked.
#[derive(Debug)]
struct IgnoreHostName {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for IgnoreHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                ..
            })) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
