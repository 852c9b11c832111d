//! Settings: the one table of every key the target accepts, and the validated `Config`.
//!
//! Owns: merging config files, checking every value before any input is read, and the
//! `Secret` wrapper that keeps credentials out of logs and `Debug` output.
//! Must not touch: the network. Region and credential discovery belong to `store::s3`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use arrow::datatypes::TimeUnit;
use serde_json::{Map, Value};

use crate::batch::{DecodeOptions, InexactNumbers};
use crate::crowemi;
use crate::encode::{Codec, Compression, CsvDialect, FileType, Output, ParquetCompatibility};
use crate::error::{Error, Result};
use crate::glue::GlueSettings;
use crate::mage::as_boolean;
use crate::object_key::{DEFAULT_TEMPLATE, KeyOptions, KeyTemplate, is_valid_strftime};
use crate::partition::PartitionBy;
use crate::schema::{ColumnType, HeaderCase, TypeOptions, parse_type_name};
pub use crate::secret::Secret;
use crate::tables::partition::SpecSetting;
use crate::tables::{CatalogKind, TableSettings, sql};

/// What form a setting's value takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Text that must never be shown.
    Secret,
    /// A whole number, at least the given minimum (a JSON number or a string of digits).
    Integer {
        min: u64,
    },
    /// One of a fixed set of words, matched without regard to case.
    Choice(&'static [&'static str]),
    /// A strftime pattern, checked by parsing it.
    Strftime,
    /// true or false (or the strings "true" and "false").
    Boolean,
    /// `column_types`: {"stream": {"column": "type"}}.
    ColumnTypes,
    /// `object_key_template`: text with placeholders, checked by parsing it.
    KeyTemplate,
    /// `partition_by`: a list of fields, or lists by stream.
    PartitionBy,
    /// An object of text values (`iceberg_catalog_properties`), or its JSON text.
    Properties,
}

/// One accepted key: the single source for validation and documentation.
#[derive(Debug)]
pub struct Setting {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub default: Option<&'static str>,
    pub description: &'static str,
    /// Other names the key is accepted under (a peer's name for the same setting).
    pub aliases: &'static [&'static str],
}

const fn setting(name: &'static str, kind: Kind, description: &'static str) -> Setting {
    Setting {
        name,
        kind,
        required: false,
        default: None,
        description,
        aliases: &[],
    }
}

const fn required(mut s: Setting) -> Setting {
    s.required = true;
    s
}

const fn with_default(mut s: Setting, default: &'static str) -> Setting {
    s.default = Some(default);
    s
}

const fn with_aliases(mut s: Setting, aliases: &'static [&'static str]) -> Setting {
    s.aliases = aliases;
    s
}

pub const FILE_TYPES: &[&str] = &["csv", "parquet", "jsonl"];
pub const HEADER_FORMATS: &[&str] = &["upper", "lower"];
pub const INVALID_RECORDS: &[&str] = &["fail", "skip", "quarantine"];
pub const UNKNOWN_FIELDS: &[&str] = &["warn", "fail"];
pub const UNKNOWN_MESSAGE_TYPES: &[&str] = &["fail", "warn"];
pub const INEXACT_NUMBERS: &[&str] = &["fail", "warn"];
pub const LONE_SURROGATES: &[&str] = &["invalid", "replace"];
pub const TIMESTAMP_UNITS: &[&str] = &["us", "ms", "ns"];
pub const PARQUET_COMPATIBILITIES: &[&str] = &["portable", "arrow"];
pub const COMPRESSIONS: &[&str] = &["none", "gzip", "zstd", "snappy", "lz4"];
pub const ENCRYPTIONS: &[&str] = &["AES256", "aws:kms"];
/// The storage classes a PutObject may ask for (a unit test in `store::s3` checks each
/// against the SDK's enum).
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
    "REDUCED_REDUNDANCY",
    "EXPRESS_ONEZONE",
];
pub const LOAD_METHODS: &[&str] = &["append", "overwrite"];
pub const TABLE_FORMATS: &[&str] = &["files", "iceberg"];
pub const CATALOG_TYPES: &[&str] = &["rest", "glue", "s3tables", "sql"];
pub const LOG_FORMATS: &[&str] = &["text", "json"];
pub const CONDITIONAL_WRITES: &[&str] = &["auto", "on", "off"];
pub const CHECKSUM_ALGORITHMS: &[&str] = &["auto", "crc64nvme", "crc32c", "md5", "none"];

