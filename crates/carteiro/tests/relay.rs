//! Delivery through a route (`[[delivery.routes]] domains = ["*"]`): what a
//! trusted client hands over arrives at the smarthost with our `Received:`
//! field on top and the envelope and content untouched.

mod common;

use common::{HOSTNAME, Setup, WAIT, python_json, sink, split_received};
use std::collections::BTreeSet;

/// Headers and a body with what a relay could damage: a line starting with
/// a dot (dot-stuffing), an empty line in the body, 8-bit text.
const MESSAGE: &str = "From: Alice <alice@sender.test>\r\n\
To: Bob <bob@dest.test>\r\n\
Subject: route test\r\n\
Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <route-1@sender.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
first line\r\n\
.a line that starts with a dot\r\n\
\r\n\
ol\u{e1}, carteiro\r\n\
last line\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_delivers_with_our_received_header_and_intact_envelope_and_body() {
    let sink = sink().await;
    let server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .start()
        .await;

    let message = serde_json::to_string(MESSAGE).unwrap();
    let reply = python_json(&format!(
        r#"
s = smtplib.SMTP("127.0.0.1", {port}, timeout=20)
s.ehlo("client.test")
s.mail("alice@sender.test", ["BODY=8BITMIME"])
s.rcpt("bob@dest.test")
s.rcpt("carol@other.test")
code, text = s.data({message}.encode())
s.quit()
done([code, text.decode()])
"#,
        port = server.relay.port()
    ))
    .await;
    assert_eq!(reply[0], 250, "end of data: {reply}");

    // Both recipients go to the same smarthost; in one transaction or two,
    // every copy must be the same.
    let messages = common::wait_rcpts(&sink, 2).await;
    let mut rcpts = BTreeSet::new();
    for message in &messages {
        assert_eq!(message.mail_from, "alice@sender.test");
        assert_eq!(message.helo, HOSTNAME, "we introduce ourselves by hostname");
        rcpts.extend(message.rcpt_to.iter().cloned());
        let (received, rest) = split_received(&message.data);
        assert!(
            received.starts_with("Received: from client.test ([127.0.0.1])"),
            "{received}"
        );
        assert!(received.contains("with ESMTP"), "{received}");
        assert!(received.contains(" id "), "{received}");
        assert_eq!(
            String::from_utf8_lossy(rest),
            MESSAGE,
            "content after our Received field must be what the client sent"
        );
    }
    assert_eq!(
        rcpts,
        BTreeSet::from(["bob@dest.test".to_string(), "carol@other.test".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_through_the_trusted_relay_listener_is_delivered() {
    let sink = sink().await;
    let server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .start()
        .await;
    let relay = server.relay.to_string();
    let out = common::swaks(&[
        "--server",
        &relay,
        "--helo",
        "client.test",
        "--from",
        "alice@sender.test",
        "--to",
        "bob@dest.test",
        "--header",
        "Subject: swaks relay",
        "--body",
        "hello from swaks",
    ])
    .await;
    assert!(out.ok, "swaks failed:\n{}", out.transcript);
    assert!(out.saw("250 2.0.0"), "{}", out.transcript);

    let messages = sink.wait_for_messages(1, WAIT).await.unwrap();
    let message = &messages[0];
    assert_eq!(message.mail_from, "alice@sender.test");
    assert_eq!(message.rcpt_to, ["bob@dest.test"]);
    assert_eq!(message.header("Subject").as_deref(), Some("swaks relay"));
    let (received, _) = split_received(&message.data);
    assert!(received.contains("for <bob@dest.test>"), "{received}");
    assert!(message.content().contains("hello from swaks"));
}

/// `tls = "verify"` on a route: mail goes to a smarthost whose certificate
/// is under the route's `ca_file`; where the certificate is not trusted
/// (here: the system's CAs, which do not know the sink's own certificate)
/// the mail waits in the queue with the reason, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifying_route_delivers_only_over_a_trusted_certificate() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, key) = carteiro_testkit::tls::write_pem(certs.path(), &["127.0.0.1", "localhost"]);
    let sink = carteiro_testkit::sink::SmtpSink::builder()
        .tls_identity(
            vec![CertificateDer::from_pem_file(&cert).expect("cert")],
            PrivateKeyDer::from_pem_file(&key).expect("key"),
        )
        .start()
        .await;
    let relay = sink.addr();
    let server = Setup::new()
        .trusted_loopback()
        .delivery("retry_initial = \"1h\"")
        .extra(&format!(
            "[[delivery.routes]]\ndomains = [\"good.test\"]\nrelay = \"{relay}\"\n\
             tls = \"verify\"\nca_file = {:?}\n\n\
             [[delivery.routes]]\ndomains = [\"bad.test\"]\nrelay = \"{relay}\"\n\
             tls = \"verify\"\n",
            cert.display().to_string()
        ))
        .start()
        .await;
    let reply = python_json(&format!(
        r#"
s = smtplib.SMTP("127.0.0.1", {port}, timeout=20)
s.ehlo("client.test")
codes = []
for rcpt in ["ann@good.test", "bob@bad.test"]:
    s.mail("alice@sender.test")
    s.rcpt(rcpt)
    codes.append(s.data(b"Subject: verify\r\n\r\nhello\r\n")[0])
s.quit()
done(codes)
"#,
        port = server.relay.port()
    ))
    .await;
    assert_eq!(reply, serde_json::json!([250, 250]));

    let delivered = common::wait_rcpts(&sink, 1).await;
    assert_eq!(delivered[0].rcpt_to, ["ann@good.test"]);
    assert!(delivered[0].tls, "over TLS");
    let queue = server
        .wait_queue("the untrusted route's attempt recorded", |q| {
            q.iter()
                .flat_map(|e| common::recipients(e).iter())
                .any(|r| r["address"] == "bob@bad.test" && r["attempts"] == 1)
        })
        .await;
    let bob = queue
        .iter()
        .flat_map(|e| common::recipients(e).iter())
        .find(|r| r["address"] == "bob@bad.test")
        .expect("bob queued");
    assert_eq!(bob["state"], "pending", "{bob:#}");
    let last_reply = bob["last_reply"].as_str().unwrap_or_default();
    assert!(
        last_reply.starts_with("4") && last_reply.contains("TLS"),
        "{bob:#}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1, "nothing went out unverified");
}
