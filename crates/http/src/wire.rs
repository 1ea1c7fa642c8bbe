//! The JSON shapes of records on the wire: events (the shape INTERFACE.md
//! gives, shared with webhooks) and messages. They are this crate's own
//! types, so a change in the store's records cannot change the API by
//! accident. Pure conversions, no I/O.

use carteiro_store::{
    EventKind, EventRecord, MessageRecord, MessageSource, RecipientRecord, WebhookEvent,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::macros::format_description;

/// An event as the API and webhooks show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiEvent {
    /// The event id as a decimal string (ids exceed what JavaScript numbers
    /// hold exactly); also the cursor of `GET /api/v1/events`.
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When, RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// The account's name.
    pub account: String,
    /// The message id.
    pub message_id: String,
    /// The recipient concerned, or `null` for the whole message.
    pub recipient: Option<String>,
    /// Kind-specific details; always an object.
    pub details: Value,
}

impl From<&EventRecord> for ApiEvent {
    fn from(event: &EventRecord) -> ApiEvent {
        ApiEvent {
            id: event.id.to_string(),
            kind: event.kind,
            timestamp: format_timestamp(event.timestamp_ms),
            account: event.account.clone(),
            message_id: event.message_id.clone(),
            recipient: event.recipient.clone(),
            details: object_or_empty(&event.details),
        }
    }
}

/// An event read for a webhook, in exactly [`ApiEvent`]'s shape, written
/// without copies: strings are borrowed, the id is formatted straight into
/// the output, and the details go out as the JSON text the store holds
/// (checked to be JSON, never parsed into a tree). Webhook batches are this,
/// hundreds of events at a time.
#[derive(Serialize)]
pub struct WebhookWireEvent<'a> {
    #[serde(serialize_with = "as_decimal_text")]
    id: i64,
    #[serde(rename = "type")]
    kind: EventKind,
    timestamp: String,
    account: &'a str,
    message_id: &'a str,
    recipient: Option<&'a str>,
    details: &'a RawValue,
}

/// What `null` details are shown as.
const NO_DETAILS: &str = "{}";

impl<'a> WebhookWireEvent<'a> {
    /// The wire form of `event`; an error if its stored details are not
    /// JSON.
    pub fn new(event: &'a WebhookEvent) -> Result<WebhookWireEvent<'a>, serde_json::Error> {
        let text = match event.details_json.trim() {
            "" | "null" => NO_DETAILS,
            text => text,
        };
        Ok(WebhookWireEvent {
            id: event.id,
            kind: event.kind,
            timestamp: format_timestamp(event.timestamp_ms),
            account: &event.account,
            message_id: &event.message_id,
            recipient: event.recipient.as_deref(),
            details: serde_json::from_str(text)?,
        })
    }
}

/// Ids go out as decimal strings (they exceed JavaScript's exact integers).
fn as_decimal_text<S: serde::Serializer>(id: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(id)
}

/// A recipient of a message, with its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiRecipient {
    /// `<message id>-<index>`.
    pub id: String,
    /// The envelope address.
    pub address: String,
    /// `queued`, `deferred`, `delivered`, `bounced`, `expired`, `deleted` or
    /// `suppressed`.
    pub state: String,
    /// When the state last changed, RFC 3339 UTC with milliseconds.
    pub updated_at: String,
}

/// A message record as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiMessage {
    /// The message id.
    pub id: String,
    /// The account's name.
    pub account: String,
    /// The envelope sender (empty for the null sender).
    pub from: String,
    /// Recipients in envelope order.
    pub recipients: Vec<ApiRecipient>,
    /// The Subject header, if any.
    pub subject: Option<String>,
    /// The Message-ID header, if any.
    pub message_id_header: Option<String>,
    /// Tags given at submission.
    pub tags: Vec<String>,
    /// Metadata given at submission; `{}` for none.
    pub metadata: Value,
    /// `smtp` or `api`.
    pub source: MessageSource,
    /// Size in bytes as spooled.
    pub size: u64,
    /// When it was accepted, RFC 3339 UTC with milliseconds.
    pub received_at: String,
    /// Its events in order; absent in search results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<ApiEvent>>,
    /// Its header section as queued; absent in search results and when not
    /// kept (records from before headers were kept, or rebuilt without the
    /// message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<ApiHeaders>,
}

/// A message's header section as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiHeaders {
    /// The fields as queued, CRLF line ends, without the empty line that
    /// ends the section: at most the first 16 KiB, cut at a line end.
    pub raw: String,
    /// The whole section's size in bytes.
    pub size: u64,
    /// Whether `raw` is only the start of the section.
    pub truncated: bool,
}

