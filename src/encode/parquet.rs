//! Parquet: the batch's Arrow columns written as they are typed, one row group per
//! batch, pages compressed with the configured codec (snappy by default; `lz4` is
//! LZ4_RAW, the LZ4 that Parquet readers agree on).
//!
//! The Arrow schema comes from the stream's SCHEMA alone, so every object of a stream
//! carries the same Parquet schema, whatever values (or nulls) its rows hold.
//!
//! With `parquet_compatibility: portable` the footer states that dates and timestamps
//! are proleptic Gregorian, as they are, in the two forms engines look for: Hive's
//! `writer.date.proleptic`, and the Spark 3.0 convention Spark itself reads
//! (`org.apache.spark.version` at 3.0.0 or later without `org.apache.spark.legacyDateTime`:
//! days and microseconds as they are, no rebasing). Without either, Spark 3 refuses
//! dates before 1582-10-15 by default and Hive reads them in the hybrid Julian calendar.
//! `created_by` names target-s3 as the writer either way.
//!
//! Dictionary encoding is chosen per column from the object's first batch: a column whose
//! sampled values are mostly distinct (ids, e-mails, timestamps) is written plain from
//! the start. Parquet would give up its dictionary for such a column anyway, once the
//! dictionary page is full, but only after hashing every value of it until then.

use std::collections::HashSet;
use std::io::Write;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowSchemaConverter;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use super::failed;
use crate::encode::{self as options, Codec, ParquetCompatibility};
use crate::error::Result;

const DICTIONARY_PAGE_LIMIT: usize = 256 * 1024;
/// How many values of a column are looked at to judge its cardinality.
const SAMPLE: usize = 4096;
/// Fewer sampled values than this say too little; the column keeps its dictionary.
const MIN_SAMPLE: usize = 256;

/// The footer's statements that dates and timestamps are proleptic Gregorian (see the
/// module comment): 3.0.0 is the Spark release that made it the convention.
const PROLEPTIC_GREGORIAN: [(&str, &str); 2] = [
    ("writer.date.proleptic", "true"),
    ("org.apache.spark.version", "3.0.0"),
];

pub struct ParquetEncoder<W: Write + Send> {
    compression: Compression,
    compatibility: ParquetCompatibility,
    /// None only after making the writer failed, which also lost the object's writer.
    state: Option<State<W>>,
}

/// The writer is made when the first batch shows what the columns hold.
enum State<W: Write + Send> {
    Waiting(SchemaRef, W),
    Writing(Box<ArrowWriter<Slot<W>>>),
}

/// The object's writer, lent to Parquet's writer and taken back whole once the footer
/// is written: Parquet's `finish` gives the footer's metadata (which an Iceberg commit
/// reads its statistics from) but keeps the writer, and its `into_inner` would write
/// the footer a second time.
struct Slot<W>(Option<W>);

impl<W: Write> Write for Slot<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lent()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.lent()?.flush()
    }
}

impl<W> Slot<W> {
    fn lent(&mut self) -> std::io::Result<&mut W> {
        self.0
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the object was already finished"))
    }
}

impl<W: Write + Send> ParquetEncoder<W> {
    pub fn new(
        schema: &SchemaRef,
        compression: options::Compression,
        compatibility: ParquetCompatibility,
        out: W,
    ) -> Result<Self> {
        // Checked now, so that a schema Parquet cannot hold (or a bad level) fails
        // before any row is sent.
        let compression = codec(compression)?;
        ArrowSchemaConverter::new()
            .convert(schema)
            .map_err(failed)?;
        let state = Some(State::Waiting(schema.clone(), out));
        Ok(ParquetEncoder {
            compression,
            compatibility,
            state,
        })
    }

    /// Writes the batch as a row group and passes it on, so memory holds one at most.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let writer = match self.state.take() {
            Some(State::Writing(writer)) => writer,
            Some(State::Waiting(schema, out)) => writer(
                schema,
                out,
                properties(self.compression, self.compatibility),
                Some(batch),
            )?,
            None => return Err(failed("the Parquet writer could not be made")),
        };
        let writer = &mut **self.state.insert(State::Writing(writer)).writing();
        writer.write(batch).map_err(failed)?;
        writer.flush().map_err(failed)
    }

    pub fn writer_mut(&mut self) -> Option<&mut W> {
        match self.state.as_mut()? {
            State::Waiting(_, out) => Some(out),
            State::Writing(writer) => writer.inner_mut().0.as_mut(),
        }
    }

    /// Writes the footer; gives back the object's writer and the footer's metadata.
    pub fn finish(self) -> Result<(W, ParquetMetaData)> {
        let writer = match self.state {
            Some(State::Writing(writer)) => writer,
            Some(State::Waiting(schema, out)) => writer(
                schema,
                out,
                properties(self.compression, self.compatibility),
                None,
            )?,
            None => return Err(failed("the Parquet writer could not be made")),
        };
        let mut writer = writer;
        let footer = writer.finish().map_err(failed)?;
        let out = writer.inner_mut().0.take();
        Ok((
            out.ok_or_else(|| failed("the object was already finished"))?,
            footer,
        ))
    }
}

