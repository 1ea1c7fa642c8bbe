//! A queued message and the state of each of its recipients, with the
//! encodings the spool stores for them (metadata once, state on change).

use carteiro_mail::{Envelope, MessageId, Reply};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Milliseconds since the Unix epoch: the queue's only notion of time.
pub type Millis = u64;

/// Where a recipient stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RcptStatus {
    /// Waiting for its first or next attempt.
    Pending,
    Delivered,
    /// Refused permanently.
    Failed,
    /// Deferred until the message was too old.
    Expired,
    /// Removed by an operator.
    Deleted,
    /// On the account's suppression list when the message came in: never
    /// attempted.
    Suppressed,
}

impl RcptStatus {
    pub fn is_final(self) -> bool {
        !matches!(self, RcptStatus::Pending)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RcptStatus::Pending => "pending",
            RcptStatus::Delivered => "delivered",
            RcptStatus::Failed => "failed",
            RcptStatus::Expired => "expired",
            RcptStatus::Deleted => "deleted",
            RcptStatus::Suppressed => "suppressed",
        }
    }
}

/// The state of one recipient of a queued message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcptState {
    pub status: RcptStatus,
    pub attempts: u32,
    /// When the next attempt is due (for pending recipients).
    pub next_attempt: Millis,
    pub last_attempt: Option<Millis>,
    /// The last reply from a remote server, or a synthetic one for
    /// connection and DNS failures.
    pub last_reply: Option<Reply>,
    /// The host that gave `last_reply`.
    pub remote: Option<String>,
    /// Being attempted right now; never stored.
    #[serde(skip)]
    pub in_flight: bool,
}

impl RcptState {
    pub fn new(due: Millis) -> RcptState {
        RcptState {
            status: RcptStatus::Pending,
            attempts: 0,
            next_attempt: due,
            last_attempt: None,
            last_reply: None,
            remote: None,
            in_flight: false,
        }
    }
}

/// The part of a message that never changes once it is queued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub account_id: i64,
    pub account: String,
    pub envelope: Arc<Envelope>,
    /// Size of the stored message in bytes.
    pub size: u64,
    pub received_at: Millis,
    /// A delivery status notification Carteiro generated itself: it has no
    /// message record or events of its own.
    #[serde(default)]
    pub notification: bool,
    /// The return-path domain of a message sent with VERP: each recipient
    /// then gets its own envelope sender `b-TOKEN@<this domain>`, bounces
    /// come back to Carteiro (not to the sender as DSNs) and are recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verp_domain: Option<String>,
}

/// A message in the queue: its fixed metadata and its recipients' state
/// (same order as `meta.envelope.recipients`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: MessageId,
    pub meta: MessageMeta,
    pub rcpts: Vec<RcptState>,
}

/// Stored metadata or state that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("unreadable queue record for {id}: {reason}")]
pub struct DecodeError {
    pub id: MessageId,
    pub reason: String,
}

impl QueuedMessage {
    /// A new message whose recipients are all due at `now`.
    pub fn new(id: MessageId, meta: MessageMeta, now: Millis) -> QueuedMessage {
        let rcpts = vec![RcptState::new(now); meta.envelope.recipients.len()];
        QueuedMessage { id, meta, rcpts }
    }

    pub fn encode_meta(&self) -> Vec<u8> {
        serde_json::to_vec(&self.meta).expect("metadata serializes")
    }

    pub fn encode_state(&self) -> Vec<u8> {
        serde_json::to_vec(&self.rcpts).expect("state serializes")
    }

    /// Rebuilds a message from what the spool kept. An empty state means
    /// "nothing attempted yet".
    pub fn decode(id: MessageId, meta: &[u8], state: &[u8]) -> Result<QueuedMessage, DecodeError> {
        let err = |e: serde_json::Error| DecodeError {
            id,
            reason: e.to_string(),
        };
        let meta: MessageMeta = serde_json::from_slice(meta).map_err(err)?;
        let rcpts = if state.is_empty() {
            vec![RcptState::new(meta.received_at); meta.envelope.recipients.len()]
        } else {
            serde_json::from_slice::<Vec<RcptState>>(state).map_err(err)?
        };
        if rcpts.len() != meta.envelope.recipients.len() {
            return Err(DecodeError {
                id,
                reason: "state does not match the recipients".into(),
            });
        }
        Ok(QueuedMessage { id, meta, rcpts })
    }

    /// Whether every recipient has reached a final state.
    pub fn is_finished(&self) -> bool {
        self.rcpts.iter().all(|r| r.status.is_final())
    }

    /// The earliest due time of a pending recipient not being attempted.
    pub fn next_due(&self) -> Option<Millis> {
        self.rcpts
            .iter()
            .filter(|r| r.status == RcptStatus::Pending && !r.in_flight)
            .map(|r| r.next_attempt)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carteiro_mail::Recipient;

    #[test]
    fn meta_and_state_round_trip_without_in_flight() {
        let mut envelope = Envelope::new("a@b.test");
        envelope.recipients.push(Recipient::new("c@d.test"));
        let mut msg = QueuedMessage::new(
            MessageId(42),
            MessageMeta {
                account_id: 1,
                account: "default".into(),
                envelope: Arc::new(envelope),
                size: 100,
                received_at: 5,
                notification: false,
                verp_domain: None,
            },
            5,
        );
        msg.rcpts[0].in_flight = true;
        msg.rcpts[0].attempts = 2;
        msg.rcpts[0].last_reply = Some(Reply::new(451, None, "later"));
        let back = QueuedMessage::decode(msg.id, &msg.encode_meta(), &msg.encode_state()).unwrap();
        assert_eq!(back.rcpts[0].attempts, 2);
        assert!(!back.rcpts[0].in_flight);
        assert_eq!(back.meta, msg.meta);
        let fresh = QueuedMessage::decode(msg.id, &msg.encode_meta(), b"").unwrap();
        assert_eq!(fresh.rcpts[0], RcptState::new(5));
        assert!(QueuedMessage::decode(msg.id, b"{", b"").is_err());
        assert!(QueuedMessage::decode(msg.id, &msg.encode_meta(), b"[]").is_err());
    }
}
