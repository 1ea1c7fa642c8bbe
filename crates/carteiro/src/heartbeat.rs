//! The node's heartbeat in the shared store (`cluster_nodes`): every few
//! seconds its name, version, start time and queue size, so `carteiro cluster
//! status` (run on any node) lists every node, and the engine learns how
//! many nodes are live, to open only its share of each destination's
//! connections. A failed write is logged and tried again at the next beat: the
//! heartbeat never holds up mail.

use std::time::Duration;

use carteiro_delivery::engine::EngineHandle;
use carteiro_store::Store;
use tokio::sync::watch;

/// Time between two heartbeats (a third of the store's "silent" time).
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Beats until `stop` turns true, then marks the node stopped with its last
/// queue size. Call after the engine started.
pub async fn run(
    store: Store,
    node: String,
    engine: EngineHandle,
    started_at_ms: i64,
    mut stop: watch::Receiver<bool>,
) {
    let version = env!("CARGO_PKG_VERSION");
    let mut failing = false;
    loop {
        let (messages, recipients) = engine.queue_size();
        match store
            .heartbeat(&node, version, started_at_ms, messages, recipients)
            .await
        {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(%node, "heartbeat written again");
            }
            Ok(()) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%node, %error, "cannot write the node's heartbeat; retrying");
            }
            Err(_) => {}
        }
        // The nodes split each destination's connection limit.
        if let Ok(nodes) = store.live_nodes().await {
            engine.set_live_nodes(nodes as usize);
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
    }
}

/// Marks the node stopped (after the engine stopped: its queue is final).
pub async fn stopped(store: &Store, node: &str, engine: &EngineHandle) {
    let (messages, recipients) = engine.queue_size();
    if let Err(error) = store.node_stopped(node, messages, recipients).await {
        tracing::warn!(%node, %error, "cannot mark the node stopped in the store");
    }
}
