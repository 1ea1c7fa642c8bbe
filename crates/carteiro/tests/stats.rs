//! Statistics and Prometheus metrics end to end: messages sent through the
//! API to two domains whose MX hosts belong to one provider (an in-process
//! DNS server; the recording sink answers for both), one recipient refused
//! with 550; then `GET /api/v1/stats` shows the counts per tag, domain and
//! provider, and `GET /metrics` the carteiro_* series, on the API listener
//! or, with `http.metrics_listen`, on its own.

mod common;

use carteiro_testkit::{DnsFixture, SinkReply, SmtpSink, free_port};
use common::http::{api_key, curl, send_message, sending_account, wait_event};
use common::{Server, Setup, run};
use serde_json::{Value, json};
use std::net::{Ipv4Addr, SocketAddr};

/// The sink's address: reaching it proves the MX came from DNS.
const MX_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A sink on 127.0.0.2 refusing `bob@b.test`, and a DNS server where a.test
/// and b.test have MX hosts under provider.test.
async fn destinations() -> (SmtpSink, DnsFixture) {
    let sink = SmtpSink::builder()
        .bind(SocketAddr::from((MX_IP, 0)))
        .hostname("mx1.provider.test")
        .rcpt_replies(
            "bob@b.test",
            vec![SinkReply::new(550, "5.1.1 no such user")],
        )
        .start()
        .await;
    let dns = DnsFixture::builder()
        .mx("a.test", 10, "mx1.provider.test")
        .mx("b.test", 10, "mx2.provider.test")
        .a("mx1.provider.test", MX_IP)
        .a("mx2.provider.test", MX_IP)
        .start()
        .await;
    (sink, dns)
}

/// A server delivering by MX through `dns` to `sink`'s port, with account
/// `shop` owning shop.test; returns it with the account's key.
async fn shop(sink: &SmtpSink, dns: &DnsFixture, setup: Setup) -> (Server, String) {
    let server = setup
        .nameserver(dns.addr())
        .delivery(&format!("smtp_port = {}", sink.addr().port()))
        .start()
        .await;
    let key = sending_account(&server, "shop", "shop.test").await;
    (server, key)
}

async fn send(server: &Server, key: &str, request: Value) -> String {
    let answer = send_message(server, key, request).await;
    answer.body["id"].as_str().expect("an id").to_string()
}

