//! Open and click tracking: the changes made to a message's HTML before it
//! is signed. Links (`href` of `<a>` and `<area>`) are pointed at
//! `public_url/t/c/TOKEN`, and a 1×1 pixel `public_url/t/o/TOKEN` goes
//! before `</body>` (or at the end). The caller makes the URLs (they hold
//! signed tokens, see [`crate::verp`]); this module only finds where they go.
//!
//! The MIME structure comes from mail-parser: every inline `text/html` body
//! part (in `multipart/alternative`, `related`, `mixed`, at any depth, but
//! not inside an attached `message/rfc822` and not an attachment) is
//! transfer-decoded from its raw bytes (quoted-printable, base64 or none),
//! changed, and encoded again the same way. Only those bytes (and, when a
//! long line forces quoted-printable on an unencoded part, that part's
//! `Content-Transfer-Encoding` field) change; every other byte of the
//! message stays as it was. The HTML is never charset-decoded: links and
//! tags are ASCII in every charset mail uses, except UTF-16/32, whose parts
//! are left alone.
//!
//! Links are found by a small tag scanner rather than an HTML parser that
//! would re-serialize the document: it follows the HTML tokenizer's rules
//! for tags and attributes (quoted and unquoted values, comments, `<script>`
//! and `<style>` contents) and changes nothing but the `href` values it
//! replaces. What it leaves alone, on purpose: links that are not absolute
//! `http:`/`https:` URLs (`mailto:`, `tel:`, `#anchors`, relative links),
//! links already under `public_url` (the unsubscribe page `/u/…`, a pixel),
//! links it cannot read exactly as a browser would (an unknown character
//! reference, spaces or non-ASCII bytes in the URL), URLs longer than
//! [`MAX_LINK_LEN`], and everything inside comments (Outlook's conditional
//! comments included). No I/O.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_parser::{Encoding, MessageParser, MimeHeaders, PartType};
use std::borrow::Cow;

/// Links longer than this (in bytes) are left as they are: the tracking
/// URL carries the link, a third longer.
pub const MAX_LINK_LEN: usize = 2048;
/// The longest line SMTP allows, without its CRLF (RFC 5321 §4.5.3.1.6).
const MAX_LINE: usize = 998;
/// Line length of quoted-printable and base64 output (RFC 2045).
const ENCODED_LINE: usize = 76;

/// What tracking does to one message.
pub struct Tracking<'a> {
    /// `http.public_url`, without its trailing slash: links under it are
    /// never rewritten.
    pub public_url: &'a str,
    /// The open-tracking pixel's URL; `None`: no pixel.
    pub pixel: Option<&'a str>,
    /// Makes the click-tracking URL of a link (given as the browser would
    /// follow it); `None`: links stay as they are.
    pub link: Option<&'a dyn Fn(&str) -> String>,
}

/// The message with tracking applied to its HTML body parts, or `None` when
/// nothing changed (no HTML part, or nothing to track in it).
pub fn track_message(message: &[u8], tracking: &Tracking<'_>) -> Option<Vec<u8>> {
    if tracking.pixel.is_none() && tracking.link.is_none() {
        return None;
    }
    let parsed = MessageParser::new().parse(message)?;
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let mut pixel = tracking.pixel;
    for &index in &parsed.html_body {
        let Some(part) = parsed.parts.get(index as usize) else {
            continue;
        };
        if !matches!(part.body, PartType::Html(_)) || part.is_encoding_problem {
            continue;
        }
        let charset = part
            .content_type()
            .and_then(|ct| ct.attribute("charset"))
            .unwrap_or("")
            .to_ascii_lowercase();
        if ["utf-16", "utf-32", "ucs-2", "ucs-4", "utf16", "utf32"]
            .iter()
            .any(|c| charset.starts_with(c))
        {
            continue;
        }
        let (header, start, end) = (
            part.offset_header as usize,
            part.offset_body as usize,
            part.offset_end as usize,
        );
        let Some(raw) = message.get(start..end) else {
            continue;
        };
        if header > start {
            continue;
        }
        let decoded = match part.encoding {
            Encoding::None => Cow::Borrowed(raw),
            Encoding::QuotedPrintable => Cow::Owned(qp_decode(raw)),
            Encoding::Base64 => match base64_decode(raw) {
                Some(bytes) => Cow::Owned(bytes),
                None => continue,
            },
        };
        let part_tracking = Tracking {
            public_url: tracking.public_url,
            pixel,
            link: tracking.link,
        };
        let Some(html) = track_html(&decoded, &part_tracking) else {
            continue;
        };
        // One pixel per message: one view, one open.
        pixel = None;
        let trailing_newline = raw.ends_with(b"\n");
        match part.encoding {
            Encoding::QuotedPrintable => edits.push((start, end, qp_encode(&html))),
            Encoding::Base64 => {
                let mut encoded = base64_encode(&html);
                if trailing_newline {
                    encoded.extend_from_slice(b"\r\n");
                }
                edits.push((start, end, encoded));
            }
            Encoding::None if longest_line(&html) <= MAX_LINE => edits.push((start, end, html)),
            Encoding::None => {
                // A long link made a line too long for SMTP: this part
                // becomes quoted-printable.
                let Some(fields) =
                    with_transfer_encoding(&message[header..start], "quoted-printable")
                else {
                    continue;
                };
                let mut encoded = fields;
                encoded.extend_from_slice(&qp_encode(&html));
                edits.push((header, end, encoded));
            }
        }
    }
    if edits.is_empty() {
        return None;
    }
    edits.sort_by_key(|&(start, _, _)| start);
    let mut out = Vec::with_capacity(message.len() + 1024);
    let mut at = 0;
    for (start, end, replacement) in edits {
        if start < at {
            // Overlapping parts cannot happen with mail-parser's offsets;
            // should they, the later edit is dropped rather than corrupt.
            continue;
        }
        out.extend_from_slice(&message[at..start]);
        out.extend_from_slice(&replacement);
        at = end;
    }
    out.extend_from_slice(&message[at..]);
    Some(out)
}

