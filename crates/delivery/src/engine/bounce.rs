//! What happens when every recipient of a message has reached a final
//! state: recipients that failed or expired get a delivery status
//! notification (RFC 3464) to the envelope sender, unless the sender is the
//! null path or asked for none (NOTIFY=NEVER); then the message leaves the
//! spool.
//!
//! The original stays in the spool, with its final state, until the DSN is
//! durable itself: a crash in between makes the next start finish the
//! message again, so a bounce is never lost.

use super::{EngineHandle, WorkerContext, now_millis};
use bytes::Bytes;
use carteiro_mail::dsn::{Action, DsnRecipient, DsnReport, build_dsn};
use carteiro_mail::{Envelope, LogSafe, MessageId, Recipient, Ret, Status};
use carteiro_queue::{MessageMeta, QueuedMessage, RcptStatus};
use std::sync::Arc;
use time::OffsetDateTime;

/// Originals larger than this are returned as headers only.
const MAX_RETURNED_ORIGINAL: usize = 2 * 1024 * 1024;

/// The recipients a failure notification must report.
fn failed_recipients(message: &QueuedMessage) -> Vec<DsnRecipient> {
    let envelope = &message.meta.envelope;
    envelope
        .recipients
        .iter()
        .zip(&message.rcpts)
        .filter(|(rcpt, state)| {
            matches!(state.status, RcptStatus::Failed | RcptStatus::Expired)
                && rcpt.notify.on_failure()
        })
        .map(|(rcpt, state)| {
            let status = match (state.status, state.last_reply()) {
                (RcptStatus::Expired, _) => Status(4, 4, 7),
                (_, Some(reply)) => reply.status.unwrap_or(Status(5, 0, 0)),
                (_, None) => Status(5, 0, 0),
            };
            DsnRecipient {
                address: rcpt.address.clone(),
                orcpt: rcpt.orcpt.clone(),
                action: Action::Failed,
                status,
                diagnostic: state.last_reply().cloned(),
                remote_mta: state.remote().map(str::to_string),
                last_attempt: state.last_attempt().and_then(to_datetime),
                will_retry_until: None,
            }
        })
        .collect()
}

fn to_datetime(millis: u64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000).ok()
}

/// Finishes a message whose recipients are all final.
pub(crate) fn finish(
    ctx: &Arc<WorkerContext>,
    engine: &EngineHandle,
    message: QueuedMessage,
    body: Option<Bytes>,
) {
    let id = message.id;
    // Mail sent with VERP brings its bounces back to Carteiro, which records
    // them as events (and webhooks); its sender gets no DSN mail.
    let report = if message.meta.envelope.is_null_sender() || message.meta.verp_domain.is_some() {
        Vec::new()
    } else {
        failed_recipients(&message)
    };
    if report.is_empty() {
        tracing::debug!(message_id = %id, "message finished");
        if let Err(err) = ctx.spool.remove(id) {
            tracing::error!(message_id = %id, error = %err, "cannot remove finished message");
        }
        return;
    }
    // Keep the final state with the original until the DSN is safe.
    if let Err(err) = ctx.spool.set_state(id, message.encode_state()) {
        tracing::error!(message_id = %id, error = %err, "cannot store final state");
    }
    let ctx = Arc::clone(ctx);
    let engine = engine.clone();
    tokio::spawn(async move {
        let original = match body {
            Some(body) => body,
            None => match ctx.spool.read_body(id).await {
                Ok(body) => body,
                Err(err) => {
                    tracing::error!(message_id = %id, error = %err, "cannot read original for DSN");
                    Bytes::new()
                }
            },
        };
        let hostname = &ctx.config.hostname;
        let dsn_id = MessageId::generate();
        let postmaster = format!("MAILER-DAEMON@{hostname}");
        let message_id = format!("<{dsn_id}@{hostname}>");
        let meta = &message.meta;
        let dsn = build_dsn(&DsnReport {
            reporting_mta: hostname,
            postmaster: &postmaster,
            to: &meta.envelope.sender,
            envid: meta.envelope.envid.as_deref(),
            arrival_date: to_datetime(meta.received_at).unwrap_or_else(OffsetDateTime::now_utc),
            recipients: &report,
            ret: meta.envelope.ret.unwrap_or(Ret::Full),
            original: &original,
            max_original_size: MAX_RETURNED_ORIGINAL,
            message_id: &message_id,
        });
        let mut envelope = Envelope::new("");
        envelope
            .recipients
            .push(Recipient::new(meta.envelope.sender.clone()));
        envelope.smtputf8 = !meta.envelope.sender.is_ascii();
        envelope.body_type = if dsn.is_ascii() {
            carteiro_mail::BodyType::SevenBit
        } else {
            carteiro_mail::BodyType::EightBitMime
        };
        let now = now_millis();
        let bounce = QueuedMessage::new(
            dsn_id,
            MessageMeta {
                account_id: meta.account_id,
                account: meta.account.clone(),
                envelope: Arc::new(envelope),
                size: dsn.len() as u64,
                received_at: now,
                notification: true,
                verp_domain: None,
            },
            now,
        );
        let dsn = Bytes::from(dsn);
        match ctx
            .spool
            .store(dsn_id, bounce.encode_meta(), Vec::new(), dsn.clone())
            .await
        {
            Ok(()) => {
                tracing::info!(
                    message_id = %id,
                    dsn_id = %dsn_id,
                    to = %LogSafe(&meta.envelope.sender),
                    failed = report.len(),
                    "delivery status notification queued"
                );
                engine.enqueue(bounce, Some(dsn));
                if let Err(err) = ctx.spool.remove(id) {
                    tracing::error!(message_id = %id, error = %err, "cannot remove bounced message");
                }
            }
            Err(err) => {
                // The original stays in the spool with its final state; the
                // next start tries again.
                tracing::error!(message_id = %id, error = %err, "cannot store DSN");
            }
        }
    });
}
