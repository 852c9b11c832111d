//! Scalar conversions: the text of one JSON value to the typed value a column stores.
//!
//! Owns: the exact rules for integers, floats, decimals, date-times, dates and times,
//! and how a value is quoted in a message. Must not touch: buffers or schemas. Every
//! function is pure, and an `Err` says why the value does not fit (empty when the
//! value is simply of the wrong kind).

use std::borrow::Cow;
use std::fmt;

use arrow::datatypes::{TimeUnit, i256};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde_json::json;

use crate::suggest;

/// The reason a float column gives when a number would be rounded.
pub const INEXACT: &str = "cannot be held exactly by a float64";

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
    let beyond_int64 = || {
        let ty = exact_type(text);
        format!(
            "beyond int64; set {} to keep it",
            suggest::column_type_mark(&ty)
        )
    };
    let value = digits.scaled(40, 0).map_err(|_| beyond_int64())?;
    i64::try_from(value.as_i128()).map_err(|_| beyond_int64())
}

/// The widest decimal a column type may have.
const MAX_PRECISION: usize = 76;

/// The `column_types` type that holds a JSON number exactly: `decimal(38,S)` with the
/// number's own digits after the point when 38 digits hold it (every reader takes
/// those), a wider decimal up to 76 digits, else `string`.
pub fn exact_type(text: &str) -> String {
    let Some(digits) = Digits::parse(text) else {
        return "string".into();
    };
    let scale = usize::try_from(-digits.exponent).unwrap_or(0);
    let whole = usize::try_from(digits.digits.len() as i64 + digits.exponent).unwrap_or(0);
    match whole.saturating_add(scale).max(1) {
        total if total <= 38 => format!("decimal(38,{scale})"),
        total if total <= MAX_PRECISION => format!("decimal({total},{scale})"),
        _ => "string".into(),
    }
}

/// A float64 from a JSON number, and whether it holds the number exactly: whether the
/// shortest text that reads back as the same float has the same digits.
pub fn parse_float(text: &str) -> Result<(f64, bool), String> {
    if let Some(value) = short_decimal(text) {
        return Ok((value, true));
    }
    let value: f64 = text.parse().map_err(|_| String::new())?;
    if !value.is_finite() {
        return Err("beyond the float64 range".into());
    }
    let exact = surely_exact(text) || Digits::parse(text) == Digits::parse(&format!("{value:e}"));
    Ok((value, exact))
}

/// Powers of ten that a float64 holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A plain decimal of at most 15 significant digits and 22 after the point, read in
/// one pass: its digits as an integer and its power of ten are both exact in a float64,
/// so one division gives the correctly rounded value, the same one `str::parse` gives
/// (and the number survives the round trip, see `surely_exact`). None for anything else.
fn short_decimal(text: &str) -> Option<f64> {
    let (negative, digits) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    let (mut mantissa, mut significant, mut seen) = (0u64, 0u32, 0u32);
    let mut after_point: Option<usize> = None;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                significant += u32::from(mantissa > 0);
                seen += 1;
                if let Some(places) = &mut after_point {
                    *places += 1;
                }
            }
            b'.' if after_point.is_none() => after_point = Some(0),
            _ => return None,
        }
        if significant > 15 {
            return None;
        }
    }
    let scale = EXACT_POWERS_OF_TEN.get(after_point.unwrap_or(0))?;
    let value = (seen > 0).then(|| mantissa as f64 / scale)?;
    Some(if negative { -value } else { value })
}

