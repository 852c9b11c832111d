//! Partitioned Iceberg tables (`iceberg_partition_spec`): reading the setting, the
//! partition spec of a new table, checking a table's spec against the setting, and
//! splitting a chunk's rows into one part per partition value.
//!
//! Owns: the entry syntax (`"country"`, `"day(created_at)"`, `"bucket(16, id)"`, …),
//! the partition field names, and each data file's partition tuple. The transforms
//! themselves are the iceberg crate's (its Arrow kernels: the same bucket hash and
//! date arithmetic as every other Iceberg writer), and the grouping of rows is the
//! one `partition_by` uses (`crate::partition::group_rows`).
//! Must not touch: the catalog or objects; `tables` asks for a spec and for splits.
//!
//! A data file's folder under `<location>/data/` is `<field>=<value>/…`, the values
//! as Iceberg prints them (`created_at_day=2024-03-01`, `id_bucket=7`), escaped as
//! Hive folders are, null as `__HIVE_DEFAULT_PARTITION__` (Iceberg prints null as
//! `null`, which a string could also be) and an empty string as `__EMPTY__`. The folder is only a place: readers take the
//! partition from the tuple the commit gives each file. Rows are grouped by folders,
//! so each partition tuple has folders of its own.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, new_null_array};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType, TimestampNanosecondType};
use arrow::record_batch::RecordBatch;
use iceberg::arrow::{arrow_primitive_to_literal, type_to_arrow_type};
use iceberg::spec::{
    Literal, PartitionSpec, Schema, Struct, Transform, Type, UnboundPartitionSpec,
};
use iceberg::transform::{BoxedTransformFunction, create_transform_function};
use serde_json::Value;

use crate::partition::{DEFAULT_PARTITION, Group, escape, group_rows};

/// One `iceberg_partition_spec` entry: a column and the transform of its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub column: String,
    pub transform: Transform,
}

/// The `iceberg_partition_spec` setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SpecSetting {
    /// Tables are made unpartitioned.
    #[default]
    Off,
    /// The same entries for every stream: each stream must have the columns.
    Every(Vec<Entry>),
    /// Entries per stream name: streams not named are not partitioned.
    PerStream(HashMap<String, Vec<Entry>>),
}

const FORMS: &str = "entries \"column\", \"year(column)\", \"month(column)\", \"day(column)\", \"hour(column)\", \"bucket(N, column)\" or \"truncate(W, column)\" in a list such as [\"day(created_at)\", \"country\"], or such lists by stream: {\"orders\": [\"bucket(16, id)\"]}";

impl SpecSetting {
    /// Reads a list of entries (or one entry), or an object of such lists by stream.
    pub fn from_value(value: &Value) -> Result<SpecSetting, String> {
        match value {
            Value::Object(streams) => streams
                .iter()
                .map(|(stream, entries)| Ok((stream.clone(), entries_of(entries)?)))
                .collect::<Result<_, String>>()
                .map(SpecSetting::PerStream),
            _ => entries_of(value).map(SpecSetting::Every),
        }
    }

    /// The entries the setting gives `stream`; None when it names none.
    pub fn for_stream(&self, stream: &str) -> Option<&[Entry]> {
        match self {
            SpecSetting::Off => None,
            SpecSetting::Every(entries) => Some(entries.as_slice()),
            SpecSetting::PerStream(streams) => streams.get(stream).map(Vec::as_slice),
        }
        .filter(|entries| !entries.is_empty())
    }
}

fn entries_of(value: &Value) -> Result<Vec<Entry>, String> {
    crate::partition::entry_list(value, FORMS, parse_entry)
}

