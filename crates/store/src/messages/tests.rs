//! Tests of message records and searches, written through `record_batch`
//! (the writer's unit of work).

use super::*;
use crate::testutil::{T0, all_pages, message_id, new_event, new_message, record, temp_store};
use crate::{EventKind, NewMessage};

#[tokio::test]
async fn a_message_reads_back_with_recipients_and_events_in_order() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let id = message_id(T0, 1);
    let message = new_message(acme.id, &id, T0, &["a@x.test", "b@y.test"], &["news", "q1"]);
    let received = new_event(acme.id, &id, None, EventKind::Received, T0);
    record(&store, std::slice::from_ref(&message), &[received]).await;
    let delivered = new_event(acme.id, &id, Some("A@X.test"), EventKind::Delivered, T0 + 5);
    let deferred = new_event(acme.id, &id, Some("b@y.test"), EventKind::Deferred, T0 + 6);
    record(&store, &[], &[delivered, deferred]).await;

    let found = store
        .message(acme.id, &id)
        .await
        .expect("message")
        .expect("found");
    assert_eq!(found.id, id);
    assert_eq!(found.account, "acme");
    assert_eq!(found.sender, message.sender);
    assert_eq!(found.subject.as_deref(), Some("Hello"));
    assert_eq!(found.header_message_id, message.header_message_id);
    assert_eq!(found.tags, ["news", "q1"]);
    assert_eq!(found.metadata, serde_json::json!({"order": 42}));
    let headers = found.headers.as_ref().expect("headers kept");
    assert_eq!(
        headers.text,
        format!("Message-ID: <{id}@example.com>\r\nSubject: Hello\r\n")
    );
    assert_eq!(headers.size, headers.text.len() as u64);
    assert_eq!(
        (found.source, found.size, found.received_at_ms),
        (MessageSource::Api, 1234, T0)
    );
    let recipients: Vec<_> = found
        .recipients
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                r.address.as_str(),
                r.state.as_str(),
                r.updated_at_ms,
            )
        })
        .collect();
    assert_eq!(
        recipients,
        [
            (format!("{id}-0"), "a@x.test", "delivered", T0 + 5),
            (format!("{id}-1"), "b@y.test", "deferred", T0 + 6)
        ]
    );
    let kinds: Vec<_> = found.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Received,
            EventKind::Delivered,
            EventKind::Deferred
        ]
    );
    assert!(found.events.windows(2).all(|w| w[0].id < w[1].id));
    let delivered = &found.events[1];
    assert_eq!(delivered.account, "acme");
    assert_eq!(delivered.message_id, id);
    assert_eq!(delivered.recipient.as_deref(), Some("A@X.test"));
    assert_eq!(delivered.timestamp_ms, T0 + 5);
    assert_eq!(
        delivered.details,
        serde_json::json!({"reason": "delivered"})
    );

    // Null metadata and no subject round-trip too.
    let bare_id = message_id(T0 + 1, 2);
    let bare = NewMessage {
        subject: None,
        header_message_id: None,
        tags: Vec::new(),
        metadata: serde_json::Value::Null,
        source: MessageSource::Smtp,
        sender: String::new(),
        headers: None,
        ..new_message(acme.id, &bare_id, T0 + 1, &["c@z.test"], &[])
    };
    record(&store, &[bare], &[]).await;
    let found = store
        .message(acme.id, &bare_id)
        .await
        .expect("message")
        .expect("found");
    assert_eq!(found.metadata, serde_json::Value::Null);
    assert_eq!((found.subject, found.source), (None, MessageSource::Smtp));
    assert!(found.events.is_empty() && found.tags.is_empty() && found.sender.is_empty());
    assert_eq!(found.headers, None);
}

