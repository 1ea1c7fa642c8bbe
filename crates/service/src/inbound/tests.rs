//! Mail for Carteiro's own addresses, with reports from the bounce corpus
//! of `carteiro-mail` sent back to the VERP address of a recorded message.

use super::*;
use crate::testing::{
    ARF_AOL_ABUSE, Fixture, HOSTNAME, POSTFIX_DELAYED, POSTFIX_MAILBOX_FULL, POSTFIX_UNKNOWN_USER,
    SHOP_BOUNCES, report_to,
};
use carteiro_store::SuppressionReason;
use serde_json::json;

/// `token` with one character changed: no longer genuine.
fn forged(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
    chars.into_iter().collect()
}

/// The suppression entry of `address` on `account_id`'s list, if any.
async fn entry(fx: &Fixture, account_id: i64, address: &str) -> Option<SuppressionReason> {
    fx.store
        .suppression(account_id, address)
        .await
        .expect("lookup")
        .map(|s| s.reason)
}

#[tokio::test]
async fn our_addresses_are_told_apart_from_everyone_elses() {
    let fx = Fixture::new().await;
    let inbound = fx.inbound().await;
    let id = MessageId::generate();
    let verp = fx.tokens.address(Purpose::Bounce, id, 0, SHOP_BOUNCES);
    let mailto = fx.tokens.address(Purpose::Unsubscribe, id, 0, SHOP_BOUNCES);
    for ours in [
        verp.clone(),
        verp.to_ascii_uppercase(),
        mailto,
        format!("complaints@{HOSTNAME}"),
        "Complaints@MX.Carteiro.Test".to_owned(),
        // Bounces may come to the host name too.
        fx.tokens.address(Purpose::Bounce, id, 0, HOSTNAME),
    ] {
        assert_eq!(inbound.local_recipient(&ours), Some(Ok(())), "{ours}");
    }
    // At our domains, but nobody: unknown local parts and forged tokens.
    let token = fx.tokens.token(Purpose::Bounce, id, 0);
    for nobody in [
        format!("nobody@{HOSTNAME}"),
        format!("postmaster@{SHOP_BOUNCES}"),
        format!("b-{}@{SHOP_BOUNCES}", forged(&token)),
        // A bounce token is no unsubscribe token.
        format!("u-{token}@{SHOP_BOUNCES}"),
    ] {
        assert_eq!(
            inbound.local_recipient(&nobody),
            Some(Err(Reply::NO_SUCH_USER)),
            "{nobody}"
        );
    }
    // Not ours at all: the relay policy decides.
    for stranger in [
        "alice@dest.test".to_owned(),
        // The sending domain itself, and another's return-path domain.
        "complaints@shop.test".to_owned(),
        verp.replace(SHOP_BOUNCES, "bounces.elsewhere.test"),
        "not an address".to_owned(),
    ] {
        assert_eq!(inbound.local_recipient(&stranger), None, "{stranger}");
    }
}

#[tokio::test]
async fn a_dsn_to_a_verp_address_records_an_async_bounce_and_suppresses() {
    let fx = Fixture::new().await;
    let inbound = fx.inbound().await;
    let id = fx
        .record_message(&fx.shop, &["carol@example.net", "alice@example.net"])
        .await;
    let verp = fx.tokens.address(Purpose::Bounce, id, 1, SHOP_BOUNCES);
    let dsn = report_to(
        POSTFIX_UNKNOWN_USER,
        "b+01j9z3k7q2x8w4@bounces.shop.test",
        &verp,
    );
    inbound
        .process(std::slice::from_ref(&verp), dsn.as_bytes())
        .await;

    let bounced = fx.events_of(&fx.shop, EventKind::Bounced).await;
    assert_eq!(bounced.len(), 1, "{bounced:?}");
    assert_eq!(bounced[0].message_id, id.to_string());
    assert_eq!(bounced[0].recipient.as_deref(), Some("alice@example.net"));
    assert_eq!(bounced[0].timestamp_ms, fx.clock.now_millis() as i64);
    assert_eq!(
        bounced[0].details,
        json!({
            "async": true,
            "class": "unknown_user",
            "reason": "userunknown",
            "status": "5.1.1",
            "reply": "550 5.1.1 <alice@example.net>: Recipient address rejected: \
                      User unknown in local recipient table",
            "remote_host": "mx1.example.net",
            "reporting_mta": "mail.example.net"
        })
    );
    assert!(
        fx.suppressions
            .is_suppressed(fx.shop.id, "alice@example.net")
    );
    assert!(
        !fx.suppressions
            .is_suppressed(fx.shop.id, "carol@example.net")
    );
    let stored = fx
        .store
        .suppression(fx.shop.id, "alice@example.net")
        .await
        .expect("lookup")
        .expect("listed");
    assert_eq!(stored.reason, SuppressionReason::HardBounce);
    assert_eq!(stored.source_message_id, Some(id.to_string()));
    // The recipient's state follows.
    let record = fx.message(&fx.shop, id).await.expect("recorded");
    assert_eq!(record.recipients[1].state, "bounced");
}

