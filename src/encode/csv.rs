//! CSV: RFC 4180 text (CRLF line ends, quotes only where needed) with a header row of
//! the schema's column names, in the schema's order.
//!
//! Renderings: integers as digits; floats in their shortest round-trip form; booleans
//! `true`/`false`; date-times RFC 3339 in UTC with `Z`; dates `YYYY-MM-DD`; times
//! `HH:MM:SS[.ffffff]`; JSON columns as compact JSON; null as an empty field.

use std::fmt::Write as _;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Float64Type, Int64Type, Time64MicrosecondType, TimeUnit,
    TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat};

pub fn encode(batch: &RecordBatch) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(batch.get_array_memory_size()));
    let schema = batch.schema();
    writer.write_record(schema.fields().iter().map(|f| f.name().as_str()))?;
    let mut cell = String::new();
    for row in 0..batch.num_rows() {
        for column in batch.columns() {
            cell.clear();
            render(column.as_ref(), row, &mut cell);
            writer.write_field(&cell)?;
        }
        writer.write_record(None::<&[u8]>)?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}

/// Appends the text of one cell; nothing for null.
fn render(column: &dyn Array, row: usize, out: &mut String) {
    if column.is_null(row) {
        return;
    }
    match column.data_type() {
        DataType::Int64 => {
            let _ = write!(out, "{}", column.as_primitive::<Int64Type>().value(row));
        }
        DataType::Float64 => render_float(column.as_primitive::<Float64Type>().value(row), out),
        DataType::Boolean => out.push_str(if column.as_boolean().value(row) {
            "true"
        } else {
            "false"
        }),
        DataType::Utf8 => out.push_str(column.as_string::<i32>().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
            if let Some(ts) = DateTime::from_timestamp_micros(micros) {
                out.push_str(&ts.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            }
        }
        DataType::Date32 => {
            let days = column.as_primitive::<Date32Type>().value(row);
            if let Some(date) = NaiveDate::from_num_days_from_ce_opt(days + 719_163) {
                let _ = write!(out, "{}", date.format("%Y-%m-%d"));
            }
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            let micros = column.as_primitive::<Time64MicrosecondType>().value(row);
            let (secs, sub) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
            let time = u32::try_from(secs).ok().and_then(|s| {
                NaiveTime::from_num_seconds_from_midnight_opt(s, (sub * 1000) as u32)
            });
            if let Some(time) = time {
                let _ = write!(out, "{}", time.format("%H:%M:%S%.6f"));
                if sub == 0 {
                    out.truncate(out.len() - 7);
                }
            }
        }
        other => {
            debug_assert!(false, "no CSV rendering for {other}");
        }
    }
}

/// Shortest text that reads back as the same float; exponent form for very large or
/// small magnitudes, so 1e308 is not 309 digits.
pub fn render_float(v: f64, out: &mut String) {
    let magnitude = v.abs();
    if magnitude != 0.0 && magnitude.is_finite() && !(1e-5..1e16).contains(&magnitude) {
        let _ = write!(out, "{v:e}");
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_shortest_round_trip() {
        for (v, text) in [
            (1.5, "1.5"),
            (100.0, "100"),
            (0.1, "0.1"),
            (1e308, "1e308"),
            (-0.0, "-0"),
            (1.25e-7, "1.25e-7"),
        ] {
            let mut s = String::new();
            render_float(v, &mut s);
            assert_eq!(s, text);
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), f64::to_bits(v));
        }
    }
}
