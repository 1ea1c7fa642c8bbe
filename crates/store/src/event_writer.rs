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
//! When the store cannot write (a full disk, an I/O error, a locked or
//! unreachable database), nothing is dropped: the items wait in memory, in
//! order (up to [`MAX_HELD`](self)), and in the [journal](crate::EventJournal)
//! when the writer has one, and are written when the store takes writes
//! again (after a restart too), with attempts backing off to one every 30 s
//! and one log line when it starts, a summary a minute and one when it ends. A batch the
//! store refuses for its content is retried a few times, then dropped with
//! an error log. This module does not decide what is an event; callers send
//! what happened.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyConnection;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::StoreError;
use crate::event_batch::write_batch;
use crate::event_details::EventDetails;
use crate::event_journal::EventJournal;
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
    /// This node's name, stamped on `received` and delivery events.
    node: Option<Arc<str>>,
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
        EventWriter::start_with(
            store,
            linger,
            &RETRY_PAUSES,
            Backlog::default(),
            Pending::default(),
        )
    }

    /// [`start`](EventWriter::start) with a journal at `path`, where items
    /// wait on disk while the store cannot take them; what it holds from an
    /// earlier run is written first. Fails if the journal cannot be opened
    /// or read.
    pub fn start_journaled(
        store: Store,
        path: &Path,
    ) -> std::io::Result<(EventWriter, JoinHandle<()>)> {
        let (journal, replay) = EventJournal::open(path)?;
        let held = replay.messages.len() + replay.events.len();
        if held > 0 {
            tracing::warn!(path = %path.display(), held, skipped = replay.skipped,
                "event journal: writing what waited there since the last run");
        }
        let pending = Pending {
            messages: replay.messages,
            events: replay.events,
        };
        Ok(EventWriter::start_with(
            store,
            DEFAULT_LINGER,
            &RETRY_PAUSES,
            Backlog::new(Some(journal), &pending),
            pending,
        ))
    }

    /// The general form, with other retry pauses (tests use none).
    fn start_with(
        store: Store,
        linger: Duration,
        pauses: &'static [Duration],
        backlog: Backlog,
        pending: Pending,
    ) -> (EventWriter, JoinHandle<()>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let hurry = Arc::new(Notify::new());
        let inbox = Inbox {
            receiver,
            hurry: Arc::clone(&hurry),
            linger,
        };
        let task = tokio::spawn(run(store, inbox, pauses, backlog, pending));
        (
            EventWriter {
                sender,
                hurry,
                node: None,
            },
            task,
        )
    }

    /// Queues a message record. Send it before any event of the message, so
    /// the events find it.
    pub fn message(&self, message: NewMessage) {
        self.send(Command::Message(message));
    }

    /// Queues an event.
    pub fn event(&self, mut event: NewEvent) {
        if let Some(node) = &self.node {
            match &mut event.details {
                EventDetails::Received(details) if details.node.is_none() => {
                    details.node = Some(node.to_string());
                }
                EventDetails::Delivery(details) if details.node.is_none() => {
                    details.node = Some(node.to_string());
                }
                _ => {}
            }
        }
        self.send(Command::Event(event));
    }

    /// This handle (and its clones) stamps `node` on the `received` and
    /// delivery events it sends (`details.node`), so a cluster's timelines
    /// say which node took a message and which attempted each delivery.
    pub fn with_node(mut self, node: &str) -> EventWriter {
        self.node = Some(Arc::from(node));
        self
    }

    /// Resolves once everything sent before this call is committed, or held
    /// because the store cannot write now (or, refused for its content,
    /// dropped). Returns at once if the writer has stopped.
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

/// Most items held in memory while the store cannot write; beyond it the
/// oldest are dropped (with an error log), so a store that stays away for
/// days cannot exhaust memory.
const MAX_HELD: usize = 2_000_000;

/// The longest pause between attempts while the store cannot write.
const MAX_HOLD_PAUSE: Duration = Duration::from_secs(30);

