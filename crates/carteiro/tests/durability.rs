//! A `250` is a promise: messages acknowledged before a `kill -9` are
//! delivered after the restart. Duplicates are allowed (at-least-once),
//! losses are not.

mod common;

use carteiro_testkit::{SmtpSink, free_port};
use common::{Setup, WAIT, python_json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::time::Instant;

const MESSAGES: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9() {
    // The smarthost's port is free until after the crash: every delivery
    // attempt before it fails and the messages wait in the spool.
    let smarthost = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut server = Setup::new()
        .trusted_loopback()
        .route(&["*"], smarthost)
        .delivery("retry_initial = \"1s\"")
        .delivery("retry_max = \"2s\"")
        .start()
        .await;

    let replies = python_json(&format!(
        r#"
s = smtplib.SMTP("127.0.0.1", {port}, timeout=20)
s.ehlo("client.test")
replies = []
for i in range({MESSAGES}):
    s.mail("alice@sender.test")
    s.rcpt("bob@dest.test")
    body = ("Subject: durable %d\r\nMessage-ID: <durable-%d@sender.test>\r\n\r\nmessage %d\r\n" % (i, i, i)).encode()
    code, text = s.data(body)
    replies.append([code, text.decode()])
s.quit()
done(replies)
"#,
        port = server.relay.port()
    ))
    .await;
    let replies = replies.as_array().cloned().unwrap_or_default();
    assert_eq!(replies.len(), MESSAGES);
    for reply in &replies {
        assert_eq!(reply[0], 250, "every message acknowledged: {reply}");
    }

    server.carteiro.kill9().await.unwrap();
    let sink = SmtpSink::builder().bind(smarthost).start().await;
    server
        .carteiro
        .restart()
        .await
        .unwrap_or_else(|err| panic!("restart after kill -9: {err:#}"));

    // Wait for all 30 distinct messages; count copies of each.
    let deadline = Instant::now() + WAIT;
    let copies = loop {
        let mut copies: BTreeMap<String, usize> = BTreeMap::new();
        for message in sink.messages() {
            let id = message.header("Message-ID").unwrap_or_default();
            *copies.entry(id).or_default() += 1;
        }
        if copies.len() >= MESSAGES || Instant::now() >= deadline {
            break copies;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let duplicates: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
    if !duplicates.is_empty() {
        eprintln!("duplicates after kill -9 (allowed, at-least-once): {duplicates:?}");
    }
    let missing: Vec<String> = (0..MESSAGES)
        .map(|i| format!("<durable-{i}@sender.test>"))
        .filter(|id| !copies.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "lost after kill -9: {missing:?}\nlog:\n{}",
        server.log()
    );
    assert_eq!(copies.len(), MESSAGES, "unexpected messages: {copies:?}");
    server
        .wait_queue("empty after delivery", |q| q.is_empty())
        .await;
}

/// A clean stop must not hang on an idle delivery connection: nothing is in
/// flight, so SIGTERM ends the process within the session drain time, and a
/// restart does not send the delivered message again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_a_delivery_exits_promptly() {
    let sink = common::sink().await;
    let mut server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .start()
        .await;
    python_json(&format!(
        r#"
s = smtplib.SMTP("127.0.0.1", {port}, timeout=20)
s.sendmail("alice@sender.test", ["bob@dest.test"], b"Subject: stop\r\n\r\nstop\r\n")
s.quit()
done(0)
"#,
        port = server.relay.port()
    ))
    .await;
    sink.wait_for_messages(1, WAIT).await.unwrap();
    server
        .wait_queue("empty once delivered", |q| q.is_empty())
        .await;

    let started = Instant::now();
    let stopped = server.carteiro.stop().await;
    let took = started.elapsed();
    assert!(
        stopped.as_ref().is_ok_and(|status| status.success()),
        "SIGTERM with nothing in flight: {stopped:?} after {took:?}"
    );
    assert!(
        took < std::time::Duration::from_secs(5),
        "SIGTERM took {took:?} with nothing to wait for"
    );
    server.carteiro.restart().await.expect("restart");
    assert!(server.queue().await.is_empty());
    assert_eq!(sink.messages().len(), 1, "delivered once only");
}
