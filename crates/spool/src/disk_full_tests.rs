//! A real full disk: a small tmpfs mounted for the test (needs root; the
//! tests say so and pass without checking anything when it cannot be
//! mounted).

use super::*;
use std::time::{Duration, Instant};

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

fn options(reserve: u64) -> SpoolOptions {
    SpoolOptions {
        segment_size: 64 * 1024,
        max_size: None,
        reserve,
    }
}

/// Stores 16 KB messages from id `first` until the spool refuses one;
/// returns the ids stored.
async fn fill(spool: &Spool, first: u128) -> Vec<MessageId> {
    let body = Bytes::from(vec![b'x'; 16 * 1024]);
    let mut stored = Vec::new();
    for n in first..first + 10_000 {
        match spool
            .store(MessageId(n), b"meta".to_vec(), Vec::new(), body.clone())
            .await
        {
            Ok(()) => stored.push(MessageId(n)),
            Err(SpoolError::Full(_)) => return stored,
            Err(err) => panic!("unexpected error: {err}"),
        }
    }
    panic!("the disk never filled");
}

/// Writes a file until the disk is full.
fn fill_with_file(path: &Path) {
    use std::io::Write;
    let mut file = File::create(path).expect("filler");
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
}

/// Segment files holding no more than a header: what a failed rotation
/// must not leave behind.
fn empty_segments(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| parse_segment_name(e.file_name().to_str().unwrap_or("")).is_some())
        .filter(|e| e.metadata().is_ok_and(|m| m.len() == 0))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Waits (at most 5 s) for the writer to call the disk full.
