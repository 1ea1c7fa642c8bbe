use super::*;

fn id(n: u128) -> MessageId {
    MessageId(n)
}

fn open(dir: &Path) -> (Spool, Vec<Recovered>) {
    Spool::open(dir, SpoolOptions::default()).expect("open spool")
}

fn open_small(dir: &Path, segment_size: u64) -> (Spool, Vec<Recovered>) {
    Spool::open(
        dir,
        SpoolOptions {
            segment_size,
            max_size: None,
        },
    )
    .expect("open spool")
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("seg-"))
        })
        .count()
}

#[tokio::test]
async fn stored_messages_come_back_after_reopen_with_latest_state() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, recovered) = open(dir.path());
        assert!(recovered.is_empty());
        spool
            .store(
                id(1),
                b"meta1".to_vec(),
                b"s0".to_vec(),
                Bytes::from_static(b"body one"),
            )
            .await
            .unwrap();
        spool
            .store(
                id(2),
                b"meta2".to_vec(),
                Vec::new(),
                Bytes::from_static(b"body two"),
            )
            .await
            .unwrap();
        spool.set_state(id(1), b"s1".to_vec()).unwrap();
        spool.remove(id(2)).unwrap();
        spool.sync().await.unwrap();
        assert_eq!(spool.read_body(id(1)).await.unwrap(), &b"body one"[..]);
        assert!(matches!(
            spool.read_body(id(2)).await,
            Err(SpoolError::NotFound(_))
        ));
        spool.close();
    }
    let (spool, recovered) = open(dir.path());
    assert_eq!(
        recovered,
        vec![Recovered {
            id: id(1),
            meta: b"meta1".to_vec(),
            state: b"s1".to_vec(),
            body_len: 8
        }]
    );
    assert_eq!(spool.read_body(id(1)).await.unwrap(), &b"body one"[..]);
}

#[tokio::test]
async fn a_second_open_of_the_same_spool_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_spool, _) = open(dir.path());
    assert!(matches!(
        Spool::open(dir.path(), SpoolOptions::default()),
        Err(SpoolError::Locked(_))
    ));
}

#[tokio::test]
async fn a_torn_tail_is_ignored_and_earlier_messages_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) = open(dir.path());
        spool
            .store(
                id(1),
                b"m".to_vec(),
                Vec::new(),
                Bytes::from_static(b"kept"),
            )
            .await
            .unwrap();
        spool.close();
    }
    // Simulate a crash in the middle of the next write.
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seg-"))
        .unwrap();
    let mut partial = Vec::new();
    record::encode_message(
        &mut partial,
        record::seed(1),
        2,
        b"m",
        b"",
        b"never acknowledged",
    );
    // Over the end marker that follows the last batch, as the next batch
    // would have been written.
    let file = File::options().write(true).open(&seg).unwrap();
    let end = file.metadata().unwrap().len() - 4;
    use std::os::unix::fs::FileExt;
    file.write_all_at(&partial[..partial.len() - 5], end)
        .unwrap();
    drop(file);

    let (spool, recovered) = open(dir.path());
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].id, id(1));
    spool
        .store(
            id(3),
            b"m".to_vec(),
            Vec::new(),
            Bytes::from_static(b"after"),
        )
        .await
        .unwrap();
    spool.close();
    let (_, recovered) = open(dir.path());
    let ids: Vec<_> = recovered.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![id(1), id(3)]);
}

#[tokio::test]
async fn concurrent_stores_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    let mut tasks = Vec::new();
    for n in 0..200u128 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            spool
                .store(
                    id(n),
                    b"meta".to_vec(),
                    Vec::new(),
                    Bytes::from(vec![b'x'; 4096]),
                )
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stats = spool.stats();
    assert_eq!(stats.messages, 200);
    assert_eq!(stats.synced_messages, 200);
    assert!(
        stats.commits < 200,
        "200 concurrent stores took {} commits",
        stats.commits
    );
}

