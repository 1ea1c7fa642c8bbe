//! Which events suppress their recipient, and the recording of events
//! (with their suppressions) in the store and the in-memory lists.

use super::*;
use crate::testing::{Fixture, eventually, states};
use carteiro_mail::bounce::BounceClass;
use carteiro_mail::{MessageId, Reply, Status};
use carteiro_store::{
    BounceReportDetails, ComplaintDetails, EngagementDetails, SuppressedDetails, UnsubscribeDetails,
};
use serde_json::json;

const REMOTE: &str = "mx.dest.test[192.0.2.25]:25";

fn event(kind: EventKind, details: EventDetails) -> NewEvent {
    NewEvent {
        account_id: 1,
        message_id: MessageId::generate().to_string(),
        recipient: Some("alice@dest.test".to_owned()),
        kind,
        timestamp_ms: carteiro_mail::clock::now_millis() as i64,
        details,
    }
}

/// A `bounced` event from a delivery attempt.
fn delivery_bounce(class: BounceClass, remote: Option<&str>) -> NewEvent {
    event(
        EventKind::Bounced,
        EventDetails::Delivery(DeliveryDetails {
            attempt: 1,
            remote_host: remote.map(str::to_owned),
            reply: Some("550 5.1.1 no such user".to_owned()),
            reply_code: Some(550),
            status: Some("5.1.1".to_owned()),
            class: Some(class),
            ..DeliveryDetails::default()
        }),
    )
}

/// A `bounced` event from a bounce report.
fn report_bounce(class: BounceClass) -> NewEvent {
    event(
        EventKind::Bounced,
        EventDetails::BounceReport(BounceReportDetails {
            is_async: true,
            class,
            reason: None,
            status: Some("5.1.1".to_owned()),
            reply: Some("smtp; 550 5.1.1 user unknown".to_owned()),
            remote_host: Some("mailstore.dest.test".to_owned()),
            reporting_mta: Some("mx.dest.test".to_owned()),
        }),
    )
}

fn complaint() -> NewEvent {
    event(
        EventKind::Complained,
        EventDetails::Complaint(ComplaintDetails {
            feedback_type: Some("abuse".to_owned()),
            user_agent: None,
            reporting_mta: None,
        }),
    )
}

fn unsubscribe() -> NewEvent {
    event(
        EventKind::Unsubscribed,
        EventDetails::Unsubscribe(UnsubscribeDetails {
            method: "mailto".to_owned(),
        }),
    )
}

#[test]
fn a_remote_servers_hard_bounce_suppresses() {
    for class in [
        BounceClass::UnknownUser,
        BounceClass::MailboxDisabled,
        BounceClass::DomainNotFound,
    ] {
        assert_eq!(
            suppression_for(&delivery_bounce(class, Some(REMOTE))),
            Some(Suppression {
                reason: SuppressionReason::HardBounce,
                detail: Some("550 5.1.1 no such user".to_owned()),
                actor: "delivery",
            }),
            "{class:?}"
        );
    }
    assert_eq!(
        suppression_for(&report_bounce(BounceClass::UnknownUser)),
        Some(Suppression {
            reason: SuppressionReason::HardBounce,
            detail: Some("smtp; 550 5.1.1 user unknown".to_owned()),
            actor: "bounce",
        })
    );
}

#[test]
fn soft_bounces_our_own_verdicts_and_verdicts_on_the_sender_do_not_suppress() {
    // Our own synthetic replies (no remote host answered) never suppress.
    assert_eq!(
        suppression_for(&delivery_bounce(BounceClass::UnknownUser, None)),
        None
    );
    for class in [
        BounceClass::MailboxFull,
        BounceClass::SpamBlock,
        BounceClass::BlocklistedSender,
        BounceClass::AuthFailure,
        BounceClass::MessageTooLarge,
        BounceClass::RateLimited,
        BounceClass::TemporaryFailure,
        BounceClass::Other,
    ] {
        assert_eq!(
            suppression_for(&delivery_bounce(class, Some(REMOTE))),
            None,
            "{class:?}"
        );
        assert_eq!(suppression_for(&report_bounce(class)), None, "{class:?}");
    }
    // Only a final bounce, not a deferral or an expiry, however hard.
    for kind in [EventKind::Deferred, EventKind::Expired] {
        let mut event = delivery_bounce(BounceClass::UnknownUser, Some(REMOTE));
        event.kind = kind;
        assert_eq!(suppression_for(&event), None, "{kind}");
    }
    // No class at all (a delivery) suppresses nothing.
    let delivered = event(
        EventKind::Delivered,
        EventDetails::Delivery(DeliveryDetails {
            attempt: 1,
            remote_host: Some(REMOTE.to_owned()),
            ..DeliveryDetails::default()
        }),
    );
    assert_eq!(suppression_for(&delivered), None);
    let opened = event(
        EventKind::Opened,
        EventDetails::Engagement(EngagementDetails::default()),
    );
    assert_eq!(suppression_for(&opened), None);
    let suppressed = event(
        EventKind::Suppressed,
        EventDetails::Suppressed(SuppressedDetails {
            reason: "listed".to_owned(),
        }),
    );
    assert_eq!(suppression_for(&suppressed), None);
}

