//! The clients against the real scanners `scripts/scanners` starts (their
//! addresses in CARTEIRO_TEST_CLAMD and CARTEIRO_TEST_RSPAMD; without them
//! these tests say so and pass, unless CARTEIRO_TEST_SCANNERS=1 asks for
//! them), and the parsing of answers on its own.

use super::*;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// The EICAR test string, which every anti-virus reports (and the test
/// signature of `scripts/scanners` matches).
const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// rspamd's test string for spam.
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
const SIGNATURE: &str = "Carteiro.Test.EICAR.UNOFFICIAL";

/// A scanner's address from `var`; `None` (said on stderr) when not given
/// and not required.
fn peer(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(addr) if !addr.is_empty() => Some(addr),
        _ if std::env::var("CARTEIRO_TEST_SCANNERS").as_deref() == Ok("1") => {
            panic!("{var} is not set: scripts/test starts the scanners (scripts/scanners)")
        }
        _ => {
            eprintln!("{var} not set: skipped (scripts/test starts the scanners)");
            None
        }
    }
}

/// Waits (at most two minutes) until `ready` succeeds: the scanners start
/// with the test run and take seconds to answer.
async fn wait_until<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !ready().await {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what} did not answer within two minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn clamd() -> Option<Clamd> {
    let clamd = Clamd::new(ClamdAddr::parse(&peer("CARTEIRO_TEST_CLAMD")?));
    wait_until("clamd", || async { clamd.ping().await.is_ok() }).await;
    Some(clamd)
}

