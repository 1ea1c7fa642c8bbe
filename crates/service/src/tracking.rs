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

use carteiro_mail::MessageId;
use carteiro_mail::clock::Clock;
use carteiro_mail::tracking::{Tracking, track_message};
use carteiro_mail::verp::{Purpose, TokenKey};
use carteiro_store::{Engagement, EngagementDetails, EventDetails, EventWriter, NewEvent, Store};
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
        let (account_id, address) = match self.store.message_recipient(&message_id, rcpt).await {
            Ok(Some(found)) => (found.account_id, found.address),
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
        let unique = match self
            .store
            .first_engagement(account_id, &message_id, rcpt, kind, now)
            .await
        {
            Ok(first) => first,
            Err(err) => {
                tracing::warn!(%message_id, error = %err, "cannot tell a first open or click; counted as a repeat");
                false
            }
        };
        let machine = (kind == Engagement::Opened).then(|| is_machine_open(user_agent));
        let details = EventDetails::Engagement(EngagementDetails {
            user_agent: user_agent.map(str::to_owned),
            unique,
            machine,
            url: url.map(str::to_owned),
        });
        tracing::debug!(%message_id, recipient = %address, kind = kind.event_kind().as_str(), unique, "engagement");
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
