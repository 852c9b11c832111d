//! BATCH messages (the Singer SDK's batch mode): the files a manifest names, opened and
//! read back as record lines.
//!
//! Owns: a BATCH's `encoding`, its file URLs (`file://`, `s3://`), opening each file,
//! undoing its compression, and turning Parquet rows into record JSON, so that every
//! record of a batch file reaches the stream's buffer as the same JSON text a RECORD
//! line would carry, through the same checks. Must not touch: buffers, keys, STATE —
//! `target` takes the lines from here exactly as it takes RECORD lines.
//!
//! Files are streamed on a reader thread (`input::Blocks`), gzip decoded as it is read
//! (a small file inflated whole, see `Gunzip`); Parquet files are read a row group at
//! a time (from S3 by ranged GETs).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayData, make_array};
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::{ChunkReader, Length};
use serde::Deserialize;
use tokio::runtime::Handle;

use crate::config::percent_decoded;
use crate::error::{Error, Result as RunResult};
use crate::input::Blocks;
use crate::stop::Brake;
use crate::store::S3Store;

/// Rows per Arrow batch taken from a Parquet file.
const PARQUET_ROWS: usize = 8192;
/// The first bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What the files of a BATCH hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub format: Format,
    /// Whether the tap declared the files gzip-compressed.
    pub gzip: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Parquet,
}

impl Encoding {
    /// Reads a BATCH's `encoding` object: `{"format": "jsonl" | "parquet",
    /// "compression": "gzip" | "none" | null}`.
    pub fn parse(raw: &str) -> Result<Encoding, String> {
        #[derive(Deserialize)]
        struct Raw {
            format: Option<String>,
            compression: Option<String>,
        }
        let expected = r#"BATCH needs an "encoding" object such as {"format": "jsonl", "compression": "gzip"}"#;
        let parsed: Raw = serde_json::from_str(raw).map_err(|_| expected.to_owned())?;
        let format = match parsed
            .format
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl") => Format::Jsonl,
            Some("parquet") => Format::Parquet,
            Some(other) => {
                return Err(format!(
                    "BATCH encoding format {other:?} is not supported; expected \"jsonl\" or \"parquet\""
                ));
            }
            None => return Err(expected.to_owned()),
        };
        let gzip = match parsed
            .compression
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("gzip") => true,
            None | Some("none") => false,
            Some(other) => {
                return Err(format!(
                    "BATCH encoding compression {other:?} is not supported; expected \"gzip\" or \"none\""
                ));
            }
        };
        Ok(Encoding { format, gzip })
    }
}

/// Where a batch file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    S3 { bucket: String, key: String },
}

impl Location {
    /// Reads a manifest URL: `file:///path` (percent-encoded, as the SDK writes it, with
    /// an empty or `localhost` host) or `s3://bucket/key`.
    pub fn parse(url: &str) -> Result<Location, String> {
        if let Some(rest) = url.strip_prefix("file://") {
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(format!(
                    "batch file URL {url:?} is not a file URL with an absolute path (file:///…)"
                ));
            }
            let decoded = percent_decoded(path)
                .ok_or_else(|| format!("batch file URL {url:?} has a bad %-escape"))?;
            return Ok(Location::File(PathBuf::from(decoded)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(Location::S3 {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                }),
                _ => Err(format!(
                    "batch file URL {url:?} does not name a bucket and a key (s3://bucket/key)"
                )),
            };
        }
        Err(format!(
            "batch file URL {url:?} is not supported; expected file:///… or s3://bucket/key"
        ))
    }
}

/// Opens batch files: local ones directly, `s3://` ones with the target's own S3
/// client (its credentials, region and endpoint).
pub struct Opener {
    s3: Option<S3Store>,
    runtime: S3Runtime,
    max_line: usize,
}

/// Runs S3 requests from outside the runtime, each given up when the run's brake is
/// pulled (a stop signal, or an upload that failed for good).
#[derive(Clone)]
struct S3Runtime {
    handle: Handle,
    brake: Brake,
}

impl S3Runtime {
    fn block_on<T>(&self, work: impl Future<Output = RunResult<T>>) -> RunResult<T> {
        self.handle.block_on(self.brake.unless_pulled(work))
    }
}

