//! `GET /ui/`: the account's traffic over time, from the statistics rollups
//! (one row per hour at most, whatever the number of events): charts of
//! delivery (received, delivered, deferred, bounced, complained) and of
//! engagement (opens by people and by machines apart, clicks, unsubscribes),
//! totals, and the delivery, bounce and complaint rates against the
//! thresholds the large providers hold senders to.
//!
//! Query: `range` (`24h`, `7d`, `30d`), `bucket` (`hour`, `day`), and the
//! filters `domain`, `tag`, `provider`; a bad value is shown on the page.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use carteiro_store::{DAY_SECONDS, HOUR_SECONDS, StatsCounts, StatsFilter};
use serde::Deserialize;
use serde_json::json;

use super::error::UiError;
use super::page::{Nav, render};
use super::scope::scope;
use super::session::Signed;
use crate::ApiState;
use crate::stats::StatsRequest;
use crate::submit::Submitter;

/// Complaint rate (of delivered) above which providers start to filter.
const COMPLAINT_WARN: f64 = 0.001;
/// Complaint rate Gmail and Yahoo hold bulk senders under.
const COMPLAINT_ALARM: f64 = 0.003;
/// Bounce rate (of attempted) that hints at a stale list.
const BOUNCE_WARN: f64 = 0.02;
/// Bounce rate that gets a sender blocked.
const BOUNCE_ALARM: f64 = 0.05;

/// The ranges offered, with their default bucket.
const RANGES: [(&str, i64, i64); 3] = [
    ("24h", DAY_SECONDS, HOUR_SECONDS),
    ("7d", 7 * DAY_SECONDS, HOUR_SECONDS),
    ("30d", 30 * DAY_SECONDS, DAY_SECONDS),
];

#[derive(Deserialize, Default)]
pub(crate) struct OverviewQuery {
    account: Option<String>,
    range: Option<String>,
    bucket: Option<String>,
    domain: Option<String>,
    tag: Option<String>,
    provider: Option<String>,
}

/// One total with its label.
pub(crate) struct Total {
    pub(crate) label: &'static str,
    pub(crate) value: u64,
}

/// One rate against its thresholds.
pub(crate) struct Rate {
    pub(crate) label: &'static str,
    pub(crate) percent: String,
    /// `ok`, `warn` or `alarm` (a CSS class).
    pub(crate) level: &'static str,
    pub(crate) note: String,
}

#[derive(Template)]
#[template(path = "ui/overview.html")]
struct OverviewPage {
    nav: Nav,
    range: String,
    bucket: String,
    domain: String,
    tag: String,
    provider: String,
    error: Option<String>,
    totals: Vec<Total>,
    rates: Vec<Rate>,
    /// The charts' data as JSON (read by app.js).
    chart: String,
    empty: bool,
}

fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_lowercase)
}

/// `GET /ui/`.
pub(crate) async fn page<S: Submitter>(
    State(state): State<ApiState<S>>,
    signed: Signed,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let Query(query) = query.unwrap_or_default();
    let scope = scope(&state.store, &signed, query.account.as_deref()).await?;
    let nav = Nav::new(&signed, &scope, "overview");
    let mut error = None;
    let range = query.range.clone().unwrap_or_else(|| "24h".to_owned());
    let (range, span, default_bucket) = match RANGES.iter().find(|(name, ..)| *name == range) {
        Some(&(name, span, bucket)) => (name, span, bucket),
        None => {
            error = Some(format!("Unknown range {range:?}: choose 24h, 7d or 30d."));
            RANGES[0]
        }
    };
    let bucket_seconds = match query.bucket.as_deref() {
        None | Some("") => default_bucket,
        Some("hour") => HOUR_SECONDS,
        Some("day") => DAY_SECONDS,
        Some(other) => {
            error = Some(format!("Unknown interval {other:?}: choose hour or day."));
            default_bucket
        }
    };
    let now_ms = i64::try_from(carteiro_mail::clock::now_millis()).unwrap_or(i64::MAX);
    let bucket_ms = bucket_seconds * 1000;
    let first = (now_ms - span * 1000).div_euclid(bucket_ms) * bucket_ms + bucket_ms;
    let request = StatsRequest {
        filter: StatsFilter {
            since_ms: first,
            until_ms: now_ms,
            bucket_seconds,
            domain: text(&query.domain),
            tag: query
                .tag
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            provider: text(&query.provider),
            group: None,
        },
    };
    let rows = state
        .store
        .stats(scope.account.id, &request.filter)
        .await
        .map_err(|e| UiError::store("reading statistics", e))?;
    // Every interval of the range, zeros where the rollups have no row (the
    // API's series, as counts).
    let (times, series, total) = request.series(&rows);
    let times: Vec<i64> = times.into_iter().map(|ms| ms / 1000).collect();
    let column = |pick: fn(&StatsCounts) -> u64| series.iter().map(pick).collect::<Vec<u64>>();
    let chart = json!({
        "t": times,
        "bucket": bucket_seconds,
        "delivery": [
            {"label": "received", "values": column(|c| c.received)},
            {"label": "delivered", "values": column(|c| c.delivered)},
            {"label": "deferred", "values": column(|c| c.deferred)},
            {"label": "bounced", "values": column(|c| c.bounced)},
            {"label": "complained", "values": column(|c| c.complained)},
        ],
        "engagement": [
            {"label": "opened (people)", "values": column(|c| c.opened)},
            {"label": "opened (machines)", "values": column(|c| c.opened_machine)},
            {"label": "clicked", "values": column(|c| c.clicked)},
            {"label": "unsubscribed", "values": column(|c| c.unsubscribed)},
        ],
    })
    .to_string();

    let page = OverviewPage {
        nav,
        range: range.to_owned(),
        bucket: if bucket_seconds == DAY_SECONDS {
            "day"
        } else {
            "hour"
        }
        .to_owned(),
        domain: query.domain.unwrap_or_default(),
        tag: query.tag.unwrap_or_default(),
        provider: query.provider.unwrap_or_default(),
        empty: rows.is_empty(),
        totals: totals(&total),
        rates: rates(&total),
        chart,
        error,
    };
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(status, &page)
}

