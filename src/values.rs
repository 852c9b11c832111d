//! Scalar conversions: the text of one JSON value to the typed value a column stores.
//!
//! Owns: the exact rules for integers, floats, decimals, date-times, dates and times,
//! and how a value is quoted in a message. Must not touch: buffers or schemas. Every
//! function is pure, and an `Err` says why the value does not fit (empty when the
//! value is simply of the wrong kind).

use std::borrow::Cow;
use std::fmt;

use arrow::datatypes::{TimeUnit, i256};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// The reason a float column gives when a number would be rounded.
pub const INEXACT: &str = "cannot be held exactly by a float64";

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i64 = 719_163;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A JSON number's value as decimal digits: `digits × 10^exponent`, with no leading or
/// trailing zeros in `digits` (zero has none at all).
#[derive(Debug, PartialEq, Eq)]
struct Digits {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Digits {
    fn parse(text: &str) -> Option<Digits> {
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
            return None;
        }
        let joined = format!("{whole}{fraction}");
        let significant = joined.trim_start_matches('0');
        let trimmed = significant.trim_end_matches('0');
        let exponent = exponent
            .checked_sub(fraction.len() as i64)?
            .checked_add((significant.len() - trimmed.len()) as i64)?;
        Some(Digits {
            negative: negative && !trimmed.is_empty(),
            digits: trimmed.to_owned(),
            exponent: if trimmed.is_empty() { 0 } else { exponent },
        })
    }

    /// The value times 10^scale as a whole number, if it is one with at most
    /// `precision` digits.
    fn scaled(&self, precision: u8, scale: i8) -> Result<i256, String> {
        let shift = self.exponent + i64::from(scale);
        if shift < 0 {
            return Err(format!("more than {scale} digits after the point"));
        }
        let length = self.digits.len() as i64 + if self.digits.is_empty() { 0 } else { shift };
        if length > i64::from(precision) {
            return Err(format!("more than {precision} digits in all"));
        }
        let ten = i256::from_i128(10);
        let mut value = self.digits.bytes().fold(i256::ZERO, |acc, b| {
            acc.wrapping_mul(ten)
                .wrapping_add(i256::from_i128(i128::from(b - b'0')))
        });
        for _ in 0..shift.min(76) {
            value = value.wrapping_mul(ten);
        }
        Ok(if self.negative {
            value.wrapping_neg()
        } else {
            value
        })
    }
}

/// An int64 from a JSON number; `1.0` and `1e3` are whole numbers too.
pub fn parse_integer(text: &str) -> Result<i64, String> {
    if let Ok(value) = text.parse::<i64>() {
        return Ok(value);
    }
    let digits = Digits::parse(text).ok_or_else(String::new)?;
    if digits.exponent < 0 {
        return Err(String::new());
    }
    let value = digits.scaled(40, 0).map_err(|_| beyond_int64())?;
    i64::try_from(value.as_i128()).map_err(|_| beyond_int64())
}

fn beyond_int64() -> String {
    "beyond int64; set column_types for this column to \"decimal(38,0)\" or \"string\"".into()
}

/// A float64 from a JSON number, and whether it holds the number exactly: whether the
/// shortest text that reads back as the same float has the same digits.
pub fn parse_float(text: &str) -> Result<(f64, bool), String> {
    let value: f64 = text.parse().map_err(|_| String::new())?;
    if !value.is_finite() {
        return Err("beyond the float64 range".into());
    }
    let exact = Digits::parse(text) == Digits::parse(&format!("{value:e}"));
    Ok((value, exact))
}

/// A decimal's unscaled value from a JSON number (or a string holding one).
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i256, String> {
    Digits::parse(text)
        .ok_or_else(String::new)?
        .scaled(precision, scale)
}

fn unit_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "second",
        TimeUnit::Millisecond => "millisecond",
        TimeUnit::Microsecond => "microsecond",
        TimeUnit::Nanosecond => "nanosecond",
    }
}

/// Refuses fraction digits that the unit would drop: the rule is that digits below the
/// column's unit must be zeros, never rounded or cut.
fn check_fraction(text: &str, nanos: u32, unit: TimeUnit) -> Result<(), String> {
    let fraction: &str = text
        .rfind('.')
        .map(|i| &text[i + 1..])
        .map(|f| f.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""))
        .unwrap_or("");
    let beyond_nanos = fraction
        .get(9..)
        .is_some_and(|rest| rest.bytes().any(|b| b != b'0'));
    let divisor = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    if beyond_nanos || !nanos.is_multiple_of(divisor) {
        let hint = if unit == TimeUnit::Nanosecond || beyond_nanos {
            ""
        } else {
            "; set timestamp_unit to \"ns\" to keep them"
        };
        return Err(format!(
            "digits below a {} would be lost{hint}",
            unit_name(unit)
        ));
    }
    Ok(())
}