pub const DEFAULT_MAX_BATCH_ROWS: u64 = 1_000_000;
pub const DEFAULT_MAX_BATCH_BYTES: u64 = 256 * 1024 * 1024;
pub const DEFAULT_MAX_CONCURRENT_UPLOADS: u64 = 4;
/// S3's smallest part (but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// Every key the target accepts, in the order the documentation lists them.
pub const SETTINGS: &[Setting] = &[
    setting(
        "bucket",
        Kind::Text,
        "Bucket name, without `s3://`. Required, unless table_format is `iceberg` (then it is where rejected records go, if any).",
    ),
    required(setting(
        "file_type",
        Kind::Choice(FILE_TYPES),
        "Object format: `csv`, `parquet` or `jsonl`.",
    )),
    with_aliases(
        setting(
            "object_key_path",
            Kind::Text,
            "Key prefix, without `s3://`, bucket or table. Leading and trailing slashes are dropped. Required, unless table_format is `iceberg`. Also read as `prefix` (crowemi/target-s3's name).",
        ),
        &["prefix"],
    ),
    setting(
        "column_header_format",
        Kind::Choice(HEADER_FORMATS),
        "Case of column names in the file: `upper`, `lower`, or null to keep the schema's names.",
    ),
    setting(
        "date_partition_format",
        Kind::Strftime,
        "strftime pattern for a partition folder from the batch's UTC time, e.g. `%Y%m%d` or `year=%Y/month=%m`; null for none.",
    ),
    with_aliases(
        setting(
            "table",
            Kind::Text,
            "Table folder for every stream (as a Mage pipeline sets it); by default each stream's own name, made key-safe. Also read as `stream_name_path_override` (crowemi/target-s3's name).",
        ),
        &["stream_name_path_override"],
    ),
    setting(
        "aws_access_key_id",
        Kind::Text,
        "Static access key id. When absent, the standard AWS credential chain is used.",
    ),
    setting(
        "aws_secret_access_key",
        Kind::Secret,
        "Static secret access key, paired with aws_access_key_id.",
    ),
    setting(
        "aws_session_token",
        Kind::Secret,
        "Session token for temporary static credentials.",
    ),
    setting(
        "aws_profile",
        Kind::Text,
        "Named profile from the AWS shared config files, used when no static keys are given.",
    ),
    setting(
        "aws_region",
        Kind::Text,
        "Bucket region. When absent: the AWS environment's or profile's region; with aws_endpoint set, us-east-1.",
    ),
    setting(
        "aws_endpoint",
        Kind::Text,
        "Endpoint URL of an S3-compatible service (http:// or https://), addressed path-style; or `file:///absolute/folder` to write into a local folder instead (the bucket is a folder under it; no AWS credentials are used).",
    ),
    setting(
        "role_arn",
        Kind::Text,
        "IAM role to assume through STS with the credentials above.",
    ),
    with_default(
        setting(
            "role_session_name",
            Kind::Text,
            "Session name for the assumed role.",
        ),
        "target-s3",
    ),
    setting(
        "external_id",
        Kind::Text,
        "External id the role's trust policy asks for, if any.",
    ),
    with_default(
        setting(
            "preflight",
            Kind::Boolean,
            "Check at start-up, before any input is read, that the endpoint answers, the credentials are valid and the bucket exists (one ListObjectsV2 of at most one key under the prefix). Access denied to that call is reported as a warning, since the load itself needs only s3:PutObject; with load_method overwrite it is an error, since replacing needs s3:ListBucket and s3:DeleteObject. For a local folder: that it can be written.",
        ),
        "true",
    ),
    with_default(
        setting(
            "conditional_writes",
            Kind::Choice(CONDITIONAL_WRITES),
            "Send every data object, rejected-records object and manifest with `If-None-Match: *`, so the store refuses to replace an object that is already there (412 PreconditionFailed ends the run, naming the key: target-s3 never replaces an object). `auto`: on for Amazon S3 (no aws_endpoint, or an amazonaws.com one); for other endpoints, on when the start-up check (preflight) has seen the store refuse a second write to its probe key, else off. `on`, `off`.",
        ),
        "auto",
    ),
    with_default(
        setting(
            "checksum_algorithm",
            Kind::Choice(CHECKSUM_ALGORITHMS),
            "Full-object checksum every upload carries as a plain header, for the store to verify on receipt (per part and for the whole object on multipart uploads; no aws-chunked trailers): `crc64nvme`, `crc32c`, `md5` (Content-MD5, per part), `none`. `auto`: crc64nvme for Amazon S3; for other endpoints, the strongest the store is seen to verify at the start-up check (preflight), else none. A mismatch reported by the store is retried like a transient error.",
        ),
        "auto",
    ),
    with_default(
        setting(
            "max_attempts",
            Kind::Integer { min: 1 },
            "Attempts per S3 request; throttling (503 SlowDown), 5xx answers, timeouts and broken connections are retried with exponential backoff and jitter.",
        ),
        "8",
    ),
    with_default(
        setting(
            "request_timeout_seconds",
            Kind::Integer { min: 1 },
            "Time one attempt of an S3 request may take before it is retried.",
        ),
        "120",
    ),
    with_default(
        setting(
            "shutdown_timeout_seconds",
            Kind::Integer { min: 0 },
            "On SIGTERM, SIGINT or SIGHUP: how long uploads already completing may take before the target aborts them (SIGQUIT gives them none); open objects are aborted at once.",
        ),
        "30",
    ),
    with_default(
        setting(
            "max_line_bytes",
            Kind::Integer { min: 1024 },
            "Longest input line accepted; a longer one stops the run with its line number.",
        ),
        "67108864",
    ),
    with_default(
        setting(
            "progress_interval_seconds",
            Kind::Integer { min: 1 },
            "Seconds between progress lines on stderr (records/s over the last interval, records and bytes per stream, objects stored).",
        ),
        "5",
    ),
    with_default(
        setting(
            "log_format",
            Kind::Choice(LOG_FORMATS),
            "Log lines on stderr: `text` (one timestamp each; none when Meltano runs the target, since Meltano stamps every line) or `json`: one object a line in the Singer SDK's structured form (`level`, `message`, `ts`, `pid`, `logger_name`, `thread_name`, `app_name`), which Meltano reads for a plugin with the `structured-logging` capability and shows at the line's own level. The `--log-format` flag overrides it; Mage mode's `--log_to_stdout 1` keeps Mage's form.",
        ),
        "text",
    ),
    with_default(
        setting(
            "validate_records",
            Kind::Boolean,
            "Check every value against its column's type. When false, strings holding numbers or booleans are taken into such columns and any value into a string column as its JSON text; what still does not fit goes to invalid_records.",
        ),
        "true",
    ),
    with_default(
        setting(
            "invalid_records",
            Kind::Choice(INVALID_RECORDS),
            "A record whose values do not fit its schema: `fail` stops the run; `skip` drops it with a warning and a count; `quarantine` stores its raw line and the reason as JSONL under `<object_key_path>/<table>/_rejected/` and goes on.",
        ),
        "fail",
    ),
    with_default(
        setting(
            "unknown_fields",
            Kind::Choice(UNKNOWN_FIELDS),
            "Record fields the schema does not declare: `warn` ignores them with one warning per stream and field; `fail` treats the record as invalid.",
        ),
        "warn",
    ),
    with_default(
        setting(
            "unknown_message_types",
            Kind::Choice(UNKNOWN_MESSAGE_TYPES),
            "A message whose type the target does not know (not SCHEMA, RECORD, STATE, ACTIVATE_VERSION or BATCH), which may carry records: `fail` stops the run at it, before any STATE after it is written; `warn` skips such messages and counts them.",
        ),
        "fail",
    ),
    with_default(
        setting(
            "inexact_numbers",
            Kind::Choice(INEXACT_NUMBERS),
            "A `number` value a float64 cannot hold exactly (an integer beyond 2^53, more digits than survive the round trip): `fail` treats the record as invalid and names the column; `warn` stores the nearest float64 and counts it.",
        ),
        "fail",
    ),
    with_default(
        setting(
            "lone_surrogates",
            Kind::Choice(LONE_SURROGATES),
            "A record string holding an escape of half a UTF-16 character (`\\ud800` without its other half), which is not Unicode text: `invalid` makes the record invalid (see `invalid_records`), naming the field; `replace` stores U+FFFD in its place.",
        ),
        "invalid",
    ),
    with_default(
        setting(
            "timestamp_unit",
            Kind::Choice(TIMESTAMP_UNITS),
            "Unit of date-time columns: `us` (what Spark, Athena and Trino read best), `ms` or `ns` (years 1677-2262 only; in Parquet only with parquet_compatibility `arrow`, since Spark 3 cannot read it). Digits below the unit must be zeros; others make the record invalid.",
        ),
        "us",
    ),
    with_default(
        setting(
            "parquet_compatibility",
            Kind::Choice(PARQUET_COMPATIBILITIES),
            "Which readers Parquet objects are shaped for. `portable`: only types that Spark 3, Athena/Trino, Hive, Redshift Spectrum and Snowflake read: `format: time` columns as text `HH:MM:SS[.ffffff]` and decimals wider than 38 digits as text of their digits (column_types included), and a footer that tells Spark and Hive the dates are proleptic Gregorian, so they read years 0001-1581 without a setting of theirs. `arrow`: Arrow's own types (TIME, decimals up to 76 digits) for pyarrow, DuckDB, polars and DataFusion, which Spark 3 and Athena cannot open. CSV and JSONL are unaffected.",
        ),
        "portable",
    ),
    setting(
        "column_types",
        Kind::ColumnTypes,
        "Per-stream column types replacing the schema's: {\"stream\": {\"column\": \"decimal(38,9)\"}}. Types: decimal(P,S), string, float64, int64, boolean, timestamp, date, time, json.",
    ),
    with_aliases(
        with_default(
            setting(
                "max_batch_rows",
                Kind::Integer { min: 1 },
                "Records per object: a stream's object is completed (and the STATE after its records can be written) when it holds this many. Also read as `max_batch_size` (crowemi/target-s3's name).",
            ),
            "1000000",
        ),
        &["max_batch_size"],
    ),
    with_default(
        setting(
            "max_batch_bytes",
            Kind::Integer { min: 1024 },
            "Bytes of record JSON per object; an object is completed when its records reach this size.",
        ),
        "268435456",
    ),
    with_default(
        setting(
            "max_batch_age_seconds",
            Kind::Integer { min: 1 },
            "An object is completed once its first record is this old (checked as input arrives), so STATE keeps moving on slow streams.",
        ),
        "300",
    ),
    with_default(
        setting(
            "row_group_bytes",
            Kind::Integer { min: 1024 },
            "Bytes of record JSON buffered per stream before they are encoded into the open object (a Parquet row group).",
        ),
        "16777216",
    ),
    with_default(
        setting(
            "max_buffer_bytes",
            Kind::Integer { min: 1024 },
            "Memory budget, in bytes of record JSON, for the records all streams hold before encoding, plus one part per open object and the empty column buffers of each stream holding records; past it the largest buffer is encoded first, and the least recently written object completed when too many are open.",
        ),
        "67108864",
    ),
    with_default(
        setting(
            "part_size_bytes",
            Kind::Integer { min: MIN_PART_SIZE },
            "Multipart part size: an object larger than this is uploaded in parts while it is being encoded (at least 5 MiB).",
        ),
        "8388608",
    ),
    with_default(
        setting(
            "max_concurrent_uploads",
            Kind::Integer { min: 1 },
            "Upload requests (parts or whole objects) in flight at once; encoding waits when all are busy.",
        ),
        "4",
    ),
    with_default(
        setting(
            "parallel_decoding",
            Kind::Boolean,
            "Decode records on two threads when the machine has two cores or more: a second thread decodes the back half of each block of input, and its rows are taken in input order. `false` keeps decoding to one core.",
        ),
        "true",
    ),
    with_default(
        setting(
            "add_metadata_columns",
            Kind::Boolean,
            "Append the Singer metadata columns to every stream, after its own: `_sdc_extracted_at` (the RECORD's time_extracted), `_sdc_received_at`, `_sdc_batched_at`, `_sdc_deleted_at` (from the record), `_sdc_sequence` and `_sdc_table_version` (the RECORD's version or the last ACTIVATE_VERSION).",
        ),
        "false",
    ),
    setting(
        "compression",
        Kind::Choice(COMPRESSIONS),
        "CSV and JSONL: `none` (default), `gzip` or `zstd`, of the whole object (keys end `.gz` / `.zst`, Content-Encoding set). Parquet: `snappy` (default), `zstd`, `gzip`, `lz4` (LZ4_RAW) or `none`, of the pages inside the file.",
    ),
    setting(
        "compression_level",
        Kind::Integer { min: 0 },
        "Level for `gzip` (0-9, default 6) or `zstd` (1-22, default 3); other codecs take none.",
    ),
    with_aliases(
        with_default(
            setting(
                "csv_delimiter",
                Kind::Text,
                "CSV field delimiter: one ASCII character; `\\t` or `tab` for a tab. Also read as `delimiter`.",
            ),
            ",",
        ),
        &["delimiter"],
    ),
    with_aliases(
        with_default(
            setting(
                "csv_quote_character",
                Kind::Text,
                "CSV quote character: one ASCII character, other than the delimiter. Also read as `quotechar`.",
            ),
            "\"",
        ),
        &["quotechar"],
    ),
    with_default(
        setting(
            "csv_header",
            Kind::Boolean,
            "Write a header row of column names first in every CSV object.",
        ),
        "true",
    ),
    with_default(
        setting(
            "csv_null_text",
            Kind::Text,
            "CSV text for a null (e.g. `\\N`). Empty by default, and then an empty string is written as two quotes; a value that reads the same as the null text is always quoted.",
        ),
        "",
    ),
    with_default(
        setting(
            "flatten_max_depth",
            Kind::Integer { min: 0 },
            "Levels of nested objects (with properties) turned into columns of their own, named `parent__child`; deeper objects stay nested (JSON text in CSV). 0: off.",
        ),
        "0",
    ),
    with_default(
        setting(
            "object_key_template",
            Kind::KeyTemplate,
            "Key of every object, from placeholders: {object_key_path} {table} {stream} {date_partition} {date:<strftime>} {partition} {run_id} {part} {uuid} {ext}; empty segments are dropped. It must hold {run_id} and {part}, or {uuid}, so no object overwrites another.",
        ),
        DEFAULT_TEMPLATE,
    ),
    setting(
        "partition_by",
        Kind::PartitionBy,
        "Record fields whose values make Hive-style folders at {partition}, each object holding one partition's rows: a list of `field` (folder `<column>_part=`, `country_part=FR/`), `field:<strftime>` (date and date-time fields; folder `<column>_<finest unit>=`, `created_at_month=2024-03/`) or `name=field:<strftime>` (a name no column of the stream has), for every stream (each must have the fields); or an object of such lists by stream name (streams not named are not partitioned). Either may also be given as its JSON text, as `meltano config set` and `TARGET_S3_PARTITION_BY` pass it.",
    ),
    setting(
        "server_side_encryption",
        Kind::Choice(ENCRYPTIONS),
        "Server-side encryption S3 applies to every object written (data, rejected records, manifests): `AES256` (SSE-S3) or `aws:kms` (SSE-KMS); null: the bucket's default. Ignored, with a warning, for a local folder.",
    ),
    setting(
        "kms_key_id",
        Kind::Text,
        "KMS key (id, ARN or alias) for `aws:kms`; null: the account's aws/s3 key. Only valid with server_side_encryption `aws:kms`; the credentials need kms:GenerateDataKey on it.",
    ),
    setting(
        "storage_class",
        Kind::Choice(STORAGE_CLASSES),
        "Storage class of every object written: STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER, GLACIER_IR, DEEP_ARCHIVE, REDUCED_REDUNDANCY or EXPRESS_ONEZONE; null: the bucket's default. Ignored, with a warning, for a local folder.",
    ),
    with_default(
        setting(
            "load_method",
            Kind::Choice(LOAD_METHODS),
            "`append` adds objects; `overwrite` replaces: at the end of a successful run, every object under `<object_key_path>/<table>/` that the run did not write is deleted, for each stream that received records or an ACTIVATE_VERSION. Needs s3:ListBucket and s3:DeleteObject. With table_format iceberg, each such table's rows are replaced by the run's in one snapshot at its end instead. STATE is held until the end of the run.",
        ),
        "append",
    ),
    setting(
        "mage_mode",
        Kind::Boolean,
        "Mage's conventions (see the README's Mage section): log lines with epoch-second timestamps, input lines that are not JSON skipped and counted, LOG lines relayed, `--catalog_json` honoured, empty strings read as unset, Mage's defaults (file_type `parquet`, aws_region `us-west-2`). Null: on when invoked as Mage runs a destination (`--log_to_stdout 1` with `--input_file_path` or `--config_json`, or `--test_connection` with `--config_json`).",
    ),
    setting(
        "mage_columns",
        Kind::Boolean,
        "Append `_mage_created_at` and `_mage_updated_at` (UTC timestamps: when the chunk of records was handed on for encoding, both the same) to every stream, as Mage's own destination adds them. Null: on in Mage mode, off otherwise.",
    ),
    with_default(
        setting(
            "include_process_date",
            Kind::Boolean,
            "Append `_PROCESS_DATE` (a UTC timestamp: when the chunk of records was handed on for encoding) to every stream, after its other columns, as crowemi/target-s3 does.",
        ),
        "false",
    ),
    with_default(
        setting(
            "manifest",
            Kind::Boolean,
            "Write a manifest per stream and run, `<object_key_path>/<table>/_manifests/<timestamp>-<run id>-<sequence>.json`, once all its objects are stored: Redshift COPY's manifest format (entries with url, mandatory and meta.content_length) plus record counts and the columns with their types. STATE is held until the manifests are stored.",
        ),
        "false",
    ),
    with_default(
        setting(
            "table_format",
            Kind::Choice(TABLE_FORMATS),
            "`files`: objects under `object_key_path` as the settings above lay them out. `iceberg`: every stream lands as an Apache Iceberg table `<iceberg_namespace>.<table>` (Parquet data files under the table's location, one append commit per flush, STATE after the commit): see the README's Iceberg section.",
        ),
        "files",
    ),
    setting(
        "iceberg_catalog_type",
        Kind::Choice(CATALOG_TYPES),
        "The Iceberg catalog: `rest` (the Iceberg REST catalog API: Polaris, Lakekeeper, Nessie, Gravitino, S3 Tables' and Glue's REST endpoints, SeaweedFS), `glue` (the AWS Glue Data Catalog: a database per namespace, tables Athena, EMR and Spark read), `s3tables` (an Amazon S3 Tables table bucket) or `sql` (a SQLite file or PostgreSQL database in the layout of Iceberg's JDBC catalog and pyiceberg's SqlCatalog); Glue and S3 Tables with the run's AWS credentials. Required with table_format `iceberg`.",
    ),
    setting(
        "iceberg_catalog_uri",
        Kind::Text,
        "REST: the catalog's base URL (`https://…/iceberg`, without `/v1`), required. SQL: `sqlite:///` and the file's absolute path, `sqlite:////var/lib/catalog.db` (made if missing) or `postgresql://user[:password]@host[:port]/database[?sslmode=…]` (the password is kept out of messages; or give it as iceberg_credential), required. Glue, S3 Tables: the service's endpoint URL, for a compatible test server; null: AWS's for the region (aws_endpoint is not used for the catalog).",
    ),
    setting(
        "iceberg_warehouse",
        Kind::Text,
        "REST: the warehouse name or location the catalog expects (its `warehouse` property). Glue, SQL: `s3://bucket/prefix`, required: a new table goes to `<prefix>/<namespace>/<table>`. S3 Tables: the table bucket's ARN, required.",
    ),
    setting(
        "iceberg_namespace",
        Kind::Text,
        "Namespace of every stream's table, made if missing; levels separated by dots (`raw.sales`). Required with table_format `iceberg`.",
    ),
    setting(
        "iceberg_credential",
        Kind::Secret,
        "REST: OAuth2 client credentials `client_id:client_secret`, exchanged for a token at the catalog (or `oauth2-server-uri`). SQL: the database password, if not in iceberg_catalog_uri. Never logged.",
    ),
    setting(
        "iceberg_catalog_properties",
        Kind::Properties,
        "Extra catalog properties passed through as they are, an object of text values (`token`, `oauth2-server-uri`, `scope`, `header.X-Iceberg-Access-Delegation`, …), or its JSON text. SQL: `name`, the catalog name its rows are keyed by (default `default`, the name pyiceberg's `load_catalog()` opens), and `pool.max-connections`.",
    ),
    setting(
        "iceberg_partition_spec",
        Kind::PartitionBy,
        "Partitioning of the tables this run makes: a list of `column` (identity), `year(column)`, `month(column)`, `day(column)`, `hour(column)`, `bucket(N, column)` or `truncate(W, column)`, for every stream (each must have the columns); or an object of such lists by stream name (streams not named: unpartitioned). Checked against each stream's columns at its SCHEMA. A table that exists keeps its own partitioning; a different spec given for it is refused. Either may also be given as its JSON text.",
    ),
    with_default(
        setting(
            "glue_catalog",
            Kind::Boolean,
            "Register each stream's folder as a table in the AWS Glue Data Catalog (`glue_database`), with the SCHEMA's columns and the partition folders as partition keys, and add every new partition once its objects are stored (before the STATE covering them). Queryable by Athena at once: see the README's Glue section.",
        ),
        "false",
    ),
    setting(
        "glue_database",
        Kind::Text,
        "The Glue database of the streams' tables, made if missing. Required with glue_catalog.",
    ),
    setting(
        "glue_endpoint",
        Kind::Text,
        "Glue's endpoint URL; null: AWS's for the region (aws_endpoint is not used for Glue).",
    ),
    with_default(
        setting(
            "iceberg_commit_interval_seconds",
            Kind::Integer { min: 0 },
            "At most one commit per table per this many seconds (files stored meanwhile wait, and so does the STATE after them), plus one at the end of the run. 0: a commit after every flush.",
        ),
        "60",
    ),
];

