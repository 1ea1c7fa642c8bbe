//! The wire protocol from real clients: PIPELINING (swaks), BDAT chunks
//! arriving byte-exact, and SMTP smuggling attempts that must not split one
//! DATA into two messages.

mod common;

use carteiro_testkit::SmtpSink;
use common::{Setup, WAIT, python_json, split_received, swaks};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggled_end_of_data_does_not_split_the_message() {
    let sink = common::sink().await;
    let server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .start()
        .await;
    let out = python_json(&format!(
        r#"
tricks = {{
    "lf-dot-lf": b"\n.\n",
    "crlf-dot-lf": b"\r\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-cr": b"\r.\r",
    "crlf-dot-cr": b"\r\n.\r",
}}
results = {{}}
for name, trick in tricks.items():
    c = Raw({port})
    c.reply()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<alice@sender.test>")
    c.cmd("RCPT TO:<bob@dest.test>")
    start = c.cmd("DATA")
    c.send(b"Subject: smuggle " + name.encode() + b"\r\n\r\nfirst message" + trick
        + b"MAIL FROM:<evil@sender.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\n"
        + b"Subject: smuggled\r\n\r\nsmuggled message\r\n.\r\n")
    c.send("QUIT\r\n")
    results[name] = [start] + c.drain()
done(results)
"#,
        port = server.relay.port()
    ))
    .await;
    for (name, replies) in out.as_object().unwrap() {
        let codes: Vec<u64> = replies
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_u64().unwrap_or_default())
            .collect();
        // 354 for DATA, one verdict for the whole content, 221 for QUIT:
        // anything in between would be the smuggled commands answered.
        assert_eq!(codes, [354, 554, 221], "{name}: {replies:#}");
    }
    assert!(server.queue().await.is_empty(), "nothing queued");

    // A clean message afterwards arrives alone.
    let reply = python_json(&format!(
        r#"
s = smtplib.SMTP("127.0.0.1", {port}, timeout=20)
s.sendmail("alice@sender.test", ["bob@dest.test"], b"Subject: clean\r\n\r\nclean\r\n")
s.quit()
done(0)
"#,
        port = server.relay.port()
    ))
    .await;
    assert_eq!(reply, 0);
    sink.wait_for_messages(1, WAIT).await.unwrap();
    server
        .wait_queue("empty once delivered", |q| q.is_empty())
        .await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0].header("Subject").as_deref(), Some("clean"));
    assert_eq!(sink.rcpt_attempts("victim@dest.test"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_pipelining_on_relay_and_submission() {
    let sink = common::sink().await;
    let server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .start()
        .await;
    server.add_login("shop", "shop-app", "s3cret-pass").await;
    server.cli(&["domain", "add", "shop", "shop.test"]).await;
    let relay = server.relay.to_string();
    let submission = server.submission.to_string();

    let out = swaks(&[
        "--server",
        &relay,
        "--pipeline",
        "--helo",
        "client.test",
        "--from",
        "alice@sender.test",
        "--to",
        "bob@dest.test,carol@dest.test",
        "--header",
        "Subject: pipelined relay",
    ])
    .await;
    assert!(out.ok, "{}", out.transcript);
    assert!(out.transcript.contains("PIPELINING"), "{}", out.transcript);

    let out = swaks(&[
        "--server",
        &submission,
        "--tls",
        "--pipeline",
        "--auth",
        "PLAIN",
        "--auth-user",
        "shop-app",
        "--auth-password",
        "s3cret-pass",
        "--helo",
        "client.test",
        "--from",
        "orders@shop.test",
        "--to",
        "dave@dest.test",
        "--header",
        "Subject: pipelined submission",
    ])
    .await;
    assert!(out.ok, "{}", out.transcript);

    let messages = common::wait_rcpts(&sink, 3).await;
    let mut subjects: Vec<String> = messages
        .iter()
        .filter_map(|m| m.header("Subject"))
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects, ["pipelined relay", "pipelined submission"]);
}

/// Content with what CHUNKING must leave alone: lines starting with dots
/// and a chunk boundary in the middle of a line.
const PART1: &str = "From: alice@sender.test\r\nSubject: bdat test\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bdat-1@sender.test>\r\n\r\n.one leading dot\r\nthe chunk ends in the mid";
const PART2: &str = "dle of this line\r\n..two leading dots\r\n.\r\nend\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bdat_chunks_arrive_byte_exact() {
    // One destination takes DATA (dot-stuffing on the way out), the other
    // CHUNKING: the content must come out the same at both.
    let data_sink = common::sink().await;
    let bdat_sink = SmtpSink::builder().chunking(true).start().await;
    let server = Setup::new()
        .trusted_loopback()
        .route(&["data.test"], data_sink.addr())
        .route(&["bdat.test"], bdat_sink.addr())
        .start()
        .await;
    let part1 = serde_json::to_string(PART1).unwrap();
    let part2 = serde_json::to_string(PART2).unwrap();
    let out = python_json(&format!(
        r#"
part1 = {part1}.encode()
part2 = {part2}.encode()
c = Raw({port})
c.reply()
ehlo = c.cmd("EHLO client.test")
# Everything pipelined in one write, as a CHUNKING client may.
c.send(b"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@data.test>\r\nRCPT TO:<bob@bdat.test>\r\n"
    + b"BDAT %d\r\n" % len(part1) + part1
    + b"BDAT %d LAST\r\n" % len(part2) + part2)
replies = [c.reply() for _ in range(5)]
c.cmd("QUIT")
done({{"ehlo": ehlo, "replies": replies}})
"#,
        port = server.relay.port()
    ))
    .await;
    assert!(
        out["ehlo"][1]
            .as_str()
            .unwrap_or_default()
            .contains("CHUNKING"),
        "{out:#}"
    );
    let codes: Vec<u64> = out["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_u64().unwrap_or_default())
        .collect();
    assert_eq!(codes, [250, 250, 250, 250, 250], "{out:#}");

    let expected = format!("{PART1}{PART2}");
    for (sink, via_bdat) in [(&data_sink, false), (&bdat_sink, true)] {
        let messages = sink.wait_for_messages(1, WAIT).await.unwrap();
        let message = &messages[0];
        assert_eq!(message.via_bdat, via_bdat);
        let (received, rest) = split_received(&message.data);
        assert!(received.contains("with ESMTP"), "{received}");
        assert_eq!(String::from_utf8_lossy(rest), expected);
    }
}
