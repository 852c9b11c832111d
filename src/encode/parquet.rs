//! Parquet: the batch's Arrow columns written as they are typed, one row group per
//! batch, pages compressed with the configured codec (snappy by default; `lz4` is
//! LZ4_RAW, the LZ4 that Parquet readers agree on).
//!
//! The Arrow schema comes from the stream's SCHEMA alone, so every object of a stream
//! carries the same Parquet schema, whatever values (or nulls) its rows hold.

use std::io::Write;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::failed;
use crate::config::{self, Codec};
use crate::error::Result;

const DICTIONARY_PAGE_LIMIT: usize = 256 * 1024;

pub struct ParquetEncoder<W: Write + Send> {
    writer: ArrowWriter<W>,
}

impl<W: Write + Send> ParquetEncoder<W> {
    pub fn new(schema: &SchemaRef, compression: config::Compression, out: W) -> Result<Self> {
        let props = WriterProperties::builder()
            .set_compression(codec(compression)?)
            // Columns of many distinct values give up dictionary encoding sooner, so
            // their values are not all hashed for nothing; few-valued ones keep it.
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_LIMIT)
            .set_created_by(concat!("target-s3 ", env!("CARGO_PKG_VERSION")).to_owned())
            .build();
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(failed)?;
        Ok(ParquetEncoder { writer })
    }

    /// Writes the batch as a row group and passes it on, so memory holds one at most.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(failed)?;
        self.writer.flush().map_err(failed)
    }

    pub fn writer_mut(&mut self) -> &mut W {
        self.writer.inner_mut()
    }

    pub fn finish(self) -> Result<W> {
        self.writer.into_inner().map_err(failed)
    }
}

/// Parquet's codec for the configured one; levels were checked with the settings.
fn codec(compression: config::Compression) -> Result<Compression> {
    Ok(match (compression.codec, compression.level) {
        (Codec::None, _) => Compression::UNCOMPRESSED,
        (Codec::Snappy, _) => Compression::SNAPPY,
        (Codec::Lz4, _) => Compression::LZ4_RAW,
        (Codec::Gzip, level) => Compression::GZIP(match level {
            Some(level) => GzipLevel::try_new(level).map_err(failed)?,
            None => GzipLevel::default(),
        }),
        (Codec::Zstd, level) => Compression::ZSTD(match level {
            Some(level) => ZstdLevel::try_new(level as i32).map_err(failed)?,
            None => ZstdLevel::default(),
        }),
    })
}
