//! Webhooks end to end: a real HTTP endpoint on loopback that fails the
//! first POSTs still receives `delivered` and `bounced` events, each POST
//! signed with the endpoint's secret; events sent while the endpoint is down
//! survive a restart of Carteiro and arrive once it is up. Endpoints on
//! addresses the configuration does not allow are refused when made and
//! when connected to.

mod common;

use carteiro_testkit::{SinkReply, SmtpSink, free_port};
use common::http::{api_key, curl, send_message, sending_account, wait_event};
use common::webhook_endpoint::{Endpoint, Post, WEBHOOK_WAIT};
use common::{Server, Setup};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// Retry quickly, so failures cost seconds, not minutes; the endpoints are
/// on loopback, which webhooks may not reach by default.
const FAST_RETRIES: &str = "[webhooks]\nretry_initial = \"1s\"\nretry_max = \"2s\"\ntimeout = \"5s\"\n\
                            allow_private_targets = true\n";

/// Checks `X-Carteiro-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
/// with `secret`, and the other headers of a webhook POST.
fn assert_signed(post: &Post, secret: &str) {
    assert_eq!(post.header("content-type"), Some("application/json"));
    assert_eq!(post.header("user-agent"), Some("Carteiro-Webhooks"));
    let signature = post
        .header("x-carteiro-signature")
        .expect("an X-Carteiro-Signature header");
    let (t, v1) = signature
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("signature not t=…,v1=…: {signature}"));
    let t: i64 = t.parse().expect("t is unix seconds");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - 600..=now + 5).contains(&t), "t={t}, now {now}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&post.body);
    let expected: String = aws_lc_rs::hmac::sign(&key, &signed)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature verifies with the secret");
    // And not with another secret.
    let other = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"whsec_other");
    let forged: String = aws_lc_rs::hmac::sign(&other, &signed)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_ne!(v1, forged);
}

/// A server routing everything to `sink`, retrying webhooks quickly, with
/// account `shop` owning `shop.test`; returns it and a key.
async fn shop(sink: &SmtpSink) -> (Server, String) {
    let server = Setup::new()
        .route(&["*"], sink.addr())
        .extra(FAST_RETRIES)
        .start()
        .await;
    let key = sending_account(&server, "shop", "shop.test").await;
    (server, key)
}

