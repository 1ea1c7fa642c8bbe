//! Checks that go beyond a value's type: numbers that must be positive,
//! keys that need each other, domain names, listener clashes. Also brings
//! values to their stored form (lowercased domains, URL without trailing
//! slash).
//!
//! Errors name the dotted key; this module never reads files or sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::units::format_duration;
use crate::{Config, ConfigError, DeliveryConfig, Source, TlsMode, WebhooksConfig, is_host_name};

/// The largest `smtp.max_message_size` allowed.
const MAX_MESSAGE_SIZE: u64 = 1024 * 1024 * 1024;

/// Validates `config` in place, normalizing the values that have a stored
/// form. Stops at the first problem.
pub(crate) fn check(config: &mut Config, source: &Source<'_>) -> Result<(), ConfigError> {
    if config.hostname.is_empty() {
        return Err(source.invalid("hostname", "must not be empty"));
    }
    if !is_host_name(&config.hostname) {
        return Err(source.invalid(
            "hostname",
            format!(
                "invalid host name {:?} (expected a domain name such as \"mail.example.com\")",
                config.hostname
            ),
        ));
    }
    if config.data_dir.as_os_str().is_empty() {
        return Err(source.invalid("data_dir", "must not be empty"));
    }
    check_smtp(config, source)?;
    check_listeners(config, source)?;
    check_http(config, source)?;
    let label = &config.domains.return_path_label;
    if label.is_empty()
        || label.len() > 63
        || label.starts_with('-')
        || label.ends_with('-')
        || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(source.invalid(
            "domains.return_path_label",
            format!("{label:?} is not a DNS label (letters, digits and '-')"),
        ));
    }
    config.domains.return_path_label = label.to_ascii_lowercase();
    for (name, accounts) in [
        ("open_accounts", &config.tracking.open_accounts),
        ("click_accounts", &config.tracking.click_accounts),
    ] {
        if let Some(i) = accounts.iter().position(|a| a.trim().is_empty()) {
            return Err(source.invalid(
                &format!("tracking.{name}[{i}]"),
                "must be an account name, not empty",
            ));
        }
    }
    if config.spool.segment_size < 64 * 1024 {
        return Err(source.invalid("spool.segment_size", "must be at least 64KiB"));
    }
    // Offsets within a segment are 32-bit in the spool's index; a segment
    // is closed past this size, and one batch may still be written into it.
    if config.spool.segment_size > 1024 * 1024 * 1024 {
        return Err(source.invalid("spool.segment_size", "must be at most 1GiB"));
    }
    check_delivery(&mut config.delivery, source)?;
    check_webhooks(&config.webhooks, source)?;
    check_store(&mut config.store, &config.hostname, source)
}

/// `store.url` is empty or a PostgreSQL URL; `store.node_name` defaults to
/// the host name and is a short printable name.
fn check_store(
    store: &mut crate::StoreConfig,
    hostname: &str,
    source: &Source<'_>,
) -> Result<(), ConfigError> {
    let url = store.url.trim();
    if !(url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(source.invalid(
            "store.url",
            "must be empty (the SQLite file in data_dir) or a postgres:// URL \
             (postgres://user:password@host:port/database)",
        ));
    }
    store.url = url.to_owned();
    if store.node_name.is_empty() {
        store.node_name = hostname.to_owned();
    }
    if store.node_name.len() > 64
        || !store
            .node_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(source.invalid(
            "store.node_name",
            format!(
                "{:?} is not a node name (1 to 64 letters, digits, '.', '-' or '_')",
                store.node_name
            ),
        ));
    }
    Ok(())
}

fn check_webhooks(webhooks: &WebhooksConfig, source: &Source<'_>) -> Result<(), ConfigError> {
    positive_durations(
        "webhooks",
        &[
            ("retry_initial", webhooks.retry_initial),
            ("retry_max", webhooks.retry_max),
            ("timeout", webhooks.timeout),
        ],
        source,
    )?;
    if webhooks.retry_max < webhooks.retry_initial {
        return Err(source.invalid(
            "webhooks.retry_max",
            format!(
                "must not be shorter than webhooks.retry_initial ({})",
                format_duration(webhooks.retry_initial)
            ),
        ));
    }
    Ok(())
}