/// `column`, or `transform(column)`, or `transform(N, column)` for bucket and truncate.
fn parse_entry(text: &str) -> Result<Entry, String> {
    let wrong = |why: &str| format!("entry {text:?}: {why}; expected {FORMS}");
    let trimmed = text.trim();
    let call = trimmed
        .strip_suffix(')')
        .and_then(|inner| inner.split_once('('));
    let Some((name, arguments)) = call else {
        if trimmed.is_empty() || trimmed.contains(['(', ')']) {
            return Err(wrong("not a column or a transform of one"));
        }
        return Ok(Entry {
            column: trimmed.to_owned(),
            transform: Transform::Identity,
        });
    };
    let arguments: Vec<&str> = arguments.split(',').map(str::trim).collect();
    let number = |n: &str| {
        n.parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| wrong(&format!("{n:?} is not a whole number above 0")))
    };
    let (transform, column) = match (name.trim().to_ascii_lowercase().as_str(), &arguments[..]) {
        ("identity", [column]) => (Transform::Identity, *column),
        ("year", [column]) => (Transform::Year, *column),
        ("month", [column]) => (Transform::Month, *column),
        ("day", [column]) => (Transform::Day, *column),
        ("hour", [column]) => (Transform::Hour, *column),
        ("bucket", [n, column]) => (Transform::Bucket(number(n)?), *column),
        ("truncate", [w, column]) => (Transform::Truncate(number(w)?), *column),
        ("bucket" | "truncate", _) => return Err(wrong("it takes a number and a column")),
        ("identity" | "year" | "month" | "day" | "hour", _) => {
            return Err(wrong("it takes one column"));
        }
        (other, _) => return Err(wrong(&format!("{other:?} is not a transform"))),
    };
    if column.is_empty() {
        return Err(wrong("no column"));
    }
    Ok(Entry {
        column: column.to_owned(),
        transform,
    })
}

impl Entry {
    /// The entry as the setting writes it.
    pub fn text(&self) -> String {
        let column = &self.column;
        match self.transform {
            Transform::Identity => column.clone(),
            Transform::Bucket(n) => format!("bucket({n}, {column})"),
            Transform::Truncate(w) => format!("truncate({w}, {column})"),
            other => format!("{other}({column})"),
        }
    }

    /// The partition field's name, as Iceberg's own writers name it (Spark, pyiceberg):
    /// the column for identity, else the column and a suffix.
    fn field_name(&self) -> String {
        let column = &self.column;
        match self.transform {
            Transform::Identity => column.clone(),
            Transform::Bucket(_) => format!("{column}_bucket"),
            Transform::Truncate(_) => format!("{column}_trunc"),
            other => format!("{column}_{other}"),
        }
    }
}

/// The partition spec of a new table of `schema` for `entries`. The error names the
/// column and transform that the stream lacks or whose type the transform cannot take.
pub fn new_spec(entries: &[Entry], schema: &Schema) -> Result<UnboundPartitionSpec, String> {
    let mut spec = UnboundPartitionSpec::builder();
    for entry in entries {
        let column = checked_column(entry, schema)?;
        spec = spec
            .add_partition_field(column, entry.field_name(), entry.transform)
            .map_err(|e| format!("iceberg_partition_spec entry {:?}: {e}", entry.text()))?;
    }
    Ok(spec.build())
}

/// The field id of the entry's column, once its type is known to take the transform.
fn checked_column(entry: &Entry, schema: &Schema) -> Result<i32, String> {
    let text = entry.text();
    let Some(field) = schema.field_by_name(&entry.column) else {
        return Err(format!(
            "iceberg_partition_spec entry {text:?}: column {:?} is not among the stream's columns",
            entry.column
        ));
    };
    // Columns inside structs and lists would need the nested value per row.
    let top_level = schema.as_struct().field_by_id(field.id).is_some();
    if !top_level || entry.transform.result_type(&field.field_type).is_err() {
        return Err(format!(
            "iceberg_partition_spec entry {text:?}: column {:?} holds {}, which the {} transform does not take ({})",
            entry.column,
            field.field_type,
            transform_word(entry.transform),
            takes(entry.transform),
        ));
    }
    Ok(field.id)
}

fn transform_word(transform: Transform) -> &'static str {
    match transform {
        Transform::Identity => "identity",
        Transform::Year => "year",
        Transform::Month => "month",
        Transform::Day => "day",
        Transform::Hour => "hour",
        Transform::Bucket(_) => "bucket",
        Transform::Truncate(_) => "truncate",
        Transform::Void | Transform::Unknown => "unknown",
    }
}