#[test]
fn a_header_section_is_kept_without_its_empty_line_and_cut_at_a_line_end() {
    let kept = MessageHeaders::from_section(b"A: 1\r\nB: 2\r\n continued\r\n\r\n");
    assert_eq!(kept.text, "A: 1\r\nB: 2\r\n continued\r\n");
    assert_eq!((kept.size, kept.truncated()), (24, false));
    // A message of header fields only has no empty line.
    assert_eq!(MessageHeaders::from_section(b"A: 1\r\n").text, "A: 1\r\n");
    assert_eq!(MessageHeaders::from_section(b"A: 1\n\n").text, "A: 1\n");

    let line = format!("X-Long: {}\r\n", "v".repeat(990));
    let section = format!("{}\r\n", line.repeat(40));
    let kept = MessageHeaders::from_section(section.as_bytes());
    assert!(kept.truncated());
    assert_eq!(kept.size, (line.len() * 40) as u64);
    assert!(kept.text.len() <= MAX_STORED_HEADERS);
    assert_eq!(kept.text, line.repeat(MAX_STORED_HEADERS / line.len()));

    let raw = b"Subject: caf\xe9 \0 end\r\n\r\n";
    let odd = MessageHeaders::from_section(raw);
    assert_eq!(odd.text, "Subject: caf\u{fffd} \u{fffd} end\r\n");
    assert_eq!(odd.size, raw.len() as u64 - 2);
}

#[tokio::test]
async fn headers_with_odd_bytes_and_at_the_cap_read_back_as_kept() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let id = message_id(T0, 3);
    let mut section = b"Subject: caf\xe9 \0 \"quoted\" \\ end\r\n".to_vec();
    section.extend(
        format!("X-Long: {}\r\n", "w".repeat(990))
            .repeat(20)
            .bytes(),
    );
    let headers = MessageHeaders::from_section(&section);
    assert!(headers.truncated());
    let message = NewMessage {
        headers: Some(headers.clone()),
        ..new_message(acme.id, &id, T0, &["a@x.test"], &[])
    };
    record(&store, &[message], &[]).await;
    let found = store
        .message(acme.id, &id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found.headers, Some(headers));
}

#[tokio::test]
async fn a_recipient_found_by_message_id_says_when_it_was_delivered() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let id = message_id(T0, 1);
    let message = new_message(acme.id, &id, T0, &["a@x.test", "b@y.test"], &[]);
    record(&store, &[message], &[]).await;
    let lookup = |idx| {
        let (store, id) = (store.clone(), id.clone());
        async move { store.message_recipient(&id, idx).await.expect("lookup") }
    };
    let queued = lookup(0).await.expect("found");
    assert_eq!(
        queued,
        MessageRecipient {
            account_id: acme.id,
            address: "a@x.test".to_owned(),
            delivered_at_ms: None,
        }
    );

    let delivered = new_event(acme.id, &id, Some("a@x.test"), EventKind::Delivered, T0 + 5);
    let deferred = new_event(acme.id, &id, Some("b@y.test"), EventKind::Deferred, T0 + 6);
    record(&store, &[], &[delivered, deferred]).await;
    assert_eq!(
        lookup(0).await.expect("found").delivered_at_ms,
        Some(T0 + 5)
    );
    assert_eq!(lookup(1).await.expect("found").delivered_at_ms, None);
    assert_eq!(lookup(2).await, None, "no third recipient");
    assert_eq!(
        store
            .message_recipient(&message_id(T0, 2), 0)
            .await
            .expect("lookup"),
        None
    );

    // A bounce reported later is the recipient's state now: no longer
    // delivered.
    let bounced = new_event(
        acme.id,
        &id,
        Some("a@x.test"),
        EventKind::Bounced,
        T0 + 60_000,
    );
    record(&store, &[], &[bounced]).await;
    assert_eq!(lookup(0).await.expect("found").delivered_at_ms, None);
}

