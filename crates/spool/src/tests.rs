use super::*;
use crate::record::Record;

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
            reserve: 0,
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
            reserve: 0,
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
            reserve: 0,
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

#[tokio::test]
async fn a_message_finished_after_a_restart_stays_finished() {
    // The done flag goes into a segment recovered at start: it must have
    // been opened for writing, or the message comes back once the segment
    // holding its done record is deleted.
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) = open_small(dir.path(), 16 * 1024);
        store(&spool, 1, b"m", b"", &[b'b'; 12_000]).await;
        store(&spool, 2, b"m", b"", &[b'a'; 100]).await;
        spool.close();
    }
    let (spool, _) = open_small(dir.path(), 16 * 1024);
    spool.remove(id(2)).unwrap();
    for n in 100..130u128 {
        store(&spool, n, b"m", b"", &[b'y'; 3000]).await;
        spool.remove(id(n)).unwrap();
    }
    spool.sync().await.unwrap();
    assert!(
        !dir.path().join("seg-0000000000000002.log").exists(),
        "the segment with the done record should be gone"
    );
    spool.close();
    let (_, recovered) = open_small(dir.path(), 16 * 1024);
    let ids: Vec<_> = recovered.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![id(1)]);
}

async fn store(spool: &Spool, n: u128, meta: &[u8], state: &[u8], body: &[u8]) {
    spool
        .store(
            id(n),
            meta.to_vec(),
            state.to_vec(),
            Bytes::copy_from_slice(body),
        )
        .await
        .unwrap();
}

/// What `Spool::open_with` hands over, in the order it does.
fn open_with_small(dir: &Path, segment_size: u64) -> (Spool, Vec<Recovered>) {
    let mut recovered = Vec::new();
    let spool = Spool::open_with(
        dir,
        SpoolOptions {
            segment_size,
            max_size: None,
            reserve: 0,
        },
        |r| recovered.push(r),
    )
    .expect("open spool");
    (spool, recovered)
}

fn segment_file(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("seg-{number:016x}.log"))
}

#[test]
fn an_index_bucket_takes_40_bytes() {
    use std::mem::{align_of, size_of};
    assert_eq!(size_of::<Entry>(), 24);
    assert!(align_of::<Entry>() <= 8);
    assert_eq!(size_of::<Option<StatePos>>(), 8);
    assert_eq!(size_of::<(Key, Entry)>(), 40);
    assert!(align_of::<(Key, Entry)>() <= 8);
    let id = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
    assert_eq!(u128::from(Key::from(id)), id);
}

#[test]
fn segment_refs_name_the_segment_within_the_window_below_the_newest() {
    let newest = 0x1_0000_0002u64;
    for number in [
        newest,
        newest - 1,
        0xffff_ffff,
        0xffff_fffe,
        newest - (SEGMENT_WINDOW - 1),
    ] {
        assert_eq!(SegmentRef::of(number).number(newest), number, "{number:#x}");
    }
    assert_eq!(SegmentRef::of(7).number(9), 7);
}

#[tokio::test]
async fn a_newest_state_in_a_later_segment_comes_back_with_the_message() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) = open_small(dir.path(), 16 * 1024);
        store(&spool, 1, b"meta one", b"s0", b"body one").await;
        spool.set_state(id(1), b"s1".to_vec()).unwrap();
        // Fill segments with other traffic, then the newest state.
        for n in 10..20u128 {
            store(&spool, n, b"m", b"", &[b'x'; 3000]).await;
        }
        spool
            .set_state(id(1), b"s2, in a later segment".to_vec())
            .unwrap();
        spool.sync().await.unwrap();
        let shared = spool.inner.shared();
        let entry = shared.index[&Key::from(1)];
        let state = entry.state.expect("a separate state record");
        assert!(
            shared.segment_number(state.segment) > shared.segment_number(entry.segment),
            "the test needs the state in a later segment"
        );
        drop(shared);
        spool.close();
    }
    let expected = Recovered {
        id: id(1),
        meta: b"meta one".to_vec(),
        state: b"s2, in a later segment".to_vec(),
        body_len: 8,
    };
    let (spool, recovered) = open_with_small(dir.path(), 16 * 1024);
    assert_eq!(recovered.iter().filter(|r| r.id == id(1)).count(), 1);
    assert_eq!(recovered.iter().find(|r| r.id == id(1)), Some(&expected));
    assert_eq!(recovered.len(), 11);
    assert_eq!(spool.read_body(id(1)).await.unwrap(), &b"body one"[..]);
    spool.close();
    let (_, recovered) = open_small(dir.path(), 16 * 1024);
    assert_eq!(recovered[0], expected);
}

