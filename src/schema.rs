//! JSON Schema to columns: a stream's SCHEMA message becomes an ordered list of typed
//! columns and the Arrow schema every object of that stream is written with.
//!
//! Owns: the type table of SPEC §6 and the column names as they appear in files.
//! Must not touch: record values. Columns come from the schema alone, never from data,
//! so every batch of a stream has the same columns and types.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::{Map, Value};

use crate::config::HeaderCase;

/// The logical type of a column, chosen from its JSON Schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Integer,
    Number,
    Boolean,
    Text,
    /// `string` with `format: date-time`: microseconds since the epoch, UTC.
    Timestamp,
    /// `string` with `format: date`: days since the epoch.
    Date,
    /// `string` with `format: time`: microseconds since midnight.
    Time,
    /// Objects, arrays, `{}` and mixed types: the value's compact JSON text.
    Json,
}

impl ColumnType {
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Integer => DataType::Int64,
            ColumnType::Number => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Text | ColumnType::Json => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::Date => DataType::Date32,
            ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
        }
    }

    /// What a record value must look like, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            ColumnType::Integer => "an integer",
            ColumnType::Number => "a number",
            ColumnType::Boolean => "true or false",
            ColumnType::Text => "a string",
            ColumnType::Timestamp => "an RFC 3339 date-time string",
            ColumnType::Date => "a date string YYYY-MM-DD",
            ColumnType::Time => "a time string HH:MM:SS[.ffffff]",
            ColumnType::Json => "any JSON value",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The property name as records carry it.
    pub name: String,
    /// The name written into files (after `column_header_format`).
    pub output_name: String,
    pub ty: ColumnType,
}

/// A stream's columns, in the schema's property order.
#[derive(Debug, Clone)]
pub struct StreamSchema {
    pub columns: Vec<Column>,
    pub key_properties: Vec<String>,
    pub arrow: SchemaRef,
}

impl PartialEq for StreamSchema {
    fn eq(&self, other: &Self) -> bool {
        self.columns == other.columns && self.key_properties == other.key_properties
    }
}

impl StreamSchema {
    /// Builds the columns of a SCHEMA message's `schema` object.
    pub fn from_json(
        schema: &str,
        key_properties: &[String],
        case: Option<HeaderCase>,
    ) -> Result<StreamSchema, String> {
        let schema: Value =
            serde_json::from_str(schema).map_err(|e| format!("schema is not valid JSON: {e}"))?;
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty())
            .ok_or("SCHEMA has no properties; expected \"schema\": {\"properties\": {...}}")?;
        let columns = columns_of(properties, case)?;
        for key in key_properties {
            if !properties.contains_key(key) {
                return Err(format!(
                    "key property {key:?} is not among the schema's properties"
                ));
            }
        }
        let fields: Vec<Field> = columns
            .iter()
            .map(|c| Field::new(&c.output_name, c.ty.arrow_type(), true))
            .collect();
        Ok(StreamSchema {
            columns,
            key_properties: key_properties.to_vec(),
            arrow: Arc::new(Schema::new(fields)),
        })
    }
}

fn columns_of(
    properties: &Map<String, Value>,
    case: Option<HeaderCase>,
) -> Result<Vec<Column>, String> {
    let mut seen = HashSet::new();
    properties
        .iter()
        .map(|(name, property)| {
            let output_name = case.map_or_else(|| name.clone(), |c| c.apply(name));
            if !seen.insert(output_name.clone()) {
                return Err(format!(
                    "two properties become column {output_name:?} after column_header_format; rename one in the tap or drop the setting"
                ));
            }
            Ok(Column {
                name: name.clone(),
                output_name,
                ty: column_type(property),
            })
        })
        .collect()
}

/// The column type of one property schema. Null alternatives only make it nullable
/// (every column is); anything that cannot be one typed column is kept as JSON text.
pub fn column_type(property: &Value) -> ColumnType {
    let Some(object) = property.as_object() else {
        return ColumnType::Json;
    };
    if let Some(alternatives) = object
        .get("anyOf")
        .or_else(|| object.get("oneOf"))
        .and_then(Value::as_array)
    {
        let types = alternatives
            .iter()
            .filter(|alt| !is_null_only(alt))
            .map(column_type);
        return merge(types);
    }
    let format = object.get("format").and_then(Value::as_str);
    let types = match object.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return ColumnType::Json,
    };
    merge(
        types
            .into_iter()
            .filter(|t| *t != "null")
            .map(|t| single_type(t, format)),
    )
}

fn single_type(name: &str, format: Option<&str>) -> ColumnType {
    match (name, format) {
        ("integer", _) => ColumnType::Integer,
        ("number", _) => ColumnType::Number,
        ("boolean", _) => ColumnType::Boolean,
        ("string", Some("date-time")) => ColumnType::Timestamp,
        ("string", Some("date")) => ColumnType::Date,
        ("string", Some("time")) => ColumnType::Time,
        ("string", _) => ColumnType::Text,
        _ => ColumnType::Json,
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
    let is_string = |t: ColumnType| {
        matches!(
            t,
            ColumnType::Text | ColumnType::Timestamp | ColumnType::Date | ColumnType::Time
        )
    };
    let is_numeric = |t: ColumnType| matches!(t, ColumnType::Integer | ColumnType::Number);
    types
        .reduce(|a, b| match (a, b) {
            _ if a == b => a,
            _ if is_string(a) && is_string(b) => ColumnType::Text,
            _ if is_numeric(a) && is_numeric(b) => ColumnType::Number,
            _ => ColumnType::Json,
        })
        .unwrap_or(ColumnType::Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(schema: Value) -> ColumnType {
        column_type(&schema)
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
            ColumnType::Timestamp
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
        assert_eq!(
            ty(json!({"type": "array", "items": {"type": "string"}})),
            ColumnType::Json
        );
        assert_eq!(ty(json!({})), ColumnType::Json);
        assert_eq!(ty(json!({"type": ["string", "integer"]})), ColumnType::Json);
        assert_eq!(
            ty(json!({"type": ["integer", "number", "null"]})),
            ColumnType::Number
        );
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
    fn keeps_property_order_and_applies_case() {
        let schema = r#"{"properties": {"b": {"type": "integer"}, "A": {"type": "string"}}}"#;
        let s = StreamSchema::from_json(schema, &["b".into()], Some(HeaderCase::Upper)).unwrap();
        let names: Vec<_> = s.arrow.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["B", "A"]);
        assert_eq!(s.columns[0].name, "b");
    }

    #[test]
    fn rejects_unusable_schemas() {
        let e = StreamSchema::from_json(r#"{"type": "object"}"#, &[], None).unwrap_err();
        assert!(e.contains("no properties"), "{e}");
        let e = StreamSchema::from_json(r#"{"properties": {"a": {}}}"#, &["id".into()], None)
            .unwrap_err();
        assert!(e.contains("\"id\""), "{e}");
        let schema = r#"{"properties": {"Name": {}, "NAME": {}}}"#;
        let e = StreamSchema::from_json(schema, &[], Some(HeaderCase::Lower)).unwrap_err();
        assert!(e.contains("\"name\""), "{e}");
    }
}
