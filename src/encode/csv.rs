//! CSV: RFC 4180 text (CRLF line ends, quotes only where needed) with a header row of
//! the schema's column names, in the schema's order.
//!
//! Renderings: integers as digits; floats in their shortest round-trip form; decimals
//! with all their digits at the column's scale; booleans `true`/`false`; date-times
//! RFC 3339 in UTC with `Z`; dates `YYYY-MM-DD`; times `HH:MM:SS[.ffffff]`; structs and
//! lists as compact JSON (fields in schema order, date-times as strings); JSON columns
//! as the compact JSON received; null as an empty field.

use std::fmt::Write as _;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Field, Float64Type, Int64Type,
    Time64MicrosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat};

use crate::schema::JSON_EXTENSION;

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
            if column.is_valid(row) {
                render(column.as_ref(), row, &mut cell);
            }
            writer.write_field(&cell)?;
        }
        writer.write_record(None::<&[u8]>)?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}

/// Appends the text of one non-null cell.
fn render(column: &dyn Array, row: usize, out: &mut String) {
    match column.data_type() {
        DataType::Utf8 => out.push_str(column.as_string::<i32>().value(row)),
        DataType::Struct(_) | DataType::List(_) => render_json(column, None, row, out),
        _ => render_scalar(column, row, out),
    }
}

/// Appends one non-null scalar as text.
fn render_scalar(column: &dyn Array, row: usize, out: &mut String) {
    match column.data_type() {
        DataType::Int64 => {
            let _ = write!(out, "{}", column.as_primitive::<Int64Type>().value(row));
        }
        DataType::Float64 => render_float(column.as_primitive::<Float64Type>().value(row), out),
        DataType::Decimal128(..) => {
            out.push_str(&column.as_primitive::<Decimal128Type>().value_as_string(row));
        }
        DataType::Decimal256(..) => {
            out.push_str(&column.as_primitive::<Decimal256Type>().value_as_string(row));
        }
        DataType::Boolean => out.push_str(if column.as_boolean().value(row) {
            "true"
        } else {
            "false"
        }),
        DataType::Utf8 => out.push_str(column.as_string::<i32>().value(row)),
        DataType::Timestamp(unit, _) => render_timestamp(column, *unit, row, out),
        DataType::Date32 => {
            let days = column.as_primitive::<Date32Type>().value(row);
            if let Some(date) = NaiveDate::from_num_days_from_ce_opt(days + 719_163) {
                let _ = write!(out, "{}", date.format("%Y-%m-%d"));
            }
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            let micros = column.as_primitive::<Time64MicrosecondType>().value(row);
            render_time(micros, out);
        }
        other => debug_assert!(false, "no CSV rendering for {other}"),
    }
}

fn render_timestamp(column: &dyn Array, unit: TimeUnit, row: usize, out: &mut String) {
    let ts = match unit {
        TimeUnit::Second => {
            DateTime::from_timestamp(column.as_primitive::<TimestampSecondType>().value(row), 0)
        }
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(
            column.as_primitive::<TimestampMillisecondType>().value(row),
        ),
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(
            column.as_primitive::<TimestampMicrosecondType>().value(row),
        ),
        TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(
            column.as_primitive::<TimestampNanosecondType>().value(row),
        )),
    };
    if let Some(ts) = ts {
        out.push_str(&ts.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
}

fn render_time(micros: i64, out: &mut String) {
    let (secs, sub) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let time = u32::try_from(secs)
        .ok()
        .and_then(|s| NaiveTime::from_num_seconds_from_midnight_opt(s, (sub * 1000) as u32));
    if let Some(time) = time {
        let _ = write!(out, "{}", time.format("%H:%M:%S"));
        if sub != 0 {
            let _ = write!(out, ".{sub:06}");
        }
    }
}

/// Appends a value as compact JSON. `field` tells whether a string is JSON text already.
fn render_json(column: &dyn Array, field: Option<&Field>, row: usize, out: &mut String) {
    if column.is_null(row) {
        out.push_str("null");
        return;
    }
    match column.data_type() {
        DataType::Struct(fields) => {
            let array = column.as_struct();
            out.push('{');
            for (i, (child, child_field)) in array.columns().iter().zip(fields).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(child_field.name(), out);
                out.push(':');
                render_json(child.as_ref(), Some(child_field), row, out);
            }
            out.push('}');
        }
        DataType::List(item_field) => {
            let items = column.as_list::<i32>().value(row);
            out.push('[');
            for i in 0..items.len() {
                if i > 0 {
                    out.push(',');
                }
                render_json(items.as_ref(), Some(item_field), i, out);
            }
            out.push(']');
        }
        DataType::Utf8 => {
            let text = column.as_string::<i32>().value(row);
            if field.and_then(Field::extension_type_name) == Some(JSON_EXTENSION) {
                out.push_str(text);
            } else {
                push_json_string(text, out);
            }
        }
        DataType::Int64 | DataType::Float64 | DataType::Boolean => render_scalar(column, row, out),
        DataType::Decimal128(..) | DataType::Decimal256(..) => render_scalar(column, row, out),
        _ => {
            let mut text = String::new();
            render_scalar(column, row, &mut text);
            push_json_string(&text, out);
        }
    }
}

fn push_json_string(text: &str, out: &mut String) {
    out.push_str(&serde_json::Value::from(text).to_string());
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

    #[test]
    fn times_show_fractions_only_when_present() {
        let mut s = String::new();
        render_time(3_600_000_000, &mut s);
        s.push(' ');
        render_time(3_600_000_050, &mut s);
        assert_eq!(s, "01:00:00 01:00:00.000050");
    }
}
