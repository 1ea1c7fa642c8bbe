//! Open and click tracking in the daemon: the plan for one outgoing message
//! (which URLs its pixel and links get, applied by the sending policy before
//! signing), and the recording of opens and clicks that the HTTP routes
//! `/t/o/{token}` and `/t/c/{token}` report.
//!
//! Tokens name a message and a recipient index (tracked mail to several
//! recipients is one message per recipient, like bulk mail, so the index is
//! 0); the URL of a click is in its token, under the MAC. A genuine click
//! always redirects, even when the message's record is gone; it is only
//! recorded when the record is there. Whether an open or click is the
//! recipient's first (`unique` in the event's details) is kept in the store,
//! so it survives restarts.
//!
//! An open is a machine's (`machine` in its details) when its `User-Agent`
//! is a known image proxy or prefetcher, or when the pixel is fetched less
//! than [`PREFETCH_WINDOW_MS`] after the recipient's delivery (the lookup
//! that finds the recipient also gives that time). A machine's open is never
//! the recipient's first: `unique` is about people, like the statistics.

use carteiro_mail::clock::Clock;
use carteiro_mail::tracking::{Tracking, track_message};
use carteiro_mail::verp::{Purpose, TokenKey};
use carteiro_mail::{LogSafe, MessageId};
use carteiro_store::{
    Engagement, EngagementDetails, EventDetails, EventWriter, MessageRecipient, NewEvent, Store,
};
use std::sync::Arc;

/// What tracking one message gets: made by the intake, applied by the
/// sending policy (off the async workers) before DKIM signing.
#[derive(Clone)]
pub struct TrackingPlan {
    pub tokens: Arc<TokenKey>,
    /// `http.public_url`, without trailing slash.
    pub public_url: String,
    pub id: MessageId,
    /// The recipient's index in the message.
    pub rcpt: u16,
    pub opens: bool,
    pub clicks: bool,
}

impl TrackingPlan {
    /// The open-tracking pixel's URL.
    pub fn pixel_url(&self) -> String {
        format!(
            "{}/t/o/{}",
            self.public_url,
            self.tokens.token(Purpose::Open, self.id, self.rcpt)
        )
    }

    /// The click-tracking URL of a link to `url`.
    pub fn link_url(&self, url: &str) -> String {
        format!(
            "{}/t/c/{}",
            self.public_url,
            self.tokens.click_token(self.id, self.rcpt, url)
        )
    }

    /// The message with its HTML tracked, or `None` when nothing changed
    /// (no HTML part).
    pub fn apply(&self, message: &[u8]) -> Option<Vec<u8>> {
        let pixel = self.opens.then(|| self.pixel_url());
        let link = |url: &str| self.link_url(url);
        track_message(
            message,
            &Tracking {
                public_url: &self.public_url,
                pixel: pixel.as_deref(),
                link: if self.clicks { Some(&link) } else { None },
            },
        )
    }
}

/// Records opens and clicks as events.
pub struct Tracker {
    tokens: Arc<TokenKey>,
    store: Store,
    events: EventWriter,
    clock: Arc<dyn Clock>,
}

impl Tracker {
    pub fn new(
        tokens: Arc<TokenKey>,
        store: Store,
        events: EventWriter,
        clock: Arc<dyn Clock>,
    ) -> Tracker {
        Tracker {
            tokens,
            store,
            events,
            clock,
        }
    }

    /// The pixel of `token` was fetched: an `opened` event when the token is
    /// genuine and names a recorded message.
    pub async fn opened(&self, token: &str, user_agent: Option<&str>) {
        let Some((id, rcpt)) = self.tokens.decode(Purpose::Open, token) else {
            return;
        };
        self.record(id, rcpt, Engagement::Opened, user_agent, None)
            .await;
    }

    /// A tracked link was followed: its URL when the token is genuine (and
    /// a `clicked` event when it names a recorded message).
    pub async fn clicked(&self, token: &str, user_agent: Option<&str>) -> Option<String> {
        let (id, rcpt, url) = self.tokens.decode_click(token)?;
        self.record(id, rcpt, Engagement::Clicked, user_agent, Some(&url))
            .await;
        Some(url)
    }

