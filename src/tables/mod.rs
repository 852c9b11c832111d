//! Apache Iceberg tables (`table_format: iceberg`): one table per stream in a catalog,
//! its data files the Parquet objects the rest of the pipeline writes, and a commit
//! that makes a flush's files part of the table at once.
//!
//! Owns: the catalog connection (REST through the library's client; Glue and S3
//! Tables through `pointer`'s catalog over `glue` and `s3tables`), each stream's table
//! (made on its first SCHEMA, or loaded and widened with new columns), where its data
//! files go, and the commits
//! (an append snapshot whose summary says which STATE it makes safe). Must not touch:
//! input, encoding, uploads or STATE lines; `target` tells it which objects are stored
//! and decides when to commit, and writes STATE only after.

pub mod commit;
pub mod glue;
pub mod overwrite;
pub mod partition;
pub mod pointer;
pub mod rest;
pub mod s3tables;
pub mod schema;
pub mod sql;
pub mod stats;
pub mod storage;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use aws_config::SdkConfig;
use iceberg::spec::{DataFile, Struct};
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::{Catalog, NamespaceIdent, TableCreation, TableIdent};
use parquet::file::metadata::ParquetMetaData;

use crate::error::{Error, Result};
use crate::partition::Group;
use crate::secret::Secret;
use crate::store::S3Store;
use commit::Committer;
use glue::GluePointers;
use partition::{Partitioning, SpecSetting};
use pointer::PointerCatalog;
use s3tables::S3TablesPointers;
use storage::{S3Tables, split_s3_path};

/// The snapshot summary property holding the STATE a commit makes safe.
pub const STATE_PROPERTY: &str = "singer.state";
/// The snapshot summary property naming the run that committed.
pub const RUN_PROPERTY: &str = "singer.run-id";

/// Which catalog keeps the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    Rest,
    /// AWS Glue Data Catalog (`glue::GluePointers`).
    Glue,
    /// An Amazon S3 Tables table bucket (`s3tables::S3TablesPointers`).
    S3Tables,
    /// A SQLite or PostgreSQL database in the JDBC catalog's layout (`sql`).
    Sql,
}

/// The `iceberg_*` settings.
#[derive(Debug, Clone)]
pub struct TableSettings {
    pub catalog: CatalogKind,
    /// REST: the catalog's URL. Glue, S3 Tables: the service's endpoint, empty for AWS's.
    pub uri: String,
    pub warehouse: Option<String>,
    pub namespace: Vec<String>,
    /// OAuth2 client credentials, `client_id:client_secret`.
    pub credential: Option<Secret>,
    /// Passed to the catalog as they are (`token`, `scope`, `oauth2-server-uri`, …).
    pub properties: BTreeMap<String, String>,
    pub commit_interval: Duration,
    /// `iceberg_partition_spec`: the partitioning of new tables.
    pub partition_spec: SpecSetting,
    /// `load_method: overwrite`: a table's rows are replaced, by one commit at the end
    /// of the run, with the files the run wrote for it.
    pub replace: bool,
}

/// A stream's (or the `table` setting's) table name: lower case, and every character
/// but letters, digits and `_` made `_`, the names every catalog accepts (S3 Tables and
/// Glue allow no others), as other loaders name tables.
/// The streams of a catalog's map whose tables have work waiting, in name order (so
/// commits and partition requests go out in the same order every run).
pub fn waiting<T>(streams: &HashMap<String, T>, has_work: impl Fn(&T) -> bool) -> Vec<String> {
    let mut names: Vec<String> = streams
        .iter()
        .filter(|(_, t)| has_work(t))
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names
}

pub fn table_name(stream: &str) -> String {
    let name: String = stream
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    if name.is_empty() { "_".into() } else { name }
}

impl StreamTable {
    fn has_work(&self) -> bool {
        !self.pending.is_empty() || self.replaced
    }

    /// The partition spec id and tuple of the data file at `key` (a key from
    /// `data_folder`: its folders under the data prefix name the partition).
    fn partition_of(&self, key: &str) -> std::result::Result<(i32, Struct), String> {
        let Some(partitioning) = &self.partitioning else {
            let spec_id = self.table.metadata().default_partition_spec_id();
            return Ok((spec_id, Struct::empty()));
        };
        let folders = key
            .strip_prefix(&self.data_prefix)
            .and_then(|rest| rest.rsplit_once('/'))
            .map_or("", |(folders, _)| folders);
        let tuple = self
            .partitions
            .get(folders)
            .ok_or_else(|| format!("data file {key:?} is in no partition this run wrote"))?;
        Ok((partitioning.spec_id(), tuple.clone()))
    }

