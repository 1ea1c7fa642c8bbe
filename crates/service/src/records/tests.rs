//! Records rebuilt from the spool: what a power cut between the spool's
//! commit and the event writer's took from the store comes back, once, and
//! nothing else is written twice.

use super::*;
use crate::testing::{Fixture, SHOP_DOMAIN, incoming, states};
use carteiro_mail::clock::now_millis;
use carteiro_mail::{Envelope, MessageId, Recipient};
use carteiro_queue::MessageMeta;
use carteiro_smtp_server::AccountRef;
use serde_json::json;
use std::sync::Arc;

/// A message of `account` to `recipients`, accepted at `at`, as the queue
/// holds it.
fn queued(account: &AccountRef, recipients: &[&str], at: u64) -> QueuedMessage {
    let mut envelope = Envelope::new(format!("orders@{SHOP_DOMAIN}"));
    for recipient in recipients {
        envelope
            .recipients
            .push(Recipient::new((*recipient).to_owned()));
    }
    QueuedMessage::new(
        MessageId::generate(),
        MessageMeta {
            account_id: account.id,
            account: Arc::clone(&account.name),
            envelope: Arc::new(envelope),
            size: 321,
            received_at: at,
            notification: false,
            verp_domain: None,
        },
        at,
    )
}

fn spooled_record() -> SpooledRecord {
    SpooledRecord {
        subject: Some("Your order 7".to_owned()),
        header_message_id: Some("<order-7@shop.test>".to_owned()),
        tags: vec!["orders".to_owned()],
        sending_domain: Some(SHOP_DOMAIN.to_owned()),
        metadata: json!({"order": 7}),
        source: MessageSource::Smtp,
        smtp: Some(SmtpClientDetails {
            client_ip: "192.0.2.7".to_owned(),
            helo: "crm.shop.test".to_owned(),
            tls: true,
            auth_user: Some("crm".to_owned()),
            listener: "submission".to_owned(),
        }),
        dkim_domain: Some(SHOP_DOMAIN.to_owned()),
    }
}

/// Spools `message` as the intake does, with `record` (or without one, as
/// versions before it did), and nothing sent to the event writer: as if a
/// power cut took the record before its commit.
async fn spool_only(fx: &Fixture, message: &QueuedMessage, record: Option<&SpooledRecord>) {
    let meta = match record {
        Some(record) => encode_meta(message, record),
        None => message.encode_meta(),
    };
    fx.spool
        .store(
            message.id,
            meta,
            message.encode_state(),
            "Subject: x\r\n\r\nbody\r\n".into(),
        )
        .await
        .expect("spooled");
}

#[test]
fn the_queue_reads_metadata_with_a_record_and_the_record_reads_back() {
    let message = queued(
        &AccountRef::new(1, "shop".to_owned()),
        &["a@dest.test"],
        1000,
    );
    let record = spooled_record();
    let meta = encode_meta(&message, &record);
    let decoded = QueuedMessage::decode(message.id, &meta, &[]).expect("the queue reads it");
    assert_eq!(decoded.meta, message.meta);
    assert_eq!(decode_record(&meta).expect("json"), Some(record));
    assert_eq!(decode_record(&message.encode_meta()).expect("json"), None);
}

