//! AWS Glue Data Catalog tables over plain files (`glue_catalog: true`): each stream's
//! folder is registered as a Glue table, so Athena, Redshift Spectrum, EMR and Glue jobs
//! query it by name, and every new partition folder is added once its objects are stored.
//!
//! Owns: the Glue client (built from the run's AWS configuration, with `glue_endpoint`),
//! the database (made if missing), each stream's table definition (columns and types as
//! Athena reads the file type, the SerDe, the location, the partition keys), widening a
//! table with added columns, refusing an incompatible change, and adding partitions
//! (BatchCreatePartition; a partition that exists already is fine), and
//! `failure_reason`, the one-line account of a failed AWS request that the Iceberg
//! catalogs on AWS services share. Must not touch:
//! input, encoding, uploads, keys or STATE lines; `target` says which objects are stored
//! and writes STATE only after their partitions are added.
//!
//! Types, per file type (what the encoders write, read back by Athena's SerDe):
//! - Parquet (ParquetHiveSerDe): `bigint`, `double`, `decimal(p,s)`, `boolean`,
//!   `string`, `timestamp`, `date`, `struct<…>`, `array<…>`; JSON text and the columns
//!   `parquet_compatibility: portable` writes as text (times, decimals wider than 38
//!   digits) are `string`. Parquet TIME and wider decimals (`parquet_compatibility:
//!   arrow`) have no Hive type: such a column stops the run at its SCHEMA.
//! - JSONL (org.openx.data.jsonserde.JsonSerDe): the same types; times and decimals
//!   wider than 38 digits are `string` (the SerDe gives a number's text to a string
//!   column), and `_sdc_extra` is left out, since JSONL merges those fields back into
//!   the record.
//! - CSV (OpenCSVSerde): every column `string`. The SerDe fails a query on an empty
//!   field in a numeric column (a null here) and reads timestamps only as epoch
//!   milliseconds, so declared types would break on real data; cast in the query.
//!
//! Partition keys are strings: the folders of `date_partition_format` (a `name=` folder
//! gives its name; a plain one the finest unit its pattern shows: `%Y/%m/%d` gives
//! `year`, `month`, `day`), then the `partition_by` folders by their names.
//! Column and key names are lower case, as the Hive metastore keeps them.

use std::collections::{HashMap, HashSet};

use aws_config::SdkConfig;
use aws_sdk_glue::Client;
use aws_sdk_glue::config::http::HttpResponse;
use aws_sdk_glue::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_glue::operation::create_database::CreateDatabaseError;
use aws_sdk_glue::operation::get_database::GetDatabaseError;
use aws_sdk_glue::types::{
    Column as GlueColumn, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, Table,
    TableInput,
};
use chrono::{DateTime, Utc};

use crate::encode::{CsvDialect, FileType};
use crate::error::{Error, Result};
use crate::schema::{ColumnType, StreamSchema, file_columns};
use crate::store::s3::describe;
use crate::tables;

/// The `glue_*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueSettings {
    pub database: String,
    /// Glue's endpoint; None: AWS's for the region.
    pub endpoint: Option<String>,
    /// The partition keys `date_partition_format`'s folders give (see `date_keys`).
    pub date_keys: Vec<DateKey>,
}

/// A partition key given by one folder of `date_partition_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateKey {
    pub name: String,
    /// A `name=value` folder (else the folder is the value).
    pub hive: bool,
}

/// The most partitions one BatchCreatePartition takes.
const PARTITION_BATCH: usize = 100;
/// Partitions remembered as added; past this the memory is cleared (adding one again
/// is answered "already exists", which is fine), so memory stays bounded.
const REMEMBERED_PARTITIONS: usize = 10_000;