/// Sends the two messages and waits for every recipient's fate: alice and
/// carol delivered, bob bounced.
async fn send_and_settle(server: &Server, key: &str) {
    let first = send(
        server,
        key,
        json!({
            "from": "Shop <orders@shop.test>",
            "to": ["alice@a.test", "bob@b.test"],
            "subject": "Welcome",
            "text": "Hello.",
            "tags": ["welcome"]
        }),
    )
    .await;
    let second = send(
        server,
        key,
        json!({
            "from": "orders@shop.test",
            "to": ["carol@a.test"],
            "subject": "Receipt",
            "text": "Thanks."
        }),
    )
    .await;
    wait_event(server, key, &first, "bounced").await;
    let timeline = wait_event(server, key, &first, "delivered").await;
    let delivered = timeline["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["type"] == "delivered")
        .cloned()
        .expect("a delivered event");
    assert_eq!(
        delivered["details"]["mx"], "mx1.provider.test",
        "the MX host is in the event's details: {delivered}"
    );
    wait_event(server, key, &second, "delivered").await;
}

/// `GET /api/v1/stats?QUERY`, which must answer 200.
async fn stats(server: &Server, key: &str, query: &str) -> Value {
    let answer = curl(
        server,
        "GET",
        &format!("/api/v1/stats?{query}"),
        Some(key),
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{query}: {}", answer.body);
    answer.body
}

fn count(counts: &Value, name: &str) -> u64 {
    counts[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no count {name} in {counts}"))
}

/// The value of the series line starting with `series ` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_per_tag_domain_and_provider_and_metrics_show_the_series() {
    let (sink, dns) = destinations().await;
    let (server, key) = shop(&sink, &dns, Setup::new()).await;
    send_and_settle(&server, &key).await;

    // The default: the last 7 days by day, today last.
    let week = stats(&server, &key, "").await;
    assert_eq!(week["by"], "day");
    let days = week["intervals"].as_array().expect("intervals");
    assert_eq!(days.len(), 7);
    let totals = &week["totals"];
    assert_eq!(count(totals, "received"), 3, "{totals}");
    assert_eq!(count(totals, "delivered"), 2, "{totals}");
    assert_eq!(count(totals, "bounced"), 1, "{totals}");
    assert_eq!(count(totals, "deferred"), 0, "{totals}");
    assert_eq!(count(&days[6], "received"), 3, "today: {}", days[6]);

    let hours = stats(&server, &key, "by=hour").await;
    assert_eq!(hours["intervals"].as_array().expect("hours").len(), 24);
    assert_eq!(hours["totals"], week["totals"]);

    let welcome = stats(&server, &key, "tag=welcome").await;
    let totals = &welcome["totals"];
    assert_eq!(
        (
            count(totals, "received"),
            count(totals, "delivered"),
            count(totals, "bounced")
        ),
        (2, 1, 1),
        "{totals}"
    );
    let shop_domain = stats(&server, &key, "domain=shop.test").await;
    assert_eq!(count(&shop_domain["totals"], "received"), 3);
    let other = stats(&server, &key, "domain=other.test").await;
    assert_eq!(count(&other["totals"], "received"), 0);

    // a.test and b.test have their MX hosts under provider.test: one group.
    let providers = stats(&server, &key, "group=provider").await;
    let groups = providers["groups"].as_array().expect("groups");
    let provider = groups
        .iter()
        .find(|g| g["name"] == "provider.test")
        .unwrap_or_else(|| panic!("no provider.test group: {providers}"));
    assert_eq!(count(&provider["totals"], "delivered"), 2, "{provider}");
    assert_eq!(count(&provider["totals"], "bounced"), 1, "{provider}");
    let received: u64 = groups.iter().map(|g| count(&g["totals"], "received")).sum();
    assert_eq!(
        received, 3,
        "every received recipient in one group: {groups:?}"
    );

    // Another account sees none of it.
    server.cli(&["account", "add", "other"]).await;
    let other_key = api_key(&server, "other").await;
    let theirs = stats(&server, &other_key, "").await;
    assert_eq!(count(&theirs["totals"], "received"), 0);

    // Prometheus, on the API listener, without a key.
    let answer = curl(&server, "GET", "/metrics", None, None).await;
    assert_eq!(answer.status, 200);
    let text = answer.body.as_str().expect("plain text").to_string();
    for (series, value) in [
        ("carteiro_messages_received_total{account=\"shop\"}", 2.0),
        ("carteiro_messages_delivered_total{account=\"shop\"}", 2.0),
        ("carteiro_messages_bounced_total{account=\"shop\"}", 1.0),
        ("carteiro_delivery_latency_seconds_count", 2.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in:\n{text}");
    }
    for series in [
        "carteiro_queue_messages",
        "carteiro_queue_recipients",
        "carteiro_connections_in",
        "carteiro_connections_out",
        "carteiro_webhook_backlog",
        "carteiro_spool_commit_seconds_count",
        "carteiro_delivery_latency_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(sample(&text, series).is_some(), "no {series} in:\n{text}");
    }
    assert!(
        sample(&text, "carteiro_spool_commit_seconds_count").is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE carteiro_delivery_latency_seconds histogram"),
        "{text}"
    );
    assert!(!text.contains("@"), "no addresses in labels:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_metrics_on_its_own_address_only() {
    let (sink, dns) = destinations().await;
    let port = free_port();
    let setup = Setup::new().http(&format!("metrics_listen = \"127.0.0.1:{port}\""));
    let (server, key) = shop(&sink, &dns, setup).await;
    send_and_settle(&server, &key).await;

    let url = format!("http://127.0.0.1:{port}/metrics");
    let output = run("curl", &["-s", "-f", &url], None).await;
    assert!(output.status.success(), "{}", server.log());
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        sample(&text, "carteiro_messages_delivered_total{account=\"shop\"}"),
        Some(2.0),
        "{text}"
    );
    let main = curl(&server, "GET", "/metrics", None, None).await;
    assert_eq!(main.status, 404, "not on the API listener: {}", main.body);
}
