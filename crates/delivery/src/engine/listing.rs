//! What `carteiro queue list|show` print: a wire type of its own, so the
//! queue's internal state can change without changing the CLI's JSON.

use carteiro_mail::MessageId;
use carteiro_queue::{QueuedMessage, RcptStatus};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub id: MessageId,
    pub account: String,
    pub sender: String,
    pub size: u64,
    /// Milliseconds since the Unix epoch.
    pub received_at: u64,
    pub recipients: Vec<QueueRecipient>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRecipient {
    pub address: String,
    /// `pending`, `delivered`, `failed`, `expired` or `deleted`.
    pub state: String,
    pub attempts: u32,
    /// Milliseconds since the Unix epoch, for pending recipients.
    pub next_attempt: Option<u64>,
    pub last_attempt: Option<u64>,
    /// The last reply, on one line (`451 4.4.1 connection refused ...`).
    pub last_reply: Option<String>,
    pub remote: Option<String>,
}

impl From<&QueuedMessage> for QueueEntry {
    fn from(message: &QueuedMessage) -> QueueEntry {
        let envelope = &message.meta.envelope;
        QueueEntry {
            id: message.id,
            account: message.meta.account.to_string(),
            sender: envelope.sender.clone(),
            size: message.meta.size,
            received_at: message.meta.received_at,
            recipients: envelope
                .recipients
                .iter()
                .zip(&message.rcpts)
                .map(|(rcpt, state)| QueueRecipient {
                    address: rcpt.address.clone(),
                    state: state.status.as_str().to_string(),
                    attempts: state.attempts,
                    next_attempt: (state.status == RcptStatus::Pending)
                        .then_some(state.next_attempt),
                    last_attempt: state.last_attempt(),
                    last_reply: state.last_reply().map(|r| r.to_string()),
                    remote: state.remote().map(str::to_string),
                })
                .collect(),
        }
    }
}