    /// A tracked link's URL when the token is genuine, recording nothing.
    pub fn click_target(&self, token: &str) -> Option<String> {
        self.tokens.decode_click(token).map(|(_, _, url)| url)
    }

    async fn record(
        &self,
        id: MessageId,
        rcpt: u16,
        kind: Engagement,
        user_agent: Option<&str>,
        url: Option<&str>,
    ) {
        let message_id = id.to_string();
        let MessageRecipient {
            account_id,
            address,
            delivered_at_ms,
        } = match self.store.message_recipient(&message_id, rcpt).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                tracing::debug!(%message_id, rcpt, "tracking token for a message without a record");
                return;
            }
            Err(err) => {
                tracing::error!(%message_id, error = %err, "cannot look the message up");
                return;
            }
        };
        let now = self.clock.now_millis() as i64;
        let machine = (kind == Engagement::Opened)
            .then(|| is_machine_open(user_agent) || is_prefetch(delivered_at_ms, now));
        // A machine's open is never the recipient's first: the person's
        // first open after it is (so unique opens count people).
        let unique = if machine == Some(true) {
            false
        } else {
            match self
                .store
                .first_engagement(account_id, &message_id, rcpt, kind, now)
                .await
            {
                Ok(first) => first,
                Err(err) => {
                    tracing::warn!(%message_id, error = %err, "cannot tell a first open or click; counted as a repeat");
                    false
                }
            }
        };
        let details = EventDetails::Engagement(EngagementDetails {
            user_agent: user_agent.map(str::to_owned),
            unique,
            machine,
            url: url.map(str::to_owned),
        });
        tracing::debug!(%message_id, recipient = %LogSafe(&address), kind = kind.event_kind().as_str(), unique, ?machine, "engagement");
        self.events.event(NewEvent {
            account_id,
            message_id,
            recipient: Some(address),
            kind: kind.event_kind(),
            timestamp_ms: now,
            details,
        });
    }
}

/// How soon after delivery a pixel fetch is a machine's, whatever its
/// `User-Agent`: security scanners and prefetchers fetch on arrival, a
/// person takes longer than this to open a message.
pub const PREFETCH_WINDOW_MS: i64 = 1_000;

/// Whether a pixel fetched at `now_ms` came less than [`PREFETCH_WINDOW_MS`]
/// after the recipient's delivery (`None`: no delivery recorded, so no
/// telling).
fn is_prefetch(delivered_at_ms: Option<i64>, now_ms: i64) -> bool {
    delivered_at_ms.is_some_and(|delivered| now_ms - delivered < PREFETCH_WINDOW_MS)
}

/// `User-Agent` parts of the image proxies and prefetchers that fetch a
/// message's images without a person opening it: Gmail's image proxy,
/// Yahoo's, Apple Mail Privacy Protection's prefetcher, and the security
/// scanners that open every link and image of a message on arrival.
const MACHINE_AGENTS: [&str; 12] = [
    "googleimageproxy",
    "yahoomailproxy",
    "ymailproxy",
    "bingpreview",
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "forcepoint",
    "trendmicro",
    "safelinks",
    "linkscanner",
];

/// Apple Mail Privacy Protection fetches with a bare WebKit agent: neither
/// a browser's `Version/…` and `Safari/…` nor Mail's own `Mobile/…`.
const APPLE_PROXY_AGENTS: [&str; 2] = [
    "Mozilla/5.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
];

/// Whether an open with this `User-Agent` was a machine's (a proxy or
/// prefetcher), not a person's. No agent at all is a machine too: every
/// mail client and browser sends one.
pub fn is_machine_open(user_agent: Option<&str>) -> bool {
    let Some(agent) = user_agent.map(str::trim).filter(|a| !a.is_empty()) else {
        return true;
    };
    if APPLE_PROXY_AGENTS.contains(&agent) {
        return true;
    }
    let lower = agent.to_ascii_lowercase();
    MACHINE_AGENTS.iter().any(|part| lower.contains(part))
}

