//! Encoders: an Arrow `RecordBatch` in, the bytes of one object out.
//!
//! Owns: the file formats (CSV text, Parquet) and their content types.
//! Must not touch: keys, the store or state. An encoder sees only the batch, so the
//! same rows always give the same bytes, whichever store receives them.

pub mod csv;
pub mod parquet;

use arrow::record_batch::RecordBatch;

use crate::config::FileType;
use crate::error::{Error, Result};

/// Encodes one batch as a whole object of the given type.
pub fn encode(file_type: FileType, batch: &RecordBatch) -> Result<Vec<u8>> {
    let failed = |e: &dyn std::fmt::Display| Error::Encode(e.to_string());
    match file_type {
        FileType::Csv => csv::encode(batch).map_err(|e| failed(&e)),
        FileType::Parquet => parquet::encode(batch).map_err(|e| failed(&e)),
    }
}

pub fn content_type(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Csv => "text/csv",
        FileType::Parquet => "application/vnd.apache.parquet",
    }
}
