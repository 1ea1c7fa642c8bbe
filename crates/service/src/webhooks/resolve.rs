//! The dispatcher's guard against reaching the services of its own host or
//! network (SSRF): the address a POST connects to must be allowed by
//! `webhooks.allow_private_targets` ([`TargetPolicy`]) at the moment it
//! connects. The API checked the URL when the endpoint was made, but a name
//! may resolve elsewhere since (DNS rebinding), so the check is made again
//! here, where the connection is made.
//!
//! [`TargetResolver`] is the client's DNS resolver: it resolves with the
//! system resolver (as reqwest's default does) and keeps only the allowed
//! addresses, failing the request when none is left. reqwest never asks a
//! resolver about a URL whose host is an address, so [`check_literal`]
//! judges those before the request is made.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use carteiro_net::{Refused, TargetPolicy};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What every refusal ends with: what is wanted and the key that changes it.
const HINT: &str = "webhook targets must be public (see webhooks.allow_private_targets)";

/// Why a POST was not even attempted: its host resolved only to (or is) an
/// address the policy refuses.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    /// A host name whose every address is refused.
    #[error("{host} resolves only to private addresses ({refused}); {HINT}")]
    OnlyPrivate {
        /// The name looked up.
        host: String,
        /// The first address refused, and why.
        refused: Refused,
    },
    /// A URL whose host is a refused address.
    #[error("{} is {}; {HINT}", .0.ip, .0.class)]
    Literal(Refused),
}

/// A reqwest DNS resolver that drops the addresses `policy` refuses.
#[derive(Clone, Debug)]
pub(crate) struct TargetResolver {
    policy: Arc<TargetPolicy>,
}

impl TargetResolver {
    pub(crate) fn new(policy: Arc<TargetPolicy>) -> TargetResolver {
        TargetResolver { policy }
    }

    /// The allowed addresses of `host`; an error when it has none.
    async fn lookup(
        &self,
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        // Port 0: reqwest puts the URL's port in.
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        let mut first_refused = None;
        let allowed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|addr| match self.policy.check(addr.ip()) {
                Ok(()) => true,
                Err(refused) => {
                    first_refused.get_or_insert(refused);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), first_refused) {
            (true, Some(refused)) => Err(Box::new(TargetError::OnlyPrivate {
                host: host.to_owned(),
                refused,
            })),
            (true, None) => Err(format!("{host} has no address").into()),
            (false, _) => Ok(allowed),
        }
    }
}

impl Resolve for TargetResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let allowed = resolver.lookup(name.as_str()).await?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Judges a URL whose host is an address (which reqwest connects to without
/// asking the resolver); URLs with a host name, and URLs reqwest will refuse
/// itself, pass.
pub(crate) fn check_literal(url: &str, policy: &TargetPolicy) -> Result<(), TargetError> {
    // The same parser reqwest uses, so every spelling of an address
    // (`2130706433`, `0x7f.1`, `[::ffff:7f00:1]`) is read as it will be.
    let Ok(url) = Url::parse(url) else {
        return Ok(());
    };
    // The parser writes an address host in its one normal form, IPv6 in
    // brackets; a name never reads as an address.
    let host = url.host_str().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match host.parse::<IpAddr>() {
        Ok(ip) => policy.check(ip).map_err(TargetError::Literal),
        Err(_) => Ok(()),
    }
}

/// The message of a [`TargetError`] somewhere in `error`'s chain of
/// sources, so the endpoint's last error says why without reqwest's layers
/// around it.
pub(crate) fn find_refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refusal) = error.downcast_ref::<TargetError>() {
            return Some(refusal.to_string());
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(policy: TargetPolicy) -> TargetResolver {
        TargetResolver::new(Arc::new(policy))
    }

    async fn resolve(resolver: &TargetResolver, name: &str) -> Result<Vec<SocketAddr>, String> {
        let name: Name = name.parse().expect("a name");
        match resolver.resolve(name).await {
            Ok(addrs) => Ok(addrs.collect()),
            Err(error) => Err(find_refusal(error.as_ref()).unwrap_or_else(|| error.to_string())),
        }
    }

    // `localhost` resolves through /etc/hosts: no query leaves the machine.

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_by_default() {
        let refused = resolve(&resolver(TargetPolicy::public_only()), "localhost")
            .await
            .expect_err("loopback refused");
        assert!(
            refused.starts_with("localhost resolves only to private addresses ("),
            "{refused}"
        );
        assert!(refused.contains("a loopback address"), "{refused}");
        assert!(refused.ends_with(HINT), "{refused}");
        // Allowing another network changes nothing for loopback.
        let other = TargetPolicy::public_and(&["10.1.0.0/16".parse().expect("network")]);
        let refused = resolve(&resolver(other), "localhost")
            .await
            .expect_err("loopback refused");
        assert!(refused.contains("private addresses"), "{refused}");
    }

    #[tokio::test]
    async fn allowed_addresses_are_kept() {
        let everything = resolve(&resolver(TargetPolicy::allow_all()), "localhost")
            .await
            .expect("allowed");
        assert!(
            everything.iter().all(|addr| addr.ip().is_loopback()) && !everything.is_empty(),
            "{everything:?}"
        );
        let loopback = TargetPolicy::public_and(&[
            "127.0.0.0/8".parse().expect("network"),
            "::1/128".parse().expect("network"),
        ]);
        assert_eq!(
            resolve(&resolver(loopback), "localhost").await,
            Ok(everything)
        );
    }

    #[test]
    fn literal_hosts_are_judged_in_every_spelling() {
        let policy = TargetPolicy::public_only();
        for url in [
            "http://127.0.0.1:9/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
            "http://169.254.169.254/latest",
            "http://10.0.0.1/",
        ] {
            let error = check_literal(url, &policy).expect_err(url);
            assert!(error.to_string().ends_with(HINT), "{url}: {error}");
        }
        assert_eq!(
            check_literal("http://2130706433/", &policy)
                .expect_err("loopback")
                .to_string(),
            format!("127.0.0.1 is a loopback address; {HINT}")
        );
        for url in [
            "https://93.184.216.34/",
            "https://hooks.example.com/",
            "http://localhost/",
            "not a url",
        ] {
            assert!(check_literal(url, &policy).is_ok(), "{url}");
        }
        assert!(check_literal("http://127.0.0.1/", &TargetPolicy::allow_all()).is_ok());
    }
}
