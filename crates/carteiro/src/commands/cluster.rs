//! `carteiro cluster status|forget`: the nodes sharing the store, from their
//! heartbeats (`cluster_nodes`).

use crate::cli::ClusterCommand;
use anyhow::bail;
use carteiro_config::Config;
use carteiro_store::{NodeStatus, Store};

pub async fn run(cmd: ClusterCommand, config: &Config) -> anyhow::Result<()> {
    let store = super::open_store(config).await?;
    let result = execute(&store, cmd).await;
    store.close().await;
    result
}

async fn execute(store: &Store, cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Status { json } => {
            let now = i64::try_from(carteiro_mail::clock::now_millis()).unwrap_or(i64::MAX);
            let nodes = store.cluster_nodes().await?;
            let backend = store.backend().as_str();
            if json {
                let rows: Vec<serde_json::Value> =
                    nodes.iter().map(|node| node_json(node, now)).collect();
                let out = serde_json::json!({ "backend": backend, "nodes": rows });
                println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            } else {
                print_table(&nodes, now, backend);
            }
        }
        ClusterCommand::Forget { node } => {
            if !store.forget_node(&node).await? {
                bail!("no node {node}");
            }
            println!("node {node} forgotten");
        }
    }
    Ok(())
}

/// `live`, `stopped` (shut down cleanly) or `silent` (no heartbeat lately:
/// killed, crashed or cut off from the store).
fn state(node: &NodeStatus, now: i64) -> &'static str {
    if node.stopped_at_ms.is_some() {
        "stopped"
    } else if node.is_live(now) {
        "live"
    } else {
        "silent"
    }
}

fn node_json(node: &NodeStatus, now: i64) -> serde_json::Value {
    serde_json::json!({
        "name": node.name,
        "state": state(node, now),
        "version": node.version,
        "started_at": rfc3339(node.started_at_ms),
        "heartbeat_at": rfc3339(node.heartbeat_at_ms),
        "heartbeat_age_seconds": (now - node.heartbeat_at_ms).max(0) / 1000,
        "stopped_at": node.stopped_at_ms.map(rfc3339),
        "queued_messages": node.queued_messages,
        "queued_recipients": node.queued_recipients,
    })
}

fn print_table(nodes: &[NodeStatus], now: i64, backend: &str) {
    if nodes.is_empty() {
        println!("no node has run on this store ({backend}) yet");
        return;
    }
    println!(
        "{:<24} {:<8} {:>14} {:>10} {:>10}  {:<10} STARTED",
        "NODE", "STATE", "LAST HEARTBEAT", "MESSAGES", "RECIPIENTS", "VERSION"
    );
    for node in nodes {
        let age = format!("{}s ago", (now - node.heartbeat_at_ms).max(0) / 1000);
        println!(
            "{:<24} {:<8} {:>14} {:>10} {:>10}  {:<10} {}",
            node.name,
            state(node, now),
            age,
            node.queued_messages,
            node.queued_recipients,
            node.version,
            rfc3339(node.started_at_ms)
        );
    }
}

/// A stored time as RFC 3339 (the number itself if it is not a time).
fn rfc3339(ms: i64) -> String {
    u64::try_from(ms)
        .ok()
        .and_then(super::rfc3339_millis)
        .unwrap_or_else(|| ms.to_string())
}
