//! Webhook endpoints: per-account isolation, the cursor starting at the
//! newest event, the events-after-cursor and backlog queries, and the
//! delivery bookkeeping.

use crate::testutil::{T0, message_id, new_event, new_message, record, temp_store};
use crate::{EventKind, Store, WEBHOOK_FAILING_AFTER, WebhookStatus};

/// Records one event of `kind` for `account_id` in its own batch; returns
/// its id.
async fn event(store: &Store, account_id: i64, kind: EventKind, n: u128) -> i64 {
    let id = message_id(T0, n);
    record(
        store,
        &[new_message(account_id, &id, T0, &["r@x.test"], &[])],
        &[new_event(account_id, &id, Some("r@x.test"), kind, T0)],
    )
    .await;
    store.newest_event_id().await.expect("newest")
}

#[tokio::test]
async fn endpoints_belong_to_their_account() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("acme");
    let other = store.create_account("other").await.expect("other");
    let hook = store
        .create_webhook(
            acme.id,
            "https://hooks.acme.test/carteiro",
            &[EventKind::Delivered, EventKind::Bounced],
        )
        .await
        .expect("create");
    assert_eq!(hook.account_id, acme.id);
    assert_eq!(hook.url, "https://hooks.acme.test/carteiro");
    assert_eq!(hook.events, [EventKind::Delivered, EventKind::Bounced]);
    assert!(hook.secret.starts_with("whsec_"), "{}", hook.secret);
    assert_eq!(hook.secret.len(), "whsec_".len() + 64);
    assert!(
        hook.secret["whsec_".len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
    );
    assert_eq!(hook.status(), WebhookStatus::Active);
    assert!(hook.wants(EventKind::Bounced));
    assert!(!hook.wants(EventKind::Opened));
    assert!(
        !format!("{hook:?}").contains(&hook.secret),
        "no secret in Debug"
    );

    let all = store
        .create_webhook(acme.id, "http://127.0.0.1:9/x", &[])
        .await
        .expect("create all");
    assert!(all.wants(EventKind::Opened), "no types: every type");
    assert_ne!(all.secret, hook.secret);

    let listed = store.webhooks(acme.id).await.expect("list");
    assert_eq!(listed, [hook.clone(), all.clone()]);
    assert_eq!(store.webhooks(other.id).await.expect("list other"), []);
    assert_eq!(
        store.webhook(acme.id, hook.id).await.expect("get"),
        Some(hook.clone())
    );
    assert_eq!(store.webhook(other.id, hook.id).await.expect("get"), None);
    assert!(
        !store
            .delete_webhook(other.id, hook.id)
            .await
            .expect("delete")
    );
    assert_eq!(store.all_webhooks().await.expect("all").len(), 2);
    assert!(
        store
            .delete_webhook(acme.id, hook.id)
            .await
            .expect("delete")
    );
    assert!(!store.delete_webhook(acme.id, hook.id).await.expect("again"));
    assert_eq!(store.all_webhooks().await.expect("all"), [all]);

    let missing = store.create_webhook(9999, "https://x.test/", &[]).await;
    assert!(
        matches!(missing, Err(crate::StoreError::NoSuchAccount(_))),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_new_endpoint_gets_only_later_events() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("acme");
    let other = store.create_account("other").await.expect("other");
    assert_eq!(store.newest_event_id().await.expect("newest"), 0);
    let before = event(&store, acme.id, EventKind::Delivered, 1).await;
    let hook = store
        .create_webhook(
            acme.id,
            "https://hooks.test/",
            &[EventKind::Delivered, EventKind::Bounced],
        )
        .await
        .expect("create");
    assert_eq!(
        hook.last_event_id, before,
        "the cursor starts at the newest event"
    );

    let committed_after = crate::store::now_unix_ms();
    let delivered = event(&store, acme.id, EventKind::Delivered, 2).await;
    assert!(
        delivered >= crate::event_id_floor(committed_after),
        "ids of later commits are above the floor of an earlier time"
    );
    assert!(before < crate::event_id_floor(crate::store::now_unix_ms() + 1));
    let _received = event(&store, acme.id, EventKind::Received, 3).await;
    let _not_ours = event(&store, other.id, EventKind::Bounced, 4).await;
    let bounced = event(&store, acme.id, EventKind::Bounced, 5).await;
    let newest = store.newest_event_id().await.expect("newest");

    let found = store
        .webhook_events(acme.id, &hook.events, hook.last_event_id, newest, 100)
        .await
        .expect("events");
    let ids: Vec<i64> = found.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        [delivered, bounced],
        "only wanted kinds of this account"
    );
    assert!(found.iter().all(|e| &*e.account == "acme"));
    let first = store
        .webhook_events(acme.id, &hook.events, hook.last_event_id, newest, 1)
        .await
        .expect("limited");
    assert_eq!(first.len(), 1);
    let bounded = store
        .webhook_events(acme.id, &hook.events, hook.last_event_id, delivered, 100)
        .await
        .expect("bounded");
    assert_eq!(bounded.len(), 1, "nothing past up_to_id");
    let every = store
        .webhook_events(acme.id, &[], hook.last_event_id, newest, 100)
        .await
        .expect("every kind");
    assert_eq!(every.len(), 3);

    let count = |kinds: Vec<EventKind>, cap| {
        let store = store.clone();
        async move {
            store
                .count_webhook_events(acme.id, &kinds, before, newest, cap)
                .await
                .expect("count")
        }
    };
    assert_eq!(count(hook.events.clone(), 100).await, 2);
    assert_eq!(count(Vec::new(), 100).await, 3);
    assert_eq!(count(Vec::new(), 2).await, 2, "capped");
}