fn totals(t: &StatsCounts) -> Vec<Total> {
    [
        ("Received", t.received),
        ("Delivered", t.delivered),
        ("Deferred", t.deferred),
        ("Bounced", t.bounced),
        ("Suppressed", t.suppressed),
        ("Complained", t.complained),
        ("Opened", t.opened),
        ("Clicked", t.clicked),
        ("Unsubscribed", t.unsubscribed),
    ]
    .into_iter()
    .map(|(label, value)| Total { label, value })
    .collect()
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn level(rate: Option<f64>, warn: f64, alarm: f64) -> &'static str {
    match rate {
        Some(r) if r >= alarm => "alarm",
        Some(r) if r >= warn => "warn",
        _ => "ok",
    }
}

fn shown(rate: Option<f64>, digits: usize) -> String {
    rate.map_or_else(|| "–".to_owned(), |r| format!("{:.digits$}%", r * 100.0))
}

fn rates(t: &StatsCounts) -> Vec<Rate> {
    let attempted = t.delivered + t.bounced + t.expired;
    let delivery = percent(t.delivered, attempted);
    let bounce = percent(t.bounced, attempted);
    let complaint = percent(t.complained, t.delivered);
    vec![
        Rate {
            label: "Delivery rate",
            percent: shown(delivery, 1),
            level: if delivery.is_some_and(|d| d < 1.0 - BOUNCE_ALARM) {
                "alarm"
            } else if delivery.is_some_and(|d| d < 1.0 - BOUNCE_WARN) {
                "warn"
            } else {
                "ok"
            },
            note: format!("delivered of {attempted} finished"),
        },
        Rate {
            label: "Bounce rate",
            percent: shown(bounce, 2),
            level: level(bounce, BOUNCE_WARN, BOUNCE_ALARM),
            note: "warn 2% · alarm 5%".to_owned(),
        },
        Rate {
            label: "Complaint rate",
            percent: shown(complaint, 3),
            level: level(complaint, COMPLAINT_WARN, COMPLAINT_ALARM),
            note: "warn 0.1% · alarm 0.3% (Gmail, Yahoo)".to_owned(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_judged_against_the_providers_thresholds() {
        let counts = StatsCounts {
            delivered: 1000,
            complained: 2,
            bounced: 10,
            ..StatsCounts::default()
        };
        let rates = super::rates(&counts);
        assert_eq!(rates[1].percent, "0.99%");
        assert_eq!(rates[1].level, "ok");
        assert_eq!(rates[2].percent, "0.200%");
        assert_eq!(rates[2].level, "warn");
        let counts = StatsCounts {
            delivered: 1000,
            complained: 3,
            bounced: 60,
            ..StatsCounts::default()
        };
        let rates = super::rates(&counts);
        assert_eq!(rates[2].level, "alarm");
        assert_eq!(rates[1].level, "alarm");
        assert_eq!(rates[0].level, "alarm");
        assert_eq!(super::rates(&StatsCounts::default())[2].percent, "–");
    }
}
