//! Statistics: counts of events per account, sending domain, tag and
//! destination provider, per hour, kept as rollups by the event writer
//! (`stats/rollup.rs`, in each batch's transaction) and read here by time
//! range. A request never scans the event log: it reads at most one row per
//! hour and sending domain (times the groups asked for), whatever the number
//! of events (migration 0009 has the tables, 0010 `opened_machine`).
//!
//! Days are sums of hours (UTC). Counts are per recipient. This module knows
//! nothing of HTTP; the API shapes the answer.

mod rollup;

#[cfg(test)]
mod tests;

pub(crate) use rollup::{StatsMemory, record};

use serde::Serialize;
use sqlx::Row;

use crate::error::StoreError;
use crate::store::Store;

/// Seconds in an hour, the rollups' unit.
pub const HOUR_SECONDS: i64 = 3600;

/// Seconds in a day.
pub const DAY_SECONDS: i64 = 86_400;

/// The counter columns of both rollup tables (the order of [`StatsCounts`],
/// not of the tables: columns added later sit at the tables' end); also the
/// wire names of [`StatsCounts`].
pub(crate) const COLUMNS: [&str; 13] = [
    "received",
    "delivered",
    "deferred",
    "bounced",
    "expired",
    "suppressed",
    "complained",
    "opened",
    "opened_unique",
    "opened_machine",
    "clicked",
    "clicked_unique",
    "unsubscribed",
];

/// Positions in [`COLUMNS`], for the rollups.
pub(crate) mod column {
    pub(crate) const RECEIVED: usize = 0;
    pub(crate) const DELIVERED: usize = 1;
    pub(crate) const DEFERRED: usize = 2;
    pub(crate) const BOUNCED: usize = 3;
    pub(crate) const EXPIRED: usize = 4;
    pub(crate) const SUPPRESSED: usize = 5;
    pub(crate) const COMPLAINED: usize = 6;
    pub(crate) const OPENED: usize = 7;
    pub(crate) const OPENED_UNIQUE: usize = 8;
    pub(crate) const OPENED_MACHINE: usize = 9;
    pub(crate) const CLICKED: usize = 10;
    pub(crate) const CLICKED_UNIQUE: usize = 11;
    pub(crate) const UNSUBSCRIBED: usize = 12;
}

/// Counts of one interval (or a total). `opened` and `clicked` count every
/// open by a person and every click; the `_unique` ones only the first per
/// recipient (events whose details say `"unique": true`). Opens by image
/// proxies and prefetchers (`"machine": true`) count in `opened_machine`
/// only, so open rates stay about people.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsCounts {
    pub received: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
    pub expired: u64,
    pub suppressed: u64,
    pub complained: u64,
    pub opened: u64,
    pub opened_unique: u64,
    pub opened_machine: u64,
    pub clicked: u64,
    pub clicked_unique: u64,
    pub unsubscribed: u64,
}

impl StatsCounts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &StatsCounts) {
        let mine = self.fields_mut();
        for (field, value) in mine.into_iter().zip(other.values()) {
            *field += value;
        }
    }

    /// Every count in [`COLUMNS`] order.
    pub fn values(&self) -> [u64; COLUMNS.len()] {
        [
            self.received,
            self.delivered,
            self.deferred,
            self.bounced,
            self.expired,
            self.suppressed,
            self.complained,
            self.opened,
            self.opened_unique,
            self.opened_machine,
            self.clicked,
            self.clicked_unique,
            self.unsubscribed,
        ]
    }

    /// The sum of every count (to rank groups by activity).
    pub fn sum(&self) -> u64 {
        self.values().iter().sum()
    }

    fn fields_mut(&mut self) -> [&mut u64; COLUMNS.len()] {
        [
            &mut self.received,
            &mut self.delivered,
            &mut self.deferred,
            &mut self.bounced,
            &mut self.expired,
            &mut self.suppressed,
            &mut self.complained,
            &mut self.opened,
            &mut self.opened_unique,
            &mut self.opened_machine,
            &mut self.clicked,
            &mut self.clicked_unique,
            &mut self.unsubscribed,
        ]
    }
}

