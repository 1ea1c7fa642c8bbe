//! Taking a message in, whichever way it came (SMTP or the HTTP API): the
//! sending policy (From domain, Message-ID/Date, DKIM), the spool (durable
//! before anyone hears "accepted"), the message record and its `received`
//! events (batched, off the hot path), and the queue.

use crate::metrics::{PerAccount, RECEIVED};
use crate::records::{self, SpooledRecord};
use crate::sending::{Prepared, Refusal, SendingPolicy};
use crate::suppress::Suppressions;
use crate::tracking::TrackingPlan;
use bytes::Bytes;
use carteiro_delivery::engine::EngineHandle;
use carteiro_mail::headers;
use carteiro_mail::verp::{Purpose, TokenKey};
use carteiro_mail::{Envelope, LogSafe, MessageId};
use carteiro_queue::{MessageMeta, QueuedMessage, RcptStatus};
use carteiro_smtp_server::AccountRef;
use carteiro_spool::{Spool, SpoolError};
use carteiro_store::{EventWriter, MessageHeaders, MessageSource, SmtpClientDetails};
use std::sync::Arc;

/// A header a client can set over SMTP to ask for bulk-mail handling
/// (one-click unsubscribe) of one message, or to refuse the account's
/// default: `yes`/`true`/`1` or `no`/`false`/`0`.
pub const BULK_HEADER: &[u8] = b"x-carteiro-list-unsubscribe";

/// What [`BULK_HEADER`] asks for; `None` when absent or not understood.
#[cfg(test)]
fn bulk_header(message: &[u8]) -> Option<bool> {
    bulk_value(headers::field_value(message, BULK_HEADER)?)
}

/// What a `X-Carteiro-List-Unsubscribe` value asks for, if it is one of the
/// words understood.
fn bulk_value(value: &[u8]) -> Option<bool> {
    let is = |words: &[&[u8]]| words.iter().any(|w| value.eq_ignore_ascii_case(w));
    if is(&[b"yes", b"true", b"1", b"on"]) {
        Some(true)
    } else if is(&[b"no", b"false", b"0", b"off"]) {
        Some(false)
    } else {
        None
    }
}

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
    /// The SMTP client, for the `received` event (`None` for the API).
    pub client: Option<SmtpClientDetails>,
    /// Bulk mail (one-click unsubscribe) asked for or refused for this
    /// message; `None`: the `X-Carteiro-List-Unsubscribe` header, else the
    /// account's default.
    pub list_unsubscribe: Option<bool>,
    /// Open tracking asked for or refused for this message; `None`: the
    /// account's default (`tracking.open_accounts`).
    pub track_opens: Option<bool>,
    /// Click tracking likewise (`tracking.click_accounts`).
    pub track_clicks: Option<bool>,
}

#[derive(Debug)]
pub enum IntakeError {
    Refused(Refusal),
    Spool(SpoolError),
}

pub struct Intake {
    policy: SendingPolicy,
    tokens: Arc<TokenKey>,
    suppressions: Arc<Suppressions>,
    spool: Spool,
    engine: EngineHandle,
    events: EventWriter,
    /// `carteiro_messages_received_total` per account.
    received: PerAccount,
}

impl Intake {
    /// The suppression lists every send is checked against.
    pub fn suppressions(&self) -> &Arc<Suppressions> {
        &self.suppressions
    }

    /// The queue accepted mail goes to.
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    pub fn new(
        policy: SendingPolicy,
        tokens: Arc<TokenKey>,
        suppressions: Arc<Suppressions>,
        spool: Spool,
        engine: EngineHandle,
        events: EventWriter,
    ) -> Intake {
        Intake {
            policy,
            tokens,
            suppressions,
            spool,
            engine,
            events,
            received: PerAccount::new(RECEIVED),
        }
    }

    pub fn events(&self) -> &EventWriter {
        &self.events
    }

    /// Whether the spool's disk is full: the spool logs that itself
    /// (when it starts, every minute, when it ends), not each refusal.
    pub fn disk_full(&self) -> bool {
        self.spool.health().full
    }

