//! The single writer thread: group commit, segment rotation, deletion of dead
//! segments and compaction of mostly-dead ones.

use crate::full::{Backoff, Episode};
use crate::record::{self, FLAG_DONE, FLAGS_OFFSET, HEADER_LEN, Record, SEGMENT_HEADER_LEN};
use crate::reserve::{self, Reserve};
use crate::{
    Entry, Inner, Key, Op, SEGMENT_WINDOW, Segment, SegmentRef, SpoolError, SpoolHealth,
    SpoolOptions, StatePos, segment_path,
};
use std::fs::File;
use std::num::NonZeroU32;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// At most this much is gathered into one commit.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
const MAX_BATCH_OPS: usize = 8192;
/// Unsynced state changes and removals reach the disk at least this often.
const LAZY_SYNC: Duration = Duration::from_millis(500);
/// The Prometheus histogram of commit times (write and fdatasync of one
/// batch someone waits for), through the `metrics` facade: a no-op unless
/// the binary installed a recorder before opening the spool.
pub const COMMIT_SECONDS: &str = "carteiro_spool_commit_seconds";
pub use crate::full::FULL;
/// The zero length written after each batch (see `write_and_sync`).
const END_MARKER_LEN: u64 = 4;
/// A segment this many numbers behind the current one is compacted however
/// live it is, so live segments stay well within [`SEGMENT_WINDOW`].
const COMPACT_AGE: u64 = SEGMENT_WINDOW / 2;

pub(crate) struct Writer {
    inner: Arc<Inner>,
    options: SpoolOptions,
    /// No segment grows past this many bytes (end marker included), so the
    /// index's 32-bit offsets never wrap: `MAX_SEGMENT_LEN` outside tests.
    max_segment_len: u64,
    current: u64,
    file: Arc<File>,
    len: u64,
    buf: Vec<u8>,
    /// State changes and removals whose write failed, tried again (in
    /// order, before anything newer) when `retry_at` says.
    retry: Vec<Op>,
    retry_at: Backoff,
    /// Why the last write failed, for whatever is refused meanwhile.
    last_error: Option<SpoolError>,
    /// Space held back for a full disk.
    reserve: Reserve,
    /// The full disk under way: new messages are refused until it ends.
    full: Option<Episode>,
    /// Set while compaction writes: its copies are not new messages.
    compacting: bool,
    /// When compaction may try again after failing on a full disk.
    compact_at: Backoff,
    /// Bytes written since the last sync.
    dirty: bool,
    last_sync: Instant,
    /// Segments (other than the current one) whose done flags were written
    /// but not yet synced.
    flagged: std::collections::HashSet<u64>,
    /// Asks the preparer thread for a new spare segment.
    prepare: Option<std::sync::mpsc::Sender<()>>,
    /// Observes [`COMMIT_SECONDS`].
    commit_seconds: metrics::Histogram,
}

/// What one encoded op turns into once the batch is on disk.
enum Applied {
    Stored {
        id: u128,
        entry: Entry,
        done: tokio::sync::oneshot::Sender<Result<(), SpoolError>>,
    },
    State {
        id: u128,
        offset: NonZeroU32,
        /// Kept to be written again if the batch fails.
        state: Vec<u8>,
    },
    Removed {
        id: u128,
    },
    Synced {
        done: tokio::sync::oneshot::Sender<Result<(), SpoolError>>,
    },
}