impl<W: Write + Send> State<W> {
    fn writing(&mut self) -> &mut Box<ArrowWriter<Slot<W>>> {
        match self {
            State::Writing(writer) => writer,
            State::Waiting(..) => unreachable!("set to Writing just before"),
        }
    }
}

/// The writer settings that do not depend on the data: codec, dictionary limit,
/// the writer's name and the footer's statements.
fn properties(
    compression: Compression,
    compatibility: ParquetCompatibility,
) -> WriterPropertiesBuilder {
    let props = WriterProperties::builder()
        .set_compression(compression)
        // Columns that keep their dictionary give it up sooner if they turn out to
        // have many distinct values after all.
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_LIMIT)
        .set_created_by(concat!("target-s3 ", env!("CARGO_PKG_VERSION")).to_owned());
    match compatibility {
        ParquetCompatibility::Portable => props.set_key_value_metadata(Some(
            PROLEPTIC_GREGORIAN
                .iter()
                .map(|(key, value)| KeyValue::new(key.to_string(), value.to_string()))
                .collect(),
        )),
        ParquetCompatibility::Arrow => props,
    }
}

fn writer<W: Write + Send>(
    schema: SchemaRef,
    out: W,
    mut props: WriterPropertiesBuilder,
    first: Option<&RecordBatch>,
) -> Result<Box<ArrowWriter<Slot<W>>>> {
    if let Some(batch) = first {
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            props = plain_where_distinct(props, vec![field.name().clone()], column);
        }
    }
    let writer =
        ArrowWriter::try_new(Slot(Some(out)), schema, Some(props.build())).map_err(failed)?;
    Ok(Box::new(writer))
}

/// Turns dictionary encoding off for each leaf column under `path` whose sampled values
/// are mostly distinct. Lists keep the default: their items are usually few-valued tags.
fn plain_where_distinct(
    mut props: WriterPropertiesBuilder,
    path: Vec<String>,
    column: &ArrayRef,
) -> WriterPropertiesBuilder {
    match column.data_type() {
        DataType::Struct(fields) => {
            for (field, child) in fields.iter().zip(column.as_struct().columns()) {
                let mut child_path = path.clone();
                child_path.push(field.name().clone());
                props = plain_where_distinct(props, child_path, child);
            }
            props
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::Boolean => props,
        _ if mostly_distinct(column) => {
            props.set_column_dictionary_enabled(ColumnPath::new(path), false)
        }
        _ => props,
    }
}

/// Whether more than half of the first non-null values differ from each other.
fn mostly_distinct(column: &ArrayRef) -> bool {
    let data = column.to_data();
    let width = match data.data_type().primitive_width() {
        Some(width) => width,
        None => return mostly_distinct_bytes(column),
    };
    let values = &data.buffers()[0].as_slice()[data.offset() * width..];
    let mut seen = HashSet::new();
    let mut sampled = 0;
    for i in (0..data.len()).filter(|&i| data.is_valid(i)).take(SAMPLE) {
        seen.insert(&values[i * width..(i + 1) * width]);
        sampled += 1;
    }
    sampled >= MIN_SAMPLE && seen.len() * 2 > sampled
}

fn mostly_distinct_bytes(column: &ArrayRef) -> bool {
    let Some(strings) = column.as_string_opt::<i32>() else {
        return false;
    };
    let sample: Vec<&str> = strings.iter().flatten().take(SAMPLE).collect();
    let distinct: HashSet<&str> = sample.iter().copied().collect();
    sample.len() >= MIN_SAMPLE && distinct.len() * 2 > sample.len()
}

/// Parquet's codec for the configured one; levels were checked with the settings.
fn codec(compression: options::Compression) -> Result<Compression> {
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
