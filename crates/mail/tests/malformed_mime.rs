//! Malformed and hostile messages through every transform the mail path
//! applies to a client's message: the header scan (`headers::summarize`),
//! completing `Message-ID`/`Date` (`missing_headers` + `insert_at`), DKIM
//! signing with an RSA and an Ed25519 key, and returning the message in a
//! DSN (`dsn::build_dsn`).
//!
//! None may panic, and each message must go through in bounded time: every
//! case runs on its own thread and fails the test after 10 s (a hang is a
//! bug too). Where signing succeeds on a message with CRLF line endings (the
//! only kind the SMTP server and the API let through), mail-auth must
//! verify both signatures, with the public keys given to it directly
//! instead of through DNS.

#[path = "malformed_mime/corpus.rs"]
mod corpus;

use carteiro_mail::dkim::{
    DkimAlgorithm, DkimError, DomainSigner, GeneratedKey, SigningKeySpec, generate_key,
};
use carteiro_mail::dsn::{Action, DsnRecipient, DsnReport, build_dsn};
use carteiro_mail::headers::{HeaderSummary, insert_at, missing_headers, summarize};
use carteiro_mail::{Reply, Ret, Status};
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, ResolverCache, Txt};
use mail_parser::{MessageParser, MimeHeaders};
use proptest::prelude::*;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const DOMAIN: &str = "sender.test";
const RSA_SELECTOR: &str = "crt202611r";
const ED_SELECTOR: &str = "crt202611e";
/// What every message gets first on the real path (smtp-server's
/// `Received:` field, or the API's).
const RECEIVED: &[u8] = b"Received: from client.test ([127.0.0.1])\r\n\tby relay.test (Carteiro) with ESMTPS id 01JNQ3ZP8F5R6T7V8W9X0Y1Z2A;\r\n\tTue, 4 Mar 2025 10:00:00 +0000\r\n";
/// The longest one case may take in a debug build.
const CASE_DEADLINE: Duration = Duration::from_secs(10);

/// One key of each kind per test binary: RSA generation is slow.
fn keys() -> &'static (GeneratedKey, GeneratedKey) {
    static KEYS: OnceLock<(GeneratedKey, GeneratedKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            generate_key(DkimAlgorithm::Rsa).expect("rsa key"),
            generate_key(DkimAlgorithm::Ed25519).expect("ed25519 key"),
        )
    })
}

fn signer() -> &'static DomainSigner {
    static SIGNER: OnceLock<DomainSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let (rsa, ed) = keys();
        DomainSigner::new(
            DOMAIN,
            &[
                SigningKeySpec {
                    selector: RSA_SELECTOR,
                    algorithm: DkimAlgorithm::Rsa,
                    private_key: &rsa.private_key,
                },
                SigningKeySpec {
                    selector: ED_SELECTOR,
                    algorithm: DkimAlgorithm::Ed25519,
                    private_key: &ed.private_key,
                },
            ],
        )
        .expect("signer")
    })
}

/// mail-auth's TXT cache holding our two key records, so the verifier never
/// queries DNS.
struct TxtCache(HashMap<Box<str>, Txt>);

impl ResolverCache<Box<str>, Txt> for TxtCache {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get(name).cloned()
    }

    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
}

