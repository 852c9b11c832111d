//! Value rendering shared by the text formats (CSV, JSONL): one cell of an Arrow column
//! as plain text (what CSV writes, before quoting) or as a JSON value (what JSONL
//! writes, and what CSV writes for structs and lists).
//!
//! Renderings: integers as digits; floats in their shortest round-trip form (in JSONL
//! with `.0` on whole numbers, so they stay floats to readers that guess); decimals
//! with all their digits at the column's scale (JSON numbers, never through a float);
//! booleans `true`/`false`; date-times RFC 3339 in UTC with `Z`; dates `YYYY-MM-DD`;
//! times `HH:MM:SS[.ffffff]`; structs and lists as compact JSON (fields in schema
//! order); JSON columns as the compact JSON received. In JSON, date-times, dates and
//! times are strings.

use arrow::array::{Array, AsArray, BooleanArray, StringArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::SchemaRef;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Decimal256Type, Field, Float64Type, Int64Type,
    Time64MicrosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;

use crate::schema::{EXTRA_FIELDS, JSON_EXTENSION};
use crate::values::{format_date, format_time, format_timestamp};

/// A column, downcast once per batch rather than once per cell.
pub struct Column<'a> {
    nulls: Option<&'a NullBuffer>,
    view: View<'a>,
}

