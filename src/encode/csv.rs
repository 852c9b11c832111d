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
    text: Vec<u8>,
}

impl<W: Write> CsvEncoder<W> {
    /// Starts an object with its header row.
    pub fn new(schema: &SchemaRef, mut out: W) -> Result<Self> {
        let mut header = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if i > 0 {
                header.push(b',');
            }
            push_field(field.name().as_bytes(), &mut header);
        }
        header.extend_from_slice(b"\r\n");
        out.write_all(&header).map_err(failed)?;
        Ok(CsvEncoder {
            out,
            text: Vec::new(),
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns: Vec<Column> = batch
            .columns()
            .iter()
            .map(|c| Column::new(c.as_ref()))
            .collect();
        let text = &mut self.text;
        text.clear();
        let mut cell = Vec::with_capacity(256);
        for row in 0..batch.num_rows() {
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    text.push(b',');
                }
                column.render(row, text, &mut cell);
            }
            text.extend_from_slice(b"\r\n");
        }
        self.out.write_all(text).map_err(failed)
    }

    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn finish(self) -> Result<W> {
        Ok(self.out)
    }
}

/// Appends a text field, quoted (with quotes doubled) when it holds a comma, quote or
/// line break, or is empty: an empty string is `""`, a null is nothing at all.
fn push_field(text: &[u8], out: &mut Vec<u8>) {
    let needs_quotes = text.is_empty()
        || memchr::memchr3(b',', b'"', b'\n', text).is_some()
        || memchr::memchr(b'\r', text).is_some();
    if !needs_quotes {
        out.extend_from_slice(text);
        return;
    }
    out.push(b'"');
    let mut rest = text;
    while let Some(i) = memchr::memchr(b'"', rest) {
        out.extend_from_slice(&rest[..=i]);
        out.push(b'"');
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
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

    /// Appends one CSV field; nothing for null. Only text can need quotes; `cell` is
    /// room to build it in.
    fn render(&self, row: usize, out: &mut Vec<u8>, cell: &mut Vec<u8>) {
        if self.nulls.is_some_and(|n| n.is_null(row)) {
            return;
        }
        match &self.view {
            View::Str(a) => push_field(a.value(row).as_bytes(), out),
            View::Other(array) => {
                cell.clear();
                render_json(*array, None, row, cell);
                push_field(cell, out);
            }
            _ => self.render_scalar(row, out),
        }
    }

    /// Appends a non-null value that is not text: never needs quotes.
    fn render_scalar(&self, row: usize, out: &mut Vec<u8>) {
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
            let list = column.as_list::<i32>();
            let offsets = list.value_offsets();
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            out.push(b'[');
            for i in start..end {
                if i > start {
                    out.push(b',');
                }
                render_json(list.values().as_ref(), Some(item_field), i, out);
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
            cell.render_scalar(row, out);
            if quoted {
                out.push(b'"');
            }
        }
    }
}

/// Appends a JSON string literal; runs of plain bytes are copied whole.
fn push_json_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain..i]);
        plain = i + 1;
        if escaped.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escaped);
        }
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

/// Shortest text that reads back as the same float (Ryu); exponent form for very large
/// or small magnitudes, so 1e308 is not 309 digits; no `.0` on whole numbers.
pub fn render_float(v: f64, out: &mut Vec<u8>) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format(v).as_bytes();
    out.extend_from_slice(text.strip_suffix(b".0").unwrap_or(text));
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
            (5e-324, "5e-324"),
            (1e15, "1000000000000000"),
            (1e16, "1e16"),
            (123456.789, "123456.789"),
        ] {
            let mut s = Vec::new();
            render_float(v, &mut s);
            let s = String::from_utf8(s).unwrap();
            assert_eq!(s, text);
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), f64::to_bits(v));
        }
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let mut out = Vec::new();
        for text in ["plain", "a,b", "say \"hi\"", "two\nlines", "cr\r", ""] {
            push_field(text.as_bytes(), &mut out);
            out.push(b'|');
        }
        let expected = "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|\"cr\r\"|\"\"|";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = Vec::new();
        push_json_string("a\"b\\c\nd\u{1}é", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\nd\u0001é""#);
    }
}
