use super::*;
use crate::dkim::{DkimAlgorithm, generate_key};
use std::sync::OnceLock;

const DOMAIN: &str = "example.test";
const RELAY: &str = "relay.carteiro.test";
const RETURN_PATH: &str = "bounces.example.test";

fn public_keys() -> &'static (String, String) {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            generate_key(DkimAlgorithm::Rsa).expect("rsa").public_key,
            generate_key(DkimAlgorithm::Ed25519)
                .expect("ed25519")
                .public_key,
        )
    })
}

fn expected() -> Vec<DnsRecord> {
    let (rsa, ed) = public_keys();
    domain_records(
        "Example.Test.",
        RELAY,
        RETURN_PATH,
        &[
            PublicKeySpec {
                selector: "crt202611r",
                algorithm: DkimAlgorithm::Rsa,
                public_key: rsa,
            },
            PublicKeySpec {
                selector: "crt202611e",
                algorithm: DkimAlgorithm::Ed25519,
                public_key: ed,
            },
        ],
    )
}

const RSA_NAME: &str = "crt202611r._domainkey.example.test";
const ED_NAME: &str = "crt202611e._domainkey.example.test";
const DMARC_NAME: &str = "_dmarc.example.test";

/// What DNS answers when every record is published as asked, plus the
/// unrelated TXT records real domains carry.
fn all_correct() -> Found {
    let mut found = Found::default();
    for record in expected() {
        match record.kind {
            RecordType::Txt => {
                let answers = found
                    .txt
                    .entry(record.name.clone())
                    .or_insert_with(|| Ok(Vec::new()));
                answers.as_mut().expect("ok").push(record.value.clone());
            }
            RecordType::Mx => {
                let (preference, host) = record.value.split_once(' ').expect("mx value");
                found.mx.insert(
                    record.name.clone(),
                    Ok(vec![(
                        preference.parse().expect("number"),
                        host.to_string(),
                    )]),
                );
            }
            RecordType::Cname => unreachable!("no CNAME is asked for"),
        }
    }
    set_txt(&mut found, DOMAIN, |values| {
        values.insert(0, "google-site-verification=abc123".into());
    });
    found
}

fn set_txt(found: &mut Found, name: &str, change: impl FnOnce(&mut Vec<String>)) {
    let entry = found.txt.get_mut(name).expect("name present");
    change(entry.as_mut().expect("answers"));
}

fn replace_txt(found: &mut Found, name: &str, values: &[&str]) {
    found.txt.insert(
        name.to_string(),
        Ok(values.iter().map(|v| v.to_string()).collect()),
    );
}

use CheckStatus::{Missing, Ok as Fine, Warning, Wrong};

/// Statuses in the order of `expected()`: RSA key, Ed25519 key, SPF, DMARC,
/// return-path MX, return-path SPF.
type Statuses = [CheckStatus; 6];

