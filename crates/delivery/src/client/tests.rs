//! The client against real servers on loopback: the testkit's recording
//! sink for the normal paths, a small scripted server for misbehaving peers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carteiro_mail::{BodyType, Envelope, Notify, Recipient, Ret, Status};
use carteiro_testkit::sink::{SinkReply, SmtpSink};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;

const WAIT: Duration = Duration::from_secs(10);
const MESSAGE: &[u8] = b"From: a@client.test\r\nSubject: hi\r\n\r\nhello\r\n";

fn settings(tls: TlsPolicy) -> ClientSettings {
    ClientSettings {
        helo_name: "client.test".into(),
        tls,
        connect_timeout: WAIT,
        command_timeout: WAIT,
        data_timeout: WAIT,
        ..ClientSettings::default()
    }
}

fn envelope(recipients: &[&str]) -> Envelope {
    let mut envelope = Envelope::new("a@client.test");
    envelope.recipients = recipients.iter().map(|r| Recipient::new(*r)).collect();
    envelope
}

async fn connect(sink: &SmtpSink, tls: TlsPolicy) -> SmtpClient {
    SmtpClient::connect(sink.addr(), "sink.test", &settings(tls))
        .await
        .expect("connect to sink")
}

fn codes(replies: &[Reply]) -> Vec<u16> {
    replies.iter().map(|r| r.code).collect()
}

async fn one_refused_of_three(sink: SmtpSink) {
    let mut client = connect(&sink, TlsPolicy::Opportunistic).await;
    let env = envelope(&["a@sink.test", "bad@sink.test", "c@sink.test"]);
    let outcome = client.send(&env, &[0, 1, 2], MESSAGE).await.expect("send");
    let results = outcome.recipient_results();
    assert_eq!(codes(&results), [250, 550, 250]);
    assert_eq!(results[1].status, Some(Status(5, 1, 1)));
    assert!(client.is_usable());
    let messages = sink.wait_for_messages(1, WAIT).await.expect("message");
    assert_eq!(messages[0].rcpt_to, ["a@sink.test", "c@sink.test"]);
    assert_eq!(messages[0].data, MESSAGE);
}

fn sink_refusing_bad() -> carteiro_testkit::sink::SinkBuilder {
    SmtpSink::builder().rcpt_replies(
        "bad@sink.test",
        vec![SinkReply::new(550, "5.1.1 no such user")],
    )
}

#[tokio::test]
async fn pipelined_transaction_keeps_a_reply_per_recipient() {
    one_refused_of_three(sink_refusing_bad().start().await).await;
}

#[tokio::test]
async fn stepwise_transaction_keeps_a_reply_per_recipient() {
    one_refused_of_three(sink_refusing_bad().pipelining(false).start().await).await;
}

#[tokio::test]
async fn chunking_transaction_keeps_a_reply_per_recipient() {
    let sink = sink_refusing_bad().chunking(true).start().await;
    one_refused_of_three(sink).await;
}

#[tokio::test]
async fn bdat_is_used_when_offered_and_preferred() {
    let sink = SmtpSink::builder().chunking(true).start().await;
    let env = envelope(&["a@sink.test"]);
    let mut client = connect(&sink, TlsPolicy::None).await;
    client.send(&env, &[0], MESSAGE).await.expect("send");
    let mut no_chunking = settings(TlsPolicy::None);
    no_chunking.prefer_chunking = false;
    let mut other = SmtpClient::connect(sink.addr(), "sink.test", &no_chunking)
        .await
        .expect("connect");
    other.send(&env, &[0], MESSAGE).await.expect("send");
    let messages = sink.wait_for_messages(2, WAIT).await.expect("messages");
    assert!(messages[0].via_bdat);
    assert!(!messages[1].via_bdat);
    assert_eq!(messages[0].data, MESSAGE);
}

