//! JSON Schema to columns: a stream's SCHEMA message becomes an ordered tree of typed
//! columns and the Arrow schema every object of that stream is written with.
//!
//! Owns: the type table of SPEC §6 (nested structs and lists, exact decimals, timestamp
//! units), the per-column overrides of `column_types`, which types
//! `parquet_compatibility: portable` stores as text (`ColumnType::AsText`: times and
//! decimals wider than 38 digits, which Spark 3, Athena and Redshift cannot read from
//! Parquet), flattening (`flatten_max_depth`)
//! and the column names as they appear in files, including the Singer metadata columns
//! `add_metadata_columns` appends. Must not touch: record values. Columns come from the
//! schema alone, never from data, so every batch of a stream has the same columns and
//! types.
//!
//! JSON Schema as taps write it: local `$ref`s (`#/definitions/…`, `#/$defs/…`, any
//! `#/…` pointer) are followed, and a schema that refers to itself becomes a JSON text
//! column (noted once per SCHEMA in `notes`); `allOf` parts are merged into one schema;
//! `anyOf`/`oneOf` give one column type for their alternatives. An object level whose
//! `additionalProperties` is `true` or a schema keeps the fields it does not declare, as
//! one JSON object in a column `_sdc_extra` after its own (`ColumnType::Extra`); a
//! SCHEMA with no properties at all has that column alone, so each record is stored
//! whole (JSONL writes it as the line itself).
//!
//! Flattening keeps the tree the records are decoded into; it marks the struct columns
//! whose fields become columns of their own (`parent__child`), and the Arrow schema
//! lists those fields in the struct's place.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Weak};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde_json::{Map, Value};

use crate::mage::Catalog;

/// Precision of the widest Arrow decimal (Decimal256).
pub const MAX_DECIMAL_PRECISION: u8 = 76;
/// Precision of Decimal128; wider decimals use Decimal256.
const DECIMAL128_PRECISION: u8 = 38;
/// Scale used for `format: decimal` when the schema gives no `multipleOf`.
const DEFAULT_DECIMAL_SCALE: i8 = 9;

/// Joins a flattened object's name and its field's name into a column name.
pub const FLATTEN_SEPARATOR: &str = "__";

/// Arrow's canonical extension name for a string column holding JSON text.
pub const JSON_EXTENSION: &str = "arrow.json";

/// The column that holds the fields an object level does not declare.
pub const EXTRA_COLUMN: &str = "_sdc_extra";

/// Field metadata marking that column, for encoders that merge its fields back into
/// the object (JSONL).
pub const EXTRA_FIELDS: &str = "target_s3.additional_properties";

/// The logical type of a column (or of a nested field or list item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    Integer,
    /// A float64; values it cannot hold exactly are refused (see `inexact_numbers`).
    Number,
    /// An exact decimal: values are scaled integers, never passed through a float.
    Decimal {
        precision: u8,
        scale: i8,
    },
    Boolean,
    Text,
    /// Any JSON value kept as text: strings as they are, anything else as its JSON.
    /// What the `string` override gives a column.
    Literal,
    Timestamp(TimeUnit),
    Date,
    /// Microseconds since midnight.
    Time,
    /// Objects without properties, `{}`, mixed types: the value's compact JSON text.
    Json,
    /// The fields an object level does not declare and its `additionalProperties`
    /// allows, as one compact JSON object (null when there are none).
    Extra,
    Struct(Vec<Column>),
    List(Box<ColumnType>),
    /// Values checked as the inner type and stored as its text (what CSV writes for
    /// it): how `parquet_compatibility: portable` writes the types that Spark 3,
    /// Athena, Hive and Redshift cannot read in Parquet (TIME, decimals wider than 38
    /// digits).
    AsText(Box<ColumnType>),
}

impl ColumnType {
    pub fn arrow_type(&self) -> DataType {
        match self {
            ColumnType::Integer => DataType::Int64,
            ColumnType::Number => DataType::Float64,
            ColumnType::Decimal { precision, scale } if *precision <= DECIMAL128_PRECISION => {
                DataType::Decimal128(*precision, *scale)
            }
            ColumnType::Decimal { precision, scale } => DataType::Decimal256(*precision, *scale),
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Text | ColumnType::Literal | ColumnType::Json | ColumnType::Extra => {
                DataType::Utf8
            }
            ColumnType::Timestamp(unit) => DataType::Timestamp(*unit, Some("UTC".into())),
            ColumnType::Date => DataType::Date32,
            ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
            ColumnType::Struct(fields) => DataType::Struct(fields_of(fields)),
            ColumnType::List(item) => DataType::List(Arc::new(item.field("item"))),
            ColumnType::AsText(_) => DataType::Utf8,
        }
    }

    /// The type values are checked and decoded as: the inner one of `AsText`.
    pub fn value_type(&self) -> &ColumnType {
        match self {
            ColumnType::AsText(inner) => inner,
            other => other,
        }
    }

    /// An Arrow field of this type; JSON text is marked with the canonical extension,
    /// and the undeclared fields' column with `EXTRA_FIELDS` too.
    pub fn field(&self, name: &str) -> Field {
        let field = Field::new(name, self.arrow_type(), true);
        let mut metadata = HashMap::from([
            ("ARROW:extension:name".to_owned(), JSON_EXTENSION.to_owned()),
            ("ARROW:extension:metadata".to_owned(), String::new()),
        ]);
        match self {
            ColumnType::Json => field.with_metadata(metadata),
            ColumnType::Extra => {
                metadata.insert(EXTRA_FIELDS.to_owned(), "true".to_owned());
                field.with_metadata(metadata)
            }
            _ => field,
        }
    }

    /// The column's type as SQL engines that read these files spell it (Athena, Hive,
    /// Spark DDL): `bigint`, `decimal(38,9)`, `struct<a:string>`, `array<date>`…
    pub fn sql_name(&self) -> String {
        match self {
            ColumnType::Integer => "bigint".into(),
            ColumnType::Number => "double".into(),
            ColumnType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            ColumnType::Boolean => "boolean".into(),
            ColumnType::Text
            | ColumnType::Literal
            | ColumnType::Json
            | ColumnType::Extra
            | ColumnType::AsText(_) => "string".into(),
            ColumnType::Timestamp(_) => "timestamp".into(),
            ColumnType::Date => "date".into(),
            ColumnType::Time => "time".into(),
            ColumnType::Struct(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{}:{}", f.output_name, f.ty.sql_name()))
                    .collect();
                format!("struct<{}>", fields.join(","))
            }
            ColumnType::List(item) => format!("array<{}>", item.sql_name()),
        }
    }

    /// What a record value must look like, for error messages.
    pub fn expected(&self) -> String {
        match self {
            ColumnType::Integer => "an integer within int64".into(),
            ColumnType::Number => "a number".into(),
            ColumnType::Decimal { precision, scale } => {
                format!("a number with at most {precision} digits, {scale} after the point")
            }
            ColumnType::Boolean => "true or false".into(),
            ColumnType::Text => "a string".into(),
            ColumnType::Literal | ColumnType::Json => "any JSON value".into(),
            ColumnType::Extra => "fields as JSON".into(),
            ColumnType::Timestamp(_) => "an RFC 3339 date-time string".into(),
            ColumnType::Date => "a date string YYYY-MM-DD".into(),
            ColumnType::Time => "a time string HH:MM:SS[.ffffff]".into(),
            ColumnType::Struct(_) => "an object".into(),
            ColumnType::List(_) => "an array".into(),
            ColumnType::AsText(inner) => inner.expected(),
        }
    }
}