#[tokio::test]
async fn delivery_bookkeeping() {
    let (dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("acme");
    let hook = store
        .create_webhook(acme.id, "https://hooks.test/", &[])
        .await
        .expect("create");
    let get = |store: Store| async move {
        store
            .webhook(acme.id, hook.id)
            .await
            .expect("get")
            .expect("present")
    };

    for n in 1..=WEBHOOK_FAILING_AFTER {
        let at = T0 + i64::from(n) * 1000;
        let (failures, since) = store
            .webhook_failed(hook.id, &format!("HTTP 500 (try {n})"), at)
            .await
            .expect("failed")
            .expect("present");
        assert_eq!(failures, n);
        assert_eq!(since, T0 + 1000, "the run began at the first failure");
        let now = get(store.clone()).await;
        let expected = if n < WEBHOOK_FAILING_AFTER {
            WebhookStatus::Active
        } else {
            WebhookStatus::Failing
        };
        assert_eq!(now.status(), expected, "after {n} failures");
        assert_eq!(
            now.last_error.as_deref(),
            Some(&*format!("HTTP 500 (try {n})"))
        );
        assert_eq!(now.last_error_at_ms, Some(at));
    }
    let long = "x".repeat(2000);
    store
        .webhook_failed(hook.id, &long, T0 + 9000)
        .await
        .expect("failed");
    assert_eq!(
        get(store.clone()).await.last_error.map(|e| e.len()),
        Some(500)
    );

    store
        .webhook_delivered(hook.id, hook.last_event_id + 10, T0 + 10_000)
        .await
        .expect("delivered");
    let now = get(store.clone()).await;
    assert_eq!(now.status(), WebhookStatus::Active);
    assert_eq!((now.failures, now.failing_since_ms), (0, None));
    assert_eq!(now.last_success_at_ms, Some(T0 + 10_000));
    assert_eq!(now.last_event_id, hook.last_event_id + 10);
    assert!(now.last_error.is_some(), "the last error stays to be read");

    store
        .advance_webhook(hook.id, hook.last_event_id + 5)
        .await
        .expect("advance");
    assert_eq!(
        get(store.clone()).await.last_event_id,
        hook.last_event_id + 10,
        "never back"
    );
    store
        .skip_webhook_events(hook.id, hook.last_event_id + 20, 7)
        .await
        .expect("skip");
    let now = get(store.clone()).await;
    assert_eq!(
        (now.last_event_id, now.skipped_events),
        (hook.last_event_id + 20, 7)
    );

    // Everything is in the file: a restart finds it as it was.
    store.close().await;
    drop(store);
    let reopened = crate::testutil::another_handle(&dir).await;
    assert_eq!(get(reopened.clone()).await, now);

    assert!(
        reopened
            .delete_webhook(acme.id, hook.id)
            .await
            .expect("delete")
    );
    assert_eq!(
        reopened
            .webhook_failed(hook.id, "gone", T0)
            .await
            .expect("failed"),
        None
    );
}
