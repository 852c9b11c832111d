//! A stream's columns as an Iceberg schema, and the other way: a table's field ids
//! written into the Arrow schema its Parquet files are encoded with, so every engine
//! finds each column by id (Iceberg's rule), not by name.
//!
//! Owns: the type mapping between the stream's Arrow columns and Iceberg types. Must
//! not touch: the catalog; `tables` decides when a table is made or changed.

use std::sync::Arc;

use arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Schema as ArrowSchema, SchemaRef, TimeUnit,
};
use iceberg::spec::{
    ListType, NestedField, NestedFieldRef, PrimitiveType, Schema, StructType, Type,
};

/// The Arrow field metadata key Parquet writers read a column's field id from.
pub const FIELD_ID: &str = "PARQUET:field_id";

/// The Iceberg schema of a new table for the stream's columns, ids from 1 in order.
pub fn new_table_schema(columns: &ArrowSchema) -> Result<Schema, String> {
    let mut next_id = 0;
    let fields = struct_fields(columns.fields(), &mut next_id)?;
    Schema::builder()
        .with_fields(fields)
        .build()
        .map_err(|e| e.to_string())
}

/// `schema` with the stream's key columns as its identifier fields, where Iceberg
/// allows them: top-level columns of one value, not floats (Iceberg's rule). They are
/// made required, which is safe because records lacking a key value are refused before
/// they reach a file. Also returns why the keys left out are.
pub fn with_identifier_fields(
    schema: Schema,
    keys: &[String],
) -> Result<(Schema, Vec<String>), String> {
    let mut fields: Vec<NestedFieldRef> = schema.as_struct().fields().to_vec();
    let mut ids = Vec::new();
    let mut skipped = Vec::new();
    for key in keys {
        let Some(field) = fields.iter_mut().find(|f| &f.name == key) else {
            skipped.push(format!(
                "key property {key:?} is not one column of the table (an object written as several columns?)"
            ));
            continue;
        };
        match field.field_type.as_ref() {
            Type::Primitive(PrimitiveType::Float | PrimitiveType::Double)
            | Type::Struct(_)
            | Type::List(_)
            | Type::Map(_) => {
                skipped.push(format!(
                    "key property {key:?} is {}, which cannot be an Iceberg identifier field (floats, objects and arrays cannot)",
                    field.field_type
                ));
            }
            Type::Primitive(_) => {
                ids.push(field.id);
                *field = Arc::new(NestedField::required(
                    field.id,
                    &field.name,
                    (*field.field_type).clone(),
                ));
            }
        }
    }
    let schema = Schema::builder()
        .with_fields(fields)
        .with_identifier_field_ids(ids)
        .build()
        .map_err(|e| e.to_string())?;
    Ok((schema, skipped))
}