/// How often a store that keeps failing is reported again.
const HOLD_SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// Items the store could not take yet, in the order they were sent.
#[derive(Default)]
struct Pending {
    messages: Vec<NewMessage>,
    events: Vec<NewEvent>,
}

impl Pending {
    fn len(&self) -> usize {
        self.messages.len() + self.events.len()
    }

    fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.events.is_empty()
    }

    /// Drops the oldest items beyond [`MAX_HELD`]; returns how many
    /// records and events.
    fn trim(&mut self) -> (usize, usize) {
        let over = self.len().saturating_sub(MAX_HELD);
        let from_messages = over.min(self.messages.len());
        self.messages.drain(..from_messages);
        let from_events = (over - from_messages).min(self.events.len());
        self.events.drain(..from_events);
        (from_messages, from_events)
    }
}

/// The journal, if any, and how many of the pending items (from the front
/// of each list) it holds.
#[derive(Default)]
struct Backlog {
    journal: Option<EventJournal>,
    messages: usize,
    events: usize,
    /// Whether the last append failed (said once, until one succeeds).
    failing: bool,
}

impl Backlog {
    /// A journal that holds everything now pending (what it gave back).
    fn new(journal: Option<EventJournal>, pending: &Pending) -> Backlog {
        Backlog {
            journal,
            messages: pending.messages.len(),
            events: pending.events.len(),
            failing: false,
        }
    }

    /// Writes to the journal what is pending and not in it yet. Without
    /// room, the items stay in memory only (said once).
    fn save(&mut self, pending: &Pending) {
        let Some(journal) = &mut self.journal else {
            return;
        };
        let messages = &pending.messages[self.messages.min(pending.messages.len())..];
        let events = &pending.events[self.events.min(pending.events.len())..];
        match journal.append(messages, events) {
            Ok(()) => {
                self.messages = pending.messages.len();
                self.events = pending.events.len();
                if std::mem::take(&mut self.failing) {
                    tracing::warn!("event journal: appends work again");
                }
            }
            Err(error) if !self.failing => {
                self.failing = true;
                tracing::error!(path = %journal.path().display(), %error,
                    "event journal: cannot append; held events are in memory only until it can");
            }
            Err(_) => {}
        }
    }

    /// Some items were taken off the front of the pending lists (written,
    /// or dropped).
    fn taken(&mut self, messages: usize, events: usize) {
        self.messages = self.messages.saturating_sub(messages);
        self.events = self.events.saturating_sub(events);
    }

    /// Everything pending is written: the journal is emptied.
    fn clear(&mut self) {
        self.messages = 0;
        self.events = 0;
        if let Some(journal) = &mut self.journal
            && let Err(error) = journal.clear()
        {
            // Its items are in the store: replaying them later doubles
            // events at worst.
            tracing::warn!(path = %journal.path().display(), %error,
                "event journal: cannot empty it");
        }
    }

    /// Whether everything pending is in the journal.
    fn holds_all(&self, pending: &Pending) -> bool {
        self.journal.is_some()
            && self.messages >= pending.messages.len()
            && self.events >= pending.events.len()
    }
}

/// While the store cannot write: since when, the next attempt, the pause.
struct Holding {
    since: tokio::time::Instant,
    retry_at: tokio::time::Instant,
    pause: Duration,
    reported_at: tokio::time::Instant,
    attempts: u64,
}