fn fields_of<'c>(columns: impl IntoIterator<Item = &'c Column>) -> Fields {
    columns
        .into_iter()
        .map(|c| c.ty.field(&c.output_name))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The property name as records carry it.
    pub name: String,
    /// The name written into files (top-level columns follow `column_header_format`;
    /// the fields of a flattened object are `parent__child`).
    pub output_name: String,
    pub ty: ColumnType,
    /// A struct whose fields are written as columns of their own, in its place.
    pub flattened: bool,
}

/// The columns as written to files: each flattened struct replaced by its fields.
pub fn file_columns(columns: &[Column]) -> Vec<&Column> {
    let mut out = Vec::with_capacity(columns.len());
    for column in columns {
        match &column.ty {
            ColumnType::Struct(fields) if column.flattened => out.extend(file_columns(fields)),
            _ => out.push(column),
        }
    }
    out
}

/// `file_columns`, to change.
fn for_each_file_column(columns: &mut [Column], f: &mut impl FnMut(&mut Column)) {
    for column in columns {
        match &mut column.ty {
            ColumnType::Struct(fields) if column.flattened => for_each_file_column(fields, f),
            _ => f(column),
        }
    }
}

/// The case column names are written in (`header_case`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderCase {
    Upper,
    Lower,
}

impl HeaderCase {
    pub fn apply(self, name: &str) -> String {
        match self {
            HeaderCase::Upper => name.to_uppercase(),
            HeaderCase::Lower => name.to_lowercase(),
        }
    }
}

/// How JSON Schema types become column types, from the settings.
#[derive(Debug, Clone)]
pub struct TypeOptions {
    pub header_case: Option<HeaderCase>,
    pub timestamp_unit: TimeUnit,
    /// `column_types`: stream -> column -> type, replacing what the schema says.
    pub overrides: HashMap<String, HashMap<String, ColumnType>>,
    /// `add_metadata_columns`: append the Singer metadata columns to every stream.
    pub metadata_columns: bool,
    /// `mage_columns`: append `_mage_created_at` and `_mage_updated_at` to every stream.
    pub mage_columns: bool,
    /// `include_process_date`: append `_PROCESS_DATE` to every stream.
    pub process_date_column: bool,
    /// Levels of nested objects whose fields become columns of their own; 0: none.
    pub flatten_max_depth: usize,
    /// Mage's `--catalog_json` (in Mage mode): the columns selected and their types.
    pub catalog: Option<Arc<Catalog>>,
    /// `parquet_compatibility: portable` with Parquet files: time columns and decimals
    /// wider than 38 digits are stored as text (`ColumnType::AsText`).
    pub portable_types: bool,
}

impl Default for TypeOptions {
    fn default() -> Self {
        TypeOptions {
            header_case: None,
            timestamp_unit: TimeUnit::Microsecond,
            overrides: HashMap::new(),
            metadata_columns: false,
            mage_columns: false,
            process_date_column: false,
            flatten_max_depth: 0,
            catalog: None,
            portable_types: false,
        }
    }
}

/// The Singer metadata columns, in the order they follow a stream's own columns.
pub const METADATA_COLUMNS: [&str; 6] = [
    "_sdc_extracted_at",
    "_sdc_received_at",
    "_sdc_batched_at",
    DELETED_AT,
    "_sdc_sequence",
    "_sdc_table_version",
];

/// The columns Mage's own destination adds to every row (`mage_columns`), after the
/// Singer metadata columns. Both hold the time the chunk was handed on for encoding.
pub const MAGE_COLUMNS: [&str; 2] = ["_mage_created_at", "_mage_updated_at"];

/// The column crowemi/target-s3 adds to every row (`include_process_date`), last in the
/// file: the same time as Mage's columns.
pub const PROCESS_DATE_COLUMN: &str = "_PROCESS_DATE";

/// The one metadata column whose value the record itself carries (taps with log-based
/// replication send it); the others come from the message and the target.
pub const DELETED_AT: &str = "_sdc_deleted_at";

fn metadata_type(name: &str, unit: TimeUnit) -> ColumnType {
    match name {
        "_sdc_sequence" | "_sdc_table_version" => ColumnType::Integer,
        _ => ColumnType::Timestamp(unit),
    }
}

/// A stream's columns, in the schema's property order.
#[derive(Debug, Clone)]
pub struct StreamSchema {
    /// The stream's name, as the SCHEMA message gives it.
    pub stream: String,
    /// The stream's own columns (shared with streams of the same schema, see
    /// `SharedSchemas`).
    pub columns: Arc<Vec<Column>>,
    /// With `add_metadata_columns`, the metadata columns in file order (else empty).
    pub metadata: Vec<Column>,
    /// The columns stamped with the time a chunk is handed on for encoding, last in the
    /// file: Mage's two with `mage_columns`, then `_PROCESS_DATE` with
    /// `include_process_date` (else empty).
    pub mage: Vec<Column>,
    /// Schema properties that metadata columns other than `_sdc_deleted_at` took the
    /// place of: their values come from the message and the target, so the record's
    /// own values for them are passed over.
    pub replaced: Vec<String>,
    pub key_properties: Vec<String>,
    /// The file's columns: the stream's own, then the metadata columns.
    pub arrow: SchemaRef,
    /// What the run should say once about how the schema was read (a `$ref` that
    /// refers to itself, one that cannot be followed).
    pub notes: Vec<String>,
}

/// The parsed columns and Arrow schemas of the streams, shared between streams whose
/// SCHEMAs give the same ones: a database tap sends the same schema for many tables,
/// and each parsed copy costs a few KB for every stream ever seen. Held weakly, so a
/// schema no stream uses any more is freed.
#[derive(Default)]
pub struct SharedSchemas(HashMap<u64, Vec<Held>>);

/// A shared schema's columns and Arrow schema, while a stream uses them.
type Held = (Weak<Vec<Column>>, Weak<Schema>);

impl SharedSchemas {
    /// `schema`, with its columns and Arrow schema replaced by equal ones already held.
    pub fn share(&mut self, mut schema: StreamSchema) -> StreamSchema {
        let mut hasher = DefaultHasher::new();
        schema.arrow.hash(&mut hasher);
        let held = self.0.entry(hasher.finish()).or_default();
        held.retain(|(columns, arrow)| columns.strong_count() > 0 && arrow.strong_count() > 0);
        let equal = held.iter().find_map(|(columns, arrow)| {
            let (columns, arrow) = (columns.upgrade()?, arrow.upgrade()?);
            (columns == schema.columns && arrow == schema.arrow).then_some((columns, arrow))
        });
        match equal {
            Some((columns, arrow)) => (schema.columns, schema.arrow) = (columns, arrow),
            None => held.push((
                Arc::downgrade(&schema.columns),
                Arc::downgrade(&schema.arrow),
            )),
        }
        schema
    }
}

impl PartialEq for StreamSchema {
    fn eq(&self, other: &Self) -> bool {
        self.columns == other.columns
            && self.metadata == other.metadata
            && self.mage == other.mage
            && self.replaced == other.replaced
            && self.key_properties == other.key_properties
    }
}