/// Whether `message` may have an HTML part: a cheap look for `text/html`
/// anywhere (any case), so that mail without HTML is never split per
/// recipient for tracking that would change nothing.
pub fn may_have_html(message: &[u8]) -> bool {
    find_ignore_case(message, 0, b"text/html").is_some()
}

/// `html` with its links rewritten and the pixel inserted, or `None` when
/// nothing changed.
pub fn track_html(html: &[u8], tracking: &Tracking<'_>) -> Option<Vec<u8>> {
    let scan = scan(html);
    let mut out = Vec::with_capacity(html.len() + 512);
    let mut at = 0;
    let mut changed = false;
    let pixel_at = scan.body_close.unwrap_or(html.len());
    let mut pixel = tracking.pixel;
    if let Some(make) = tracking.link {
        for href in &scan.hrefs {
            let Some(url) = link_target(&html[href.value.clone()]) else {
                continue;
            };
            if !is_trackable(&url, tracking.public_url) {
                continue;
            }
            if href.span.start >= pixel_at
                && let Some(pixel_url) = pixel.take()
            {
                let cut = pixel_at.max(at);
                out.extend_from_slice(&html[at..cut]);
                at = cut;
                put_pixel(pixel_url, &mut out);
            }
            out.extend_from_slice(&html[at..href.span.start]);
            out.push(b'"');
            escape_attribute(&make(&url), &mut out);
            out.push(b'"');
            at = href.span.end;
            changed = true;
        }
    }
    if let Some(pixel_url) = pixel.take() {
        let cut = pixel_at.max(at);
        out.extend_from_slice(&html[at..cut]);
        at = cut;
        put_pixel(pixel_url, &mut out);
        changed = true;
    }
    if !changed {
        return None;
    }
    out.extend_from_slice(&html[at..]);
    Some(out)
}

/// The open-tracking pixel: an image of 1×1 px without border or margins.
fn put_pixel(url: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<img src=\"");
    escape_attribute(url, out);
    out.extend_from_slice(
        b"\" width=\"1\" height=\"1\" alt=\"\" border=\"0\" style=\"height:1px!important;\
          width:1px!important;border:0!important;margin:0!important;padding:0!important\" />",
    );
}

/// Whether a link's target gets a tracking URL: absolute `http(s)` links
/// not already under `public_url`.
pub fn is_trackable(url: &str, public_url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || url.len() > MAX_LINK_LEN
    {
        return false;
    }
    let base = public_url.trim_end_matches('/').to_ascii_lowercase();
    match lower.strip_prefix(&base) {
        Some(rest) => !(rest.is_empty() || rest.starts_with(['/', '?', '#'])),
        None => true,
    }
}

