//! Tests of the statistics rollups: counts after batches, through the store
//! (every batch looks messages and providers up) and through the writer
//! (which remembers them), the tag and domain filters, grouping, and days as
//! sums of hours. An ignored test measures a query beside millions of events.

use super::*;
use crate::testutil::{T0, message_id, new_event, new_message, record, temp_store};
use crate::{
    DeliveryDetails, EngagementDetails, EventDetails, EventKind, EventWriter, NewEvent, NewMessage,
};

const HOUR_MS: i64 = HOUR_SECONDS * 1000;

fn event(
    account_id: i64,
    id: &str,
    recipient: &str,
    kind: EventKind,
    ms: i64,
    details: EventDetails,
) -> NewEvent {
    NewEvent {
        details,
        ..new_event(account_id, id, Some(recipient), kind, ms)
    }
}

/// A delivery event's details naming the MX host reached.
fn mx_details(mx: &str) -> EventDetails {
    EventDetails::Delivery(DeliveryDetails {
        mx: Some(mx.to_owned()),
        ..Default::default()
    })
}

/// An open's or click's details.
fn engaged(unique: bool) -> EventDetails {
    EventDetails::Engagement(EngagementDetails {
        unique,
        ..Default::default()
    })
}

/// An open's details, by a person or by a machine.
fn opened_by(machine: bool, unique: bool) -> EventDetails {
    EventDetails::Engagement(EngagementDetails {
        user_agent: Some(
            if machine {
                "GoogleImageProxy"
            } else {
                "Thunderbird/128.0"
            }
            .into(),
        ),
        unique,
        machine: Some(machine),
        url: None,
    })
}

fn filter(since_ms: i64, until_ms: i64, bucket_seconds: i64) -> StatsFilter {
    StatsFilter {
        since_ms,
        until_ms,
        bucket_seconds,
        domain: None,
        tag: None,
        provider: None,
        group: None,
    }
}

/// The counts of the rows, summed.
fn total(rows: &[StatsRow]) -> StatsCounts {
    let mut sum = StatsCounts::default();
    for row in rows {
        sum.add(&row.counts);
    }
    sum
}

/// Two messages of `acme` over two hours, written in several batches:
/// `tagged` (tags a and b, sending domain shop.test, to gmail.com and
/// corp.test) and `plain` (no tags, no sending domain: the sender's,
/// example.com; to gmail.com). Returns the account id.
async fn two_messages(store: &Store, write: &mut impl AsyncBatch) -> i64 {
    let acme = store.create_account("acme").await.expect("account");
    let (tagged, plain) = (message_id(T0, 1), message_id(T0, 2));
    let a = acme.id;
    let messages = [
        NewMessage {
            sending_domain: Some("Shop.Test".to_owned()),
            ..new_message(a, &tagged, T0, &["x@gmail.com", "y@corp.test"], &["a", "b"])
        },
        new_message(a, &plain, T0, &["z@gmail.com"], &[]),
    ];
    let received = [
        event(
            a,
            &tagged,
            "x@gmail.com",
            EventKind::Received,
            T0,
            EventDetails::None,
        ),
        event(
            a,
            &tagged,
            "y@corp.test",
            EventKind::Received,
            T0,
            EventDetails::None,
        ),
        event(
            a,
            &plain,
            "z@gmail.com",
            EventKind::Received,
            T0,
            EventDetails::None,
        ),
    ];
    write.batch(&messages, &received).await;
    let google = mx_details("gmail-smtp-in.l.google.com");
    let attempts = [
        event(
            a,
            &tagged,
            "x@gmail.com",
            EventKind::Delivered,
            T0 + 10,
            google.clone(),
        ),
        event(
            a,
            &tagged,
            "y@corp.test",
            EventKind::Deferred,
            T0 + 10,
            mx_details("mx1.corp.test"),
        ),
        event(
            a,
            &plain,
            "z@gmail.com",
            EventKind::Deferred,
            T0 + 10,
            google.clone(),
        ),
    ];
    write.batch(&[], &attempts).await;
    // The next hour: the retries, then engagement (no MX in the details).
    let later = T0 + HOUR_MS + 5;
    let retries = [
        event(
            a,
            &tagged,
            "y@corp.test",
            EventKind::Bounced,
            later,
            mx_details("mx2.corp.test"),
        ),
        event(
            a,
            &plain,
            "z@gmail.com",
            EventKind::Delivered,
            later,
            google,
        ),
    ];
    write.batch(&[], &retries).await;
    let engagement = [
        event(
            a,
            &tagged,
            "x@gmail.com",
            EventKind::Opened,
            later,
            engaged(true),
        ),
        event(
            a,
            &tagged,
            "x@gmail.com",
            EventKind::Opened,
            later + 1,
            engaged(false),
        ),
        event(
            a,
            &plain,
            "z@gmail.com",
            EventKind::Opened,
            later,
            engaged(true),
        ),
        event(
            a,
            &tagged,
            "x@gmail.com",
            EventKind::Clicked,
            later,
            EventDetails::Engagement(EngagementDetails {
                unique: true,
                url: Some("https://shop.test/".into()),
                ..Default::default()
            }),
        ),
        event(
            a,
            &plain,
            "z@gmail.com",
            EventKind::Clicked,
            later,
            EventDetails::None,
        ),
        event(
            a,
            &tagged,
            "x@gmail.com",
            EventKind::Unsubscribed,
            later,
            EventDetails::None,
        ),
        event(
            a,
            &plain,
            "z@gmail.com",
            EventKind::Complained,
            later,
            EventDetails::None,
        ),
        // Not counted.
        event(
            a,
            &plain,
            "z@gmail.com",
            EventKind::Deleted,
            later,
            EventDetails::None,
        ),
    ];
    write.batch(&[], &engagement).await;
    a
}

