//! Delivery by MX lookup against an in-process DNS server: an MX record, a
//! domain with only an A record (the implicit MX of RFC 5321 §5.1) and a
//! domain that does not exist, whose recipient bounces to the sender.

mod common;

use carteiro_testkit::{DnsFixture, SmtpSink};
use common::{HOSTNAME, Setup, WAIT, python_json, split_received, unfold};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mx_implicit_mx_and_nxdomain() {
    let mx_ip = Ipv4Addr::new(127, 0, 0, 2);
    // The MX sink listens on 127.0.0.2 only: reaching it proves the address
    // came from DNS, not from a fallback to localhost.
    let mx_sink = SmtpSink::builder()
        .bind(SocketAddr::from((mx_ip, 0)))
        .hostname("mx.example.test")
        .start()
        .await;
    let bounce_sink = common::sink().await;
    let dns = DnsFixture::builder()
        .mx("example.test", 10, "mx.example.test")
        .a("mx.example.test", mx_ip)
        .a("implicit.test", mx_ip)
        .start()
        .await;
    let server = Setup::new()
        .trusted_loopback()
        .nameserver(dns.addr())
        .delivery(&format!("smtp_port = {}", mx_sink.addr().port()))
        // Only the sender's domain has a route, so its bounce can be caught.
        .route(&["sender.test"], bounce_sink.addr())
        .start()
        .await;

    let reply = python_json(&format!(
        r#"
s = smtplib.SMTP("127.0.0.1", {port}, timeout=20)
s.ehlo("client.test")
refused = s.sendmail("alice@sender.test",
    ["user@example.test", "user@implicit.test", "nobody@nxdomain.test"],
    b"From: alice@sender.test\r\nSubject: mx test\r\nMessage-ID: <mx-1@sender.test>\r\n\r\nby mx\r\n")
s.quit()
done(refused)
"#,
        port = server.relay.port()
    ))
    .await;
    assert_eq!(reply, serde_json::json!({}), "every recipient accepted");

    let delivered = common::wait_rcpts(&mx_sink, 2).await;
    let rcpts: BTreeSet<&str> = delivered
        .iter()
        .flat_map(|m| m.rcpt_to.iter().map(String::as_str))
        .collect();
    assert_eq!(
        rcpts,
        BTreeSet::from(["user@example.test", "user@implicit.test"])
    );
    for message in &delivered {
        assert_eq!(message.mail_from, "alice@sender.test");
        assert_eq!(message.header("Subject").as_deref(), Some("mx test"));
        split_received(&message.data);
    }

    let bounces = bounce_sink.wait_for_messages(1, WAIT).await.unwrap();
    let dsn = &bounces[0];
    assert_eq!(dsn.mail_from, "", "a DSN has the null sender");
    assert_eq!(dsn.rcpt_to, ["alice@sender.test"]);
    let text = unfold(&dsn.body_str());
    assert!(
        dsn.header("Content-Type")
            .is_some_and(|ct| ct.contains("multipart/report")),
        "{text}"
    );
    assert!(
        text.contains("Final-Recipient: rfc822; nobody@nxdomain.test"),
        "{text}"
    );
    assert!(text.contains("Action: failed"), "{text}");
    assert!(text.contains("Status: 5."), "{text}");
    assert!(
        text.contains(&format!("Reporting-MTA: dns; {HOSTNAME}")),
        "{text}"
    );
    assert!(
        !text.contains("Final-Recipient: rfc822; user@"),
        "delivered recipients are not reported as failed: {text}"
    );

    server
        .wait_queue("empty once delivered and bounced", |q| q.is_empty())
        .await;
    assert_eq!(bounce_sink.messages().len(), 1, "exactly one bounce");
}