#[tokio::test]
async fn dead_segments_are_deleted_and_sparse_ones_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open_small(dir.path(), 16 * 1024);
    let body = Bytes::from(vec![b'y'; 2000]);
    // Fill several segments; keep one message per segment alive.
    for n in 0..40u128 {
        spool
            .store(id(n), b"m".to_vec(), Vec::new(), body.clone())
            .await
            .unwrap();
    }
    assert!(segment_count(dir.path()) >= 5);
    for n in 0..40u128 {
        if n % 10 != 0 {
            spool.remove(id(n)).unwrap();
        }
    }
    spool.sync().await.unwrap();
    // More traffic lets the writer maintain its segments.
    for n in 100..140u128 {
        spool
            .store(id(n), b"m".to_vec(), Vec::new(), body.clone())
            .await
            .unwrap();
        spool.remove(id(n)).unwrap();
    }
    spool.sync().await.unwrap();
    assert!(
        segment_count(dir.path()) <= 3,
        "{} segments left",
        segment_count(dir.path())
    );
    for n in [0u128, 10, 20, 30] {
        assert_eq!(spool.read_body(id(n)).await.unwrap(), body);
    }
    spool.close();
    let (_, recovered) = open_small(dir.path(), 16 * 1024);
    let ids: Vec<_> = recovered.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![id(0), id(10), id(20), id(30)]);
}

#[tokio::test]
async fn a_full_spool_refuses_new_messages_but_keeps_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(
        dir.path(),
        SpoolOptions {
            segment_size: 1024 * 1024,
            max_size: Some(20_000),
        },
    )
    .unwrap();
    let body = Bytes::from(vec![b'z'; 4000]);
    let mut stored = Vec::new();
    let mut refused = 0;
    for n in 0..10u128 {
        match spool
            .store(id(n), b"m".to_vec(), Vec::new(), body.clone())
            .await
        {
            Ok(()) => stored.push(id(n)),
            Err(SpoolError::Full(_)) => refused += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(!stored.is_empty() && refused > 0);
    // Space comes back once messages leave.
    for n in &stored {
        spool.remove(*n).unwrap();
    }
    spool.sync().await.unwrap();
    spool.close();
    let (spool, recovered) = Spool::open(
        dir.path(),
        SpoolOptions {
            segment_size: 1024 * 1024,
            max_size: Some(20_000),
        },
    )
    .unwrap();
    assert!(recovered.is_empty());
    spool
        .store(id(99), b"m".to_vec(), Vec::new(), body)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_finished_message_stays_finished_when_its_done_record_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open_small(dir.path(), 16 * 1024);
    // B keeps the first segment mostly live; A shares it and finishes.
    spool
        .store(
            id(1),
            b"m".to_vec(),
            Vec::new(),
            Bytes::from(vec![b'b'; 12_000]),
        )
        .await
        .unwrap();
    spool
        .store(
            id(2),
            b"m".to_vec(),
            Vec::new(),
            Bytes::from(vec![b'a'; 100]),
        )
        .await
        .unwrap();
    // Rotate, then finish A: its done record lands in a later segment.
    for n in 10..20u128 {
        spool
            .store(
                id(n),
                b"m".to_vec(),
                Vec::new(),
                Bytes::from(vec![b'x'; 3000]),
            )
            .await
            .unwrap();
    }
    spool.remove(id(2)).unwrap();
    for n in 10..20u128 {
        spool.remove(id(n)).unwrap();
    }
    // Enough traffic for the segment with A's done record to die and go.
    for n in 100..130u128 {
        spool
            .store(
                id(n),
                b"m".to_vec(),
                Vec::new(),
                Bytes::from(vec![b'y'; 3000]),
            )
            .await
            .unwrap();
        spool.remove(id(n)).unwrap();
    }
    spool.sync().await.unwrap();
    assert!(segment_count(dir.path()) <= 3);
    spool.close();
    drop(spool);
    let (_, recovered) = open_small(dir.path(), 16 * 1024);
    let ids: Vec<_> = recovered.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![id(1)]);
}
