//! The intake with a real store, spool and delivery engine: what is
//! durable, queued and recorded when `accept` returns, and what is not.

use super::*;
use crate::testing::{
    Fixture, HOSTNAME, Options, SHOP_DOMAIN, eventually, header_values, incoming, new_dkim_keys,
    states, verify_dkim,
};
use carteiro_store::{EventKind, EventRecord, MessageRecord, SuppressionReason};
use carteiro_testkit::SmtpSink;
use mail_auth::DkimResult;
use serde_json::json;

#[test]
fn the_bulk_header_says_yes_or_no() {
    let with = |value: &str| format!("X-Carteiro-List-Unsubscribe: {value}\r\n\r\nbody\r\n");
    assert_eq!(bulk_header(with("yes").as_bytes()), Some(true));
    assert_eq!(bulk_header(with(" TRUE ").as_bytes()), Some(true));
    assert_eq!(bulk_header(with("no").as_bytes()), Some(false));
    assert_eq!(bulk_header(with("0").as_bytes()), Some(false));
    assert_eq!(bulk_header(with("maybe").as_bytes()), None);
    assert_eq!(
        bulk_header(b"Subject: x\r\n\r\nX-Carteiro-List-Unsubscribe: yes\r\n"),
        None
    );
}

/// The events of `kind` in a message record.
fn of_kind(record: &MessageRecord, kind: EventKind) -> Vec<&EventRecord> {
    record.events.iter().filter(|e| e.kind == kind).collect()
}

#[tokio::test]
async fn an_accepted_message_is_spooled_queued_and_recorded() {
    let fx = Fixture::new().await;
    let (intake, engine) = fx.intake().await;
    let message = incoming(
        &fx.shop,
        "orders@shop.test",
        &["alice@dest.test", "bob@dest.test"],
        "",
    );
    let (id, received_at) = (message.id, message.received_at_ms as i64);
    let ids = intake.accept(message).await.expect("accepted");
    assert!(ids.is_empty(), "one message keeps the usual ids: {ids:?}");

    // Durable, signed, with the fields the policy adds.
    let spooled = fx.spool.read_body(id).await.expect("in the spool");
    assert!(spooled.starts_with(b"DKIM-Signature:"), "signed first");
    assert_eq!(header_values(&spooled, "X-Carteiro-Id"), [id.to_string()]);
    let domain = fx.shop_domain().await;
    assert_eq!(
        verify_dkim(&spooled, &domain).await,
        [DkimResult::Pass, DkimResult::Pass]
    );

    // Queued for both recipients (the closed relay port keeps it there).
    let entry = engine.show(id).await.expect("queued");
    let queued: Vec<&str> = entry
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(queued, ["alice@dest.test", "bob@dest.test"]);
    assert_eq!(entry.account, "shop");
    assert_eq!(entry.size, spooled.len() as u64);

    // Recorded, with a typed `received` event per recipient.
    let record = fx.message(&fx.shop, id).await.expect("recorded");
    assert_eq!(record.sender, "orders@shop.test");
    assert_eq!(record.subject.as_deref(), Some("Your order"));
    assert_eq!(
        record.header_message_id.as_deref(),
        Some(format!("<{id}@{HOSTNAME}>").as_str())
    );
    assert_eq!(record.source, MessageSource::Smtp);
    assert_eq!(record.size, spooled.len() as u64);
    assert_eq!(record.received_at_ms, received_at);
    // Its header section as queued: signed first, ending where the body
    // starts.
    let headers = record.headers.as_ref().expect("headers kept");
    let end = spooled
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an empty line")
        + 2;
    assert_eq!(headers.text.as_bytes(), &spooled[..end]);
    assert!(headers.text.starts_with("DKIM-Signature:"));
    assert_eq!(headers.size, end as u64);
    let received = of_kind(&record, EventKind::Received);
    let recipients: Vec<Option<&str>> = received.iter().map(|e| e.recipient.as_deref()).collect();
    assert_eq!(recipients, [Some("alice@dest.test"), Some("bob@dest.test")]);
    for event in received {
        assert_eq!(event.timestamp_ms, received_at);
        assert_eq!(
            event.details,
            json!({
                "client_ip": "192.0.2.10", "helo": "client.example", "tls": true,
                "auth_user": "shop-app", "listener": "submission",
                "source": "smtp", "size": spooled.len(), "dkim_domain": SHOP_DOMAIN
            })
        );
    }
    assert!(of_kind(&record, EventKind::Suppressed).is_empty());
}

#[tokio::test]
async fn with_keep_headers_off_no_header_section_is_recorded() {
    let fx = Fixture::new().await;
    let mut config = (*fx.config).clone();
    config.store.keep_headers = false;
    let policy = SendingPolicy::new(Arc::new(config), fx.signers().await, fx.store.clone());
    let intake = Intake::new(
        policy,
        Arc::clone(&fx.tokens),
        Arc::clone(&fx.suppressions),
        fx.spool.clone(),
        fx.engine(),
        fx.events.clone(),
    );
    let message = incoming(&fx.shop, "orders@shop.test", &["alice@dest.test"], "");
    let id = message.id;
    intake.accept(message).await.expect("accepted");
    let record = fx.message(&fx.shop, id).await.expect("recorded");
    assert_eq!(record.subject.as_deref(), Some("Your order"));
    assert_eq!(record.headers, None);
}

