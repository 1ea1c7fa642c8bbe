//! A message's record and its `received` events, made the same way when a
//! message is accepted and when the store lost them.
//!
//! The event writer commits records and events in batches, up to 50 ms
//! after the spool's commit that let the client hear "accepted": a power cut
//! in between leaves an acknowledged message in the spool with no record. So
//! what the record needs beyond the queue's own metadata (subject, tags,
//! metadata, the client, ...) is spooled beside it, in the same record and
//! commit as the message, and at start [`rebuild_lost`] writes the record and
//! its `received` events again for every recently spooled message whose
//! `received` event the store does not have.

use carteiro_queue::{QueuedMessage, RcptStatus};
use carteiro_spool::Spool;
use carteiro_store::{
    EventDetails, EventKind, EventWriter, MessageHeaders, MessageSource, NewEvent, NewMessage,
    ReceivedDetails, SmtpClientDetails, Store, StoreError, SuppressedDetails,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a recipient on the account's suppression list got nothing.
pub const SUPPRESSED_REASON: &str = "the address is on the account's suppression list";

/// How far before the newest record in the store spooled messages are
/// checked for a lost record: records are committed in the order messages
/// were accepted, at most 50 ms apart (200 times less than this), so
/// anything older was committed with or before the newest one. (What the
/// writer holds while the store fails is in its journal.) Each message
/// checked costs about 10 µs at start: a minute's worth after a backlog
/// filled at full speed took seconds (`scripts/bench-queue`).
pub const RECHECK_MS: i64 = 10_000;

/// What a message's record holds beyond the queue's metadata (which has the
/// account, envelope, size and acceptance time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpooledRecord {
    pub subject: Option<String>,
    pub header_message_id: Option<String>,
    pub tags: Vec<String>,
    /// The domain statistics count it under.
    pub sending_domain: Option<String>,
    pub metadata: serde_json::Value,
    pub source: MessageSource,
    /// The SMTP client, for mail that came over SMTP.
    pub smtp: Option<SmtpClientDetails>,
    /// The DKIM domain it was signed for.
    pub dkim_domain: Option<String>,
}

/// The spool metadata of `message`: the queue's own fields and, under
/// `record`, `record` (the queue ignores it when it reads the metadata back).
pub fn encode_meta(message: &QueuedMessage, record: &SpooledRecord) -> Vec<u8> {
    let mut meta = message.encode_meta();
    debug_assert_eq!(meta.last(), Some(&b'}'));
    meta.pop();
    meta.extend_from_slice(b",\"record\":");
    serde_json::to_writer(&mut meta, record).expect("a record serializes");
    meta.push(b'}');
    meta
}

/// The record spooled with a message, if it has one (messages spooled by
/// versions before it do not).
pub fn decode_record(meta: &[u8]) -> Result<Option<SpooledRecord>, serde_json::Error> {
    #[derive(Deserialize)]
    struct WithRecord {
        record: Option<SpooledRecord>,
    }
    Ok(serde_json::from_slice::<WithRecord>(meta)?.record)
}

/// Sends `message`'s record (with `headers`, its header section as queued),
/// a `received` event per recipient and a `suppressed` event per recipient
/// on the suppression list to the event writer, in that order.
pub fn record(
    events: &EventWriter,
    message: &QueuedMessage,
    record: SpooledRecord,
    headers: Option<MessageHeaders>,
) {
    let meta = &message.meta;
    let id = message.id.to_string();
    let received_at = meta.received_at as i64;
    let recipients: Vec<String> = meta
        .envelope
        .recipients
        .iter()
        .map(|r| r.address.clone())
        .collect();
    let details = EventDetails::Received(ReceivedDetails {
        smtp: record.smtp,
        source: record.source.as_str().to_owned(),
        size: meta.size,
        dkim_domain: record.dkim_domain,
        node: None,
    });
    events.message(NewMessage {
        id: id.clone(),
        account_id: meta.account_id,
        sender: meta.envelope.sender.clone(),
        recipients: recipients.clone(),
        subject: record.subject,
        header_message_id: record.header_message_id,
        tags: record.tags,
        sending_domain: record.sending_domain,
        metadata: record.metadata,
        source: record.source,
        size: meta.size,
        received_at_ms: received_at,
        headers,
    });
    let event = |recipient: &String, kind, details| NewEvent {
        account_id: meta.account_id,
        message_id: id.clone(),
        recipient: Some(recipient.clone()),
        kind,
        timestamp_ms: received_at,
        details,
    };
    for recipient in &recipients {
        events.event(event(recipient, EventKind::Received, details.clone()));
    }
    for (recipient, state) in recipients.iter().zip(message.rcpts.iter()) {
        if state.status == RcptStatus::Suppressed {
            let details = EventDetails::Suppressed(SuppressedDetails {
                reason: SUPPRESSED_REASON.to_owned(),
            });
            events.event(event(recipient, EventKind::Suppressed, details));
        }
    }
}

/// What [`rebuild_lost`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Spooled messages checked against the store.
    pub checked: usize,
    /// Records and `received` events written again.
    pub rebuilt: usize,
    /// Messages without a record that could not be rebuilt (spooled by an
    /// older version, or unreadable).
    pub missing: usize,
}

/// Writes again, through `events`, the record and `received` events of
/// every spooled message in `queue` that the store lost (with its header
/// section, read from the spooled message, when `keep_headers`). Call it
/// after the spool is recovered and before delivery starts, so the rebuilt
/// records come before the messages' later events.
pub async fn rebuild_lost(
    store: &Store,
    spool: &Spool,
    events: &EventWriter,
    queue: &[QueuedMessage],
    keep_headers: bool,
) -> Result<Rebuilt, StoreError> {
    let since = store
        .newest_message_received_at()
        .await?
        .map_or(i64::MIN, |newest| newest - RECHECK_MS);
    let mut by_account: BTreeMap<i64, Vec<&QueuedMessage>> = BTreeMap::new();
    for message in queue {
        // Notifications Carteiro made itself have no record.
        if !message.meta.notification && message.meta.received_at as i64 >= since {
            by_account
                .entry(message.meta.account_id)
                .or_default()
                .push(message);
        }
    }
    let mut done = Rebuilt::default();
    for (account_id, messages) in by_account {
        for chunk in messages.chunks(500) {
            let ids: Vec<String> = chunk.iter().map(|m| m.id.to_string()).collect();
            let recorded = store.received_recorded(account_id, &ids).await?;
            done.checked += chunk.len();
            for (message, id) in chunk.iter().zip(&ids) {
                if recorded.contains(id) {
                    continue;
                }
                let spooled = match spool.read_meta(message.id).await {
                    Ok(meta) => decode_record(&meta).map_err(|e| e.to_string()),
                    Err(error) => Err(error.to_string()),
                };
                match spooled {
                    Ok(Some(spooled)) => {
                        // The header section from the spooled message itself
                        // (the record does not repeat it).
                        let body = match keep_headers {
                            true => spool.read_body(message.id).await.ok(),
                            false => None,
                        };
                        let headers = body.map(|body| {
                            let end = carteiro_mail::headers::summarize(&body).header_end;
                            MessageHeaders::from_section(&body[..end])
                        });
                        record(events, message, spooled, headers);
                        done.rebuilt += 1;
                    }
                    Ok(None) => done.missing += 1,
                    Err(error) => {
                        tracing::warn!(message_id = %id, %error,
                            "cannot rebuild a lost message record from the spool");
                        done.missing += 1;
                    }
                }
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