#[tokio::test]
async fn a_record_lost_before_its_commit_comes_back_from_the_spool_once() {
    let fx = Fixture::new().await;
    let (intake, _engine) = fx.intake().await;
    // One message accepted the usual way: recorded, and the newest record.
    let accepted = incoming(&fx.shop, "orders@shop.test", &["kept@dest.test"], "");
    let accepted_id = accepted.id;
    intake.accept(accepted).await.expect("accepted");
    fx.events.flush().await;
    let meta = fx.spool.read_meta(accepted_id).await.expect("spooled");
    let accepted = QueuedMessage::decode(accepted_id, &meta, &[]).expect("decodes");
    assert!(
        decode_record(&meta).expect("json").is_some(),
        "the intake spools the record"
    );

    // Lost: spooled with its record, one recipient suppressed.
    let mut lost = queued(
        &fx.shop,
        &["alice@dest.test", "bob@dest.test"],
        now_millis(),
    );
    lost.rcpts[1].status = RcptStatus::Suppressed;
    spool_only(&fx, &lost, Some(&spooled_record())).await;
    // Lost too, but spooled by an older version: nothing to rebuild from.
    let old = queued(&fx.shop, &["carol@dest.test"], now_millis());
    spool_only(&fx, &old, None).await;

    let queue = [accepted, lost.clone(), old.clone()];
    let rebuilt = rebuild_lost(&fx.store, &fx.spool, &fx.events, &queue, true)
        .await
        .expect("rebuild");
    assert_eq!(
        rebuilt,
        Rebuilt {
            checked: 3,
            rebuilt: 1,
            missing: 1
        }
    );

    let record = fx.message(&fx.shop, lost.id).await.expect("rebuilt");
    assert_eq!(record.subject.as_deref(), Some("Your order 7"));
    assert_eq!(
        record.header_message_id.as_deref(),
        Some("<order-7@shop.test>")
    );
    assert_eq!(record.tags, ["orders"]);
    assert_eq!(record.metadata, json!({"order": 7}));
    assert_eq!(record.size, 321);
    assert_eq!(record.received_at_ms, lost.meta.received_at as i64);
    // The header section comes from the spooled message itself.
    let headers = record.headers.as_ref().expect("headers rebuilt");
    assert_eq!(headers.text, "Subject: x\r\n");
    assert_eq!(
        states(&record),
        [
            ("alice@dest.test", "queued"),
            ("bob@dest.test", "suppressed")
        ]
    );
    let kinds: Vec<_> = record.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Received,
            EventKind::Received,
            EventKind::Suppressed
        ]
    );
    let received = &record.events[0].details;
    assert_eq!(received["client_ip"], "192.0.2.7");
    assert_eq!(received["auth_user"], "crm");
    assert_eq!(received["source"], "smtp");
    assert_eq!(received["size"], 321);
    assert_eq!(received["dkim_domain"], SHOP_DOMAIN);
    assert!(fx.message(&fx.shop, old.id).await.is_none());

    // A second start finds nothing lost: nothing is written twice.
    let again = rebuild_lost(&fx.store, &fx.spool, &fx.events, &queue, true)
        .await
        .expect("rebuild");
    assert_eq!(again.rebuilt, 0);
    let record = fx.message(&fx.shop, lost.id).await.expect("still there");
    assert_eq!(record.events.len(), 3);
    let kept = fx.message(&fx.shop, accepted_id).await.expect("recorded");
    let received = kept
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Received)
        .count();
    assert_eq!(received, 1, "the accepted message's one received event");
}

#[tokio::test]
async fn only_messages_near_the_newest_record_are_checked() {
    let fx = Fixture::new().await;
    fx.record_message(&fx.shop, &["newest@dest.test"]).await;
    let newest = fx
        .store
        .newest_message_received_at()
        .await
        .expect("read")
        .expect("a record") as u64;
    // Accepted two minutes before the newest record: committed before it
    // (records are written in order), so not looked for.
    let older = queued(
        &fx.shop,
        &["older@dest.test"],
        newest - 2 * RECHECK_MS as u64,
    );
    spool_only(&fx, &older, Some(&spooled_record())).await;
    let recent = queued(&fx.shop, &["recent@dest.test"], newest - 1000);
    spool_only(&fx, &recent, Some(&spooled_record())).await;
    let rebuilt = rebuild_lost(
        &fx.store,
        &fx.spool,
        &fx.events,
        &[older, recent.clone()],
        true,
    )
    .await
    .expect("rebuild");
    assert_eq!(
        rebuilt,
        Rebuilt {
            checked: 1,
            rebuilt: 1,
            missing: 0
        }
    );
    assert!(fx.message(&fx.shop, recent.id).await.is_some());
}
