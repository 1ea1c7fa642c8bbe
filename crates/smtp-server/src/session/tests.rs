//! Sessions driven over in-memory streams with a handler made of plain
//! values. End-to-end behaviour with real clients and TLS is tested against
//! the binary.

use super::*;
use crate::handler::{AuthOutcome, IncomingMessage};
use carteiro_config::Config;
use proptest::prelude::*;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod slow;

#[derive(Default)]
pub(crate) struct TestHandler {
    accepted: Mutex<Vec<IncomingMessage>>,
    spool_full: bool,
}

fn account() -> AccountRef {
    AccountRef {
        id: 1,
        name: "default".into(),
    }
}

impl Handler for TestHandler {
    async fn authenticate(&self, username: &str, password: &str) -> AuthOutcome {
        if username == "app" && password == "correct horse" {
            AuthOutcome::Accepted(AccountRef {
                id: 2,
                name: "app".into(),
            })
        } else {
            AuthOutcome::Rejected
        }
    }

    fn default_account(&self) -> Option<AccountRef> {
        Some(account())
    }

    fn local_recipient(&self, address: &str) -> Option<Result<(), Reply>> {
        if !address.ends_with("@relay.test") {
            None
        } else if address.starts_with("bounces@") {
            Some(Ok(()))
        } else {
            Some(Err(Reply::NO_SUCH_USER))
        }
    }

    async fn accept_message(&self, message: IncomingMessage) -> Result<(), Reply> {
        if self.spool_full {
            return Err(Reply::SPOOL_ERROR);
        }
        self.accepted.lock().unwrap().push(message);
        Ok(())
    }
}

#[allow(clippy::field_reassign_with_default)]
pub(crate) fn config(trusted: bool) -> Config {
    let mut config = Config::default();
    config.hostname = "relay.test".into();
    config.smtp.max_recipients = 3;
    config.smtp.max_message_size = 2000;
    config.smtp.max_line_length = 200;
    config.smtp.max_commands_before_mail = 10;
    config.smtp.max_errors = 5;
    config.smtp.allow_auth_without_tls = true;
    config.smtp.auth_max_failures = 2;
    if trusted {
        config.smtp.trusted_networks = vec!["127.0.0.0/8".parse().unwrap()];
    }
    config
}

/// Runs a session fed with `input` all at once (fully pipelined) and
/// returns the server's whole output.
async fn converse_with(
    config: Config,
    handler: TestHandler,
    role: Role,
    input: &[u8],
) -> (String, Arc<ServerContext<TestHandler>>) {
    let ctx = ServerContext::new(Arc::new(config), None, handler);
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let session = tokio::spawn(run_session(Arc::clone(&ctx), server, peer, role, stop_rx));
    client.write_all(input).await.unwrap();
    // End of input: the session must end by itself, whatever it was doing.
    client.shutdown().await.unwrap();
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    session.await.unwrap();
    (String::from_utf8(out).unwrap(), ctx)
}

async fn converse(trusted: bool, input: &str) -> (String, Arc<ServerContext<TestHandler>>) {
    converse_with(
        config(trusted),
        TestHandler::default(),
        Role::Relay,
        input.as_bytes(),
    )
    .await
}

fn codes(transcript: &str) -> Vec<u16> {
    transcript
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| l[..3].parse().unwrap())
        .collect()
}

fn accepted(ctx: &ServerContext<TestHandler>) -> Vec<IncomingMessage> {
    ctx.handler.accepted.lock().unwrap().clone()
}

