//! Catalogs that keep only a pointer per table (AWS Glue, S3 Tables): the catalog
//! stores the location of the table's current metadata file, and the client writes
//! every metadata file itself and swaps the pointer, answered "conflict" when another
//! writer swapped it first. One `iceberg::Catalog` over a small `Pointers` trait that
//! each service implements, instead of the Iceberg project's Glue and S3 Tables crates,
//! which would build a second S3 stack into the binary.
//!
//! Owns: making a table's first metadata file, reading the current one, and a commit:
//! load the current table, check the commit's requirements and apply its updates
//! (`commit::stage`, for the library's transactions and overwrite's alike), write the next
//! metadata file, swap the pointer. A lost race is the library's retryable
//! `CatalogCommitConflicts`, so the transaction refreshes and tries again; its unused
//! metadata file is deleted. Must not touch: the services' requests (`glue`,
//! `s3tables`), what a commit changes (the caller's transaction).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_glue::config::http::HttpResponse;
use aws_sdk_glue::error::{ProvideErrorMetadata, SdkError};
use iceberg::io::{FileIO, FileIOBuilder, StorageFactory};
use iceberg::spec::{TableMetadata, TableMetadataBuilder};
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, MetadataLocation, Namespace, NamespaceIdent, Result, Runtime,
    TableCommit, TableCreation, TableIdent, TableRequirement, TableUpdate,
};

use super::commit::{Committer, stage};
use crate::glue::{Service, failure_reason};

/// A table's entry in a pointer catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// Where the current metadata file is; None for a table made but not yet given one
    /// (S3 Tables between CreateTable and the first UpdateTableMetadataLocation).
    pub metadata_location: Option<String>,
    /// What the swap must name to succeed (Glue's VersionId, S3 Tables' versionToken).
    pub version: Option<String>,
    /// The entry's other properties, kept by a swap (Glue's table parameters that
    /// others set: a classification, an owner, Lake Formation's).
    pub kept: HashMap<String, String>,
}

/// A new table's place: its location, and the version its first swap names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub location: String,
    pub version: Option<String>,
}

/// The requests a pointer catalog answers.
#[async_trait]
pub trait Pointers: Debug + Send + Sync {
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool>;
    async fn create_namespace(&self, namespace: &NamespaceIdent) -> Result<()>;
    /// The table's entry; None when there is no such table.
    async fn get(&self, table: &TableIdent) -> Result<Option<Pointer>>;
    /// Where a new table goes (S3 Tables makes the table here and says where, or
    /// hands back one made before that has no metadata file yet).
    async fn slot(&self, table: &TableIdent) -> Result<Slot>;
    /// Points the table at `next`, if its entry is still `current`'s version (None:
    /// the table is new, made from `slot`). Another writer's swap first: a retryable
    /// `CatalogCommitConflicts`.
    async fn swap(
        &self,
        table: &TableIdent,
        metadata: &TableMetadata,
        next: &str,
        current: &Pointer,
    ) -> Result<()>;
    /// Whether a metadata file that lost a race is deleted by the client (S3 Tables
    /// refuses deletions in its buckets and removes unreferenced files itself).
    fn deletes_unused_files(&self) -> bool {
        true
    }
}

/// An `iceberg::Catalog` over a pointer service, its files read and written through
/// the target's own storage.
#[derive(Debug)]
pub struct PointerCatalog<P: Pointers> {
    pointers: P,
    file_io: FileIO,
    runtime: Runtime,
}

/// A lost race: the transaction refreshes the table and tries again.
pub fn conflict(table: &TableIdent, detail: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::CatalogCommitConflicts,
        format!("table {table} was changed by another writer: {detail}"),
    )
    .with_retryable(true)
}

/// A service's request that failed, as the library's error: `<name> <operation> <what>
/// failed: <why>` (the code and message, the permission an AccessDenied asks for, or
/// why no answer came from `endpoint`, AWS's when None). `service` is the name, the
/// IAM prefix and the name of AWS's endpoint.
pub fn request_failed<E>(
    service: (&str, &str, &str),
    endpoint: Option<&str>,
    operation: &str,
    what: &dyn std::fmt::Display,
    e: SdkError<E, HttpResponse>,
) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let (name, iam, aws) = service;
    let service = Service {
        iam,
        endpoint: endpoint.unwrap_or(aws),
        setting: "iceberg_catalog_uri",
    };
    let reason = failure_reason(&service, operation, e);
    Error::new(
        ErrorKind::Unexpected,
        format!("{name} {operation} {what} failed: {reason}"),
    )
}

