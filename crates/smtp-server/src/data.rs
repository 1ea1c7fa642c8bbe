//! Receiving message content after `DATA` (and checking content received
//! with `BDAT`). Pure: bytes in, bytes out, no I/O.
//!
//! Only `<CR><LF>.<CR><LF>` ends the data. A bare LF or bare CR anywhere is
//! never a line end: it is remembered as a problem and the message is refused
//! once the real end arrives, so `\n.\n`-style tricks (SMTP smuggling) can
//! neither end the message early nor be passed on to a server that would
//! read them differently.

use memchr::memchr2;

/// Why received content cannot be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataProblem {
    /// More than the maximum message size.
    TooBig,
    /// A line longer than the maximum line length.
    LineTooLong,
    /// A LF not preceded by CR, or a CR not followed by LF.
    BareLineEnding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    LineStart,
    Text,
    Cr,
    Dot,
    DotCr,
}

/// Incremental receiver for `DATA` content: removes dot-stuffing, finds the
/// end, enforces size and line length.
pub struct DataReceiver {
    state: State,
    line_len: usize,
    max_line: usize,
    size: usize,
    max_size: usize,
    too_big: bool,
    problem: Option<DataProblem>,
}

impl DataReceiver {
    pub fn new(max_size: usize, max_line: usize) -> DataReceiver {
        DataReceiver {
            state: State::LineStart,
            line_len: 0,
            max_line,
            size: 0,
            max_size,
            too_big: false,
            problem: None,
        }
    }

    /// What is wrong with the content: too big before anything else.
    pub fn problem(&self) -> Option<DataProblem> {
        if self.too_big {
            Some(DataProblem::TooBig)
        } else {
            self.problem
        }
    }

    /// Bytes of message content seen so far (after un-stuffing).
    pub fn size(&self) -> usize {
        self.size
    }

    fn flag(&mut self, problem: DataProblem) {
        self.problem.get_or_insert(problem);
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        self.size += bytes.len();
        if self.size > self.max_size {
            self.too_big = true;
        }
        // Past the size limit nothing more is kept: the message is refused
        // anyway and memory stays bounded.
        if !self.too_big {
            out.extend_from_slice(bytes);
        }
    }

    fn grow_line(&mut self, n: usize) {
        self.line_len += n;
        if self.line_len > self.max_line {
            self.flag(DataProblem::LineTooLong);
        }
    }

    /// Consumes bytes from `input`, appending message content to `out`.
    /// Returns how many bytes were consumed and whether the end of data was
    /// reached (bytes after it belong to the next command).
    pub fn ingest(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Text => {
                    let rest = &input[i..];
                    match memchr2(b'\r', b'\n', rest) {
                        None => {
                            self.grow_line(rest.len());
                            self.emit(out, rest);
                            i = input.len();
                        }
                        Some(pos) => {
                            self.grow_line(pos);
                            self.emit(out, &rest[..pos]);
                            i += pos + 1;
                            if rest[pos] == b'\r' {
                                self.state = State::Cr;
                            } else {
                                self.flag(DataProblem::BareLineEnding);
                                self.emit(out, b"\n");
                            }
                        }
                    }
                }
                State::LineStart => {
                    let b = input[i];
                    match b {
                        b'.' => {
                            self.state = State::Dot;
                            i += 1;
                        }
                        _ => self.state = State::Text,
                    }
                }
                State::Cr => {
                    if input[i] == b'\n' {
                        self.emit(out, b"\r\n");
                        self.line_len = 0;
                        self.state = State::LineStart;
                        i += 1;
                    } else {
                        self.flag(DataProblem::BareLineEnding);
                        self.emit(out, b"\r");
                        self.grow_line(1);
                        self.state = State::Text;
                    }
                }
                State::Dot => {
                    if input[i] == b'\r' {
                        self.state = State::DotCr;
                        i += 1;
                    } else {
                        // A stuffed dot: drop it, the rest is line content.
                        self.state = State::Text;
                    }
                }
                State::DotCr => {
                    if input[i] == b'\n' {
                        self.state = State::LineStart;
                        return (i + 1, true);
                    }
                    // ".\r" followed by anything else: a bare CR in a line
                    // that started with a stuffed dot.
                    self.flag(DataProblem::BareLineEnding);
                    self.emit(out, b"\r");
                    self.grow_line(1);
                    self.state = State::Text;
                }
            }
        }
        (input.len(), false)
    }
}

