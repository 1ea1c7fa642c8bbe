//! A destination's ready queue and its connection workers. Each worker
//! keeps one connection open and delivers job after job over it, until the
//! queue stays empty for the idle time or the connection has carried its
//! share of messages.

use super::WorkerContext;
use super::connect::connect;
use super::dest_key::DestKey;
use bytes::Bytes;
use carteiro_config::Config;
use carteiro_mail::{Envelope, LogSafe, MessageId, Reply, Status};
use carteiro_queue::{AttemptResult, Outcome};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

/// Recipients of one message for one destination, to go in one transaction.
pub(crate) struct Job {
    pub id: MessageId,
    pub envelope: Arc<Envelope>,
    pub account: Arc<str>,
    /// Indices into `envelope.recipients`.
    pub rcpts: Vec<usize>,
    /// The reverse path to use instead of the envelope's (VERP).
    pub sender: Option<String>,
    pub body: Option<Bytes>,
}

pub(crate) struct Destination {
    key: DestKey,
    jobs: Mutex<VecDeque<Job>>,
    notify: Notify,
    workers: AtomicUsize,
    idle_workers: AtomicUsize,
    max_workers: usize,
    closed: AtomicBool,
}

impl Destination {
    pub fn new(key: DestKey, config: &Config) -> Arc<Destination> {
        Arc::new(Destination {
            key,
            jobs: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            workers: AtomicUsize::new(0),
            idle_workers: AtomicUsize::new(0),
            max_workers: config.delivery.max_connections_per_destination.max(1),
            closed: AtomicBool::new(false),
        })
    }

    fn jobs(&self) -> MutexGuard<'_, VecDeque<Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a job, starting another worker when every worker is busy and
    /// the destination allows more connections.
    pub fn push(self: &Arc<Self>, job: Job, ctx: &Arc<WorkerContext>) {
        let queued = {
            let mut jobs = self.jobs();
            jobs.push_back(job);
            jobs.len()
        };
        let workers = self.workers.load(Ordering::Acquire);
        // The limit is the cluster's: this node opens its share of it.
        if queued > self.idle_workers.load(Ordering::Acquire)
            && workers < ctx.share(self.max_workers)
        {
            self.workers.fetch_add(1, Ordering::AcqRel);
            tokio::spawn(worker(Arc::clone(self), Arc::clone(ctx)));
        }
        self.notify.notify_one();
    }

    /// No worker is running (after `close`: every attempt has reported).
    pub fn is_stopped(&self) -> bool {
        self.workers.load(Ordering::Acquire) == 0
    }

    pub fn is_idle(&self) -> bool {
        self.workers.load(Ordering::Acquire) == 0 && self.jobs().is_empty()
    }

    /// Stops the workers after their current job.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// The next job, waiting up to `idle` for one.
    async fn next_job(&self, idle: std::time::Duration) -> Option<Job> {
        let deadline = tokio::time::Instant::now() + idle;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            let notified = self.notify.notified();
            if let Some(job) = self.jobs().pop_front() {
                return Some(job);
            }
            self.idle_workers.fetch_add(1, Ordering::AcqRel);
            let woke = tokio::time::timeout_at(deadline, notified).await.is_ok();
            self.idle_workers.fetch_sub(1, Ordering::AcqRel);
            if !woke {
                return self.jobs().pop_front();
            }
        }
    }

    fn drain(&self) -> Vec<Job> {
        self.jobs().drain(..).collect()
    }
}

/// How a reply decides a recipient's fate.
fn outcome_of(reply: &Reply) -> Outcome {
    if reply.is_positive() {
        Outcome::Delivered
    } else if reply.is_permanent() {
        Outcome::Failed
    } else {
        Outcome::Deferred
    }
}

fn results_for(
    job: &Job,
    outcome: Outcome,
    reply: &Reply,
    remote: Option<&str>,
) -> Vec<AttemptResult> {
    job.rcpts
        .iter()
        .map(|&rcpt| AttemptResult {
            rcpt,
            outcome,
            reply: reply.clone(),
            remote: remote.map(str::to_string),
        })
        .collect()
}

async fn worker(dest: Arc<Destination>, ctx: Arc<WorkerContext>) {
    loop {
        deliver_jobs(&dest, &ctx).await;
        dest.workers.fetch_sub(1, Ordering::AcqRel);
        // A job may have been queued after this worker decided to stop.
        if dest.jobs().is_empty() || dest.closed.load(Ordering::Acquire) {
            return;
        }
        dest.workers.fetch_add(1, Ordering::AcqRel);
    }
}

