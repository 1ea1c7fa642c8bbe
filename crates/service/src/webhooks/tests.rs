//! The signature and backoff as values, and the dispatcher against a real
//! HTTP receiver on loopback: signed POSTs of committed events, and the
//! cursor in the store moving only after a `2xx`.

use super::*;

#[test]
fn backoff_doubles_up_to_the_cap() {
    let initial = Duration::from_secs(10);
    let max = Duration::from_secs(3600);
    let delays: Vec<u64> = (1..=11)
        .map(|n| backoff(n, initial, max).as_secs())
        .collect();
    assert_eq!(
        delays,
        [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
    );
    assert_eq!(backoff(0, initial, max), initial);
    assert_eq!(backoff(u32::MAX, initial, max), max);
}

#[test]
fn signatures_are_hmac_sha256_of_timestamp_and_body() {
    // Computed independently with Python's hmac module:
    // hmac.new(b"whsec_test", b"1700000000.[]", sha256).hexdigest()
    assert_eq!(
        sign(b"whsec_test", 1_700_000_000, b"[]"),
        "fb017425d6de061bb16bed88b001a6b5e9d14818e174cf67988a449825c5583f"
    );
}

use crate::testing::{Fixture, WAIT, eventually};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use carteiro_store::{DeliveryDetails, EventDetails, EventKind, NewEvent};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// A POST the receiver got.
struct Post {
    headers: HeaderMap,
    body: Bytes,
}

/// An HTTP receiver on 127.0.0.1:0 answering each POST to `/hooks` with
/// the next of `statuses` (the last one repeated); returns its URL and
/// what it receives.
async fn receiver(statuses: Vec<StatusCode>) -> (String, mpsc::UnboundedReceiver<Post>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let count = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (tx, count, statuses) = (tx.clone(), Arc::clone(&count), statuses.clone());
            async move {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(Post { headers, body });
                statuses[n.min(statuses.len() - 1)]
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hooks"), rx)
}

/// The dispatcher's settings for tests: retries come quickly.
fn settings(fx: &Fixture) -> WebhooksConfig {
    // The fixture's config has `allow_private_targets = true`: these
    // receivers are on loopback.
    let mut settings = fx.config.webhooks.clone();
    settings.retry_initial = Duration::from_millis(100);
    settings.retry_max = Duration::from_millis(200);
    settings
}

/// A `delivered` event for recipient `rcpt` of message `id`.
fn delivered(account_id: i64, id: carteiro_mail::MessageId, rcpt: &str) -> NewEvent {
    NewEvent {
        account_id,
        message_id: id.to_string(),
        recipient: Some(rcpt.to_owned()),
        kind: EventKind::Delivered,
        timestamp_ms: now_ms(),
        details: EventDetails::Delivery(DeliveryDetails {
            attempt: 1,
            remote_host: Some("mx.dest.test[192.0.2.25]:25".to_owned()),
            reply: Some("250 2.0.0 ok".to_owned()),
            reply_code: Some(250),
            status: Some("2.0.0".to_owned()),
            ..DeliveryDetails::default()
        }),
    }
}

async fn next_post(posts: &mut mpsc::UnboundedReceiver<Post>) -> Post {
    tokio::time::timeout(WAIT, posts.recv())
        .await
        .expect("a POST in time")
        .expect("receiver running")
}

/// Checks the signature header of `post` against `secret`.
fn assert_signed(post: &Post, secret: &str) {
    let header = post
        .headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .expect("signature header");
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("t=…,v1=…: {header}"));
    let t: i64 = t.parse().expect("unix seconds");
    assert!(
        (t - now_ms() / 1000).abs() < 300,
        "a current timestamp: {t}"
    );
    assert_eq!(v1, sign(secret.as_bytes(), t, &post.body), "{header}");
}

#[tokio::test]
async fn committed_events_are_posted_signed_and_the_cursor_moves() {
    let fx = Fixture::new().await;
    let (url, mut posts) = receiver(vec![StatusCode::OK]).await;
    let hook = fx
        .store
        .create_webhook(fx.shop.id, &url, &[])
        .await
        .expect("webhook");
    let id = fx.record_message(&fx.shop, &["alice@dest.test"]).await;
    fx.events
        .event(delivered(fx.shop.id, id, "alice@dest.test"));
    // Another account's event is not this endpoint's business.
    let theirs = fx.record_message(&fx.news, &["zed@dest.test"]).await;
    fx.events
        .event(delivered(fx.news.id, theirs, "zed@dest.test"));
    let ours = fx.events_of(&fx.shop, EventKind::Delivered).await;
    assert_eq!(ours.len(), 1);
    let event_id = ours[0].id;

    let (stop, stopped) = watch::channel(false);
    let (dispatcher, task) = start(fx.store.clone(), &settings(&fx), stopped).expect("started");
    let post = next_post(&mut posts).await;
    assert_signed(&post, &hook.secret);
    let header = |name: &str| post.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("content-type"), Some("application/json"));
    assert_eq!(header("user-agent"), Some(USER_AGENT));
    let batch: serde_json::Value = serde_json::from_slice(&post.body).expect("JSON");
    let batch = batch.as_array().expect("an array");
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert_eq!(batch[0]["id"], event_id.to_string());
    assert_eq!(batch[0]["type"], "delivered");
    assert_eq!(batch[0]["account"], "shop");
    assert_eq!(batch[0]["message_id"], id.to_string());
    assert_eq!(batch[0]["recipient"], "alice@dest.test");
    assert_eq!(batch[0]["details"]["reply_code"], 250);

    let stored = eventually("the cursor moves past the event", || async {
        let hook = fx
            .store
            .webhook(fx.shop.id, hook.id)
            .await
            .expect("lookup")
            .expect("still there");
        (hook.last_event_id >= event_id).then_some(hook)
    })
    .await;
    assert_eq!(stored.failures, 0);
    assert!(stored.last_success_at_ms.is_some());
    assert_eq!(dispatcher.backlog(), 0);

    stop.send(true).expect("dispatcher listening");
    tokio::time::timeout(WAIT, task)
        .await
        .expect("stopped in time")
        .expect("no panic");
    // Sent once: nothing new, nothing again.
    assert!(posts.try_recv().is_err(), "a second POST");
}

