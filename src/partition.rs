//! Partitioning by record values, Hive style: the `partition_by` fields of a row name
//! the `name=value/…` folders of the object it goes into.
//!
//! Owns: reading `partition_by`, checking it against each stream's columns when its
//! SCHEMA arrives, the encoding of folder names and values, and splitting a chunk of
//! rows into one part per partition.
//! Must not touch: the rest of the key (object_key), objects or the store (target).
//!
//! Encoding, as Hive and Spark write it, so that Athena, Spark, Trino, DuckDB and
//! pyarrow read the values back: a null or empty value is `__HIVE_DEFAULT_PARTITION__`;
//! in names and values the ASCII control characters, `"` `#` `%` `'` `*` `/` `:` `=`
//! `?` `\` DEL `{` `[` `]` `^` become `%` and two upper-case hex digits (`F/R` →
//! `F%2FR`); everything else, spaces and non-ASCII letters included, stays as it is.
//! Values are written the way the columns print them: integers and decimals in digits,
//! `true`/`false`, dates `YYYY-MM-DD`, date-times through the field's strftime pattern
//! (in UTC). The rows keep every column: the folder is only a copy of the value.
//!
//! Folder names never equal a column of the stream (compared without case): DuckDB and
//! ClickHouse would show the folder value in the column's place, DataFusion refuses a
//! folder named as a file column, and pyarrow's type inference then fails to merge the
//! two. So by default a folder is named after its column with a suffix: the finest unit
//! of time its pattern shows (`created_at:%Y-%m` → `created_at_month`; `_second`,
//! `_minute`, `_hour`, `_day`, `_week`, `_month`, `_year`), else `_part` (`country` →
//! `country_part`). A given name, or a default one, that a column has is refused when
//! the stream's SCHEMA arrives: the columns are not known before.

use std::collections::HashMap;
use std::fmt::Write;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Int32Type, Int64Type, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::object_key::is_valid_strftime;
use crate::schema::{ColumnType, StreamSchema};

/// The folder value of a null or empty field, as Hive and Spark write it.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// One `partition_by` entry: `[name=]field[:<strftime>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionField {
    /// The folder name; by default the column's name in files and a suffix.
    pub name: Option<String>,
    /// The property, as records carry it.
    pub field: String,
    /// The pattern a date or date-time value is formatted with.
    pub format: Option<String>,
}

/// The `partition_by` setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PartitionBy {
    #[default]
    Off,
    /// The same fields for every stream: each stream must have them.
    Every(Vec<PartitionField>),
    /// Fields per stream name: streams not named are not partitioned.
    PerStream(HashMap<String, Vec<PartitionField>>),
}

impl PartitionBy {
    /// Reads a list of entries (or one entry), or an object of such lists by stream.
    pub fn from_value(value: &Value) -> Result<PartitionBy, String> {
        match value {
            Value::Object(streams) => {
                let mut out = HashMap::new();
                for (stream, fields) in streams {
                    out.insert(stream.clone(), fields_of(fields)?);
                }
                Ok(PartitionBy::PerStream(out))
            }
            _ => Ok(PartitionBy::Every(fields_of(value)?)),
        }
    }

    pub fn is_on(&self) -> bool {
        *self != PartitionBy::Off
    }

    fn fields_for(&self, stream: &str) -> Option<&[PartitionField]> {
        match self {
            PartitionBy::Off => None,
            PartitionBy::Every(fields) => Some(fields.as_slice()),
            PartitionBy::PerStream(streams) => streams.get(stream).map(Vec::as_slice),
        }
        .filter(|fields| !fields.is_empty())
    }
}

const FORMS: &str = "entries \"field\", \"field:<strftime>\" or \"name=field:<strftime>\" in a list such as [\"created_at:%Y-%m-%d\", \"country\"], or such lists by stream: {\"orders\": [\"country\"]}";

fn fields_of(value: &Value) -> Result<Vec<PartitionField>, String> {
    entry_list(value, FORMS, parse_field)
}

