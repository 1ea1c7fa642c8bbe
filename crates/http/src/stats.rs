//! `GET /api/v1/stats?since=&until=&by=day|hour&domain=&tag=&provider=&group=`:
//! the caller's counts per interval (UTC hours or days) from the store's
//! rollups, every interval of the range present (zeros included) so a chart
//! needs no filling, plus the range's totals. `group=domain|tag|provider`
//! adds the same per sending domain, tag or destination provider (the most
//! active [`MAX_GROUPS`]).
//!
//! Without `since`/`until` the range is the last 7 days by day, or the last
//! 24 hours by hour; it is widened to whole intervals and limited to
//! [`MAX_HOURS`] hours or [`MAX_DAYS`] days.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use carteiro_store::{DAY_SECONDS, HOUR_SECONDS, StatsCounts, StatsFilter, StatsGroup, StatsRow};
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::params::{Params, parse_time};
use crate::submit::Submitter;
use crate::wire::format_timestamp;

/// The parameters of the statistics.
const STATS_PARAMETERS: [&str; 7] = ["since", "until", "by", "domain", "tag", "provider", "group"];

/// Most intervals of an hourly answer (31 days).
pub(crate) const MAX_HOURS: i64 = 31 * 24;

/// Most intervals of a daily answer.
pub(crate) const MAX_DAYS: i64 = 366;

/// Most groups in a grouped answer, the most active first.
pub(crate) const MAX_GROUPS: usize = 100;

/// `GET /api/v1/stats`.
pub(crate) async fn stats<S: Submitter>(
    State(state): State<ApiState<S>>,
    Caller(account): Caller,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(pairs) =
        query.map_err(|rejection| ApiError::parameter("query", rejection.body_text()))?;
    let params = Params::new(pairs, &STATS_PARAMETERS, &[])?;
    let request = StatsRequest::parse(&params, now_ms())?;
    let overall = StatsFilter {
        group: None,
        ..request.filter.clone()
    };
    let rows = state
        .store
        .stats(account.id, &overall)
        .await
        .map_err(|error| ApiError::store("reading statistics", error))?;
    let (intervals, totals) = series(&request, rows.iter());
    let mut answer = json!({
        "by": request.by_name(),
        "since": format_timestamp(request.filter.since_ms),
        "until": format_timestamp(request.filter.until_ms),
        "intervals": intervals,
        "totals": totals,
    });
    if let Some(group) = request.filter.group {
        let rows = state
            .store
            .stats(account.id, &request.filter)
            .await
            .map_err(|error| ApiError::store("reading statistics", error))?;
        let (groups, truncated) = groups(&request, &rows);
        answer["group"] = json!(group.as_str());
        answer["groups"] = Value::Array(groups);
        answer["groups_truncated"] = json!(truncated);
    }
    Ok(Json(answer))
}

fn now_ms() -> i64 {
    i64::try_from(carteiro_mail::clock::now_millis()).unwrap_or(i64::MAX)
}

/// A checked request: the filter with its range aligned to whole intervals.
#[derive(Debug, PartialEq)]
pub(crate) struct StatsRequest {
    pub(crate) filter: StatsFilter,
}

impl StatsRequest {
    pub(crate) fn parse(params: &Params, now_ms: i64) -> Result<StatsRequest, ApiError> {
        let bucket = match params.get("by") {
            None | Some("day") => DAY_SECONDS,
            Some("hour") => HOUR_SECONDS,
            Some(other) => {
                return Err(ApiError::parameter(
                    "by",
                    format!("expected day or hour, not {other:?}"),
                ));
            }
        };
        let bucket_ms = bucket * 1000;
        let (max, default) = if bucket == DAY_SECONDS {
            (MAX_DAYS, 7)
        } else {
            (MAX_HOURS, 24)
        };
        let since = params
            .get("since")
            .map(|v| parse_time("since", v))
            .transpose()?;
        let until = params
            .get("until")
            .map(|v| parse_time("until", v))
            .transpose()?;
        // Whole intervals: since rounds down, until up.
        let until_ms = ceil_to(until.unwrap_or(now_ms), bucket_ms);
        let since_ms = match since {
            Some(since) => since.div_euclid(bucket_ms) * bucket_ms,
            None => until_ms - default * bucket_ms,
        };
        if until_ms <= since_ms {
            return Err(ApiError::parameter("until", "must be after since"));
        }
        if (until_ms - since_ms) / bucket_ms > max {
            let unit = if bucket == DAY_SECONDS {
                "days"
            } else {
                "hours"
            };
            return Err(ApiError::parameter(
                if since.is_some() { "since" } else { "until" },
                format!("the range is longer than {max} {unit}; narrow it or use by=day"),
            ));
        }
        let group = match params.get("group") {
            None => None,
            Some("domain") => Some(StatsGroup::Domain),
            Some("tag") => Some(StatsGroup::Tag),
            Some("provider") => Some(StatsGroup::Provider),
            Some(other) => {
                return Err(ApiError::parameter(
                    "group",
                    format!("expected domain, tag or provider, not {other:?}"),
                ));
            }
        };
        let lower = |name: &str| params.get(name).map(|v| v.trim().to_ascii_lowercase());
        Ok(StatsRequest {
            filter: StatsFilter {
                since_ms,
                until_ms,
                bucket_seconds: bucket,
                domain: lower("domain"),
                // Tags are kept as given: they match exactly.
                tag: params.get("tag").map(str::to_owned),
                provider: lower("provider"),
                group,
            },
        })
    }