#[tokio::test]
async fn a_message_moved_by_compaction_comes_back_with_its_newest_state() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open_small(dir.path(), 16 * 1024);
    store(&spool, 1, b"kept meta", b"first", &[b'k'; 2000]).await;
    spool.set_state(id(1), b"second".to_vec()).unwrap();
    // Its segment fills with messages that finish, so it gets compacted.
    for n in 10..16u128 {
        store(&spool, n, b"m", b"", &[b'x'; 2000]).await;
    }
    let first_segment = {
        let shared = spool.inner.shared();
        shared.segment_number(shared.index[&Key::from(1)].segment)
    };
    for n in 10..16u128 {
        spool.remove(id(n)).unwrap();
    }
    for n in 100..120u128 {
        store(&spool, n, b"m", b"", &[b'y'; 2000]).await;
        spool.remove(id(n)).unwrap();
    }
    spool.sync().await.unwrap();
    assert!(
        !segment_file(dir.path(), first_segment).exists(),
        "segment {first_segment} should have been compacted and deleted"
    );
    spool
        .set_state(id(1), b"third, after the move".to_vec())
        .unwrap();
    spool.sync().await.unwrap();
    assert_eq!(spool.read_body(id(1)).await.unwrap(), &[b'k'; 2000][..]);
    spool.close();
    let (spool, recovered) = open_with_small(dir.path(), 16 * 1024);
    assert_eq!(
        recovered,
        vec![Recovered {
            id: id(1),
            meta: b"kept meta".to_vec(),
            state: b"third, after the move".to_vec(),
            body_len: 2000,
        }]
    );
    assert_eq!(spool.read_body(id(1)).await.unwrap(), &[b'k'; 2000][..]);
}

