//! The header scan and completion every accepted message goes through, and
//! DKIM signing of what comes out, on arbitrary bytes.
//!
//! As the intake does it (crates/carteiro/src/sending.rs): the message gets
//! our `Received:` field first, is summarized, gets the `Message-ID` and
//! `Date` it lacks inserted where the client's header section starts, and is
//! signed. Checked:
//! * `summarize` never panics, and its summary is consistent (`header_end`
//!   within the message, a `from` always with its domain);
//! * inserting the missing fields gives a message that has both, and whose
//!   other facts (`From`, `Subject`, where the header ends) are unchanged;
//! * signing either fails with `NoFrom` or gives a `DKIM-Signature` field
//!   that is ASCII, CRLF-terminated and unfolds to one header field.

#![no_main]

use carteiro_mail::dkim::{self, DkimAlgorithm, DkimError, DomainSigner, SigningKeySpec};
use carteiro_mail::headers::{insert_at, missing_headers, summarize};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use time::OffsetDateTime;

const RECEIVED: &[u8] = b"Received: from client.test ([127.0.0.1])\r\n\tby relay.test with ESMTP id 01ARZ3NDEKTSV4RRFFQ69G5FAV;\r\n\tTue, 4 Mar 2025 10:00:00 +0000\r\n";

/// One Ed25519 key for the whole run: signing with it is cheap, and what
/// is fuzzed is the header handling around the signature, not the cipher.
fn signer() -> &'static DomainSigner {
    static SIGNER: OnceLock<DomainSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let key = dkim::generate_key(DkimAlgorithm::Ed25519).expect("key");
        DomainSigner::new(
            "sender.test",
            &[SigningKeySpec {
                selector: "fuzz",
                algorithm: DkimAlgorithm::Ed25519,
                private_key: &key.private_key,
            }],
        )
        .expect("signer")
    })
}

fuzz_target!(|data: &[u8]| {
    // The client's bytes alone, as any caller may pass them.
    check_summary(data);

    let mut body = Vec::with_capacity(RECEIVED.len() + data.len());
    body.extend_from_slice(RECEIVED);
    body.extend_from_slice(data);
    let summary = check_summary(&body);
    assert!(
        summary.header_end >= RECEIVED.len(),
        "our Received field is a header"
    );

    let now = OffsetDateTime::from_unix_timestamp(1_741_082_400).expect("time");
    let missing = missing_headers(&summary, "01ARZ3NDEKTSV4RRFFQ69G5FAV", "relay.test", now);
    let completed = insert_at(
        &body,
        RECEIVED.len().min(summary.header_end),
        &[missing.as_bytes()],
    );
    assert_eq!(completed.len(), body.len() + missing.len());
    let after = check_summary(&completed);
    assert!(after.message_id.is_some(), "Message-ID still missing");
    assert!(after.has_date, "Date still missing");
    assert_eq!(after.header_end, summary.header_end + missing.len());
    assert_eq!(after.from, summary.from);
    assert_eq!(after.from_count, summary.from_count);
    assert_eq!(after.subject, summary.subject);
    assert_eq!(after.has_mime_version, summary.has_mime_version);
    if summary.message_id.is_some() {
        assert_eq!(after.message_id, summary.message_id);
    }

    match signer().sign(&completed) {
        Ok(signature) => {
            assert!(signature.is_ascii());
            assert!(signature.starts_with(b"DKIM-Signature:"));
            assert!(signature.ends_with(b"\r\n"));
            // One field: every line after the first is a continuation.
            let lines: Vec<&[u8]> = signature[..signature.len() - 2]
                .split(|&b| b == b'\n')
                .collect();
            for line in &lines[1..] {
                assert!(
                    line.starts_with(b" ") || line.starts_with(b"\t"),
                    "{signature:?}"
                );
            }
            for line in &lines[..lines.len() - 1] {
                assert!(line.ends_with(b"\r"), "bare LF in {signature:?}");
            }
        }
        Err(DkimError::NoFrom) => {}
        Err(other) => panic!("signing failed: {other}"),
    }
});

fn check_summary(message: &[u8]) -> carteiro_mail::headers::HeaderSummary {
    let summary = summarize(message);
    assert!(summary.header_end <= message.len());
    if let Some(from) = &summary.from {
        assert!(summary.from_count >= 1);
        assert!(from.contains('@'));
        assert!(
            summary.from_domain.is_some(),
            "from {from:?} without a domain"
        );
        assert!(
            !from.contains(['\r', '\n']),
            "a line break in the From address {from:?}"
        );
    }
    summary
}