    fn by_name(&self) -> &'static str {
        if self.filter.bucket_seconds == DAY_SECONDS {
            "day"
        } else {
            "hour"
        }
    }

    /// Every interval of the range: its start (ms) and its counts, zeros
    /// where `rows` have none; and the totals.
    pub(crate) fn series<'a>(
        &self,
        rows: impl IntoIterator<Item = &'a StatsRow>,
    ) -> (Vec<i64>, Vec<StatsCounts>, StatsCounts) {
        let by_start: BTreeMap<i64, &StatsCounts> =
            rows.into_iter().map(|r| (r.start_ms, &r.counts)).collect();
        let mut totals = StatsCounts::default();
        let zero = StatsCounts::default();
        let (starts, counts) = self
            .starts()
            .map(|start| {
                let counts = *by_start.get(&start).copied().unwrap_or(&zero);
                totals.add(&counts);
                (start, counts)
            })
            .unzip();
        (starts, counts, totals)
    }

    /// Every interval start of the range, in ms.
    fn starts(&self) -> impl Iterator<Item = i64> + use<> {
        let step = self.filter.bucket_seconds * 1000;
        let (since, until) = (self.filter.since_ms, self.filter.until_ms);
        (0..)
            .map(move |i| since + i * step)
            .take_while(move |start| *start < until)
    }
}

/// `value` rounded up to a multiple of `step`.
fn ceil_to(value: i64, step: i64) -> i64 {
    value.div_euclid(step) * step + if value.rem_euclid(step) == 0 { 0 } else { step }
}

/// The counts as a JSON object, with `start` first when given.
fn counts_json(start: Option<i64>, counts: &StatsCounts) -> Value {
    let mut object = Map::new();
    if let Some(start) = start {
        object.insert("start".into(), json!(format_timestamp(start)));
    }
    if let Ok(Value::Object(fields)) = serde_json::to_value(counts) {
        object.extend(fields);
    }
    Value::Object(object)
}

/// Every interval of the range (zeros where no row is) and the totals.
fn series<'a>(
    request: &StatsRequest,
    rows: impl IntoIterator<Item = &'a StatsRow>,
) -> (Vec<Value>, Value) {
    let (starts, counts, totals) = request.series(rows);
    let intervals = starts
        .into_iter()
        .zip(&counts)
        .map(|(start, counts)| counts_json(Some(start), counts))
        .collect();
    (intervals, counts_json(None, &totals))
}