fn check_smtp(config: &mut Config, source: &Source<'_>) -> Result<(), ConfigError> {
    let smtp = &mut config.smtp;
    let counts = [
        ("max_message_size", smtp.max_message_size),
        ("max_recipients", smtp.max_recipients as u64),
        ("max_line_length", smtp.max_line_length as u64),
        ("max_connections", smtp.max_connections as u64),
        ("max_connections_per_ip", smtp.max_connections_per_ip as u64),
        (
            "max_connections_per_prefix",
            smtp.max_connections_per_prefix as u64,
        ),
        (
            "max_commands_before_mail",
            smtp.max_commands_before_mail as u64,
        ),
        ("max_errors", smtp.max_errors as u64),
        ("auth_max_failures", u64::from(smtp.auth_max_failures)),
        (
            "auth_user_max_failures",
            u64::from(smtp.auth_user_max_failures),
        ),
    ];
    positive_counts("smtp", &counts, source)?;
    // A message is one spool record, and a spool segment never grows past
    // 4 GiB; a bound far below that keeps every accepted message storable.
    if smtp.max_message_size > MAX_MESSAGE_SIZE {
        return Err(source.invalid("smtp.max_message_size", "must be at most 1GiB"));
    }
    positive_durations(
        "smtp",
        &[
            ("idle_timeout", smtp.idle_timeout),
            ("command_timeout", smtp.command_timeout),
            ("auth_failure_window", smtp.auth_failure_window),
            ("auth_user_max_delay", smtp.auth_user_max_delay),
        ],
        source,
    )?;
    if let Some(reserved) = smtp.reserved_trusted_connections
        && reserved >= smtp.max_connections
    {
        return Err(source.invalid(
            "smtp.reserved_trusted_connections",
            format!(
                "must be less than smtp.max_connections ({}): other clients would never get in",
                smtp.max_connections
            ),
        ));
    }
    match (&smtp.tls_cert, &smtp.tls_key) {
        (Some(_), None) => {
            return Err(source.invalid_near(
                "smtp.tls_key",
                Some("smtp.tls_cert"),
                "missing (required when smtp.tls_cert is set)",
            ));
        }
        (None, Some(_)) => {
            return Err(source.invalid_near(
                "smtp.tls_cert",
                Some("smtp.tls_key"),
                "missing (required when smtp.tls_key is set)",
            ));
        }
        _ => {}
    }
    if smtp.default_account.trim().is_empty() {
        return Err(source.invalid("smtp.default_account", "must not be empty"));
    }
    for (i, domain) in smtp.local_domains.iter_mut().enumerate() {
        if !is_host_name(domain) {
            return Err(source.invalid(
                &format!("smtp.local_domains[{i}]"),
                format!("invalid domain {domain:?}"),
            ));
        }
        domain.make_ascii_lowercase();
    }
    Ok(())
}

/// Refuses the same address in two listeners, which would only fail later
/// when the second bind is refused. Port 0 (any free port) never clashes.
fn check_listeners(config: &Config, source: &Source<'_>) -> Result<(), ConfigError> {
    let smtp = &config.smtp;
    let lists: [(&str, &[SocketAddr]); 5] = [
        ("smtp.relay_listen", &smtp.relay_listen),
        ("smtp.submission_listen", &smtp.submission_listen),
        ("smtp.submissions_listen", &smtp.submissions_listen),
        ("http.listen", std::slice::from_ref(&config.http.listen)),
        ("http.metrics_listen", config.http.metrics_listen.as_slice()),
    ];
    let mut seen: HashMap<SocketAddr, String> = HashMap::new();
    for (name, addrs) in lists {
        for (i, addr) in addrs.iter().enumerate() {
            if addr.port() == 0 {
                continue;
            }
            let key = if name.starts_with("http.") {
                name.to_owned()
            } else {
                format!("{name}[{i}]")
            };
            if let Some(first) = seen.get(addr) {
                return Err(
                    source.invalid(&key, format!("address {addr} is already used by {first}"))
                );
            }
            seen.insert(*addr, key);
        }
    }
    Ok(())
}

