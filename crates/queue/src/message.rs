//! A queued message and the state of each of its recipients, with the
//! encodings the spool stores for them (metadata once, state on change).

use carteiro_mail::{Envelope, MessageId, Reply};
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
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

/// The last answer a recipient got: a remote server's reply (or a synthetic
/// one for connection and DNS failures) and the host that gave it. Shared:
/// every recipient deferred by the same failure points at one copy (see
/// [`Interner`]), so a queue of a million deferred recipients holds a
/// handful of these, not a million.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastReply {
    pub reply: Reply,
    pub remote: Option<Box<str>>,
}

/// The state of one recipient of a queued message. Kept small (32 bytes):
/// the queue holds one per recipient of every queued message. Stored as
/// JSON with the fields `status`, `attempts`, `next_attempt`,
/// `last_attempt`, `last_reply` and `remote`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptState {
    /// When the next attempt is due (for pending recipients).
    pub next_attempt: Millis,
    /// When the last attempt was made; 0 before the first.
    last_attempt: Millis,
    /// The last answer, shared with the other recipients that got it.
    pub last: Option<Arc<LastReply>>,
    pub attempts: u32,
    pub status: RcptStatus,
    /// Being attempted right now; never stored.
    pub in_flight: bool,
}

impl RcptState {
    pub fn new(due: Millis) -> RcptState {
        RcptState {
            next_attempt: due,
            last_attempt: 0,
            last: None,
            attempts: 0,
            status: RcptStatus::Pending,
            in_flight: false,
        }
    }

    /// When the last attempt was made, if one was.
    pub fn last_attempt(&self) -> Option<Millis> {
        (self.attempts > 0 || self.last_attempt > 0).then_some(self.last_attempt)
    }

    pub fn set_last_attempt(&mut self, at: Millis) {
        self.last_attempt = at;
    }

    /// The last reply from a remote server, or a synthetic one for
    /// connection and DNS failures.
    pub fn last_reply(&self) -> Option<&Reply> {
        self.last.as_ref().map(|last| &last.reply)
    }

    /// The host that gave [`last_reply`](RcptState::last_reply).
    pub fn remote(&self) -> Option<&str> {
        self.last.as_ref().and_then(|last| last.remote.as_deref())
    }
}

/// How a recipient's state is written (the fields of earlier versions).
#[derive(Serialize)]
struct StoredStateOut<'a> {
    status: RcptStatus,
    attempts: u32,
    next_attempt: Millis,
    last_attempt: Option<Millis>,
    last_reply: Option<&'a Reply>,
    remote: Option<&'a str>,
}

/// How a recipient's state is read back.
#[derive(Deserialize)]
struct StoredStateIn {
    status: RcptStatus,
    attempts: u32,
    next_attempt: Millis,
    #[serde(default)]
    last_attempt: Option<Millis>,
    #[serde(default)]
    last_reply: Option<Reply>,
    #[serde(default)]
    remote: Option<String>,
}

impl Serialize for RcptState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredStateOut {
            status: self.status,
            attempts: self.attempts,
            next_attempt: self.next_attempt,
            last_attempt: self.last_attempt(),
            last_reply: self.last_reply(),
            remote: self.remote(),
        }
        .serialize(serializer)
    }
}

impl StoredStateIn {
    fn into_state(self, interner: &mut Interner) -> RcptState {
        let last = match (self.last_reply, self.remote) {
            (None, None) => None,
            (Some(reply), remote) => Some(interner.last_reply(reply, remote.as_deref())),
            // A remote without a reply never happens; keep what is there.
            (None, Some(remote)) => {
                Some(interner.last_reply(Reply::new(0, None, ""), Some(&remote)))
            }
        };
        RcptState {
            next_attempt: self.next_attempt,
            last_attempt: self.last_attempt.unwrap_or(0),
            last,
            attempts: self.attempts,
            status: self.status,
            in_flight: false,
        }
    }
}

/// Shares the strings that repeat across queued messages: account names,
/// VERP domains, and the last replies (every recipient deferred by one
/// refused connection got the same one). Keeps the few most recent replies;
/// a miss only costs a copy.
#[derive(Debug, Default)]
pub struct Interner {
    names: HashSet<Arc<str>>,
    replies: VecDeque<Arc<LastReply>>,
}

/// How many distinct recent replies the interner remembers.
const RECENT_REPLIES: usize = 8;

/// Names beyond this many are not remembered (a bound, not a limit).
const MAX_NAMES: usize = 10_000;

impl Interner {
    /// A shared copy of an account name or domain.
    pub fn name(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.names.get(name) {
            return Arc::clone(known);
        }
        let name: Arc<str> = Arc::from(name);
        if self.names.len() < MAX_NAMES {
            self.names.insert(Arc::clone(&name));
        }
        name
    }

    /// A shared copy of a last reply.
    pub fn last_reply(&mut self, reply: Reply, remote: Option<&str>) -> Arc<LastReply> {
        if let Some(known) = self
            .replies
            .iter()
            .find(|known| known.reply == reply && known.remote.as_deref() == remote)
        {
            return Arc::clone(known);
        }
        let last = Arc::new(LastReply {
            reply,
            remote: remote.map(Box::from),
        });
        if self.replies.len() == RECENT_REPLIES {
            self.replies.pop_back();
        }
        self.replies.push_front(Arc::clone(&last));
        last
    }

    fn meta(&mut self, meta: &mut MessageMeta) {
        meta.account = self.name(&meta.account);
        if let Some(domain) = &meta.verp_domain {
            meta.verp_domain = Some(self.name(domain));
        }
    }
}