#[test]
fn scenarios() {
    let (rsa, _) = public_keys();
    let other_rsa = generate_key(DkimAlgorithm::Rsa).expect("rsa").public_key;
    type Change = Box<dyn Fn(&mut Found)>;
    let scenarios: Vec<(&str, Change, Statuses, &str)> = vec![
        ("all correct", Box::new(|_| {}), [Fine; 6], ""),
        (
            "dkim rsa absent",
            Box::new(|f| {
                f.txt.insert(RSA_NAME.into(), Err(LookupFailure::NxDomain));
            }),
            [Missing, Fine, Fine, Fine, Fine, Fine],
            "does not exist in DNS",
        ),
        (
            "dkim ed25519 absent",
            Box::new(|f| {
                f.txt.insert(ED_NAME.into(), Ok(Vec::new()));
            }),
            [Fine, Missing, Fine, Fine, Fine, Fine],
            "has no DKIM key for selector crt202611e",
        ),
        (
            "spf absent",
            Box::new(|f| replace_txt(f, DOMAIN, &["google-site-verification=abc123"])),
            [Fine, Fine, Missing, Fine, Fine, Fine],
            "none is an SPF record",
        ),
        (
            "dmarc absent",
            Box::new(|f| {
                f.txt
                    .insert(DMARC_NAME.into(), Err(LookupFailure::NxDomain));
            }),
            [Fine, Fine, Fine, Missing, Fine, Fine],
            "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.test",
        ),
        (
            "return-path mx absent",
            Box::new(|f| {
                f.mx.insert(RETURN_PATH.into(), Err(LookupFailure::NoRecords));
            }),
            [Fine, Fine, Fine, Fine, Missing, Fine],
            "cannot reach Carteiro",
        ),
        (
            "return-path spf absent",
            Box::new(|f| {
                f.txt
                    .insert(RETURN_PATH.into(), Err(LookupFailure::NoRecords));
            }),
            [Fine, Fine, Fine, Fine, Fine, Missing],
            "v=spf1 a:relay.carteiro.test ~all",
        ),
        (
            "altered dkim key",
            Box::new(move |f| {
                let value = format!("v=DKIM1; k=rsa; p={other_rsa}");
                replace_txt(f, RSA_NAME, &[&value]);
            }),
            [Wrong, Fine, Fine, Fine, Fine, Fine],
            "the published key for selector crt202611r is not the one Carteiro signs with",
        ),
        (
            "revoked dkim key",
            Box::new(|f| replace_txt(f, ED_NAME, &["v=DKIM1; k=ed25519; p="])),
            [Fine, Wrong, Fine, Fine, Fine, Fine],
            "revoked",
        ),
        (
            "dkim key type differs",
            Box::new(|f| {
                let (_, ed) = public_keys();
                replace_txt(f, ED_NAME, &[&format!("v=DKIM1; p={ed}")]);
            }),
            [Fine, Wrong, Fine, Fine, Fine, Fine],
            "says k=rsa but Carteiro's key for it is k=ed25519",
        ),
        (
            "dkim key split with spaces, no v=",
            Box::new(move |f| {
                let (head, tail) = rsa.split_at(200);
                replace_txt(f, RSA_NAME, &[&format!("k=rsa;p={head} {tail}")]);
            }),
            [Fine; 6],
            "",
        ),
        (
            "dkim testing mode",
            Box::new(|f| set_txt(f, RSA_NAME, |v| v[0].push_str("; t=y"))),
            [Warning, Fine, Fine, Fine, Fine, Fine],
            "t=y",
        ),
        (
            "two spf records",
            Box::new(|f| {
                set_txt(f, DOMAIN, |v| {
                    v.push("v=spf1 include:_spf.google.com ~all".into());
                })
            }),
            [Fine, Fine, Wrong, Fine, Fine, Fine],
            "two SPF records at example.test: receivers treat that as an error (permerror); merge them into one",
        ),
        (
            "spf without our host",
            Box::new(|f| replace_txt(f, DOMAIN, &["v=spf1 a:mail.other.test -all"])),
            [Fine, Fine, Wrong, Fine, Fine, Fine],
            "does not authorise relay.carteiro.test",
        ),
        (
            "spf +all",
            Box::new(|f| replace_txt(f, DOMAIN, &["v=spf1 a:relay.carteiro.test +all"])),
            [Fine, Fine, Wrong, Fine, Fine, Fine],
            "anyone may send",
        ),
        (
            "spf include only",
            Box::new(|f| replace_txt(f, DOMAIN, &["v=spf1 include:_spf.google.com ~all"])),
            [Fine, Fine, Warning, Fine, Fine, Fine],
            "cannot tell whether include:_spf.google.com cover",
        ),
        (
            "spf ip4 only",
            Box::new(|f| replace_txt(f, DOMAIN, &["v=spf1 ip4:192.0.2.10 -all"])),
            [Fine, Fine, Warning, Fine, Fine, Fine],
            "ip4:192.0.2.10",
        ),
        (
            "spf a and mx",
            Box::new(|f| replace_txt(f, DOMAIN, &["v=spf1 a mx ~all"])),
            [Fine, Fine, Warning, Fine, Fine, Fine],
            "a, mx",
        ),
        (
            "spf with our host merged into another",
            Box::new(|f| {
                replace_txt(
                    f,
                    DOMAIN,
                    &["v=spf1 include:_spf.google.com a:RELAY.carteiro.test. ~all"],
                )
            }),
            [Fine; 6],
            "",
        ),
        (
            "spf typo",
            Box::new(|f| replace_txt(f, DOMAIN, &["v=spf1 a:relay.carteiro.test ~al"])),
            [Fine, Fine, Wrong, Fine, Fine, Fine],
            "unknown term \"~al\"",
        ),
        (
            "dmarc without p=",
            Box::new(|f| replace_txt(f, DMARC_NAME, &["v=DMARC1; rua=mailto:d@example.test"])),
            [Fine, Fine, Fine, Wrong, Fine, Fine],
            "no p= tag",
        ),
        (
            "two dmarc records",
            Box::new(|f| {
                set_txt(f, DMARC_NAME, |v| v.push("v=DMARC1; p=reject".into()));
            }),
            [Fine, Fine, Fine, Wrong, Fine, Fine],
            "2 DMARC records",
        ),
        (
            "dmarc with a stricter policy",
            Box::new(|f| replace_txt(f, DMARC_NAME, &["v=DMARC1; p=reject; pct=100"])),
            [Fine; 6],
            "",
        ),
        (
            "return-path mx elsewhere",
            Box::new(|f| {
                f.mx.insert(RETURN_PATH.into(), Ok(vec![(10, "mx.other.test.".into())]));
            }),
            [Fine, Fine, Fine, Fine, Wrong, Fine],
            "points to mx.other.test, not to relay.carteiro.test",
        ),
        (
            "return-path mx also elsewhere",
            Box::new(|f| {
                f.mx.insert(
                    RETURN_PATH.into(),
                    Ok(vec![
                        (10, "Relay.Carteiro.Test.".into()),
                        (20, "mx.other.test".into()),
                    ]),
                );
            }),
            [Fine, Fine, Fine, Fine, Warning, Fine],
            "but also mx.other.test",
        ),
        (
            "return-path null mx",
            Box::new(|f| {
                f.mx.insert(RETURN_PATH.into(), Ok(vec![(0, ".".into())]));
            }),
            [Fine, Fine, Fine, Fine, Wrong, Fine],
            "null MX",
        ),
        (
            "return-path spf without our host",
            Box::new(|f| replace_txt(f, RETURN_PATH, &["v=spf1 -all"])),
            [Fine, Fine, Fine, Fine, Fine, Wrong],
            "does not authorise",
        ),
        (
            "lookup failure",
            Box::new(|f| {
                f.txt.insert(
                    DMARC_NAME.into(),
                    Err(LookupFailure::Failed("timed out".into())),
                );
            }),
            [Fine, Fine, Fine, Warning, Fine, Fine],
            "could not look up _dmarc.example.test (timed out)",
        ),
        (
            "name never looked up",
            Box::new(|f| {
                f.txt.remove(ED_NAME);
            }),
            [Fine, Warning, Fine, Fine, Fine, Fine],
            "not looked up",
        ),
    ];

    let expected = expected();
    for (label, change, statuses, words) in scenarios {
        let mut found = all_correct();
        change(&mut found);
        let results = check(DOMAIN, RELAY, &expected, &found);
        let got: Vec<CheckStatus> = results.iter().map(|r| r.status).collect();
        assert_eq!(got, statuses, "{label}: {results:#?}");
        for (result, record) in results.iter().zip(&expected) {
            assert_eq!(
                (result.purpose, result.kind, result.name.as_str()),
                (record.purpose, record.kind, record.name.as_str()),
                "{label}"
            );
            assert!(!result.message.is_empty(), "{label}");
        }
        if !words.is_empty() {
            assert!(
                results.iter().any(|r| r.message.contains(words)),
                "{label}: no message says {words:?}: {results:#?}"
            );
        }
    }
}