#[tokio::test]
async fn a_soft_bounce_is_recorded_without_suppressing_and_a_delay_is_not_recorded() {
    let fx = Fixture::new().await;
    let inbound = fx.inbound().await;
    let full = fx.record_message(&fx.shop, &["bob@example.org"]).await;
    let verp = fx.tokens.address(Purpose::Bounce, full, 0, SHOP_BOUNCES);
    let dsn = report_to(
        POSTFIX_MAILBOX_FULL,
        "b+01j9z4a1b2c3d4@bounces.shop.test",
        &verp,
    );
    inbound
        .process(std::slice::from_ref(&verp), dsn.as_bytes())
        .await;
    let bounced = fx.events_of(&fx.shop, EventKind::Bounced).await;
    assert_eq!(bounced.len(), 1);
    assert_eq!(bounced[0].details["class"], "mailbox_full");
    assert_eq!(entry(&fx, fx.shop.id, "bob@example.org").await, None);
    assert!(!fx.suppressions.is_suppressed(fx.shop.id, "bob@example.org"));

    let delayed = fx.record_message(&fx.shop, &["frank@example.org"]).await;
    let verp = fx.tokens.address(Purpose::Bounce, delayed, 0, SHOP_BOUNCES);
    let dsn = report_to(POSTFIX_DELAYED, "b+01j9z7bbbb0002@bounces.shop.test", &verp);
    inbound
        .process(std::slice::from_ref(&verp), dsn.as_bytes())
        .await;
    let record = fx.message(&fx.shop, delayed).await.expect("recorded");
    assert!(
        record.events.is_empty(),
        "a delay is no bounce: {:?}",
        record.events
    );
}

/// The AOL report about `carla@aol.com`, as if it were about `return_path`.
fn aol_complaint(return_path: &str) -> String {
    report_to(
        ARF_AOL_ABUSE,
        "b+01ja0sdddd001a@bounces.shop.test",
        return_path,
    )
}

#[tokio::test]
async fn an_arf_complaint_to_the_complaints_address_records_complained() {
    let fx = Fixture::new().await;
    let inbound = fx.inbound().await;
    let id = fx
        .record_message(&fx.shop, &["carla@aol.com", "dora@aol.com"])
        .await;
    let verp = fx.tokens.address(Purpose::Bounce, id, 0, SHOP_BOUNCES);
    inbound
        .process(
            &[format!("complaints@{HOSTNAME}")],
            aol_complaint(&verp).as_bytes(),
        )
        .await;
    let complained = fx.events_of(&fx.shop, EventKind::Complained).await;
    assert_eq!(complained.len(), 1, "{complained:?}");
    assert_eq!(complained[0].message_id, id.to_string());
    assert_eq!(complained[0].recipient.as_deref(), Some("carla@aol.com"));
    assert_eq!(
        complained[0].details,
        json!({"feedback_type": "abuse", "user_agent": "AOL SComp", "reporting_mta": null})
    );
    assert_eq!(
        entry(&fx, fx.shop.id, "carla@aol.com").await,
        Some(SuppressionReason::Complaint)
    );
    assert!(fx.suppressions.is_suppressed(fx.shop.id, "carla@aol.com"));
    assert!(!fx.suppressions.is_suppressed(fx.shop.id, "dora@aol.com"));
}

#[tokio::test]
async fn a_complaint_without_our_return_path_is_traced_through_our_reference() {
    let fx = Fixture::new().await;
    let inbound = fx.inbound().await;
    let id = fx.record_message(&fx.shop, &["Carla@AOL.com"]).await;
    // The provider rewrote the return path; our X-Carteiro-Id is left.
    let report = aol_complaint("bounce@provider.example").replace(
        "X-Carteiro-Id: 01JA0SDDDD001A",
        &format!("X-Carteiro-Id: {id}"),
    );
    inbound
        .process(&[format!("complaints@{HOSTNAME}")], report.as_bytes())
        .await;
    let complained = fx.events_of(&fx.shop, EventKind::Complained).await;
    assert_eq!(complained.len(), 1, "{complained:?}");
    assert_eq!(complained[0].recipient.as_deref(), Some("Carla@AOL.com"));

    // With several recipients and none named, nobody is blamed.
    let shared = fx
        .record_message(&fx.shop, &["erin@aol.com", "fred@aol.com"])
        .await;
    let report = aol_complaint("bounce@provider.example")
        .replace(
            "X-Carteiro-Id: 01JA0SDDDD001A",
            &format!("X-Carteiro-Id: {shared}"),
        )
        .replace("Original-Rcpt-To: <carla@aol.com>\r\n", "");
    inbound
        .process(&[format!("complaints@{HOSTNAME}")], report.as_bytes())
        .await;
    let record = fx.message(&fx.shop, shared).await.expect("recorded");
    assert!(record.events.is_empty(), "{:?}", record.events);
}