#[test]
fn complaints_and_unsubscribes_suppress() {
    assert_eq!(
        suppression_for(&complaint()),
        Some(Suppression {
            reason: SuppressionReason::Complaint,
            detail: Some("abuse".to_owned()),
            actor: "complaint",
        })
    );
    assert_eq!(
        suppression_for(&unsubscribe()),
        Some(Suppression {
            reason: SuppressionReason::Unsubscribe,
            detail: Some("mailto".to_owned()),
            actor: "unsubscribe",
        })
    );
    // An event about the whole message names nobody to suppress.
    let mut whole = complaint();
    whole.recipient = None;
    assert_eq!(suppression_for(&whole), None);
}

#[tokio::test]
async fn a_recorded_hard_bounce_is_suppressed_in_memory_and_in_the_store() {
    let fx = Fixture::new().await;
    let id = fx.record_message(&fx.shop, &["alice@dest.test"]).await;
    let mut bounce = delivery_bounce(BounceClass::UnknownUser, Some(REMOTE));
    bounce.account_id = fx.shop.id;
    bounce.message_id = id.to_string();
    fx.recorder
        .record_and_suppress(bounce)
        .await
        .expect("suppression stored");

    assert!(fx.suppressions.is_suppressed(fx.shop.id, "Alice@Dest.test"));
    assert!(!fx.suppressions.is_suppressed(fx.news.id, "alice@dest.test"));
    let entry = fx
        .store
        .suppression(fx.shop.id, "alice@dest.test")
        .await
        .expect("lookup")
        .expect("on the list");
    assert_eq!(entry.reason, SuppressionReason::HardBounce);
    assert_eq!(entry.source_message_id, Some(id.to_string()));
    assert_eq!(entry.detail.as_deref(), Some("550 5.1.1 no such user"));
    let record = fx.message(&fx.shop, id).await.expect("recorded");
    assert_eq!(record.recipients[0].state, "bounced");
    let bounced = fx.events_of(&fx.shop, EventKind::Bounced).await;
    assert_eq!(bounced.len(), 1);
    assert_eq!(bounced[0].details["class"], "unknown_user");
}

#[tokio::test]
async fn complaints_and_unsubscribes_are_suppressed_when_recorded() {
    let fx = Fixture::new().await;
    let id = fx
        .record_message(&fx.shop, &["alice@dest.test", "bob@dest.test"])
        .await;
    let mut complained = complaint();
    complained.account_id = fx.shop.id;
    complained.message_id = id.to_string();
    fx.recorder
        .record_and_suppress(complained)
        .await
        .expect("suppression stored");
    let mut unsubscribed = unsubscribe();
    unsubscribed.account_id = fx.shop.id;
    unsubscribed.message_id = id.to_string();
    unsubscribed.recipient = Some("bob@dest.test".to_owned());
    fx.recorder
        .record_and_suppress(unsubscribed)
        .await
        .expect("suppression stored");

    for (address, reason) in [
        ("alice@dest.test", SuppressionReason::Complaint),
        ("bob@dest.test", SuppressionReason::Unsubscribe),
    ] {
        assert!(fx.suppressions.is_suppressed(fx.shop.id, address));
        let entry = fx
            .store
            .suppression(fx.shop.id, address)
            .await
            .expect("lookup")
            .expect("on the list");
        assert_eq!(entry.reason, reason, "{address}");
    }
}

#[tokio::test]
async fn a_soft_bounce_is_recorded_without_suppressing() {
    let fx = Fixture::new().await;
    let id = fx.record_message(&fx.shop, &["alice@dest.test"]).await;
    let mut bounce = delivery_bounce(BounceClass::MailboxFull, Some(REMOTE));
    bounce.account_id = fx.shop.id;
    bounce.message_id = id.to_string();
    assert!(fx.recorder.record(bounce).is_none(), "nothing to add");
    assert_eq!(fx.events_of(&fx.shop, EventKind::Bounced).await.len(), 1);
    assert!(!fx.suppressions.is_suppressed(fx.shop.id, "alice@dest.test"));
    assert_eq!(
        fx.store
            .suppression(fx.shop.id, "alice@dest.test")
            .await
            .expect("lookup"),
        None
    );
}

fn engine_event(kind: DeliveryEventKind, reply: Option<Reply>) -> DeliveryEvent {
    DeliveryEvent {
        kind,
        message_id: MessageId::generate(),
        account_id: 1,
        recipient: "alice@dest.test".to_owned(),
        attempt: 2,
        reply,
        remote: Some(REMOTE.to_owned()),
        mx: Some("mx.dest.test".to_owned()),
        next_attempt: None,
    }
}

