//! The event writer: takes message records and events from the mail path
//! without ever making it wait on SQL, and writes them in the background.
//!
//! One task drains an unbounded channel into transactions of up to
//! [`MAX_BATCH`] items, on its own connection (whose page cache stays warm).
//! After the first item of a batch it sleeps for [`DEFAULT_LINGER`] and takes
//! what came meanwhile, unless a flush or close hurries it. Committing
//! whatever is waiting at once looks cheaper and is not: every commit
//! rewrites the hot pages of each table and index it touches, so a
//! transaction costs about the same whether it holds 3 items or 300, and a
//! writer that never waits ends up committing a few items at a time, over
//! and over. Beside a paced 8,000 messages/s with a `received`
//! and a `delivered` event each (examples/event_writer_bench.rs, 2 cores),
//! the writer took about 75% of a core without lingering, 40% with 10 ms and
//! 30% with 50 ms; at 1,000 messages/s, 40%, 15% and 8%. Nobody waits for the
//! event log but [`EventWriter::flush`], which does not wait for the linger.
//!
//! A failed transaction is retried a few times, then dropped with an error
//! log: losing part of the event log is better than blocking delivery or
//! growing memory forever. This module does not decide what is an event;
//! callers send what happened.

use std::sync::Arc;
use std::time::Duration;

use sqlx::SqliteConnection;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::StoreError;
use crate::event_batch::write_batch;
use crate::events::NewEvent;
use crate::messages::NewMessage;
use crate::stats::StatsMemory;
use crate::store::Store;

/// Most items (messages and events) written in one transaction.
pub const MAX_BATCH: usize = 1000;

/// How long a batch waits for more items after its first one, by default.
/// Events then show up in queries at most this much later (plus the write);
/// [`EventWriter::flush`] does not wait for it.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(50);

/// Pauses before the retries of a failed transaction; after the last one the
/// batch is dropped.
const RETRY_PAUSES: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

/// What the task receives.
enum Command {
    Message(NewMessage),
    Event(NewEvent),
    /// Answer once everything sent before is committed (or dropped).
    Flush(oneshot::Sender<()>),
    /// Like `Flush`, then stop.
    Close(oneshot::Sender<()>),
}

/// A handle on the writer task. Cheap to clone; sending never waits.
#[derive(Clone, Debug)]
pub struct EventWriter {
    sender: mpsc::UnboundedSender<Command>,
    /// Cuts the task's linger short: flush and close want an answer now.
    hurry: Arc<Notify>,
}

impl EventWriter {
    /// Starts the writer task on the current tokio runtime. The task ends on
    /// [`close`](EventWriter::close), or when every handle is dropped (after
    /// writing what was sent).
    pub fn start(store: Store) -> (EventWriter, JoinHandle<()>) {
        EventWriter::start_with_linger(store, DEFAULT_LINGER)
    }

    /// [`start`](EventWriter::start) with another linger; zero writes
    /// whatever is waiting at once, never waiting for more.
    pub fn start_with_linger(store: Store, linger: Duration) -> (EventWriter, JoinHandle<()>) {
        EventWriter::start_with(store, linger, &RETRY_PAUSES)
    }

    /// The general form, with other retry pauses (tests use none).
    fn start_with(
        store: Store,
        linger: Duration,
        pauses: &'static [Duration],
    ) -> (EventWriter, JoinHandle<()>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let hurry = Arc::new(Notify::new());
        let inbox = Inbox {
            receiver,
            hurry: Arc::clone(&hurry),
            linger,
        };
        let task = tokio::spawn(run(store, inbox, pauses));
        (EventWriter { sender, hurry }, task)
    }

    /// Queues a message record. Send it before any event of the message, so
    /// the events find it.
    pub fn message(&self, message: NewMessage) {
        self.send(Command::Message(message));
    }

    /// Queues an event.
    pub fn event(&self, event: NewEvent) {
        self.send(Command::Event(event));
    }