async fn rspamd() -> Option<Rspamd> {
    let base = peer("CARTEIRO_TEST_RSPAMD")?;
    let ping = format!("{base}/ping");
    wait_until("rspamd", || async {
        reqwest::get(&ping)
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    Some(Rspamd::new(&base))
}

fn message(body: &str) -> Vec<u8> {
    format!(
        "From: orders@shop.test\r\nTo: alice@dest.test\r\nSubject: Your order\r\n\
         Message-ID: <1@shop.test>\r\nDate: Sun, 06 Dec 2026 05:00:00 +0000\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// A multipart message with `content` attached as `name`, base64-encoded.
fn with_attachment(name: &str, content_type: &str, content: &[u8]) -> Vec<u8> {
    use std::fmt::Write;
    let mut encoded = String::new();
    for chunk in content.chunks(57) {
        let _ = writeln!(encoded, "{}\r", base64(chunk));
    }
    format!(
        "From: orders@shop.test\r\nTo: alice@dest.test\r\nSubject: Invoice\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nYour invoice is attached.\r\n\
         --b1\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{encoded}--b1--\r\n"
    )
    .into_bytes()
}

fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A zip archive holding `content` as `name`, stored (not compressed).
fn stored_zip(name: &str, content: &[u8]) -> Vec<u8> {
    let crc = crc32fast::hash(content);
    let len = u32::try_from(content.len()).expect("small");
    let name_len = u16::try_from(name.len()).expect("short");
    let mut zip = Vec::new();
    let local = |zip: &mut Vec<u8>| {
        zip.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        zip.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, stored, time, date
        zip.extend_from_slice(&crc.to_le_bytes());
        zip.extend_from_slice(&len.to_le_bytes());
        zip.extend_from_slice(&len.to_le_bytes());
        zip.extend_from_slice(&name_len.to_le_bytes());
        zip.extend_from_slice(&0u16.to_le_bytes());
        zip.extend_from_slice(name.as_bytes());
    };
    local(&mut zip);
    zip.extend_from_slice(content);
    let directory_at = u32::try_from(zip.len()).expect("small");
    zip.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    zip.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // made by, needed, flags, stored, time, date
    zip.extend_from_slice(&crc.to_le_bytes());
    zip.extend_from_slice(&len.to_le_bytes());
    zip.extend_from_slice(&len.to_le_bytes());
    zip.extend_from_slice(&name_len.to_le_bytes());
    zip.extend_from_slice(&[0; 12]); // extra, comment, disk, attributes (2 + 4)
    zip.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    zip.extend_from_slice(name.as_bytes());
    let directory_len = u32::try_from(zip.len()).expect("small") - directory_at;
    zip.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    zip.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    zip.extend_from_slice(&directory_len.to_le_bytes());
    zip.extend_from_slice(&directory_at.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    zip
}

#[tokio::test]
async fn clamd_finds_eicar_inline_and_in_attachments_and_passes_clean_mail() {
    let Some(clamd) = clamd().await else { return };
    assert_eq!(
        clamd.scan(&message("Hello, your order shipped.")).await,
        Ok(VirusScan::Clean)
    );
    let found = VirusScan::Found(SIGNATURE.to_owned());
    let inline = message(std::str::from_utf8(EICAR).expect("ascii"));
    assert_eq!(clamd.scan(&inline).await, Ok(found.clone()));
    let text = with_attachment("readme.txt", "text/plain", EICAR);
    assert_eq!(clamd.scan(&text).await, Ok(found.clone()));
    let zip = with_attachment(
        "invoice.zip",
        "application/zip",
        &stored_zip("eicar.com", EICAR),
    );
    assert_eq!(clamd.scan(&zip).await, Ok(found.clone()));
    let harmless_zip = with_attachment("notes.zip", "application/zip", &stored_zip("a.txt", b"hi"));
    assert_eq!(clamd.scan(&harmless_zip).await, Ok(VirusScan::Clean));
}

#[tokio::test]
async fn clamd_sessions_are_reused_and_concurrent_scans_each_get_one() {
    let Some(clamd) = clamd().await else { return };
    for _ in 0..5 {
        assert_eq!(
            clamd.scan(&message("one at a time")).await,
            Ok(VirusScan::Clean)
        );
    }
    assert_eq!(
        clamd.kept_sessions(),
        1,
        "sequential scans reuse one session"
    );
    let clamd = std::sync::Arc::new(clamd);
    let scans: Vec<_> = (0..8)
        .map(|i| {
            let clamd = std::sync::Arc::clone(&clamd);
            tokio::spawn(async move {
                let body = if i % 2 == 0 {
                    message("clean")
                } else {
                    message(std::str::from_utf8(EICAR).expect("ascii"))
                };
                (i, clamd.scan(&body).await)
            })
        })
        .collect();
    for scan in scans {
        let (i, result) = scan.await.expect("task");
        let expected = if i % 2 == 0 {
            VirusScan::Clean
        } else {
            VirusScan::Found(SIGNATURE.to_owned())
        };
        assert_eq!(result, Ok(expected), "scan {i}");
    }
    assert!(
        clamd.kept_sessions() >= 2,
        "concurrent scans opened sessions of their own"
    );
}

#[tokio::test]
async fn a_message_over_clamds_stream_limit_is_an_error_not_clean() {
    let Some(clamd) = clamd().await else { return };
    // scripts/scanners sets StreamMaxLength 12M.
    let big = vec![b'a'; 13 * 1024 * 1024];
    match clamd.scan(&big).await {
        Err(ScanError::Failed { detail, .. }) => {
            assert!(detail.contains("size limit"), "{detail}");
        }
        other => panic!("expected clamd's size limit error, got {other:?}"),
    }
    // The broken session was not kept: the next scan works.
    assert_eq!(clamd.scan(&message("after")).await, Ok(VirusScan::Clean));
}

#[tokio::test]
async fn an_unreachable_clamd_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let clamd = Clamd::new(ClamdAddr::parse(&addr.to_string()));
    assert!(matches!(
        clamd.scan(b"x").await,
        Err(ScanError::Unreachable { .. })
    ));
}

#[tokio::test]
async fn rspamd_rejects_gtube_and_tags_clean_mail() {
    let Some(rspamd) = rspamd().await else { return };
    let rcpts = ["alice@dest.test".to_owned()];
    let check = SpamCheck {
        ip: Some("192.0.2.10".parse().expect("ip")),
        helo: Some("client.example"),
        from: "orders@shop.test",
        rcpts: &rcpts,
        user: Some("shop-app"),
        queue_id: "01jd3t5m8q0v9x2k7c4b6n1p3r",
    };
    let spam = rspamd
        .check(Bytes::from(message(GTUBE)), &check)
        .await
        .expect("a report");
    assert_eq!(spam.action, SpamAction::Reject);
    assert!(
        spam.symbols.iter().any(|s| s == "GTUBE"),
        "{:?}",
        spam.symbols
    );
    assert!(spam.score >= spam.required_score, "{spam:?}");

    let clean = rspamd
        .check(Bytes::from(message("Hello, your order shipped.")), &check)
        .await
        .expect("a report");
    assert_eq!(clean.action, SpamAction::NoAction, "{clean:?}");
    assert!(clean.score < clean.required_score);
    let status = clean
        .add_headers
        .iter()
        .find(|(name, _)| name == "X-Spam-Status")
        .map(|(_, value)| value.as_str())
        .expect("milter_headers adds X-Spam-Status");
    assert!(status.starts_with("No, score="), "{status}");
}

#[tokio::test]
async fn an_unreachable_rspamd_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let rspamd = Rspamd::new(&format!("http://{addr}"));
    let result = rspamd
        .check(Bytes::from_static(b"x"), &SpamCheck::default())
        .await;
    assert!(
        matches!(result, Err(ScanError::Unreachable { .. })),
        "{result:?}"
    );
}

#[test]
fn clamd_results_are_read_strictly() {
    use crate::clamd::parse_for_test as parse;
    assert_eq!(parse("stream: OK"), Ok(VirusScan::Clean));
    assert_eq!(
        parse("stream: Win.Test.EICAR_HDB-1 FOUND"),
        Ok(VirusScan::Found("Win.Test.EICAR_HDB-1".to_owned()))
    );
    assert!(matches!(
        parse("INSTREAM size limit exceeded. ERROR"),
        Err(ScanError::Failed { .. })
    ));
    for odd in ["", "stream: ", "stream: FOUND", "OK", "stream: maybe"] {
        assert!(
            matches!(parse(odd), Err(ScanError::Unreadable { .. })),
            "{odd:?}"
        );
    }
}

#[test]
fn rspamd_milter_headers_come_in_every_shape_rspamd_writes() {
    let report = rspamd::parse_answer(
        br#"{"action": "add header", "score": 7.5, "required_score": 15,
             "symbols": {"B": {}, "A": {}},
             "milter": {"add_headers": {
                 "X-Spam": "yes",
                 "X-Spam-Status": {"value": "Yes, score=7.50", "order": -1},
                 "X-Extra": [{"value": "one", "order": 1}, "two"]
             }, "remove_headers": {"X-Spam": 0}}}"#,
    )
    .expect("parses");
    assert_eq!(report.action, SpamAction::AddHeader);
    assert_eq!((report.score, report.required_score), (7.5, 15.0));
    assert_eq!(report.symbols, ["A", "B"]);
    assert_eq!(
        report.add_headers,
        [
            ("X-Spam-Status".to_owned(), "Yes, score=7.50".to_owned()),
            ("X-Extra".to_owned(), "two".to_owned()),
            ("X-Spam".to_owned(), "yes".to_owned()),
            ("X-Extra".to_owned(), "one".to_owned()),
        ]
    );
    assert!(matches!(
        rspamd::parse_answer(b"<html>"),
        Err(ScanError::Unreadable { .. })
    ));
}