/// Creates a webhook; returns its id and secret.
async fn create_webhook(server: &Server, key: &str, body: Value) -> (i64, String) {
    let answer = curl(
        server,
        "POST",
        "/api/v1/webhooks",
        Some(key),
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let id = answer.body["id"].as_i64().expect("an id");
    let secret = answer.body["secret"].as_str().expect("a secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (id, secret)
}

/// Sends one message to `to` through the API; returns its id.
async fn send(server: &Server, key: &str, to: &str, subject: &str) -> String {
    let request = json!({
        "from": "Shop <orders@shop.test>",
        "to": [to],
        "subject": subject,
        "text": "Hello.",
    });
    let answer = send_message(server, key, request).await;
    answer.body["id"].as_str().expect("id").to_owned()
}

/// Whether `events` hold one of `kind` for `message`.
fn has(events: &[Value], kind: &str, message: &str) -> bool {
    events
        .iter()
        .any(|e| e["type"] == kind && e["message_id"] == message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_endpoint_gets_signed_delivered_and_bounced_events() {
    let sink = SmtpSink::builder()
        .rcpt_replies(
            "nobody@sink.test",
            vec![SinkReply::new(550, "5.1.1 no such user here")],
        )
        .start()
        .await;
    let (server, key) = shop(&sink).await;
    let endpoint = Endpoint::start(SocketAddr::from(([127, 0, 0, 1], 0)), 2).await;

    // Refusals name their field.
    let bad = curl(
        &server,
        "POST",
        "/api/v1/webhooks",
        Some(&key),
        Some(&json!({"url": "ftp://127.0.0.1/x"}).to_string()),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.body["detail"]["field"], "url");
    let bad = curl(
        &server,
        "POST",
        "/api/v1/webhooks",
        Some(&key),
        Some(&json!({"url": endpoint.url(), "events": ["delivered", "sent"]}).to_string()),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.body["detail"]["field"], "events");

    let (id, secret) = create_webhook(
        &server,
        &key,
        json!({"url": endpoint.url(), "events": ["delivered", "bounced"]}),
    )
    .await;
    let delivered = send(&server, &key, "alice@sink.test", "Delivered").await;
    let bounced = send(&server, &key, "nobody@sink.test", "Bounced").await;

    endpoint
        .wait(&server, "delivered and bounced", |events| {
            has(events, "delivered", &delivered) && has(events, "bounced", &bounced)
        })
        .await;

    let posts = endpoint.posts();
    assert!(
        posts.iter().filter(|p| p.status == 500).count() == 2,
        "the first two POSTs failed: {posts:?}"
    );
    for post in &posts {
        assert_signed(post, &secret);
    }
    let events = endpoint.delivered_events();
    assert!(
        events
            .iter()
            .all(|e| e["type"] == "delivered" || e["type"] == "bounced"),
        "only the types asked for: {events:#?}"
    );
    // The event shape of INTERFACE.md, as GET /api/v1/events shows it.
    let event = events
        .iter()
        .find(|e| e["type"] == "bounced")
        .expect("a bounced event");
    assert_eq!(event["account"], "shop");
    assert_eq!(event["recipient"], "nobody@sink.test");
    assert!(
        event["id"]
            .as_str()
            .is_some_and(|id| id.parse::<i64>().is_ok())
    );
    assert!(
        event["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(event["details"].is_object(), "{event}");
    let log = curl(
        &server,
        "GET",
        "/api/v1/events?type=bounced",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(
        log.body["events"][0], *event,
        "the same shape as the event log"
    );

    // The endpoint shows what happened: failures, then a success.
    let shown = curl(
        &server,
        "GET",
        &format!("/api/v1/webhooks/{id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.body["status"], "active");
    assert!(
        shown.body["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{}",
        shown.body
    );
    assert!(shown.body["last_success_at"].is_string(), "{}", shown.body);
    assert!(shown.body.get("secret").is_none(), "{}", shown.body);

    // Another account cannot see or delete it.
    server.cli(&["account", "add", "other"]).await;
    let other_key = api_key(&server, "other").await;
    let path = format!("/api/v1/webhooks/{id}");
    assert_eq!(
        curl(&server, "GET", &path, Some(&other_key), None)
            .await
            .status,
        404
    );
    assert_eq!(
        curl(&server, "DELETE", &path, Some(&other_key), None)
            .await
            .status,
        404
    );
    let deleted = curl(&server, "DELETE", &path, Some(&key), None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(
        curl(&server, "GET", &path, Some(&key), None).await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_for_a_down_endpoint_across_a_restart() {
    let sink = common::sink().await;
    let (mut server, key) = shop(&sink).await;
    // Nothing listens there until after the restart.
    let endpoint_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let url = format!("http://{endpoint_addr}/hooks/carteiro");
    let (id, secret) = create_webhook(&server, &key, json!({"url": url})).await;

    let mut messages = Vec::new();
    for n in 0..3 {
        let id = send(&server, &key, &format!("r{n}@sink.test"), &format!("m{n}")).await;
        wait_event(&server, &key, &id, "delivered").await;
        messages.push(id);
    }
    // The endpoint has been tried and found down.
    let deadline = Instant::now() + WEBHOOK_WAIT;
    loop {
        let shown = curl(
            &server,
            "GET",
            &format!("/api/v1/webhooks/{id}"),
            Some(&key),
            None,
        )
        .await;
        if shown.body["last_error"].is_string() && shown.body["backlog"].as_u64() >= Some(6) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed attempt shown: {}\n{}",
            shown.body,
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    server
        .carteiro
        .restart()
        .await
        .unwrap_or_else(|err| panic!("restart: {err:#}"));
    let endpoint = Endpoint::start(endpoint_addr, 0).await;
    endpoint
        .wait(&server, "every event from before the restart", |events| {
            messages
                .iter()
                .all(|m| has(events, "received", m) && has(events, "delivered", m))
        })
        .await;
    for post in endpoint.posts() {
        assert_signed(&post, &secret);
    }
    let shown = curl(
        &server,
        "GET",
        &format!("/api/v1/webhooks/{id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(shown.body["status"], "active", "{}", shown.body);
    assert!(shown.body["last_success_at"].is_string(), "{}", shown.body);
}

/// Polls endpoint `id` until its last error contains `expected`.
async fn wait_last_error(server: &Server, key: &str, id: i64, expected: &str) {
    let deadline = Instant::now() + WEBHOOK_WAIT;
    loop {
        let shown = curl(
            server,
            "GET",
            &format!("/api/v1/webhooks/{id}"),
            Some(key),
            None,
        )
        .await;
        if shown.body["last_error"]
            .as_str()
            .is_some_and(|error| error.contains(expected))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "webhook {id} never failed with {expected:?}: {}\n{}",
            shown.body,
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Endpoints made while private targets were allowed, then the
/// configuration narrowed to a network that holds neither: the dispatcher
/// refuses both when it connects (a name through its resolver, as a DNS
/// rebinding would present itself; a literal address before the request),
/// and the endpoint hears nothing. New endpoints there are refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_when_connecting() {
    let sink = common::sink().await;
    let (mut server, key) = shop(&sink).await;
    let endpoint = Endpoint::start(SocketAddr::from(([127, 0, 0, 1], 0)), 0).await;
    // `localhost` resolves through /etc/hosts: no query leaves the machine.
    let by_name_url = format!("http://localhost:{}/hooks/carteiro", endpoint.addr.port());
    let (by_name, _) = create_webhook(&server, &key, json!({"url": by_name_url})).await;
    let (by_address, _) = create_webhook(&server, &key, json!({"url": endpoint.url()})).await;

    let path = server.carteiro.config_path().to_path_buf();
    let config = std::fs::read_to_string(&path).expect("read the config");
    let narrowed = config.replace(
        "allow_private_targets = true",
        "allow_private_targets = [\"192.0.2.0/24\"]",
    );
    assert_ne!(narrowed, config);
    std::fs::write(&path, narrowed).expect("write the config");
    server
        .carteiro
        .restart()
        .await
        .unwrap_or_else(|err| panic!("restart: {err:#}"));

    for (url, reason) in [
        (
            "http://169.254.169.254/latest".to_owned(),
            "169.254.169.254 is a link-local address",
        ),
        (by_name_url.clone(), "localhost resolves to "),
    ] {
        let refused = curl(
            &server,
            "POST",
            "/api/v1/webhooks",
            Some(&key),
            Some(&json!({"url": url}).to_string()),
        )
        .await;
        assert_eq!(refused.status, 422, "{url}: {}", refused.body);
        assert_eq!(refused.body["detail"]["field"], "url");
        let message = refused.body["detail"]["message"].as_str().unwrap_or("");
        assert!(
            message.starts_with(reason) && message.contains("webhooks.allow_private_targets"),
            "{url}: {message}"
        );
    }

    let message = send(&server, &key, "alice@sink.test", "Hello").await;
    wait_event(&server, &key, &message, "delivered").await;
    wait_last_error(
        &server,
        &key,
        by_name,
        "localhost resolves only to private addresses (",
    )
    .await;
    wait_last_error(&server, &key, by_address, "127.0.0.1 is a loopback address").await;
    assert!(
        endpoint.posts().is_empty(),
        "nothing was sent: {:?}",
        endpoint.posts()
    );
}