    /// Where the data files of partition `folders` ("" for none) go.
    pub fn data_folder(&self, folders: &str) -> String {
        match folders {
            "" => self.data_prefix.clone(),
            folders => format!("{}{folders}/", self.data_prefix),
        }
    }

    /// An object's columns with the table's field ids, for the Parquet encoder.
    pub fn file_schema(&self, columns: &SchemaRef) -> std::result::Result<SchemaRef, String> {
        let table = self.table.metadata().current_schema();
        schema::with_field_ids(columns, table).map_err(|missing| {
            format!(
                "table {}: columns {missing:?} are not in the table",
                self.table.identifier()
            )
        })
    }
}

/// The catalog and the tables of this run's streams.
pub struct Tables {
    catalog: Arc<dyn Catalog>,
    /// The same catalog, for commits the library's transactions cannot make.
    committer: Arc<dyn Committer>,
    settings: TableSettings,
    namespace: NamespaceIdent,
    streams: HashMap<String, StreamTable>,
}

/// A stream's table and the data files stored for it but not yet committed.
pub struct StreamTable {
    table: Table,
    /// Where data files go: the table location's bucket and `<path>/data/`.
    pub bucket: String,
    pub data_prefix: String,
    pending: Vec<DataFile>,
    /// How a partitioned table's rows are split; None: unpartitioned.
    partitioning: Option<Partitioning>,
    /// The partition tuple of each partition folder written this run.
    partitions: HashMap<String, Struct>,
    /// The last commit, or when the table was opened: commits are an interval apart.
    last_commit: Instant,
    /// With `replace`: the table is replaced at the end even with no files (its stream
    /// was sent whole, and empty, with ACTIVATE_VERSION).
    replaced: bool,
}

impl Tables {
    /// Connects to the catalog and makes the namespace if it is missing. `sdk` is the
    /// run's AWS configuration, for catalogs that are AWS services.
    pub async fn connect(settings: &TableSettings, s3: S3Store, sdk: &SdkConfig) -> Result<Tables> {
        let storage = Arc::new(S3Tables::new(s3));
        let endpoint = Some(settings.uri.clone()).filter(|u| !u.is_empty());
        let (catalog, committer): (Arc<dyn Catalog>, Arc<dyn Committer>) = match settings.catalog {
            CatalogKind::Rest => rest::rest_catalog(settings, storage).await?,
            CatalogKind::Sql => sql::sql_catalog(settings, storage).await?,
            CatalogKind::Glue => {
                let warehouse = settings.warehouse.as_deref().unwrap_or_default();
                let glue = GluePointers::new(sdk, endpoint, warehouse);
                let catalog = Arc::new(PointerCatalog::new(glue, storage));
                (catalog.clone(), catalog)
            }
            CatalogKind::S3Tables => {
                let bucket_arn = settings.warehouse.as_deref().unwrap_or_default();
                let s3tables = S3TablesPointers::new(sdk, endpoint, bucket_arn);
                let catalog = Arc::new(PointerCatalog::new(s3tables, storage));
                (catalog.clone(), catalog)
            }
        };
        let namespace = NamespaceIdent::from_vec(settings.namespace.clone())
            .map_err(|e| Error::Config(format!("iceberg_namespace: {e}")))?;
        let failed = |e: iceberg::Error| catalog_error(settings, "namespace", &namespace, e);
        if !catalog.namespace_exists(&namespace).await.map_err(failed)? {
            let made = catalog.create_namespace(&namespace, HashMap::new()).await;
            // Another writer may have made it meanwhile.
            if let Err(e) = made
                && !catalog.namespace_exists(&namespace).await.unwrap_or(false)
            {
                return Err(failed(e));
            }
        }
        Ok(Tables {
            catalog,
            committer,
            settings: settings.clone(),
            namespace,
            streams: HashMap::new(),
        })
    }

