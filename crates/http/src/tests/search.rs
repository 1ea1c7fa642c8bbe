//! `GET /api/v1/messages` (search) and `GET /api/v1/events` (the event log):
//! filters, pages and parameter checks, on records written as the daemon
//! writes them (through the event writer).

use axum::http::StatusCode;
use carteiro_mail::MessageId;
use carteiro_store::{EventKind, MessageSource, NewEvent, NewMessage};
use serde_json::Value;

use super::{Harness, assert_error};

/// 2025-03-10T10:00:00Z: the first message. Times are fixed and in the past
/// (the store expects events to be committed after their timestamps).
const T0: i64 = 1_741_600_800_000;
const DAY: i64 = 86_400_000;
const MINUTE: i64 = 60_000;

/// A message: its id, when, sender, recipients, tags.
struct Seed {
    id: String,
    ms: i64,
}

fn new_message(
    account_id: i64,
    n: u128,
    ms: i64,
    sender: &str,
    to: &[&str],
    tags: &[&str],
) -> NewMessage {
    let id = MessageId((u128::try_from(ms).expect("ms") << 80) | n).to_string();
    NewMessage {
        id,
        account_id,
        sender: sender.to_owned(),
        recipients: to.iter().map(|r| (*r).to_owned()).collect(),
        subject: Some(format!("message {n}")),
        header_message_id: Some(format!("<m{n}@shop.example>")),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        sending_domain: None,
        metadata: Value::Null,
        source: MessageSource::Smtp,
        size: 100,
        received_at_ms: ms,
        headers: None,
    }
}

fn new_event(
    account_id: i64,
    seed: &Seed,
    recipient: Option<&str>,
    kind: EventKind,
    ms: i64,
) -> NewEvent {
    NewEvent {
        account_id,
        message_id: seed.id.clone(),
        recipient: recipient.map(str::to_owned),
        kind,
        timestamp_ms: ms,
        details: carteiro_store::EventDetails::None,
    }
}

/// Five messages of `acme` a day apart (m[0] oldest) and one of `globex`,
/// each with its `received` event; then m[1] delivered to y, m[2] bounced
/// for z, m[4] delivered to w, each a minute after its message.
async fn seed(h: &Harness) -> (Vec<Seed>, String) {
    let (globex, globex_key) = h.other_account("globex").await;
    let specs: [(&str, &[&str], &[&str]); 5] = [
        ("a@shop.example", &["x@example.org"], &["news"]),
        (
            "b@shop.example",
            &["y@example.org", "X@Example.org"],
            &["orders"],
        ),
        ("a@shop.example", &["z@example.org"], &["news", "orders"]),
        ("a@shop.example", &["x@example.org"], &[]),
        ("B@shop.example", &["w@example.org"], &["news"]),
    ];
    let mut seeds = Vec::new();
    for (n, (sender, to, tags)) in specs.into_iter().enumerate() {
        let ms = T0 + DAY * i64::try_from(n).expect("n");
        let message = new_message(h.account_id, n as u128, ms, sender, to, tags);
        let seed = Seed {
            id: message.id.clone(),
            ms,
        };
        h.writer.message(message);
        h.writer.event(new_event(
            h.account_id,
            &seed,
            None,
            EventKind::Received,
            ms,
        ));
        seeds.push(seed);
    }
    let other = new_message(
        globex,
        9,
        T0 + 2 * DAY,
        "a@shop.example",
        &["x@example.org"],
        &["news"],
    );
    let other_seed = Seed {
        id: other.id.clone(),
        ms: other.received_at_ms,
    };
    h.writer.message(other);
    h.writer.event(new_event(
        globex,
        &other_seed,
        None,
        EventKind::Received,
        other_seed.ms,
    ));
    for (index, recipient, kind) in [
        (1, "y@example.org", EventKind::Delivered),
        (2, "z@example.org", EventKind::Bounced),
        (4, "w@example.org", EventKind::Delivered),
    ] {
        let seed = &seeds[index];
        let event = new_event(h.account_id, seed, Some(recipient), kind, seed.ms + MINUTE);
        h.writer.event(event);
    }
    h.writer.flush().await;
    (seeds, globex_key)
}