/// A small deterministic generator, so the mix of operations is varied but
/// the same on every run.
fn next_random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_messages_come_back_through_open_with_as_through_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected: std::collections::BTreeMap<u128, Recovered> = Default::default();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (spool, _) = open_small(dir.path(), 64 * 1024);
    for round in 0..3u32 {
        let mut tasks = Vec::new();
        for n in 0..1000u128 {
            let n = u128::from(round) * 1000 + n;
            let r = next_random(&mut seed);
            let meta = format!("meta of {n} {}", "m".repeat((r % 300) as usize)).into_bytes();
            let state = if r.is_multiple_of(3) {
                Vec::new()
            } else {
                format!("s0 {n}").into_bytes()
            };
            let body = vec![(n % 251) as u8; 100 + (r % 2000) as usize];
            expected.insert(
                n,
                Recovered {
                    id: id(n),
                    meta: meta.clone(),
                    state: state.clone(),
                    body_len: body.len() as u32,
                },
            );
            let spool = spool.clone();
            tasks.push(tokio::spawn(async move {
                spool.store(id(n), meta, state, Bytes::from(body)).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        // New states for some, removals for others, across all rounds.
        let ids: Vec<u128> = expected.keys().copied().collect();
        for n in ids {
            match next_random(&mut seed) % 5 {
                0 => {
                    spool.remove(id(n)).unwrap();
                    expected.remove(&n);
                }
                1 | 2 => {
                    let state = format!("state {n} round {round}").into_bytes();
                    spool.set_state(id(n), state.clone()).unwrap();
                    expected.get_mut(&n).unwrap().state = state;
                }
                _ => {}
            }
        }
        spool.sync().await.unwrap();
    }
    spool.close();
    drop(spool);
    let expected: Vec<Recovered> = expected.into_values().collect();
    assert!(expected.len() > 300, "only {} left", expected.len());

    let (spool, mut through_open_with) = open_with_small(dir.path(), 64 * 1024);
    for r in through_open_with.iter().step_by(97) {
        let body = spool.read_body_blocking(r.id).unwrap();
        assert_eq!(body.len(), r.body_len as usize);
        assert!(body.iter().all(|&b| u128::from(b) == r.id.0 % 251));
    }
    spool.close();
    through_open_with.sort_unstable_by_key(|r| r.id);
    assert_eq!(through_open_with, expected);
    let (_, through_open) = open_small(dir.path(), 64 * 1024);
    assert_eq!(through_open, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_stop_below_their_hard_limit_and_oversized_records_are_refused() {
    const LIMIT: u64 = 8 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions {
        segment_size: 1024 * 1024,
        max_size: None,
        reserve: 0,
    };
    let spool = Spool::open_limited(dir.path(), options.clone(), LIMIT, &mut |_| {}).unwrap();
    // Concurrent stores whose batch is bigger than a segment may be.
    let mut tasks = Vec::new();
    for n in 0..30u128 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            spool
                .store(
                    id(n),
                    b"m".to_vec(),
                    b"s".to_vec(),
                    Bytes::from(vec![n as u8; 2500]),
                )
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for n in 0..30u128 {
        spool.set_state(id(n), vec![b'z'; 300]).unwrap();
    }
    let too_large = spool
        .store(
            id(99),
            b"m".to_vec(),
            Vec::new(),
            Bytes::from(vec![0; LIMIT as usize]),
        )
        .await;
    assert!(
        matches!(too_large, Err(SpoolError::TooLarge(_))),
        "{too_large:?}"
    );
    spool.sync().await.unwrap();
    {
        let shared = spool.inner.shared();
        assert!(
            shared.segments.len() >= 10,
            "{} segments",
            shared.segments.len()
        );
        for (number, seg) in &shared.segments {
            assert!(
                seg.len + 4 <= LIMIT,
                "segment {number} is {} bytes",
                seg.len
            );
        }
    }
    spool.close();
    let (spool, recovered) = open_small(dir.path(), 1024 * 1024);
    assert_eq!(recovered.len(), 30);
    for r in &recovered {
        assert_eq!(r.state, vec![b'z'; 300]);
        assert_eq!(
            spool.read_body(r.id).await.unwrap(),
            vec![r.id.0 as u8; 2500]
        );
    }
}

#[tokio::test]
async fn segment_numbers_past_32_bits_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    // A spool whose segments are numbered just below 2^32.
    std::fs::write(
        segment_file(dir.path(), 0xffff_fffd),
        record::segment_header(0xffff_fffd),
    )
    .unwrap();
    let (spool, _) = open_small(dir.path(), 16 * 1024);
    for n in 0..40u128 {
        store(
            &spool,
            n,
            format!("meta {n}").as_bytes(),
            b"",
            &[n as u8; 2000],
        )
        .await;
        spool
            .set_state(id(n), format!("state {n}").into_bytes())
            .unwrap();
        if n % 4 == 1 {
            spool.remove(id(n - 1)).unwrap();
        }
    }
    spool.sync().await.unwrap();
    assert!(segment_file(dir.path(), 0x1_0000_0002).exists());
    for n in (0..40u128).filter(|n| n % 4 != 0) {
        assert_eq!(spool.read_body(id(n)).await.unwrap(), vec![n as u8; 2000]);
    }
    spool.close();
    let (spool, recovered) = open_with_small(dir.path(), 16 * 1024);
    let mut ids: Vec<u128> = recovered.iter().map(|r| r.id.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..40u128).filter(|n| n % 4 != 0).collect::<Vec<_>>());
    for r in &recovered {
        assert_eq!(r.meta, format!("meta {}", r.id.0).into_bytes());
        assert_eq!(r.state, format!("state {}", r.id.0).into_bytes());
        assert_eq!(
            spool.read_body(r.id).await.unwrap(),
            vec![r.id.0 as u8; 2000]
        );
    }
}

#[tokio::test]
async fn a_segment_half_the_number_window_old_is_compacted_however_live() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) = open(dir.path());
        store(&spool, 1, b"old meta", b"old state", b"old body").await;
        spool.close();
    }
    // Pretend 2^31 segments came and went since.
    let recent = 1 + SEGMENT_WINDOW / 2;
    std::fs::write(
        segment_file(dir.path(), recent),
        record::segment_header(recent),
    )
    .unwrap();
    let (spool, recovered) = open(dir.path());
    assert_eq!(recovered.len(), 1);
    store(&spool, 2, b"new", b"", b"new body").await;
    spool.sync().await.unwrap();
    assert!(
        !segment_file(dir.path(), 1).exists(),
        "segment 1 should be compacted away"
    );
    assert_eq!(spool.read_body(id(1)).await.unwrap(), &b"old body"[..]);
    spool.close();
    let (_, recovered) = open(dir.path());
    assert_eq!(
        recovered[0],
        Recovered {
            id: id(1),
            meta: b"old meta".to_vec(),
            state: b"old state".to_vec(),
            body_len: 8,
        }
    );
    assert_eq!(recovered.len(), 2);
}