/// The task: batches whatever is waiting into one transaction at a time.
/// When the store cannot write (a full disk, an I/O error, a locked or
/// unreachable database), the items are held in memory, in order, and
/// written when it can again: the event log catches up instead of losing
/// what happened. A batch the store refuses for its content (a constraint,
/// a damaged table) is retried a few times, then dropped with an error log.
async fn run(
    store: Store,
    mut inbox: Inbox,
    pauses: &'static [Duration],
    mut backlog: Backlog,
    mut pending: Pending,
) {
    let mut connection = Connection {
        store,
        connection: None,
        stats: StatsMemory::default(),
    };
    let mut commands = Vec::with_capacity(MAX_BATCH);
    let mut waiters = Vec::new();
    // What the journal gave back is written first, at once.
    let mut holding: Option<Holding> = (!pending.is_empty()).then(|| {
        let now = tokio::time::Instant::now();
        Holding {
            since: now,
            retry_at: now,
            pause: Duration::from_millis(500),
            reported_at: now,
            attempts: 0,
        }
    });
    loop {
        let gathered = match &holding {
            None => inbox.gather(&mut commands).await,
            // At the retry time, try the store again even if nothing came.
            Some(hold) => tokio::time::timeout_at(hold.retry_at, inbox.gather(&mut commands))
                .await
                .unwrap_or(true),
        };
        if !gathered {
            break; // every handle dropped, everything written
        }
        let mut closing = None;
        for command in commands.drain(..) {
            match command {
                Command::Message(message) => pending.messages.push(message),
                Command::Event(event) => pending.events.push(event),
                Command::Flush(done) => waiters.push(done),
                Command::Close(done) => closing = Some(done),
            }
        }
        let due = holding
            .as_ref()
            .is_none_or(|hold| tokio::time::Instant::now() >= hold.retry_at);
        if due || closing.is_some() {
            let before = (pending.messages.len(), pending.events.len());
            let result =
                write_pending(&mut connection, &mut pending, pauses, holding.is_some()).await;
            backlog.taken(
                before.0 - pending.messages.len(),
                before.1 - pending.events.len(),
            );
            match result {
                Ok(()) => {
                    backlog.clear();
                    if let Some(hold) = holding.take() {
                        tracing::warn!(
                            held_for_s = hold.since.elapsed().as_secs(),
                            attempts = hold.attempts,
                            "event writer: the store takes writes again; held events written"
                        );
                    }
                }
                Err(error) => {
                    let now = tokio::time::Instant::now();
                    let hold = holding.get_or_insert_with(|| {
                        tracing::error!(%error, held = pending.len(),
                            "event writer: the store cannot write; holding events until it can");
                        Holding {
                            since: now,
                            retry_at: now,
                            pause: Duration::from_millis(500),
                            reported_at: now,
                            attempts: 0,
                        }
                    });
                    hold.attempts += 1;
                    hold.retry_at = now + hold.pause;
                    hold.pause = (hold.pause * 2).min(MAX_HOLD_PAUSE);
                    if now.duration_since(hold.reported_at) >= HOLD_SUMMARY_INTERVAL {
                        hold.reported_at = now;
                        tracing::error!(%error, held = pending.len(), attempts = hold.attempts,
                            failing_for_s = hold.since.elapsed().as_secs(),
                            "event writer: the store still cannot write");
                    }
                    let (messages, events) = pending.trim();
                    backlog.taken(messages, events);
                    let dropped = messages + events;
                    if dropped > 0 {
                        tracing::error!(
                            dropped,
                            "event writer: too many events held; the oldest were dropped"
                        );
                    }
                }
            }
        }
        // What is held waits in the journal too (items that came while the
        // store is known to fail included).
        if holding.is_some() {
            backlog.save(&pending);
        }
        // A flush answers once what came before is committed or held.
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
            if pending.is_empty() {
                // Nothing held.
            } else if backlog.holds_all(&pending) {
                tracing::warn!(
                    held = pending.len(),
                    "event writer closed while the store could not write: held events \
                     stay in the journal and are written at the next start"
                );
            } else {
                tracing::error!(
                    lost = pending.len(),
                    "event writer closed while the store could not write: held events lost"
                );
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
    connection: Option<AnyConnection>,
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

/// Writes what is pending, [`MAX_BATCH`] items a transaction (messages
/// before events, as they were sent), removing what was written. A failure
/// the store may get over ([`StoreError::is_transient`]) keeps the rest and
/// is returned; any other failure is retried after `pauses` (not while the
/// store is already known to be failing), then its batch is dropped with an
/// error log.
async fn write_pending(
    connection: &mut Connection,
    pending: &mut Pending,
    pauses: &[Duration],
    holding: bool,
) -> Result<(), StoreError> {
    while !pending.is_empty() {
        let n_messages = pending.messages.len().min(MAX_BATCH);
        let n_events = pending.events.len().min(MAX_BATCH - n_messages);
        let mut pauses = pauses.iter();
        loop {
            let result = connection
                .write(&pending.messages[..n_messages], &pending.events[..n_events])
                .await;
            match result {
                Ok(()) => break,
                Err(error) if error.is_transient() => return Err(error),
                Err(error) => match pauses.next().filter(|_| !holding) {
                    Some(pause) => {
                        tracing::warn!(%error, retry_in = ?pause, "event batch failed, retrying");
                        tokio::time::sleep(*pause).await;
                    }
                    None => {
                        tracing::error!(
                            %error,
                            messages = n_messages,
                            events = n_events,
                            "event batch failed repeatedly, dropped"
                        );
                        break;
                    }
                },
            }
        }
        pending.messages.drain(..n_messages);
        pending.events.drain(..n_events);
    }
    Ok(())
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
        let (writer, task) = EventWriter::start_with(
            store.clone(),
            DEFAULT_LINGER,
            &NO_PAUSES,
            Backlog::default(),
            Pending::default(),
        );
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

    /// Takes the store's write lock on a connection of its own, as another
    /// process (or node) would, and shortens the lock timeout of the
    /// writer's later connections: every batch of the writer then fails at
    /// once (SQLITE_BUSY, or PostgreSQL's lock_not_available), until the
    /// returned connection commits.
    async fn hold_write_lock(store: &mut Store) -> AnyConnection {
        store.lock_timeout = Duration::from_millis(20);
        let mut locker = store.dedicated_connection().await.expect("connect");
        let lock = match store.backend() {
            crate::Backend::Sqlite => "BEGIN EXCLUSIVE",
            crate::Backend::Postgres => {
                "BEGIN; SELECT value FROM counters WHERE name = 'event_id' FOR UPDATE"
            }
        };
        sqlx::raw_sql(lock)
            .execute(&mut locker)
            .await
            .expect("lock");
        locker
    }

    #[tokio::test]
    async fn a_writer_with_a_node_name_stamps_received_and_delivery_events() {
        let (_dir, store) = temp_store().await;
        let acme = store.create_account("acme").await.expect("account");
        let (writer, task) = EventWriter::start(store.clone());
        let writer = writer.with_node("node-7");
        let id = message_id(T0, 1);
        writer.message(new_message(acme.id, &id, T0, &["r@x.test"], &[]));
        let received = crate::ReceivedDetails {
            smtp: None,
            source: "api".to_owned(),
            size: 10,
            dkim_domain: None,
            node: None,
        };
        let delivered = crate::DeliveryDetails {
            attempt: 1,
            node: Some("elsewhere".to_owned()),
            ..crate::DeliveryDetails::default()
        };
        for (kind, details, ms) in [
            (EventKind::Received, EventDetails::Received(received), T0),
            (
                EventKind::Deferred,
                EventDetails::Delivery(crate::DeliveryDetails::default()),
                T0 + 1,
            ),
            (
                EventKind::Delivered,
                EventDetails::Delivery(delivered),
                T0 + 2,
            ),
        ] {
            let mut event = new_event(acme.id, &id, Some("r@x.test"), kind, ms);
            event.details = details;
            writer.event(event);
        }
        // Other kinds of details have no node.
        writer.event(new_event(acme.id, &id, None, EventKind::Suppressed, T0 + 3));
        writer.close().await;
        task.await.expect("writer ends");
        let message = store
            .message(acme.id, &id)
            .await
            .expect("read")
            .expect("found");
        let nodes: Vec<Option<&str>> = message
            .events
            .iter()
            .map(|e| e.details.get("node").and_then(|n| n.as_str()))
            .collect();
        assert_eq!(
            nodes,
            [Some("node-7"), Some("node-7"), Some("elsewhere"), None],
            "a node already named is kept"
        );
    }

    #[tokio::test]
    async fn events_wait_while_the_store_cannot_write_and_are_written_after() {
        let (_dir, mut store) = temp_store().await;
        let acme = store.create_account("acme").await.expect("account");
        // Another process holds the write lock.
        let mut locker = hold_write_lock(&mut store).await;
        let (writer, task) = EventWriter::start(store.clone());
        let id = message_id(T0, 1);
        writer.message(new_message(acme.id, &id, T0, &["r@x.test"], &[]));
        writer.event(new_event(acme.id, &id, None, EventKind::Received, T0));
        // A flush answers although nothing could be written: it is held.
        tokio::time::timeout(Duration::from_secs(10), writer.flush())
            .await
            .expect("flush answers while the store is locked");
        assert!(store.message(acme.id, &id).await.expect("read").is_none());
        let later = message_id(T0 + 1, 1);
        writer.message(new_message(acme.id, &later, T0 + 1, &["r@x.test"], &[]));
        writer.event(new_event(
            acme.id,
            &later,
            None,
            EventKind::Received,
            T0 + 1,
        ));
        writer.flush().await;

        sqlx::query("COMMIT")
            .execute(&mut locker)
            .await
            .expect("unlock");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        for id in [&id, &later] {
            loop {
                if let Some(found) = store.message(acme.id, id).await.expect("read") {
                    assert_eq!(found.events.len(), 1, "{id}: its received event");
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{id} never written after the lock went"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        writer.close().await;
        task.await.expect("writer task ends");
    }

    #[tokio::test]
    async fn held_events_wait_in_the_journal_across_a_restart() {
        let (dir, mut store) = temp_store().await;
        let acme = store.create_account("acme").await.expect("account");
        let journal = dir.path().join("events.journal");
        let mut locker = hold_write_lock(&mut store).await;
        let (writer, task) = EventWriter::start_journaled(store.clone(), &journal).expect("start");
        let id = message_id(T0, 1);
        writer.message(new_message(acme.id, &id, T0, &["r@x.test"], &[]));
        writer.event(new_event(acme.id, &id, None, EventKind::Received, T0));
        writer.flush().await;
        // Items sent while the store is known to fail go to the journal too.
        writer.event(new_event(acme.id, &id, None, EventKind::Delivered, T0 + 1));
        writer.flush().await;
        writer.close().await;
        task.await.expect("writer task ends");
        assert!(store.message(acme.id, &id).await.expect("read").is_none());
        let held = std::fs::read_to_string(&journal).expect("journal");
        assert_eq!(held.lines().count(), 3, "{held}");

        sqlx::query("COMMIT")
            .execute(&mut locker)
            .await
            .expect("unlock");
        // The next run writes what the journal held, before anything new.
        let (writer, task) = EventWriter::start_journaled(store.clone(), &journal).expect("start");
        writer.flush().await;
        let found = store
            .message(acme.id, &id)
            .await
            .expect("read")
            .expect("written from the journal");
        let kinds: Vec<_> = found.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Received, EventKind::Delivered]);
        assert_eq!(found.recipients[0].state, "delivered");
        assert_eq!(std::fs::metadata(&journal).expect("journal").len(), 0);
        writer.close().await;
        task.await.expect("writer task ends");
        // Emptied: a third run writes nothing twice.
        let (writer, task) = EventWriter::start_journaled(store.clone(), &journal).expect("start");
        writer.close().await;
        task.await.expect("writer task ends");
        let found = store
            .message(acme.id, &id)
            .await
            .expect("read")
            .expect("still there");
        assert_eq!(found.events.len(), 2);
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
