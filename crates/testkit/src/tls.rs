//! Self-signed TLS material and rustls configurations for tests.
//!
//! Everything here is for loopback tests: the client configuration accepts any
//! certificate, so it must never be used to talk to a real peer.

use carteiro_net::AcceptAnyCertificate;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Installs the aws-lc-rs crypto provider as the process default, once.
///
/// rustls refuses to build configurations when no provider is chosen and
/// several are compiled in; a second call (or another crate's install) is
/// harmless, which is why the result is ignored.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A self-signed certificate for `names` (DNS names or IP addresses) and its
/// PKCS#8 private key.
///
/// # Panics
/// When rcgen cannot build a certificate for these names (a test bug).
pub fn self_signed(names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(names.clone())
        .unwrap_or_else(|err| panic!("self-signed certificate for {names:?}: {err}"));
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    (
        vec![certified.cert.der().clone()],
        PrivateKeyDer::Pkcs8(key),
    )
}

/// Writes a fresh self-signed certificate and key for `names` as PEM files
/// `cert.pem` and `key.pem` in `dir`, and returns their paths (for configs
/// that take `tls_cert` / `tls_key` paths).
///
/// # Panics
/// When the certificate cannot be built or the files cannot be written.
pub fn write_pem(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf) {
    let owned: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let certified = rcgen::generate_simple_self_signed(owned)
        .unwrap_or_else(|err| panic!("self-signed certificate for {names:?}: {err}"));
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem())
        .unwrap_or_else(|err| panic!("writing {}: {err}", cert_path.display()));
    std::fs::write(&key_path, certified.signing_key.serialize_pem())
        .unwrap_or_else(|err| panic!("writing {}: {err}", key_path.display()));
    (cert_path, key_path)
}

/// A rustls server configuration presenting `certs` with `key`.
///
/// # Panics
/// When rustls rejects the key (a test bug).
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    install_crypto_provider();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap_or_else(|err| panic!("server TLS configuration: {err}"));
    Arc::new(config)
}

/// A rustls client configuration that accepts any server certificate.
///
/// Tests talk to self-signed loopback servers; checking signatures still
/// happens so that a broken handshake is caught, only the chain is not.
pub fn insecure_client_config() -> Arc<rustls::ClientConfig> {
    install_crypto_provider();
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(&provider)))
        .with_no_client_auth();
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_gives_one_cert_and_a_usable_key() {
        let (certs, key) = self_signed(&["mx.test", "127.0.0.1"]);
        assert_eq!(certs.len(), 1);
        // Building a server config proves rustls accepts the key for the cert.
        let _ = server_config(certs, key);
    }

    #[test]
    fn write_pem_writes_parsable_files() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pem(dir.path(), &["relay.test"]);
        let cert_pem = std::fs::read_to_string(cert).unwrap();
        let key_pem = std::fs::read_to_string(key).unwrap();
        assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key_pem.contains("PRIVATE KEY-----"));
    }
}