/// A plain decimal of at most 15 significant digits (and no exponent) always survives
/// the float64 round trip: the cheap check that spares most numbers the full one.
fn surely_exact(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() > 24 {
        return false;
    }
    let mut significant = 0;
    for &b in bytes {
        match b {
            b'1'..=b'9' => significant += 1,
            b'0' if significant > 0 => significant += 1,
            b'0' | b'-' | b'.' => {}
            _ => return false,
        }
    }
    significant <= 15
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
fn check_fraction(text: &str, nanos: u32, unit: TimeUnit, clock: Clock) -> Result<(), String> {
    let fraction: &str = text
        .rfind('.')
        .map(|i| &text[i + 1..])
        .map(|f| f.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""))
        .unwrap_or("");
    let beyond_nanos = fraction
        .get(9..)
        .is_some_and(|rest| rest.bytes().any(|b| b != b'0'));
    check_unit(nanos, unit, beyond_nanos, clock)
}

/// What holds a fraction of a second: a date-time column (in `timestamp_unit`) or a
/// time column (always microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    DateTime,
    Time,
}

/// The setting that keeps the digits a unit would lose, for the digits at hand: the
/// `timestamp_unit` that holds them where one does, else the column as text.
fn fraction_hint(nanos: u32, beyond_nanos: bool, clock: Clock) -> String {
    let as_text = suggest::column_type_mark("string");
    let unit = match () {
        _ if beyond_nanos || clock == Clock::Time => None,
        _ if nanos.is_multiple_of(1_000_000) => Some("ms"),
        _ if nanos.is_multiple_of(1_000) => Some("us"),
        _ => Some("ns"),
    };
    match unit {
        None if clock == Clock::Time => {
            format!(" (a time column holds microseconds); set {as_text} to keep them as text")
        }
        None => {
            format!(" (a timestamp holds nanoseconds at most); set {as_text} to keep them as text")
        }
        Some("ns") => format!(
            "; set {} to keep them (CSV, JSONL, or Parquet with {}), or {as_text} to keep them as text",
            suggest::setting("timestamp_unit", json!("ns")),
            suggest::setting("parquet_compatibility", json!("arrow"))
        ),
        Some(unit) => format!(
            "; set {} to keep them",
            suggest::setting("timestamp_unit", json!(unit))
        ),
    }
}

/// Refuses nanoseconds that the unit cannot hold (and digits beyond nanoseconds).
fn check_unit(nanos: u32, unit: TimeUnit, beyond_nanos: bool, clock: Clock) -> Result<(), String> {
    let divisor = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    if beyond_nanos || !nanos.is_multiple_of(divisor) {
        return Err(format!(
            "digits below a {} would be lost{}",
            unit_name(unit),
            fraction_hint(nanos, beyond_nanos, clock)
        ));
    }
    Ok(())
}

/// A zone designator, whole: `Z`, `±HH:MM`, `±HHMM` or `±HH` (ISO 8601's forms; taps
/// send all of them). Returns the offset east of UTC in seconds.
#[inline]
fn zone_offset(b: &[u8]) -> Option<i64> {
    let (sign, hours, minutes) = match b {
        [b'Z' | b'z'] => return Some(0),
        [sign @ (b'+' | b'-'), h1, h2] => (sign, [*h1, *h2], [b'0', b'0']),
        [sign @ (b'+' | b'-'), h1, h2, m1, m2] | [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            (sign, [*h1, *h2], [*m1, *m2])
        }
        _ => return None,
    };
    let (h, m) = (digits(&hours)?, digits(&minutes)?);
    if h > 23 || m > 59 {
        return None;
    }
    let seconds = i64::from(h * 3600 + m * 60);
    Some(if *sign == b'-' { -seconds } else { seconds })
}

/// Splits a zone designator off the end of a date-time or time: the text before it and
/// the offset in seconds (0 when there is none). `clock_at` is where the time of day
/// starts, so that a date's own `-` is never taken for a zone. None: a malformed zone.
fn split_zone(text: &str, clock_at: usize) -> Option<(&str, i64)> {
    let zone = text
        .get(clock_at..)?
        .find(['Z', 'z', '+', '-'])
        .map(|i| clock_at + i);
    match zone {
        Some(at) => Some((&text[..at], zone_offset(&text.as_bytes()[at..])?)),
        None => Some((text, 0)),
    }
}