impl StreamSchema {
    /// Builds the columns of a SCHEMA message's `schema` object.
    pub fn from_json(
        stream: &str,
        schema: &str,
        key_properties: &[String],
        options: &TypeOptions,
    ) -> Result<StreamSchema, String> {
        let mut schema: Value =
            serde_json::from_str(schema).map_err(|e| format!("schema is not valid JSON: {e}"))?;
        let mut keys = key_properties.to_vec();
        let selected = match (&options.catalog, schema.get("properties")) {
            (Some(catalog), Some(Value::Object(properties))) => {
                catalog.select(stream, properties, key_properties)
            }
            _ => None,
        };
        if let Some((selected, selected_keys)) = selected {
            if selected.is_empty() {
                return Err("--catalog_json selects none of the stream's columns".into());
            }
            schema["properties"] = Value::Object(selected);
            keys = selected_keys;
        }
        let key_properties = keys.as_slice();
        let mut mapper = Mapper::new(options.timestamp_unit, &schema);
        let (columns, properties) = mapper.record_columns(&schema);
        let mut columns = columns?;
        let (mut metadata, mut replaced) = (Vec::new(), Vec::new());
        if options.metadata_columns {
            metadata = METADATA_COLUMNS
                .iter()
                .map(|name| Column {
                    name: (*name).to_owned(),
                    output_name: (*name).to_owned(),
                    ty: metadata_type(name, options.timestamp_unit),
                    flattened: false,
                })
                .collect();
            replaced = take_metadata_properties(&mut columns);
        }
        let mut stamped: Vec<&str> = Vec::new();
        if options.mage_columns {
            stamped.extend(MAGE_COLUMNS);
        }
        if options.process_date_column {
            stamped.push(PROCESS_DATE_COLUMN);
        }
        // A stream loaded this way before has these columns: the stamps replace them.
        columns.retain(|c| !stamped.contains(&c.name.as_str()));
        let mut mage: Vec<Column> = stamped
            .iter()
            .map(|name| Column {
                name: (*name).to_owned(),
                output_name: (*name).to_owned(),
                ty: ColumnType::Timestamp(options.timestamp_unit),
                flattened: false,
            })
            .collect();
        let shape = Shape {
            overrides: options.overrides.get(stream),
            sources: Vec::new(),
        };
        shape.apply(&mut columns, options.flatten_max_depth)?;
        if options.portable_types {
            columns.iter_mut().for_each(|c| make_portable(&mut c.ty));
        }
        apply_header_case(&mut columns, &mut metadata, &mut mage, options.header_case)?;
        // With no properties, keys cannot be checked against them.
        for key in key_properties.iter().filter(|_| !properties.is_empty()) {
            if !properties.contains_key(key) {
                return Err(format!(
                    "key property {key:?} is not among the schema's properties"
                ));
            }
        }
        let fields: Fields = file_columns(&columns)
            .into_iter()
            .chain(&metadata)
            .chain(&mage)
            .map(|c| c.ty.field(&c.output_name))
            .collect();
        Ok(StreamSchema {
            stream: stream.to_owned(),
            arrow: Arc::new(Schema::new(fields)),
            columns: Arc::new(columns),
            metadata,
            mage,
            replaced,
            key_properties: key_properties.to_vec(),
            notes: mapper.notes,
        })
    }

    /// The timestamp unit of the metadata columns, when they are on.
    pub fn metadata_unit(&self) -> Option<TimeUnit> {
        self.metadata.iter().find_map(|c| match c.ty {
            ColumnType::Timestamp(unit) => Some(unit),
            _ => None,
        })
    }

    /// The timestamp unit of Mage's columns, when they are on.
    pub fn mage_unit(&self) -> Option<TimeUnit> {
        self.mage.iter().find_map(|c| match c.ty {
            ColumnType::Timestamp(unit) => Some(unit),
            _ => None,
        })
    }

    /// The `column_types` name that reaches the field at a record path (`a`, `o.a`,
    /// `l[]`): its column's name, with flattened parents joined by `__`; and whether
    /// that column is the field itself (else the field is inside it, a struct or list
    /// that is not flattened, and only a type for the whole value reaches it).
    pub fn override_key(&self, path: &str) -> (String, bool) {
        let mut columns: &Vec<Column> = &self.columns;
        let mut key = String::new();
        let mut rest = path;
        loop {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let (name, tail) = rest.split_at(end);
            if !key.is_empty() {
                key.push_str(FLATTEN_SEPARATOR);
            }
            key.push_str(name);
            let column = columns.iter().find(|c| c.name == name);
            match (column, tail.strip_prefix('.')) {
                (Some(_), None) if tail.is_empty() => return (key, true),
                (Some(c), Some(next)) if c.flattened => match &c.ty {
                    ColumnType::Struct(fields) => {
                        columns = fields;
                        rest = next;
                    }
                    _ => return (key, false),
                },
                _ => return (key, false),
            }
        }
    }

    /// The columns a record's fields are decoded into: the stream's own, then
    /// `_sdc_deleted_at` when metadata columns are on.
    pub fn record_columns(&self) -> Vec<Column> {
        let deleted_at = self.metadata.iter().filter(|c| c.name == DELETED_AT);
        self.columns.iter().chain(deleted_at).cloned().collect()
    }
}

/// Removes the schema's own properties named like metadata columns (the metadata
/// column takes their place, typed as a metadata column) and returns those whose
/// values the record does not supply.
fn take_metadata_properties(columns: &mut Vec<Column>) -> Vec<String> {
    let mut replaced = Vec::new();
    columns.retain(|c| {
        let is_metadata = METADATA_COLUMNS.contains(&c.name.as_str());
        if is_metadata && c.name != DELETED_AT {
            replaced.push(c.name.clone());
        }
        !is_metadata
    });
    replaced
}

/// The overrides of `column_types` and flattening, applied in one walk: an override
/// names a column as files show it before `column_header_format` (`a__b` reaches a
/// flattened field), and is applied before its column is flattened or not.
struct Shape<'a> {
    overrides: Option<&'a HashMap<String, ColumnType>>,
    /// Each file column's name and the property path it comes from, to report clashes.
    sources: Vec<(String, String)>,
}

impl Shape<'_> {
    fn apply(mut self, columns: &mut [Column], depth: usize) -> Result<(), String> {
        self.walk(columns, None, depth);
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (name, path) in &self.sources {
            if let Some(other) = seen.insert(name, path) {
                // A path's dots are the levels flattened to make it: one fewer keeps
                // the deeper property nested.
                let levels = other.matches('.').count().max(path.matches('.').count());
                return Err(format!(
                    "properties {other:?} and {path:?} both become column {name:?} with flatten_max_depth; rename one in the tap or set {}",
                    crate::suggest::setting("flatten_max_depth", levels.saturating_sub(1).into())
                ));
            }
        }
        Ok(())
    }

    /// `parent`: the output name and property path of the flattened struct above.
    fn walk(&mut self, columns: &mut [Column], parent: Option<(&str, &str)>, depth: usize) {
        for column in columns {
            let (name, path) = match parent {
                Some((name, path)) => (
                    format!("{name}{FLATTEN_SEPARATOR}{}", column.name),
                    format!("{path}.{}", column.name),
                ),
                None => (column.name.clone(), column.name.clone()),
            };
            if let Some(ty) = self.overrides.and_then(|o| o.get(&name)) {
                column.ty = ty.clone();
            }
            column.output_name = name;
            match &mut column.ty {
                ColumnType::Struct(fields) if depth > 0 => {
                    column.flattened = true;
                    self.walk(fields, Some((&column.output_name, &path)), depth - 1);
                }
                _ => self.sources.push((column.output_name.clone(), path)),
            }
        }
    }
}

fn apply_header_case(
    columns: &mut [Column],
    metadata: &mut [Column],
    mage: &mut [Column],
    case: Option<HeaderCase>,
) -> Result<(), String> {
    let mut seen = HashSet::new();
    let mut clash = None;
    let mut name = |column: &mut Column| {
        if let Some(case) = case {
            column.output_name = case.apply(&column.output_name);
        }
        if !seen.insert(column.output_name.clone()) {
            clash.get_or_insert_with(|| column.output_name.clone());
        }
    };
    for_each_file_column(columns, &mut name);
    metadata.iter_mut().chain(mage.iter_mut()).for_each(name);
    match clash {
        None => Ok(()),
        Some(name) => Err(format!(
            "two properties become column {name:?} after column_header_format; rename one in the tap or drop the setting"
        )),
    }
}

