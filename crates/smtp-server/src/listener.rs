//! Accepting connections: connection limits are checked before a session
//! starts, and a refused client gets `421` instead of silence.

use crate::handler::Handler;
use crate::limits::Refusal;
use crate::{Role, ServerContext, run_session};
use carteiro_mail::Reply;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;

/// Serves one listener until `shutdown` becomes true. Sessions still open
/// then are told `421` at their next command.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    role: Role,
    ctx: Arc<ServerContext<H>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (mut socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly
                // instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let trusted = ctx.config.smtp.is_trusted(peer.ip());
        match ctx.limiter.try_acquire(peer.ip(), trusted) {
            Ok(guard) => {
                let ctx = Arc::clone(&ctx);
                let shutdown = shutdown.clone();
                let span = tracing::debug_span!("smtp", %peer, role = role.name());
                tokio::spawn(
                    async move {
                        run_session(ctx, socket, peer, role, shutdown).await;
                        drop(guard);
                    }
                    .instrument(span),
                );
            }
            Err(refusal) => {
                tracing::info!(%peer, ?refusal, "connection refused by limits");
                let reply = match refusal {
                    Refusal::TooManyTotal => Reply::TOO_BUSY,
                    Refusal::TooManyFromIp => Reply::TOO_MANY_FROM_IP,
                    Refusal::TooManyFromPrefix => Reply::TOO_MANY_FROM_NETWORK,
                };
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        socket.write_all(reply.to_wire().as_bytes()),
                    )
                    .await;
                    let _ = socket.shutdown().await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