#[tokio::test]
async fn a_suppressed_recipient_gets_a_suppressed_event_and_no_attempt() {
    let sink = SmtpSink::builder().starttls(false).start().await;
    let fx = Fixture::with(Options {
        relay: Some(sink.addr()),
        ..Options::default()
    })
    .await;
    fx.suppressions
        .add(
            fx.shop.id,
            "bob@dest.test",
            SuppressionReason::HardBounce,
            None,
            None,
            "test",
        )
        .await
        .expect("suppression stored");
    let (intake, engine) = fx.intake().await;
    // The list ignores the case of the address.
    let message = incoming(
        &fx.shop,
        "orders@shop.test",
        &["alice@dest.test", "Bob@Dest.test"],
        "",
    );
    let id = message.id;
    intake.accept(message).await.expect("accepted");

    // Alice's copy is delivered, and then the message is done: nothing is
    // left to try for Bob.
    let record = eventually("alice delivered", || async {
        let record = fx.message(&fx.shop, id).await?;
        (!of_kind(&record, EventKind::Delivered).is_empty()).then_some(record)
    })
    .await;
    eventually("the message leaves the queue", || async {
        engine.show(id).await.is_none().then_some(())
    })
    .await;
    assert_eq!(sink.rcpt_attempts("alice@dest.test"), 1);
    assert_eq!(sink.rcpt_attempts("bob@dest.test"), 0, "never attempted");

    let suppressed = of_kind(&record, EventKind::Suppressed);
    assert_eq!(suppressed.len(), 1, "{:?}", record.events);
    assert_eq!(suppressed[0].recipient.as_deref(), Some("Bob@Dest.test"));
    assert_eq!(
        suppressed[0].details,
        json!({"reason": "the address is on the account's suppression list"})
    );
    assert_eq!(of_kind(&record, EventKind::Received).len(), 2);
    assert_eq!(
        states(&record),
        [
            ("alice@dest.test", "delivered"),
            ("Bob@Dest.test", "suppressed")
        ]
    );
}

#[tokio::test]
async fn a_message_whose_recipients_are_all_suppressed_is_recorded_but_never_spooled() {
    let fx = Fixture::new().await;
    fx.suppressions
        .add(
            fx.shop.id,
            "alice@dest.test",
            SuppressionReason::Unsubscribe,
            None,
            None,
            "test",
        )
        .await
        .expect("suppression stored");
    let (intake, engine) = fx.intake().await;
    let message = incoming(&fx.shop, "orders@shop.test", &["alice@dest.test"], "");
    let id = message.id;
    intake.accept(message).await.expect("accepted");
    assert!(
        !fx.spool.contains(id),
        "nothing to deliver, nothing spooled"
    );
    // The engine answers in order: an enqueue would have come first.
    assert!(engine.show(id).await.is_none(), "not queued");
    let record = fx.message(&fx.shop, id).await.expect("recorded");
    assert_eq!(states(&record), [("alice@dest.test", "suppressed")]);
    assert_eq!(of_kind(&record, EventKind::Received).len(), 1);
    assert_eq!(of_kind(&record, EventKind::Suppressed).len(), 1);
}

#[tokio::test]
async fn bulk_mail_to_three_recipients_becomes_three_messages() {
    let fx = Fixture::new().await;
    fx.store
        .add_domain("news", "news.test", new_dkim_keys())
        .await
        .expect("domain");
    let (intake, engine) = fx.intake().await;
    let recipients = ["alice@dest.test", "bob@dest.test", "carol@dest.test"];
    // `news` is in domains.bulk_accounts: bulk without asking.
    let message = incoming(&fx.news, "letters@news.test", &recipients, "");
    let first = message.id;
    let ids = intake.accept(message).await.expect("accepted");
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], first, "the first copy keeps the message's id");
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    for (id, recipient) in ids.iter().zip(recipients) {
        let spooled = fx.spool.read_body(*id).await.expect("spooled");
        let list = header_values(&spooled, "List-Unsubscribe");
        assert_eq!(list.len(), 1, "{list:?}");
        // The link names this copy and its only recipient.
        let token = list[0]
            .split("/u/")
            .nth(1)
            .and_then(|rest| rest.split('>').next())
            .expect("a one-click URL");
        assert_eq!(
            fx.tokens.decode(Purpose::Unsubscribe, token),
            Some((*id, 0))
        );
        let entry = engine.show(*id).await.expect("queued");
        let queued: Vec<&str> = entry
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(queued, [recipient]);
        let record = fx.message(&fx.news, *id).await.expect("recorded");
        assert_eq!(states(&record).len(), 1);
        assert_eq!(record.recipients[0].address, recipient);
        let received = of_kind(&record, EventKind::Received);
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].recipient.as_deref(), Some(recipient));
    }
}