enum View<'a> {
    Int(&'a [i64]),
    Float(&'a [f64]),
    Bool(&'a BooleanArray),
    Str(&'a StringArray),
    /// JSON text (the `arrow.json` extension): written as it is, also in JSON.
    Json(&'a StringArray),
    Timestamp(&'a [i64], TimeUnit),
    Date(&'a [i32]),
    Time(&'a [i64]),
    /// Decimals, structs and lists: rendered as JSON.
    Nested(Box<Nested<'a>>),
}

/// A batch's columns, each downcast once, in the schema's order.
pub fn columns<'a>(batch: &'a RecordBatch, schema: &SchemaRef) -> Vec<Column<'a>> {
    batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| Column::new(c.as_ref(), Some(f)))
        .collect()
}

impl<'a> Column<'a> {
    /// `field` tells whether a string column holds JSON text.
    pub fn new(array: &'a dyn Array, field: Option<&Field>) -> Column<'a> {
        let is_json = field.and_then(Field::extension_type_name) == Some(JSON_EXTENSION);
        let view = match array.data_type() {
            DataType::Int64 => View::Int(array.as_primitive::<Int64Type>().values()),
            DataType::Float64 => View::Float(array.as_primitive::<Float64Type>().values()),
            DataType::Boolean => View::Bool(array.as_boolean()),
            DataType::Utf8 if is_json => View::Json(array.as_string::<i32>()),
            DataType::Utf8 => View::Str(array.as_string::<i32>()),
            DataType::Timestamp(unit, _) => View::Timestamp(timestamps(array, *unit), *unit),
            DataType::Date32 => View::Date(array.as_primitive::<Date32Type>().values()),
            DataType::Time64(TimeUnit::Microsecond) => {
                View::Time(array.as_primitive::<Time64MicrosecondType>().values())
            }
            _ => View::Nested(Box::new(Nested::new(array))),
        };
        Column {
            nulls: array.nulls(),
            view,
        }
    }

    pub fn is_null(&self, row: usize) -> bool {
        self.nulls.is_some_and(|n| n.is_null(row))
    }

    /// The text of a string (or JSON text) value, which may need quoting in CSV.
    pub fn text(&self, row: usize) -> Option<&'a str> {
        match &self.view {
            View::Str(a) | View::Json(a) => Some(a.value(row)),
            _ => None,
        }
    }

    /// Whether the value is a number, boolean, date or time: text of a small known
    /// alphabet (digits, letters, `-+.:`).
    pub fn is_scalar(&self) -> bool {
        !matches!(self.view, View::Str(_) | View::Json(_) | View::Nested(_))
    }

    /// Appends a non-null value as plain text (what CSV writes): strings as they are,
    /// structs and lists as JSON, the rest in their renderings.
    pub fn render_text(&self, row: usize, out: &mut Vec<u8>) {
        self.text_as(row, Floats::Shortest, out);
    }

    /// Appends the value (null included) as JSON (what JSONL writes).
    pub fn render_json(&self, row: usize, out: &mut Vec<u8>) {
        self.json_as(row, Floats::Typed, out);
    }

    fn text_as(&self, row: usize, floats: Floats, out: &mut Vec<u8>) {
        match &self.view {
            View::Int(v) => out.extend_from_slice(itoa::Buffer::new().format(v[row]).as_bytes()),
            View::Float(v) => push_float(v[row], floats, out),
            View::Bool(a) => out.extend_from_slice(if a.value(row) { b"true" } else { b"false" }),
            View::Str(a) | View::Json(a) => out.extend_from_slice(a.value(row).as_bytes()),
            View::Timestamp(v, unit) => format_timestamp(v[row], *unit, out),
            View::Date(v) => format_date(i64::from(v[row]), out),
            View::Time(v) => format_time(v[row], out),
            View::Nested(nested) => nested.render(row, floats, out),
        }
    }

    fn json_as(&self, row: usize, floats: Floats, out: &mut Vec<u8>) {
        if self.is_null(row) {
            out.extend_from_slice(b"null");
            return;
        }
        match &self.view {
            View::Str(a) => push_json_string(a.value(row), out),
            View::Timestamp(..) | View::Date(_) | View::Time(_) => {
                out.push(b'"');
                self.text_as(row, floats, out);
                out.push(b'"');
            }
            _ => self.text_as(row, floats, out),
        }
    }
}

/// How a whole float is written: `-2` in CSV, as the CSV renderings have always been
/// (JSON in a CSV cell included); `-2.0` in JSONL, so that it stays a float to JSON
/// readers that guess types.
#[derive(Clone, Copy)]
enum Floats {
    Shortest,
    Typed,
}

fn push_float(v: f64, floats: Floats, out: &mut Vec<u8>) {
    if !v.is_finite() {
        return render_float(v, out);
    }
    match floats {
        Floats::Shortest => render_float(v, out),
        Floats::Typed => out.extend_from_slice(ryu::Buffer::new().format(v).as_bytes()),
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

/// A struct, list or decimal column made ready to be written as compact JSON, row by
/// row: downcast and with its field names escaped once per batch, not once per cell.
enum Nested<'a> {
    Struct {
        /// Each field's `"name":` and its column; no name for the undeclared fields
        /// (`_sdc_extra`), which are written back as fields of the object.
        fields: Vec<(Option<Vec<u8>>, Column<'a>)>,
    },
    List {
        offsets: &'a [i32],
        items: Column<'a>,
    },
    /// Decimals (as their digits) and anything else, through Arrow's own rendering.
    Digits(&'a dyn Array),
}

impl<'a> Nested<'a> {
    fn new(array: &'a dyn Array) -> Nested<'a> {
        match array.data_type() {
            DataType::Struct(fields) => Nested::Struct {
                fields: fields
                    .iter()
                    .zip(array.as_struct().columns())
                    .map(|(field, child)| {
                        let extra = field.metadata().contains_key(EXTRA_FIELDS);
                        let name = (!extra).then(|| {
                            let mut name = Vec::new();
                            push_json_string(field.name(), &mut name);
                            name.push(b':');
                            name
                        });
                        (name, Column::new(child.as_ref(), Some(field)))
                    })
                    .collect(),
            },
            DataType::List(item) => {
                let list = array.as_list::<i32>();
                Nested::List {
                    offsets: list.value_offsets(),
                    items: Column::new(list.values().as_ref(), Some(item)),
                }
            }
            _ => Nested::Digits(array),
        }
    }

    /// Appends the (non-null) value of `row` as compact JSON.
    fn render(&self, row: usize, floats: Floats, out: &mut Vec<u8>) {
        match self {
            Nested::Struct { fields, .. } => {
                out.push(b'{');
                let mut first = true;
                for (name, child) in fields {
                    let start = out.len();
                    if !first {
                        out.push(b',');
                    }
                    let Some(name) = name else {
                        // `{"a":1}` becomes `,"a":1`; null or `{}` adds nothing.
                        let comma = out.len();
                        child.json_as(row, floats, out);
                        let fields = out[comma..]
                            .strip_prefix(b"{")
                            .and_then(|f| f.strip_suffix(b"}"))
                            .filter(|f| !f.is_empty())
                            .map(<[u8]>::to_vec);
                        out.truncate(comma);
                        match fields {
                            Some(fields) => out.extend_from_slice(&fields),
                            None => out.truncate(start),
                        }
                        first &= out.len() == start;
                        continue;
                    };
                    out.extend_from_slice(name);
                    child.json_as(row, floats, out);
                    first = false;
                }
                out.push(b'}');
            }
            Nested::List { offsets, items, .. } => {
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                out.push(b'[');
                for i in start..end {
                    if i > start {
                        out.push(b',');
                    }
                    items.json_as(i, floats, out);
                }
                out.push(b']');
            }
            Nested::Digits(array) => out.extend_from_slice(digits(*array, row).as_bytes()),
        }
    }
}

/// A decimal's digits at its scale; other types in Arrow's display form.
fn digits(array: &dyn Array, row: usize) -> String {
    match array.data_type() {
        DataType::Decimal128(..) => array.as_primitive::<Decimal128Type>().value_as_string(row),
        DataType::Decimal256(..) => array.as_primitive::<Decimal256Type>().value_as_string(row),
        _ => arrow::util::display::ArrayFormatter::try_new(array, &Default::default())
            .map(|f| f.value(row).to_string())
            .unwrap_or_default(),
    }
}

/// Appends a JSON string literal; runs of plain bytes are copied whole.
pub fn push_json_string(text: &str, out: &mut Vec<u8>) {
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
/// or small magnitudes, so 1e308 is not 309 digits; no `.0` on whole numbers. NaN and
/// the infinities (which taps send as Python writes them) are written `NaN`,
/// `Infinity` and `-Infinity`, as Python, DuckDB and Spark read them.
pub fn render_float(v: f64, out: &mut Vec<u8>) {
    if !v.is_finite() {
        let name = crate::dialect::non_finite_name(v);
        return out.extend_from_slice(name.as_bytes());
    }
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format(v).as_bytes();
    out.extend_from_slice(text.strip_suffix(b".0").unwrap_or(text));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Decimal128Array, Int64Array, StructArray, TimestampMicrosecondArray};

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
    fn json_strings_are_escaped() {
        let mut out = Vec::new();
        push_json_string("a\"b\\c\nd\u{1}é", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\nd\u0001é""#);
    }

    fn json_of(array: &dyn Array, field: Option<&Field>, row: usize) -> String {
        let mut out = Vec::new();
        Column::new(array, field).render_json(row, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_values_keep_every_digit_and_quote_times() {
        let big = Int64Array::from(vec![Some(i64::MAX), None]);
        assert_eq!(json_of(&big, None, 0), "9223372036854775807");
        assert_eq!(json_of(&big, None, 1), "null");
        let floats = arrow::array::Float64Array::from(vec![100.0, -0.0, 1e308, 0.1]);
        let rendered: Vec<String> = (0..4).map(|i| json_of(&floats, None, i)).collect();
        assert_eq!(rendered, ["100.0", "-0.0", "1e308", "0.1"]);
        let list = arrow::array::ListArray::from_iter_primitive::<Float64Type, _, _>([Some(vec![
            Some(-2.0),
            None,
            Some(1.5),
        ])]);
        assert_eq!(json_of(&list, None, 0), "[-2.0,null,1.5]");
        let mut text = Vec::new();
        Column::new(&list, None).render_text(0, &mut text);
        assert_eq!(String::from_utf8(text).unwrap(), "[-2,null,1.5]");
        let decimal = Decimal128Array::from(vec![-1_i128, 12345678901234567890123456789])
            .with_precision_and_scale(38, 2)
            .unwrap();
        assert_eq!(json_of(&decimal, None, 0), "-0.01");
        assert_eq!(json_of(&decimal, None, 1), "123456789012345678901234567.89");
        let ts = TimestampMicrosecondArray::from(vec![1_704_161_045_123_456]);
        assert_eq!(json_of(&ts, None, 0), r#""2024-01-02T02:04:05.123456Z""#);
        let text = StringArray::from(vec![r#"{"k":[1]}"#]);
        let json_field = crate::schema::ColumnType::Json.field("j");
        assert_eq!(json_of(&text, Some(&json_field), 0), r#"{"k":[1]}"#);
        assert_eq!(json_of(&text, None, 0), r#""{\"k\":[1]}""#);
        let nested = StructArray::from(vec![(
            Arc::new(Field::new("ts", ts.data_type().clone(), true)),
            Arc::new(ts) as Arc<dyn Array>,
        )]);
        assert_eq!(
            json_of(&nested, None, 0),
            r#"{"ts":"2024-01-02T02:04:05.123456Z"}"#
        );
    }
}