/// A setting's list of entries (or one entry as a string), each parsed by `parse`,
/// none given twice; `forms` says what is expected. For `partition_by` and
/// `iceberg_partition_spec` alike.
pub fn entry_list<T: PartialEq>(
    value: &Value,
    forms: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let items = match value {
        Value::String(_) => std::slice::from_ref(value),
        Value::Array(items) => items.as_slice(),
        _ => return Err(format!("expected {forms}")),
    };
    let mut entries: Vec<T> = Vec::new();
    for item in items {
        let Value::String(text) = item else {
            return Err(format!("entry {item} is not a string; expected {forms}"));
        };
        let entry = parse(text)?;
        if entries.contains(&entry) {
            return Err(format!("entry {text:?} is given twice"));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// `[name=]field[:<strftime>]`: the name ends at the first `=`, the pattern starts at
/// the first `:%` (field names may hold colons).
fn parse_field(text: &str) -> Result<PartitionField, String> {
    let (name, spec) = match text.split_once('=') {
        Some((name, spec)) => (Some(name.trim()), spec),
        None => (None, text),
    };
    let (field, format) = match spec.find(":%") {
        Some(at) => (&spec[..at], Some(&spec[at + 1..])),
        None => (spec, None),
    };
    let field = field.trim();
    if field.is_empty() || name.is_some_and(str::is_empty) {
        return Err(format!(
            "entry {text:?} names no field or an empty folder; expected {FORMS}"
        ));
    }
    if let Some(format) = format.filter(|f| !is_valid_strftime(f)) {
        return Err(format!(
            "entry {text:?}: {format:?} is not a valid strftime pattern (such as %Y-%m-%d)"
        ));
    }
    Ok(PartitionField {
        name: name.map(str::to_owned),
        field: field.to_owned(),
        format: format.map(str::to_owned),
    })
}

/// A stream's partition fields, checked against its columns.
#[derive(Debug)]
pub struct Partitioner {
    fields: Vec<Resolved>,
}

#[derive(Debug)]
struct Resolved {
    column: usize,
    /// The folder name, unescaped.
    name: String,
    /// The escaped folder name and `=`.
    folder: String,
    format: Option<String>,
}

/// The rows of a chunk that share one partition.
pub struct Group {
    /// `name=value/…`, escaped.
    pub folders: String,
    rows: Vec<u32>,
}

impl Group {
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// The index of the group's first row in the chunk.
    pub fn first_row(&self) -> usize {
        self.rows.first().map_or(0, |&row| row as usize)
    }

    /// These rows of `batch`, in their order (the batch itself when it is all of them).
    pub fn take(&self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        if self.rows.len() == batch.num_rows() {
            return Ok(batch.clone());
        }
        take_record_batch(batch, &UInt32Array::from(self.rows.clone()))
    }
}

impl Partitioner {
    /// The partitioning of `stream`, or None when `partition_by` leaves it whole. The
    /// error names the field that the stream lacks or cannot be partitioned by.
    pub fn for_stream(
        by: &PartitionBy,
        stream: &str,
        schema: &StreamSchema,
    ) -> Result<Option<Partitioner>, String> {
        let Some(fields) = by.fields_for(stream) else {
            return Ok(None);
        };
        let mut resolved: Vec<Resolved> = Vec::new();
        for field in fields {
            let Some(column) = schema.columns.iter().position(|c| c.name == field.field) else {
                return Err(format!(
                    "partition_by field {:?} is not among the schema's properties",
                    field.field
                ));
            };
            check_type(field, &schema.columns[column].ty)?;
            let name = folder_name(field, &schema.columns[column].output_name, schema)?;
            let folder = format!("{}=", escape(&name));
            if resolved.iter().any(|r| r.folder == folder) {
                // The same entry, its pattern kept, under a name no other entry has.
                let other = (2..)
                    .map(|n| format!("{name}_{n}"))
                    .find(|n| {
                        !resolved
                            .iter()
                            .any(|r| r.folder == format!("{}=", escape(n)))
                    })
                    .unwrap_or_default();
                let renamed = PartitionField {
                    name: Some(other),
                    ..field.clone()
                };
                return Err(format!(
                    "two partition_by entries make the folder {name:?}; give one another name, such as {:?}",
                    renamed.entry()
                ));
            }
            resolved.push(Resolved {
                column,
                name,
                folder,
                format: field.format.clone(),
            });
        }
        Ok(Some(Partitioner { fields: resolved }))
    }

    /// The folder names, in folder order, unescaped: a catalog's partition keys.
    pub fn folder_names(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.name.clone()).collect()
    }

    /// The chunk's rows grouped by partition, groups in the order they first appear.
    pub fn split(&self, batch: &RecordBatch) -> Result<Vec<Group>, String> {
        let values = self
            .fields
            .iter()
            .map(|f| values(f, batch))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(group_rows(batch.num_rows(), |row, folders| {
            for (field, values) in self.fields.iter().zip(&values) {
                if !folders.is_empty() {
                    folders.push('/');
                }
                folders.push_str(&field.folder);
                match values[row].as_deref() {
                    None | Some("") => folders.push_str(DEFAULT_PARTITION),
                    Some(value) => escape_into(value, folders),
                }
            }
        }))
    }
}

/// Groups rows `0..rows` by the folders `folders_of` writes for each (into an empty
/// string), groups in the order they first appear. Serves `partition_by` and the
/// partitions of Iceberg tables alike.
pub fn group_rows(rows: usize, mut folders_of: impl FnMut(usize, &mut String)) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut folders = String::new();
    for row in 0..rows {
        folders.clear();
        folders_of(row, &mut folders);
        let at = match index.get(&folders) {
            Some(&at) => at,
            None => {
                index.insert(folders.clone(), groups.len());
                groups.push(Group {
                    folders: folders.clone(),
                    rows: Vec::new(),
                });
                groups.len() - 1
            }
        };
        groups[at].rows.push(row as u32);
    }
    groups
}

impl PartitionField {
    /// The entry as written in `partition_by`.
    fn entry(&self) -> String {
        let mut text = String::new();
        if let Some(name) = &self.name {
            text.push_str(name);
            text.push('=');
        }
        text.push_str(&self.field);
        if let Some(format) = &self.format {
            text.push(':');
            text.push_str(format);
        }
        text
    }

    /// The folder name when none is given: the column's name as written and a suffix,
    /// so that it differs from the column itself (see the module comment).
    fn default_name(&self, column: &str) -> String {
        let unit = self
            .format
            .as_deref()
            .and_then(finest_unit)
            .unwrap_or("part");
        format!("{column}_{unit}")
    }
}

/// The folder name of `field`, refused when a column of the stream has it (compared
/// without case, as DuckDB compares names): engines would read one in place of the other.
fn folder_name(
    field: &PartitionField,
    column: &str,
    schema: &StreamSchema,
) -> Result<String, String> {
    let taken = |name: &str| {
        let name = name.to_lowercase();
        schema
            .arrow
            .fields()
            .iter()
            .any(|f| f.name().to_lowercase() == name)
    };
    let default = field.default_name(column);
    let (name, names) = match &field.name {
        Some(name) => (name.clone(), "names"),
        None => (default.clone(), "would name"),
    };
    if !taken(&name) {
        return Ok(name);
    }
    let other = [default, format!("{name}_part")]
        .into_iter()
        .find(|n| !taken(n))
        .unwrap_or_else(|| format!("{name}_folder"));
    let unnamed = PartitionField {
        name: None,
        ..field.clone()
    };
    Err(format!(
        "partition_by entry {:?} {names} its folder {name:?}, which is also a column of the stream: query engines reading the folders would show the folder value in the column's place (DuckDB, ClickHouse) or refuse to open them (DataFusion, polars, pyarrow); give the folder a name no column has, such as \"{other}={}\"",
        field.entry(),
        unnamed.entry()
    ))
}

/// The finest unit of time a strftime pattern shows (`%Y-%m` → `month`), or None when
/// it shows none (`%p`, literal text).
pub fn finest_unit(format: &str) -> Option<&'static str> {
    const UNITS: [(&str, &str); 7] = [
        ("second", "STXsrc+f"),
        ("minute", "MR"),
        ("hour", "HIkl"),
        ("day", "deFjDxvaAuw"),
        ("week", "UWV"),
        ("month", "mbBh"),
        ("year", "YyCGg"),
    ];
    let mut rank: Option<usize> = None;
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        // Flags, widths and the `.`/`:` of `%.3f` and `%:z` come before the letter.
        let Some(spec) = chars
            .by_ref()
            .find(|c| !matches!(c, '-' | '_' | '0'..='9' | '.' | ':' | '#'))
        else {
            break;
        };
        if let Some(at) = UNITS.iter().position(|(_, specs)| specs.contains(spec)) {
            rank = Some(rank.map_or(at, |r| r.min(at)));
        }
    }
    rank.map(|at| UNITS[at].0)
}

