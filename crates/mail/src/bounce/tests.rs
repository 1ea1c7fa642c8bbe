//! The fixture corpus (`testdata/bounces/*.eml` against `expected.json`),
//! the classifier table for synchronous replies, and properties: no input
//! makes the parser panic.

use super::classify::{find_code, find_status};
use super::*;
use crate::dsn::{Action, DsnRecipient, DsnReport, build_dsn};
use crate::envelope::Ret;
use crate::reply::Reply;
use proptest::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use time::macros::datetime;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bounces")
}

/// Every fixture, by file name.
static FIXTURES: LazyLock<BTreeMap<String, Vec<u8>>> = LazyLock::new(|| {
    let mut fixtures = BTreeMap::new();
    for entry in std::fs::read_dir(corpus_dir()).expect("read testdata/bounces") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|ext| ext == "eml") {
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            fixtures.insert(name, std::fs::read(&path).expect("read fixture"));
        }
    }
    fixtures
});

fn expected_table() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(corpus_dir().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json is valid JSON")
}

/// Whether `actual` has every key and value `expected` names: objects may
/// carry more keys than the table lists, arrays must match in length.
fn subset_mismatch(path: &str, expected: &Value, actual: &Value) -> Option<String> {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => {
            expected.iter().find_map(|(key, value)| {
                let here = format!("{path}.{key}");
                match actual.get(key) {
                    Some(actual) => subset_mismatch(&here, value, actual),
                    None => Some(format!("{here}: missing, expected {value}")),
                }
            })
        }
        (Value::Array(expected), Value::Array(actual)) => {
            if expected.len() != actual.len() {
                return Some(format!(
                    "{path}: {} entries, expected {}: {}",
                    actual.len(),
                    expected.len(),
                    Value::Array(actual.clone())
                ));
            }
            expected
                .iter()
                .zip(actual)
                .enumerate()
                .find_map(|(at, (expected, actual))| {
                    subset_mismatch(&format!("{path}[{at}]"), expected, actual)
                })
        }
        _ if expected == actual => None,
        _ => Some(format!("{path}: got {actual}, expected {expected}")),
    }
}

/// Parses one fixture and compares the result with its table entry
/// (`null`: not a bounce). The error names the file.
fn check(name: &str, expected: &Value) -> Result<(), String> {
    let bytes = FIXTURES
        .get(name)
        .ok_or_else(|| format!("{name}: in expected.json but no such fixture"))?;
    let actual = serde_json::to_value(parse_report(bytes)).map_err(|e| format!("{name}: {e}"))?;
    match subset_mismatch("", expected, &actual) {
        None => Ok(()),
        Some(mismatch) => Err(format!("{name}: {mismatch}\n  actual: {actual}")),
    }
}

