//! Parsing one SMTP reply (RFC 5321 §4.2, enhanced status RFC 2034) from
//! the front of the read buffer.
//!
//! Pure function over bytes, no I/O. smtp-proto's `ResponseReceiver` is not
//! used for ordinary replies because it keeps the enhanced status in `u8`
//! parts, which turns real codes such as Microsoft's `5.7.606` into
//! `5.7.255`; bounce classification needs them exact. smtp-proto still
//! parses the EHLO capabilities (see `io.rs`).

use carteiro_mail::{Reply, Status};

/// Longest reply accepted, all lines together (RFC 5321 allows 512 bytes a
/// line; real servers send long multi-line EHLO and policy texts).
pub(super) const MAX_REPLY_LEN: usize = 64 * 1024;

/// Why the bytes are not an SMTP reply.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReplyError {
    BadCode,
    BadSeparator,
    TooLong,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReplyError::BadCode => "reply line without a three-digit code",
            ReplyError::BadSeparator => "reply code not followed by space or hyphen",
            ReplyError::TooLong => "reply too long",
        })
    }
}

/// Parses the reply at the start of `buf`. `Ok(None)` when the reply is not
/// complete yet; otherwise the reply and how many bytes it took.
pub(super) fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut pos = 0;
    let mut code = 0u16;
    let mut status: Option<Status> = None;
    let mut text = String::new();
    let mut first = true;
    loop {
        let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) else {
            return if buf.len() > MAX_REPLY_LEN {
                Err(ReplyError::TooLong)
            } else {
                Ok(None)
            };
        };
        let line = &buf[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos += nl + 1;
        if pos > MAX_REPLY_LEN {
            return Err(ReplyError::TooLong);
        }

        let line_code = match line {
            [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(ReplyError::BadCode),
        };
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(ReplyError::BadSeparator),
        };
        let rest = line.get(4..).unwrap_or_default();

        // The code of the first line rules; continuation lines are expected
        // to repeat it and their own code is not checked (leniency costs
        // nothing here).
        let rest = if first {
            code = line_code;
            let (line_status, rest) = split_status(rest, code);
            status = line_status;
            rest
        } else {
            text.push('\n');
            match split_status(rest, code) {
                (Some(s), rest) if Some(s) == status => rest,
                _ => rest,
            }
        };
        text.push_str(&String::from_utf8_lossy(rest));
        first = false;

        if last {
            return Ok(Some((Reply::new(code, status, text), pos)));
        }
    }
}

/// Splits a leading enhanced status code off the reply text when its class
/// matches the reply code's first digit (RFC 3463 §2).
fn split_status(rest: &[u8], code: u16) -> (Option<Status>, &[u8]) {
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let candidate = &rest[..end];
    if candidate.first().is_none_or(|b| !b.is_ascii_digit()) {
        return (None, rest);
    }
    let parsed = std::str::from_utf8(candidate).ok().and_then(Status::parse);
    match parsed {
        Some(status) if u16::from(status.0) == code / 100 => {
            (Some(status), rest.get(end + 1..).unwrap_or_default())
        }
        _ => (None, rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (Reply, usize) {
        parse_reply(s.as_bytes())
            .expect("valid reply")
            .expect("complete reply")
    }

    #[test]
    fn single_line_with_status() {
        let (reply, len) = parse("250 2.1.0 sender ok\r\n354 go\r\n");
        assert_eq!(reply, Reply::new(250, Some(Status(2, 1, 0)), "sender ok"));
        assert_eq!(len, 21);
    }

    #[test]
    fn three_digit_detail_is_kept() {
        let (reply, _) = parse("550 5.7.606 Access denied, banned sending IP\r\n");
        assert_eq!(reply.status, Some(Status(5, 7, 606)));
        assert_eq!(reply.text, "Access denied, banned sending IP");
    }

    #[test]
    fn multi_line_strips_repeated_status() {
        let (reply, _) = parse("550-5.1.1 no such user\r\n550-5.1.1 see\r\n550 5.1.1 docs\r\n");
        assert_eq!(reply.to_string(), "550 5.1.1 no such user / see / docs");
    }

    #[test]
    fn status_of_other_class_is_text() {
        let (reply, _) = parse("250 5.0.0 odd\r\n");
        assert_eq!(reply.status, None);
        assert_eq!(reply.text, "5.0.0 odd");
        let (reply, _) = parse("220 2.example.test ESMTP\r\n");
        assert_eq!(reply.status, None);
        assert_eq!(reply.text, "2.example.test ESMTP");
    }

    #[test]
    fn bare_code_and_lf_only() {
        let (reply, len) = parse("250\n");
        assert_eq!((reply.code, reply.text.as_ref(), len), (250, "", 4));
    }

    #[test]
    fn incomplete_and_invalid() {
        assert_eq!(parse_reply(b"250-a\r\n250 b"), Ok(None));
        assert_eq!(parse_reply(b""), Ok(None));
        assert_eq!(parse_reply(b"hello\r\n"), Err(ReplyError::BadCode));
        assert_eq!(parse_reply(b"250x\r\n"), Err(ReplyError::BadSeparator));
        let long = vec![b'2'; MAX_REPLY_LEN + 10];
        assert_eq!(parse_reply(&long), Err(ReplyError::TooLong));
    }
}
