//! Making DKIM key pairs and naming their selectors.
//!
//! Keys are generated with aws-lc-rs, the same library that signs, so a key
//! this module makes is always one the signer accepts. Nothing here stores a
//! key or publishes one.

use super::{DkimAlgorithm, DkimError};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{self, KeySize};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use time::OffsetDateTime;

/// A new key pair, ready to store and to publish.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedKey {
    pub algorithm: DkimAlgorithm,
    /// The private key as PKCS#8 DER: what [`super::SigningKeySpec`] takes.
    pub private_key: Vec<u8>,
    /// The base64 value of the DNS record's `p=` tag: the SubjectPublicKeyInfo
    /// DER for RSA, the raw 32-byte key for Ed25519 (RFC 8463 §4.2).
    pub public_key: String,
}

impl fmt::Debug for GeneratedKey {
    /// Leaves the private key out, so a key never lands in a log by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("algorithm", &self.algorithm)
            .field("private_key", &"<redacted>")
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// Generates an RSA 2048 or an Ed25519 key pair. RSA generation takes tens
/// to hundreds of milliseconds: call it when a domain is added, not per message.
pub fn generate_key(algorithm: DkimAlgorithm) -> Result<GeneratedKey, DkimError> {
    let failed = |_| DkimError::Generation(algorithm);
    let (private_key, public_key) = match algorithm {
        DkimAlgorithm::Rsa => {
            // 2048 bits: what RFC 8301 asks signers for, and what fits a
            // DNS TXT record comfortably (larger keys need longer records
            // that some DNS hosting panels truncate).
            let pair = rsa::KeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
            let private: Pkcs8V1Der<'static> = pair.as_der().map_err(failed)?;
            let public: PublicKeyX509Der<'static> = pair.public_key().as_der().map_err(failed)?;
            (private.as_ref().to_vec(), STANDARD.encode(public.as_ref()))
        }
        DkimAlgorithm::Ed25519 => {
            let pair = Ed25519KeyPair::generate().map_err(failed)?;
            // PKCS#8 v1, as `openssl genpkey` writes it: the form other
            // tools read when an operator exports a key.
            let private = pair.to_pkcs8v1().map_err(failed)?;
            (
                private.as_ref().to_vec(),
                STANDARD.encode(pair.public_key().as_ref()),
            )
        }
    };
    Ok(GeneratedKey {
        algorithm,
        private_key,
        public_key,
    })
}

/// The selectors for a domain's RSA and Ed25519 keys created at `now`, such
/// as `("crt202611r", "crt202611e")`. The year and month in the name let a
/// rotated key get a new selector while the old record stays published until
/// mail signed with it has been delivered. Both are valid DNS labels.
pub fn default_selectors(now: OffsetDateTime) -> (String, String) {
    // The clamp keeps the label free of a sign for years no clock will show.
    let year = now.year().clamp(0, 9999);
    let stamp = format!("crt{year:04}{:02}", u8::from(now.month()));
    (format!("{stamp}r"), format!("{stamp}e"))
}
