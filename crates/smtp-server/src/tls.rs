//! TLS for the listeners: loading the operator's certificate, or creating a
//! self-signed one for the zero-configuration start. TLS 1.2 and 1.3 only.

use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no certificate found in PEM file")]
    NoCertificate { path: String },
    #[error("{path}: no private key found in PEM file")]
    NoKey { path: String },
    #[error("invalid certificate or key: {0}")]
    Invalid(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the server TLS configuration from PEM files.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.display().to_string(),
        });
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", key.display())))?
        .ok_or_else(|| TlsError::NoKey {
            path: key.display().to_string(),
        })?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Creates a self-signed certificate for `hostname` at `cert`/`key` unless
/// both files exist already. The key file is readable by its owner only, and
/// a directory created for them (`data_dir/tls`) too, whatever the umask.
pub fn ensure_self_signed(cert: &Path, key: &Path, hostname: &str) -> Result<bool, TlsError> {
    // An empty file is what a power cut leaves of one written by a version
    // that did not sync it: made again, like a missing one.
    let present = |path: &Path| std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
    if present(cert) && present(key) {
        return Ok(false);
    }
    let mut names = vec![hostname.to_string()];
    if hostname != "localhost" {
        names.push("localhost".to_string());
    }
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Invalid(e.to_string()))?;
    let write = |path: &Path, data: &[u8], mode: u32| -> Result<(), TlsError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let err = |source| TlsError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(err)?;
        }
        // Written beside, synced, renamed into place and the directory
        // synced: after a power cut the file is whole or absent, never empty.
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = std::path::PathBuf::from(temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)
            .map_err(err)?;
        file.write_all(data).map_err(err)?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&temporary, path).map_err(err)?;
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        std::fs::File::open(parent.unwrap_or(Path::new(".")))
            .and_then(|dir| dir.sync_all())
            .map_err(err)
    };
    write(key, certified.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write(cert, certified.cert.pem().as_bytes(), 0o644)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_created_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (
            dir.path().join("tls/cert.pem"),
            dir.path().join("tls/key.pem"),
        );
        assert!(ensure_self_signed(&cert, &key, "relay.test").unwrap());
        assert!(!ensure_self_signed(&cert, &key, "relay.test").unwrap());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key must not be readable by others");
        let dir_mode = std::fs::metadata(dir.path().join("tls"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        load_server_config(&cert, &key).unwrap();
    }

    #[test]
    fn empty_files_left_by_a_power_cut_are_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (
            dir.path().join("tls/cert.pem"),
            dir.path().join("tls/key.pem"),
        );
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        std::fs::write(&cert, "").unwrap();
        std::fs::write(&key, "").unwrap();
        assert!(ensure_self_signed(&cert, &key, "relay.test").unwrap());
        load_server_config(&cert, &key).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path().join("tls"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }

    #[test]
    fn a_missing_key_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "not pem").unwrap();
        let err = load_server_config(&cert, &dir.path().join("nope.pem")).unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }
}