/// Writes batches one way or another.
trait AsyncBatch {
    async fn batch(&mut self, messages: &[NewMessage], events: &[NewEvent]);
}

/// Through [`Store::record_batch`]: nothing remembered between batches.
struct Direct(Store);

impl AsyncBatch for Direct {
    async fn batch(&mut self, messages: &[NewMessage], events: &[NewEvent]) {
        record(&self.0, messages, events).await;
    }
}

/// Through the event writer, one flush per batch.
struct Writer(EventWriter);

impl AsyncBatch for Writer {
    async fn batch(&mut self, messages: &[NewMessage], events: &[NewEvent]) {
        for m in messages {
            self.0.message(m.clone());
        }
        for e in events {
            self.0.event(e.clone());
        }
        self.0.flush().await;
    }
}

/// What `two_messages` must give, whichever way it was written.
async fn check_two_messages(store: &Store, a: i64) {
    let range = filter(T0 - HOUR_MS, T0 + 3 * HOUR_MS, HOUR_SECONDS);
    let rows = store.stats(a, &range).await.expect("stats");
    let starts: Vec<i64> = rows.iter().map(|r| r.start_ms).collect();
    assert_eq!(starts, [T0, T0 + HOUR_MS], "one row per hour with events");
    assert!(rows.iter().all(|r| r.group.is_none()));
    let first = StatsCounts {
        received: 3,
        delivered: 1,
        deferred: 2,
        ..StatsCounts::default()
    };
    assert_eq!(rows[0].counts, first);
    let second = StatsCounts {
        delivered: 1,
        bounced: 1,
        opened: 3,
        opened_unique: 2,
        clicked: 2,
        clicked_unique: 1,
        unsubscribed: 1,
        complained: 1,
        ..StatsCounts::default()
    };
    assert_eq!(rows[1].counts, second);

    // A day is the sum of its hours.
    let days = store
        .stats(a, &filter(T0, T0 + DAY_SECONDS * 1000, DAY_SECONDS))
        .await
        .expect("days");
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].start_ms, T0, "T0 is a midnight");
    assert_eq!(days[0].counts, total(&rows));

    // tag=a: only the tagged message; no double counting for its two tags.
    let tag_a = StatsFilter {
        tag: Some("a".to_owned()),
        ..range.clone()
    };
    let tagged = total(&store.stats(a, &tag_a).await.expect("tag a"));
    let expected = StatsCounts {
        received: 2,
        delivered: 1,
        deferred: 1,
        bounced: 1,
        opened: 2,
        opened_unique: 1,
        clicked: 1,
        clicked_unique: 1,
        unsubscribed: 1,
        ..StatsCounts::default()
    };
    assert_eq!(tagged, expected);
    let untagged_name = StatsFilter {
        tag: Some("nope".to_owned()),
        ..range.clone()
    };
    assert!(
        store
            .stats(a, &untagged_name)
            .await
            .expect("none")
            .is_empty()
    );

    // Grouped by tag: a and b, the same counts each; untagged mail in none.
    let by_tag = StatsFilter {
        group: Some(StatsGroup::Tag),
        ..range.clone()
    };
    let rows_by_tag = store.stats(a, &by_tag).await.expect("by tag");
    for tag in ["a", "b"] {
        let mine: Vec<StatsRow> = rows_by_tag
            .iter()
            .filter(|r| r.group.as_deref() == Some(tag))
            .cloned()
            .collect();
        assert_eq!(total(&mine), expected, "tag {tag}");
    }
    assert_eq!(rows_by_tag.len(), 4, "two tags in two hours");

    // By sending domain: shop.test (given) and example.com (the sender's).
    let shop = StatsFilter {
        domain: Some("shop.test".to_owned()),
        ..range.clone()
    };
    assert_eq!(total(&store.stats(a, &shop).await.expect("shop")), expected);
    let by_domain = StatsFilter {
        group: Some(StatsGroup::Domain),
        ..range.clone()
    };
    let mut domains: Vec<String> = store
        .stats(a, &by_domain)
        .await
        .expect("by domain")
        .into_iter()
        .filter_map(|r| r.group)
        .collect();
    domains.dedup();
    domains.sort();
    domains.dedup();
    assert_eq!(domains, ["example.com", "shop.test"]);

    // By provider: gmail.com's mail counts under google.com from the
    // start (received and delivered in order, the MX learned when the
    // attempts came), corp.test's MX hosts make one provider.
    let by_provider = StatsFilter {
        group: Some(StatsGroup::Provider),
        ..range.clone()
    };
    let rows = store.stats(a, &by_provider).await.expect("by provider");
    let of = |name: &str| {
        let mine: Vec<StatsRow> = rows
            .iter()
            .filter(|r| r.group.as_deref() == Some(name))
            .cloned()
            .collect();
        total(&mine)
    };
    let google = of("google.com");
    assert_eq!(
        (
            google.delivered,
            google.deferred,
            google.opened,
            google.clicked
        ),
        (2, 1, 3, 2),
        "{rows:#?}"
    );
    let corp = of("corp.test");
    assert_eq!((corp.received, corp.deferred, corp.bounced), (1, 1, 1));
    let gmail_received = of("gmail.com").received;
    assert_eq!(google.received + gmail_received, 2);
    let mut everything = google;
    everything.add(&corp);
    everything.add(&of("gmail.com"));
    assert_eq!(
        everything,
        total(&store.stats(a, &range).await.expect("all"))
    );

    // A provider filter reads the provider table.
    let corp_only = StatsFilter {
        provider: Some("corp.test".to_owned()),
        ..range.clone()
    };
    assert_eq!(
        total(&store.stats(a, &corp_only).await.expect("corp")),
        corp
    );

    // Outside the range, and another account: nothing.
    let before = filter(T0 - 2 * HOUR_MS, T0, HOUR_SECONDS);
    assert!(store.stats(a, &before).await.expect("before").is_empty());
    let beta = store.create_account("beta").await.expect("beta");
    assert!(store.stats(beta.id, &range).await.expect("beta").is_empty());
}