impl Writer {
    pub(crate) fn start(
        inner: Arc<Inner>,
        options: SpoolOptions,
        max_segment_len: u64,
        next_segment: u64,
    ) -> Result<Writer, SpoolError> {
        let reserve = Reserve::new(&inner.dir, options.reserve);
        let mut full = None;
        let (current, file, len) = match create_segment(&inner, next_segment) {
            Ok((file, len)) => (next_segment, file, len),
            Err(err @ SpoolError::Full(_)) => {
                // Started on a full disk: the reserve makes room for the new
                // segment, or the newest one takes further records.
                let mut released = false;
                let mut made = Err(err.clone());
                while made.is_err() && reserve.release() {
                    released = true;
                    made = create_segment(&inner, next_segment);
                }
                full = Some(Episode::start(&err, reserve.size(), released));
                match made {
                    Ok((file, len)) => (next_segment, file, len),
                    Err(err) => continue_newest(&inner).ok_or(err)?,
                }
            }
            Err(err) => return Err(err),
        };
        if full.is_none()
            && let Err(err) = reserve.ensure()
        {
            let err = SpoolError::from_io(&err);
            if matches!(err, SpoolError::Full(_)) {
                // What starts next (the store) needs a little room too.
                let released = reserve.release();
                full = Some(Episode::start(&err, reserve.size(), released));
            } else {
                tracing::warn!(error = %err, "cannot make the spool reserve");
            }
        }
        if full.is_none() {
            metrics::gauge!(FULL).set(0.0);
        }
        let mut writer = Writer {
            inner,
            options,
            max_segment_len,
            current,
            file,
            len,
            buf: Vec::with_capacity(1024 * 1024),
            retry: Vec::new(),
            retry_at: Backoff::new(),
            last_error: None,
            reserve,
            full,
            compacting: false,
            compact_at: Backoff::new(),
            dirty: false,
            last_sync: Instant::now(),
            flagged: std::collections::HashSet::new(),
            prepare: None,
            commit_seconds: metrics::histogram!(COMMIT_SECONDS),
        };
        writer.update_health();
        writer.delete_dead_segments();
        Ok(writer)
    }

    pub(crate) fn run(mut self, rx: Receiver<Op>) {
        let (prepare, wake) = std::sync::mpsc::channel();
        let dir = self.inner.dir.clone();
        let size = self.options.segment_size;
        let preparer = std::thread::Builder::new()
            .name("spool-prepare".into())
            .spawn(move || run_preparer(dir, size, wake));
        if preparer.is_ok() {
            if self.full.is_none() {
                let _ = prepare.send(());
            }
            self.prepare = Some(prepare);
        }
        self.main_loop(rx);
        // Dropping the sender ends the preparer after its current file.
        self.prepare = None;
        if let Ok(handle) = preparer {
            let _ = handle.join();
        }
    }

