//! Keys made here are verified by two independent implementations:
//! mail-auth's verifier (fed the public keys through its TXT cache, so no DNS
//! is used) and Python's dkimpy, the verifier the acceptance test uses.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, ResolverCache, Txt};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;
use time::macros::datetime;

const DOMAIN: &str = "sender.test";
const RSA_SELECTOR: &str = "crt202611r";
const ED_SELECTOR: &str = "crt202611e";

const MESSAGE: &str = "From: Alice <alice@sender.test>\r\n\
To: Bob <bob@rcpt.test>\r\n\
Subject: quarterly   numbers\r\n\
Date: Tue, 04 Mar 2025 10:00:00 +0000\r\n\
Message-ID: <m1@sender.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
X-Unsigned: not in the list\r\n\
\r\n\
Hello Bob,\r\n\
\r\n\
the numbers are attached.   \r\n";

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

fn signer() -> DomainSigner {
    let (rsa, ed) = keys();
    // Ed25519 given first: the signer must still put RSA first.
    DomainSigner::new(
        DOMAIN,
        &[
            SigningKeySpec {
                selector: ED_SELECTOR,
                algorithm: DkimAlgorithm::Ed25519,
                private_key: &ed.private_key,
            },
            SigningKeySpec {
                selector: RSA_SELECTOR,
                algorithm: DkimAlgorithm::Rsa,
                private_key: &rsa.private_key,
            },
        ],
    )
    .expect("signer")
}

fn dns_records() -> Vec<(String, String)> {
    let (rsa, ed) = keys();
    vec![
        (
            format!("{RSA_SELECTOR}._domainkey.{DOMAIN}"),
            format!("v=DKIM1; k=rsa; p={}", rsa.public_key),
        ),
        (
            format!("{ED_SELECTOR}._domainkey.{DOMAIN}"),
            format!("v=DKIM1; k=ed25519; p={}", ed.public_key),
        ),
    ]
}

fn signed(message: &[u8]) -> Vec<u8> {
    let mut out = signer().sign(message).expect("sign");
    out.extend_from_slice(message);
    out
}

/// mail-auth's TXT cache, filled with our records so the verifier never
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

/// The result of each signature, in header order, per mail-auth.
fn mail_auth_results(message: &[u8]) -> Vec<DkimResult> {
    let cache = TxtCache(
        dns_records()
            .into_iter()
            .map(|(name, value)| {
                let key = DomainKey::parse(value.as_bytes()).expect("record parses");
                (format!("{name}.").into_boxed_str(), Txt::from(key))
            })
            .collect(),
    );
    // No name servers: a lookup that missed the cache would fail, not leak.
    let authenticator = MessageAuthenticator::new(
        ResolverConfig::from_name_servers(Vec::new()),
        ResolverOpts::default(),
    )
    .expect("authenticator");
    let message = AuthenticatedMessage::parse(message).expect("message parses");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let params = mail_auth::Parameters::new(&message).with_txt_cache(&cache);
        authenticator
            .verify_dkim(params)
            .await
            .iter()
            .map(|output| output.result().clone())
            .collect()
    })
}

fn signature_fields(signatures: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(signatures).expect("ascii");
    let mut fields: Vec<String> = Vec::new();
    for line in text.split_inclusive("\r\n") {
        if line.starts_with([' ', '\t']) {
            fields.last_mut().expect("field").push_str(line);
        } else {
            fields.push(line.to_string());
        }
    }
    fields
}

/// The value of `tag` in a signature field, unfolded.
fn tag(field: &str, tag: &str) -> Option<String> {
    let unfolded: String = field
        .split_once(':')
        .expect("field")
        .1
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    unfolded
        .split(';')
        .find_map(|t| t.strip_prefix(&format!("{tag}=")).map(str::to_string))
}

#[test]
fn generated_keys_have_the_published_forms() {
    let (rsa, ed) = keys();
    assert_eq!(rsa.algorithm, DkimAlgorithm::Rsa);
    let spki = STANDARD.decode(&rsa.public_key).expect("base64");
    assert_eq!(spki[0], 0x30, "SubjectPublicKeyInfo is a DER sequence");
    assert!((290..=300).contains(&spki.len()), "{}", spki.len());
    assert!(rsa.public_key.len() > 255);
    assert_eq!(ed.algorithm, DkimAlgorithm::Ed25519);
    assert_eq!(STANDARD.decode(&ed.public_key).expect("base64").len(), 32);
    assert!(!format!("{rsa:?}").contains(&format!("{:?}", &rsa.private_key[..8])));
    assert_ne!(
        generate_key(DkimAlgorithm::Ed25519)
            .expect("key")
            .public_key,
        ed.public_key
    );
}

