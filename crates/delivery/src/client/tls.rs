//! TLS for STARTTLS between MTAs: a rustls client configuration that takes
//! any certificate (`carteiro_net::AcceptAnyCertificate`: opportunistic SMTP
//! does not authenticate the server; MTA-STS and DANE will add verification
//! per destination) but still checks the handshake signatures; for
//! `tls = "verify"`, configurations that check the certificate chain and
//! host name against the system's trusted CAs or a given CA file; and the
//! name sent in SNI.
//!
//! Does not decide when TLS is used; the client's policy does. The
//! handshake itself is `carteiro_net::MaybeTls::connect`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use carteiro_net::AcceptAnyCertificate;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

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
    let verifier = Arc::new(AcceptAnyCertificate::new(&provider));
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
pub(super) fn server_name(name: &str, addr: SocketAddr) -> ServerName<'static> {
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