/// The part of a message that never changes once it is queued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub account_id: i64,
    /// The account's name (shared among its messages).
    pub account: Arc<str>,
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
    pub verp_domain: Option<Arc<str>>,
}

/// A message in the queue: its fixed metadata and its recipients' state
/// (same order as `meta.envelope.recipients`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: MessageId,
    pub meta: MessageMeta,
    pub rcpts: Box<[RcptState]>,
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
        let rcpts = vec![RcptState::new(now); meta.envelope.recipients.len()].into_boxed_slice();
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
        QueuedMessage::decode_with(id, meta, state, &mut Interner::default())
    }

    /// [`decode`](QueuedMessage::decode), sharing repeated names and replies
    /// with the messages decoded before through the same interner.
    pub fn decode_with(
        id: MessageId,
        meta: &[u8],
        state: &[u8],
        interner: &mut Interner,
    ) -> Result<QueuedMessage, DecodeError> {
        let err = |e: serde_json::Error| DecodeError {
            id,
            reason: e.to_string(),
        };
        let mut meta: MessageMeta = serde_json::from_slice(meta).map_err(err)?;
        interner.meta(&mut meta);
        let rcpts: Box<[RcptState]> = if state.is_empty() {
            vec![RcptState::new(meta.received_at); meta.envelope.recipients.len()].into()
        } else {
            serde_json::from_slice::<Vec<StoredStateIn>>(state)
                .map_err(err)?
                .into_iter()
                .map(|stored| stored.into_state(interner))
                .collect()
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
        msg.rcpts[0].last = Some(Arc::new(LastReply {
            reply: Reply::new(451, None, "later"),
            remote: Some("mx.d.test".into()),
        }));
        msg.rcpts[0].set_last_attempt(7);
        let back = QueuedMessage::decode(msg.id, &msg.encode_meta(), &msg.encode_state()).unwrap();
        assert_eq!(back.rcpts[0].attempts, 2);
        assert_eq!(back.rcpts[0].last_attempt(), Some(7));
        assert_eq!(back.rcpts[0].last_reply().map(|r| r.code), Some(451));
        assert_eq!(back.rcpts[0].remote(), Some("mx.d.test"));
        assert!(!back.rcpts[0].in_flight);
        assert_eq!(back.meta, msg.meta);
        let fresh = QueuedMessage::decode(msg.id, &msg.encode_meta(), b"").unwrap();
        assert_eq!(fresh.rcpts[0], RcptState::new(5));
        assert!(QueuedMessage::decode(msg.id, b"{", b"").is_err());
        assert!(QueuedMessage::decode(msg.id, &msg.encode_meta(), b"[]").is_err());
    }

    /// The state written by earlier versions (a derived struct with these
    /// fields) reads back, and is written the same way.
    #[test]
    fn stored_state_keeps_its_json_shape() {
        let stored = br#"[{"status":"pending","attempts":3,"next_attempt":900,"last_attempt":600,"last_reply":{"code":451,"status":[4,4,1],"text":"try later"},"remote":"mx.x.test"},{"status":"pending","attempts":0,"next_attempt":0,"last_attempt":null,"last_reply":null,"remote":null}]"#;
        let mut envelope = Envelope::new("a@b.test");
        envelope.recipients.push(Recipient::new("c@x.test"));
        envelope.recipients.push(Recipient::new("d@y.test"));
        let meta = MessageMeta {
            account_id: 1,
            account: "default".into(),
            envelope: Arc::new(envelope),
            size: 1,
            received_at: 0,
            notification: false,
            verp_domain: None,
        };
        let meta = serde_json::to_vec(&meta).unwrap();
        let msg = QueuedMessage::decode(MessageId(1), &meta, stored).unwrap();
        assert_eq!(msg.rcpts[0].status, RcptStatus::Pending);
        assert_eq!(msg.rcpts[0].attempts, 3);
        assert_eq!(msg.rcpts[0].next_attempt, 900);
        assert_eq!(msg.rcpts[0].last_attempt(), Some(600));
        assert_eq!(
            msg.rcpts[0].last_reply().unwrap().to_string(),
            "451 4.4.1 try later"
        );
        assert_eq!(msg.rcpts[0].remote(), Some("mx.x.test"));
        assert_eq!(msg.rcpts[1].last_reply(), None);
        let again: serde_json::Value = serde_json::from_slice(&msg.encode_state()).unwrap();
        let before: serde_json::Value = serde_json::from_slice(stored).unwrap();
        assert_eq!(again, before);
    }

    #[test]
    fn interner_shares_names_and_repeated_replies() {
        let mut interner = Interner::default();
        let a = interner.name("default");
        let b = interner.name("default");
        assert!(Arc::ptr_eq(&a, &b));
        let refused = || Reply::new(421, None, "connection refused");
        let first = interner.last_reply(refused(), Some("127.0.0.1"));
        let second = interner.last_reply(refused(), Some("127.0.0.1"));
        assert!(
            Arc::ptr_eq(&first, &second),
            "same reply and host: one copy"
        );
        let other_host = interner.last_reply(refused(), Some("127.0.0.2"));
        assert!(!Arc::ptr_eq(&first, &other_host));
        assert_eq!(other_host.remote.as_deref(), Some("127.0.0.2"));
    }

    /// The queue holds one of these per recipient of every queued message.
    #[test]
    fn recipient_state_stays_small() {
        assert_eq!(std::mem::size_of::<RcptState>(), 32);
    }
}
