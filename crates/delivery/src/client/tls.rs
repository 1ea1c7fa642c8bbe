//! TLS for STARTTLS between MTAs: a rustls client configuration that takes
//! any certificate (opportunistic SMTP does not authenticate the server;
//! MTA-STS and DANE will add verification per destination) but still checks
//! the handshake signatures, so the session keys belong to whoever holds the
//! presented certificate's key; and, for `tls = "verify"`, configurations
//! that check the certificate chain and host name against the system's
//! trusted CAs or a given CA file.
//!
//! Does not decide when TLS is used; the client's policy does.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, DigitallySignedStruct, ProtocolVersion, RootCertStore, SignatureScheme,
};
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
pub(crate) fn client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
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

/// A configuration that verifies the server's certificate chain and host
/// name against the certificates in `ca_file` (PEM: CAs, or a server's
/// self-signed certificate), or against the system's trusted CAs when
/// `None`. Built once per file and shared (with its session cache); a
/// failure is not remembered, so a fixed file is read again.
pub fn verifying_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    static CONFIGS: OnceLock<Mutex<HashMap<Option<PathBuf>, Arc<ClientConfig>>>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(Mutex::default);
    let key = ca_file.map(Path::to_path_buf);
    if let Some(config) = configs.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(Arc::clone(config));
    }
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("no usable CA certificate in {}", path.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no trusted CA certificates on this system (install \
                            ca-certificates, or give the route a ca_file)"
                    .to_owned());
            }
        }
    }
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    configs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, Arc::clone(&config));
    Ok(config)
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
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
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
