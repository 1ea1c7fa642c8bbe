//! The webhook dispatcher: pushes each account's events to its webhook
//! endpoints as signed JSON POSTs, durably.
//!
//! The event log in the store is the outbox. Each endpoint row keeps a
//! cursor (the last event id it is done with); the dispatcher reads the
//! account's events after it, of the types the endpoint wants, POSTs them as
//! one JSON array (at most [`BATCH`] events, in the shape of
//! `GET /api/v1/events`), and moves the cursor in the store only after a
//! `2xx`. A crash or restart therefore loses nothing: at worst the last batch
//! is sent again (at-least-once, like mail delivery; receivers tell repeats
//! apart by the event `id`).
//!
//! Every POST carries `X-Carteiro-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256 of "<t>.<body>">`, keyed with the endpoint's whole secret
//! (`whsec_…` as shown), `Content-Type: application/json` and
//! `User-Agent: Carteiro-Webhooks`. Redirects are not followed and no proxy
//! is used.
//!
//! A POST connects only to addresses `webhooks.allow_private_targets`
//! allows (public ones by default): the client's DNS resolver drops the
//! others, and a URL whose host is an address is judged before the request
//! (`resolve.rs`). A refused target is a failure like any other, shown as
//! the endpoint's last error.
//!
//! Failures (a non-`2xx` answer, a refused connection, [`WebhooksConfig`]'s
//! `timeout`) are retried after `retry_initial`, doubling up to `retry_max`,
//! for as long as the endpoint exists. After
//! [`WEBHOOK_FAILING_AFTER`] failures in a row the API shows it `failing`
//! with the last error. An endpoint that has been failing for
//! [`GIVE_UP_AFTER`] (3 days) without a single success loses the events
//! older than that: they are skipped (counted in `skipped_events` and
//! logged), so a dead endpoint does not keep an ever-growing backlog. Events
//! are therefore retried for at least 3 days.
//!
//! Each endpoint has its own task, so a slow or dead endpoint delays no
//! other, and nothing here is on the mail path: the dispatcher only reads
//! what the event writer committed. A supervisor task reads the newest event
//! id and the endpoint list once a second ([`POLL`]), and sets the
//! `/metrics` backlog gauge; endpoint tasks sleep until the newest id passes
//! their cursor. Among nodes sharing a PostgreSQL store, one dispatches at
//! a time (a [`Lease`](carteiro_store::Lease)); another takes over within a
//! second or two of its death.