#[tokio::test]
async fn a_failed_post_leaves_the_cursor_and_is_retried() {
    let fx = Fixture::new().await;
    let (url, mut posts) = receiver(vec![
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::NO_CONTENT,
    ])
    .await;
    let hook = fx
        .store
        .create_webhook(fx.shop.id, &url, &[EventKind::Delivered])
        .await
        .expect("webhook");
    let cursor = hook.last_event_id;
    let id = fx.record_message(&fx.shop, &["alice@dest.test"]).await;
    fx.events
        .event(delivered(fx.shop.id, id, "alice@dest.test"));
    let event_id = fx.events_of(&fx.shop, EventKind::Delivered).await[0].id;

    let (stop, stopped) = watch::channel(false);
    let (_dispatcher, task) = start(fx.store.clone(), &settings(&fx), stopped).expect("started");
    let refused = next_post(&mut posts).await;
    let retried = next_post(&mut posts).await;
    // The same batch, signed afresh.
    assert_eq!(refused.body, retried.body);
    assert_signed(&retried, &hook.secret);
    let stored = eventually("the cursor moves after the 204", || async {
        let hook = fx.store.webhook(fx.shop.id, hook.id).await.ok()??;
        (hook.last_event_id >= event_id).then_some(hook)
    })
    .await;
    assert!(stored.last_event_id > cursor);
    assert_eq!(stored.failures, 0, "a success clears the failures");
    assert_eq!(
        stored.last_error.as_deref(),
        Some("HTTP 500 Internal Server Error"),
        "the failure is kept for the API"
    );
    stop.send(true).expect("dispatcher listening");
    tokio::time::timeout(WAIT, task)
        .await
        .expect("stopped in time")
        .expect("no panic");
}