#[tokio::test]
async fn rollups_through_the_store_look_everything_up() {
    let (_dir, store) = temp_store().await;
    let a = two_messages(&store, &mut Direct(store.clone())).await;
    check_two_messages(&store, a).await;
    // Received came before any delivery: counted under the recipient
    // domain, as the module documentation says.
    let by_provider = StatsFilter {
        group: Some(StatsGroup::Provider),
        ..filter(T0, T0 + HOUR_MS, HOUR_SECONDS)
    };
    let rows = store.stats(a, &by_provider).await.expect("by provider");
    let gmail = rows
        .iter()
        .find(|r| r.group.as_deref() == Some("gmail.com"));
    assert_eq!(gmail.map(|r| r.counts.received), Some(2));
}

#[tokio::test]
async fn rollups_through_the_writer_remember_messages() {
    let (_dir, store) = temp_store().await;
    let (writer, task) = EventWriter::start(store.clone());
    let a = two_messages(&store, &mut Writer(writer.clone())).await;
    check_two_messages(&store, a).await;
    writer.close().await;
    task.await.expect("writer ends");
}

#[tokio::test]
async fn a_later_message_to_a_known_domain_counts_under_its_provider() {
    let (_dir, store) = temp_store().await;
    let a = two_messages(&store, &mut Direct(store.clone())).await;
    let id = message_id(T0 + 2 * HOUR_MS, 3);
    let at = T0 + 2 * HOUR_MS;
    record(
        &store,
        &[new_message(a, &id, at, &["w@GMAIL.com"], &[])],
        &[event(
            a,
            &id,
            "w@GMAIL.com",
            EventKind::Received,
            at,
            EventDetails::None,
        )],
    )
    .await;
    let by_provider = StatsFilter {
        group: Some(StatsGroup::Provider),
        ..filter(at, at + HOUR_MS, HOUR_SECONDS)
    };
    let rows = store.stats(a, &by_provider).await.expect("stats");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].group.as_deref(), Some("google.com"));
    assert_eq!(rows[0].counts.received, 1);
}

