//! Parsers for the human-written quantities in the configuration file:
//! durations ("30s", "1h30m") and sizes ("50MB", "512KiB").
//!
//! Plain functions on strings; they know nothing about TOML or key names (the
//! caller adds the key to the message).

use std::time::Duration;

/// Parses a duration written as one or more `<integer><unit>` parts, for
/// example `"30s"`, `"5m"`, `"4h"`, `"5d"`, `"1h30m"` or `"1h 30m"`.
///
/// Units: `ms` (milliseconds), `s` (seconds), `m` (minutes), `h` (hours),
/// `d` (days of 24 hours), `w` (weeks of 7 days). A bare `"0"` means zero;
/// any other number needs a unit, because a bare `300` could mean seconds or
/// milliseconds depending on who wrote it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.len()
            - after
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, after) = after.split_at(unit_len);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("number {number:?} is too large"))?;
        let unit_millis: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" => {
                return Err(format!(
                    "missing unit after {number} (use ms, s, m, h, d or w)"
                ));
            }
            other => return Err(format!("unknown unit {other:?} (use ms, s, m, h, d or w)")),
        };
        let part = number
            .checked_mul(unit_millis)
            .map(Duration::from_millis)
            .ok_or_else(|| "duration is too large".to_owned())?;
        total = total
            .checked_add(part)
            .ok_or_else(|| "duration is too large".to_owned())?;
        rest = after.trim_start();
    }
    Ok(total)
}

/// Formats a duration the way [`parse_duration`] reads it, largest units
/// first (`"1h30m"`, `"5d"`, `"0s"`), for messages and logs.
pub fn format_duration(duration: Duration) -> String {
    const UNITS: [(&str, u128); 6] = [
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

/// Parses a size in bytes: a non-negative integer with an optional unit,
/// for example `"1048576"`, `"50MB"`, `"50 MB"`, `"512KiB"` or `"10M"`.
///
/// Decimal units are powers of 1000: `KB` = 1000, `MB` = 1000 × 1000,
/// `GB` = 1000³, `TB` = 1000⁴. Binary units carry an `i` and are powers of
/// 1024: `KiB` = 1024, `MiB` = 1024 × 1024, `GiB` = 1024³, `TiB` = 1024⁴.
/// The `B` may be left out (`10M` = `10MB` = 10 000 000 bytes, `4Ki` = 4096)
/// and a lone `B` means bytes. Units are case-insensitive (`mb` = `MB`);
/// there are no bit units.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return Err(if text.is_empty() {
            "empty size".to_owned()
        } else {
            "expected a number of bytes, optionally followed by a unit".to_owned()
        });
    }
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("number {number:?} is too large"))?;
    let unit = unit.trim_start();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| "size is too large".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("30s", 30),
            ("5m", 300),
            ("4h", 4 * 3600),
            ("5d", 5 * 86_400),
            ("1w", 7 * 86_400),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            (" 2m10s ", 130),
            ("0", 0),
            ("0s", 0),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(seconds)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn bad_durations() {
        for text in [
            "",
            "30",
            "5x",
            "m",
            "1.5h",
            "-1s",
            "5 m",
            "1h-",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} should be refused");
        }
        let message = parse_duration("30").unwrap_err();
        assert!(message.contains("missing unit"), "{message}");
        let message = parse_duration("5x").unwrap_err();
        assert!(message.contains("\"x\""), "{message}");
        assert!(parse_duration(&format!("{}w", u64::MAX / 1000)).is_err());
    }

    #[test]
    fn durations_round_trip_through_format() {
        for text in ["0s", "30s", "5m", "1h30m", "5d", "2w3d", "1s500ms"] {
            let duration = parse_duration(text).unwrap();
            assert_eq!(format_duration(duration), text);
        }
    }

    #[test]
    fn sizes() {
        let cases = [
            ("1048576", 1_048_576),
            ("0", 0),
            ("100B", 100),
            ("50MB", 50_000_000),
            ("50 MB", 50_000_000),
            ("50mb", 50_000_000),
            ("10M", 10_000_000),
            ("2k", 2_000),
            ("1GB", 1_000_000_000),
            ("1TB", 1_000_000_000_000),
            ("512KiB", 512 * 1024),
            ("4Ki", 4096),
            ("3MiB", 3 * 1024 * 1024),
            ("1GiB", 1 << 30),
            ("1TiB", 1 << 40),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_sizes() {
        for text in [
            "",
            "MB",
            "50XB",
            "1.5MB",
            "-1",
            "5 M B",
            "99999999999999999999",
            "99999999999TB",
        ] {
            assert!(parse_size(text).is_err(), "{text:?} should be refused");
        }
        let message = parse_size("50XB").unwrap_err();
        assert!(message.contains("\"XB\""), "{message}");
    }
}