#[tokio::test]
async fn segments_too_far_apart_for_the_index_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for number in [1, SEGMENT_WINDOW] {
        std::fs::write(
            segment_file(dir.path(), number),
            record::segment_header(number),
        )
        .unwrap();
    }
    match Spool::open(dir.path(), SpoolOptions::default()) {
        Err(SpoolError::Io(text)) => assert!(text.contains("too far apart"), "{text}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("opened a spool whose segment numbers do not fit the index"),
    }
}

/// Timing of recovery on a spool of many small messages: 1 KiB bodies,
/// about 250 bytes of metadata, 2 state updates each, the newest in a later
/// segment, as after a retry wave. Not run by default (it writes about
/// 400 MB); run it in a release build:
///
/// ```text
/// cargo test --release -p carteiro-spool -- --ignored recovery_timing --nocapture
/// ```
///
/// Recovery runs in child processes (this test binary again), so that the
/// memory figures (`VmHWM`, `VmRSS`) are recovery's alone and not the fill's.
/// `CARTEIRO_SPOOL_BENCH_MESSAGES` changes the number of messages (200,000).
#[test]
#[ignore]
fn recovery_timing() {
    let count: u128 = std::env::var("CARTEIRO_SPOOL_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (spool, _) = open(dir.path());
        let body = Bytes::from(vec![b'b'; 1024]);
        let mut first = 0;
        while first < count {
            let last = (first + 4096).min(count);
            let mut tasks = Vec::new();
            for n in first..last {
                let spool = spool.clone();
                let body = body.clone();
                tasks.push(tokio::spawn(async move {
                    let meta = format!("{n:0>250}").into_bytes();
                    let state = format!("{n:0>60}").into_bytes();
                    spool.store(id(n), meta, state, body).await
                }));
            }
            for task in tasks {
                task.await.unwrap().unwrap();
            }
            for n in first..last {
                spool
                    .set_state(id(n), format!("1 {n:0>250}").into_bytes())
                    .unwrap();
            }
            first = last;
        }
        for n in 0..count {
            spool
                .set_state(id(n), format!("2 {n:0>250}").into_bytes())
                .unwrap();
        }
        spool.sync().await.unwrap();
        spool.close();
    });
    drop(runtime);
    let bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "filled {count} messages in {:.1} s: {} segments, {:.0} MB",
        started.elapsed().as_secs_f64(),
        segment_count(dir.path()),
        bytes as f64 / 1e6
    );
    for mode in ["passes", "open_with", "open", "open_with"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "tests::recovery_timing_child"])
            .args(["--nocapture", "--test-threads=1"])
            .env("CARTEIRO_SPOOL_BENCH_DIR", dir.path())
            .env("CARTEIRO_SPOOL_BENCH_MODE", mode)
            .env("CARTEIRO_SPOOL_BENCH_MESSAGES", count.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode}: {stdout}");
        // After libtest's "test ... " on the same line.
        for line in stdout
            .lines()
            .filter_map(|l| l.find("recovery ").map(|at| &l[at..]))
        {
            println!("{line}");
        }
    }
}