#[tokio::test]
async fn machine_opens_count_apart_from_opens_by_people() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let id = message_id(T0, 1);
    let to = "x@gmail.com";
    let opens = [
        // A proxy fetched the pixel on arrival, then again later.
        event(
            acme.id,
            &id,
            to,
            EventKind::Opened,
            T0 + 1,
            opened_by(true, false),
        ),
        event(
            acme.id,
            &id,
            to,
            EventKind::Opened,
            T0 + 2,
            opened_by(true, false),
        ),
        // Even one claiming to be the first counts only as a machine's.
        event(
            acme.id,
            &id,
            to,
            EventKind::Opened,
            T0 + 3,
            opened_by(true, true),
        ),
        // The person: a first open and a repeat.
        event(
            acme.id,
            &id,
            to,
            EventKind::Opened,
            T0 + 4,
            opened_by(false, true),
        ),
        event(
            acme.id,
            &id,
            to,
            EventKind::Opened,
            T0 + 5,
            opened_by(false, false),
        ),
    ];
    record(
        &store,
        &[new_message(acme.id, &id, T0, &[to], &["news"])],
        &opens,
    )
    .await;
    let expected = StatsCounts {
        opened: 2,
        opened_unique: 1,
        opened_machine: 3,
        ..StatsCounts::default()
    };
    let range = filter(T0, T0 + HOUR_MS, HOUR_SECONDS);
    let rows = store.stats(acme.id, &range).await.expect("stats");
    assert_eq!(total(&rows), expected);
    // The tag's rows and the provider table count the same way.
    let tagged = StatsFilter {
        tag: Some("news".to_owned()),
        ..range.clone()
    };
    assert_eq!(
        total(&store.stats(acme.id, &tagged).await.expect("tag")),
        expected
    );
    let by_provider = StatsFilter {
        group: Some(StatsGroup::Provider),
        ..range
    };
    let rows = store.stats(acme.id, &by_provider).await.expect("provider");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].counts, expected);
}

#[tokio::test]
async fn events_of_unknown_messages_still_count_in_the_totals() {
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let id = message_id(T0, 9);
    let events = [new_event(acme.id, &id, None, EventKind::Delivered, T0)];
    record(&store, &[], &events).await;
    let rows = store
        .stats(acme.id, &filter(T0, T0 + HOUR_MS, HOUR_SECONDS))
        .await
        .expect("stats");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].counts.delivered, 1);
}

