//! Writing client commands into the reusable output buffer, and laying out
//! the message body for DATA (dot-stuffed) or BDAT (as is) without copying
//! it.
//!
//! Pure functions over buffers, no I/O; which extensions to use is decided
//! by the caller from the server's EHLO.

use std::io::{IoSlice, Write};

use carteiro_mail::{BodyType, Envelope, Recipient, Ret, format_path};

/// What of the envelope the server lets us say in `MAIL FROM`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct MailParams {
    /// `SIZE=` with this value (SIZE offered).
    pub size: Option<usize>,
    /// `BODY=8BITMIME` / `BODY=BINARYMIME` (offered, and BDAT used for binary).
    pub body: Option<BodyType>,
    /// `SMTPUTF8` (offered and needed).
    pub smtputf8: bool,
    /// `RET=`, `ENVID=`, `NOTIFY=`, `ORCPT=` (DSN offered).
    pub dsn: bool,
}

/// `MAIL FROM:<sender> [params]\r\n`.
pub(super) fn mail_from(out: &mut Vec<u8>, sender: &str, envelope: &Envelope, params: MailParams) {
    out.extend_from_slice(b"MAIL FROM:<");
    out.extend_from_slice(format_path(sender).as_bytes());
    out.push(b'>');
    if let Some(size) = params.size {
        // Writing into a Vec cannot fail.
        let _ = write!(out, " SIZE={size}");
    }
    match params.body {
        Some(BodyType::EightBitMime) => out.extend_from_slice(b" BODY=8BITMIME"),
        Some(BodyType::BinaryMime) => out.extend_from_slice(b" BODY=BINARYMIME"),
        Some(BodyType::SevenBit) | None => {}
    }
    if params.smtputf8 {
        out.extend_from_slice(b" SMTPUTF8");
    }
    if params.dsn {
        match envelope.ret {
            Some(Ret::Full) => out.extend_from_slice(b" RET=FULL"),
            Some(Ret::Headers) => out.extend_from_slice(b" RET=HDRS"),
            None => {}
        }
        if let Some(envid) = &envelope.envid {
            out.extend_from_slice(b" ENVID=");
            push_xtext(out, envid);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// `RCPT TO:<address> [NOTIFY= ORCPT=]\r\n`.
pub(super) fn rcpt_to(out: &mut Vec<u8>, recipient: &Recipient, dsn: bool) {
    out.extend_from_slice(b"RCPT TO:<");
    out.extend_from_slice(format_path(&recipient.address).as_bytes());
    out.push(b'>');
    if dsn {
        if recipient.notify.is_set() {
            out.extend_from_slice(b" NOTIFY=");
            out.extend_from_slice(recipient.notify.to_param().as_bytes());
        }
        if let Some(orcpt) = &recipient.orcpt {
            // Stored decoded as "addr-type;address"; only the address part
            // is xtext (RFC 3461 §4.2).
            let (kind, address) = orcpt.split_once(';').unwrap_or(("rfc822", orcpt));
            out.extend_from_slice(b" ORCPT=");
            out.extend_from_slice(kind.as_bytes());
            out.push(b';');
            push_xtext(out, address);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// `BDAT <len> LAST\r\n`.
pub(super) fn bdat_last(out: &mut Vec<u8>, len: usize) {
    let _ = write!(out, "BDAT {len} LAST\r\n");
}

/// RFC 3461 §4: bytes outside `!`..`~`, and `+` and `=`, become `+XX`.
pub(super) fn push_xtext(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'+', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// The CRLF to add when a message does not end with one (a line must be
/// complete before the terminating dot, and BDAT sends the same bytes).
pub(super) fn missing_crlf(message: &[u8]) -> &'static [u8] {
    if message.ends_with(b"\r\n") {
        b""
    } else {
        b"\r\n"
    }
}

/// The length on the wire of a message sent with BDAT.
pub(super) fn bdat_len(message: &[u8]) -> usize {
    message.len() + missing_crlf(message).len()
}

/// The slices to write for a message: `prefix` (commands sent in the same
/// write), the message, a missing final CRLF and, for DATA, the dot-stuffing
/// and the terminating `.\r\n`. The message is never copied: dot-stuffing
/// inserts a one-byte `"."` slice before each line that starts with a dot.
pub(super) fn body_parts<'a>(prefix: &'a [u8], message: &'a [u8], data: bool) -> Vec<IoSlice<'a>> {
    let mut parts = Vec::with_capacity(4);
    if !prefix.is_empty() {
        parts.push(IoSlice::new(prefix));
    }
    let mut start = 0;
    if data {
        if message.first() == Some(&b'.') {
            parts.push(IoSlice::new(b"."));
        }
        for newline in memchr::memmem::find_iter(message, b"\n.") {
            let dot = newline + 1;
            parts.push(IoSlice::new(&message[start..dot]));
            parts.push(IoSlice::new(b"."));
            start = dot;
        }
    }
    parts.push(IoSlice::new(&message[start..]));
    parts.push(IoSlice::new(missing_crlf(message)));
    if data {
        parts.push(IoSlice::new(b".\r\n"));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use carteiro_mail::Notify;

    fn flatten(parts: &[IoSlice<'_>]) -> Vec<u8> {
        parts.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn mail_from_with_all_params() {
        let mut envelope = Envelope::new("a b@x.test");
        envelope.ret = Some(Ret::Headers);
        envelope.envid = Some("id+1=2 é".into());
        let mut out = Vec::new();
        let params = MailParams {
            size: Some(1234),
            body: Some(BodyType::EightBitMime),
            smtputf8: true,
            dsn: true,
        };
        mail_from(&mut out, &envelope.sender, &envelope, params);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "MAIL FROM:<\"a b\"@x.test> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+3D2+20+C3+A9\r\n"
        );
        out.clear();
        mail_from(&mut out, "", &Envelope::new(""), MailParams::default());
        assert_eq!(out, b"MAIL FROM:<>\r\n");
    }

    #[test]
    fn rcpt_to_with_and_without_dsn() {
        let mut recipient = Recipient::new("u@y.test");
        recipient.notify = Notify(Notify::SUCCESS | Notify::FAILURE);
        recipient.orcpt = Some("rfc822;u+x@y.test".into());
        let mut out = Vec::new();
        rcpt_to(&mut out, &recipient, true);
        assert_eq!(
            out,
            b"RCPT TO:<u@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u+2Bx@y.test\r\n"
        );
        out.clear();
        rcpt_to(&mut out, &recipient, false);
        assert_eq!(out, b"RCPT TO:<u@y.test>\r\n");
    }

    #[test]
    fn data_body_is_dot_stuffed_without_copy() {
        let message = b".first\r\nplain\r\n.second\r\n..third\r\n";
        let parts = body_parts(b"", message, true);
        assert_eq!(
            flatten(&parts),
            b"..first\r\nplain\r\n..second\r\n...third\r\n.\r\n"
        );
        let plain = b"Subject: x\r\n\r\nbody\r\n";
        let parts = body_parts(b"DATA\r\n", plain, true);
        assert_eq!(parts.len(), 4);
        assert_eq!(flatten(&parts), b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
    }

    #[test]
    fn missing_final_crlf_is_added() {
        assert_eq!(
            flatten(&body_parts(b"", b"a\r\nb", true)),
            b"a\r\nb\r\n.\r\n"
        );
        assert_eq!(flatten(&body_parts(b"", b"", true)), b"\r\n.\r\n");
        assert_eq!(flatten(&body_parts(b"B\r\n", b".x", false)), b"B\r\n.x\r\n");
        assert_eq!(bdat_len(b".x"), 4);
    }
}