/// What types a transform takes, for the error that refuses another.
fn takes(transform: Transform) -> &'static str {
    match transform {
        Transform::Year | Transform::Month | Transform::Day => "dates and date-times",
        Transform::Hour => "date-times",
        Transform::Bucket(_) => {
            "integers, decimals, strings, dates, times and date-times; not floats or booleans"
        }
        Transform::Truncate(_) => "integers, decimals and strings",
        _ => "top-level columns of a single value; not objects or arrays",
    }
}

/// The table's spec written as setting entries, for messages.
pub fn describe(spec: &PartitionSpec, schema: &Schema) -> String {
    if spec.is_unpartitioned() {
        return "unpartitioned".into();
    }
    let entries: Vec<String> = spec
        .fields()
        .iter()
        .map(|field| {
            let column = schema
                .name_by_field_id(field.source_id)
                .unwrap_or("?")
                .to_owned();
            format!(
                "{:?}",
                Entry {
                    column,
                    transform: field.transform,
                }
                .text()
            )
        })
        .collect();
    format!("[{}]", entries.join(", "))
}

/// Whether the table's spec is the one `entries` asks for (none: unpartitioned).
pub fn same_spec(entries: &[Entry], spec: &PartitionSpec, schema: &Schema) -> bool {
    spec.fields().len() == entries.len()
        && spec.fields().iter().zip(entries).all(|(field, entry)| {
            field.transform == entry.transform
                && schema.name_by_field_id(field.source_id) == Some(entry.column.as_str())
        })
}

/// A partitioned table's spec, ready to split chunks of the stream.
#[derive(Debug)]
pub struct Partitioning {
    spec_id: i32,
    fields: Vec<Field>,
}

#[derive(Debug)]
struct Field {
    /// The escaped field name and `=`.
    folder: String,
    /// The source column's name, and its type for a chunk that lacks it.
    column: String,
    column_type: DataType,
    transform: Transform,
    function: BoxedTransformFunction,
    /// The transform's result type: the partition tuple's field type.
    result: Type,
}

/// A chunk split by partition: the parts, and each part's partition tuple by folders.
pub struct Split {
    pub groups: Vec<Group>,
    pub tuples: Vec<(String, Struct)>,
}

impl Partitioning {
    /// The splitting for the table's default spec; None for an unpartitioned table.
    pub fn new(spec: &PartitionSpec, schema: &Schema) -> Result<Option<Partitioning>, String> {
        if spec.is_unpartitioned() {
            return Ok(None);
        }
        let mut fields = Vec::new();
        for field in spec.fields() {
            let source = schema.field_by_id(field.source_id).ok_or_else(|| {
                format!(
                    "partition field {:?} has a source column (id {}) the table lacks",
                    field.name, field.source_id
                )
            })?;
            let failed = |e: iceberg::Error| format!("partition field {:?}: {e}", field.name);
            fields.push(Field {
                folder: format!("{}=", escape(&field.name)),
                column: source.name.clone(),
                column_type: type_to_arrow_type(&source.field_type).map_err(failed)?,
                transform: field.transform,
                function: create_transform_function(&field.transform).map_err(failed)?,
                result: field
                    .transform
                    .result_type(&source.field_type)
                    .map_err(failed)?,
            });
        }
        Ok(Some(Partitioning {
            spec_id: spec.spec_id(),
            fields,
        }))
    }

    pub fn spec_id(&self) -> i32 {
        self.spec_id
    }

