//! Reading the spool back at start, in two passes that never hold a copy of
//! every message:
//!
//! 1. [`load`] replays every segment's records in order into the index of
//!    live messages, which then knows where each message record and each
//!    newest state record is. It finds where each segment's readable part
//!    ends, and cuts a torn tail off the last one.
//! 2. [`replay`] reads the segments again, up to those ends, and hands each
//!    live message's metadata and newest state over as it reaches that
//!    message's newest record. The metadata of a message whose state was
//!    rewritten later is read from its message record with one `pread` of
//!    just that record's head.
//!
//! Both passes read through a window of a few MiB ([`Scanner`]).

use crate::record::{self, MESSAGE_HEAD_LEN, Record, SEGMENT_HEADER_LEN};
use crate::scan::Scanner;
use crate::{
    Entry, Key, Recovered, SEGMENT_WINDOW, Segment, SegmentRef, Shared, SpoolError, StatePos,
    parse_segment_name,
};
use carteiro_mail::MessageId;
use std::fs::File;
use std::num::NonZeroU32;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

fn io(err: std::io::Error) -> SpoolError {
    SpoolError::from_io(&err)
}

/// Pass 1: builds the index from every segment in `dir`. Returns it and the
/// number for the next segment to create.
pub(crate) fn load(dir: &Path) -> Result<(Shared, u64), SpoolError> {
    let mut numbers: Vec<u64> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| parse_segment_name(entry.file_name().to_str()?))
        .collect();
    numbers.sort_unstable();
    let last = numbers.last().copied();
    let next = match last {
        None => 1,
        Some(last) => last
            .checked_add(1)
            .ok_or_else(|| SpoolError::Io(format!("spool segment number {last} is the last")))?,
    };
    // The index keeps segment numbers' low 32 bits; they name one segment
    // only while all of them, and the one about to be created, lie within
    // the window. The writer keeps it so; files from elsewhere may not.
    if let Some(&first) = numbers.first()
        && next - first >= SEGMENT_WINDOW
    {
        return Err(SpoolError::Io(format!(
            "spool segments {first} to {next} are too far apart (at most {SEGMENT_WINDOW} numbers)"
        )));
    }

    let mut shared = Shared::default();
    for &number in &numbers {
        let path = crate::segment_path(dir, number);
        // Read-write: finishing a message later marks its record done in place.
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        let complete = file.read_exact_at(&mut header, 0).is_ok();
        if !complete || record::parse_segment_header(&header) != Some(number) {
            // A segment whose header never reached the disk holds nothing
            // that was acknowledged.
            tracing::warn!(segment = %path.display(), "spool segment without header, removing");
            drop(file);
            std::fs::remove_file(&path).map_err(io)?;
            continue;
        }
        let file_len = file.metadata().map_err(io)?.len();
        shared.segments.insert(
            number,
            Segment {
                file: Arc::new(file),
                len: file_len,
                refs: 0,
                live: 0,
            },
        );
        let end = replay_index(&mut shared, number, file_len, Some(number) == last, &path)?;
        if let Some(seg) = shared.segments.get_mut(&number) {
            seg.len = end;
        }
    }
    Ok((shared, next))
}

/// Replays segment `number`'s records into the index; returns the offset
/// where its readable part ends.
fn replay_index(
    shared: &mut Shared,
    number: u64,
    file_len: u64,
    is_last: bool,
    path: &Path,
) -> Result<u64, SpoolError> {
    let file = Arc::clone(&shared.segments[&number].file);
    let seed = record::seed(number);
    let segment = SegmentRef::of(number);
    let mut scanner = Scanner::new(&file, SEGMENT_HEADER_LEN as u64, file_len);
    loop {
        scanner.fill().map_err(io)?;
        let offset = scanner.offset();
        match scanner.decode(seed) {
            Ok(None) => return Ok(offset),
            Ok(Some((rec, next))) => {
                let offset = u32::try_from(offset).map_err(|_| {
                    SpoolError::Io(format!(
                        "spool segment {} holds a record past 4 GiB (at {offset}); \
                         segments this large are not supported",
                        path.display()
                    ))
                })?;
                apply(shared, segment, offset, rec);
                scanner.advance(next);
            }
            Err(stop) => {
                tracing::warn!(
                    segment = %path.display(),
                    offset,
                    reason = ?stop,
                    "spool segment ends in an incomplete record; ignoring the rest"
                );
                if is_last {
                    file.set_len(offset).map_err(io)?;
                    file.sync_all().map_err(io)?;
                }
                return Ok(offset);
            }
        }
    }
}