#[tokio::test]
async fn another_account_sees_nothing() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let beta = store.create_account("beta").await.expect("account");
    let id = message_id(T0, 1);
    let message = new_message(acme.id, &id, T0, &["a@x.test"], &["news"]);
    let received = new_event(acme.id, &id, None, EventKind::Received, T0);
    record(&store, &[message], &[received]).await;

    assert!(store.message(acme.id, &id).await.expect("own").is_some());
    assert_eq!(store.message(beta.id, &id).await.expect("other"), None);
    assert_eq!(
        store.message(beta.id + 100, &id).await.expect("no account"),
        None
    );
    let everything = [
        MessageFilter::default(),
        MessageFilter {
            recipient: Some("a@x.test".to_owned()),
            ..MessageFilter::default()
        },
        MessageFilter {
            tag: Some("news".to_owned()),
            ..MessageFilter::default()
        },
    ];
    for filter in &everything {
        let own = store
            .search_messages(acme.id, filter, 10, None)
            .await
            .expect("own");
        assert_eq!(own.len(), 1, "{filter:?}");
        let other = store
            .search_messages(beta.id, filter, 10, None)
            .await
            .expect("other");
        assert!(other.is_empty(), "{filter:?}");
    }
    assert_eq!(
        store
            .events(acme.id, None, &[], None, 10)
            .await
            .expect("own")
            .len(),
        1
    );
    assert!(
        store
            .events(beta.id, None, &[], None, 10)
            .await
            .expect("other")
            .is_empty()
    );
}

/// Records `count` one-recipient messages a second apart, with recipients
/// and tags in a pattern the search tests count on.
async fn record_series(store: &Store, account_id: i64, count: i64) -> Vec<String> {
    let mut ids = Vec::new();
    let mut messages = Vec::new();
    for i in 0..count {
        let id = message_id(T0 + i * 1000, 7);
        let recipient = if i % 3 == 0 {
            "Three@X.test"
        } else {
            "other@x.test"
        };
        let tags: &[&str] = if i % 2 == 0 { &["even"] } else { &[] };
        messages.push(new_message(
            account_id,
            &id,
            T0 + i * 1000,
            &[recipient],
            tags,
        ));
        ids.push(id);
    }
    record(store, &messages, &[]).await;
    ids
}

#[tokio::test]
async fn cursor_pages_cover_every_match_once_newest_first() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let ids = record_series(&store, acme.id, 25).await;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    for page in [1, 4, 25, 100] {
        let seen = all_pages(&store, acme.id, &MessageFilter::default(), page).await;
        assert_eq!(seen, newest_first, "page size {page}");
    }
    let threes = MessageFilter {
        recipient: Some("three@x.TEST".to_owned()),
        ..MessageFilter::default()
    };
    let expected: Vec<_> = (0..25)
        .rev()
        .filter(|i| i % 3 == 0)
        .map(|i| ids[i].clone())
        .collect();
    assert_eq!(all_pages(&store, acme.id, &threes, 2).await, expected);
    let even = MessageFilter {
        tag: Some("even".to_owned()),
        ..MessageFilter::default()
    };
    let expected: Vec<_> = (0..25)
        .rev()
        .filter(|i| i % 2 == 0)
        .map(|i| ids[i].clone())
        .collect();
    assert_eq!(all_pages(&store, acme.id, &even, 3).await, expected);
    let both = MessageFilter {
        recipient: Some("three@x.test".to_owned()),
        tag: Some("even".to_owned()),
        ..MessageFilter::default()
    };
    let expected: Vec<_> = (0..25)
        .rev()
        .filter(|i| i % 6 == 0)
        .map(|i| ids[i].clone())
        .collect();
    assert_eq!(all_pages(&store, acme.id, &both, 2).await, expected);
    // Search results carry their recipients.
    let page = store
        .search_messages(acme.id, &threes, 2, None)
        .await
        .expect("search");
    assert_eq!(page[0].recipients.len(), 1);
    assert_eq!(page[0].recipients[0].address, "Three@X.test");
    assert!(page[0].events.is_empty());
}