/// Turns the types Spark 3, Athena, Hive and Redshift cannot read from Parquet into
/// their text, at any depth: TIME (none of them has the Parquet type) and decimals
/// wider than 38 digits (the widest any of them reads). Overrides included: the setting
/// is a promise about the whole file.
fn make_portable(ty: &mut ColumnType) {
    match ty {
        ColumnType::Time => *ty = ColumnType::AsText(Box::new(ColumnType::Time)),
        ColumnType::Decimal { precision, .. } if *precision > DECIMAL128_PRECISION => {
            let decimal = std::mem::replace(ty, ColumnType::Json);
            *ty = ColumnType::AsText(Box::new(decimal));
        }
        ColumnType::Struct(fields) => fields.iter_mut().for_each(|f| make_portable(&mut f.ty)),
        ColumnType::List(item) => make_portable(item),
        _ => {}
    }
}

/// Parses a `column_types` value: `decimal(P,S)`, `string`, `float64`, `int64`,
/// `boolean`, `timestamp`, `date`, `time` or `json`.
pub fn parse_type_name(name: &str) -> Result<ColumnType, String> {
    let lower = name.trim().to_ascii_lowercase().replace(' ', "");
    let simple = match lower.as_str() {
        "string" | "text" => Some(ColumnType::Literal),
        "float64" | "double" | "number" => Some(ColumnType::Number),
        "int64" | "integer" => Some(ColumnType::Integer),
        "boolean" | "bool" => Some(ColumnType::Boolean),
        "timestamp" => Some(ColumnType::Timestamp(TimeUnit::Microsecond)),
        "date" => Some(ColumnType::Date),
        "time" => Some(ColumnType::Time),
        "json" => Some(ColumnType::Json),
        _ => None,
    };
    if let Some(ty) = simple {
        return Ok(ty);
    }
    let args = lower
        .strip_prefix("decimal(")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| format!("unknown column type {name:?}"))?;
    let (p, s) = args.split_once(',').unwrap_or((args, "0"));
    match (p.parse::<u8>(), s.parse::<i8>()) {
        (Ok(precision), Ok(scale))
            if (1..=MAX_DECIMAL_PRECISION).contains(&precision)
                && (0..=precision as i8).contains(&scale) =>
        {
            Ok(ColumnType::Decimal { precision, scale })
        }
        _ => Err(format!(
            "{name:?} is not a valid decimal; precision 1 to 76, scale 0 to precision"
        )),
    }
}

/// References followed while mapping one schema, at most: a schema whose references
/// fan out (`a` uses `b` twice, `b` uses `c` twice…) would otherwise grow columns
/// without end.
const MAX_REFERENCES: usize = 10_000;

/// The JSON Schema walk, with the settings and the root it needs.
struct Mapper<'s> {
    unit: TimeUnit,
    /// The SCHEMA's whole schema, which local `$ref`s point into.
    root: &'s Value,
    /// The references being followed, innermost last: one met again refers to itself.
    following: Vec<String>,
    followed: usize,
    notes: Vec<String>,
}

impl<'s> Mapper<'s> {
    fn new(unit: TimeUnit, root: &'s Value) -> Mapper<'s> {
        Mapper {
            unit,
            root,
            following: Vec::new(),
            followed: 0,
            notes: Vec::new(),
        }
    }

    fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// The record's columns, and its properties (empty when it declares none, and then
    /// the one column holds each record whole).
    fn record_columns(
        &mut self,
        schema: &Value,
    ) -> (Result<Vec<Column>, String>, Map<String, Value>) {
        let Some((root, refs)) = self.flatten(schema) else {
            let e = "the SCHEMA's schema refers to itself at its top; expected \"schema\": {\"properties\": {...}}";
            return (Err(e.into()), Map::new());
        };
        self.following.extend(refs.iter().cloned());
        let properties = match root.get("properties") {
            Some(Value::Object(properties)) => properties.clone(),
            _ => Map::new(),
        };
        let columns = if properties.is_empty() {
            vec![column(EXTRA_COLUMN, ColumnType::Extra)]
        } else {
            self.object_columns(&properties, &root)
        };
        self.following.truncate(self.following.len() - refs.len());
        (Ok(columns), properties)
    }

    /// An object level's columns: its properties, then `_sdc_extra` when its
    /// `additionalProperties` keeps the fields it does not declare.
    fn object_columns(
        &mut self,
        properties: &Map<String, Value>,
        schema: &Map<String, Value>,
    ) -> Vec<Column> {
        let mut columns = self.columns(properties);
        let keeps_extra = match schema.get("additionalProperties") {
            Some(Value::Bool(keep)) => *keep,
            Some(Value::Object(_)) => true,
            _ => false,
        };
        if keeps_extra {
            if properties.contains_key(EXTRA_COLUMN) {
                self.note(format!(
                    "a property is named {EXTRA_COLUMN:?}, the column that would hold the fields additionalProperties allows; those fields are ignored"
                ));
            } else {
                columns.push(column(EXTRA_COLUMN, ColumnType::Extra));
            }
        }
        columns
    }

    fn columns(&mut self, properties: &Map<String, Value>) -> Vec<Column> {
        properties
            .iter()
            .map(|(name, property)| {
                let ty = self.column_type(property);
                column(name, ty)
            })
            .collect()
    }

    /// `schema` with its `$ref` followed and its `allOf` parts merged into it, and the
    /// references followed to get there; None when it refers to itself (or cannot be
    /// followed), which makes it JSON text.
    fn flatten(&mut self, schema: &Value) -> Option<(Map<String, Value>, Vec<String>)> {
        let mut flat = match schema {
            Value::Object(object) => object.clone(),
            // `true` (anything) and `false` (nothing) say nothing about a type.
            _ => return Some((Map::new(), Vec::new())),
        };
        let mut refs = Vec::new();
        if let Some(reference) = flat.remove("$ref") {
            let reference = reference.as_str().unwrap_or_default().to_owned();
            let target = self.target(&reference)?;
            self.following.push(reference.clone());
            let resolved = self.flatten(target);
            self.following.pop();
            let (mut merged, inner) = resolved?;
            merge_schemas(&mut merged, flat);
            flat = merged;
            refs.push(reference);
            refs.extend(inner);
        }
        if let Some(parts) = flat.remove("allOf") {
            for part in parts.as_array().into_iter().flatten() {
                self.following.extend(refs.iter().cloned());
                let resolved = self.flatten(part);
                self.following.truncate(self.following.len() - refs.len());
                let (part, inner) = resolved?;
                merge_schemas(&mut flat, part);
                refs.extend(inner);
            }
        }
        Some((flat, refs))
    }

    /// What a local `$ref` points to; None (with a note) for one that refers to itself,
    /// that is not local or that points nowhere.
    fn target(&mut self, reference: &str) -> Option<&'s Value> {
        if self.following.iter().any(|r| r == reference) {
            self.note(format!(
                "{reference:?} refers to itself (a recursive schema): the columns that use it hold JSON text"
            ));
            return None;
        }
        self.followed += 1;
        if self.followed > MAX_REFERENCES {
            self.note(format!(
                "more than {MAX_REFERENCES} $refs to follow: the columns past them hold JSON text"
            ));
            return None;
        }
        let found = reference
            .strip_prefix('#')
            .and_then(|pointer| self.root.pointer(pointer));
        if found.is_none() {
            self.note(format!(
                "$ref {reference:?} cannot be followed (only local references, \"#/…\", are): the columns that use it hold JSON text"
            ));
        }
        found
    }

