//! Slow clients, with time paused: a command line dripped byte by byte,
//! content below the minimum rate, and clients that are slow but within the
//! limits. The client is a task writing on a schedule; the test reads the
//! server's output until the session closes and notes when that was.

use super::*;
use std::time::Duration;
use tokio::time::Instant;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the client does, in order.
enum Step {
    Send(Vec<u8>),
    /// `bytes` in pieces of `piece` bytes, one piece every `every`.
    Drip {
        bytes: Vec<u8>,
        piece: usize,
        every: Duration,
    },
    Pause(Duration),
}

fn send(text: &str) -> Step {
    Step::Send(text.as_bytes().to_vec())
}

fn drip(text: &str, piece: usize, every: Duration) -> Step {
    Step::Drip {
        bytes: text.as_bytes().to_vec(),
        piece,
        every,
    }
}

fn slow_config() -> Config {
    let mut config = config(true);
    config.smtp.command_timeout = COMMAND_TIMEOUT;
    config.smtp.min_data_rate = 1000;
    config.smtp.max_message_size = 10_000_000;
    config
}

/// `n` bytes of message content in lines of 100 octets.
fn content(n: usize) -> String {
    let line = format!("{}\r\n", "x".repeat(98));
    line.repeat(n / line.len())
}

/// Runs a session against the client's `steps`; returns the server's
/// output and how long after the start the session closed.
async fn drive(
    config: Config,
    steps: Vec<Step>,
) -> (String, Duration, Arc<ServerContext<TestHandler>>) {
    let ctx = ServerContext::new(Arc::new(config), None, TestHandler::default());
    let (client, server) = tokio::io::duplex(1 << 20);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let start = Instant::now();
    let session = tokio::spawn(run_session(
        Arc::clone(&ctx),
        server,
        peer,
        Role::Relay,
        stop_rx,
    ));
    let (mut reader, mut writer) = tokio::io::split(client);
    let client = tokio::spawn(async move {
        for step in steps {
            match step {
                Step::Send(bytes) => writer.write_all(&bytes).await?,
                Step::Drip {
                    bytes,
                    piece,
                    every,
                } => {
                    for piece in bytes.chunks(piece) {
                        writer.write_all(piece).await?;
                        tokio::time::sleep(every).await;
                    }
                }
                Step::Pause(pause) => tokio::time::sleep(pause).await,
            }
        }
        // Keep the connection open: the server decides when it ends.
        std::future::pending::<()>().await;
        Ok::<_, io::Error>(writer)
    });
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.unwrap();
    let closed_after = start.elapsed();
    session.await.unwrap();
    client.abort();
    (String::from_utf8(out).unwrap(), closed_after, ctx)
}

fn assert_closed_within(closed_after: Duration, from: Duration, to: Duration, out: &str) {
    assert!(
        closed_after >= from && closed_after < to,
        "closed after {closed_after:?}, expected {from:?}..{to:?}: {out}"
    );
}

const TRANSACTION: &str = "EHLO c.test\r\nMAIL FROM:<a@o.test>\r\nRCPT TO:<b@remote.test>\r\n";

