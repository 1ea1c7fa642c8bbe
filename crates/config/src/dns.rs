//! The `[dns]` section: which resolvers delivery and authentication checks
//! ask.
//!
//! Values only; the resolver is built elsewhere.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::de;

/// The `[dns]` section.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// Resolvers to query, as `"IP:PORT"`; a bare IP means port 53. Empty:
    /// the system resolver (`/etc/resolv.conf`). Default: empty.
    #[serde(deserialize_with = "de::nameservers")]
    pub nameservers: Vec<SocketAddr>,
}
