//! Opens and clicks recorded against a real store, and the plan that puts
//! the pixel and tracked links into a message.

use super::*;
use crate::testing::{Fixture, PUBLIC_URL};
use carteiro_store::EventKind;
use serde_json::json;

const THUNDERBIRD: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.3.0";

fn tracker(fx: &Fixture) -> Tracker {
    let clock: Arc<dyn Clock> = fx.clock.clone();
    Tracker::new(
        Arc::clone(&fx.tokens),
        fx.store.clone(),
        fx.events.clone(),
        clock,
    )
}

#[tokio::test]
async fn a_genuine_open_is_recorded_unique_once() {
    let fx = Fixture::new().await;
    let tracker = tracker(&fx);
    let id = fx
        .record_message(&fx.shop, &["alice@dest.test", "bob@dest.test"])
        .await;
    let token = fx.tokens.token(Purpose::Open, id, 1);
    let first_at = fx.clock.now_millis() as i64;
    tracker.opened(&token, Some(THUNDERBIRD)).await;
    fx.clock.advance(60_000);
    tracker.opened(&token, Some("GoogleImageProxy")).await;

    let opened = fx.events_of(&fx.shop, EventKind::Opened).await;
    assert_eq!(opened.len(), 2, "{opened:?}");
    for event in &opened {
        assert_eq!(event.message_id, id.to_string());
        assert_eq!(event.recipient.as_deref(), Some("bob@dest.test"));
    }
    assert_eq!(opened[0].timestamp_ms, first_at);
    assert_eq!(opened[1].timestamp_ms, first_at + 60_000);
    assert_eq!(
        opened[0].details,
        json!({"user_agent": THUNDERBIRD, "unique": true, "machine": false})
    );
    assert_eq!(
        opened[1].details,
        json!({"user_agent": "GoogleImageProxy", "unique": false, "machine": true})
    );
    // Another recipient's first open is its own.
    tracker
        .opened(&fx.tokens.token(Purpose::Open, id, 0), Some(THUNDERBIRD))
        .await;
    let opened = fx.events_of(&fx.shop, EventKind::Opened).await;
    assert_eq!(opened.len(), 3);
    assert_eq!(opened[2].recipient.as_deref(), Some("alice@dest.test"));
    assert_eq!(opened[2].details["unique"], true);
}

#[tokio::test]
async fn a_forged_or_foreign_open_token_records_nothing() {
    let fx = Fixture::new().await;
    let tracker = tracker(&fx);
    let id = fx.record_message(&fx.shop, &["alice@dest.test"]).await;
    let genuine = fx.tokens.token(Purpose::Open, id, 0);
    let mut forged: Vec<char> = genuine.chars().collect();
    forged[3] = if forged[3] == '0' { '1' } else { '0' };
    let forged: String = forged.into_iter().collect();
    for token in [
        forged,
        // Another purpose's token for the same recipient.
        fx.tokens.token(Purpose::Unsubscribe, id, 0),
        // Another installation's key.
        TokenKey::new(b"elsewhere").token(Purpose::Open, id, 0),
        // Genuine, but no such message recorded.
        fx.tokens.token(Purpose::Open, MessageId::generate(), 0),
        "not-a-token".to_owned(),
    ] {
        tracker.opened(&token, Some(THUNDERBIRD)).await;
    }
    assert!(fx.events_of(&fx.shop, EventKind::Opened).await.is_empty());
}