/// RFC 3339 and the ISO 8601 forms taps send besides (`T` or a space; `Z`, `±HH:MM`,
/// `±HHMM` or `±HH`; PostgreSQL's `2024-01-01 10:00:00.123456+00`), or no zone (taken as
/// UTC), or a bare date; returns the time since the epoch, UTC, in `unit`. `24:00:00`
/// is the next day's midnight, and the leap second `23:59:60` the second after
/// `23:59:59`: both are the same instant as a POSIX time.
pub fn parse_timestamp(text: &str, unit: TimeUnit) -> Result<i64, String> {
    if let Some((seconds, nanos)) = fast_timestamp(text.as_bytes()) {
        check_unit(nanos, unit, false, Clock::DateTime)?;
        return scale_timestamp(seconds, nanos, unit);
    }
    let naive = if text.len() == 10 {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| String::new())?
            .and_time(NaiveTime::MIN)
    } else {
        general_timestamp(text).ok_or_else(String::new)?
    };
    check_fraction(text, naive.nanosecond(), unit, Clock::DateTime)?;
    let utc = naive.and_utc();
    scale_timestamp(utc.timestamp(), utc.timestamp_subsec_nanos(), unit)
}

/// A date-time the fast path declined, as UTC: a leap second, `24:00:00`, more than
/// nine fraction digits.
fn general_timestamp(text: &str) -> Option<NaiveDateTime> {
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (clock, offset) = split_zone(text, 11)?;
    let date = NaiveDate::parse_from_str(&clock[..10], "%Y-%m-%d").ok()?;
    let time = &clock[11..];
    let naive = if is_end_of_day(time) {
        date.succ_opt()?.and_time(NaiveTime::MIN)
    } else {
        date.and_time(NaiveTime::parse_from_str(time, "%H:%M:%S%.f").ok()?)
    };
    naive.checked_sub_signed(chrono::TimeDelta::seconds(offset))
}

/// `24:00:00`, with or without a fraction of zeros.
fn is_end_of_day(time: &str) -> bool {
    time.strip_prefix("24:00:00").is_some_and(|rest| {
        rest.is_empty()
            || rest
                .strip_prefix('.')
                .is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b == b'0'))
    })
}

/// Whole seconds and nanoseconds since the epoch, in `unit`.
fn scale_timestamp(seconds: i64, nanos: u32, unit: TimeUnit) -> Result<i64, String> {
    let (per_second, divisor) = match unit {
        TimeUnit::Second => (1, 1_000_000_000),
        TimeUnit::Millisecond => (1_000, 1_000_000),
        TimeUnit::Microsecond => (1_000_000, 1_000),
        TimeUnit::Nanosecond => (1_000_000_000, 1),
    };
    seconds
        .checked_mul(per_second)
        .and_then(|v| v.checked_add(i64::from(nanos / divisor)))
        .ok_or_else(|| {
            format!(
                "outside 1677-09-21..2262-04-11, the range of nanosecond timestamps; set {} to keep it",
                suggest::setting("timestamp_unit", json!("us"))
            )
        })
}

/// The common forms, parsed by hand: `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|±HH[[:]MM]]`.
/// Returns seconds since the epoch (UTC) and nanoseconds, or None for anything else
/// (which then takes the general path).
fn fast_timestamp(b: &[u8]) -> Option<(i64, u32)> {
    if b.len() < 19 || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let days = fast_date(&b[..10])?;
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if let Some((b'.', fraction)) = rest.split_first() {
        let count = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if count == 0 || count > 9 {
            return None;
        }
        nanos = digits(&fraction[..count])? * 10u32.pow(9 - count as u32);
        rest = &fraction[count..];
    }
    let offset = match rest {
        [] => 0,
        zone => zone_offset(zone)?,
    };
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset;
    Some((seconds, nanos))
}

