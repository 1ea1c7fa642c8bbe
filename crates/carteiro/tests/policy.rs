//! Never an open relay: without AUTH or a trusted network no listener takes
//! mail for other domains, whatever the address looks like; AUTH is offered
//! only over TLS, wrong passwords are refused and right ones work.

mod common;

use common::{Server, Setup, WAIT, python_json, swaks};
use serde_json::Value;

/// Recipients that tried to sneak mail through relays over the years. The
/// flag says whether the address names a foreign domain after its rightmost
/// `@` (then the answer must be the relay refusal itself); the others name
/// our own host or are malformed, and any permanent refusal will do.
const TRICKS: &[(&str, bool)] = &[
    ("<victim@elsewhere.test>", true),
    ("<VICTIM@ELSEWHERE.TEST>", true),
    ("<Victim@ElseWhere.Test>", true),
    ("<postmaster@elsewhere.test>", true),
    // percent hack
    ("<victim%elsewhere.test@carteiro.test>", false),
    ("<victim%elsewhere.test@CARTEIRO.TEST>", false),
    ("<\"victim%elsewhere.test\"@carteiro.test>", false),
    // quoted local part holding an @
    ("<\"victim@elsewhere.test\"@carteiro.test>", false),
    ("<\"victim@elsewhere.test\">", false),
    // source routes
    ("<@carteiro.test:victim@elsewhere.test>", true),
    ("<@carteiro.test,@relay.test:victim@elsewhere.test>", true),
    // bang paths
    ("<elsewhere.test!victim@carteiro.test>", false),
    ("<elsewhere.test!victim>", false),
    // two @
    ("<victim@elsewhere.test@carteiro.test>", false),
    ("<victim@carteiro.test@elsewhere.test>", false),
    // trailing dots
    ("<victim@elsewhere.test.>", false),
    ("<victim@carteiro.test.>", false),
    // address literals (the parser refuses them with 501 5.1.3 today)
    ("<victim@[192.0.2.1]>", false),
    ("<victim@[127.0.0.1]>", false),
    ("<victim@[IPv6:::1]>", false),
    // no angle brackets
    ("victim@elsewhere.test", false),
];

