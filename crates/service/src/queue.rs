//! The queue as the spool holds it: one way to open it, for the server and
//! for the CLI when no server runs. Every live message is decoded into the
//! queue; one that cannot be decoded stays in the spool and is reported,
//! never dropped without a word.

use carteiro_mail::MessageId;
use carteiro_queue::{Interner, QueuedMessage};
use carteiro_spool::{Spool, SpoolError, SpoolOptions};
use std::path::Path;

/// Spool entries that could not be decoded at the last start.
pub const UNDECODABLE: &str = "carteiro_spool_undecodable";

/// A spool, opened, with its queue.
pub struct RecoveredQueue {
    pub spool: Spool,
    /// Every message that could be decoded, in spool order.
    pub messages: Vec<QueuedMessage>,
    /// Those that could not (left in the spool as they are).
    pub undecodable: Vec<Undecodable>,
}

/// A spool entry whose metadata or state cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecodable {
    pub id: MessageId,
    pub error: String,
}

/// Opens the spool in `dir` and decodes its messages into queue entries,
/// as the spool hands them over (so their bytes are dropped right away).
pub fn open_queue(dir: &Path, options: SpoolOptions) -> Result<RecoveredQueue, SpoolError> {
    let mut messages = Vec::new();
    let mut undecodable = Vec::new();
    let mut interner = Interner::default();
    let spool = Spool::open_with(dir, options, |r| {
        match QueuedMessage::decode_with(r.id, &r.meta, &r.state, &mut interner) {
            Ok(message) => messages.push(message),
            Err(err) => undecodable.push(Undecodable {
                id: r.id,
                error: err.to_string(),
            }),
        }
    })?;
    metrics::gauge!(UNDECODABLE).set(undecodable.len() as f64);
    Ok(RecoveredQueue {
        spool,
        messages,
        undecodable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use carteiro_mail::Envelope;
    use carteiro_queue::MessageMeta;
    use std::sync::Arc;

    fn message(id: MessageId) -> QueuedMessage {
        let mut envelope = Envelope::new("sender@shop.example".to_owned());
        envelope
            .recipients
            .push(carteiro_mail::Recipient::new("rcpt@example.net".to_owned()));
        QueuedMessage::new(
            id,
            MessageMeta {
                account_id: 1,
                account: Arc::from("acme"),
                envelope: Arc::new(envelope),
                size: 5,
                received_at: 1,
                notification: false,
                verp_domain: None,
            },
            1,
        )
    }

    #[tokio::test]
    async fn an_entry_that_cannot_be_decoded_is_reported_not_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = MessageId::generate();
        let bad = MessageId::generate();
        {
            let opened = open_queue(dir.path(), SpoolOptions::default()).expect("open");
            let queued = message(good);
            opened
                .spool
                .store(good, queued.encode_meta(), Vec::new(), "body\r\n".into())
                .await
                .expect("store good");
            opened
                .spool
                .store(
                    bad,
                    b"not a queue entry".to_vec(),
                    Vec::new(),
                    "body\r\n".into(),
                )
                .await
                .expect("store bad");
            opened.spool.close();
        }
        let opened = open_queue(dir.path(), SpoolOptions::default()).expect("reopen");
        let ids: Vec<MessageId> = opened.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [good]);
        assert_eq!(opened.undecodable.len(), 1);
        assert_eq!(opened.undecodable[0].id, bad);
        assert!(!opened.undecodable[0].error.is_empty());
        // Still in the spool: a later version may read it.
        assert_eq!(opened.spool.stats().messages, 2);
        opened.spool.close();
    }
}