/// Each signature's result per mail-auth, or `None` when mail-auth cannot
/// read the message at all.
fn verify(message: &[u8]) -> Option<Vec<DkimResult>> {
    let (rsa, ed) = keys();
    let records = [
        (
            RSA_SELECTOR,
            format!("v=DKIM1; k=rsa; p={}", rsa.public_key),
        ),
        (
            ED_SELECTOR,
            format!("v=DKIM1; k=ed25519; p={}", ed.public_key),
        ),
    ];
    let cache = TxtCache(
        records
            .iter()
            .map(|(selector, record)| {
                let key = DomainKey::parse(record.as_bytes()).expect("record parses");
                let name = format!("{selector}._domainkey.{DOMAIN}.");
                (name.into_boxed_str(), Txt::from(key))
            })
            .collect(),
    );
    // No name servers: a lookup that missed the cache fails, never leaks.
    let authenticator = MessageAuthenticator::new(
        ResolverConfig::from_name_servers(Vec::new()),
        ResolverOpts::default(),
    )
    .expect("authenticator");
    let message = AuthenticatedMessage::parse(message)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    Some(runtime.block_on(async {
        let params = mail_auth::Parameters::new(&message).with_txt_cache(&cache);
        authenticator
            .verify_dkim(params)
            .await
            .iter()
            .map(|output| output.result().clone())
            .collect()
    }))
}

/// Whether every CR is followed by LF and every LF preceded by CR.
fn crlf_only(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(at, &b)| match b {
        b'\r' => bytes.get(at + 1) == Some(&b'\n'),
        b'\n' => at > 0 && bytes[at - 1] == b'\r',
        _ => true,
    })
}

/// What the pipeline did with one message, for the summary line.
#[derive(Debug)]
enum Signed {
    /// No `From:` field (as the signer reads the header): not signed.
    NoFrom,
    /// Signed and verified by mail-auth.
    Verified,
    /// Signed; not verified because the message has bare CR or LF line
    /// endings, which no path lets reach the signer.
    Unchecked,
}

/// The summary's own promises.
fn check_summary(message: &[u8]) -> Result<HeaderSummary, String> {
    let summary = summarize(message);
    if summary.header_end > message.len() {
        return Err(format!("header_end {} past the end", summary.header_end));
    }
    if let Some(from) = &summary.from {
        if summary.from_count == 0 || summary.from_domain.is_none() {
            return Err(format!("from {from:?} without a count or domain"));
        }
        if from.contains(['\r', '\n']) {
            return Err(format!("line break in from {from:?}"));
        }
    }
    Ok(summary)
}

/// Runs `message` through the whole path, as crates/carteiro/src/sending.rs
/// does, and then through the DSN builder. `Err` names a broken promise.
fn pipeline(message: &[u8]) -> Result<Signed, String> {
    // The client's bytes alone, as any caller may pass them.
    check_summary(message)?;

    let mut body = RECEIVED.to_vec();
    body.extend_from_slice(message);
    let summary = check_summary(&body)?;
    let now = OffsetDateTime::from_unix_timestamp(1_741_082_400).expect("time");
    let missing = missing_headers(&summary, "01JNQ3ZP8F5R6T7V8W9X0Y1Z2A", "relay.test", now);
    let completed = insert_at(
        &body,
        RECEIVED.len().min(summary.header_end),
        &[missing.as_bytes()],
    );
    let after = check_summary(&completed)?;
    if after.message_id.is_none() || !after.has_date {
        return Err("Message-ID or Date still missing after completion".into());
    }
    if (&after.from, after.from_count, &after.subject)
        != (&summary.from, summary.from_count, &summary.subject)
    {
        return Err("completing the header changed what it says".into());
    }

    let signed = match signer().sign(&completed) {
        Ok(signatures) => {
            if !signatures.is_ascii() || !crlf_only(&signatures) {
                return Err("signature fields are not ASCII with CRLF".into());
            }
            let mut signed = signatures;
            signed.extend_from_slice(&completed);
            let results = verify(&signed);
            if crlf_only(&completed) {
                match results {
                    Some(results)
                        if results.len() == 2 && results.iter().all(|r| *r == DkimResult::Pass) =>
                    {
                        Signed::Verified
                    }
                    other => return Err(format!("mail-auth does not verify: {other:?}")),
                }
            } else {
                Signed::Unchecked
            }
        }
        Err(DkimError::NoFrom) => Signed::NoFrom,
        Err(other) => return Err(format!("signing failed: {other}")),
    };

    for ret in [Ret::Full, Ret::Headers] {
        check_dsn(&completed, ret)?;
    }
    Ok(signed)
}

