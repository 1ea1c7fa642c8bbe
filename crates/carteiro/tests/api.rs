//! The HTTP API end to end, driven with curl: sending (signed, durable,
//! delivered), the message record and its events for API and SMTP mail,
//! the event log, and the errors a client sees.

mod common;

use common::dkim::{dkimpy_verify, records};
use common::http::{api_key, curl, wait_event};
use common::{Setup, swaks};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_message_is_signed_delivered_and_has_a_timeline() {
    let sink = common::sink().await;
    let server = Setup::new().route(&["*"], sink.addr()).start().await;
    server.cli(&["account", "add", "shop"]).await;
    server.cli(&["domain", "add", "shop", "shop.test"]).await;
    let key = api_key(&server, "shop").await;

    let request = json!({
        "from": "Shop <orders@shop.test>",
        "to": ["alice@dest.test"],
        "cc": "bob@dest.test",
        "bcc": ["carol@dest.test"],
        "subject": "Your order 1042",
        "text": "Thank you.\n.\nA line with only a dot above.",
        "html": "<p>Thank you.</p>",
        "headers": {"X-Order": "1042"},
        "attachments": [{"filename": "order.txt", "content_type": "text/plain", "content_base64": "b3JkZXIgMTA0Mg=="}],
        "tags": ["orders"],
        "metadata": {"order": 1042}
    });
    let answer = curl(
        &server,
        "POST",
        "/api/v1/messages",
        Some(&key),
        Some(&request.to_string()),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let id = answer.body["id"].as_str().expect("id").to_string();
    let recipients = answer.body["recipients"].as_array().expect("recipients");
    let addresses: Vec<&str> = recipients
        .iter()
        .filter_map(|r| r["address"].as_str())
        .collect();
    assert_eq!(
        addresses,
        ["alice@dest.test", "bob@dest.test", "carol@dest.test"]
    );
    assert_eq!(recipients[0]["id"], format!("{id}-0"));

    let messages = common::wait_rcpts(&sink, 3).await;
    // Each recipient has its own VERP return path at the return-path domain
    // (so one transaction per recipient), none of them the plain sender.
    let mut return_paths: Vec<&str> = messages.iter().map(|m| m.mail_from.as_str()).collect();
    for (path, message) in return_paths.iter().zip(&messages) {
        assert!(
            path.starts_with("b-") && path.ends_with("@bounces.shop.test"),
            "{path}"
        );
        assert_eq!(
            message.rcpt_to.len(),
            1,
            "one recipient per VERP transaction"
        );
    }
    return_paths.sort_unstable();
    return_paths.dedup();
    assert_eq!(
        return_paths.len(),
        3,
        "distinct return paths: {return_paths:?}"
    );
    let message = &messages[0];
    assert!(message.header("Bcc").is_none());
    assert_eq!(message.header("X-Order").as_deref(), Some("1042"));
    let records = records(&server, "shop.test").await;
    assert_eq!(dkimpy_verify(&message.data, &records).await, [true, true]);

    let record = wait_event(&server, &key, &id, "delivered").await;
    assert_eq!(record["subject"], "Your order 1042");
    assert_eq!(record["tags"], json!(["orders"]));
    assert_eq!(record["metadata"]["order"], 1042);
    let events = record["events"].as_array().unwrap();
    assert_eq!(events[0]["type"], "received");
    let delivered = events.iter().find(|e| e["type"] == "delivered").unwrap();
    assert!(
        delivered["details"]["reply"]
            .as_str()
            .unwrap()
            .starts_with("250")
    );
    assert_eq!(delivered["account"], "shop");
    assert!(delivered["timestamp"].as_str().unwrap().ends_with('Z'));

    // The event log shows the same.
    let log = curl(
        &server,
        "GET",
        "/api/v1/events?type=delivered",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(log.status, 200, "{}", log.body);
    assert!(
        log.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message_id"] == id.as_str()),
        "{}",
        log.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_see_only_their_own_data_and_errors_are_clear() {
    let sink = common::sink().await;
    let server = Setup::new().route(&["*"], sink.addr()).start().await;
    server.cli(&["account", "add", "shop"]).await;
    server.cli(&["domain", "add", "shop", "shop.test"]).await;
    server.cli(&["account", "add", "blog"]).await;
    let shop = api_key(&server, "shop").await;
    let blog = api_key(&server, "blog").await;

    let good = json!({"from": "a@shop.test", "to": ["x@dest.test"], "subject": "s", "text": "t"});
    let sent = curl(
        &server,
        "POST",
        "/api/v1/messages",
        Some(&shop),
        Some(&good.to_string()),
    )
    .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let id = sent.body["id"].as_str().unwrap();

    // Another account's key: 404, exactly like a missing message.
    let other = curl(
        &server,
        "GET",
        &format!("/api/v1/messages/{id}"),
        Some(&blog),
        None,
    )
    .await;
    assert_eq!(other.status, 404, "{}", other.body);
    assert_eq!(other.body["error"], "message not found");
    let list = curl(&server, "GET", "/api/v1/messages", Some(&blog), None).await;
    assert_eq!(list.body["messages"], json!([]), "{}", list.body);

    // No key, a wrong key.
    assert_eq!(
        curl(&server, "GET", "/api/v1/messages", None, None)
            .await
            .status,
        401
    );
    assert_eq!(
        curl(&server, "GET", "/api/v1/messages", Some("crt_wrong"), None)
            .await
            .status,
        401
    );
    // Malformed JSON.
    let bad = curl(
        &server,
        "POST",
        "/api/v1/messages",
        Some(&shop),
        Some("{\"from\": "),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.body["error"], "malformed JSON");
    // An invalid address names its field.
    let invalid =
        json!({"from": "a@shop.test", "to": ["x@dest.test", "not an address"], "text": "t"});
    let answer = curl(
        &server,
        "POST",
        "/api/v1/messages",
        Some(&shop),
        Some(&invalid.to_string()),
    )
    .await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(answer.body["detail"]["field"], "to[1]");
    // A From domain the account does not own.
    let unowned = json!({"from": "a@blog.test", "to": ["x@dest.test"], "text": "t"});
    let answer = curl(
        &server,
        "POST",
        "/api/v1/messages",
        Some(&blog),
        Some(&unowned.to_string()),
    )
    .await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(answer.body["detail"]["field"], "from");
    // A body with neither text nor html.
    let empty = json!({"from": "a@shop.test", "to": ["x@dest.test"], "subject": "s"});
    let answer = curl(
        &server,
        "POST",
        "/api/v1/messages",
        Some(&shop),
        Some(&empty.to_string()),
    )
    .await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(answer.body["detail"]["field"], "text");

    // Only the good message was ever queued or delivered.
    common::wait_rcpts(&sink, 1).await;
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_mail_gets_the_same_record_and_deletion_is_an_event() {
    let sink = common::sink().await;
    // hold.test is routed to a port where nothing listens: mail waits.
    let closed = std::net::SocketAddr::from(([127, 0, 0, 1], carteiro_testkit::free_port()));
    let server = Setup::new()
        .trusted_loopback()
        .route(&["dest.test"], sink.addr())
        .route(&["hold.test"], closed)
        .start()
        .await;
    let key = api_key(&server, "default").await;
    let relay = server.relay.to_string();

    let out = swaks(&[
        "--server",
        &relay,
        "--from",
        "app@legacy.test",
        "--to",
        "alice@dest.test",
        "--header",
        "Subject: from a legacy machine",
    ])
    .await;
    assert!(out.ok, "{}", out.transcript);
    // A message that cannot be delivered yet: deleted later.
    let out = swaks(&[
        "--server",
        &relay,
        "--from",
        "app@legacy.test",
        "--to",
        "bob@hold.test",
        "--header",
        "Subject: to be deleted",
    ])
    .await;
    assert!(out.ok, "{}", out.transcript);

    // Records are written in batches, a moment after the 250.
    let found = common::eventually_async("the relayed message's record", || async {
        let found = curl(
            &server,
            "GET",
            "/api/v1/messages?recipient=ALICE@dest.test",
            Some(&key),
            None,
        )
        .await;
        assert_eq!(found.status, 200, "{}", found.body);
        let listed = found.body["messages"].as_array().map_or(0, Vec::len);
        (listed > 0).then_some(found)
    })
    .await;
    let messages = found.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{}", found.body);
    assert_eq!(messages[0]["subject"], "from a legacy machine");
    assert_eq!(messages[0]["source"], "smtp");
    let id = messages[0]["id"].as_str().unwrap().to_string();
    wait_event(&server, &key, &id, "delivered").await;

    // Records are written in batches: the second message's may come a
    // moment after the first one's delivery.
    let doomed = common::eventually_async("the held message's record", || async {
        let pending = curl(
            &server,
            "GET",
            "/api/v1/messages?recipient=bob@hold.test",
            Some(&key),
            None,
        )
        .await;
        pending.body["messages"][0]["id"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    server.cli(&["queue", "delete", &doomed]).await;
    let record = wait_event(&server, &key, &doomed, "deleted").await;
    assert_eq!(record["recipients"][0]["state"], "deleted", "{record}");
}
