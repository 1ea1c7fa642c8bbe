//! Client-supplied text made safe to put in a log line.
//!
//! An EHLO name, an AUTH username, an address or a header value comes from
//! whoever connected. Written verbatim, a CR or LF in it starts a forged log
//! line, and an ANSI escape sequence repaints the operator's terminal.
//! [`LogSafe`] writes such text with every control character (C0, DEL, C1:
//! CR, LF, TAB, ESC…), Unicode line separators and bidirectional overrides
//! escaped, and the backslash doubled so an escape cannot be faked:
//! `a\r\nb`, `\u{1b}[31m`. Its `Debug` form is the same text in double
//! quotes, with `"` escaped too (`user="…"` cannot be closed early).
//!
//! Use it at every log site that prints client data:
//! `tracing::info!(user = %LogSafe(&name), …)`, or `?LogSafe(…)` for the
//! quoted form.

use std::fmt::{self, Write};

/// Text from a client, escaped when displayed. See the module docs.
#[derive(Clone, Copy)]
pub struct LogSafe<'a>(pub &'a str);

impl LogSafe<'_> {
    fn write(&self, f: &mut fmt::Formatter<'_>, quote: bool) -> fmt::Result {
        let text = self.0;
        let mut clean = 0;
        for (at, c) in text.char_indices() {
            let escaped = match c {
                '\\' => Some("\\\\"),
                '"' if quote => Some("\\\""),
                '\r' => Some("\\r"),
                '\n' => Some("\\n"),
                '\t' => Some("\\t"),
                _ => None,
            };
            if escaped.is_none() && !needs_escape(c) {
                continue;
            }
            f.write_str(&text[clean..at])?;
            match escaped {
                Some(s) => f.write_str(s)?,
                None => write!(f, "\\u{{{:x}}}", c as u32)?,
            }
            clean = at + c.len_utf8();
        }
        f.write_str(&text[clean..])
    }
}

/// Characters that would change how a line reads or is split: controls,
/// Unicode line and paragraph separators, bidirectional embeddings,
/// overrides and isolates.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

impl fmt::Debug for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        self.write(f, true)?;
        f.write_char('"')
    }
}

#[cfg(test)]
mod tests {
    use super::LogSafe;

    #[test]
    fn plain_text_is_unchanged() {
        for text in ["alice@example.com", "mx.example.org", "Zoë <z@ü.de>", ""] {
            assert_eq!(LogSafe(text).to_string(), text);
        }
        assert_eq!(format!("{:?}", LogSafe("bob")), "\"bob\"");
    }

    #[test]
    fn line_breaks_and_escapes_cannot_reach_the_log() {
        let forged = "x\r\n2026-01-01T00:00:00Z  INFO smtp login user=admin\u{1b}[2K";
        let shown = LogSafe(forged).to_string();
        assert_eq!(
            shown,
            "x\\r\\n2026-01-01T00:00:00Z  INFO smtp login user=admin\\u{1b}[2K"
        );
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }

    #[test]
    fn every_control_and_bidi_character_is_escaped() {
        let mut all = String::new();
        for c in (0u32..0x20)
            .chain(0x7f..0xa0)
            .chain([0x2028, 0x2029, 0x202e, 0x2066])
        {
            all.push(char::from_u32(c).unwrap());
        }
        let shown = LogSafe(&all).to_string();
        assert!(
            shown.chars().all(|c| c.is_ascii_graphic()),
            "unescaped characters left in {shown:?}"
        );
        assert!(
            shown.contains("\\u{0}") && shown.contains("\\u{9b}") && shown.contains("\\u{202e}")
        );
    }

    #[test]
    fn backslashes_and_quotes_cannot_fake_an_escape_or_close_a_field() {
        assert_eq!(LogSafe("a\\r").to_string(), "a\\\\r");
        assert_eq!(
            format!("{:?}", LogSafe("x\" ip=10.0.0.1")),
            "\"x\\\" ip=10.0.0.1\""
        );
        // Display leaves quotes: it is not a quoted form.
        assert_eq!(LogSafe("say \"hi\"").to_string(), "say \"hi\"");
    }
}