    /// Resolves once everything sent before this call is committed (or, after
    /// failed retries, dropped). Returns at once if the writer has stopped.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        self.send(Command::Flush(done));
        self.hurry.notify_one();
        // An error means the task is gone: nothing is left to wait for.
        let _ = wait.await;
    }

    /// Writes everything sent before this call, then stops the task. Items
    /// other handles send afterwards are dropped (with a warning).
    pub async fn close(self) {
        let (done, wait) = oneshot::channel();
        self.send(Command::Close(done));
        self.hurry.notify_one();
        let _ = wait.await;
    }

    fn send(&self, command: Command) {
        if self.sender.send(command).is_err() {
            tracing::warn!("event writer stopped: message record or event dropped");
        }
    }
}

/// The task: batches whatever is waiting into one transaction at a time.
async fn run(store: Store, mut inbox: Inbox, pauses: &'static [Duration]) {
    let mut connection = Connection {
        store,
        connection: None,
        stats: StatsMemory::default(),
    };
    let mut commands = Vec::with_capacity(MAX_BATCH);
    let mut messages = Vec::new();
    let mut events = Vec::new();
    let mut waiters = Vec::new();
    loop {
        if !inbox.gather(&mut commands).await {
            break; // every handle dropped, everything written
        }
        let mut closing = None;
        for command in commands.drain(..) {
            match command {
                Command::Message(message) => messages.push(message),
                Command::Event(event) => events.push(event),
                Command::Flush(done) => waiters.push(done),
                Command::Close(done) => closing = Some(done),
            }
        }
        write_with_retries(&mut connection, &messages, &events, pauses).await;
        messages.clear();
        events.clear();
        for done in waiters.drain(..) {
            let _ = done.send(());
        }
        if let Some(done) = closing {
            inbox.receiver.close();
            let mut dropped = 0usize;
            while let Ok(command) = inbox.receiver.try_recv() {
                match command {
                    Command::Flush(done) | Command::Close(done) => {
                        let _ = done.send(());
                    }
                    Command::Message(_) | Command::Event(_) => dropped += 1,
                }
            }
            if dropped > 0 {
                tracing::warn!(dropped, "event writer closed: later items dropped");
            }
            connection.close().await;
            let _ = done.send(());
            return;
        }
    }
    connection.close().await;
}

/// The task's end of the channel.
struct Inbox {
    receiver: mpsc::UnboundedReceiver<Command>,
    hurry: Arc<Notify>,
    linger: Duration,
}

impl Inbox {
    /// Receives the next batch into `commands`: waits for a first item, then
    /// (unless the batch is full) sleeps until `linger` has passed or a flush
    /// or close hurries it, and takes what came meanwhile. Sleeping rather
    /// than receiving item by item keeps senders from waking the task for
    /// each one. Returns `false` when every handle is dropped and nothing is
    /// left.
    async fn gather(&mut self, commands: &mut Vec<Command>) -> bool {
        if self.receiver.recv_many(commands, MAX_BATCH).await == 0 {
            return false;
        }
        let urgent = |commands: &[Command]| {
            commands
                .iter()
                .any(|c| matches!(c, Command::Flush(_) | Command::Close(_)))
        };
        if self.linger.is_zero() || commands.len() >= MAX_BATCH || urgent(commands) {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(self.linger) => {}
            () = self.hurry.notified() => {}
        }
        while commands.len() < MAX_BATCH {
            match self.receiver.try_recv() {
                Ok(command) => commands.push(command),
                Err(_) => break,
            }
        }
        true
    }
}

/// The writer's own connection, opened on first use and dropped after a
/// failure (the next attempt opens a new one), and what the statistics
/// remember of recent messages.
struct Connection {
    store: Store,
    connection: Option<SqliteConnection>,
    stats: StatsMemory,
}

impl Connection {
    /// Closes the connection, letting SQLite tidy up (checkpoint) as it goes.
    async fn close(&mut self) {
        if let Some(connection) = self.connection.take()
            && let Err(error) = sqlx::Connection::close(connection).await
        {
            tracing::debug!(%error, "closing the event writer's connection failed");
        }
    }