/// A batch file being read: its record lines, and whether it was gzip although the
/// tap declared no compression (the SDK's JSONL writer always compresses).
pub struct Opened {
    pub lines: Blocks,
    pub undeclared_gzip: bool,
}

impl Opener {
    pub fn new(s3: Option<S3Store>, handle: Handle, brake: Brake, max_line: usize) -> Opener {
        Opener {
            s3,
            runtime: S3Runtime { handle, brake },
            max_line,
        }
    }

    /// Starts reading the file at `url` as record lines (one JSON object a line).
    pub fn open(&self, url: &str, encoding: Encoding) -> Result<Opened, String> {
        let location = Location::parse(url)?;
        match encoding.format {
            Format::Jsonl => self.open_jsonl(&location, encoding),
            Format::Parquet => self.open_parquet(&location),
        }
        .map_err(|e| format!("batch file {url}: {e}"))
    }

    fn open_jsonl(&self, location: &Location, encoding: Encoding) -> Result<Opened, String> {
        let raw: Box<dyn Read + Send> = match location {
            Location::File(path) => Box::new(open_file(path)?),
            Location::S3 { bucket, key } => Box::new(self.s3_file(bucket, key)?.body(0)?),
        };
        let mut reader = BufReader::with_capacity(256 << 10, raw);
        let head = reader.fill_buf().map_err(|e| format!("cannot read: {e}"))?;
        let is_gzip = head.starts_with(&GZIP_MAGIC);
        if encoding.gzip && !is_gzip && !head.is_empty() {
            return Err("declared gzip-compressed, but it is not gzip".into());
        }
        let lines: Box<dyn Read + Send> = if is_gzip {
            Box::new(Gunzip::new(reader))
        } else {
            Box::new(reader)
        };
        Ok(Opened {
            lines: self.lines(lines)?,
            undeclared_gzip: is_gzip && !encoding.gzip,
        })
    }

    fn open_parquet(&self, location: &Location) -> Result<Opened, String> {
        let not_parquet = |e: parquet::errors::ParquetError| format!("not a Parquet file: {e}");
        let rows = match location {
            Location::File(path) => row_batches(open_file(path)?),
            Location::S3 { bucket, key } => row_batches(self.s3_file(bucket, key)?),
        }
        .map_err(not_parquet)?;
        Ok(Opened {
            lines: self.lines(ParquetLines::new(rows))?,
            undeclared_gzip: false,
        })
    }

    fn lines(&self, reader: impl Read + Send + 'static) -> Result<Blocks, String> {
        Blocks::spawn(reader, self.max_line).map_err(|e| format!("cannot start reading: {e}"))
    }

    fn s3_file(&self, bucket: &str, key: &str) -> Result<S3File, String> {
        let Some(s3) = &self.s3 else {
            return Err(
                "s3:// batch files need an S3 store (aws_endpoint is a local folder)".into(),
            );
        };
        let len = self
            .runtime
            .block_on(s3.object_size(bucket, key))
            .map_err(|e| e.to_string())?;
        Ok(S3File {
            s3: s3.clone(),
            runtime: self.runtime.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            len,
        })
    }
}

/// A Parquet file's rows, `PARQUET_ROWS` at a time.
fn row_batches<R: ChunkReader + 'static>(
    file: R,
) -> parquet::errors::Result<ParquetRecordBatchReader> {
    ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(PARQUET_ROWS)
        .build()
}