/// Writes `total` events (one `received`, then a delivery outcome and some
/// opens and clicks per message) over 60 days through the writer, then times
/// stats queries. Run with
/// `cargo test -p carteiro-store --release stats_stay_fast -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: minutes of writing"]
async fn stats_stay_fast_with_millions_of_events() {
    use std::time::Instant;
    let total: usize = std::env::var("STATS_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let (_dir, store) = temp_store().await;
    let acme = store.create_account("acme").await.expect("account");
    let (writer, task) = EventWriter::start(store.clone());
    let domains = ["shop.test", "news.shop.test", "billing.test"];
    let tags = ["welcome", "receipt", "digest", "promo", "reset", "alert"];
    let days: i64 = 60;
    let span_ms = days * DAY_SECONDS * 1000;
    let mut written = 0usize;
    let mut n: u128 = 0;
    let started = Instant::now();
    while written < total {
        n += 1;
        let i = n as i64;
        let at = T0 + (i * 7919 * 1000) % span_ms;
        let id = message_id(at, n);
        let rcpt_domain = format!("d{}.test", i % 2000);
        let mx = format!("mx{}.provider{}.test", i % 3, i % 40);
        let recipient = format!("user{i}@{rcpt_domain}");
        let message_tags: Vec<&str> = (0..(i % 3)).map(|t| tags[((i + t) % 6) as usize]).collect();
        writer.message(NewMessage {
            sending_domain: Some(domains[(i % 3) as usize].to_owned()),
            ..new_message(acme.id, &id, at, &[recipient.as_str()], &message_tags)
        });
        let mut events = vec![
            (EventKind::Received, EventDetails::None),
            match i % 10 {
                0 => (EventKind::Bounced, mx_details(&mx)),
                1 => (EventKind::Deferred, mx_details(&mx)),
                _ => (EventKind::Delivered, mx_details(&mx)),
            },
        ];
        if i % 2 == 0 {
            events.push((EventKind::Opened, engaged(true)));
        }
        if i % 4 == 0 {
            events.push((EventKind::Clicked, engaged(true)));
        }
        for (k, (kind, details)) in events.into_iter().enumerate() {
            writer.event(event(
                acme.id,
                &id,
                &recipient,
                kind,
                at + k as i64,
                details,
            ));
            written += 1;
        }
        if n.is_multiple_of(20_000) {
            writer.flush().await; // keeps the channel (memory) bounded
        }
    }
    writer.flush().await;
    let write_time = started.elapsed();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM stats_hourly")
        .fetch_one(&store.pool)
        .await
        .expect("count");
    let provider_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM stats_hourly_provider")
        .fetch_one(&store.pool)
        .await
        .expect("count");
    println!(
        "wrote {written} events of {n} messages in {:.1} s ({:.0} events/s); \
         {rows} stats_hourly rows, {provider_rows} stats_hourly_provider rows",
        write_time.as_secs_f64(),
        written as f64 / write_time.as_secs_f64()
    );
    let week = StatsFilter {
        bucket_seconds: DAY_SECONDS,
        ..filter(
            T0 + 30 * DAY_SECONDS * 1000,
            T0 + 37 * DAY_SECONDS * 1000,
            DAY_SECONDS,
        )
    };
    let cases = [
        ("7 days by day", week.clone()),
        (
            "31 days by hour",
            filter(T0, T0 + 31 * DAY_SECONDS * 1000, HOUR_SECONDS),
        ),
        (
            "60 days by day, tag=promo",
            StatsFilter {
                tag: Some("promo".to_owned()),
                ..filter(T0, T0 + span_ms, DAY_SECONDS)
            },
        ),
        (
            "7 days by day, domain=shop.test",
            StatsFilter {
                domain: Some("shop.test".to_owned()),
                ..week.clone()
            },
        ),
        (
            "7 days by day, group=tag",
            StatsFilter {
                group: Some(StatsGroup::Tag),
                ..week.clone()
            },
        ),
        (
            "7 days by day, group=provider",
            StatsFilter {
                group: Some(StatsGroup::Provider),
                ..week.clone()
            },
        ),
    ];
    for (name, case) in cases {
        let started = Instant::now();
        let mut found = 0;
        for _ in 0..10 {
            found = store.stats(acme.id, &case).await.expect("stats").len();
        }
        println!(
            "{name}: {found} rows, {:.2} ms per query (mean of 10)",
            started.elapsed().as_secs_f64() * 100.0
        );
    }
    writer.close().await;
    task.await.expect("writer ends");
}