/// What happens to a record whose values do not fit its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidRecords {
    Fail,
    Skip,
    Quarantine,
}

/// How to reach the bucket. Region and credentials not given here are discovered later.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub role_arn: Option<String>,
    pub role_session_name: String,
    pub external_id: Option<String>,
}

/// How to survive a bad network, a signal or a hostile input.
#[derive(Debug, Clone)]
pub struct Reliability {
    pub preflight: bool,
    /// `auto`, `on` or `off`.
    pub conditional_writes: String,
    /// `auto` or an algorithm's name.
    pub checksum_algorithm: String,
    pub max_attempts: u32,
    pub request_timeout: std::time::Duration,
    pub shutdown_timeout: std::time::Duration,
    pub max_line_bytes: usize,
    pub progress_interval: std::time::Duration,
}

/// A validated configuration: every value here has passed its checks.
#[derive(Debug, Clone)]
pub struct Config {
    pub bucket: String,
    pub file_type: FileType,
    /// Compression and the CSV dialect.
    pub output: Output,
    /// Normalised: no leading, trailing or doubled slashes; may be empty.
    pub object_key_path: String,
    /// Normalised like `object_key_path`.
    pub date_partition_format: Option<String>,
    pub table: Option<String>,
    pub object_key_template: KeyTemplate,
    pub partition_by: PartitionBy,
    pub aws: AwsSettings,
    /// Column names, timestamp unit and `column_types`.
    pub types: TypeOptions,
    pub decode: DecodeOptions,
    pub invalid_records: InvalidRecords,
    /// Whether messages of unknown types are skipped (with a count) rather than fatal.
    pub skip_unknown_messages: bool,
    pub limits: Limits,
    pub reliability: Reliability,
    pub store: StoreSettings,
    /// `table_format: iceberg`: the catalog and namespace of the streams' tables.
    pub tables: Option<TableSettings>,
    /// `glue_catalog`: the Glue database that registers each stream's folder.
    pub glue: Option<GlueSettings>,
    /// `mage_mode`: Mage's conventions for input lines and logs (see `mage`).
    pub mage: bool,
    /// `log_format: json` (read by main before the rest, to set up logging).
    pub log_json: bool,
}

/// Where objects go, how S3 keeps them, and what a run leaves behind besides them.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `aws_endpoint: file:///dir`: objects go to `<dir>/<bucket>/<key>` instead of S3.
    pub local_folder: Option<PathBuf>,
    /// `AES256` or `aws:kms`, as S3 spells them.
    pub server_side_encryption: Option<String>,
    pub kms_key_id: Option<String>,
    pub storage_class: Option<String>,
    pub load_method: LoadMethod,
    pub manifest: bool,
}

impl StoreSettings {
    /// Whether STATE waits for the end of the run: the run's manifests and deletions
    /// make it one unit, and a STATE written before them could let a re-run skip
    /// records that no manifest lists or that a replacement would delete.
    pub fn holds_state(&self) -> bool {
        self.manifest || self.load_method == LoadMethod::Overwrite
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMethod {
    Append,
    Overwrite,
}

/// Sizes that bound objects and memory.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_batch_rows: usize,
    pub max_batch_bytes: usize,
    pub max_batch_age: std::time::Duration,
    pub row_group_bytes: usize,
    pub max_buffer_bytes: usize,
    pub part_size: usize,
    pub max_concurrent_uploads: usize,
    /// Whether a second thread decodes records (see `parallel`).
    pub parallel_decoding: bool,
}

/// Reads and merges the sources in order (later keys win), without validating.
pub fn merge(sources: &[Source]) -> Result<Map<String, Value>> {
    let mut merged = Map::new();
    for source in sources {
        match source {
            Source::Env => merged.extend(from_environment(std::env::vars())),
            Source::File(path) => merged.extend(read_object(path)?),
            Source::Json(text) => merged.extend(parse_object(text, "--config_json")?),
        }
    }
    Ok(merged)
}

impl Config {
    /// The settings object keys are made from.
    pub fn key_options(&self) -> KeyOptions {
        KeyOptions {
            template: self.object_key_template.clone(),
            prefix: self.object_key_path.clone(),
            table: self.table.clone(),
            date_partition_format: self.date_partition_format.clone(),
            extension: crate::encode::extension(self.file_type, self.output.compression.codec),
        }
    }

    /// Reads and merges the sources in order (later keys win), then validates.
    /// Returns the config and one warning per unknown key.
    pub fn load(sources: &[Source]) -> Result<(Config, Vec<String>)> {
        Config::from_map(&merge(sources)?)
    }

