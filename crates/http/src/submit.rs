//! The contract between the API and the daemon for sending: the API checks
//! and composes the message, the binary's [`Submitter`] applies the sending
//! policy, makes the message durable, queues and records it.
//!
//! Nothing here does I/O; the types only carry what a submission needs.

use std::future::Future;

use carteiro_mail::MessageId;

pub use carteiro_mail::AccountRef;

/// A composed message ready to be sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    /// The account sending it.
    pub account: AccountRef,
    /// The message id, made by the API (also in `header_message_id`); its
    /// time is the acceptance time.
    pub id: MessageId,
    /// The envelope sender: the addr-spec of `from`.
    pub envelope_from: String,
    /// The envelope recipients (to, cc and bcc, deduplicated), in order; the
    /// index in this list is the recipient id's suffix (`<id>-<index>`).
    pub recipients: Vec<String>,
    /// The whole message: CRLF line endings, with `Message-ID` and `Date`,
    /// without `Bcc`. Not signed yet.
    pub message: Vec<u8>,
    /// The subject as given, `None` when empty or absent.
    pub subject: Option<String>,
    /// The `Message-ID` header's value, `<id@hostname>`.
    pub header_message_id: String,
    /// Checked tags: at most 20, each 1 to 128 of `A-Z a-z 0-9 . _ : -`,
    /// without repeats.
    pub tags: Vec<String>,
    /// Checked metadata: an object of at most 50 scalar values, or `Null`
    /// when none was given.
    pub metadata: serde_json::Value,
    /// Some address needs SMTPUTF8 to be relayed.
    pub needs_smtputf8: bool,
    /// Open tracking as requested; `None`: the account's default.
    pub track_opens: Option<bool>,
    /// Click tracking as requested; `None`: the account's default.
    pub track_clicks: Option<bool>,
    /// Bulk mail with one-click unsubscribe (`List-Unsubscribe`, RFC 8058)
    /// as requested; `None`: the account's default.
    pub list_unsubscribe: Option<bool>,
}

/// Why a submission was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The sending policy refuses it (a `From` domain the account does not
    /// own, a suppressed recipient...): the client must change the request.
    /// Answered `422` naming `field`.
    #[error("{field}: {message}")]
    Refused {
        /// The request field at fault, in the request's JSON names
        /// (`from`, `to[1]`).
        field: String,
        /// What is wrong, shown to the client.
        message: String,
    },
    /// Cannot be accepted now (spool full, shutting down): the client should
    /// retry. Answered `503` with `Retry-After: 60`; the text is shown.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A failure of the daemon. Answered `500`; the text is logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A message waiting in this node's queue, as the dashboard shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuedMessage {
    /// The message id.
    pub id: String,
    /// The owning account's name.
    pub account: String,
    /// The envelope sender.
    pub sender: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was accepted, unix milliseconds.
    pub received_at_ms: u64,
    /// Its recipients in envelope order.
    pub recipients: Vec<QueuedRecipient>,
}

/// One recipient of a [`QueuedMessage`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuedRecipient {
    pub address: String,
    /// `pending`, `delivered`, `failed`, `expired` or `deleted`.
    pub state: String,
    pub attempts: u32,
    /// When it is tried next (pending only), unix milliseconds.
    pub next_attempt_ms: Option<u64>,
    /// The last remote reply, on one line.
    pub last_reply: Option<String>,
    /// The host that gave it.
    pub remote: Option<String>,
}

/// What the live check of a sending domain found: each expected record,
/// then the bulk-sender checklist.
#[derive(Clone, Debug, Default)]
pub struct DomainCheck {
    pub records: Vec<carteiro_mail::dns_records::CheckResult>,
    pub checklist: Vec<carteiro_mail::dns_records::ChecklistItem>,
}