/// Delivers jobs over one connection at a time until the queue stays idle.
async fn deliver_jobs(dest: &Arc<Destination>, ctx: &Arc<WorkerContext>) {
    let delivery = &ctx.config.delivery;
    let target = dest.key.describe(&ctx.config);
    let mut client = None;
    let mut sent_on_connection = 0usize;
    while let Some(mut job) = dest.next_job(delivery.idle_connection_timeout).await {
        let body = match job.body.take() {
            Some(body) => body,
            None => match ctx.spool.read_body(job.id).await {
                Ok(body) => body,
                Err(err) => {
                    tracing::error!(message_id = %job.id, error = %err, "cannot read message body");
                    let reply =
                        Reply::new(451, Some(Status(4, 3, 0)), format!("local error: {err}"));
                    ctx.report(job.id, results_for(&job, Outcome::Deferred, &reply, None));
                    continue;
                }
            },
        };
        // Up to two tries: a reused connection may have been closed by the
        // server while idle, which says nothing about the message.
        let mut tries = 0;
        let outcome = loop {
            tries += 1;
            if client
                .as_ref()
                .is_none_or(|c: &crate::SmtpClient| !c.is_usable())
                || sent_on_connection >= delivery.max_messages_per_connection
            {
                if let Some(old) = client.take() {
                    old.quit().await;
                }
                sent_on_connection = 0;
                match connect(ctx, &dest.key).await {
                    Ok(new) => client = Some(new),
                    Err(failure) => break Err(failure),
                }
            }
            let Some(conn) = client.as_mut() else {
                unreachable!("connected above")
            };
            let reused = sent_on_connection > 0;
            let started = Instant::now();
            match conn
                .send_as(job.sender.as_deref(), &job.envelope, &job.rcpts, &body)
                .await
            {
                Ok(outcome) => {
                    sent_on_connection += 1;
                    break Ok((
                        outcome.recipient_results(),
                        conn.remote_name().to_string(),
                        started,
                    ));
                }
                Err(err) if reused && tries < 2 => {
                    tracing::debug!(target = %target, error = %err, "reused connection failed, reconnecting");
                    client = None;
                }
                Err(err) => {
                    let remote = conn.remote_name().to_string();
                    client = None;
                    break Ok((vec![err.reply(); job.rcpts.len()], remote, started));
                }
            }
        };
        match outcome {
            Ok((replies, remote, started)) => {
                let elapsed = started.elapsed();
                let mut results = Vec::with_capacity(job.rcpts.len());
                for (&rcpt, reply) in job.rcpts.iter().zip(replies) {
                    let outcome = outcome_of(&reply);
                    tracing::info!(
                        message_id = %job.id,
                        account = %job.account,
                        recipient = %LogSafe(&job.envelope.recipients[rcpt].address),
                        remote = %LogSafe(&remote),
                        outcome = ?outcome,
                        reply = %LogSafe(&reply.to_string()),
                        duration_ms = elapsed.as_millis() as u64,
                        "delivery attempt"
                    );
                    results.push(AttemptResult {
                        rcpt,
                        outcome,
                        reply,
                        remote: Some(remote.clone()),
                    });
                }
                ctx.report(job.id, results);
            }
            Err(failure) => {
                // Nobody can be reached: everything waiting for this
                // destination gets the same answer now, not one by one.
                let outcome = if failure.permanent {
                    Outcome::Failed
                } else {
                    Outcome::Deferred
                };
                let mut jobs = dest.drain();
                jobs.insert(0, job);
                for job in jobs {
                    for &rcpt in &job.rcpts {
                        tracing::info!(
                            message_id = %job.id,
                            account = %job.account,
                            recipient = %LogSafe(&job.envelope.recipients[rcpt].address),
                            remote = %target,
                            outcome = ?outcome,
                            reply = %LogSafe(&failure.reply.to_string()),
                            duration_ms = 0u64,
                            "delivery attempt"
                        );
                    }
                    let results =
                        results_for(&job, outcome, &failure.reply, failure.remote.as_deref());
                    ctx.report(job.id, results);
                }
                break;
            }
        }
    }
    if let Some(client) = client {
        client.quit().await;
    }
}
