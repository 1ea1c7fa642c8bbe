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

use carteiro_delivery::engine::now_millis;
use carteiro_mail::MessageId;
use carteiro_mail::tracking::{Tracking, track_message};
use carteiro_mail::verp::{Purpose, TokenKey};
use carteiro_store::{Engagement, EventWriter, NewEvent, Store};
use serde_json::json;
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
}

impl Tracker {
    pub fn new(tokens: Arc<TokenKey>, store: Store, events: EventWriter) -> Tracker {
        Tracker {
            tokens,
            store,
            events,
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
        let now = now_millis() as i64;
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
        let mut details = json!({ "user_agent": user_agent, "unique": unique });
        if let (Some(url), Some(object)) = (url, details.as_object_mut()) {
            object.insert("url".into(), json!(url));
        }
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