    /// The stream's table, ready for files of `columns`: made if missing (partitioned as
    /// `iceberg_partition_spec` says, its `keys` the identifier fields), loaded
    /// otherwise, with columns it lacks added (optional, so older rows read as null).
    pub async fn open(
        &mut self,
        stream: &str,
        table: &str,
        columns: &SchemaRef,
        keys: &[String],
    ) -> Result<()> {
        let ident = TableIdent::new(self.namespace.clone(), table.to_owned());
        let failed = |e: iceberg::Error| catalog_error(&self.settings, "table", &ident, e);
        let mut loaded = match self.catalog.table_exists(&ident).await.map_err(failed)? {
            true => self.catalog.load_table(&ident).await.map_err(failed)?,
            false => self.create(stream, &ident, columns, keys).await?,
        };
        schema::check_types(columns, loaded.metadata().current_schema())
            .map_err(|e| Error::Config(format!("table {ident}: {e}")))?;
        if let Err(missing) = schema::with_field_ids(columns, loaded.metadata().current_schema()) {
            loaded = self.add_columns(loaded, columns, &missing).await?;
        }
        let location = loaded
            .metadata()
            .location()
            .trim_end_matches('/')
            .to_owned();
        let data = format!("{location}/data");
        let Some((bucket, path)) = split_s3_path(&data) else {
            return Err(Error::Store(format!(
                "table {ident}: its location {location:?} is not an s3:// URL"
            )));
        };
        let (bucket, data_prefix) = (bucket.to_owned(), format!("{path}/"));
        let partitioning = self.partitioning(stream, &loaded)?;
        let (pending, partitions, replaced) = self
            .streams
            .remove(stream)
            .map(|s| (s.pending, s.partitions, s.replaced))
            .unwrap_or_default();
        self.streams.insert(
            stream.to_owned(),
            StreamTable {
                table: loaded,
                bucket,
                data_prefix,
                pending,
                partitioning,
                partitions,
                last_commit: Instant::now(),
                replaced,
            },
        );
        Ok(())
    }

    /// How the table's rows are split. A table keeps the partitioning it has: a spec
    /// in `iceberg_partition_spec` for the stream that differs from it is refused
    /// (changing a table's partitioning is for the table's own tools), and a stream
    /// the setting does not name follows the table's.
    fn partitioning(&self, stream: &str, table: &Table) -> Result<Option<Partitioning>> {
        let ident = table.identifier();
        let spec = table.metadata().default_partition_spec();
        let columns = table.metadata().current_schema();
        if let Some(entries) = self.settings.partition_spec.for_stream(stream)
            && !partition::same_spec(entries, spec, columns)
        {
            let asked: Vec<String> = entries.iter().map(|e| format!("{:?}", e.text())).collect();
            return Err(Error::Config(format!(
                "table {ident} is partitioned {}, but iceberg_partition_spec asks for [{}]: a table keeps its partitioning (change it with the table's own tools, such as Spark's ALTER TABLE … ADD PARTITION FIELD); give the table's spec for this stream, or none",
                partition::describe(spec, columns),
                asked.join(", ")
            )));
        }
        Partitioning::new(spec, columns).map_err(|e| Error::Config(format!("table {ident}: {e}")))
    }

    async fn create(
        &self,
        stream: &str,
        ident: &TableIdent,
        columns: &SchemaRef,
        keys: &[String],
    ) -> Result<Table> {
        let refused = |e: String| Error::Config(format!("table {ident}: {e}"));
        let schema = schema::new_table_schema(columns).map_err(refused)?;
        let (schema, skipped) = schema::with_identifier_fields(schema, keys).map_err(refused)?;
        for why in skipped {
            tracing::warn!("table {ident}: {why}; it is not an identifier field");
        }
        let spec = match self.settings.partition_spec.for_stream(stream) {
            Some(entries) => Some(partition::new_spec(entries, &schema).map_err(refused)?),
            None => None,
        };
        let creation = TableCreation::builder()
            .name(ident.name().to_owned())
            .schema(schema)
            .partition_spec_opt(spec)
            .build();
        match self.catalog.create_table(&self.namespace, creation).await {
            Ok(table) => Ok(table),
            // Made by another writer since `table_exists`: use theirs.
            Err(e) => self
                .catalog
                .load_table(ident)
                .await
                .map_err(|_| catalog_error(&self.settings, "table", ident, e)),
        }
    }