#[tokio::test]
async fn stepwise_bdat_works() {
    let sink = SmtpSink::builder()
        .chunking(true)
        .pipelining(false)
        .start()
        .await;
    let mut client = connect(&sink, TlsPolicy::None).await;
    let outcome = client
        .send(&envelope(&["a@sink.test"]), &[0], b"no final crlf")
        .await
        .expect("send");
    assert_eq!(codes(&outcome.recipient_results()), [250]);
    let messages = sink.wait_for_messages(1, WAIT).await.expect("message");
    assert!(messages[0].via_bdat);
    assert_eq!(messages[0].data, b"no final crlf\r\n");
}

#[tokio::test]
async fn starttls_is_used_when_offered_unless_policy_is_none() {
    let sink = SmtpSink::builder().start().await;
    let env = envelope(&["a@sink.test"]);
    let mut client = connect(&sink, TlsPolicy::Opportunistic).await;
    let version = client.tls_version().expect("tls in use");
    assert!(version.starts_with("TLSv1.3 TLS13_"), "{version}");
    client.send(&env, &[0], MESSAGE).await.expect("send");
    let mut plain = connect(&sink, TlsPolicy::None).await;
    assert_eq!(plain.tls_version(), None);
    plain.send(&env, &[0], MESSAGE).await.expect("send");
    let messages = sink.wait_for_messages(2, WAIT).await.expect("messages");
    assert!(messages[0].tls);
    assert!(!messages[1].tls);
}

#[tokio::test]
async fn required_tls_fails_when_not_offered() {
    let sink = SmtpSink::builder().starttls(false).start().await;
    let err = SmtpClient::connect(sink.addr(), "sink.test", &settings(TlsPolicy::Required))
        .await
        .expect_err("must fail");
    assert!(matches!(err, ClientError::TlsRequired { .. }), "{err}");
    assert_eq!(err.reply().status, Some(Status(4, 7, 10)));
    assert!(!err.is_permanent() && !err.is_tls_failure());
    // Opportunistic carries on in plain text.
    let client = connect(&sink, TlsPolicy::Opportunistic).await;
    assert_eq!(client.tls_version(), None);
}