    /// The chunk's rows grouped by partition value, with each group's tuple.
    pub fn split(&self, batch: &RecordBatch) -> Result<Split, String> {
        let values = self
            .fields
            .iter()
            .map(|field| field.values(batch))
            .collect::<Result<Vec<_>, String>>()?;
        // Each distinct value is printed once, not once a row.
        let texts: Vec<Distinct> = self
            .fields
            .iter()
            .zip(&values)
            .map(|(field, values)| Distinct::of(field, values))
            .collect();
        let groups = group_rows(batch.num_rows(), |row, folders| {
            for (field, texts) in self.fields.iter().zip(&texts) {
                if !folders.is_empty() {
                    folders.push('/');
                }
                folders.push_str(&field.folder);
                folders.push_str(texts.of_row(row));
            }
        });
        let tuples = groups
            .iter()
            .map(|group| {
                let row = group.first_row();
                let tuple: Struct = values.iter().map(|v| v[row].clone()).collect();
                (group.folders.clone(), tuple)
            })
            .collect();
        Ok(Split { groups, tuples })
    }
}

/// A field's distinct values in a chunk as folder text, and which one each row has.
struct Distinct {
    texts: Vec<String>,
    rows: Vec<u32>,
}

impl Distinct {
    fn of(field: &Field, values: &[Option<Literal>]) -> Distinct {
        let mut seen: HashMap<&Option<Literal>, u32> = HashMap::new();
        let mut texts = Vec::new();
        let rows = values
            .iter()
            .map(|value| {
                *seen.entry(value).or_insert_with(|| {
                    let mut text = String::new();
                    folder_value(field, value.as_ref(), &mut text);
                    texts.push(text);
                    texts.len() as u32 - 1
                })
            })
            .collect();
        Distinct { texts, rows }
    }

    fn of_row(&self, row: usize) -> &str {
        &self.texts[self.rows[row] as usize]
    }
}

/// The folder value of an empty string (an empty folder name is refused by some
/// stores).
const EMPTY_VALUE: &str = "__EMPTY__";

/// A partition value as folder text: unlike any other value's, so folders tell tuples
/// apart.
fn folder_value(field: &Field, value: Option<&Literal>, folders: &mut String) {
    let Some(value) = value else {
        folders.push_str(DEFAULT_PARTITION);
        return;
    };
    let text = escape(&field.transform.to_human_string(&field.result, Some(value)));
    match text.as_str() {
        "" => folders.push_str(EMPTY_VALUE),
        // A string that reads as a marker: its first `_` escaped, as `%5F`.
        DEFAULT_PARTITION | EMPTY_VALUE => {
            folders.push_str("%5F");
            folders.push_str(&text[1..]);
        }
        _ => folders.push_str(&text),
    }
}

impl Field {
    /// Each row's partition value of this field (None for null).
    fn values(&self, batch: &RecordBatch) -> Result<Vec<Option<Literal>>, String> {
        // A column the stream no longer sends is null in every row (as readers see it).
        let column: ArrayRef = match batch.column_by_name(&self.column) {
            Some(column) => column.clone(),
            None => new_null_array(&self.column_type, batch.num_rows()),
        };
        let failed = |e: iceberg::Error| {
            format!(
                "cannot compute partition values of column {:?}: {e}",
                self.column
            )
        };
        let transformed = self
            .function
            .transform(with_offset_zone(column))
            .map_err(failed)?;
        arrow_primitive_to_literal(&transformed, &self.result).map_err(failed)
    }
}

