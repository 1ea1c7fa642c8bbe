//! Open and click tracking end to end: an HTML message sent through the API
//! with tracking on arrives (one message per recipient) with a pixel and
//! its links pointed under `public_url`, `mailto:` untouched, DKIM still
//! verifying; fetching the pixel and a link makes `opened` and `clicked`
//! events (the first of each marked unique), the link redirects to the
//! original URL, and a tampered link is a 404, not a redirect. Account
//! defaults from `[tracking]` apply, and a message can refuse them.
//!
//! The pixels are fetched by a person's agent more than a second after
//! delivery (a fetch sooner is a scanner's, a machine open), so the opens
//! here are a person's.

mod common;

use carteiro_service::tracking::PREFETCH_WINDOW_MS;
use common::dkim::{dkimpy_verify, records};
use common::http::{Answer, send_message, sending_account, wait_event, wait_events};
use common::{Server, Setup, python_json, run};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

/// Names the message files handed to Python.
static FILES: AtomicUsize = AtomicUsize::new(0);

const ORDER_URL: &str = "https://shop.test/order?id=42&x=1";

/// A server routing everything to `sink`, with account `shop` owning
/// `shop.test`, and `extra` configuration. Returns the server and a key.
async fn shop(sink: &carteiro_testkit::SmtpSink, extra: &str) -> (Server, String) {
    let server = Setup::new()
        .route(&["*"], sink.addr())
        .extra(extra)
        .start()
        .await;
    let key = sending_account(&server, "shop", "shop.test").await;
    (server, key)
}

/// The message ids of the recipients of an API answer, in order.
fn message_ids(answer: &Answer) -> Vec<String> {
    answer.body["recipients"]
        .as_array()
        .expect("recipients")
        .iter()
        .map(|r| {
            let id = r["id"].as_str().expect("a recipient id");
            id.rsplit_once('-').expect("<id>-<index>").0.to_string()
        })
        .collect()
}

/// An HTML message to `to` in short lines; `greeting` decides its transfer
/// encoding (mail-builder writes short ASCII lines as they are, "Olá" as
/// quoted-printable).
fn html_request(to: &[&str], greeting: &str) -> Value {
    json!({
        "from": "Shop <orders@shop.test>",
        "to": to,
        "subject": "Your order",
        "text": "See https://shop.test/order",
        "html": format!("<html><body><p>{greeting}</p>\r\n\
                 <p><a href=\"https://shop.test/order?id=42&amp;x=1\">Your order</a></p>\r\n\
                 <p><a href=\"mailto:help@shop.test\">Write to us</a></p>\r\n\
                 </body></html>"),
    })
}

/// The leaf parts of `message` as Python's email package reads them:
/// content type, transfer encoding, decoded text.
async fn parts(server: &Server, message: &[u8]) -> Vec<(String, String, String)> {
    let file = server
        .dir
        .path()
        .join(format!("msg-{}.eml", FILES.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&file, message).expect("write message");
    let parsed = python_json(&format!(
        r#"
import email, email.policy
message = email.message_from_bytes(open({path:?}, "rb").read(), policy=email.policy.default)
done([[p.get_content_type(), str(p.get("Content-Transfer-Encoding", "")), p.get_content()]
      for p in message.walk() if not p.is_multipart()])
"#,
        path = file.display().to_string()
    ))
    .await;
    parsed
        .as_array()
        .expect("parts")
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap_or_default().to_string(),
                p[1].as_str().unwrap_or_default().to_string(),
                p[2].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Every value of attribute `name` (`href`, `src`) in `html`, in order.
fn attribute_values(html: &str, name: &str) -> Vec<String> {
    let marker = format!("{name}=\"");
    html.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            rest[..rest.find('"').unwrap_or(rest.len())].to_string()
        })
        .collect()
}

