//! What each kind of event says about itself: the `details` object of the
//! event log, one struct per kind of event.
//!
//! These types are the only way an event's details are made: the mail path
//! fills them in, the [`EventWriter`](crate::EventWriter) stores them as
//! JSON (the shape the API and webhooks show, documented in
//! `docs/events.md`), and the statistics rollups read them as fields, never
//! by string key. Reading the log back gives the stored JSON as it is
//! ([`EventRecord::details`](crate::EventRecord)), so rows written by
//! another version stay readable.

use carteiro_mail::bounce::{BounceClass, Reason};
use serde::{Deserialize, Serialize};

/// The details of one event, by what happened. Only written: the stored
/// JSON carries no tag to read the variant back from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventDetails {
    /// `received`.
    Received(ReceivedDetails),
    /// A delivery attempt's outcome: `deferred`, `delivered`, `bounced`
    /// during delivery, `expired`, and `deleted` by an operator.
    Delivery(DeliveryDetails),
    /// `bounced` reported afterwards by a bounce message (a DSN or a text
    /// bounce to the VERP return path).
    BounceReport(BounceReportDetails),
    /// `suppressed`: the recipient is on the account's list.
    Suppressed(SuppressedDetails),
    /// `complained`: a feedback-loop (ARF) report.
    Complaint(ComplaintDetails),
    /// `opened` and `clicked`.
    Engagement(EngagementDetails),
    /// `unsubscribed`.
    Unsubscribe(UnsubscribeDetails),
    /// `alert`: about the server, not a message.
    Alert(AlertDetails),
    /// No details (`{}` on the wire; stored as `null`).
    None,
}

impl EventDetails {
    /// Whether an `opened` or `clicked` event is the recipient's first.
    pub fn is_unique(&self) -> bool {
        matches!(self, EventDetails::Engagement(e) if e.unique)
    }

    /// Whether an `opened` event came from a machine (an image proxy or a
    /// prefetcher), not a person.
    pub fn is_machine(&self) -> bool {
        matches!(self, EventDetails::Engagement(e) if e.machine == Some(true))
    }

    /// The MX host a delivery attempt reached, if any.
    pub fn mx(&self) -> Option<&str> {
        match self {
            EventDetails::Delivery(d) => d.mx.as_deref().filter(|mx| !mx.is_empty()),
            _ => None,
        }
    }
}

/// `alert`: a condition of the server an operator should know about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertDetails {
    /// What it is about: `spool_full` (new mail is refused for want of disk
    /// space).
    pub alert: String,
    /// `started` or `ended`.
    pub state: String,
    /// One line for people.
    pub text: String,
}

/// `received`: how the message came in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReceivedDetails {
    /// The SMTP client, for mail that came over SMTP (absent for the API).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpClientDetails>,
    /// `smtp` or `api`.
    pub source: String,
    /// The message's size as spooled (signed), bytes.
    pub size: u64,
    /// The DKIM domain it was signed for, `null` when unsigned.
    pub dkim_domain: Option<String>,
    /// The node that took the message (its `[store] node_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The SMTP client that handed a message over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmtpClientDetails {
    /// The client's IP address.
    pub client_ip: String,
    /// Its EHLO/HELO name.
    pub helo: String,
    /// Whether the session was encrypted.
    pub tls: bool,
    /// The SMTP login, `null` without AUTH.
    pub auth_user: Option<String>,
    /// The listener: `relay`, `submission` or `submissions`.
    pub listener: String,
}

/// The outcome of a delivery attempt (or of an operator's delete).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveryDetails {
    /// The attempt's number, from 1 (0: never attempted).
    pub attempt: u32,
    /// The host that answered, `host[ip]:port`; `null` when none did.
    pub remote_host: Option<String>,
    /// The MX host name reached (MX delivery only).
    pub mx: Option<String>,
    /// The remote reply (or Carteiro's own, e.g. for a lookup failure).
    pub reply: Option<String>,
    /// Its code.
    pub reply_code: Option<u16>,
    /// Its enhanced status code, `5.1.1`.
    pub status: Option<String>,
    /// When the next attempt is due, unix milliseconds (`deferred` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_ms: Option<u64>,
    /// The bounce class of a failure (`deferred`, `bounced`, `expired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<BounceClass>,
    /// Why, in sisimai's words (`userunknown`, `expired`, ...), beside
    /// `class`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The node that made the attempt (its `[store] node_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A bounce reported by a bounce message after delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BounceReportDetails {
    /// Always `true`: the bounce came later, by mail.
    #[serde(rename = "async")]
    pub is_async: bool,
    /// The bounce class.
    pub class: BounceClass,
    /// Why, in sisimai's words; absent in events recorded before it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The enhanced status code the report gives.
    pub status: Option<String>,
    /// The diagnostic (the remote server's reply).
    pub reply: Option<String>,
    /// The remote MTA the report names.
    pub remote_host: Option<String>,
    /// The MTA that wrote the report.
    pub reporting_mta: Option<String>,
}

