//! Several nodes on one PostgreSQL database behave as one platform: what is
//! added through one node works on the others, each node's API shows the
//! mail every node took, one node at a time posts webhooks (another takes
//! over when it is killed), and `cluster status` lists them all.
//!
//! PostgreSQL comes from `CARTEIRO_TEST_POSTGRES` (the test command sets it;
//! default `postgres://postgres@127.0.0.1:5432/test`); each test makes a
//! database of its own and drops it at the end.

mod common;

use std::time::Duration;

use common::client::Client;
use common::http::{api_key, curl, send_message, wait_event, wait_event_within};
use common::tcp_proxy::TcpProxy;
use common::webhook_endpoint::Endpoint;
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
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("carteiro_cluster_{:08x}_{n}", std::process::id());
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

impl Database {
    /// The database server's address (host and port of the URL).
    fn server_addr(&self) -> std::net::SocketAddr {
        use std::net::ToSocketAddrs;
        let (_, authority) = self.url_parts();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        };
        host_port
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("cannot resolve {host_port}"))
    }

    /// This database's URL with `addr` (a proxy) for host and port.
    fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let (scheme, authority) = self.url_parts();
        let user = authority
            .rsplit_once('@')
            .map_or(String::new(), |(user, _)| format!("{user}@"));
        format!("{scheme}://{user}{addr}/{}", self.name)
    }

    /// The scheme and the authority (user, host, port) of the server URL.
    fn url_parts(&self) -> (&str, &str) {
        let (scheme, rest) = self.server.split_once("://").expect("a URL");
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        (scheme, authority)
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

/// A node named `name` on `database`, delivering everything to `sink`,
/// retrying webhooks quickly and letting them reach loopback.
async fn node(database: &Database, name: &str, sink: &carteiro_testkit::SmtpSink) -> Server {
    node_setup(&database.url(), name, sink).start().await
}

/// The set-up of a node on the database at `url`.
fn node_setup(url: &str, name: &str, sink: &carteiro_testkit::SmtpSink) -> Setup {
    Setup::new().route(&["*"], sink.addr()).extra(&format!(
        "[store]\nurl = {url:?}\nnode_name = {name:?}\n\n[webhooks]\nretry_initial = \"1s\"\n\
         retry_max = \"2s\"\ntimeout = \"5s\"\nallow_private_targets = true\n"
    ))
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
    // Its timeline says which node took it and which delivered it.
    assert_node(&message, &["received", "delivered"], "node-2");
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
    let api_id = send_via(&two, &key, "r2@dest.test").await;
    wait_event(&one, &key, &api_id, "delivered").await;

    // A suppression added on node 1 stops delivery on node 2.
    one.cli(&["suppression", "add", "acme", "blocked@dest.test"])
        .await;
    let suppressed = within_seconds("node 2 suppresses blocked@dest.test", || async {
        let id = send_via(&two, &key, "blocked@dest.test").await;
        wait_event(&two, &key, &id, "received").await;
        // Either the suppression was seen (suppressed) or not yet (queued
        // for delivery): wait for the one or the other.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = curl(
                &two,
                "GET",
                &format!("/api/v1/messages/{id}"),
                Some(&key),
                None,
            )
            .await;
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

/// Sends one message through `server`'s API; returns its id.
async fn send_via(server: &Server, key: &str, to: &str) -> String {
    let sent = send_message(
        server,
        key,
        json!({"from": "orders@shop.test", "to": [to], "subject": "cluster", "text": "hi"}),
    )
    .await;
    sent.body["id"].as_str().expect("id").to_owned()
}

/// Whether the endpoint got `received` and `delivered` for every message.
fn got_all(events: &[Value], ids: &[String]) -> bool {
    ids.iter().all(|id| {
        ["received", "delivered"].iter().all(|kind| {
            events
                .iter()
                .any(|e| e["type"] == *kind && e["message_id"] == *id)
        })
    })
}

/// Waits until the endpoint's cursor is stored past every event (backlog 0),
/// as seen through `server`'s API.
async fn wait_caught_up(server: &Server, key: &str, hook: i64) {
    within_seconds("the webhook cursor is stored", || async {
        let shown = curl(
            server,
            "GET",
            &format!("/api/v1/webhooks/{hook}"),
            Some(key),
            None,
        )
        .await;
        (shown.status == 200 && shown.body["backlog"] == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_posts_each_event_once_and_another_takes_over_when_it_dies() {
    let database = Database::new().await;
    let sink = common::sink().await;
    let endpoint = Endpoint::start("127.0.0.1:0".parse().expect("addr"), 0).await;
    let mut nodes = [
        node(&database, "node-1", &sink).await,
        node(&database, "node-2", &sink).await,
    ];
    nodes[0].cli(&["account", "add", "acme"]).await;
    nodes[0].cli(&["domain", "add", "acme", "shop.test"]).await;
    let key = api_key(&nodes[0], "acme").await;
    let made = curl(
        &nodes[1],
        "POST",
        "/api/v1/webhooks",
        Some(&key),
        Some(&json!({"url": endpoint.url()}).to_string()),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let hook = made.body["id"].as_i64().expect("id");

    // Mail through both nodes: one of them posts every event.
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(send_via(&nodes[i % 2], &key, &format!("r{i}@dest.test")).await);
    }
    endpoint
        .wait(&nodes[0], "every event of both nodes' mail", |events| {
            got_all(events, &ids)
        })
        .await;
    wait_caught_up(&nodes[0], &key, hook).await;
    let dispatcher = within_seconds("a node says it dispatches", || async {
        nodes
            .iter()
            .position(|n| n.log().contains("webhooks: this node dispatches"))
    })
    .await;
    let survivor = 1 - dispatcher;
    assert!(
        !nodes[survivor]
            .log()
            .contains("webhooks: this node dispatches"),
        "both nodes dispatch"
    );

    // The dispatching node dies; the other takes over and posts what comes
    // next, through either node's mail.
    nodes[dispatcher].carteiro.kill9().await.expect("kill -9");
    for i in 4..7 {
        ids.push(send_via(&nodes[survivor], &key, &format!("r{i}@dest.test")).await);
    }
    endpoint
        .wait(
            &nodes[survivor],
            "the events after the takeover",
            |events| got_all(events, &ids),
        )
        .await;
    assert!(
        nodes[survivor]
            .log()
            .contains("webhooks: this node dispatches")
    );

    // Every event POSTed once: no id twice among the accepted events.
    let events = endpoint.delivered_events();
    let mut seen = std::collections::HashSet::new();
    for event in &events {
        let id = event["id"].to_string();
        assert!(
            seen.insert(id.clone()),
            "event {id} posted twice: {events:#?}"
        );
    }
    assert_eq!(events.len(), ids.len() * 2, "{events:#?}");
}

/// Sends one message over `client` (a relay session from a trusted
/// address); the queue id when it was acknowledged, else the refusal, which
/// must be `451 4.3.0`.
async fn relay_one(client: &mut Client, to: &str) -> Result<String, String> {
    let body = format!("From: <orders@shop.test>\r\nTo: <{to}>\r\nSubject: outage\r\n\r\nhi\r\n");
    let outcome = client
        .send("orders@shop.test", to, &body)
        .await
        .expect("the session stays up");
    if outcome.code == 250 {
        let id = outcome.text.rsplit(' ').next().expect("queued as ID");
        return Ok(id.trim().to_owned());
    }
    assert!(outcome.text.starts_with("451 4.3.0"), "{outcome:?}");
    Err(outcome.text)
}

/// Waits (up to 90 s: the event writer's retries back off) until the
/// message's timeline, read through `server`, has each of `kinds`.
async fn wait_timeline(server: &Server, key: &str, id: &str, kinds: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut message = Value::Null;
    for kind in kinds {
        let left = deadline.saturating_duration_since(Instant::now());
        message = wait_event_within(server, key, id, kind, left).await;
    }
    message
}

/// Asserts that the `kinds` events of `message` name `node`.
fn assert_node(message: &Value, kinds: &[&str], node: &str) {
    for kind in kinds {
        let event = message["events"]
            .as_array()
            .expect("events")
            .iter()
            .find(|e| e["type"] == *kind)
            .unwrap_or_else(|| panic!("no {kind}: {message:#}"));
        assert_eq!(event["details"]["node"], node, "{event:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_database_loses_nothing_acknowledged_and_everything_catches_up() {
    let database = Database::new().await;
    let proxy = TcpProxy::start(database.server_addr()).await;
    let sink = common::sink().await;
    let server = node_setup(&database.url_via(proxy.addr()), "node-1", &sink)
        .trusted_loopback()
        .start()
        .await;
    let key = api_key(&server, "default").await;
    let mut client = Client::connect(server.relay).await.expect("connect");
    let mut acked = Vec::new();
    for i in 0..3 {
        acked.push(
            relay_one(&mut client, &format!("before{i}@dest.test"))
                .await
                .expect("250"),
        );
    }
    wait_timeline(&server, &key, &acked[0], &["received", "delivered"]).await;

    // The database goes away: the API says so with a 503, ...
    proxy.cut();
    let answer = curl(&server, "GET", "/api/v1/events", Some(&key), None).await;
    assert_eq!(answer.status, 503, "{}\n{}", answer.body, server.log());
    assert_eq!(
        answer.body["error"], "service unavailable",
        "{}",
        answer.body
    );
    // ... mail is either acknowledged or deferred with 451 4.3.0, ...
    let mut during = Vec::new();
    for i in 0..5 {
        if let Ok(id) = relay_one(&mut client, &format!("during{i}@dest.test")).await {
            during.push(id);
        }
    }
    // ... and acknowledged mail is still delivered meanwhile.
    let expected = acked.len() + during.len();
    sink.wait_for_messages(expected, Duration::from_secs(30))
        .await
        .unwrap_or_else(|err| panic!("{err}\n{}", server.log()));
    acked.extend(during);
    // The node held the events it could not write, and said so.
    common::eventually_async("the event writer holds events", || async {
        server
            .log()
            .contains("the store cannot write; holding events")
            .then_some(())
    })
    .await;

    // The database returns: every acknowledged message has its whole
    // timeline, written by this node.
    proxy.restore();
    for id in &acked {
        let message = wait_timeline(&server, &key, id, &["received", "delivered"]).await;
        for event in message["events"].as_array().expect("events") {
            assert_eq!(event["details"]["node"], "node-1", "{event:#}");
        }
    }
    let after = relay_one(&mut client, "after@dest.test")
        .await
        .expect("250 after");
    wait_timeline(&server, &key, &after, &["received", "delivered"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_queued_mail_delivers_it_after_its_restart() {
    let database = Database::new().await;
    let sink = common::sink().await;
    // The destination defers everything at first: the mail stays queued.
    sink.set_data_reply(vec![carteiro_testkit::SinkReply::new(
        451,
        "4.3.0 try later",
    )]);
    let one = node(&database, "node-1", &sink).await;
    let mut two = node_setup(&database.url(), "node-2", &sink)
        .delivery("retry_initial = \"1s\"")
        .delivery("retry_max = \"2s\"")
        .start()
        .await;
    one.cli(&["account", "add", "acme"]).await;
    one.cli(&["domain", "add", "acme", "shop.test"]).await;
    let key = api_key(&one, "acme").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(send_via(&two, &key, &format!("q{i}@dest.test")).await);
    }
    for id in &ids {
        wait_timeline(&one, &key, id, &["received", "deferred"]).await;
    }
    assert_eq!(two.queue().await.len(), 3);

    two.carteiro.kill9().await.expect("kill -9");
    sink.set_data_reply(Vec::new());
    two.carteiro.restart().await.expect("restart node 2");
    for id in &ids {
        // Read through the other node: node 2 took it and delivered it.
        let message = wait_timeline(&one, &key, id, &["delivered"]).await;
        assert_node(&message, &["received", "delivered"], "node-2");
    }
    let delivered = sink.messages().len();
    assert_eq!(delivered, 3, "each message once");
    two.wait_queue("an empty queue on node 2", |q| q.is_empty())
        .await;
}