mod resolve;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use carteiro_config::WebhooksConfig;
use carteiro_http::WebhookWireEvent;
use carteiro_net::TargetPolicy;
use carteiro_store::{
    Store, StoreError, WEBHOOK_FAILING_AFTER, Webhook, WebhookEvent, event_id_floor,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use resolve::{TargetResolver, check_literal, find_refusal};

/// How often the supervisor looks for new events and endpoints.
const POLL: Duration = Duration::from_secs(1);

/// Most events in one POST.
pub const BATCH: u32 = 500;

/// A failing endpoint loses the events older than this.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(3 * 86_400);

/// How long to wait after the store itself failed before trying again.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// A cursor moved over events the endpoint does not want is written back at
/// most this often (it is only a shortcut: re-reading those events after a
/// restart sends nothing).
const CURSOR_SAVE_INTERVAL: Duration = Duration::from_secs(30);

/// While batches are sent back to back, the cursor is stored at most this
/// often: every store write competes with the event writer for SQLite's one
/// write lock. A crash resends at most this much (same event ids).
const CURSOR_SAVE_BUSY: Duration = Duration::from_secs(1);

/// While batches are full, the backlog is counted (a bounded scan) at most
/// this often; in between the gauge is the last count minus what was sent.
const BACKLOG_RECOUNT: Duration = Duration::from_secs(5);

/// A backlog is counted no further than this.
const BACKLOG_CAP: u32 = 100_000;

/// The User-Agent of every POST.
const USER_AGENT: &str = "Carteiro-Webhooks";

/// The signature header.
const SIGNATURE_HEADER: &str = "X-Carteiro-Signature";

/// The running dispatcher, for whoever wants its numbers (`/metrics`).
#[derive(Debug, Default)]
pub struct Dispatcher {
    /// Undelivered events per endpoint id, as of each endpoint's last look.
    backlogs: Mutex<HashMap<i64, u64>>,
}

impl Dispatcher {
    /// Events waiting for any endpoint, as known at each endpoint's last
    /// look at the log (at most a second or a retry delay old; a long
    /// backlog is counted up to 100 000 per endpoint). Cheap: no I/O.
    pub fn backlog(&self) -> u64 {
        self.lock().values().sum()
    }

    fn set_backlog(&self, id: i64, backlog: u64) {
        self.lock().insert(id, backlog);
    }

    fn forget(&self, id: i64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, u64>> {
        // A panic elsewhere cannot leave a map of numbers inconsistent.
        self.backlogs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What the endpoint tasks share.
struct Shared {
    store: Store,
    client: reqwest::Client,
    /// The addresses POSTs may go to (the client's resolver has it too).
    policy: Arc<TargetPolicy>,
    settings: WebhooksConfig,
    dispatcher: Arc<Dispatcher>,
}

/// Starts the dispatcher; it stops (dropping POSTs in flight, which are
/// sent again after a restart) when `stop` turns true.
pub fn start(
    store: Store,
    settings: &WebhooksConfig,
    stop: watch::Receiver<bool>,
) -> Result<(Arc<Dispatcher>, JoinHandle<()>), reqwest::Error> {
    let policy = Arc::new(TargetPolicy::new(
        settings.allow_private_targets.allows_all(),
        settings.allow_private_targets.networks(),
    ));
    let client = client(settings, &policy)?;
    let dispatcher = Arc::new(Dispatcher::default());
    let shared = Arc::new(Shared {
        store,
        client,
        policy,
        settings: settings.clone(),
        dispatcher: Arc::clone(&dispatcher),
    });
    let task = tokio::spawn(supervise(shared, stop));
    Ok((dispatcher, task))
}

/// The HTTP client of every POST: its timeouts, no redirects, no proxy (a
/// proxy would connect on its behalf, past the resolver), and the resolver
/// that keeps it to the addresses `policy` allows.
fn client(
    settings: &WebhooksConfig,
    policy: &Arc<TargetPolicy>,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(TargetResolver::new(Arc::clone(policy)))
        .build()
}

/// Keeps one task per endpoint and tells them the newest event id.
async fn supervise(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (newest_tx, newest_rx) = watch::channel(0i64);
    let mut tasks: HashMap<i64, JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Nodes sharing a PostgreSQL store take turns: one dispatches, the
    // others wait to take over when it dies (its lock goes with its
    // connection). On SQLite the lease is always held.
    let mut lease = shared.store.lease(carteiro_store::WEBHOOKS_LEASE);
    let mut leading: Option<bool> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let holds = lease.hold().await;
        if leading != Some(holds) {
            if holds {
                tracing::info!("webhooks: this node dispatches");
            } else {
                tracing::info!(
                    "webhooks: another node dispatches; this one takes over if it stops"
                );
            }
            leading = Some(holds);
        }
        if !holds {
            for (id, task) in tasks.drain() {
                task.abort();
                shared.dispatcher.forget(id);
            }
            continue;
        }
        match shared.store.newest_event_id().await {
            Ok(newest) => {
                newest_tx.send_if_modified(|known| {
                    let moved = newest > *known;
                    if moved {
                        *known = newest;
                    }
                    moved
                });
            }
            Err(error) => tracing::warn!(%error, "webhooks: cannot read the newest event id"),
        }
        let hooks = match shared.store.all_webhooks().await {
            Ok(hooks) => hooks,
            Err(error) => {
                tracing::warn!(%error, "webhooks: cannot read the endpoints");
                continue;
            }
        };
        crate::metrics::set_webhook_backlog(shared.dispatcher.backlog());
        // Deleted endpoints stop; a task that ended (its endpoint vanished
        // under it, or a panic) is started again if the endpoint is there.
        tasks.retain(|id, task| {
            let keep = hooks.iter().any(|hook| hook.id == *id) && !task.is_finished();
            if !keep {
                task.abort();
                shared.dispatcher.forget(*id);
            }
            keep
        });
        for hook in hooks {
            if !tasks.contains_key(&hook.id) {
                let id = hook.id;
                let endpoint = Endpoint::new(hook, Arc::clone(&shared), newest_rx.clone());
                tasks.insert(id, tokio::spawn(endpoint.run()));
            }
        }
    }
    for task in tasks.values() {
        task.abort();
    }
    for (_, task) in tasks {
        let _ = task.await;
    }
}

/// One endpoint's delivery state; the cursor and failure count mirror its
/// row.
struct Endpoint {
    hook: Webhook,
    shared: Arc<Shared>,
    newest: watch::Receiver<i64>,
    /// Where the stored cursor is (it may lag `hook.last_event_id` over
    /// events the endpoint does not want).
    saved_cursor: i64,
    saved_at: Instant,
    /// The last backlog figure and when it was counted.
    backlog: u64,
    counted_at: Option<Instant>,
}

/// What one attempt came to.
enum Outcome {
    /// Nothing to send up to the newest event.
    Idle,
    /// A batch was delivered; more may be waiting.
    Sent,
    /// The POST failed; retry after the backoff.
    Failed,
    /// The endpoint was deleted.
    Gone,
}

impl Endpoint {
    fn new(hook: Webhook, shared: Arc<Shared>, newest: watch::Receiver<i64>) -> Endpoint {
        Endpoint {
            saved_cursor: hook.last_event_id,
            saved_at: Instant::now(),
            backlog: 0,
            counted_at: None,
            hook,
            shared,
            newest,
        }
    }

    async fn run(mut self) {
        // After a restart a failing endpoint is tried at once, then backs
        // off from its stored failure count.
        let mut retry_at: Option<Instant> = None;
        loop {
            if let Some(at) = retry_at.take() {
                tokio::time::sleep_until(at).await;
            } else {
                let Ok(_) = self
                    .newest
                    .wait_for(|newest| *newest > self.hook.last_event_id)
                    .await
                else {
                    return; // the supervisor is gone
                };
            }
            let newest = *self.newest.borrow();
            match self.attempt(newest).await {
                Ok(Outcome::Idle | Outcome::Sent) => {}
                Ok(Outcome::Failed) => {
                    retry_at = Some(Instant::now() + self.backoff());
                }
                Ok(Outcome::Gone) => {
                    self.shared.dispatcher.forget(self.hook.id);
                    return;
                }
                Err(error) => {
                    tracing::warn!(webhook = self.hook.id, %error, "webhooks: store failed");
                    retry_at = Some(Instant::now() + STORE_RETRY);
                }
            }
        }
    }

    /// The delay before the next attempt after `failures` in a row.
    fn backoff(&self) -> Duration {
        backoff(
            self.hook.failures,
            self.shared.settings.retry_initial,
            self.shared.settings.retry_max,
        )
    }

    /// Sends the next batch of events up to `newest`, if any.
    async fn attempt(&mut self, newest: i64) -> Result<Outcome, StoreError> {
        let shared = Arc::clone(&self.shared);
        let store = &shared.store;
        let started_ms = now_ms();
        self.give_up_on_old_events(started_ms, newest).await?;
        let events = store
            .webhook_events(
                self.hook.account_id,
                &self.hook.events,
                self.hook.last_event_id,
                newest,
                BATCH,
            )
            .await?;
        let Some(last) = events.last() else {
            self.hook.last_event_id = newest;
            self.shared.dispatcher.set_backlog(self.hook.id, 0);
            if self.saved_at.elapsed() >= CURSOR_SAVE_INTERVAL && self.saved_cursor < newest {
                store.advance_webhook(self.hook.id, newest).await?;
                self.saved(newest);
            }
            return Ok(Outcome::Idle);
        };
        // A short batch holds every wanted event up to `newest`.
        let full = events.len() >= BATCH as usize;
        let done_up_to = if full { last.id } else { newest };
        let recount = self
            .counted_at
            .is_none_or(|at| at.elapsed() >= BACKLOG_RECOUNT);
        let backlog = if !full {
            events.len() as u64
        } else if recount {
            self.counted_at = Some(Instant::now());
            store
                .count_webhook_events(
                    self.hook.account_id,
                    &self.hook.events,
                    self.hook.last_event_id,
                    newest,
                    BACKLOG_CAP,
                )
                .await?
        } else {
            self.backlog.max(events.len() as u64)
        };
        self.backlog = backlog;
        self.shared.dispatcher.set_backlog(self.hook.id, backlog);

        // Details the store cannot give back as JSON are a corrupt row;
        // retrying could not help.
        let body = encode_batch(&events)
            .map_err(|error| StoreError::Corrupt(format!("event not serializable: {error}")))?;
        match self.post(body).await {
            Ok(()) => {
                // Caught up, recovering, or a second since the last save:
                // store the cursor; else only the cursor in memory moves.
                if !full || self.hook.failures > 0 || self.saved_at.elapsed() >= CURSOR_SAVE_BUSY {
                    store
                        .webhook_delivered(self.hook.id, done_up_to, now_ms())
                        .await?;
                    self.saved(done_up_to);
                }
                if self.hook.failures >= WEBHOOK_FAILING_AFTER {
                    tracing::info!(webhook = self.hook.id, url = %self.hook.url,
                        failures = self.hook.failures, "webhooks: endpoint answers again");
                }
                self.hook.last_event_id = done_up_to;
                self.hook.failures = 0;
                self.hook.failing_since_ms = None;
                self.backlog = backlog.saturating_sub(events.len() as u64);
                self.shared
                    .dispatcher
                    .set_backlog(self.hook.id, self.backlog);
                Ok(Outcome::Sent)
            }
            Err(error) => {
                let Some((failures, since)) = store
                    .webhook_failed(self.hook.id, &error, started_ms)
                    .await?
                else {
                    return Ok(Outcome::Gone);
                };
                self.hook.failures = failures;
                self.hook.failing_since_ms = Some(since);
                let retry_in = self.backoff();
                if failures == 1 || failures == WEBHOOK_FAILING_AFTER {
                    tracing::warn!(webhook = self.hook.id, url = %self.hook.url, failures,
                        retry_in_s = retry_in.as_secs(), %error, "webhooks: POST failed");
                } else {
                    tracing::debug!(webhook = self.hook.id, failures, %error,
                        "webhooks: POST failed again");
                }
                Ok(Outcome::Failed)
            }
        }
    }

    /// Skips the events older than [`GIVE_UP_AFTER`] once the endpoint has
    /// been failing that long.
    async fn give_up_on_old_events(&mut self, now: i64, newest: i64) -> Result<(), StoreError> {
        let give_up_ms = i64::try_from(GIVE_UP_AFTER.as_millis()).unwrap_or(i64::MAX);
        let Some(since) = self.hook.failing_since_ms else {
            return Ok(());
        };
        if now.saturating_sub(since) < give_up_ms {
            return Ok(());
        }
        let cutoff = (event_id_floor(now.saturating_sub(give_up_ms)) - 1).min(newest);
        if cutoff <= self.hook.last_event_id {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let store = &shared.store;
        let skipped = store
            .count_webhook_events(
                self.hook.account_id,
                &self.hook.events,
                self.hook.last_event_id,
                cutoff,
                u32::MAX,
            )
            .await?;
        store
            .skip_webhook_events(self.hook.id, cutoff, skipped)
            .await?;
        self.hook.last_event_id = cutoff;
        self.saved(cutoff);
        if skipped > 0 {
            tracing::warn!(webhook = self.hook.id, url = %self.hook.url, skipped,
                "webhooks: endpoint failing for 3 days; skipped its events older than that");
        }
        Ok(())
    }

    fn saved(&mut self, cursor: i64) {
        self.saved_cursor = cursor;
        self.saved_at = Instant::now();
    }

    /// POSTs one signed batch; `Err` describes why it did not get a `2xx`.
    async fn post(&self, body: Vec<u8>) -> Result<(), String> {
        post_signed(
            &self.shared.client,
            &self.shared.policy,
            &self.hook.url,
            self.hook.secret.as_bytes(),
            body,
        )
        .await
    }
}

/// POSTs `body` to `url` signed with `secret`, through `client` and within
/// `policy`; `Err` describes why it did not get a `2xx`.
async fn post_signed(
    client: &reqwest::Client,
    policy: &TargetPolicy,
    url: &str,
    secret: &[u8],
    body: Vec<u8>,
) -> Result<(), String> {
    check_literal(url, policy).map_err(|error| error.to_string())?;
    let timestamp = now_ms() / 1000;
    let signature = format!("t={timestamp},v1={}", sign(secret, timestamp, &body));
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .map_err(describe)?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let reason = status.canonical_reason().unwrap_or("");
    if status.is_redirection() {
        return Err(format!(
            "HTTP {} {reason} (redirects are not followed)",
            status.as_u16()
        ));
    }
    Err(format!("HTTP {} {reason}", status.as_u16())
        .trim_end()
        .to_owned())
}

/// Sends one `test` event to an endpoint now, outside its queue (its
/// cursor and backlog do not move): a batch of one event of type `test`
/// with id `"0"`, signed like every batch, from the same client and within
/// the same address policy. `Err` says why the endpoint did not take it.
pub async fn send_test(
    settings: &WebhooksConfig,
    hook: &Webhook,
    account: &str,
) -> Result<(), String> {
    let policy = Arc::new(TargetPolicy::new(
        settings.allow_private_targets.allows_all(),
        settings.allow_private_targets.networks(),
    ));
    let client = client(settings, &policy).map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&serde_json::json!([{
        "id": "0",
        "type": "test",
        "timestamp": carteiro_http::format_timestamp(now_ms()),
        "account": account,
        "message_id": null,
        "recipient": null,
        "details": {"text": "A test event sent from the Carteiro dashboard."},
    }]))
    .map_err(|e| e.to_string())?;
    post_signed(&client, &policy, &hook.url, hook.secret.as_bytes(), body).await
}

/// `retry_initial` doubled for each failure after the first, at most
/// `retry_max`.
fn backoff(failures: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    initial.saturating_mul(1u32 << doublings).min(max)
}

/// A batch as one JSON array of events in the API's shape, written straight
/// from what the store read (see [`WebhookWireEvent`]).
fn encode_batch(events: &[WebhookEvent]) -> Result<Vec<u8>, serde_json::Error> {
    let wire = events
        .iter()
        .map(WebhookWireEvent::new)
        .collect::<Result<Vec<_>, _>>()?;
    let mut body = Vec::with_capacity(events.len() * 400);
    serde_json::to_writer(&mut body, &wire)?;
    Ok(body)
}

/// The `v1` signature: lowercase hex HMAC-SHA256 of `"<timestamp>.<body>"`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    context
        .sign()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A failed request as one line: what failed and why, without the URL
/// (which may hold credentials). A target refused by the resolver is said
/// as it is, without reqwest's layers around it.
fn describe(error: reqwest::Error) -> String {
    if let Some(refusal) = find_refusal(&error) {
        return refusal;
    }
    let timeout = error.is_timeout();
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if timeout && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    text
}

fn now_ms() -> i64 {
    i64::try_from(carteiro_mail::clock::now_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;

/// The client's resolver and its target policy, with real sockets.
#[cfg(test)]
mod target_tests {
    use super::*;

    /// A POST to a name that resolves to loopback (a URL the API may have
    /// accepted when it resolved elsewhere) never connects: the client's
    /// resolver refuses, and the error says why.
    #[tokio::test]
    async fn the_client_does_not_connect_to_refused_addresses() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let accept = tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let settings = WebhooksConfig::default();
        let other = TargetPolicy::public_and(&["10.1.0.0/16".parse().expect("network")]);
        for policy in [TargetPolicy::public_only(), other] {
            let client = client(&settings, &Arc::new(policy)).expect("client");
            // `localhost` resolves through /etc/hosts: nothing leaves the machine.
            let error = client
                .post(format!("http://localhost:{port}/hook"))
                .body("[]")
                .send()
                .await
                .expect_err("refused");
            let text = describe(error);
            assert!(
                text.starts_with("localhost resolves only to private addresses (")
                    && text.contains("a loopback address)"),
                "{text}"
            );
        }
        assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing connected");
        // The same client with loopback allowed does connect.
        let loopback = TargetPolicy::public_and(&["127.0.0.0/8".parse().expect("network")]);
        let client = client(&settings, &Arc::new(loopback)).expect("client");
        let _ = client
            .post(format!("http://localhost:{port}/hook"))
            .timeout(Duration::from_millis(500))
            .send()
            .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while connections.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "the allowed POST never connected"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        accept.abort();
    }
}
