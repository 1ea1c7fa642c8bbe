//! What happened to a recipient, recorded: the event, and — when the event
//! says the address itself is at fault — its place on the account's
//! suppression list. [`Recorder::record`] is the one place that decides
//! that, for delivery outcomes, bounce and complaint reports and
//! unsubscribes alike; [`StoreEvents`] turns the delivery engine's outcomes
//! into such events.

use crate::suppress::Suppressions;
use carteiro_delivery::engine::{DeliveryEvent, DeliveryEventKind, EventSink};
use carteiro_mail::bounce::{Reason, classify_reply, reason_of};
use carteiro_mail::clock::now_millis;
use carteiro_store::{
    DeliveryDetails, EventDetails, EventKind, EventWriter, NewEvent, StoreError, SuppressionReason,
};
use std::future::Future;
use std::sync::Arc;

/// Writes events and keeps the suppression lists in step with them.
#[derive(Clone)]
pub struct Recorder {
    events: EventWriter,
    suppressions: Arc<Suppressions>,
}

/// The suppression an event calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    pub reason: SuppressionReason,
    /// The reply, feedback type or method behind it, for the audit log.
    pub detail: Option<String>,
    /// Who suppressed the address, for the audit log.
    pub actor: &'static str,
}

/// Whether `event` puts its recipient on the suppression list, and why: a
/// remote server's permanent verdict on the address (unknown user, domain
/// not found, disabled mailbox), during delivery or in a bounce report; a
/// complaint; an unsubscribe. Our own synthetic replies (no remote host) and
/// bounces about the sender (spam, blocklists, policy) never suppress.
pub fn suppression_for(event: &NewEvent) -> Option<Suppression> {
    let (reason, detail, actor) = match (&event.kind, &event.details) {
        (EventKind::Bounced, EventDetails::Delivery(d))
            if d.remote_host.is_some() && d.class.is_some_and(|c| c.is_hard()) =>
        {
            (SuppressionReason::HardBounce, d.reply.clone(), "delivery")
        }
        (EventKind::Bounced, EventDetails::BounceReport(r)) if r.class.is_hard() => {
            (SuppressionReason::HardBounce, r.reply.clone(), "bounce")
        }
        (EventKind::Complained, EventDetails::Complaint(c)) => (
            SuppressionReason::Complaint,
            c.feedback_type.clone(),
            "complaint",
        ),
        (EventKind::Unsubscribed, EventDetails::Unsubscribe(u)) => (
            SuppressionReason::Unsubscribe,
            Some(u.method.clone()),
            "unsubscribe",
        ),
        _ => return None,
    };
    event.recipient.as_ref()?;
    Some(Suppression {
        reason,
        detail,
        actor,
    })
}

impl Recorder {
    pub fn new(events: EventWriter, suppressions: Arc<Suppressions>) -> Recorder {
        Recorder {
            events,
            suppressions,
        }
    }

    /// The event writer, to flush it.
    pub fn events(&self) -> &EventWriter {
        &self.events
    }

    /// The suppression lists.
    pub fn suppressions(&self) -> &Arc<Suppressions> {
        &self.suppressions
    }

    /// Records `event` (queued for the writer at once). When the event
    /// calls for a suppression ([`suppression_for`]), the returned future
    /// adds it: the caller awaits it, or spawns it where it cannot wait.
    #[must_use = "a suppression is only added when the future runs"]
    pub fn record(
        &self,
        event: NewEvent,
    ) -> Option<impl Future<Output = Result<(), StoreError>> + Send + 'static> {
        let suppression = suppression_for(&event);
        let follow_up = suppression.map(|s| {
            let suppressions = Arc::clone(&self.suppressions);
            let account_id = event.account_id;
            let address = event.recipient.clone().unwrap_or_default();
            let message_id = event.message_id.clone();
            async move {
                suppressions
                    .add(
                        account_id,
                        &address,
                        s.reason,
                        Some(&message_id),
                        s.detail.as_deref(),
                        s.actor,
                    )
                    .await
            }
        });
        self.events.event(event);
        follow_up
    }

    /// Records `event` and waits for the suppression it calls for (a
    /// failure to store it is returned, and logged already).
    pub async fn record_and_suppress(&self, event: NewEvent) -> Result<(), StoreError> {
        match self.record(event) {
            Some(suppress) => suppress.await,
            None => Ok(()),
        }
    }
}

/// The delivery engine's events, with the bounce class of each failure, as
/// events in the store (and hard bounces on the suppression list).
pub struct StoreEvents {
    recorder: Recorder,
}

impl StoreEvents {
    pub fn new(recorder: Recorder) -> StoreEvents {
        StoreEvents { recorder }
    }
}

/// The event a delivery outcome is.
pub fn delivery_event(event: DeliveryEvent, timestamp_ms: u64) -> NewEvent {
    let kind = match event.kind {
        DeliveryEventKind::Deferred => EventKind::Deferred,
        DeliveryEventKind::Delivered => EventKind::Delivered,
        DeliveryEventKind::Bounced => EventKind::Bounced,
        DeliveryEventKind::Expired => EventKind::Expired,
        DeliveryEventKind::Deleted => EventKind::Deleted,
    };
    let reply = event.reply.as_ref();
    let failed = matches!(
        event.kind,
        DeliveryEventKind::Deferred | DeliveryEventKind::Bounced | DeliveryEventKind::Expired
    );
    let class = reply.filter(|_| failed).map(classify_reply);
    NewEvent {
        account_id: event.account_id,
        message_id: event.message_id.to_string(),
        recipient: Some(event.recipient),
        kind,
        timestamp_ms: timestamp_ms as i64,
        details: EventDetails::Delivery(DeliveryDetails {
            attempt: event.attempt,
            remote_host: event.remote,
            mx: event.mx,
            reply: reply.map(|r| r.to_string()),
            reply_code: reply.map(|r| r.code),
            status: reply.and_then(|r| r.status).map(|s| s.to_string()),
            next_attempt_ms: event.next_attempt,
            class,
            reason: class.map(|class| match event.kind {
                DeliveryEventKind::Expired => Reason::Expired,
                _ => reason_of(
                    class,
                    reply.and_then(|r| r.status),
                    if event.kind == DeliveryEventKind::Deferred {
                        "delayed"
                    } else {
                        "failed"
                    },
                    reply.map_or("", |r| &*r.text),
                ),
            }),
            node: None,
        }),
    }
}

impl EventSink for StoreEvents {
    fn emit(&self, event: DeliveryEvent) {
        let event = delivery_event(event, now_millis());
        // The engine cannot wait: a suppression runs on its own task (a
        // failure is logged there).
        if let Some(suppress) = self.recorder.record(event) {
            tokio::spawn(async move {
                let _ = suppress.await;
            });
        }
    }
}

#[cfg(test)]
mod tests;
