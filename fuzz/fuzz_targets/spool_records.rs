//! Spool recovery on damaged segment files.
//!
//! The record decoder is private to the spool crate, so this target goes
//! through its public door: it writes `seg-0000000000000001.log` (a valid
//! segment header, then records) into an empty directory and opens the spool
//! there. Opening must not panic; every message it recovers must be
//! readable with the length it announced; and opening a second time (after
//! the first open truncated a torn tail and maybe recycled the segment)
//! must recover exactly the same messages.
//!
//! The first input byte picks one of two ways to make the records:
//! * raw: the rest of the input follows the header as it is (almost always
//!   stopped by the CRC check, which is the point of that check);
//! * sealed: the input describes records that this target encodes with a
//!   correct length and CRC, then tears the file at some length and flips
//!   one byte, so the decoder gets past the checksum. The expected outcome
//!   is then computed from a model of recovery (later records replace
//!   earlier ones, `done` removes, a damaged record ends the segment) and
//!   compared with what the spool recovered, bodies included.

#![no_main]

use carteiro_mail::MessageId;
use carteiro_spool::{Recovered, Spool, SpoolOptions};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::Path;

const MAGIC: &[u8; 8] = b"CRTSPL02";
const SEGMENT: u64 = 1;
const SEGMENT_HEADER_LEN: usize = 16;
const HEADER_LEN: usize = 9;
const FLAG_DONE: u8 = 1;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut file = Vec::with_capacity(SEGMENT_HEADER_LEN + rest.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&SEGMENT.to_le_bytes());
    let expected = if mode & 1 == 0 {
        file.extend_from_slice(rest);
        None
    } else {
        Some(sealed(rest, &mut file))
    };

    // tmpfs when there is one: the spool syncs, and the fuzzer should not
    // wait for a disk.
    let dir = tempfile::Builder::new()
        .tempdir_in(if Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .expect("temporary directory");
    std::fs::write(dir.path().join("seg-0000000000000001.log"), &file).expect("write segment");
    let first = open_and_read(dir.path());
    if let Some(expected) = expected {
        assert_eq!(first, expected, "recovery differs from the model");
    }
    let second = open_and_read(dir.path());
    assert_eq!(first, second, "a second open recovered something else");
});

/// One recovered message and its body.
type Found = BTreeMap<u128, (Recovered, Vec<u8>)>;

/// Opens the spool, reads back every recovered message, closes it.
fn open_and_read(dir: &Path) -> Found {
    let options = SpoolOptions {
        // Small, so the background preparer's spare file costs nothing.
        segment_size: 64 * 1024,
        max_size: None,
    };
    let (spool, recovered) = Spool::open(dir, options).expect("open spool");
    assert_eq!(spool.stats().messages, recovered.len());
    let mut found = Found::new();
    for message in recovered {
        assert!(spool.contains(message.id));
        let body = spool
            .read_body_blocking(message.id)
            .expect("a recovered message's body is readable");
        assert_eq!(body.len(), message.body_len as usize);
        let previous = found.insert(message.id.0, (message, body.to_vec()));
        assert!(previous.is_none(), "a message recovered twice");
    }
    spool.close();
    found
}

/// Reads bytes from the input, zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// A length byte (below `modulo`), then that many bytes.
    fn sized(&mut self, modulo: u16) -> Vec<u8> {
        let n = u16::from(self.byte()) % modulo;
        (0..n).map(|_| self.byte()).collect()
    }
}

/// One record as encoded, for the model.
enum Made {
    Message {
        id: u128,
        meta: Vec<u8>,
        state: Vec<u8>,
        body: Vec<u8>,
    },
    State {
        id: u128,
        state: Vec<u8>,
    },
    Done {
        id: u128,
    },
    /// Sealed but structurally wrong (bad kind, short payload): decoding
    /// stops here.
    Corrupt,
}