#[tokio::test]
async fn ehlo_offers_the_extensions_and_no_auth_without_tls() {
    let mut cfg = config(false);
    cfg.smtp.allow_auth_without_tls = false;
    let (out, _) = converse_with(
        cfg,
        TestHandler::default(),
        Role::Submission,
        b"EHLO c.test\r\nQUIT\r\n",
    )
    .await;
    for ext in [
        "PIPELINING",
        "SIZE 2000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "DSN",
    ] {
        assert!(
            out.contains(&format!("250-{ext}\r\n")),
            "{ext} missing in {out}"
        );
    }
    assert!(!out.contains("AUTH"), "AUTH offered before TLS: {out}");
    assert!(out.starts_with("220 relay.test ESMTP"));
    assert!(out.ends_with("221 2.0.0 bye\r\n"));
}

#[tokio::test]
async fn a_trusted_client_relays_a_pipelined_message() {
    let (out, ctx) = converse(
        true,
        "EHLO c.test\r\nMAIL FROM:<a@origin.test> RET=HDRS ENVID=env1\r\n\
         RCPT TO:<b@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@remote.test\r\n\
         RCPT TO:<c@remote.test>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        codes(&out),
        vec![220, 250, 250, 250, 250, 354, 250, 221],
        "{out}"
    );
    let msgs = accepted(&ctx);
    assert_eq!(msgs.len(), 1);
    let msg = &msgs[0];
    assert_eq!(msg.account, account());
    assert_eq!(msg.envelope.sender, "a@origin.test");
    assert_eq!(msg.envelope.ret, Some(carteiro_mail::Ret::Headers));
    assert_eq!(msg.envelope.envid.as_deref(), Some("env1"));
    assert_eq!(msg.envelope.recipients.len(), 2);
    assert!(msg.envelope.recipients[0].notify.on_success());
    assert_eq!(
        msg.envelope.recipients[0].orcpt.as_deref(),
        Some("rfc822;b@remote.test")
    );
    let body = String::from_utf8(msg.body.to_vec()).unwrap();
    assert!(
        body.starts_with("Received: from c.test ([127.0.0.1])\r\n"),
        "{body}"
    );
    assert!(
        body.ends_with("\r\nSubject: hi\r\n\r\n.dot\r\nbody\r\n"),
        "{body}"
    );
    assert!(out.contains(&format!("queued as {}", msg.id)));
}

#[tokio::test]
async fn an_untrusted_client_cannot_relay_but_reaches_own_addresses() {
    let (out, ctx) = converse(
        false,
        "EHLO c.test\r\nMAIL FROM:<a@origin.test>\r\nRCPT TO:<b@remote.test>\r\n\
         RCPT TO:<nobody@relay.test>\r\nRCPT TO:<bounces@relay.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        codes(&out),
        vec![220, 250, 250, 554, 550, 250, 354, 250, 221],
        "{out}"
    );
    assert!(out.contains("554 5.7.1 relay access denied"));
    assert_eq!(accepted(&ctx)[0].envelope.recipients.len(), 1);
}

#[tokio::test]
async fn open_relay_tricks_are_refused() {
    for rcpt in [
        "<user%remote.test@relay.test>",
        "<\"user@remote.test\"@relay.test>",
        "<remote.test!user@relay.test>",
        "<@relay.test:user@remote.test>",
        "<user@remote.test.>",
        "<user@[192.0.2.1]>",
        "<user@REMOTE.TEST>",
        "<user@relay.test.>",
    ] {
        let (out, ctx) = converse(
            false,
            &format!("EHLO c.test\r\nMAIL FROM:<a@o.test>\r\nRCPT TO:{rcpt}\r\nQUIT\r\n"),
        )
        .await;
        let third = codes(&out)[3];
        assert!(third >= 500, "{rcpt} was accepted: {out}");
        assert!(accepted(&ctx).is_empty());
    }
}

#[tokio::test]
async fn submission_requires_auth_and_auth_works() {
    let (out, ctx) = converse_with(
        config(false),
        TestHandler::default(),
        Role::Submission,
        b"EHLO c.test\r\nMAIL FROM:<a@o.test>\r\nAUTH PLAIN AGFwcABjb3JyZWN0IGhvcnNl\r\n\
          MAIL FROM:<a@o.test>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        codes(&out),
        vec![220, 250, 530, 235, 250, 250, 354, 250, 221],
        "{out}"
    );
    let msg = &accepted(&ctx)[0];
    assert_eq!(&*msg.account.name, "app");
    assert_eq!(msg.auth_user.as_deref(), Some("app"));
    assert!(String::from_utf8_lossy(&msg.body).contains("with ESMTPA"));
}