/// Per group: `{"name", "totals", "intervals"}`, the most active first (then
/// by name); whether groups were left out.
fn groups(request: &StatsRequest, rows: &[StatsRow]) -> (Vec<Value>, bool) {
    let mut by_group: BTreeMap<&str, Vec<&StatsRow>> = BTreeMap::new();
    for row in rows {
        by_group
            .entry(row.group.as_deref().unwrap_or(""))
            .or_default()
            .push(row);
    }
    let mut ranked: Vec<(&str, u64, Vec<&StatsRow>)> = by_group
        .into_iter()
        .map(|(name, rows)| {
            let activity = rows.iter().map(|r| r.counts.sum()).sum();
            (name, activity, rows)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let truncated = ranked.len() > MAX_GROUPS;
    let groups = ranked
        .into_iter()
        .take(MAX_GROUPS)
        .map(|(name, _, rows)| {
            let (intervals, totals) = series(request, rows);
            json!({"name": name, "totals": totals, "intervals": intervals})
        })
        .collect();
    (groups, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = DAY_SECONDS * 1000;
    const HOUR_MS: i64 = HOUR_SECONDS * 1000;
    /// 2026-11-26T00:00:00Z.
    const MIDNIGHT: i64 = 1_795_651_200_000;

    fn parse(list: &[(&str, &str)], now: i64) -> Result<StatsRequest, ApiError> {
        let pairs = list
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        StatsRequest::parse(&Params::new(pairs, &STATS_PARAMETERS, &[])?, now)
    }

    fn refused_parameter(result: Result<StatsRequest, ApiError>) -> String {
        match result {
            Err(ApiError::InvalidParameter { parameter, .. }) => parameter,
            other => panic!("expected a refused parameter, got {other:?}"),
        }
    }

    #[test]
    fn the_default_is_the_last_seven_days_by_day() {
        let now = MIDNIGHT + 5 * HOUR_MS + 7;
        let request = parse(&[], now).expect("valid");
        assert_eq!(request.filter.bucket_seconds, DAY_SECONDS);
        assert_eq!(request.filter.until_ms, MIDNIGHT + DAY_MS, "today included");
        assert_eq!(request.filter.since_ms, MIDNIGHT - 6 * DAY_MS);
        assert_eq!(request.starts().count(), 7);
        let hourly = parse(&[("by", "hour")], now).expect("valid");
        assert_eq!(hourly.filter.until_ms, MIDNIGHT + 6 * HOUR_MS);
        assert_eq!(hourly.starts().count(), 24);
    }

    #[test]
    fn ranges_widen_to_whole_intervals() {
        let request = parse(
            &[
                ("since", "2026-11-26T10:30:00Z"),
                ("until", "2026-11-26T12:00:00Z"),
                ("by", "hour"),
                ("domain", "Shop.Test"),
                ("tag", "Orders"),
                ("group", "provider"),
            ],
            0,
        )
        .expect("valid");
        assert_eq!(request.filter.since_ms, MIDNIGHT + 10 * HOUR_MS);
        assert_eq!(request.filter.until_ms, MIDNIGHT + 12 * HOUR_MS);
        assert_eq!(request.filter.domain.as_deref(), Some("shop.test"));
        assert_eq!(request.filter.tag.as_deref(), Some("Orders"));
        assert_eq!(request.filter.group, Some(StatsGroup::Provider));
        let days = parse(
            &[("since", "2026-11-26"), ("until", "2026-11-26T00:00:01Z")],
            0,
        )
        .expect("valid");
        assert_eq!(days.starts().collect::<Vec<_>>(), [MIDNIGHT]);
    }

    #[test]
    fn bad_parameters_are_named() {
        assert_eq!(refused_parameter(parse(&[("by", "week")], 0)), "by");
        assert_eq!(refused_parameter(parse(&[("group", "rcpt")], 0)), "group");
        assert_eq!(
            refused_parameter(parse(&[("since", "yesterday")], 0)),
            "since"
        );
        assert_eq!(refused_parameter(parse(&[("sender", "x")], 0)), "sender");
        let backwards = [("since", "2026-11-27"), ("until", "2026-11-26")];
        assert_eq!(refused_parameter(parse(&backwards, 0)), "until");
        let too_long = [
            ("since", "2026-01-01"),
            ("until", "2026-02-15"),
            ("by", "hour"),
        ];
        assert_eq!(refused_parameter(parse(&too_long, 0)), "since");
        let year = [("since", "2025-01-01"), ("until", "2026-06-01")];
        assert_eq!(refused_parameter(parse(&year, 0)), "since");
    }

    #[test]
    fn every_interval_is_present_and_totals_add_up() {
        let request = parse(&[("since", "2026-11-26"), ("until", "2026-11-29")], 0).expect("valid");
        let counts = |received| StatsCounts {
            received,
            ..StatsCounts::default()
        };
        let rows = [
            StatsRow {
                start_ms: MIDNIGHT,
                group: None,
                counts: counts(2),
            },
            StatsRow {
                start_ms: MIDNIGHT + 2 * DAY_MS,
                group: None,
                counts: counts(3),
            },
        ];
        let (intervals, totals) = series(&request, rows.iter());
        let received: Vec<u64> = intervals
            .iter()
            .map(|i| i["received"].as_u64().expect("count"))
            .collect();
        assert_eq!(received, [2, 0, 3]);
        assert_eq!(intervals[1]["start"], "2026-11-27T00:00:00.000Z");
        assert_eq!(totals["received"], 5);
        assert_eq!(totals["opened_unique"], 0);
        assert_eq!(totals["opened_machine"], 0);
        assert!(totals.get("start").is_none());
    }
}