#[tokio::test]
async fn filters_by_time_sender_and_status() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let ids = record_series(&store, acme.id, 10).await;
    let between = MessageFilter {
        since_ms: Some(T0 + 2000),
        until_ms: Some(T0 + 5000),
        ..MessageFilter::default()
    };
    let found = all_pages(&store, acme.id, &between, 10).await;
    assert_eq!(found, [ids[4].clone(), ids[3].clone(), ids[2].clone()]);
    let since = MessageFilter {
        since_ms: Some(T0 + 8000),
        ..MessageFilter::default()
    };
    assert_eq!(all_pages(&store, acme.id, &since, 10).await.len(), 2);

    let sender = MessageFilter {
        sender: Some("sender@EXAMPLE.com".to_owned()),
        ..MessageFilter::default()
    };
    assert_eq!(all_pages(&store, acme.id, &sender, 3).await.len(), 10);
    let other_sender = MessageFilter {
        sender: Some("sender@example.co".to_owned()),
        ..MessageFilter::default()
    };
    assert!(
        all_pages(&store, acme.id, &other_sender, 3)
            .await
            .is_empty()
    );

    let bounced = [
        new_event(
            acme.id,
            &ids[1],
            Some("other@x.test"),
            EventKind::Bounced,
            T0 + 1500,
        ),
        new_event(acme.id, &ids[7], None, EventKind::Bounced, T0 + 7500),
    ];
    record(&store, &[], &bounced).await;
    let status = MessageFilter {
        status: Some("bounced".to_owned()),
        ..MessageFilter::default()
    };
    assert_eq!(
        all_pages(&store, acme.id, &status, 1).await,
        [ids[7].clone(), ids[1].clone()]
    );
    let queued_threes = MessageFilter {
        status: Some("queued".to_owned()),
        recipient: Some("three@x.test".to_owned()),
        since_ms: Some(T0 + 1000),
        ..MessageFilter::default()
    };
    let expected = [ids[9].clone(), ids[6].clone(), ids[3].clone()];
    assert_eq!(
        all_pages(&store, acme.id, &queued_threes, 2).await,
        expected
    );
}

/// The query plan of `sql` with its parameters bound to `binds`, as text.
async fn plan(store: &Store, sql: &str, binds: &[Bind]) -> String {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
    for value in binds {
        query = match value {
            Bind::Int(v) => query.bind(*v),
            Bind::Text(v) => query.bind(v.clone()),
        };
    }
    let rows = query.fetch_all(&store.pool).await.expect("explain");
    rows.iter()
        .map(|row| row.try_get::<String, _>("detail").expect("detail"))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test]
