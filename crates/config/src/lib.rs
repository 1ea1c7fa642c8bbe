//! Carteiro's configuration: turns the TOML file into a validated [`Config`],
//! refusing unknown keys and bad values with a message that names the dotted
//! key (`delivery.routes[1].tls`) and its line.
//!
//! This crate only reads text into values. It does no I/O besides reading the
//! file in [`Config::from_file`] and the machine's host name for the default
//! `hostname`; relative paths are kept as written for the caller to resolve,
//! and nothing here binds sockets, creates directories or loads certificates.

mod de;
mod delivery;
mod dns;
mod domains;
mod error;
mod http;
mod keypath;
mod smtp;
mod spool;
mod store;
mod tracking;
pub mod units;
mod validate;
mod webhooks;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::DeTable;

pub use delivery::{DeliveryConfig, RelayTarget, Route, TlsMode};
pub use dns::DnsConfig;
pub use domains::DomainsConfig;
pub use error::{ConfigError, Location};
pub use http::HttpConfig;
pub use smtp::SmtpConfig;
pub use spool::SpoolConfig;
pub use store::StoreConfig;
pub use tracking::TrackingConfig;
pub use webhooks::{PrivateTargets, WebhooksConfig};

use keypath::KeyIndex;

/// The whole configuration. Build it with [`Config::from_toml_str`] or
/// [`Config::from_file`], which validate it and bring values to their stored
/// form (lowercased domains, `public_url` without trailing slash);
/// deserializing it directly with serde skips those checks.
/// [`Config::default`] is the zero-config setup (every key absent).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Name of this host: EHLO name, `Received` headers, DSN
    /// `Reporting-MTA`, and a domain Carteiro receives mail for. Default: the
    /// machine's host name when it is a valid domain name, else `localhost`.
    pub hostname: String,
    /// Directory for the spool, databases and the self-signed certificate,
    /// kept as written (a relative path is resolved by the caller).
    /// Default `"./carteiro-data"`.
    pub data_dir: PathBuf,
    /// SMTP listeners, limits and authentication policy.
    pub smtp: SmtpConfig,
    /// HTTP API listener and public URL.
    pub http: HttpConfig,
    /// Resolvers used for delivery and authentication checks.
    pub dns: DnsConfig,
    /// Outbound delivery: retries, limits, timeouts and routes.
    pub delivery: DeliveryConfig,
    /// Limits of the durable message store.
    pub spool: SpoolConfig,
    /// The policy for sending domains.
    pub domains: DomainsConfig,
    /// Accounts whose mail is open- or click-tracked by default.
    pub tracking: TrackingConfig,
    /// Pushing events to webhook endpoints: retries, timeout, and the
    /// addresses they may reach.
    pub webhooks: WebhooksConfig,
    /// Where the relational data lives (SQLite or a shared PostgreSQL) and
    /// this node's name.
    pub store: StoreConfig,
}

impl Default for Config {
    fn default() -> Self {
        let hostname = machine_hostname().unwrap_or_else(|| "localhost".to_owned());
        Config {
            store: StoreConfig {
                node_name: hostname.clone(),
                ..StoreConfig::default()
            },
            hostname,
            data_dir: PathBuf::from("./carteiro-data"),
            smtp: SmtpConfig::default(),
            http: HttpConfig::default(),
            dns: DnsConfig::default(),
            delivery: DeliveryConfig::default(),
            spool: SpoolConfig::default(),
            domains: DomainsConfig::default(),
            tracking: TrackingConfig::default(),
            webhooks: WebhooksConfig::default(),
        }
    }
}

impl Config {
    /// Parses and validates a configuration. `origin` is the file the text
    /// came from; it is only used in error messages.
    pub fn from_toml_str(text: &str, origin: Option<&Path>) -> Result<Config, ConfigError> {
        let file = origin.map(Path::to_path_buf);
        let table = DeTable::parse(text).map_err(|err| {
            let location = match err.span() {
                Some(span) => Location::at(text, span.start, file.clone()),
                None => Location {
                    file: file.clone(),
                    ..Location::default()
                },
            };
            // toml says only "duplicate key"; the span holds which one.
            let mut message = err.message().to_owned();
            if message == "duplicate key"
                && let Some(key) = err.span().and_then(|span| text.get(span))
            {
                message = format!("duplicate key {key}");
            }
            ConfigError::Syntax { location, message }
        })?;
        let index = KeyIndex::new(&table);
        let source = Source {
            text,
            index: &index,
            file,
        };
        let mut config = Config::deserialize(toml::de::Deserializer::from(table))
            .map_err(|err| source.deserialize_error(&err))?;
        validate::check(&mut config, &source)?;
        Ok(config)
    }

