//! The on-disk record format of spool segments. Pure encoding and decoding,
//! no I/O.
//!
//! A segment file starts with a 16-byte header ([`SEGMENT_MAGIC`] and the
//! segment's number) and then holds records:
//!
//! ```text
//! len: u32 LE   length of kind + payload
//! crc: u32 LE   CRC-32 of kind + payload, seeded with the segment number
//! flags: u8     bit 0: the message is done (set in place, outside the CRC)
//! kind: u8      1 message, 2 state, 3 done
//! payload
//! ```
//!
//! * message: `id (16) | meta_len u32 | state_len u32 | meta | state | body`
//! * state:   `id (16) | state`   (replaces the message's previous state)
//! * done:    `id (16)`           (the message leaves the spool)
//!
//! The done flag is written in place when a message leaves the spool, so a
//! segment holding the later `done` record can be deleted without bringing
//! the message back at the next start.
//!
//! Segment files are preallocated and recycled, so what follows the last
//! record may be zeros (a clean end) or records of the file's previous life.
//! Seeding the CRC with the segment number makes those stale records fail
//! their check, so they end the segment instead of coming back.
//!
//! A record whose length runs past the end of the file or whose CRC does not
//! match ends the readable part of a segment: it is the torn tail of a write
//! that never completed, and nothing after it was acknowledged.

pub const SEGMENT_MAGIC: &[u8; 8] = b"CRTSPL02";
/// Magic and segment number.
pub const SEGMENT_HEADER_LEN: usize = 16;
pub const HEADER_LEN: usize = 9;
/// Offset of the flags byte within a record.
pub const FLAGS_OFFSET: u64 = 8;
pub const FLAG_DONE: u8 = 1;
const KIND_MESSAGE: u8 = 1;
const KIND_STATE: u8 = 2;
const KIND_DONE: u8 = 3;

/// The header of segment `number`.
pub fn segment_header(number: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..].copy_from_slice(&number.to_le_bytes());
    header
}

/// The segment number in a header, if the header is one.
pub fn parse_segment_header(data: &[u8]) -> Option<u64> {
    let header = data.get(..SEGMENT_HEADER_LEN)?;
    (&header[..8] == SEGMENT_MAGIC)
        .then(|| u64::from_le_bytes(header[8..].try_into().expect("8 bytes")))
}

/// The CRC seed of the records of segment `number`.
pub fn seed(number: u64) -> u32 {
    (number as u32) ^ ((number >> 32) as u32) ^ 0x5ca1_ab1e
}

/// One decoded record, borrowing from the segment's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Message {
        id: u128,
        meta: &'a [u8],
        state: &'a [u8],
        /// Offset of the body within the segment, and its length.
        body_offset: u64,
        body_len: u32,
        /// The done flag was set: the message left the spool.
        done: bool,
    },
    State {
        id: u128,
        state: &'a [u8],
    },
    Done {
        id: u128,
    },
}

/// Appends a message record; returns the offset of the body within `out`.
pub fn encode_message(
    out: &mut Vec<u8>,
    seed: u32,
    id: u128,
    meta: &[u8],
    state: &[u8],
    body: &[u8],
) -> usize {
    let payload_len = 1 + 16 + 4 + 4 + meta.len() + state.len() + body.len();
    let start = out.len();
    out.reserve(HEADER_LEN + payload_len);
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 5]);
    out.push(KIND_MESSAGE);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&(state.len() as u32).to_le_bytes());
    out.extend_from_slice(meta);
    out.extend_from_slice(state);
    let body_offset = out.len();
    out.extend_from_slice(body);
    seal(out, start, seed);
    body_offset
}

pub fn encode_state(out: &mut Vec<u8>, seed: u32, id: u128, state: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&((1 + 16 + state.len()) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 5]);
    out.push(KIND_STATE);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(state);
    seal(out, start, seed);
}

pub fn encode_done(out: &mut Vec<u8>, seed: u32, id: u128) {
    let start = out.len();
    out.extend_from_slice(&17u32.to_le_bytes());
    out.extend_from_slice(&[0; 5]);
    out.push(KIND_DONE);
    out.extend_from_slice(&id.to_be_bytes());
    seal(out, start, seed);
}

fn checksum(seed: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(seed);
    hasher.update(payload);
    hasher.finalize()
}