#[test]
fn selectors_are_dated_dns_labels() {
    let (rsa, ed) = default_selectors(datetime!(2026-11-03 12:00 UTC));
    assert_eq!((rsa.as_str(), ed.as_str()), ("crt202611r", "crt202611e"));
    let (rsa, _) = default_selectors(datetime!(2027-01-31 23:59 UTC));
    assert_eq!(rsa, "crt202701r");
    assert!(sign::is_dns_name(&rsa));
}

#[test]
fn algorithm_names_round_trip() {
    for algorithm in [DkimAlgorithm::Rsa, DkimAlgorithm::Ed25519] {
        assert_eq!(
            algorithm.as_str().parse::<DkimAlgorithm>().ok(),
            Some(algorithm)
        );
    }
    assert_eq!(
        "RSA".parse::<DkimAlgorithm>().ok(),
        Some(DkimAlgorithm::Rsa)
    );
    assert!(matches!(
        "dsa".parse::<DkimAlgorithm>(),
        Err(DkimError::UnknownAlgorithm(_))
    ));
}

#[test]
fn signatures_have_the_agreed_tags_rsa_first() {
    let signer = signer();
    assert_eq!(signer.domain(), DOMAIN);
    let signatures = signer.sign(MESSAGE.as_bytes()).expect("sign");
    let fields = signature_fields(&signatures);
    assert_eq!(fields.len(), 2);
    for (field, (algorithm, selector)) in fields.iter().zip([
        ("rsa-sha256", RSA_SELECTOR),
        ("ed25519-sha256", ED_SELECTOR),
    ]) {
        assert!(field.starts_with("DKIM-Signature: v=1; "), "{field}");
        assert!(field.ends_with(";\r\n"), "{field}");
        // Folded: continuation lines stay short (the first line grows with
        // the selector and domain, well inside RFC 5322's 998).
        assert!(
            field.split("\r\n").skip(1).all(|line| line.len() <= 78),
            "{field}"
        );
        assert_eq!(tag(field, "a").as_deref(), Some(algorithm));
        assert_eq!(tag(field, "s").as_deref(), Some(selector));
        assert_eq!(tag(field, "d").as_deref(), Some(DOMAIN));
        assert_eq!(tag(field, "c").as_deref(), Some("relaxed/relaxed"));
        assert!(tag(field, "t").is_some());
        for absent in ["l", "x", "i"] {
            assert_eq!(tag(field, absent), None, "{absent}= in {field}");
        }
        // Present fields (in mail-auth's bottom-up order), then the
        // oversigning From; absent ones such as Cc and List-Id are not listed.
        let h = tag(field, "h").expect("h=");
        let mut names: Vec<&str> = h.split(':').collect();
        assert_eq!(names.pop(), Some("From"));
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "Content-Type",
                "Date",
                "From",
                "MIME-Version",
                "Message-ID",
                "Subject",
                "To"
            ]
        );
    }
}

#[test]
fn mail_auth_verifies_both_signatures() {
    let message = signed(MESSAGE.as_bytes());
    assert_eq!(
        mail_auth_results(&message),
        [DkimResult::Pass, DkimResult::Pass]
    );
}

#[test]
fn changes_after_signing_break_the_signatures() {
    let message = String::from_utf8(signed(MESSAGE.as_bytes())).expect("utf-8");
    let broken = [
        // The oversigned From: a second From cannot be slipped in.
        message.replacen(
            "From: Alice",
            "From: Mallory <m@evil.test>\r\nFrom: Alice",
            1,
        ),
        message.replace("numbers are attached", "numbers are wrong"),
        message.replace("Subject: quarterly", "Subject: yearly"),
    ];
    for message in broken {
        let results = mail_auth_results(message.as_bytes());
        assert_eq!(results.len(), 2);
        assert!(
            // mail-auth reports a body hash mismatch as neutral, a bad
            // header signature as fail: neither is a pass.
            results.iter().all(|r| !matches!(r, DkimResult::Pass)),
            "{results:?}"
        );
    }
    // Relaxed canonicalisation tolerates whitespace changes, and a field
    // that is not signed may be added by a list server.
    let tolerated = message
        .replace(
            "Subject: quarterly   numbers",
            "Subject:  quarterly numbers",
        )
        .replace("X-Unsigned:", "List-Id: <list.sender.test>\r\nX-Unsigned:");
    assert_eq!(
        mail_auth_results(tolerated.as_bytes()),
        [DkimResult::Pass, DkimResult::Pass]
    );
}