    fn main_loop(&mut self, rx: Receiver<Op>) {
        loop {
            let first = match self.deadline() {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(op) => Some(op),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(op) => Some(op),
                    Err(_) => break,
                },
            };
            let Some(first) = first else {
                self.tick();
                continue;
            };
            let mut bytes = op_size(&first);
            let mut ops = vec![first];
            while bytes < MAX_BATCH_BYTES && ops.len() < MAX_BATCH_OPS {
                match rx.try_recv() {
                    Ok(op) => {
                        bytes += op_size(&op);
                        ops.push(op);
                    }
                    Err(_) => break,
                }
            }
            let force_sync = self.last_sync.elapsed() >= LAZY_SYNC;
            self.commit(ops, force_sync);
            self.maintain();
            // Ops that never stop coming must not starve what is due.
            self.tick();
        }
        // Shutdown: whatever is still unsynced goes to disk now, and records
        // waiting for a retry get one last try.
        self.retry_at.reset();
        self.commit(Vec::new(), true);
        if !self.retry.is_empty() {
            tracing::error!(
                records = self.retry.len(),
                "spool closed with state records not written: their messages may be delivered again"
            );
        }
    }

    /// When something is due without a new op: the lazy sync, a retry of
    /// failed records, a look for room on a full disk, its summary.
    fn deadline(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut earliest = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if self.dirty {
            earliest(self.last_sync + LAZY_SYNC);
        }
        if !self.retry.is_empty() {
            earliest(self.retry_at.next());
        }
        if let Some(episode) = &self.full {
            earliest(episode.look.next());
            earliest(episode.summary_due());
        }
        at
    }

    /// Does what [`Writer::deadline`] said was due.
    fn tick(&mut self) {
        let now = Instant::now();
        let retry = !self.retry.is_empty() && self.retry_at.due(now);
        if retry || (self.dirty && self.last_sync.elapsed() >= LAZY_SYNC) {
            self.commit(Vec::new(), true);
            self.maintain();
        }
        if self.full.as_ref().is_some_and(|e| e.look.due(now)) {
            self.look_for_room();
        }
        let pending = self.retry.len();
        if let Some(episode) = &mut self.full {
            episode.summarize(now, pending);
        }
    }

    /// On a full disk: when there is room for the reserve and a segment
    /// beyond it, makes the reserve again and takes new messages again.
    fn look_for_room(&mut self) {
        let need = self.reserve.size() + self.options.segment_size;
        let room = reserve::space(&self.inner.dir)
            .is_none_or(|space| space.available + self.reserve.len() >= need);
        let made = room && self.reserve.ensure().is_ok();
        if !made {
            if let Some(episode) = &mut self.full {
                episode.look.failed(Instant::now());
            }
            return;
        }
        if let Some(episode) = self.full.take() {
            episode.end();
        }
        self.update_health();
        if let Some(prepare) = &self.prepare {
            let _ = prepare.send(());
        }
    }

    /// Tells the spool's handles what the writer can do now.
    fn update_health(&self) {
        let health = SpoolHealth {
            full: self.full.is_some(),
            stalled: !self.retry.is_empty(),
        };
        self.inner.health.send_if_modified(|h| {
            let changed = *h != health;
            *h = health;
            changed
        });
    }

    /// After a failed write: a full disk starts an episode (once) and gives
    /// up the reserve, so the failed records can be tried again at once;
    /// anything else waits for the backoff.
    fn failed(&mut self, err: &SpoolError) {
        self.retry_at.failed(Instant::now());
        if matches!(err, SpoolError::Full(_)) {
            let released = self.reserve.release();
            match &self.full {
                None => self.full = Some(Episode::start(err, self.reserve.size(), released)),
                Some(_) if released => {
                    tracing::info!("spool disk still full: another part of the reserve released");
                }
                Some(_) => {}
            }
            if released {
                self.retry_at.reset();
            }
        } else {
            tracing::error!(error = %err, pending_records = self.retry.len(), "spool write failed; trying again");
        }
        self.last_error = Some(err.clone());
    }

    /// Answers or keeps ops that come while failed records wait for their
    /// retry: records queue up behind them, the rest is refused.
    fn park(&mut self, ops: Vec<Op>) {
        let err = self
            .last_error
            .clone()
            .unwrap_or_else(|| SpoolError::Full("disk full".to_string()));
        for op in ops {
            match op {
                Op::Store { done, .. } => {
                    if let Some(episode) = &mut self.full {
                        episode.refused();
                    }
                    let _ = done.send(Err(err.clone()));
                }
                Op::Sync { done } => {
                    let _ = done.send(Err(err.clone()));
                }
                other => self.retry.push(other),
            }
        }
    }

    /// Writes `ops` (after any retried ones) in one write and, when any of
    /// them waits for durability, one sync; then answers the waiters. A
    /// batch too big for one segment is written as several, in order.
    fn commit(&mut self, ops: Vec<Op>, force_sync: bool) {
        let waiting = !self.retry.is_empty();
        let mut ops_all = std::mem::take(&mut self.retry);
        ops_all.extend(ops);
        if waiting && !self.retry_at.due(Instant::now()) {
            self.park(ops_all);
            self.update_health();
            return;
        }
        if self.full.is_some() && !self.compacting {
            // New messages wait for room; records go on (into the reserve).
            let err = SpoolError::Full("disk full".to_string());
            let mut kept = Vec::with_capacity(ops_all.len());
            for op in ops_all {
                match op {
                    Op::Store { done, .. } => {
                        if let Some(episode) = &mut self.full {
                            episode.refused();
                        }
                        let _ = done.send(Err(err.clone()));
                    }
                    other => kept.push(other),
                }
            }
            ops_all = kept;
        }
        // What fits in an empty segment: a larger record fits nowhere.
        let room = self.max_segment_len - SEGMENT_HEADER_LEN as u64 - END_MARKER_LEN;
        let mut run = Vec::new();
        let mut run_bytes = 0u64;
        let mut result = Ok(());
        let mut pending = ops_all.into_iter();
        for op in pending.by_ref() {
            let size = op_size(&op) as u64;
            if size > room {
                refuse_too_large(op, size);
                continue;
            }
            if run_bytes + size > room {
                result = self.commit_run(std::mem::take(&mut run), force_sync);
                run_bytes = 0;
                if result.is_err() {
                    run.push(op);
                    break;
                }
            }
            run_bytes += size;
            run.push(op);
        }
        match result {
            Ok(()) => result = self.commit_run(run, force_sync),
            Err(ref err) => {
                // Later ops wait behind the failed ones, in order.
                run.extend(pending);
                let err = err.clone();
                self.fail(run, &err);
            }
        }
        match result {
            Ok(()) => {
                if waiting && self.retry.is_empty() {
                    self.retry_at.reset();
                    tracing::info!("spool records written again");
                }
            }
            Err(err) => self.failed(&err),
        }
        self.update_health();
    }

    /// Commits ops that fit in one segment: the current one, or a new one
    /// when they would take it past `segment_size` or its hard limit.
    fn commit_run(&mut self, ops_all: Vec<Op>, force_sync: bool) -> Result<(), SpoolError> {
        let incoming: u64 = ops_all.iter().map(|op| op_size(op) as u64).sum();
        if self.len > SEGMENT_HEADER_LEN as u64
            && (self.len + incoming > self.options.segment_size
                || self.len + incoming + END_MARKER_LEN > self.max_segment_len)
            && let Err(err) = self.rotate()
        {
            tracing::debug!(error = %err, "spool segment rotation failed");
            self.fail(ops_all, &err);
            return Err(err);
        }
        let over_limit = self
            .options
            .max_size
            .is_some_and(|max| self.inner.shared().live_bytes() + incoming > max);

        self.buf.clear();
        let base = self.len;
        let seed = record::seed(self.current);
        let mut applied = Vec::with_capacity(ops_all.len());
        let mut needs_sync = force_sync && (self.dirty || !ops_all.is_empty());
        for op in ops_all {
            let at = base + self.buf.len() as u64;
            match op {
                Op::Store {
                    id,
                    meta,
                    state,
                    body,
                    done,
                } => {
                    if over_limit {
                        let _ = done.send(Err(SpoolError::Full(
                            "spool size limit reached".to_string(),
                        )));
                        continue;
                    }
                    let record_start = self.buf.len();
                    let body_offset =
                        record::encode_message(&mut self.buf, seed, id, &meta, &state, &body);
                    needs_sync = true;
                    applied.push(Applied::Stored {
                        id,
                        entry: Entry {
                            segment: SegmentRef::of(self.current),
                            record_offset: offset_u32(at),
                            body_start: (body_offset - record_start) as u32,
                            body_len: body.len() as u32,
                            state: None,
                        },
                        done,
                    });
                }
                Op::State { id, state } => {
                    record::encode_state(&mut self.buf, seed, id, &state);
                    let offset = NonZeroU32::new(offset_u32(at)).expect("after the header");
                    applied.push(Applied::State { id, offset, state });
                }
                Op::Remove { id } => {
                    record::encode_done(&mut self.buf, seed, id);
                    applied.push(Applied::Removed { id });
                }
                Op::Sync { done } => {
                    needs_sync = true;
                    applied.push(Applied::Synced { done });
                }
            }
        }

        let started = Instant::now();
        let written = self.write_and_sync(needs_sync);
        if needs_sync {
            self.commit_seconds.record(started.elapsed().as_secs_f64());
        }
        if let Err(err) = written {
            tracing::debug!(error = %err, "spool commit failed");
            // Undo the partial write so no half batch is ever read back.
            let _ = self.file.set_len(base);
            self.len = base;
            self.fail_applied(applied, &err);
            return Err(err);
        }

        let written = self.buf.len() as u64;
        self.len += written;
        let mut waiters = Vec::new();
        let mut done_flags = Vec::new();
        {
            let mut shared = self.inner.shared();
            if let Some(seg) = shared.segments.get_mut(&self.current) {
                seg.len = self.len;
            }
            let mut stored = 0;
            for item in applied {
                match item {
                    Applied::Stored { id, entry, done } => {
                        shared.insert_entry(Key::from(id), entry);
                        stored += 1;
                        waiters.push(done);
                    }
                    Applied::State { id, offset, .. } => {
                        let key = Key::from(id);
                        if let Some(mut entry) = shared.index.get(&key).copied() {
                            entry.state = Some(StatePos {
                                segment: SegmentRef::of(self.current),
                                offset,
                            });
                            shared.insert_entry(key, entry);
                        }
                    }
                    Applied::Removed { id } => {
                        if let Some(entry) = shared.index.remove(&Key::from(id)) {
                            shared.release_entry(&entry);
                            let number = shared.segment_number(entry.segment);
                            if let Some(seg) = shared.segments.get(&number) {
                                done_flags.push((
                                    number,
                                    Arc::clone(&seg.file),
                                    u64::from(entry.record_offset),
                                ));
                            }
                        }
                    }
                    Applied::Synced { done } => waiters.push(done),
                }
            }
            if needs_sync {
                shared.commits += 1;
                shared.synced_messages += stored;
            }
        }
        for done in waiters {
            let _ = done.send(Ok(()));
        }
        // Mark finished messages in place, so their records stay dead even
        // after the segment holding the done record is deleted.
        for (segment, file, offset) in done_flags {
            match file.write_all_at(&[FLAG_DONE], offset + FLAGS_OFFSET) {
                Ok(()) if segment == self.current => self.dirty = true,
                Ok(()) => {
                    self.flagged.insert(segment);
                }
                Err(err) => {
                    tracing::warn!(segment, error = %err, "cannot mark spool record done");
                }
            }
        }
        Ok(())
    }

    fn write_and_sync(&mut self, sync: bool) -> Result<(), SpoolError> {
        if !self.buf.is_empty() {
            // A zero length after the batch marks the end, so what a recycled
            // file held before is never read as part of this segment.
            let batch = self.buf.len();
            self.buf.extend_from_slice(&[0u8; 4]);
            let written = self.file.write_all_at(&self.buf, self.len);
            self.buf.truncate(batch);
            written.map_err(|e| SpoolError::from_io(&e))?;
            self.dirty = true;
        }
        if sync && self.dirty {
            self.file.sync_data().map_err(|e| SpoolError::from_io(&e))?;
            self.dirty = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    fn fail(&mut self, ops: Vec<Op>, err: &SpoolError) {
        for op in ops {
            match op {
                Op::Store { done, .. } | Op::Sync { done } => {
                    let _ = done.send(Err(err.clone()));
                }
                other => self.retry.push(other),
            }
        }
    }

    fn fail_applied(&mut self, applied: Vec<Applied>, err: &SpoolError) {
        for item in applied {
            match item {
                Applied::Stored { done, .. } | Applied::Synced { done } => {
                    let _ = done.send(Err(err.clone()));
                }
                Applied::State { id, state, .. } => self.retry.push(Op::State { id, state }),
                Applied::Removed { id } => self.retry.push(Op::Remove { id }),
            }
        }
    }

    fn rotate(&mut self) -> Result<(), SpoolError> {
        if self.dirty {
            self.file.sync_data().map_err(|e| SpoolError::from_io(&e))?;
            self.dirty = false;
        }
        let next = self.current + 1;
        let (file, len) = create_segment(&self.inner, next)?;
        self.current = next;
        self.file = file;
        self.len = len;
        if let Some(prepare) = &self.prepare
            && self.full.is_none()
        {
            let _ = prepare.send(());
        }
        Ok(())
    }

    /// Deletes dead segments and copies the live remainder of the sparsest
    /// mostly-dead segment forward; or of the oldest segment, however live,
    /// once it is [`COMPACT_AGE`] numbers old.
    fn maintain(&mut self) {
        self.delete_dead_segments();
        if !self.retry.is_empty() || !self.compact_at.due(Instant::now()) {
            // Compaction needs room that waiting records need more.
            return;
        }
        let candidate = {
            let shared = self.inner.shared();
            let ancient = shared
                .segments
                .iter()
                .next()
                .filter(|&(&number, seg)| {
                    number != self.current && seg.refs > 0 && self.current - number >= COMPACT_AGE
                })
                .map(|(&number, _)| number);
            ancient.or_else(|| {
                shared
                    .segments
                    .iter()
                    .filter(|&(&number, seg)| {
                        number != self.current && seg.refs > 0 && seg.live * 2 < seg.len
                    })
                    .min_by_key(|(_, seg)| seg.live * 1000 / seg.len.max(1))
                    .map(|(&number, _)| number)
            })
        };
        if let Some(number) = candidate {
            self.compacting = true;
            let compacted = self.compact(number);
            self.compacting = false;
            match compacted {
                Ok(()) => self.compact_at.reset(),
                Err(err @ SpoolError::Full(_)) => {
                    self.compact_at.failed(Instant::now());
                    tracing::debug!(segment = number, error = %err, "spool compaction failed");
                }
                Err(err) => {
                    tracing::warn!(segment = number, error = %err, "spool compaction failed");
                }
            }
            self.delete_dead_segments();
        }
    }

    /// Deletes every segment except the current one that nothing live points
    /// into. Done flags are synced first, so no deleted `done` record is ever
    /// needed to keep a finished message finished.
    fn delete_dead_segments(&mut self) {
        let victims: Vec<u64> = {
            let shared = self.inner.shared();
            shared
                .segments
                .iter()
                .filter(|&(&number, seg)| number != self.current && seg.refs == 0)
                .map(|(&number, _)| number)
                .collect()
        };
        if victims.is_empty() {
            return;
        }
        let flagged: Vec<u64> = self.flagged.drain().collect();
        for number in flagged {
            let file = self
                .inner
                .shared()
                .segments
                .get(&number)
                .map(|seg| Arc::clone(&seg.file));
            if let Some(file) = file
                && let Err(err) = file.sync_data()
            {
                tracing::warn!(segment = number, error = %err, "cannot sync done flags");
                self.flagged.insert(number);
                return;
            }
        }
        if self.dirty {
            if let Err(err) = self.file.sync_data() {
                tracing::warn!(error = %err, "cannot sync spool segment");
                return;
            }
            self.dirty = false;
            self.last_sync = Instant::now();
        }
        let spare = spare_path(&self.inner.dir);
        for number in victims {
            let removed = self.inner.shared().segments.remove(&number);
            let path = segment_path(&self.inner.dir, number);
            // A dead segment becomes the next spare when none is ready: its
            // blocks are already allocated. Only when no reader holds its
            // file: one that looked up a message just before it moved reads
            // on from this file (see `read_at`), and a recycled file gets new
            // records at the very offsets it reads. Out of the index, no new
            // reader can take the file, so a count of one stays one.
            let unread = removed.is_some_and(|seg| Arc::strong_count(&seg.file) == 1);
            let result = if !unread || spare.exists() {
                std::fs::remove_file(&path)
            } else {
                std::fs::rename(&path, &spare)
            };
            if let Err(err) = result {
                tracing::warn!(segment = %path.display(), error = %err, "cannot delete spool segment");
            }
        }
        // Deletions must be durable: a segment coming back after a crash
        // could hold an older copy of a message that was moved and finished.
        if let Err(err) = File::open(&self.inner.dir).and_then(|d| d.sync_all()) {
            tracing::warn!(error = %err, "cannot sync spool directory");
        }
    }

    /// Rewrites every message that still points into segment `number` as a
    /// fresh record (with its newest state) in the current segment.
    fn compact(&mut self, number: u64) -> Result<(), SpoolError> {
        let (victims, newest, files) = {
            let shared = self.inner.shared();
            let this = SegmentRef::of(number);
            let victims: Vec<(Key, Entry)> = shared
                .index
                .iter()
                .filter(|(_, e)| e.segment == this || e.state.is_some_and(|s| s.segment == this))
                .map(|(&id, &e)| (id, e))
                .collect();
            let files: std::collections::HashMap<u64, Arc<File>> = shared
                .segments
                .iter()
                .map(|(&n, s)| (n, Arc::clone(&s.file)))
                .collect();
            (victims, shared.newest_segment(), files)
        };
        let file_of = |segment: SegmentRef| {
            let number = segment.number(newest);
            files
                .get(&number)
                .map(|file| (number, file))
                .ok_or(SpoolError::Io(format!(
                    "segment {number} missing during compaction"
                )))
        };
        let mut ops = Vec::with_capacity(victims.len());
        let mut waits = Vec::with_capacity(victims.len());
        for (id, entry) in victims {
            let (segment, file) = file_of(entry.segment)?;
            let data = read_record(file, u64::from(entry.record_offset))?;
            let (meta, mut state, body_offset) =
                match record::decode_at(&data, 0, record::seed(segment)) {
                    Ok(Some((
                        Record::Message {
                            meta,
                            state,
                            body_offset,
                            ..
                        },
                        _,
                    ))) => (meta.to_vec(), state.to_vec(), body_offset as usize),
                    _ => return Err(SpoolError::Io("unreadable record during compaction".into())),
                };
            if let Some(pos) = entry.state {
                let (segment, file) = file_of(pos.segment)?;
                let data = read_record(file, u64::from(pos.offset.get()))?;
                if let Ok(Some((Record::State { state: s, .. }, _))) =
                    record::decode_at(&data, 0, record::seed(segment))
                {
                    state = s.to_vec();
                }
            }
            let body = bytes::Bytes::from(data).slice(body_offset..);
            let (done, wait) = tokio::sync::oneshot::channel();
            ops.push(Op::Store {
                id: u128::from(id),
                meta,
                state,
                body,
                done,
            });
            waits.push(wait);
        }
        let moved = ops.len();
        self.commit(ops, true);
        for mut wait in waits {
            if let Ok(Err(err)) = wait.try_recv() {
                return Err(err);
            }
        }
        tracing::debug!(segment = number, moved, "spool segment compacted");
        Ok(())
    }
}

fn read_record(file: &File, offset: u64) -> Result<Vec<u8>, SpoolError> {
    let mut header = [0u8; HEADER_LEN];
    file.read_exact_at(&mut header, offset)
        .map_err(|e| SpoolError::from_io(&e))?;
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    let mut data = vec![0u8; HEADER_LEN + len];
    file.read_exact_at(&mut data, offset)
        .map_err(|e| SpoolError::from_io(&e))?;
    Ok(data)
}

/// An offset within the current segment, which the writer keeps below
/// `max_segment_len` (at most 4 GiB).
fn offset_u32(offset: u64) -> u32 {
    u32::try_from(offset).expect("segments end below 4 GiB")
}

/// Answers an op whose record could not fit in any segment.
fn refuse_too_large(op: Op, size: u64) {
    match op {
        Op::Store { done, .. } => {
            let _ = done.send(Err(SpoolError::TooLarge(size)));
        }
        Op::State { id, .. } => {
            // The queue writes a newer state at its next attempt anyway.
            tracing::error!(id, size, "spool state record too large, not written");
        }
        Op::Remove { .. } | Op::Sync { .. } => {}
    }
}

fn op_size(op: &Op) -> usize {
    match op {
        Op::Store {
            meta, state, body, ..
        } => HEADER_LEN + 25 + meta.len() + state.len() + body.len(),
        Op::State { state, .. } => HEADER_LEN + 17 + state.len(),
        Op::Remove { .. } => HEADER_LEN + 17,
        Op::Sync { .. } => 0,
    }
}

/// Opens segment `number` for writing: the prepared spare file when there
/// is one (its blocks are allocated, so syncing writes into it costs no
/// metadata update), else a new file.
fn create_segment(inner: &Inner, number: u64) -> Result<(Arc<File>, u64), SpoolError> {
    let io = |e: std::io::Error| SpoolError::from_io(&e);
    let oldest = inner.shared().segments.first_key_value().map(|(&n, _)| n);
    if let Some(oldest) = oldest
        && number - oldest >= SEGMENT_WINDOW
    {
        // The index's 32-bit segment numbers would no longer name one
        // segment; compaction (see COMPACT_AGE) should have moved it long ago.
        return Err(SpoolError::Io(format!(
            "cannot start spool segment {number} while segment {oldest} is still live"
        )));
    }
    let path = segment_path(&inner.dir, number);
    let spare = spare_path(&inner.dir);
    // A file left by a failed attempt (or a crash during one) holds nothing.
    if std::fs::metadata(&path).is_ok_and(|m| m.len() <= SEGMENT_HEADER_LEN as u64 + 4) {
        let _ = std::fs::remove_file(&path);
    }
    let recycled = std::fs::rename(&spare, &path).is_ok();
    let made = (|| {
        let file = if recycled {
            File::options().read(true).write(true).open(&path)?
        } else {
            crate::private_file()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?
        };
        let mut header = record::segment_header(number).to_vec();
        // An end marker right after the header: the file may be a recycled one.
        header.extend_from_slice(&[0u8; 4]);
        file.write_all_at(&header, 0)?;
        file.sync_all()?;
        // The new file's directory entry must survive a crash too.
        File::open(&inner.dir)?.sync_all()?;
        Ok(file)
    })();
    let file = match made {
        Ok(file) => Arc::new(file),
        Err(err) => {
            // No half-made segment stays behind: a spare goes back to being
            // one, a new file is deleted, so the next rotation starts clean.
            let undone = if recycled {
                std::fs::rename(&path, &spare)
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(undo) = undone
                && undo.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(segment = %path.display(), error = %undo, "cannot remove a half-made spool segment");
            }
            return Err(io(err));
        }
    };
    inner.shared().segments.insert(
        number,
        Segment {
            file: Arc::clone(&file),
            len: SEGMENT_HEADER_LEN as u64,
            refs: 0,
            live: 0,
        },
    );
    Ok((file, SEGMENT_HEADER_LEN as u64))
}

/// On a disk too full for a new segment: the newest segment takes further
/// records after its readable end, as its writer left it.
fn continue_newest(inner: &Inner) -> Option<(u64, Arc<File>, u64)> {
    let shared = inner.shared();
    let (&number, seg) = shared.segments.last_key_value()?;
    tracing::warn!(
        segment = number,
        "no room for a new spool segment: writing on in the newest one"
    );
    Some((number, Arc::clone(&seg.file), seg.len))
}

fn spare_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("spare.log")
}

/// Keeps one zero-filled spare segment ready in the background, so that
/// rotation never waits for preallocation. Runs until `wake` is dropped.
pub(crate) fn run_preparer(dir: std::path::PathBuf, size: u64, wake: Receiver<()>) {
    while wake.recv().is_ok() {
        let spare = spare_path(&dir);
        if spare.exists() {
            continue;
        }
        let tmp = dir.join("spare.tmp");
        let result = (|| -> std::io::Result<()> {
            let file = crate::private_file()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            let chunk = vec![0u8; 1024 * 1024];
            let mut written = 0u64;
            while written < size {
                let n = chunk.len().min((size - written) as usize);
                file.write_all_at(&chunk[..n], written)?;
                written += n as u64;
            }
            file.sync_all()?;
            std::fs::rename(&tmp, &spare)?;
            File::open(&dir)?.sync_all()
        })();
        if let Err(err) = result {
            // Likely a full disk: segments are then created on demand.
            tracing::warn!(error = %err, "cannot prepare a spare spool segment");
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