/// `YYYY-MM-DD` to days since the epoch, checked.
fn fast_date(b: &[u8]) -> Option<i64> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(&b[..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(i64::from(year), month, day))
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01: (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD`, or a date-time at exactly midnight UTC; returns days since the epoch.
pub fn parse_date(text: &str) -> Result<i32, String> {
    let days = match fast_date(text.as_bytes()) {
        Some(days) => days,
        None if text.len() == 10 => return Err(String::new()),
        None => {
            let micros = parse_timestamp(text, TimeUnit::Microsecond)?;
            if micros.rem_euclid(MICROS_PER_DAY) != 0 {
                return Err("a date column cannot hold a time of day".into());
            }
            micros.div_euclid(MICROS_PER_DAY)
        }
    };
    i32::try_from(days).map_err(|_| "beyond the date32 range".into())
}

/// `HH:MM:SS[.f]`, with a zone (`Z`, `±HH:MM`, `±HHMM`, `±HH`) turned into UTC, as
/// date-times are; returns microseconds since midnight. `24:00:00` and the leap second
/// `23:59:60` are refused alike: neither is a time of day a time column can hold.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let (clock, offset) = split_zone(text, 0).ok_or_else(String::new)?;
    if clock.starts_with("24:") || clock.get(5..8) == Some(":60") {
        return Err(format!(
            "not a time of day: a time column holds 00:00:00 to 23:59:59.999999 (24:00:00 and leap seconds are refused alike); set {} to keep it as text",
            suggest::column_type_mark("string")
        ));
    }
    let time = NaiveTime::parse_from_str(clock, "%H:%M:%S%.f").map_err(|_| String::new())?;
    check_fraction(clock, time.nanosecond(), TimeUnit::Microsecond, Clock::Time)?;
    let micros = i64::from(time.num_seconds_from_midnight()) * 1_000_000
        + i64::from(time.nanosecond() / 1000);
    Ok((micros - offset * 1_000_000).rem_euclid(MICROS_PER_DAY))
}

/// Appends a time since the epoch as RFC 3339 in UTC with `Z`, with as many fraction
/// digits (0, 3, 6 or 9) as the value needs.
pub fn format_timestamp(value: i64, unit: TimeUnit, out: &mut Vec<u8>) {
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let (seconds, sub) = (value.div_euclid(per_second), value.rem_euclid(per_second));
    let nanos = sub * (1_000_000_000 / per_second);
    format_date(seconds.div_euclid(86_400), out);
    out.push(b'T');
    let of_day = seconds.rem_euclid(86_400);
    format_clock(of_day, nanos, out);
    out.push(b'Z');
}

/// Appends `YYYY-MM-DD` for days since the epoch.
pub fn format_date(days: i64, out: &mut Vec<u8>) {
    let (year, month, day) = civil_from_days(days);
    if (0..=9999).contains(&year) {
        push_padded(out, year as u64, 4);
    } else {
        out.extend_from_slice(format!("{year:+05}").as_bytes());
    }
    out.push(b'-');
    push_padded(out, u64::from(month), 2);
    out.push(b'-');
    push_padded(out, u64::from(day), 2);
}

/// Appends `HH:MM:SS[.ffffff]` for microseconds since midnight.
pub fn format_time(micros: i64, out: &mut Vec<u8>) {
    let (seconds, sub) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    push_hms(seconds, out);
    if sub != 0 {
        out.push(b'.');
        push_padded(out, sub as u64, 6);
    }
}

/// `HH:MM:SS` and the shortest of no, 3, 6 or 9 fraction digits.
fn format_clock(seconds_of_day: i64, nanos: i64, out: &mut Vec<u8>) {
    push_hms(seconds_of_day, out);
    let (value, width) = match nanos {
        0 => return,
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    out.push(b'.');
    push_padded(out, value as u64, width);
}

fn push_hms(seconds: i64, out: &mut Vec<u8>) {
    push_padded(out, (seconds / 3600) as u64, 2);
    out.push(b':');
    push_padded(out, (seconds / 60 % 60) as u64, 2);
    out.push(b':');
    push_padded(out, (seconds % 60) as u64, 2);
}

fn push_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut v = value;
    let mut i = digits.len();
    while v > 0 || i == digits.len() {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let text = &digits[i..];
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(text.len())));
    out.extend_from_slice(text);
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

/// A raw JSON value described in an error message: its kind, and scalars shown cut.
pub fn describe_raw(raw: &str) -> String {
    match raw.as_bytes().first() {
        Some(b'{') => "an object".into(),
        Some(b'[') => "an array".into(),
        Some(b'"') => match serde_json::from_str::<String>(raw) {
            Ok(text) => format!("the string {}", Shown(&text)),
            Err(_) => format!("the string {}", Shown(raw)),
        },
        Some(b't' | b'f' | b'n') => raw.to_owned(),
        _ => format!("the number {}", ShownNumber(raw)),
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
    #[test]
    fn short_decimals_read_as_str_parse_reads_them() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200_000 {
            let digits = (next() % 10u64.pow(1 + (next() % 15) as u32)).to_string();
            let point = (next() % (digits.len() as u64 + 1)) as usize;
            let zeros = "0".repeat((next() % 8) as usize);
            let sign = if next() % 2 == 0 { "-" } else { "" };
            let text = format!("{sign}{zeros}{}.{}", &digits[..point], &digits[point..]);
            let text = text.trim_end_matches('.');
            let expected: f64 = text.parse().unwrap();
            let got = super::short_decimal(text);
            assert_eq!(got.map(f64::to_bits), Some(expected.to_bits()), "{text}");
        }
        for text in [
            "-0",
            "0.1",
            "123456789012345",
            "0.0000000000000000000001",
            "1.",
        ] {
            let expected: f64 = text.parse().unwrap();
            assert_eq!(
                super::short_decimal(text).map(f64::to_bits),
                Some(expected.to_bits())
            );
        }
        for text in [
            "",
            "-",
            ".",
            "1e5",
            "1234567890123456",
            "1.2.3",
            "--1",
            "0x1",
            "1e",
            "0.00000000000000000000001",
        ] {
            assert_eq!(super::short_decimal(text), None, "{text}");
        }
    }

    use super::*;
    use chrono::DateTime;

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
    fn iso_offsets_without_colon_and_postgres_text_form() {
        let utc = parse_timestamp("2024-01-01T10:00:00Z", US).unwrap();
        for text in [
            "2024-01-01T10:00:00+0000",
            "2024-01-01T10:00:00+00",
            "2024-01-01T12:30:00+0230",
            "2024-01-01T02:00:00-0800",
            "2024-01-01T05:00:00-05",
            "2024-01-01 15:00:00+05",
            "2024-01-01T10:00:00.000000000000+00",
        ] {
            assert_eq!(parse_timestamp(text, US), Ok(utc), "{text}");
        }
        assert_eq!(
            parse_timestamp("2024-01-01 10:00:00.123456+00", US).unwrap(),
            utc + 123_456
        );
        for bad in [
            "2024-01-01T10:00:00+2400",
            "2024-01-01T10:00:00+0",
            "2024-01-01T10:00:00+00:0",
            "2024-01-01T10:00:00 +00",
            "2024-01-01T10:00:00+0060",
        ] {
            assert!(parse_timestamp(bad, US).is_err(), "{bad}");
        }
    }

    #[test]
    fn end_of_day_and_leap_seconds_are_the_next_midnight_in_date_times() {
        let next = parse_timestamp("2024-01-02T00:00:00Z", US).unwrap();
        assert_eq!(parse_timestamp("2024-01-01T24:00:00Z", US), Ok(next));
        assert_eq!(
            parse_timestamp("2024-01-01T24:00:00.000+00:00", US),
            Ok(next)
        );
        assert_eq!(parse_timestamp("2024-01-01T23:59:60Z", US), Ok(next));
        assert!(parse_timestamp("2024-01-01T24:00:01Z", US).is_err());
    }

    #[test]
    fn times_with_zones_become_utc_and_the_end_of_day_is_refused() {
        assert_eq!(parse_time("10:00:00Z"), parse_time("10:00:00"));
        assert_eq!(parse_time("10:00:00+05:00"), parse_time("05:00:00"));
        assert_eq!(parse_time("10:00:00.5+0530"), parse_time("04:30:00.5"));
        assert_eq!(parse_time("02:00:00+05"), parse_time("21:00:00"));
        assert_eq!(parse_time("22:00:00-0300"), parse_time("01:00:00"));
        for end in ["24:00:00", "23:59:60", "23:59:60.5", "24:00:00Z"] {
            let e = parse_time(end).unwrap_err();
            assert!(e.contains("not a time of day"), "{end}: {e}");
        }
        let e = parse_time("10:00:00.123456789").unwrap_err();
        assert!(
            e.contains(&suggest::column_type_mark("string")) && !e.contains("timestamp_unit"),
            "{e}"
        );
        assert!(parse_time("10:00:00+25:00").is_err());
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
    fn fast_and_general_paths_agree() {
        let texts = [
            "2024-02-29T23:59:59.999999Z",
            "2024-02-29 23:59:59.5+05:30",
            "1969-12-31T23:59:59-00:01",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.123456789+14:00",
            "2000-03-01T00:00:00.1",
        ];
        for text in texts {
            let fast = fast_timestamp(text.as_bytes()).unwrap();
            let general = DateTime::parse_from_rfc3339(&text.replace(' ', "T"))
                .map(|d| d.naive_utc())
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
                .unwrap()
                .and_utc();
            assert_eq!(
                fast,
                (general.timestamp(), general.timestamp_subsec_nanos()),
                "{text}"
            );
        }
        for days in [-719_162, -1, 0, 1, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert!(fast_timestamp(b"2024-01-01T24:00:00Z").is_none());
        assert!(fast_timestamp(b"2024-01-01T00:00:60Z").is_none());
    }

    #[test]
    fn formats_what_it_parses() {
        let show = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            f(&mut out);
            String::from_utf8(out).unwrap()
        };
        for (text, unit) in [
            ("0001-01-01T00:00:00Z", US),
            ("9999-12-31T23:59:59.999999Z", US),
            ("1969-12-31T23:59:59.500Z", US),
            ("2024-02-29T12:00:00.123456789Z", TimeUnit::Nanosecond),
            ("2024-02-29T12:00:00.120Z", TimeUnit::Millisecond),
        ] {
            let value = parse_timestamp(text, unit).unwrap();
            assert_eq!(show(&|o| format_timestamp(value, unit, o)), text);
        }
        assert_eq!(show(&|o| format_time(45_296_000_001, o)), "12:34:56.000001");
        assert_eq!(show(&|o| format_time(0, o)), "00:00:00");
        assert_eq!(show(&|o| format_date(-719_162, o)), "0001-01-01");
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_time("12:00:00"), Ok(43_200_000_000));
        assert_eq!(parse_date("1970-01-02"), Ok(1));
        assert_eq!(parse_date("1969-12-31T00:00:00Z"), Ok(-1));
        assert_eq!(parse_date("0001-01-01"), Ok(-719_162));
        assert!(parse_date("2023-02-29").is_err());
        assert!(parse_date("2024-13-01").is_err());
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

    #[test]
    fn exact_types_hold_the_digits_at_hand() {
        assert_eq!(
            exact_type("1000000000000000000000000000001"),
            "decimal(38,0)"
        );
        assert_eq!(exact_type("12345678901234567.891"), "decimal(38,3)");
        assert_eq!(exact_type("1.5e-3"), "decimal(38,4)");
        assert_eq!(exact_type("1e45"), "decimal(46,0)");
        assert_eq!(exact_type("1e80"), "string");
        assert_eq!(exact_type("0"), "decimal(38,0)");
        assert_eq!(exact_type("-12.50"), "decimal(38,1)");
    }
}