/// The partition keys of `date_partition_format`'s folders: a `name=…` folder gives
/// `name`, any other the finest unit of time its pattern shows (`%Y` → `year`,
/// `%Y%m%d` → `day`), else `date_partition`. Refused when two folders give one name,
/// or when the pattern writes a `/` of its own (`%D`), which would move the folders.
pub fn date_keys(format: &str) -> Result<Vec<DateKey>, String> {
    let folders: Vec<&str> = format.split('/').filter(|s| !s.is_empty()).collect();
    let sample = DateTime::<Utc>::UNIX_EPOCH.format(format).to_string();
    if sample.split('/').filter(|s| !s.is_empty()).count() != folders.len() {
        return Err(format!(
            "date_partition_format {format:?} writes a \"/\" inside a folder (such as %D or %x), so its folders are not partition keys; spell the folders out, such as \"%Y/%m/%d\""
        ));
    }
    let mut keys: Vec<DateKey> = Vec::new();
    for folder in folders {
        let key = match folder.split_once('=') {
            Some((name, _)) if !name.is_empty() && !name.contains('%') => DateKey {
                name: name.to_lowercase(),
                hive: true,
            },
            _ => DateKey {
                name: crate::partition::finest_unit(folder)
                    .unwrap_or("date_partition")
                    .to_owned(),
                hive: false,
            },
        };
        if keys.iter().any(|k| k.name == key.name) {
            return Err(format!(
                "date_partition_format {format:?} gives two folders the partition key {:?}; name the folders, such as \"year=%Y/month=%m/day=%d\"",
                key.name
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// How a table's files are read: the SerDe and formats Athena uses for the file type.
#[derive(Debug, Clone)]
pub struct FileFormat {
    pub file_type: FileType,
    pub csv: CsvDialect,
}

impl FileFormat {
    /// The table's storage descriptor (without columns and location).
    fn storage(&self) -> StorageDescriptor {
        const TEXT_INPUT: &str = "org.apache.hadoop.mapred.TextInputFormat";
        const TEXT_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
        let (input, output, serde) = match self.file_type {
            FileType::Parquet => (
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                SerDeInfo::builder()
                    .serialization_library(
                        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                    )
                    .parameters("serialization.format", "1"),
            ),
            FileType::Jsonl => (
                TEXT_INPUT,
                TEXT_OUTPUT,
                SerDeInfo::builder().serialization_library("org.openx.data.jsonserde.JsonSerDe"),
            ),
            FileType::Csv => (
                TEXT_INPUT,
                TEXT_OUTPUT,
                SerDeInfo::builder()
                    .serialization_library("org.apache.hadoop.hive.serde2.OpenCSVSerde")
                    .parameters("separatorChar", char::from(self.csv.delimiter).to_string())
                    .parameters("quoteChar", char::from(self.csv.quote).to_string())
                    // The files double a quote inside quotes and escape nothing; the
                    // SerDe's default escape `\` would swallow backslashes (JSON text
                    // is full of them). A private-use character never comes in text.
                    .parameters("escapeChar", "\u{E000}"),
            ),
        };
        StorageDescriptor::builder()
            .input_format(input)
            .output_format(output)
            .serde_info(serde.build())
            .build()
    }

    /// The table's parameters: what crawlers set, and the CSV header to skip.
    fn parameters(&self) -> HashMap<String, String> {
        let classification = match self.file_type {
            FileType::Parquet => "parquet",
            FileType::Jsonl => "json",
            FileType::Csv => "csv",
        };
        let mut parameters = HashMap::from([
            ("classification".to_owned(), classification.to_owned()),
            ("EXTERNAL".to_owned(), "TRUE".to_owned()),
        ]);
        if self.file_type == FileType::Csv && self.csv.header {
            parameters.insert("skip.header.line.count".into(), "1".into());
        }
        parameters
    }
}

/// A column's type as Athena reads it from `file_type`'s files (the module comment has
/// the table); None for a column the files do not hold (`_sdc_extra` in JSONL). The
/// error says why a column has no type and what setting gives it one.
pub fn hive_type(ty: &ColumnType, file_type: FileType) -> Result<Option<String>, String> {
    use ColumnType as T;
    if file_type == FileType::Csv {
        return Ok(Some("string".into()));
    }
    let jsonl = file_type == FileType::Jsonl;
    let name = match ty {
        T::Extra if jsonl => return Ok(None),
        T::Integer => "bigint".into(),
        T::Number => "double".into(),
        T::Decimal { precision, scale } if *precision <= 38 => {
            format!("decimal({precision},{scale})")
        }
        T::Decimal { .. } | T::Time if jsonl => "string".into(),
        T::Decimal { precision, .. } => {
            return Err(format!(
                "a decimal of {precision} digits, which Athena and Glue cannot read from Parquet (38 at most); set \"parquet_compatibility\": \"portable\" to store it as text"
            ));
        }
        T::Time => {
            return Err(
                "a Parquet TIME column, which Athena and Glue tables cannot declare; set \"parquet_compatibility\": \"portable\" to store times as text".into(),
            );
        }
        T::Boolean => "boolean".into(),
        T::Text | T::Literal | T::Json | T::Extra | T::AsText(_) => "string".into(),
        T::Timestamp(_) => "timestamp".into(),
        T::Date => "date".into(),
        T::Struct(fields) => {
            let mut parts = Vec::new();
            for field in fields {
                let Some(inner) = hive_type(&field.ty, file_type)? else {
                    continue;
                };
                let name = field.output_name.to_lowercase();
                if name.is_empty() || name.contains([':', ',', '<', '>', '`', ' ']) {
                    return Err(format!(
                        "a nested field named {:?}, which a Glue struct type cannot spell; flatten it (flatten_max_depth) or store the column as text (column_types \"string\")",
                        field.output_name
                    ));
                }
                parts.push(format!("{name}:{inner}"));
            }
            if parts.is_empty() {
                "string".into()
            } else {
                format!("struct<{}>", parts.join(","))
            }
        }
        T::List(item) => match hive_type(item, file_type)? {
            Some(inner) => format!("array<{inner}>"),
            None => "string".into(),
        },
    };
    Ok(Some(name))
}

/// The table's columns for a stream's file columns, in file order, named in lower
/// case. The error names the column without a type, or two that lower case makes one.
pub fn table_columns(
    schema: &StreamSchema,
    file_type: FileType,
) -> Result<Vec<(String, String)>, String> {
    let columns = file_columns(&schema.columns)
        .into_iter()
        .chain(&schema.metadata)
        .chain(&schema.mage);
    let mut out: Vec<(String, String)> = Vec::new();
    for column in columns {
        let ty = hive_type(&column.ty, file_type)
            .map_err(|e| format!("column {:?} is {e}", column.output_name))?;
        let Some(ty) = ty else { continue };
        let name = column.output_name.to_lowercase();
        if let Some(other) = out.iter().find(|(n, _)| *n == name) {
            return Err(format!(
                "columns {:?} and another differ only in case, and a Glue table's column names are lower case ({:?}); rename one in the tap or with column_header_format",
                column.output_name, other.0
            ));
        }
        out.push((name, ty));
    }
    Ok(out)
}

/// The Glue database and the tables of this run's streams.
pub struct Glue {
    client: Client,
    settings: GlueSettings,
    format: FileFormat,
    bucket: String,
    streams: HashMap<String, StreamTable>,
    /// Table name -> the stream folder it was opened for: two folders never share one.
    locations: HashMap<String, String>,
    /// `table/folders` of the partitions added (or found) this run.
    added: HashSet<String>,
}

/// A stream's table as this run knows it.
struct StreamTable {
    name: String,
    /// The stream's folder, the table's location: a key prefix ending in `/`.
    prefix: String,
    columns: Vec<(String, String)>,
    /// The `partition_by` keys (after the date keys).
    partition_keys: Vec<String>,
    /// Stored objects' partition folders not added yet.
    pending: Vec<String>,
}

impl Glue {
    /// Builds the client from the run's AWS configuration and makes the database if
    /// it is missing.
    pub async fn connect(
        settings: &GlueSettings,
        sdk: &SdkConfig,
        format: FileFormat,
        bucket: &str,
    ) -> Result<Glue> {
        // Glue's own endpoint, never aws_endpoint's (an S3-compatible store's).
        let mut config = aws_sdk_glue::config::Builder::from(sdk);
        config.set_endpoint_url(settings.endpoint.clone());
        let config = config.build();
        let glue = Glue {
            client: Client::from_conf(config),
            settings: settings.clone(),
            format,
            bucket: bucket.to_owned(),
            streams: HashMap::new(),
            locations: HashMap::new(),
            added: HashSet::new(),
        };
        glue.ensure_database().await?;
        Ok(glue)
    }

    async fn ensure_database(&self) -> Result<()> {
        let name = &self.settings.database;
        let what = format!("database {name:?}");
        let exists = database_exists(&self.client, name).await;
        if !exists.map_err(|e| self.failed("GetDatabase", &what, e))? {
            let description = "Tables of the streams target-s3 lands";
            let made = create_database(&self.client, name, description).await;
            made.map_err(|e| self.failed("CreateDatabase", &what, e))?;
        }
        Ok(())
    }

    /// A failed Glue request in one line: the operation, what it was about (`database
    /// "lake"`, `table lake.orders`) and the answer (or why none came).
    fn failed<E>(&self, operation: &str, what: &str, e: SdkError<E, HttpResponse>) -> Error
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        let service = Service {
            iam: "glue",
            endpoint: self.settings.endpoint.as_deref().unwrap_or("AWS Glue"),
            setting: "glue_endpoint",
        };
        let reason = failure_reason(&service, operation, e);
        Error::Store(format!("Glue {operation} {what} failed: {reason}"))
    }

    /// `table db.name`, for messages.
    fn table_name(&self, table: &str) -> String {
        format!("table {}.{table}", self.settings.database)
    }

    /// The stream's table, made if missing, or checked and widened with the columns
    /// the SCHEMA adds. `prefix` is the stream's folder (ending in `/`),
    /// `partition_keys` its `partition_by` folder names. An incompatible change (a
    /// column's type, the CSV column order, the partition keys, the location or the
    /// file type) is a `Config` error naming it.
    pub async fn open(
        &mut self,
        stream: &str,
        table: &str,
        prefix: &str,
        schema: &StreamSchema,
        partition_keys: Vec<String>,
    ) -> Result<()> {
        let refused = |e: String| Error::Config(format!("Glue table {table:?}: {e}"));
        let columns = table_columns(schema, self.format.file_type).map_err(refused)?;
        let keys = self.partition_key_names(&partition_keys);
        check_keys(&keys, &columns).map_err(refused)?;
        if let Some(known) = self.streams.get(stream)
            && known.columns == columns
            && known.partition_keys == partition_keys
        {
            return Ok(());
        }
        match self.locations.get(table) {
            Some(other) if other != prefix => {
                return Err(refused(format!(
                    "the folders {other:?} and {prefix:?} would share it; rename one stream, or set \"table\" to put streams in one folder on purpose"
                )));
            }
            _ => self.locations.insert(table.to_owned(), prefix.to_owned()),
        };
        let location = format!("s3://{}/{prefix}", self.bucket);
        let existing = self.get_table(table).await?;
        let columns = match existing {
            None => {
                let made = self.create_table(table, &location, &columns, &keys).await?;
                if made {
                    columns
                } else {
                    self.widen(table, &location, &columns, &keys).await?
                }
            }
            Some(_) => self.widen(table, &location, &columns, &keys).await?,
        };
        let pending = self.streams.remove(stream).map(|s| s.pending);
        self.streams.insert(
            stream.to_owned(),
            StreamTable {
                name: table.to_owned(),
                prefix: prefix.to_owned(),
                columns,
                partition_keys,
                pending: pending.unwrap_or_default(),
            },
        );
        Ok(())
    }

    /// Every partition key: the date folders', then `partition_by`'s, lower case.
    fn partition_key_names(&self, partition_by: &[String]) -> Vec<String> {
        let dates = self.settings.date_keys.iter().map(|k| k.name.clone());
        dates
            .chain(partition_by.iter().map(|k| k.to_lowercase()))
            .collect()
    }

    async fn get_table(&self, table: &str) -> Result<Option<Table>> {
        let got = self
            .client
            .get_table()
            .database_name(&self.settings.database)
            .name(table)
            .send()
            .await;
        match got {
            Ok(answer) => Ok(answer.table),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.failed("GetTable", &self.table_name(table), e)),
        }
    }

    /// The table's definition with these columns.
    fn table_input(
        &self,
        table: &str,
        location: &str,
        columns: &[(String, String)],
        keys: &[String],
        parameters: HashMap<String, String>,
    ) -> Result<TableInput> {
        let keys = keys.iter().map(|k| (k.clone(), "string".to_owned()));
        TableInput::builder()
            .name(table)
            .table_type("EXTERNAL_TABLE")
            .set_parameters(Some(parameters))
            .storage_descriptor(self.storage(location, columns)?)
            .set_partition_keys(Some(glue_columns(keys)?))
            .build()
            .map_err(|e| Error::Store(format!("Glue table {table:?}: {e}")))
    }

    fn storage(&self, location: &str, columns: &[(String, String)]) -> Result<StorageDescriptor> {
        let mut storage = self.format.storage();
        storage.columns = Some(glue_columns(columns.iter().cloned())?);
        storage.location = Some(location.to_owned());
        Ok(storage)
    }

    /// Makes the table; false when another writer made it first.
    async fn create_table(
        &self,
        table: &str,
        location: &str,
        columns: &[(String, String)],
        keys: &[String],
    ) -> Result<bool> {
        let input = self.table_input(table, location, columns, keys, self.format.parameters())?;
        let made = self
            .client
            .create_table()
            .database_name(&self.settings.database)
            .table_input(input)
            .send()
            .await;
        match made {
            Ok(_) => {
                tracing::info!(
                    "Glue: made table {}.{table} over {location}",
                    self.settings.database
                );
                Ok(true)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.failed("CreateTable", &self.table_name(table), e)),
        }
    }

    /// Checks the existing table against this run's definition and adds the columns it
    /// lacks; returns the table's columns.
    async fn widen(
        &self,
        table: &str,
        location: &str,
        columns: &[(String, String)],
        keys: &[String],
    ) -> Result<Vec<(String, String)>> {
        let Some(existing) = self.get_table(table).await? else {
            return Err(Error::Store(format!(
                "Glue table {}.{table} vanished while it was opened",
                self.settings.database
            )));
        };
        let refused = |e: String| Error::Config(format!("Glue table {table:?}: {e}"));
        let have = Existing::of(&existing);
        have.check(location, keys, &self.format).map_err(refused)?;
        let widened = widened(
            &have.columns,
            columns,
            self.format.file_type == FileType::Csv,
        )
        .map_err(refused)?;
        if widened.len() == have.columns.len() {
            return Ok(widened);
        }
        let added: Vec<&str> = widened[have.columns.len()..]
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let mut parameters = existing.parameters.clone().unwrap_or_default();
        parameters.extend(self.format.parameters());
        let input = self.table_input(table, location, &widened, keys, parameters)?;
        self.client
            .update_table()
            .database_name(&self.settings.database)
            .table_input(input)
            .send()
            .await
            .map_err(|e| self.failed("UpdateTable", &self.table_name(table), e))?;
        tracing::info!(
            "Glue: table {}.{table}: added columns {added:?}",
            self.settings.database
        );
        Ok(widened)
    }

    /// Takes note of a stored data object of `stream`: its partition waits to be added
    /// unless it was added already. Returns whether the object waits for `register`.
    pub fn stored(&mut self, stream: &str, key: &str) -> Result<bool> {
        let date_keys = &self.settings.date_keys;
        let Some(table) = self.streams.get_mut(stream) else {
            return Ok(false);
        };
        if date_keys.is_empty() && table.partition_keys.is_empty() {
            return Ok(false);
        }
        let folders = folders_of(key, &table.prefix).ok_or_else(|| {
            Error::Store(format!(
                "{key}: not under the Glue table {:?}'s folder {:?}",
                table.name, table.prefix
            ))
        })?;
        let seen = format!("{}/{folders}", table.name);
        if self.added.contains(&seen) {
            return Ok(false);
        }
        if !table.pending.iter().any(|f| *f == folders) {
            table.pending.push(folders.to_owned());
        }
        Ok(true)
    }

    /// Streams with partitions waiting to be added.
    pub fn waiting(&self) -> Vec<String> {
        tables::waiting(&self.streams, |t| !t.pending.is_empty())
    }

    /// Adds the stream's waiting partitions to its table. Partitions that exist already
    /// are fine; any other refusal is an error naming the partition.
    pub async fn register(&mut self, stream: &str) -> Result<usize> {
        let Some(table) = self.streams.get(stream) else {
            return Ok(0);
        };
        let mut inputs = Vec::new();
        for folders in &table.pending {
            let values = self
                .values(folders, &table.partition_keys)
                .map_err(|e| Error::Store(format!("Glue table {:?}: {e}", table.name)))?;
            let location = format!("s3://{}/{}{folders}/", self.bucket, table.prefix);
            let input = PartitionInput::builder()
                .set_values(Some(values))
                .storage_descriptor(self.storage(&location, &table.columns)?)
                .build();
            inputs.push(input);
        }
        for chunk in inputs.chunks(PARTITION_BATCH) {
            let answer = self
                .client
                .batch_create_partition()
                .database_name(&self.settings.database)
                .table_name(&table.name)
                .set_partition_input_list(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| {
                    self.failed("BatchCreatePartition", &self.table_name(&table.name), e)
                })?;
            let refused = answer.errors().iter().find(|e| {
                e.error_detail()
                    .and_then(|d| d.error_code())
                    .is_none_or(|code| !code.contains("AlreadyExists"))
            });
            if let Some(refused) = refused {
                let detail = refused.error_detail();
                return Err(Error::Store(format!(
                    "Glue BatchCreatePartition {}.{} failed for partition {:?}: {}: {}",
                    self.settings.database,
                    table.name,
                    refused.partition_values(),
                    detail
                        .and_then(|d| d.error_code())
                        .unwrap_or("unknown error"),
                    detail.and_then(|d| d.error_message()).unwrap_or_default()
                )));
            }
        }
        let Some(table) = self.streams.get_mut(stream) else {
            return Ok(0);
        };
        let count = table.pending.len();
        if self.added.len() + count > REMEMBERED_PARTITIONS {
            self.added.clear();
        }
        for folders in table.pending.drain(..) {
            self.added.insert(format!("{}/{folders}", table.name));
        }
        tracing::info!(
            "Glue: table {}.{}: {count} partitions added",
            self.settings.database,
            table.name
        );
        Ok(count)
    }

    /// A partition's values from its folders: the date folders' text (after `name=`
    /// where they are named), then the `partition_by` values, unescaped.
    fn values(&self, folders: &str, partition_keys: &[String]) -> Result<Vec<String>, String> {
        let segments: Vec<&str> = folders.split('/').filter(|s| !s.is_empty()).collect();
        let date_keys = &self.settings.date_keys;
        if segments.len() != date_keys.len() + partition_keys.len() {
            return Err(format!(
                "the folders {folders:?} do not match the partition keys {:?}",
                self.partition_key_names(partition_keys)
            ));
        }
        let (dates, parts) = segments.split_at(date_keys.len());
        let dates = dates
            .iter()
            .zip(date_keys)
            .map(|(segment, key)| match key.hive {
                true => segment
                    .split_once('=')
                    .map_or(*segment, |(_, v)| v)
                    .to_owned(),
                false => (*segment).to_owned(),
            });
        let parts = parts.iter().map(|segment| {
            let value = segment.split_once('=').map_or(*segment, |(_, v)| v);
            crate::config::percent_decoded(value).unwrap_or_else(|| value.to_owned())
        });
        Ok(dates.chain(parts).collect())
    }
}

/// The folders between a table's folder and an object's file name.
fn folders_of<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let rest = key.strip_prefix(prefix)?;
    Some(rest.rfind('/').map_or("", |at| &rest[..at]))
}

fn glue_columns(columns: impl Iterator<Item = (String, String)>) -> Result<Vec<GlueColumn>> {
    columns
        .map(|(name, ty)| {
            GlueColumn::builder()
                .name(name)
                .r#type(ty)
                .build()
                .map_err(|e| Error::Store(format!("Glue column: {e}")))
        })
        .collect()
}

/// Partition keys must differ from each other and from every column.
fn check_keys(keys: &[String], columns: &[(String, String)]) -> Result<(), String> {
    for (i, key) in keys.iter().enumerate() {
        if keys[..i].contains(key) {
            return Err(format!(
                "two partition folders give the partition key {key:?}; name the date_partition_format folders or the partition_by entries apart"
            ));
        }
        if columns.iter().any(|(name, _)| name == key) {
            return Err(format!(
                "the partition key {key:?} is also a column of the stream, which a Glue table cannot hold; name the folder otherwise (a date_partition_format folder such as \"dt=%Y-%m-%d\", or a partition_by entry \"name=field\")"
            ));
        }
    }
    Ok(())
}

/// What an existing table says, to compare with this run's definition.
struct Existing {
    location: String,
    serde: String,
    keys: Vec<String>,
    columns: Vec<(String, String)>,
}

impl Existing {
    fn of(table: &Table) -> Existing {
        let storage = table.storage_descriptor();
        let pairs = |columns: &[GlueColumn]| -> Vec<(String, String)> {
            columns
                .iter()
                .map(|c| {
                    (
                        c.name().to_lowercase(),
                        c.r#type().unwrap_or("").to_lowercase(),
                    )
                })
                .collect()
        };
        Existing {
            location: storage.and_then(|s| s.location()).unwrap_or("").to_owned(),
            serde: storage
                .and_then(|s| s.serde_info())
                .and_then(|s| s.serialization_library())
                .unwrap_or("")
                .to_owned(),
            keys: pairs(table.partition_keys())
                .into_iter()
                .map(|(n, _)| n)
                .collect(),
            columns: storage.map(|s| pairs(s.columns())).unwrap_or_default(),
        }
    }

    /// The location, file type and partition keys must be this run's.
    fn check(&self, location: &str, keys: &[String], format: &FileFormat) -> Result<(), String> {
        if self.location.trim_end_matches('/') != location.trim_end_matches('/') {
            return Err(format!(
                "it exists with the location {:?}, not this stream's folder {location:?}; drop the table or point object_key_path at its folder",
                self.location
            ));
        }
        let serde = format.storage();
        let ours = serde
            .serde_info()
            .and_then(|s| s.serialization_library())
            .unwrap_or("");
        if self.serde != ours {
            return Err(format!(
                "it exists with the SerDe {:?}, but this run writes {} files ({ours}); drop the table or keep the file_type",
                self.serde,
                format.file_type.extension()
            ));
        }
        if self.keys != keys {
            return Err(format!(
                "it exists with the partition keys {:?}, but this run's folders give {keys:?}; keep date_partition_format and partition_by as they were, or drop the table",
                self.keys
            ));
        }
        Ok(())
    }
}

/// The table's columns with the ones `wanted` adds at the end. A column whose type
/// changed is an incompatible change; so, for CSV (read by position), is any column
/// that is not where the table has it.
fn widened(
    have: &[(String, String)],
    wanted: &[(String, String)],
    by_position: bool,
) -> Result<Vec<(String, String)>, String> {
    for (name, ty) in wanted {
        if let Some((_, old)) = have.iter().find(|(n, _)| n == name)
            && old != ty
        {
            return Err(format!(
                "column {name:?} changed its type from {old} to {ty}, which the files already stored under the table cannot follow; only added columns can be taken (drop the table, or keep the column's type with column_types)"
            ));
        }
    }
    if by_position {
        let moved = have
            .iter()
            .zip(wanted)
            .find(|((a, _), (b, _))| a != b)
            .map(|((a, _), (b, _))| (a, b));
        if let Some((old, new)) = moved {
            return Err(format!(
                "CSV columns are read by position, and column {new:?} now stands where the table has {old:?}; only columns added at the end can be taken"
            ));
        }
        if wanted.len() < have.len() {
            return Err(format!(
                "CSV columns are read by position, and column {:?} of the table is gone from the SCHEMA; only columns added at the end can be taken",
                have[wanted.len()].0
            ));
        }
    }
    let mut out = have.to_vec();
    out.extend(
        wanted
            .iter()
            .filter(|(name, _)| !have.iter().any(|(n, _)| n == name))
            .cloned(),
    );
    Ok(out)
}

/// An AWS service, for saying why one of its requests failed.
pub struct Service<'a> {
    /// The IAM action prefix (`glue`, `s3tables`).
    pub iam: &'a str,
    /// Where requests go, for "no answer from …".
    pub endpoint: &'a str,
    /// The setting that names the endpoint.
    pub setting: &'a str,
}

/// Whether Glue has the database (a missing one is `Ok(false)`, not an error).
pub async fn database_exists(
    client: &Client,
    name: &str,
) -> std::result::Result<bool, SdkError<GetDatabaseError, HttpResponse>> {
    match client.get_database().name(name).send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_entity_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Makes the database; one another writer made meanwhile is as good.
pub async fn create_database(
    client: &Client,
    name: &str,
    description: &str,
) -> std::result::Result<(), SdkError<CreateDatabaseError, HttpResponse>> {
    let input = DatabaseInput::builder()
        .name(name)
        .description(description)
        .build()
        .map_err(SdkError::construction_failure)?;
    match client.create_database().database_input(input).send().await {
        Ok(_) => {
            tracing::info!("Glue: made database {name:?}");
            Ok(())
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_already_exists_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Why an AWS request failed, in one line: the service's code and message (and the
/// permission an AccessDenied asks for), or why no answer came. Never the SDK's debug
/// dump.
pub fn failure_reason<E>(service: &Service, operation: &str, e: SdkError<E, HttpResponse>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let status = e
        .raw_response()
        .map(|r| format!("HTTP {}", r.status().as_u16()));
    match e.as_service_error() {
        Some(answer) => {
            let code = answer
                .code()
                .or(status.as_deref())
                .unwrap_or("unknown error");
            let mut reason = code.to_owned();
            if let Some(message) = answer.message().filter(|m| !m.is_empty()) {
                reason = format!("{reason}: {message}");
            }
            if code.contains("AccessDenied") {
                reason.push_str(&format!(
                    "; the credentials need {}:{operation}",
                    service.iam
                ));
            }
            reason
        }
        None => {
            let detail = describe(&e);
            match e {
                _ if detail.contains("credentials") => {
                    format!("could not get credentials: {detail}")
                }
                SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
                    "no answer from {} (check {} and the network): {detail}",
                    service.endpoint, service.setting
                ),
                _ => detail,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TypeOptions;
    use serde_json::json;

    fn columns(
        properties: serde_json::Value,
        file_type: FileType,
        portable: bool,
    ) -> Vec<(String, String)> {
        let options = TypeOptions {
            portable_types: portable,
            ..TypeOptions::default()
        };
        let text = json!({ "properties": properties }).to_string();
        let schema = StreamSchema::from_json("s", &text, &[], &options).unwrap();
        table_columns(&schema, file_type).unwrap()
    }

    fn every_type() -> serde_json::Value {
        json!({
            "ID": {"type": "integer"},
            "ratio": {"type": ["null", "number"]},
            "price": {"type": "number", "multipleOf": 0.01, "maximum": 1e8, "minimum": -1e8},
            "huge": {"type": "number", "multipleOf": 1, "maximum": 1e50},
            "ok": {"type": "boolean"},
            "name": {"type": "string"},
            "at": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "t": {"type": "string", "format": "time"},
            "any": {},
            "tags": {"type": "array", "items": {"type": "string", "format": "date"}},
            "o": {"type": "object", "properties": {"Zip": {"type": "integer"}, "l": {"type": "array", "items": {"type": "number"}}}},
        })
    }

    fn types(columns: &[(String, String)]) -> Vec<&str> {
        columns.iter().map(|(_, t)| t.as_str()).collect()
    }

    /// What `every_type` becomes in a Parquet (portable) or JSONL table alike.
    const EVERY_TYPE_COLUMNS: [&str; 12] = [
        "bigint",
        "double",
        "decimal(11,2)",
        "string",
        "boolean",
        "string",
        "timestamp",
        "date",
        "string",
        "string",
        "array<date>",
        "struct<zip:bigint,l:array<double>>",
    ];

    #[test]
    fn parquet_types_are_what_the_portable_encoder_writes() {
        let got = columns(every_type(), FileType::Parquet, true);
        assert_eq!(got[0].0, "id");
        assert_eq!(types(&got), EVERY_TYPE_COLUMNS);
    }

    #[test]
    fn parquet_time_and_wide_decimals_need_portable() {
        let options = TypeOptions::default();
        for property in [
            json!({"type": "string", "format": "time"}),
            json!({"type": "number", "multipleOf": 1, "maximum": 1e50}),
        ] {
            let text = json!({ "properties": {"x": property} }).to_string();
            let schema = StreamSchema::from_json("s", &text, &[], &options).unwrap();
            let e = table_columns(&schema, FileType::Parquet).unwrap_err();
            assert!(
                e.contains("column \"x\"") && e.contains("\"parquet_compatibility\": \"portable\""),
                "{e}"
            );
        }
    }

    #[test]
    fn jsonl_types_read_the_json_text() {
        let got = columns(every_type(), FileType::Jsonl, false);
        assert_eq!(types(&got), EVERY_TYPE_COLUMNS);
        // Undeclared fields are merged back into the JSON object: no column of their own.
        let extra = json!({"id": {"type": "integer"}, "o": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true}});
        let text = json!({ "properties": extra, "additionalProperties": true }).to_string();
        let schema = StreamSchema::from_json("s", &text, &[], &TypeOptions::default()).unwrap();
        let got = table_columns(&schema, FileType::Jsonl).unwrap();
        assert_eq!(
            got,
            [
                ("id".into(), "bigint".into()),
                ("o".into(), "struct<a:string>".into())
            ]
        );
        let got = table_columns(&schema, FileType::Parquet).unwrap();
        assert_eq!(got[2], ("_sdc_extra".into(), "string".into()));
    }

    #[test]
    fn csv_columns_are_text() {
        let got = columns(every_type(), FileType::Csv, false);
        assert!(types(&got).iter().all(|t| *t == "string"));
        assert_eq!(got.len(), 12);
    }

    #[test]
    fn names_that_case_makes_one_are_refused() {
        let text =
            json!({"properties": {"a": {"type": "integer"}, "A": {"type": "integer"}}}).to_string();
        let schema = StreamSchema::from_json("s", &text, &[], &TypeOptions::default()).unwrap();
        let e = table_columns(&schema, FileType::Parquet).unwrap_err();
        assert!(e.contains("differ only in case"), "{e}");
    }

    #[test]
    fn date_keys_from_the_folders() {
        let names = |format: &str| -> Vec<(String, bool)> {
            date_keys(format)
                .unwrap()
                .into_iter()
                .map(|k| (k.name, k.hive))
                .collect()
        };
        assert!(names("").is_empty());
        assert_eq!(
            names("%Y/%m/%d"),
            [
                ("year".into(), false),
                ("month".into(), false),
                ("day".into(), false)
            ]
        );
        assert_eq!(names("%Y%m%d"), [("day".into(), false)]);
        assert_eq!(
            names("Year=%Y/month=%m"),
            [("year".into(), true), ("month".into(), true)]
        );
        assert_eq!(names("dt=%Y-%m-%d"), [("dt".into(), true)]);
        assert_eq!(names("exports"), [("date_partition".into(), false)]);
        assert!(date_keys("%Y/%Y").unwrap_err().contains("two folders"));
        assert!(date_keys("%D").unwrap_err().contains("inside a folder"));
    }

    #[test]
    fn widening_takes_added_columns_only() {
        let have = vec![
            ("a".to_owned(), "bigint".to_owned()),
            ("b".to_owned(), "string".to_owned()),
        ];
        let pair = |n: &str, t: &str| (n.to_owned(), t.to_owned());
        let wanted = vec![pair("b", "string"), pair("a", "bigint"), pair("c", "date")];
        assert_eq!(
            widened(&have, &wanted, false).unwrap(),
            [pair("a", "bigint"), pair("b", "string"), pair("c", "date")]
        );
        // A column gone from the SCHEMA stays in the table (Parquet and JSON read by name).
        assert_eq!(widened(&have, &[pair("a", "bigint")], false).unwrap(), have);
        let e = widened(&have, &[pair("a", "double")], false).unwrap_err();
        assert!(
            e.contains("column \"a\" changed its type from bigint to double"),
            "{e}"
        );
        // CSV is read by position.
        let e = widened(&have, &wanted, true).unwrap_err();
        assert!(
            e.contains("column \"b\" now stands where the table has \"a\""),
            "{e}"
        );
        let e = widened(&have, &[pair("a", "bigint")], true).unwrap_err();
        assert!(e.contains("\"b\" of the table is gone"), "{e}");
        let more = [
            pair("a", "bigint"),
            pair("b", "string"),
            pair("c", "string"),
        ];
        assert_eq!(widened(&have, &more, true).unwrap(), more);
    }

    #[test]
    fn partition_keys_must_not_be_columns() {
        let columns = [("year".to_owned(), "bigint".to_owned())];
        let e = check_keys(&["year".into()], &columns).unwrap_err();
        assert!(e.contains("\"year\" is also a column"), "{e}");
        let e = check_keys(&["day".into(), "day".into()], &[]).unwrap_err();
        assert!(e.contains("two partition folders"), "{e}");
        assert!(check_keys(&["day".into(), "country_part".into()], &columns).is_ok());
    }

    #[test]
    fn folders_between_the_table_and_the_file() {
        assert_eq!(
            folders_of("p/t/2024/x=1/f.parquet", "p/t/"),
            Some("2024/x=1")
        );
        assert_eq!(folders_of("p/t/f.parquet", "p/t/"), Some(""));
        assert_eq!(folders_of("q/t/f.parquet", "p/t/"), None);
    }
}