fn seal(out: &mut [u8], start: usize, seed: u32) {
    let crc = checksum(seed, &out[start + HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Why decoding stopped before the end of the data.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The data ended in the middle of a record (a torn write).
    Truncated,
    /// A record's checksum or structure is wrong.
    Corrupt,
}

/// Decodes the record at `offset` of `data` (a whole segment, or a window
/// of it holding the whole record). Returns the record and the offset of
/// the next one, `Ok(None)` at the clean end.
pub fn decode_at(
    data: &[u8],
    offset: usize,
    seed: u32,
) -> Result<Option<(Record<'_>, usize)>, Stop> {
    decode(data, offset, Some(seed))
}

/// Like [`decode_at`] without computing the checksum, for records already
/// checked by an earlier pass over the same, unchanged bytes.
pub fn decode_checked_before_at(
    data: &[u8],
    offset: usize,
) -> Result<Option<(Record<'_>, usize)>, Stop> {
    decode(data, offset, None)
}

/// Length of a message record's head: everything before its metadata.
pub const MESSAGE_HEAD_LEN: usize = HEADER_LEN + 1 + 16 + 4 + 4;

/// The id, metadata and state of a message record from its first bytes up
/// to its body, without the checksum (which covers the body too): for a
/// record checked when the spool was opened. `None` if `head` is not the
/// start of a message record of exactly this length.
pub fn decode_message_head(head: &[u8]) -> Option<(u128, &[u8], &[u8])> {
    if head.len() < MESSAGE_HEAD_LEN || head[HEADER_LEN] != KIND_MESSAGE {
        return None;
    }
    let id = u128::from_be_bytes(head[HEADER_LEN + 1..HEADER_LEN + 17].try_into().ok()?);
    let meta_len = u32::from_le_bytes(head[HEADER_LEN + 17..HEADER_LEN + 21].try_into().ok()?);
    let state_len = u32::from_le_bytes(head[HEADER_LEN + 21..MESSAGE_HEAD_LEN].try_into().ok()?);
    let rest = &head[MESSAGE_HEAD_LEN..];
    if rest.len() as u64 != u64::from(meta_len) + u64::from(state_len) {
        return None;
    }
    let (meta, state) = rest.split_at(meta_len as usize);
    Some((id, meta, state))
}

fn decode(
    data: &[u8],
    offset: usize,
    seed: Option<u32>,
) -> Result<Option<(Record<'_>, usize)>, Stop> {
    let rest = &data[offset..];
    if rest.is_empty() {
        return Ok(None);
    }
    if rest.len() < 4 {
        return Err(Stop::Truncated);
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    if len == 0 {
        // The zeros of a preallocated tail: nothing was ever written here.
        return Ok(None);
    }
    if rest.len() < HEADER_LEN + 1 {
        return Err(Stop::Truncated);
    }
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    let flags = rest[8];
    if rest.len() < HEADER_LEN + len {
        return Err(Stop::Truncated);
    }
    let payload = &rest[HEADER_LEN..HEADER_LEN + len];
    if seed.is_some_and(|seed| checksum(seed, payload) != crc) {
        return Err(Stop::Corrupt);
    }
    let next = offset + HEADER_LEN + len;
    let (kind, body) = (payload[0], &payload[1..]);
    if body.len() < 16 {
        return Err(Stop::Corrupt);
    }
    let id = u128::from_be_bytes(body[..16].try_into().expect("16 bytes"));
    let body = &body[16..];
    let record = match kind {
        KIND_MESSAGE => {
            if body.len() < 8 {
                return Err(Stop::Corrupt);
            }
            let meta_len = u32::from_le_bytes(body[0..4].try_into().expect("4 bytes")) as usize;
            let state_len = u32::from_le_bytes(body[4..8].try_into().expect("4 bytes")) as usize;
            let rest = &body[8..];
            if rest.len() < meta_len + state_len {
                return Err(Stop::Corrupt);
            }
            let body_len = rest.len() - meta_len - state_len;
            let body_offset = next - body_len;
            Record::Message {
                id,
                meta: &rest[..meta_len],
                state: &rest[meta_len..meta_len + state_len],
                body_offset: body_offset as u64,
                body_len: body_len as u32,
                done: flags & FLAG_DONE != 0,
            }
        }
        KIND_STATE => Record::State { id, state: body },
        KIND_DONE if body.is_empty() => Record::Done { id },
        _ => return Err(Stop::Corrupt),
    };
    Ok(Some((record, next)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEED: u32 = 7;

    fn decode_all(data: &[u8]) -> (Vec<Record<'_>>, Result<(), Stop>) {
        let mut records = Vec::new();
        let mut offset = 0;
        loop {
            match decode_at(data, offset, SEED) {
                Ok(None) => return (records, Ok(())),
                Ok(Some((record, next))) => {
                    records.push(record);
                    offset = next;
                }
                Err(stop) => return (records, Err(stop)),
            }
        }
    }

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        let body_offset = encode_message(&mut buf, SEED, 7, b"meta", b"st", b"body bytes");
        encode_state(&mut buf, SEED, 7, b"state2");
        encode_done(&mut buf, SEED, 7);
        assert_eq!(&buf[body_offset..body_offset + 10], b"body bytes");
        let (records, end) = decode_all(&buf);
        assert_eq!(end, Ok(()));
        assert_eq!(
            records,
            vec![
                Record::Message {
                    id: 7,
                    meta: b"meta",
                    state: b"st",
                    body_offset: body_offset as u64,
                    body_len: 10,
                    done: false,
                },
                Record::State {
                    id: 7,
                    state: b"state2"
                },
                Record::Done { id: 7 },
            ]
        );
    }

    #[test]
    fn a_torn_tail_stops_decoding_without_losing_earlier_records() {
        let mut buf = Vec::new();
        encode_message(&mut buf, SEED, 1, b"m", b"", b"one");
        let first_len = buf.len();
        encode_message(&mut buf, SEED, 2, b"m", b"", b"two");
        for cut in first_len..buf.len() {
            let (records, end) = decode_all(&buf[..cut]);
            assert_eq!(records.len(), 1, "cut at {cut}");
            if cut > first_len {
                assert_eq!(end, Err(Stop::Truncated), "cut at {cut}");
            }
        }
    }

    #[test]
    fn the_done_flag_is_outside_the_checksum() {
        let mut buf = Vec::new();
        encode_message(&mut buf, SEED, 1, b"m", b"", b"b");
        buf[FLAGS_OFFSET as usize] |= FLAG_DONE;
        assert!(matches!(
            decode_at(&buf, 0, SEED),
            Ok(Some((Record::Message { done: true, .. }, _)))
        ));
    }

    #[test]
    fn records_of_another_segment_and_zero_tails_end_the_data() {
        let mut buf = Vec::new();
        encode_message(&mut buf, SEED, 1, b"m", b"", b"kept");
        let first = buf.len();
        encode_message(&mut buf, SEED + 1, 2, b"m", b"", b"stale");
        let (records, end) = decode_all(&buf);
        assert_eq!(records.len(), 1);
        assert_eq!(end, Err(Stop::Corrupt));
        buf.truncate(first);
        buf.extend_from_slice(&[0; 64]);
        let (records, end) = decode_all(&buf);
        assert_eq!((records.len(), end), (1, Ok(())));
        assert_eq!(parse_segment_header(&segment_header(42)), Some(42));
        assert_eq!(parse_segment_header(b"CRTSPL01xxxxxxxx"), None);
    }

    #[test]
    fn a_flipped_bit_is_detected() {
        let mut buf = Vec::new();
        encode_message(&mut buf, SEED, 1, b"meta", b"", b"body");
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert_eq!(decode_all(&buf).1, Err(Stop::Corrupt));
    }

    #[test]
    fn a_message_head_gives_its_metadata_and_state() {
        let mut buf = Vec::new();
        let body_offset = encode_message(&mut buf, SEED, 42, b"meta", b"state", b"body");
        assert_eq!(
            decode_message_head(&buf[..body_offset]),
            Some((42, &b"meta"[..], &b"state"[..]))
        );
        // A head cut short or running into the body is not one.
        assert_eq!(decode_message_head(&buf[..body_offset - 1]), None);
        assert_eq!(decode_message_head(&buf[..body_offset + 1]), None);
        let mut state = Vec::new();
        encode_state(&mut state, SEED, 42, b"s");
        assert_eq!(decode_message_head(&state), None);
    }

    #[test]
    fn decoding_checked_records_skips_only_the_checksum() {
        let mut buf = Vec::new();
        encode_message(&mut buf, SEED, 1, b"meta", b"", b"body");
        buf[4] ^= 0xff;
        assert_eq!(decode_at(&buf, 0, SEED), Err(Stop::Corrupt));
        assert!(matches!(
            decode_checked_before_at(&buf, 0),
            Ok(Some((Record::Message { id: 1, .. }, _)))
        ));
        assert_eq!(
            decode_checked_before_at(&buf[..buf.len() - 1], 0),
            Err(Stop::Truncated)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_all(&data);
        }

        #[test]
        fn any_message_round_trips(
            id in any::<u128>(),
            meta in proptest::collection::vec(any::<u8>(), 0..64),
            state in proptest::collection::vec(any::<u8>(), 0..64),
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut buf = Vec::new();
            encode_message(&mut buf, SEED, id, &meta, &state, &body);
            let (records, end) = decode_all(&buf);
            prop_assert_eq!(end, Ok(()));
            match &records[..] {
                [Record::Message { id: i, meta: m, state: s, body_offset, body_len, done: false }] => {
                    prop_assert_eq!(*i, id);
                    prop_assert_eq!(*m, &meta[..]);
                    prop_assert_eq!(*s, &state[..]);
                    let start = *body_offset as usize;
                    prop_assert_eq!(&buf[start..start + *body_len as usize], &body[..]);
                }
                other => prop_assert!(false, "unexpected records {:?}", other),
            }
        }
    }
}
