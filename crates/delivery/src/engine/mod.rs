//! The delivery engine: one task that owns the queue's [`Scheduler`], hands
//! due recipients to a ready queue per destination, records what came back,
//! persists state changes through the spool, and bounces what failed.
//!
//! Destinations (a smarthost route, or one recipient domain for MX
//! delivery) each have a small pool of connection workers that pull jobs
//! from their ready queue and deliver them over kept-alive connections. The
//! engine task never waits on the network; workers never touch the queue
//! state: they report results over a channel.

mod bounce;
mod connect;
mod dest_key;
mod destination;
mod events;
mod listing;
mod series;

pub use events::{DeliveryEvent, DeliveryEventKind, EventSink, NoEvents};
pub use listing::{QueueEntry, QueueRecipient};
pub use series::{CONNECTIONS_OUT, DELIVERY_LATENCY, describe as describe_metrics};

use crate::Resolver;
use bytes::Bytes;
use carteiro_config::Config;
use carteiro_mail::MessageId;
use carteiro_mail::verp::{Purpose, TokenKey};
use carteiro_queue::{AttemptResult, QueuedMessage, Recorded, RetryPolicy, Scheduler};
use carteiro_spool::Spool;
use dest_key::DestKey;
use destination::{Destination, Job};
use series::{EngineMetrics, pending_of};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Fresh message bodies are kept in memory until their first attempt, up to
/// this many bytes in all; beyond it they are read back from the spool.
const BODY_CACHE_BYTES: usize = 256 * 1024 * 1024;
/// At most this many recipients are handed to destinations and not reported
/// back yet; what is due beyond it waits in the scheduler. Far above what
/// healthy delivery keeps in flight, it bounds the memory of a wave (a
/// restart with a million deferred messages due at once: every one becomes
/// a job, a result and an event).
const MAX_IN_FLIGHT: usize = 50_000;
/// How long a shutdown waits for attempts in flight to report.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often a paused engine asks the spool whether it records again.
const PAUSE_CHECK: Duration = Duration::from_millis(200);

pub use carteiro_mail::clock::now_millis;

pub(crate) enum Command {
    Enqueue(QueuedMessage, Option<Bytes>),
    Results(MessageId, Vec<AttemptResult>),
    List(oneshot::Sender<Vec<QueueEntry>>),
    Show(MessageId, oneshot::Sender<Option<QueueEntry>>),
    Retry(Option<MessageId>, oneshot::Sender<usize>),
    Delete(MessageId, oneshot::Sender<Option<QueueEntry>>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle to the running engine; cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::UnboundedSender<Command>,
    size: Arc<series::QueueSize>,
    live_nodes: Arc<AtomicUsize>,
}

impl EngineHandle {
    /// Queues a message that is already durable in the spool. The body, when
    /// given, saves reading it back for the first attempt.
    pub fn enqueue(&self, message: QueuedMessage, body: Option<Bytes>) {
        let _ = self.tx.send(Command::Enqueue(message, body));
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).ok()?;
        rx.await.ok()
    }

    /// Messages in the queue and their recipients still to deliver, as of
    /// the engine's last turn (no round trip to the engine task).
    pub fn queue_size(&self) -> (u64, u64) {
        self.size.get()
    }

    /// Tells the engine how many nodes share the store's destinations (from
    /// their heartbeats): each destination's connection limit is divided
    /// between them, rounded up. New connections follow at once; open ones
    /// finish their work.
    pub fn set_live_nodes(&self, nodes: usize) {
        self.live_nodes.store(nodes.max(1), Ordering::Relaxed);
    }

    /// Every queued message.
    pub async fn list(&self) -> Vec<QueueEntry> {
        self.ask(Command::List).await.unwrap_or_default()
    }

    pub async fn show(&self, id: MessageId) -> Option<QueueEntry> {
        self.ask(|tx| Command::Show(id, tx)).await.flatten()
    }

    /// Makes one message (or all, with `None`) due now; returns how many.
    pub async fn retry(&self, id: Option<MessageId>) -> usize {
        self.ask(|tx| Command::Retry(id, tx)).await.unwrap_or(0)
    }

    /// Removes a message from the queue and the spool.
    pub async fn delete(&self, id: MessageId) -> Option<QueueEntry> {
        self.ask(|tx| Command::Delete(id, tx)).await.flatten()
    }

    /// Stops dispatching and waits for the engine task to end. Attempts in
    /// flight are abandoned: their recipients are tried again after a restart.
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}

