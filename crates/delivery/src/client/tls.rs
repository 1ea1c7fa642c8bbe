//! TLS for STARTTLS between MTAs: a rustls client configuration that takes
//! any certificate (opportunistic SMTP does not authenticate the server;
//! MTA-STS and DANE will add verification per destination) but still checks
//! the handshake signatures, so the session keys belong to whoever holds the
//! presented certificate's key.
//!
//! Does not decide when TLS is used; the client's policy does.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ProtocolVersion, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Accepts every certificate chain; verifies handshake signatures with the
/// crypto provider's algorithms.
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

/// The process's rustls provider, installing aws-lc-rs when none is yet
/// (idempotent: losing the race to another installer is fine).
fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(provider) = CryptoProvider::get_default() {
        return provider.clone();
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// The shared client configuration. Built once because sharing it also
/// shares its session cache: reconnecting to a host resumes the TLS session
/// instead of a full handshake. It holds no per-destination state.
fn client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let provider = crypto_provider();
    let verifier = Arc::new(AcceptAnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// The name sent in SNI: the host name when it is one, else the address
/// (rustls then sends no SNI).
fn server_name(name: &str, addr: SocketAddr) -> ServerName<'static> {
    let name = name.trim_end_matches('.');
    let literal = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .map(|n| n.strip_prefix("IPv6:").unwrap_or(n));
    if let Some(ip) = literal.and_then(|n| n.parse::<std::net::IpAddr>().ok()) {
        return ServerName::IpAddress(ip.into());
    }
    ServerName::try_from(name.to_string())
        .unwrap_or_else(|_| ServerName::IpAddress(addr.ip().into()))
}

/// Runs the TLS handshake over an established TCP connection.
pub(super) async fn handshake(
    tcp: TcpStream,
    name: &str,
    addr: SocketAddr,
) -> io::Result<TlsStream<TcpStream>> {
    let config = client_config().map_err(io::Error::other)?;
    TlsConnector::from(config)
        .connect(server_name(name, addr), tcp)
        .await
}

/// "TLSv1.3 TLS13_AES_256_GCM_SHA384": protocol and cipher suite, for the
/// delivery record and the Received header of the next hop's logs.
pub(super) fn describe(stream: &TlsStream<TcpStream>) -> Option<String> {
    let (_, session) = stream.get_ref();
    let version = match session.protocol_version()? {
        ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
        ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
        other => format!("{other:?}"),
    };
    let suite = session.negotiated_cipher_suite()?.suite();
    Some(format!("{version} {suite:?}"))
}