fn open_file(path: &std::path::Path) -> Result<File, String> {
    File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// The largest gzip file, compressed, that is inflated in one piece.
const WHOLE_GZIP_IN: usize = 16 << 20;
/// The largest gzip file, inflated, that is inflated in one piece.
const WHOLE_GZIP_OUT: usize = 32 << 20;

/// A gzip file's lines. A file of one member that is small both ways (the Singer SDK
/// writes one member of one batch of records) is inflated whole by libdeflate, at
/// about twice the speed of a streaming inflater, in memory bounded by
/// `WHOLE_GZIP_IN + WHOLE_GZIP_OUT`; anything else — larger, several members,
/// damaged — is streamed, which also gives the precise error.
/// The work happens at the first read, on the reader thread.
enum Gunzip<R: Read> {
    Unread(R),
    Whole(io::Cursor<Vec<u8>>),
    Streamed(Box<MultiGzDecoder<io::Chain<io::Cursor<Vec<u8>>, R>>>),
}

impl<R: Read> Gunzip<R> {
    fn new(file: R) -> Gunzip<R> {
        Gunzip::Unread(file)
    }

    fn start(file: R) -> io::Result<Gunzip<R>> {
        let mut head = Vec::new();
        let mut file = file.take(WHOLE_GZIP_IN as u64 + 1);
        file.read_to_end(&mut head)?;
        let file = file.into_inner();
        if head.len() <= WHOLE_GZIP_IN
            && let Some(lines) = inflate_one_member(&head)
        {
            return Ok(Gunzip::Whole(io::Cursor::new(lines)));
        }
        let whole = io::Cursor::new(head).chain(file);
        Ok(Gunzip::Streamed(Box::new(MultiGzDecoder::new(whole))))
    }
}

impl<R: Read> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self {
                Gunzip::Whole(lines) => return lines.read(buf),
                Gunzip::Streamed(lines) => return lines.read(buf),
                Gunzip::Unread(_) => {
                    let Gunzip::Unread(file) =
                        std::mem::replace(self, Gunzip::Whole(Default::default()))
                    else {
                        unreachable!("matched above")
                    };
                    *self = Gunzip::start(file)?;
                }
            }
        }
    }
}

/// `file` inflated, if it is exactly one gzip member whose size (its last four bytes)
/// is at most `WHOLE_GZIP_OUT` and which inflates without error to that size, with
/// its CRC checked. `None` otherwise: the caller streams the file instead.
fn inflate_one_member(file: &[u8]) -> Option<Vec<u8>> {
    let size_field = file.get(file.len().checked_sub(4)?..)?;
    let size = u32::from_le_bytes(size_field.try_into().ok()?) as usize;
    if size > WHOLE_GZIP_OUT {
        return None;
    }
    // One byte more than the member says, so an inflated size that differs is seen.
    let mut out = vec![0u8; size + 1];
    let (mut read, mut written) = (0usize, 0usize);
    // SAFETY: the decompressor is checked for null and freed once, below; the input
    // and output pointers come from live slices with their true lengths, and
    // libdeflate writes at most `out.len()` bytes and two counts into our locals.
    let done = unsafe {
        let inflater = libdeflate_sys::libdeflate_alloc_decompressor();
        if inflater.is_null() {
            return None;
        }
        let result = libdeflate_sys::libdeflate_gzip_decompress_ex(
            inflater,
            file.as_ptr().cast(),
            file.len(),
            out.as_mut_ptr().cast(),
            out.len(),
            &mut read,
            &mut written,
        );
        libdeflate_sys::libdeflate_free_decompressor(inflater);
        result == libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS
    };
    (done && read == file.len() && written == size).then(|| {
        out.truncate(size);
        out
    })
}

/// An S3 object read by ranged GETs: as a stream for JSONL, in column chunks for
/// Parquet (which reads the footer first, then only what each row group needs).
struct S3File {
    s3: S3Store,
    runtime: S3Runtime,
    bucket: String,
    key: String,
    len: u64,
}

impl S3File {
    /// The object from byte `start` to its end, as a stream.
    fn body(&self, start: u64) -> Result<BodyReader, String> {
        let end = self.len.max(start + 1) - 1;
        let body = self
            .runtime
            .block_on(self.s3.read_range(&self.bucket, &self.key, start, end))
            .map_err(|e| e.to_string())?;
        Ok(BodyReader {
            body,
            chunk: Bytes::new(),
            runtime: self.runtime.clone(),
        })
    }
}

impl Length for S3File {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for S3File {
    type T = BodyReader;