#[tokio::test]
async fn auth_login_and_wrong_passwords_are_throttled() {
    // "app" / "wrong" via LOGIN, twice; the third attempt is refused outright.
    let (out, _) = converse_with(
        config(false),
        TestHandler::default(),
        Role::Submission,
        b"EHLO c.test\r\nAUTH LOGIN\r\nYXBw\r\nd3Jvbmc=\r\nAUTH PLAIN AGFwcAB3cm9uZw==\r\n\
          AUTH PLAIN AGFwcABjb3JyZWN0IGhvcnNl\r\n",
    )
    .await;
    assert_eq!(
        codes(&out),
        vec![220, 250, 334, 334, 535, 535, 454],
        "{out}"
    );
}

#[tokio::test]
async fn limits_answer_with_the_right_codes() {
    let big = "x".repeat(100);
    let mut input =
        String::from("EHLO c.test\r\nMAIL FROM:<a@o.test> SIZE=5000\r\nMAIL FROM:<a@o.test>\r\n");
    for n in 0..4 {
        input.push_str(&format!("RCPT TO:<r{n}@remote.test>\r\n"));
    }
    input.push_str("DATA\r\n");
    for _ in 0..30 {
        input.push_str(&big);
        input.push_str("\r\n");
    }
    input.push_str(".\r\nMAIL FROM:<a@o.test>\r\nRCPT TO:<r@remote.test>\r\nDATA\r\n");
    input.push_str(&"y".repeat(300));
    input.push_str("\r\n.\r\nQUIT\r\n");
    let (out, ctx) = converse(true, &input).await;
    assert_eq!(
        codes(&out),
        vec![
            220, 250, 552, 250, 250, 250, 250, 452, 354, 552, 250, 250, 354, 554, 221
        ],
        "{out}"
    );
    assert!(out.contains("452 4.5.3 too many recipients"));
    assert!(out.contains("552 5.3.4 message size exceeds"));
    assert!(accepted(&ctx).is_empty());
}

#[tokio::test]
async fn smuggled_end_of_data_is_not_a_second_message() {
    let (out, ctx) = converse(
        true,
        "EHLO c.test\r\nMAIL FROM:<a@o.test>\r\nRCPT TO:<b@remote.test>\r\nDATA\r\n\
         Subject: one\r\n\r\nbody\n.\nMAIL FROM:<evil@o.test>\nRCPT TO:<victim@remote.test>\nDATA\n\
         smuggled\n.\r\n.\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        codes(&out),
        vec![220, 250, 250, 250, 354, 554, 221],
        "{out}"
    );
    assert!(out.contains("554 5.6.0 bare <LF>"));
    assert!(accepted(&ctx).is_empty());
}

#[tokio::test]
async fn bdat_chunks_make_one_message() {
    let (out, ctx) = converse(
        true,
        "EHLO c.test\r\nMAIL FROM:<a@o.test>\r\nRCPT TO:<b@remote.test>\r\n\
         BDAT 12\r\nSubject: x\r\nBDAT 9 LAST\r\n\r\nhello\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        codes(&out),
        vec![220, 250, 250, 250, 250, 250, 221],
        "{out}"
    );
    let msgs = accepted(&ctx);
    assert!(msgs[0].body.ends_with(b"\r\nSubject: x\r\n\r\nhello\r\n"));
}

