//! The durable spool: every accepted message is written here, and a client
//! hears `250` only after its message is on disk.
//!
//! Messages are appended to segment files (`seg-NNNNNNNNNNNNNNNN.log`) by a
//! single writer thread. Sessions hand it a message over a channel with a
//! reply slot; the writer drains whatever is waiting, writes it with one
//! `write`, calls `fdatasync` once, and then answers every slot — group
//! commit, so more concurrent sessions means bigger batches, not more syncs.
//! State changes (an attempt was made) and removals (the message is done)
//! ride along in later batches without being waited for: a crash then costs
//! a duplicate delivery, never a loss.
//!
//! A segment is deleted once nothing in it is live; a segment that is mostly
//! dead has its few live messages copied forward, so a long-deferred message
//! does not pin disk space for days. A dead segment nobody is reading from
//! becomes the spare for the next segment (its blocks are allocated); one a
//! reader still holds is unlinked instead, so the reader's bytes never
//! change under it. A body is handed out only after its record's id and
//! checksum are checked. A finished message's record is marked
//! done in place (and that mark synced before any segment is deleted), so
//! deleting the segment that holds its `done` record never revives it.
//!
//! Opening reads the segments twice: once to find the live messages, once
//! to hand each one's metadata and state to the caller, who decodes it and
//! drops the bytes. The index of live messages keeps 32-bit offsets (a
//! segment never grows past 4 GiB) and no message data.
//!
//! What this crate does not know: what a message's metadata or state mean
//! (they are opaque bytes), queues, SMTP.

mod full;
mod record;
mod recover;
mod reserve;
mod scan;
mod writer;

pub use writer::{COMMIT_SECONDS, FULL};

use bytes::Bytes;
use carteiro_mail::MessageId;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::num::NonZeroU32;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Settings of a spool.
#[derive(Clone, Debug)]
pub struct SpoolOptions {
    /// A segment file is closed and a new one started past this size.
    /// Offsets within a segment are 32-bit: whatever this says, a segment
    /// never grows past 4 GiB (configurations allow at most 1 GiB).
    pub segment_size: u64,
    /// New messages are refused (as if the disk were full) once the live
    /// messages together would take more than this many bytes.
    pub max_size: Option<u64>,
    /// Bytes held back in a preallocated file (`reserve` in the spool's
    /// directory) while the disk has room, at most an eighth of the
    /// filesystem; released when the disk is full, so that state and done
    /// records can still be written and the backlog drains. 0: none (the
    /// default here; the binary's default is 64 MiB).
    pub reserve: u64,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            segment_size: 64 * 1024 * 1024,
            max_size: None,
            reserve: 0,
        }
    }
}

/// What the spool can do right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolHealth {
    /// The disk is full: new messages are refused (`SpoolError::Full`)
    /// until there is room again.
    pub full: bool,
    /// State changes or removals could not be written and wait to be tried
    /// again (in order): whatever is delivered now might not be recorded
    /// as done, so deliveries should wait.
    pub stalled: bool,
}

/// Errors of the spool. Cloneable because one failed commit answers many
/// waiting sessions.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool storage is full: {0}")]
    Full(String),
    #[error("spool i/o error: {0}")]
    Io(String),
    #[error("spool at {0} is in use by another process")]
    Locked(PathBuf),
    #[error("message {0} is not in the spool")]
    NotFound(MessageId),
    /// A message (with its metadata and state) of this many bytes cannot be
    /// stored: no record may be larger than a segment can be (4 GiB).
    #[error("a spool record of {0} bytes is too large")]
    TooLarge(u64),
    #[error("spool is closed")]
    Closed,
}

impl SpoolError {
    fn from_io(err: &std::io::Error) -> SpoolError {
        match err.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                SpoolError::Full(err.to_string())
            }
            _ => SpoolError::Io(err.to_string()),
        }
    }
}

/// A message found in the spool when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub id: MessageId,
    pub meta: Vec<u8>,
    /// The latest state written for it (empty if none).
    pub state: Vec<u8>,
    pub body_len: u32,
}

/// Figures about the spool, for metrics and the CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStats {
    pub messages: usize,
    pub segments: usize,
    pub bytes: u64,
    pub commits: u64,
    pub synced_messages: u64,
}

/// Live-data estimate for a record's header, metadata and state.
const RECORD_OVERHEAD: u64 = 256;

/// A segment never grows past this, so every offset within one fits a `u32`
/// (the index's [`Entry`] keeps them so).
const MAX_SEGMENT_LEN: u64 = u32::MAX as u64;

/// Live segments always lie within this many numbers of the newest one, so
/// that the low 32 bits of a number name exactly one of them (see
/// [`SegmentRef`]).
const SEGMENT_WINDOW: u64 = 1 << 32;