/// A namespace's one name: Glue databases and S3 Tables namespaces have one level.
pub fn one_level<'n>(namespace: &'n NamespaceIdent, service: &str) -> Result<&'n str> {
    match namespace.as_ref().as_slice() {
        [name] => Ok(name),
        _ => Err(Error::new(
            ErrorKind::DataInvalid,
            format!(
                "{service} namespaces have one level, not {namespace}: name one in iceberg_namespace"
            ),
        )),
    }
}

fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::FeatureUnsupported,
        format!("target-s3's catalog client does not {what}"),
    )
}

fn not_found(table: &TableIdent) -> Error {
    Error::new(
        ErrorKind::TableNotFound,
        format!("table {table} does not exist"),
    )
}

impl<P: Pointers> PointerCatalog<P> {
    /// Must be called inside the Tokio runtime that runs the commits.
    pub fn new(pointers: P, storage: Arc<dyn StorageFactory>) -> PointerCatalog<P> {
        PointerCatalog {
            pointers,
            file_io: FileIOBuilder::new(storage).build(),
            runtime: Runtime::current(),
        }
    }

    fn table(&self, ident: &TableIdent, metadata: TableMetadata, at: String) -> Result<Table> {
        Table::builder()
            .identifier(ident.clone())
            .metadata(metadata)
            .metadata_location(at)
            .file_io(self.file_io.clone())
            .runtime(self.runtime.clone())
            .build()
    }

    /// The table as its entry says now, with the entry.
    async fn current(&self, ident: &TableIdent) -> Result<(Table, Pointer)> {
        let pointer = self
            .pointers
            .get(ident)
            .await?
            .ok_or_else(|| not_found(ident))?;
        let Some(at) = pointer.metadata_location.clone() else {
            return Err(Error::new(
                ErrorKind::DataInvalid,
                format!(
                    "table {ident} has no metadata file yet (made by a writer that stopped before its first commit?)"
                ),
            ));
        };
        let metadata = TableMetadata::read_from(&self.file_io, &at).await?;
        Ok((self.table(ident, metadata, at)?, pointer))
    }

    /// Writes `metadata` at `at` and points the table at it; a metadata file the
    /// pointer never named (a lost race) is deleted, as nobody will read it.
    async fn write_and_swap(
        &self,
        ident: &TableIdent,
        metadata: &TableMetadata,
        at: &MetadataLocation,
        current: &Pointer,
    ) -> Result<()> {
        metadata.write_to(&self.file_io, at).await?;
        let swapped = self
            .pointers
            .swap(ident, metadata, &at.to_string(), current)
            .await;
        // Only a sure refusal: after an unclear failure (a timeout) the pointer may
        // name the file.
        if let Err(e) = &swapped
            && e.kind() == ErrorKind::CatalogCommitConflicts
        {
            tracing::info!(
                "table {ident}: another writer committed first; trying again on its table"
            );
            if !self.pointers.deletes_unused_files() {
                return swapped;
            }
            if let Err(left) = self.file_io.delete(at.to_string()).await {
                tracing::warn!(
                    "table {ident}: could not delete the unused metadata file {at}: {left}"
                );
            }
        }
        swapped
    }
}