/// What to split the counts by, besides time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsGroup {
    /// The sending domain.
    Domain,
    /// Each tag (messages without tags appear in no tag's rows).
    Tag,
    /// The destination provider (recipient domains grouped by MX host).
    Provider,
}

impl StatsGroup {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StatsGroup::Domain => "domain",
            StatsGroup::Tag => "tag",
            StatsGroup::Provider => "provider",
        }
    }
}

/// A statistics request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsFilter {
    /// Counts from this time on (unix ms; rounded down to its hour).
    pub since_ms: i64,
    /// Counts before this time (unix ms; rounded up to an hour).
    pub until_ms: i64,
    /// The interval length in seconds: [`HOUR_SECONDS`] or [`DAY_SECONDS`]
    /// (any multiple of an hour that divides a day works).
    pub bucket_seconds: i64,
    /// Only this sending domain (lower case).
    pub domain: Option<String>,
    /// Only messages with this tag.
    pub tag: Option<String>,
    /// Only this destination provider.
    pub provider: Option<String>,
    /// Split each interval by this.
    pub group: Option<StatsGroup>,
}

/// The counts of one interval (and group, when grouped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsRow {
    /// The interval's start, unix ms.
    pub start_ms: i64,
    /// The group's value (a domain, tag or provider), when grouped.
    pub group: Option<String>,
    pub counts: StatsCounts,
}

impl Store {
    /// The account's counts per interval (and group) in the filter's range,
    /// oldest first; intervals with nothing are absent.
    pub async fn stats(
        &self,
        account_id: i64,
        filter: &StatsFilter,
    ) -> Result<Vec<StatsRow>, StoreError> {
        let bucket = filter.bucket_seconds.max(HOUR_SECONDS);
        let first_hour = filter.since_ms.div_euclid(1000 * HOUR_SECONDS) * HOUR_SECONDS;
        let end_hour = (filter.until_ms + 1000 * HOUR_SECONDS - 1).div_euclid(1000 * HOUR_SECONDS)
            * HOUR_SECONDS;
        let by_provider = filter.group == Some(StatsGroup::Provider) || filter.provider.is_some();
        let table = if by_provider {
            "stats_hourly_provider"
        } else {
            "stats_hourly"
        };
        let group = match filter.group {
            None => "NULL",
            Some(StatsGroup::Domain) => "domain",
            Some(StatsGroup::Tag) => "tag",
            Some(StatsGroup::Provider) => "provider",
        };
        let sums: Vec<String> = COLUMNS
            .iter()
            .map(|c| format!("CAST(sum({c}) AS BIGINT) AS {c}"))
            .collect();
        // $1 account, $2 bucket, $3..$4 hours, $5 tag, then the filters.
        let mut sql = format!(
            "SELECT (hour / $2) * $2 AS start, {group} AS grp, {} FROM {table} \
             WHERE account_id = $1 AND hour >= $3 AND hour < $4",
            sums.join(", ")
        );
        let grouping_tags = filter.group == Some(StatsGroup::Tag);
        if grouping_tags && filter.tag.is_none() {
            sql.push_str(" AND tag <> $5");
        } else {
            sql.push_str(" AND tag = $5");
        }
        let mut next = 6;
        if filter.domain.is_some() {
            sql.push_str(&format!(" AND domain = ${next}"));
            next += 1;
        }
        if filter.provider.is_some() {
            sql.push_str(&format!(" AND provider = ${next}"));
        }
        sql.push_str(" GROUP BY start, grp ORDER BY start, grp");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .bind(bucket)
            .bind(first_hour)
            .bind(end_hour)
            .bind(filter.tag.as_deref().unwrap_or(""));
        if let Some(domain) = &filter.domain {
            query = query.bind(domain);
        }
        if let Some(provider) = &filter.provider {
            query = query.bind(provider);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let mut counts = StatsCounts::default();
                for (field, column) in counts.fields_mut().into_iter().zip(COLUMNS) {
                    let value: i64 = row.try_get(column)?;
                    *field = u64::try_from(value).unwrap_or(0);
                }
                let start: i64 = row.try_get("start")?;
                Ok(StatsRow {
                    start_ms: start.saturating_mul(1000),
                    group: row.try_get("grp")?,
                    counts,
                })
            })
            .collect()
    }
}
