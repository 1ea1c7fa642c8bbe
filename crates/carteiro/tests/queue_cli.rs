//! `carteiro queue list|show|retry|delete` beside a running server (through
//! its control socket) and with the server stopped (on the spool directly).

mod common;

use carteiro_testkit::{SinkReply, SmtpSink};
use common::http::{api_key, wait_event};
use common::{Server, Setup, WAIT, python_json, recipients};

const BUSY: &str = "busy@dest.test";

/// Sends one message to `BUSY` and returns the queue id from the 250 reply.
async fn send(server: &Server, subject: &str) -> String {
    let reply = python_json(&format!(
        r#"
s = smtplib.SMTP("127.0.0.1", {port}, timeout=20)
s.ehlo("client.test")
s.mail("alice@sender.test")
s.rcpt("{BUSY}")
code, text = s.data(b"Subject: {subject}\r\n\r\nwaiting\r\n")
s.quit()
done([code, text.decode()])
"#,
        port = server.relay.port()
    ))
    .await;
    assert_eq!(reply[0], 250, "{reply}");
    let text = reply[1].as_str().unwrap_or_default();
    text.rsplit(' ').next().unwrap_or_default().to_string()
}

/// Waits until message `id` shows `attempts` attempts for its recipient.
async fn wait_attempts(server: &Server, id: &str, attempts: u64) -> serde_json::Value {
    let queue = server
        .wait_queue(&format!("{id} with {attempts} attempt(s)"), |q| {
            q.iter().any(|e| {
                e["id"] == id
                    && recipients(e)
                        .first()
                        .is_some_and(|r| r["attempts"] == attempts)
            })
        })
        .await;
    queue
        .into_iter()
        .find(|e| e["id"] == id)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_retry_delete_beside_a_running_server() {
    let sink = SmtpSink::builder()
        .rcpt_replies(BUSY, vec![SinkReply::new(451, "4.3.0 busy right now")])
        .start()
        .await;
    // An hour between attempts: any second attempt within the test is the
    // CLI's doing.
    let server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .delivery("retry_initial = \"1h\"")
        .start()
        .await;
    let id = send(&server, "queue cli").await;
    let entry = wait_attempts(&server, &id, 1).await;
    let rcpt = &recipients(&entry)[0];
    assert_eq!(rcpt["state"], "pending");
    assert!(
        rcpt["last_reply"]
            .as_str()
            .is_some_and(|r| r.starts_with("451")),
        "{entry:#}"
    );

    let table = server.cli(&["queue", "list"]).await;
    let row = table
        .lines()
        .find(|line| line.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not in the table:\n{table}"));
    for needle in ["pending", BUSY, "451"] {
        assert!(row.contains(needle), "{needle} not in {row:?}");
    }

    let shown = server.cli(&["queue", "show", &id]).await;
    for needle in [
        format!("id:        {id}"),
        "sender:    <alice@sender.test>".to_string(),
        format!("recipient: <{BUSY}>"),
        "state:        pending".to_string(),
        "attempts:     1".to_string(),
        "last reply:   451".to_string(),
    ] {
        assert!(shown.contains(&needle), "{needle:?} not in:\n{shown}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&server.cli(&["queue", "show", &id, "--json"]).await).unwrap();
    assert_eq!(json["id"], id.as_str());

    let retried = server.cli(&["queue", "retry", &id]).await;
    assert!(retried.starts_with("1 message"), "{retried}");
    sink.wait_for_rcpt_attempts(BUSY, 2, WAIT)
        .await
        .expect("queue retry makes the server try again at once");
    wait_attempts(&server, &id, 2).await;

    let deleted = server.cli(&["queue", "delete", &id]).await;
    assert!(deleted.contains("deleted"), "{deleted}");
    assert!(server.queue().await.is_empty(), "gone from the list");
    let show = server.carteiro.run(&["queue", "show", &id]).await.unwrap();
    assert!(!show.status.success(), "show of a deleted message fails");
    assert!(
        String::from_utf8_lossy(&show.stderr).contains("not in the queue"),
        "{show:?}"
    );
    // Even if the destination takes it now, a deleted message never goes.
    sink.set_rcpt_replies(BUSY, vec![SinkReply::new(250, "2.1.5 ok")]);
    let retried = server.cli(&["queue", "retry", "--all"]).await;
    assert!(retried.starts_with("0 message"), "{retried}");
    assert!(
        sink.messages().is_empty(),
        "a deleted message was delivered"
    );
    assert_eq!(sink.rcpt_attempts(BUSY), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_commands_work_on_the_spool_when_no_server_runs() {
    let sink = SmtpSink::builder()
        .rcpt_replies(
            BUSY,
            vec![
                SinkReply::new(451, "4.3.0 busy right now"),
                SinkReply::new(250, "2.1.5 ok"),
            ],
        )
        .start()
        .await;
    let mut server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .delivery("retry_initial = \"1h\"")
        .start()
        .await;
    let id = send(&server, "offline").await;
    wait_attempts(&server, &id, 1).await;
    // SIGKILL rather than SIGTERM: a clean stop after a delivery attempt
    // currently takes longer than the runner allows (see
    // durability::sigterm_after_a_delivery_exits_promptly). The state change
    // of the first attempt may not be on disk yet after a crash.
    server.carteiro.kill9().await.expect("kill carteiro");

    let queue = server.queue().await;
    assert_eq!(queue.len(), 1, "{queue:#?}");
    assert_eq!(queue[0]["id"], id.as_str());
    assert_eq!(queue[0]["sender"], "alice@sender.test");
    let rcpt = &recipients(&queue[0])[0];
    assert_eq!(rcpt["address"], BUSY, "{rcpt:#}");
    assert_eq!(rcpt["state"], "pending", "{rcpt:#}");
    let attempts = rcpt["attempts"].as_u64().unwrap_or(99);
    assert!(attempts <= 1, "{rcpt:#}");
    if attempts == 1 {
        assert!(
            rcpt["last_reply"]
                .as_str()
                .is_some_and(|r| r.starts_with("451")),
            "{rcpt:#}"
        );
    }
    let table = server.cli(&["queue", "list"]).await;
    assert!(table.contains(&id) && table.contains("pending"), "{table}");
    let shown = server.cli(&["queue", "show", &id]).await;
    assert!(shown.contains(&format!("recipient: <{BUSY}>")), "{shown}");

    // An offline retry makes it due now: the next start tries at once,
    // although the retry delay is an hour.
    let retried = server.cli(&["queue", "retry", &id]).await;
    assert!(retried.starts_with("1 message"), "{retried}");
    server.carteiro.restart().await.expect("restart");
    let messages = sink.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(messages[0].rcpt_to, [BUSY]);
    server
        .wait_queue("empty once delivered", |q| q.is_empty())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_delete_records_a_deleted_event() {
    let sink = SmtpSink::builder()
        .rcpt_replies(BUSY, vec![SinkReply::new(451, "4.3.0 busy right now")])
        .start()
        .await;
    let mut server = Setup::new()
        .trusted_loopback()
        .route(&["*"], sink.addr())
        .delivery("retry_initial = \"1h\"")
        .start()
        .await;
    let id = send(&server, "deleted offline").await;
    wait_attempts(&server, &id, 1).await;
    // The message's record is written in batches after the 250; this test
    // is about the delete, so the record is there before the server dies.
    let key = api_key(&server, "default").await;
    wait_event(&server, &key, &id, "received").await;
    server.carteiro.kill9().await.expect("kill carteiro");

    let deleted = server.cli(&["queue", "delete", &id]).await;
    assert!(deleted.contains("deleted"), "{deleted}");
    assert!(server.queue().await.is_empty(), "gone from the spool");

    // The timeline says so once the server runs again, as after an online
    // delete.
    server.carteiro.restart().await.expect("restart");
    let message = wait_event(&server, &key, &id, "deleted").await;
    let deleted: Vec<&serde_json::Value> = message["events"]
        .as_array()
        .map(|events| events.iter().filter(|e| e["type"] == "deleted").collect())
        .unwrap_or_default();
    assert_eq!(deleted.len(), 1, "{message:#}");
    assert_eq!(deleted[0]["recipient"], BUSY);
    let states: Vec<&serde_json::Value> =
        recipients(&message).iter().map(|r| &r["state"]).collect();
    assert_eq!(states, ["deleted"], "{message:#}");
    assert_eq!(
        sink.rcpt_attempts(BUSY),
        1,
        "nothing attempted after the delete"
    );
}