fn check_type(field: &PartitionField, ty: &ColumnType) -> Result<(), String> {
    use ColumnType as T;
    let name = &field.field;
    // A wide decimal stored as text partitions as the decimal it is.
    match (ty.value_type(), &field.format) {
        (T::Date | T::Timestamp(_), Some(_)) => Ok(()),
        (T::Integer | T::Boolean | T::Text | T::Literal | T::Decimal { .. } | T::Date, None) => {
            Ok(())
        }
        (T::Timestamp(_), None) => Err(format!(
            "partition_by field {name:?} is a date-time: give it a strftime pattern, such as \"{name}:%Y-%m-%d\""
        )),
        (_, Some(_)) => Err(format!(
            "partition_by field {name:?} has a strftime pattern, which only date and date-time fields take (column_types can make a string column a timestamp)"
        )),
        (ty, None) => Err(format!(
            "partition_by field {name:?} holds {}; only strings, integers, booleans, decimals, dates and date-times can name a partition",
            ty.expected()
        )),
    }
}

/// Each row's value of `field` as folder text (before escaping); None for null.
fn values(field: &Resolved, batch: &RecordBatch) -> Result<Vec<Option<String>>, String> {
    let array = batch.column(field.column);
    let failed = |e: ArrowError| format!("cannot read partition values: {e}");
    let Some(format) = &field.format else {
        let text = cast(array, &DataType::Utf8).map_err(failed)?;
        let text = text.as_string::<i32>();
        return Ok(text.iter().map(|v| v.map(str::to_owned)).collect());
    };
    let times: Vec<Option<DateTime<Utc>>> = match array.data_type() {
        DataType::Timestamp(unit, _) => {
            let unit = *unit;
            let numbers = cast(array, &DataType::Int64).map_err(failed)?;
            let numbers = numbers.as_primitive::<Int64Type>();
            numbers
                .iter()
                .map(|v| v.and_then(|v| time_of(v, unit)))
                .collect()
        }
        DataType::Date32 => {
            let days = cast(array, &DataType::Int32).map_err(failed)?;
            let days = days.as_primitive::<Int32Type>();
            days.iter().map(|v| v.and_then(midnight_of)).collect()
        }
        other => return Err(format!("cannot format a {other} column as a date")),
    };
    Ok(times
        .into_iter()
        .map(|t| {
            t.map(|t| {
                let mut text = String::new();
                let _ = write!(text, "{}", t.format(format));
                text
            })
        })
        .collect())
}

