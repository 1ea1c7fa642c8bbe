//! The per-domain signer: parsed keys kept in memory, one `DKIM-Signature`
//! field per key for each message.
//!
//! It signs the bytes it is given as they are; it does not add, reorder or
//! re-encode header fields, so the caller must sign the message in the form
//! it will be sent (after every other header has been added).

use super::{DkimAlgorithm, DkimError};
use mail_auth::common::crypto::{Algorithm, DkimKey, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::DkimSigner;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};

/// The header fields signed when present, in the order they are listed.
///
/// They are what a receiver shows or acts on (addresses, subject, threading,
/// MIME structure, unsubscribe and feedback-loop fields). Trace fields
/// (`Received`, `Return-Path`) are left out because relays add them.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "Feedback-ID",
];

/// One stored key of a domain, as [`DomainSigner::new`] takes it.
#[derive(Clone, Copy, Debug)]
pub struct SigningKeySpec<'a> {
    pub selector: &'a str,
    pub algorithm: DkimAlgorithm,
    /// PKCS#8 DER, as [`super::generate_key`] makes it (PKCS#1 is accepted
    /// too for imported RSA keys).
    pub private_key: &'a [u8],
}

/// A domain's parsed signing keys. Parsing a key validates it, which costs
/// more than signing with Ed25519: build one signer per domain and keep it.
/// It is `Send + Sync`, so one instance can serve every connection.
pub struct DomainSigner {
    domain: String,
    /// RSA keys first: a receiver that stops at the first signature it can
    /// verify then finds the one every receiver understands.
    keys: Vec<LoadedKey>,
}

struct LoadedKey {
    selector: String,
    key: DkimKey,
}

impl DomainSigner {
    /// Parses the keys of `domain` (at least one). The domain and selectors
    /// must be ASCII DNS names (use the A-label form of an internationalised
    /// domain).
    pub fn new(domain: &str, keys: &[SigningKeySpec<'_>]) -> Result<DomainSigner, DkimError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if !is_dns_name(&domain) {
            return Err(DkimError::InvalidName {
                what: "domain",
                value: domain,
            });
        }
        if keys.is_empty() {
            return Err(DkimError::NoKeys(domain));
        }
        let mut loaded = keys
            .iter()
            .map(load_key)
            .collect::<Result<Vec<_>, DkimError>>()?;
        loaded.sort_by_key(|key| match key.key {
            DkimKey::Rsa(_) => 0,
            DkimKey::Ed25519(_) => 1,
        });
        Ok(DomainSigner {
            domain,
            keys: loaded,
        })
    }

    /// The signing domain (`d=`), lower-cased.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The `DKIM-Signature` fields for `message` (complete, folded, each
    /// ending with CRLF), one per key, RSA first: the caller prepends them.
    ///
    /// Signed are the fields of [`SIGNED_HEADERS`] the message has (every
    /// instance of each), plus `From` once more: that extra entry matches no
    /// field, so a `From` added after signing breaks the signature.
    /// Canonicalisation is relaxed/relaxed, with no `l=` and no `x=`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let headers = headers_to_sign(message)?;
        let mut out = Vec::with_capacity(self.keys.len() * 600);
        for loaded in &self.keys {
            let signature = DkimSigner::from_key(KeyRef(&loaded.key))
                .domain(self.domain.as_str())
                .selector(loaded.selector.as_str())
                .headers(headers.iter().copied())
                .sign(message)
                .map_err(|err| DkimError::Signing(err.to_string()))?;
            signature.write_header(&mut out);
        }
        Ok(out)
    }
}

/// Lets a per-message `DkimSigner` borrow a key the `DomainSigner` owns:
/// mail-auth's signer fixes its header list when built, and the list here
/// depends on the message, while parsing a key per message would cost more
/// than the signature.
struct KeyRef<'a>(&'a DkimKey);

impl SigningKey for KeyRef<'_> {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

fn load_key(spec: &SigningKeySpec<'_>) -> Result<LoadedKey, DkimError> {
    let selector = spec.selector.to_ascii_lowercase();
    if !is_dns_name(&selector) {
        return Err(DkimError::InvalidName {
            what: "selector",
            value: spec.selector.to_string(),
        });
    }
    let bad_key = |reason: String| DkimError::BadKey {
        selector: selector.clone(),
        algorithm: spec.algorithm,
        reason,
    };
    let key = match spec.algorithm {
        DkimAlgorithm::Rsa => {
            let pkcs8 = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(spec.private_key));
            match RsaKey::<Sha256>::from_key_der(pkcs8) {
                Ok(key) => DkimKey::Rsa(key),
                Err(pkcs8_err) => {
                    let pkcs1 = PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(spec.private_key));
                    DkimKey::Rsa(
                        RsaKey::<Sha256>::from_key_der(pkcs1)
                            .map_err(|_| bad_key(pkcs8_err.to_string()))?,
                    )
                }
            }
        }
        DkimAlgorithm::Ed25519 => DkimKey::Ed25519(
            Ed25519Key::from_pkcs8_der(spec.private_key).map_err(|e| bad_key(e.to_string()))?,
        ),
    };
    Ok(LoadedKey { selector, key })
}

/// The names from [`SIGNED_HEADERS`] present in `message`, then `From` again
/// (the oversigning entry). mail-auth signs every instance of a listed name
/// and lists an absent name in `h=` as it is; filtering here keeps absent
/// fields out of `h=`, so a list server adding `List-Id` does not break the
/// signature, while the extra `From` is deliberately such an absent entry.
fn headers_to_sign(message: &[u8]) -> Result<Vec<&'static str>, DkimError> {
    let mut present = [false; SIGNED_HEADERS.len()];
    for name in field_names(message) {
        if let Some(i) = SIGNED_HEADERS
            .iter()
            .position(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        {
            present[i] = true;
        }
    }
    // From is SIGNED_HEADERS[0]: RFC 6376 §5.4 requires it to be signed.
    if !present[0] {
        return Err(DkimError::NoFrom);
    }
    let mut headers: Vec<&'static str> = SIGNED_HEADERS
        .iter()
        .zip(present)
        .filter_map(|(name, present)| present.then_some(*name))
        .collect();
    headers.push("From");
    Ok(headers)
}

/// The names of the header fields of `message`, up to the blank line that
/// ends the header section. Continuation lines (starting with a space or a
/// tab) belong to the field above; bare LF line ends are accepted like CRLF.
fn field_names(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    message
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .filter(|line| !line.starts_with(b" ") && !line.starts_with(b"\t"))
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some(line[..colon].trim_ascii())
        })
}

/// Whether `name` is an ASCII DNS name (letters, digits, `-`, `_`) that can
/// go in a signature tag and in a lookup name without quoting.
pub(crate) fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
