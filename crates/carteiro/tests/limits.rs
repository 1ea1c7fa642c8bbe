//! Limits the client hears about: message size (declared and actual),
//! recipients per message, connections per client address.

mod common;

use common::{Setup, python_json, wait_rcpts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_messages_and_extra_recipients_are_refused() {
    let sink = common::sink().await;
    let server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .smtp("max_message_size = \"10KB\"")
        .smtp("max_recipients = 3")
        .start()
        .await;
    let out = python_json(&format!(
        r#"
c = Raw({port})
c.reply()
ehlo = c.cmd("EHLO client.test")
declared = c.cmd("MAIL FROM:<alice@sender.test> SIZE=20000")
c.cmd("RSET")
c.cmd("MAIL FROM:<alice@sender.test>")
c.cmd("RCPT TO:<big@dest.test>")
c.cmd("DATA")
c.send("Subject: too big\r\n\r\n" + ("x" * 78 + "\r\n") * 200 + ".\r\n")
actual = c.reply()
c.cmd("MAIL FROM:<alice@sender.test>")
rcpts = [c.cmd("RCPT TO:<r%d@dest.test>" % i) for i in range(1, 6)]
c.cmd("DATA")
c.send("Subject: many\r\n\r\nthree of five\r\n.\r\n")
accepted = c.reply()
c.cmd("QUIT")
done({{"ehlo": ehlo, "declared": declared, "actual": actual, "rcpts": rcpts, "accepted": accepted}})
"#,
        port = server.relay.port()
    ))
    .await;
    let text = |key: &str| out[key][1].as_str().unwrap_or_default().to_string();
    assert!(text("ehlo").contains("SIZE 10000"), "{out:#}");
    assert!(text("declared").starts_with("552 5.3.4"), "{out:#}");
    assert!(text("actual").starts_with("552 5.3.4"), "{out:#}");
    let rcpts: Vec<String> = out["rcpts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_str().unwrap_or_default().to_string())
        .collect();
    for accepted in &rcpts[..3] {
        assert!(accepted.starts_with("250"), "{rcpts:?}");
    }
    for refused in &rcpts[3..] {
        assert!(refused.starts_with("452 4.5.3"), "{rcpts:?}");
    }
    assert!(text("accepted").starts_with("250"), "{out:#}");

    // Only the three accepted recipients get the message; the oversize one
    // goes nowhere.
    wait_rcpts(&sink, 3).await;
    server
        .wait_queue("empty once delivered", |q| q.is_empty())
        .await;
    let messages = sink.messages();
    let mut rcpts: Vec<&str> = messages
        .iter()
        .flat_map(|m| m.rcpt_to.iter().map(String::as_str))
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["r1@dest.test", "r2@dest.test", "r3@dest.test"]);
    assert!(
        messages
            .iter()
            .all(|m| m.header("Subject").as_deref() == Some("many")),
        "the oversize message was delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_connection_from_one_address_gets_421() {
    let sink = common::sink().await;
    let server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .smtp("max_connections_per_ip = 2")
        .start()
        .await;
    let out = python_json(&format!(
        r#"
import time

def greeted(port):
    # The start-up probes of the test runner may still hold a slot for a
    # moment: retry a refused connection until a deadline.
    deadline = time.time() + 20
    while True:
        c = Raw(port)
        greeting = c.reply()
        if greeting[0] == 220:
            return c
        c.sock.close()
        if time.time() > deadline:
            raise RuntimeError("never greeted: %r" % greeting)
        time.sleep(0.05)

first = greeted({relay})
second = greeted({relay})
third = Raw({relay})
third_greeting = third.reply()
third_rest = third.drain()
# The limit is per address over all listeners.
fourth = Raw({submission})
fourth_greeting = fourth.reply()

results = []
for c, rcpt in ((first, "one@dest.test"), (second, "two@dest.test")):
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<alice@sender.test>")
    c.cmd("RCPT TO:<%s>" % rcpt)
    c.cmd("DATA")
    c.send("Subject: limit\r\n\r\nstill works\r\n.\r\n")
    results.append(c.reply())
    c.cmd("QUIT")
done({{"third": third_greeting, "third_rest": third_rest,
      "fourth": fourth_greeting, "results": results}})
"#,
        relay = server.relay.port(),
        submission = server.submission.port(),
    ))
    .await;
    let third = out["third"][1].as_str().unwrap_or_default();
    assert!(third.starts_with("421 4.7.0"), "{out:#}");
    assert_eq!(
        out["third_rest"],
        serde_json::json!([]),
        "closed after 421: {out:#}"
    );
    let fourth = out["fourth"][1].as_str().unwrap_or_default();
    assert!(fourth.starts_with("421 4.7.0"), "{out:#}");
    for result in out["results"].as_array().unwrap() {
        assert_eq!(result[0], 250, "the first two still work: {out:#}");
    }
    wait_rcpts(&sink, 2).await;
}
