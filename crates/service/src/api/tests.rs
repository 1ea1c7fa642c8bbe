//! The HTTP API's submitter against a real intake: what a `202` promises
//! (durable, recorded, readable at once) and how refusals are told.

use super::*;
use crate::testing::{Fixture, HOSTNAME, Options, SHOP_DOMAIN, header_names};
use carteiro_mail::MessageId;
use carteiro_store::EventKind;
use serde_json::json;

async fn submitter(fx: &Fixture, max_message_size: u64) -> ApiSubmitter {
    let (intake, _engine) = fx.intake().await;
    let clock: Arc<dyn carteiro_mail::clock::Clock> = fx.clock.clone();
    ApiSubmitter::new(
        intake,
        Arc::new(fx.inbound().await),
        Arc::new(Tracker::new(
            Arc::clone(&fx.tokens),
            fx.store.clone(),
            fx.events.clone(),
            clock,
        )),
        HOSTNAME.to_owned(),
        max_message_size,
    )
}

/// A composed message from `from` to `recipients`, as the API makes it.
fn submission(fx: &Fixture, from: &str, recipients: &[&str]) -> Submission {
    let id = MessageId::generate();
    let header_message_id = format!("<{id}@{HOSTNAME}>");
    let message = format!(
        "From: {from}\r\nTo: {}\r\nSubject: Your order\r\n\
         Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nMessage-ID: {header_message_id}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThank you.\r\n",
        recipients.join(", ")
    );
    Submission {
        account: fx.shop.clone(),
        id,
        envelope_from: from.to_owned(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        message: message.into_bytes(),
        subject: Some("Your order".to_owned()),
        header_message_id,
        tags: vec!["receipts".to_owned()],
        metadata: json!({"order": 42}),
        needs_smtputf8: false,
        track_opens: None,
        track_clicks: None,
        list_unsubscribe: None,
    }
}

#[tokio::test]
async fn a_submission_is_recorded_before_the_202() {
    let fx = Fixture::new().await;
    let api = submitter(&fx, 10 << 20).await;
    let submission = submission(
        &fx,
        "orders@shop.test",
        &["alice@dest.test", "bob@dest.test"],
    );
    let id = submission.id;
    let ids = api.submit(submission).await.expect("accepted");
    assert!(ids.is_empty(), "the usual <id>-<index>: {ids:?}");

    // No flush here: the submitter flushed before answering.
    let record = fx
        .store
        .message(fx.shop.id, &id.to_string())
        .await
        .expect("lookup")
        .expect("readable at once");
    assert_eq!(record.source, MessageSource::Api);
    assert_eq!(record.tags, ["receipts"]);
    assert_eq!(record.metadata, json!({"order": 42}));
    let received: Vec<_> = record
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Received)
        .collect();
    assert_eq!(received.len(), 2);
    let spooled = fx.spool.read_body(id).await.expect("durable");
    assert_eq!(
        received[0].details,
        json!({"source": "api", "size": spooled.len(), "dkim_domain": SHOP_DOMAIN})
    );
    // Signed, after a trace field of its own; the composed fields kept.
    assert_eq!(
        &header_names(&spooled)[..4],
        [
            "dkim-signature",
            "dkim-signature",
            "received",
            "x-carteiro-id"
        ]
    );
    let text = String::from_utf8_lossy(&spooled);
    assert!(
        text.contains(&format!(
            "Received: by {HOSTNAME} (Carteiro) with HTTP\r\n\tid {id};"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn bulk_submissions_name_one_message_per_recipient() {
    let fx = Fixture::new().await;
    let api = submitter(&fx, 10 << 20).await;
    let mut submission = submission(
        &fx,
        "orders@shop.test",
        &["alice@dest.test", "bob@dest.test"],
    );
    submission.list_unsubscribe = Some(true);
    let first = submission.id;
    let ids = api.submit(submission).await.expect("accepted");
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], format!("{first}-0"));
    let second = ids[1].strip_suffix("-0").expect("<id>-0");
    assert_ne!(second, first.to_string());
    let record = fx
        .store
        .message(fx.shop.id, second)
        .await
        .expect("lookup")
        .expect("recorded");
    assert_eq!(record.recipients[0].address, "bob@dest.test");
}

#[tokio::test]
async fn refusals_name_the_field_or_ask_to_retry() {
    let fx = Fixture::new().await;
    let api = submitter(&fx, 10 << 20).await;
    match api
        .submit(submission(
            &fx,
            "orders@elsewhere.test",
            &["alice@dest.test"],
        ))
        .await
    {
        Err(SubmitError::Refused { field, message }) => {
            assert_eq!(field, "from");
            assert!(message.contains("elsewhere.test"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    let small = submitter(&fx, 100).await;
    match small
        .submit(submission(&fx, "orders@shop.test", &["alice@dest.test"]))
        .await
    {
        Err(SubmitError::Refused { field, .. }) => assert_eq!(field, "attachments"),
        other => panic!("expected a size refusal, got {other:?}"),
    }

    let full = Fixture::with(Options {
        spool_max_size: 1,
        ..Options::default()
    })
    .await;
    let api = submitter(&full, 10 << 20).await;
    match api
        .submit(submission(&full, "orders@shop.test", &["alice@dest.test"]))
        .await
    {
        Err(SubmitError::Unavailable(text)) => assert!(text.contains("spool is full"), "{text}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
}