    fn get_read(&self, start: u64) -> parquet::errors::Result<BodyReader> {
        self.body(start)
            .map_err(parquet::errors::ParquetError::General)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        if length == 0 {
            return Ok(Bytes::new());
        }
        let end = start + length as u64 - 1;
        let fetched = self.runtime.block_on(async {
            let body = self
                .s3
                .read_range(&self.bucket, &self.key, start, end)
                .await?;
            body.collect()
                .await
                .map(|data| data.into_bytes())
                .map_err(|e| read_error(&self.bucket, &self.key, e))
        });
        fetched.map_err(|e| parquet::errors::ParquetError::General(e.to_string()))
    }
}

fn read_error(bucket: &str, key: &str, e: impl std::fmt::Display) -> Error {
    Error::Store(format!("reading s3://{bucket}/{key}: {e}"))
}

/// A GetObject body as `std::io::Read`, for the reader thread (outside the runtime).
pub struct BodyReader {
    body: aws_sdk_s3::primitives::ByteStream,
    chunk: Bytes,
    runtime: S3Runtime,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            let body = &mut self.body;
            let next = async {
                body.try_next()
                    .await
                    .map_err(|e| Error::Store(e.to_string()))
            };
            match self.runtime.block_on(next) {
                Ok(Some(chunk)) => self.chunk = chunk,
                Ok(None) => return Ok(0),
                Err(e) => return Err(io::Error::other(e.to_string())),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

/// Parquet rows as JSON lines, a batch of rows at a time, so that they take the same
/// path (and the same checks against the stream's schema) as JSONL records. Columns
/// are matched to the schema's properties by name when the lines are decoded.
struct ParquetLines {
    rows: ParquetRecordBatchReader,
    out: Vec<u8>,
    at: usize,
}

impl ParquetLines {
    fn new(rows: ParquetRecordBatchReader) -> ParquetLines {
        ParquetLines {
            rows,
            out: Vec::new(),
            at: 0,
        }
    }

    /// Writes the next row batch into `out`; false at the end of the file.
    fn refill(&mut self) -> io::Result<bool> {
        let Some(batch) = self.rows.next() else {
            return Ok(false);
        };
        let batch = batch.map_err(|e| io::Error::other(format!("bad Parquet data: {e}")))?;
        let batch = with_offset_zones(&batch)?;
        self.out.clear();
        self.at = 0;
        let mut writer = arrow_json::LineDelimitedWriter::new(&mut self.out);
        writer
            .write(&batch)
            .and_then(|()| writer.finish())
            .map_err(|e| io::Error::other(format!("cannot turn Parquet rows into JSON: {e}")))?;
        Ok(true)
    }
}

impl Read for ParquetLines {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.out.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The batch with every timestamp's zone given as `+00:00` (the same instants): Parquet
/// files say `UTC` or a zone name, which the JSON writer cannot show without a time zone
/// database, while the schema's date-time columns take any offset.
fn with_offset_zones(batch: &RecordBatch) -> io::Result<RecordBatch> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| zoned(f.data_type()) != *f.data_type())
    {
        return Ok(batch.clone());
    }
    let fields: Vec<FieldRef> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| Arc::new(Field::clone(f).with_data_type(zoned(f.data_type()))))
        .collect();
    let columns = batch
        .columns()
        .iter()
        .map(|c| rezoned(c.to_data()).map(make_array))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io::Error::other)?;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(io::Error::other)
}

