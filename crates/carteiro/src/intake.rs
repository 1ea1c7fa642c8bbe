//! Taking a message in, whichever way it came (SMTP or the HTTP API): the
//! sending policy (From domain, Message-ID/Date, DKIM), the spool (durable
//! before anyone hears "accepted"), the message record and its `received`
//! events (batched, off the hot path), and the queue.

use crate::sending::{Prepared, Refusal, SendingPolicy};
use bytes::Bytes;
use carteiro_delivery::engine::{DeliveryEvent, DeliveryEventKind, EngineHandle, EventSink};
use carteiro_mail::{Envelope, MessageId};
use carteiro_queue::{MessageMeta, QueuedMessage};
use carteiro_smtp_server::AccountRef;
use carteiro_spool::{Spool, SpoolError};
use carteiro_store::{EventKind, EventWriter, MessageSource, NewEvent, NewMessage};
use serde_json::json;
use std::sync::Arc;

/// A message on its way in.
pub struct Incoming {
    pub id: MessageId,
    pub account: AccountRef,
    pub envelope: Envelope,
    pub body: Bytes,
    /// Where the client's header section starts (after our `Received:`).
    pub insert_at: usize,
    pub source: MessageSource,
    pub tags: Vec<String>,
    pub metadata: serde_json::Value,
    pub received_at_ms: u64,
    /// Facts for the `received` event (client address, TLS, login...).
    pub details: serde_json::Value,
}

#[derive(Debug)]
pub enum IntakeError {
    Refused(Refusal),
    Spool(SpoolError),
}

pub struct Intake {
    policy: SendingPolicy,
    spool: Spool,
    engine: EngineHandle,
    events: EventWriter,
}

impl Intake {
    pub fn new(
        policy: SendingPolicy,
        spool: Spool,
        engine: EngineHandle,
        events: EventWriter,
    ) -> Intake {
        Intake {
            policy,
            spool,
            engine,
            events,
        }
    }

    pub fn events(&self) -> &EventWriter {
        &self.events
    }

    /// Takes a message in. `Ok` means it is durable and queued.
    pub async fn accept(&self, incoming: Incoming) -> Result<Prepared, IntakeError> {
        let prepared = self
            .policy
            .prepare(
                &incoming.account,
                incoming.id,
                incoming.body,
                incoming.insert_at,
            )
            .await
            .map_err(IntakeError::Refused)?;
        let size = prepared.body.len() as u64;
        let envelope = Arc::new(incoming.envelope);
        let queued = QueuedMessage::new(
            incoming.id,
            MessageMeta {
                account_id: incoming.account.id,
                account: incoming.account.name.to_string(),
                envelope: Arc::clone(&envelope),
                size,
                received_at: incoming.received_at_ms,
                notification: false,
            },
            incoming.received_at_ms,
        );
        self.spool
            .store(
                incoming.id,
                queued.encode_meta(),
                Vec::new(),
                prepared.body.clone(),
            )
            .await
            .map_err(IntakeError::Spool)?;

        let id = incoming.id.to_string();
        let recipients: Vec<String> = envelope
            .recipients
            .iter()
            .map(|r| r.address.clone())
            .collect();
        let header_message_id = prepared
            .summary
            .message_id
            .clone()
            .filter(|m| !m.is_empty())
            .or_else(|| Some(format!("<{id}@{}>", self.policy.hostname())));
        self.events.message(NewMessage {
            id: id.clone(),
            account_id: incoming.account.id,
            sender: envelope.sender.clone(),
            recipients: recipients.clone(),
            subject: prepared.summary.subject.clone(),
            header_message_id,
            tags: incoming.tags,
            metadata: incoming.metadata,
            source: incoming.source,
            size,
            received_at_ms: incoming.received_at_ms as i64,
        });
        let mut details = incoming.details;
        if let Some(object) = details.as_object_mut() {
            object.insert("source".into(), json!(incoming.source.as_str()));
            object.insert("size".into(), json!(size));
            object.insert("dkim_domain".into(), json!(prepared.signed_by));
        }
        for recipient in recipients {
            self.events.event(NewEvent {
                account_id: incoming.account.id,
                message_id: id.clone(),
                recipient: Some(recipient),
                kind: EventKind::Received,
                timestamp_ms: incoming.received_at_ms as i64,
                details: details.clone(),
            });
        }
        tracing::info!(
            message_id = %incoming.id,
            account = %incoming.account.name,
            sender = %envelope.sender,
            recipients = envelope.recipients.len(),
            size,
            source = incoming.source.as_str(),
            dkim = prepared.signed_by.as_deref().unwrap_or(""),
            "message received"
        );
        self.engine.enqueue(queued, Some(prepared.body.clone()));
        Ok(prepared)
    }
}

/// Writes the delivery engine's events to the store's event log.
pub struct StoreEvents(pub EventWriter);

impl EventSink for StoreEvents {
    fn emit(&self, event: DeliveryEvent) {
        let kind = match event.kind {
            DeliveryEventKind::Deferred => EventKind::Deferred,
            DeliveryEventKind::Delivered => EventKind::Delivered,
            DeliveryEventKind::Bounced => EventKind::Bounced,
            DeliveryEventKind::Expired => EventKind::Expired,
            DeliveryEventKind::Deleted => EventKind::Deleted,
        };
        let reply = event.reply.as_ref();
        let mut details = json!({
            "attempt": event.attempt,
            "remote_host": event.remote,
            "reply": reply.map(|r| r.to_string()),
            "reply_code": reply.map(|r| r.code),
            "status": reply.and_then(|r| r.status).map(|s| s.to_string()),
        });
        if let (Some(next), Some(object)) = (event.next_attempt, details.as_object_mut()) {
            object.insert("next_attempt_ms".into(), json!(next));
        }
        self.0.event(NewEvent {
            account_id: event.account_id,
            message_id: event.message_id.to_string(),
            recipient: Some(event.recipient),
            kind,
            timestamp_ms: carteiro_delivery::engine::now_millis() as i64,
            details,
        });
    }
}