    /// Reads, parses and validates the configuration file at `path`.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml_str(&text, Some(path))
    }

    /// Whether Carteiro receives mail for `domain` itself: `hostname` or one
    /// of `smtp.local_domains`, ignoring ASCII case.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.hostname.eq_ignore_ascii_case(domain)
            || self
                .smtp
                .local_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// Whether `name` can be used as a host name: a domain name, not an address
/// literal.
pub(crate) fn is_host_name(name: &str) -> bool {
    !name.starts_with('[') && carteiro_mail::address::is_valid_domain(name)
}

/// The machine's host name, when the kernel or `/etc/hostname` gives one
/// that is a valid domain name.
fn machine_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned())
        .find(|name| is_host_name(name))
}

/// The text being parsed, for turning positions and key paths into
/// [`ConfigError`]s.
pub(crate) struct Source<'a> {
    text: &'a str,
    index: &'a KeyIndex,
    file: Option<PathBuf>,
}

impl Source<'_> {
    /// Where `key` is written, else where `near` is (for a missing key that
    /// another key requires), else only the file.
    fn location(&self, key: &str, near: Option<&str>) -> Location {
        let span = self
            .index
            .span_of(key)
            .or_else(|| near.and_then(|near| self.index.span_of(near)));
        match span {
            Some(span) => Location::at(self.text, span.start, self.file.clone()),
            None => Location {
                file: self.file.clone(),
                ..Location::default()
            },
        }
    }

    /// An error about the value of `key`.
    pub(crate) fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        self.invalid_near(key, None, message)
    }

    /// An error about `key`, located at `near` when `key` is not in the file.
    pub(crate) fn invalid_near(
        &self,
        key: &str,
        near: Option<&str>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::InvalidValue {
            location: self.location(key, near),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// Turns a serde error into one that names the key at the error's
    /// position. toml reports unknown fields on the key itself, so the path
    /// found there ends with the unknown key.
    fn deserialize_error(&self, err: &toml::de::Error) -> ConfigError {
        let span = err.span();
        let location = match &span {
            Some(span) => Location::at(self.text, span.start, self.file.clone()),
            None => Location {
                file: self.file.clone(),
                ..Location::default()
            },
        };
        let key = span
            .and_then(|span| self.index.path_at(&span))
            .unwrap_or("(top level)")
            .to_owned();
        if let Some(expected) = parse_unknown_field(err.message()) {
            return ConfigError::UnknownKey {
                location,
                key,
                expected,
            };
        }
        ConfigError::InvalidValue {
            location,
            key,
            message: plain_type_names(err.message()),
        }
    }
}

/// Reads the allowed names out of serde's "unknown field `x`, expected `a`
/// or `b`" (also "expected one of `a`, `b`, `c`"). The wording has been
/// stable in serde for years; any other message stays an invalid value.
fn parse_unknown_field(message: &str) -> Option<Vec<String>> {
    let rest = message.strip_prefix("unknown field `")?;
    let (_field, rest) = rest.split_once('`')?;
    Some(
        rest.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// Replaces serde's Rust type names in "expected ..." with the TOML words a
/// user knows.
fn plain_type_names(message: &str) -> String {
    let mut message = message.replace("expected a sequence", "expected a list");
    for (rust, toml) in [
        ("expected u16", "expected a port number from 1 to 65535"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected usize", "expected a whole number"),
    ] {
        if let Some(head) = message.strip_suffix(rust) {
            message = format!("{head}{toml}");
        }
    }
    match message.find("expected struct ") {
        Some(at) => format!("{}expected a table", &message[..at]),
        None => message,
    }
}