    /// Validates a merged settings object.
    pub fn from_map(map: &Map<String, Value>) -> Result<(Config, Vec<String>)> {
        let (map, peer_warnings) = crowemi::translate(map, is_default_value)?;
        let map = &map;
        let mut warnings: Vec<String> = map
            .keys()
            .filter(|key| find_setting(key).is_none() && alias_of(key).is_none())
            .map(|key| format!("config: unknown key {key:?} is ignored"))
            .chain(peer_warnings)
            .collect();
        let map = &resolve_aliases(map)?;
        let v = Values { map };
        let mage = v.optional_boolean("mage_mode")?.unwrap_or(false);
        let file_type = match v.choice("file_type")?.as_deref() {
            Some("csv") => FileType::Csv,
            Some("jsonl") => FileType::Jsonl,
            _ => FileType::Parquet,
        };
        if file_type != FileType::Csv {
            // Defaults are not worth a warning: Meltano passes every setting's default.
            warnings.extend(
                SETTINGS
                    .iter()
                    .filter(|s| s.name.starts_with("csv_"))
                    .filter(|s| {
                        map.get(s.name)
                            .is_some_and(|v| !v.is_null() && !is_default_value(s.name, v))
                    })
                    .map(|s| {
                        format!(
                            "config: key {:?} applies to file_type \"csv\" only; ignored",
                            s.name
                        )
                    }),
            );
        }
        let endpoint = v.text("aws_endpoint")?.map(check_endpoint).transpose()?;
        let (endpoint, local_folder) = match endpoint {
            Some(Endpoint::Url(url)) => (Some(url), None),
            Some(Endpoint::Folder(folder)) => (None, Some(folder)),
            None => (None, None),
        };
        let aws = AwsSettings {
            access_key_id: v.text("aws_access_key_id")?,
            secret_access_key: v.text("aws_secret_access_key")?.map(Secret::new),
            session_token: v.text("aws_session_token")?.map(Secret::new),
            profile: v.text("aws_profile")?,
            region: v.text("aws_region")?,
            endpoint,
            role_arn: v.text("role_arn")?.map(check_role_arn).transpose()?,
            role_session_name: v.text_or_default("role_session_name")?,
            external_id: v.text("external_id")?,
        };
        check_key_pair(&aws)?;
        let compatibility = match v.choice_or_default("parquet_compatibility")?.as_str() {
            "arrow" => ParquetCompatibility::Arrow,
            _ => ParquetCompatibility::Portable,
        };
        if v.choice_or_default("table_format")? == "files" {
            for name in ["bucket", "object_key_path"] {
                if v.text(name)?.is_none() {
                    let setting = find_setting(name).expect("in SETTINGS");
                    return Err(Error::Config(format!(
                        "missing required key {name:?}: {}",
                        setting.description
                    )));
                }
            }
        }
        let mut config = Config {
            bucket: match v.text("bucket")?.filter(|b| !b.is_empty()) {
                Some(bucket) => check_bucket(bucket)?,
                None => String::new(),
            },
            file_type,
            output: Output {
                compression: v.compression(file_type)?,
                csv: v.csv_dialect()?,
                parquet: compatibility,
            },
            object_key_path: check_prefix(
                "object_key_path",
                &v.text("object_key_path")?.unwrap_or_default(),
            )?,
            date_partition_format: v
                .text("date_partition_format")?
                .map(|f| check_prefix("date_partition_format", &f))
                .transpose()?
                .filter(|f| !f.is_empty()),
            table: v.text("table")?.filter(|t| !t.is_empty()),
            object_key_template: v.key_template()?,
            partition_by: v.partition_by()?,
            aws,
            types: TypeOptions {
                header_case: v.choice("column_header_format")?.map(|c| match c.as_str() {
                    "upper" => HeaderCase::Upper,
                    _ => HeaderCase::Lower,
                }),
                timestamp_unit: match v.choice_or_default("timestamp_unit")?.as_str() {
                    "ms" => TimeUnit::Millisecond,
                    "ns" => TimeUnit::Nanosecond,
                    _ => TimeUnit::Microsecond,
                },
                overrides: v.column_types()?,
                metadata_columns: v.boolean("add_metadata_columns")?,
                mage_columns: v.optional_boolean("mage_columns")?.unwrap_or(mage),
                process_date_column: v.boolean("include_process_date")?,
                flatten_max_depth: v.integer("flatten_max_depth")?,
                catalog: None,
                portable_types: file_type == FileType::Parquet
                    && compatibility == ParquetCompatibility::Portable,
            },
            decode: DecodeOptions {
                lenient: !v.boolean("validate_records")?,
                inexact_numbers: match v.choice_or_default("inexact_numbers")?.as_str() {
                    "warn" => InexactNumbers::Warn,
                    _ => InexactNumbers::Fail,
                },
                refuse_unknown_fields: v.choice_or_default("unknown_fields")? == "fail",
                replace_surrogates: v.choice_or_default("lone_surrogates")? == "replace",
            },
            invalid_records: match v.choice_or_default("invalid_records")?.as_str() {
                "skip" => InvalidRecords::Skip,
                "quarantine" => InvalidRecords::Quarantine,
                _ => InvalidRecords::Fail,
            },
            skip_unknown_messages: v.choice_or_default("unknown_message_types")? == "warn",
            limits: Limits {
                max_batch_rows: v.integer("max_batch_rows")?,
                max_batch_bytes: v.integer("max_batch_bytes")?,
                max_batch_age: std::time::Duration::from_secs(
                    v.integer("max_batch_age_seconds")? as u64
                ),
                row_group_bytes: v.integer("row_group_bytes")?,
                max_buffer_bytes: v.integer("max_buffer_bytes")?,
                part_size: v.integer("part_size_bytes")?,
                max_concurrent_uploads: v.integer("max_concurrent_uploads")?,
                parallel_decoding: v.boolean("parallel_decoding")?,
            },
            reliability: Reliability {
                preflight: v.boolean("preflight")?,
                conditional_writes: v.choice_or_default("conditional_writes")?,
                checksum_algorithm: v.choice_or_default("checksum_algorithm")?,
                max_attempts: u32::try_from(v.integer("max_attempts")?).unwrap_or(u32::MAX),
                request_timeout: seconds(v.integer("request_timeout_seconds")?),
                shutdown_timeout: seconds(v.integer("shutdown_timeout_seconds")?),
                max_line_bytes: v.integer("max_line_bytes")?,
                progress_interval: seconds(v.integer("progress_interval_seconds")?),
            },
            tables: table_settings(&v)?,
            glue: glue_settings(&v)?,
            store: store_settings(&v, local_folder)?,
            mage,
            log_json: v.choice_or_default("log_format")? == "json",
        };
        if let Some(tables) = config.tables.as_mut() {
            tables.replace = config.store.load_method == LoadMethod::Overwrite;
        }
        check_template_placeholders(&config)?;
        check_portable_timestamps(&config)?;
        check_table_format(&config)?;
        check_glue(&config)?;
        warnings.extend(local_folder_warnings(&config, map));
        Ok((config, warnings))
    }
}

/// `parquet_compatibility: portable` promises Parquet that Spark 3 opens, and Spark
/// before 3.4 refuses nanosecond timestamps outright.
fn check_portable_timestamps(config: &Config) -> Result<()> {
    if config.types.portable_types && config.types.timestamp_unit == TimeUnit::Nanosecond {
        return Err(Error::Config(
            "key \"timestamp_unit\" has value \"ns\", which Spark 3 cannot read in Parquet, while parquet_compatibility is \"portable\" (the default); set \"timestamp_unit\": \"us\", or \"parquet_compatibility\": \"arrow\" for readers such as pyarrow and DuckDB".into(),
        ));
    }
    Ok(())
}

/// `table_format: iceberg`: the `iceberg_*` settings, checked; None for plain files.
fn table_settings(v: &Values) -> Result<Option<TableSettings>> {
    let partition_spec = v.partition_spec()?;
    if v.choice_or_default("table_format")? != "iceberg" {
        if partition_spec != SpecSetting::Off {
            return Err(Error::Config(
                "key \"iceberg_partition_spec\" is set but table_format is not \"iceberg\"; for files use partition_by".into(),
            ));
        }
        return Ok(None);
    }
    let needed = |name: &str| {
        let setting = find_setting(name).expect("in SETTINGS");
        Error::Config(format!(
            "missing key {name:?}, required with table_format \"iceberg\": {}",
            setting.description
        ))
    };
    let catalog = match v.choice("iceberg_catalog_type")?.as_deref() {
        Some("glue") => CatalogKind::Glue,
        Some("s3tables") => CatalogKind::S3Tables,
        Some("rest") => CatalogKind::Rest,
        Some("sql") => CatalogKind::Sql,
        Some(other) => {
            return Err(Error::Config(format!(
                "iceberg_catalog_type {other:?} is listed but has no catalog"
            )));
        }
        None => return Err(needed("iceberg_catalog_type")),
    };
    let uri = v.text("iceberg_catalog_uri")?.filter(|u| !u.is_empty());
    // AWS services' endpoints are optional: AWS's by default.
    let uri = match (catalog, uri) {
        (CatalogKind::Glue | CatalogKind::S3Tables, uri) => uri.unwrap_or_default(),
        (_, uri) => uri.ok_or_else(|| needed("iceberg_catalog_uri"))?,
    };
    let warehouse = v.text("iceberg_warehouse")?.filter(|w| !w.is_empty());
    if let Some(expected) = warehouse_form(catalog) {
        let given = warehouse
            .as_deref()
            .ok_or_else(|| needed("iceberg_warehouse"))?;
        if !warehouse_fits(catalog, given) {
            return Err(invalid("iceberg_warehouse", given, expected));
        }
    }
    let namespace = v
        .text("iceberg_namespace")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| needed("iceberg_namespace"))?;
    let levels: Vec<String> = namespace.split('.').map(str::to_owned).collect();
    if levels.iter().any(|l| l.is_empty()) {
        return Err(invalid(
            "iceberg_namespace",
            &namespace,
            "names separated by single dots, such as \"raw\" or \"raw.sales\"",
        ));
    }
    let settings = TableSettings {
        catalog,
        uri: uri.trim_end_matches('/').to_owned(),
        warehouse,
        namespace: levels,
        credential: v
            .text("iceberg_credential")?
            .filter(|c| !c.is_empty())
            .map(Secret::new),
        properties: v.properties("iceberg_catalog_properties")?,
        commit_interval: seconds(v.integer("iceberg_commit_interval_seconds")?),
        partition_spec,
        // Set from load_method once the store's settings are read.
        replace: false,
    };
    match catalog {
        CatalogKind::Sql => sql::check(settings).map(Some).map_err(Error::Config),
        _ => Ok(Some(settings)),
    }
}

/// What `iceberg_warehouse` must be for catalogs that need one (None: any or none).
fn warehouse_form(catalog: CatalogKind) -> Option<&'static str> {
    match catalog {
        CatalogKind::Glue | CatalogKind::Sql => Some(
            "an s3:// URL with a bucket, such as \"s3://lake/warehouse\", where the catalog's new tables go",
        ),
        CatalogKind::S3Tables => Some(
            "a table bucket's ARN, such as \"arn:aws:s3tables:eu-west-1:111122223333:bucket/lake\"",
        ),
        CatalogKind::Rest => None,
    }
}

fn warehouse_fits(catalog: CatalogKind, warehouse: &str) -> bool {
    match catalog {
        CatalogKind::Glue | CatalogKind::Sql => {
            crate::tables::storage::split_s3_path(&format!("{warehouse}/t")).is_some()
        }
        CatalogKind::S3Tables => {
            warehouse.starts_with("arn:")
                && warehouse.contains(":s3tables:")
                && warehouse.contains(":bucket/")
        }
        CatalogKind::Rest => true,
    }
}

/// `glue_catalog`: the `glue_*` settings, checked; None when it is off.
fn glue_settings(v: &Values) -> Result<Option<GlueSettings>> {
    if !v.boolean("glue_catalog")? {
        return Ok(None);
    }
    let database = v
        .text("glue_database")?
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            Error::Config(
                "missing key \"glue_database\", required with glue_catalog: the Glue database of the streams' tables (made if missing)".into(),
            )
        })?;
    let endpoint = match v.text("glue_endpoint")?.filter(|e| !e.is_empty()) {
        None => None,
        Some(url) => match check_endpoint(url.clone()) {
            Ok(Endpoint::Url(url)) => Some(url),
            _ => {
                return Err(invalid(
                    "glue_endpoint",
                    &url,
                    "a URL such as \"https://glue.eu-west-1.amazonaws.com\" or \"http://127.0.0.1:5000\"",
                ));
            }
        },
    };
    let format = v.text("date_partition_format")?.unwrap_or_default();
    let format = check_prefix("date_partition_format", &format)?;
    let date_keys =
        crate::glue::date_keys(&format).map_err(|e| Error::Config(format!("glue_catalog: {e}")))?;
    Ok(Some(GlueSettings {
        database,
        endpoint,
        date_keys,
    }))
}

/// What `glue_catalog` asks of the other settings: plain files in S3, laid out as a
/// table's folder, partition folders and file names.
fn check_glue(config: &Config) -> Result<()> {
    if config.glue.is_none() {
        return Ok(());
    }
    if config.tables.is_some() {
        return Err(Error::Config(
            "glue_catalog registers plain files; with table_format \"iceberg\" the Iceberg catalog keeps the tables: drop one of the two".into(),
        ));
    }
    if config.store.local_folder.is_some() {
        return Err(Error::Config(
            "glue_catalog registers tables over S3 locations, not a local folder: aws_endpoint must be an http(s) URL or unset".into(),
        ));
    }
    config
        .object_key_template
        .check_table_layout()
        .map_err(|e| {
            Error::Config(format!(
                "glue_catalog needs keys laid out as a table's folder, its partition folders and a file name, but object_key_template {:?} does not: {e}",
                config.object_key_template.text()
            ))
        })
}

