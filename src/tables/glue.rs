//! Iceberg tables in the AWS Glue Data Catalog (`iceberg_catalog_type: glue`), the
//! layout Athena, EMR, Spark's GlueCatalog and pyiceberg use: a namespace is a Glue
//! database, a table a Glue table of `table_type` `ICEBERG` whose parameter
//! `metadata_location` names its current metadata file (and
//! `previous_metadata_location` the one before). A commit is UpdateTable with the
//! VersionId it read, which Glue refuses (ConcurrentModificationException) when
//! another writer updated the table first.
//!
//! Owns: those requests, and the table's columns as Glue shows them (Hive types of the
//! current schema, for the console and tools that read Glue's columns; Iceberg readers
//! read the metadata file). Must not touch: metadata files (`pointer`).

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_glue::Client;
use aws_sdk_glue::config::http::HttpResponse;
use aws_sdk_glue::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_glue::types::{Column, StorageDescriptor, TableInput};
use iceberg::spec::{PrimitiveType, TableMetadata, Type};
use iceberg::{Error, ErrorKind, NamespaceIdent, Result, TableIdent};

use super::pointer::{Pointer, Pointers, Slot, conflict, one_level, request_failed};

const METADATA_LOCATION: &str = "metadata_location";
const PREVIOUS_METADATA_LOCATION: &str = "previous_metadata_location";
const TABLE_TYPE: &str = "table_type";
const ICEBERG: &str = "ICEBERG";

/// Glue's requests for Iceberg tables under `warehouse` (`s3://bucket/prefix`).
#[derive(Debug)]
pub struct GluePointers {
    client: Client,
    warehouse: String,
    /// The endpoint setting's value, for messages.
    endpoint: Option<String>,
}

impl GluePointers {
    /// A client from the run's AWS configuration, with Glue's own endpoint (never
    /// `aws_endpoint`, which is the data files' store).
    pub fn new(sdk: &SdkConfig, endpoint: Option<String>, warehouse: &str) -> GluePointers {
        let mut config = aws_sdk_glue::config::Builder::from(sdk);
        config.set_endpoint_url(endpoint.clone());
        GluePointers {
            client: Client::from_conf(config.build()),
            warehouse: warehouse.trim_end_matches('/').to_owned(),
            endpoint,
        }
    }

    fn failed<E>(
        &self,
        operation: &str,
        what: &dyn std::fmt::Display,
        e: SdkError<E, HttpResponse>,
    ) -> Error
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        let service = ("Glue", "glue", "AWS Glue");
        request_failed(service, self.endpoint.as_deref(), operation, what, e)
    }
}

/// A namespace's Glue database.
fn database(namespace: &NamespaceIdent) -> Result<&str> {
    one_level(namespace, "Glue")
}

#[async_trait]
impl Pointers for GluePointers {
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        let name = database(namespace)?;
        let exists = crate::glue::database_exists(&self.client, name).await;
        exists.map_err(|e| self.failed("GetDatabase", &format!("database {name:?}"), e))
    }

    async fn create_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        let name = database(namespace)?;
        let description = "Iceberg tables of the streams target-s3 lands";
        let made = crate::glue::create_database(&self.client, name, description).await;
        made.map_err(|e| self.failed("CreateDatabase", &format!("database {name:?}"), e))
    }

    async fn get(&self, ident: &TableIdent) -> Result<Option<Pointer>> {
        let name = database(ident.namespace())?;
        let got = self
            .client
            .get_table()
            .database_name(name)
            .name(ident.name())
            .send()
            .await;
        let table = match got {
            Ok(answer) => answer.table,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(self.failed("GetTable", &format!("table {ident}"), e)),
        };
        let Some(table) = table else { return Ok(None) };
        let mut parameters = table.parameters.unwrap_or_default();
        let kind = parameters.get(TABLE_TYPE).map(String::as_str).unwrap_or("");
        if !kind.eq_ignore_ascii_case(ICEBERG) {
            return Err(Error::new(
                ErrorKind::DataInvalid,
                format!(
                    "Glue table {ident} is not an Iceberg table (its table_type is {kind:?}): pick another table name or database"
                ),
            ));
        }
        let metadata_location = parameters.remove(METADATA_LOCATION);
        for ours in [TABLE_TYPE, PREVIOUS_METADATA_LOCATION] {
            parameters.remove(ours);
        }
        Ok(Some(Pointer {
            metadata_location,
            version: table.version_id,
            kept: parameters,
        }))
    }

    async fn slot(&self, ident: &TableIdent) -> Result<Slot> {
        let name = database(ident.namespace())?;
        Ok(Slot {
            location: format!("{}/{name}/{}", self.warehouse, ident.name()),
            version: None,
        })
    }

    async fn swap(
        &self,
        ident: &TableIdent,
        metadata: &TableMetadata,
        next: &str,
        current: &Pointer,
    ) -> Result<()> {
        let name = database(ident.namespace())?;
        let input = table_input(ident.name(), metadata, next, current)?;
        let Some(previous) = &current.metadata_location else {
            let made = self
                .client
                .create_table()
                .database_name(name)
                .table_input(input)
                .send()
                .await;
            return match made {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_already_exists_exception()) =>
                {
                    Err(conflict(ident, "made at the same time"))
                }
                Err(e) => Err(self.failed("CreateTable", &format!("table {ident}"), e)),
            };
        };
        let updated = self
            .client
            .update_table()
            .database_name(name)
            .table_input(input)
            .set_version_id(current.version.clone())
            // Glue keeps a version of the table per commit otherwise.
            .skip_archive(true)
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_concurrent_modification_exception()) =>
            {
                Err(conflict(
                    ident,
                    format!("its metadata is no longer {previous}"),
                ))
            }
            Err(e) => Err(self.failed("UpdateTable", &format!("table {ident}"), e)),
        }
    }
}