/// The message ids of a search answer.
fn ids(answer: &Value) -> Vec<String> {
    answer["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn search_by_subject_text_and_message_id_header() {
    let h = Harness::new().await;
    let (m, _) = seed(&h).await;
    let found = |uri: &str| {
        let h = &h;
        let uri = uri.to_owned();
        async move {
            let answer = h.get(&uri).await;
            assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.json);
            ids(&answer.json)
        }
    };
    // Subject text, ASCII case ignored; only this account's (globex's
    // "message 9" is not found).
    assert_eq!(
        found("/api/v1/messages?subject=MESSAGE%203").await,
        [m[3].id.clone()]
    );
    assert!(
        found("/api/v1/messages?subject=message%209")
            .await
            .is_empty()
    );
    assert_eq!(found("/api/v1/messages?subject=message").await.len(), 5);
    // The Message-ID header, with or without its angle brackets.
    assert_eq!(
        found("/api/v1/messages?message_id=%3Cm2%40shop.example%3E").await,
        [m[2].id.clone()]
    );
    assert_eq!(
        found("/api/v1/messages?message_id=m2@shop.example").await,
        [m[2].id.clone()]
    );
    assert!(
        found("/api/v1/messages?message_id=m9@shop.example")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn search_filters_and_pages_newest_first() {
    let h = Harness::new().await;
    let (m, globex_key) = seed(&h).await;
    let expect =
        |indexes: &[usize]| -> Vec<String> { indexes.iter().map(|&i| m[i].id.clone()).collect() };

    // Pages of two, newest first, then a last short page without a cursor.
    let mut seen = Vec::new();
    let mut uri = "/api/v1/messages?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let answer = h.get(&uri).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        pages += 1;
        seen.extend(ids(&answer.json));
        let Some(cursor) = answer.json["next_cursor"].as_str() else {
            assert_eq!(answer.json["next_cursor"], Value::Null);
            break;
        };
        uri = format!("/api/v1/messages?limit=2&cursor={cursor}");
    }
    assert_eq!((pages, seen), (3, expect(&[4, 3, 2, 1, 0])));

    let cases: [(&str, &[usize]); 12] = [
        ("recipient=X@EXAMPLE.ORG", &[3, 1, 0]),
        ("sender=b@shop.example", &[4, 1]),
        ("tag=news", &[4, 2, 0]),
        ("tag=orders&recipient=z@example.org", &[2]),
        ("status=delivered", &[4, 1]),
        ("status=bounced", &[2]),
        ("status=queued", &[3, 1, 0]),
        ("since=2025-03-12", &[4, 3, 2]),
        ("until=2025-03-12T10:00:00Z", &[1, 0]),
        ("since=2025-03-11&until=2025-03-13", &[2, 1]),
        ("since=2025-03-11T11:00:00%2B01:00&tag=", &[4, 3, 2, 1]),
        ("recipient=nobody@example.org", &[]),
    ];
    for (query, expected) in cases {
        let answer = h.get(&format!("/api/v1/messages?{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.json);
        assert_eq!(ids(&answer.json), expect(expected), "{query}");
        assert_eq!(answer.json["next_cursor"], Value::Null, "{query}");
    }

    // Search results carry recipients but not events.
    let answer = h.get("/api/v1/messages?status=bounced").await;
    let message = &answer.json["messages"][0];
    assert!(message.get("events").is_none(), "{message}");
    assert_eq!(message["recipients"][0]["state"], "bounced");
    assert_eq!(message["recipients"][0]["id"], format!("{}-0", m[2].id));
    assert_eq!(message["source"], "smtp");
    assert_eq!(message["metadata"], serde_json::json!({}));

    // The other account sees only its own message.
    let answer = h.get_with("/api/v1/messages", &globex_key).await;
    let theirs = ids(&answer.json);
    assert_eq!(theirs.len(), 1);
    assert!(!m.iter().any(|s| s.id == theirs[0]));
}

#[tokio::test]
async fn search_parameters_are_checked() {
    let h = Harness::new().await;
    let cases = [
        ("status=lost", "status"),
        ("since=yesterday", "since"),
        ("until=2025-02-30", "until"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("cursor=not-an-id", "cursor"),
        ("recipent=x@example.org", "recipent"),
        ("tag=a&tag=b", "tag"),
    ];
    for (query, parameter) in cases {
        let answer = h.get(&format!("/api/v1/messages?{query}")).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid parameter");
        assert_eq!(
            answer.json["detail"]["parameter"], parameter,
            "{query}: {}",
            answer.json
        );
        assert!(answer.json["detail"]["message"].is_string());
    }
}

/// The event types of an events answer, with the message index of each.
fn kinds(answer: &Value, m: &[Seed]) -> Vec<(String, usize)> {
    answer["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            let index = m
                .iter()
                .position(|s| e["message_id"] == s.id.as_str())
                .expect("own message");
            (e["type"].as_str().expect("type").to_owned(), index)
        })
        .collect()
}

#[tokio::test]
async fn events_filter_by_type_and_time_and_page_oldest_first() {
    let h = Harness::new().await;
    let (m, globex_key) = seed(&h).await;
    let all = h.get("/api/v1/events").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.json);
    let r = |i| ("received".to_owned(), i);
    let expected = vec![
        r(0),
        r(1),
        r(2),
        r(3),
        r(4),
        ("delivered".to_owned(), 1),
        ("bounced".to_owned(), 2),
        ("delivered".to_owned(), 4),
    ];
    assert_eq!(kinds(&all.json, &m), expected);
    assert_eq!(all.json["next_cursor"], Value::Null);
    let first = &all.json["events"][5];
    assert_eq!(first["account"], "acme");
    assert_eq!(first["recipient"], "y@example.org");
    assert_eq!(first["timestamp"], "2025-03-11T10:01:00.000Z");

    let want = |list: &[(&str, usize)]| -> Vec<(String, usize)> {
        list.iter().map(|(k, i)| ((*k).to_owned(), *i)).collect()
    };
    let cases: [(&str, Vec<(String, usize)>); 4] = [
        (
            "type=delivered,bounced",
            want(&[("delivered", 1), ("bounced", 2), ("delivered", 4)]),
        ),
        (
            "type=bounced&type=delivered",
            want(&[("delivered", 1), ("bounced", 2), ("delivered", 4)]),
        ),
        (
            "since=2025-03-12",
            want(&[
                ("received", 2),
                ("received", 3),
                ("received", 4),
                ("bounced", 2),
                ("delivered", 4),
            ]),
        ),
        (
            "since=2025-03-12T00:00:00Z&type=delivered",
            want(&[("delivered", 4)]),
        ),
    ];
    for (query, expected) in cases {
        let answer = h.get(&format!("/api/v1/events?{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.json);
        assert_eq!(kinds(&answer.json, &m), expected, "{query}");
    }

    // Pages of three, following the cursor.
    let mut seen = Vec::new();
    let mut uri = "/api/v1/events?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let answer = h.get(&uri).await;
        pages += 1;
        seen.extend(kinds(&answer.json, &m));
        match answer.json["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/v1/events?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!((pages, seen), (3, expected));

    for (query, parameter) in [
        ("type=delivered,nope", "type"),
        ("cursor=abc", "cursor"),
        ("cursor=-5", "cursor"),
        ("since=2025", "since"),
        ("tag=x", "tag"),
    ] {
        let answer = h.get(&format!("/api/v1/events?{query}")).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid parameter");
        assert_eq!(
            answer.json["detail"]["parameter"], parameter,
            "{query}: {}",
            answer.json
        );
    }

    let theirs = h.get_with("/api/v1/events", &globex_key).await;
    assert_eq!(theirs.json["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(theirs.json["events"][0]["account"], "globex");
}