#[tokio::test]
async fn the_bulk_header_is_obeyed_and_never_leaves() {
    let fx = Fixture::new().await;
    fx.store
        .add_domain("news", "news.test", new_dkim_keys())
        .await
        .expect("domain");
    let (intake, _engine) = fx.intake().await;
    let domain = fx.shop_domain().await;

    // `shop` is not bulk by default; the header asks for it.
    let message = incoming(
        &fx.shop,
        "orders@shop.test",
        &["alice@dest.test", "bob@dest.test"],
        "X-Carteiro-List-Unsubscribe: yes\r\n",
    );
    let ids = intake.accept(message).await.expect("accepted");
    assert_eq!(ids.len(), 2, "split per recipient");
    for id in ids {
        let spooled = fx.spool.read_body(id).await.expect("spooled");
        assert!(header_values(&spooled, "X-Carteiro-List-Unsubscribe").is_empty());
        assert_eq!(header_values(&spooled, "List-Unsubscribe").len(), 1);
        assert_eq!(
            verify_dkim(&spooled, &domain).await,
            [DkimResult::Pass, DkimResult::Pass]
        );
    }

    // `news` is bulk by default; the header refuses it.
    let message = incoming(
        &fx.news,
        "letters@news.test",
        &["alice@dest.test", "bob@dest.test"],
        "X-Carteiro-List-Unsubscribe: no\r\n",
    );
    let id = message.id;
    let ids = intake.accept(message).await.expect("accepted");
    assert!(ids.is_empty(), "not split: {ids:?}");
    let spooled = fx.spool.read_body(id).await.expect("spooled");
    assert!(header_values(&spooled, "X-Carteiro-List-Unsubscribe").is_empty());
    assert!(header_values(&spooled, "List-Unsubscribe").is_empty());
}

#[tokio::test]
async fn a_refused_from_domain_records_nothing() {
    let fx = Fixture::new().await;
    let (intake, engine) = fx.intake().await;
    let message = incoming(&fx.shop, "orders@elsewhere.test", &["alice@dest.test"], "");
    let id = message.id;
    match intake.accept(message).await {
        Err(IntakeError::Refused(Refusal::UnownedFrom { domain, .. })) => {
            assert_eq!(domain, "elsewhere.test");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!fx.spool.contains(id));
    assert!(engine.show(id).await.is_none());
    assert!(fx.message(&fx.shop, id).await.is_none());
}

#[tokio::test]
async fn a_spool_that_refuses_gives_a_spool_error_and_records_nothing() {
    let fx = Fixture::with(Options {
        spool_max_size: 1,
        ..Options::default()
    })
    .await;
    let (intake, engine) = fx.intake().await;
    let message = incoming(&fx.shop, "orders@shop.test", &["alice@dest.test"], "");
    let id = message.id;
    match intake.accept(message).await {
        Err(IntakeError::Spool(SpoolError::Full(_))) => {}
        other => panic!("expected a full spool, got {other:?}"),
    }
    assert!(!fx.spool.contains(id));
    assert!(engine.list().await.is_empty(), "nothing queued");
    assert!(fx.message(&fx.shop, id).await.is_none(), "no record");
    assert!(fx.events_of(&fx.shop, EventKind::Received).await.is_empty());
}

#[tokio::test]
async fn delivered_mail_leaves_signed_with_a_verp_return_path() {
    let sink = SmtpSink::builder().starttls(false).start().await;
    let fx = Fixture::with(Options {
        relay: Some(sink.addr()),
        ..Options::default()
    })
    .await;
    let (intake, _engine) = fx.intake().await;
    let message = incoming(&fx.shop, "orders@shop.test", &["alice@dest.test"], "");
    let id = message.id;
    intake.accept(message).await.expect("accepted");
    let delivered = sink
        .wait_for_messages(1, crate::testing::WAIT)
        .await
        .expect("delivered");
    let sent = &delivered[0];
    assert_eq!(sent.rcpt_to, ["alice@dest.test"]);
    // The return path names this message's first recipient.
    assert_eq!(
        fx.tokens.decode_address(Purpose::Bounce, &sent.mail_from),
        Some((id, 0))
    );
    assert!(
        sent.mail_from.ends_with("@bounces.shop.test"),
        "{}",
        sent.mail_from
    );
    let domain = fx.shop_domain().await;
    assert_eq!(
        verify_dkim(&sent.data, &domain).await,
        [DkimResult::Pass, DkimResult::Pass]
    );
    // And the engine's outcome is recorded as a typed event.
    let delivered = eventually("a delivered event", || async {
        fx.events_of(&fx.shop, EventKind::Delivered).await.pop()
    })
    .await;
    assert_eq!(delivered.recipient.as_deref(), Some("alice@dest.test"));
    assert_eq!(delivered.details["attempt"], 1);
    assert_eq!(delivered.details["reply_code"], 250);
    assert!(
        delivered.details.get("class").is_none(),
        "{}",
        delivered.details
    );
}