#[tokio::test(start_paused = true)]
async fn a_command_line_dripped_a_byte_a_second_is_cut_at_the_command_timeout() {
    let line = "MAIL FROM:<someone.with.a.long.name@somewhere.example>\r\n";
    let (out, closed_after, ctx) = drive(
        slow_config(),
        vec![
            send("EHLO c.test\r\n"),
            drip(line, 1, Duration::from_secs(1)),
        ],
    )
    .await;
    // Each read came well within the idle timeout; the line as a whole
    // did not come within the command timeout.
    assert!(
        out.ends_with("250 HELP\r\n421 4.4.2 relay.test command timeout, closing connection\r\n"),
        "{out}"
    );
    assert_closed_within(
        closed_after,
        COMMAND_TIMEOUT,
        COMMAND_TIMEOUT + Duration::from_secs(1),
        &out,
    );
    assert!(accepted(&ctx).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_complete_command_line_and_an_idle_pause_are_fine() {
    let (out, _, _) = drive(
        slow_config(),
        vec![
            send("EHLO c.test\r\n"),
            // Nine seconds for one line, and a minute of silence between
            // commands (the idle timeout is five minutes).
            drip("MAIL FROM:<ab@o.test>\r\n", 3, Duration::from_millis(1200)),
            Step::Pause(Duration::from_secs(60)),
            send("QUIT\r\n"),
        ],
    )
    .await;
    assert_eq!(codes(&out), vec![220, 250, 250, 221], "{out}");
}

#[tokio::test(start_paused = true)]
async fn data_dripped_below_the_minimum_rate_is_cut() {
    let mut steps = vec![send(&format!("{TRANSACTION}DATA\r\n"))];
    steps.push(drip(&content(1000), 1, Duration::from_secs(1)));
    let (out, closed_after, ctx) = drive(slow_config(), steps).await;
    assert!(
        out.ends_with("354 2.0.0 end data with <CR><LF>.<CR><LF>\r\n421 4.4.2 relay.test data timeout: message content too slow, closing connection\r\n"),
        "{out}"
    );
    // The slack, plus the millisecond of credit each byte bought.
    assert_closed_within(
        closed_after,
        COMMAND_TIMEOUT,
        COMMAND_TIMEOUT + Duration::from_secs(1),
        &out,
    );
    assert!(accepted(&ctx).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_fast_start_does_not_buy_a_long_trickle() {
    // 100 KB at once is 100 s of credit at 1 KB/s, but the client may only
    // be the slack ahead: the trickle after it is cut as soon.
    let steps = vec![
        send(&format!("{TRANSACTION}DATA\r\n{}", content(100_000))),
        drip(&content(1000), 1, Duration::from_secs(1)),
    ];
    let (out, closed_after, ctx) = drive(slow_config(), steps).await;
    assert!(out.contains("421 4.4.2 relay.test data timeout"), "{out}");
    assert_closed_within(
        closed_after,
        COMMAND_TIMEOUT,
        COMMAND_TIMEOUT + Duration::from_secs(1),
        &out,
    );
    assert!(accepted(&ctx).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_bdat_chunk_dripped_below_the_minimum_rate_is_cut() {
    let steps = vec![
        send(&format!("{TRANSACTION}BDAT 1000 LAST\r\n")),
        drip(&content(1000), 1, Duration::from_secs(1)),
    ];
    let (out, closed_after, ctx) = drive(slow_config(), steps).await;
    assert!(
        out.ends_with(
            "421 4.4.2 relay.test data timeout: message content too slow, closing connection\r\n"
        ),
        "{out}"
    );
    assert_closed_within(
        closed_after,
        COMMAND_TIMEOUT,
        COMMAND_TIMEOUT + Duration::from_secs(1),
        &out,
    );
    assert!(accepted(&ctx).is_empty());
}

#[tokio::test(start_paused = true)]
async fn clients_at_an_acceptable_rate_are_never_cut() {
    let every = Duration::from_millis(100);
    // 50 KB/s for 30 s (three times the slack), by DATA and by BDAT.
    let body = content(1_500_000);
    let steps = vec![
        send(&format!("{TRANSACTION}DATA\r\n")),
        drip(&body, 5000, every),
        send(&format!(
            ".\r\nMAIL FROM:<a@o.test>\r\nRCPT TO:<b@remote.test>\r\nBDAT {} LAST\r\n",
            body.len()
        )),
        drip(&body, 5000, every),
        send("QUIT\r\n"),
    ];
    let (out, closed_after, ctx) = drive(slow_config(), steps).await;
    assert_eq!(
        codes(&out),
        vec![220, 250, 250, 250, 354, 250, 250, 250, 250, 221],
        "{out}"
    );
    assert!(closed_after >= Duration::from_secs(60), "{closed_after:?}");
    assert_eq!(accepted(&ctx).len(), 2);

    // Barely above the minimum (1.2 KB/s) for 40 s, with a stall shorter
    // than the slack in the middle.
    let body = content(48_000);
    let (first, second) = body.split_at(24_000);
    let steps = vec![
        send(&format!("{TRANSACTION}DATA\r\n")),
        drip(first, 120, every),
        Step::Pause(Duration::from_secs(5)),
        drip(second, 120, every),
        send(".\r\nQUIT\r\n"),
    ];
    let (out, _, ctx) = drive(slow_config(), steps).await;
    assert_eq!(
        codes(&out),
        vec![220, 250, 250, 250, 354, 250, 221],
        "{out}"
    );
    assert_eq!(accepted(&ctx).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn rate_zero_turns_the_minimum_off() {
    let mut config = slow_config();
    config.smtp.min_data_rate = 0;
    let body = content(500);
    let steps = vec![
        send(&format!("{TRANSACTION}DATA\r\n")),
        drip(&body, 1, Duration::from_secs(1)),
        send(".\r\nQUIT\r\n"),
    ];
    let (out, closed_after, _) = drive(config, steps).await;
    assert_eq!(
        codes(&out),
        vec![220, 250, 250, 250, 354, 250, 221],
        "{out}"
    );
    assert!(closed_after >= Duration::from_secs(500));
}
