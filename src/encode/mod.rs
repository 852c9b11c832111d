//! Encoders: Arrow `RecordBatch`es in, the bytes of one object out, as a stream.
//!
//! Owns: the file formats (CSV, JSONL, Parquet), their compression, key extensions and
//! content types. An object is written chunk by chunk (a Parquet row group, or a run of
//! CSV or JSONL lines, per batch) into any `std::io::Write`, compressed on the way for
//! the text formats, so a large object never has to be held whole.
//! Must not touch: keys, the store or state. An encoder sees only batches and a writer.

pub mod compress;
pub mod csv;
pub mod jsonl;
mod options;
pub mod parquet;
pub mod text;

use std::io::Write;
use std::sync::Arc;

use ::parquet::file::metadata::ParquetMetaData;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};
use compress::Compressed;
pub use options::{Codec, Compression, CsvDialect, FileType, Output, ParquetCompatibility};

/// What an object is, as HTTP says it: its format, and the compression of the whole
/// object when there is one. Parquet's compression is inside the file, so it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Media {
    pub content_type: &'static str,
    pub content_encoding: Option<&'static str>,
}

/// Newline-delimited JSON, for JSONL objects and quarantined records alike.
pub const JSONL: Media = Media {
    content_type: "application/x-ndjson",
    content_encoding: None,
};

/// A manifest: one JSON document.
pub const JSON: Media = Media {
    content_type: "application/json",
    content_encoding: None,
};

pub fn media(file_type: FileType, codec: Codec) -> Media {
    let content_type = match file_type {
        FileType::Csv => "text/csv",
        FileType::Jsonl => JSONL.content_type,
        FileType::Parquet => "application/vnd.apache.parquet",
    };
    let content_encoding = match (file_type, codec) {
        (FileType::Parquet, _) => None,
        (_, Codec::Gzip) => Some("gzip"),
        (_, Codec::Zstd) => Some("zstd"),
        _ => None,
    };
    Media {
        content_type,
        content_encoding,
    }
}

/// The key's extension: the file type's, then the compression's for a whole object.
pub fn extension(file_type: FileType, codec: Codec) -> &'static str {
    match (file_type, codec) {
        (FileType::Parquet, _) => "parquet",
        (FileType::Csv, Codec::Gzip) => "csv.gz",
        (FileType::Csv, Codec::Zstd) => "csv.zst",
        (FileType::Csv, _) => "csv",
        (FileType::Jsonl, Codec::Gzip) => "jsonl.gz",
        (FileType::Jsonl, Codec::Zstd) => "jsonl.zst",
        (FileType::Jsonl, _) => "jsonl",
    }
}

/// One object being encoded into `W`.
pub enum Encoder<W: Write + Send> {
    Csv(csv::CsvEncoder<Compressed<W>>),
    Jsonl(jsonl::JsonlEncoder<Compressed<W>>),
    /// Boxed: Parquet's writer state is large, and encoders move between threads.
    Parquet(Box<parquet::ParquetEncoder<W>>),
}

impl<W: Write + Send> Encoder<W> {
    pub fn new(file_type: FileType, output: &Output, schema: &SchemaRef, out: W) -> Result<Self> {
        let compressed = |out| Compressed::new(output.compression, out).map_err(failed);
        match file_type {
            FileType::Csv => {
                csv::CsvEncoder::new(schema, &output.csv, compressed(out)?).map(Encoder::Csv)
            }
            FileType::Jsonl => {
                jsonl::JsonlEncoder::new(schema, compressed(out)?).map(Encoder::Jsonl)
            }
            FileType::Parquet => {
                parquet::ParquetEncoder::new(schema, output.compression, output.parquet, out)
                    .map(|e| Encoder::Parquet(Box::new(e)))
            }
        }
    }

    /// Encodes one batch and passes its bytes on to the writer.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self {
            Encoder::Csv(e) => e.write(batch),
            Encoder::Jsonl(e) => e.write(batch),
            Encoder::Parquet(e) => e.write(batch),
        }
    }

    /// The writer the object goes into; None once a failed start has dropped it.
    pub fn writer_mut(&mut self) -> Option<&mut W> {
        match self {
            Encoder::Csv(e) => Some(e.writer_mut().get_mut()),
            Encoder::Jsonl(e) => Some(e.writer_mut().get_mut()),
            Encoder::Parquet(e) => e.writer_mut(),
        }
    }

    /// Ends the object (Parquet writes its footer, compression its stream's end) and
    /// returns the writer.
    /// Ends the object: gives back its writer, and for Parquet the footer's metadata.
    pub fn finish(self) -> Result<(W, Option<Arc<ParquetMetaData>>)> {
        match self {
            Encoder::Csv(e) => Ok((e.finish()?.finish().map_err(failed)?, None)),
            Encoder::Jsonl(e) => Ok((e.finish()?.finish().map_err(failed)?, None)),
            Encoder::Parquet(e) => (*e)
                .finish()
                .map(|(out, footer)| (out, Some(Arc::new(footer)))),
        }
    }
}

pub(crate) fn failed(e: impl std::fmt::Display) -> Error {
    Error::Encode(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_and_media_follow_file_type_and_codec() {
        assert_eq!(extension(FileType::Csv, Codec::Gzip), "csv.gz");
        assert_eq!(extension(FileType::Jsonl, Codec::Zstd), "jsonl.zst");
        assert_eq!(extension(FileType::Parquet, Codec::Zstd), "parquet");
        let csv = media(FileType::Csv, Codec::Zstd);
        assert_eq!(
            (csv.content_type, csv.content_encoding),
            ("text/csv", Some("zstd"))
        );
        assert_eq!(media(FileType::Jsonl, Codec::None), JSONL);
        assert_eq!(media(FileType::Parquet, Codec::Gzip).content_encoding, None);
    }
}
