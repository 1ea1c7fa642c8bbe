//! How long the dashboard's store queries take on a large account: fills a
//! database with MESSAGES messages over the last 30 days (one recipient
//! each; `received` and then `delivered`, 2% `bounced` instead, 0.1% also
//! `complained`; every other one tagged `news`), then times each query a page
//! makes, several times, and prints the median and the slowest.
//!
//! `cargo run --release -p carteiro-store --example dashboard_queries -- [MESSAGES] [DB]`
//!
//! MESSAGES defaults to 1,000,000 (about 3 million rows with the events).
//! DB is a SQLite file to fill (kept, and reused without filling when it
//! exists); with `CARTEIRO_BENCH_POSTGRES=postgres://…` the store is that
//! database instead (it must be empty the first time).

use std::time::{Duration, Instant};

use carteiro_mail::MessageId;
use carteiro_store::{
    DAY_SECONDS, DeliveryDetails, EventDetails, EventKind, HOUR_SECONDS, MessageFilter,
    MessageSource, NewEvent, NewMessage, StatsFilter, Store,
};

/// Messages per transaction while filling.
const BATCH: usize = 2_000;

/// Runs of each query.
const RUNS: usize = 7;

/// Page size of the dashboard's message search.
const PAGE: u32 = 51;

fn recipient(i: usize) -> String {
    format!("user{}@example{}.net", i % 200_000, i % 50)
}

fn event(account_id: i64, id: &str, i: usize, kind: EventKind, ms: i64) -> NewEvent {
    NewEvent {
        account_id,
        message_id: id.to_owned(),
        recipient: Some(recipient(i)),
        kind,
        timestamp_ms: ms,
        details: match kind {
            EventKind::Delivered | EventKind::Bounced => EventDetails::Delivery(DeliveryDetails {
                attempt: 1,
                remote_host: Some("mx1.example.net[192.0.2.25]:25".to_owned()),
                reply: Some(if kind == EventKind::Delivered {
                    "250 2.0.0 Ok: queued as 4ZxY1k2Lmz".to_owned()
                } else {
                    "550 5.1.1 user unknown".to_owned()
                }),
                ..DeliveryDetails::default()
            }),
            _ => EventDetails::None,
        },
    }
}

