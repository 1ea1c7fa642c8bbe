//! Deliverability end to end: VERP return paths, an asynchronous DSN and an
//! ARF complaint received on the relay listener from an untrusted client,
//! the suppression entries they make and the `suppressed` sends after them;
//! bulk mail with a DKIM-covered one-click `List-Unsubscribe`, whose GET
//! never unsubscribes and whose POST (and mailto) does; and the relay still
//! closed to strangers.

mod common;

use carteiro_testkit::DnsFixture;
use common::client::Client;
use common::dkim::{dkimpy_verify, records};
use common::http::{Answer, curl, one_click, send_message, sending_account, wait_event};
use common::{HOSTNAME, Server, Setup, WAIT, run};
use serde_json::{Value, json};

/// A server routing everything to `sink`, with account `shop` owning
/// `shop.test`; loopback is *not* trusted. DNS is an empty fixture (only
/// `domain check` asks it). Returns the server and a key.
async fn shop(sink: &carteiro_testkit::SmtpSink) -> (Server, String, DnsFixture) {
    let dns = DnsFixture::builder().start().await;
    let server = Setup::new()
        .nameserver(dns.addr())
        .route(&["*"], sink.addr())
        .start()
        .await;
    let key = sending_account(&server, "shop", "shop.test").await;
    (server, key, dns)
}

/// The message part of a recipient id (`<message id>-<index>`).
fn message_of(recipient_id: &Value) -> String {
    let id = recipient_id.as_str().expect("a recipient id");
    id.rsplit_once('-').expect("<id>-<index>").0.to_string()
}

/// One message from an untrusted client on the relay listener.
async fn deliver_to_us(server: &Server, from: &str, to: &str, message: &str) -> (u16, String) {
    let mut client = Client::connect(server.relay).await.expect("connect");
    let outcome = client.send(from, to, message).await.expect("SMTP");
    (outcome.code, outcome.text)
}

/// `GET /api/v1/suppressions/{address}`.
async fn suppression(server: &Server, key: &str, address: &str) -> Answer {
    curl(
        server,
        "GET",
        &format!("/api/v1/suppressions/{address}"),
        Some(key),
        None,
    )
    .await
}

