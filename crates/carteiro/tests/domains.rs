//! Sending domains end to end: `domain add` creates the keys and prints the
//! records, mail from the domain arrives signed with signatures that an
//! independent verifier (dkimpy) accepts with the printed records, mail
//! from a domain the account does not own is refused, and `domain check`
//! judges what a DNS server publishes.

mod common;

use carteiro_testkit::dns::{DnsFixture, RecordType};
use common::dkim::{dkimpy_verify, records};
use common::{Setup, swaks};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_from_a_sending_domain_is_signed_and_verifies_with_dkimpy() {
    let sink = common::sink().await;
    let server = Setup::new().route(&["*"], sink.addr()).start().await;
    server.add_login("shop", "shop-app", "s3cret-pass").await;
    let added = server.cli(&["domain", "add", "shop", "shop.test"]).await;
    assert!(added.contains("_domainkey.shop.test"), "{added}");
    let records = records(&server, "shop.test").await;
    let purposes: Vec<&str> = records
        .iter()
        .filter_map(|r| r["purpose"].as_str())
        .collect();
    for purpose in ["dkim", "spf", "dmarc", "return-path"] {
        assert!(
            purposes.contains(&purpose),
            "no {purpose} record in {records:?}"
        );
    }

    let submission = server.submission.to_string();
    let out = swaks(&[
        "--server",
        &submission,
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "shop-app",
        "--auth-password",
        "s3cret-pass",
        "--from",
        "orders@shop.test",
        "--to",
        "customer@dest.test",
        "--header",
        "Subject: your order",
    ])
    .await;
    assert!(out.ok, "{}", out.transcript);

    let message = &common::wait_rcpts(&sink, 1).await[0];
    let signatures = message.headers("DKIM-Signature");
    assert_eq!(signatures.len(), 2, "{}", message.body_str());
    assert!(signatures[0].contains("a=rsa-sha256") && signatures[0].contains("d=shop.test"));
    assert!(signatures[1].contains("a=ed25519-sha256"));
    assert_eq!(dkimpy_verify(&message.data, &records).await, [true, true]);

    // A tampered copy fails: the verifier really checks.
    let tampered = String::from_utf8_lossy(&message.data).replace("your order", "your 0rder");
    assert_eq!(
        dkimpy_verify(tampered.as_bytes(), &records).await,
        [false, false]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_from_a_domain_the_account_does_not_own_is_refused() {
    let sink = common::sink().await;
    let server = Setup::new().route(&["*"], sink.addr()).start().await;
    server.add_login("shop", "shop-app", "s3cret-pass").await;
    server.cli(&["domain", "add", "shop", "shop.test"]).await;
    server.cli(&["account", "add", "other"]).await;
    server.cli(&["domain", "add", "other", "other.test"]).await;

    let submission = server.submission.to_string();
    for from in ["ceo@other.test", "someone@unknown.test"] {
        let out = swaks(&[
            "--server",
            &submission,
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "shop-app",
            "--auth-password",
            "s3cret-pass",
            "--from",
            from,
            "--to",
            "customer@dest.test",
        ])
        .await;
        assert!(!out.ok, "{from} was accepted:\n{}", out.transcript);
        assert!(
            out.saw("550 5.7.1")
                && out
                    .transcript
                    .contains("is not a sending domain of account shop"),
            "{}",
            out.transcript
        );
    }
    assert!(server.queue().await.is_empty());
    assert!(sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_check_reports_ok_missing_and_wrong() {
    // The EHLO name has an address whose reverse DNS names it back.
    let relay_ip: std::net::IpAddr = "192.0.2.25".parse().unwrap();
    let dns = DnsFixture::builder()
        .a(common::HOSTNAME, "192.0.2.25".parse().unwrap())
        .ptr(relay_ip, common::HOSTNAME)
        .start()
        .await;
    let server = Setup::new().nameserver(dns.addr()).start().await;
    server.cli(&["account", "add", "shop"]).await;
    server.cli(&["domain", "add", "shop", "shop.test"]).await;
    let records = records(&server, "shop.test").await;

    // Nothing published: every record is missing and the command fails; of
    // the bulk-sender checklist, alignment cannot be judged without DMARC.
    let out = server
        .carteiro
        .run(&["domain", "check", "shop.test"])
        .await
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let (record_lines, checklist) = text
        .split_once("Bulk-sender checklist")
        .unwrap_or_else(|| panic!("no checklist: {text}"));
    assert!(
        record_lines.contains("MISSING") && !record_lines.contains("OK "),
        "{text}"
    );
    let item = |purpose: &str| {
        checklist
            .lines()
            .find(|l| l.contains(purpose) && !l.starts_with(' '))
            .unwrap_or_default()
            .to_string()
    };
    assert!(item("alignment").starts_with("MISSING"), "{text}");
    assert!(item("ptr").starts_with("OK"), "{text}");
    assert!(item("tls").starts_with("OK"), "{text}");
    assert!(item("complaint-rate").starts_with("OK"), "{text}");

    // Publish exactly what was printed: everything is right.
    for record in &records {
        let name = record["name"].as_str().unwrap();
        let value = record["value"].as_str().unwrap();
        match record["type"].as_str().unwrap() {
            "TXT" => dns.set_txt(name, value).await,
            "MX" => {
                let (preference, exchange) = value.split_once(' ').unwrap();
                dns.set_mx(name, preference.parse().unwrap(), exchange)
                    .await;
            }
            other => panic!("unexpected record type {other}"),
        }
    }
    let out = server
        .cli(&["domain", "check", "shop.test", "--json"])
        .await;
    let results: Vec<Value> = serde_json::from_str(&out).unwrap();
    let purposes: Vec<&str> = results
        .iter()
        .filter_map(|r| r["purpose"].as_str())
        .collect();
    for wanted in [
        "dkim",
        "spf",
        "dmarc",
        "return-path",
        "alignment",
        "ptr",
        "tls",
        "complaint-rate",
    ] {
        assert!(purposes.contains(&wanted), "{wanted} not checked: {out}");
    }
    for result in &results {
        assert_eq!(result["status"], "ok", "{result}");
    }

    // The relay's address pointing elsewhere is wrong.
    dns.remove(
        &hickory_proto::rr::Name::from(relay_ip).to_ascii(),
        RecordType::PTR,
    )
    .await;
    dns.add(
        &hickory_proto::rr::Name::from(relay_ip).to_ascii(),
        hickory_proto::rr::RData::PTR(hickory_proto::rr::rdata::PTR(
            "host-25.isp.test.".parse().unwrap(),
        )),
    )
    .await;
    let out = server
        .carteiro
        .run(&["domain", "check", "shop.test", "--json"])
        .await
        .unwrap();
    assert!(!out.status.success());
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ptr = results.iter().find(|r| r["purpose"] == "ptr").unwrap();
    assert_eq!(ptr["status"], "wrong", "{ptr}");
    assert!(
        ptr["message"]
            .as_str()
            .unwrap()
            .contains("host-25.isp.test"),
        "{ptr}"
    );

    // Alter the RSA key and add a second SPF record: both are reported.
    let dkim = records
        .iter()
        .find(|r| r["purpose"] == "dkim" && r["value"].as_str().unwrap().contains("k=rsa"))
        .unwrap();
    let altered = dkim["value"]
        .as_str()
        .unwrap()
        .replacen("p=MII", "p=MIJ", 1);
    dns.set_txt(dkim["name"].as_str().unwrap(), &altered).await;
    dns.add(
        "shop.test",
        hickory_txt("v=spf1 include:_spf.other.test ~all"),
    )
    .await;
    dns.remove("_dmarc.shop.test", RecordType::TXT).await;
    let out = server
        .carteiro
        .run(&["domain", "check", "shop.test"])
        .await
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = |purpose: &str| {
        text.lines()
            .find(|l| l.contains(purpose) && !l.starts_with(' '))
            .unwrap_or_default()
            .to_string()
    };
    let rsa_name = dkim["name"].as_str().unwrap();
    assert!(line(rsa_name).starts_with("WRONG"), "{text}");
    assert!(
        text.contains("is not the one Carteiro signs with"),
        "{text}"
    );
    assert!(line(" spf ").starts_with("WRONG"), "{text}");
    assert!(text.contains("two SPF records"), "{text}");
    assert!(line("dmarc").starts_with("MISSING"), "{text}");
    assert!(line("alignment").starts_with("MISSING"), "{text}");
    assert!(line("return-path  MX").starts_with("OK"), "{text}");
}

fn hickory_txt(value: &str) -> hickory_proto::rr::RData {
    hickory_proto::rr::RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![value.to_string()]))
}