#[test]
fn records_follow_the_agreed_shape() {
    let records = expected();
    let summary: Vec<(RecordPurpose, RecordType, &str)> = records
        .iter()
        .map(|r| (r.purpose, r.kind, r.name.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (RecordPurpose::Dkim, RecordType::Txt, RSA_NAME),
            (RecordPurpose::Dkim, RecordType::Txt, ED_NAME),
            (RecordPurpose::Spf, RecordType::Txt, DOMAIN),
            (RecordPurpose::Dmarc, RecordType::Txt, DMARC_NAME),
            (RecordPurpose::ReturnPath, RecordType::Mx, RETURN_PATH),
            (RecordPurpose::ReturnPath, RecordType::Txt, RETURN_PATH),
        ]
    );
    let (rsa, ed) = public_keys();
    assert_eq!(records[0].value, format!("v=DKIM1; k=rsa; p={rsa}"));
    assert_eq!(records[1].value, format!("v=DKIM1; k=ed25519; p={ed}"));
    assert_eq!(records[2].value, "v=spf1 a:relay.carteiro.test ~all");
    assert_eq!(
        records[3].value,
        "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.test"
    );
    assert_eq!(records[4].value, "10 relay.carteiro.test");
    assert_eq!(records[5].value, "v=spf1 a:relay.carteiro.test ~all");
    assert!(
        records[0].value.len() > 255,
        "RSA key record is split in zone files"
    );

    let same = domain_records(DOMAIN, RELAY, DOMAIN, &[]);
    assert_eq!(
        same.iter()
            .filter(|r| r.kind == RecordType::Txt && r.name == DOMAIN)
            .count(),
        1,
        "no second SPF record when the return path is the domain itself"
    );

    let (txt, mx) = names_to_look_up(&records);
    assert_eq!(txt, [RSA_NAME, ED_NAME, DOMAIN, DMARC_NAME, RETURN_PATH]);
    assert_eq!(mx, [RETURN_PATH]);
}

