//! The SMTP server's handler against a real store, intake and inbound:
//! logins, our own addresses, and what a finished message becomes.

use super::*;
use crate::testing::{
    ARF_AOL_ABUSE, Fixture, HOSTNAME, Options, POSTFIX_UNKNOWN_USER, SHOP_BOUNCES, header_values,
    received_field, report_to,
};
use carteiro_mail::verp::Purpose;
use carteiro_mail::{Envelope, MessageId, Recipient, Status};
use carteiro_smtp_server::Role;
use carteiro_store::EventKind;
use serde_json::json;
use std::time::SystemTime;

const PASSWORD: &str = "correct horse battery staple";

async fn handler(fx: &Fixture) -> (SmtpHandler, carteiro_delivery::engine::EngineHandle) {
    let (intake, engine) = fx.intake().await;
    let handler = SmtpHandler::new(
        fx.store.clone(),
        intake,
        Arc::new(fx.inbound().await),
        fx.default.clone(),
    );
    (handler, engine)
}

/// A finished message from a stranger on the relay listener (or a trusted
/// one: `account` is whoever the session decided owns it).
fn finished(
    account: &AccountRef,
    sender: &str,
    recipients: &[&str],
    content: &str,
) -> IncomingMessage {
    let id = MessageId::generate();
    let received = received_field(id);
    let mut envelope = Envelope::new(sender);
    envelope.recipients = recipients.iter().map(|r| Recipient::new(*r)).collect();
    IncomingMessage {
        id,
        account: account.clone(),
        envelope,
        body: format!("{received}{content}").into(),
        trace_len: received.len(),
        client_ip: "192.0.2.20".parse().expect("ip"),
        helo: "mail.example.net".to_owned(),
        auth_user: None,
        tls: false,
        role: Role::Relay,
        received_at: SystemTime::now(),
    }
}

#[tokio::test]
async fn a_stored_credential_logs_in_and_a_wrong_password_does_not() {
    let fx = Fixture::new().await;
    let (handler, _engine) = handler(&fx).await;
    fx.store
        .add_credential("shop", "shop-app", PASSWORD)
        .await
        .expect("credential");
    assert_eq!(
        handler.authenticate("shop-app", PASSWORD).await,
        AuthOutcome::Accepted(fx.shop.clone())
    );
    // Usernames ignore case, as the store keeps them.
    assert_eq!(
        handler.authenticate("Shop-App", PASSWORD).await,
        AuthOutcome::Accepted(fx.shop.clone())
    );
    // A remembered login does not let another password in.
    assert_eq!(
        handler
            .authenticate("shop-app", "correct horse battery stapler")
            .await,
        AuthOutcome::Rejected
    );
    assert_eq!(
        handler.authenticate("nobody", PASSWORD).await,
        AuthOutcome::Rejected
    );
    assert_eq!(handler.authenticate("", "").await, AuthOutcome::Rejected);
}

#[tokio::test]
async fn a_verified_login_is_remembered_for_a_while() {
    let fx = Fixture::new().await;
    let (handler, _engine) = handler(&fx).await;
    fx.store
        .add_credential("shop", "shop-app", PASSWORD)
        .await
        .expect("credential");
    assert_eq!(
        handler.authenticate("shop-app", PASSWORD).await,
        AuthOutcome::Accepted(fx.shop.clone())
    );
    // Removed beside the server: the cached login holds until it expires
    // (AUTH_CACHE_TTL), sparing argon2 on every connection.
    assert!(
        fx.store
            .remove_credential("shop-app")
            .await
            .expect("removed")
    );
    assert_eq!(
        handler.authenticate("shop-app", PASSWORD).await,
        AuthOutcome::Accepted(fx.shop.clone())
    );
    // A handler that never saw it asks the store, which says no.
    let (fresh, _engine) = self::handler(&fx).await;
    assert_eq!(
        fresh.authenticate("shop-app", PASSWORD).await,
        AuthOutcome::Rejected
    );
}

#[tokio::test]
async fn the_handler_answers_for_our_addresses_and_the_default_account() {
    let fx = Fixture::new().await;
    let (handler, _engine) = handler(&fx).await;
    assert_eq!(handler.default_account(), Some(fx.default.clone()));
    assert_eq!(
        handler.local_recipient(&format!("complaints@{HOSTNAME}")),
        Some(Ok(()))
    );
    assert_eq!(
        handler.local_recipient(&format!("nobody@{HOSTNAME}")),
        Some(Err(Reply::NO_SUCH_USER))
    );
    assert_eq!(handler.local_recipient("alice@dest.test"), None);
}