    /// The type of one property schema. Null alternatives only make it nullable (every
    /// column is); anything that cannot be one typed column is kept as JSON text.
    fn column_type(&mut self, property: &Value) -> ColumnType {
        let Some(object) = property.as_object() else {
            return ColumnType::Json;
        };
        if object.contains_key("$ref") || object.contains_key("allOf") {
            let Some((flat, refs)) = self.flatten(property) else {
                return ColumnType::Json;
            };
            self.following.extend(refs.iter().cloned());
            let ty = self.column_type(&Value::Object(flat));
            self.following.truncate(self.following.len() - refs.len());
            return ty;
        }
        if let Some(alternatives) = object
            .get("anyOf")
            .or_else(|| object.get("oneOf"))
            .and_then(Value::as_array)
        {
            let types: Vec<ColumnType> = alternatives
                .iter()
                .filter(|alt| !is_null_only(alt))
                .map(|alt| self.column_type(alt))
                .collect();
            return merge(types.into_iter());
        }
        let types: Vec<&str> = match object.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return ColumnType::Json,
        };
        let types: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
        if types.len() == 1 {
            return self.single_type(types[0], object);
        }
        let types: Vec<ColumnType> = types.iter().map(|t| self.single_type(t, object)).collect();
        merge(types.into_iter())
    }

    fn single_type(&mut self, name: &str, schema: &Map<String, Value>) -> ColumnType {
        let format = schema.get("format").and_then(Value::as_str);
        match (name, format) {
            ("integer", _) => decimal_of(schema, true).unwrap_or(ColumnType::Integer),
            ("number", _) => decimal_of(schema, false).unwrap_or(ColumnType::Number),
            ("boolean", _) => ColumnType::Boolean,
            ("string", Some("date-time")) => ColumnType::Timestamp(self.unit),
            ("string", Some("date")) => ColumnType::Date,
            ("string", Some("time")) => ColumnType::Time,
            ("string", Some("decimal")) => decimal_of(schema, false).unwrap_or(ColumnType::Text),
            ("string", _) => ColumnType::Text,
            ("object", _) => match schema.get("properties").and_then(Value::as_object) {
                Some(properties) if !properties.is_empty() => {
                    ColumnType::Struct(self.object_columns(properties, schema))
                }
                _ => ColumnType::Json,
            },
            ("array", _) => match schema.get("items") {
                Some(items) if items.is_object() => {
                    ColumnType::List(Box::new(self.column_type(items)))
                }
                _ => ColumnType::List(Box::new(ColumnType::Json)),
            },
            _ => ColumnType::Json,
        }
    }
}

/// A column of a property, named as the record names it.
fn column(name: &str, ty: ColumnType) -> Column {
    Column {
        name: name.to_owned(),
        output_name: name.to_owned(),
        ty,
        flattened: false,
    }
}

/// Merges `part` into `schema`, as `allOf` means: properties of both (a property in both
/// must meet both), `required` of both, the types both allow; any other keyword
/// `schema` lacks is taken from `part`.
fn merge_schemas(schema: &mut Map<String, Value>, part: Map<String, Value>) {
    for (key, value) in part {
        let Some(mine) = schema.get_mut(&key) else {
            schema.insert(key, value);
            continue;
        };
        match (key.as_str(), mine, value) {
            ("properties", Value::Object(mine), Value::Object(theirs)) => {
                for (name, property) in theirs {
                    match mine.get_mut(&name) {
                        Some(existing) => {
                            let both = Value::Array(vec![existing.take(), property]);
                            *existing = serde_json::json!({ "allOf": both });
                        }
                        None => {
                            mine.insert(name, property);
                        }
                    }
                }
            }
            ("required", Value::Array(mine), Value::Array(theirs)) => {
                for name in theirs {
                    if !mine.contains(&name) {
                        mine.push(name);
                    }
                }
            }
            ("type", mine, theirs) => {
                let allowed = |t: &Value| -> Vec<Value> {
                    match t {
                        Value::Array(ts) => ts.clone(),
                        other => vec![other.clone()],
                    }
                };
                let theirs = allowed(&theirs);
                let both: Vec<Value> = allowed(mine)
                    .into_iter()
                    .filter(|t| theirs.contains(t))
                    .collect();
                *mine = Value::Array(both);
            }
            ("items", mine, theirs) => {
                let both = Value::Array(vec![mine.take(), theirs]);
                *mine = serde_json::json!({ "allOf": both });
            }
            _ => {}
        }
    }
}

/// An exact decimal, where the schema asks for one: `multipleOf` a power of ten, or
/// `format: decimal`, or (for integers) bounds beyond int64. Precision comes from the
/// bounds (`maximum`, `minimum`, exclusive or not) and the scale.
fn decimal_of(schema: &Map<String, Value>, integer: bool) -> Option<ColumnType> {
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    let bound = widest_bound(schema);
    let is_decimal_format = schema.get("format").and_then(Value::as_str) == Some("decimal");
    let scale = match number("multipleOf").and_then(power_of_ten_scale) {
        Some(scale) if !integer => scale,
        _ if is_decimal_format => DEFAULT_DECIMAL_SCALE,
        _ if integer && bound.is_some_and(|(b, _)| b > i64::MAX as f64) => 0,
        _ => return None,
    };
    let integer_digits = match bound {
        Some((b, exclusive)) => integer_digits(b, exclusive),
        None => DECIMAL128_PRECISION - scale as u8,
    };
    let precision = (integer_digits + scale as u8).max(1);
    if precision > MAX_DECIMAL_PRECISION {
        return Some(ColumnType::Literal);
    }
    Some(ColumnType::Decimal { precision, scale })
}

/// The largest magnitude among the bounds, and whether it is exclusive. Draft 4 wrote
/// `exclusiveMaximum: true` beside `maximum`; later drafts give the bound itself.
fn widest_bound(schema: &Map<String, Value>) -> Option<(f64, bool)> {
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    [
        ("maximum", "exclusiveMaximum"),
        ("minimum", "exclusiveMinimum"),
    ]
    .into_iter()
    .flat_map(|(inclusive, exclusive)| {
        let draft4_exclusive = schema.get(exclusive) == Some(&Value::Bool(true));
        [
            number(inclusive).map(|b| (b.abs(), draft4_exclusive)),
            number(exclusive).map(|b| (b.abs(), true)),
        ]
    })
    .flatten()
    .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
}

/// `m` = 10^-s for a whole s in 0..=38: returns s.
fn power_of_ten_scale(m: f64) -> Option<i8> {
    (0..=38i32).find_map(|s| {
        let p = 10f64.powi(-s);
        ((m - p).abs() <= p * 1e-9).then_some(s as i8)
    })
}

/// Digits left of the point needed below `bound`: 1e8 exclusive -> 8, 1e8 -> 9.
fn integer_digits(bound: f64, exclusive: bool) -> u8 {
    if bound < 1.0 {
        return 0;
    }
    let digits = bound.log10().floor() as u8 + 1;
    let is_power_of_ten = 10f64.powi(digits as i32 - 1) == bound;
    if exclusive && is_power_of_ten {
        digits - 1
    } else {
        digits
    }
}

fn is_null_only(alternative: &Value) -> bool {
    match alternative.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(ts)) => ts.iter().all(|t| t == "null"),
        _ => false,
    }
}

