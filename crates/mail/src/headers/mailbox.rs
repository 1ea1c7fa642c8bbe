//! The addr-spec of the first mailbox of a `From:` field value (RFC 5322
//! §3.4, with the obsolete syntax of §4.4 that real mail still uses).
//!
//! Only the address is wanted, so display names, comments and group names are
//! skipped without being decoded. Anything ambiguous (an unterminated quoted
//! string, comment or angle address, control characters, a missing or invalid
//! domain) gives `None`: a From that parsers could read differently is the
//! raw material of spoofing, so it must not yield an address.

use crate::address::{is_valid_domain, split_address};

/// One lexical token of an address field; comments and whitespace are skipped
/// between tokens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    /// An atom: offsets into the value.
    Atom(usize, usize),
    /// A quoted string, offsets of its content without the quotes.
    Quoted(usize, usize),
    /// A domain literal, offsets including the brackets.
    Literal(usize, usize),
    /// One of `< > : ; , @ .`
    Special(u8),
    /// Something that makes the field unreadable.
    Invalid,
}

/// Reads tokens from a field value.
struct Lexer<'a> {
    value: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn next_token(&mut self) -> Option<Token> {
        loop {
            let &b = self.value.get(self.pos)?;
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'(' => {
                    if !self.skip_comment() {
                        return Some(Token::Invalid);
                    }
                }
                b'"' => return Some(self.quoted()),
                b'[' => return Some(self.literal()),
                b'<' | b'>' | b':' | b';' | b',' | b'@' | b'.' => {
                    self.pos += 1;
                    return Some(Token::Special(b));
                }
                b')' | b']' => return Some(Token::Invalid),
                _ if is_control(b) => return Some(Token::Invalid),
                _ => return Some(self.atom()),
            }
        }
    }

    /// Skips a (possibly nested) comment; false when it is not closed.
    fn skip_comment(&mut self) -> bool {
        let mut depth = 0usize;
        while let Some(&b) = self.value.get(self.pos) {
            self.pos += 1;
            match b {
                b'\\' => self.pos += 1,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return true;
                    }
                }
                _ => {}
            }
        }
        false
    }

    fn quoted(&mut self) -> Token {
        let start = self.pos + 1;
        let mut at = start;
        while let Some(&b) = self.value.get(at) {
            match b {
                b'\\' => at += 2,
                b'"' => {
                    self.pos = at + 1;
                    return Token::Quoted(start, at);
                }
                _ => at += 1,
            }
        }
        Token::Invalid
    }

    fn literal(&mut self) -> Token {
        let start = self.pos;
        // The content of a literal is plain text: no brackets, escapes or
        // line breaks.
        let Some(close) = self.value.get(start + 1..).and_then(|rest| {
            rest.iter()
                .position(|&b| b == b']' || b == b'[' || b == b'\\' || b == b'\n')
                .filter(|&at| rest.get(at) == Some(&b']'))
        }) else {
            return Token::Invalid;
        };
        self.pos = start + 1 + close + 1;
        Token::Literal(start, self.pos)
    }

    fn atom(&mut self) -> Token {
        let start = self.pos;
        while let Some(&b) = self.value.get(self.pos) {
            if is_special_or_space(b) || is_control(b) {
                break;
            }
            self.pos += 1;
        }
        // A character no other token takes (a backslash outside quotes)
        // makes no progress: the field is unreadable, and the lexer must
        // never return an empty token forever.
        if self.pos == start {
            return Token::Invalid;
        }
        Token::Atom(start, self.pos)
    }
}

fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t' && b != b'\r' && b != b'\n') || b == 0x7f
}

fn is_special_or_space(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')'
            | b'<'
            | b'>'
            | b'['
            | b']'
            | b':'
            | b';'
            | b'@'
            | b'\\'
            | b','
            | b'.'
            | b'"'
            | b' '
            | b'\t'
            | b'\r'
            | b'\n'
    )
}