/// The URL a browser follows for an `href` value (without its quotes):
/// character references decoded, surrounding whitespace removed. `None`
/// when it cannot be read with certainty (an unknown named reference,
/// inner whitespace, controls or non-ASCII).
fn link_target(value: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut at = 0;
    while at < value.len() {
        let byte = value[at];
        if byte != b'&' {
            out.push(char::from(byte));
            at += 1;
            continue;
        }
        let rest = &value[at + 1..];
        if let Some(numeric) = rest.strip_prefix(b"#") {
            let (hex, digits) = match numeric.first() {
                Some(b'x' | b'X') => (true, &numeric[1..]),
                _ => (false, numeric),
            };
            let len = digits
                .iter()
                .take_while(|b| {
                    if hex {
                        b.is_ascii_hexdigit()
                    } else {
                        b.is_ascii_digit()
                    }
                })
                .count();
            if len == 0 || len > 8 {
                return None;
            }
            let text = std::str::from_utf8(&digits[..len]).ok()?;
            let code = u32::from_str_radix(text, if hex { 16 } else { 10 }).ok()?;
            out.push(char::from_u32(code)?);
            at += 1 + 1 + usize::from(hex) + len;
            if value.get(at) == Some(&b';') {
                at += 1;
            }
            continue;
        }
        let name_len = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let name = &rest[..name_len];
        let next = rest.get(name_len).copied();
        let known = match name {
            b"amp" | b"AMP" => Some('&'),
            b"lt" | b"LT" => Some('<'),
            b"gt" | b"GT" => Some('>'),
            b"quot" | b"QUOT" => Some('"'),
            b"apos" => Some('\''),
            _ => None,
        };
        match (known, next) {
            (Some(c), Some(b';')) => {
                out.push(c);
                at += 1 + name_len + 1;
            }
            // Any other `&name;`: a browser may decode it; not certain.
            (None, Some(b';')) if name_len > 0 => return None,
            // `&` alone, or `&name=` (a query string): taken literally, as
            // browsers do in attribute values.
            _ if name_len == 0 || next == Some(b'=') => {
                out.push('&');
                at += 1;
            }
            // A legacy reference without `;` (`&copy`, `&amp`) before
            // anything else is decoded by browsers.
            (Some(c), _) if LEGACY_REFERENCES.contains(&name) => {
                out.push(c);
                at += 1 + name_len;
            }
            _ if LEGACY_REFERENCES.contains(&name) => return None,
            _ => {
                out.push('&');
                at += 1;
            }
        }
    }
    let trimmed = out.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    Some(trimmed.to_string())
}

/// The named character references HTML decodes even without their `;`
/// (the tokenizer's legacy table).
const LEGACY_REFERENCES: &[&[u8]] = &[
    b"AElig", b"AMP", b"Aacute", b"Acirc", b"Agrave", b"Aring", b"Atilde", b"Auml", b"COPY",
    b"Ccedil", b"ETH", b"Eacute", b"Ecirc", b"Egrave", b"Euml", b"GT", b"Iacute", b"Icirc",
    b"Igrave", b"Iuml", b"LT", b"Ntilde", b"Oacute", b"Ocirc", b"Ograve", b"Oslash", b"Otilde",
    b"Ouml", b"QUOT", b"REG", b"THORN", b"Uacute", b"Ucirc", b"Ugrave", b"Uuml", b"Yacute",
    b"aacute", b"acirc", b"acute", b"aelig", b"agrave", b"amp", b"aring", b"atilde", b"auml",
    b"brvbar", b"ccedil", b"cedil", b"cent", b"copy", b"curren", b"deg", b"divide", b"eacute",
    b"ecirc", b"egrave", b"eth", b"euml", b"frac12", b"frac14", b"frac34", b"gt", b"iacute",
    b"icirc", b"iexcl", b"igrave", b"iquest", b"iuml", b"laquo", b"lt", b"macr", b"micro",
    b"middot", b"nbsp", b"not", b"ntilde", b"oacute", b"ocirc", b"ograve", b"ordf", b"ordm",
    b"oslash", b"otilde", b"ouml", b"para", b"plusmn", b"pound", b"quot", b"raquo", b"reg",
    b"sect", b"shy", b"sup1", b"sup2", b"sup3", b"szlig", b"thorn", b"times", b"uacute", b"ucirc",
    b"ugrave", b"uml", b"uuml", b"yacute", b"yen", b"yuml",
];

/// Writes `text` as the inside of a double-quoted attribute value.
fn escape_attribute(text: &str, out: &mut Vec<u8>) {
    for byte in text.bytes() {
        match byte {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            _ => out.push(byte),
        }
    }
}

/// An `href` attribute of an `<a>` or `<area>` tag.
#[derive(Debug, PartialEq)]
struct Href {
    /// The whole value as written, quotes included.
    span: std::ops::Range<usize>,
    /// The value without its quotes.
    value: std::ops::Range<usize>,
}