#[cfg(test)]
mod tests;

/// The machine-open rules with a temporary store.
#[cfg(test)]
mod machine_opens {
    use super::*;
    use carteiro_mail::clock::ManualClock;
    use carteiro_store::{
        DeliveryDetails, EventKind, EventRecord, HOUR_SECONDS, MessageSource, NewMessage,
        StatsFilter,
    };

    /// 2026-11-26T09:00:00Z.
    const T0: i64 = 1_795_683_600_000;

    const THUNDERBIRD: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0";

    #[test]
    fn proxies_and_prefetchers_are_machines_mail_clients_are_people() {
        for machine in [
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
            "Mozilla/5.0",
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
            "Mozilla/5.0 (compatible; Mimecast-LinkScanner)",
        ] {
            assert!(is_machine_open(Some(machine)), "{machine}");
        }
        assert!(is_machine_open(None), "every client sends an agent");
        assert!(is_machine_open(Some("  ")), "a blank agent is none");
        for person in [
            // Apple Mail on an iPhone (Mail's own `Mobile/…`).
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
            THUNDERBIRD,
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        ] {
            assert!(!is_machine_open(Some(person)), "{person}");
        }
    }

    #[test]
    fn a_fetch_within_the_window_after_delivery_is_a_prefetch() {
        let delivered = Some(T0);
        assert!(is_prefetch(delivered, T0));
        assert!(is_prefetch(delivered, T0 + PREFETCH_WINDOW_MS - 1));
        assert!(!is_prefetch(delivered, T0 + PREFETCH_WINDOW_MS));
        assert!(is_prefetch(delivered, T0 - 5), "before the delivery's time");
        assert!(!is_prefetch(None, T0), "no delivery recorded: no telling");
    }