/// `suppressed`: why nothing was sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuppressedDetails {
    /// In words.
    pub reason: String,
}

/// `complained`: the feedback report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComplaintDetails {
    /// The report's `Feedback-Type` (`abuse`, …).
    pub feedback_type: Option<String>,
    /// The report's `User-Agent` (the reporting system).
    pub user_agent: Option<String>,
    /// The MTA that wrote the report.
    pub reporting_mta: Option<String>,
}

/// `opened` and `clicked`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngagementDetails {
    /// The fetching client's `User-Agent`.
    pub user_agent: Option<String>,
    /// Whether it is the recipient's first open (or click) of the message.
    pub unique: bool,
    /// `opened` only: whether an image proxy or prefetcher fetched the
    /// pixel rather than a person (absent for clicks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<bool>,
    /// `clicked` only: the URL followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `unsubscribed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnsubscribeDetails {
    /// `one-click` (the List-Unsubscribe URL) or `mailto`.
    pub method: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wire(details: &EventDetails) -> serde_json::Value {
        serde_json::to_value(details).expect("serializable")
    }

    #[test]
    fn received_over_smtp_and_the_api_keep_their_shapes() {
        let smtp = EventDetails::Received(ReceivedDetails {
            smtp: Some(SmtpClientDetails {
                client_ip: "192.0.2.1".into(),
                helo: "client.example".into(),
                tls: true,
                auth_user: None,
                listener: "submission".into(),
            }),
            source: "smtp".into(),
            size: 1234,
            dkim_domain: Some("shop.example".into()),
            node: None,
        });
        assert_eq!(
            wire(&smtp),
            json!({"client_ip": "192.0.2.1", "helo": "client.example", "tls": true,
                   "auth_user": null, "listener": "submission", "source": "smtp",
                   "size": 1234, "dkim_domain": "shop.example"})
        );
        let api = EventDetails::Received(ReceivedDetails {
            smtp: None,
            source: "api".into(),
            size: 10,
            dkim_domain: None,
            node: None,
        });
        assert_eq!(
            wire(&api),
            json!({"source": "api", "size": 10, "dkim_domain": null})
        );
    }

    #[test]
    fn optional_delivery_fields_are_left_out_when_unset() {
        let delivered = EventDetails::Delivery(DeliveryDetails {
            attempt: 1,
            remote_host: Some("mx.example[192.0.2.2]:25".into()),
            mx: Some("mx.example".into()),
            reply: Some("250 2.0.0 ok".into()),
            reply_code: Some(250),
            status: Some("2.0.0".into()),
            ..DeliveryDetails::default()
        });
        assert_eq!(
            wire(&delivered),
            json!({"attempt": 1, "remote_host": "mx.example[192.0.2.2]:25", "mx": "mx.example",
                   "reply": "250 2.0.0 ok", "reply_code": 250, "status": "2.0.0"})
        );
        assert_eq!(delivered.mx(), Some("mx.example"));
        assert!(!delivered.is_unique());
    }

    #[test]
    fn engagement_flags_are_read_as_fields() {
        let open = EventDetails::Engagement(EngagementDetails {
            user_agent: Some("GoogleImageProxy".into()),
            unique: true,
            machine: Some(true),
            url: None,
        });
        assert!(open.is_unique() && open.is_machine());
        assert_eq!(
            wire(&open),
            json!({"user_agent": "GoogleImageProxy", "unique": true, "machine": true})
        );
        assert_eq!(wire(&EventDetails::None), serde_json::Value::Null);
        let bounce = EventDetails::BounceReport(BounceReportDetails {
            is_async: true,
            class: BounceClass::UnknownUser,
            reason: Some(carteiro_mail::bounce::Reason::UserUnknown),
            status: None,
            reply: None,
            remote_host: None,
            reporting_mta: None,
        });
        assert_eq!(wire(&bounce)["async"], json!(true));
        assert_eq!(wire(&bounce)["class"], json!("unknown_user"));
        assert_eq!(wire(&bounce)["reason"], json!("userunknown"));
    }
}