#[tokio::test]
async fn local_and_remote_recipients_of_one_message_part_ways() {
    let fx = Fixture::new().await;
    let (handler, engine) = handler(&fx).await;
    let original = fx.record_message(&fx.shop, &["alice@example.net"]).await;
    let verp = fx
        .tokens
        .address(Purpose::Bounce, original, 0, SHOP_BOUNCES);
    let dsn = report_to(
        POSTFIX_UNKNOWN_USER,
        "b+01j9z3k7q2x8w4@bounces.shop.test",
        &verp,
    );
    // A bounce that a trusted host also copies to a remote address.
    let message = finished(&fx.default, "", &[&verp, "carol@dest.test"], &dsn);
    let id = message.id;
    handler.accept_message(message).await.expect("250");

    // Our address: processed as a bounce of the original.
    let bounced = fx.events_of(&fx.shop, EventKind::Bounced).await;
    assert_eq!(bounced.len(), 1, "{bounced:?}");
    assert_eq!(bounced[0].message_id, original.to_string());
    assert!(
        fx.suppressions
            .is_suppressed(fx.shop.id, "alice@example.net")
    );

    // The remote one: spooled, queued and recorded without our address.
    let entry = engine.show(id).await.expect("queued");
    let queued: Vec<&str> = entry
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(queued, ["carol@dest.test"]);
    let spooled = fx.spool.read_body(id).await.expect("spooled");
    assert!(header_values(&spooled, "DKIM-Signature").is_empty());
    let record = fx.message(&fx.default, id).await.expect("recorded");
    let recipients: Vec<&str> = record
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(recipients, ["carol@dest.test"]);
    let received: Vec<_> = record
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Received)
        .collect();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].recipient.as_deref(), Some("carol@dest.test"));
    assert_eq!(
        received[0].details,
        json!({
            "client_ip": "192.0.2.20", "helo": "mail.example.net", "tls": false,
            "auth_user": null, "listener": "relay", "source": "smtp",
            "size": spooled.len(), "dkim_domain": null
        })
    );
}

#[tokio::test]
async fn mail_only_for_our_addresses_is_processed_and_never_spooled() {
    let fx = Fixture::new().await;
    let (handler, engine) = handler(&fx).await;
    let original = fx.record_message(&fx.shop, &["carla@aol.com"]).await;
    let verp = fx
        .tokens
        .address(Purpose::Bounce, original, 0, SHOP_BOUNCES);
    let report = report_to(ARF_AOL_ABUSE, "b+01ja0sdddd001a@bounces.shop.test", &verp);
    let message = finished(
        &fx.default,
        "scomp@aol.net",
        &[&format!("complaints@{HOSTNAME}")],
        &report,
    );
    let id = message.id;
    handler.accept_message(message).await.expect("250");
    let complained = fx.events_of(&fx.shop, EventKind::Complained).await;
    assert_eq!(complained.len(), 1);
    assert_eq!(complained[0].recipient.as_deref(), Some("carla@aol.com"));
    assert!(!fx.spool.contains(id), "never spooled");
    assert!(engine.show(id).await.is_none(), "never queued");
    assert!(fx.message(&fx.default, id).await.is_none(), "no record");
}

#[tokio::test]
async fn refusals_become_smtp_replies() {
    let fx = Fixture::new().await;
    let (handler, _engine) = handler(&fx).await;
    let message = finished(
        &fx.shop,
        "orders@elsewhere.test",
        &["alice@dest.test"],
        "From: orders@elsewhere.test\r\nSubject: hi\r\n\r\nhi\r\n",
    );
    let reply = handler.accept_message(message).await.expect_err("refused");
    assert_eq!((reply.code, reply.status), (550, Some(Status(5, 7, 1))));

    let full = Fixture::with(Options {
        spool_max_size: 1,
        ..Options::default()
    })
    .await;
    let (handler, _engine) = self::handler(&full).await;
    let message = finished(
        &full.shop,
        "orders@shop.test",
        &["alice@dest.test"],
        "From: orders@shop.test\r\nSubject: hi\r\n\r\nhi\r\n",
    );
    assert_eq!(
        handler.accept_message(message).await,
        Err(Reply::SPOOL_ERROR)
    );
}