/// The recovering half of [`recovery_timing`]; does nothing on its own.
#[test]
#[ignore]
fn recovery_timing_child() {
    let Ok(dir) = std::env::var("CARTEIRO_SPOOL_BENCH_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let mode = std::env::var("CARTEIRO_SPOOL_BENCH_MODE").unwrap();
    let count: usize = std::env::var("CARTEIRO_SPOOL_BENCH_MESSAGES")
        .unwrap()
        .parse()
        .unwrap();
    let memory = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map_or(0, |v| {
                    v.trim()
                        .trim_end_matches(" kB")
                        .trim()
                        .parse::<u64>()
                        .unwrap()
                })
                / 1024
        };
        format!(
            "VmHWM {} MiB, VmRSS {} MiB",
            field("VmHWM:"),
            field("VmRSS:")
        )
    };
    let started = std::time::Instant::now();
    let seconds = |from: std::time::Instant| from.elapsed().as_secs_f64();
    match mode.as_str() {
        "open_with" => {
            // Checks each message and drops it, as a decoding caller would.
            let mut found = 0usize;
            let spool = Spool::open_with(dir, SpoolOptions::default(), |r| {
                assert_eq!(r.state, format!("2 {:0>250}", r.id.0).into_bytes());
                assert_eq!(r.meta.len(), 250);
                found += 1;
            })
            .unwrap();
            let elapsed = seconds(started);
            assert_eq!(found, count);
            println!("recovery open_with: {elapsed:.2} s, {}", memory());
            spool.close();
        }
        "open" => {
            let (spool, recovered) = Spool::open(dir, SpoolOptions::default()).unwrap();
            let elapsed = seconds(started);
            assert_eq!(recovered.len(), count);
            println!("recovery open (all kept): {elapsed:.2} s, {}", memory());
            spool.close();
        }
        "passes" => {
            let (shared, _) = recover::load(dir).unwrap();
            let pass1 = seconds(started);
            let at = std::time::Instant::now();
            let mut found = 0usize;
            recover::replay(&shared, &mut |_| found += 1).unwrap();
            let rescan = seconds(at);
            assert_eq!(found, count);
            let at = std::time::Instant::now();
            assert_eq!(replay_by_pread(&shared), count);
            let pread = seconds(at);
            println!(
                "recovery passes: index {pass1:.2} s; then rescanning segments {rescan:.2} s, \
                 or reading each message in position order {pread:.2} s"
            );
        }
        other => panic!("unknown mode {other}"),
    }
}

/// The other way to do recovery's second pass, for [`recovery_timing`] to
/// compare with: each live message's head and newest state record read
/// with `pread`s, in the order of their positions.
fn replay_by_pread(shared: &Shared) -> usize {
    let mut entries: Vec<(u64, Entry)> = shared
        .index
        .values()
        .map(|e| (shared.segment_number(e.segment), *e))
        .collect();
    entries.sort_unstable_by_key(|&(number, e)| (number, e.record_offset));
    let mut found = 0;
    for (number, entry) in entries {
        let file = &shared.segments[&number].file;
        let mut head = vec![0u8; entry.body_start as usize];
        file.read_exact_at(&mut head, u64::from(entry.record_offset))
            .unwrap();
        let (_, meta, inline) = record::decode_message_head(&head).unwrap();
        let state = match entry.state {
            None => inline.to_vec(),
            Some(pos) => {
                let file = &shared.segment(pos.segment).unwrap().file;
                let offset = u64::from(pos.offset.get());
                let mut header = [0u8; record::HEADER_LEN];
                file.read_exact_at(&mut header, offset).unwrap();
                let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
                let mut data = vec![0u8; record::HEADER_LEN + len];
                file.read_exact_at(&mut data, offset).unwrap();
                match record::decode_checked_before_at(&data, 0) {
                    Ok(Some((Record::State { state, .. }, _))) => state.to_vec(),
                    other => panic!("not a state record: {other:?}"),
                }
            }
        };
        assert!(!meta.is_empty() && !state.is_empty());
        found += 1;
    }
    found
}

#[tokio::test]
async fn the_spool_is_private_even_in_an_open_directory() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("spool");
    std::fs::create_dir(&dir).unwrap();
    // What a data directory made by systemd's StateDirectory= looks like.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (spool, _) = open_small(&dir, 64 * 1024);
    for n in 0..40 {
        store(&spool, n, b"meta", b"", &[b'x'; 4000]).await;
    }
    spool.sync().await.unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(segment_count(&dir) > 1 && files > 2, "{files} files");
    spool.close();
}