    async fn add_columns(
        &self,
        table: Table,
        columns: &SchemaRef,
        missing: &[String],
    ) -> Result<Table> {
        let ident = table.identifier().clone();
        let mut update = Transaction::new(&table).update_schema();
        for name in missing {
            let field = columns
                .field_with_name(name)
                .map_err(|e| Error::Store(e.to_string()))?;
            let mut next_id = 0;
            let column_type = schema::iceberg_type(field.data_type(), &mut next_id)
                .map_err(|e| Error::Config(format!("table {ident}: column {name:?}: {e}")))?;
            update = update.add_column(AddColumn::optional(name, column_type));
        }
        tracing::info!("table {ident}: adding columns {missing:?}");
        let failed = |e: iceberg::Error| catalog_error(&self.settings, "table", &ident, e);
        let tx = update.apply(Transaction::new(&table)).map_err(failed)?;
        tx.commit(self.catalog.as_ref()).await.map_err(failed)
    }

    /// The stream's table, once `open` has been called for it.
    pub fn stream(&self, stream: &str) -> Option<&StreamTable> {
        self.streams.get(stream)
    }

    /// The chunk's rows split by the partitions of the stream's table; None when the
    /// table is not partitioned. Each new partition's tuple is kept for its files.
    pub fn split(
        &mut self,
        stream: &str,
        batch: &RecordBatch,
    ) -> Option<std::result::Result<Vec<Group>, String>> {
        let table = self.streams.get_mut(stream)?;
        let split = table.partitioning.as_ref()?.split(batch);
        Some(split.map(|split| {
            for (folders, tuple) in split.tuples {
                table.partitions.entry(folders).or_insert(tuple);
            }
            split.groups
        }))
    }

    /// Records a stored data file of `stream`, to be added by its next commit.
    pub fn stored(
        &mut self,
        stream: &str,
        key: &str,
        size: u64,
        footer: &ParquetMetaData,
    ) -> Result<()> {
        let table = self
            .streams
            .get_mut(stream)
            .ok_or_else(|| Error::Store(format!("stream {stream:?} has no table")))?;
        let path = format!("s3://{}/{key}", table.bucket);
        let schema = table.table.metadata().current_schema().clone();
        let failed = |e: String| Error::Store(format!("table {}: {e}", table.table.identifier()));
        let partition = table.partition_of(key).map_err(failed)?;
        let file = stats::data_file(path, size, footer, &schema, partition).map_err(failed)?;
        table.pending.push(file);
        Ok(())
    }

    /// Whether `stream`'s table has a commit waiting and its commit interval has passed
    /// (or `at_end`, the end of the run: the only time a replacement commits).
    pub fn commit_due(&self, stream: &str, at_end: bool) -> bool {
        let interval_passed = |t: &StreamTable| {
            !self.settings.replace && t.last_commit.elapsed() >= self.settings.commit_interval
        };
        self.streams
            .get(stream)
            .is_some_and(|t| t.has_work() && (at_end || interval_passed(t)))
    }

    /// With `load_method: overwrite`, marks the stream's table to be replaced at the end
    /// even if no file is written for it (a stream sent whole and empty).
    pub fn replace(&mut self, stream: &str) {
        if let Some(table) = self.streams.get_mut(stream) {
            table.replaced = self.settings.replace;
        }
    }

    /// Adds the stream's waiting files to its table in one snapshot, whose summary
    /// carries `state` (the STATE this commit makes safe) and the run id: an append,
    /// or with `replace` one that makes them the table's only files. A commit that
    /// loses a race with another writer is retried on the fresh table.
    pub async fn commit(
        &mut self,
        stream: &str,
        state: Option<&str>,
        run_id: &str,
    ) -> Result<usize> {
        let Some(table) = self.streams.get_mut(stream) else {
            return Ok(0);
        };
        let files = std::mem::take(&mut table.pending);
        let count = files.len();
        let mut properties = HashMap::from([(RUN_PROPERTY.to_owned(), run_id.to_owned())]);
        if let Some(state) = state {
            properties.insert(STATE_PROPERTY.to_owned(), state.to_owned());
        }
        let ident = table.table.identifier().clone();
        let paths: Vec<String> = files.iter().map(|f| f.file_path().to_owned()).collect();
        let committed = if self.settings.replace {
            replace(&*self.catalog, &*self.committer, &ident, files, properties).await
        } else {
            append(&*self.catalog, &table.table, files, properties).await
        };
        table.table = match committed {
            Ok(committed) => committed,
            Err(e) => {
                if never_committed(&e) {
                    remove_files(&table.table, &paths).await;
                }
                return Err(catalog_error(&self.settings, "commit to table", &ident, e));
            }
        };
        table.last_commit = Instant::now();
        table.replaced = false;
        let how = if self.settings.replace {
            "replaced its rows with"
        } else {
            "committed"
        };
        tracing::info!("table {ident}: {how} {count} data files");
        Ok(count)
    }

