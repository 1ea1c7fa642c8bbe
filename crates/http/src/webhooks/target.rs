//! Where a new endpoint's URL leads: its host, or every address its name
//! resolves to, must be allowed by `webhooks.allow_private_targets` (public
//! addresses, plus what the operator allows), so that an API user cannot
//! point Carteiro at the services of its own host or network.
//!
//! This check is for the user's sake: it refuses at once what could never
//! be delivered. The guard itself is the dispatcher's, which judges the
//! addresses again each time it connects (a name may resolve elsewhere by
//! then). Both judge addresses with [`TargetPolicy`].

use std::net::IpAddr;
use std::time::Duration;

use axum::http::Uri;
use carteiro_config::units::format_duration;
use carteiro_net::TargetPolicy;

use crate::error::ApiError;

/// What every refusal ends with: what is wanted and the key that changes it.
const HINT: &str = "webhook targets must be public (see webhooks.allow_private_targets)";

/// Checks where `url` (already checked to be an absolute http(s) URL with a
/// host) leads. A literal address is judged as it is; a name is resolved
/// (the system resolver, as the dispatcher does, within `timeout`) and
/// every address must be allowed. Nothing is looked up when the policy
/// allows every address.
pub(crate) async fn check_target(
    url: &str,
    policy: &TargetPolicy,
    timeout: Duration,
) -> Result<(), ApiError> {
    if policy.allows_all() {
        return Ok(());
    }
    let uri = url
        .parse::<Uri>()
        .map_err(|_| ApiError::field("url", "not a URL"))?;
    let host = uri.host().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return policy.check(ip).map_err(|refused| {
            ApiError::field(
                "url",
                format!("{} is {}; {HINT}", refused.ip, refused.class),
            )
        });
    }
    let addresses = match tokio::time::timeout(timeout, tokio::net::lookup_host((host, 0))).await {
        Ok(Ok(found)) => found.map(|addr| addr.ip()).collect::<Vec<_>>(),
        Ok(Err(error)) => {
            return Err(ApiError::field(
                "url",
                format!("{host} does not resolve ({error}); {HINT}"),
            ));
        }
        Err(_) => {
            return Err(ApiError::field(
                "url",
                format!(
                    "{host} did not resolve within {}; {HINT}",
                    format_duration(timeout)
                ),
            ));
        }
    };
    judge(host, &addresses, policy)
}

/// Whether every address `host` resolved to is allowed; a name with no
/// address at all is refused too (it could never be delivered to).
fn judge(host: &str, addresses: &[IpAddr], policy: &TargetPolicy) -> Result<(), ApiError> {
    if addresses.is_empty() {
        return Err(ApiError::field(
            "url",
            format!("{host} does not resolve (no address); {HINT}"),
        ));
    }
    for ip in addresses {
        policy.check(*ip).map_err(|refused| {
            ApiError::field("url", format!("{host} resolves to {refused}; {HINT}"))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<(), ApiError>) -> String {
        match result {
            Err(ApiError::InvalidField { field, message }) if field == "url" => message,
            other => panic!("expected a refused url, got {other:?}"),
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter()
            .map(|ip| ip.parse().expect("an address"))
            .collect()
    }

    #[test]
    fn every_address_of_a_name_must_be_allowed() {
        let policy = TargetPolicy::public_only();
        assert_eq!(
            judge("hooks.example.com", &ips(&["93.184.216.34"]), &policy),
            Ok(())
        );
        let refused = message(judge(
            "hooks.example.com",
            &ips(&["93.184.216.34", "10.0.0.1"]),
            &policy,
        ));
        assert_eq!(
            refused,
            "hooks.example.com resolves to 10.0.0.1, a private address; webhook targets \
             must be public (see webhooks.allow_private_targets)"
        );
        let allowing = TargetPolicy::public_and(&["10.0.0.0/8".parse().expect("network")]);
        assert_eq!(
            judge(
                "hooks.example.com",
                &ips(&["93.184.216.34", "10.0.0.1"]),
                &allowing
            ),
            Ok(())
        );
    }

    #[test]
    fn a_name_without_addresses_is_refused() {
        let refused = message(judge("nowhere.test", &[], &TargetPolicy::public_only()));
        assert!(
            refused.starts_with("nowhere.test does not resolve"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn literal_addresses_are_judged_without_a_lookup() {
        let policy = TargetPolicy::public_only();
        let refused = message(
            check_target(
                "http://169.254.169.254/latest",
                &policy,
                Duration::from_secs(1),
            )
            .await,
        );
        assert_eq!(
            refused,
            "169.254.169.254 is a link-local address; webhook targets must be public \
             (see webhooks.allow_private_targets)"
        );
        let refused =
            message(check_target("http://[::1]:8080/", &policy, Duration::from_secs(1)).await);
        assert!(
            refused.starts_with("::1 is a loopback address"),
            "{refused}"
        );
        assert_eq!(
            check_target("https://93.184.216.34/", &policy, Duration::from_secs(1)).await,
            Ok(())
        );
        // With every address allowed, not even a name that cannot resolve is
        // looked up.
        assert_eq!(
            check_target(
                "https://hooks.invalid/",
                &TargetPolicy::allow_all(),
                Duration::from_secs(1)
            )
            .await,
            Ok(())
        );
    }
}