/// What workers share: settings, the spool for bodies, the resolver, and the
/// way back to the engine.
pub(crate) struct WorkerContext {
    pub config: Arc<Config>,
    /// Signs VERP return paths.
    pub tokens: Arc<TokenKey>,
    pub events: Arc<dyn EventSink>,
    pub spool: Spool,
    pub resolver: Resolver,
    pub engine: mpsc::UnboundedSender<Command>,
    /// Nodes delivering from this store (1 alone): each opens its share of
    /// a destination's connections.
    pub live_nodes: Arc<AtomicUsize>,
}

impl WorkerContext {
    /// This node's share of `limit`, with `live_nodes` nodes sharing it:
    /// rounded up, and at least one.
    pub fn share(&self, limit: usize) -> usize {
        share_of(limit, self.live_nodes.load(Ordering::Relaxed))
    }

    fn report(&self, id: MessageId, results: Vec<AttemptResult>) {
        let _ = self.engine.send(Command::Results(id, results));
    }
}

/// One of `nodes` nodes' share of `limit`: rounded up (three nodes with a
/// limit of 20 open at most 7 each, 21 in all), at least one.
fn share_of(limit: usize, nodes: usize) -> usize {
    limit.div_ceil(nodes.max(1)).max(1)
}

/// Whether the engine delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineMode {
    /// The server's engine: attempts, retries, bounces.
    Deliver,
    /// The CLI's engine when no server runs: no attempts and no bounces;
    /// the queue changes only as asked (delete, retry), and every change is
    /// written to the spool, since nothing will act on it before the
    /// process exits.
    Offline,
}

struct Engine {
    mode: EngineMode,
    ctx: Arc<WorkerContext>,
    handle: EngineHandle,
    scheduler: Scheduler,
    destinations: HashMap<DestKey, Arc<Destination>>,
    bodies: HashMap<MessageId, Bytes>,
    cached_bytes: usize,
    metrics: EngineMetrics,
    /// New attempts wait: the spool cannot record their outcome.
    paused: bool,
}

/// Starts the engine with the messages recovered from the spool.
pub fn start(
    config: Arc<Config>,
    spool: Spool,
    resolver: Resolver,
    events: Arc<dyn EventSink>,
    tokens: Arc<TokenKey>,
    recovered: Vec<QueuedMessage>,
) -> (EngineHandle, tokio::task::JoinHandle<()>) {
    start_with(
        EngineMode::Deliver,
        config,
        spool,
        resolver,
        events,
        tokens,
        recovered,
    )
}

/// Starts the engine in `mode` with the messages recovered from the spool.
pub fn start_with(
    mode: EngineMode,
    config: Arc<Config>,
    spool: Spool,
    resolver: Resolver,
    events: Arc<dyn EventSink>,
    tokens: Arc<TokenKey>,
    recovered: Vec<QueuedMessage>,
) -> (EngineHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut metrics = EngineMetrics::new();
    let live_nodes = Arc::new(AtomicUsize::new(1));
    let handle = EngineHandle {
        tx: tx.clone(),
        size: metrics.size(),
        live_nodes: Arc::clone(&live_nodes),
    };
    let policy = RetryPolicy {
        initial: config.delivery.retry_initial,
        max: config.delivery.retry_max,
        max_age: config.delivery.max_age,
    };
    let mut scheduler = Scheduler::new(policy);
    let mut finished = Vec::new();
    for message in recovered {
        if message.is_finished() && mode == EngineMode::Deliver {
            // A crash came between the last attempt and the bounce.
            finished.push(message);
        } else {
            metrics.queued(&message);
            scheduler.insert(message);
        }
    }
    let engine = Engine {
        mode,
        ctx: Arc::new(WorkerContext {
            config,
            tokens,
            events,
            spool,
            resolver,
            engine: tx,
            live_nodes,
        }),
        handle: handle.clone(),
        scheduler,
        destinations: HashMap::new(),
        bodies: HashMap::new(),
        cached_bytes: 0,
        metrics,
        paused: false,
    };
    for message in finished {
        bounce::finish(&engine.ctx, &handle, message, None);
    }
    let task = tokio::spawn(engine.run(rx));
    (handle, task)
}