/// What `table_format` asks of the other settings.
fn check_table_format(config: &Config) -> Result<()> {
    if config.tables.is_none() {
        return Ok(());
    }
    if config.file_type != FileType::Parquet {
        return Err(Error::Config(format!(
            "key \"file_type\" has value {:?}; Iceberg tables are written as Parquet: set file_type to \"parquet\"",
            config.file_type.extension()
        )));
    }
    if config.store.local_folder.is_some() {
        return Err(Error::Config(
            "table_format \"iceberg\" writes to S3 (or an S3-compatible store), not a local folder: aws_endpoint must be an http(s) URL".into(),
        ));
    }
    if config.types.timestamp_unit != TimeUnit::Microsecond {
        return Err(Error::Config(
            "key \"timestamp_unit\" must be \"us\" with table_format \"iceberg\": Iceberg's timestamps are microseconds".into(),
        ));
    }
    if config.store.manifest || config.partition_by != PartitionBy::Off {
        return Err(Error::Config(
            "table_format \"iceberg\" does not combine with manifest or partition_by: a table's snapshots list its files, and iceberg_partition_spec partitions it".into(),
        ));
    }
    Ok(())
}

fn store_settings(v: &Values, local_folder: Option<PathBuf>) -> Result<StoreSettings> {
    let server_side_encryption = v.choice("server_side_encryption")?;
    let kms_key_id = v.text("kms_key_id")?.filter(|k| !k.is_empty());
    if kms_key_id.is_some() && server_side_encryption.as_deref() != Some("aws:kms") {
        return Err(Error::Config(
            "key \"kms_key_id\" is set but \"server_side_encryption\" is not \"aws:kms\"; set \"server_side_encryption\": \"aws:kms\" or drop kms_key_id".into(),
        ));
    }
    Ok(StoreSettings {
        local_folder,
        server_side_encryption,
        kms_key_id,
        storage_class: v.choice("storage_class")?,
        load_method: match v.choice_or_default("load_method")?.as_str() {
            "overwrite" => LoadMethod::Overwrite,
            _ => LoadMethod::Append,
        },
        manifest: v.boolean("manifest")?,
    })
}

/// A local folder takes no AWS settings: say which of the given ones go unused. The
/// S3 object settings are warnings, not errors, so one config can serve a dry run.
fn local_folder_warnings(config: &Config, map: &Map<String, Value>) -> Vec<String> {
    let Some(folder) = &config.store.local_folder else {
        return Vec::new();
    };
    let given = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .filter(|n| map.get(**n).is_some_and(|v| !v.is_null()))
            .map(|n| n.to_string())
            .collect()
    };
    let aws = given(&[
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_profile",
        "aws_region",
        "role_arn",
        "external_id",
    ]);
    let s3 = given(&["server_side_encryption", "kms_key_id", "storage_class"]);
    let shown = folder.display();
    let mut warnings = Vec::new();
    if !aws.is_empty() {
        warnings.push(format!(
            "config: aws_endpoint is the local folder {shown}, so these settings are not used: {}",
            aws.join(", ")
        ));
    }
    if !s3.is_empty() {
        warnings.push(format!(
            "config: aws_endpoint is the local folder {shown}, so these S3 settings are ignored (files are written unencrypted, with no storage class): {}",
            s3.join(", ")
        ));
    }
    warnings
}

fn seconds(n: usize) -> std::time::Duration {
    std::time::Duration::from_secs(n as u64)
}

/// Where settings come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A JSON file.
    File(std::path::PathBuf),
    /// `TARGET_S3_<KEY>` environment variables.
    Env,
    /// JSON text given on the command line (Mage's `--config_json`).
    Json(String),
}

impl Source {
    /// A `--config` value: a file, or `ENV`.
    pub fn from_flag(value: &Path) -> Source {
        if value.as_os_str() == ENV_SOURCE {
            Source::Env
        } else {
            Source::File(value.to_owned())
        }
    }
}

/// The `--config` value that reads settings from the environment.
pub const ENV_SOURCE: &str = "ENV";
/// Environment variables `TARGET_S3_BUCKET`, … set the setting named after the prefix.
pub const ENV_PREFIX: &str = "TARGET_S3_";

/// Settings from `TARGET_S3_<KEY>` variables. Values are text; a JSON object or array
/// (for `column_types`) is parsed as JSON.
fn from_environment(vars: impl Iterator<Item = (String, String)>) -> Map<String, Value> {
    vars.filter_map(|(name, value)| {
        let key = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
        let value = match value.trim_start().chars().next() {
            Some('{' | '[') => serde_json::from_str(&value).unwrap_or(Value::String(value)),
            _ => Value::String(value),
        };
        Some((key, value))
    })
    .collect()
}

/// The `--about` description: every setting with its type, default, whether it is
/// secret, and what it does.
pub fn about() -> Value {
    let settings: Vec<Value> = SETTINGS
        .iter()
        .map(|s| {
            let (kind, allowed) = match s.kind {
                Kind::Text | Kind::Strftime => ("string", None),
                Kind::Secret => ("string", None),
                Kind::Integer { .. } => ("integer", None),
                Kind::Boolean => ("boolean", None),
                Kind::ColumnTypes | Kind::Properties => ("object", None),
                Kind::KeyTemplate => ("string", None),
                // Meltano casts `array` and `object` to one shape; text takes both.
                Kind::PartitionBy => ("string", None),
                Kind::Choice(words) => ("string", Some(words)),
            };
            let mut entry = serde_json::json!({
                "name": s.name,
                "type": kind,
                "required": s.required,
                "secret": s.kind == Kind::Secret,
                "default": s.default,
                "description": s.description,
            });
            if let Some(words) = allowed {
                entry["allowed_values"] = serde_json::json!(words);
            }
            if let Kind::Integer { min } = s.kind {
                entry["minimum"] = serde_json::json!(min);
            }
            if !s.aliases.is_empty() {
                entry["aliases"] = serde_json::json!(s.aliases);
            }
            entry
        })
        .collect();
    serde_json::json!({
        "name": "target-s3",
        "version": env!("CARGO_PKG_VERSION"),
        "description": env!("CARGO_PKG_DESCRIPTION"),
        "capabilities": ["about", "batch", "structured-logging", "validate-records"],
        "settings": settings,
    })
}

/// `--about --format markdown`: the settings as a table.
pub fn about_markdown() -> String {
    let mut out = format!(
        "# target-s3 {}\n\n{}\n\n| setting | type | required | default | secret | description |\n|---|---|---|---|---|---|\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_DESCRIPTION")
    );
    for entry in about()["settings"].as_array().into_iter().flatten() {
        let text = |k: &str| entry[k].as_str().unwrap_or("").to_owned();
        let kind = match entry.get("allowed_values") {
            Some(Value::Array(words)) => words
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" \\| "),
            _ => text("type"),
        };
        out.push_str(&format!(
            "| `{}` | {kind} | {} | {} | {} | {} |\n",
            text("name"),
            if entry["required"] == true {
                "yes"
            } else {
                "no"
            },
            text("default"),
            if entry["secret"] == true { "yes" } else { "no" },
            text("description"),
        ));
    }
    out
}

pub fn find_setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Whether a value is the named setting's default, which Meltano passes for every
/// setting it declares: such a value does not count as a second spelling's rival.
fn is_default_value(name: &str, value: &Value) -> bool {
    let default = find_setting(name).and_then(|s| s.default);
    match value {
        Value::String(text) => default == Some(text.as_str()),
        other => default == Some(other.to_string().as_str()),
    }
}

/// The setting a peer's name stands for.
fn alias_of(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.aliases.contains(&name))
}

/// The settings with every alias replaced by its setting's own name. Both names set
/// to different values is an error: neither can be said to win.
fn resolve_aliases(map: &Map<String, Value>) -> Result<Map<String, Value>> {
    let mut out = map.clone();
    for (key, value) in map {
        let Some(setting) = alias_of(key) else {
            continue;
        };
        out.remove(key);
        if value.is_null() {
            continue;
        }
        let own = map.get(setting.name).filter(|v| !v.is_null());
        match own.filter(|own| !is_default_value(setting.name, own)) {
            Some(own) if own != value => {
                return Err(Error::Config(format!(
                    "keys {:?} and {key:?} (another name for it) are both set, to {own} and {value}; keep one",
                    setting.name
                )));
            }
            _ => {
                out.insert(setting.name.to_owned(), value.clone());
            }
        }
    }
    Ok(out)
}

fn read_object(path: &Path) -> Result<Map<String, Value>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read config file {shown}: {e}")))?;
    parse_object(&text, &format!("config file {shown}"))
}

fn parse_object(text: &str, shown: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::Config(format!("{shown} must hold one JSON object"))),
        Err(e) => Err(Error::Config(format!("{shown} is not valid JSON: {e}"))),
    }
}

/// Mage's `--show_templates`: every setting with its default (or null), and Mage's own
/// defaults where it has them.
pub fn template() -> Value {
    let mut config: Map<String, Value> = SETTINGS
        .iter()
        .map(|s| {
            let value = match (s.default, s.kind) {
                (None, _) => Value::Null,
                (Some(d), Kind::Integer { .. }) => {
                    d.parse::<u64>().map_or(Value::Null, Value::from)
                }
                (Some(d), Kind::Boolean) => Value::Bool(d == "true"),
                (Some(d), _) => Value::from(d),
            };
            (s.name.to_owned(), value)
        })
        .collect();
    for (name, value) in crate::mage::DEFAULTS {
        config.insert((*name).to_owned(), Value::from(*value));
    }
    serde_json::json!({ "config": config })
}

/// Typed, checked reads from the merged settings. A JSON null counts as absent.
struct Values<'a> {
    map: &'a Map<String, Value>,
}

