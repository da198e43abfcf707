//! TLS with rustls (the `ring` provider: no C build tools beyond a C compiler), as libpq's
//! `sslmode` and `sslrootcert` say. `tokio-postgres-rustls` joins it to the driver, including
//! SCRAM channel binding.
//!
//! Without `sslrootcert`, verify-ca and verify-full trust the system's roots, read by
//! `rustls-native-certs`: that store is where an administrator installs a company CA or a cloud
//! provider's bundle, and it is updated with the system, unlike a list compiled into the binary.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use evtstore_core::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a connection uses TLS, as libpq's `sslmode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgSslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate (the default).
    Prefer,
    /// TLS always; the certificate is checked only when a CA file is given (as verify-ca).
    Require,
    /// TLS always, with a certificate signed by a trusted CA, whatever host name it names.
    VerifyCa,
    /// TLS always, with a certificate signed by a trusted CA for the host connected to.
    VerifyFull,
}

impl FromStr for PgSslMode {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => PgSslMode::Disable,
            "prefer" => PgSslMode::Prefer,
            "require" => PgSslMode::Require,
            "verify-ca" => PgSslMode::VerifyCa,
            "verify-full" => PgSslMode::VerifyFull,
            other => {
                let expected = "expected disable, prefer, require, verify-ca or verify-full";
                return Err(Error::backend(
                    "invalid PostgreSQL URL",
                    format!("sslmode {other:?}: {expected}"),
                ));
            }
        })
    }
}

impl PgSslMode {
    /// The driver's mode: it only knows whether TLS is off, optional or required.
    pub(crate) fn driver(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode;
        match self {
            PgSslMode::Disable => SslMode::Disable,
            PgSslMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }

    /// The mode a driver configuration asks for.
    pub(crate) fn of(config: &tokio_postgres::Config) -> Self {
        use tokio_postgres::config::SslMode;
        match config.get_ssl_mode() {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Require => PgSslMode::Require,
            _ => PgSslMode::Prefer,
        }
    }
}

/// The TLS connector for `mode`, trusting the CA file `ca` when given, else the system's roots.
pub(crate) fn connector(mode: PgSslMode, ca: Option<&Path>) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::backend("PostgreSQL TLS", e))?;
    let config = match (mode, ca) {
        (PgSslMode::VerifyFull, _) => builder.with_root_certificates(roots(ca)?),
        (PgSslMode::VerifyCa, _) | (PgSslMode::Require, Some(_)) => {
            let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(ca)?), provider)
                .build()
                .map_err(|e| Error::backend("PostgreSQL TLS", e))?;
            let verifier = Arc::new(ChainOnly(chain));
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider))),
    };
    Ok(MakeRustlsConnect::new(config.with_no_client_auth()))
}

/// The certificates of the CA file, or the system's roots.
fn roots(ca: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let Some(path) = ca else {
        let system = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(system.certs);
        if roots.is_empty() {
            let cause = "no system root certificate found; name a CA file with sslrootcert";
            return Err(Error::backend("PostgreSQL TLS", cause));
        }
        return Ok(roots);
    };
    let context = || format!("PostgreSQL TLS: sslrootcert {}", path.display());
    let certificates =
        CertificateDer::pem_file_iter(path).map_err(|e| Error::backend(context(), e))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|e| Error::backend(context(), e))?;
        roots
            .add(certificate)
            .map_err(|e| Error::backend(context(), e))?;
    }
    if roots.is_empty() {
        return Err(Error::backend(context(), "no certificate in the file"));
    }
    Ok(roots)
}

/// verify-ca: the chain must lead to a trusted CA; the name in the certificate may differ.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain is checked first: a name error means the chain was good.
        let checked = self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        match checked {
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

/// prefer and require without a CA file (as libpq): encrypted, but any certificate will do.
/// The handshake's signatures are still checked.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
