//! Several nodes on one PostgreSQL database behave as one platform: what is
//! added through one node works on the others, each node's API shows the
//! mail every node took, and `cluster status` lists them all.
//!
//! PostgreSQL comes from `CARTEIRO_TEST_POSTGRES` (the test command sets it;
//! default `postgres://postgres@127.0.0.1:5432/test`); each test makes a
//! database of its own and drops it at the end.

mod common;

use std::time::Duration;

use common::http::{api_key, curl, send_message, wait_event};
use common::{Server, Setup, run, swaks};
use serde_json::{Value, json};
use tokio::time::Instant;

const URL_VAR: &str = "CARTEIRO_TEST_POSTGRES";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database of the test's own on the test server, dropped on drop.
struct Database {
    server: String,
    name: String,
}

impl Database {
    async fn new() -> Database {
        let server = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let name = format!("carteiro_cluster_{:08x}", std::process::id());
        psql(&server, &format!("DROP DATABASE IF EXISTS {name}")).await;
        psql(&server, &format!("CREATE DATABASE {name}")).await;
        Database { server, name }
    }

    /// The URL of this database (the server's, with its own database name).
    fn url(&self) -> String {
        let base = self.server.split('?').next().unwrap_or(&self.server);
        let (server, _) = base.rsplit_once('/').expect("a URL with a database");
        format!("{server}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args(["-X", "-q", "-d", &self.server, "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

async fn psql(server: &str, sql: &str) {
    let output = run("psql", &["-X", "-q", "-d", server, "-c", sql], None).await;
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A node named `name` on `database`, delivering everything to `sink`.
async fn node(database: &Database, name: &str, sink: &carteiro_testkit::SmtpSink) -> Server {
    Setup::new()
        .route(&["*"], sink.addr())
        .extra(&format!(
            "[store]\nurl = {:?}\nnode_name = {name:?}\n",
            database.url()
        ))
        .start()
        .await
}

/// Sends through `server`'s submission port as `user`; the queue id when the
/// message was accepted.
async fn submit(server: &Server, user: &str, password: &str, to: &str) -> Option<String> {
    let addr = server.submission.to_string();
    let sent = swaks(&[
        "--server",
        &addr,
        "--tls",
        "--auth-user",
        user,
        "--auth-password",
        password,
        "--from",
        "orders@shop.test",
        "--to",
        to,
        "--header",
        "Subject: cluster",
    ])
    .await;
    sent.transcript.lines().find_map(|line| {
        line.split_once("queued as ")
            .map(|(_, id)| id.trim().to_owned())
    })
}

/// Retries `attempt` until it gives something, for up to 15 seconds (what
/// another node's caches may take to see a change).
async fn within_seconds<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_are_one_platform() {
    let database = Database::new().await;
    let sink = common::sink().await;
    let one = node(&database, "node-1", &sink).await;
    let two = node(&database, "node-2", &sink).await;

    // Made through node 1's CLI: the account, its login, its sending domain
    // and an API key.
    one.add_login("acme", "alice", "correct-horse-7").await;
    one.cli(&["domain", "add", "acme", "shop.test"]).await;
    let key = api_key(&one, "acme").await;

    // The login works on node 2, and mail it takes is delivered.
    let id = within_seconds("node 2 takes alice's login", || {
        submit(&two, "alice", "correct-horse-7", "r1@dest.test")
    })
    .await;
    // Node 1's API shows the message node 2 took, by id and by search, with
    // its delivery.
    let message = wait_event(&one, &key, &id, "delivered").await;
    assert_eq!(message["subject"], "cluster");
    let found = curl(
        &one,
        "GET",
        "/api/v1/messages?recipient=r1@dest.test",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(found.status, 200, "{}", found.body);
    let ids: Vec<&str> = found.body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()]);

    // The API key made on node 1 sends through node 2's API.
    let sent = send_message(
        &two,
        &key,
        json!({"from": "orders@shop.test", "to": ["r2@dest.test"], "subject": "api", "text": "hi"}),
    )
    .await;
    let api_id = sent.body["id"].as_str().expect("id").to_owned();
    wait_event(&one, &key, &api_id, "delivered").await;

    // A suppression added on node 1 stops delivery on node 2.
    one.cli(&["suppression", "add", "acme", "blocked@dest.test"])
        .await;
    let suppressed = within_seconds("node 2 suppresses blocked@dest.test", || async {
        let sent = send_message(
            &two,
            &key,
            json!({"from": "orders@shop.test", "to": ["blocked@dest.test"], "subject": "s", "text": "x"}),
        )
        .await;
        let id = sent.body["id"].as_str().expect("id").to_owned();
        wait_event(&two, &key, &id, "received").await;
        // Either the suppression was seen (suppressed) or not yet (queued
        // for delivery): wait for the one or the other.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = curl(&two, "GET", &format!("/api/v1/messages/{id}"), Some(&key), None).await;
            let kinds: Vec<&str> = now.body["events"]
                .as_array()
                .map(|events| events.iter().filter_map(|e| e["type"].as_str()).collect())
                .unwrap_or_default();
            if kinds.contains(&"suppressed") {
                return Some(id);
            }
            if kinds.contains(&"delivered") || Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        !sink
            .messages()
            .iter()
            .any(|m| m.rcpt_to.iter().any(|r| r == "blocked@dest.test")
                && m.data
                    .windows(suppressed.len())
                    .any(|w| w == suppressed.as_bytes())),
        "the suppressed message was not delivered"
    );

    // Both nodes are listed, live, by either node.
    let status: Value = serde_json::from_str(&two.cli(&["cluster", "status", "--json"]).await)
        .expect("status json");
    assert_eq!(status["backend"], "postgres");
    let nodes = status["nodes"].as_array().expect("nodes");
    let names: Vec<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["node-1", "node-2"]);
    assert!(nodes.iter().all(|n| n["state"] == "live"), "{status:#}");
}

#[tokio::test]
async fn an_unreachable_database_at_start_names_store_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("carteiro.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[store]\nurl = \"postgres://carteiro:s3cret@127.0.0.1:9/carteiro\"\n",
            dir.path().join("data")
        ),
    )
    .expect("config");
    let config = config.to_string_lossy().into_owned();
    let output = run(
        common::bin().to_str().expect("utf-8"),
        &["--config", &config, "account", "list"],
        None,
    )
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("store.url"), "{stderr}");
    assert!(
        stderr.contains("postgres://carteiro@127.0.0.1:9/carteiro"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