impl<P: Pointers> PointerCatalog<P> {
    /// A commit: checked against and applied to the table as it is now, its metadata
    /// file written and the pointer swapped to it.
    async fn apply(
        &self,
        ident: &TableIdent,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Result<Table> {
        let (table, pointer) = self.current(ident).await?;
        let (staged, at) = stage(table, requirements, updates)?;
        self.write_and_swap(ident, staged.metadata(), &at, &pointer)
            .await?;
        Ok(staged)
    }
}

#[async_trait]
impl<P: Pointers> Catalog for PointerCatalog<P> {
    async fn list_namespaces(&self, _: Option<&NamespaceIdent>) -> Result<Vec<NamespaceIdent>> {
        Err(unsupported("list namespaces"))
    }

    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        self.pointers.create_namespace(namespace).await?;
        Ok(Namespace::with_properties(namespace.clone(), properties))
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        match self.pointers.namespace_exists(namespace).await? {
            true => Ok(Namespace::new(namespace.clone())),
            false => Err(Error::new(
                ErrorKind::NamespaceNotFound,
                format!("namespace {namespace} does not exist"),
            )),
        }
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        self.pointers.namespace_exists(namespace).await
    }

    async fn update_namespace(&self, _: &NamespaceIdent, _: HashMap<String, String>) -> Result<()> {
        Err(unsupported("change namespaces"))
    }

    async fn drop_namespace(&self, _: &NamespaceIdent) -> Result<()> {
        Err(unsupported("drop namespaces"))
    }

    async fn list_tables(&self, _: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        Err(unsupported("list tables"))
    }

    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        mut creation: TableCreation,
    ) -> Result<Table> {
        let ident = TableIdent::new(namespace.clone(), creation.name.clone());
        let slot = self.pointers.slot(&ident).await?;
        creation.location = Some(slot.location.clone());
        let metadata = TableMetadataBuilder::from_table_creation(creation)?
            .build()?
            .metadata;
        let at = MetadataLocation::new_with_metadata(&slot.location, &metadata);
        let new = Pointer {
            metadata_location: None,
            version: slot.version,
            kept: HashMap::new(),
        };
        self.write_and_swap(&ident, &metadata, &at, &new).await?;
        self.table(&ident, metadata, at.to_string())
    }

    async fn load_table(&self, table: &TableIdent) -> Result<Table> {
        Ok(self.current(table).await?.0)
    }

    async fn drop_table(&self, _: &TableIdent) -> Result<()> {
        Err(unsupported("drop tables"))
    }

    async fn purge_table(&self, _: &TableIdent) -> Result<()> {
        Err(unsupported("purge tables"))
    }

    /// A table made but never given a metadata file (a writer stopped in between) does
    /// not exist yet: making it again finishes the job (see `Pointers::slot`).
    async fn table_exists(&self, table: &TableIdent) -> Result<bool> {
        let pointer = self.pointers.get(table).await?;
        Ok(pointer.is_some_and(|p| p.metadata_location.is_some()))
    }

    async fn rename_table(&self, _: &TableIdent, _: &TableIdent) -> Result<()> {
        Err(unsupported("rename tables"))
    }

    async fn register_table(&self, _: &TableIdent, _: String) -> Result<Table> {
        Err(unsupported("register tables"))
    }

    async fn update_table(&self, mut commit: TableCommit) -> Result<Table> {
        let ident = commit.identifier().clone();
        let (requirements, updates) = (commit.take_requirements(), commit.take_updates());
        self.apply(&ident, requirements, updates).await
    }
}

