//! Reading the spool back at start: every segment in order, replaying its
//! records into the index of live messages.

use crate::record::{self, Record, SEGMENT_HEADER_LEN};
use crate::{Entry, Recovered, Segment, Shared, SpoolError, parse_segment_name};
use carteiro_mail::MessageId;
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Returns the index, the recovered messages in id order, and the number
/// for the next segment to create.
pub(crate) fn recover(dir: &Path) -> Result<(Shared, Vec<Recovered>, u64), SpoolError> {
    let io = |e: std::io::Error| SpoolError::from_io(&e);
    let mut numbers: Vec<u64> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| parse_segment_name(entry.file_name().to_str()?))
        .collect();
    numbers.sort_unstable();

    let mut shared = Shared::default();
    let mut live: HashMap<u128, Recovered> = HashMap::new();
    let last = numbers.last().copied();
    for &number in &numbers {
        let path = crate::segment_path(dir, number);
        let data = std::fs::read(&path).map_err(io)?;
        if record::parse_segment_header(&data) != Some(number) {
            // A segment whose header never reached the disk holds nothing
            // that was acknowledged.
            tracing::warn!(segment = %path.display(), "spool segment without header, removing");
            std::fs::remove_file(&path).map_err(io)?;
            continue;
        }
        let seed = record::seed(number);
        let file = File::open(&path).map_err(io)?;
        shared.segments.insert(
            number,
            Segment {
                file: Arc::new(file),
                len: data.len() as u64,
                refs: 0,
                live: 0,
            },
        );
        let mut offset = SEGMENT_HEADER_LEN;
        loop {
            match record::decode_at(&data, offset, seed) {
                Ok(None) => {
                    if let Some(seg) = shared.segments.get_mut(&number) {
                        seg.len = offset as u64;
                    }
                    break;
                }
                Ok(Some((rec, next))) => {
                    apply(&mut shared, &mut live, number, offset as u64, rec);
                    offset = next;
                }
                Err(stop) => {
                    tracing::warn!(
                        segment = %path.display(),
                        offset,
                        reason = ?stop,
                        "spool segment ends in an incomplete record; ignoring the rest"
                    );
                    if Some(number) == last {
                        let file = File::options().write(true).open(&path).map_err(io)?;
                        file.set_len(offset as u64).map_err(io)?;
                        file.sync_all().map_err(io)?;
                    }
                    if let Some(seg) = shared.segments.get_mut(&number) {
                        seg.len = offset as u64;
                    }
                    break;
                }
            }
        }
    }
    let mut recovered: Vec<Recovered> = live.into_values().collect();
    recovered.sort_unstable_by_key(|r| r.id);
    let next = last.map_or(1, |n| n + 1);
    Ok((shared, recovered, next))
}

fn apply(
    shared: &mut Shared,
    live: &mut HashMap<u128, Recovered>,
    segment: u64,
    offset: u64,
    rec: Record<'_>,
) {
    match rec {
        Record::Message {
            id,
            meta,
            state,
            body_offset,
            body_len,
            done,
        } => {
            if done {
                if let Some(entry) = shared.index.remove(&id) {
                    shared.release_entry(&entry);
                }
                live.remove(&id);
                return;
            }
            shared.insert_entry(
                id,
                Entry {
                    segment,
                    record_offset: offset,
                    body_offset,
                    body_len,
                    state: None,
                },
            );
            live.insert(
                id,
                Recovered {
                    id: MessageId(id),
                    meta: meta.to_vec(),
                    state: state.to_vec(),
                    body_len,
                },
            );
        }
        Record::State { id, state } => {
            let Some(mut entry) = shared.index.get(&id).copied() else {
                return;
            };
            entry.state = Some((segment, offset));
            shared.insert_entry(id, entry);
            if let Some(r) = live.get_mut(&id) {
                r.state = state.to_vec();
            }
        }
        Record::Done { id } => {
            if let Some(entry) = shared.index.remove(&id) {
                shared.release_entry(&entry);
            }
            live.remove(&id);
        }
    }
}
