//! Encoders: Arrow `RecordBatch`es in, the bytes of one object out, as a stream.
//!
//! Owns: the file formats (CSV text, Parquet) and their content types. An object is
//! written chunk by chunk (a Parquet row group, or a run of CSV rows, per batch) into
//! any `std::io::Write`, so a large object never has to be held whole.
//! Must not touch: keys, the store or state. An encoder sees only batches and a writer.

pub mod csv;
pub mod parquet;

use std::io::Write;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::config::FileType;
use crate::error::{Error, Result};

pub fn content_type(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Csv => "text/csv",
        FileType::Parquet => "application/vnd.apache.parquet",
    }
}

/// One object being encoded into `W`.
pub enum Encoder<W: Write + Send> {
    Csv(csv::CsvEncoder<W>),
    /// Boxed: Parquet's writer state is large, and encoders move between threads.
    Parquet(Box<parquet::ParquetEncoder<W>>),
}

impl<W: Write + Send> Encoder<W> {
    pub fn new(file_type: FileType, schema: &SchemaRef, out: W) -> Result<Self> {
        match file_type {
            FileType::Csv => csv::CsvEncoder::new(schema, out).map(Encoder::Csv),
            FileType::Parquet => {
                parquet::ParquetEncoder::new(schema, out).map(|e| Encoder::Parquet(Box::new(e)))
            }
        }
    }

    /// Encodes one batch and passes its bytes on to the writer.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Encoder::Csv(e) => e.write(batch),
            Encoder::Parquet(e) => e.write(batch),
        }
    }

    /// The writer the object goes into; None once a failed start has dropped it.
    pub fn writer_mut(&mut self) -> Option<&mut W> {
        match self {
            Encoder::Csv(e) => Some(e.writer_mut()),
            Encoder::Parquet(e) => e.writer_mut(),
        }
    }

    /// Ends the object (Parquet writes its footer) and returns the writer.
    pub fn finish(self) -> Result<W> {
        match self {
            Encoder::Csv(e) => e.finish(),
            Encoder::Parquet(e) => (*e).finish(),
        }
    }
}

pub(crate) fn failed(e: impl std::fmt::Display) -> Error {
    Error::Encode(e.to_string())
}