/// Appends records described by `input` to `file` (which holds the segment
/// header), tears and damages the file as the input says, and returns what
/// recovery should find.
fn sealed(input: &[u8], file: &mut Vec<u8>) -> Found {
    let mut input = Input(input);
    let count = input.byte() % 16;
    let mut made = Vec::new();
    // (start, end) of each record in the file.
    let mut spans = Vec::new();
    for _ in 0..count {
        let op = input.byte();
        // Few ids, so records about the same message meet.
        let id = u128::from(input.byte() % 4) + 1;
        let start = file.len();
        let (kind, payload, record) = match op % 5 {
            0 | 1 => {
                let meta = input.sized(8);
                let state = input.sized(8);
                let body = input.sized(256);
                let mut payload = id.to_be_bytes().to_vec();
                payload.extend_from_slice(&(meta.len() as u32).to_le_bytes());
                payload.extend_from_slice(&(state.len() as u32).to_le_bytes());
                payload.extend_from_slice(&meta);
                payload.extend_from_slice(&state);
                payload.extend_from_slice(&body);
                let record = Made::Message {
                    id,
                    meta,
                    state,
                    body,
                };
                (1, payload, record)
            }
            2 => {
                let state = input.sized(8);
                let mut payload = id.to_be_bytes().to_vec();
                payload.extend_from_slice(&state);
                (2, payload, Made::State { id, state })
            }
            3 => (3, id.to_be_bytes().to_vec(), Made::Done { id }),
            _ => {
                // A kind the decoder does not know, or a payload too short
                // for its kind.
                let kind = input.byte();
                let payload = input.sized(24);
                let known = match kind {
                    1 => {
                        payload.len() >= 24 && {
                            let meta = u32::from_le_bytes(payload[16..20].try_into().expect("4"));
                            let state = u32::from_le_bytes(payload[20..24].try_into().expect("4"));
                            u64::from(meta) + u64::from(state) <= (payload.len() - 24) as u64
                        }
                    }
                    2 => payload.len() >= 16,
                    3 => payload.len() == 16,
                    _ => false,
                };
                if known {
                    // Well-formed after all: not what this arm is for.
                    continue;
                }
                (kind, payload, Made::Corrupt)
            }
        };
        let flags = if op & 0x80 != 0 { FLAG_DONE } else { 0 };
        let mut sealed = vec![kind];
        sealed.extend_from_slice(&payload);
        let mut hasher = crc32fast::Hasher::new_with_initial(seed(SEGMENT));
        hasher.update(&sealed);
        file.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        file.extend_from_slice(&hasher.finalize().to_le_bytes());
        file.push(flags);
        file.extend_from_slice(&sealed);
        spans.push((start, file.len(), flags));
        made.push(record);
    }

    // Tear the file at some length (or not), then flip one byte of one
    // record's flags or checksummed part (or none).
    let tear = input.byte();
    if tear != 0 && file.len() > SEGMENT_HEADER_LEN {
        let keep = SEGMENT_HEADER_LEN + usize::from(tear) % (file.len() - SEGMENT_HEADER_LEN);
        file.truncate(keep);
    }
    let flip_record = usize::from(input.byte());
    let flip_at = usize::from(input.byte());
    let flip_with = input.byte();
    let mut damaged = None;
    let mut flags_of: Vec<u8> = spans.iter().map(|&(_, _, flags)| flags).collect();
    if flip_with != 0
        && let Some(&(start, end, _)) = spans.get(flip_record)
    {
        // The flags byte (outside the CRC) or a byte of kind + payload.
        let at = match flip_at % (end - start - 8) {
            0 => start + 8,
            n => start + HEADER_LEN + n - 1,
        };
        if at < file.len() {
            file[at] ^= flip_with;
            if at == start + 8 {
                flags_of[flip_record] ^= flip_with;
            } else {
                damaged = Some(flip_record);
            }
        }
    }

    // The model: apply records in order until one is torn, damaged or
    // corrupt.
    let mut live: BTreeMap<u128, (Recovered, Vec<u8>)> = BTreeMap::new();
    for (index, (record, &(_, end, _))) in made.into_iter().zip(&spans).enumerate() {
        if end > file.len() || damaged == Some(index) {
            break;
        }
        match record {
            Made::Message {
                id,
                meta,
                state,
                body,
            } => {
                if flags_of[index] & FLAG_DONE != 0 {
                    live.remove(&id);
                } else {
                    let recovered = Recovered {
                        id: MessageId(id),
                        meta,
                        state,
                        body_len: body.len() as u32,
                    };
                    live.insert(id, (recovered, body));
                }
            }
            Made::State { id, state } => {
                if let Some((recovered, _)) = live.get_mut(&id) {
                    recovered.state = state;
                }
            }
            Made::Done { id } => {
                live.remove(&id);
            }
            Made::Corrupt => break,
        }
    }
    live
}

/// The CRC seed of segment `number`'s records (crates/spool/src/record.rs).
fn seed(number: u64) -> u32 {
    (number as u32) ^ ((number >> 32) as u32) ^ 0x5ca1_ab1e
}
