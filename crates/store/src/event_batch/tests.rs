//! Tests of how a batch lands: recipient states across batches, replays, and
//! batches bigger than one statement would comfortably hold.

use crate::testutil::{
    T0, all_pages, message_id, new_event, new_message, record, states, temp_store,
};
use crate::{EventKind, MessageFilter};

#[tokio::test]
async fn recipient_states_follow_events_in_and_across_batches() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let (a, b, c) = (message_id(T0, 1), message_id(T0, 2), message_id(T0, 3));
    let messages = [
        new_message(acme.id, &a, T0, &["r@x.test"], &[]),
        new_message(acme.id, &b, T0, &["r@x.test"], &[]),
        new_message(
            acme.id,
            &c,
            T0,
            &["one@x.test", "two@x.test", "ONE@x.test"],
            &[],
        ),
    ];
    // Delivered at once: the events ride in the message's own batch.
    let same_batch = [
        new_event(acme.id, &a, None, EventKind::Received, T0),
        new_event(acme.id, &a, Some("r@x.test"), EventKind::Delivered, T0 + 1),
        new_event(acme.id, &b, None, EventKind::Received, T0),
    ];
    record(&store, &messages, &same_batch).await;
    assert_eq!(states(&store, acme.id, &a).await, ["delivered"]);
    assert_eq!(states(&store, acme.id, &b).await, ["queued"]);
    assert_eq!(states(&store, acme.id, &c).await, ["queued"; 3]);

    // received -> deferred -> delivered, and received -> bounced, later.
    record(
        &store,
        &[],
        &[new_event(
            acme.id,
            &b,
            Some("R@X.TEST"),
            EventKind::Deferred,
            T0 + 10,
        )],
    )
    .await;
    assert_eq!(states(&store, acme.id, &b).await, ["deferred"]);
    record(
        &store,
        &[],
        &[new_event(
            acme.id,
            &b,
            Some("r@x.test"),
            EventKind::Delivered,
            T0 + 20,
        )],
    )
    .await;
    assert_eq!(states(&store, acme.id, &b).await, ["delivered"]);
    // An older event arriving late changes nothing; engagement changes nothing.
    let late = [
        new_event(acme.id, &b, Some("r@x.test"), EventKind::Deferred, T0 + 15),
        new_event(acme.id, &b, Some("r@x.test"), EventKind::Opened, T0 + 30),
    ];
    record(&store, &[], &late).await;
    assert_eq!(states(&store, acme.id, &b).await, ["delivered"]);

    // One recipient named twice: both entries follow it; the other stays.
    record(
        &store,
        &[],
        &[new_event(
            acme.id,
            &c,
            Some("one@x.test"),
            EventKind::Bounced,
            T0 + 5,
        )],
    )
    .await;
    assert_eq!(
        states(&store, acme.id, &c).await,
        ["bounced", "queued", "bounced"]
    );
    // A message-level event reaches every recipient.
    record(
        &store,
        &[],
        &[new_event(acme.id, &c, None, EventKind::Deleted, T0 + 6)],
    )
    .await;
    assert_eq!(states(&store, acme.id, &c).await, ["deleted"; 3]);
    // Another account's event for the same id touches nothing.
    let beta = store.create_account("beta").await.expect("account");
    record(
        &store,
        &[],
        &[new_event(beta.id, &a, None, EventKind::Expired, T0 + 50)],
    )
    .await;
    assert_eq!(states(&store, acme.id, &a).await, ["delivered"]);
}

#[tokio::test]
async fn a_replayed_message_keeps_its_record() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let id = message_id(T0, 1);
    let message = new_message(acme.id, &id, T0, &["r@x.test"], &["t"]);
    record(&store, std::slice::from_ref(&message), &[]).await;
    record(
        &store,
        &[],
        &[new_event(acme.id, &id, None, EventKind::Delivered, T0 + 1)],
    )
    .await;
    record(&store, &[message], &[]).await;
    assert_eq!(states(&store, acme.id, &id).await, ["delivered"]);
}

#[tokio::test]
async fn large_batches_cross_chunk_sizes_and_keep_the_newest_state() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let count = 301;
    let ids: Vec<String> = (0..count).map(|i| message_id(T0 + i, 9)).collect();
    let messages: Vec<_> = (0i64..)
        .zip(&ids)
        .map(|(i, id)| {
            new_message(
                acme.id,
                id,
                T0 + i,
                &["a@x.test", "b@x.test"],
                &["t1", "t2"],
            )
        })
        .collect();
    let received: Vec<_> = ids
        .iter()
        .map(|id| new_event(acme.id, id, None, EventKind::Received, T0))
        .collect();
    record(&store, &messages, &received).await;
    // Events a minute on, so all are newer than every message's receipt.
    let t = T0 + 60_000;
    let mut changes = Vec::new();
    for id in &ids {
        changes.push(new_event(
            acme.id,
            id,
            Some("a@x.test"),
            EventKind::Deferred,
            t + 10,
        ));
        changes.push(new_event(
            acme.id,
            id,
            Some("A@x.test"),
            EventKind::Delivered,
            t + 20,
        ));
        changes.push(new_event(
            acme.id,
            id,
            Some("b@x.test"),
            EventKind::Bounced,
            t + 5,
        ));
        changes.push(new_event(
            acme.id,
            id,
            Some("b@x.test"),
            EventKind::Deferred,
            t + 4,
        ));
    }
    changes.push(new_event(
        acme.id,
        &ids[0],
        None,
        EventKind::Expired,
        t + 15,
    ));
    record(&store, &[], &changes).await;

    assert_eq!(
        states(&store, acme.id, &ids[0]).await,
        ["delivered", "expired"]
    );
    assert_eq!(
        states(&store, acme.id, &ids[1]).await,
        ["delivered", "bounced"]
    );
    let with_status = async |status: &str| {
        let filter = MessageFilter {
            status: Some(status.to_owned()),
            ..MessageFilter::default()
        };
        all_pages(&store, acme.id, &filter, 1000).await.len()
    };
    assert_eq!(with_status("delivered").await, 301);
    assert_eq!(with_status("bounced").await, 300);
    assert_eq!(with_status("expired").await, 1);
    assert_eq!(with_status("queued").await, 0);
    let tagged = MessageFilter {
        tag: Some("t2".to_owned()),
        ..MessageFilter::default()
    };
    assert_eq!(all_pages(&store, acme.id, &tagged, 1000).await.len(), 301);
    // Event ids are consecutive within a batch, across statements, and grow
    // from one batch to the next.
    let events = store
        .events(acme.id, None, &[], None, 1000)
        .await
        .expect("events");
    assert_eq!(events.len(), 1000);
    let (first, second) = events.split_at(301);
    for batch in [first, second] {
        assert!(batch.windows(2).all(|w| w[1].id == w[0].id + 1));
    }
    assert!(second[0].id > first[300].id);
    assert!(first.iter().all(|e| e.kind == EventKind::Received));
    assert_eq!(second[0].kind, EventKind::Deferred);
}
