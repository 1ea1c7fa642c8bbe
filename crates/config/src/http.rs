//! The `[http]` section: where the HTTP API and pages listen, and the public
//! base URL used in links.
//!
//! Values only; the HTTP server applies them.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::de;

/// The `[http]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the HTTP API, dashboard and tracking endpoints, as
    /// `"IP:PORT"`. Default `"127.0.0.1:8025"`.
    #[serde(deserialize_with = "de::listen_addr")]
    pub listen: SocketAddr,
    /// Base URL under which users reach `listen`, used to build tracking,
    /// unsubscribe and form links. Must start with `http://` or `https://`;
    /// a trailing slash is removed. Default `"http://127.0.0.1:8025"`.
    pub public_url: String,
    /// Where Prometheus `GET /metrics` is served (no API key), as
    /// `"IP:PORT"`: empty (the default) serves it on `listen`; an address
    /// serves it there only, e.g. on an interface only the monitoring can
    /// reach.
    #[serde(deserialize_with = "de::optional_listen_addr")]
    pub metrics_listen: Option<SocketAddr>,
    /// Requests with a wrong API key allowed from one client IP within
    /// `auth_failure_window`; then the IP gets `429` until the window ends,
    /// whatever key it sends. Default 20.
    pub auth_max_failures: u32,
    /// The window over which `auth_max_failures` counts, from an IP's first
    /// failure. Default `"1m"`.
    #[serde(deserialize_with = "de::duration")]
    pub auth_failure_window: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8025)),
            public_url: "http://127.0.0.1:8025".to_owned(),
            metrics_listen: None,
            auth_max_failures: 20,
            auth_failure_window: Duration::from_secs(60),
        }
    }
}