#[async_trait]
impl<P: Pointers> Committer for PointerCatalog<P> {
    async fn commit(
        &self,
        table: &TableIdent,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Result<()> {
        self.apply(table, requirements, updates).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use iceberg::io::MemoryStorageFactory;
    use iceberg::spec::{
        DataContentType, DataFile, DataFileBuilder, DataFileFormat, ManifestStatus, NestedField,
        Operation, PrimitiveType, Schema, Struct,
    };
    use iceberg::transaction::{ApplyTransactionAction, Transaction};

    use super::*;
    use crate::tables::overwrite::replacement;

    /// A pointer service in memory that checks versions as Glue and S3 Tables do, and
    /// can let "another writer" move a table's version before the next swap.
    #[derive(Debug, Default)]
    struct Fake {
        tables: Mutex<HashMap<String, Pointer>>,
        /// Swaps to lose to another writer before one is let through.
        races: Mutex<u32>,
        /// Metadata files of swaps that lost.
        lost: Mutex<Vec<String>>,
        counter: Mutex<u64>,
    }

    impl Fake {
        fn next_version(&self) -> Option<String> {
            let mut counter = self.counter.lock().unwrap();
            *counter += 1;
            Some(counter.to_string())
        }
    }

    #[async_trait]
    impl Pointers for Fake {
        async fn namespace_exists(&self, _: &NamespaceIdent) -> Result<bool> {
            Ok(true)
        }

        async fn create_namespace(&self, _: &NamespaceIdent) -> Result<()> {
            Ok(())
        }

        async fn get(&self, table: &TableIdent) -> Result<Option<Pointer>> {
            Ok(self.tables.lock().unwrap().get(&table.to_string()).cloned())
        }

        async fn slot(&self, table: &TableIdent) -> Result<Slot> {
            Ok(Slot {
                location: format!("memory://warehouse/{}", table.name()),
                version: None,
            })
        }

        async fn swap(
            &self,
            table: &TableIdent,
            _: &TableMetadata,
            next: &str,
            current: &Pointer,
        ) -> Result<()> {
            let mut races = self.races.lock().unwrap();
            let mut tables = self.tables.lock().unwrap();
            let entry = tables.get(&table.to_string());
            if *races > 0 {
                // Another writer's swap lands first: the version moves on.
                *races -= 1;
                let moved = entry.cloned().map(|p| Pointer {
                    version: self.next_version(),
                    ..p
                });
                tables.insert(table.to_string(), moved.unwrap());
                self.lost.lock().unwrap().push(next.to_owned());
                return Err(conflict(table, "raced"));
            }
            if entry.map(|p| &p.version) != Some(&current.version) && entry.is_some() {
                return Err(conflict(table, "stale version"));
            }
            let pointer = Pointer {
                metadata_location: Some(next.to_owned()),
                version: self.next_version(),
                kept: HashMap::new(),
            };
            tables.insert(table.to_string(), pointer);
            Ok(())
        }
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    async fn new_table(catalog: &PointerCatalog<Fake>) -> Table {
        let schema = Schema::builder()
            .with_fields(vec![Arc::new(NestedField::required(
                1,
                "id",
                PrimitiveType::Long.into(),
            ))])
            .build()
            .unwrap();
        let creation = TableCreation::builder()
            .name("t".into())
            .schema(schema)
            .build();
        let namespace = NamespaceIdent::new("ns".into());
        catalog.create_table(&namespace, creation).await.unwrap()
    }

    async fn set_property(catalog: &PointerCatalog<Fake>, table: &Table, value: &str) -> Table {
        let tx = Transaction::new(table);
        let update = tx.update_table_properties().set("k".into(), value.into());
        let tx = update.apply(tx).unwrap();
        tx.commit(catalog).await.unwrap()
    }

    #[test]
    fn a_commit_that_loses_a_race_is_retried_and_its_file_deleted() {
        block_on(async {
            let catalog = PointerCatalog::new(Fake::default(), Arc::new(MemoryStorageFactory));
            let table = new_table(&catalog).await;
            assert!(
                table
                    .metadata_location()
                    .unwrap()
                    .contains("/metadata/00000-")
            );
            *catalog.pointers.races.lock().unwrap() = 2;
            let table = set_property(&catalog, &table, "one").await;
            assert_eq!(table.metadata().properties()["k"], "one");
            // Two swaps lost, the third took: file 00001 each time, the losers deleted.
            let lost = catalog.pointers.lost.lock().unwrap().clone();
            assert_eq!(lost.len(), 2);
            for file in &lost {
                assert!(file.contains("/metadata/00001-"), "{file}");
                assert!(!catalog.file_io.exists(file).await.unwrap(), "{file}");
            }
            let loaded = catalog.load_table(table.identifier()).await.unwrap();
            assert_eq!(loaded.metadata_location(), table.metadata_location());
            assert_eq!(loaded.metadata().properties()["k"], "one");
            assert_eq!(loaded.metadata().metadata_log().len(), 1);
        });
    }

    #[test]
    fn a_commit_built_on_an_old_table_is_rebased_on_the_current_one() {
        block_on(async {
            let catalog = PointerCatalog::new(Fake::default(), Arc::new(MemoryStorageFactory));
            let old = new_table(&catalog).await;
            set_property(&catalog, &old, "one").await;
            // Built on the table before "one": the library refreshes it and applies
            // its change on top.
            let table = set_property(&catalog, &old, "two").await;
            assert!(
                table
                    .metadata_location()
                    .unwrap()
                    .contains("/metadata/00002-")
            );
            assert_eq!(table.metadata().metadata_log().len(), 2);
            let ident = table.identifier().clone();
            assert!(catalog.table_exists(&ident).await.unwrap());
        });
    }

    fn data_file(table: &Table, name: &str, records: u64) -> DataFile {
        DataFileBuilder::default()
            .content(DataContentType::Data)
            .file_path(format!("{}/data/{name}", table.metadata().location()))
            .file_format(DataFileFormat::Parquet)
            .partition(Struct::empty())
            .partition_spec_id(table.metadata().default_partition_spec_id())
            .record_count(records)
            .file_size_in_bytes(100)
            .build()
            .unwrap()
    }

    /// The current snapshot's entries: (file name, status).
    async fn entries(table: &Table) -> Vec<(String, ManifestStatus)> {
        let snapshot = table.metadata().current_snapshot().unwrap();
        let list = table.manifest_list_reader(snapshot).load().await.unwrap();
        let mut found = Vec::new();
        for manifest in list.entries() {
            for entry in manifest
                .load_manifest(table.file_io())
                .await
                .unwrap()
                .entries()
            {
                let name = entry.file_path().rsplit('/').next().unwrap().to_owned();
                found.push((name, entry.status()));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    #[test]
    fn a_replacement_leaves_only_its_files_live_and_marks_the_old_deleted() {
        block_on(async {
            let catalog = PointerCatalog::new(Fake::default(), Arc::new(MemoryStorageFactory));
            let table = new_table(&catalog).await;
            let tx = Transaction::new(&table);
            let append = tx
                .fast_append()
                .add_data_files(vec![data_file(&table, "a", 3)]);
            let table = append.apply(tx).unwrap().commit(&catalog).await.unwrap();
            let old = table.metadata().current_snapshot_id();

            let properties = HashMap::from([("singer.state".to_owned(), "{}".to_owned())]);
            let files = vec![data_file(&table, "b", 2)];
            let changes = replacement(&table, files, properties).await.unwrap();
            let ident = table.identifier().clone();
            let (requirements, updates) = (changes.requirements, changes.updates);
            Committer::commit(&catalog, &ident, requirements, updates)
                .await
                .unwrap();

            let table = catalog.load_table(&ident).await.unwrap();
            let snapshot = table.metadata().current_snapshot().unwrap();
            assert_eq!(snapshot.parent_snapshot_id(), old);
            let summary = snapshot.summary();
            assert_eq!(summary.operation, Operation::Overwrite);
            let field = |k: &str| summary.additional_properties[k].clone();
            assert_eq!(field("total-records"), "2");
            assert_eq!(field("deleted-records"), "3");
            assert_eq!(field("total-data-files"), "1");
            assert_eq!(field("singer.state"), "{}");
            let want = vec![
                ("a".to_owned(), ManifestStatus::Deleted),
                ("b".to_owned(), ManifestStatus::Added),
            ];
            assert_eq!(entries(&table).await, want);
        });
    }

    #[test]
    fn a_replacement_built_before_another_commit_is_a_conflict() {
        block_on(async {
            let catalog = PointerCatalog::new(Fake::default(), Arc::new(MemoryStorageFactory));
            let table = new_table(&catalog).await;
            let files = vec![data_file(&table, "b", 2)];
            let changes = replacement(&table, files, HashMap::new()).await.unwrap();
            let tx = Transaction::new(&table);
            let append = tx
                .fast_append()
                .add_data_files(vec![data_file(&table, "a", 3)]);
            append.apply(tx).unwrap().commit(&catalog).await.unwrap();
            let ident = table.identifier().clone();
            let (requirements, updates) = (changes.requirements, changes.updates);
            let refused = Committer::commit(&catalog, &ident, requirements, updates).await;
            assert_eq!(
                refused.unwrap_err().kind(),
                ErrorKind::CatalogCommitConflicts
            );
        });
    }
}
