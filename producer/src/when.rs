//! Parsing `--since` / `--until` values.
//!
//! Accepted: `now`; `today` and `yesterday` (midnight in the configured time zone); ages such as
//! `90m`, `36h`, `7d`, `2w` (that long before now); dates such as `2026-11-20` (midnight in the
//! configured time zone); RFC 3339 timestamps such as `2026-11-20T08:30:00Z`.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, civil::Date};

/// Resolves `input` to an instant, relative to `now` in time zone `tz`.
pub fn parse_when(input: &str, now: Timestamp, tz: &TimeZone) -> Result<Timestamp, String> {
    let s = input.trim();
    let midnight = |date: Date| {
        date.to_zoned(tz.clone())
            .map(|z| z.timestamp())
            .map_err(|e| format!("{input:?}: {e}"))
    };
    let today = now.to_zoned(tz.clone()).date();
    match s {
        "now" => return Ok(now),
        "today" => return midnight(today),
        "yesterday" => {
            let y = today.yesterday().map_err(|e| format!("{input:?}: {e}"))?;
            return midnight(y);
        }
        _ => {}
    }
    if let Some(age) = parse_age(s) {
        let secs = age?;
        return now
            .checked_sub(secs.seconds())
            .map_err(|e| format!("{input:?}: {e}"));
    }
    if let Ok(date) = s.parse::<Date>()
        && s.len() == 10
    {
        return midnight(date);
    }
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Ok(ts);
    }
    Err(format!(
        "{input:?} is not a time: use now, today, yesterday, an age such as 36h or 7d, \
         a date such as 2026-11-20, or an RFC 3339 timestamp such as 2026-11-20T08:30:00Z"
    ))
}

/// `<number><unit>` with unit s, m, h, d or w, in seconds; `None` if `s` has another shape.
fn parse_age(s: &str) -> Option<Result<i64, String>> {
    let unit = s.chars().last()?;
    let num = &s[..s.len() - unit.len_utf8()];
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    Some(
        num.parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .filter(|&secs| secs <= 200 * 365 * 86_400)
            .ok_or_else(|| format!("age {s:?} is too large")),
    )
}

/// Parses `--stale-after`: an age (`0s`, `90m`, `24h`, `7d`, `2w`), or `off`.
pub fn parse_stale_after(s: &str) -> Result<Stale, String> {
    let s = s.trim();
    if s == "off" {
        return Ok(Stale(None));
    }
    match parse_age(s) {
        Some(secs) => Ok(Stale(Some(std::time::Duration::from_secs(
            secs?.unsigned_abs(),
        )))),
        None => Err(format!(
            "{s:?} is not an age such as 30m, 24h or 7d, nor off"
        )),
    }
}

/// `--stale-after`: how long a row may stay `queued` or `retrying` before its job counts as lost
/// and is published again; `None` turns that off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale(pub Option<std::time::Duration>);

/// Converts to the type the database driver takes.
pub fn to_chrono(ts: Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(ts.as_second(), ts.subsec_nanosecond().unsigned_abs())
        .unwrap_or_default()
}

/// A time zone by IANA name (`UTC`, `Europe/Berlin`, ...).
pub fn parse_tz(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|e| format!("time zone {name:?}: {e}"))
}

#[cfg(test)]
mod stale_tests {
    use super::*;

    #[test]
    fn stale_after_takes_ages_and_off() {
        let d = std::time::Duration::from_secs;
        assert_eq!(parse_stale_after("24h"), Ok(Stale(Some(d(86_400)))));
        assert_eq!(parse_stale_after("0s"), Ok(Stale(Some(d(0)))));
        assert_eq!(parse_stale_after("off"), Ok(Stale(None)));
        assert!(parse_stale_after("soon").is_err());
        assert!(parse_stale_after("-1h").is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-23T10:15:00Z".parse().expect("valid")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("valid")
    }

    #[test]
    fn named_days_are_midnights_in_the_zone() {
        let utc = TimeZone::UTC;
        assert_eq!(
            parse_when("today", now(), &utc),
            Ok(at("2026-11-23T00:00:00Z"))
        );
        assert_eq!(
            parse_when("yesterday", now(), &utc),
            Ok(at("2026-11-22T00:00:00Z"))
        );
        assert_eq!(parse_when("now", now(), &utc), Ok(now()));
        let berlin = parse_tz("Europe/Berlin").expect("zone");
        assert_eq!(
            parse_when("yesterday", now(), &berlin),
            Ok(at("2026-11-21T23:00:00Z"))
        );
    }

    #[test]
    fn ages_dates_and_timestamps() {
        let utc = TimeZone::UTC;
        assert_eq!(
            parse_when("36h", now(), &utc),
            Ok(at("2026-11-21T22:15:00Z"))
        );
        assert_eq!(
            parse_when("7d", now(), &utc),
            Ok(at("2026-11-16T10:15:00Z"))
        );
        assert_eq!(
            parse_when("90m", now(), &utc),
            Ok(at("2026-11-23T08:45:00Z"))
        );
        assert_eq!(
            parse_when("2026-11-20", now(), &utc),
            Ok(at("2026-11-20T00:00:00Z"))
        );
        assert_eq!(
            parse_when("2026-11-20T08:30:00+02:00", now(), &utc),
            Ok(at("2026-11-20T06:30:00Z"))
        );
    }

    #[test]
    fn rejects_nonsense_with_a_helpful_message() {
        let err = parse_when("last tuesday", now(), &TimeZone::UTC).expect_err("invalid");
        assert!(err.contains("yesterday") && err.contains("36h"), "{err}");
        assert!(parse_when("99999999999999d", now(), &TimeZone::UTC).is_err());
        assert!(parse_tz("Mars/Olympus").is_err());
    }
}