/// Checks complete content received with `BDAT` (no dot-stuffing there) for
/// bare line endings and over-long lines.
pub fn check_content(data: &[u8], max_line: usize) -> Option<DataProblem> {
    let mut start = 0;
    while start < data.len() {
        let Some(pos) = memchr2(b'\r', b'\n', &data[start..]) else {
            return (data.len() - start > max_line).then_some(DataProblem::LineTooLong);
        };
        let end = start + pos;
        if data[end] == b'\n' || data.get(end + 1) != Some(&b'\n') {
            return Some(DataProblem::BareLineEnding);
        }
        if end - start > max_line {
            return Some(DataProblem::LineTooLong);
        }
        start = end + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn receive_all(chunks: &[&[u8]]) -> (Vec<u8>, bool, Option<DataProblem>, usize) {
        let mut rx = DataReceiver::new(1000, 78);
        let mut out = Vec::new();
        let mut leftover = 0;
        for (n, chunk) in chunks.iter().enumerate() {
            let (used, done) = rx.ingest(chunk, &mut out);
            if done {
                leftover =
                    chunk.len() - used + chunks[n + 1..].iter().map(|c| c.len()).sum::<usize>();
                return (out, true, rx.problem(), leftover);
            }
            assert_eq!(used, chunk.len());
        }
        (out, false, rx.problem(), leftover)
    }

    #[test]
    fn ends_only_at_crlf_dot_crlf_and_unstuffs() {
        let (out, done, problem, leftover) =
            receive_all(&[b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n"]);
        assert!(done);
        assert_eq!(problem, None);
        assert_eq!(out, b"Subject: x\r\n\r\n.leading dot\r\n");
        assert_eq!(leftover, 6);
    }

    #[test]
    fn an_empty_message_is_just_the_dot() {
        let (out, done, problem, _) = receive_all(&[b".\r\n"]);
        assert!(done && out.is_empty() && problem.is_none());
    }

    #[test]
    fn the_end_may_be_split_across_reads() {
        let (out, done, problem, _) = receive_all(&[b"a\r", b"\n.", b"\r", b"\n"]);
        assert!(done);
        assert_eq!(problem, None);
        assert_eq!(out, b"a\r\n");
    }

    #[test]
    fn smuggling_sequences_do_not_end_the_data() {
        for trick in [
            &b"a\r\n\n.\n\r\nMAIL FROM:<x@evil.test>\r\n"[..],
            b"a\n.\nMAIL FROM:<x@evil.test>\r\n",
            b"a\r\n.\nMAIL FROM:<x@evil.test>\r\n",
            b"a\n.\r\nMAIL FROM:<x@evil.test>\r\n",
            b"a\r.\rMAIL FROM:<x@evil.test>\r\n",
            b"a\r\n.\r\r\nMAIL FROM:<x@evil.test>\r\n",
        ] {
            let (out, done, problem, _) = receive_all(&[trick]);
            assert!(!done, "{:?} ended the data", String::from_utf8_lossy(trick));
            assert_eq!(problem, Some(DataProblem::BareLineEnding));
            assert!(out.ends_with(b"MAIL FROM:<x@evil.test>\r\n"));
        }
    }

    #[test]
    fn too_big_and_too_long_are_flagged_and_bounded() {
        let mut rx = DataReceiver::new(10, 1000);
        let mut out = Vec::new();
        let (_, done) = rx.ingest(b"0123456789\r\nmore data here\r\n.\r\n", &mut out);
        assert!(done);
        assert_eq!(rx.problem(), Some(DataProblem::TooBig));
        assert!(out.len() <= 10);

        let mut rx = DataReceiver::new(10_000, 5);
        let (_, done) = rx.ingest(b"123456\r\n.\r\n", &mut Vec::new());
        assert!(done);
        assert_eq!(rx.problem(), Some(DataProblem::LineTooLong));
    }

    #[test]
    fn bdat_content_checks() {
        assert_eq!(check_content(b"a\r\nb\r\n", 10), None);
        assert_eq!(
            check_content(b"a\nb\r\n", 10),
            Some(DataProblem::BareLineEnding)
        );
        assert_eq!(
            check_content(b"a\rb\r\n", 10),
            Some(DataProblem::BareLineEnding)
        );
        assert_eq!(check_content(b"a\r", 10), Some(DataProblem::BareLineEnding));
        assert_eq!(
            check_content(b"0123456789ab\r\n", 10),
            Some(DataProblem::LineTooLong)
        );
        assert_eq!(
            check_content(b"0123456789ab", 10),
            Some(DataProblem::LineTooLong)
        );
    }

    proptest! {
        #[test]
        fn stuffed_crlf_content_round_trips_in_any_split(
            lines in proptest::collection::vec("[ -~]{0,20}", 0..10),
            split in 0usize..200,
        ) {
            let mut original = Vec::new();
            for line in &lines {
                original.extend_from_slice(line.as_bytes());
                original.extend_from_slice(b"\r\n");
            }
            let mut wire = Vec::new();
            for line in &lines {
                if line.starts_with('.') {
                    wire.push(b'.');
                }
                wire.extend_from_slice(line.as_bytes());
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b".\r\n");
            let split = split.min(wire.len());
            let mut rx = DataReceiver::new(100_000, 1000);
            let mut out = Vec::new();
            let (used, done) = rx.ingest(&wire[..split], &mut out);
            let done = if done { prop_assert_eq!(used, split); true } else {
                prop_assert_eq!(used, split);
                let (used2, done2) = rx.ingest(&wire[split..], &mut out);
                prop_assert_eq!(used2, wire.len() - split);
                done2
            };
            prop_assert!(done);
            prop_assert_eq!(rx.problem(), None);
            prop_assert_eq!(out, original);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut rx = DataReceiver::new(100, 20);
            let mut out = Vec::new();
            let (used, _) = rx.ingest(&data, &mut out);
            prop_assert!(used <= data.len());
            prop_assert!(out.len() <= 100 + 2);
            let _ = check_content(&data, 20);
        }
    }
}