/// A message id as the index keeps it. Two words rather than a `u128`, whose
/// 16-byte alignment would pad every bucket of the index to 72 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key(u64, u64);

impl From<u128> for Key {
    fn from(id: u128) -> Key {
        Key((id >> 64) as u64, id as u64)
    }
}

impl From<Key> for u128 {
    fn from(key: Key) -> u128 {
        (u128::from(key.0) << 64) | u128::from(key.1)
    }
}

/// A segment number as the index keeps it: its low 32 bits. Segment numbers
/// are 64-bit (on disk and in file names) and only ever grow, but the live
/// ones always lie within [`SEGMENT_WINDOW`] of the newest: the writer
/// compacts a segment long before it falls that far behind, and refuses to
/// start a segment that would break the rule. The full number is then the
/// one within the window below the newest ([`SegmentRef::number`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SegmentRef(u32);

impl SegmentRef {
    fn of(number: u64) -> SegmentRef {
        SegmentRef(number as u32)
    }

    /// The full number, given the newest segment's.
    fn number(self, newest: u64) -> u64 {
        newest.wrapping_sub(u64::from((newest as u32).wrapping_sub(self.0)))
    }
}

/// Where a message's newest state record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StatePos {
    segment: SegmentRef,
    /// Never 0: the segment header is there. Lets `Option<StatePos>` take
    /// no more room than a `StatePos`.
    offset: NonZeroU32,
}

/// Where a live message's data is. 24 bytes, aligned to 4, so that a bucket
/// of the index (with its [`Key`]) is 40 bytes: a million messages take
/// 2^21 buckets, 86 MB with the table's control bytes (72-byte buckets took
/// 153 MB).
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The segment of the message record.
    segment: SegmentRef,
    record_offset: u32,
    /// Offset of the body from the start of the record (the header, id,
    /// metadata and state come first).
    body_start: u32,
    body_len: u32,
    /// The newest state record, when it is not the state inside the message
    /// record.
    state: Option<StatePos>,
}

impl Entry {
    #[cfg(test)]
    fn body_offset(&self) -> u64 {
        u64::from(self.record_offset) + u64::from(self.body_start)
    }
}

struct Segment {
    file: Arc<File>,
    len: u64,
    /// Index entries that point into this segment (message or state).
    refs: usize,
    /// Approximate bytes of live data in this segment.
    live: u64,
}

#[derive(Default)]
struct Shared {
    index: HashMap<Key, Entry>,
    segments: BTreeMap<u64, Segment>,
    commits: u64,
    synced_messages: u64,
}

impl Shared {
    /// The number of the newest segment (0 when there is none yet).
    fn newest_segment(&self) -> u64 {
        self.segments.last_key_value().map_or(0, |(&n, _)| n)
    }

    /// The full number of a segment the index points into.
    fn segment_number(&self, segment: SegmentRef) -> u64 {
        segment.number(self.newest_segment())
    }

    fn segment(&self, segment: SegmentRef) -> Option<&Segment> {
        self.segments.get(&self.segment_number(segment))
    }

    fn add_ref(&mut self, segment: SegmentRef, bytes: u64) {
        let number = self.segment_number(segment);
        if let Some(seg) = self.segments.get_mut(&number) {
            seg.refs += 1;
            seg.live += bytes;
        }
    }

    fn drop_ref(&mut self, segment: SegmentRef, bytes: u64) {
        let number = self.segment_number(segment);
        if let Some(seg) = self.segments.get_mut(&number) {
            seg.refs = seg.refs.saturating_sub(1);
            seg.live = seg.live.saturating_sub(bytes);
        }
    }

    fn insert_entry(&mut self, id: Key, entry: Entry) {
        self.add_ref(entry.segment, entry.body_len as u64 + RECORD_OVERHEAD);
        if let Some(state) = entry.state {
            self.add_ref(state.segment, RECORD_OVERHEAD);
        }
        if let Some(old) = self.index.insert(id, entry) {
            self.release_entry(&old);
        }
    }

    fn release_entry(&mut self, entry: &Entry) {
        self.drop_ref(entry.segment, entry.body_len as u64 + RECORD_OVERHEAD);
        if let Some(state) = entry.state {
            self.drop_ref(state.segment, RECORD_OVERHEAD);
        }
    }

    fn total_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.len).sum()
    }

    fn live_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.live).sum()
    }
}

enum Op {
    Store {
        id: u128,
        meta: Vec<u8>,
        state: Vec<u8>,
        body: Bytes,
        done: oneshot::Sender<Result<(), SpoolError>>,
    },
    State {
        id: u128,
        state: Vec<u8>,
    },
    Remove {
        id: u128,
    },
    Sync {
        done: oneshot::Sender<Result<(), SpoolError>>,
    },
}