impl Values<'_> {
    /// A setting that takes a list or an object: given as such, or as its JSON text
    /// (what Meltano passes for a setting of kind string, whatever shape it holds).
    fn structured(&self, name: &str) -> Result<Option<Value>> {
        let Some(value) = self.raw(name)? else {
            return Ok(None);
        };
        let Value::String(text) = value else {
            return Ok(Some(value.clone()));
        };
        if !text.trim_start().starts_with(['[', '{']) {
            return Ok(Some(value.clone()));
        }
        serde_json::from_str(text).map(Some).map_err(|e| {
            invalid(
                name,
                text,
                &format!("JSON text of a list or an object ({e})"),
            )
        })
    }

    fn raw(&self, name: &str) -> Result<Option<&Value>> {
        let setting = find_setting(name).expect("every key read is in SETTINGS");
        match self.map.get(name).filter(|v| !v.is_null()) {
            Some(value) => Ok(Some(value)),
            None if setting.required => Err(Error::Config(format!(
                "missing required key {name:?}: {}",
                setting.description
            ))),
            None => Ok(None),
        }
    }

    fn text(&self, name: &str) -> Result<Option<String>> {
        let Some(value) = self.raw(name)? else {
            return Ok(None);
        };
        let setting = find_setting(name).expect("checked by raw");
        let Value::String(text) = value else {
            return Err(wrong_value(setting, value, "a string"));
        };
        if setting.kind == Kind::Strftime && !is_valid_strftime(text) {
            return Err(wrong_value(
                setting,
                value,
                "a strftime pattern such as \"%Y%m%d\" or \"year=%Y/month=%m\"",
            ));
        }
        Ok(Some(text.trim().to_owned()))
    }

    fn text_or_default(&self, name: &str) -> Result<String> {
        let default = find_setting(name).and_then(|s| s.default).unwrap_or("");
        Ok(self.text(name)?.unwrap_or_else(|| default.to_owned()))
    }

    fn choice(&self, name: &str) -> Result<Option<String>> {
        let setting = find_setting(name).expect("every key read is in SETTINGS");
        let Kind::Choice(allowed) = setting.kind else {
            unreachable!("{name} is not a choice")
        };
        let Some(value) = self.raw(name)? else {
            return Ok(None);
        };
        let found = value
            .as_str()
            .and_then(|word| allowed.iter().find(|a| a.eq_ignore_ascii_case(word)));
        match found {
            Some(word) => Ok(Some((*word).to_owned())),
            None => Err(wrong_value(setting, value, &one_of(allowed))),
        }
    }

    fn choice_or_default(&self, name: &str) -> Result<String> {
        let default = find_setting(name).and_then(|s| s.default).unwrap_or("");
        Ok(self.choice(name)?.unwrap_or_else(|| default.to_owned()))
    }

    fn boolean(&self, name: &str) -> Result<bool> {
        let setting = find_setting(name).expect("every key read is in SETTINGS");
        let default = setting.default == Some("true");
        Ok(self.optional_boolean(name)?.unwrap_or(default))
    }

    /// A boolean, or None when absent (for settings whose default depends on another).
    fn optional_boolean(&self, name: &str) -> Result<Option<bool>> {
        let setting = find_setting(name).expect("every key read is in SETTINGS");
        match self.raw(name)? {
            None => Ok(None),
            Some(value) => match as_boolean(value) {
                Some(b) => Ok(Some(b)),
                None => Err(wrong_value(setting, value, "true or false")),
            },
        }
    }

    /// The codec (the file type's default when absent) and its level, each checked
    /// against what the file type and the codec take.
    fn compression(&self, file_type: FileType) -> Result<Compression> {
        let allowed = file_type.codecs();
        let codec = match self.choice("compression")? {
            None => allowed[0],
            Some(name) => {
                let codec = Codec::from_name(&name);
                if !allowed.contains(&codec) {
                    let names: Vec<&str> = allowed.iter().map(|c| c.name()).collect();
                    return Err(invalid(
                        "compression",
                        &name,
                        &format!(
                            "{} for file_type {:?}",
                            one_of(&names),
                            file_type.extension()
                        ),
                    ));
                }
                codec
            }
        };
        let setting = find_setting("compression_level").expect("in SETTINGS");
        let level = match (self.raw("compression_level")?, codec.levels()) {
            (None, levels) => levels.map(|(_, default)| default),
            (Some(value), None) => {
                return Err(Error::Config(format!(
                    "key \"compression_level\" has value {value}; compression {:?} takes no level (gzip and zstd do)",
                    codec.name()
                )));
            }
            (Some(value), Some((range, _))) => {
                let level = u32::try_from(self.integer("compression_level")?).ok();
                let Some(level) = level.filter(|l| range.contains(l)) else {
                    return Err(wrong_value(
                        setting,
                        value,
                        &format!(
                            "a whole number from {} to {} for compression {:?}",
                            range.start(),
                            range.end(),
                            codec.name()
                        ),
                    ));
                };
                Some(level)
            }
        };
        Ok(Compression { codec, level })
    }

    /// The CSV dialect, checked so that no combination can make a file ambiguous.
    fn csv_dialect(&self) -> Result<CsvDialect> {
        let delimiter = self.character("csv_delimiter")?;
        let quote = self.character("csv_quote_character")?;
        let null_text = self.exact_text("csv_null_text")?.unwrap_or_default();
        if delimiter == quote {
            return Err(Error::Config(format!(
                "keys \"csv_delimiter\" and \"csv_quote_character\" are both {:?}; they must differ",
                char::from(delimiter)
            )));
        }
        if let Some(c) = null_text
            .bytes()
            .find(|&b| b == delimiter || b == quote || b == b'\n' || b == b'\r')
        {
            return Err(invalid(
                "csv_null_text",
                &null_text,
                &format!(
                    "text without the delimiter, the quote character or line breaks (it holds {:?})",
                    char::from(c)
                ),
            ));
        }
        Ok(CsvDialect {
            delimiter,
            quote,
            header: self.boolean("csv_header")?,
            null_text,
        })
    }

    /// One ASCII character other than a line break; a tab may be spelled `\t` or
    /// `tab`. Absent: the setting's default.
    fn character(&self, name: &str) -> Result<u8> {
        let text = match self.exact_text(name)? {
            Some(text) => text,
            None => find_setting(name)
                .and_then(|s| s.default)
                .unwrap_or_default()
                .to_owned(),
        };
        let character = match text.as_str() {
            "\\t" | "tab" | "TAB" => "\t",
            other => other,
        };
        match character.as_bytes() {
            [b] if b.is_ascii() && *b != b'\n' && *b != b'\r' => Ok(*b),
            _ => Err(invalid(
                name,
                &text,
                "one ASCII character other than a line break, such as \",\", \";\", \"|\" or \"\\t\" (tab)",
            )),
        }
    }

    /// Text exactly as given: spaces and tabs can be the point.
    fn exact_text(&self, name: &str) -> Result<Option<String>> {
        let setting = find_setting(name).expect("every key read is in SETTINGS");
        match self.raw(name)? {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(value) => Err(wrong_value(setting, value, "a string")),
        }
    }

    /// An object of text values (numbers and booleans taken as their text).
    fn properties(&self, name: &str) -> Result<BTreeMap<String, String>> {
        let setting = find_setting(name).expect("in SETTINGS");
        let expected = "an object of text values, such as {\"scope\": \"PRINCIPAL_ROLE:ALL\"}";
        let Some(value) = self.structured(name)? else {
            return Ok(BTreeMap::new());
        };
        let Value::Object(entries) = &value else {
            return Err(wrong_value(setting, &value, expected));
        };
        entries
            .iter()
            .map(|(key, v)| match v {
                Value::String(text) => Ok((key.clone(), text.clone())),
                Value::Number(_) | Value::Bool(_) => Ok((key.clone(), v.to_string())),
                _ => Err(wrong_value(setting, &value, expected)),
            })
            .collect()
    }

    /// `{"stream": {"column": "type"}}`, each type checked.
    fn column_types(&self) -> Result<HashMap<String, HashMap<String, ColumnType>>> {
        let setting = find_setting("column_types").expect("in SETTINGS");
        let expected = "an object such as {\"orders\": {\"amount\": \"decimal(38,9)\"}}";
        let Some(value) = self.structured("column_types")? else {
            return Ok(HashMap::new());
        };
        let value = &value;
        let Value::Object(streams) = value else {
            return Err(wrong_value(setting, value, expected));
        };
        let mut out = HashMap::new();
        for (stream, columns) in streams {
            let Value::Object(columns) = columns else {
                return Err(wrong_value(setting, value, expected));
            };
            let mut types = HashMap::new();
            for (column, name) in columns {
                let ty = name
                    .as_str()
                    .ok_or_else(|| wrong_value(setting, name, expected))?;
                let ty = parse_type_name(ty).map_err(|e| {
                    Error::Config(format!(
                        "key \"column_types\", stream {stream:?}, column {column:?}: {e}; expected decimal(P,S), string, float64, int64, boolean, timestamp, date, time or json"
                    ))
                })?;
                types.insert(column.clone(), ty);
            }
            out.insert(stream.clone(), types);
        }
        Ok(out)
    }

    fn key_template(&self) -> Result<KeyTemplate> {
        let text = self.text_or_default("object_key_template")?;
        KeyTemplate::parse(&text).map_err(|reason| {
            Error::Config(format!(
                "key \"object_key_template\" has value {text:?}: {reason}"
            ))
        })
    }

    fn partition_by(&self) -> Result<PartitionBy> {
        let Some(value) = self.structured("partition_by")? else {
            return Ok(PartitionBy::Off);
        };
        let value = &value;
        PartitionBy::from_value(value).map_err(|reason| {
            Error::Config(format!("key \"partition_by\" has value {value}: {reason}"))
        })
    }

    fn partition_spec(&self) -> Result<SpecSetting> {
        let Some(value) = self.structured("iceberg_partition_spec")? else {
            return Ok(SpecSetting::Off);
        };
        SpecSetting::from_value(&value).map_err(|reason| {
            Error::Config(format!(
                "key \"iceberg_partition_spec\" has value {value}: {reason}"
            ))
        })
    }

    fn integer(&self, name: &str) -> Result<usize> {
        let setting = find_setting(name).expect("every key read is in SETTINGS");
        let Kind::Integer { min } = setting.kind else {
            unreachable!("{name} is not an integer")
        };
        let expected = format!("a whole number of at least {min}");
        let value = match self.raw(name)? {
            None => return Ok(setting.default.and_then(|d| d.parse().ok()).unwrap_or(0)),
            Some(value) => value,
        };
        let number = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if n >= min => {
                usize::try_from(n).map_err(|_| wrong_value(setting, value, &expected))
            }
            _ => Err(wrong_value(setting, value, &expected)),
        }
    }
}

fn one_of(allowed: &[&str]) -> String {
    let words: Vec<String> = allowed.iter().map(|w| format!("{w:?}")).collect();
    format!("one of {}", words.join(", "))
}

fn wrong_value(setting: &Setting, value: &Value, expected: &str) -> Error {
    let shown = if setting.kind == Kind::Secret {
        "***".to_owned()
    } else {
        value.to_string()
    };
    Error::Config(format!(
        "key {:?} has value {shown}; expected {expected}",
        setting.name
    ))
}

fn invalid(name: &str, value: &str, expected: &str) -> Error {
    Error::Config(format!(
        "key {name:?} has value {value:?}; expected {expected}"
    ))
}

fn check_bucket(bucket: String) -> Result<String> {
    let expected = "a bucket name alone, without \"s3://\", slashes or spaces";
    if bucket.is_empty()
        || bucket.contains("://")
        || bucket.contains('/')
        || bucket.chars().any(char::is_whitespace)
    {
        return Err(invalid("bucket", &bucket, expected));
    }
    Ok(bucket)
}

/// Drops leading, trailing and doubled slashes; rejects URLs.
fn check_prefix(name: &str, value: &str) -> Result<String> {
    if value.contains("://") {
        return Err(invalid(
            name,
            value,
            "a key prefix such as \"exports/daily\", without \"s3://\" or the bucket",
        ));
    }
    let parts: Vec<&str> = value.split('/').filter(|p| !p.is_empty()).collect();
    Ok(parts.join("/"))
}

/// What `aws_endpoint` names: an S3-compatible service, or a local folder.
#[derive(Debug, PartialEq)]
enum Endpoint {
    Url(String),
    Folder(PathBuf),
}