#[tokio::test]
async fn a_mailto_unsubscribe_records_unsubscribed() {
    let fx = Fixture::new().await;
    let inbound = fx.inbound().await;
    let id = fx.record_message(&fx.shop, &["gina@dest.test"]).await;
    let mailto = fx.tokens.address(Purpose::Unsubscribe, id, 0, SHOP_BOUNCES);
    // Whatever the message says: the address is the request.
    inbound
        .process(
            std::slice::from_ref(&mailto),
            b"From: gina@dest.test\r\nSubject: unsubscribe\r\n\r\n\r\n",
        )
        .await;
    let unsubscribed = fx.events_of(&fx.shop, EventKind::Unsubscribed).await;
    assert_eq!(unsubscribed.len(), 1);
    assert_eq!(unsubscribed[0].recipient.as_deref(), Some("gina@dest.test"));
    assert_eq!(unsubscribed[0].details, json!({"method": "mailto"}));
    assert_eq!(
        entry(&fx, fx.shop.id, "gina@dest.test").await,
        Some(SuppressionReason::Unsubscribe)
    );
}

#[tokio::test]
async fn a_one_click_token_names_its_recipient_and_only_the_post_unsubscribes() {
    let fx = Fixture::new().await;
    let inbound = fx.inbound().await;
    let id = fx
        .record_message(&fx.shop, &["hank@dest.test", "ida@dest.test"])
        .await;
    let token = fx.tokens.token(Purpose::Unsubscribe, id, 1);
    assert_eq!(
        inbound.unsubscribe_target(&token).await.as_deref(),
        Some("ida@dest.test")
    );
    assert!(
        fx.events_of(&fx.shop, EventKind::Unsubscribed)
            .await
            .is_empty()
    );
    assert!(!fx.suppressions.is_suppressed(fx.shop.id, "ida@dest.test"));
    assert_eq!(
        inbound
            .unsubscribe_token(&token)
            .await
            .expect("stored")
            .as_deref(),
        Some("ida@dest.test")
    );
    let unsubscribed = fx.events_of(&fx.shop, EventKind::Unsubscribed).await;
    assert_eq!(unsubscribed.len(), 1);
    assert_eq!(unsubscribed[0].details, json!({"method": "one-click"}));
    assert!(fx.suppressions.is_suppressed(fx.shop.id, "ida@dest.test"));
}

#[tokio::test]
async fn a_forged_or_unknown_token_names_no_message() {
    let fx = Fixture::new().await;
    let inbound = fx.inbound().await;
    let id = fx.record_message(&fx.shop, &["jane@dest.test"]).await;
    let bounce = fx.tokens.token(Purpose::Bounce, id, 0);
    let unsubscribe = fx.tokens.token(Purpose::Unsubscribe, id, 0);
    let dsn = |to: &str| {
        report_to(
            POSTFIX_UNKNOWN_USER,
            "b+01j9z3k7q2x8w4@bounces.shop.test",
            to,
        )
    };

    // Forged: not one of our addresses, and processing it does nothing.
    let forged_bounce = format!("b-{}@{SHOP_BOUNCES}", forged(&bounce));
    let forged_mailto = format!("u-{}@{SHOP_BOUNCES}", forged(&unsubscribe));
    for address in [&forged_bounce, &forged_mailto] {
        assert_eq!(
            inbound.local_recipient(address),
            Some(Err(Reply::NO_SUCH_USER))
        );
    }
    inbound
        .process(
            &[forged_bounce.clone(), forged_mailto],
            dsn(&forged_bounce).as_bytes(),
        )
        .await;
    assert_eq!(
        inbound.unsubscribe_target(&forged(&unsubscribe)).await,
        None
    );
    assert_eq!(
        inbound
            .unsubscribe_token(&forged(&unsubscribe))
            .await
            .expect("no store error"),
        None
    );
    // A token from another key is as good as forged.
    let other = TokenKey::new(b"another installation");
    assert_eq!(
        inbound
            .unsubscribe_token(&other.token(Purpose::Unsubscribe, id, 0))
            .await
            .expect("no store error"),
        None
    );

    // Genuine, but for a message that has no record (or no such
    // recipient): accepted at RCPT, then nothing to record.
    let unknown = MessageId::generate();
    let stray = fx.tokens.address(Purpose::Bounce, unknown, 0, SHOP_BOUNCES);
    let beyond = fx.tokens.address(Purpose::Bounce, id, 7, SHOP_BOUNCES);
    for address in [&stray, &beyond] {
        assert_eq!(inbound.local_recipient(address), Some(Ok(())));
        inbound
            .process(std::slice::from_ref(address), dsn(address).as_bytes())
            .await;
    }
    let token = fx.tokens.token(Purpose::Unsubscribe, unknown, 0);
    assert_eq!(
        inbound
            .unsubscribe_token(&token)
            .await
            .expect("no store error"),
        None
    );

    let record = fx.message(&fx.shop, id).await.expect("recorded");
    assert!(record.events.is_empty(), "{:?}", record.events);
    assert!(
        fx.store
            .all_suppressions()
            .await
            .expect("suppressions")
            .is_empty()
    );
}
