//! Helpers shared by the unit tests: a store in a fresh temporary directory
//! (a real file, never `sqlite::memory:`, where each pooled connection would see
//! its own empty database), and message records and events to write into it.

use crate::{MessageFilter, NewEvent, NewMessage, Store};

/// Opens a store on a new file; keep the directory alive as long as the store.
pub(crate) async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("carteiro.db"))
        .await
        .expect("open store");
    (dir, store)
}

/// A message id made at `ms` (the id's time), told apart by `n`.
pub(crate) fn message_id(ms: i64, n: u128) -> String {
    let ms = u128::try_from(ms).expect("positive time");
    carteiro_mail::MessageId((ms << 80) | n).to_string()
}

/// A message record accepted at `ms`, from `sender@example.com`.
pub(crate) fn new_message(
    account_id: i64,
    id: &str,
    ms: i64,
    recipients: &[&str],
    tags: &[&str],
) -> crate::NewMessage {
    crate::NewMessage {
        id: id.to_owned(),
        account_id,
        sender: "Sender@Example.com".to_owned(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        subject: Some("Hello".to_owned()),
        header_message_id: Some(format!("<{id}@example.com>")),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        sending_domain: None,
        metadata: serde_json::json!({"order": 42}),
        source: crate::MessageSource::Api,
        size: 1234,
        received_at_ms: ms,
    }
}

/// An event at `ms`, with the kind in its details so tests can tell events
/// apart (see [`details_naming`]).
pub(crate) fn new_event(
    account_id: i64,
    message_id: &str,
    recipient: Option<&str>,
    kind: crate::EventKind,
    ms: i64,
) -> crate::NewEvent {
    crate::NewEvent {
        account_id,
        message_id: message_id.to_owned(),
        recipient: recipient.map(str::to_owned),
        kind,
        timestamp_ms: ms,
        details: details_naming(kind),
    }
}

/// Details that name `kind`, for tests that tell events apart by them.
pub(crate) fn details_naming(kind: crate::EventKind) -> crate::EventDetails {
    crate::EventDetails::Suppressed(crate::SuppressedDetails {
        reason: kind.as_str().to_owned(),
    })
}

/// A base time for the tests: 2025-01-01T00:00:00Z in milliseconds.
pub(crate) const T0: i64 = 1_735_689_600_000;

/// Writes a batch, as the event writer would.
pub(crate) async fn record(store: &Store, messages: &[NewMessage], events: &[NewEvent]) {
    store
        .record_batch(messages, events)
        .await
        .expect("record batch");
}

/// The states of a message's recipients, in order.
pub(crate) async fn states(store: &Store, account_id: i64, id: &str) -> Vec<String> {
    store
        .message(account_id, id)
        .await
        .expect("message")
        .expect("found")
        .recipients
        .into_iter()
        .map(|r| r.state)
        .collect()
}

/// Pages through a search, checking that every page is newest first.
pub(crate) async fn all_pages(
    store: &Store,
    account_id: i64,
    filter: &MessageFilter,
    page: u32,
) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    loop {
        let before = seen.last().map(String::as_str);
        let found = store
            .search_messages(account_id, filter, page, before)
            .await
            .expect("search");
        assert!(found.len() <= page as usize);
        assert!(found.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        if let (Some(last), Some(first)) = (seen.last(), found.first()) {
            assert!(first.id < *last, "pages do not overlap");
        }
        let done = found.len() < page as usize;
        seen.extend(found.into_iter().map(|m| m.id));
        if done {
            return seen;
        }
    }
}