/// Waits until the delivery of message `id` is older than the prefetch
/// window, polling the clock: a pixel fetched sooner is counted as a
/// scanner's, whatever its agent.
async fn wait_past_prefetch_window(server: &Server, key: &str, id: &str) {
    let message = wait_event(server, key, id, "delivered").await;
    let delivered = message["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["type"] == "delivered"))
        .and_then(|e| e["timestamp"].as_str())
        .unwrap_or_else(|| panic!("no delivered event: {message}"));
    let delivered_ms = OffsetDateTime::parse(delivered, &Rfc3339)
        .map(|t| t.unix_timestamp_nanos() / 1_000_000)
        .unwrap_or_else(|e| panic!("{delivered}: {e}"));
    let now_ms = || OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let deadline = Instant::now() + Duration::from_secs(10);
    while now_ms() - delivered_ms <= i128::from(PREFETCH_WINDOW_MS) {
        assert!(
            Instant::now() < deadline,
            "{id}: delivered at {delivered}, still within the window"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `curl` a public URL: `(status, content type, redirect target, body length)`.
async fn fetch(url: &str) -> (u16, String, String, usize) {
    let out = run(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-A",
            "TrackTest/1.0",
            "-w",
            "%{http_code}\n%{content_type}\n%{redirect_url}\n%{size_download}",
            url,
        ],
        None,
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let fields: Vec<&str> = text.split('\n').collect();
    assert_eq!(fields.len(), 4, "{text}");
    (
        fields[0].parse().unwrap_or(0),
        fields[1].to_string(),
        fields[2].to_string(),
        fields[3].parse().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_mail_gets_a_pixel_and_tracked_links_that_record_and_redirect() {
    let sink = common::sink().await;
    let (mut server, key) = shop(&sink, "").await;
    let mut request = html_request(&["alice@dest.test", "bob@dest.test"], "Olá!");
    request["track_opens"] = json!(true);
    request["track_clicks"] = json!(true);
    let answer = send_message(&server, &key, request).await;
    // Tracked mail is one message per recipient: each pixel names its own.
    let ids = message_ids(&answer);
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "{}", answer.body);

    let delivered = common::wait_rcpts(&sink, 2).await;
    let dkim = records(&server, "shop.test").await;
    let base = format!("http://{}", server.http);
    let mut pixels = Vec::new();
    let mut links = Vec::new();
    for rcpt in ["alice@dest.test", "bob@dest.test"] {
        let message = delivered
            .iter()
            .find(|m| m.rcpt_to == [rcpt])
            .unwrap_or_else(|| panic!("nothing delivered to {rcpt}"));
        // Rewriting happened before signing: every signature verifies.
        let verified = dkimpy_verify(&message.data, &dkim).await;
        assert!(
            !verified.is_empty() && verified.iter().all(|&ok| ok),
            "{verified:?}"
        );
        let parts = parts(&server, &message.data).await;
        let (_, encoding, html) = parts
            .iter()
            .find(|(kind, _, _)| kind == "text/html")
            .cloned()
            .expect("an html part");
        assert_eq!(encoding, "quoted-printable");
        assert!(html.contains("<p>Olá!</p>"), "{html}");
        let text = parts
            .iter()
            .find(|(kind, _, _)| kind == "text/plain")
            .map(|(_, _, text)| text.clone())
            .expect("a text part");
        assert_eq!(text.trim_end(), "See https://shop.test/order", "untouched");
        let hrefs = attribute_values(&html, "href");
        assert_eq!(hrefs.len(), 2, "{html}");
        assert!(
            hrefs[0].starts_with(&format!("{base}/t/c/")),
            "the link points under public_url: {html}"
        );
        assert_eq!(hrefs[1], "mailto:help@shop.test", "mailto untouched");
        assert!(!html.contains("https://shop.test/order?"), "{html}");
        let srcs = attribute_values(&html, "src");
        assert_eq!(srcs.len(), 1, "one pixel: {html}");
        assert!(srcs[0].starts_with(&format!("{base}/t/o/")), "{html}");
        assert!(
            html.contains("width=\"1\" height=\"1\"") && html.contains("/></body>"),
            "{html}"
        );
        pixels.push(srcs[0].clone());
        links.push(hrefs[0].clone());
    }
    assert_ne!(pixels[0], pixels[1]);
    assert_ne!(links[0], links[1]);
    let alice_id = {
        let alice = delivered
            .iter()
            .position(|m| m.rcpt_to == ["alice@dest.test"])
            .unwrap();
        // The message ids are in the sink's X-Carteiro-Id headers.
        delivered[alice]
            .header("X-Carteiro-Id")
            .expect("X-Carteiro-Id")
    };
    assert!(ids.contains(&alice_id), "{alice_id} in {ids:?}");

    // The pixel, twice: two opens, the first unique. Always the GIF.
    for id in &ids {
        wait_past_prefetch_window(&server, &key, id).await;
    }
    for _ in 0..2 {
        let (status, content_type, _, size) = fetch(&pixels[0]).await;
        assert_eq!(
            (status, content_type.as_str(), size),
            (200, "image/gif", 43)
        );
    }
    let opens = wait_events(&server, &key, &alice_id, "opened", 2).await;
    assert_eq!(opens.len(), 2, "{opens:?}");
    assert_eq!(opens[0]["recipient"], "alice@dest.test");
    assert_eq!(opens[0]["details"]["unique"], true, "{opens:?}");
    assert_eq!(opens[1]["details"]["unique"], false, "{opens:?}");
    assert_eq!(opens[0]["details"]["user_agent"], "TrackTest/1.0");
    assert_eq!(
        opens[0]["details"]["machine"], false,
        "a person's: {opens:?}"
    );

    // A forged pixel answers the same GIF and records nothing.
    let forged_pixel = format!("{base}/t/o/{}", "0".repeat(45));
    let (status, content_type, _, size) = fetch(&forged_pixel).await;
    assert_eq!(
        (status, content_type.as_str(), size),
        (200, "image/gif", 43)
    );

    // The link: a redirect to the original URL, and a `clicked` event.
    let (status, _, location, _) = fetch(&links[0]).await;
    assert_eq!((status, location.as_str()), (302, ORDER_URL));
    let clicks = wait_events(&server, &key, &alice_id, "clicked", 1).await;
    assert_eq!(clicks[0]["details"]["url"], ORDER_URL);
    assert_eq!(clicks[0]["details"]["unique"], true);
    assert_eq!(clicks[0]["recipient"], "alice@dest.test");

    // Tampered links: the URL part, the token part, a URL of our choosing
    // under a genuine token. Each a 404, never a redirect.
    let (token_part, url_part) = links[0]
        .rsplit_once('/')
        .map(|(_, token)| token.split_once('.').expect("TOKEN.URL"))
        .expect("a token");
    let evil = "aHR0cHM6Ly9ldmlsLnRlc3Qv"; // https://evil.test/
    let mut tampered_url = url_part.to_string();
    let last = tampered_url.pop().unwrap();
    tampered_url.push(if last == 'A' { 'B' } else { 'A' });
    let mut tampered_token = token_part.to_string();
    let first = tampered_token.remove(0);
    tampered_token.insert(0, if first == '0' { '1' } else { '0' });
    for token in [
        format!("{token_part}.{tampered_url}"),
        format!("{tampered_token}.{url_part}"),
        format!("{token_part}.{evil}"),
        pixels[0].rsplit_once('/').unwrap().1.to_string(),
    ] {
        let (status, _, location, _) = fetch(&format!("{base}/t/c/{token}")).await;
        assert_eq!((status, location.as_str()), (404, ""), "{token}");
    }
    // A second genuine click: recorded, not unique; the tampered ones
    // before it recorded nothing.
    let (status, _, location, _) = fetch(&links[0]).await;
    assert_eq!((status, location.as_str()), (302, ORDER_URL));
    let clicks = wait_events(&server, &key, &alice_id, "clicked", 2).await;
    assert_eq!(clicks.len(), 2, "{clicks:?}");
    assert_eq!(clicks[1]["details"]["unique"], false);
    let opens = wait_events(&server, &key, &alice_id, "opened", 2).await;
    assert_eq!(opens.len(), 2, "the forged pixel recorded nothing");

    // Bob's pixel is Bob's: his first open is unique too.
    let bob_id = ids.iter().find(|id| **id != alice_id).unwrap().clone();
    fetch(&pixels[1]).await;
    let opens = wait_events(&server, &key, &bob_id, "opened", 1).await;
    assert_eq!(opens[0]["recipient"], "bob@dest.test");
    assert_eq!(opens[0]["details"]["unique"], true);

    // After a restart, Alice's next open is still not her first.
    let stopped = server.carteiro.stop().await;
    assert!(stopped.is_ok_and(|status| status.success()));
    server.carteiro.restart().await.expect("restart");
    let (status, _, _, _) = fetch(&pixels[0]).await;
    assert_eq!(status, 200);
    let opens = wait_events(&server, &key, &alice_id, "opened", 3).await;
    assert_eq!(opens.len(), 3, "{opens:?}");
    assert_eq!(opens[2]["details"]["unique"], false, "{opens:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_defaults_apply_and_a_message_can_refuse_them() {
    let sink = common::sink().await;
    let (server, key) = shop(
        &sink,
        "[tracking]\nopen_accounts = [\"shop\"]\nclick_accounts = [\"shop\"]\n",
    )
    .await;
    let base = format!("http://{}", server.http);

    // By default: tracked, one message per recipient.
    let answer = send_message(
        &server,
        &key,
        html_request(&["carol@dest.test", "dave@dest.test"], "Thank you!"),
    )
    .await;
    let ids = message_ids(&answer);
    assert_ne!(ids[0], ids[1]);

    // Refused per message: untracked, one message for both.
    let mut request = html_request(&["erin@dest.test", "frank@dest.test"], "Thank you!");
    request["track_opens"] = json!(false);
    request["track_clicks"] = json!(false);
    let answer = send_message(&server, &key, request).await;
    let ids = message_ids(&answer);
    assert_eq!(ids[0], ids[1], "{}", answer.body);

    // Opens only.
    let mut request = html_request(&["gina@dest.test"], "Thank you!");
    request["track_clicks"] = json!(false);
    send_message(&server, &key, request).await;

    // Text-only mail has nothing to track and is not split.
    let answer = send_message(
        &server,
        &key,
        json!({
            "from": "orders@shop.test",
            "to": ["hal@dest.test", "ivy@dest.test"],
            "subject": "Plain",
            "text": "https://shop.test/plain",
        }),
    )
    .await;
    let ids = message_ids(&answer);
    assert_eq!(ids[0], ids[1], "{}", answer.body);

    let delivered = common::wait_rcpts(&sink, 7).await;
    let html_of = |rcpt: &str| {
        let message = delivered
            .iter()
            .find(|m| m.rcpt_to.iter().any(|r| r == rcpt))
            .unwrap_or_else(|| panic!("nothing delivered to {rcpt}"));
        message.data.clone()
    };
    for (rcpt, pixel, links) in [
        ("carol@dest.test", true, true),
        ("dave@dest.test", true, true),
        ("erin@dest.test", false, false),
        ("gina@dest.test", true, false),
        ("hal@dest.test", false, false),
    ] {
        let data = html_of(rcpt);
        let parts = parts(&server, &data).await;
        let all: String = parts.iter().map(|(_, _, text)| text.as_str()).collect();
        if rcpt == "carol@dest.test" {
            let html = parts.iter().find(|(kind, _, _)| kind == "text/html");
            assert_eq!(
                html.map(|(_, encoding, _)| encoding.as_str()),
                Some("7bit"),
                "short ASCII lines stay unencoded"
            );
        }
        assert_eq!(
            all.contains(&format!("{base}/t/o/")),
            pixel,
            "{rcpt}: {all}"
        );
        assert_eq!(
            all.contains(&format!("{base}/t/c/")),
            links,
            "{rcpt}: {all}"
        );
        assert!(all.contains("mailto:help@shop.test") || rcpt == "hal@dest.test");
    }
    // Untracked mail stays one message (its recipients still get a VERP
    // return path each, so they arrive in two transactions).
    let reference = |rcpt: &str| {
        delivered
            .iter()
            .find(|m| m.rcpt_to.iter().any(|r| r == rcpt))
            .and_then(|m| m.header("X-Carteiro-Id"))
            .expect("X-Carteiro-Id")
    };
    assert_eq!(reference("erin@dest.test"), reference("frank@dest.test"));
    assert_ne!(reference("carol@dest.test"), reference("dave@dest.test"));
}