/// The Iceberg type of one column, or why a table cannot hold it.
pub fn iceberg_type(data_type: &DataType, next_id: &mut i32) -> Result<Type, String> {
    let primitive = match data_type {
        DataType::Boolean => PrimitiveType::Boolean,
        DataType::Int8 | DataType::Int16 | DataType::Int32 => PrimitiveType::Int,
        DataType::Int64 => PrimitiveType::Long,
        DataType::Float16 | DataType::Float32 => PrimitiveType::Float,
        DataType::Float64 => PrimitiveType::Double,
        DataType::Decimal128(precision, scale) if *scale >= 0 => PrimitiveType::Decimal {
            precision: u32::from(*precision),
            scale: *scale as u32,
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => PrimitiveType::String,
        DataType::Binary | DataType::LargeBinary => PrimitiveType::Binary,
        DataType::Date32 => PrimitiveType::Date,
        DataType::Time64(TimeUnit::Microsecond) => PrimitiveType::Time,
        DataType::Timestamp(TimeUnit::Microsecond, zone) => match zone {
            Some(_) => PrimitiveType::Timestamptz,
            None => PrimitiveType::Timestamp,
        },
        DataType::Timestamp(TimeUnit::Nanosecond, zone) => match zone {
            Some(_) => PrimitiveType::TimestamptzNs,
            None => PrimitiveType::TimestampNs,
        },
        DataType::Struct(fields) => {
            return struct_fields(fields, next_id).map(|f| Type::Struct(StructType::new(f)));
        }
        DataType::List(item) | DataType::LargeList(item) => {
            *next_id += 1;
            let id = *next_id;
            let element = iceberg_type(item.data_type(), next_id)?;
            let element = NestedField::list_element(id, element, !item.is_nullable());
            return Ok(Type::List(ListType::new(Arc::new(element))));
        }
        DataType::Decimal256(..) => {
            return Err(
                "a decimal wider than 38 digits (Iceberg's decimals hold 38 at most)".into(),
            );
        }
        other => return Err(format!("the Arrow type {other} (no Iceberg type holds it)")),
    };
    Ok(Type::Primitive(primitive))
}

fn struct_fields(fields: &Fields, next_id: &mut i32) -> Result<Vec<NestedFieldRef>, String> {
    // Ids of one level first, then those of the levels inside, as Iceberg's own
    // writers number them.
    let ids: Vec<i32> = fields
        .iter()
        .map(|_| {
            *next_id += 1;
            *next_id
        })
        .collect();
    fields
        .iter()
        .zip(ids)
        .map(|(field, id)| {
            let field_type = iceberg_type(field.data_type(), next_id)
                .map_err(|e| format!("column {:?}: {e}", field.name()))?;
            Ok(Arc::new(NestedField::optional(
                id,
                field.name(),
                field_type,
            )))
        })
        .collect()
}

/// Refuses columns whose type the table cannot take: files of the stream must hold
/// each column in the table's type or one it widens (int in long, float in double, a
/// decimal of the same scale and no more digits), as Iceberg readers promote.
pub fn check_types(columns: &SchemaRef, table: &Schema) -> Result<(), String> {
    for field in columns.fields() {
        let Some(column) = table.field_by_name(field.name()) else {
            continue;
        };
        let ours = iceberg_type(field.data_type(), &mut 0)
            .map_err(|e| format!("column {:?}: {e}", field.name()))?;
        if !fits(&ours, &column.field_type) {
            return Err(format!(
                "column {:?} is {} in the table, and the stream's SCHEMA now makes it {ours}; Iceberg cannot change a column's type so (give it another name, or use column_types to keep the table's type)",
                field.name(),
                column.field_type
            ));
        }
    }
    Ok(())
}

/// Whether values of type `ours` can be written into a column of type `theirs`.
fn fits(ours: &Type, theirs: &Type) -> bool {
    use PrimitiveType as P;
    match (ours, theirs) {
        (Type::Primitive(a), Type::Primitive(b)) => match (a, b) {
            (P::Int, P::Long) | (P::Float, P::Double) => true,
            (
                P::Decimal {
                    precision: p1,
                    scale: s1,
                },
                P::Decimal {
                    precision: p2,
                    scale: s2,
                },
            ) => s1 == s2 && p1 <= p2,
            _ => a == b,
        },
        (Type::Struct(a), Type::Struct(b)) => a.fields().iter().all(|field| {
            b.field_by_name(&field.name)
                .is_some_and(|column| fits(&field.field_type, &column.field_type))
        }),
        (Type::List(a), Type::List(b)) => {
            fits(&a.element_field.field_type, &b.element_field.field_type)
        }
        _ => false,
    }
}

/// The stream's columns with the table's field id on every field, nested ones too.
/// Columns the table lacks are named in the error, for the caller to add them first.
pub fn with_field_ids(columns: &SchemaRef, table: &Schema) -> Result<SchemaRef, Vec<String>> {
    let mut missing = Vec::new();
    let fields: Vec<FieldRef> = columns
        .fields()
        .iter()
        .filter_map(|field| match table.field_by_name(field.name()) {
            Some(column) => Some(numbered(field, column)),
            None => {
                missing.push(field.name().clone());
                None
            }
        })
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(Arc::new(ArrowSchema::new_with_metadata(
        fields,
        columns.metadata().clone(),
    )))
}

/// `field` carrying `column`'s id, its children carrying theirs (matched by name in
/// structs, the element in lists). A child the table lacks keeps no id.
fn numbered(field: &FieldRef, column: &NestedField) -> FieldRef {
    let data_type = match (field.data_type(), column.field_type.as_ref()) {
        (DataType::Struct(children), Type::Struct(table)) => DataType::Struct(
            children
                .iter()
                .map(|child| match table.field_by_name(child.name()) {
                    Some(c) => numbered(child, c),
                    None => child.clone(),
                })
                .collect(),
        ),
        (DataType::List(item), Type::List(list)) => {
            DataType::List(numbered(item, &list.element_field))
        }
        (DataType::LargeList(item), Type::List(list)) => {
            DataType::LargeList(numbered(item, &list.element_field))
        }
        (other, _) => other.clone(),
    };
    let mut metadata = field.metadata().clone();
    // Iceberg has no JSON type (such a column is a `string` in the table), and readers that
    // turn a data file's Arrow schema into Iceberg's (pyiceberg) refuse the extension.
    metadata.retain(|key, _| !key.starts_with("ARROW:extension:"));
    metadata.insert(FIELD_ID.to_string(), column.id.to_string());
    Arc::new(Field::new(field.name(), data_type, field.is_nullable()).with_metadata(metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> SchemaRef {
        let address = Fields::from(vec![
            Field::new("city", DataType::Utf8, true),
            Field::new("zip", DataType::Int64, true),
        ]);
        Arc::new(ArrowSchema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("price", DataType::Decimal128(12, 2), true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
            Field::new("address", DataType::Struct(address), true),
        ]))
    }

    #[test]
    fn keys_become_required_identifier_fields_where_iceberg_allows() {
        let schema = new_table_schema(&columns()).unwrap();
        let keys = ["id", "at", "address", "gone"].map(String::from);
        let (schema, skipped) = with_identifier_fields(schema, &keys).unwrap();
        let ids: Vec<i32> = schema.identifier_field_ids().collect();
        let named = |name: &str| schema.field_by_name(name).unwrap().clone();
        assert_eq!(
            ids.iter()
                .copied()
                .collect::<std::collections::BTreeSet<_>>(),
            [named("id").id, named("at").id].into()
        );
        assert!(named("id").required && named("at").required);
        assert!(!named("address").required && !named("price").required);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(skipped[0].contains("\"address\"") && skipped[1].contains("\"gone\""));
    }

    #[test]
    fn columns_become_an_iceberg_schema_with_ids_level_by_level() {
        let schema = new_table_schema(&columns()).unwrap();
        let ids: Vec<(i32, String)> = schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| (f.id, format!("{}", f.field_type)))
            .collect();
        assert_eq!(ids[0], (1, "long".into()));
        assert_eq!(ids[1], (2, "decimal(12, 2)".into()));
        assert_eq!(ids[2], (3, "timestamptz".into()));
        assert_eq!(ids[3].0, 4);
        assert_eq!(ids[4].0, 5);
        let Type::List(tags) = schema.field_by_name("tags").unwrap().field_type.as_ref() else {
            panic!("tags is a list")
        };
        assert_eq!(tags.element_field.id, 6);
        assert!(schema.field_by_name("address.zip").is_some());
        assert_eq!(schema.highest_field_id(), 8);
    }

    #[test]
    fn field_ids_reach_every_level_of_the_parquet_schema() {
        let arrow = columns();
        let table = new_table_schema(&arrow).unwrap();
        let numbered = with_field_ids(&arrow, &table).unwrap();
        let id = |f: &Field| f.metadata().get(FIELD_ID).cloned().unwrap();
        assert_eq!(id(numbered.field(0)), "1");
        let DataType::List(item) = numbered.field(3).data_type() else {
            panic!()
        };
        assert_eq!(id(item), "6");
        let DataType::Struct(children) = numbered.field(4).data_type() else {
            panic!()
        };
        assert_eq!(id(&children[1]), "8");
        let converted = parquet::arrow::ArrowSchemaConverter::new()
            .convert(&numbered)
            .unwrap();
        let leaves: Vec<i32> = converted
            .columns()
            .iter()
            .map(|c| c.self_type().get_basic_info().id())
            .collect();
        assert_eq!(leaves, vec![1, 2, 3, 6, 7, 8]);
    }

    #[test]
    fn only_types_the_table_can_take_are_written() {
        let table = new_table_schema(&columns()).unwrap();
        let with = |name: &str, data_type: DataType| {
            let mut fields: Vec<Field> = columns()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            let at = fields.iter().position(|f| f.name() == name).unwrap();
            fields[at] = Field::new(name, data_type, true);
            Arc::new(ArrowSchema::new(fields))
        };
        assert!(check_types(&columns(), &table).is_ok());
        assert!(check_types(&with("price", DataType::Decimal128(10, 2)), &table).is_ok());
        assert!(check_types(&with("id", DataType::Int32), &table).is_ok());
        let e = check_types(&with("price", DataType::Decimal128(20, 2)), &table).unwrap_err();
        assert!(
            e.contains("\"price\" is decimal(12, 2) in the table"),
            "{e}"
        );
        assert!(check_types(&with("price", DataType::Decimal128(12, 3)), &table).is_err());
        let e = check_types(&with("id", DataType::Utf8), &table).unwrap_err();
        assert!(e.contains("now makes it string"), "{e}");
    }

    #[test]
    fn a_column_the_table_lacks_is_named_and_wide_decimals_are_refused() {
        let arrow = columns();
        let table = new_table_schema(&ArrowSchema::new(vec![arrow.field(0).clone()])).unwrap();
        assert_eq!(
            with_field_ids(&arrow, &table).unwrap_err(),
            vec!["price", "at", "tags", "address"]
        );
        let wide = ArrowSchema::new(vec![Field::new("d", DataType::Decimal256(60, 2), true)]);
        let e = new_table_schema(&wide).unwrap_err();
        assert!(e.contains("column \"d\"") && e.contains("38"), "{e}");
    }
}