#[tokio::test]
async fn auth_is_sent_after_starttls() {
    let sink = SmtpSink::builder().auth("user", "secret").start().await;
    let mut with_auth = settings(TlsPolicy::Required);
    with_auth.auth = Some(("user".into(), "secret".into()));
    let mut client = SmtpClient::connect(sink.addr(), "sink.test", &with_auth)
        .await
        .expect("connect with auth");
    client
        .send(&envelope(&["a@sink.test"]), &[0], MESSAGE)
        .await
        .expect("send");
    let messages = sink.wait_for_messages(1, WAIT).await.expect("message");
    assert_eq!(messages[0].auth_user.as_deref(), Some("user"));

    with_auth.auth = Some(("user".into(), "wrong".into()));
    let err = SmtpClient::connect(sink.addr(), "sink.test", &with_auth)
        .await
        .expect_err("wrong password");
    assert!(
        matches!(
            err,
            ClientError::Rejected {
                stage: Stage::Auth,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.reply().code, 535);
}

#[tokio::test]
async fn credentials_never_go_in_clear_text_unless_tls_is_off() {
    let sink = SmtpSink::builder()
        .starttls(false)
        .auth("user", "secret")
        .start()
        .await;
    let mut with_auth = settings(TlsPolicy::Opportunistic);
    with_auth.auth = Some(("user".into(), "secret".into()));
    let err = SmtpClient::connect(sink.addr(), "sink.test", &with_auth)
        .await
        .expect_err("no plain text credentials");
    assert!(matches!(err, ClientError::AuthWithoutTls { .. }), "{err}");

    with_auth.tls = TlsPolicy::None;
    let mut client = SmtpClient::connect(sink.addr(), "sink.test", &with_auth)
        .await
        .expect("plain text auth when asked for");
    client
        .send(&envelope(&["a@sink.test"]), &[0], MESSAGE)
        .await
        .expect("send");
}

#[tokio::test]
async fn dot_lines_arrive_unstuffed_and_identical() {
    let sink = SmtpSink::builder().start().await;
    let message = b".starts with a dot\r\nSubject: x\r\n\r\n.\r\n..two\r\nend.\r\n.";
    let mut client = connect(&sink, TlsPolicy::None).await;
    client
        .send(&envelope(&["a@sink.test"]), &[0], message)
        .await
        .expect("send");
    let messages = sink.wait_for_messages(1, WAIT).await.expect("message");
    let mut expected = message.to_vec();
    expected.extend_from_slice(b"\r\n");
    assert_eq!(messages[0].data, expected);
}

#[tokio::test]
async fn ten_messages_over_one_connection() {
    let sink = SmtpSink::builder().start().await;
    let mut client = connect(&sink, TlsPolicy::Opportunistic).await;
    let env = envelope(&["a@sink.test", "b@sink.test"]);
    for i in 0..10 {
        let message = format!("Subject: {i}\r\n\r\nbody {i}\r\n");
        let outcome = client.send(&env, &[0, 1], message.as_bytes()).await;
        assert_eq!(
            codes(&outcome.expect("send").recipient_results()),
            [250, 250]
        );
    }
    client.noop().await.expect("noop");
    client.reset().await.expect("rset");
    client.quit().await;
    let messages = sink.wait_for_messages(10, WAIT).await.expect("messages");
    assert_eq!(sink.connections(), 1);
    assert_eq!(messages[9].content(), "body 9\r\n");
}

fn dsn_envelope() -> Envelope {
    let mut env = envelope(&["a@sink.test"]);
    env.ret = Some(Ret::Headers);
    env.envid = Some("env 1".into());
    env.body_type = BodyType::EightBitMime;
    env.recipients[0].notify = Notify(Notify::FAILURE | Notify::DELAY);
    env.recipients[0].orcpt = Some("rfc822;a+b@origin.test".into());
    env
}

#[tokio::test]
async fn dsn_parameters_are_passed_when_offered() {
    let sink = SmtpSink::builder().start().await;
    let mut client = connect(&sink, TlsPolicy::None).await;
    client
        .send(&dsn_envelope(), &[0], MESSAGE)
        .await
        .expect("send");
    let messages = sink.wait_for_messages(1, WAIT).await.expect("message");
    let params = &messages[0].mail_params;
    for expected in ["RET=HDRS", "ENVID=env+201", "BODY=8BITMIME"] {
        assert!(
            params.iter().any(|p| p == expected),
            "{expected} in {params:?}"
        );
    }
    assert!(params.iter().any(|p| p.starts_with("SIZE=")), "{params:?}");
    assert_eq!(
        messages[0].params_of("a@sink.test").expect("accepted"),
        ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;a+2Bb@origin.test"]
    );
}

#[tokio::test]
async fn dsn_parameters_are_left_out_when_not_offered() {
    let sink = SmtpSink::builder().dsn(false).start().await;
    let mut client = connect(&sink, TlsPolicy::None).await;
    let outcome = client.send(&dsn_envelope(), &[0], MESSAGE).await;
    assert_eq!(codes(&outcome.expect("send").recipient_results()), [250]);
    let messages = sink.wait_for_messages(1, WAIT).await.expect("message");
    let params = &messages[0].mail_params;
    assert!(
        !params
            .iter()
            .any(|p| p.starts_with("RET=") || p.starts_with("ENVID="))
    );
    assert!(messages[0].rcpt_params[0].is_empty());
}

#[tokio::test]
async fn smtputf8_is_passed_when_offered() {
    let sink = SmtpSink::builder().start().await;
    let mut client = connect(&sink, TlsPolicy::None).await;
    let mut env = envelope(&["josé@sink.test"]);
    env.smtputf8 = true;
    let outcome = client.send(&env, &[0], MESSAGE).await.expect("send");
    assert_eq!(codes(&outcome.recipient_results()), [250]);
    let messages = sink.wait_for_messages(1, WAIT).await.expect("message");
    assert!(messages[0].mail_params.iter().any(|p| p == "SMTPUTF8"));
    assert_eq!(messages[0].rcpt_to, ["josé@sink.test"]);
}

#[tokio::test]
async fn smtputf8_and_size_refusals_are_synthetic() {
    let sink = SmtpSink::builder()
        .smtputf8(false)
        .max_size(100)
        .start()
        .await;
    let mut client = connect(&sink, TlsPolicy::None).await;
    let mut env = envelope(&["josé@sink.test", "b@sink.test"]);
    env.smtputf8 = true;
    let outcome = client.send(&env, &[0, 1], MESSAGE).await.expect("send");
    let results = outcome.recipient_results();
    assert_eq!(codes(&results), [553, 553]);
    assert_eq!(results[0].status, Some(Status(5, 6, 7)));

    // A non-ASCII address needs SMTPUTF8 even when the envelope says no.
    env.smtputf8 = false;
    let outcome = client.send(&env, &[0], MESSAGE).await.expect("send");
    assert_eq!(outcome.recipient_results()[0].code, 553);
    assert_eq!(outcome.data, None);

    let big = vec![b'x'; 200];
    let outcome = client.send(&env, &[1], &big).await.expect("send");
    let results = outcome.recipient_results();
    assert_eq!(results[0].code, 552);
    assert_eq!(results[0].status, Some(Status(5, 3, 4)));
    assert_eq!(sink.transactions(), 0);
    assert!(client.is_usable());
}

/// After every recipient is refused (or DATA fails), the same connection
/// still carries the next transaction.
async fn connection_survives_failures(sink: SmtpSink) {
    let mut client = connect(&sink, TlsPolicy::None).await;
    let env = envelope(&["bad@sink.test", "a@sink.test"]);
    let outcome = client.send(&env, &[0], MESSAGE).await.expect("send");
    assert_eq!(codes(&outcome.recipient_results()), [550]);
    let outcome = client.send(&env, &[1], MESSAGE).await.expect("send");
    assert_eq!(codes(&outcome.recipient_results()), [451]);
    let outcome = client.send(&env, &[0, 1], MESSAGE).await.expect("send");
    assert_eq!(codes(&outcome.recipient_results()), [550, 250]);
    client.noop().await.expect("noop");
    let messages = sink.wait_for_messages(1, WAIT).await.expect("message");
    assert_eq!(messages.len(), 1);
    assert_eq!(sink.connections(), 1);
}

fn sink_with_failures() -> carteiro_testkit::sink::SinkBuilder {
    sink_refusing_bad().data_reply(vec![
        SinkReply::new(451, "4.3.0 try later"),
        SinkReply::new(250, "2.0.0 queued"),
    ])
}

#[tokio::test]
async fn pipelined_connection_survives_failures() {
    connection_survives_failures(sink_with_failures().start().await).await;
}

#[tokio::test]
async fn stepwise_connection_survives_failures() {
    connection_survives_failures(sink_with_failures().pipelining(false).start().await).await;
}

#[tokio::test]
async fn chunking_connection_survives_failures() {
    connection_survives_failures(sink_with_failures().chunking(true).start().await).await;
}

#[tokio::test]
async fn reply_421_ends_the_session() {
    let sink = SmtpSink::builder()
        .rcpt_replies("b@sink.test", vec![SinkReply::new(421, "4.7.0 closing")])
        .start()
        .await;
    let mut client = connect(&sink, TlsPolicy::None).await;
    let env = envelope(&["a@sink.test", "b@sink.test", "c@sink.test"]);
    let outcome = client.send(&env, &[0, 1, 2], MESSAGE).await.expect("send");
    assert_eq!(codes(&outcome.recipient_results()), [421, 421, 421]);
    assert!(!client.is_usable());
    let err = client
        .send(&env, &[0], MESSAGE)
        .await
        .expect_err("unusable");
    assert!(matches!(err, ClientError::Unusable { .. }));
}

#[tokio::test]
async fn rejected_greeting_and_refused_connection() {
    let sink = SmtpSink::builder()
        .greeting(SinkReply::new(554, "5.7.1 go away"))
        .start()
        .await;
    let err = SmtpClient::connect(sink.addr(), "sink.test", &settings(TlsPolicy::None))
        .await
        .expect_err("greeting refused");
    assert_eq!(err.reply().to_string(), "554 5.7.1 go away");
    assert!(!err.is_permanent());

    let addr = sink.addr();
    sink.shutdown().await;
    let err = SmtpClient::connect(addr, "sink.test", &settings(TlsPolicy::None))
        .await
        .expect_err("refused");
    assert_eq!(
        err.reply().to_string(),
        format!("451 4.4.1 connection refused by {addr}")
    );
}

#[tokio::test]
async fn recipient_indices_select_from_the_envelope() {
    let sink = SmtpSink::builder().start().await;
    let mut client = connect(&sink, TlsPolicy::None).await;
    let env = envelope(&["a@sink.test", "b@sink.test", "c@sink.test"]);
    client.send(&env, &[2, 0], MESSAGE).await.expect("send");
    let err = client
        .send(&env, &[3], MESSAGE)
        .await
        .expect_err("bad index");
    assert!(matches!(err, ClientError::RecipientIndex { index: 3 }));
    let messages = sink.wait_for_messages(1, WAIT).await.expect("message");
    assert_eq!(messages[0].rcpt_to, ["c@sink.test", "a@sink.test"]);
}

/// A server that answers each line it reads with the next scripted reply
/// (the first one is the greeting), reads a DATA body after a 354, and
/// closes when the script ends; `"!hang"` keeps the connection open
/// without answering. Returns its address and the lines it received.
async fn scripted(replies: &'static [&'static str]) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let lines = seen.clone();
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut in_data = false;
        for (i, reply) in replies.iter().enumerate() {
            if i > 0 {
                let mut line = String::new();
                loop {
                    line.clear();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if !in_data || line == ".\r\n" {
                        break;
                    }
                }
                lines
                    .lock()
                    .expect("lock")
                    .push(line.trim_end().to_string());
            }
            if *reply == "!hang" {
                let _ = read.read_to_end(&mut Vec::new()).await;
                return;
            }
            in_data = reply.starts_with("354");
            let wire = format!("{}\r\n", reply.replace('\n', "\r\n"));
            if write.write_all(wire.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn helo_fallback_when_ehlo_is_refused() {
    let (addr, seen) = scripted(&[
        "220 old.test",
        "502 5.5.1 EHLO not implemented",
        "250 old.test",
        "250 ok",
        "250 ok",
        "354 go",
        "250 queued",
        "221 bye",
    ])
    .await;
    let mut client = SmtpClient::connect(addr, "old.test", &settings(TlsPolicy::Opportunistic))
        .await
        .expect("connect");
    assert_eq!(client.capabilities().hostname, "old.test");
    let outcome = client.send(&envelope(&["a@old.test"]), &[0], MESSAGE).await;
    assert_eq!(codes(&outcome.expect("send").recipient_results()), [250]);
    client.quit().await;
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            "EHLO client.test",
            "HELO client.test",
            "MAIL FROM:<a@client.test>",
            "RCPT TO:<a@old.test>",
            "DATA",
            ".",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn failed_handshake_under_opportunistic_is_a_tls_failure() {
    let script = &["220 hi", "250-tls.test\n250 STARTTLS", "220 go ahead"];
    let (addr, _) = scripted(script).await;
    let err = SmtpClient::connect(addr, "tls.test", &settings(TlsPolicy::Opportunistic))
        .await
        .expect_err("handshake fails");
    assert!(err.is_tls_failure(), "{err}");
    assert!(!err.is_permanent());

    let (addr, _) = scripted(script).await;
    let err = SmtpClient::connect(addr, "tls.test", &settings(TlsPolicy::Required))
        .await
        .expect_err("handshake fails");
    assert!(matches!(err, ClientError::TlsRequired { .. }), "{err}");
    assert!(!err.is_tls_failure());
}

#[tokio::test]
async fn silence_after_data_is_a_timeout() {
    let (addr, _) = scripted(&["220 hi", "250 slow.test", "250 ok", "250 ok", "!hang"]).await;
    let mut quick = settings(TlsPolicy::None);
    quick.command_timeout = Duration::from_millis(300);
    let mut client = SmtpClient::connect(addr, "slow.test", &quick)
        .await
        .expect("connect");
    let err = client
        .send(&envelope(&["a@slow.test"]), &[0], MESSAGE)
        .await
        .expect_err("timeout");
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                stage: Stage::Data,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.reply().to_string(),
        format!("451 4.4.2 timeout waiting for reply to DATA from {addr}")
    );
    assert!(!client.is_usable());
}

#[tokio::test]
async fn auth_login_when_plain_is_not_offered() {
    let (addr, seen) = scripted(&[
        "220 hi",
        "250-login.test\n250 AUTH LOGIN",
        "334 VXNlcm5hbWU6",
        "334 UGFzc3dvcmQ6",
        "235 2.7.0 ok",
        "221 bye",
    ])
    .await;
    let mut with_auth = settings(TlsPolicy::None);
    with_auth.auth = Some(("user".into(), "secret".into()));
    let client = SmtpClient::connect(addr, "login.test", &with_auth)
        .await
        .expect("auth login");
    client.quit().await;
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            "EHLO client.test",
            "AUTH LOGIN",
            "dXNlcg==",
            "c2VjcmV0",
            "QUIT"
        ]
    );
}

/// A sink presenting a certificate for `sink.test` (and 127.0.0.1), with
/// that certificate written as a PEM file to trust, and another one's.
async fn sink_with_known_certificate(dir: &std::path::Path) -> (SmtpSink, PathBuf, PathBuf) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let own = dir.join("own");
    let other = dir.join("other");
    std::fs::create_dir_all(&own).expect("dir");
    std::fs::create_dir_all(&other).expect("dir");
    let (cert, key) = carteiro_testkit::tls::write_pem(&own, &["sink.test", "127.0.0.1"]);
    let (other_cert, _) = carteiro_testkit::tls::write_pem(&other, &["sink.test"]);
    let certs = vec![CertificateDer::from_pem_file(&cert).expect("cert")];
    let key = PrivateKeyDer::from_pem_file(&key).expect("key");
    let sink = SmtpSink::builder().tls_identity(certs, key).start().await;
    (sink, cert, other_cert)
}

