//! SMTP replies: one type for what Carteiro answers and for what remote
//! servers answered it (RFC 5321 §4.2, enhanced status codes RFC 3463).

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// An enhanced status code `class.subject.detail` (RFC 3463), e.g. `5.1.1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Status(pub u8, pub u16, pub u16);

impl Status {
    /// Parses `X.Y.Z` with class 2, 4 or 5 and up to three digits per other part.
    pub fn parse(s: &str) -> Option<Status> {
        let mut parts = s.split('.');
        let class: u8 = parts.next()?.parse().ok()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some()
            || !matches!(class, 2 | 4 | 5)
            || !(1..=3).contains(&subject.len())
            || !(1..=3).contains(&detail.len())
        {
            return None;
        }
        Some(Status(class, subject.parse().ok()?, detail.parse().ok()?))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One SMTP reply: a three-digit code, an optional enhanced status and text.
/// Text may hold several lines separated by `\n`; they are written as a
/// multi-line reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub code: u16,
    pub status: Option<Status>,
    pub text: Cow<'static, str>,
}

macro_rules! reply_consts {
    ($($(#[$doc:meta])* $name:ident = $code:literal, ($c:literal, $s:literal, $d:literal), $text:literal;)*) => {
        $(
            $(#[$doc])*
            pub const $name: Reply = Reply {
                code: $code,
                status: Some(Status($c, $s, $d)),
                text: Cow::Borrowed($text),
            };
        )*
    };
}

impl Reply {
    reply_consts! {
        OK = 250, (2, 0, 0), "ok";
        SENDER_OK = 250, (2, 1, 0), "sender ok";
        RECIPIENT_OK = 250, (2, 1, 5), "recipient ok";
        RESET_OK = 250, (2, 0, 0), "reset";
        NOOP_OK = 250, (2, 0, 0), "ok";
        BYE = 221, (2, 0, 0), "bye";
        AUTH_OK = 235, (2, 7, 0), "authentication succeeded";
        START_DATA = 354, (2, 0, 0), "end data with <CR><LF>.<CR><LF>";
        READY_TLS = 220, (2, 0, 0), "ready to start TLS";
        VRFY_CANNOT = 252, (2, 5, 2), "cannot verify the user, but will accept the message";
        SYNTAX_ERROR = 500, (5, 5, 2), "syntax error";
        LINE_TOO_LONG = 500, (5, 5, 6), "line too long";
        UNKNOWN_COMMAND = 500, (5, 5, 1), "command not recognized";
        BAD_ARGUMENTS = 501, (5, 5, 4), "syntax error in parameters or arguments";
        BAD_SENDER = 501, (5, 1, 7), "bad sender address syntax";
        BAD_RECIPIENT = 501, (5, 1, 3), "bad recipient address syntax";
        NOT_IMPLEMENTED = 502, (5, 5, 1), "command not implemented";
        NEED_HELO = 503, (5, 5, 1), "send EHLO or HELO first";
        NEED_MAIL = 503, (5, 5, 1), "need MAIL before RCPT";
        NEED_RCPT = 503, (5, 5, 1), "need RCPT before DATA";
        NESTED_MAIL = 503, (5, 5, 1), "sender already given";
        ALREADY_AUTHENTICATED = 503, (5, 5, 1), "already authenticated";
        ALREADY_TLS = 503, (5, 5, 1), "TLS already active";
        BDAT_DATA_MIX = 503, (5, 5, 1), "DATA not allowed after BDAT in the same transaction";
        PARAM_NOT_SUPPORTED = 555, (5, 5, 4), "parameter not recognized or not implemented";
        AUTH_MECH_UNSUPPORTED = 504, (5, 5, 4), "authentication mechanism not supported";
        AUTH_REQUIRED = 530, (5, 7, 0), "authentication required";
        TLS_REQUIRED = 530, (5, 7, 0), "must issue STARTTLS first";
        AUTH_FAILED = 535, (5, 7, 8), "authentication credentials invalid";
        AUTH_CANCELLED = 501, (5, 0, 0), "authentication cancelled";
        AUTH_BAD_ENCODING = 501, (5, 5, 2), "cannot decode authentication response";
        AUTH_THROTTLED = 454, (4, 7, 0), "too many failed authentication attempts, try again later";
        AUTH_UNAVAILABLE = 454, (4, 7, 0), "temporary authentication failure";
        RELAY_DENIED = 554, (5, 7, 1), "relay access denied";
        NO_SUCH_USER = 550, (5, 1, 1), "no such recipient here";
        TOO_MANY_RECIPIENTS = 452, (4, 5, 3), "too many recipients";
        MESSAGE_TOO_BIG = 552, (5, 3, 4), "message size exceeds fixed maximum message size";
        DECLARED_TOO_BIG = 552, (5, 3, 4), "declared message size exceeds fixed maximum message size";
        DATA_LINE_TOO_LONG = 554, (5, 6, 0), "message has a line longer than the maximum allowed";
        BARE_LF = 554, (5, 6, 0), "bare <LF> or <CR> in message; use <CR><LF> line endings";
        SPOOL_ERROR = 452, (4, 3, 1), "insufficient system storage, try again later";
        LOCAL_ERROR = 451, (4, 3, 0), "local error in processing, try again later";
        TOO_BUSY = 421, (4, 7, 0), "too many connections, try again later";
        TOO_MANY_FROM_IP = 421, (4, 7, 0), "too many connections from your address, try again later";
        TOO_MANY_FROM_NETWORK = 421, (4, 7, 0), "too many connections from your network, try again later";
        /// Sent with the host name first ([`Reply::with_host`]), as all three timeouts.
        TIMEOUT = 421, (4, 4, 2), "idle timeout, closing connection";
        /// A command line that did not reach its CRLF in time.
        COMMAND_TIMEOUT = 421, (4, 4, 2), "command timeout, closing connection";
        /// Message content arriving below the minimum rate.
        DATA_TIMEOUT = 421, (4, 4, 2), "data timeout: message content too slow, closing connection";
        TOO_MANY_COMMANDS = 421, (4, 7, 0), "too many commands without a transaction, closing connection";
        TOO_MANY_ERRORS = 421, (4, 7, 0), "too many errors, closing connection";
        SHUTTING_DOWN = 421, (4, 3, 2), "service shutting down, closing connection";
        SMTPUTF8_REQUIRED = 553, (5, 6, 7), "non-ASCII address requires SMTPUTF8";
        /// RFC 6531 addresses are UTF-8; other bytes would be passed on as U+FFFD.
        INVALID_UTF8_ADDRESS = 501, (5, 6, 7), "address is not valid UTF-8";
        TLS_UNAVAILABLE = 454, (4, 7, 0), "TLS not available";
    }

    /// A reply with its own text.
    pub fn new(code: u16, status: Option<Status>, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            status,
            text: text.into(),
        }
    }

    /// The same code and status with other text.
    pub fn with_text(&self, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code: self.code,
            status: self.status,
            text: text.into(),
        }
    }

    /// The same reply with `host` before its text: the form RFC 5321
    /// §4.2.3 gives a `421` that closes the connection.
    pub fn with_host(&self, host: &str) -> Reply {
        self.with_text(format!("{host} {}", self.text))
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Whether the server closes the connection after sending this reply.
    pub fn closes_connection(&self) -> bool {
        self.code == 421 || self.code == 221
    }

    /// Appends the wire form (CRLF terminated, multi-line when the text has
    /// several lines) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut lines = self.text.split('\n').peekable();
        loop {
            let line = lines.next().unwrap_or("");
            let last = lines.peek().is_none();
            push_u16(out, self.code);
            out.push(if last { b' ' } else { b'-' });
            if let Some(status) = self.status {
                out.extend_from_slice(status.to_string().as_bytes());
                out.push(b' ');
            }
            // Never let reply text carry a bare CR into the stream.
            out.extend(line.bytes().filter(|&b| b != b'\r'));
            out.extend_from_slice(b"\r\n");
            if last {
                break;
            }
        }
    }

    /// The wire form as a string (for logs, DSNs and tests).
    pub fn to_wire(&self) -> String {
        let mut out = Vec::new();
        self.write_to(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn push_u16(out: &mut Vec<u8>, code: u16) {
    out.push(b'0' + (code / 100 % 10) as u8);
    out.push(b'0' + (code / 10 % 10) as u8);
    out.push(b'0' + (code % 10) as u8);
}

impl fmt::Display for Reply {
    /// One line: `550 5.1.1 text` (multi-line text joined with spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(status) = self.status {
            write!(f, " {status}")?;
        }
        for (i, line) in self.text.split('\n').enumerate() {
            write!(f, "{}{}", if i == 0 { " " } else { " / " }, line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_reply_has_code_status_and_crlf() {
        assert_eq!(
            Reply::TOO_MANY_RECIPIENTS.to_wire(),
            "452 4.5.3 too many recipients\r\n"
        );
    }

    #[test]
    fn multi_line_reply_uses_dashes_until_last_line() {
        let reply = Reply::new(250, None, "relay.test\nPIPELINING\nSIZE 10");
        assert_eq!(
            reply.to_wire(),
            "250-relay.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
    }

    #[test]
    fn a_closing_reply_can_name_the_host() {
        assert_eq!(
            Reply::COMMAND_TIMEOUT.with_host("mx.test").to_wire(),
            "421 4.4.2 mx.test command timeout, closing connection\r\n"
        );
    }

    #[test]
    fn status_parses_only_valid_codes() {
        assert_eq!(Status::parse("5.1.1"), Some(Status(5, 1, 1)));
        assert_eq!(Status::parse("4.7.650"), Some(Status(4, 7, 650)));
        assert_eq!(Status::parse("3.1.1"), None);
        assert_eq!(Status::parse("5.1"), None);
        assert_eq!(Status::parse("5.1.1.1"), None);
        assert_eq!(Status::parse("5.1111.1"), None);
    }

    #[test]
    fn display_is_one_line() {
        let reply = Reply::new(550, Some(Status(5, 1, 1)), "no such user\nsee docs");
        assert_eq!(reply.to_string(), "550 5.1.1 no such user / see docs");
    }
}