/// The addr-spec of the first mailbox in `value` (a `From:` field value,
/// folded lines included), quoting removed.
pub(super) fn first_addr_spec(value: &[u8]) -> Option<String> {
    let mut lexer = Lexer { value, pos: 0 };
    // The tokens of the current list element, when it is a bare addr-spec.
    let mut tokens: Vec<Token> = Vec::new();
    while let Some(token) = lexer.next_token() {
        match token {
            Token::Invalid => return None,
            // A name-addr: its angle address is the mailbox, whatever came
            // before it was the display name.
            Token::Special(b'<') => return angle_addr(&mut lexer),
            // The end of a group's display name.
            Token::Special(b':') => tokens.clear(),
            // The end of a list element (or of a group). Words without an `@`
            // are skipped: they are an unquoted display name with a comma
            // (`Doe, John <j@x>`), common in practice. Anything with an `@`
            // must be a valid address.
            Token::Special(b',' | b';') => {
                if tokens.contains(&Token::Special(b'@')) {
                    return addr_spec(value, &tokens);
                }
                tokens.clear();
            }
            Token::Special(b'>') => return None,
            token => tokens.push(token),
        }
    }
    if tokens.is_empty() {
        return None;
    }
    addr_spec(value, &tokens)
}

/// Reads an angle address after its `<`, dropping an obsolete source route
/// (`<@relay1,@relay2:user@host>`).
fn angle_addr(lexer: &mut Lexer<'_>) -> Option<String> {
    let mut tokens: Vec<Token> = Vec::new();
    while let Some(token) = lexer.next_token() {
        match token {
            Token::Special(b'>') => return addr_spec(lexer.value, &tokens),
            Token::Special(b':') if tokens.first() == Some(&Token::Special(b'@')) => {
                tokens.clear();
            }
            Token::Special(b',') if tokens.first() == Some(&Token::Special(b'@')) => {}
            Token::Invalid | Token::Special(b'<' | b':' | b';' | b',') => return None,
            token => tokens.push(token),
        }
    }
    None
}

/// Joins `local-part "@" domain` from its tokens: words separated by dots, one
/// `@`, then a dot-separated domain or a domain literal.
fn addr_spec(value: &[u8], tokens: &[Token]) -> Option<String> {
    let at = tokens.iter().rposition(|t| *t == Token::Special(b'@'))?;
    let (local_tokens, domain_tokens) = (tokens.get(..at)?, tokens.get(at + 1..)?);
    let mut out: Vec<u8> = Vec::with_capacity(64);
    dotted_words(value, local_tokens, true, &mut out)?;
    out.push(b'@');
    let domain_start = out.len();
    match domain_tokens {
        [Token::Literal(start, end)] => out.extend_from_slice(value.get(*start..*end)?),
        _ => dotted_words(value, domain_tokens, false, &mut out)?,
    }
    let address = String::from_utf8(out).ok()?;
    let (_, domain) = split_address(&address)?;
    (domain.len() == address.len() - domain_start && is_valid_domain(domain)).then_some(address)
}

/// Appends `word ("." word)*` to `out`; quoted strings (unquoted on the way)
/// are allowed only in a local part.
fn dotted_words(value: &[u8], tokens: &[Token], local: bool, out: &mut Vec<u8>) -> Option<()> {
    if tokens.is_empty() {
        return None;
    }
    let mut want_word = true;
    for token in tokens {
        match (*token, want_word) {
            (Token::Atom(start, end), true) => out.extend_from_slice(value.get(start..end)?),
            (Token::Quoted(start, end), true) if local => {
                let mut escaped = false;
                for &b in value.get(start..end)? {
                    if b == b'\\' && !escaped {
                        escaped = true;
                        continue;
                    }
                    escaped = false;
                    if b != b'\r' && b != b'\n' {
                        out.push(b);
                    }
                }
            }
            (Token::Special(b'.'), false) => out.push(b'.'),
            _ => return None,
        }
        want_word = !want_word;
    }
    (!want_word).then_some(())
}