#[tokio::test]
async fn verify_accepts_a_certificate_under_the_trusted_ca_file_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sink, trusted, other) = sink_with_known_certificate(dir.path()).await;
    let mut verified = settings(TlsPolicy::Verify);
    verified.trust = Some(verifying_tls_config(Some(&trusted)).expect("CA file"));
    let mut client = SmtpClient::connect(sink.addr(), "sink.test", &verified)
        .await
        .expect("a certificate under the trusted CA file");
    assert!(client.tls_version().is_some());
    client
        .send(&envelope(&["a@sink.test"]), &[0], MESSAGE)
        .await
        .expect("send");
    // The right certificate for another name does not verify.
    let err = SmtpClient::connect(sink.addr(), "other.test", &verified)
        .await
        .expect_err("wrong host name");
    assert!(matches!(err, ClientError::TlsRequired { .. }), "{err}");
    assert!(!err.is_tls_failure(), "no plain-text fallback");
    // Another CA, or the system's CAs (the sink's certificate is its own).
    let mut wrong = settings(TlsPolicy::Verify);
    wrong.trust = Some(verifying_tls_config(Some(&other)).expect("other CA file"));
    for settings in [wrong, settings(TlsPolicy::Verify)] {
        let err = SmtpClient::connect(sink.addr(), "sink.test", &settings)
            .await
            .expect_err("untrusted certificate");
        assert!(matches!(err, ClientError::TlsRequired { .. }), "{err}");
        assert_eq!(err.reply().status, Some(Status(4, 7, 10)));
    }
    assert_eq!(
        sink.messages().len(),
        1,
        "nothing sent without verification"
    );
}

#[test]
fn a_missing_or_empty_ca_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let err = verifying_tls_config(Some(&missing)).expect_err("missing");
    assert!(err.contains("missing.pem"), "{err}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let err = verifying_tls_config(Some(&empty)).expect_err("empty");
    assert!(err.contains("no usable CA certificate"), "{err}");
}