/// Builds a DSN returning `original` and checks its form.
fn check_dsn(original: &[u8], ret: Ret) -> Result<(), String> {
    let recipients = [DsnRecipient {
        address: "bob@rcpt.test".into(),
        orcpt: None,
        action: Action::Failed,
        status: Status(5, 1, 1),
        diagnostic: Some(Reply::new(550, Some(Status(5, 1, 1)), "no such user")),
        remote_mta: Some("mx.rcpt.test".into()),
        last_attempt: None,
        will_retry_until: None,
    }];
    let report = DsnReport {
        reporting_mta: "relay.test",
        postmaster: "MAILER-DAEMON@relay.test",
        to: "alice@sender.test",
        envid: None,
        arrival_date: OffsetDateTime::from_unix_timestamp(1_741_082_400).expect("time"),
        recipients: &recipients,
        ret,
        original,
        max_original_size: 10 * 1024 * 1024,
        message_id: "<dsn-1@relay.test>",
    };
    let dsn = build_dsn(&report);
    if !dsn.ends_with(b"\r\n") || !crlf_only(&dsn) {
        return Err(format!("{ret:?} DSN has bare line endings"));
    }
    let parsed = MessageParser::default()
        .parse(&dsn)
        .ok_or_else(|| format!("{ret:?} DSN does not parse"))?;
    let report_type = parsed
        .content_type()
        .map(|ct| (ct.ctype(), ct.subtype().unwrap_or("")));
    if report_type != Some(("multipart", "report")) {
        return Err(format!("{ret:?} DSN is a {report_type:?}"));
    }
    Ok(())
}

/// Runs the pipeline on its own thread (with the default 2 MiB stack, like
/// the blocking pool that signs); `Err` on a panic, a broken promise or
/// the deadline.
fn run_bounded(message: Vec<u8>) -> Result<(Signed, Duration), String> {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let started = Instant::now();
        let outcome = pipeline(&message);
        let _ = tx.send(outcome.map(|signed| (signed, started.elapsed())));
    });
    match rx.recv_timeout(CASE_DEADLINE) {
        Ok(outcome) => {
            let _ = worker.join();
            outcome
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // The thread is left running: the test fails anyway.
            Err(format!("took more than {CASE_DEADLINE:?}"))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => Err(format!(
                "panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
            )),
            Ok(()) => Err("the worker ended without an answer".into()),
        },
    }
}