fn check_endpoint(url: String) -> Result<Endpoint> {
    if let Some(path) = url.strip_prefix("file://") {
        return match percent_decoded(path) {
            Some(folder) if folder.starts_with('/') => Ok(Endpoint::Folder(PathBuf::from(folder))),
            _ => Err(invalid(
                "aws_endpoint",
                &url,
                "a local folder as a file URL with an absolute path, such as \"file:///var/data/lake\"",
            )),
        };
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => {
            Ok(Endpoint::Url(url.trim_end_matches('/').to_owned()))
        }
        _ => Err(invalid(
            "aws_endpoint",
            &url,
            "a URL such as \"http://127.0.0.1:9000\" or \"https://s3.example.com\", or a folder such as \"file:///var/data/lake\"",
        )),
    }
}

/// A URL path with its `%XX` escapes decoded; None when an escape is broken or the
/// result is not UTF-8.
pub fn percent_decoded(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn check_role_arn(arn: String) -> Result<String> {
    if arn.starts_with("arn:") && arn.contains(":role/") {
        Ok(arn)
    } else {
        Err(invalid(
            "role_arn",
            &arn,
            "a role ARN such as \"arn:aws:iam::123456789012:role/loader\"",
        ))
    }
}

/// A setting that feeds a placeholder the template does not hold would be ignored
/// silently; it is refused instead.
fn check_template_placeholders(config: &Config) -> Result<()> {
    let template = &config.object_key_template;
    let feeds = [
        ("object_key_path", !config.object_key_path.is_empty()),
        ("date_partition", config.date_partition_format.is_some()),
        ("table", config.table.is_some()),
        ("partition", config.partition_by.is_on()),
    ];
    for (placeholder, set) in feeds {
        if set && !template.uses(placeholder) {
            let key = match placeholder {
                "date_partition" => "date_partition_format",
                "partition" => "partition_by",
                key => key,
            };
            return Err(Error::Config(format!(
                "key {key:?} is set but key \"object_key_template\" has no {{{placeholder}}} to put it in; add {{{placeholder}}} to the template or drop {key:?}"
            )));
        }
    }
    Ok(())
}

fn check_key_pair(aws: &AwsSettings) -> Result<()> {
    match (&aws.access_key_id, &aws.secret_access_key) {
        (Some(_), None) => Err(Error::Config(
            "key \"aws_access_key_id\" is set but \"aws_secret_access_key\" is not; give both or neither".into(),
        )),
        (None, Some(_)) => Err(Error::Config(
            "key \"aws_secret_access_key\" is set but \"aws_access_key_id\" is not; give both or neither".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Config> {
        let Value::Object(map) = value else { panic!() };
        Config::from_map(&map).map(|(c, _)| c)
    }

    fn base() -> Value {
        json!({"bucket": "b", "file_type": "parquet", "object_key_path": "/a//b/"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = base();
        v[key] = value;
        v
    }

    fn error(value: Value) -> String {
        parse(value).unwrap_err().to_string()
    }

    #[test]
    fn glue_catalog_settings() {
        let glue = |extra: Value| {
            let mut v = with("glue_catalog", json!(true));
            v["glue_database"] = json!("lake");
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v
        };
        let c = parse(glue(json!({"date_partition_format": "year=%Y/%m"}))).unwrap();
        let settings = c.glue.unwrap();
        assert_eq!(settings.database, "lake");
        assert_eq!(settings.endpoint, None);
        let names: Vec<&str> = settings.date_keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["year", "month"]);
        assert!(parse(base()).unwrap().glue.is_none());
        let c = parse(glue(json!({"glue_endpoint": "http://127.0.0.1:5000/"}))).unwrap();
        assert_eq!(
            c.glue.unwrap().endpoint.as_deref(),
            Some("http://127.0.0.1:5000")
        );
        let e = error(with("glue_catalog", json!(true)));
        assert!(e.contains("missing key \"glue_database\""), "{e}");
        let e = error(glue(json!({"glue_endpoint": "file:///tmp"})));
        assert!(
            e.contains("key \"glue_endpoint\" has value \"file:///tmp\""),
            "{e}"
        );
        let e = error(glue(json!({"aws_endpoint": "file:///tmp"})));
        assert!(e.contains("not a local folder"), "{e}");
        let e = error(glue(json!({"date_partition_format": "%D"})));
        assert!(
            e.contains("glue_catalog: date_partition_format \"%D\""),
            "{e}"
        );
        let e = error(glue(
            json!({"table_format": "iceberg", "iceberg_catalog_type": "rest",
            "iceberg_catalog_uri": "http://x", "iceberg_namespace": "n"}),
        ));
        assert!(e.contains("glue_catalog registers plain files"), "{e}");
    }

    #[test]
    fn iceberg_aws_catalogs_need_a_warehouse_but_no_uri() {
        let iceberg = |extra: Value| {
            let mut v = json!({"table_format": "iceberg", "iceberg_catalog_type": "glue",
                "iceberg_namespace": "lake", "file_type": "parquet"});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v
        };
        let c = parse(iceberg(json!({"iceberg_warehouse": "s3://b/w/"}))).unwrap();
        let tables = c.tables.unwrap();
        assert_eq!(tables.catalog, CatalogKind::Glue);
        assert_eq!(tables.uri, "");
        assert_eq!(tables.warehouse.as_deref(), Some("s3://b/w/"));
        let e = error(iceberg(json!({})));
        assert!(e.contains("missing key \"iceberg_warehouse\""), "{e}");
        let e = error(iceberg(json!({"iceberg_warehouse": "lake"})));
        assert!(e.contains("an s3:// URL with a bucket"), "{e}");
        let arn = "arn:aws:s3tables:us-east-1:123456789012:bucket/lake";
        let c = parse(iceberg(
            json!({"iceberg_catalog_type": "s3tables", "iceberg_warehouse": arn}),
        ));
        assert_eq!(c.unwrap().tables.unwrap().catalog, CatalogKind::S3Tables);
        let e = error(iceberg(json!({"iceberg_catalog_type": "s3tables",
            "iceberg_warehouse": "s3://b/w"})));
        assert!(e.contains("a table bucket's ARN"), "{e}");
        let e = error(iceberg(json!({"iceberg_catalog_type": "rest"})));
        assert!(e.contains("missing key \"iceberg_catalog_uri\""), "{e}");
    }

    #[test]
    fn normalises_prefix_and_applies_defaults() {
        let c = parse(base()).unwrap();
        assert_eq!(c.object_key_path, "a/b");
        assert_eq!(c.file_type, FileType::Parquet);
        assert_eq!(c.limits.max_batch_rows, DEFAULT_MAX_BATCH_ROWS as usize);
        assert_eq!(c.limits.max_batch_bytes, DEFAULT_MAX_BATCH_BYTES as usize);
        assert_eq!(
            c.limits.max_concurrent_uploads,
            DEFAULT_MAX_CONCURRENT_UPLOADS as usize
        );
        assert_eq!(c.limits.part_size, 8 << 20);
        assert_eq!(c.aws.role_session_name, "target-s3");
        assert!(c.types.header_case.is_none());
        assert_eq!(c.types.timestamp_unit, TimeUnit::Microsecond);
        assert!(!c.decode.lenient && !c.decode.refuse_unknown_fields);
        assert_eq!(c.decode.inexact_numbers, InexactNumbers::Fail);
        assert_eq!(c.invalid_records, InvalidRecords::Fail);
    }

    #[test]
    fn defaults_in_table_match_constants() {
        for (name, value) in [
            ("max_batch_rows", DEFAULT_MAX_BATCH_ROWS),
            ("max_batch_bytes", DEFAULT_MAX_BATCH_BYTES),
            ("max_concurrent_uploads", DEFAULT_MAX_CONCURRENT_UPLOADS),
        ] {
            assert_eq!(
                find_setting(name).unwrap().default,
                Some(value.to_string().as_str())
            );
        }
    }

    #[test]
    fn rejects_wrong_values_naming_key_value_and_forms() {
        let e = error(with("file_type", json!("xlsx")));
        assert!(
            e.contains("\"file_type\"") && e.contains("xlsx") && e.contains("\"csv\", \"parquet\""),
            "{e}"
        );
        let e = error(with("object_key_path", json!("s3://bucket/x")));
        assert!(
            e.contains("object_key_path") && e.contains("s3://bucket/x"),
            "{e}"
        );
        let e = error(with("date_partition_format", json!("%Y-%Q")));
        assert!(
            e.contains("date_partition_format") && e.contains("strftime"),
            "{e}"
        );
        let e = error(with("column_header_format", json!("camel")));
        assert!(e.contains("\"upper\", \"lower\""), "{e}");
        let e = error(with("bucket", json!("s3://b")));
        assert!(e.contains("bucket"), "{e}");
        let e = error(with("part_size_bytes", json!(1_000_000)));
        assert!(e.contains("at least 5242880"), "{e}");
        let e = error(with("max_batch_rows", json!(0)));
        assert!(
            e.contains("max_batch_rows") && e.contains("at least 1"),
            "{e}"
        );
        let e = error(with("column_types", json!({"s": {"a": "decimal(99,1)"}})));
        assert!(e.contains("column_types") && e.contains("\"a\""), "{e}");
        let e = error(with("validate_records", json!("maybe")));
        assert!(e.contains("true or false"), "{e}");
        let e = error(with("aws_endpoint", json!("localhost:9000")));
        assert!(e.contains("aws_endpoint"), "{e}");
        let e = error(json!({"bucket": "b", "file_type": "csv"}));
        assert!(
            e.contains("missing required key \"object_key_path\""),
            "{e}"
        );
    }

    #[test]
    fn null_means_absent_and_choices_ignore_case() {
        let mut v = with("column_header_format", Value::Null);
        v["file_type"] = json!("CSV");
        v["max_batch_rows"] = json!("250");
        let c = parse(v).unwrap();
        assert_eq!(c.file_type, FileType::Csv);
        assert_eq!(c.types.header_case, None);
        assert_eq!(c.limits.max_batch_rows, 250);
    }

    #[test]
    fn parquet_compatibility_shapes_parquet_types_only() {
        let c = parse(base()).unwrap();
        assert_eq!(c.output.parquet, ParquetCompatibility::Portable);
        assert!(c.types.portable_types);
        let c = parse(with("parquet_compatibility", json!("Arrow"))).unwrap();
        assert_eq!(c.output.parquet, ParquetCompatibility::Arrow);
        assert!(!c.types.portable_types);
        // CSV and JSONL keep their types (and may hold nanoseconds).
        let mut v = with("file_type", json!("jsonl"));
        v["timestamp_unit"] = json!("ns");
        assert!(!parse(v).unwrap().types.portable_types);
        let e = error(with("parquet_compatibility", json!("spark")));
        assert!(
            e.contains("parquet_compatibility") && e.contains("portable") && e.contains("arrow"),
            "{e}"
        );
    }

    #[test]
    fn portable_parquet_refuses_nanoseconds_naming_both_fixes() {
        let e = error(with("timestamp_unit", json!("ns")));
        assert!(e.contains("timestamp_unit") && e.contains("Spark 3"), "{e}");
        assert!(
            e.contains(r#"set "timestamp_unit": "us", or "parquet_compatibility": "arrow""#),
            "{e}"
        );
    }

    #[test]
    fn type_settings() {
        let mut v = with(
            "column_types",
            json!({"orders": {"amount": "decimal(20,4)"}}),
        );
        v["timestamp_unit"] = json!("ns");
        v["parquet_compatibility"] = json!("arrow");
        v["validate_records"] = json!(false);
        v["invalid_records"] = json!("quarantine");
        let c = parse(v).unwrap();
        assert_eq!(
            c.types.overrides["orders"]["amount"],
            ColumnType::Decimal {
                precision: 20,
                scale: 4
            }
        );
        assert_eq!(c.types.timestamp_unit, TimeUnit::Nanosecond);
        assert!(c.decode.lenient);
        assert_eq!(c.invalid_records, InvalidRecords::Quarantine);
        assert!(!c.types.metadata_columns);
        assert!(
            parse(with("add_metadata_columns", json!(true)))
                .unwrap()
                .types
                .metadata_columns
        );
        let e = error(with("add_metadata_columns", json!("yes")));
        assert!(
            e.contains("\"add_metadata_columns\"") && e.contains("true or false"),
            "{e}"
        );
    }

    #[test]
    fn secrets_never_show() {
        let mut v = with("aws_access_key_id", json!("AKIDEXAMPLE"));
        v["aws_secret_access_key"] = json!("very-secret-value");
        v["aws_session_token"] = json!("token-value");
        let c = parse(v).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret-value") && !shown.contains("token-value"));
        let e = error(with("aws_secret_access_key", json!(12345)));
        assert!(!e.contains("12345"), "{e}");
    }

    #[test]
    fn readme_documents_every_setting() {
        let readme = include_str!("../README.md");
        for setting in SETTINGS {
            let row = format!("| `{}` |", setting.name);
            assert!(
                readme.contains(&row),
                "README.md has no row for {}",
                setting.name
            );
            if let Some(default) = setting.default {
                let line = readme.lines().find(|l| l.starts_with(&row)).unwrap();
                assert!(
                    line.contains(default),
                    "README.md: {} default {default}",
                    setting.name
                );
            }
        }
    }

    #[test]
    fn list_and_object_settings_may_be_json_text() {
        let text = with("partition_by", json!(r#"{"orders": ["country"]}"#));
        let given = with("partition_by", json!({"orders": ["country"]}));
        assert_eq!(
            parse(text).unwrap().partition_by,
            parse(given).unwrap().partition_by
        );
        let types = with("column_types", json!(r#"{"s": {"n": "decimal(10,2)"}}"#));
        assert_eq!(parse(types).unwrap().types.overrides["s"].len(), 1);
        let e = error(with("partition_by", json!(r#"["country""#)));
        assert!(
            e.contains("partition_by") && e.contains("JSON text of a list or an object"),
            "{e}"
        );
    }

    #[test]
    fn settings_from_the_environment() {
        let vars = [
            ("TARGET_S3_BUCKET", "b"),
            ("TARGET_S3_FILE_TYPE", "csv"),
            ("TARGET_S3_OBJECT_KEY_PATH", "p"),
            ("TARGET_S3_MAX_BATCH_ROWS", "10"),
            ("TARGET_S3_PREFLIGHT", "false"),
            ("TARGET_S3_COLUMN_TYPES", r#"{"s": {"n": "decimal(10,2)"}}"#),
            ("OTHER", "x"),
        ];
        let map = from_environment(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (c, warnings) = Config::from_map(&map).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(c.file_type, FileType::Csv);
        assert_eq!(c.limits.max_batch_rows, 10);
        assert!(!c.reliability.preflight);
        assert!(c.types.overrides["s"].contains_key("n"));
    }

    #[test]
    fn about_lists_every_setting() {
        let about = about();
        let names: Vec<&str> = about["settings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), SETTINGS.len());
        let secret = about["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "aws_secret_access_key")
            .unwrap();
        assert_eq!(secret["secret"], true);
        assert!(about_markdown().contains("| `iceberg_credential` | string | no |  | yes |"));
    }

    #[test]
    fn compression_defaults_and_checks_per_file_type_and_codec() {
        let c = parse(base()).unwrap();
        let snappy = Compression {
            codec: Codec::Snappy,
            level: None,
        };
        assert_eq!(c.output.compression, snappy);
        let csv = parse(with("file_type", json!("csv"))).unwrap();
        assert_eq!(csv.output.compression.codec, Codec::None);
        let mut v = with("compression", json!("ZSTD"));
        assert_eq!(parse(v.clone()).unwrap().output.compression.level, Some(3));
        v["compression_level"] = json!(19);
        assert_eq!(parse(v.clone()).unwrap().output.compression.level, Some(19));
        v["compression_level"] = json!(23);
        let e = error(v.clone());
        assert!(
            e.contains("compression_level") && e.contains("from 1 to 22") && e.contains("zstd"),
            "{e}"
        );
        v["compression"] = json!("gzip");
        v["compression_level"] = json!(0);
        assert_eq!(parse(v.clone()).unwrap().output.compression.level, Some(0));
        v["compression_level"] = json!(10);
        assert!(error(v.clone()).contains("from 0 to 9"));
        v["compression"] = json!("lz4");
        let e = error(v);
        assert!(e.contains("\"lz4\" takes no level"), "{e}");
        let mut v = with("file_type", json!("jsonl"));
        v["compression"] = json!("snappy");
        let e = error(v);
        assert!(
            e.contains("\"none\", \"gzip\", \"zstd\" for file_type \"jsonl\""),
            "{e}"
        );
    }

    #[test]
    fn csv_dialect_with_peer_names_and_unambiguous_choices() {
        let mut v = with("file_type", json!("csv"));
        let c = parse(v.clone()).unwrap();
        assert_eq!(c.output.csv, CsvDialect::default());
        for tab in ["\t", "\\t", "tab"] {
            v["csv_delimiter"] = json!(tab);
            assert_eq!(
                parse(v.clone()).unwrap().output.csv.delimiter,
                b'\t',
                "{tab:?}"
            );
        }
        v["csv_delimiter"] = json!(" ");
        assert_eq!(parse(v.clone()).unwrap().output.csv.delimiter, b' ');
        let mut peer = with("file_type", json!("csv"));
        peer["delimiter"] = json!("|");
        peer["quotechar"] = json!("'");
        peer["csv_header"] = json!(false);
        peer["csv_null_text"] = json!("\\N");
        let (c, warnings) = Config::from_map(peer.as_object().unwrap()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let csv = c.output.csv;
        assert_eq!((csv.delimiter, csv.quote, csv.header), (b'|', b'\'', false));
        assert_eq!(csv.null_text, "\\N");
        let mut both = peer.clone();
        both["csv_delimiter"] = json!(";");
        let e = error(both);
        assert!(e.contains("\"csv_delimiter\" and \"delimiter\""), "{e}");
        for (key, value, expected) in [
            ("csv_delimiter", json!(";;"), "one ASCII character"),
            ("csv_delimiter", json!("\n"), "other than a line break"),
            ("csv_delimiter", json!("§"), "one ASCII character"),
            ("csv_quote_character", json!(""), "one ASCII character"),
            ("csv_delimiter", json!("\""), "must differ"),
            ("csv_null_text", json!("a,b"), "without the delimiter"),
            ("csv_null_text", json!("\""), "without the delimiter"),
            ("csv_null_text", json!("x\ny"), "line breaks"),
            ("csv_header", json!("sometimes"), "true or false"),
        ] {
            let mut bad = with("file_type", json!("csv"));
            bad[key] = value;
            let e = error(bad);
            assert!(e.contains(key) && e.contains(expected), "{key}: {e}");
        }
        let (_, warnings) =
            Config::from_map(with("csv_delimiter", json!(";")).as_object().unwrap()).unwrap();
        assert!(
            warnings[0].contains("applies to file_type \"csv\" only"),
            "{warnings:?}"
        );
        let mut defaults = with("csv_delimiter", json!(","));
        defaults["csv_header"] = json!(true);
        defaults["csv_null_text"] = json!("");
        let (_, warnings) = Config::from_map(defaults.as_object().unwrap()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn about_lists_aliases() {
        let about = about();
        let delimiter = about["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "csv_delimiter")
            .unwrap();
        assert_eq!(delimiter["aliases"], json!(["delimiter"]));
    }

    #[test]
    fn store_settings() {
        let c = parse(base()).unwrap();
        assert_eq!(c.store.load_method, LoadMethod::Append);
        assert!(!c.store.manifest && !c.store.holds_state());
        assert!(c.store.local_folder.is_none() && c.store.storage_class.is_none());
        let mut v = with("server_side_encryption", json!("aes256"));
        v["storage_class"] = json!("glacier_ir");
        v["load_method"] = json!("OVERWRITE");
        v["manifest"] = json!("true");
        let c = parse(v).unwrap();
        assert_eq!(c.store.server_side_encryption.as_deref(), Some("AES256"));
        assert_eq!(c.store.storage_class.as_deref(), Some("GLACIER_IR"));
        assert_eq!(c.store.load_method, LoadMethod::Overwrite);
        assert!(c.store.manifest && c.store.holds_state());
        let e = error(with("kms_key_id", json!("alias/x")));
        assert!(
            e.contains("\"kms_key_id\"") && e.contains("\"aws:kms\""),
            "{e}"
        );
        let e = error(with("storage_class", json!("COLD")));
        assert!(
            e.contains("storage_class") && e.contains("\"DEEP_ARCHIVE\""),
            "{e}"
        );
        let e = error(with("load_method", json!("upsert")));
        assert!(e.contains("\"append\", \"overwrite\""), "{e}");
    }

    #[test]
    fn a_file_endpoint_is_a_local_folder() {
        let mut v = with("aws_endpoint", json!("file:///var/lake%20data/"));
        v["aws_access_key_id"] = json!("AKID");
        v["aws_secret_access_key"] = json!("secret");
        v["storage_class"] = json!("STANDARD_IA");
        let Value::Object(map) = v else { panic!() };
        let (c, warnings) = Config::from_map(&map).unwrap();
        assert_eq!(
            c.store.local_folder.as_deref(),
            Some(Path::new("/var/lake data/"))
        );
        assert!(c.aws.endpoint.is_none());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("aws_access_key_id, aws_secret_access_key"));
        assert!(warnings[1].contains("storage_class") && !warnings[1].contains("secret"));
        for bad in ["file://relative/dir", "file://", "file:///bad%zz"] {
            let e = error(with("aws_endpoint", json!(bad)));
            assert!(e.contains("aws_endpoint") && e.contains("file:///"), "{e}");
        }
    }

    #[test]
    fn mage_columns_follow_mage_mode_unless_set() {
        let plain = parse(base()).unwrap();
        assert!(!plain.mage && !plain.types.mage_columns);
        let mage = parse(with("mage_mode", json!(true))).unwrap();
        assert!(mage.mage && mage.types.mage_columns);
        let mut off = with("mage_mode", json!("true"));
        off["mage_columns"] = json!(false);
        let off = parse(off).unwrap();
        assert!(off.mage && !off.types.mage_columns);
        assert!(
            parse(with("mage_columns", json!(true)))
                .unwrap()
                .types
                .mage_columns
        );
        let e = error(with("mage_mode", json!("yes")));
        assert!(
            e.contains("\"mage_mode\"") && e.contains("true or false"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_warn() {
        let Value::Object(map) = with("compresion", json!("gzip")) else {
            panic!()
        };
        let (_, warnings) = Config::from_map(&map).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("compresion"));
    }
}
