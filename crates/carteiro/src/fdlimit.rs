//! The open-files limit: each SMTP connection, spool segment, store handle
//! and delivery connection takes a file descriptor, and the usual soft limit
//! (1,024 under systemd and most shells) is below the default
//! `smtp.max_connections` alone. `serve` raises the soft limit to the hard
//! one at start, and warns when even the hard limit cannot hold the
//! configured connections.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept free for what is not an inbound connection: the spool,
/// the store, listeners, outbound deliveries, webhooks, DNS.
const HEADROOM: u64 = 512;

/// Raises the soft open-files limit to the hard one; returns the limit now
/// in force (None when it is unlimited).
pub fn raise(max_connections: usize) -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    // None is unlimited: the soft limit is raised only when it is finite
    // and below the hard one.
    let below_hard = match (limit.current, limit.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let current = if below_hard {
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        ) {
            Ok(()) => limit.maximum,
            Err(err) => {
                tracing::warn!(error = %err, soft = ?limit.current, hard = ?limit.maximum, "cannot raise the open-files limit");
                limit.current
            }
        }
    } else {
        limit.current
    };
    let needed = max_connections as u64 + HEADROOM;
    if let Some(now) = current
        && now < needed
    {
        tracing::warn!(
            limit = now,
            needed,
            "the open-files limit is below smtp.max_connections plus room for the spool, store and deliveries; raise LimitNOFILE (systemd) or ulimit -n"
        );
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let hard = getrlimit(Resource::Nofile).maximum;
        assert_eq!(raise(10), hard);
        assert_eq!(getrlimit(Resource::Nofile).current, hard);
    }
}
