//! What the engine tells the rest of Carteiro about each recipient's fate.
//! The engine does not know where events go (the binary writes them to the
//! store's event log); it only says what happened.

use super::dest_key::DestKey;
use carteiro_config::Config;
use carteiro_mail::{MessageId, Reply, domain_of};
use carteiro_queue::{QueuedMessage, RcptStatus};

/// One change in a recipient's fate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryEvent {
    pub kind: DeliveryEventKind,
    pub message_id: MessageId,
    pub account_id: i64,
    pub recipient: String,
    /// Attempts made so far (0 for a deletion before any attempt).
    pub attempt: u32,
    /// The remote (or synthetic) reply of the last attempt.
    pub reply: Option<Reply>,
    /// The host that gave the reply.
    pub remote: Option<String>,
    /// The MX host of the recipient's domain the last attempt went to (or
    /// tried to reach): `remote` for MX delivery, `None` through a smarthost
    /// route or before any host was known. Statistics group recipient
    /// domains into providers by it.
    pub mx: Option<String>,
    /// When the next attempt is due (deferred only), ms since the epoch.
    pub next_attempt: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryEventKind {
    Deferred,
    Delivered,
    /// Refused permanently.
    Bounced,
    /// Still deferred when the message became too old.
    Expired,
    /// Removed from the queue by an operator.
    Deleted,
}

/// Where the engine sends its events. Called on the engine task: it must
/// not block (hand the event to a channel).
pub trait EventSink: Send + Sync + 'static {
    fn emit(&self, event: DeliveryEvent);
}

/// Discards events (tests, tools that need no event log).
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: DeliveryEvent) {}
}

/// The event for recipient `rcpt` after an attempt was recorded.
pub(crate) fn after_attempt(
    config: &Config,
    message: &QueuedMessage,
    rcpt: usize,
) -> Option<DeliveryEvent> {
    let state = message.rcpts.get(rcpt)?;
    let kind = match state.status {
        RcptStatus::Pending => DeliveryEventKind::Deferred,
        RcptStatus::Delivered => DeliveryEventKind::Delivered,
        RcptStatus::Failed => DeliveryEventKind::Bounced,
        RcptStatus::Expired => DeliveryEventKind::Expired,
        RcptStatus::Deleted => DeliveryEventKind::Deleted,
        // Recorded when the message came in; never attempted.
        RcptStatus::Suppressed => return None,
    };
    let recipient = message.meta.envelope.recipients.get(rcpt)?.address.clone();
    let by_mx = matches!(
        DestKey::for_domain(config, &domain_of(&recipient).to_ascii_lowercase()),
        DestKey::Mx(_)
    );
    Some(DeliveryEvent {
        kind,
        message_id: message.id,
        account_id: message.meta.account_id,
        recipient,
        attempt: state.attempts,
        reply: state.last_reply().cloned(),
        remote: state.remote().map(str::to_string),
        mx: state.remote().filter(|_| by_mx).map(str::to_string),
        next_attempt: (kind == DeliveryEventKind::Deferred).then_some(state.next_attempt),
    })
}
