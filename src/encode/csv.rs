//! CSV: RFC 4180 text (CRLF line ends, quotes only where needed) with a header row of
//! the schema's column names, in the schema's order.
//!
//! Renderings: integers as digits; floats in their shortest round-trip form; decimals
//! with all their digits at the column's scale; booleans `true`/`false`; date-times
//! RFC 3339 in UTC with `Z`; dates `YYYY-MM-DD`; times `HH:MM:SS[.ffffff]`; structs and
//! lists as compact JSON (fields in schema order, date-times as strings); JSON columns
//! as the compact JSON received; null as an empty field.

use std::io::Write;

use arrow::array::{Array, AsArray, BooleanArray, StringArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Field, Float64Type, Int64Type, SchemaRef,
    Time64MicrosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;

use super::failed;
use crate::error::Result;
use crate::schema::JSON_EXTENSION;
use crate::values::{format_date, format_time, format_timestamp};

pub struct CsvEncoder<W: Write> {
    out: W,
}

impl<W: Write> CsvEncoder<W> {
    /// Starts an object with its header row.
    pub fn new(schema: &SchemaRef, mut out: W) -> Result<Self> {
        let mut header = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        header
            .write_record(schema.fields().iter().map(|f| f.name().as_str()))
            .map_err(failed)?;
        out.write_all(&header.into_inner().map_err(failed)?)
            .map_err(failed)?;
        Ok(CsvEncoder { out })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::with_capacity(batch.get_array_memory_size()));
        let columns: Vec<Column> = batch
            .columns()
            .iter()
            .map(|c| Column::new(c.as_ref()))
            .collect();
        let mut cell = Vec::with_capacity(64);
        for row in 0..batch.num_rows() {
            for column in &columns {
                cell.clear();
                column.render(row, &mut cell);
                writer.write_field(&cell).map_err(failed)?;
            }
            writer.write_record(None::<&[u8]>).map_err(failed)?;
        }
        let text = writer.into_inner().map_err(failed)?;
        self.out.write_all(&text).map_err(failed)
    }

    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn finish(self) -> Result<W> {
        Ok(self.out)
    }
}

/// A column, downcast once per batch rather than once per cell.
struct Column<'a> {
    nulls: Option<&'a NullBuffer>,
    view: View<'a>,
}

enum View<'a> {
    Int(&'a [i64]),
    Float(&'a [f64]),
    Bool(&'a BooleanArray),
    Str(&'a StringArray),
    Timestamp(&'a [i64], TimeUnit),
    Date(&'a [i32]),
    Time(&'a [i64]),
    /// Decimals, structs and lists: rendered through the general path.
    Other(&'a dyn Array),
}

impl<'a> Column<'a> {
    fn new(array: &'a dyn Array) -> Column<'a> {
        let view = match array.data_type() {
            DataType::Int64 => View::Int(array.as_primitive::<Int64Type>().values()),
            DataType::Float64 => View::Float(array.as_primitive::<Float64Type>().values()),
            DataType::Boolean => View::Bool(array.as_boolean()),
            DataType::Utf8 => View::Str(array.as_string::<i32>()),
            DataType::Timestamp(unit, _) => View::Timestamp(timestamps(array, *unit), *unit),
            DataType::Date32 => View::Date(array.as_primitive::<Date32Type>().values()),
            DataType::Time64(TimeUnit::Microsecond) => {
                View::Time(array.as_primitive::<Time64MicrosecondType>().values())
            }
            _ => View::Other(array),
        };
        Column {
            nulls: array.nulls(),
            view,
        }
    }

    /// Appends the text of one cell; nothing for null.
    fn render(&self, row: usize, out: &mut Vec<u8>) {
        if self.nulls.is_some_and(|n| n.is_null(row)) {
            return;
        }
        match &self.view {
            View::Int(v) => out.extend_from_slice(itoa::Buffer::new().format(v[row]).as_bytes()),
            View::Float(v) => render_float(v[row], out),
            View::Bool(a) => out.extend_from_slice(if a.value(row) { b"true" } else { b"false" }),
            View::Str(a) => out.extend_from_slice(a.value(row).as_bytes()),
            View::Timestamp(v, unit) => format_timestamp(v[row], *unit, out),
            View::Date(v) => format_date(i64::from(v[row]), out),
            View::Time(v) => format_time(v[row], out),
            View::Other(array) => render_json(*array, None, row, out),
        }
    }
}

fn timestamps(array: &dyn Array, unit: TimeUnit) -> &[i64] {
    match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values(),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().values(),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().values(),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().values(),
    }
}

/// Appends a value as compact JSON (or, for a top-level decimal, its digits).
/// `field` tells whether a string is JSON text already.
fn render_json(column: &dyn Array, field: Option<&Field>, row: usize, out: &mut Vec<u8>) {
    if column.is_null(row) {
        out.extend_from_slice(b"null");
        return;
    }
    match column.data_type() {
        DataType::Struct(fields) => {
            let array = column.as_struct();
            out.push(b'{');
            for (i, (child, child_field)) in array.columns().iter().zip(fields).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_string(child_field.name(), out);
                out.push(b':');
                render_json(child.as_ref(), Some(child_field), row, out);
            }
            out.push(b'}');
        }
        DataType::List(item_field) => {
            let items = column.as_list::<i32>().value(row);
            out.push(b'[');
            for i in 0..items.len() {
                if i > 0 {
                    out.push(b',');
                }
                render_json(items.as_ref(), Some(item_field), i, out);
            }
            out.push(b']');
        }
        DataType::Utf8 => {
            let text = column.as_string::<i32>().value(row);
            if field.and_then(Field::extension_type_name) == Some(JSON_EXTENSION) {
                out.extend_from_slice(text.as_bytes());
            } else {
                push_json_string(text, out);
            }
        }
        DataType::Decimal128(..) => {
            let text = column.as_primitive::<Decimal128Type>().value_as_string(row);
            out.extend_from_slice(text.as_bytes());
        }
        DataType::Decimal256(..) => {
            let text = column.as_primitive::<Decimal256Type>().value_as_string(row);
            out.extend_from_slice(text.as_bytes());
        }
        _ => {
            let cell = Column::new(column);
            let quoted = matches!(
                cell.view,
                View::Timestamp(..) | View::Date(_) | View::Time(_)
            );
            if quoted {
                out.push(b'"');
            }
            cell.render(row, out);
            if quoted {
                out.push(b'"');
            }
        }
    }
}

/// Appends a JSON string literal.
fn push_json_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in text.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Shortest text that reads back as the same float; exponent form for very large or
/// small magnitudes, so 1e308 is not 309 digits.
pub fn render_float(v: f64, out: &mut Vec<u8>) {
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
            let mut s = Vec::new();
            render_float(v, &mut s);
            let s = String::from_utf8(s).unwrap();
            assert_eq!(s, text);
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), f64::to_bits(v));
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = Vec::new();
        push_json_string("a\"b\\c\nd\u{1}é", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\nd\u0001é""#);
    }
}