async fn searches_use_indexes() {
    // SQLite's plans; PostgreSQL plans by its statistics.
    if crate::testutil::on_postgres() {
        return;
    }
    let (_dir, store) = temp_store().await;
    let cases = [
        (
            MessageFilter {
                since_ms: Some(T0),
                until_ms: Some(T0 + 1000),
                sender: Some("s@x.test".to_owned()),
                status: Some("queued".to_owned()),
                ..MessageFilter::default()
            },
            "SEARCH m USING INDEX sqlite_autoindex_messages_1 (account_id=? AND id>? AND id<?)",
        ),
        (
            MessageFilter {
                recipient: Some("r@x.test".to_owned()),
                tag: Some("t".to_owned()),
                ..MessageFilter::default()
            },
            "SEARCH r USING COVERING INDEX message_recipients_address (account_id=? AND <expr>=? AND message_id<?)",
        ),
        (
            MessageFilter {
                tag: Some("t".to_owned()),
                since_ms: Some(T0),
                ..MessageFilter::default()
            },
            "SEARCH t USING PRIMARY KEY (account_id=? AND tag=? AND message_id>? AND message_id<?)",
        ),
        (
            // The header's index gives a list of ids, probed on the key.
            MessageFilter {
                header_message_id: Some("<x@example.com>".to_owned()),
                ..MessageFilter::default()
            },
            "SEARCH m USING INDEX sqlite_autoindex_messages_1 (account_id=? AND id=?)",
        ),
    ];
    for (filter, expected) in cases {
        let search = build_search(1, &filter, Some(&message_id(T0 + 5000, 0)), 10);
        let mut binds = search.binds;
        binds.push(Bind::Int(1));
        let plan = plan(&store, &search.sql, &binds).await;
        assert!(
            plan.starts_with(expected),
            "{filter:?}\n{}\n{plan}",
            search.sql
        );
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
        assert!(!plan.contains("SCAN"), "no scan: {plan}");
    }
    let events = plan(
        &store,
        "SELECT * FROM events e WHERE e.account_id = $1 AND e.id >= $2 \
         AND e.timestamp_ms >= $3 AND e.kind IN ($5, $6) ORDER BY e.id LIMIT $4",
        &[
            Bind::Int(1),
            Bind::Int(0),
            Bind::Int(0),
            Bind::Int(10),
            Bind::Text("a".into()),
            Bind::Text("b".into()),
        ],
    )
    .await;
    assert_eq!(events, "SEARCH e USING PRIMARY KEY (account_id=? AND id>?)");
    let message_events = plan(
        &store,
        MESSAGE_EVENTS_SQL,
        &[Bind::Int(1), Bind::Text("m".into())],
    )
    .await;
    assert!(
        message_events.starts_with(
            "SEARCH e USING PRIMARY KEY (account_id=? AND id=?) | LIST SUBQUERY 1 | \
             SEARCH x USING COVERING INDEX events_message (account_id=? AND message_id=?)"
        ),
        "{message_events}"
    );
    assert!(!message_events.contains("TEMP B-TREE"), "{message_events}");
    let state_update = plan(
        &store,
        crate::event_batch::WHOLE_MESSAGE_STATE_SQL,
        &[
            Bind::Int(1),
            Bind::Text("m".into()),
            Bind::Text("s".into()),
            Bind::Int(5),
        ],
    )
    .await;
    assert_eq!(
        state_update,
        "SEARCH message_recipients USING PRIMARY KEY (account_id=? AND message_id=?)"
    );
    let json = serde_json::json!([[1, "m1", "r@x.test", "delivered", 5]]).to_string();
    let state_updates = plan(
        &store,
        crate::event_batch::UPDATE_STATES_SQL.get(crate::Backend::Sqlite),
        &[Bind::Text(json)],
    )
    .await;
    assert_eq!(
        state_updates,
        "SCAN v VIRTUAL TABLE INDEX 1: | \
         SEARCH message_recipients USING PRIMARY KEY (account_id=? AND message_id=?) | \
         SEARCH r USING PRIMARY KEY (account_id=? AND message_id=? AND idx=?)"
    );
}

#[tokio::test]
async fn finds_messages_by_subject_text_and_by_message_id_header() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let subjects = ["Your order 100% shipped", "Invoice_2026", "Welcome aboard"];
    let mut messages = Vec::new();
    for (n, subject) in subjects.iter().enumerate() {
        let id = message_id(T0 + n as i64, 1);
        let mut message = new_message(acme.id, &id, T0 + n as i64, &["a@x.test"], &[]);
        message.subject = Some((*subject).to_owned());
        messages.push(message);
    }
    record(&store, &messages, &[]).await;
    let search = async |filter: MessageFilter| all_pages(&store, acme.id, &filter, 10).await;
    let subject = |text: &str| MessageFilter {
        subject: Some(text.to_owned()),
        ..MessageFilter::default()
    };
    assert_eq!(search(subject("ORDER")).await, [messages[0].id.clone()]);
    assert_eq!(
        search(subject("100%")).await,
        [messages[0].id.clone()],
        "% is literal"
    );
    assert!(search(subject("1000")).await.is_empty());
    assert_eq!(
        search(subject("e_2")).await,
        [messages[1].id.clone()],
        "_ is literal"
    );
    assert!(search(subject("ce-2")).await.is_empty());
    assert_eq!(search(subject("o")).await.len(), 3);

    let header = |text: &str| MessageFilter {
        header_message_id: Some(text.to_owned()),
        ..MessageFilter::default()
    };
    let wanted = messages[2].header_message_id.clone().expect("header id");
    assert_eq!(search(header(&wanted)).await, [messages[2].id.clone()]);
    let bare = wanted.trim_matches(['<', '>']).to_owned();
    assert_eq!(search(header(&bare)).await, [messages[2].id.clone()]);
    assert!(search(header("nothing@example.com")).await.is_empty());
}
