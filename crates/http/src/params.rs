//! Query strings of the read endpoints: which parameters exist, and the
//! parsers for times, limits and cursors. Every refusal names the parameter
//! (`400 invalid parameter`); an unknown parameter is refused too, so a typo
//! (`recipent=`) does not silently widen a search. Pure, no I/O.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::error::ApiError;

/// Items per page when `limit` is absent.
pub(crate) const DEFAULT_LIMIT: u32 = 50;

/// Most items per page; a larger `limit` is lowered to it.
pub(crate) const MAX_LIMIT: u32 = 500;

/// A request's query parameters, checked against the names an endpoint takes.
/// Empty values count as absent (`?recipient=&tag=x` filters by tag only).
#[derive(Debug)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Checks that every parameter is one of `known` and that only those in
    /// `repeatable` are given more than once.
    pub(crate) fn new(
        pairs: Vec<(String, String)>,
        known: &[&str],
        repeatable: &[&str],
    ) -> Result<Params, ApiError> {
        for (at, (name, _)) in pairs.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                return Err(ApiError::parameter(
                    name,
                    format!("unknown parameter; expected one of: {}", known.join(", ")),
                ));
            }
            let repeated = pairs[..at].iter().any(|(earlier, _)| earlier == name);
            if repeated && !repeatable.contains(&name.as_str()) {
                return Err(ApiError::parameter(name, "given more than once"));
            }
        }
        Ok(Params { pairs })
    }

    /// The value of a parameter given once, if not empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    /// The non-empty values of a parameter, in order.
    pub(crate) fn all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        let name = name.to_owned();
        self.pairs
            .iter()
            .filter(move |(n, v)| *n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// `limit`: 1 or more, [`DEFAULT_LIMIT`] when absent, at most [`MAX_LIMIT`].
pub(crate) fn parse_limit(value: Option<&str>) -> Result<u32, ApiError> {
    let Some(value) = value else {
        return Ok(DEFAULT_LIMIT);
    };
    match value.parse::<u32>() {
        Ok(0) => Err(ApiError::parameter("limit", "must be at least 1")),
        Ok(limit) => Ok(limit.min(MAX_LIMIT)),
        // A number too large for u32 is still a valid request for "the most".
        Err(_) if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => Ok(MAX_LIMIT),
        Err(_) => Err(ApiError::parameter(
            "limit",
            format!("not a number: {value:?}"),
        )),
    }
}

/// A time as unix milliseconds: RFC 3339 (`2026-11-26T09:30:00Z`, any
/// offset), or a plain date (`2026-11-26`) meaning its midnight UTC.
pub(crate) fn parse_time(parameter: &str, value: &str) -> Result<i64, ApiError> {
    let at = OffsetDateTime::parse(value, &Rfc3339).or_else(|_| {
        Date::parse(value, format_description!("[year]-[month]-[day]"))
            .map(|date| date.midnight().assume_utc())
    });
    match at {
        Ok(at) => i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| ApiError::parameter(parameter, "time out of range")),
        Err(_) => Err(ApiError::parameter(
            parameter,
            format!("not an RFC 3339 time or a YYYY-MM-DD date: {value:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parameters_are_checked_by_name() {
        let params = Params::new(
            pairs(&[("a", ""), ("b", "x"), ("b", "y")]),
            &["a", "b"],
            &["b"],
        )
        .expect("valid");
        assert_eq!(params.get("a"), None);
        assert_eq!(params.all("b").collect::<Vec<_>>(), ["x", "y"]);
        let unknown = Params::new(pairs(&[("c", "1")]), &["a"], &[]).expect_err("unknown");
        assert!(
            matches!(unknown, ApiError::InvalidParameter { parameter, .. } if parameter == "c")
        );
        let twice = Params::new(pairs(&[("a", "1"), ("a", "2")]), &["a"], &[]).expect_err("twice");
        assert!(matches!(twice, ApiError::InvalidParameter { parameter, .. } if parameter == "a"));
    }

    #[test]
    fn limits_default_cap_and_refuse() {
        assert_eq!(parse_limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(parse_limit(Some("7")), Ok(7));
        assert_eq!(parse_limit(Some("501")), Ok(MAX_LIMIT));
        assert_eq!(parse_limit(Some("99999999999999")), Ok(MAX_LIMIT));
        for bad in ["0", "-1", "ten", "1.5"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_rfc3339_or_dates() {
        let midnight = 1_795_651_200_000; // 2026-11-26T00:00:00Z
        assert_eq!(parse_time("since", "2026-11-26"), Ok(midnight));
        assert_eq!(parse_time("since", "2026-11-26T00:00:00Z"), Ok(midnight));
        assert_eq!(
            parse_time("since", "2026-11-26T01:00:00.5+01:00"),
            Ok(midnight + 500)
        );
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-11-26 00:00:00",
            "1795651200",
        ] {
            let error = parse_time("until", bad).expect_err(bad);
            assert!(
                matches!(error, ApiError::InvalidParameter { parameter, .. } if parameter == "until")
            );
        }
    }
}