/// One column type for several alternatives: equal types stay; strings of different
/// formats are kept as text as sent; integer with number is a number; else JSON.
fn merge(types: impl Iterator<Item = ColumnType>) -> ColumnType {
    let is_string = |t: &ColumnType| {
        matches!(
            t,
            ColumnType::Text | ColumnType::Timestamp(_) | ColumnType::Date | ColumnType::Time
        )
    };
    let is_numeric = |t: &ColumnType| matches!(t, ColumnType::Integer | ColumnType::Number);
    types
        .reduce(|a, b| match (&a, &b) {
            _ if a == b => a,
            _ if is_string(&a) && is_string(&b) => ColumnType::Text,
            _ if is_numeric(&a) && is_numeric(&b) => ColumnType::Number,
            _ => ColumnType::Json,
        })
        .unwrap_or(ColumnType::Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(schema: Value) -> ColumnType {
        Mapper::new(TimeUnit::Microsecond, &schema).column_type(&schema)
    }

    fn decimal(precision: u8, scale: i8) -> ColumnType {
        ColumnType::Decimal { precision, scale }
    }

    #[test]
    fn sql_names_for_manifests() {
        let nested = ty(json!({"type": "object", "properties": {
            "at": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "n": {"type": "number", "multipleOf": 0.01, "maximum": 1000}
        }}));
        assert_eq!(
            nested.sql_name(),
            "struct<at:timestamp,tags:array<string>,n:decimal(6,2)>"
        );
        assert_eq!(ty(json!({"type": "integer"})).sql_name(), "bigint");
        assert_eq!(ty(json!({})).sql_name(), "string");
    }

    #[test]
    fn maps_the_type_table() {
        assert_eq!(ty(json!({"type": "integer"})), ColumnType::Integer);
        assert_eq!(ty(json!({"type": ["null", "number"]})), ColumnType::Number);
        assert_eq!(
            ty(json!({"type": ["boolean", "null"]})),
            ColumnType::Boolean
        );
        assert_eq!(ty(json!({"type": "string"})), ColumnType::Text);
        assert_eq!(
            ty(json!({"type": ["string", "null"], "format": "date-time"})),
            ColumnType::Timestamp(TimeUnit::Microsecond)
        );
        assert_eq!(
            ty(json!({"type": "string", "format": "date"})),
            ColumnType::Date
        );
        assert_eq!(
            ty(json!({"type": "string", "format": "time"})),
            ColumnType::Time
        );
        assert_eq!(
            ty(json!({"type": "object", "properties": {}})),
            ColumnType::Json
        );
        assert_eq!(ty(json!({"type": "object"})), ColumnType::Json);
        assert_eq!(ty(json!({})), ColumnType::Json);
        assert_eq!(ty(json!({"type": ["string", "integer"]})), ColumnType::Json);
        assert_eq!(
            ty(json!({"type": ["integer", "number", "null"]})),
            ColumnType::Number
        );
    }

    #[test]
    fn nested_objects_and_arrays_to_any_depth() {
        let s = json!({"type": "object", "properties": {
            "a": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
            "b": {"type": ["null", "object"], "properties": {"c": {"type": "string"}}}}});
        let ColumnType::Struct(fields) = ty(s) else {
            panic!()
        };
        assert_eq!(
            fields[0].ty,
            ColumnType::List(Box::new(ColumnType::List(Box::new(ColumnType::Integer))))
        );
        assert!(matches!(&fields[1].ty, ColumnType::Struct(f) if f[0].ty == ColumnType::Text));
        assert_eq!(
            ty(json!({"type": "array"})),
            ColumnType::List(Box::new(ColumnType::Json))
        );
    }

    #[test]
    fn exact_decimals_from_the_schema() {
        // pipelinewise-style NUMERIC(10,2): multipleOf 0.01, exclusive bound 1e8.
        let s = json!({"type": ["null", "number"], "multipleOf": 0.01, "maximum": 1e8,
                       "exclusiveMaximum": true, "minimum": -1e8, "exclusiveMinimum": true});
        assert_eq!(ty(s), decimal(10, 2));
        assert_eq!(
            ty(json!({"type": "number", "multipleOf": 1e-5})),
            decimal(38, 5)
        );
        assert_eq!(
            ty(json!({"type": "number", "multipleOf": 1, "maximum": 999})),
            decimal(3, 0)
        );
        assert_eq!(
            ty(json!({"type": "number", "multipleOf": 0.5})),
            ColumnType::Number
        );
        assert_eq!(
            ty(json!({"type": "integer", "maximum": 1e30})),
            decimal(31, 0)
        );
        assert_eq!(
            ty(json!({"type": "string", "format": "decimal"})),
            decimal(38, 9)
        );
        assert_eq!(
            ty(json!({"type": "number", "multipleOf": 1e-2, "exclusiveMaximum": 1e60})),
            decimal(62, 2)
        );
        assert!(matches!(
            decimal(62, 2).arrow_type(),
            DataType::Decimal256(62, 2)
        ));
    }

    #[test]
    fn any_of_with_null_is_the_other_type() {
        let s = json!({"anyOf": [{"type": "null"}, {"type": "string", "format": "date"}]});
        assert_eq!(ty(s), ColumnType::Date);
        let s = json!({"anyOf": [{"type": "string", "format": "date-time"}, {"type": ["string", "null"]}]});
        assert_eq!(ty(s), ColumnType::Text);
        let s = json!({"oneOf": [{"type": "integer"}, {"type": "object"}]});
        assert_eq!(ty(s), ColumnType::Json);
    }

    #[test]
    fn type_names_for_overrides() {
        assert_eq!(parse_type_name("Decimal(38, 9)").unwrap(), decimal(38, 9));
        assert_eq!(parse_type_name("decimal(20)").unwrap(), decimal(20, 0));
        assert_eq!(parse_type_name("string").unwrap(), ColumnType::Literal);
        assert!(parse_type_name("decimal(80,2)").is_err());
        assert!(parse_type_name("decimal(5,6)").is_err());
        assert!(parse_type_name("varchar").is_err());
    }

    fn options(case: Option<HeaderCase>) -> TypeOptions {
        TypeOptions {
            header_case: case,
            ..TypeOptions::default()
        }
    }

    #[test]
    fn keeps_property_order_applies_case_and_overrides() {
        let schema = r#"{"properties": {"b": {"type": "integer"}, "A": {"type": "number"}}}"#;
        let mut opts = options(Some(HeaderCase::Upper));
        opts.overrides.insert(
            "s".into(),
            HashMap::from([("A".to_owned(), decimal(20, 4))]),
        );
        let s = StreamSchema::from_json("s", schema, &["b".into()], &opts).unwrap();
        let names: Vec<_> = s.arrow.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["B", "A"]);
        assert_eq!(s.columns[0].name, "b");
        assert_eq!(s.columns[1].ty, decimal(20, 4));
    }

    #[test]
    fn portable_types_store_time_and_wide_decimals_as_text_at_any_depth() {
        let schema = r#"{"properties": {
            "t": {"type": "string", "format": "time"},
            "narrow": {"type": "number", "multipleOf": 0.01, "maximum": 1e35},
            "wide": {"type": "number", "multipleOf": 0.01, "maximum": 1e60},
            "o": {"type": "object", "properties": {"ts": {"type": "array", "items": {"type": "string", "format": "time"}}}},
            "n": {"type": "number"}}}"#;
        let mut opts = TypeOptions {
            portable_types: true,
            ..TypeOptions::default()
        };
        opts.overrides.insert(
            "s".into(),
            HashMap::from([("n".to_owned(), decimal(50, 0))]),
        );
        let s = StreamSchema::from_json("s", schema, &[], &opts).unwrap();
        let text = |inner: ColumnType| ColumnType::AsText(Box::new(inner));
        let types: Vec<&ColumnType> = s.columns.iter().map(|c| &c.ty).collect();
        assert_eq!(types[0], &text(ColumnType::Time));
        assert_eq!(types[1], &decimal(38, 2));
        assert_eq!(types[2], &text(decimal(63, 2)));
        assert_eq!(types[4], &text(decimal(50, 0)));
        assert_eq!(
            s.columns[3].ty.sql_name(),
            "struct<ts:array<string>>",
            "nested times are text too"
        );
        assert_eq!(types[2].expected(), decimal(63, 2).expected());
        let arrow: Vec<String> = s
            .arrow
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect();
        assert_eq!(arrow[..3], ["Utf8", "Decimal128(38, 2)", "Utf8"]);
        // Without the setting, Arrow's own types.
        let arrow_types =
            StreamSchema::from_json("s", schema, &[], &TypeOptions::default()).unwrap();
        assert_eq!(arrow_types.columns[0].ty, ColumnType::Time);
        assert_eq!(arrow_types.columns[2].ty, decimal(63, 2));
    }

    #[test]
    fn json_columns_carry_the_extension_name() {
        let s = StreamSchema::from_json("s", r#"{"properties": {"j": {}}}"#, &[], &options(None))
            .unwrap();
        assert_eq!(s.arrow.field(0).extension_type_name(), Some(JSON_EXTENSION));
    }

    fn flattened(
        schema: &str,
        depth: usize,
        case: Option<HeaderCase>,
    ) -> Result<StreamSchema, String> {
        let opts = TypeOptions {
            flatten_max_depth: depth,
            header_case: case,
            ..TypeOptions::default()
        };
        StreamSchema::from_json("s", schema, &[], &opts)
    }

    fn file_names(s: &StreamSchema) -> Vec<String> {
        s.arrow.fields().iter().map(|f| f.name().clone()).collect()
    }

    const NESTED: &str = r#"{"properties": {"id": {"type": "integer"},
        "a": {"type": ["object", "null"], "properties": {
            "b": {"type": "string"},
            "c": {"type": "object", "properties": {"d": {"type": "integer"}}},
            "free": {"type": "object"}, "list": {"type": "array", "items": {"type": "integer"}}}},
        "z": {"type": "boolean"}}}"#;

    #[test]
    fn flattens_objects_to_the_depth_asked() {
        let off = flattened(NESTED, 0, None).unwrap();
        assert_eq!(file_names(&off), ["id", "a", "z"]);
        let one = flattened(NESTED, 1, None).unwrap();
        assert_eq!(
            file_names(&one),
            ["id", "a__b", "a__c", "a__free", "a__list", "z"]
        );
        assert!(
            matches!(one.arrow.field(2).data_type(), DataType::Struct(f) if f[0].name() == "d")
        );
        assert_eq!(
            one.arrow.field(3).extension_type_name(),
            Some(JSON_EXTENSION)
        );
        let two = flattened(NESTED, 2, Some(HeaderCase::Upper)).unwrap();
        assert_eq!(
            file_names(&two),
            ["ID", "A__B", "A__C__D", "A__FREE", "A__LIST", "Z"]
        );
        assert!(two.columns[1].flattened && two.columns[1].name == "a");
    }

    #[test]
    fn overrides_reach_flattened_columns() {
        let mut opts = TypeOptions {
            flatten_max_depth: 1,
            ..TypeOptions::default()
        };
        let types = HashMap::from([
            ("a__b".to_owned(), ColumnType::Json),
            ("z".to_owned(), ColumnType::Literal),
        ]);
        opts.overrides.insert("s".into(), types);
        let s = StreamSchema::from_json("s", NESTED, &[], &opts).unwrap();
        assert_eq!(s.arrow.field(1).extension_type_name(), Some(JSON_EXTENSION));
        opts.overrides.insert(
            "s".into(),
            HashMap::from([("a".to_owned(), ColumnType::Literal)]),
        );
        let s = StreamSchema::from_json("s", NESTED, &[], &opts).unwrap();
        assert_eq!(file_names(&s), ["id", "a", "z"]);
    }

    #[test]
    fn flattened_names_that_clash_are_refused() {
        let schema = r#"{"properties": {"a__b": {"type": "integer"},
            "a": {"type": "object", "properties": {"b": {"type": "string"}}}}}"#;
        assert!(flattened(schema, 0, None).is_ok());
        let e = flattened(schema, 1, None).unwrap_err();
        assert!(
            e.contains(r#"properties "a__b" and "a.b" both become column "a__b""#),
            "{e}"
        );
        assert!(e.ends_with(r#"or set "flatten_max_depth": 0"#), "{e}");
        let deeper = r#"{"properties": {"a": {"type": "object", "properties": {"b__c": {"type": "integer"},
            "b": {"type": "object", "properties": {"c": {"type": "string"}}}}}}}"#;
        let e = flattened(deeper, 2, None).unwrap_err();
        assert!(e.ends_with(r#"or set "flatten_max_depth": 1"#), "{e}");
        assert!(flattened(deeper, 1, None).is_ok());
        let schema = r#"{"properties": {"A__b": {"type": "integer"},
            "a": {"type": "object", "properties": {"B": {"type": "string"}}}}}"#;
        let e = flattened(schema, 1, Some(HeaderCase::Lower)).unwrap_err();
        assert!(e.contains("column_header_format"), "{e}");
    }

    #[test]
    fn mage_columns_come_last_and_replace_the_streams_own() {
        let schema = r#"{"properties": {"id": {"type": "integer"},
            "_mage_created_at": {"type": "string"}, "name": {"type": "string"}}}"#;
        let mut opts = options(Some(HeaderCase::Upper));
        opts.metadata_columns = true;
        opts.mage_columns = true;
        let s = StreamSchema::from_json("s", schema, &[], &opts).unwrap();
        let names: Vec<_> = s.arrow.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names[..2], ["ID", "NAME"]);
        assert_eq!(
            names[names.len() - 2..],
            ["_MAGE_CREATED_AT", "_MAGE_UPDATED_AT"]
        );
        assert_eq!(names.len(), 2 + METADATA_COLUMNS.len() + 2);
        assert_eq!(s.mage_unit(), Some(TimeUnit::Microsecond));
        let plain = StreamSchema::from_json("s", schema, &[], &TypeOptions::default()).unwrap();
        assert_eq!(file_names(&plain), ["id", "_mage_created_at", "name"]);
        assert_eq!(plain.mage_unit(), None);
        assert!(plain != s);
    }

    #[test]
    fn a_catalog_selects_columns_types_and_keys() {
        let schema = r#"{"properties": {"id": {"type": "integer"},
            "secret": {"type": "string"}, "amount": {"type": "integer"}}}"#;
        let catalog = Catalog::parse(
            r#"{"streams": [{"stream": "s", "schema": {"properties": {
                "id": {"type": "integer"}, "amount": {"type": ["null", "number"]}}}}]}"#,
        )
        .unwrap();
        let opts = TypeOptions {
            catalog: Some(Arc::new(catalog)),
            ..TypeOptions::default()
        };
        let keys = ["id".to_owned(), "secret".to_owned()];
        let s = StreamSchema::from_json("s", schema, &keys, &opts).unwrap();
        assert_eq!(file_names(&s), ["id", "amount"]);
        assert_eq!(s.arrow.field(1).data_type(), &DataType::Float64);
        assert_eq!(s.key_properties, ["id"]);
        let other = StreamSchema::from_json("t", schema, &keys, &opts).unwrap();
        assert_eq!(
            file_names(&other),
            ["id", "secret", "amount"],
            "not in the catalog"
        );
        let none = Catalog::parse(
            r#"{"streams": [{"stream": "s", "schema": {"properties": {"x": {"type": "integer"}}},
                "metadata": [{"breadcrumb": ["properties", "x"], "metadata": {"selected": false}}]}]}"#,
        )
        .unwrap();
        let opts = TypeOptions {
            catalog: Some(Arc::new(none)),
            ..TypeOptions::default()
        };
        let e = StreamSchema::from_json("s", schema, &[], &opts).unwrap_err();
        assert!(e.contains("--catalog_json selects none"), "{e}");
    }

    #[test]
    fn metadata_columns_follow_the_stream_and_replace_its_own() {
        let schema = r#"{"properties": {"id": {"type": "integer"},
            "_sdc_deleted_at": {"type": ["null", "string"]}, "name": {"type": "string"},
            "_sdc_sequence": {"type": "string"}}}"#;
        let mut opts = options(Some(HeaderCase::Upper));
        opts.timestamp_unit = TimeUnit::Millisecond;
        opts.metadata_columns = true;
        let s = StreamSchema::from_json("s", schema, &[], &opts).unwrap();
        let names: Vec<_> = s.arrow.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(
            names,
            [
                "ID",
                "NAME",
                "_SDC_EXTRACTED_AT",
                "_SDC_RECEIVED_AT",
                "_SDC_BATCHED_AT",
                "_SDC_DELETED_AT",
                "_SDC_SEQUENCE",
                "_SDC_TABLE_VERSION"
            ]
        );
        let timestamp = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        for (i, ty) in [(2, &timestamp), (5, &timestamp), (6, &DataType::Int64)] {
            assert_eq!(s.arrow.field(i).data_type(), ty);
        }
        assert_eq!(s.replaced, ["_sdc_sequence"]);
        assert_eq!(s.metadata_unit(), Some(TimeUnit::Millisecond));
        let record: Vec<_> = s.record_columns().into_iter().map(|c| c.name).collect();
        assert_eq!(record, ["id", "name", "_sdc_deleted_at"]);

        let off = StreamSchema::from_json("s", schema, &[], &options(None)).unwrap();
        assert_eq!(off.arrow.fields().len(), 4);
        assert!(off.metadata.is_empty() && off.replaced.is_empty());
        assert_eq!(off.metadata_unit(), None);
        assert_ne!(off, s);
    }

    fn stream(schema: &str) -> StreamSchema {
        StreamSchema::from_json("s", schema, &[], &options(None)).unwrap()
    }

    #[test]
    fn local_refs_are_followed_and_recursive_ones_are_json() {
        let s = stream(
            r##"{"definitions": {"addr": {"type": "object", "properties": {"home": {"type": "integer"}}},
                "rec": {"type": ["null", "array"], "items": {"$ref": "#/definitions/rec"}}},
               "$defs": {"day": {"type": "string", "format": "date"}},
               "properties": {"a": {"$ref": "#/definitions/addr"}, "d": {"$ref": "#/$defs/day"},
                 "r": {"$ref": "#/definitions/rec"}, "x": {"$ref": "http://example.com/s.json"},
                 "n": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/day"}]}}}"##,
        );
        let types: Vec<&ColumnType> = s.columns.iter().map(|c| &c.ty).collect();
        assert!(matches!(types[0], ColumnType::Struct(f) if f[0].ty == ColumnType::Integer));
        assert_eq!(types[1], &ColumnType::Date);
        assert_eq!(types[2], &ColumnType::List(Box::new(ColumnType::Json)));
        assert_eq!(types[3], &ColumnType::Json);
        assert_eq!(types[4], &ColumnType::Date);
        assert_eq!(s.notes.len(), 2, "{:?}", s.notes);
        assert!(s.notes[0].contains("\"#/definitions/rec\" refers to itself"));
        assert!(s.notes[1].contains("cannot be followed"));
        let root = stream(
            r##"{"$ref": "#/definitions/row", "definitions": {"row": {"properties": {"id": {"type": "integer"}}}}}"##,
        );
        assert_eq!(root.columns[0].ty, ColumnType::Integer);
    }

    #[test]
    fn all_of_parts_are_merged() {
        let s = stream(
            r##"{"definitions": {"base": {"type": "object", "properties": {"id": {"type": "integer"}}}},
               "properties": {
                 "t": {"allOf": [{"type": ["string", "null"]}, {"format": "date-time"}]},
                 "o": {"allOf": [{"$ref": "#/definitions/base"},
                                 {"properties": {"name": {"type": "string"}, "id": {"type": ["integer", "null"]}}}]},
                 "clash": {"allOf": [{"type": "string"}, {"type": "integer"}]}}}"##,
        );
        assert_eq!(
            s.columns[0].ty,
            ColumnType::Timestamp(TimeUnit::Microsecond)
        );
        let ColumnType::Struct(fields) = &s.columns[1].ty else {
            panic!("{:?}", s.columns[1].ty)
        };
        let names: Vec<(&str, &ColumnType)> =
            fields.iter().map(|f| (f.name.as_str(), &f.ty)).collect();
        assert_eq!(
            names,
            [("id", &ColumnType::Integer), ("name", &ColumnType::Text)]
        );
        assert_eq!(s.columns[2].ty, ColumnType::Json);
    }

    #[test]
    fn additional_properties_keep_undeclared_fields_and_no_properties_keep_the_record() {
        let s = stream(
            r#"{"additionalProperties": true, "properties": {"id": {"type": "integer"},
                "o": {"type": "object", "additionalProperties": {"type": "string"}, "properties": {"k": {}}},
                "closed": {"type": "object", "additionalProperties": false, "properties": {"k": {}}}}}"#,
        );
        assert_eq!(file_names(&s), ["id", "o", "closed", EXTRA_COLUMN]);
        assert!(matches!(&s.columns[1].ty, ColumnType::Struct(f) if f[1].ty == ColumnType::Extra));
        assert!(matches!(&s.columns[2].ty, ColumnType::Struct(f) if f.len() == 1));
        assert_eq!(
            s.arrow
                .field(3)
                .metadata()
                .get(EXTRA_FIELDS)
                .map(String::as_str),
            Some("true")
        );
        for whole in [r#"{"type": "object"}"#, r#"{"properties": {}}"#] {
            let s = StreamSchema::from_json("s", whole, &["_id".into()], &options(None)).unwrap();
            assert_eq!(file_names(&s), [EXTRA_COLUMN]);
            assert_eq!(s.columns[0].ty, ColumnType::Extra);
        }
    }

    #[test]
    fn rejects_unusable_schemas() {
        let o = options(None);
        let e = StreamSchema::from_json("s", r#"{"properties": {"a": {}}}"#, &["id".into()], &o)
            .unwrap_err();
        assert!(e.contains("\"id\""), "{e}");
        let schema = r#"{"properties": {"Name": {}, "NAME": {}}}"#;
        let e = StreamSchema::from_json("s", schema, &[], &options(Some(HeaderCase::Lower)))
            .unwrap_err();
        assert!(e.contains("\"name\""), "{e}");
    }

    #[test]
    fn equal_schemas_share_their_columns_and_arrow_schema() {
        let mut shared = SharedSchemas::default();
        let one = r#"{"properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}"#;
        let other = r#"{"properties": {"id": {"type": "string"}}}"#;
        let a = shared.share(stream(one));
        let b = shared.share(StreamSchema::from_json("t", one, &[], &options(None)).unwrap());
        let c = shared.share(stream(other));
        assert!(Arc::ptr_eq(&a.columns, &b.columns) && Arc::ptr_eq(&a.arrow, &b.arrow));
        assert_eq!((a.stream.as_str(), b.stream.as_str()), ("s", "t"));
        assert!(!Arc::ptr_eq(&a.columns, &c.columns));
        // Once no stream uses a schema, it is not kept.
        drop((a, b));
        let d = shared.share(stream(one));
        assert_eq!(Arc::strong_count(&d.columns), 1);
    }
}
