//! Iceberg tables in an Amazon S3 Tables table bucket (`iceberg_catalog_type:
//! s3tables`, `iceberg_warehouse` the bucket's ARN). The service makes each table and
//! decides where it lives (its warehouse location, a bucket of its own); the client
//! writes the metadata files there and sets the table's metadata location with the
//! version token it read (UpdateTableMetadataLocation), which the service refuses with
//! a conflict when another writer set it first. A metadata file that lost such a race
//! is left to the service's own removal of unreferenced files (its buckets refuse
//! DeleteObject).
//!
//! Owns: those requests. Must not touch: metadata files (`pointer`).

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3tables::Client;
use aws_sdk_s3tables::config::http::HttpResponse;
use aws_sdk_s3tables::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3tables::types::OpenTableFormat;
use iceberg::spec::TableMetadata;
use iceberg::{Error, ErrorKind, NamespaceIdent, Result, TableIdent};

use super::pointer::{Pointer, Pointers, Slot, conflict, one_level, request_failed};

/// S3 Tables' requests for the tables of one table bucket.
#[derive(Debug)]
pub struct S3TablesPointers {
    client: Client,
    bucket_arn: String,
    endpoint: Option<String>,
}

impl S3TablesPointers {
    /// A client from the run's AWS configuration, with S3 Tables' own endpoint (never
    /// `aws_endpoint`, which is the data files' store).
    pub fn new(sdk: &SdkConfig, endpoint: Option<String>, bucket_arn: &str) -> S3TablesPointers {
        let mut config = aws_sdk_s3tables::config::Builder::from(sdk);
        config.set_endpoint_url(endpoint.clone());
        S3TablesPointers {
            client: Client::from_conf(config.build()),
            bucket_arn: bucket_arn.to_owned(),
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
        let service = ("S3 Tables", "s3tables", "Amazon S3 Tables");
        request_failed(service, self.endpoint.as_deref(), operation, what, e)
    }

    /// The table's metadata location (None before its first), version token and
    /// warehouse location; None when there is no such table. GetTableMetadataLocation
    /// rather than GetTable: it answers all three and needs one permission less.
    async fn entry(&self, ident: &TableIdent) -> Result<Option<(Pointer, String)>> {
        let namespace = one_level(ident.namespace(), "S3 Tables")?;
        let got = self
            .client
            .get_table_metadata_location()
            .table_bucket_arn(&self.bucket_arn)
            .namespace(namespace)
            .name(ident.name())
            .send()
            .await;
        match got {
            Ok(answer) => Ok(Some((
                Pointer {
                    metadata_location: answer.metadata_location,
                    version: Some(answer.version_token),
                    kept: Default::default(),
                },
                answer.warehouse_location,
            ))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.failed("GetTableMetadataLocation", &format!("table {ident}"), e)),
        }
    }
}

#[async_trait]
impl Pointers for S3TablesPointers {
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        let name = one_level(namespace, "S3 Tables")?;
        let got = self
            .client
            .get_namespace()
            .table_bucket_arn(&self.bucket_arn)
            .namespace(name)
            .send()
            .await;
        match got {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.failed("GetNamespace", &format!("namespace {name:?}"), e)),
        }
    }

    async fn create_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        let name = one_level(namespace, "S3 Tables")?;
        let made = self
            .client
            .create_namespace()
            .table_bucket_arn(&self.bucket_arn)
            .namespace(name)
            .send()
            .await;
        match made {
            Ok(_) => {
                tracing::info!("S3 Tables: made namespace {name:?}");
                Ok(())
            }
            // Made by another writer meanwhile.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(self.failed("CreateNamespace", &format!("namespace {name:?}"), e)),
        }
    }

    async fn get(&self, ident: &TableIdent) -> Result<Option<Pointer>> {
        Ok(self.entry(ident).await?.map(|(pointer, _)| pointer))
    }

    async fn slot(&self, ident: &TableIdent) -> Result<Slot> {
        let namespace = one_level(ident.namespace(), "S3 Tables")?;
        let made = self
            .client
            .create_table()
            .table_bucket_arn(&self.bucket_arn)
            .namespace(namespace)
            .name(ident.name())
            .format(OpenTableFormat::Iceberg)
            .send()
            .await;
        if let Err(e) = made
            && !e
                .as_service_error()
                .is_some_and(|s| s.is_conflict_exception())
        {
            return Err(self.failed("CreateTable", &format!("table {ident}"), e));
        }
        // The service chose the location: ask where. A table that was there already
        // is taken only if it has no metadata file yet (made by a writer that stopped
        // before its first); if two writers take it, one's first swap loses.
        let (pointer, location) = match self.entry(ident).await? {
            Some((pointer, _)) if pointer.metadata_location.is_some() => {
                return Err(conflict(ident, "made at the same time"));
            }
            Some(found) => found,
            None => {
                return Err(Error::new(
                    ErrorKind::Unexpected,
                    format!("S3 Tables: table {ident} is gone right after CreateTable"),
                ));
            }
        };
        Ok(Slot {
            location: location.trim_end_matches('/').to_owned(),
            version: pointer.version,
        })
    }

    async fn swap(
        &self,
        ident: &TableIdent,
        _metadata: &TableMetadata,
        next: &str,
        current: &Pointer,
    ) -> Result<()> {
        let namespace = one_level(ident.namespace(), "S3 Tables")?;
        let updated = self
            .client
            .update_table_metadata_location()
            .table_bucket_arn(&self.bucket_arn)
            .namespace(namespace)
            .name(ident.name())
            .set_version_token(current.version.clone())
            .metadata_location(next)
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) =>
            {
                Err(conflict(ident, "its version token changed"))
            }
            Err(e) => Err(self.failed("UpdateTableMetadataLocation", &format!("table {ident}"), e)),
        }
    }

    fn deletes_unused_files(&self) -> bool {
        false
    }
}