    /// Streams with a commit waiting.
    pub fn waiting(&self) -> Vec<String> {
        waiting(&self.streams, StreamTable::has_work)
    }
}

/// Adds `files` to the table in one append snapshot (the library's fast append, which
/// retries a lost race on the fresh table itself).
async fn append(
    catalog: &dyn Catalog,
    table: &Table,
    files: Vec<DataFile>,
    properties: HashMap<String, String>,
) -> iceberg::Result<Table> {
    let tx = Transaction::new(table);
    let append = tx
        .fast_append()
        .add_data_files(files)
        .set_snapshot_properties(properties);
    append.apply(tx)?.commit(catalog).await
}

/// Whether a failed commit is sure not to have reached the table: refused for a race
/// still lost after the retries, for a table gone, or stopped before any request was
/// sent. After any other failure (a timeout, a 5xx: the catalog may have applied it) its
/// files may be the table's, so they stay, as Iceberg's own writers leave them.
fn never_committed(e: &iceberg::Error) -> bool {
    use iceberg::ErrorKind::*;
    matches!(
        e.kind(),
        CatalogCommitConflicts
            | TableNotFound
            | DataInvalid
            | FeatureUnsupported
            | PreconditionFailed
    )
}

/// Deletes the data files of a commit that never reached the table; what cannot be
/// deleted is named, for an orphan-file clean-up.
async fn remove_files(table: &Table, paths: &[String]) {
    let ident = table.identifier();
    let mut left = 0;
    for path in paths {
        if let Err(e) = table.file_io().delete(path).await {
            tracing::warn!("table {ident}: could not delete {path}, which no commit holds: {e}");
            left += 1;
        }
    }
    tracing::info!(
        "table {ident}: the failed commit's data files were deleted ({} of {})",
        paths.len() - left,
        paths.len()
    );
}

/// How often a replacement that loses a race is built again on the fresh table, as
/// the library's transactions retry (its `commit.retry.num-retries` default).
const REPLACE_ATTEMPTS: u32 = 5;

/// Makes `files` the table's only rows in one snapshot (`overwrite`), built on the table
/// as the catalog has it now, and again on the fresh table if another writer commits
/// first. Returns the table after it.
async fn replace(
    catalog: &dyn Catalog,
    committer: &dyn Committer,
    ident: &TableIdent,
    files: Vec<DataFile>,
    properties: HashMap<String, String>,
) -> iceberg::Result<Table> {
    let mut attempt = 1;
    loop {
        let table = catalog.load_table(ident).await?;
        let changes = overwrite::replacement(&table, files.clone(), properties.clone()).await?;
        match committer
            .commit(ident, changes.requirements, changes.updates)
            .await
        {
            Ok(()) => return catalog.load_table(ident).await,
            Err(e)
                if e.kind() == iceberg::ErrorKind::CatalogCommitConflicts
                    && attempt < REPLACE_ATTEMPTS =>
            {
                tracing::info!(
                    "table {ident}: another writer committed first; replacing again on its table"
                );
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// An error's text and its causes' that it does not already say: the library's "error
/// sending request" hides the reason (a refused connection, an untrusted certificate).
fn with_causes(e: &iceberg::Error) -> String {
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = inner.source();
    }
    message
}

/// One line naming the catalog, what was asked of it and the answer, never a secret.
fn catalog_error(
    settings: &TableSettings,
    what: &str,
    name: &dyn std::fmt::Display,
    e: iceberg::Error,
) -> Error {
    let mut message = with_causes(&e);
    if let Some(secret) = &settings.credential {
        message = message.replace(secret.expose(), "***");
    }
    let catalog = match (settings.catalog, settings.uri.as_str()) {
        (CatalogKind::Glue, "") => "AWS Glue",
        (CatalogKind::S3Tables, "") => "Amazon S3 Tables",
        (_, uri) => uri,
    };
    Error::Store(format!(
        "Iceberg catalog {catalog}: {what} {name}: {message}"
    ))
}
