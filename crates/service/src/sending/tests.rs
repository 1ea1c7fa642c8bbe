//! The sending policy against a real store: who may send from which
//! domain, the fields it adds, and signatures checked by mail-auth.

use super::*;
use crate::testing::{
    Fixture, HOSTNAME, PUBLIC_URL, SHOP_BOUNCES, SHOP_DOMAIN, dkim_tag, header_names,
    header_values, new_dkim_keys, smtp_body, verify_dkim,
};
use carteiro_mail::verp::{Purpose, TokenKey};
use mail_auth::DkimResult;
use time::format_description::well_known::Rfc2822;

/// A client's header section from `from`, without Message-ID or Date.
fn headers_from(from: &str) -> String {
    format!("From: Shop <{from}>\r\nTo: alice@dest.test\r\nSubject: Your order\r\n")
}

#[tokio::test]
async fn a_from_domain_the_account_does_not_own_is_refused_with_550_5_7_1() {
    let fx = Fixture::new().await;
    // A domain of another account is no better than an unknown one.
    fx.store
        .add_domain("news", "news.test", new_dkim_keys())
        .await
        .expect("domain");
    let policy = fx.policy().await;
    for domain in ["elsewhere.test", "news.test"] {
        let id = MessageId::generate();
        let (body, insert_at) = smtp_body(id, &headers_from(&format!("orders@{domain}")));
        let refusal = policy
            .prepare(&fx.shop, id, body, insert_at, None, None)
            .await
            .err()
            .expect("refused");
        assert_eq!(
            refusal,
            Refusal::UnownedFrom {
                domain: domain.to_owned(),
                account: "shop".to_owned()
            }
        );
        let reply = refusal.smtp_reply();
        assert_eq!((reply.code, reply.status), (550, Some(Status(5, 7, 1))));
        assert!(
            reply
                .text
                .contains(&format!("carteiro domain add shop {domain}")),
            "{reply}"
        );
        assert!(refusal.is_client_error());
        assert_eq!(refusal.field(), "from");
    }
}

#[tokio::test]
async fn a_message_without_from_is_refused() {
    let fx = Fixture::new().await;
    let policy = fx.policy().await;
    let id = MessageId::generate();
    let (body, insert_at) = smtp_body(id, "To: alice@dest.test\r\nSubject: x\r\n");
    let refusal = policy
        .prepare(&fx.shop, id, body, insert_at, None, None)
        .await
        .err()
        .expect("refused");
    assert_eq!(refusal, Refusal::NoFrom);
    assert_eq!(refusal.smtp_reply().code, 550);
}

#[tokio::test]
async fn missing_message_id_and_date_are_added_after_our_received_field() {
    let fx = Fixture::new().await;
    let policy = fx.policy().await;
    let id = MessageId::generate();
    let (body, insert_at) = smtp_body(id, &headers_from("orders@shop.test"));
    let prepared = policy
        .prepare(&fx.shop, id, body, insert_at, None, None)
        .await
        .expect("prepared");
    let out = &prepared.body;
    assert_eq!(
        header_values(out, "Message-ID"),
        [format!("<{id}@{HOSTNAME}>")]
    );
    let dates = header_values(out, "Date");
    assert_eq!(dates.len(), 1, "{dates:?}");
    OffsetDateTime::parse(&dates[0], &Rfc2822).expect("an RFC 5322 date");
    assert_eq!(header_values(out, REFERENCE_HEADER), [id.to_string()]);
    // Signatures first, then our trace field, then what we added, then the
    // client's own fields.
    assert_eq!(
        header_names(out),
        [
            "dkim-signature",
            "dkim-signature",
            "received",
            "x-carteiro-id",
            "message-id",
            "date",
            "from",
            "to",
            "subject"
        ]
    );
    // The summary is of the message as the client wrote it.
    assert_eq!(prepared.summary.message_id, None);
    assert_eq!(prepared.summary.from_domain.as_deref(), Some(SHOP_DOMAIN));
}

#[tokio::test]
async fn a_message_id_and_date_of_the_client_are_kept() {
    let fx = Fixture::new().await;
    let policy = fx.policy().await;
    let id = MessageId::generate();
    let headers = format!(
        "{}Message-ID: <order-42@shop.test>\r\nDate: Thu, 26 Nov 2026 11:00:00 +0000\r\n",
        headers_from("orders@shop.test")
    );
    let (body, insert_at) = smtp_body(id, &headers);
    let prepared = policy
        .prepare(&fx.shop, id, body, insert_at, None, None)
        .await
        .expect("prepared");
    assert_eq!(
        header_values(&prepared.body, "Message-ID"),
        ["<order-42@shop.test>"]
    );
    assert_eq!(
        header_values(&prepared.body, "Date"),
        ["Thu, 26 Nov 2026 11:00:00 +0000"]
    );
}

#[tokio::test]
async fn an_owned_domain_is_signed_with_each_of_its_keys() {
    let fx = Fixture::new().await;
    let policy = fx.policy().await;
    let id = MessageId::generate();
    // The domain's case in From does not matter.
    let (body, insert_at) = smtp_body(id, &headers_from("orders@Shop.Test"));
    let prepared = policy
        .prepare(&fx.shop, id, body, insert_at, None, None)
        .await
        .expect("prepared");
    assert_eq!(prepared.signed_by.as_deref(), Some(SHOP_DOMAIN));
    let signatures = header_values(&prepared.body, "DKIM-Signature");
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    let domain = fx.shop_domain().await;
    let mut selectors: Vec<String> = signatures
        .iter()
        .map(|s| {
            assert_eq!(dkim_tag(s, "d").as_deref(), Some(SHOP_DOMAIN), "{s}");
            dkim_tag(s, "s").expect("selector")
        })
        .collect();
    selectors.sort();
    let mut stored: Vec<String> = domain.keys.iter().map(|k| k.selector.clone()).collect();
    stored.sort();
    assert_eq!(selectors, stored);
    let results = verify_dkim(&prepared.body, &domain).await;
    assert_eq!(results, [DkimResult::Pass, DkimResult::Pass]);
}