/// What the tag scanner found, in document order.
#[derive(Debug, Default)]
struct Scan {
    hrefs: Vec<Href>,
    /// Where the last `</body` end tag starts.
    body_close: Option<usize>,
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Like `find`, ignoring ASCII case (`needle` is lowercase).
fn find_ignore_case(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let hay = haystack.get(from..)?;
    let (&first, rest) = needle.split_first()?;
    // Candidates by the first byte in either case (memchr: SIMD), then a
    // comparison of the rest: far cheaper than comparing every window, and
    // this runs over every tracked account's whole message.
    memchr::memchr2_iter(first.to_ascii_lowercase(), first.to_ascii_uppercase(), hay)
        .find(|&at| {
            hay.get(at + 1..at + 1 + rest.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(rest))
        })
        .map(|p| from + p)
}

/// Scans the tags of `html` as the HTML tokenizer would: start tags with
/// their attributes, end tags, comments, declarations, and the contents of
/// raw-text elements (skipped). Malformed input ends the scan early at
/// worst; it never fails.
fn scan(html: &[u8]) -> Scan {
    let mut found = Scan::default();
    let mut at = 0;
    while let Some(offset) = memchr::memchr(b'<', html.get(at..).unwrap_or_default()) {
        let open = at + offset;
        let rest = &html[open + 1..];
        if rest.starts_with(b"!-->") || rest.starts_with(b"!--->") {
            // An empty comment, closed abruptly.
            at = find(html, open, b">").map_or(html.len(), |end| end + 1);
        } else if rest.starts_with(b"!--") {
            at = find(html, open + 4, b"-->").map_or(html.len(), |end| end + 3);
        } else if rest.starts_with(b"!") || rest.starts_with(b"?") {
            at = find(html, open + 1, b">").map_or(html.len(), |end| end + 1);
        } else if rest.first() == Some(&b'/') && rest.get(1).is_some_and(u8::is_ascii_alphabetic) {
            let name_end = tag_name_end(html, open + 2);
            if html[open + 2..name_end].eq_ignore_ascii_case(b"body") {
                found.body_close = Some(open);
            }
            at = find(html, name_end, b">").map_or(html.len(), |end| end + 1);
        } else if rest.first().is_some_and(u8::is_ascii_alphabetic) {
            let name_end = tag_name_end(html, open + 1);
            let name = &html[open + 1..name_end];
            let linked = name.eq_ignore_ascii_case(b"a") || name.eq_ignore_ascii_case(b"area");
            let (end, href) = attributes(html, name_end, linked);
            found.hrefs.extend(href);
            at = end;
            for raw in [&b"script"[..], b"style", b"textarea", b"title", b"xmp"] {
                if name.eq_ignore_ascii_case(raw) {
                    let mut close = b"</".to_vec();
                    close.extend_from_slice(raw);
                    at = find_ignore_case(html, at, &close).unwrap_or(html.len());
                }
            }
        } else {
            at = open + 1;
        }
    }
    found
}

fn tag_name_end(html: &[u8], from: usize) -> usize {
    html[from..]
        .iter()
        .position(|&b| is_space(b) || b == b'/' || b == b'>')
        .map_or(html.len(), |p| from + p)
}

/// Reads the attributes of a start tag from `at` to its `>`. Returns where
/// the tag ends (after `>`, or the end of the input for an unfinished tag)
/// and, when `want_href`, its first `href` (later duplicates are ignored by
/// browsers too). An unfinished tag yields no `href`.
fn attributes(html: &[u8], mut at: usize, want_href: bool) -> (usize, Option<Href>) {
    let mut href = None;
    loop {
        while at < html.len() && (is_space(html[at]) || html[at] == b'/') {
            at += 1;
        }
        let Some(&byte) = html.get(at) else {
            return (html.len(), None);
        };
        if byte == b'>' {
            return (at + 1, href);
        }
        // The name: a first `=` belongs to it, as in the tokenizer.
        let name_start = at;
        at += 1;
        while at < html.len() && !(is_space(html[at]) || matches!(html[at], b'/' | b'>' | b'=')) {
            at += 1;
        }
        let name = &html[name_start..at];
        while at < html.len() && is_space(html[at]) {
            at += 1;
        }
        if html.get(at) != Some(&b'=') {
            continue;
        }
        at += 1;
        while at < html.len() && is_space(html[at]) {
            at += 1;
        }
        let (span, value) = match html.get(at) {
            None => return (html.len(), None),
            Some(b'>') => continue,
            Some(&quote @ (b'"' | b'\'')) => {
                let Some(close) = memchr::memchr(quote, &html[at + 1..]) else {
                    return (html.len(), None);
                };
                let close = at + 1 + close;
                (at..close + 1, at + 1..close)
            }
            Some(_) => {
                let end = html[at..]
                    .iter()
                    .position(|&b| is_space(b) || b == b'>')
                    .map_or(html.len(), |p| at + p);
                (at..end, at..end)
            }
        };
        at = span.end;
        if want_href && href.is_none() && name.eq_ignore_ascii_case(b"href") {
            href = Some(Href { span, value });
        }
    }
}

/// The longest line of `text`, without its line ending.
fn longest_line(text: &[u8]) -> usize {
    text.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line).len())
        .max()
        .unwrap_or(0)
}