    /// Takes a message in. `Ok` means it is durable and queued. It holds the
    /// id of the message made for each recipient, in order, for bulk or
    /// tracked mail, which becomes one message per recipient (each
    /// unsubscribe link, pixel and tracked link names its recipient, and the
    /// DKIM signature must cover it); it is empty for other mail, which
    /// stays one message under its own id.
    pub async fn accept(&self, mut incoming: Incoming) -> Result<Vec<MessageId>, IntakeError> {
        // The control header is read, then taken out: recipients never see
        // it (and the DKIM signature, made later, does not cover it).
        let asked = headers::field_value(&incoming.body, BULK_HEADER).map(bulk_value);
        if asked.is_some()
            && let Some(stripped) = headers::remove_fields(&incoming.body, BULK_HEADER)
        {
            incoming.body = Bytes::from(stripped);
        }
        let bulk = incoming
            .list_unsubscribe
            .or(asked.flatten())
            .unwrap_or_else(|| self.policy.is_bulk_account(&incoming.account.name));
        let account = &incoming.account.name;
        let opens = incoming
            .track_opens
            .unwrap_or_else(|| self.policy.tracks_opens(account));
        let clicks = incoming
            .track_clicks
            .unwrap_or_else(|| self.policy.tracks_clicks(account));
        // Only HTML can be tracked: other mail is not split for nothing.
        let tracked = (opens || clicks) && carteiro_mail::tracking::may_have_html(&incoming.body);
        let n = incoming.envelope.recipients.len();
        if !bulk && !tracked {
            self.accept_one(incoming, None, None).await?;
            return Ok(Vec::new());
        }
        let personal = |id: MessageId| {
            let unsubscribe = bulk.then(|| self.tokens.token(Purpose::Unsubscribe, id, 0));
            let tracking = tracked.then(|| TrackingPlan {
                tokens: Arc::clone(&self.tokens),
                public_url: self.policy.public_url().to_string(),
                id,
                rcpt: 0,
                opens,
                clicks,
            });
            (unsubscribe, tracking)
        };
        if n <= 1 {
            let id = incoming.id;
            let (unsubscribe, tracking) = personal(id);
            self.accept_one(incoming, unsubscribe.as_deref(), tracking)
                .await?;
            return Ok(vec![id]);
        }
        let recipients = std::mem::take(&mut incoming.envelope.recipients);
        let mut ids = Vec::with_capacity(n);
        for (index, recipient) in recipients.into_iter().enumerate() {
            let id = if index == 0 {
                incoming.id
            } else {
                MessageId::generate()
            };
            let mut envelope = incoming.envelope.clone();
            envelope.recipients = vec![recipient];
            let copy = Incoming {
                id,
                account: incoming.account.clone(),
                envelope,
                body: incoming.body.clone(),
                insert_at: incoming.insert_at,
                source: incoming.source,
                tags: incoming.tags.clone(),
                metadata: incoming.metadata.clone(),
                received_at_ms: incoming.received_at_ms,
                client: incoming.client.clone(),
                list_unsubscribe: Some(bulk),
                track_opens: Some(opens),
                track_clicks: Some(clicks),
            };
            let (unsubscribe, tracking) = personal(id);
            self.accept_one(copy, unsubscribe.as_deref(), tracking)
                .await?;
            ids.push(id);
        }
        Ok(ids)
    }

    async fn accept_one(
        &self,
        incoming: Incoming,
        unsubscribe: Option<&str>,
        tracking: Option<TrackingPlan>,
    ) -> Result<Prepared, IntakeError> {
        let prepared = self
            .policy
            .prepare(
                &incoming.account,
                incoming.id,
                incoming.body,
                incoming.insert_at,
                unsubscribe,
                tracking,
            )
            .await
            .map_err(IntakeError::Refused)?;
        let size = prepared.body.len() as u64;
        let envelope = Arc::new(incoming.envelope);
        let mut queued = QueuedMessage::new(
            incoming.id,
            MessageMeta {
                account_id: incoming.account.id,
                account: Arc::clone(&incoming.account.name),
                envelope: Arc::clone(&envelope),
                size,
                received_at: incoming.received_at_ms,
                notification: false,
                verp_domain: prepared
                    .signed_by
                    .as_deref()
                    .map(|domain| Arc::from(self.policy.return_path_domain(domain))),
            },
            incoming.received_at_ms,
        );
        // Recipients on the account's suppression list are never attempted.
        let mut suppressed = 0;
        for (index, recipient) in envelope.recipients.iter().enumerate() {
            if self
                .suppressions
                .is_suppressed(incoming.account.id, &recipient.address)
            {
                queued.rcpts[index].status = RcptStatus::Suppressed;
                suppressed += 1;
            }
        }
        let deliverable = suppressed < envelope.recipients.len();
        let header_message_id = prepared
            .summary
            .message_id
            .clone()
            .filter(|m| !m.is_empty())
            .or_else(|| Some(format!("<{}@{}>", incoming.id, self.policy.hostname())));
        let record = SpooledRecord {
            subject: prepared.summary.subject.clone(),
            header_message_id,
            tags: incoming.tags,
            sending_domain: prepared
                .signed_by
                .clone()
                .or_else(|| prepared.summary.from_domain.clone()),
            metadata: incoming.metadata,
            source: incoming.source,
            smtp: incoming.client,
            dkim_domain: prepared.signed_by.clone(),
        };
        if deliverable {
            let state = if suppressed == 0 {
                Vec::new()
            } else {
                queued.encode_state()
            };
            // The record rides in the same spool commit as the message: a
            // power cut before the event writer commits it cannot lose it.
            self.spool
                .store(
                    incoming.id,
                    records::encode_meta(&queued, &record),
                    state,
                    prepared.body.clone(),
                )
                .await
                .map_err(IntakeError::Spool)?;
        }
        let headers = self.policy.keeps_headers().then(|| {
            MessageHeaders::from_section(
                &prepared.body[..prepared.header_end.min(prepared.body.len())],
            )
        });
        records::record(&self.events, &queued, record, headers);
        if !deliverable {
            // Nothing spooled to rebuild it from: the answer waits for the
            // record's commit (or for the journal, when the store fails).
            self.events.flush().await;
        }
        tracing::info!(
            message_id = %incoming.id,
            account = %LogSafe(&incoming.account.name),
            sender = %LogSafe(&envelope.sender),
            recipients = envelope.recipients.len(),
            size,
            source = incoming.source.as_str(),
            dkim = prepared.signed_by.as_deref().unwrap_or(""),
            "message received"
        );
        self.received
            .increment(incoming.account.id, &incoming.account.name);
        if deliverable {
            self.engine.enqueue(queued, Some(prepared.body.clone()));
        }
        Ok(prepared)
    }
}

#[cfg(test)]
mod tests;