#[test]
fn delivery_outcomes_become_typed_events() {
    let greylisted = Reply::new(451, Some(Status(4, 7, 1)), "greylisted, try again later");
    let mut deferred = engine_event(DeliveryEventKind::Deferred, Some(greylisted.clone()));
    deferred.next_attempt = Some(1_790_000_060_000);
    let event = delivery_event(deferred.clone(), 1_790_000_000_000);
    assert_eq!(event.kind, EventKind::Deferred);
    assert_eq!(event.message_id, deferred.message_id.to_string());
    assert_eq!(event.recipient.as_deref(), Some("alice@dest.test"));
    assert_eq!(event.timestamp_ms, 1_790_000_000_000);
    assert_eq!(
        event.details,
        EventDetails::Delivery(DeliveryDetails {
            attempt: 2,
            remote_host: Some(REMOTE.to_owned()),
            mx: Some("mx.dest.test".to_owned()),
            reply: Some(greylisted.to_string()),
            reply_code: Some(451),
            status: Some("4.7.1".to_owned()),
            next_attempt_ms: Some(1_790_000_060_000),
            class: Some(carteiro_mail::bounce::classify_reply(&greylisted)),
            // Greylisting has no name of its own in sisimai's vocabulary.
            reason: Some(carteiro_mail::bounce::Reason::Undefined),
            node: None,
        })
    );

    let unknown = Reply::new(550, Some(Status(5, 1, 1)), "no such user");
    let event = delivery_event(
        engine_event(DeliveryEventKind::Bounced, Some(unknown.clone())),
        0,
    );
    assert_eq!(event.kind, EventKind::Bounced);
    let EventDetails::Delivery(details) = &event.details else {
        panic!("delivery details: {:?}", event.details);
    };
    assert_eq!(details.class, Some(BounceClass::UnknownUser));
    assert_eq!(details.next_attempt_ms, None);
    assert_eq!(details.status.as_deref(), Some("5.1.1"));

    let expired = delivery_event(
        engine_event(DeliveryEventKind::Expired, Some(greylisted.clone())),
        0,
    );
    assert_eq!(expired.kind, EventKind::Expired);
    assert!(matches!(&expired.details, EventDetails::Delivery(d) if d.class.is_some()));

    // Success and an operator's delete carry no bounce class.
    let ok = Reply::new(250, Some(Status(2, 0, 0)), "queued as 12345");
    let delivered = delivery_event(engine_event(DeliveryEventKind::Delivered, Some(ok)), 0);
    assert_eq!(delivered.kind, EventKind::Delivered);
    assert!(
        matches!(&delivered.details, EventDetails::Delivery(d) if d.class.is_none() && d.reply_code == Some(250))
    );
    let deleted = delivery_event(engine_event(DeliveryEventKind::Deleted, None), 0);
    assert_eq!(deleted.kind, EventKind::Deleted);
    assert!(
        matches!(&deleted.details, EventDetails::Delivery(d) if d.class.is_none() && d.reply.is_none())
    );
}

#[tokio::test]
async fn the_engines_events_reach_the_store_and_the_suppression_list() {
    let fx = Fixture::new().await;
    let id = fx
        .record_message(&fx.shop, &["alice@dest.test", "bob@dest.test"])
        .await;
    let sink = StoreEvents::new(fx.recorder.clone());

    let mut deferred = engine_event(
        DeliveryEventKind::Deferred,
        Some(Reply::new(
            451,
            Some(Status(4, 2, 2)),
            "mailbox full, try later",
        )),
    );
    deferred.message_id = id;
    deferred.account_id = fx.shop.id;
    deferred.recipient = "bob@dest.test".to_owned();
    deferred.next_attempt = Some(1_790_000_600_000);
    sink.emit(deferred);

    let mut bounced = engine_event(
        DeliveryEventKind::Bounced,
        Some(Reply::new(550, Some(Status(5, 1, 1)), "no such user")),
    );
    bounced.message_id = id;
    bounced.account_id = fx.shop.id;
    sink.emit(bounced);

    // The suppression runs on its own task: the engine cannot wait.
    eventually("alice suppressed", || async {
        fx.suppressions
            .is_suppressed(fx.shop.id, "alice@dest.test")
            .then_some(())
    })
    .await;
    assert!(!fx.suppressions.is_suppressed(fx.shop.id, "bob@dest.test"));

    let record = fx.message(&fx.shop, id).await.expect("recorded");
    let details = |kind: EventKind| {
        record
            .events
            .iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} event: {:?}", record.events))
            .details
            .clone()
    };
    assert_eq!(
        details(EventKind::Deferred),
        json!({
            "attempt": 2, "remote_host": REMOTE, "mx": "mx.dest.test",
            "reply": "451 4.2.2 mailbox full, try later", "reply_code": 451,
            "status": "4.2.2", "next_attempt_ms": 1_790_000_600_000_u64,
            "class": "mailbox_full", "reason": "mailboxfull"
        })
    );
    assert_eq!(
        details(EventKind::Bounced),
        json!({
            "attempt": 2, "remote_host": REMOTE, "mx": "mx.dest.test",
            "reply": "550 5.1.1 no such user", "reply_code": 550,
            "status": "5.1.1", "class": "unknown_user", "reason": "userunknown"
        })
    );
    assert_eq!(
        states(&record),
        [
            ("alice@dest.test", "bounced"),
            ("bob@dest.test", "deferred")
        ]
    );
}