#[tokio::test]
async fn bulk_mail_gets_a_one_click_unsubscribe_inside_the_signature() {
    let fx = Fixture::new().await;
    let policy = fx.policy().await;
    let id = MessageId::generate();
    let token = fx.tokens.token(Purpose::Unsubscribe, id, 0);
    let (body, insert_at) = smtp_body(id, &headers_from("orders@shop.test"));
    let prepared = policy
        .prepare(&fx.shop, id, body, insert_at, Some(&token), None)
        .await
        .expect("prepared");
    let out = &prepared.body;
    assert_eq!(
        header_values(out, "List-Unsubscribe"),
        [format!(
            "<{PUBLIC_URL}/u/{token}>, <mailto:u-{token}@{SHOP_BOUNCES}>"
        )]
    );
    assert_eq!(
        header_values(out, "List-Unsubscribe-Post"),
        ["List-Unsubscribe=One-Click"]
    );
    for signature in header_values(out, "DKIM-Signature") {
        let signed = dkim_tag(&signature, "h").expect("h=").to_ascii_lowercase();
        let signed: Vec<&str> = signed.split(':').collect();
        assert!(
            signed.contains(&"list-unsubscribe") && signed.contains(&"list-unsubscribe-post"),
            "{signature}"
        );
    }
    let domain = fx.shop_domain().await;
    assert_eq!(
        verify_dkim(out, &domain).await,
        [DkimResult::Pass, DkimResult::Pass]
    );
    // Covered for real: another recipient's link put in breaks both.
    let other = TokenKey::new(b"another key").token(Purpose::Unsubscribe, id, 0);
    let altered = String::from_utf8(out.to_vec())
        .expect("ascii")
        .replace(&format!("/u/{token}>"), &format!("/u/{other}>"));
    let results = verify_dkim(altered.as_bytes(), &domain).await;
    assert_eq!(results.len(), 2);
    assert!(
        results.iter().all(|r| *r != DkimResult::Pass),
        "{results:?}"
    );
}

#[tokio::test]
async fn a_senders_own_list_unsubscribe_is_left_alone() {
    let fx = Fixture::new().await;
    let policy = fx.policy().await;
    let id = MessageId::generate();
    let headers = format!(
        "{}List-Unsubscribe: <https://shop.test/optout>\r\n",
        headers_from("orders@shop.test")
    );
    let (body, insert_at) = smtp_body(id, &headers);
    let token = fx.tokens.token(Purpose::Unsubscribe, id, 0);
    let prepared = policy
        .prepare(&fx.shop, id, body, insert_at, Some(&token), None)
        .await
        .expect("prepared");
    assert_eq!(
        header_values(&prepared.body, "List-Unsubscribe"),
        ["<https://shop.test/optout>"]
    );
    assert!(header_values(&prepared.body, "List-Unsubscribe-Post").is_empty());
}

#[tokio::test]
async fn an_exempt_account_relays_an_unowned_from_unsigned() {
    let fx = Fixture::new().await;
    let policy = fx.policy().await;
    let id = MessageId::generate();
    let token = fx.tokens.token(Purpose::Unsubscribe, id, 0);
    let (body, insert_at) = smtp_body(id, &headers_from("printer@office.example"));
    let prepared = policy
        .prepare(&fx.default, id, body, insert_at, Some(&token), None)
        .await
        .expect("the default account may");
    assert_eq!(prepared.signed_by, None);
    assert!(header_values(&prepared.body, "DKIM-Signature").is_empty());
    assert_eq!(
        header_values(&prepared.body, "Message-ID"),
        [format!("<{id}@{HOSTNAME}>")]
    );
    // Unsigned bulk mail takes mailto unsubscribes at the host name.
    let list = header_values(&prepared.body, "List-Unsubscribe");
    assert_eq!(list.len(), 1);
    assert!(
        list[0].ends_with(&format!("<mailto:u-{token}@{HOSTNAME}>")),
        "{list:?}"
    );
    // The exemption does not let it sign with another account's domain.
    let id = MessageId::generate();
    let (body, insert_at) = smtp_body(id, &headers_from("orders@shop.test"));
    let prepared = policy
        .prepare(&fx.default, id, body, insert_at, None, None)
        .await
        .expect("relayed");
    assert_eq!(prepared.signed_by, None);
}

#[tokio::test]
async fn a_domain_added_after_start_signs_at_once() {
    let fx = Fixture::new().await;
    let policy = fx.policy().await;
    // As `carteiro domain add` beside the running server would.
    fx.store
        .add_domain("shop", "later.test", new_dkim_keys())
        .await
        .expect("domain");
    let id = MessageId::generate();
    let (body, insert_at) = smtp_body(id, &headers_from("orders@later.test"));
    let prepared = policy
        .prepare(&fx.shop, id, body, insert_at, None, None)
        .await
        .expect("the new domain is found");
    assert_eq!(prepared.signed_by.as_deref(), Some("later.test"));
}
