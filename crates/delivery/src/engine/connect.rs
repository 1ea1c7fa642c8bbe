//! Opening a connection for a destination: the smarthost of a route, or the
//! MX hosts of a domain in preference order, falling back to plain text on
//! the same host when an opportunistic TLS handshake fails.

use super::WorkerContext;
use super::dest_key::DestKey;
use crate::{ClientSettings, SmtpClient, TlsPolicy};
use carteiro_config::TlsMode;
use carteiro_mail::{Reply, Status};
use std::net::{IpAddr, SocketAddr};

/// Never try more than this many addresses for one connection.
const MAX_ADDRESSES: usize = 10;

/// Why no connection could be made.
pub(crate) struct ConnectFailure {
    pub reply: Reply,
    /// The destination can never be reached (no such domain, null MX).
    pub permanent: bool,
    pub remote: Option<String>,
}

fn policy(mode: TlsMode) -> TlsPolicy {
    match mode {
        TlsMode::None => TlsPolicy::None,
        TlsMode::Opportunistic => TlsPolicy::Opportunistic,
        TlsMode::Required => TlsPolicy::Required,
        TlsMode::Verify => TlsPolicy::Verify,
    }
}

pub(crate) async fn connect(
    ctx: &WorkerContext,
    key: &DestKey,
) -> Result<SmtpClient, ConnectFailure> {
    let config = &ctx.config;
    let delivery = &config.delivery;
    let mut settings = ClientSettings {
        helo_name: config.hostname.clone(),
        tls: policy(delivery.tls),
        auth: None,
        connect_timeout: delivery.connect_timeout,
        command_timeout: delivery.command_timeout,
        data_timeout: delivery.data_timeout,
        prefer_chunking: true,
        local_addr: None,
        trust: None,
    };
    // (address to connect to, host name for TLS and logs)
    let mut candidates: Vec<(SocketAddr, String)> = Vec::new();
    match key {
        DestKey::Route(index) => {
            let route = &delivery.routes[*index];
            let Some(relay) = &route.relay else {
                return Err(ConnectFailure {
                    reply: Reply::new(451, Some(Status(4, 3, 5)), "route has no relay"),
                    permanent: false,
                    remote: None,
                });
            };
            settings.tls = policy(route.tls);
            if route.tls == TlsMode::Verify {
                settings.trust = Some(
                    crate::verifying_tls_config(route.ca_file.as_deref()).map_err(|reason| {
                        tracing::error!(route = index, %reason, "cannot set up TLS verification");
                        ConnectFailure {
                            reply: Reply::new(
                                451,
                                Some(Status(4, 7, 5)),
                                format!("TLS verification cannot be set up: {reason}"),
                            ),
                            permanent: false,
                            remote: Some(relay.to_string()),
                        }
                    })?,
                );
            }
            settings.auth = route.auth_username.clone().zip(route.auth_password.clone());
            let addrs = match relay.host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => ctx.resolver.host_addrs(&relay.host).await.map_err(|err| {
                    // A smarthost that does not resolve is a configuration or
                    // DNS problem, never the message's fault.
                    let reply = err.reply();
                    ConnectFailure {
                        reply: Reply::new(451, Some(Status(4, 4, 3)), reply.text.to_string()),
                        permanent: false,
                        remote: Some(relay.to_string()),
                    }
                })?,
            };
            candidates.extend(
                addrs
                    .into_iter()
                    .map(|ip| (SocketAddr::new(ip, relay.port), relay.host.clone())),
            );
        }
        DestKey::Mx(domain) => {
            let targets = ctx
                .resolver
                .mx_targets(domain)
                .await
                .map_err(|err| ConnectFailure {
                    reply: err.reply(),
                    permanent: err.is_permanent(),
                    remote: None,
                })?;
            for target in targets {
                for ip in target.addrs {
                    candidates.push((SocketAddr::new(ip, delivery.smtp_port), target.host.clone()));
                }
            }
        }
    }
    let mut last_error = None;
    for (addr, name) in candidates.into_iter().take(MAX_ADDRESSES) {
        match SmtpClient::connect(addr, &name, &settings).await {
            Ok(client) => return Ok(client),
            // Credentials never go out in plain text, so no fallback then.
            Err(err) if err.is_tls_failure() && settings.auth.is_none() => {
                tracing::info!(%addr, error = %err, "TLS handshake failed, retrying without TLS");
                let plain = ClientSettings {
                    tls: TlsPolicy::None,
                    ..settings.clone()
                };
                match SmtpClient::connect(addr, &name, &plain).await {
                    Ok(client) => return Ok(client),
                    Err(err) => last_error = Some((err.reply(), name)),
                }
            }
            Err(err) => {
                tracing::debug!(%addr, error = %err, "connection failed");
                last_error = Some((err.reply(), name));
            }
        }
    }
    let (reply, remote) = last_error.unwrap_or_else(|| {
        (
            Reply::new(451, Some(Status(4, 4, 4)), "no address to connect to"),
            key.describe(config),
        )
    });
    Err(ConnectFailure {
        reply,
        permanent: false,
        remote: Some(remote),
    })
}
