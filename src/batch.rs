//! Per-stream buffers: record JSON decoded straight into typed Arrow column builders.
//!
//! Owns: turning one record's raw JSON into one row (checking each value against its
//! column's type, with the field named when it does not fit) and handing out the
//! buffered rows as an Arrow `RecordBatch`.
//! Must not touch: encoding, keys or the store. A record is decoded into a scratch row
//! first and committed only whole, so a rejected record leaves the buffer unchanged.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::schema::{ColumnType, StreamSchema};

/// Largest integer magnitude a float64 holds exactly (2^53).
const FLOAT_EXACT_LIMIT: u64 = 1 << 53;

/// The rows of one stream not yet written, with what is needed to decide when to flush.
pub struct Batch {
    schema: Arc<StreamSchema>,
    index: HashMap<String, usize>,
    keys: Vec<usize>,
    builders: Vec<ColumnBuilder>,
    rows: usize,
    bytes: usize,
    first_line: Option<u64>,
    ignored_fields: HashSet<String>,
    newly_ignored: Vec<String>,
}

impl Batch {
    pub fn new(schema: Arc<StreamSchema>) -> Batch {
        let index: HashMap<String, usize> = schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let keys = schema.key_properties.iter().map(|k| index[k]).collect();
        let builders = schema
            .columns
            .iter()
            .map(|c| ColumnBuilder::new(c.ty))
            .collect();
        Batch {
            schema,
            index,
            keys,
            builders,
            rows: 0,
            bytes: 0,
            first_line: None,
            ignored_fields: HashSet::new(),
            newly_ignored: Vec::new(),
        }
    }

    pub fn schema(&self) -> &Arc<StreamSchema> {
        &self.schema
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input bytes of the buffered records.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The input line of the oldest buffered record.
    pub fn first_line(&self) -> Option<u64> {
        self.first_line
    }

    /// Record fields not in the schema seen for the first time since the last call.
    pub fn take_newly_ignored(&mut self) -> Vec<String> {
        std::mem::take(&mut self.newly_ignored)
    }

    /// Decodes one record (a JSON object) and appends it as a row, or explains why not.
    pub fn append(&mut self, record: &str, line: u64) -> Result<(), String> {
        let row = self.decode(record)?;
        for &key in &self.keys {
            if matches!(row[key], Cell::Missing | Cell::Null) {
                return Err(format!(
                    "record has no value for key property {:?}",
                    self.schema.columns[key].name
                ));
            }
        }
        for (builder, cell) in self.builders.iter_mut().zip(row) {
            builder.append(cell);
        }
        self.rows += 1;
        self.bytes += record.len();
        self.first_line.get_or_insert(line);
        Ok(())
    }

    fn decode<'a>(&mut self, record: &'a str) -> Result<Vec<Cell<'a>>, String> {
        let mut row = vec![Cell::Missing; self.builders.len()];
        let mut failure = None;
        let seed = RowSeed {
            schema: &self.schema,
            index: &self.index,
            row: &mut row,
            failure: &mut failure,
            ignored: &mut self.ignored_fields,
            newly_ignored: &mut self.newly_ignored,
        };
        let mut deserializer = serde_json::Deserializer::from_str(record);
        match seed.deserialize(&mut deserializer) {
            Ok(()) => Ok(row),
            Err(e) => Err(failure.unwrap_or_else(|| crate::protocol::describe_json_error(&e))),
        }
    }

    /// Hands out the buffered rows and empties the buffer.
    pub fn finish(&mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        self.rows = 0;
        self.bytes = 0;
        self.first_line = None;
        RecordBatch::try_new(self.schema.arrow.clone(), arrays)
    }
}

/// One decoded value, waiting for its row to be accepted whole.
#[derive(Debug, Clone, PartialEq)]
enum Cell<'a> {
    Missing,
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(Cow<'a, str>),
}

enum ColumnBuilder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
}

impl ColumnBuilder {
    fn new(ty: ColumnType) -> ColumnBuilder {
        match ty {
            ColumnType::Integer => ColumnBuilder::Int(Int64Builder::new()),
            ColumnType::Number => ColumnBuilder::Float(Float64Builder::new()),
            ColumnType::Boolean => ColumnBuilder::Bool(BooleanBuilder::new()),
            ColumnType::Text | ColumnType::Json => ColumnBuilder::Str(StringBuilder::new()),
            ColumnType::Timestamp => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            ColumnType::Date => ColumnBuilder::Date(Date32Builder::new()),
            ColumnType::Time => ColumnBuilder::Time(Time64MicrosecondBuilder::new()),
        }
    }