struct Inner {
    dir: PathBuf,
    shared: Mutex<Shared>,
    tx: Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Held (flock) while the spool is open; released by `close`.
    lock: Mutex<Option<File>>,
    /// Set by the writer as the disk fills and empties.
    health: tokio::sync::watch::Sender<SpoolHealth>,
}

impl Inner {
    fn shared(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves plain data behind, still usable.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, op: Op) -> Result<(), SpoolError> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref() {
            Some(tx) => tx.send(op).map_err(|_| SpoolError::Closed),
            None => Err(SpoolError::Closed),
        }
    }
}

/// A handle to the spool; cheap to clone.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

impl Spool {
    /// Opens (or creates) the spool in `dir` like [`Spool::open_with`], and
    /// returns every live message found, in id order.
    pub fn open(dir: &Path, options: SpoolOptions) -> Result<(Spool, Vec<Recovered>), SpoolError> {
        let mut recovered = Vec::new();
        let spool = Spool::open_with(dir, options, |r| recovered.push(r))?;
        recovered.sort_unstable_by_key(|r| r.id);
        Ok((spool, recovered))
    }

    /// Opens (or creates) the spool in `dir`, takes its lock, hands every
    /// live message to `each`, one at a time, and starts the writer thread.
    ///
    /// Messages come in the order of their newest record on disk (their
    /// newest state record, or the message record when no state was written
    /// after it), which is neither id nor arrival order. Nothing is kept of a
    /// message once `each` returns, so a caller that decodes and drops the
    /// bytes never holds a copy of the whole spool. If this fails, what
    /// `each` was given so far is incomplete and should be discarded.
    pub fn open_with(
        dir: &Path,
        options: SpoolOptions,
        mut each: impl FnMut(Recovered),
    ) -> Result<Spool, SpoolError> {
        Spool::open_limited(dir, options, MAX_SEGMENT_LEN, &mut each)
    }

