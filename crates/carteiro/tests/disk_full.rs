//! When the spool cannot take more, new mail gets `452 4.3.1`, nothing that
//! was acknowledged is lost, and service resumes by itself once deliveries
//! make room: with the `spool.max_size` limit, and with a real full
//! filesystem (a small tmpfs, when the test may mount one).

mod common;

use carteiro_testkit::{SmtpSink, free_port};
use common::Setup;
use common::client::Client;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// Sends up to `max` messages of about `size` bytes, stopping at the first
/// refusal; returns the Message-IDs acknowledged and the refusal, if any.
async fn fill(
    client: &mut Client,
    prefix: &str,
    size: usize,
    max: usize,
) -> (Vec<String>, Option<common::client::Outcome>) {
    let mut acked = Vec::new();
    let filler = "x".repeat(76) + "\r\n";
    let body_lines = filler.repeat(size / filler.len());
    for n in 0..max {
        let id = format!("<{prefix}-{n}@full.test>");
        let body = format!("Message-ID: {id}\r\nSubject: {prefix} {n}\r\n\r\n{body_lines}");
        let outcome = client
            .send("sender@full.test", "rcpt@dest.test", &body)
            .await
            .expect("session stays up while the spool is full");
        if outcome.code != 250 {
            return (acked, Some(outcome));
        }
        acked.push(id);
    }
    (acked, None)
}

/// Waits until the sink holds every one of `ids`.
async fn delivered(sink: &SmtpSink, ids: &[String], server: &common::Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: HashSet<String> = sink
            .messages()
            .iter()
            .filter_map(|m| m.header("Message-ID"))
            .map(|id| id.trim().to_string())
            .collect();
        let missing: Vec<&String> = ids.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered: {missing:?}\nlog:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fills the spool with the destination down, checks the refusal, brings
/// the destination up and checks that everything acknowledged arrives and
/// that new mail is accepted again.
async fn full_then_resume(server: common::Server, smarthost: SocketAddr, size: usize) {
    let mut client = Client::connect(server.relay).await.expect("connect");
    let (mut acked, refusal) = fill(&mut client, "before", size, 500).await;
    assert!(!acked.is_empty(), "nothing fit before the spool was full");
    let refusal = refusal.expect("the spool never filled");
    assert_eq!(refusal.code, 452, "{refusal:?}");
    assert!(refusal.text.starts_with("452 4.3.1"), "{refusal:?}");
    // Still refused: nothing has left the spool.
    let (more, again) = fill(&mut client, "again", size, 1).await;
    assert!(more.is_empty(), "accepted while full: {more:?}");
    assert_eq!(again.map(|o| o.code), Some(452));

    let sink = SmtpSink::builder().bind(smarthost).start().await;
    delivered(&sink, &acked, &server).await;

    // Room again: new mail is accepted without a restart.
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = "<after@full.test>".to_string();
    loop {
        let outcome = client
            .send(
                "sender@full.test",
                "rcpt@dest.test",
                &format!("Message-ID: {id}\r\nSubject: after\r\n\r\nroom again\r\n"),
            )
            .await
            .expect("session stays up");
        if outcome.code == 250 {
            break;
        }
        assert_eq!(outcome.code, 452, "{outcome:?}");
        assert!(
            Instant::now() < deadline,
            "never accepted again\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    acked.push(id);
    delivered(&sink, &acked, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_limited_spool_refuses_with_452_and_resumes() {
    let smarthost = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = Setup::new()
        .trusted_loopback()
        .route(&["*"], smarthost)
        .delivery("retry_initial = \"1s\"")
        .delivery("retry_max = \"1s\"")
        .extra("[spool]\nmax_size = \"200KB\"\n")
        .start()
        .await;
    full_then_resume(server, smarthost, 30_000).await;
}

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_filesystem_refuses_with_452_and_resumes() {
    let smarthost = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mount_dir = tempfile::tempdir().expect("temporary directory");
    let spool_fs = mount_dir.path().join("fs");
    let Some(_tmpfs) = Tmpfs::mount(&spool_fs, "3m") else {
        eprintln!(
            "skipped: cannot mount a tmpfs here (needs root); the size-limit test covers 452"
        );
        return;
    };
    let server = Setup::new()
        .trusted_loopback()
        .route(&["*"], smarthost)
        .delivery("retry_initial = \"1s\"")
        .delivery("retry_max = \"1s\"")
        .data_dir(&spool_fs.join("data"))
        .extra("[spool]\nsegment_size = \"256KiB\"\n")
        .start()
        .await;
    full_then_resume(server, smarthost, 100_000).await;
}