#[test]
fn fixture_corpus_matches_expected_table() {
    let table = expected_table();
    let mut failures: Vec<String> = table
        .iter()
        .filter_map(|(name, expected)| check(name, expected).err())
        .collect();
    failures.extend(
        FIXTURES
            .keys()
            .filter(|name| !table.contains_key(*name))
            .map(|name| format!("{name}: fixture without an entry in expected.json")),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn corpus_is_broad() {
    let table = expected_table();
    assert!(FIXTURES.len() >= 45, "only {} fixtures", FIXTURES.len());
    let mut per_class: BTreeMap<String, usize> = BTreeMap::new();
    let mut kinds = BTreeSet::new();
    for entry in table.values() {
        match entry {
            Value::Null => {
                kinds.insert("none".to_string());
            }
            entry => {
                kinds.insert(entry["kind"].as_str().unwrap_or("?").to_string());
                for recipient in entry["recipients"].as_array().into_iter().flatten() {
                    let class = recipient["class"].as_str().unwrap_or("?").to_string();
                    *per_class.entry(class).or_default() += 1;
                }
            }
        }
    }
    for class in BounceClass::ALL {
        let count = per_class.get(class.as_str()).copied().unwrap_or(0);
        assert!(
            count >= 2,
            "class {class} appears {count} times in the corpus"
        );
    }
    for kind in ["dsn", "non_standard", "complaint", "none"] {
        assert!(kinds.contains(kind), "no fixture of kind {kind}");
    }
}

#[test]
fn fixtures_use_crlf_line_endings() {
    for (name, bytes) in FIXTURES.iter() {
        let bare_lf = bytes
            .iter()
            .enumerate()
            .any(|(at, &b)| b == b'\n' && (at == 0 || bytes[at - 1] != b'\r'));
        assert!(!bare_lf, "{name} has a bare LF");
    }
}

#[test]
fn report_serializes_in_snake_case_with_string_statuses() {
    let report = parse_report(&FIXTURES["04-postfix-mixed-failed-delayed.eml"]).expect("a report");
    let json = serde_json::to_value(&report).expect("serializes");
    assert_eq!(json["kind"], "dsn");
    assert_eq!(json["recipients"][0]["status"], "5.1.1");
    assert_eq!(json["recipients"][0]["class"], "unknown_user");
    assert_eq!(json["recipients"][1]["action"], "delayed");
    assert_eq!(json["recipients"][1]["class"], "temporary_failure");
    assert!(
        !report.recipients[1].class.is_hard(),
        "a delayed DSN is never hard"
    );
}

#[test]
fn class_names_match_serde_and_hardness_is_about_the_address() {
    for class in BounceClass::ALL {
        assert_eq!(
            serde_json::to_value(class).expect("serializes"),
            Value::String(class.as_str().to_string())
        );
        assert!(!class.description().is_empty());
    }
    let hard: Vec<_> = BounceClass::ALL
        .into_iter()
        .filter(|c| c.is_hard())
        .collect();
    assert_eq!(
        hard,
        [
            BounceClass::UnknownUser,
            BounceClass::MailboxDisabled,
            BounceClass::DomainNotFound
        ]
    );
}

/// Synchronous failures: what remote servers answer during delivery.
#[test]
fn classifies_synchronous_replies() {
    use BounceClass::*;
    let table: &[(u16, Option<&str>, &str, BounceClass)] = &[
        (
            550,
            Some("5.1.1"),
            "<a@b.test>: Recipient address rejected: User unknown in local recipient table",
            UnknownUser,
        ),
        (
            550,
            None,
            "5.1.1 The email account that you tried to reach does not exist.",
            UnknownUser,
        ),
        (
            550,
            Some("5.1.10"),
            "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
            UnknownUser,
        ),
        (550, None, "No Such User Here", UnknownUser),
        (
            550,
            Some("5.4.1"),
            "Recipient address rejected: Access denied. AS(201806281)",
            UnknownUser,
        ),
        // Unknown user under a 4xx: temporary, never hard.
        (
            450,
            Some("4.1.1"),
            "<a@b.test>: Recipient address rejected: User unknown",
            TemporaryFailure,
        ),
        (421, None, "user unknown, try again", TemporaryFailure),
        (
            452,
            Some("4.2.2"),
            "The email account that you tried to reach is over quota.",
            MailboxFull,
        ),
        (
            552,
            None,
            "Requested mail action aborted: exceeded storage allocation",
            MailboxFull,
        ),
        (
            550,
            Some("5.2.1"),
            "The email account that you tried to reach is disabled.",
            MailboxDisabled,
        ),
        (
            554,
            None,
            "delivery error: dd This user doesn't have a yahoo.com account",
            UnknownUser,
        ),
        (
            554,
            None,
            "30 Sorry, your message to a@aol.test cannot be delivered. This mailbox is disabled (554.30).",
            MailboxDisabled,
        ),
        (
            550,
            Some("5.1.2"),
            "Host or domain name not found",
            DomainNotFound,
        ),
        (
            450,
            Some("4.1.2"),
            "<a@b.test>: Recipient address rejected: Domain not found",
            TemporaryFailure,
        ),
        // The sender's own domain refused: never the recipient's fault.
        (
            553,
            Some("5.1.8"),
            "<b@shop.test>: Sender address rejected: Domain not found",
            SpamBlock,
        ),
        (
            550,
            Some("5.7.1"),
            "Our system has detected that this message is likely unsolicited mail.",
            SpamBlock,
        ),
        (
            554,
            Some("5.7.1"),
            "[CS01] Message rejected due to local policy",
            SpamBlock,
        ),
        (
            554,
            Some("5.7.9"),
            "Message not accepted for policy reasons.",
            SpamBlock,
        ),
        (
            554,
            None,
            "Your access to this mail system has been rejected due to the sending MTA's poor reputation.",
            SpamBlock,
        ),
        (
            550,
            Some("5.7.606"),
            "Access denied, banned sending IP [192.0.2.1].",
            BlocklistedSender,
        ),
        (
            550,
            Some("5.7.1"),
            "Service unavailable, Client host [192.0.2.1] blocked using Spamhaus.",
            BlocklistedSender,
        ),
        (
            550,
            Some("5.7.1"),
            "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).",
            BlocklistedSender,
        ),
        (
            553,
            Some("5.7.1"),
            "[BL21] Connections will not be accepted from 192.0.2.1, because the ip is in Spamhaus's list",
            BlocklistedSender,
        ),
        (
            554,
            None,
            "Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.1",
            BlocklistedSender,
        ),
        (
            550,
            Some("5.7.26"),
            "This mail has been blocked because the sender is unauthenticated.",
            AuthFailure,
        ),
        (
            550,
            Some("5.7.509"),
            "Access denied, sending domain SHOP.TEST does not pass DMARC verification",
            AuthFailure,
        ),
        (
            550,
            Some("5.7.1"),
            "Email rejected per DMARC policy for shop.test",
            AuthFailure,
        ),
        (550, None, "SPF check failed", AuthFailure),
        (
            421,
            Some("4.7.28"),
            "Gmail has detected an unusual rate of unsolicited mail originating from your DKIM domain",
            RateLimited,
        ),
        (
            421,
            Some("4.7.0"),
            "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints",
            RateLimited,
        ),
        (
            451,
            Some("4.7.650"),
            "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.",
            RateLimited,
        ),
        (421, None, "Too many connections, slow down.", RateLimited),
        (452, Some("4.5.3"), "Too many recipients", RateLimited),
        (
            552,
            Some("5.3.4"),
            "Message size exceeds fixed maximum message size",
            MessageTooLarge,
        ),
        (
            552,
            Some("5.2.3"),
            "Your message exceeded Google's message size limits.",
            MessageTooLarge,
        ),
        (
            554,
            Some("5.7.1"),
            "<a@b.test>: Relay access denied",
            RelayDenied,
        ),
        (
            550,
            Some("5.7.54"),
            "SMTP; Unable to relay recipient in non-accepted domain",
            RelayDenied,
        ),
        (
            451,
            Some("4.7.1"),
            "Greylisted, please try again later",
            TemporaryFailure,
        ),
        (
            421,
            Some("4.4.2"),
            "Timeout - closing connection",
            TemporaryFailure,
        ),
        (
            550,
            Some("4.4.7"),
            "QUEUE.Expired; message expired",
            TemporaryFailure,
        ),
        (554, Some("5.6.0"), "Message contains invalid header", Other),
        (550, None, "Requested action not taken", Other),
    ];
    let mut failures = Vec::new();
    for &(code, status, text, expected) in table {
        let status = status.and_then(Status::parse);
        let reply = Reply::new(code, status, text.to_string());
        let class = classify_reply(&reply);
        if class != expected {
            failures.push(format!("{reply}: {class}, expected {expected}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_hard_class_never_comes_from_sender_side_wording() {
    for text in [
        "550 5.1.1 user unknown; blocked using zen.spamhaus.org",
        "550 5.1.1 no such user (spam suspected)",
        "550 5.2.1 mailbox disabled by policy",
    ] {
        let class = classify(None, None, text);
        assert!(!class.is_hard(), "{text}: {class}");
    }
}

#[test]
fn finds_codes_and_statuses_in_text_but_not_in_addresses() {
    assert_eq!(find_code("550-5.7.1 [192.0.2.10] blocked"), Some(550));
    assert_eq!(
        find_code("host mx[192.0.2.250]:25 said: 452 4.2.2 full"),
        Some(452)
    );
    assert_eq!(find_code("#550 5.1.1 resolver"), Some(550));
    assert_eq!(find_code("error_code :550, error_code :5.1.1"), Some(550));
    assert_eq!(find_code("user5500@b.test at 2025"), None);
    assert_eq!(find_status("4.16.55.1; see 4.7.0"), Some(Status(4, 7, 0)));
    assert_eq!(find_status("no mailbox (#5.1.1)"), Some(Status(5, 1, 1)));
    assert_eq!(find_status("from [5.9.100.23] 554.30"), None);
    assert_eq!(
        find_status("550-5.7.26 unauthenticated"),
        Some(Status(5, 7, 26))
    );
}

#[test]
fn reads_dsns_carteiro_builds_itself() {
    let original = b"From: Shop <news@shop.test>\r\n\
To: alice@example.net\r\n\
Subject: hello\r\n\
Message-ID: <m1@relay.carteiro.test>\r\n\
X-Carteiro-Id: 01TESTID\r\n\
\r\n\
Body.\r\n";
    let recipients = [
        DsnRecipient {
            address: "alice@example.net".into(),
            orcpt: Some("rfc822;Alice@example.net".into()),
            action: Action::Failed,
            status: Status(5, 1, 1),
            diagnostic: Some(Reply::new(550, Some(Status(5, 1, 1)), "no such user here")),
            remote_mta: Some("mx.example.net".into()),
            last_attempt: Some(datetime!(2025-03-04 10:15:00 UTC)),
            will_retry_until: None,
        },
        DsnRecipient {
            address: "bob@example.org".into(),
            orcpt: None,
            action: Action::Delayed,
            status: Status(4, 7, 0),
            diagnostic: Some(Reply::new(
                421,
                Some(Status(4, 7, 0)),
                "too many connections",
            )),
            remote_mta: Some("mx.example.org".into()),
            last_attempt: None,
            will_retry_until: Some(datetime!(2025-03-09 10:00:00 UTC)),
        },
    ];
    let dsn = build_dsn(&DsnReport {
        reporting_mta: "relay.carteiro.test",
        postmaster: "MAILER-DAEMON@relay.carteiro.test",
        to: "news@shop.test",
        envid: None,
        arrival_date: datetime!(2025-03-04 10:00:00 UTC),
        recipients: &recipients,
        ret: Ret::Headers,
        original,
        max_original_size: 1_000_000,
        message_id: "<dsn-1@relay.carteiro.test>",
    });
    let report = parse_report(&dsn).expect("our own DSN is a report");
    assert_eq!(report.kind, ReportKind::Dsn);
    assert_eq!(report.reporting_mta.as_deref(), Some("relay.carteiro.test"));
    assert_eq!(report.original_carteiro_id.as_deref(), Some("01TESTID"));
    assert_eq!(
        report.original_message_id.as_deref(),
        Some("<m1@relay.carteiro.test>")
    );
    let summary: Vec<_> = report
        .recipients
        .iter()
        .map(|r| (r.recipient.as_str(), r.action.as_str(), r.status, r.class))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "alice@example.net",
                "failed",
                Some(Status(5, 1, 1)),
                BounceClass::UnknownUser
            ),
            (
                "bob@example.org",
                "delayed",
                Some(Status(4, 7, 0)),
                BounceClass::RateLimited
            ),
        ]
    );
    assert_eq!(
        report.recipients[0].original_recipient.as_deref(),
        Some("Alice@example.net")
    );
    assert_eq!(
        report.recipients[0].diagnostic.as_deref(),
        Some("550 5.1.1 no such user here")
    );
}

#[test]
fn a_report_part_wins_over_an_auto_submitted_header() {
    // DSNs carry `Auto-Submitted: auto-replied` too; only auto-replies
    // without a report part are dropped.
    let report = parse_report(&FIXTURES["01-postfix-unknown-user.eml"]);
    assert!(report.is_some());
    assert!(parse_report(&FIXTURES["59-auto-reply-out-of-office.eml"]).is_none());
}

#[test]
fn empty_and_garbage_input_is_not_a_report() {
    assert!(parse_report(b"").is_none());
    assert!(parse_report(b"\r\n\r\n").is_none());
    assert!(parse_report(b"hello world").is_none());
}

fn fixture_bytes() -> Vec<&'static [u8]> {
    FIXTURES.values().map(Vec::as_slice).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse_report(&bytes);
    }

    #[test]
    fn never_panics_on_truncated_fixtures(pick in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
        let fixtures = fixture_bytes();
        let bytes = fixtures[pick.index(fixtures.len())];
        let _ = parse_report(&bytes[..cut.index(bytes.len() + 1)]);
    }

    #[test]
    fn never_panics_on_mutated_fixtures(
        pick in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..32),
        cut in proptest::option::of((any::<prop::sample::Index>(), any::<prop::sample::Index>())),
    ) {
        let fixtures = fixture_bytes();
        let mut bytes = fixtures[pick.index(fixtures.len())].to_vec();
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        if let Some((start, len)) = cut {
            let start = start.index(bytes.len());
            let end = start + len.index(bytes.len() - start + 1);
            bytes.drain(start..end);
        }
        let _ = parse_report(&bytes);
    }

    #[test]
    fn classify_never_panics(code in proptest::option::of(0u16..1000), text in ".{0,300}") {
        let status = find_status(&text);
        let _ = classify(code, status, &text);
    }
}