/// The Glue table that points at `next`.
fn table_input(
    name: &str,
    metadata: &TableMetadata,
    next: &str,
    current: &Pointer,
) -> Result<TableInput> {
    let invalid =
        |e: aws_sdk_glue::error::BuildError| Error::new(ErrorKind::DataInvalid, e.to_string());
    let mut columns = Vec::new();
    for field in metadata.current_schema().as_struct().fields() {
        let column = Column::builder()
            .name(&field.name)
            .r#type(hive_type(&field.field_type))
            .set_comment(field.doc.clone())
            .build()
            .map_err(invalid)?;
        columns.push(column);
    }
    let storage = StorageDescriptor::builder()
        .location(metadata.location())
        .set_columns(Some(columns))
        .build();
    // UpdateTable replaces the whole entry: parameters others set are sent back.
    let mut input = TableInput::builder()
        .name(name)
        .table_type("EXTERNAL_TABLE")
        .set_parameters(Some(current.kept.clone()))
        .parameters(TABLE_TYPE, ICEBERG)
        .parameters(METADATA_LOCATION, next)
        .storage_descriptor(storage);
    if let Some(previous) = &current.metadata_location {
        input = input.parameters(PREVIOUS_METADATA_LOCATION, previous);
    }
    input.build().map_err(invalid)
}

/// An Iceberg type as Glue's (Hive's) type name, as Athena and pyiceberg write them.
fn hive_type(ty: &Type) -> String {
    match ty {
        Type::Primitive(p) => match p {
            PrimitiveType::Boolean => "boolean".into(),
            PrimitiveType::Int => "int".into(),
            PrimitiveType::Long => "bigint".into(),
            PrimitiveType::Float => "float".into(),
            PrimitiveType::Double => "double".into(),
            PrimitiveType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            PrimitiveType::Date => "date".into(),
            PrimitiveType::Timestamp
            | PrimitiveType::Timestamptz
            | PrimitiveType::TimestampNs
            | PrimitiveType::TimestamptzNs => "timestamp".into(),
            PrimitiveType::Time | PrimitiveType::String | PrimitiveType::Uuid => "string".into(),
            PrimitiveType::Fixed(_) | PrimitiveType::Binary => "binary".into(),
        },
        Type::Struct(s) => {
            let fields: Vec<String> = s
                .fields()
                .iter()
                .map(|f| format!("{}:{}", f.name, hive_type(&f.field_type)))
                .collect();
            format!("struct<{}>", fields.join(","))
        }
        Type::List(l) => format!("array<{}>", hive_type(&l.element_field.field_type)),
        Type::Map(m) => format!(
            "map<{},{}>",
            hive_type(&m.key_field.field_type),
            hive_type(&m.value_field.field_type)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::{ListType, NestedField, StructType};
    use std::sync::Arc;

    #[test]
    fn iceberg_types_become_hive_types() {
        let address = Type::Struct(StructType::new(vec![
            Arc::new(NestedField::optional(
                3,
                "city",
                PrimitiveType::String.into(),
            )),
            Arc::new(NestedField::optional(4, "zip", PrimitiveType::Long.into())),
        ]));
        let tags = Type::List(ListType::new(Arc::new(NestedField::list_element(
            5,
            PrimitiveType::Decimal {
                precision: 13,
                scale: 2,
            }
            .into(),
            false,
        ))));
        assert_eq!(hive_type(&address), "struct<city:string,zip:bigint>");
        assert_eq!(hive_type(&tags), "array<decimal(13,2)>");
        assert_eq!(hive_type(&PrimitiveType::Timestamptz.into()), "timestamp");
        assert_eq!(hive_type(&PrimitiveType::Time.into()), "string");
    }

    #[test]
    fn a_glue_database_has_one_level() {
        let one = NamespaceIdent::new("lake".into());
        assert_eq!(database(&one).unwrap(), "lake");
        let two = NamespaceIdent::from_strs(["raw", "sales"]).unwrap();
        assert!(
            database(&two)
                .unwrap_err()
                .to_string()
                .contains("one level")
        );
    }
}