/// Tries each trick in its own session on the relay listener: EHLO, MAIL,
/// RCPT trick, DATA. Returns `[rcpt, mail reply, rcpt reply, data reply]`.
async fn try_tricks(port: u16) -> Vec<Value> {
    let tricks: Vec<&str> = TRICKS.iter().map(|(t, _)| *t).collect();
    let tricks = serde_json::to_string(&tricks).unwrap();
    let out = python_json(&format!(
        r#"
results = []
for rcpt in {tricks}:
    c = Raw({port})
    c.reply()
    c.cmd("EHLO client.test")
    mail = c.cmd("MAIL FROM:<spammer@sender.test>")
    answer = c.cmd("RCPT TO:" + rcpt)
    data = c.cmd("DATA")
    if data[0] == 354:
        c.send("Subject: relayed\r\n\r\nrelayed\r\n.\r\n")
        data = c.reply()
    c.cmd("QUIT")
    results.append([rcpt, mail, answer, data])
done(results)
"#
    ))
    .await;
    out.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_listener_refuses_untrusted_clients_and_every_trick() {
    let sink = common::sink().await;
    // No trusted network at all: 127.0.0.1 is a stranger here.
    let server = Setup::new()
        .trusted("192.0.2.0/24")
        .route(&["*"], sink.addr())
        .start()
        .await;
    let results = try_tricks(server.relay.port()).await;
    assert_eq!(results.len(), TRICKS.len());
    for (result, (trick, foreign)) in results.iter().zip(TRICKS) {
        let text = |i: usize| result[i][1].as_str().unwrap_or_default().to_string();
        eprintln!("RCPT TO:{trick} -> {}", text(2));
        assert_eq!(result[1][0], 250, "MAIL for {trick}: {}", text(1));
        let code = result[2][0].as_u64().unwrap_or_default();
        assert!(
            code >= 500,
            "RCPT TO:{trick} must be refused, got {}",
            text(2)
        );
        if *foreign {
            assert!(
                text(2).starts_with("554 5.7.1"),
                "RCPT TO:{trick}: expected 554 5.7.1, got {}",
                text(2)
            );
        }
        assert_eq!(
            result[3][0],
            503,
            "DATA after the refused {trick}: {}",
            text(3)
        );
    }
    assert_nothing_queued_or_delivered(&server, &sink).await;
}

async fn assert_nothing_queued_or_delivered(server: &Server, sink: &carteiro_testkit::SmtpSink) {
    assert!(server.queue().await.is_empty(), "nothing may be queued");
    assert!(
        sink.messages().is_empty(),
        "nothing may be delivered: {:?}",
        sink.messages()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submission_listeners_require_auth() {
    let sink = common::sink().await;
    // Even a trusted network does not open the submission listeners.
    let server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .start()
        .await;
    let submission = server.submission.to_string();
    let submissions = server.submissions.to_string();
    let message = [
        "--from",
        "alice@sender.test",
        "--to",
        "bob@dest.test",
        "--helo",
        "client.test",
    ];

    // STARTTLS, no AUTH.
    let mut args = vec!["--server", &submission, "--tls"];
    args.extend(message);
    let out = swaks(&args).await;
    assert!(!out.ok, "{}", out.transcript);
    assert!(out.saw("530 5.7.0"), "{}", out.transcript);

    // No TLS at all: told to STARTTLS first.
    let mut args = vec!["--server", &submission];
    args.extend(message);
    let out = swaks(&args).await;
    assert!(!out.ok, "{}", out.transcript);
    assert!(out.saw("530 5.7.0"), "{}", out.transcript);

    // Implicit TLS, no AUTH.
    let mut args = vec!["--server", &submissions, "--tlsc"];
    args.extend(message);
    let out = swaks(&args).await;
    assert!(!out.ok, "{}", out.transcript);
    assert!(out.saw("530 5.7.0"), "{}", out.transcript);

    assert_nothing_queued_or_delivered(&server, &sink).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused_and_the_right_one_delivers() {
    let sink = common::sink().await;
    let server = Setup::new().route(&["*"], sink.addr()).start().await;
    server
        .add_login("shop", "shop-app", "correct horse battery")
        .await;
    server.cli(&["domain", "add", "shop", "shop.test"]).await;
    let submission = server.submission.to_string();
    let submissions = server.submissions.to_string();

    let cases = [
        ("--tls", &submission, "PLAIN", "starttls plain"),
        ("--tls", &submission, "LOGIN", "starttls login"),
        ("--tlsc", &submissions, "PLAIN", "implicit plain"),
        ("--tlsc", &submissions, "LOGIN", "implicit login"),
    ];
    for (tls, addr, mechanism, subject) in cases {
        let out = login_and_send(addr, tls, mechanism, "wrong password", subject).await;
        assert!(!out.ok, "{subject}: {}", out.transcript);
        assert!(
            out.saw("535 5.7.8"),
            "{subject}, wrong password:\n{}",
            out.transcript
        );
    }
    for (tls, addr, mechanism, subject) in cases {
        let out = login_and_send(addr, tls, mechanism, "correct horse battery", subject).await;
        assert!(out.ok, "{subject}:\n{}", out.transcript);
        assert!(out.saw("235 2.7.0"), "{subject}:\n{}", out.transcript);
    }

    let messages = sink.wait_for_messages(cases.len(), WAIT).await.unwrap();
    let mut subjects: Vec<String> = messages
        .iter()
        .filter_map(|m| m.header("Subject"))
        .collect();
    subjects.sort();
    let mut expected: Vec<String> = cases.iter().map(|c| c.3.to_string()).collect();
    expected.sort();
    assert_eq!(subjects, expected, "exactly the authenticated messages");
    for message in &messages {
        // The account's own domain: signed, with a VERP return path.
        assert!(
            message.mail_from.starts_with("b-")
                && message.mail_from.ends_with("@bounces.shop.test"),
            "{}",
            message.mail_from
        );
        assert_eq!(message.rcpt_to, ["customer@dest.test"]);
        let (received, _) = common::split_received(&message.data);
        assert!(received.contains("with ESMTPSA"), "{received}");
    }
}

/// swaks with AUTH as shop-app, sending one message with `subject`.
async fn login_and_send(
    server: &str,
    tls: &str,
    mechanism: &str,
    password: &str,
    subject: &str,
) -> common::Swaks {
    swaks(&[
        "--server",
        server,
        tls,
        "--auth",
        mechanism,
        "--auth-user",
        "shop-app",
        "--auth-password",
        password,
        "--helo",
        "client.test",
        "--from",
        "orders@shop.test",
        "--to",
        "customer@dest.test",
        "--header",
        &format!("Subject: {subject}"),
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_offered_only_over_tls_and_starttls_only_once() {
    let server = Setup::new().start().await;
    let features = python_json(&format!(
        r#"
s = smtplib.SMTP("127.0.0.1", {submission}, timeout=20)
s.ehlo("client.test")
before = dict(s.esmtp_features)
early_auth = s.docmd("AUTH", "PLAIN AHNob3AtYXBwAHNlY3JldA==")
s.starttls(context=tls_context())
s.ehlo("client.test")
after = dict(s.esmtp_features)
again = s.docmd("STARTTLS")
s.quit()

t = smtplib.SMTP_SSL("127.0.0.1", {submissions}, timeout=20, context=tls_context())
t.ehlo("client.test")
implicit = dict(t.esmtp_features)
t.quit()

r = smtplib.SMTP("127.0.0.1", {relay}, timeout=20)
r.ehlo("client.test")
relay = dict(r.esmtp_features)
r.quit()
done({{"before": before, "early_auth": [early_auth[0], early_auth[1].decode()],
      "after": after, "again": [again[0], again[1].decode()],
      "implicit": implicit, "relay": relay}})
"#,
        submission = server.submission.port(),
        submissions = server.submissions.port(),
        relay = server.relay.port(),
    ))
    .await;
    let has = |set: &str, key: &str| features[set].get(key).is_some();
    assert!(has("before", "starttls"), "{features:#}");
    assert!(
        !has("before", "auth"),
        "AUTH offered before TLS: {features:#}"
    );
    assert_eq!(
        features["early_auth"][0], 530,
        "AUTH before TLS: {features:#}"
    );
    assert!(
        !has("after", "starttls"),
        "STARTTLS offered again: {features:#}"
    );
    let auth = features["after"]["auth"].as_str().unwrap_or_default();
    assert!(
        auth.contains("PLAIN") && auth.contains("LOGIN"),
        "{features:#}"
    );
    assert_eq!(features["again"][0], 503, "{features:#}");
    assert!(!has("implicit", "starttls"), "{features:#}");
    assert!(has("implicit", "auth"), "{features:#}");
    assert!(!has("relay", "auth"), "{features:#}");
    assert!(
        has("relay", "pipelining") && has("relay", "chunking"),
        "{features:#}"
    );
}