async fn fill(store: &Store, count: usize) -> Result<(), Box<dyn std::error::Error>> {
    let account = store.ensure_account("big").await?;
    let now_ms = i64::try_from(carteiro_mail::clock::now_millis())?;
    let span_ms = 30 * DAY_SECONDS * 1000;
    let started = Instant::now();
    let mut messages = Vec::with_capacity(BATCH);
    let mut events = Vec::with_capacity(BATCH * 3);
    for i in 0..count {
        // Oldest first, evenly over the 30 days.
        let ms = now_ms - span_ms + (span_ms / count as i64) * i as i64;
        let id = MessageId((u128::try_from(ms)? << 80) | i as u128).to_string();
        messages.push(NewMessage {
            id: id.clone(),
            account_id: account.id,
            sender: "news@big.example".to_owned(),
            recipients: vec![recipient(i)],
            subject: Some(if i % 2 == 0 {
                format!("Weekly news {}", i / 7_000)
            } else {
                format!("Your order {i}")
            }),
            header_message_id: Some(format!("<{id}@big.example>")),
            tags: if i % 2 == 0 {
                vec!["news".to_owned()]
            } else {
                Vec::new()
            },
            sending_domain: Some("big.example".to_owned()),
            metadata: serde_json::Value::Null,
            source: MessageSource::Smtp,
            size: 4096,
            received_at_ms: ms,
            headers: None,
        });
        events.push(event(account.id, &id, i, EventKind::Received, ms));
        let outcome = if i % 50 == 0 {
            EventKind::Bounced
        } else {
            EventKind::Delivered
        };
        events.push(event(account.id, &id, i, outcome, ms + 900));
        if i % 1000 == 1 {
            events.push(event(
                account.id,
                &id,
                i,
                EventKind::Complained,
                ms + 60_000,
            ));
        }
        if messages.len() == BATCH {
            store.record_batch(&messages, &events).await?;
            messages.clear();
            events.clear();
        }
    }
    store.record_batch(&messages, &events).await?;
    println!(
        "filled {count} messages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `query` RUNS times; prints the median and the slowest.
async fn time<F, Fut, T>(what: &str, mut query: F) -> Result<(), Box<dyn std::error::Error>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, carteiro_store::StoreError>>,
    T: std::fmt::Debug + Rows,
{
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut rows = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let answer = query().await?;
        times.push(started.elapsed());
        rows = answer.rows();
    }
    times.sort_unstable();
    println!(
        "{what:<58} median {:>8.2} ms  slowest {:>8.2} ms  ({rows} rows)",
        times[RUNS / 2].as_secs_f64() * 1e3,
        times[RUNS - 1].as_secs_f64() * 1e3,
    );
    Ok(())
}

/// How many rows an answer holds, for the printout.
trait Rows {
    fn rows(&self) -> usize;
}

impl<T> Rows for Vec<T> {
    fn rows(&self) -> usize {
        self.len()
    }
}

impl<T> Rows for Option<T> {
    fn rows(&self) -> usize {
        usize::from(self.is_some())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let kept = args.next();
    let dir = tempfile::tempdir()?;
    let (store, filled) = match std::env::var("CARTEIRO_BENCH_POSTGRES") {
        Ok(url) => {
            let store = Store::connect(&url).await?;
            let filled = store.account("big").await?.is_some();
            (store, filled)
        }
        Err(_) => {
            let path = kept.map_or_else(|| dir.path().join("carteiro.db"), Into::into);
            let filled = path.exists();
            (Store::open(&path).await?, filled)
        }
    };
    if !filled {
        fill(&store, count).await?;
    }
    let account = store.account("big").await?.ok_or("no account big")?;
    let id = account.id;
    let now_ms = i64::try_from(carteiro_mail::clock::now_millis())?;
    let stats = |span: i64, bucket: i64| StatsFilter {
        since_ms: now_ms - span * 1000,
        until_ms: now_ms,
        bucket_seconds: bucket,
        domain: None,
        tag: None,
        provider: None,
        group: None,
    };
    let overview = |filter: StatsFilter| {
        let store = store.clone();
        async move { store.stats(id, &filter).await }
    };
    let search = |filter: MessageFilter| {
        let store = store.clone();
        async move { store.search_messages(id, &filter, PAGE, None).await }
    };
    let newest = search(MessageFilter::default()).await?;
    let some_id = newest.get(10).map(|m| m.id.clone()).ok_or("no messages")?;

    println!("queries of one account with {count} messages (over 30 days), {RUNS} runs each:");
    time("overview: 24 hours by hour", || {
        overview(stats(DAY_SECONDS, HOUR_SECONDS))
    })
    .await?;
    time("overview: 7 days by hour", || {
        overview(stats(7 * DAY_SECONDS, HOUR_SECONDS))
    })
    .await?;
    time("overview: 30 days by day", || {
        overview(stats(30 * DAY_SECONDS, DAY_SECONDS))
    })
    .await?;
    time("overview: 30 days by day, tag news", || {
        let mut f = stats(30 * DAY_SECONDS, DAY_SECONDS);
        f.tag = Some("news".to_owned());
        overview(f)
    })
    .await?;
    time("messages: newest page", || search(MessageFilter::default())).await?;
    time("messages: by recipient", || {
        search(MessageFilter {
            recipient: Some(recipient(123_457)),
            ..MessageFilter::default()
        })
    })
    .await?;
    time("messages: by tag", || {
        search(MessageFilter {
            tag: Some("news".to_owned()),
            ..MessageFilter::default()
        })
    })
    .await?;
    time("messages: status bounced (2%)", || {
        search(MessageFilter {
            status: Some("bounced".to_owned()),
            ..MessageFilter::default()
        })
    })
    .await?;
    time("messages: one day, 10 days ago", || {
        search(MessageFilter {
            since_ms: Some(now_ms - 11 * DAY_SECONDS * 1000),
            until_ms: Some(now_ms - 10 * DAY_SECONDS * 1000),
            ..MessageFilter::default()
        })
    })
    .await?;
    time("messages: subject, common (\"weekly\")", || {
        search(MessageFilter {
            subject: Some("weekly".to_owned()),
            ..MessageFilter::default()
        })
    })
    .await?;
    time(
        "messages: subject, one message (worst case: a full scan)",
        || {
            search(MessageFilter {
                subject: Some("order 123457".to_owned()),
                ..MessageFilter::default()
            })
        },
    )
    .await?;
    time("messages: subject, one message, within one day", || {
        search(MessageFilter {
            subject: Some("order 123457".to_owned()),
            since_ms: Some(now_ms - 27 * DAY_SECONDS * 1000),
            until_ms: Some(now_ms - 26 * DAY_SECONDS * 1000),
            ..MessageFilter::default()
        })
    })
    .await?;
    time("messages: by Message-ID header", || {
        search(MessageFilter {
            header_message_id: Some(format!("<{some_id}@big.example>")),
            ..MessageFilter::default()
        })
    })
    .await?;
    time("message page: one message with its events", || {
        store.message(id, &some_id)
    })
    .await?;
    time("suppressions: first page", || {
        store.list_suppressions(id, None, None, 51)
    })
    .await?;
    store.close().await;
    Ok(())
}
