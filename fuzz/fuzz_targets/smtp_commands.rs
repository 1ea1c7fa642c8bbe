//! The SMTP command parser and the DATA receiver on arbitrary bytes.
//!
//! * Every line (split at LF, LF kept, as the session splits its read buffer)
//!   goes to `smtp_proto::Request::parse`, the way the session calls it; lines
//!   the session would discard as too long are skipped, like there.
//! * The whole input goes to `DataReceiver` in chunks whose sizes come from
//!   the input, and once more in one piece: the receiver must consume no more
//!   than it was given, keep its output within the size limit, and give the
//!   same result however the input was split. Content it calls clean must
//!   pass `check_content` (the BDAT check) too.

#![no_main]

use carteiro_smtp_server::data::{DataProblem, DataReceiver, check_content};
use libfuzzer_sys::fuzz_target;
use smtp_proto::Request;

/// The session's longest command line (`MAX_COMMAND_LINE` in
/// crates/smtp-server/src/session/mod.rs).
const MAX_COMMAND_LINE: usize = 12288;

fuzz_target!(|data: &[u8]| {
    parse_commands(data);
    if data.len() < 3 {
        return;
    }
    // The first bytes choose the limits and the chunk sizes.
    let max_size = 1 + usize::from(data[0]) * 4;
    let max_line = 1 + usize::from(data[1]);
    let split_seed = data[2];
    let input = &data[3..];

    let whole = receive(input, &[input.len().max(1)], max_size, max_line);
    let chunks = chunk_sizes(split_seed, input.len());
    let chunked = receive(input, &chunks, max_size, max_line);
    assert_eq!(
        whole, chunked,
        "the result depends on how the input was split"
    );

    let _ = check_content(input, max_line);
    let Received {
        out,
        consumed,
        done,
        problem,
        size,
    } = whole;
    assert!(consumed <= input.len());
    assert!(
        out.len() <= max_size,
        "{} bytes kept, limit {max_size}",
        out.len()
    );
    if problem != Some(DataProblem::TooBig) {
        assert_eq!(out.len(), size, "content dropped below the size limit");
    }
    if done && problem.is_none() {
        // Clean content is CRLF-only with lines within the limit: exactly
        // what BDAT content must be.
        assert_eq!(check_content(&out, max_line), None, "{out:?}");
        assert!(out.is_empty() || out.ends_with(b"\r\n"));
    }
});

/// Feeds every line to the parser, as the session does.
fn parse_commands(data: &[u8]) {
    for line in data.split_inclusive(|&b| b == b'\n') {
        if line.len() > MAX_COMMAND_LINE {
            continue;
        }
        let _ = Request::parse(&mut line.iter());
    }
}

/// What a receiver made of some input.
#[derive(Debug, PartialEq, Eq)]
struct Received {
    out: Vec<u8>,
    /// Bytes of the input taken up to the end of the data (all of it when
    /// the end was not found).
    consumed: usize,
    done: bool,
    problem: Option<DataProblem>,
    size: usize,
}

/// Runs a receiver over `input` cut into `chunks` (cycled), as the session
/// feeds it whatever each read brought.
fn receive(input: &[u8], chunks: &[usize], max_size: usize, max_line: usize) -> Received {
    let mut receiver = DataReceiver::new(max_size, max_line);
    let mut out = Vec::new();
    let mut at = 0;
    let mut done = false;
    for &chunk in chunks.iter().cycle() {
        if at >= input.len() {
            break;
        }
        let end = (at + chunk.max(1)).min(input.len());
        let piece = &input[at..end];
        let (used, finished) = receiver.ingest(piece, &mut out);
        assert!(used <= piece.len(), "consumed {used} of {}", piece.len());
        if !finished {
            assert_eq!(used, piece.len(), "stopped early without the end of data");
        }
        at += used;
        if finished {
            done = true;
            break;
        }
    }
    Received {
        consumed: at,
        done,
        problem: receiver.problem(),
        size: receiver.size(),
        out,
    }
}

/// Chunk sizes of 1 to 16 bytes from a small linear congruential sequence:
/// many cuts, in places that change with the seed.
fn chunk_sizes(seed: u8, len: usize) -> Vec<usize> {
    let mut state = u32::from(seed) | 1;
    (0..len.clamp(1, 64))
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            1 + (state >> 16) as usize % 16
        })
        .collect()
}