/// Polls until `address` is on the list; returns the entry.
async fn wait_suppressed(server: &Server, key: &str, address: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = suppression(server, key, address).await;
        if answer.status == 200 {
            return answer.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{address} never suppressed: {} {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A Postfix-style RFC 3464 DSN for `recipient`, sent back to `return_path`.
fn dsn(return_path: &str, recipient: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.dest.test (Mail Delivery System)\r\n\
         To: {return_path}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n\
         Message-ID: <bounce-1@mx.dest.test>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"B1\"\r\n\
         \r\n\
         --B1\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients.\r\n\
         \r\n\
         <{recipient}>: host mx.dest.test said: 550 5.1.1 <{recipient}>:\r\n\
         \x20   Recipient address rejected: User unknown in local recipient table\r\n\
         \r\n\
         --B1\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.dest.test\r\n\
         Arrival-Date: Thu, 26 Nov 2026 11:59:59 +0000\r\n\
         \r\n\
         Final-Recipient: rfc822; {recipient}\r\n\
         Original-Recipient: rfc822;{recipient}\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\
         Remote-MTA: dns; mailstore.dest.test\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address\r\n\
         \x20   rejected: User unknown in local recipient table\r\n\
         \r\n\
         --B1--\r\n"
    )
}

/// An ARF report (RFC 5965) about `original` (the message as delivered).
fn arf(original: &str) -> String {
    format!(
        "From: feedback@fbl.dest.test\r\n\
         To: complaints@{HOSTNAME}\r\n\
         Subject: Abuse report\r\n\
         Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n\
         Message-ID: <arf-1@fbl.dest.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report;\r\n\
         \tboundary=\"F1\"\r\n\
         \r\n\
         --F1\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is an email abuse report.\r\n\
         \r\n\
         --F1\r\n\
         Content-Type: message/feedback-report\r\n\
         \r\n\
         Feedback-Type: abuse\r\n\
         User-Agent: DestFBL/1.0\r\n\
         Version: 1\r\n\
         Source-IP: 127.0.0.1\r\n\
         \r\n\
         --F1\r\n\
         Content-Type: message/rfc822\r\n\
         \r\n\
         {original}\r\n\
         --F1--\r\n"
    )
}

/// Dot-stuffing for a message sent with [`Client::send`].
fn stuffed(text: &str) -> String {
    let mut out = String::new();
    for line in text.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounces_and_complaints_suppress_and_later_sends_are_suppressed() {
    let sink = common::sink().await;
    let (server, key, _dns) = shop(&sink).await;

    let answer = send_message(
        &server,
        &key,
        json!({
            "from": "Shop <orders@shop.test>",
            "to": ["alice@dest.test", "bob@dest.test"],
            "subject": "Your order",
            "text": "Thank you."
        }),
    )
    .await;
    let message_id = answer.body["id"].as_str().unwrap().to_string();
    let delivered = common::wait_rcpts(&sink, 2).await;
    let for_rcpt = |address: &str| {
        delivered
            .iter()
            .find(|m| m.rcpt_to == [address])
            .unwrap_or_else(|| panic!("nothing delivered to {address}"))
            .clone()
    };
    let alice = for_rcpt("alice@dest.test");
    let bob = for_rcpt("bob@dest.test");
    for path in [&alice.mail_from, &bob.mail_from] {
        assert!(
            path.starts_with("b-") && path.ends_with("@bounces.shop.test"),
            "a VERP return path: {path}"
        );
    }
    assert_ne!(
        alice.mail_from, bob.mail_from,
        "one return path per recipient"
    );
    wait_event(&server, &key, &message_id, "delivered").await;

    // A forged return path is not one of ours, even at our domain.
    let forged = alice.mail_from.replacen("b-0", "b-1", 1);
    let (code, text) = deliver_to_us(&server, "", &forged, &dsn(&forged, "alice@dest.test")).await;
    assert_eq!(code, 550, "{text}");
    assert!(text.contains("5.1.1"), "{text}");

    // An asynchronous bounce for alice, to her return path, from a stranger.
    let (code, text) = deliver_to_us(
        &server,
        "",
        &alice.mail_from,
        &dsn(&alice.mail_from, "alice@dest.test"),
    )
    .await;
    assert_eq!(code, 250, "{text}");
    let record = wait_event(&server, &key, &message_id, "bounced").await;
    let bounced: Vec<&Value> = record["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "bounced")
        .collect();
    assert_eq!(bounced.len(), 1, "{record}");
    assert_eq!(bounced[0]["recipient"], "alice@dest.test", "{record}");
    let details = &bounced[0]["details"];
    assert_eq!(details["class"], "unknown_user", "{record}");
    assert_eq!(details["status"], "5.1.1", "{record}");
    let entry = wait_suppressed(&server, &key, "alice@dest.test").await;
    assert_eq!(entry["reason"], "hard_bounce", "{entry}");
    assert_eq!(entry["source_message_id"], message_id.as_str(), "{entry}");

    // A complaint about bob's copy, to the complaints address. The original
    // is as bob's mailbox stored it: with the Return-Path its MTA added.
    let original = format!(
        "Return-Path: <{}>\r\n{}",
        bob.mail_from,
        String::from_utf8_lossy(&bob.data)
    );
    let (code, text) = deliver_to_us(
        &server,
        "",
        &format!("complaints@{HOSTNAME}"),
        &stuffed(&arf(&original)),
    )
    .await;
    assert_eq!(code, 250, "{text}");
    let record = wait_event(&server, &key, &message_id, "complained").await;
    let complained = record["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "complained")
        .unwrap()
        .clone();
    assert_eq!(complained["recipient"], "bob@dest.test", "{record}");
    assert_eq!(complained["details"]["feedback_type"], "abuse", "{record}");
    let entry = wait_suppressed(&server, &key, "bob@dest.test").await;
    assert_eq!(entry["reason"], "complaint", "{entry}");

    // One complaint for two deliveries today: the bulk-sender checklist
    // of `domain check` calls that rate an error.
    let out = server
        .carteiro
        .run(&["domain", "check", "shop.test", "--json"])
        .await
        .unwrap();
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    let rate = results
        .iter()
        .find(|r| r["purpose"] == "complaint-rate")
        .unwrap_or_else(|| panic!("no complaint rate: {results:?}"));
    assert_eq!(rate["status"], "wrong", "{rate}");
    assert!(
        rate["message"]
            .as_str()
            .unwrap()
            .contains("1 complaint for 2 delivered"),
        "{rate}"
    );

    // Nothing that came to us was relayed: the sink still has two copies.
    assert_eq!(sink.messages().len(), 2, "{:?}", sink.messages());

    // A later send to both: `suppressed`, and no delivery attempt.
    let answer = send_message(
        &server,
        &key,
        json!({
            "from": "orders@shop.test",
            "to": ["ALICE@dest.test", "bob@dest.test"],
            "subject": "Another order",
            "text": "Thanks again."
        }),
    )
    .await;
    let second = answer.body["id"].as_str().unwrap().to_string();
    let record = wait_event(&server, &key, &second, "suppressed").await;
    let suppressed: Vec<&str> = record["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "suppressed")
        .filter_map(|e| e["recipient"].as_str())
        .collect();
    assert_eq!(suppressed, ["ALICE@dest.test", "bob@dest.test"], "{record}");
    for recipient in record["recipients"].as_array().unwrap() {
        assert_eq!(recipient["state"], "suppressed", "{record}");
    }
    assert!(server.queue().await.is_empty(), "nothing queued");
    // A third message that is delivered proves the pipeline ran past the
    // suppressed one (delivery is in order of acceptance on one route).
    send_message(
        &server,
        &key,
        json!({"from": "orders@shop.test", "to": "carol@dest.test", "subject": "x", "text": "y"}),
    )
    .await;
    let all = common::wait_rcpts(&sink, 3).await;
    let rcpts: Vec<&str> = all
        .iter()
        .flat_map(|m| m.rcpt_to.iter().map(String::as_str))
        .collect();
    assert_eq!(rcpts.len(), 3, "{rcpts:?}");
    assert!(!rcpts[2..].contains(&"alice@dest.test") && !rcpts[2..].contains(&"bob@dest.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_listener_still_refuses_strangers() {
    let sink = common::sink().await;
    let (server, _key, _dns) = shop(&sink).await;
    for to in [
        "someone@elsewhere.test",
        "someone@shop.test",
        "someone@bounces.shop.test",
        "complaints@bounces.shop.test.elsewhere.test",
    ] {
        let (code, text) =
            deliver_to_us(&server, "x@stranger.test", to, "Subject: hi\r\n\r\nhi\r\n").await;
        assert!((500..600).contains(&code), "{to}: {code} {text}");
    }
    assert!(sink.messages().is_empty());
    assert!(server.queue().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_mail_has_a_signed_one_click_unsubscribe() {
    let sink = common::sink().await;
    let (server, key, _dns) = shop(&sink).await;
    let answer = send_message(
        &server,
        &key,
        json!({
            "from": "News <news@shop.test>",
            "to": ["carol@dest.test", "dave@dest.test"],
            "subject": "November news",
            "text": "News.",
            "list_unsubscribe": true
        }),
    )
    .await;
    // Bulk mail is one message per recipient: each link names its recipient.
    let ids: Vec<String> = answer.body["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| message_of(&r["id"]))
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "{}", answer.body);

    let delivered = common::wait_rcpts(&sink, 2).await;
    let dkim = records(&server, "shop.test").await;
    let mut urls = Vec::new();
    let mut mailtos = Vec::new();
    for message in &delivered {
        let header = message
            .header("List-Unsubscribe")
            .expect("List-Unsubscribe");
        assert_eq!(
            message.header("List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        let base = format!("<http://{}/u/", server.http);
        let url = header
            .split(',')
            .map(str::trim)
            .find(|p| p.starts_with(&base))
            .unwrap_or_else(|| panic!("no URL under public_url: {header}"));
        urls.push(url.trim_matches(|c| c == '<' || c == '>').to_string());
        let mailto = header
            .split(',')
            .map(str::trim)
            .find(|p| p.starts_with("<mailto:"))
            .unwrap_or_else(|| panic!("no mailto: {header}"));
        mailtos.push(
            mailto
                .trim_start_matches("<mailto:")
                .trim_end_matches('>')
                .to_string(),
        );
        // Both signatures verify and cover both fields.
        assert_eq!(dkimpy_verify(&message.data, &dkim).await, [true, true]);
        for signature in message.headers("DKIM-Signature") {
            let h = signature
                .split(';')
                .map(str::trim)
                .find_map(|t| t.strip_prefix("h="))
                .unwrap_or_default()
                .to_ascii_lowercase();
            let fields: Vec<&str> = h.split(':').map(str::trim).collect();
            assert!(
                fields.contains(&"list-unsubscribe") && fields.contains(&"list-unsubscribe-post"),
                "{signature}"
            );
        }
    }
    assert_ne!(urls[0], urls[1]);
    let carol = delivered
        .iter()
        .position(|m| m.rcpt_to == ["carol@dest.test"])
        .unwrap();
    let dave = 1 - carol;

    // A GET (a link scanner, a preview) shows a page and changes nothing.
    for _ in 0..2 {
        let out = run("curl", &["-s", "-w", "\n%{http_code}", &urls[carol]], None).await;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.ends_with("\n200"), "{text}");
        assert!(text.contains("<form method=\"post\""), "{text}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        suppression(&server, &key, "carol@dest.test").await.status,
        404
    );
    let record = curl(
        &server,
        "GET",
        &format!("/api/v1/messages/{}", ids[0]),
        Some(&key),
        None,
    )
    .await;
    assert!(
        !record.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "unsubscribed"),
        "{}",
        record.body
    );

    // The one-click POST (RFC 8058) unsubscribes.
    let (status, page) = one_click(&urls[carol]).await;
    assert_eq!(status, 200, "{page}");
    let record = wait_event(&server, &key, &ids[0], "unsubscribed").await;
    assert!(record.to_string().contains("one-click"), "{record}");
    let entry = wait_suppressed(&server, &key, "carol@dest.test").await;
    assert_eq!(entry["reason"], "unsubscribe", "{entry}");

    // An altered token is a 404, not anybody's unsubscribe.
    let mut altered = urls[dave].clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'a' { 'b' } else { 'a' });
    let (status, page) = one_click(&altered).await;
    assert_eq!(status, 404, "{page}");

    // The mailto path: a message to the address in the header.
    let (code, text) = deliver_to_us(
        &server,
        "dave@dest.test",
        &mailtos[dave],
        "Subject: unsubscribe\r\n\r\nunsubscribe\r\n",
    )
    .await;
    assert_eq!(code, 250, "{text}");
    let record = wait_event(&server, &key, &ids[1], "unsubscribed").await;
    assert!(record.to_string().contains("mailto"), "{record}");
    wait_suppressed(&server, &key, "dave@dest.test").await;
    assert_eq!(sink.messages().len(), 2, "nothing sent to us was relayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounce_parse_prints_the_class() {
    let sink = common::sink().await;
    let (server, _key, _dns) = shop(&sink).await;
    let file = server.dir.path().join("bounce.eml");
    std::fs::write(&file, dsn("b-x@bounces.shop.test", "erin@dest.test")).unwrap();
    let out = server
        .cli(&["bounce", "parse", file.to_str().unwrap(), "--json"])
        .await;
    let parsed: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(parsed["kind"], "dsn", "{parsed}");
    assert_eq!(parsed["recipients"][0]["recipient"], "erin@dest.test");
    assert_eq!(parsed["recipients"][0]["class"], "unknown_user");
    assert_eq!(parsed["recipients"][0]["status"], "5.1.1");
    let text = server
        .cli(&["bounce", "parse", file.to_str().unwrap()])
        .await;
    assert!(text.contains("class: unknown_user"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smtp_header_asks_for_bulk_handling() {
    let sink = common::sink().await;
    let (server, _key, _dns) = shop(&sink).await;
    server
        .cli(&[
            "credential",
            "add",
            "shop",
            "shop-app",
            "--password",
            "correct horse",
        ])
        .await;
    let submission = server.submission.to_string();
    for (value, to) in [("yes", "erin@dest.test"), ("no", "fred@dest.test")] {
        let header = format!("X-Carteiro-List-Unsubscribe: {value}");
        let out = common::swaks(&[
            "--server",
            &submission,
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "shop-app",
            "--auth-password",
            "correct horse",
            "--from",
            "news@shop.test",
            "--to",
            to,
            "--header",
            &header,
        ])
        .await;
        assert!(out.ok, "{}", out.transcript);
    }
    let delivered = common::wait_rcpts(&sink, 2).await;
    let to = |address: &str| delivered.iter().find(|m| m.rcpt_to == [address]).unwrap();
    assert!(to("erin@dest.test").header("List-Unsubscribe").is_some());
    assert!(to("fred@dest.test").header("List-Unsubscribe").is_none());
    for address in ["erin@dest.test", "fred@dest.test"] {
        assert!(
            to(address).header("X-Carteiro-List-Unsubscribe").is_none(),
            "the control header is not passed on to {address}"
        );
    }
}