#[test]
fn json_has_the_interface_shape_and_round_trips() {
    let record = DnsRecord {
        purpose: RecordPurpose::ReturnPath,
        kind: RecordType::Mx,
        name: RETURN_PATH.into(),
        value: "10 relay.carteiro.test".into(),
    };
    assert_eq!(
        serde_json::to_string(&record).expect("json"),
        r#"{"purpose":"return-path","type":"MX","name":"bounces.example.test","value":"10 relay.carteiro.test"}"#
    );
    let records = expected();
    let json = serde_json::to_value(&records).expect("json");
    let purposes: Vec<&str> = json
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["purpose"].as_str().expect("purpose"))
        .collect();
    assert_eq!(
        purposes,
        ["dkim", "dkim", "spf", "dmarc", "return-path", "return-path"]
    );
    assert_eq!(json[0]["type"], "TXT");
    let back: Vec<DnsRecord> = serde_json::from_value(json).expect("parses");
    assert_eq!(back, records);
    let cname: DnsRecord = serde_json::from_str(
        r#"{"purpose":"dkim","type":"CNAME","name":"a.example.test","value":"b.example.test"}"#,
    )
    .expect("parses");
    assert_eq!(cname.kind, RecordType::Cname);
    assert_eq!(
        serde_json::to_string(&CheckStatus::Warning).expect("json"),
        "\"warning\""
    );
}

#[test]
fn long_txt_values_are_split_for_zone_files() {
    let records = expected();
    let rsa = &records[0];
    let parts = split_txt_value(&rsa.value);
    assert!(parts.len() >= 2);
    assert!(parts.iter().all(|p| p.len() <= 255));
    assert_eq!(parts.concat(), rsa.value);

    let entry = zone_file_entry(rsa);
    assert!(entry.starts_with(&format!("{RSA_NAME}. 3600 IN TXT ( \"v=DKIM1; k=rsa; p=")));
    assert!(entry.ends_with("\" )"));
    let joined: String = entry
        .split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(joined, rsa.value);

    assert_eq!(
        zone_file_entry(&records[4]),
        "bounces.example.test. 3600 IN MX 10 relay.carteiro.test."
    );
    assert_eq!(
        zone_file_entry(&records[2]),
        "example.test. 3600 IN TXT \"v=spf1 a:relay.carteiro.test ~all\""
    );
    let multibyte = "é".repeat(200);
    assert!(split_txt_value(&multibyte).iter().all(|p| p.len() <= 255));
    assert_eq!(split_txt_value(""), [""]);
}

#[test]
fn text_form_explains_each_record() {
    let records = expected();
    let text = render_text(&records);
    assert!(text.starts_with("DNS records to publish for example.test\n"));
    for (n, record) in records.iter().enumerate() {
        assert!(text.contains(&format!("\n{}. ", n + 1)), "{text}");
        // The value as one string, ready for a zone editor.
        assert!(
            text.contains(&format!("   Value: {}\n", record.value)),
            "{text}"
        );
        assert!(
            text.contains(&format!("   Name:  {}\n", record.name)),
            "{text}"
        );
    }
    assert!(text.contains("DKIM key, selector crt202611r (rsa)"));
    assert!(text.contains("DKIM key, selector crt202611e (ed25519)"));
    assert!(text.contains("must be split into several quoted strings"));
    assert!(text.contains(&format!(
        "     {RSA_NAME}. 3600 IN TXT ( \"v=DKIM1; k=rsa; p="
    )));
    assert!(text.contains("do not add a second one"));
    assert!(text.contains("add a:relay.carteiro.test to the existing record"));
    assert!(text.contains("     bounces.example.test. 3600 IN MX 10 relay.carteiro.test.\n"));
}