    async fn write(
        &mut self,
        messages: &[NewMessage],
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => self
                .connection
                .insert(self.store.dedicated_connection().await?),
        };
        let result = write_batch(connection, &mut self.stats, messages, events).await;
        if result.is_err() {
            self.connection = None;
        }
        result
    }
}

/// Writes one batch, retrying a failed transaction; logs and drops the batch
/// when every attempt failed.
async fn write_with_retries(
    connection: &mut Connection,
    messages: &[NewMessage],
    events: &[NewEvent],
    pauses: &[Duration],
) {
    if messages.is_empty() && events.is_empty() {
        return;
    }
    let mut pauses = pauses.iter();
    loop {
        match connection.write(messages, events).await {
            Ok(()) => return,
            Err(error) => match pauses.next() {
                Some(pause) => {
                    tracing::warn!(%error, retry_in = ?pause, "event batch failed, retrying");
                    tokio::time::sleep(*pause).await;
                }
                None => {
                    tracing::error!(
                        %error,
                        messages = messages.len(),
                        events = events.len(),
                        "event batch failed repeatedly, dropped"
                    );
                    return;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventKind;
    use crate::testutil::{T0, message_id, new_event, new_message, temp_store};

    #[tokio::test]
    async fn flush_makes_everything_sent_before_visible() {
        let (_dir, store) = temp_store().await;
        let acme = store.create_account("acme").await.expect("account");
        let (writer, task) = EventWriter::start(store.clone());
        let ids: Vec<String> = (0..50).map(|i| message_id(T0 + i, 1)).collect();
        for (i, id) in (0i64..).zip(&ids) {
            writer.message(new_message(acme.id, id, T0 + i, &["r@x.test"], &[]));
            writer.event(new_event(acme.id, id, None, EventKind::Received, T0 + i));
        }
        writer.flush().await;
        for id in &ids {
            let found = store
                .message(acme.id, id)
                .await
                .expect("read")
                .expect("written");
            assert_eq!(found.events.len(), 1);
            assert_eq!(found.recipients[0].state, "queued");
        }
        // Later events update the state, each after its own flush.
        let clone = writer.clone();
        clone.event(new_event(
            acme.id,
            &ids[0],
            Some("r@x.test"),
            EventKind::Deferred,
            T0 + 100,
        ));
        clone.flush().await;
        let found = store
            .message(acme.id, &ids[0])
            .await
            .expect("read")
            .expect("found");
        assert_eq!(found.recipients[0].state, "deferred");
        writer.event(new_event(
            acme.id,
            &ids[0],
            Some("r@x.test"),
            EventKind::Delivered,
            T0 + 200,
        ));
        writer.event(new_event(
            acme.id,
            &ids[1],
            Some("r@x.test"),
            EventKind::Bounced,
            T0 + 200,
        ));
        writer.flush().await;
        let delivered = store
            .message(acme.id, &ids[0])
            .await
            .expect("read")
            .expect("found");
        let kinds: Vec<_> = delivered.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Received,
                EventKind::Deferred,
                EventKind::Delivered
            ]
        );
        assert_eq!(delivered.recipients[0].state, "delivered");
        let bounced = store
            .message(acme.id, &ids[1])
            .await
            .expect("read")
            .expect("found");
        assert_eq!(bounced.recipients[0].state, "bounced");

        drop(clone);
        writer.close().await;
        task.await.expect("writer task ends after close");
    }

    #[tokio::test]
    async fn close_writes_what_was_sent_and_later_sends_are_dropped() {
        let (_dir, store) = temp_store().await;
        let acme = store.create_account("acme").await.expect("account");
        let (writer, task) = EventWriter::start(store.clone());
        let other = writer.clone();
        let id = message_id(T0, 1);
        writer.message(new_message(acme.id, &id, T0, &["r@x.test"], &[]));
        writer.close().await;
        assert!(store.message(acme.id, &id).await.expect("read").is_some());
        task.await.expect("writer task ends");
        // The task is gone: sending is a logged no-op and flush returns.
        other.event(new_event(acme.id, &id, None, EventKind::Delivered, T0 + 1));
        other.flush().await;
        let found = store
            .message(acme.id, &id)
            .await
            .expect("read")
            .expect("found");
        assert!(found.events.is_empty());
    }

    #[tokio::test]
    async fn dropping_every_handle_writes_then_ends() {
        let (_dir, store) = temp_store().await;
        let acme = store.create_account("acme").await.expect("account");
        let (writer, task) = EventWriter::start(store.clone());
        let id = message_id(T0, 1);
        writer.message(new_message(acme.id, &id, T0, &["r@x.test"], &[]));
        drop(writer);
        task.await.expect("writer task ends");
        assert!(store.message(acme.id, &id).await.expect("read").is_some());
    }

    #[tokio::test]
    async fn a_failing_batch_is_dropped_after_retries_and_the_writer_goes_on() {
        let (_dir, store) = temp_store().await;
        let acme = store.create_account("acme").await.expect("account");
        // Break the events table from outside, as a full disk or a damaged
        // file would: every batch with an event fails.
        sqlx::query("ALTER TABLE events RENAME TO events_away")
            .execute(&store.pool)
            .await
            .expect("rename");
        const NO_PAUSES: [Duration; 2] = [Duration::ZERO; 2];
        let (writer, task) = EventWriter::start_with(store.clone(), DEFAULT_LINGER, &NO_PAUSES);
        let id = message_id(T0, 1);
        writer.message(new_message(acme.id, &id, T0, &["r@x.test"], &[]));
        writer.event(new_event(acme.id, &id, None, EventKind::Received, T0));
        writer.flush().await;
        assert!(
            store.message(acme.id, &id).await.is_err() || {
                // The message insert was rolled back with the failed batch.
                store.message(acme.id, &id).await.expect("read").is_none()
            }
        );
        let next = message_id(T0 + 1, 1);
        writer.message(new_message(acme.id, &next, T0 + 1, &["r@x.test"], &[]));
        writer.flush().await;
        // Messages read their events too, which are away: check the row.
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE id = $1")
            .bind(&next)
            .fetch_one(&store.pool)
            .await
            .expect("count");
        assert_eq!(count, 1);
        writer.close().await;
        task.await.expect("writer task ends");
    }

    #[tokio::test]
    async fn flush_and_close_cut_a_long_linger_short() {
        let (_dir, store) = temp_store().await;
        let acme = store.create_account("acme").await.expect("account");
        let hour = Duration::from_secs(3600);
        let (writer, task) = EventWriter::start_with_linger(store.clone(), hour);
        let id = message_id(T0, 1);
        writer.message(new_message(acme.id, &id, T0, &["r@x.test"], &[]));
        // The task now sleeps an hour for more; flush must not wait for that.
        let deadline = Duration::from_secs(10);
        tokio::time::timeout(deadline, writer.flush())
            .await
            .expect("flush returns while the batch lingers");
        assert!(store.message(acme.id, &id).await.expect("read").is_some());
        writer.event(new_event(acme.id, &id, None, EventKind::Delivered, T0 + 1));
        tokio::time::timeout(deadline, writer.close())
            .await
            .expect("close returns while the batch lingers");
        task.await.expect("writer task ends");
        let found = store
            .message(acme.id, &id)
            .await
            .expect("read")
            .expect("found");
        assert_eq!(found.recipients[0].state, "delivered");
    }

    #[tokio::test]
    async fn without_a_flush_items_land_after_the_linger() {
        let (_dir, store) = temp_store().await;
        let acme = store.create_account("acme").await.expect("account");
        let linger = Duration::from_millis(20);
        let (writer, task) = EventWriter::start_with_linger(store.clone(), linger);
        let id = message_id(T0, 1);
        writer.message(new_message(acme.id, &id, T0, &["r@x.test"], &[]));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.message(acme.id, &id).await.expect("read").is_none() {
            assert!(tokio::time::Instant::now() < deadline, "never written");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        writer.close().await;
        task.await.expect("writer task ends");
    }
}