#[tokio::test]
async fn a_spool_failure_is_a_temporary_refusal() {
    let handler = TestHandler {
        spool_full: true,
        ..TestHandler::default()
    };
    let (out, _) = converse_with(
        config(true),
        handler,
        Role::Relay,
        b"EHLO c.test\r\nMAIL FROM:<a@o.test>\r\nRCPT TO:<b@r.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
    )
    .await;
    assert!(
        out.contains("452 4.3.1 insufficient system storage"),
        "{out}"
    );
}

#[tokio::test]
async fn sessions_that_misbehave_are_closed() {
    let (out, _) = converse(true, &"FOO\r\n".repeat(20)).await;
    assert!(
        out.ends_with("421 4.7.0 too many errors, closing connection\r\n"),
        "{out}"
    );
    assert_eq!(codes(&out).len(), 1 + 6 + 1);

    let (out, _) = converse(true, &"NOOP\r\n".repeat(20)).await;
    assert!(
        out.ends_with("421 4.7.0 too many commands without a transaction, closing connection\r\n")
    );

    let long = format!("EHLO {}\r\nNOOP\r\n", "a".repeat(20_000));
    let (out, _) = converse(true, &long).await;
    assert_eq!(codes(&out), vec![220, 500, 250], "{out}");
}

#[tokio::test]
async fn commands_out_of_order_get_503() {
    let (out, _) = converse(
        true,
        "MAIL FROM:<a@o.test>\r\nEHLO c\r\nRCPT TO:<b@r.test>\r\nDATA\r\nMAIL FROM:<a@o.test>\r\n\
         MAIL FROM:<a@o.test>\r\nDATA\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        codes(&out),
        vec![220, 503, 250, 503, 503, 250, 503, 503, 221],
        "{out}"
    );
}

#[tokio::test]
async fn addresses_that_are_not_utf8_get_501_5_6_7() {
    // Raw bytes: 0xff is never UTF-8; 0xc3 before an ASCII letter is a broken sequence.
    let mut input = b"EHLO c.test\r\n".to_vec();
    input.extend_from_slice(b"MAIL FROM:<al\xffce@o.test> SMTPUTF8\r\n");
    input.extend_from_slice(b"MAIL FROM:<al\xc3ce@o.test>\r\n");
    input.extend_from_slice(b"MAIL FROM:<a@\xffo.test> SMTPUTF8\r\n");
    // A real U+00E9 is fine with SMTPUTF8...
    input.extend_from_slice("MAIL FROM:<andr\u{e9}@o.test> SMTPUTF8\r\n".as_bytes());
    // ...and so is the recipient's, but not broken bytes in either part.
    input.extend_from_slice(b"RCPT TO:<b\xff@remote.test>\r\n");
    input.extend_from_slice(b"RCPT TO:<b@remote\xfe.test>\r\n");
    input.extend_from_slice("RCPT TO:<ren\u{e9}@remote.test>\r\nQUIT\r\n".as_bytes());
    let (out, ctx) = converse_with(config(true), TestHandler::default(), Role::Relay, &input).await;
    assert_eq!(
        codes(&out),
        vec![220, 250, 501, 501, 501, 250, 501, 501, 250, 221],
        "{out}"
    );
    assert_eq!(
        out.matches("501 5.6.7 address is not valid UTF-8\r\n")
            .count(),
        5,
        "{out}"
    );
    assert!(accepted(&ctx).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_input_gets_only_well_formed_replies(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (out, _) = runtime.block_on(converse_with(config(true), TestHandler::default(), Role::Relay, &input));
        prop_assert!(out.ends_with("\r\n"));
        for line in out.split_terminator("\r\n") {
            let bytes = line.as_bytes();
            prop_assert!(bytes.len() >= 4, "short reply line {:?}", line);
            prop_assert!(bytes[..3].iter().all(u8::is_ascii_digit), "bad code in {:?}", line);
            prop_assert!(bytes[3] == b' ' || bytes[3] == b'-', "bad separator in {:?}", line);
            prop_assert!(!line.contains('\r') && !line.contains('\n'));
        }
    }
}