fn run_corpus(cases: Vec<corpus::Case>) {
    let mut failures = Vec::new();
    for case in cases {
        let size = case.message.len();
        match run_bounded(case.message) {
            Ok((signed, took)) => {
                eprintln!("{:<50} {size:>9} bytes  {signed:?} in {took:?}", case.name);
            }
            Err(reason) => {
                eprintln!("{:<50} {size:>9} bytes  FAILED: {reason}", case.name);
                failures.push(format!("{}: {reason}", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn generated_corpus_goes_through_without_panics_or_hangs() {
    let cases = corpus::generated();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    run_corpus(cases);
}

#[test]
fn file_corpus_goes_through_without_panics_or_hangs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/malformed");
    let cases = corpus::from_files(&dir);
    assert!(!cases.is_empty());
    run_corpus(cases);
}

/// An ordinary message, the seed of the mutations.
const VALID: &[u8] = b"From: Alice <alice@sender.test>\r\n\
To: Bob <bob@rcpt.test>, carol@rcpt.test\r\n\
Subject: =?utf-8?q?quarterly_n=C3=BAmbers?=\r\n\
Date: Tue, 04 Mar 2025 10:00:00 +0000\r\n\
Message-ID: <m1@sender.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Hello Bob, the n=C3=BAmbers are attached.\r\n\
--outer\r\n\
Content-Type: application/octet-stream; name=\"q.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECAwQFBgcICQ==\r\n\
--outer--\r\n";

#[derive(Clone, Debug)]
enum Mutation {
    Truncate(usize),
    Insert(usize, Vec<u8>),
    DuplicateLine(usize),
    DeleteLine(usize),
    SwapLines(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..16),
                proptest::sample::select(vec![
                    b"\r\n".to_vec(),
                    b"\n".to_vec(),
                    b"\r".to_vec(),
                    b"\r\n\r\n".to_vec(),
                    b":".to_vec(),
                    b"\r\n ".to_vec(),
                    b"(".to_vec(),
                    b"\"".to_vec(),
                    b"<".to_vec(),
                    b"=?".to_vec(),
                    b"\0".to_vec(),
                    b"From: x@y.test\r\n".to_vec(),
                ]),
            ]
        )
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::DeleteLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn apply(message: &mut Vec<u8>, mutation: &Mutation) {
    let mut lines: Vec<Vec<u8>> = message
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    let n = lines.len().max(1);
    match mutation {
        Mutation::Truncate(at) => message.truncate(at % (message.len() + 1)),
        Mutation::Insert(at, bytes) => {
            let at = at % (message.len() + 1);
            message.splice(at..at, bytes.iter().copied());
        }
        Mutation::DuplicateLine(i) if !lines.is_empty() => {
            let line = lines[i % n].clone();
            lines.insert(i % n, line);
            *message = lines.concat();
        }
        Mutation::DeleteLine(i) if !lines.is_empty() => {
            lines.remove(i % n);
            *message = lines.concat();
        }
        Mutation::SwapLines(a, b) if !lines.is_empty() => {
            lines.swap(a % n, b % n);
            *message = lines.concat();
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn mutated_messages_go_through(mutations in proptest::collection::vec(mutation(), 1..8)) {
        let mut message = VALID.to_vec();
        for mutation in &mutations {
            apply(&mut message, mutation);
        }
        let outcome = run_bounded(message.clone());
        prop_assert!(
            outcome.is_ok(),
            "{:?} on {:?}",
            outcome.err(),
            String::from_utf8_lossy(&message)
        );
    }
}

/// The returned part of a DSN: its third MIME part's raw bytes.
fn returned_part(original: &[u8], ret: Ret, max_original_size: usize) -> Vec<u8> {
    let recipients = [DsnRecipient {
        address: "bob@rcpt.test".into(),
        orcpt: None,
        action: Action::Failed,
        status: Status(5, 1, 1),
        diagnostic: None,
        remote_mta: None,
        last_attempt: None,
        will_retry_until: None,
    }];
    let dsn = build_dsn(&DsnReport {
        reporting_mta: "relay.test",
        postmaster: "MAILER-DAEMON@relay.test",
        to: "alice@sender.test",
        envid: None,
        arrival_date: OffsetDateTime::from_unix_timestamp(1_741_082_400).expect("time"),
        recipients: &recipients,
        ret,
        original,
        max_original_size,
        message_id: "<dsn-1@relay.test>",
    });
    let parsed = MessageParser::default().parse(&dsn).expect("DSN parses");
    let part = parsed.part(3).expect("third part");
    dsn[part.raw_body_offset() as usize..part.raw_end_offset() as usize].to_vec()
}

#[test]
fn ret_hdrs_never_returns_the_body() {
    for (name, original) in [
        (
            "body after a line that is not a header field",
            &b"From: alice@sender.test\r\nSubject: x\r\nsecret body line\r\n\r\nmore\r\n"[..],
        ),
        (
            "no header section at all",
            b"secret body line\r\nsecond secret line\r\n",
        ),
    ] {
        for (ret, limit) in [(Ret::Headers, 1 << 20), (Ret::Full, 10)] {
            let part = returned_part(original, ret, limit);
            assert!(
                !String::from_utf8_lossy(&part).contains("secret"),
                "{name}, {ret:?}: the body came back: {:?}",
                String::from_utf8_lossy(&part)
            );
        }
    }
}
