//! Sending a commit the library's transactions cannot build (`overwrite`'s replacement
//! snapshot) to the catalog: each catalog kind takes a commit's requirements and updates
//! its own way — a REST catalog as the spec's commit request (`rest`), the pointer
//! catalogs and the SQL catalog by writing the next metadata file and swapping their
//! pointer to it, refused when another writer swapped first.
//!
//! Owns: the `Committer` interface and `stage`, the one place a commit is checked
//! against a table and applied to its metadata for the catalogs that write metadata
//! files themselves. Must not touch: what a commit changes (`overwrite`), or when to
//! commit (`Tables`).

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::table::Table;
use iceberg::{MetadataLocation, Result, Runtime, TableIdent, TableRequirement, TableUpdate};

/// A catalog that takes a commit of requirements and updates on one table. A commit
/// another writer's made stale fails with the retryable `CatalogCommitConflicts`.
#[async_trait]
pub trait Committer: Send + Sync {
    async fn commit(
        &self,
        table: &TableIdent,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Result<()>;
}

/// `table` (as the catalog has it now) with the commit applied: its requirements
/// checked (one another writer's commit broke is a conflict, as a REST catalog's 409
/// is), its updates applied, and the next metadata file's location. Nothing is written.
pub fn stage(
    table: Table,
    requirements: Vec<TableRequirement>,
    updates: Vec<TableUpdate>,
) -> Result<(Table, MetadataLocation)> {
    for requirement in &requirements {
        requirement.check(Some(table.metadata()))?;
    }
    let current = table.metadata_location_result()?.to_owned();
    let mut builder = table.metadata().clone().into_builder(Some(current.clone()));
    for update in updates {
        builder = update.apply(builder)?;
    }
    let metadata = builder.build()?.metadata;
    let next = MetadataLocation::from_str(&current)?
        .with_next_version()
        .with_new_metadata(&metadata);
    let staged = Table::builder()
        .identifier(table.identifier().clone())
        .metadata(Arc::new(metadata))
        .metadata_location(next.to_string())
        .file_io(table.file_io().clone())
        .runtime(Runtime::current())
        .build()?;
    Ok((staged, next))
}