/// RFC 3339 (any offset, `T` or space), or no zone (taken as UTC), or a bare date;
/// returns the time since the epoch, UTC, in `unit`.
pub fn parse_timestamp(text: &str, unit: TimeUnit) -> Result<i64, String> {
    let naive = if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        dt.naive_utc()
    } else if let Ok(dt) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        dt
    } else if let Ok(dt) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
        dt
    } else if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        date.and_time(NaiveTime::MIN)
    } else {
        return Err(String::new());
    };
    check_fraction(text, naive.nanosecond(), unit)?;
    let utc = naive.and_utc();
    match unit {
        TimeUnit::Second => Ok(utc.timestamp()),
        TimeUnit::Millisecond => Ok(utc.timestamp_millis()),
        TimeUnit::Microsecond => Ok(utc.timestamp_micros()),
        TimeUnit::Nanosecond => utc.timestamp_nanos_opt().ok_or_else(|| {
            "outside 1677-09-21..2262-04-11, the range of nanosecond timestamps; use timestamp_unit \"us\"".into()
        }),
    }
}

/// `YYYY-MM-DD`, or a date-time at exactly midnight UTC; returns days since the epoch.
pub fn parse_date(text: &str) -> Result<i32, String> {
    let days = match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => i64::from(date.num_days_from_ce()) - EPOCH_DAYS_FROM_CE,
        Err(_) => {
            let micros = parse_timestamp(text, TimeUnit::Microsecond)?;
            if micros.rem_euclid(MICROS_PER_DAY) != 0 {
                return Err("a date column cannot hold a time of day".into());
            }
            micros.div_euclid(MICROS_PER_DAY)
        }
    };
    i32::try_from(days).map_err(|_| "beyond the date32 range".into())
}

/// `HH:MM:SS[.f]`; returns microseconds since midnight.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let time = NaiveTime::parse_from_str(text, "%H:%M:%S%.f").map_err(|_| String::new())?;
    check_fraction(text, time.nanosecond(), TimeUnit::Microsecond)?;
    Ok(i64::from(time.num_seconds_from_midnight()) * 1_000_000
        + i64::from(time.nanosecond() / 1000))
}

/// JSON text without whitespace outside strings; borrowed when already compact.
pub fn compact_json(text: &str) -> Cow<'_, str> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let mut in_string = false;
    let mut escaped = false;
    let mut out: Option<String> = None;
    for (i, c) in text.char_indices() {
        let keep = if in_string {
            (in_string, escaped) = (escaped || c != '"', !escaped && c == '\\');
            true
        } else {
            in_string = c == '"';
            !is_space(c)
        };
        match (&mut out, keep) {
            (Some(out), true) => out.push(c),
            (None, false) => out = Some(text[..i].to_owned()),
            _ => {}
        }
    }
    out.map_or(Cow::Borrowed(text), Cow::Owned)
}

/// How much of a value an error message shows.
const SHOWN_CHARS: usize = 40;

/// A value shown in an error message: quoted, and cut after 40 characters.
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (head, cut) = cut(self.0);
        write!(f, "{head:?}{}", if cut { "…" } else { "" })
    }
}

/// A number's text shown in an error message, cut after 40 characters.
pub struct ShownNumber<'a>(pub &'a str);

impl fmt::Display for ShownNumber<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (head, cut) = cut(self.0);
        write!(f, "{head}{}", if cut { "…" } else { "" })
    }
}