/// A date-time column with its zone given as an offset. The transforms go through
/// Arrow's zone parser, which knows only offsets (`"UTC"` needs the chrono-tz
/// feature); the values are UTC instants whatever the zone's name, so only the name
/// changes.
fn with_offset_zone(column: ArrayRef) -> ArrayRef {
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => Arc::new(
            column
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone("+00:00"),
        ),
        DataType::Timestamp(TimeUnit::Nanosecond, Some(_)) => Arc::new(
            column
                .as_primitive::<TimestampNanosecondType>()
                .clone()
                .with_timezone("+00:00"),
        ),
        _ => column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_parse_every_transform() {
        let setting = SpecSetting::from_value(&json!([
            "country",
            "day(created_at)",
            "Month( x )",
            "year(x)",
            "hour(x)",
            "bucket(16, id)",
            "truncate(4,name)"
        ]))
        .unwrap();
        let SpecSetting::Every(entries) = setting else {
            panic!("{setting:?}")
        };
        let texts: Vec<String> = entries.iter().map(Entry::text).collect();
        assert_eq!(
            texts,
            [
                "country",
                "day(created_at)",
                "month(x)",
                "year(x)",
                "hour(x)",
                "bucket(16, id)",
                "truncate(4, name)"
            ]
        );
        assert_eq!(entries[5].transform, Transform::Bucket(16));
        assert_eq!(entries[5].field_name(), "id_bucket");
        assert_eq!(entries[1].field_name(), "created_at_day");
        assert_eq!(entries[6].field_name(), "name_trunc");
    }

    #[test]
    fn wrong_entries_are_refused_with_the_forms() {
        for (value, expected) in [
            (json!(["week(x)"]), "\"week\" is not a transform"),
            (json!(["bucket(id)"]), "takes a number and a column"),
            (json!(["bucket(0, id)"]), "not a whole number above 0"),
            (json!(["day(a, b)"]), "takes one column"),
            (json!(["day()"]), "no column"),
            (json!([3]), "is not a string"),
            (json!(["x", "x"]), "given twice"),
            (json!(["(x"]), "not a column"),
            (json!(7), "expected entries"),
        ] {
            let e = SpecSetting::from_value(&value).unwrap_err();
            assert!(e.contains(expected), "{value}: {e}");
        }
    }

    fn split_of(entries: &[&str], batch: &RecordBatch) -> Split {
        let setting = SpecSetting::from_value(&json!(entries)).unwrap();
        let schema = crate::tables::schema::new_table_schema(&batch.schema()).unwrap();
        let entries = setting.for_stream("s").unwrap();
        let spec = new_spec(entries, &schema)
            .unwrap()
            .bind(schema.clone())
            .unwrap();
        assert!(same_spec(entries, &spec, &schema));
        let partitioning = Partitioning::new(&spec, &schema).unwrap().unwrap();
        partitioning.split(batch).unwrap()
    }

    #[test]
    fn rows_split_by_partition_value_with_folders_of_their_own() {
        use arrow::array::{Int64Array, StringArray};
        let country = StringArray::from(vec![
            Some("FR"),
            None,
            Some(""),
            Some("null"),
            Some("FR"),
            Some("__HIVE_DEFAULT_PARTITION__"),
            Some("a/b"),
        ]);
        let id = Int64Array::from(vec![34, 1, 2, 3, 4, 5, 6]);
        let batch = RecordBatch::try_from_iter([
            ("country", Arc::new(country) as ArrayRef),
            ("id", Arc::new(id) as ArrayRef),
        ])
        .unwrap();
        let split = split_of(&["country"], &batch);
        let folders: Vec<&str> = split.groups.iter().map(|g| g.folders.as_str()).collect();
        assert_eq!(
            folders,
            [
                "country=FR",
                "country=__HIVE_DEFAULT_PARTITION__",
                "country=__EMPTY__",
                "country=null",
                "country=%5F_HIVE_DEFAULT_PARTITION__",
                "country=a%2Fb"
            ]
        );
        assert_eq!(split.groups[0].rows(), 2);
        assert_eq!(split.tuples[1].1, Struct::from_iter([None]));
        // Iceberg's spec: the hash of the long 34 is 2017239379, so bucket 3 of 16.
        let split = split_of(&["bucket(16, id)"], &batch.slice(0, 1));
        assert_eq!(split.groups[0].folders, "id_bucket=3");
        assert_eq!(
            split.tuples[0].1,
            Struct::from_iter([Some(Literal::int(3))])
        );
    }

    #[test]
    fn per_stream_entries_apply_to_their_stream_only() {
        let setting = SpecSetting::from_value(&json!({"orders": ["bucket(4, id)"]})).unwrap();
        assert_eq!(setting.for_stream("orders").unwrap().len(), 1);
        assert!(setting.for_stream("users").is_none());
        assert!(SpecSetting::Off.for_stream("orders").is_none());
    }
}
