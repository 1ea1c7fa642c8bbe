//! The crash test: many concurrent sessions send mail, the server is killed
//! with `kill -9` in the middle of it, restarted, and every message that got
//! its `250` must arrive. Duplicates (delivered before the crash, recorded
//! after) are counted and reported; lost messages fail the test.

mod common;

use carteiro_testkit::{SmtpSink, free_port};
use common::Setup;
use common::client::Client;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const SESSIONS: usize = 16;
/// The server is killed once this many messages were acknowledged.
const KILL_AFTER: usize = 2000;
/// Each session stops after this many messages (bounds the test).
const PER_SESSION: usize = 400;
const DELIVERY_WAIT: Duration = Duration::from_secs(60);

/// One session: sends messages until told to stop or the server dies;
/// records the Message-ID of every message answered 250.
async fn session(
    addr: SocketAddr,
    index: usize,
    acked: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
) {
    let Ok(mut client) = Client::connect(addr).await else {
        return;
    };
    let filler = "payload line of the crash test\r\n".repeat(40);
    for n in 0..PER_SESSION {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let id = format!("<crash-{index}-{n}@load.test>");
        let body = format!("Message-ID: {id}\r\nSubject: crash test {index}/{n}\r\n\r\n{filler}");
        match client.send("load@load.test", "rcpt@dest.test", &body).await {
            Ok(outcome) if outcome.code == 250 => {
                acked.lock().unwrap().insert(id);
            }
            _ => return,
        }
    }
}

/// Loads the server, kills it once `KILL_AFTER` messages were acknowledged,
/// and returns the acknowledged Message-IDs.
async fn load_and_kill(server: &mut common::Server) -> HashSet<String> {
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..SESSIONS)
        .map(|i| {
            tokio::spawn(session(
                server.relay,
                i,
                Arc::clone(&acked),
                Arc::clone(&stop),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "only {} messages acknowledged in 60 s\n{}",
            acked.lock().unwrap().len(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Killed while sessions are in the middle of their transactions.
    server.carteiro.kill9().await.expect("kill -9");
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= KILL_AFTER);
    acked
}

/// Waits until every acknowledged message reached the sink; returns how
/// many copies of each Message-ID arrived.
async fn wait_for_all(
    sink: &SmtpSink,
    acked: &HashSet<String>,
    server: &common::Server,
) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + DELIVERY_WAIT;
    loop {
        let mut copies: BTreeMap<String, usize> = BTreeMap::new();
        for message in sink.messages() {
            let id = message.header("Message-ID").unwrap_or_default();
            *copies.entry(id.trim().to_string()).or_default() += 1;
        }
        let lost = acked.iter().filter(|id| !copies.contains_key(*id)).count();
        if lost == 0 {
            return copies;
        }
        if Instant::now() >= deadline {
            panic!(
                "{lost} of {} acknowledged messages were lost\nlog:\n{}",
                acked.len(),
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn report(what: &str, acked: &HashSet<String>, copies: &BTreeMap<String, usize>) {
    let duplicates: usize = copies.values().map(|n| n.saturating_sub(1)).sum();
    let unacked_delivered = copies.keys().filter(|id| !acked.contains(*id)).count();
    eprintln!(
        "{what}: acknowledged {}, delivered {} distinct, lost 0, duplicates {duplicates}, \
         delivered without 250 {unacked_delivered}",
        acked.len(),
        copies.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_message() {
    let sink = SmtpSink::builder().start().await;
    let mut server = Setup::new()
        .trusted_loopback()
        .smtp("max_connections_per_ip = 100")
        .route(&["*"], sink.addr())
        .delivery("retry_initial = \"1s\"")
        .delivery("retry_max = \"2s\"")
        .start()
        .await;
    let acked = load_and_kill(&mut server).await;
    server
        .carteiro
        .restart()
        .await
        .expect("restart after kill -9");
    let copies = wait_for_all(&sink, &acked, &server).await;
    report("destination up", &acked, &copies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_the_destination_down_loses_no_acknowledged_message() {
    let smarthost = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut server = Setup::new()
        .trusted_loopback()
        .smtp("max_connections_per_ip = 100")
        .route(&["*"], smarthost)
        .delivery("retry_initial = \"1s\"")
        .delivery("retry_max = \"2s\"")
        .start()
        .await;
    let acked = load_and_kill(&mut server).await;
    server
        .carteiro
        .restart()
        .await
        .expect("restart after kill -9");
    // The destination comes back only after the restart.
    let sink = SmtpSink::builder().bind(smarthost).start().await;
    let copies = wait_for_all(&sink, &acked, &server).await;
    report("destination down", &acked, &copies);
    assert!(
        copies.values().all(|&n| n == 1),
        "nothing was delivered before the crash, so nothing may arrive twice"
    );
}
