//! Throughput of the event writer: pushes messages (one recipient each) with a
//! `received` and a `delivered` event through an `EventWriter` into a new
//! database file, and prints the time taken, rows per second and CPU used.
//!
//! `cargo run --release -p carteiro-store --example event_writer_bench -- [MESSAGES] [LAG] [RATE] [LINGER_MS]`
//!
//! LAG (default 2000) is how many messages later each `delivered` event is
//! sent: 0 puts it in its message's batch (no UPDATE); a lag larger than a
//! batch makes it an UPDATE of a committed row, as when delivery takes a while.
//! RATE (messages per second, default 0: as fast as possible) paces the sender
//! in 1 ms steps, to see what the writer costs beside a relay at that rate.
//! LINGER_MS (default: the writer's default) is how long a batch waits for more.
//! With `BASELINE=1` in the environment, items are built and dropped instead of
//! sent: the CPU the bench itself uses, to subtract. `HEADERS=N` gives each
//! message a header section of about N bytes (a DKIM-signed one is ~1,300).

use std::time::{Duration, Instant};

use carteiro_mail::MessageId;
use carteiro_store::{
    DeliveryDetails, EventDetails, EventKind, EventWriter, MessageSource, NewEvent, NewMessage,
    ReceivedDetails, Store,
};

/// User plus system CPU time of this process so far (Linux), if readable.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (in parentheses, which may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

fn event(account_id: i64, id: &str, kind: EventKind, ms: i64, details: EventDetails) -> NewEvent {
    NewEvent {
        account_id,
        message_id: id.to_owned(),
        recipient: Some("recipient@example.net".to_owned()),
        kind,
        timestamp_ms: ms,
        details,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let lag: usize = args.next().map_or(Ok(2000), |a| a.parse())?;
    let rate: usize = args.next().map_or(Ok(0), |a| a.parse())?;
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let per_tick = (rate / 1000).max(1);
    let linger = match args.next() {
        Some(ms) => Duration::from_millis(ms.parse()?),
        None => carteiro_store::DEFAULT_LINGER,
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("carteiro.db");
    let store = Store::open(&path).await?;
    let account = store.create_account("bench").await?;
    let baseline = std::env::var_os("BASELINE").is_some();
    let headers = std::env::var("HEADERS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .map(|n| {
            let line = "X-Header: dGhpcyBpcyBqdXN0IGEgaGVhZGVyIGxpbmUgb2YgYSBiZW5jaA==\r\n";
            carteiro_store::MessageHeaders::from_section(line.repeat(n / line.len() + 1).as_bytes())
        });
    let (writer, task) = EventWriter::start_with_linger(store.clone(), linger);
    let send_message = |message: NewMessage| {
        if !baseline {
            writer.message(message);
        }
    };
    let send_event = |event: NewEvent| {
        if !baseline {
            writer.event(event);
        }
    };

    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let ids: Vec<String> = (0..count)
        .map(|_| MessageId::generate().to_string())
        .collect();
    let delivered = |i: usize| {
        event(
            account.id,
            &ids[i],
            EventKind::Delivered,
            now_ms + 50,
            EventDetails::Delivery(DeliveryDetails {
                attempt: 1,
                remote_host: Some("mx1.example.net[192.0.2.25]:25".to_owned()),
                mx: Some("mx1.example.net".to_owned()),
                reply: Some("250 2.0.0 Ok: queued as 4ZxY1k2Lmz".to_owned()),
                reply_code: Some(250),
                status: Some("2.0.0".to_owned()),
                ..DeliveryDetails::default()
            }),
        )
    };

    let cpu_before = cpu_time();
    let started = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        if rate > 0 && i % per_tick == 0 {
            ticks.tick().await;
        }
        send_message(NewMessage {
            id: id.clone(),
            account_id: account.id,
            sender: "newsletter@example.com".to_owned(),
            recipients: vec!["recipient@example.net".to_owned()],
            subject: Some("Your weekly summary".to_owned()),
            header_message_id: Some(format!("<{id}@example.com>")),
            tags: Vec::new(),
            sending_domain: None,
            metadata: serde_json::Value::Null,
            source: MessageSource::Smtp,
            size: 4096,
            received_at_ms: now_ms,
            headers: headers.clone(),
        });
        send_event(event(
            account.id,
            id,
            EventKind::Received,
            now_ms,
            EventDetails::Received(ReceivedDetails {
                smtp: None,
                source: "smtp".to_owned(),
                size: 4096,
                dkim_domain: None,
                node: None,
            }),
        ));
        if i >= lag {
            send_event(delivered(i - lag));
        }
    }
    for i in count.saturating_sub(lag)..count {
        send_event(delivered(i));
    }
    let sent = started.elapsed();
    writer.flush().await;
    let elapsed = started.elapsed();
    let cpu = cpu_before.zip(cpu_time()).map(|(a, b)| b - a);
    writer.close().await;
    task.await?;

    // Rows written: a message, its recipient row and two events each.
    let rows = count * 4;
    let seconds = elapsed.as_secs_f64();
    println!(
        "messages: {count}, delivered lag: {lag} messages, rate: {rate}/s (0: unpaced), linger: {linger:?}"
    );
    println!(
        "sending took {:.3} s (the caller's cost)",
        sent.as_secs_f64()
    );
    println!(
        "written in {seconds:.3} s: {:.0} messages/s, {:.0} rows/s",
        count as f64 / seconds,
        rows as f64 / seconds
    );
    if let Some(cpu) = cpu {
        println!(
            "cpu: {:.2} s, {:.1} us per message, {:.0}% of one core over the run",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / count as f64,
            cpu.as_secs_f64() * 100.0 / seconds
        );
    }
    let delivered_rows: i64 = count_delivered(&store).await?;
    println!("recipients delivered: {delivered_rows}");
    println!(
        "database: {} bytes",
        std::fs::metadata(&path)?.len()
            + std::fs::metadata(dir.path().join("carteiro.db-wal")).map_or(0, |m| m.len())
    );
    store.close().await;
    Ok(())
}

/// How many recipients ended `delivered`, read through the public API.
async fn count_delivered(store: &Store) -> Result<i64, Box<dyn std::error::Error>> {
    let account = store.account("bench").await?.ok_or("no account")?;
    let filter = carteiro_store::MessageFilter {
        status: Some("delivered".to_owned()),
        ..Default::default()
    };
    let mut total = 0i64;
    let mut before: Option<String> = None;
    loop {
        let page = store
            .search_messages(account.id, &filter, 1000, before.as_deref())
            .await?;
        total += i64::try_from(page.len())?;
        match page.last() {
            Some(last) if page.len() == 1000 => before = Some(last.id.clone()),
            _ => return Ok(total),
        }
    }
}