fn apply(shared: &mut Shared, segment: SegmentRef, offset: u32, rec: Record<'_>) {
    match rec {
        Record::Message {
            id,
            meta,
            state,
            body_len,
            done,
            ..
        } => {
            let key = Key::from(id);
            if done {
                if let Some(entry) = shared.index.remove(&key) {
                    shared.release_entry(&entry);
                }
                return;
            }
            // Within the record, whose length is a u32.
            let body_start = (MESSAGE_HEAD_LEN + meta.len() + state.len()) as u32;
            shared.insert_entry(
                key,
                Entry {
                    segment,
                    record_offset: offset,
                    body_start,
                    body_len,
                    state: None,
                },
            );
        }
        Record::State { id, .. } => {
            let key = Key::from(id);
            let Some(mut entry) = shared.index.get(&key).copied() else {
                return;
            };
            let offset = NonZeroU32::new(offset).expect("records follow the segment header");
            entry.state = Some(StatePos { segment, offset });
            shared.insert_entry(key, entry);
        }
        Record::Done { id } => {
            if let Some(entry) = shared.index.remove(&Key::from(id)) {
                shared.release_entry(&entry);
            }
        }
    }
}

/// Pass 2: hands every live message of the index to `each`, reading only up
/// to where pass 1 found each segment's readable part to end.
pub(crate) fn replay(shared: &Shared, each: &mut dyn FnMut(Recovered)) -> Result<(), SpoolError> {
    for (&number, seg) in &shared.segments {
        let this = SegmentRef::of(number);
        let mut scanner = Scanner::new(&seg.file, SEGMENT_HEADER_LEN as u64, seg.len);
        loop {
            scanner.fill().map_err(io)?;
            let offset = scanner.offset();
            let (rec, next) = match scanner.decode_checked_before() {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(_) => return Err(changed(number)),
            };
            match rec {
                Record::Message {
                    id,
                    meta,
                    state,
                    body_len,
                    ..
                } => {
                    // Only the live record of a message without a later state.
                    let live = shared.index.get(&Key::from(id)).is_some_and(|entry| {
                        entry.segment == this
                            && u64::from(entry.record_offset) == offset
                            && entry.state.is_none()
                    });
                    if live {
                        each(Recovered {
                            id: MessageId(id),
                            meta: meta.to_vec(),
                            state: state.to_vec(),
                            body_len,
                        });
                    }
                }
                Record::State { id, state } => {
                    // Only a message's newest state record.
                    let newest = shared.index.get(&Key::from(id)).filter(|entry| {
                        entry.state.is_some_and(|pos| {
                            pos.segment == this && u64::from(pos.offset.get()) == offset
                        })
                    });
                    if let Some(entry) = newest {
                        let meta = read_meta(shared, &scanner, number, entry, id)?;
                        each(Recovered {
                            id: MessageId(id),
                            meta,
                            state: state.to_vec(),
                            body_len: entry.body_len,
                        });
                    }
                }
                Record::Done { .. } => {}
            }
            scanner.advance(next);
        }
    }
    Ok(())
}

/// The metadata of `entry`'s message record: from the window of the scanner
/// of segment `scanning` when it holds the record's head, else read with one
/// `pread` of just the head.
fn read_meta(
    shared: &Shared,
    scanner: &Scanner<'_>,
    scanning: u64,
    entry: &Entry,
    id: u128,
) -> Result<Vec<u8>, SpoolError> {
    let number = shared.segment_number(entry.segment);
    let offset = u64::from(entry.record_offset);
    let len = entry.body_start as usize;
    let in_window = if number == scanning {
        scanner.window_slice(offset, len)
    } else {
        None
    };
    let read;
    let head = match in_window {
        Some(head) => head,
        None => {
            let seg = shared.segments.get(&number).ok_or_else(|| {
                SpoolError::Io(format!("spool segment {number} vanished while opening"))
            })?;
            let mut buf = vec![0u8; len];
            seg.file.read_exact_at(&mut buf, offset).map_err(io)?;
            read = buf;
            &read
        }
    };
    match record::decode_message_head(head) {
        Some((found, meta, _)) if found == id => Ok(meta.to_vec()),
        _ => Err(changed(number)),
    }
}

/// Pass 2 found other bytes than pass 1: nothing but the spool may write
/// its files, and the lock keeps other spools out.
fn changed(number: u64) -> SpoolError {
    SpoolError::Io(format!(
        "spool segment {number} changed while the spool was being opened"
    ))
}