    /// [`Spool::open_with`] with segments limited to `max_segment_len`
    /// bytes, so that tests can reach the limit.
    fn open_limited(
        dir: &Path,
        options: SpoolOptions,
        max_segment_len: u64,
        each: &mut dyn FnMut(Recovered),
    ) -> Result<Spool, SpoolError> {
        create_private_dir(dir).map_err(|e| SpoolError::from_io(&e))?;
        let lock = private_file()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| SpoolError::from_io(&e))?;
        if lock.try_lock().is_err() {
            return Err(SpoolError::Locked(dir.to_path_buf()));
        }
        let (shared, next_segment) = recover::load(dir)?;
        // Before the writer starts: it recycles dead segments and compacts,
        // and nothing may read segment files behind its back.
        recover::replay(&shared, each)?;
        let (tx, rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            shared: Mutex::new(shared),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(None),
            lock: Mutex::new(Some(lock)),
            health: tokio::sync::watch::Sender::new(SpoolHealth::default()),
        });
        let writer =
            writer::Writer::start(Arc::clone(&inner), options, max_segment_len, next_segment)?;
        let handle = std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| SpoolError::from_io(&e))?;
        *inner.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(Spool { inner })
    }

    /// Writes a message durably. When this returns `Ok`, the message, its
    /// metadata and its initial state survive a crash or power loss.
    pub async fn store(
        &self,
        id: MessageId,
        meta: Vec<u8>,
        state: Vec<u8>,
        body: Bytes,
    ) -> Result<(), SpoolError> {
        let (done, wait) = oneshot::channel();
        self.inner.send(Op::Store {
            id: id.0,
            meta,
            state,
            body,
            done,
        })?;
        wait.await.unwrap_or(Err(SpoolError::Closed))
    }

    /// Records a message's new state. Not waited for: it becomes durable with
    /// the next commit (at the latest within a second).
    pub fn set_state(&self, id: MessageId, state: Vec<u8>) -> Result<(), SpoolError> {
        self.inner.send(Op::State { id: id.0, state })
    }

    /// Removes a finished message. Not waited for, like [`Spool::set_state`].
    pub fn remove(&self, id: MessageId) -> Result<(), SpoolError> {
        self.inner.send(Op::Remove { id: id.0 })
    }

    /// Waits until everything handed to the spool so far is on disk.
    pub async fn sync(&self) -> Result<(), SpoolError> {
        let (done, wait) = oneshot::channel();
        self.inner.send(Op::Sync { done })?;
        wait.await.unwrap_or(Err(SpoolError::Closed))
    }

    /// Whether a message is (still) in the spool.
    pub fn contains(&self, id: MessageId) -> bool {
        self.inner.shared().index.contains_key(&Key::from(id.0))
    }

    /// Reads a message's body back from disk.
    pub async fn read_body(&self, id: MessageId) -> Result<Bytes, SpoolError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || read_body_blocking(&inner, id))
            .await
            .map_err(|e| SpoolError::Io(e.to_string()))?
    }

    /// Reads a message's body back from disk, blocking the calling thread.
    pub fn read_body_blocking(&self, id: MessageId) -> Result<Bytes, SpoolError> {
        read_body_blocking(&self.inner, id)
    }

    /// Reads back the metadata a message was stored with (its state may
    /// have changed since: that is in the state records). For what is kept
    /// beside the queue's own fields, such as the record rebuilt at start
    /// when the store lost it.
    pub async fn read_meta(&self, id: MessageId) -> Result<Vec<u8>, SpoolError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || read_meta_blocking(&inner, id))
            .await
            .map_err(|e| SpoolError::Io(e.to_string()))?
    }

    pub fn stats(&self) -> SpoolStats {
        let shared = self.inner.shared();
        SpoolStats {
            messages: shared.index.len(),
            segments: shared.segments.len(),
            bytes: shared.total_bytes(),
            commits: shared.commits,
            synced_messages: shared.synced_messages,
        }
    }

    /// Whether the disk is full and whether records wait to be written.
    pub fn health(&self) -> SpoolHealth {
        *self.inner.health.borrow()
    }

    /// Follows [`Spool::health`] as it changes.
    pub fn watch_health(&self) -> tokio::sync::watch::Receiver<SpoolHealth> {
        self.inner.health.subscribe()
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Flushes everything queued, stops the writer thread and waits for it.
    /// Other clones of this handle get `SpoolError::Closed` afterwards.
    pub fn close(&self) {
        self.inner
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        self.inner
            .lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

fn read_body_blocking(inner: &Inner, id: MessageId) -> Result<Bytes, SpoolError> {
    // The whole record is read and checked (its id and checksum), so that a
    // body handed out is always this message's, as it was written.
    read_at(inner, id, |file, entry, number| {
        let len = entry.body_start as usize + entry.body_len as usize;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, u64::from(entry.record_offset))
            .map_err(|e| SpoolError::from_io(&e))?;
        let body = match record::decode_at(&buf, 0, record::seed(number)) {
            Ok(Some((
                record::Record::Message {
                    id: found,
                    body_offset,
                    body_len,
                    ..
                },
                _,
            ))) if found == id.0 && body_len == entry.body_len => body_offset as usize,
            _ => return Ok(None),
        };
        Ok(Some(Bytes::from(buf).slice(body..)))
    })
}

/// Reads through the segment file and index entry of a message. The writer
/// may move the message to a newer segment between the look-up and the
/// read: the old file stays readable through its open handle (a segment a
/// reader holds is deleted, never recycled), and a second look-up covers a
/// segment deleted in between. `read` answers `None` when the bytes it found
/// are not the message's record: looked up again once, then an error.
fn read_at<T>(
    inner: &Inner,
    id: MessageId,
    read: impl Fn(&File, &Entry, u64) -> Result<Option<T>, SpoolError>,
) -> Result<T, SpoolError> {
    let mut mismatched = false;
    for _ in 0..2 {
        let (file, entry, number) = {
            let shared = inner.shared();
            let entry = *shared
                .index
                .get(&Key::from(id.0))
                .ok_or(SpoolError::NotFound(id))?;
            let file = shared.segment(entry.segment).map(|s| Arc::clone(&s.file));
            (file, entry, shared.segment_number(entry.segment))
        };
        let Some(file) = file else { continue };
        match read(&file, &entry, number)? {
            Some(found) => return Ok(found),
            None => mismatched = true,
        }
    }
    if mismatched {
        return Err(SpoolError::Io(format!(
            "message {id}: its spool record does not read back as written"
        )));
    }
    Err(SpoolError::NotFound(id))
}

fn read_meta_blocking(inner: &Inner, id: MessageId) -> Result<Vec<u8>, SpoolError> {
    read_at(inner, id, |file, entry, _| {
        let mut head = vec![0u8; entry.body_start as usize];
        file.read_exact_at(&mut head, u64::from(entry.record_offset))
            .map_err(|e| SpoolError::from_io(&e))?;
        Ok(record::decode_message_head(&head)
            .filter(|(found, _, _)| *found == id.0)
            .map(|(_, meta, _)| meta.to_vec()))
    })
}

/// Queued mail is private whatever the umask and the data directory's mode:
/// the spool directory (and any it creates above it) is made owner-only
/// (0700), an existing one included.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Options that create files owner-only (0600), whatever the umask: every
/// file of the spool is made with these.
fn private_file() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = File::options();
    options.mode(0o600);
    options
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("seg-{number:016x}.log"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod disk_full_tests;
