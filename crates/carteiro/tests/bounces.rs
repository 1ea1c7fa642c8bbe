//! What the destination answers decides what happens: `550 5.1.1` bounces
//! to the sender with an RFC 3464 report (unless NOTIFY=NEVER), `451` is
//! retried and then delivered, and the queue shows why it waits.

mod common;

use carteiro_testkit::{SinkReply, SmtpSink};
use common::{Setup, WAIT, python_json, recipients, unfold};

/// Sends one message from alice@sender.test to `rcpt` over the relay
/// listener with smtplib, with extra RCPT options; returns the DATA reply code.
async fn send(port: u16, rcpt: &str, rcpt_options: &[&str], subject: &str, id: &str) -> u64 {
    let options = serde_json::to_string(rcpt_options).unwrap();
    let reply = python_json(&format!(
        r#"
s = smtplib.SMTP("127.0.0.1", {port}, timeout=20)
s.ehlo("client.test")
s.mail("alice@sender.test")
code, text = s.rcpt("{rcpt}", {options})
assert code == 250, (code, text)
code, text = s.data(b"From: Alice <alice@sender.test>\r\nTo: {rcpt}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\r\nplease deliver\r\n")
s.quit()
done(code)
"#
    ))
    .await;
    reply.as_u64().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_bounces_to_the_sender_unless_notify_never() {
    let sink = SmtpSink::builder()
        .rcpt_replies(
            "gone@dest.test",
            vec![SinkReply::new(550, "5.1.1 mailbox unknown here")],
        )
        .rcpt_replies(
            "lost@dest.test",
            vec![SinkReply::new(550, "5.1.1 mailbox unknown here")],
        )
        .start()
        .await;
    // One smarthost for everything: the bounce to alice@sender.test comes
    // back to the same sink.
    let server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .start()
        .await;
    let port = server.relay.port();

    // NOTIFY=NEVER: refused downstream, finished, and no report.
    let code = send(
        port,
        "gone@dest.test",
        &["NOTIFY=NEVER"],
        "silent failure",
        "never-1@sender.test",
    )
    .await;
    assert_eq!(code, 250);
    sink.wait_for_rcpt_attempts("gone@dest.test", 1, WAIT)
        .await
        .unwrap();
    // A DSN would be queued before the original leaves the queue, so an
    // empty queue and no null-sender message at the sink mean none was made.
    server
        .wait_queue("the NOTIFY=NEVER message finished", |q| q.is_empty())
        .await;
    assert!(
        sink.messages().iter().all(|m| !m.mail_from.is_empty()),
        "NOTIFY=NEVER produced a DSN: {:?}",
        sink.messages()
    );

    // Default NOTIFY: a failure report to the sender. (Another address:
    // gone@ is on the suppression list now, after its hard bounce.)
    let code = send(
        port,
        "lost@dest.test",
        &[],
        "bounce me",
        "bounce-1@sender.test",
    )
    .await;
    assert_eq!(code, 250);
    let messages = sink.wait_for_messages(1, WAIT).await.unwrap();
    let dsn = &messages[0];
    assert_eq!(dsn.mail_from, "", "a DSN has the null sender");
    assert_eq!(dsn.rcpt_to, ["alice@sender.test"]);
    let content_type = dsn.header("Content-Type").unwrap_or_default();
    assert!(content_type.contains("multipart/report"), "{content_type}");
    assert!(
        content_type
            .replace('"', "")
            .contains("report-type=delivery-status"),
        "{content_type}"
    );
    let text = unfold(&dsn.body_str());
    for needle in [
        "Status: 5.1.1",
        "Action: failed",
        "Final-Recipient: rfc822; lost@dest.test",
        "Content-Type: message/delivery-status",
        // The original headers come back.
        "Subject: bounce me",
        "Message-ID: <bounce-1@sender.test>",
    ] {
        assert!(text.contains(needle), "DSN lacks {needle:?}:\n{text}");
    }
    let diagnostic = text
        .lines()
        .find(|line| line.starts_with("Diagnostic-Code:"))
        .unwrap_or_else(|| panic!("no Diagnostic-Code:\n{text}"));
    assert!(
        diagnostic.contains("550") && diagnostic.contains("mailbox unknown here"),
        "{diagnostic}"
    );
    assert!(
        !text.contains("silent failure"),
        "the NOTIFY=NEVER message is not reported:\n{text}"
    );

    server
        .wait_queue("empty after the bounce", |q| q.is_empty())
        .await;
    assert_eq!(sink.messages().len(), 1, "exactly one DSN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failure_is_retried_then_delivered() {
    let sink = SmtpSink::builder()
        .rcpt_replies(
            "later@dest.test",
            vec![
                SinkReply::new(451, "4.2.1 mailbox busy, try later"),
                SinkReply::new(250, "2.1.5 ok"),
            ],
        )
        .start()
        .await;
    // 2 s rather than 1 s: the queue must be read between the two attempts
    // even on a loaded machine.
    let server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .delivery("retry_initial = \"2s\"")
        .start()
        .await;
    let code = send(
        server.relay.port(),
        "later@dest.test",
        &[],
        "retry me",
        "retry-1@sender.test",
    )
    .await;
    assert_eq!(code, 250);

    let queue = server
        .wait_queue("one attempt recorded", |q| {
            q.first()
                .and_then(|e| recipients(e).first())
                .is_some_and(|r| r["attempts"] == 1)
        })
        .await;
    assert_eq!(queue.len(), 1, "{queue:#?}");
    let rcpt = &recipients(&queue[0])[0];
    assert_eq!(rcpt["address"], "later@dest.test");
    assert_eq!(rcpt["state"], "pending", "{rcpt:#}");
    let last_reply = rcpt["last_reply"].as_str().unwrap_or_default();
    assert!(
        last_reply.starts_with("451") && last_reply.contains("mailbox busy"),
        "{rcpt:#}"
    );
    let next = rcpt["next_attempt"].as_u64().unwrap_or_default();
    let last = rcpt["last_attempt"].as_u64().unwrap_or_default();
    assert!(
        next > last && next - last <= 3_000,
        "next attempt about retry_initial after the last: {rcpt:#}"
    );
    assert!(
        sink.messages().is_empty(),
        "nothing delivered on the 451 attempt"
    );

    let messages = sink.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(messages[0].rcpt_to, ["later@dest.test"]);
    assert_eq!(messages[0].mail_from, "alice@sender.test");
    assert_eq!(sink.rcpt_attempts("later@dest.test"), 2);
    server
        .wait_queue("empty once delivered", |q| q.is_empty())
        .await;
}
