//! Where a recipient goes: the key of a destination's ready queue, chosen
//! from the configuration alone (no DNS). Its own module because the ready
//! queues (`destination`), connection set-up (`connect`) and the events
//! all name it, and none of them should have to import another for it.

use carteiro_config::Config;

/// Where recipients go: a configured smarthost route, or a domain's MX.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DestKey {
    /// Index into `delivery.routes`.
    Route(usize),
    Mx(String),
}

impl DestKey {
    /// The first route matching `domain` when it has a relay (smarthost),
    /// else the domain's own MX.
    pub fn for_domain(config: &Config, domain: &str) -> DestKey {
        match config
            .delivery
            .routes
            .iter()
            .position(|route| route.matches(domain))
        {
            Some(index) if config.delivery.routes[index].relay.is_some() => DestKey::Route(index),
            _ => DestKey::Mx(domain.to_string()),
        }
    }

    /// The smarthost (`host:port`) or the domain, for logs and replies.
    pub fn describe(&self, config: &Config) -> String {
        match self {
            DestKey::Route(index) => config.delivery.routes[*index]
                .relay
                .as_ref()
                .map_or_else(|| format!("route {index}"), |relay| relay.to_string()),
            DestKey::Mx(domain) => domain.clone(),
        }
    }
}
