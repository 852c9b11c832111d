//! target-s3: a Singer target that lands a tap's streams in Amazon S3 or any
//! S3-compatible store as CSV, JSONL or Parquet objects, and writes each STATE only once the
//! records before it are stored.
//!
//! The pipeline, one module per stage, data flowing one way:
//!
//! ```text
//! input      stdin -> blocks of whole lines (a reader thread)
//! protocol   line -> Singer message; a record decoded in the same pass (plain
//!            RECORD lines through `scan`, a strict byte scanner; the rest through
//!            serde_json)
//! schema     SCHEMA -> ordered, typed columns and their Arrow schema
//! batch      RECORD -> a row in the stream's typed column buffers (values: the
//!            exact conversions of each JSON scalar; metadata: the `_sdc_` columns)
//! batch_files BATCH messages: the files a manifest names -> record lines, which
//!            take the RECORD path above
//! parallel   a second decoding thread: plain RECORD lines of a block's second
//!            half -> rows in twin buffers, taken over in input order
//! partition  a RecordBatch chunk -> one part per partition_by value
//! encode     RecordBatch chunks -> CSV, JSONL or Parquet bytes, streamed
//! object_key -> object_key_template filled in: by default
//!            <prefix>/<table>/<date partition>/<partition>/<timestamp>-<unique>.<ext>
//! sink       the encoder thread: chunks of each open object -> encode -> store
//! store      -> S3 (PutObject, or multipart parts while encoding) or a local
//!            folder (temporary file, fsync, rename), acknowledged
//! glue       (glue_catalog) stored objects -> their new partitions added to the
//!            stream's Glue table, made or widened on its SCHEMA
//! state      -> the STATE lines the stored records now cover, on stdout
//! publish    the run's end: manifests, overwrite's deletions, then the held STATE
//! ```
//!
//! `target` drives the stages; `config` validates the settings they all read; `mage`
//! holds Mage's conventions (its catalog, its input's log lines, its settings); `crowemi`
//! reads crowemi/target-s3's settings as ours; `stop`
//! carries a stop signal (or the first upload that failed for good) to every wait.

pub mod batch;
pub mod batch_files;
pub mod config;
pub mod crowemi;
pub mod dialect;
pub mod encode;
pub mod error;
pub mod glue;
pub mod input;
pub mod mage;
pub mod metadata;
pub mod object_key;
pub mod parallel;
pub mod partition;
pub mod protocol;
pub mod publish;
pub mod scan;
pub mod schema;
pub mod secret;
pub mod sink;
pub mod state;
pub mod stop;
pub mod store;
pub mod suggest;
pub mod tables;
pub mod target;
pub mod values;
