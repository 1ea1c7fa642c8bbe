//! A spool that recovers from a full disk by itself (issue 21): the data
//! directory on a 16 MiB tmpfs, filled by a file or by the queue's own
//! backlog. New mail gets `452 4.3.1` while it is full and is accepted again
//! once there is room, without a restart; the backlog drains; `serve`
//! starts on a full disk; nothing delivered is delivered again after a
//! restart; every acknowledged message keeps its events. Needs root to
//! mount the tmpfs: without it each test says so and checks nothing.

mod common;

use carteiro_testkit::{SmtpSink, free_port};
use common::Setup;
use common::client::Client;
use common::http::{api_key, curl, wait_event};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// A 16 MiB tmpfs mounted for the test's lifetime (unmounted on drop).
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount() -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("fs");
        std::fs::create_dir_all(&path).expect("mount point");
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(&path)
            .output();
        match output {
            Ok(out) if out.status.success() => Some(Tmpfs { path, _dir: dir }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs for the data directory (needs root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(err) => {
                eprintln!("SKIPPED: cannot run mount: {err}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

fn setup(fs: &Tmpfs, smarthost: SocketAddr) -> Setup {
    Setup::new()
        .trusted_loopback()
        .route(&["*"], smarthost)
        .delivery("retry_initial = \"1s\"")
        .delivery("retry_max = \"2s\"")
        .data_dir(&fs.path.join("data"))
        .extra("[spool]\nsegment_size = \"256KiB\"\n")
}

/// Writes a file until the disk is full.
fn fill_with_file(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let chunk = [0u8; 512];
    while file.write_all(&chunk).is_ok() {}
}

/// A message acknowledged with `250`: its Message-ID header and the id
/// Carteiro gave it.
#[derive(Clone, Debug)]
struct Acked {
    header: String,
    id: String,
}

/// Sends one message of about `size` bytes.
async fn send(client: &mut Client, name: &str, size: usize) -> (common::client::Outcome, String) {
    let header = format!("<{name}@full.test>");
    let line = "x".repeat(76) + "\r\n";
    let body = format!(
        "Message-ID: {header}\r\nSubject: {name}\r\n\r\n{}",
        line.repeat(size / line.len() + 1)
    );
    let outcome = client
        .send("sender@full.test", "rcpt@dest.test", &body)
        .await
        .expect("the session stays up while the disk is full");
    (outcome, header)
}

fn acked(outcome: &common::client::Outcome, header: String) -> Acked {
    let id = outcome
        .text
        .rsplit(' ')
        .next()
        .expect("queued as ID")
        .trim()
        .to_string();
    Acked { header, id }
}

/// Sends messages until one is refused; returns those acknowledged and
/// checks the refusal is `452 4.3.1`.
async fn send_until_refused(client: &mut Client, prefix: &str, size: usize) -> Vec<Acked> {
    let mut done = Vec::new();
    for n in 0..1000 {
        let (outcome, header) = send(client, &format!("{prefix}-{n}"), size).await;
        if outcome.code == 250 {
            done.push(acked(&outcome, header));
            continue;
        }
        assert_eq!(outcome.code, 452, "{outcome:?}");
        assert!(outcome.text.starts_with("452 4.3.1"), "{outcome:?}");
        return done;
    }
    panic!("the disk never filled");
}

/// Sends a small message every 200 ms until it is accepted, within `limit`.
async fn accepted_within(
    client: &mut Client,
    name: &str,
    limit: Duration,
    server: &common::Server,
) -> Acked {
    let started = Instant::now();
    loop {
        let (outcome, header) = send(client, name, 100).await;
        if outcome.code == 250 {
            return acked(&outcome, header);
        }
        assert_eq!(outcome.code, 452, "{outcome:?}");
        assert!(
            started.elapsed() < limit,
            "not accepted again within {limit:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many times the sink got each Message-ID.
fn deliveries(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in sink.messages() {
        if let Some(id) = message.header("Message-ID") {
            *counts.entry(id.trim().to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// Waits until the sink holds every one of `acked` (at most 90 s).
async fn all_delivered(sink: &SmtpSink, acked: &[Acked], server: &common::Server) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = deliveries(sink);
        let missing: Vec<&str> = acked
            .iter()
            .filter(|a| !got.contains_key(&a.header))
            .map(|a| a.header.as_str())
            .collect();
        if missing.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            // What the sink has, to tell a message never sent from one sent
            // with other content.
            let mut got: Vec<(String, usize)> = got.into_iter().collect();
            got.sort();
            let without_id: Vec<String> = sink
                .messages()
                .iter()
                .filter(|m| m.header("Message-ID").is_none())
                .map(|m| String::from_utf8_lossy(&m.data[..m.data.len().min(600)]).into_owned())
                .collect();
            panic!(
                "{} not delivered: {missing:?}\nthe sink has {} messages: {got:?}\n\
                 without a Message-ID: {without_id:#?}\nlog:\n{}",
                missing.len(),
                sink.messages().len(),
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Segment files of no more than their header: what a failed rotation
/// used to leave behind.
fn empty_segments(spool: &Path) -> Vec<String> {
    std::fs::read_dir(spool)
        .expect("spool dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .filter(|e| e.metadata().is_ok_and(|m| m.len() <= 64))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn spool_bytes(spool: &Path) -> u64 {
    std::fs::read_dir(spool)
        .expect("spool dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Log lines about the spool's full disk or its failed writes.
fn full_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("spool") && (l.contains("full") || l.contains("fail")))
        .count()
}

/// Every acknowledged message has its `received` and `delivered` events.
async fn timeline_complete(server: &common::Server, acked: &[Acked]) {
    let key = api_key(server, "default").await;
    for message in acked {
        wait_event(server, &key, &message.id, "received").await;
        wait_event(server, &key, &message.id, "delivered").await;
    }
}

/// The value of the `carteiro_spool_full` gauge.
async fn full_gauge(server: &common::Server) -> Option<f64> {
    let answer = curl(server, "GET", "/metrics", None, None).await;
    let text = answer.body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|line| line.strip_prefix("carteiro_spool_full "))
        .and_then(|value| value.trim().parse().ok())
}

/// The `alert` events the default account sees.
async fn alerts(server: &common::Server) -> Vec<serde_json::Value> {
    let key = api_key(server, "default").await;
    let answer = curl(server, "GET", "/api/v1/events?type=alert", Some(&key), None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_filling_the_disk_gets_452_and_mail_is_accepted_again_once_it_is_gone() {
    let Some(fs) = Tmpfs::mount() else { return };
    let sink = SmtpSink::builder().start().await;
    let server = setup(&fs, sink.addr()).start().await;
    let mut client = Client::connect(server.relay).await.expect("connect");
    let mut acked = Vec::new();
    for n in 0..3 {
        let (outcome, header) = send(&mut client, &format!("early-{n}"), 20_000).await;
        assert_eq!(outcome.code, 250, "{outcome:?}");
        acked.push(acked_of(&outcome, header));
    }

    let filler = fs.path.join("filler");
    fill_with_file(&filler);
    acked.extend(send_until_refused(&mut client, "while-full", 20_000).await);
    // Still refused a while later: nothing made room.
    for n in 0..5 {
        let (outcome, _) = send(&mut client, &format!("refused-{n}"), 20_000).await;
        assert_eq!(outcome.code, 452, "{outcome:?}");
    }
    assert_eq!(full_gauge(&server).await, Some(1.0));

    std::fs::remove_file(&filler).expect("remove the filler");
    acked.push(accepted_within(&mut client, "after", Duration::from_secs(10), &server).await);
    assert_eq!(full_gauge(&server).await, Some(0.0));
    assert_eq!(
        empty_segments(&fs.path.join("data/spool")),
        Vec::<String>::new()
    );
    // More than a segment's worth: rotation works again.
    for n in 0..20 {
        let (outcome, header) = send(&mut client, &format!("later-{n}"), 20_000).await;
        assert_eq!(outcome.code, 250, "{outcome:?}\n{}", server.log());
        acked.push(acked_of(&outcome, header));
    }

    all_delivered(&sink, &acked, &server).await;
    timeline_complete(&server, &acked).await;
    let alerts = alerts(&server).await;
    let states: Vec<&str> = alerts
        .iter()
        .filter(|a| a["details"]["alert"] == "spool_full")
        .filter_map(|a| a["details"]["state"].as_str())
        .collect();
    assert_eq!(states, ["started", "ended"], "{alerts:?}");
    assert!(full_lines(&server.log()) < 15, "{}", server.log());
}

fn acked_of(outcome: &common::client::Outcome, header: String) -> Acked {
    acked(outcome, header)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filled_by_the_backlog_drains_when_delivery_resumes() {
    let Some(fs) = Tmpfs::mount() else { return };
    // Nothing listens there yet: every attempt is deferred.
    let smarthost = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = setup(&fs, smarthost).start().await;
    let mut client = Client::connect(server.relay).await.expect("connect");
    let acked_before = send_until_refused(&mut client, "backlog", 100_000).await;
    assert!(acked_before.len() > 20, "{}", acked_before.len());
    let mut acked = acked_before.clone();
    let spool = fs.path.join("data/spool");
    let full_size = spool_bytes(&spool);
    // Attempts keep failing while the disk stays full (with a retry every
    // second or two): no tight loop of errors.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (outcome, _) = send(&mut client, "still-full", 100).await;
    assert_eq!(outcome.code, 452, "{outcome:?}");

    let sink = SmtpSink::builder().bind(smarthost).start().await;
    all_delivered(&sink, &acked, &server).await;
    acked.push(accepted_within(&mut client, "after", Duration::from_secs(30), &server).await);
    all_delivered(&sink, &acked, &server).await;
    // Delivered mail was reclaimed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while spool_bytes(&spool) > full_size / 4 {
        assert!(
            Instant::now() < deadline,
            "spool still holds {} of {full_size} bytes",
            spool_bytes(&spool)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = server.log();
    assert!(full_lines(&log) < 15, "{} lines:\n{log}", full_lines(&log));
    for (id, count) in deliveries(&sink) {
        assert_eq!(count, 1, "{id} delivered {count} times");
    }
    timeline_complete(&server, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_on_a_full_disk_delivers_and_a_restart_delivers_nothing_again() {
    let Some(fs) = Tmpfs::mount() else { return };
    let smarthost = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut server = setup(&fs, smarthost).start().await;
    let mut client = Client::connect(server.relay).await.expect("connect");
    let mut acked = send_until_refused(&mut client, "backlog", 100_000).await;
    assert!(acked.len() > 20, "{}", acked.len());
    drop(client);
    server.carteiro.stop().await.expect("stop");
    // Not a byte left.
    let filler = fs.path.join("filler");
    fill_with_file(&filler);

    let sink = SmtpSink::builder().bind(smarthost).start().await;
    server.carteiro.restart().await.unwrap_or_else(|err| {
        panic!(
            "serve does not start on a full disk: {err:#}\n{}",
            server.log()
        )
    });
    all_delivered(&sink, &acked, &server).await;
    let mut client = Client::connect(server.relay).await.expect("connect");
    acked.push(accepted_within(&mut client, "after", Duration::from_secs(30), &server).await);
    all_delivered(&sink, &acked, &server).await;
    drop(client);
    timeline_complete(&server, &acked).await;

    // After the episode, a restart finds nothing left to deliver.
    server.wait_queue("an empty queue", |q| q.is_empty()).await;
    server.carteiro.restart().await.expect("restart");
    assert_eq!(server.queue().await, Vec::<serde_json::Value>::new());
    for (id, count) in deliveries(&sink) {
        assert_eq!(count, 1, "{id} delivered {count} times\n{}", server.log());
    }
    std::fs::remove_file(&filler).expect("remove the filler");
}