fn cut(text: &str) -> (&str, bool) {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: TimeUnit = TimeUnit::Microsecond;

    #[test]
    fn integers_are_whole_and_within_int64() {
        assert_eq!(parse_integer("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_integer("1.0"), Ok(1));
        assert_eq!(parse_integer("12e2"), Ok(1200));
        assert_eq!(parse_integer("1.5"), Err(String::new()));
        assert!(
            parse_integer("9223372036854775808")
                .unwrap_err()
                .contains("decimal(38,0)")
        );
    }

    #[test]
    fn floats_report_exactness() {
        assert_eq!(parse_float("0.1"), Ok((0.1, true)));
        assert_eq!(parse_float("1.10"), Ok((1.1, true)));
        assert_eq!(parse_float("-0.0"), Ok((-0.0, true)));
        assert_eq!(parse_float("1e308"), Ok((1e308, true)));
        assert_eq!(
            parse_float("9007199254740992"),
            Ok((9007199254740992.0, true))
        );
        assert!(!parse_float("9007199254740993").unwrap().1);
        assert!(!parse_float("1000000000000000000000000000001").unwrap().1);
        assert!(!parse_float("0.30000000000000000001").unwrap().1);
        assert!(!parse_float("1e-400").unwrap().1);
        assert!(parse_float("1e400").is_err());
    }

    #[test]
    fn decimals_are_exact_or_refused() {
        let d = |t, p, s| parse_decimal(t, p, s).map(|v| v.to_string());
        assert_eq!(d("12.5", 10, 2), Ok("1250".into()));
        assert_eq!(d("-0.01", 10, 2), Ok("-1".into()));
        assert_eq!(d("1E+2", 5, 2), Ok("10000".into()));
        assert_eq!(
            d("99999999999999999999999999999999999999", 38, 0),
            Ok("99999999999999999999999999999999999999".into())
        );
        let nines = "9".repeat(76);
        assert_eq!(d(&nines, 76, 0), Ok(nines.clone()));
        assert_eq!(d("0", 1, 0), Ok("0".into()));
        assert!(d("1.001", 10, 2).unwrap_err().contains("after the point"));
        assert!(d("1000", 5, 2).unwrap_err().contains("digits in all"));
        assert!(d("1e999999999999", 5, 2).is_err());
        assert!(d("abc", 5, 2).is_err());
    }

    #[test]
    fn timestamps_in_every_form_taps_send() {
        let utc = parse_timestamp("2024-01-01T00:00:00Z", US).unwrap();
        assert_eq!(
            parse_timestamp("2024-01-01T01:00:00+01:00", US).unwrap(),
            utc
        );
        assert_eq!(parse_timestamp("2024-01-01 00:00:00", US).unwrap(), utc);
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00.000000", US).unwrap(),
            utc
        );
        assert_eq!(parse_timestamp("2024-01-01", US).unwrap(), utc);
        assert_eq!(
            parse_timestamp("0001-01-01T00:00:00+00:00", US).unwrap(),
            -62_135_596_800_000_000
        );
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:59.999999Z", US).unwrap(),
            253_402_300_799_999_999
        );
    }

    #[test]
    fn digits_below_the_unit_are_refused_never_cut() {
        let ns = "2024-01-01T00:00:00.123456789Z";
        assert!(
            parse_timestamp(ns, US)
                .unwrap_err()
                .contains("timestamp_unit")
        );
        assert_eq!(
            parse_timestamp(ns, TimeUnit::Nanosecond).unwrap(),
            1_704_067_200_123_456_789
        );
        assert_eq!(
            parse_timestamp("2024-01-01T00:00:00.123000Z", TimeUnit::Millisecond).unwrap(),
            1_704_067_200_123
        );
        assert!(parse_timestamp("2024-01-01T00:00:00.1234Z", TimeUnit::Millisecond).is_err());
        assert!(parse_timestamp("2024-01-01T00:00:00.1234567891Z", TimeUnit::Nanosecond).is_err());
        assert!(parse_timestamp("2024-01-01T00:00:00.1234560000Z", US).is_ok());
        assert!(
            parse_timestamp("0001-01-01T00:00:00Z", TimeUnit::Nanosecond)
                .unwrap_err()
                .contains("1677")
        );
        assert!(parse_time("10:00:00.0000001").is_err());
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_time("12:00:00"), Ok(43_200_000_000));
        assert_eq!(parse_date("1970-01-02"), Ok(1));
        assert_eq!(parse_date("1969-12-31T00:00:00Z"), Ok(-1));
        assert_eq!(parse_date("0001-01-01"), Ok(-719_162));
        assert!(parse_date("2024-01-01T10:00:00Z").is_err());
    }

    #[test]
    fn compacts_json_outside_strings_only() {
        assert!(matches!(compact_json(r#"{"a":1}"#), Cow::Borrowed(_)));
        assert_eq!(
            compact_json(r#"[ "a b", {"c" : "\" x" } ]"#),
            r#"["a b",{"c":"\" x"}]"#
        );
        assert_eq!(compact_json(r#"[ "\\", 1 ]"#), r#"["\\",1]"#);
        assert_eq!(compact_json("{\n \"é\": \"ü \" }"), "{\"é\":\"ü \"}");
    }
}