async fn full_soon(spool: &Spool) {
    let started = Instant::now();
    while !spool.health().full {
        assert!(started.elapsed() < Duration::from_secs(5), "never full");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Tries to store a small message every 50 ms until it is taken.
async fn store_within(spool: &Spool, id: u128, limit: Duration) {
    let started = Instant::now();
    loop {
        let result = spool
            .store(
                MessageId(id),
                b"meta".to_vec(),
                Vec::new(),
                "after\r\n".into(),
            )
            .await;
        match result {
            Ok(()) => return,
            Err(SpoolError::Full(_)) => {}
            Err(err) => panic!("unexpected error: {err}"),
        }
        assert!(started.elapsed() < limit, "never accepted again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_rotation_that_fails_on_a_full_disk_leaves_no_segment_behind_and_resumes() {
    let Some(fs) = Tmpfs::mount("2m") else { return };
    let dir = fs.path().join("spool");
    let (spool, _) = Spool::open(&dir, options(0)).expect("open");
    let body = Bytes::from(vec![b'x'; 16 * 1024]);
    let mut stored = Vec::new();
    for n in 1..3 {
        spool
            .store(MessageId(n), b"meta".to_vec(), Vec::new(), body.clone())
            .await
            .expect("room at first");
        stored.push(MessageId(n));
    }
    // A file takes every byte left: the next messages need a new segment
    // (a segment holds four), and every rotation fails.
    let filler = fs.path().join("filler");
    fill_with_file(&filler);
    let mut refused = 0;
    for n in 0..20 {
        match spool
            .store(
                MessageId(50_000 + n),
                b"m".to_vec(),
                Vec::new(),
                body.clone(),
            )
            .await
        {
            Ok(()) => stored.push(MessageId(50_000 + n)),
            Err(SpoolError::Full(_)) => refused += 1,
            Err(err) => panic!("unexpected error: {err}"),
        }
    }
    assert!(refused >= 15, "{refused}");
    assert!(spool.health().full);
    assert_eq!(empty_segments(&dir), Vec::<String>::new());

    std::fs::remove_file(&filler).expect("remove filler");
    store_within(&spool, 90_000, Duration::from_secs(10)).await;
    assert!(!spool.health().full);
    // Rotation works again: more than a segment goes in.
    let more = fill(&spool, 100_000).await;
    assert!(more.len() > 4, "{}", more.len());
    assert_eq!(empty_segments(&dir), Vec::<String>::new());
    spool.close();

    let (spool, recovered) = Spool::open(&dir, options(0)).expect("reopen");
    assert_eq!(recovered.len(), stored.len() + 1 + more.len());
    spool.close();
}

#[tokio::test]
async fn the_reserve_is_given_up_on_a_full_disk_for_removals_and_made_again_with_room() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let dir = fs.path().join("spool");
    // Asks for more than an eighth of the filesystem: gets an eighth.
    let (spool, _) = Spool::open(&dir, options(8 * 1024 * 1024)).expect("open");
    let reserve = dir.join("reserve");
    assert_eq!(
        std::fs::metadata(&reserve).expect("reserve").len(),
        512 * 1024
    );

    let stored = fill(&spool, 1).await;
    full_soon(&spool).await;
    assert!(std::fs::metadata(&reserve).map_or(0, |m| m.len()) < 512 * 1024);
    // Everything is delivered: its removals need room the disk does not
    // have without the reserve.
    for id in &stored {
        spool.remove(*id).expect("remove");
    }
    spool.sync().await.expect("removals written");
    assert!(!spool.health().stalled);
    assert_eq!(spool.stats().messages, 0);
    // Dead segments go, the reserve comes back, new mail is taken.
    store_within(&spool, 90_000, Duration::from_secs(10)).await;
    assert!(!spool.health().full);
    assert_eq!(
        std::fs::metadata(&reserve).expect("reserve").len(),
        512 * 1024
    );
    spool.close();

    let (spool, recovered) = Spool::open(&dir, options(8 * 1024 * 1024)).expect("reopen");
    let ids: Vec<MessageId> = recovered.iter().map(|r| r.id).collect();
    assert_eq!(ids, [MessageId(90_000)]);
    spool.close();
}

#[tokio::test]
async fn a_spool_opens_on_a_full_disk_and_refuses_new_mail_until_there_is_room() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let dir = fs.path().join("spool");
    let (spool, _) = Spool::open(&dir, options(1024 * 1024)).expect("open");
    let stored = fill(&spool, 1).await;
    spool.close();
    // Its open segment files would keep their space after deletion.
    drop(spool);
    let filler = fs.path().join("filler");
    fill_with_file(&filler);

    let (spool, recovered) = Spool::open(&dir, options(1024 * 1024)).expect("opens when full");
    assert_eq!(recovered.len(), stored.len());
    assert!(spool.health().full);
    for id in &stored {
        spool.remove(*id).expect("remove");
    }
    spool.sync().await.expect("removals written");
    std::fs::remove_file(&filler).expect("remove filler");

    store_within(&spool, 90_000, Duration::from_secs(10)).await;
    spool.close();
    let (spool, recovered) = Spool::open(&dir, options(1024 * 1024)).expect("reopen");
    assert_eq!(recovered.len(), 1);
    spool.close();
}

#[tokio::test]
async fn records_that_cannot_be_written_wait_in_order_and_are_written_once_there_is_room() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let dir = fs.path().join("spool");
    // No reserve: nothing gives the records room but the operator.
    let (spool, _) = Spool::open(&dir, options(0)).expect("open");
    let body = Bytes::from(vec![b'x'; 16 * 1024]);
    let mut stored = Vec::new();
    for n in 1..=50 {
        spool
            .store(MessageId(n), b"meta".to_vec(), Vec::new(), body.clone())
            .await
            .expect("room at first");
        stored.push(MessageId(n));
    }
    let filler = fs.path().join("filler");
    fill_with_file(&filler);
    // Large states first (more than a spare segment and the last pages of
    // the current one hold), then the final ones, then the removal of the
    // first message, in that order.
    for _ in 0..2 {
        for id in &stored {
            spool.set_state(*id, vec![b's'; 4096]).expect("queued");
        }
    }
    for (n, id) in stored.iter().enumerate() {
        spool
            .set_state(*id, format!("state {n}").into_bytes())
            .expect("queued");
    }
    spool.remove(stored[0]).expect("queued");
    let started = Instant::now();
    while !spool.health().stalled {
        assert!(started.elapsed() < Duration::from_secs(5), "never stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(spool.sync().await, Err(SpoolError::Full(_))));

    std::fs::remove_file(&filler).expect("remove filler");
    let started = Instant::now();
    while spool.health().stalled {
        assert!(started.elapsed() < Duration::from_secs(10), "still stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    spool.sync().await.expect("written");
    spool.close();
    drop(spool);

    let (spool, recovered) = Spool::open(&dir, options(0)).expect("reopen");
    let ids: Vec<MessageId> = recovered.iter().map(|r| r.id).collect();
    assert_eq!(ids, stored[1..]);
    for (r, n) in recovered.iter().zip(1..) {
        assert_eq!(r.state, format!("state {n}").into_bytes());
    }
    spool.close();
}