#[test]
fn messages_without_from_or_with_bad_keys_are_refused() {
    assert!(matches!(
        signer().sign(b"To: bob@rcpt.test\r\nSubject: x\r\n\r\nbody\r\n"),
        Err(DkimError::NoFrom)
    ));
    let bad = |algorithm, private_key: &[u8]| {
        DomainSigner::new(
            DOMAIN,
            &[SigningKeySpec {
                selector: "s1",
                algorithm,
                private_key,
            }],
        )
        .err()
    };
    let (rsa, ed) = keys();
    assert!(matches!(
        bad(DkimAlgorithm::Rsa, &ed.private_key),
        Some(DkimError::BadKey { .. })
    ));
    assert!(matches!(
        bad(DkimAlgorithm::Ed25519, &rsa.private_key),
        Some(DkimError::BadKey { .. })
    ));
    assert!(matches!(
        bad(DkimAlgorithm::Rsa, b"garbage"),
        Some(DkimError::BadKey { .. })
    ));
    assert!(matches!(
        DomainSigner::new(DOMAIN, &[]),
        Err(DkimError::NoKeys(_))
    ));
    let spec = SigningKeySpec {
        selector: "bad; selector",
        algorithm: DkimAlgorithm::Ed25519,
        private_key: &ed.private_key,
    };
    assert!(matches!(
        DomainSigner::new(DOMAIN, &[spec]),
        Err(DkimError::InvalidName { .. })
    ));
    let spec = SigningKeySpec {
        selector: "s1",
        ..spec
    };
    assert!(matches!(
        DomainSigner::new("sender.test\r\nX: y", &[spec]),
        Err(DkimError::InvalidName { .. })
    ));
}

#[test]
fn signer_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DomainSigner>();
}

/// Whether `python3` can import dkimpy (with PyNaCl for Ed25519),
/// installing them once if needed.
fn dkimpy_available() -> bool {
    let importable = || {
        Command::new("python3")
            .args(["-c", "import dkim, nacl"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    importable()
        || (Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "dkimpy", "pynacl"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            && importable())
}

const DKIMPY_VERIFY: &str = r#"
import json, sys, dkim
records = json.loads(sys.argv[1])
message = sys.stdin.buffer.read()
def dns(name, timeout=5):
    value = records.get(name.decode().rstrip(".").lower())
    return value.encode() if value is not None else None
verifier = dkim.DKIM(message)
count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
print(" ".join(str(verifier.verify(idx=i, dnsfunc=dns)) for i in range(count)))
"#;

/// dkimpy's verdict per signature, e.g. `"True True"`.
fn dkimpy_results(message: &[u8]) -> String {
    let records: HashMap<String, String> = dns_records().into_iter().collect();
    let mut child = Command::new("python3")
        .args([
            "-c",
            DKIMPY_VERIFY,
            &serde_json::to_string(&records).expect("json"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), message).expect("write");
    let output = child.wait_with_output().expect("python3 finishes");
    assert!(output.status.success(), "dkimpy script failed");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

#[test]
fn dkimpy_verifies_both_signatures() {
    if !dkimpy_available() {
        eprintln!("skipped: python3 with dkimpy and pynacl is not available");
        return;
    }
    let message = signed(MESSAGE.as_bytes());
    assert_eq!(dkimpy_results(&message), "True True");
    let forged = String::from_utf8(message).expect("utf-8").replacen(
        "From: Alice",
        "From: Mallory <m@evil.test>\r\nFrom: Alice",
        1,
    );
    assert_eq!(dkimpy_results(forged.as_bytes()), "False False");
}

/// A 4 KiB message like those an application sends.
fn four_kib_message() -> Vec<u8> {
    let mut message = MESSAGE.as_bytes().to_vec();
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do.\r\n";
    while message.len() + line.len() <= 4096 {
        message.extend_from_slice(line);
    }
    message
}

/// `cargo test --release -p carteiro-mail -- --ignored --nocapture dkim`
#[test]
#[ignore = "measurement: run in release mode"]
fn measure_signing_cost() {
    let (rsa, ed) = keys();
    let message = four_kib_message();
    for (key, selector, rounds) in [(rsa, RSA_SELECTOR, 500), (ed, ED_SELECTOR, 5000)] {
        let signer = DomainSigner::new(
            DOMAIN,
            &[SigningKeySpec {
                selector,
                algorithm: key.algorithm,
                private_key: &key.private_key,
            }],
        )
        .expect("signer");
        let start = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(signer.sign(std::hint::black_box(&message)).expect("sign"));
        }
        let per_signature = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        println!(
            "dkim {}: {per_signature:.1} µs per signature of a {} byte message",
            key.algorithm,
            message.len()
        );
    }
    let start = Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        std::hint::black_box(signer());
    }
    println!(
        "DomainSigner::new with one RSA and one Ed25519 key: {:.1} µs",
        start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
    );
}