#[tokio::test]
async fn a_message_metadata_reads_back_as_stored_before_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) = open(dir.path());
        store(&spool, 1, b"meta one", b"state", b"body one").await;
        store(&spool, 2, b"{\"record\":2}", b"", b"body two").await;
        // A later state does not change what the metadata was.
        spool.set_state(id(1), b"newer state".to_vec()).unwrap();
        assert_eq!(spool.read_meta(id(1)).await.unwrap(), b"meta one");
        assert_eq!(spool.read_meta(id(2)).await.unwrap(), b"{\"record\":2}");
        assert!(matches!(
            spool.read_meta(id(3)).await,
            Err(SpoolError::NotFound(_))
        ));
        spool.close();
    }
    let (spool, _) = open(dir.path());
    assert_eq!(spool.read_meta(id(1)).await.unwrap(), b"meta one");
    assert_eq!(spool.read_body(id(2)).await.unwrap(), &b"body two"[..]);
    spool.close();
}

/// A reader that looked a message up just before the writer moved it keeps
/// reading the segment file it was given. That file must keep its bytes:
/// recycling it as the next segment (as a dead segment is when no spare is
/// ready, always so on a full disk) would hand the reader another message's
/// body at the same offset.
#[tokio::test]
async fn a_reader_of_a_moved_message_never_reads_a_recycled_segment() {
    let dir = tempfile::tempdir().unwrap();
    // No spare is ever prepared (its temporary file cannot be made), so the
    // writer turns every dead segment into the next one, as on a full disk.
    std::fs::create_dir(dir.path().join("spare.tmp")).unwrap();
    let (spool, _) = open_small(dir.path(), 16 * 1024);
    let kept = [b'k'; 2000];
    store(&spool, 1, b"m", b"", &kept).await;
    for n in 10..16u128 {
        store(&spool, n, b"m", b"", &[b'x'; 2000]).await;
    }
    // A reader between its look-up and its read (see `read_at`).
    let (file, entry) = {
        let shared = spool.inner.shared();
        let entry = shared.index[&Key::from(1)];
        (
            Arc::clone(&shared.segment(entry.segment).unwrap().file),
            entry,
        )
    };
    let first_segment = spool.inner.shared().segment_number(entry.segment);
    for n in 10..16u128 {
        spool.remove(id(n)).unwrap();
    }
    for n in 100..120u128 {
        store(&spool, n, b"m", b"", &[b'y'; 2000]).await;
        spool.remove(id(n)).unwrap();
    }
    spool.sync().await.unwrap();
    assert!(
        !segment_file(dir.path(), first_segment).exists(),
        "segment {first_segment} should have been compacted and deleted"
    );
    let moved = spool.inner.shared().index[&Key::from(1)];
    assert_ne!(moved.segment, entry.segment, "message 1 was moved");
    let mut read = vec![0u8; entry.body_len as usize];
    file.read_exact_at(&mut read, entry.body_offset()).unwrap();
    assert!(
        read == kept,
        "the reader's old segment file was overwritten: {:?}",
        String::from_utf8_lossy(&read[..40])
    );
    assert_eq!(spool.read_body(id(1)).await.unwrap(), &kept[..]);
}

/// A body is handed out only when its whole record checks out: bytes that
/// changed on disk are an error, never another message's content.
#[tokio::test]
async fn a_body_whose_record_changed_on_disk_is_an_error_not_wrong_content() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path());
    store(&spool, 7, b"meta", b"", b"the body as written").await;
    let (file, entry) = {
        let shared = spool.inner.shared();
        let entry = shared.index[&Key::from(7)];
        (
            Arc::clone(&shared.segment(entry.segment).unwrap().file),
            entry,
        )
    };
    assert_eq!(
        spool.read_body(id(7)).await.unwrap(),
        &b"the body as written"[..]
    );
    file.write_all_at(b"X", entry.body_offset() + 4).unwrap();
    match spool.read_body(id(7)).await {
        Err(SpoolError::Io(text)) => assert!(text.contains("does not read back"), "{text}"),
        other => panic!("expected an i/o error, got {other:?}"),
    }
}