impl Engine {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let done = loop {
            self.dispatch_due(now_millis());
            self.metrics.update_queue(self.scheduler.len());
            // At the in-flight limit, only results (or commands) can change
            // anything: wait for them, not for due times already past.
            let wait = if self.mode == EngineMode::Offline
                || self.scheduler.in_flight() >= MAX_IN_FLIGHT
            {
                None
            } else if self.paused {
                // Look again soon: the spool tells nobody when it recovers.
                Some(PAUSE_CHECK)
            } else {
                self.scheduler
                    .next_wakeup()
                    .map(|due| Duration::from_millis(due.saturating_sub(now_millis())))
            };
            let command = match wait {
                Some(wait) => match tokio::time::timeout(wait, rx.recv()).await {
                    Ok(command) => command,
                    Err(_) => continue,
                },
                None => rx.recv().await,
            };
            let Some(command) = command else { return };
            if let Some(done) = self.handle_command(command) {
                break done;
            }
            // Take whatever else is waiting before dispatching again.
            let mut stop = None;
            while let Ok(command) = rx.try_recv() {
                if let Some(done) = self.handle_command(command) {
                    stop = Some(done);
                    break;
                }
            }
            if let Some(done) = stop {
                break done;
            }
        };
        self.drain(&mut rx).await;
        let _ = done.send(());
    }

    /// At shutdown: no new attempts; the results of attempts in flight are
    /// still recorded (for a while), so a restart does not repeat them.
    async fn drain(&mut self, rx: &mut mpsc::UnboundedReceiver<Command>) {
        for dest in self.destinations.values() {
            dest.close();
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        // Workers end without a message of their own: look again often.
        while self.destinations.values().any(|dest| !dest.is_stopped())
            && tokio::time::Instant::now() < deadline
        {
            match tokio::time::timeout(Duration::from_millis(10), rx.recv()).await {
                Ok(Some(Command::Results(id, results))) => self.record(id, results),
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => break,
            }
        }
        // Results that arrived together with the last worker's end.
        while let Ok(command) = rx.try_recv() {
            if let Command::Results(id, results) = command {
                self.record(id, results);
            }
        }
    }

    /// Handles one command; returns the reply slot of a shutdown request.
    fn handle_command(&mut self, command: Command) -> Option<oneshot::Sender<()>> {
        match command {
            Command::Enqueue(message, body) => {
                if let Some(body) = body
                    && self.cached_bytes + body.len() <= BODY_CACHE_BYTES
                {
                    self.cached_bytes += body.len();
                    self.bodies.insert(message.id, body);
                }
                self.metrics.queued(&message);
                self.scheduler.insert(message);
            }
            Command::Results(id, results) => self.record(id, results),
            Command::List(reply) => {
                let mut entries: Vec<QueueEntry> =
                    self.scheduler.messages().map(QueueEntry::from).collect();
                entries.sort_by_key(|e| e.id);
                let _ = reply.send(entries);
            }
            Command::Show(id, reply) => {
                let _ = reply.send(self.scheduler.get(id).map(QueueEntry::from));
            }
            Command::Retry(id, reply) => {
                let now = now_millis();
                let ids: Vec<MessageId> = match id {
                    Some(id) => vec![id],
                    None => self.scheduler.messages().map(|m| m.id).collect(),
                };
                let mut count = 0;
                for id in ids {
                    if !self.scheduler.retry_now(id, now) {
                        continue;
                    }
                    count += 1;
                    if self.mode == EngineMode::Offline
                        && let Some(message) = self.scheduler.get(id)
                        && let Err(err) = self.ctx.spool.set_state(id, message.encode_state())
                    {
                        tracing::error!(message_id = %id, error = %err, "cannot write the retried state");
                    }
                }
                let _ = reply.send(count);
            }
            Command::Delete(id, reply) => {
                let removed = self.scheduler.remove(id);
                if let Some(message) = &removed {
                    self.metrics.settled(pending_of(message, None));
                }
                if let Some(message) = &removed
                    && !message.meta.notification
                {
                    for (index, state) in message.rcpts.iter().enumerate() {
                        if state.status.is_final() {
                            continue;
                        }
                        self.ctx.events.emit(DeliveryEvent {
                            kind: DeliveryEventKind::Deleted,
                            message_id: id,
                            account_id: message.meta.account_id,
                            recipient: message.meta.envelope.recipients[index].address.clone(),
                            attempt: state.attempts,
                            reply: None,
                            remote: None,
                            mx: None,
                            next_attempt: None,
                        });
                    }
                }
                if removed.is_some() {
                    self.forget_body(id);
                    if let Err(err) = self.ctx.spool.remove(id) {
                        tracing::error!(message_id = %id, error = %err, "cannot remove deleted message from spool");
                    }
                    tracing::info!(message_id = %id, "message deleted from queue");
                }
                let _ = reply.send(removed.as_ref().map(QueueEntry::from));
            }
            Command::Shutdown(done) => return Some(done),
        }
        None
    }

    fn forget_body(&mut self, id: MessageId) {
        if let Some(body) = self.bodies.remove(&id) {
            self.cached_bytes -= body.len();
        }
    }

    fn record(&mut self, id: MessageId, results: Vec<AttemptResult>) {
        let now = now_millis();
        let attempted: Vec<usize> = results.iter().map(|r| r.rcpt).collect();
        let pending_before = self
            .scheduler
            .get(id)
            .map_or(0, |m| pending_of(m, Some(&attempted)));
        let emit = |ctx: &WorkerContext, series: &mut EngineMetrics, message: &QueuedMessage| {
            let settled = pending_before.saturating_sub(pending_of(message, Some(&attempted)));
            series.settled(settled);
            if message.meta.notification {
                return;
            }
            let (account, received_at) = (&message.meta.account, message.meta.received_at);
            for &rcpt in &attempted {
                if let Some(event) = events::after_attempt(&ctx.config, message, rcpt) {
                    series.outcome(account, &event, received_at, now);
                    ctx.events.emit(event);
                }
            }
        };
        match self.scheduler.record(id, results, now) {
            None => {}
            Some(Recorded::Pending(message)) => {
                emit(&self.ctx, &mut self.metrics, message);
                let state = message.encode_state();
                let in_flight = message.rcpts.iter().any(|r| r.in_flight);
                if let Err(err) = self.ctx.spool.set_state(id, state) {
                    tracing::error!(message_id = %id, error = %err, "cannot store queue state");
                }
                if !in_flight {
                    // Deferred: the next attempt is minutes away, read it back then.
                    self.forget_body(id);
                }
            }
            Some(Recorded::Finished(message)) => {
                emit(&self.ctx, &mut self.metrics, &message);
                let body = self.bodies.get(&id).cloned();
                self.forget_body(id);
                bounce::finish(&self.ctx, &self.handle, message, body);
            }
        }
    }

    fn dispatch_due(&mut self, now: u64) {
        if self.mode == EngineMode::Offline {
            return;
        }
        // While the spool cannot write state records, a delivery's "done"
        // might never reach the disk and a restart would deliver it again:
        // no new attempts until it can.
        let stalled = self.ctx.spool.health().stalled;
        if stalled != self.paused {
            self.paused = stalled;
            if stalled {
                tracing::warn!("deliveries paused: the spool cannot record their outcome");
            } else {
                tracing::info!("deliveries resumed: the spool records again");
            }
        }
        if stalled {
            return;
        }
        for dispatch in self.scheduler.take_due(now, MAX_IN_FLIGHT) {
            let Some(message) = self.scheduler.get(dispatch.id) else {
                continue;
            };
            let key = DestKey::for_domain(&self.ctx.config, &dispatch.domain);
            let per_transaction = self.ctx.config.delivery.max_recipients_per_transaction;
            let dest = self
                .destinations
                .entry(key.clone())
                .or_insert_with(|| Destination::new(key, &self.ctx.config));
            let body = self.bodies.get(&dispatch.id).cloned();
            // With VERP every recipient has its own envelope sender, so its
            // own transaction.
            let chunk = if message.meta.verp_domain.is_some() {
                1
            } else {
                per_transaction.max(1)
            };
            for rcpts in dispatch.rcpts.chunks(chunk) {
                let sender = message.meta.verp_domain.as_deref().map(|domain| {
                    self.ctx
                        .tokens
                        .address(Purpose::Bounce, dispatch.id, rcpts[0] as u16, domain)
                });
                dest.push(
                    Job {
                        id: dispatch.id,
                        envelope: Arc::clone(&message.meta.envelope),
                        account: Arc::clone(&message.meta.account),
                        rcpts: rcpts.to_vec(),
                        sender,
                        body: body.clone(),
                    },
                    &self.ctx,
                );
            }
        }
        // Destinations whose workers have all ended and that hold no work.
        self.destinations.retain(|_, dest| !dest.is_idle());
    }
}

#[cfg(test)]
mod tests {
    use super::share_of;

    #[test]
    fn live_nodes_split_a_destination_s_connections() {
        assert_eq!(share_of(20, 1), 20);
        assert_eq!(share_of(20, 2), 10);
        assert_eq!(share_of(20, 3), 7, "rounded up");
        assert_eq!(share_of(2, 5), 1, "never below one");
        assert_eq!(share_of(20, 0), 20, "no heartbeat read yet: alone");
    }
}