impl ApiMessage {
    /// The message with its events and headers (`GET /api/v1/messages/{id}`).
    pub fn with_events(record: &MessageRecord) -> ApiMessage {
        ApiMessage {
            events: Some(record.events.iter().map(ApiEvent::from).collect()),
            headers: record.headers.as_ref().map(|h| ApiHeaders {
                raw: h.text.clone(),
                size: h.size,
                truncated: h.truncated(),
            }),
            ..ApiMessage::without_events(record)
        }
    }

    /// The message without events (search results).
    pub fn without_events(record: &MessageRecord) -> ApiMessage {
        ApiMessage {
            id: record.id.clone(),
            account: record.account.clone(),
            from: record.sender.clone(),
            recipients: record.recipients.iter().map(ApiRecipient::from).collect(),
            subject: record.subject.clone(),
            message_id_header: record.header_message_id.clone(),
            tags: record.tags.clone(),
            metadata: object_or_empty(&record.metadata),
            source: record.source,
            size: record.size,
            received_at: format_timestamp(record.received_at_ms),
            events: None,
            headers: None,
        }
    }
}

impl From<&RecipientRecord> for ApiRecipient {
    fn from(recipient: &RecipientRecord) -> ApiRecipient {
        ApiRecipient {
            id: recipient.id.clone(),
            address: recipient.address.clone(),
            state: recipient.state.clone(),
            updated_at: format_timestamp(recipient.updated_at_ms),
        }
    }
}

/// `null` (no details, no metadata) shown as `{}`, so clients always get an
/// object.
fn object_or_empty(value: &Value) -> Value {
    match value {
        Value::Null => Value::Object(serde_json::Map::new()),
        other => other.clone(),
    }
}

/// Unix milliseconds as RFC 3339 in UTC with milliseconds:
/// `2026-11-26T09:30:00.123Z`. Times outside what `time` represents (only a
/// corrupt record has them) are shown as the epoch rather than failing the
/// whole answer.
pub fn format_timestamp(ms: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    // Every year `time` holds (up to 9999) formats; the fallback only keeps
    // this function total.
    at.format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_timestamp(1_795_685_400_123),
            "2026-11-26T09:30:00.123Z"
        );
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_timestamp(i64::MAX), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn events_have_the_documented_shape() {
        let record = EventRecord {
            id: 1_843_000_000_000_001,
            kind: EventKind::Delivered,
            timestamp_ms: 1_795_685_400_123,
            account: "acme".to_owned(),
            message_id: "01jc".to_owned(),
            recipient: Some("r@x.test".to_owned()),
            details: Value::Null,
        };
        let json = serde_json::to_value(ApiEvent::from(&record)).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "id": "1843000000000001", "type": "delivered",
                "timestamp": "2026-11-26T09:30:00.123Z", "account": "acme",
                "message_id": "01jc", "recipient": "r@x.test", "details": {}
            })
        );
    }

    /// The webhook form is the API form, for details that are an object,
    /// `null`, or hold strings that need escaping.
    #[test]
    fn webhook_events_have_the_api_shape() {
        for details in [
            r#"{"remote_host":"mx.x.test","reply":"250 2.0.0 \"ok\" \u00e9","attempt":2}"#,
            "null",
            "{}",
        ] {
            let stored = WebhookEvent {
                id: 1_843_000_000_000_001,
                kind: EventKind::Deferred,
                timestamp_ms: 1_795_685_400_123,
                account: "acme".into(),
                message_id: "01jc".to_owned(),
                recipient: None,
                details_json: details.to_owned(),
            };
            let record = EventRecord {
                id: stored.id,
                kind: stored.kind,
                timestamp_ms: stored.timestamp_ms,
                account: "acme".to_owned(),
                message_id: stored.message_id.clone(),
                recipient: None,
                details: serde_json::from_str(details).expect("details"),
            };
            let wire = WebhookWireEvent::new(&stored).expect("json details");
            let wire: Value = serde_json::from_str(&serde_json::to_string(&wire).expect("json"))
                .expect("valid json");
            assert_eq!(
                wire,
                serde_json::to_value(ApiEvent::from(&record)).expect("json"),
                "details {details}"
            );
        }
        let broken = WebhookEvent {
            details_json: "{oops".to_owned(),
            id: 1,
            kind: EventKind::Delivered,
            timestamp_ms: 0,
            account: "acme".into(),
            message_id: "m".to_owned(),
            recipient: None,
        };
        assert!(WebhookWireEvent::new(&broken).is_err());
    }
}