/// `header` (a part's header section, ending with its empty line) with every
/// `Content-Transfer-Encoding` field replaced by one saying `encoding`;
/// `None` when the section does not end with an empty line.
fn with_transfer_encoding(header: &[u8], encoding: &str) -> Option<Vec<u8>> {
    let blank = if header.ends_with(b"\r\n") {
        header.len() - 2
    } else if header.ends_with(b"\n") {
        header.len() - 1
    } else {
        return None;
    };
    if blank > 0 && header[blank - 1] != b'\n' {
        return None;
    }
    let mut out = Vec::with_capacity(header.len() + 48);
    let mut skipping = false;
    for line in header[..blank].split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continuation {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            skipping = name
                .trim_ascii()
                .eq_ignore_ascii_case(b"content-transfer-encoding");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(format!("Content-Transfer-Encoding: {encoding}\r\n").as_bytes());
    out.extend_from_slice(&header[blank..]);
    Some(out)
}

/// Quoted-printable decoding (RFC 2045 §6.7): `=XX` and soft line breaks;
/// a malformed `=` is kept as it is.
fn qp_decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    while at < raw.len() {
        let byte = raw[at];
        if byte != b'=' {
            out.push(byte);
            at += 1;
            continue;
        }
        let rest = &raw[at + 1..];
        // A soft line break, perhaps after transport-added whitespace.
        let blanks = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if rest[blanks..].starts_with(b"\r\n") {
            at += 1 + blanks + 2;
        } else if rest[blanks..].starts_with(b"\n") {
            at += 1 + blanks + 1;
        } else if let (Some(high), Some(low)) = (
            rest.first().and_then(|&b| char::from(b).to_digit(16)),
            rest.get(1).and_then(|&b| char::from(b).to_digit(16)),
        ) {
            out.push((high * 16 + low) as u8);
            at += 3;
        } else {
            out.push(b'=');
            at += 1;
        }
    }
    out
}

/// Quoted-printable encoding with CRLF hard line breaks and lines of at most
/// 76 characters.
fn qp_encode(data: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 16);
    let mut line = 0;
    let mut at = 0;
    while at < data.len() {
        let byte = data[at];
        if byte == b'\n' || (byte == b'\r' && data.get(at + 1) == Some(&b'\n')) {
            out.extend_from_slice(b"\r\n");
            line = 0;
            at += if byte == b'\r' { 2 } else { 1 };
            continue;
        }
        let at_line_end = match data.get(at + 1) {
            None | Some(b'\n') => true,
            Some(b'\r') => data.get(at + 2) == Some(&b'\n'),
            _ => false,
        };
        let literal = match byte {
            b' ' | b'\t' => !at_line_end,
            b'=' => false,
            33..=126 => true,
            _ => false,
        };
        let width = if literal { 1 } else { 3 };
        // Room for a soft break's `=` unless this is the line's last char.
        let limit = if at_line_end {
            ENCODED_LINE
        } else {
            ENCODED_LINE - 1
        };
        if line + width > limit {
            out.extend_from_slice(b"=\r\n");
            line = 0;
        }
        if literal {
            out.push(byte);
        } else {
            out.extend_from_slice(&[
                b'=',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]);
        }
        line += width;
        at += 1;
    }
    out
}

/// Base64 decoding of a MIME body: whitespace ignored; `None` when it is not
/// base64.
fn base64_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = raw.iter().copied().filter(|b| !is_space(*b)).collect();
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
    .decode(compact)
    .ok()
}

/// Base64 in lines of 76 characters joined by CRLF (no final line break).
fn base64_encode(data: &[u8]) -> Vec<u8> {
    let encoded = STANDARD.encode(data);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / ENCODED_LINE * 2);
    for (i, chunk) in encoded.as_bytes().chunks(ENCODED_LINE).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(chunk);
    }
    out
}

#[cfg(test)]
mod tests;