fn time_of(value: i64, unit: TimeUnit) -> Option<DateTime<Utc>> {
    match unit {
        TimeUnit::Second => DateTime::from_timestamp(value, 0),
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(value),
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(value),
        TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(value)),
    }
}

fn midnight_of(days: i32) -> Option<DateTime<Utc>> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let date = epoch.checked_add_signed(chrono::Duration::days(days.into()))?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

fn needs_escaping(c: char) -> bool {
    matches!(
        c,
        '\0'..='\x1f'
            | '"'
            | '#'
            | '%'
            | '\''
            | '*'
            | '/'
            | ':'
            | '='
            | '?'
            | '\\'
            | '\x7f'
            | '{'
            | '['
            | ']'
            | '^'
    )
}

fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        if needs_escaping(c) {
            let _ = write!(out, "%{:02X}", c as u32);
        } else {
            out.push(c);
        }
    }
}

/// A folder name or value escaped as Hive and Spark do (see the module comment).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(text, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TypeOptions;
    use arrow::array::{
        BooleanArray, Date32Array, Decimal128Array, Decimal256Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::i256;
    use serde_json::json;
    use std::sync::Arc;

    fn schema(properties: Value) -> StreamSchema {
        let text = json!({ "properties": properties }).to_string();
        StreamSchema::from_json("s", &text, &[], &TypeOptions::default()).unwrap()
    }

    fn by(value: Value) -> PartitionBy {
        PartitionBy::from_value(&value).unwrap()
    }

    #[test]
    fn reads_entries() {
        assert_eq!(
            by(json!(["created_at:%Y-%m-%d", "agent:os", "day=ts:%H:%M"])),
            PartitionBy::Every(vec![
                PartitionField {
                    name: None,
                    field: "created_at".into(),
                    format: Some("%Y-%m-%d".into())
                },
                PartitionField {
                    name: None,
                    field: "agent:os".into(),
                    format: None
                },
                PartitionField {
                    name: Some("day".into()),
                    field: "ts".into(),
                    format: Some("%H:%M".into())
                },
            ])
        );
        assert_eq!(by(json!("country")), by(json!(["country"])));
        let PartitionBy::PerStream(streams) = by(json!({"orders": ["country"], "users": "id"}))
        else {
            panic!()
        };
        assert_eq!(streams["users"][0].field, "id");
        for (bad, reason) in [
            (json!(["a:%Q"]), "strftime"),
            (json!([""]), "names no field"),
            (json!(["=a"]), "names no field"),
            (json!(["a", "a"]), "twice"),
            (json!([1]), "not a string"),
            (json!(5), "expected entries"),
            (json!({"s": 5}), "expected entries"),
        ] {
            let e = PartitionBy::from_value(&bad).unwrap_err();
            assert!(e.contains(reason), "{bad}: {e}");
        }
    }

    #[test]
    fn escapes_as_hive_does() {
        assert_eq!(escape("F/R= x é"), "F%2FR%3D x é");
        assert_eq!(
            escape("a:b%c#d?e*f\"g'h\\i{j[k]l^m"),
            "a%3Ab%25c%23d%3Fe%2Af%22g%27h%5Ci%7Bj%5Bk%5Dl%5Em"
        );
        assert_eq!(
            escape("tab\there\nnul\0del\x7f"),
            "tab%09here%0Anul%00del%7F"
        );
        assert_eq!(
            escape("naïve ✓ 東京 -_.~!@$&()+,;"),
            "naïve ✓ 東京 -_.~!@$&()+,;"
        );
    }

    #[test]
    fn checks_fields_against_the_schema() {
        let s = schema(json!({
            "id": {"type": "integer"}, "ts": {"type": "string", "format": "date-time"},
            "obj": {"type": "object", "properties": {"a": {"type": "integer"}}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "f": {"type": "number"}, "name": {"type": "string"}
        }));
        let err = |v: Value| Partitioner::for_stream(&by(v), "s", &s).unwrap_err();
        assert!(err(json!(["nope"])).contains("\"nope\" is not among"));
        assert!(err(json!(["ts"])).contains("strftime pattern, such as \"ts:%Y-%m-%d\""));
        assert!(err(json!(["name:%Y"])).contains("only date and date-time"));
        assert!(err(json!(["obj"])).contains("holds an object"));
        assert!(err(json!(["tags"])).contains("holds an array"));
        assert!(err(json!(["f"])).contains("holds a number"));
        assert!(err(json!(["id", "id_part=name"])).contains("folder \"id_part\""));
        // The suggested entry keeps the field's pattern and takes a free name.
        let e = err(json!(["ts_year=ts:%Y", "ts_year_2=ts:%m", "ts_year=ts:%d"]));
        assert!(e.ends_with(r#"such as "ts_year_3=ts:%d""#), "{e}");
        let e = err(json!(["ts:%Y", "ts:%y"]));
        assert!(e.ends_with(r#"such as "ts_year_2=ts:%y""#), "{e}");
        assert!(ok_after(&s, json!(["ts:%Y", "ts_year_2=ts:%y"])));
        let ok = |v: Value| Partitioner::for_stream(&by(v), "s", &s).unwrap();
        assert!(ok(json!(["id", "ts:%Y", "name"])).is_some());
        assert!(ok(json!({"other": ["nope"]})).is_none());
        assert!(ok(json!([])).is_none());
    }

    fn ok_after(s: &StreamSchema, v: Value) -> bool {
        Partitioner::for_stream(&by(v), "s", s).is_ok()
    }

    #[test]
    fn folders_are_never_named_as_a_column() {
        let s = schema(json!({
            "id": {"type": "integer"}, "ts": {"type": "string", "format": "date-time"},
            "Country": {"type": "string"}, "ts_day": {"type": "string"}
        }));
        let folders = |v: Value| {
            let p = Partitioner::for_stream(&by(v), "s", &s).unwrap().unwrap();
            p.fields
                .iter()
                .map(|f| f.folder.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            folders(json!([
                "ts:%Y-%m",
                "ts:%Y/%m/%d %H",
                "Country",
                "id",
                "ts:%-d.%.3f"
            ])),
            [
                "ts_month=",
                "ts_hour=",
                "Country_part=",
                "id_part=",
                "ts_second="
            ]
        );
        assert_eq!(
            folders(json!([
                "ts:%Y",
                "ts:%G-W%V",
                "ts:%H:%M",
                "ts:%p",
                "m=ts:%%Y"
            ])),
            ["ts_year=", "ts_week=", "ts_minute=", "ts_part=", "m="]
        );
        let err = |v: Value| Partitioner::for_stream(&by(v), "s", &s).unwrap_err();
        let e = err(json!(["ts=ts:%Y-%m"]));
        assert!(
            e.contains("entry \"ts=ts:%Y-%m\" names its folder \"ts\", which is also a column")
                && e.contains("DataFusion")
                && e.contains("such as \"ts_month=ts:%Y-%m\""),
            "{e}"
        );
        // Compared without case, as DuckDB compares column names.
        let e = err(json!(["COUNTRY=id"]));
        assert!(e.contains("such as \"id_part=id\""), "{e}");
        // A default name that another column has is refused the same way.
        let e = err(json!(["ts:%Y-%m-%d"]));
        assert!(
            e.contains("would name its folder \"ts_day\", which is also a column")
                && e.contains("such as \"ts_day_part=ts:%Y-%m-%d\""),
            "{e}"
        );
    }

    #[test]
    fn splits_a_chunk_by_value() {
        let s = schema(json!({
            "id": {"type": "integer"}, "country": {"type": ["string", "null"]},
            "ts": {"type": "string", "format": "date-time"}, "ok": {"type": "boolean"},
            "d": {"type": "string", "format": "date"},
            "amount": {"type": "number", "multipleOf": 0.01}
        }));
        let ts = 1_704_067_200_000_000; // 2024-01-01T00:00:00Z
        let batch = RecordBatch::try_new(
            s.arrow.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(StringArray::from(vec![
                    Some("FR"),
                    None,
                    Some("a/b"),
                    Some(""),
                ])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![ts, ts + 86_400_000_000, ts, ts])
                        .with_timezone("UTC"),
                ),
                Arc::new(BooleanArray::from(vec![true, false, true, true])),
                Arc::new(Date32Array::from(vec![19723, 0, 19723, 19723])),
                Arc::new(
                    Decimal128Array::from(vec![1230, 5, 1230, 1230])
                        .with_precision_and_scale(38, 2)
                        .unwrap(),
                ),
            ],
        )
        .unwrap();
        let p = Partitioner::for_stream(
            &by(json!(["day=ts:%Y-%m-%d", "country", "ok", "d", "amount"])),
            "s",
            &s,
        )
        .unwrap()
        .unwrap();
        let groups = p.split(&batch).unwrap();
        let folders: Vec<&str> = groups.iter().map(|g| g.folders.as_str()).collect();
        assert_eq!(
            folders,
            [
                "day=2024-01-01/country_part=FR/ok_part=true/d_part=2024-01-01/amount_part=12.30",
                "day=2024-01-02/country_part=__HIVE_DEFAULT_PARTITION__/ok_part=false/d_part=1970-01-01/amount_part=0.05",
                "day=2024-01-01/country_part=a%2Fb/ok_part=true/d_part=2024-01-01/amount_part=12.30",
                "day=2024-01-01/country_part=__HIVE_DEFAULT_PARTITION__/ok_part=true/d_part=2024-01-01/amount_part=12.30",
            ]
        );
        let p = Partitioner::for_stream(&by(json!(["ok"])), "s", &s)
            .unwrap()
            .unwrap();
        let groups = p.split(&batch).unwrap();
        assert_eq!(groups.len(), 2);
        let part = groups[0].take(&batch).unwrap();
        let ids = part.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values(), &[1, 3, 4]);
        assert_eq!(groups[1].rows(), 1);
        let wide = schema(json!({"n": {"type": "integer", "maximum": 1e50}}));
        let value = i256::from_string("-123456789012345678901234567890123456789012").unwrap();
        let column = Decimal256Array::from(vec![value])
            .with_precision_and_scale(51, 0)
            .unwrap();
        let batch_wide = RecordBatch::try_new(wide.arrow.clone(), vec![Arc::new(column)]).unwrap();
        let p_wide = Partitioner::for_stream(&by(json!(["n"])), "s", &wide)
            .unwrap()
            .unwrap();
        assert_eq!(
            p_wide.split(&batch_wide).unwrap()[0].folders,
            "n_part=-123456789012345678901234567890123456789012"
        );
        let p = Partitioner::for_stream(&by(json!(["year=d:%Y"])), "s", &s)
            .unwrap()
            .unwrap();
        let whole = p.split(&batch.slice(0, 1)).unwrap();
        assert_eq!(whole[0].folders, "year=2024");
        assert_eq!(whole[0].take(&batch.slice(0, 1)).unwrap().num_rows(), 1);
    }
}