/// What the API needs from the daemon to send a message: apply the sending
/// policy (From domain ownership, DKIM), store it durably, queue it, record
/// it. Implemented by the binary.
pub trait Submitter: Send + Sync + 'static {
    /// Accepts a message. Resolves `Ok` only once the message is durable:
    /// the client hears `202` right after. `Ok` holds the id of each
    /// recipient (`<message id>-<index>`) in the order of
    /// `submission.recipients` when the daemon made them differently (bulk
    /// mail becomes one message per recipient); empty means the usual
    /// `<submission.id>-<index>`.
    fn submit(
        &self,
        submission: Submission,
    ) -> impl Future<Output = Result<Vec<String>, SubmitError>> + Send;

    /// The address an unsubscribe token (from a `List-Unsubscribe` URL)
    /// stands for, without unsubscribing it; `None` for a token that is
    /// forged, altered or names no message.
    fn unsubscribe_target(&self, token: &str) -> impl Future<Output = Option<String>> + Send;

    /// Unsubscribes the address the token stands for (an `unsubscribed`
    /// event and a suppression entry, stored with a synced commit) and
    /// answers it; `None` as above; an error when it could not be stored, so
    /// the page never says "done" for an unsubscribe that may be lost.
    fn unsubscribe(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Option<String>, SubmitError>> + Send;

    /// Records an open (the tracking pixel of `token` was fetched, by
    /// `user_agent`). A token that is forged, altered or names no message
    /// records nothing; the caller answers the same either way.
    fn opened(&self, token: &str, user_agent: Option<&str>) -> impl Future<Output = ()> + Send;

    /// The target URL of click-tracking `token`, once the click is recorded;
    /// `None` for a token that is forged or altered (never a redirect to a
    /// URL Carteiro did not sign).
    fn clicked(
        &self,
        token: &str,
        user_agent: Option<&str>,
    ) -> impl Future<Output = Option<String>> + Send;

    /// Every message in this node's queue (each node has its own spool and
    /// queue). The default: none.
    fn queued(&self) -> impl Future<Output = Vec<QueuedMessage>> + Send {
        async { Vec::new() }
    }

    /// One message of this node's queue, if it is there. The default: none.
    fn queued_message(&self, id: &str) -> impl Future<Output = Option<QueuedMessage>> + Send {
        let _ = id;
        async { None }
    }

    /// Makes a queued message due now; whether it was in the queue.
    fn retry_queued(&self, id: &str) -> impl Future<Output = bool> + Send {
        let _ = id;
        async { false }
    }

    /// Removes a queued message from the queue and the spool (its pending
    /// recipients get `deleted` events); whether it was in the queue.
    fn delete_queued(&self, id: &str) -> impl Future<Output = bool> + Send {
        let _ = id;
        async { false }
    }

    /// The DNS records `domain` needs published. The default: none.
    fn domain_records(
        &self,
        domain: &carteiro_store::Domain,
    ) -> Vec<carteiro_mail::dns_records::DnsRecord> {
        let _ = domain;
        Vec::new()
    }

    /// Looks up what is published for `domain` and judges it (what
    /// `carteiro domain check` prints); `None` when the daemon cannot.
    fn check_domain(
        &self,
        domain: &carteiro_store::Domain,
    ) -> impl Future<Output = Option<DomainCheck>> + Send {
        let _ = domain;
        async { None }
    }

    /// Makes `name` a sending domain of `account` with new DKIM keys (what
    /// `carteiro domain add` does). A name that is not a domain, or taken, is
    /// [`SubmitError::Refused`] naming `domain`.
    fn add_domain(
        &self,
        account: &str,
        name: &str,
    ) -> impl Future<Output = Result<carteiro_store::Domain, SubmitError>> + Send {
        let _ = (account, name);
        async {
            Err(SubmitError::Unavailable(
                "domains cannot be added here".to_owned(),
            ))
        }
    }

    /// Sends one `test` event to a webhook endpoint now, signed like every
    /// batch, outside its queue; `Err` says why the endpoint did not take it.
    fn send_test_webhook(
        &self,
        hook: &carteiro_store::Webhook,
        account: &str,
    ) -> impl Future<Output = Result<(), String>> + Send {
        let _ = (hook, account);
        async { Err("test events cannot be sent from here".to_owned()) }
    }

    /// Makes a rotation's new DKIM keys for sending domain `name`, pending
    /// (they sign once activated). A domain with keys waiting already is
    /// [`SubmitError::Refused`] naming `domain`.
    fn rotate_domain_keys(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<carteiro_store::Domain, SubmitError>> + Send {
        let _ = name;
        async {
            Err(SubmitError::Unavailable(
                "keys cannot be made here".to_owned(),
            ))
        }
    }

    /// The suppression lists changed in the store through this API or the
    /// dashboard: apply the change now, so the next send already sees it
    /// (other processes' changes arrive by polling).
    fn suppressions_changed(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The target URL of click-tracking `token` without recording anything
    /// (a `HEAD` from a link checker is not a click); `None` as for
    /// [`clicked`](Submitter::clicked).
    fn click_target(&self, token: &str) -> Option<String>;
}