fn check_http(config: &mut Config, source: &Source<'_>) -> Result<(), ConfigError> {
    positive_counts(
        "http",
        &[(
            "auth_max_failures",
            u64::from(config.http.auth_max_failures),
        )],
        source,
    )?;
    positive_durations(
        "http",
        &[("auth_failure_window", config.http.auth_failure_window)],
        source,
    )?;
    let url = config.http.public_url.trim_end_matches('/');
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match host {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            config.http.public_url = url.to_owned();
            Ok(())
        }
        _ => Err(source.invalid(
            "http.public_url",
            format!(
                "invalid URL {:?} (must start with http:// or https://, such as \"https://mail.example.com\")",
                config.http.public_url
            ),
        )),
    }
}

fn check_delivery(delivery: &mut DeliveryConfig, source: &Source<'_>) -> Result<(), ConfigError> {
    if delivery.smtp_port == 0 {
        return Err(source.invalid("delivery.smtp_port", "must be greater than 0"));
    }
    positive_durations(
        "delivery",
        &[
            ("max_age", delivery.max_age),
            ("retry_initial", delivery.retry_initial),
            ("retry_max", delivery.retry_max),
            ("connect_timeout", delivery.connect_timeout),
            ("command_timeout", delivery.command_timeout),
            ("data_timeout", delivery.data_timeout),
        ],
        source,
    )?;
    if delivery.retry_max < delivery.retry_initial {
        return Err(source.invalid(
            "delivery.retry_max",
            format!(
                "must not be shorter than delivery.retry_initial ({})",
                format_duration(delivery.retry_initial)
            ),
        ));
    }
    positive_counts(
        "delivery",
        &[
            (
                "max_connections_per_destination",
                delivery.max_connections_per_destination as u64,
            ),
            (
                "max_messages_per_connection",
                delivery.max_messages_per_connection as u64,
            ),
            (
                "max_recipients_per_transaction",
                delivery.max_recipients_per_transaction as u64,
            ),
        ],
        source,
    )?;
    for (i, route) in delivery.routes.iter_mut().enumerate() {
        let key = |name: &str| format!("delivery.routes[{i}].{name}");
        let here = format!("delivery.routes[{i}]");
        if route.domains.is_empty() {
            return Err(source.invalid_near(
                &key("domains"),
                Some(&here),
                "a route needs at least one domain (\"*\" matches every domain)",
            ));
        }
        for (j, domain) in route.domains.iter_mut().enumerate() {
            if domain != "*" && !is_host_name(domain) {
                return Err(source.invalid(
                    &format!("delivery.routes[{i}].domains[{j}]"),
                    format!("invalid domain {domain:?} (expected a domain name or \"*\")"),
                ));
            }
            domain.make_ascii_lowercase();
        }
        match (&route.auth_username, &route.auth_password) {
            (Some(_), None) => {
                return Err(source.invalid_near(
                    &key("auth_password"),
                    Some(&key("auth_username")),
                    "missing (required when auth_username is set)",
                ));
            }
            (None, Some(_)) => {
                return Err(source.invalid_near(
                    &key("auth_username"),
                    Some(&key("auth_password")),
                    "missing (required when auth_password is set)",
                ));
            }
            (Some(username), Some(_)) => {
                if username.is_empty() {
                    return Err(source.invalid(&key("auth_username"), "must not be empty"));
                }
                if route.relay.is_none() {
                    return Err(source.invalid(
                        &key("auth_username"),
                        "needs relay: credentials are only sent to a smarthost, never to MX hosts",
                    ));
                }
            }
            (None, None) => {}
        }
        if route.ca_file.is_some() && route.tls != TlsMode::Verify {
            return Err(source.invalid_near(
                &key("ca_file"),
                Some(&key("tls")),
                "only used with tls = \"verify\"",
            ));
        }
    }
    Ok(())
}

fn positive_counts(
    section: &str,
    counts: &[(&str, u64)],
    source: &Source<'_>,
) -> Result<(), ConfigError> {
    match counts.iter().find(|(_, value)| *value == 0) {
        Some((name, _)) => {
            Err(source.invalid(&format!("{section}.{name}"), "must be greater than 0"))
        }
        None => Ok(()),
    }
}

fn positive_durations(
    section: &str,
    durations: &[(&str, Duration)],
    source: &Source<'_>,
) -> Result<(), ConfigError> {
    match durations.iter().find(|(_, value)| value.is_zero()) {
        Some((name, _)) => {
            Err(source.invalid(&format!("{section}.{name}"), "must be longer than 0s"))
        }
        None => Ok(()),
    }
}