    /// The decoder gives each column only cells of its own kind; anything else is null.
    fn append(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (ColumnBuilder::Int(b), Cell::Int(v)) => b.append_value(v),
            (ColumnBuilder::Float(b), Cell::Float(v)) => b.append_value(v),
            (ColumnBuilder::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (ColumnBuilder::Str(b), Cell::Str(v)) => b.append_value(v),
            (ColumnBuilder::Timestamp(b), Cell::Int(v)) => b.append_value(v),
            (ColumnBuilder::Time(b), Cell::Int(v)) => b.append_value(v),
            (ColumnBuilder::Date(b), Cell::Int(v)) => match i32::try_from(v) {
                Ok(days) => b.append_value(days),
                Err(_) => b.append_null(),
            },
            (builder, cell) => {
                debug_assert!(matches!(cell, Cell::Missing | Cell::Null), "{cell:?}");
                builder.append_null();
            }
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Int(b) => b.append_null(),
            ColumnBuilder::Float(b) => b.append_null(),
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Str(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Time(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Int(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Float(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Bool(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Str(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Timestamp(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Date(b) => ArrayBuilder::finish(b),
            ColumnBuilder::Time(b) => ArrayBuilder::finish(b),
        }
    }
}

/// Decodes a record object into `row`, one cell per known column.
struct RowSeed<'s, 'a> {
    schema: &'s StreamSchema,
    index: &'s HashMap<String, usize>,
    row: &'s mut Vec<Cell<'a>>,
    /// The reason a value was refused; serde's own error would carry less.
    failure: &'s mut Option<String>,
    ignored: &'s mut HashSet<String>,
    newly_ignored: &'s mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let Some(&i) = self.index.get(key.as_ref()) else {
                if !self.ignored.contains(key.as_ref()) {
                    self.ignored.insert(key.to_string());
                    self.newly_ignored.push(key.into_owned());
                }
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let column = &self.schema.columns[i];
            let seed = CellSeed {
                ty: column.ty,
                failure: &mut *self.failure,
                field: &column.name,
            };
            let cell = map.next_value_seed(seed)?;
            if self.row[i] != Cell::Missing {
                *self.failure = Some(format!("field {:?} appears twice in the record", key));
                return Err(de::Error::custom("duplicate field"));
            }
            self.row[i] = cell;
        }
        Ok(())
    }
}

/// A field name, borrowed from the input unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Decodes one field's value for a column of type `ty`.
struct CellSeed<'s> {
    ty: ColumnType,
    failure: &'s mut Option<String>,
    field: &'s str,
}

impl CellSeed<'_> {
    fn refuse<E: de::Error>(self, got: impl fmt::Display) -> E {
        *self.failure = Some(format!(
            "field {:?}: expected {}, got {got}",
            self.field,
            self.ty.expected()
        ));
        E::custom("value does not fit its column")
    }

    fn text_cell<'a, E: de::Error>(self, text: Cow<'a, str>) -> Result<Cell<'a>, E> {
        let converted = match self.ty {
            ColumnType::Text => return Ok(Cell::Str(text)),
            ColumnType::Timestamp => parse_timestamp(&text),
            ColumnType::Date => parse_date(&text),
            ColumnType::Time => parse_time(&text),
            _ => Err(String::new()),
        };
        match converted {
            Ok(value) => Ok(Cell::Int(value)),
            Err(why) if why.is_empty() => {
                Err(self.refuse(format_args!("the string {}", Shown(&text))))
            }
            Err(why) => Err(self.refuse(format_args!("the string {} ({why})", Shown(&text)))),
        }
    }

    fn integer_cell<'a, E: de::Error>(self, value: i128) -> Result<Cell<'a>, E> {
        match self.ty {
            ColumnType::Integer => match i64::try_from(value) {
                Ok(v) => Ok(Cell::Int(v)),
                Err(_) => {
                    Err(self.refuse(format_args!("{value}, which is beyond the int64 range")))
                }
            },
            ColumnType::Number if value.unsigned_abs() <= u128::from(FLOAT_EXACT_LIMIT) => {
                Ok(Cell::Float(value as f64))
            }
            ColumnType::Number => Err(self.refuse(format_args!(
                "{value}, which a float64 column cannot hold exactly"
            ))),
            _ => Err(self.refuse(format_args!("the number {value}"))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = Cell<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Cell<'de>, D::Error> {
        if self.ty != ColumnType::Json {
            return d.deserialize_any(self);
        }
        let raw = <&'de RawValue>::deserialize(d)?;
        Ok(match raw.get() {
            "null" => Cell::Null,
            text => Cell::Str(compact_json(text)),
        })
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = Cell<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.ty.expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Cell<'de>, E> {
        Ok(Cell::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cell<'de>, E> {
        match self.ty {
            ColumnType::Boolean => Ok(Cell::Bool(v)),
            _ => Err(self.refuse(v)),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell<'de>, E> {
        self.integer_cell(i128::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell<'de>, E> {
        self.integer_cell(i128::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell<'de>, E> {
        let integral = v.fract() == 0.0 && v.abs() <= FLOAT_EXACT_LIMIT as f64;
        match self.ty {
            ColumnType::Number => Ok(Cell::Float(v)),
            ColumnType::Integer if integral => Ok(Cell::Int(v as i64)),
            _ => Err(self.refuse(format_args!("the number {v}"))),
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cell<'de>, E> {
        self.text_cell(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell<'de>, E> {
        self.text_cell(Cow::Owned(v.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Cell<'de>, A::Error> {
        Err(self.refuse("an object"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Cell<'de>, A::Error> {
        Err(self.refuse("an array"))
    }
}

/// A value shown in an error message: quoted, and cut after 40 characters.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LIMIT: usize = 40;
        match self.0.char_indices().nth(LIMIT) {
            Some((cut, _)) => write!(f, "{:?}…", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// JSON text without whitespace outside strings; borrowed when already compact.
pub fn compact_json(text: &str) -> Cow<'_, str> {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut in_string = false;
    let mut escaped = false;
    let mut needs_work = false;
    for &b in text.as_bytes() {
        if in_string {
            (in_string, escaped) = (escaped || b != b'"', !escaped && b == b'\\');
        } else if b == b'"' {
            in_string = true;
        } else if is_space(b) {
            needs_work = true;
            break;
        }
    }
    if !needs_work {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    (in_string, escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            (in_string, escaped) = (escaped || c != '"', !escaped && c == '\\');
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii() && is_space(c as u8) {
            continue;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

const SUB_MICROSECOND: &str = "digits below a microsecond would be lost";

/// RFC 3339 (any offset, `T` or space), or no zone (taken as UTC), or a bare date;
/// returns microseconds since the epoch, UTC.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
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
    if naive.nanosecond() % 1000 != 0 {
        return Err(SUB_MICROSECOND.into());
    }
    Ok(naive.and_utc().timestamp_micros())
}

/// `YYYY-MM-DD`, or a date-time at exactly midnight; returns days since the epoch.
pub fn parse_date(text: &str) -> Result<i64, String> {
    let date = match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => date,
        Err(_) => {
            let micros = parse_timestamp(text)?;
            if micros.rem_euclid(86_400_000_000) != 0 {
                return Err("a date column cannot hold a time of day".into());
            }
            return Ok(micros.div_euclid(86_400_000_000));
        }
    };
    Ok(i64::from(date.num_days_from_ce()) - i64::from(EPOCH_DAYS_FROM_CE))
}

/// Days from 0001-01-01 to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// `HH:MM:SS[.f]`; returns microseconds since midnight.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let time = NaiveTime::parse_from_str(text, "%H:%M:%S%.f").map_err(|_| String::new())?;
    if time.nanosecond() % 1000 != 0 {
        return Err(SUB_MICROSECOND.into());
    }
    Ok(i64::from(time.num_seconds_from_midnight()) * 1_000_000
        + i64::from(time.nanosecond() / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};

    fn batch(schema: &str, keys: &[&str]) -> Batch {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        Batch::new(Arc::new(
            StreamSchema::from_json(schema, &keys, None).unwrap(),
        ))
    }

    const SCHEMA: &str = r#"{"properties": {
        "id": {"type": "integer"}, "x": {"type": ["null", "number"]}, "ok": {"type": "boolean"},
        "s": {"type": "string"}, "ts": {"type": "string", "format": "date-time"},
        "d": {"type": "string", "format": "date"}, "t": {"type": "string", "format": "time"},
        "j": {}}}"#;

    #[test]
    fn decodes_every_column_type() {
        let mut b = batch(SCHEMA, &["id"]);
        let record = r#"{"id": 7, "x": 1.5, "ok": true, "s": "a\"b", "ts": "2024-01-02T03:04:05.123456+01:00",
            "d": "0001-01-01", "t": "23:59:59.5", "j": {"k": [1, 2]}, "extra": 1}"#;
        b.append(record, 3).unwrap();
        b.append(r#"{"id": 8}"#, 4).unwrap();
        assert_eq!(b.take_newly_ignored(), ["extra"]);
        assert_eq!(b.first_line(), Some(3));
        let rb = b.finish().unwrap();
        assert_eq!(rb.num_rows(), 2);
        assert_eq!(rb.column(0).as_primitive::<Int64Type>().value(0), 7);
        assert_eq!(rb.column(1).as_primitive::<Float64Type>().value(0), 1.5);
        assert!(rb.column(1).is_null(1));
        assert_eq!(rb.column(3).as_string::<i32>().value(0), "a\"b");
        let ts = rb
            .column(4)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_704_161_045_123_456);
        let d = rb.column(5).as_primitive::<arrow::datatypes::Date32Type>();
        assert_eq!(d.value(0), -719_162);
        let t = rb
            .column(6)
            .as_primitive::<arrow::datatypes::Time64MicrosecondType>();
        assert_eq!(t.value(0), 86_399_500_000);
        assert_eq!(rb.column(7).as_string::<i32>().value(0), r#"{"k":[1,2]}"#);
        assert_eq!(b.rows(), 0);
    }

    #[test]
    fn refuses_values_that_do_not_fit_and_keeps_the_buffer_whole() {
        let mut b = batch(SCHEMA, &["id"]);
        let cases = [
            (
                r#"{"id": 1.5}"#,
                r#"field "id": expected an integer, got the number 1.5"#,
            ),
            (
                r#"{"id": "42"}"#,
                r#"field "id": expected an integer, got the string "42""#,
            ),
            (r#"{"id": 1, "x": 9007199254740993}"#, "cannot hold exactly"),
            (r#"{"id": 18446744073709551615}"#, "beyond the int64 range"),
            (r#"{"id": 1, "ok": "yes"}"#, "expected true or false"),
            (r#"{"id": 1, "s": {"a": 1}}"#, "got an object"),
            (r#"{"id": 1, "ts": "yesterday"}"#, "RFC 3339"),
            (
                r#"{"id": 1, "ts": "2024-01-01T00:00:00.0000001Z"}"#,
                "below a microsecond",
            ),
            (r#"{"id": 1, "d": "2024-01-01T10:00:00Z"}"#, "time of day"),
            (r#"{"id": 1, "id": 2}"#, "appears twice"),
            (r#"{"x": 1}"#, "key property \"id\""),
            (r#"{"id": null}"#, "key property \"id\""),
        ];
        for (record, expected) in cases {
            let e = b.append(record, 1).unwrap_err();
            assert!(e.contains(expected), "{record}: {e}");
        }
        assert_eq!(b.rows(), 0);
        b.append(r#"{"id": 1}"#, 2).unwrap();
        assert_eq!(b.finish().unwrap().num_rows(), 1);
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let mut b = batch(SCHEMA, &[]);
        let long = "z".repeat(500);
        let e = b.append(&format!(r#"{{"id": "{long}"}}"#), 1).unwrap_err();
        assert!(e.len() < 150 && e.contains('…'), "{e}");
    }

    #[test]
    fn compacts_json_outside_strings_only() {
        assert!(matches!(compact_json(r#"{"a":1}"#), Cow::Borrowed(_)));
        assert_eq!(
            compact_json(r#"[ "a b", {"c" : "\" x" } ]"#),
            r#"["a b",{"c":"\" x"}]"#
        );
        assert_eq!(compact_json(r#"[ "\\", 1 ]"#), r#"["\\",1]"#);
    }

    #[test]
    fn timestamps_in_every_form_taps_send() {
        let utc = parse_timestamp("2024-01-01T00:00:00Z").unwrap();
        assert_eq!(parse_timestamp("2024-01-01T01:00:00+01:00").unwrap(), utc);
        assert_eq!(parse_timestamp("2024-01-01 00:00:00").unwrap(), utc);
        assert_eq!(parse_timestamp("2024-01-01T00:00:00.000000").unwrap(), utc);
        assert_eq!(parse_timestamp("2024-01-01").unwrap(), utc);
        assert_eq!(
            parse_timestamp("0001-01-01T00:00:00+00:00").unwrap(),
            -62_135_596_800_000_000
        );
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:59.999999Z").unwrap(),
            253_402_300_799_999_999
        );
        assert_eq!(parse_time("12:00:00").unwrap(), 43_200_000_000);
        assert_eq!(parse_date("1970-01-02").unwrap(), 1);
        assert_eq!(parse_date("1969-12-31T00:00:00Z").unwrap(), -1);
    }
}