    /// A store with account `shop`, its writer, and a tracker on a manual
    /// clock.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        writer: EventWriter,
        task: tokio::task::JoinHandle<()>,
        tokens: Arc<TokenKey>,
        clock: Arc<ManualClock>,
        tracker: Tracker,
        account_id: i64,
    }

    impl Fixture {
        async fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Store::open(&dir.path().join("carteiro.db"))
                .await
                .expect("open store");
            let account_id = store.create_account("shop").await.expect("account").id;
            let (writer, task) = EventWriter::start(store.clone());
            let tokens = Arc::new(TokenKey::new(b"a test key of enough length"));
            let clock = Arc::new(ManualClock::new(T0 as u64));
            let tracker = Tracker::new(
                Arc::clone(&tokens),
                store.clone(),
                writer.clone(),
                Arc::clone(&clock) as Arc<dyn Clock>,
            );
            Fixture {
                _dir: dir,
                store,
                writer,
                task,
                tokens,
                clock,
                tracker,
                account_id,
            }
        }

        /// Records message `n` to one recipient at T0, and its delivery at
        /// `delivered_ms` when given.
        async fn message(&self, n: u128, delivered_ms: Option<i64>) -> MessageId {
            let id = MessageId(((T0 as u128) << 80) | n);
            let to = format!("r{n}@dest.test");
            self.writer.message(NewMessage {
                id: id.to_string(),
                account_id: self.account_id,
                sender: "news@shop.test".to_owned(),
                recipients: vec![to.clone()],
                subject: None,
                header_message_id: None,
                tags: Vec::new(),
                sending_domain: Some("shop.test".to_owned()),
                metadata: serde_json::Value::Null,
                source: MessageSource::Api,
                size: 100,
                received_at_ms: T0,
                headers: None,
            });
            if let Some(at) = delivered_ms {
                self.writer.event(NewEvent {
                    account_id: self.account_id,
                    message_id: id.to_string(),
                    recipient: Some(to),
                    kind: EventKind::Delivered,
                    timestamp_ms: at,
                    details: EventDetails::Delivery(DeliveryDetails {
                        attempt: 1,
                        ..DeliveryDetails::default()
                    }),
                });
            }
            self.writer.flush().await;
            id
        }

        /// The pixel of `id` fetched at `at_ms` by `agent`.
        async fn open_at(&self, id: MessageId, at_ms: i64, agent: &str) {
            self.clock.set(at_ms as u64);
            let token = self.tokens.token(Purpose::Open, id, 0);
            self.tracker.opened(&token, Some(agent)).await;
            self.writer.flush().await;
        }

        /// The message's events of `kind`, in order.
        async fn events(&self, id: MessageId, kind: EventKind) -> Vec<EventRecord> {
            let message = self
                .store
                .message(self.account_id, &id.to_string())
                .await
                .expect("read")
                .expect("recorded");
            message
                .events
                .into_iter()
                .filter(|e| e.kind == kind)
                .collect()
        }

        async fn close(self) {
            self.writer.close().await;
            self.task.await.expect("the writer ends");
        }
    }

    /// `(machine, unique)` of each event.
    fn flags(events: &[EventRecord]) -> Vec<(serde_json::Value, serde_json::Value)> {
        events
            .iter()
            .map(|e| (e.details["machine"].clone(), e.details["unique"].clone()))
            .collect()
    }

    #[tokio::test]
    async fn a_pixel_fetched_within_a_second_of_delivery_is_a_machines_open() {
        let f = Fixture::new().await;
        let delivered = T0 + 2_000;
        let id = f.message(1, Some(delivered)).await;

        // A scanner on arrival, whatever agent it claims; then the person,
        // whose open is the first that counts as unique; then a proxy.
        f.open_at(id, delivered + 500, THUNDERBIRD).await;
        f.open_at(id, delivered + 5_000, THUNDERBIRD).await;
        f.open_at(id, delivered + 6_000, "GoogleImageProxy").await;
        let opens = f.events(id, EventKind::Opened).await;
        assert_eq!(
            flags(&opens),
            [
                (true.into(), false.into()),
                (false.into(), true.into()),
                (true.into(), false.into())
            ],
            "{opens:#?}"
        );
        let times: Vec<i64> = opens.iter().map(|e| e.timestamp_ms).collect();
        assert_eq!(
            times,
            [delivered + 500, delivered + 5_000, delivered + 6_000],
            "the tracker's clock"
        );
        assert_eq!(opens[0].details["user_agent"], THUNDERBIRD);

        // A click on arrival is recorded as it is: `machine` is about opens.
        f.clock.set((delivered + 100) as u64);
        let click = f.tokens.click_token(id, 0, "https://shop.test/");
        let url = f.tracker.clicked(&click, Some(THUNDERBIRD)).await;
        assert_eq!(url.as_deref(), Some("https://shop.test/"));
        f.writer.flush().await;
        let clicks = f.events(id, EventKind::Clicked).await;
        assert_eq!(clicks.len(), 1);
        assert_eq!(clicks[0].details["unique"], true);
        assert!(clicks[0].details.get("machine").is_none(), "{clicks:?}");

        // The statistics count the person's open apart from the machines'.
        let hour_ms = HOUR_SECONDS * 1000;
        let since_ms = T0.div_euclid(hour_ms) * hour_ms;
        let stats = f
            .store
            .stats(
                f.account_id,
                &StatsFilter {
                    since_ms,
                    until_ms: since_ms + hour_ms,
                    bucket_seconds: HOUR_SECONDS,
                    domain: None,
                    tag: None,
                    provider: None,
                    group: None,
                },
            )
            .await
            .expect("stats");
        assert_eq!(stats.len(), 1);
        let counts = stats[0].counts;
        assert_eq!(
            (counts.opened, counts.opened_unique, counts.opened_machine),
            (1, 1, 2)
        );
        f.close().await;
    }

    #[tokio::test]
    async fn without_a_recorded_delivery_only_the_agent_decides() {
        let f = Fixture::new().await;
        let id = f.message(2, None).await;
        f.open_at(id, T0 + 10, THUNDERBIRD).await;
        f.open_at(id, T0 + 20, "Mozilla/5.0").await;
        let opens = f.events(id, EventKind::Opened).await;
        assert_eq!(
            flags(&opens),
            [(false.into(), true.into()), (true.into(), false.into())],
            "{opens:#?}"
        );
        f.close().await;
    }
}