#[tokio::test]
async fn a_click_returns_its_url_and_is_recorded() {
    let fx = Fixture::new().await;
    let tracker = tracker(&fx);
    let id = fx.record_message(&fx.shop, &["alice@dest.test"]).await;
    let url = "https://shop.test/orders/42?utm_source=mail";
    let token = fx.tokens.click_token(id, 0, url);
    // The target alone records nothing.
    assert_eq!(tracker.click_target(&token).as_deref(), Some(url));
    assert!(fx.events_of(&fx.shop, EventKind::Clicked).await.is_empty());

    assert_eq!(
        tracker.clicked(&token, Some(THUNDERBIRD)).await.as_deref(),
        Some(url)
    );
    assert_eq!(tracker.clicked(&token, None).await.as_deref(), Some(url));
    let clicked = fx.events_of(&fx.shop, EventKind::Clicked).await;
    assert_eq!(clicked.len(), 2);
    assert_eq!(clicked[0].recipient.as_deref(), Some("alice@dest.test"));
    assert_eq!(
        clicked[0].details,
        json!({"user_agent": THUNDERBIRD, "unique": true, "url": url})
    );
    assert_eq!(
        clicked[1].details,
        json!({"user_agent": null, "unique": false, "url": url})
    );

    // A genuine click on a message without a record still redirects.
    let orphan = fx.tokens.click_token(MessageId::generate(), 0, url);
    assert_eq!(tracker.clicked(&orphan, None).await.as_deref(), Some(url));
    assert_eq!(fx.events_of(&fx.shop, EventKind::Clicked).await.len(), 2);
}

#[tokio::test]
async fn an_altered_click_url_is_no_redirect() {
    let fx = Fixture::new().await;
    let tracker = tracker(&fx);
    let id = fx.record_message(&fx.shop, &["alice@dest.test"]).await;
    let token = fx.tokens.click_token(id, 0, "https://shop.test/");
    let (head, _) = token.split_once('.').expect("TOKEN.URL");
    // The evil URL in base64url, under the genuine MAC of another URL.
    let altered = format!("{head}.aHR0cHM6Ly9ldmlsLmV4YW1wbGUv");
    assert_eq!(tracker.click_target(&altered), None);
    assert_eq!(tracker.clicked(&altered, None).await, None);
    assert!(fx.events_of(&fx.shop, EventKind::Clicked).await.is_empty());
}

#[test]
fn the_plan_puts_a_pixel_and_tracked_links_that_decode_back() {
    let tokens = Arc::new(TokenKey::new(b"plan key"));
    let id = MessageId::generate();
    let plan = TrackingPlan {
        tokens: Arc::clone(&tokens),
        public_url: PUBLIC_URL.to_owned(),
        id,
        rcpt: 0,
        opens: true,
        clicks: true,
    };
    let message = b"From: orders@shop.test\r\nContent-Type: text/html\r\n\r\n\
        <html><body><a href=\"https://shop.test/sale\">Sale</a> \
        <a href=\"mailto:help@shop.test\">Help</a></body></html>\r\n";
    let tracked = String::from_utf8(plan.apply(message).expect("changed")).expect("utf-8");
    let pixel = plan.pixel_url();
    assert!(tracked.contains(&pixel), "{tracked}");
    let token = pixel
        .strip_prefix(&format!("{PUBLIC_URL}/t/o/"))
        .expect("pixel URL");
    assert_eq!(tokens.decode(Purpose::Open, token), Some((id, 0)));
    let link = plan.link_url("https://shop.test/sale");
    assert!(tracked.contains(&link), "{tracked}");
    let token = link
        .strip_prefix(&format!("{PUBLIC_URL}/t/c/"))
        .expect("click URL");
    assert_eq!(
        tokens.decode_click(token),
        Some((id, 0, "https://shop.test/sale".to_owned()))
    );
    assert!(
        tracked.contains("href=\"mailto:help@shop.test\""),
        "{tracked}"
    );
    // Plain text has nothing to track.
    assert_eq!(
        plan.apply(b"From: orders@shop.test\r\nContent-Type: text/plain\r\n\r\nhi\r\n"),
        None
    );
}

#[test]
fn opens_by_proxies_and_prefetchers_are_machine_opens() {
    for agent in [
        None,
        Some(""),
        Some("   "),
        Some(
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        ),
        Some("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"),
        Some("Mozilla/5.0"),
        Some(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
        ),
        Some("Mimecast Link Scanner"),
    ] {
        assert!(is_machine_open(agent), "{agent:?}");
    }
    for agent in [
        THUNDERBIRD,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    ] {
        assert!(!is_machine_open(Some(agent)), "{agent}");
    }
}