fn zoned(data_type: &DataType) -> DataType {
    let field = |f: &FieldRef| Arc::new(Field::clone(f).with_data_type(zoned(f.data_type())));
    match data_type {
        DataType::Timestamp(unit, Some(_)) => DataType::Timestamp(*unit, Some("+00:00".into())),
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

fn rezoned(data: ArrayData) -> Result<ArrayData, arrow::error::ArrowError> {
    let data_type = zoned(data.data_type());
    if data_type == *data.data_type() {
        return Ok(data);
    }
    let children = data
        .child_data()
        .iter()
        .cloned()
        .map(rezoned)
        .collect::<Result<Vec<_>, _>>()?;
    data.into_builder()
        .data_type(data_type)
        .child_data(children)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzipped(text: &[u8]) -> Vec<u8> {
        let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        out.write_all(text).unwrap();
        out.finish().unwrap()
    }

    fn gunzipped(file: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut lines = Vec::new();
        Gunzip::new(io::Cursor::new(file)).read_to_end(&mut lines)?;
        Ok(lines)
    }

    #[test]
    fn one_small_member_is_inflated_whole() {
        let text: Vec<u8> = (0..50_000)
            .flat_map(|i| format!("{{\"id\":{i}}}\n").into_bytes())
            .collect();
        let file = gzipped(&text);
        assert_eq!(inflate_one_member(&file).as_deref(), Some(&text[..]));
        assert_eq!(gunzipped(file).unwrap(), text);
        assert_eq!(inflate_one_member(&gzipped(b"")).as_deref(), Some(&b""[..]));
    }

    #[test]
    fn several_members_or_damage_are_streamed_with_every_byte_or_the_error() {
        // Two equal members (`cat a.gz a.gz`): the first alone would pass every check
        // of the last member's trailer.
        let mut twice = gzipped(b"{\"id\":1}\n");
        twice.extend(gzipped(b"{\"id\":1}\n"));
        assert_eq!(inflate_one_member(&twice), None);
        assert_eq!(gunzipped(twice).unwrap(), b"{\"id\":1}\n{\"id\":1}\n");

        let mut damaged = gzipped(b"{\"id\":1}\n{\"id\":2}\n");
        let crc = damaged.len() - 8;
        damaged[crc] ^= 1;
        assert_eq!(inflate_one_member(&damaged), None);
        assert!(gunzipped(damaged).is_err());

        let mut short = gzipped(b"{\"id\":1}\n{\"id\":2}\n");
        short.truncate(short.len() - 3);
        assert_eq!(inflate_one_member(&short), None);
        assert!(gunzipped(short).is_err());
    }

    #[test]
    fn a_file_past_the_bounds_is_streamed() {
        let text = vec![b'x'; WHOLE_GZIP_OUT + 1];
        let file = gzipped(&text);
        assert_eq!(inflate_one_member(&file), None);
        assert_eq!(gunzipped(file).unwrap().len(), WHOLE_GZIP_OUT + 1);
    }

    #[test]
    fn encodings_are_read_and_checked() {
        let e = Encoding::parse(r#"{"format":"jsonl","compression":"gzip"}"#).unwrap();
        assert_eq!((e.format, e.gzip), (Format::Jsonl, true));
        let e = Encoding::parse(r#"{"format":"parquet","compression":"none"}"#).unwrap();
        assert_eq!((e.format, e.gzip), (Format::Parquet, false));
        let e = Encoding::parse(r#"{"format":"JSONL"}"#).unwrap();
        assert_eq!((e.format, e.gzip), (Format::Jsonl, false));
        let e = Encoding::parse(r#"{"format":"avro"}"#).unwrap_err();
        assert!(e.contains("\"avro\" is not supported"), "{e}");
        let e = Encoding::parse(r#"{"format":"jsonl","compression":"bz2"}"#).unwrap_err();
        assert!(e.contains("\"bz2\""), "{e}");
        assert!(
            Encoding::parse("[1]")
                .unwrap_err()
                .contains("\"encoding\" object")
        );
    }

    #[test]
    fn urls_name_files_and_objects() {
        assert_eq!(
            Location::parse("file:///tmp/a%20b/x%3Dy.json.gz").unwrap(),
            Location::File(PathBuf::from("/tmp/a b/x=y.json.gz"))
        );
        assert_eq!(
            Location::parse("file://localhost/tmp/x").unwrap(),
            Location::File(PathBuf::from("/tmp/x"))
        );
        assert_eq!(
            Location::parse("s3://b/batches/x=1.parquet").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                key: "batches/x=1.parquet".into()
            }
        );
        for bad in [
            "file://host/x",
            "file://relative",
            "s3://bucket",
            "s3:///k",
            "https://x/y",
            "file:///%zz",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zones_become_offsets_at_every_depth() {
        use arrow::datatypes::TimeUnit;
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let list = DataType::List(Arc::new(Field::new("item", ts.clone(), true)));
        let want = DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
        assert_eq!(zoned(&ts), want);
        assert_eq!(
            zoned(&list),
            DataType::List(Arc::new(Field::new("item", want, true)))
        );
        let naive = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert_eq!(zoned(&naive), naive);
    }
}
