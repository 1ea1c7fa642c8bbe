//! Reading a segment's records front to back through a small window, so
//! that recovery never holds a whole segment (up to a gigabyte) in memory.

use crate::record::{self, HEADER_LEN, Record, Stop};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Bytes read at a time; the window grows only for a record larger than this.
const WINDOW: usize = 4 * 1024 * 1024;

/// A cursor over the records of one segment file, from `from` up to `end`.
///
/// Use: [`Scanner::fill`], then [`Scanner::decode`] (or
/// [`Scanner::decode_checked_before`]), then [`Scanner::advance`] to the
/// offset the decode returned.
pub(crate) struct Scanner<'f> {
    file: &'f File,
    /// The file offset where reading stops (the file's length, or the end
    /// of what an earlier pass found readable).
    end: u64,
    /// The window: `buf[..filled]` holds the file's bytes from `start`.
    buf: Vec<u8>,
    filled: usize,
    start: u64,
    /// Index in `buf` of the next record.
    pos: usize,
}

impl<'f> Scanner<'f> {
    pub(crate) fn new(file: &'f File, from: u64, end: u64) -> Scanner<'f> {
        Scanner {
            file,
            end,
            buf: Vec::new(),
            filled: 0,
            start: from,
            pos: 0,
        }
    }

    /// File offset of the next record.
    pub(crate) fn offset(&self) -> u64 {
        self.start + self.pos as u64
    }

    /// Makes the window hold the whole next record, or everything up to
    /// `end` when the record runs past it (a torn tail), so that decoding
    /// the window gives what decoding the whole file would.
    pub(crate) fn fill(&mut self) -> std::io::Result<()> {
        let remaining = self.end.saturating_sub(self.offset());
        self.ensure(remaining.min(4) as usize)?;
        if remaining >= 4 {
            let len_bytes = &self.buf[self.pos..self.pos + 4];
            let len = u32::from_le_bytes(len_bytes.try_into().expect("4 bytes"));
            if len != 0 {
                // Checked against `end` first, so a garbage length never makes
                // the window grow beyond the file.
                let need = (HEADER_LEN as u64 + u64::from(len)).min(remaining);
                self.ensure(need as usize)?;
            }
        }
        Ok(())
    }

    /// Decodes the next record, checking its checksum against `seed`.
    /// Returns the record and the index to [`Scanner::advance`] to.
    pub(crate) fn decode(&self, seed: u32) -> Result<Option<(Record<'_>, usize)>, Stop> {
        record::decode_at(&self.buf[..self.filled], self.pos, seed)
    }

    /// Decodes the next record without its checksum, for a region an earlier
    /// pass has checked.
    pub(crate) fn decode_checked_before(&self) -> Result<Option<(Record<'_>, usize)>, Stop> {
        record::decode_checked_before_at(&self.buf[..self.filled], self.pos)
    }

    /// Moves past the record just decoded (`next` as the decode returned it).
    pub(crate) fn advance(&mut self, next: usize) {
        self.pos = next;
    }

    /// The file's bytes `offset..offset + len`, if the window holds them.
    pub(crate) fn window_slice(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let from = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        self.buf[..self.filled].get(from..from.checked_add(len)?)
    }

    /// Makes at least `need` bytes from the next record on available,
    /// reading as much more as the window takes.
    fn ensure(&mut self, need: usize) -> std::io::Result<()> {
        if self.filled - self.pos >= need {
            return Ok(());
        }
        // Keep only the unread bytes, at the front.
        self.buf.copy_within(self.pos..self.filled, 0);
        self.filled -= self.pos;
        self.start += self.pos as u64;
        self.pos = 0;
        let size = need.max(WINDOW);
        if self.buf.len() < size {
            self.buf.resize(size, 0);
        }
        let in_file = usize::try_from(self.end - self.start).unwrap_or(usize::MAX);
        let target = self.buf.len().min(in_file);
        if target > self.filled {
            self.file.read_exact_at(
                &mut self.buf[self.filled..target],
                self.start + self.filled as u64,
            )?;
            self.filled = target;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{SEGMENT_HEADER_LEN, encode_message, encode_state, segment_header};

    /// Every record of `data` decoded through a scanner, as (offset, id).
    fn scan_ids(file: &File, end: u64) -> (Vec<(u64, u128)>, Result<(), Stop>) {
        let mut scanner = Scanner::new(file, SEGMENT_HEADER_LEN as u64, end);
        let mut found = Vec::new();
        loop {
            scanner.fill().unwrap();
            let offset = scanner.offset();
            let next = match scanner.decode(7) {
                Ok(None) => return (found, Ok(())),
                Err(stop) => return (found, Err(stop)),
                Ok(Some((rec, next))) => {
                    let id = match rec {
                        Record::Message { id, .. } | Record::State { id, .. } => id,
                        Record::Done { id } => id,
                    };
                    found.push((offset, id));
                    next
                }
            };
            scanner.advance(next);
        }
    }

    #[test]
    fn records_larger_than_the_window_and_across_its_edge_are_read_whole() {
        let mut data = segment_header(1).to_vec();
        let mut expected = Vec::new();
        // Small records up to just before the first window's edge, then one
        // that straddles it, then one bigger than a whole window.
        let mut id = 0u128;
        while data.len() < WINDOW - 3000 {
            expected.push((data.len() as u64, id));
            encode_state(&mut data, 7, id, &[b's'; 1000]);
            id += 1;
        }
        expected.push((data.len() as u64, id));
        encode_message(&mut data, 7, id, b"m", b"s", &vec![b'x'; 10_000]);
        expected.push((data.len() as u64, id + 1));
        encode_message(&mut data, 7, id + 1, b"m", b"s", &vec![b'y'; WINDOW + 5]);
        expected.push((data.len() as u64, id + 2));
        encode_state(&mut data, 7, id + 2, b"last");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(
            scan_ids(&file, data.len() as u64),
            (expected.clone(), Ok(()))
        );

        // Cut inside the last record: everything before it, then a torn tail,
        // as decoding the whole file would say.
        let (found, end) = scan_ids(&file, data.len() as u64 - 2);
        assert_eq!(found, expected[..expected.len() - 1]);
        assert_eq!(end, Err(Stop::Truncated));
    }

    #[test]
    fn a_garbage_length_ends_the_scan_without_growing_the_window() {
        let mut data = segment_header(1).to_vec();
        encode_state(&mut data, 7, 1, b"kept");
        let kept = data.len();
        data.extend_from_slice(&u32::MAX.to_le_bytes());
        data.extend_from_slice(&[1; 20]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let mut scanner = Scanner::new(&file, SEGMENT_HEADER_LEN as u64, data.len() as u64);
        scanner.fill().unwrap();
        let Ok(Some((_, next))) = scanner.decode(7) else {
            panic!("first record unreadable");
        };
        scanner.advance(next);
        assert_eq!(scanner.offset(), kept as u64);
        scanner.fill().unwrap();
        assert!(matches!(scanner.decode(7), Err(Stop::Truncated)));
        assert!(scanner.buf.len() <= WINDOW);
    }
}
