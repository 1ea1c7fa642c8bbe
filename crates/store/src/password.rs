//! Password hashing for SMTP credentials: argon2id with the crate's default
//! parameters, stored as a PHC string with a random salt.
//!
//! Argon2 takes tens of milliseconds and about 19 MiB of memory per call, so it
//! runs on tokio's blocking pool (never on an async worker), and a semaphore
//! bounds how many run at once: a flood of AUTH attempts queues up instead of
//! spawning hundreds of blocking threads, each with its own 19 MiB.
//! This module never logs a password or a hash.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rand::TryRngCore;
use rand::rngs::OsRng;
use tokio::sync::Semaphore;

use crate::error::StoreError;

/// Shortest password [`Store::add_credential`](crate::Store::add_credential)
/// accepts, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Length of a [`generate_password`] result.
const GENERATED_LEN: usize = 24;

/// The URL-safe base64 alphabet: 64 symbols, so each random byte masked to six
/// bits picks one with no bias (24 characters carry 144 random bits).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A well-formed PHC string with the default parameters, checked when the
/// username does not exist so that the answer takes as long as for a real user
/// with a wrong password. Its output was not computed from any password, and a
/// match would still answer "no". A test keeps its parameters equal to
/// `argon2::Params::default()`.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZS1kdW1teS1zYWx0$Wp5pA6jSUx8Hn0oTFMnnLAYY8lQAN1mLUrrkj6QrbLc";

/// Returns a new random password: 24 characters of `A-Z a-z 0-9 - _`, drawn
/// from the operating system's random number generator.
///
/// # Panics
///
/// If the operating system cannot provide random bytes, which leaves nothing
/// safe to do (the same contract as `rand::rng()`).
pub fn generate_password() -> String {
    random_token::<GENERATED_LEN>()
}

/// Returns `N` random characters of `A-Z a-z 0-9 - _` (six bits each), drawn
/// from the operating system's random number generator: passwords, session
/// and form tokens.
///
/// # Panics
///
/// As [`generate_password`].
pub(crate) fn random_token<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    #[allow(clippy::expect_used)] // documented above: no secret can be made without it
    OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system random number generator failed");
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 0x3f)]))
        .collect()
}

/// Runs argon2 off the async workers, a bounded number at a time.
#[derive(Clone, Debug)]
pub(crate) struct PasswordHashing {
    permits: Arc<Semaphore>,
}

impl PasswordHashing {
    /// One permit per CPU: more parallel hashes than cores only add memory.
    pub(crate) fn new() -> PasswordHashing {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordHashing {
            permits: Arc::new(Semaphore::new(cpus)),
        }
    }

    /// Hashes a password into a PHC string with a fresh random salt.
    pub(crate) async fn hash(&self, password: &str) -> Result<String, StoreError> {
        let password = password.to_owned();
        self.run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
        })
        .await?
        .map_err(StoreError::Hash)
    }

    /// Checks a password against a stored PHC string, or against the dummy hash
    /// when there is none (the answer is then always `false`, after the same
    /// work as a real check).
    pub(crate) async fn verify(
        &self,
        password: &str,
        stored: Option<String>,
    ) -> Result<bool, StoreError> {
        let password = password.to_owned();
        let known = stored.is_some();
        let outcome = self
            .run(move || {
                let hash = stored.as_deref().unwrap_or(DUMMY_HASH);
                // Parameters come from the PHC string, so hashes made with other
                // parameters (older defaults) still verify.
                Argon2::default().verify_password(password.as_bytes(), hash)
            })
            .await?;
        match outcome {
            Ok(()) => Ok(known),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(error) => Err(StoreError::Hash(error)),
        }
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Corrupt("password hashing semaphore closed".to_owned()))?;
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::phc::PasswordHash;

    #[test]
    fn generated_passwords_are_24_url_safe_characters_and_differ() {
        let first = generate_password();
        assert_eq!(first.len(), GENERATED_LEN);
        assert!(first.bytes().all(|b| ALPHABET.contains(&b)), "{first}");
        assert_ne!(first, generate_password());
    }

    #[test]
    fn dummy_hash_uses_the_default_parameters() {
        let parsed = PasswordHash::new(DUMMY_HASH).expect("dummy hash parses");
        let params = argon2::Params::try_from(&parsed).expect("argon2 params");
        let defaults = argon2::Params::default();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(params.m_cost(), defaults.m_cost());
        assert_eq!(params.t_cost(), defaults.t_cost());
        assert_eq!(params.p_cost(), defaults.p_cost());
    }

    #[tokio::test]
    async fn hashes_verify_and_salts_differ() {
        let hashing = PasswordHashing::new();
        let first = hashing.hash("correct horse").await.expect("hash");
        let second = hashing.hash("correct horse").await.expect("hash");
        assert!(first.starts_with("$argon2id$v=19$"), "{first}");
        assert_ne!(first, second, "each hash has its own salt");
        assert!(
            hashing
                .verify("correct horse", Some(first.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !hashing
                .verify("wrong horse", Some(first))
                .await
                .expect("verify")
        );
        assert!(
            !hashing
                .verify("anything", None)
                .await
                .expect("dummy verify")
        );
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_an_error_not_a_mismatch() {
        let hashing = PasswordHashing::new();
        let error = hashing
            .verify("password", Some("not a phc string".to_owned()))
            .await
            .expect_err("corrupt hash");
        assert!(matches!(error, StoreError::Hash(_)), "{error}");
    }
}
