//! The run: input lines through the pipeline stages, STATE lines out.
//!
//! Owns: the order of events and the bookkeeping that ties STATE to stored records.
//! This thread reads lines and decodes records straight into per-stream buffers
//! (`batch`). A buffer that reaches `row_group_bytes` goes as a chunk to its stream's
//! open object, which the encoder thread (`sink`) encodes and streams to the store; an
//! object is completed when it reaches its limits, when its stream's schema changes,
//! when memory runs over budget, and at the end. After every completed object the
//! newest STATE it covers is written — or, when `manifest` or `load_method: overwrite`
//! make the run one unit, held until `publish` has finished the run's end. With a
//! catalog, a stored object counts only once the catalog has it: an Iceberg table's
//! commit, or (`glue_catalog`) its partition added to the Glue table.
//! Must not touch: formats, key layout or S3 details, which belong to the stages.
//!
//! A stream partitioned by `partition_by` has one open object per partition: each
//! chunk is split by partition and every part goes to its partition's object. Every
//! open object counts one `part_size_bytes` against `max_buffer_bytes`; an object that
//! would not fit first completes the least recently written ones, so memory stays
//! bounded however many partitions a stream has. An object's first input line is that
//! of the first chunk it took rows from, so no STATE passes rows it holds.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::Utc;
use parquet::file::metadata::ParquetMetaData;

use crate::batch::{Batch, BatchOf, Templates, empty_size};
use crate::batch_files::{Encoding, Opener};
use crate::config::{Config, InvalidRecords, Limits, LoadMethod};
use crate::dialect;
use crate::error::{Error, Result};
use crate::glue::{FileFormat, Glue, GlueSettings};
use crate::input::{self, Block, Blocks, LineText, Next};
use crate::mage;
use crate::metadata::{self, Envelope};
use crate::object_key::{KeyBuilder, ObjectKind};
use crate::parallel::{DECODERS, Decoders, Done, IN_FLIGHT, Lines, Step, Twin, Twins};
use crate::partition::Partitioner;
use crate::protocol::{self, Message, Record};
use crate::publish::{self, Destination, StoredObject, StreamEnd, plural};
use crate::scan::same;
use crate::schema::{SharedSchemas, StreamSchema};
use crate::sink::{Job, Sink};
use crate::state::StateTracker;
use crate::stop::{self, Brake};
use crate::store::{Landed, Store, Uploader};
use crate::tables::{self, Tables};
use crate::values::compact_json;

/// Lines between checks of every stream's object age.
const AGE_CHECK_LINES: u64 = 4096;
/// Input gathered into one job for the decoding threads, when that much is waiting.
const JOB_BYTES: usize = 1 << 20;
/// How long input may be silent before finished uploads are looked at anyway, so
/// STATE keeps flowing while a tap is quiet.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// How often a wait for uploads looks whether a signal asked the run to stop.
const STOP_TICK: Duration = Duration::from_millis(50);
/// How long the run's end waits for the aborts of multipart uploads still open.
const ABORT_WAIT: Duration = Duration::from_secs(1);

/// What a run did, for the closing log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub objects: u64,
    pub stored_objects: u64,
    pub states: u64,
    pub skipped: u64,
    pub quarantined: u64,
    pub manifests: u64,
    pub deleted: u64,
    /// Messages of unknown types skipped (`unknown_message_types: warn`), by type.
    pub unknown_skipped: BTreeMap<String, u64>,
    /// Mage mode: input lines that were not Singer messages, skipped (log text) or
    /// relayed (the source's log lines).
    pub not_singer: u64,
    pub source_logs: u64,
}

/// Checks that the store can be reached with the configured credentials and the bucket
/// exists, or that the local folder can be written (the preflight check, whatever
/// `preflight` says), and nothing more.
pub fn test_connection(config: &Config) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut store = Store::connect(config).await?;
        preflight(config, &mut store).await
    })
}

async fn preflight(config: &Config, store: &mut Store) -> Result<()> {
    // Overwrite deletes objects only for plain files: a table's replacement is a commit.
    let overwrite = config.store.load_method == LoadMethod::Overwrite && config.tables.is_none();
    store.preflight(&config.object_key_path, overwrite).await?;
    if let Store::S3(s3) = store {
        tracing::info!("{}", s3.integrity().describe());
    }
    Ok(())
}

/// Runs the whole load: connects, reads `input` to its end, stores every record, and
/// writes STATE lines to `output` as they become covered.
pub fn run(
    config: &Config,
    input: impl Read + Send + 'static,
    output: impl Write,
) -> Result<Summary> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let overwrite = config.store.load_method == LoadMethod::Overwrite;
    if overwrite
        && config.tables.is_none()
        && !KeyBuilder::new(config.key_options()).prefix_is_per_table()
    {
        return Err(Error::Config(
            "load_method \"overwrite\" deletes under each table's folder, so object_key_template must name {table} or {stream} before any placeholder that changes per object (such as {date:...})".into(),
        ));
    }
    let mut store = runtime.block_on(Store::connect(config))?;
    // With Iceberg tables and no bucket of its own, the catalog's answers are the check.
    if config.reliability.preflight && !config.bucket.is_empty() {
        runtime.block_on(preflight(config, &mut store))?;
    } else if let Store::S3(s3) = &store {
        tracing::info!(
            "{} (no start-up check to learn more)",
            s3.integrity().describe()
        );
    }
    let tables = match (&config.tables, &store) {
        (Some(settings), Store::S3(s3)) => {
            let sdk = runtime.block_on(crate::store::s3::sdk_config(config))?;
            Some(runtime.block_on(Tables::connect(settings, s3.clone(), &sdk))?)
        }
        _ => None,
    };
    let glue = match &config.glue {
        Some(settings) => Some(runtime.block_on(connect_glue(config, settings))?),
        None => None,
    };
    if overwrite && config.tables.is_some() {
        tracing::info!(
            "load_method overwrite: at the end of a successful run, each table that received records or an ACTIVATE_VERSION has its rows replaced by this run's in one snapshot; STATE is written only then"
        );
    } else if overwrite {
        tracing::info!(
            "load_method overwrite: at the end of a successful run, each stream's older objects under {} are deleted (this needs s3:ListBucket and s3:DeleteObject besides s3:PutObject); STATE is written only then",
            store.location(&format!("{}/<table>/", config.object_key_path))
        );
    }
    let limits = &config.limits;
    let brake = Brake::default();
    let uploader = Uploader::new(
        store.clone(),
        runtime.handle().clone(),
        limits.part_size,
        limits.max_concurrent_uploads,
        brake.clone(),
    );
    let sink = Sink::start(config.file_type, config.output.clone(), uploader.clone())?;
    stop::watch_signals(&runtime, &brake)?;
    let blocks = Blocks::spawn(input, config.reliability.max_line_bytes)?;
    let destination = Destination {
        store,
        runtime: runtime.handle().clone(),
        brake,
    };
    let catalogs = Catalogs { tables, glue };
    let mut target = Target::new(config, sink, destination, output, catalogs);
    let consumed = target.consume(blocks).and_then(|()| target.finish());
    let outcome = match consumed.and_then(|()| target.publish()) {
        Ok(()) => {
            target.log_summary();
            Ok(target.summary.clone())
        }
        Err(error) => Err(target.settle_after(error)),
    };
    drop(target);
    // Every multipart upload opened is completed or aborted by now, or named here.
    for left in uploader.abort_left(ABORT_WAIT) {
        tracing::warn!("{left}");
    }
    // Requests still running (past shutdown_timeout_seconds) are not waited for.
    runtime.shutdown_background();
    outcome
}

/// The catalogs that must have a stored object before the STATE after it goes out.
struct Catalogs {
    tables: Option<Tables>,
    glue: Option<Glue>,
}

/// The Glue database, with a client built from the run's AWS configuration.
async fn connect_glue(config: &Config, settings: &GlueSettings) -> Result<Glue> {
    let sdk = crate::store::s3::sdk_config(config).await?;
    let format = FileFormat {
        file_type: config.file_type,
        csv: config.output.csv.clone(),
    };
    Glue::connect(settings, &sdk, format, &config.bucket).await
}

/// A stream's buffers: rows not yet encoded, the objects they go into, and refused
/// records waiting for the quarantine object.
struct Stream {
    name: String,
    /// Records and bytes of record JSON taken so far, for progress lines.
    records: u64,
    bytes: u64,
    /// About what the buffer's columns take while it holds rows (see `empty_size`),
    /// besides the rows.
    empty_size: usize,
    batch: Batch,
    /// How `partition_by` splits its rows; None: not partitioned.
    partitioner: Option<Partitioner>,
    /// Open objects by partition folders ("" when not partitioned).
    objects: HashMap<String, OpenObject>,
    /// Rows and bytes of the fullest open object.
    fullest: (usize, usize),
    rejected: Rejected,
    /// When the oldest record not yet in a completed object arrived.
    started: Option<Instant>,
    /// The version the last ACTIVATE_VERSION gave the stream.
    table_version: Option<i64>,
}

impl Stream {
    fn new(name: &str, batch: Batch, partitioner: Option<Partitioner>) -> Stream {
        Stream {
            name: name.to_owned(),
            records: 0,
            bytes: 0,
            empty_size: empty_size(batch.schema()),
            batch,
            partitioner,
            objects: HashMap::new(),
            fullest: (0, 0),
            rejected: Rejected::default(),
            started: None,
            table_version: None,
        }
    }

    /// What its buffer holds against the memory budget: the rows' input bytes and,
    /// while there are any, the buffer's columns.
    fn held(&self) -> usize {
        match self.batch.rows() {
            0 => 0,
            _ => self.batch.bytes() + self.empty_size,
        }
    }

    fn measure_fullest(&mut self) {
        let rows = self.objects.values().map(|o| o.rows).max();
        let bytes = self.objects.values().map(|o| o.bytes).max();
        self.fullest = (rows.unwrap_or(0), bytes.unwrap_or(0));
    }
}

/// An object that has received chunks and is not completed yet.
struct OpenObject {
    id: u64,
    rows: usize,
    bytes: usize,
    /// When it last took a chunk (a count of chunks written), to find the least
    /// recently written object.
    last_write: u64,
}

/// Records refused under `invalid_records: quarantine`, as JSONL lines.
#[derive(Default)]
struct Rejected {
    jsonl: Vec<u8>,
    rows: usize,
    first_line: Option<u64>,
}

impl Rejected {
    fn push(&mut self, stream: &str, line: u64, reason: &str, raw_line: &str) {
        let message = match serde_json::from_str::<&serde_json::value::RawValue>(raw_line) {
            Ok(raw) => serde_json::to_value(raw).unwrap_or_default(),
            Err(_) => serde_json::Value::from(raw_line),
        };
        let entry = serde_json::json!({
            "line": line,
            "stream": stream,
            "reason": reason,
            "message": message,
        });
        self.jsonl.extend_from_slice(entry.to_string().as_bytes());
        self.jsonl.push(b'\n');
        self.rows += 1;
        self.first_line.get_or_insert(line);
    }
}

/// The streams in the order their first SCHEMA arrived, found by name. The stream
/// last found is tried first: records come in runs of one stream. Each stream is boxed:
/// the list's spare room (up to as much again as it holds) is then a pointer per
/// stream, not a whole entry.
#[derive(Default)]
struct Streams {
    #[allow(clippy::vec_box)] // on purpose: see above
    list: Vec<Box<Stream>>,
    index: HashMap<String, usize>,
    last: usize,
}

impl Streams {
    fn get_mut(&mut self, name: &str) -> Option<&mut Stream> {
        let at = self.position(name)?;
        self.list.get_mut(at).map(Box::as_mut)
    }

    /// Where the stream named `name` is in the list.
    fn position(&mut self, name: &str) -> Option<usize> {
        if self
            .list
            .get(self.last)
            .is_none_or(|s| !same(&s.name, name))
        {
            self.last = *self.index.get(name)?;
        }
        Some(self.last)
    }

    fn insert(&mut self, stream: Stream) {
        self.index.insert(stream.name.clone(), self.list.len());
        self.list.push(Box::new(stream));
    }

    fn names(&self) -> Vec<String> {
        self.list.iter().map(|s| s.name.clone()).collect()
    }
}

/// Lets the protocol parser decode records straight into their stream's buffer.
impl BatchOf for Streams {
    fn batch_of(&mut self, stream: &str) -> Option<&mut Batch> {
        self.get_mut(stream).map(|s| &mut s.batch)
    }
}

/// What a stream's buffer calls for after records were added.
#[derive(Debug, PartialEq, Eq)]
enum Flush {
    None,
    /// Encode the buffered rows into the open object(s).
    Chunk,
    /// Complete the open object(s): `max_batch_rows` or `max_batch_bytes` reached.
    Complete,
}

/// The flush due for a buffer holding `(rows, bytes)` whose fullest open object
/// already has `fullest`.
fn flush_due(limits: &Limits, fullest: (usize, usize), held: (usize, usize)) -> Flush {
    let ((object_rows, object_bytes), (rows, bytes)) = (fullest, held);
    if object_rows + rows >= limits.max_batch_rows || object_bytes + bytes >= limits.max_batch_bytes
    {
        Flush::Complete
    } else if bytes >= limits.row_group_bytes {
        Flush::Chunk
    } else {
        Flush::None
    }
}

/// Twin rows waiting to be taken into their streams' buffers: per stream, a range of
/// its twin's rows and their input bytes. Sized to the streams in the run, not to all.
#[derive(Default)]
struct Pending {
    runs: Vec<(usize, (Range<usize>, usize))>,
    slots: HashMap<usize, usize>,
    /// The last stream asked for and its slot: rows come in runs of one stream.
    last: Option<(usize, usize)>,
}

impl Pending {
    /// The pending rows of stream `stream`, starting empty at twin row `row`.
    fn of(&mut self, stream: usize, row: usize) -> &mut (Range<usize>, usize) {
        let slot = match self.last {
            Some((last, slot)) if last == stream => slot,
            _ => {
                let runs = &mut self.runs;
                let slot = *self.slots.entry(stream).or_insert_with(|| {
                    runs.push((stream, (row..row, 0)));
                    runs.len() - 1
                });
                self.last = Some((stream, slot));
                slot
            }
        };
        &mut self.runs[slot].1
    }

    fn drain(&mut self) -> impl Iterator<Item = (usize, (Range<usize>, usize))> + '_ {
        self.slots.clear();
        self.last = None;
        self.runs.drain(..)
    }
}

/// How long `gather` waits for reports.
#[derive(Clone, Copy)]
enum Wait {
    None,
    All,
    Until(Instant),
}

/// An object started and not yet reported.
struct InFlight {
    /// The first input line of its records: no STATE after it before it is stored.
    first_line: u64,
    stream: String,
    key: String,
    kind: ObjectKind,
    rows: usize,
    /// The columns of a data object.
    schema: Option<Arc<StreamSchema>>,
    started: Instant,
}

impl InFlight {
    fn new(first_line: u64, stream: &str, key: &str, kind: ObjectKind, rows: usize) -> Self {
        InFlight {
            first_line,
            stream: stream.to_owned(),
            key: key.to_owned(),
            kind,
            rows,
            schema: None,
            started: Instant::now(),
        }
    }
}

/// Objects started and not yet reported.
#[derive(Default)]
struct Objects {
    in_flight: BTreeMap<u64, InFlight>,
    /// The first input line of the earliest object that failed: no STATE may pass it.
    lost_from: Option<u64>,
    /// Objects this run gave up on purpose; their reports are expected failures.
    abandoned: Vec<u64>,
    next_id: u64,
    open: usize,
    /// Stored data objects waiting for their table's commit: their first input lines,
    /// by stream.
    uncommitted: HashMap<String, Vec<u64>>,
    /// Kept only when the run's end needs them (`publish`): the objects stored, and
    /// the key of every object this run started.
    stored: Vec<StoredObject>,
    written: HashSet<String>,
    remember: bool,
}

impl Objects {
    fn start(&mut self, object: InFlight) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.remember {
            self.written.insert(object.key.clone());
        }
        self.in_flight.insert(id, object);
        id
    }

    fn stored(&mut self, id: u64, object: InFlight, landed: Landed) {
        // The connection test's probe is kept too, to be deleted at the end.
        if self.remember || object.stream == publish::PROBE_STREAM {
            self.stored.push(StoredObject {
                id,
                stream: object.stream,
                key: object.key,
                kind: object.kind,
                rows: object.rows,
                bytes: landed.bytes,
                checksum: landed.checksum,
                schema: object.schema,
            });
        }
    }

    /// The oldest input line whose record is not known to be stored (and committed,
    /// where a table's commit is what makes it safe; but for `committing`'s).
    fn oldest_line_but(&self, committing: Option<&str>) -> Option<u64> {
        let lines = self.in_flight.values().map(|o| o.first_line);
        let waiting = self
            .uncommitted
            .iter()
            .filter(|(stream, _)| Some(stream.as_str()) != committing)
            .flat_map(|(_, lines)| lines.iter().copied());
        lines.chain(waiting).chain(self.lost_from).min()
    }

    /// Whether an object of `stream` is still uploading.
    fn writing(&self, stream: &str) -> bool {
        self.in_flight
            .values()
            .any(|o| o.stream == stream && o.kind == ObjectKind::Data)
    }
}

/// An object's failure, naming its stream too.
fn naming_stream(error: Error, stream: &str) -> Error {
    match error {
        Error::Encode(message) => Error::Encode(format!("stream {stream:?}: {message}")),
        Error::Store(message) => Error::Store(format!("{message} (stream {stream:?})")),
        other => other,
    }
}

/// The log target of the closing summary, which the log filter always lets through
/// unless only errors were asked for.
pub const SUMMARY: &str = "target_s3::summary";
/// The log target of the METRIC lines, at DEBUG:
/// `RUST_LOG=info,target_s3::metrics=debug` shows them.
pub const METRICS: &str = "target_s3::metrics";

/// Singer-style METRIC lines for one ended object: its records, size and upload time.
fn log_metrics(object: &InFlight, bytes: Option<u64>) {
    let status = if bytes.is_some() {
        "succeeded"
    } else {
        "failed"
    };
    let tags = serde_json::json!({"stream": object.stream, "key": object.key, "status": status});
    let metrics = [
        ("counter", "record_count", serde_json::json!(object.rows)),
        (
            "histogram",
            "batch_size_bytes",
            serde_json::json!(bytes.unwrap_or(0)),
        ),
        (
            "timer",
            "upload_duration",
            serde_json::json!(object.started.elapsed().as_secs_f64()),
        ),
    ];
    for (kind, metric, value) in metrics {
        let line =
            serde_json::json!({"type": kind, "metric": metric, "value": value, "tags": tags});
        tracing::debug!(target: METRICS, "METRIC: {line}");
    }
}

/// Where the lines of a decoders' job come from: the input, or a BATCH's file.
#[derive(Clone, Copy)]
enum Source<'f> {
    Input,
    File(&'f BatchFile<'f>),
}

/// The input line twin rows count from.
#[derive(Clone, Copy)]
enum Origin {
    /// Rows of the input's lines after this line (a row's index counts from there).
    After(u64),
    /// Rows of a BATCH's files: all from the BATCH's line.
    Line(u64),
}

impl Origin {
    /// The input line of a row decoded from the job's line `index`.
    fn line_of(self, index: u32) -> u64 {
        match self {
            Origin::After(before) => before + u64::from(index) + 1,
            Origin::Line(line) => line,
        }
    }
}

/// Keeps or drops the row a record's decoding left in `batch` (see `Batch::end_row`),
/// or appends a record left raw.
fn end_record(
    batch: &mut Batch,
    record: Record,
    line: u64,
    bytes: usize,
    envelope: &Envelope,
) -> std::result::Result<(), String> {
    match record {
        Record::Decoded => batch.end_row(true, line, bytes, envelope),
        Record::Refused => batch.end_row(false, line, bytes, envelope),
        Record::Raw(raw) => batch.append(raw.get(), line, envelope),
        Record::Invalid(reason) => Err(reason),
    }
}

/// What a batch file's reader gave.
enum FileNext {
    Block(Block),
    Idle,
    End,
}

/// A file of a BATCH being read: the stream it feeds (by position) and where the
/// BATCH stands in the input.
struct BatchFile<'a> {
    index: usize,
    stream: &'a str,
    url: &'a str,
    /// The BATCH's input line: the line every record of its files counts as.
    line: u64,
}

impl BatchFile<'_> {
    /// `message` about the file's line `at`.
    fn locate(&self, at: u64, message: &str) -> String {
        format!("batch file {}, line {at}: {message}", self.url)
    }

    /// An input error about the file's line `at`.
    fn error(&self, at: u64, message: &str) -> Error {
        Error::input(self.line, Some(self.stream), self.locate(at, message))
    }
}

struct Target<'c, W> {
    config: &'c Config,
    limits: &'c Limits,
    streams: Streams,
    keys: KeyBuilder,
    sink: Sink,
    /// Where objects go; also used by the run's end (`publish`).
    destination: Destination,
    objects: Objects,
    states: StateTracker,
    /// The newest covered STATE, held back while `holds_state`.
    held: Option<String>,
    output: W,
    summary: Summary,
    /// Input bytes of the records all streams hold before encoding, and the empty size
    /// of each buffer that holds any (`Stream::held`).
    buffered: usize,
    /// ACTIVATE_VERSION of streams whose SCHEMA has not arrived yet.
    early_versions: HashMap<String, i64>,
    /// Chunks written so far.
    writes: u64,
    /// Set once writing a STATE failed: no other is tried.
    output_failed: bool,
    progress: Progress,
    /// The decoding threads, if the machine has a second core (see `parallel`).
    decoders: Option<Decoders>,
    /// For each job out at the decoders, oldest first, the schemas replaced before it
    /// was handed out: its rows are good only if none was replaced since.
    handed_out: VecDeque<u64>,
    /// Twin buffers back from the decoders, a list per job, for later jobs (each job
    /// out gets one: a twin reused keeps the room its vectors grew to).
    spare_twins: Vec<Vec<Twin>>,
    /// Schemas replaced so far.
    schema_changes: u64,
    /// The parsed schemas streams share (see `SharedSchemas`).
    shared_schemas: SharedSchemas,
    /// The empty buffers of the schemas in use, shared by streams of the same schema.
    templates: Templates,
    /// Records the decoding threads decoded.
    helped: u64,
    /// Opens the files BATCH messages name.
    batch_files: Opener,
    /// `table_format: iceberg`: the streams' tables, and the commit stage between
    /// stored objects and STATE.
    tables: Option<Tables>,
    /// `glue_catalog`: the streams' Glue tables, and the partitions to add between
    /// stored objects and STATE.
    glue: Option<Glue>,
    warned_undeclared_gzip: bool,
}

/// The progress line, every `progress_interval_seconds`.
struct Progress {
    last: Instant,
    /// Records read by `last`: the rate shown is that of the last interval.
    records: u64,
}

impl<'c, W: Write> Target<'c, W> {
    fn new(
        config: &'c Config,
        sink: Sink,
        destination: Destination,
        output: W,
        catalogs: Catalogs,
    ) -> Self {
        // The metadata columns' clock starts with the run.
        metadata::now_ns();
        let s3 = match &destination.store {
            Store::S3(s3) => Some(s3.clone()),
            Store::Local(_) => None,
        };
        let max_line = config.reliability.max_line_bytes;
        let brake = destination.brake.clone();
        let batch_files = Opener::new(s3, destination.runtime.clone(), brake, max_line);
        Target {
            config,
            limits: &config.limits,
            streams: Streams::default(),
            keys: KeyBuilder::new(config.key_options()),
            sink,
            destination,
            objects: Objects {
                remember: config.store.holds_state(),
                ..Objects::default()
            },
            states: StateTracker::default(),
            held: None,
            output,
            summary: Summary::default(),
            buffered: 0,
            early_versions: HashMap::new(),
            writes: 0,
            output_failed: false,
            progress: Progress {
                last: Instant::now(),
                records: 0,
            },
            decoders: config
                .limits
                .parallel_decoding
                .then(Decoders::start)
                .flatten(),
            handed_out: VecDeque::new(),
            spare_twins: Vec::new(),
            schema_changes: 0,
            shared_schemas: SharedSchemas::default(),
            templates: Templates::default(),
            helped: 0,
            batch_files,
            warned_undeclared_gzip: false,
            tables: catalogs.tables,
            glue: catalogs.glue,
        }
    }

    fn report_progress(&mut self) {
        if self.progress.last.elapsed() < self.config.reliability.progress_interval {
            return;
        }
        let seconds = self.progress.last.elapsed().as_secs_f64().max(1e-9);
        let s = &self.summary;
        let rate = (s.records - self.progress.records) as f64 / seconds;
        self.progress = Progress {
            last: Instant::now(),
            records: s.records,
        };
        let mut line = format!(
            "progress: {} ({rate:.0}/s in the last {seconds:.0} s), {} stored, {}",
            plural(s.records, "record"),
            plural(s.stored_objects, "object"),
            plural(s.states, "STATE line"),
        );
        let streams: Vec<String> = self
            .streams
            .list
            .iter()
            .map(|st| {
                format!(
                    "{} {}, {} bytes",
                    st.name,
                    plural(st.records, "record"),
                    st.bytes
                )
            })
            .collect();
        if !streams.is_empty() {
            line.push_str("; ");
            line.push_str(&streams.join(", "));
        }
        tracing::info!("{line}");
    }

    fn check_stop(&self) -> Result<()> {
        self.destination.brake.stopped()
    }

    fn consume(&mut self, blocks: Blocks) -> Result<()> {
        let mut line_number = 0u64;
        // A block (or the end, or an error) found while gathering a job.
        let mut ahead = None;
        loop {
            self.check_stop()?;
            // With jobs out at the decoders, a waiting block is handed out too, and
            // without one (or with enough out) the oldest job is taken back.
            let out = self.decoders.as_ref().map_or(0, Decoders::in_flight);
            let next = match (ahead.take(), out) {
                (Some(next), _) => next,
                (None, 0) => blocks.next(IDLE_WAIT),
                (None, _) if out < IN_FLIGHT => match blocks.try_next() {
                    Some(next) => next,
                    None => {
                        line_number = self.take_decoded(line_number)?;
                        continue;
                    }
                },
                _ => {
                    line_number = self.take_decoded(line_number)?;
                    continue;
                }
            };
            // Whatever comes next comes after the blocks out.
            let next = match next {
                Ok(Next::Block(block)) => Next::Block(block),
                other => {
                    line_number = self.take_all_decoded(line_number)?;
                    other.map_err(|e| self.input_error(&e, line_number + 1))?
                }
            };
            match next {
                Next::Block(block) => {
                    let mut job = vec![Arc::new(block)];
                    let mut size = job[0].size();
                    // Blocks waiting together go out as one job (a pipe gives 64 KiB
                    // at a time, too little to hand out alone).
                    while self.decoders.is_some() && size < JOB_BYTES {
                        match blocks.try_next() {
                            Some(Ok(Next::Block(block))) => {
                                size += block.size();
                                job.push(Arc::new(block));
                            }
                            other => {
                                ahead = other;
                                break;
                            }
                        }
                    }
                    if let Some(kept) = self.send_job(job) {
                        line_number = self.take_all_decoded(line_number)?;
                        line_number = self.take_blocks_from(&kept, (0, 0), line_number)?;
                    }
                }
                Next::Idle => {
                    self.complete_old_objects()?;
                    self.collect(false)?;
                    self.report_progress();
                }
                Next::End => return Ok(()),
            }
        }
    }

    fn input_error(&self, e: &std::io::Error, at: u64) -> Error {
        if e.to_string() == input::LINE_TOO_LONG {
            let limit = self.config.reliability.max_line_bytes;
            Error::input(at, None, format!("{e} ({limit} bytes)"))
        } else {
            Error::input(at, None, format!("cannot read input: {e}"))
        }
    }

    /// Handles one input line, numbered `number`.
    fn take_line(&mut self, line: LineText, number: u64) -> Result<()> {
        self.check_stop()?;
        let line =
            line.map_err(|e| Error::input(number, None, format!("line is not valid UTF-8 ({e})")))?;
        let line = line.trim();
        if !line.is_empty() {
            self.handle(line, number)?;
        }
        if number.is_multiple_of(AGE_CHECK_LINES) {
            self.complete_old_objects()?;
            self.report_progress();
        }
        Ok(())
    }

    /// Handles the lines of `block` from byte `from` on, after line `before`; returns
    /// the number of the last.
    fn take_lines_from(&mut self, block: &Block, from: usize, before: u64) -> Result<u64> {
        let mut number = before;
        for (_, line) in block.lines_from(from) {
            number += 1;
            self.take_line(line, number)?;
        }
        Ok(number)
    }

    /// Hands `blocks` to the decoders with a twin of every stream they may decode, or
    /// gives them back when there is none (or no decoders).
    fn send_job(&mut self, blocks: Vec<Arc<Block>>) -> Option<Vec<Arc<Block>>> {
        let Some(decoders) = self.decoders.as_mut().filter(|d| d.decode_any()) else {
            return Some(blocks);
        };
        let spares = self.spare_twins.pop().unwrap_or_default();
        match decoders.send(blocks, spares, Lines::Messages) {
            Ok(()) => {
                self.handed_out.push_back(self.schema_changes);
                None
            }
            Err(blocks) => Some(blocks),
        }
    }

    fn take_all_decoded(&mut self, mut line_number: u64) -> Result<u64> {
        while !self.handed_out.is_empty() {
            line_number = self.take_decoded(line_number)?;
        }
        Ok(line_number)
    }

    /// Takes in, in input order, what the decoders made of the oldest job handed out:
    /// its rows, the lines left, the rest after where a decoder stopped. If a schema
    /// changed after it was handed out, reads its blocks here instead.
    fn take_decoded(&mut self, before: u64) -> Result<u64> {
        let Some(schema_changes) = self.handed_out.pop_front() else {
            return Ok(before);
        };
        let Some(done) = self.decoders.as_mut().and_then(Decoders::receive) else {
            let lost = "a decoding thread stopped with input it had taken";
            return Err(Error::Encode(lost.into()));
        };
        let Done {
            blocks,
            twins,
            steps,
            lines,
            stopped_at,
        } = done;
        if schema_changes != self.schema_changes {
            return self.take_blocks_from(&blocks, (0, 0), before);
        }
        let after = self.take_steps(Source::Input, &blocks, twins, steps, (before, lines))?;
        match stopped_at {
            Some(at) => self.take_blocks_from(&blocks, at, after),
            None => Ok(after),
        }
    }

    /// Takes in a decoder's account of `lines` lines after line `before` (of the input,
    /// or of a batch file): the runs of rows it decoded and, in their places, the lines
    /// it left. Returns the number of the last line.
    fn take_steps(
        &mut self,
        source: Source,
        blocks: &[Arc<Block>],
        twins: Twins,
        steps: Vec<Step>,
        (before, lines): (u64, u32),
    ) -> Result<u64> {
        let origin = match source {
            Source::Input => Origin::After(before),
            Source::File(file) => Origin::Line(file.line),
        };
        // Rows of each twin taken so far.
        let mut taken: HashMap<usize, usize> = HashMap::new();
        // Runs of rows between lines left to the run, as (stream, twin rows).
        let mut run = Vec::new();
        for step in steps {
            match step {
                Step::Rows { stream, count } => {
                    let first = taken.entry(stream).or_insert(0);
                    run.push((stream, *first..*first + count));
                    *first += count;
                }
                Step::Line {
                    index,
                    block,
                    start,
                } => {
                    self.take_run(&twins, &mut run, origin)?;
                    if let Some((_, line)) = blocks[block].lines_from(start).next() {
                        let number = before + u64::from(index) + 1;
                        match source {
                            Source::Input => self.take_line(line, number)?,
                            Source::File(file) => self.take_file_line(file, line, number)?,
                        }
                    }
                }
            }
        }
        self.take_run(&twins, &mut run, origin)?;
        if self.spare_twins.len() < IN_FLIGHT {
            self.spare_twins.push(twins.into_spares());
        }
        let after = before + u64::from(lines);
        if before / AGE_CHECK_LINES != after / AGE_CHECK_LINES {
            self.check_stop()?;
            self.complete_old_objects()?;
            self.report_progress();
        }
        Ok(after)
    }

    /// Handles the lines of `blocks` from `(block, byte)` on, after line `before`;
    /// returns the number of the last.
    fn take_blocks_from(
        &mut self,
        blocks: &[Arc<Block>],
        (first, start): (usize, usize),
        before: u64,
    ) -> Result<u64> {
        let mut number = before;
        for (i, block) in blocks.iter().enumerate().skip(first) {
            let from = if i == first { start } else { 0 };
            number = self.take_lines_from(block, from, number)?;
        }
        Ok(number)
    }

    /// Takes a run of rows (of one stream or several, in input order) from the twins,
    /// acting on the same record a run on one thread would act on: rows are taken in
    /// bulk up to the first one that makes its stream flush or memory pass the budget,
    /// then that limit acts, and so on. Until a limit acts, the order across streams
    /// changes nothing, so each stream's rows are taken at once.
    fn take_run(
        &mut self,
        twins: &Twins,
        run: &mut Vec<(usize, Range<usize>)>,
        origin: Origin,
    ) -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        let mut pending = Pending::default();
        let mut pending_bytes = 0;
        for (index, rows) in run.drain(..) {
            let Some(twin) = twins.get(index) else {
                let lost = "a decoding thread gave rows without their buffer";
                return Err(Error::Encode(lost.into()));
            };
            for row in rows {
                let bytes = twin.rows[row].1;
                let mine = pending.of(index, row);
                let stream = &self.streams.list[index];
                // The budget counts as `count_records` will: an empty buffer's first row
                // brings its columns.
                if mine.0.is_empty() && stream.batch.rows() == 0 {
                    pending_bytes += stream.empty_size;
                }
                (mine.0.end, mine.1) = (row + 1, mine.1 + bytes);
                pending_bytes += bytes;
                let held = (
                    stream.batch.rows() + mine.0.len(),
                    stream.batch.bytes() + mine.1,
                );
                if flush_due(self.limits, stream.fullest, held) != Flush::None
                    || self.over_budget(pending_bytes)
                {
                    self.take_pending(twins, &mut pending, origin)?;
                    pending_bytes = 0;
                    self.after_rows(index)?;
                }
            }
        }
        self.take_pending(twins, &mut pending, origin)
    }

    /// Takes each stream's pending twin rows into its buffer.
    fn take_pending(&mut self, twins: &Twins, pending: &mut Pending, origin: Origin) -> Result<()> {
        for (index, (rows, bytes)) in pending.drain() {
            let Some(twin) = twins.get(index) else {
                continue;
            };
            let first_line = origin.line_of(twin.rows[rows.start].0);
            let count = rows.len();
            self.streams.list[index]
                .batch
                .take_rows(&twin.batch, rows, first_line, bytes)
                .map_err(Error::Encode)?;
            self.helped += count as u64;
            self.count_records(index, count, bytes);
        }
        Ok(())
    }

    fn handle(&mut self, line: &str, number: u64) -> Result<()> {
        let parsed = protocol::parse_line(line, &mut self.streams);
        let message = parsed.map_err(|e| {
            if let Some(stream) = e.stream.as_deref().and_then(|s| self.streams.get_mut(s)) {
                stream.batch.discard_row();
            }
            Error::input(number, e.stream.as_deref(), e.message)
        });
        let message = match message {
            Ok(message) => message,
            Err(error) if self.config.mage => {
                let Some(aside) = mage::aside(line) else {
                    return Err(error);
                };
                return self.mage_aside(aside, number);
            }
            Err(error) => return Err(error),
        };
        match message {
            Message::Schema {
                stream,
                schema,
                key_properties,
            } => self.on_schema(&stream, schema.get(), &key_properties, number),
            Message::Record {
                stream,
                record,
                time_extracted,
                version,
            } => {
                let envelope = Envelope {
                    time_extracted,
                    table_version: version,
                };
                self.on_record(&stream, record, envelope, number, line)
            }
            Message::State { value } => {
                self.states
                    .receive(number, compact_json(value.get()).into_owned());
                self.complete_old_objects()?;
                self.collect(false)
            }
            Message::ActivateVersion { stream, version } => {
                tracing::debug!(stream = %stream, version, "ACTIVATE_VERSION received");
                match self.streams.get_mut(&stream) {
                    Some(known) => known.table_version = Some(version),
                    None => {
                        self.early_versions.insert(stream.into_owned(), version);
                    }
                }
                Ok(())
            }
            Message::Batch {
                stream,
                encoding,
                manifest,
            } => self.on_batch(&stream, encoding.get(), &manifest, number),
            Message::Other { kind } if kind == "LOG" && self.config.mage => {
                self.mage_aside(mage::log_line(line), number)
            }
            Message::Other { kind } => self.on_unknown(&kind, number),
        }
    }

    /// Mage mode only (the caller checks): a line of Mage's input that is not a Singer
    /// message (the source's log text and log lines) is skipped or relayed.
    fn mage_aside(&mut self, aside: mage::Aside, line: u64) -> Result<()> {
        match aside {
            mage::Aside::Skip => self.summary.not_singer += 1,
            mage::Aside::Log { level, message } => {
                self.summary.source_logs += 1;
                mage::relay(line, &level, &message);
            }
        }
        Ok(())
    }

    fn on_schema(&mut self, stream: &str, schema: &str, keys: &[String], line: u64) -> Result<()> {
        let refused = |e| Error::input(line, Some(stream), e);
        self.keys.claim_folder(stream).map_err(refused)?;
        let parsed =
            StreamSchema::from_json(stream, schema, keys, &self.config.types).map_err(refused)?;
        let parsed = self.shared_schemas.share(parsed);
        let partitioner =
            Partitioner::for_stream(&self.config.partition_by, stream, &parsed).map_err(refused)?;
        let batch = self.templates.batch(Arc::new(parsed), self.config.decode);
        let known = self.streams.get_mut(stream);
        if known
            .as_ref()
            .is_none_or(|k| k.batch.schema() != batch.schema())
        {
            for name in &batch.schema().replaced {
                tracing::warn!(
                    "stream {stream:?}: property {name:?} is replaced by the metadata column of that name (add_metadata_columns); the record's values for it are not stored"
                );
            }
            for note in &batch.schema().notes {
                tracing::warn!("stream {stream:?}: {note}");
            }
        }
        match known {
            Some(known) if known.batch.schema() == batch.schema() => {}
            Some(_) => {
                self.complete(stream)?;
                self.schema_changes += 1;
                if let Some(known) = self.streams.get_mut(stream) {
                    known.empty_size = empty_size(batch.schema());
                    known.batch = batch;
                    known.partitioner = partitioner;
                }
            }
            None => {
                let mut new = Stream::new(stream, batch, partitioner);
                new.table_version = self.early_versions.remove(stream);
                self.streams.insert(new);
            }
        }
        if let Some(index) = self.streams.position(stream) {
            self.replan(index);
        }
        self.open_table(stream, line)?;
        self.open_glue_table(stream, line)
    }

    /// With `glue_catalog`: the stream's Glue table, made or widened for its columns;
    /// an incompatible change stops the run at this SCHEMA.
    fn open_glue_table(&mut self, stream: &str, line: u64) -> Result<()> {
        let Some(glue) = self.glue.as_mut() else {
            return Ok(());
        };
        let Some(known) = self.streams.get_mut(stream) else {
            return Ok(());
        };
        if stream == publish::PROBE_STREAM {
            return Ok(());
        }
        let schema = known.batch.schema().clone();
        let partition_keys = known
            .partitioner
            .as_ref()
            .map(Partitioner::folder_names)
            .unwrap_or_default();
        // The table is named as its folder is: by the stream, or the `table` setting.
        let named = match self.keys.prefix_is_per_stream() {
            true => stream,
            false => self.config.table.as_deref().unwrap_or(stream),
        };
        let table = tables::table_name(named);
        let prefix = self.keys.stream_prefix(stream);
        let opened = glue.open(stream, &table, &prefix, &schema, partition_keys);
        self.destination.wait(opened).map_err(|e| match e {
            Error::Config(message) => Error::input(line, Some(stream), message),
            other => other,
        })
    }

    /// Tells the decoding threads how stream `index`'s records are decoded from now on:
    /// after its SCHEMA, and when its buffer skips new fields.
    fn replan(&mut self, index: usize) {
        let Some(decoders) = self.decoders.as_mut() else {
            return;
        };
        let stream = &self.streams.list[index];
        let blueprint = stream.batch.splittable().then(|| stream.batch.blueprint());
        decoders.plan(index, &stream.name, blueprint);
    }

    /// With Iceberg tables: the stream's table, made or widened for its columns.
    fn open_table(&mut self, stream: &str, line: u64) -> Result<()> {
        let Some(tables) = self.tables.as_mut() else {
            return Ok(());
        };
        let Some(known) = self.streams.get_mut(stream) else {
            return Ok(());
        };
        let schema = known.batch.schema();
        let columns = schema.arrow.clone();
        // Key properties by the names their columns have in files.
        let keys: Vec<String> = schema
            .columns
            .iter()
            .filter(|c| schema.key_properties.contains(&c.name))
            .map(|c| c.output_name.clone())
            .collect();
        let name = tables::table_name(self.config.table.as_deref().unwrap_or(stream));
        let opened = self
            .destination
            .wait(tables.open(stream, &name, &columns, &keys));
        opened.map_err(|e| match e {
            Error::Config(message) => Error::input(line, Some(stream), message),
            other => other,
        })
    }

    fn on_record(
        &mut self,
        name: &str,
        record: Record,
        mut envelope: Envelope,
        line: u64,
        raw_line: &str,
    ) -> Result<()> {
        let index = self.stream_index(name, "RECORD", line)?;
        let stream = &mut self.streams.list[index];
        // The same size the batch counts, so `buffered` and the batches stay in step.
        let bytes = match &record {
            Record::Raw(raw) => raw.get().len(),
            _ => raw_line.len(),
        };
        envelope.table_version = envelope.table_version.or(stream.table_version);
        let appended = end_record(&mut stream.batch, record, line, bytes, &envelope);
        self.row_ended(index, appended, bytes, line, raw_line)
    }

    /// Where the stream named by a `kind` message at `line` is, or the error for a
    /// message that came before the stream's SCHEMA.
    fn stream_index(&mut self, name: &str, kind: &str, line: u64) -> Result<usize> {
        self.streams.position(name).ok_or_else(|| {
            let message = format!("{kind} arrived before any SCHEMA for its stream");
            Error::input(line, Some(name), message)
        })
    }

    /// After one record of stream `index` was decoded (`appended`) or refused: warns of
    /// new fields outside the schema, sends a refused record to `invalid_records`, or
    /// counts the row and lets the stream's limits act.
    fn row_ended(
        &mut self,
        index: usize,
        appended: std::result::Result<(), String>,
        bytes: usize,
        line: u64,
        raw_line: &str,
    ) -> Result<()> {
        let stream = &mut self.streams.list[index];
        let ignored = stream.batch.take_newly_ignored();
        for field in &ignored {
            let name = &stream.name;
            tracing::warn!("stream {name:?}: field {field:?} is not in the schema; ignored");
        }
        if !ignored.is_empty() {
            self.replan(index);
        }
        if let Err(reason) = appended {
            let name = self.streams.list[index].name.clone();
            return self.on_invalid(&name, reason, line, raw_line);
        }
        self.count_records(index, 1, bytes);
        self.after_rows(index)
    }

    /// A BATCH: every file of its manifest, in order, each record taking the path a
    /// RECORD line takes. Its records count as input line `line`, so no STATE after the
    /// BATCH is written before they are stored.
    fn on_batch(
        &mut self,
        name: &str,
        encoding: &str,
        manifest: &[String],
        line: u64,
    ) -> Result<()> {
        let index = self.stream_index(name, "BATCH", line)?;
        let encoding = Encoding::parse(encoding).map_err(|e| Error::input(line, Some(name), e))?;
        for url in manifest {
            self.check_stop()?;
            let opened = self
                .batch_files
                .open(url, encoding)
                .map_err(|e| Error::input(line, Some(name), e))?;
            if opened.undeclared_gzip && !self.warned_undeclared_gzip {
                self.warned_undeclared_gzip = true;
                tracing::warn!(
                    "input line {line}, stream {name:?}: batch file {url} is gzip-compressed although the BATCH declares no compression (the Singer SDK's JSONL batches always are); read as gzip"
                );
            }
            let file = BatchFile {
                index,
                stream: name,
                url,
                line,
            };
            let lines = self.take_batch_file(&file, &opened.lines)?;
            tracing::debug!("stream {name:?}: {lines} lines read from batch file {url}");
        }
        Ok(())
    }

    /// The record lines of one batch file; returns how many lines it had. They go to the
    /// decoding threads as the input's lines do, unless some of the input's are out
    /// there now (which come after this BATCH).
    fn take_batch_file(&mut self, file: &BatchFile, lines: &Blocks) -> Result<u64> {
        let splittable = self.streams.list[file.index].batch.splittable();
        if self.decoders.is_some() && self.handed_out.is_empty() && splittable {
            return self.decode_batch_file(file, lines);
        }
        let mut at = 0;
        while let Some(block) = self.next_file_block(file, lines, at)? {
            for (_, text) in block.lines_from(0) {
                at += 1;
                self.take_file_line(file, text, at)?;
                if at.is_multiple_of(AGE_CHECK_LINES) {
                    self.check_stop()?;
                    self.complete_old_objects()?;
                    self.report_progress();
                }
            }
        }
        Ok(at)
    }

    /// `take_batch_file` on the decoding threads: jobs of blocks handed out in turn and
    /// taken back in order, so rows, limits and STATE are those of one thread.
    fn decode_batch_file(&mut self, file: &BatchFile, lines: &Blocks) -> Result<u64> {
        let (mut at, mut out, mut ended) = (0, 0, false);
        // What came after the last job's blocks; an error waits for the jobs before it.
        let mut ahead: Option<std::io::Result<Next>> = None;
        while !ended || out > 0 {
            while !ended && out < IN_FLIGHT {
                let next = match ahead.take() {
                    Some(Err(e)) if out > 0 => {
                        ahead = Some(Err(e));
                        break;
                    }
                    Some(next) => next,
                    // Until every decoder has a job, the next block is worth waiting
                    // for: a file's reader is well ahead of the decoders once it runs.
                    None if out < DECODERS => lines.next(IDLE_WAIT),
                    None => match lines.try_next() {
                        Some(next) => next,
                        None => break,
                    },
                };
                let mut job = match self.file_block(file, next, at)? {
                    FileNext::Block(block) => vec![Arc::new(block)],
                    FileNext::Idle => continue,
                    FileNext::End => {
                        ended = true;
                        break;
                    }
                };
                let mut size = job[0].size();
                while size < JOB_BYTES {
                    match lines.try_next() {
                        Some(Ok(Next::Block(block))) => {
                            size += block.size();
                            job.push(Arc::new(block));
                        }
                        None => break,
                        other => {
                            ahead = other;
                            break;
                        }
                    }
                }
                self.send_file_job(file, job)?;
                out += 1;
            }
            if out == 0 {
                continue;
            }
            let Some(done) = self.decoders.as_mut().and_then(Decoders::receive) else {
                let lost = "a decoding thread stopped with input it had taken";
                return Err(Error::Encode(lost.into()));
            };
            out -= 1;
            let Done {
                blocks,
                twins,
                steps,
                lines: count,
                ..
            } = done;
            at = self.take_steps(Source::File(file), &blocks, twins, steps, (at, count))?;
        }
        Ok(at)
    }

    /// Hands a job of a batch file's blocks to the decoders, which decode them into a
    /// twin of its stream.
    fn send_file_job(&mut self, file: &BatchFile, job: Vec<Arc<Block>>) -> Result<()> {
        let spares = self.spare_twins.pop().unwrap_or_default();
        let lines = Lines::Records { stream: file.index };
        let sent = self.decoders.as_mut().map(|d| d.send(job, spares, lines));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(Error::Encode(
                "a decoding thread stopped before it took a batch file's lines".into(),
            )),
        }
    }

    /// The batch file's next block, waiting for it (tending to uploads and signals
    /// meanwhile); None at its end.
    fn next_file_block(
        &mut self,
        file: &BatchFile,
        lines: &Blocks,
        at: u64,
    ) -> Result<Option<Block>> {
        loop {
            match self.file_block(file, lines.next(IDLE_WAIT), at)? {
                FileNext::Block(block) => return Ok(Some(block)),
                FileNext::Idle => {}
                FileNext::End => return Ok(None),
            }
        }
    }

    /// What the batch file's reader gave: a block, its end, or nothing yet (then
    /// uploads and signals are tended to). A read error names the file and the line
    /// after `at`.
    fn file_block(
        &mut self,
        file: &BatchFile,
        next: std::io::Result<Next>,
        at: u64,
    ) -> Result<FileNext> {
        match next {
            Ok(Next::Block(block)) => Ok(FileNext::Block(block)),
            Ok(Next::Idle) => {
                self.check_stop()?;
                self.collect(false)?;
                Ok(FileNext::Idle)
            }
            Ok(Next::End) => Ok(FileNext::End),
            Err(e) => Err(file.error(at + 1, &format!("cannot read: {e}"))),
        }
    }

    /// One line of a batch file, numbered `at` in the file: a record of the file's
    /// stream, on the path a RECORD line's record takes.
    fn take_file_line(&mut self, file: &BatchFile, text: LineText, at: u64) -> Result<()> {
        let text = text.map_err(|e| file.error(at, &format!("not valid UTF-8 ({e})")))?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        let stream = &mut self.streams.list[file.index];
        let envelope = Envelope {
            time_extracted: None,
            table_version: stream.table_version,
        };
        let batch = &mut stream.batch;
        let appended = match batch.decode_plain_line(text) {
            true => batch.end_row(true, file.line, text.len(), &envelope),
            false => batch.append(text, file.line, &envelope),
        };
        let appended = match appended {
            Err(_) if dialect::rewrite(text).is_some() => {
                self.file_line_dialect(file, text, &envelope)
            }
            other => other,
        };
        let appended = appended.map_err(|reason| file.locate(at, &reason));
        self.row_ended(file.index, appended, text.len(), file.line, text)
    }

    /// A batch file's record holding NaN, infinities or lone surrogates (see `dialect`):
    /// read as the RECORD line that would carry it, so it is taken or refused exactly
    /// as it would be there.
    fn file_line_dialect(
        &mut self,
        file: &BatchFile,
        text: &str,
        envelope: &Envelope,
    ) -> std::result::Result<(), String> {
        let stream = serde_json::Value::from(file.stream);
        let line = format!(r#"{{"type":"RECORD","stream":{stream},"record":{text}}}"#);
        let record = match protocol::parse_line(&line, &mut self.streams) {
            Ok(Message::Record { record, .. }) => record,
            Ok(_) => return Err("the line is not a record".into()),
            Err(e) => return Err(e.message),
        };
        let batch = &mut self.streams.list[file.index].batch;
        end_record(batch, record, file.line, text.len(), envelope)
    }

    /// A message of a type this target does not know: it may carry records (as BATCH
    /// did before it was known here), so it stops the run unless the user chose to skip
    /// such messages.
    fn on_unknown(&mut self, kind: &str, line: u64) -> Result<()> {
        if !self.config.skip_unknown_messages {
            return Err(Error::input(
                line,
                None,
                format!(
                    "message type {kind:?} is not one this target knows (SCHEMA, RECORD, STATE, ACTIVATE_VERSION, BATCH); it may carry records, so the run stops before any later STATE is written (set unknown_message_types to \"warn\" to skip such messages)"
                ),
            ));
        }
        let count = self
            .summary
            .unknown_skipped
            .entry(kind.to_owned())
            .or_insert(0);
        *count += 1;
        if *count == 1 {
            tracing::warn!(
                "input line {line}: message type {kind:?} is not known; skipped (unknown_message_types is \"warn\"), and so will be later ones of that type"
            );
        }
        Ok(())
    }

    /// Counts records just added to stream `index`'s buffer.
    fn count_records(&mut self, index: usize, rows: usize, bytes: usize) {
        let stream = &mut self.streams.list[index];
        self.summary.records += rows as u64;
        stream.records += rows as u64;
        stream.bytes += bytes as u64;
        self.buffered += bytes;
        if stream.batch.rows() == rows {
            self.buffered += stream.empty_size;
        }
        stream.started.get_or_insert_with(Instant::now);
    }

    /// After records were added to stream `index`: completes its objects or writes a
    /// chunk when a limit is reached, and keeps memory within the budget.
    fn after_rows(&mut self, index: usize) -> Result<()> {
        let stream = &self.streams.list[index];
        let held = (stream.batch.rows(), stream.batch.bytes());
        let flush = flush_due(self.limits, stream.fullest, held);
        if flush != Flush::None {
            let name = stream.name.clone();
            match flush {
                Flush::Complete => self.complete(&name)?,
                _ => self.write_chunk(&name)?,
            }
        }
        self.keep_within_budget()
    }

    fn on_invalid(&mut self, name: &str, reason: String, line: u64, raw_line: &str) -> Result<()> {
        match self.config.invalid_records {
            InvalidRecords::Fail => Err(Error::input(line, Some(name), reason)),
            InvalidRecords::Skip => {
                tracing::warn!("input line {line}, stream {name:?}: record skipped: {reason}");
                self.summary.skipped += 1;
                Ok(())
            }
            InvalidRecords::Quarantine => {
                tracing::warn!("input line {line}, stream {name:?}: record quarantined: {reason}");
                self.summary.quarantined += 1;
                let Some(stream) = self.streams.get_mut(name) else {
                    return Ok(());
                };
                stream.rejected.push(name, line, &reason, raw_line);
                stream.started.get_or_insert_with(Instant::now);
                if stream.rejected.jsonl.len() >= self.limits.row_group_bytes {
                    self.complete(name)?;
                }
                Ok(())
            }
        }
    }

    /// Encodes the stream's buffered rows into its open object, or each partition's
    /// rows into that partition's open object, opening objects as needed.
    fn write_chunk(&mut self, name: &str) -> Result<()> {
        let Some(stream) = self.streams.get_mut(name) else {
            return Ok(());
        };
        let Some(first_line) = stream.batch.first_line() else {
            return Ok(());
        };
        for (column, count) in stream.batch.take_rounded() {
            tracing::warn!(
                "stream {name:?}, column {column:?}: {count} numbers rounded to the nearest float64 (inexact_numbers is \"warn\")"
            );
        }
        let (rows, bytes) = (stream.batch.rows(), stream.batch.bytes());
        let held = stream.held();
        let batch = stream
            .batch
            .finish()
            .map_err(|e| Error::Encode(e.to_string()))?;
        self.buffered -= held;
        // `partition_by`'s folders, or the partitions of the stream's Iceberg table.
        let groups = match &stream.partitioner {
            Some(partitioner) => Some(partitioner.split(&batch)),
            None => self.tables.as_mut().and_then(|t| t.split(name, &batch)),
        };
        let Some(groups) = groups else {
            return self.write_part(name, "", batch, first_line, (rows, bytes));
        };
        let groups = groups.map_err(|e| Error::Encode(format!("stream {name:?}: {e}")))?;
        for group in groups {
            let part = group
                .take(&batch)
                .map_err(|e| Error::Encode(e.to_string()))?;
            // Record JSON is not kept per row: a part counts its share of the chunk's.
            let share = bytes * group.rows() / rows.max(1);
            self.write_part(
                name,
                &group.folders,
                part,
                first_line,
                (group.rows(), share),
            )?;
        }
        Ok(())
    }

    /// Sends rows to the open object of partition `folders`, opening it if needed.
    /// `first_line` is that of the chunk the rows come from; `size` their rows and bytes.
    fn write_part(
        &mut self,
        name: &str,
        folders: &str,
        part: RecordBatch,
        first_line: u64,
        size: (usize, usize),
    ) -> Result<()> {
        let is_open = self
            .streams
            .get_mut(name)
            .is_some_and(|s| s.objects.contains_key(folders));
        if !is_open {
            self.open_object(name, folders, first_line, part.schema())?;
        }
        self.writes += 1;
        let Some(stream) = self.streams.get_mut(name) else {
            return Ok(());
        };
        let Some(object) = stream.objects.get_mut(folders) else {
            return Ok(());
        };
        object.rows += size.0;
        object.bytes += size.1;
        object.last_write = self.writes;
        let id = object.id;
        let fullest = &mut stream.fullest;
        *fullest = (fullest.0.max(object.rows), fullest.1.max(object.bytes));
        self.sink.send(Job::Chunk {
            object: id,
            batch: part,
        })
    }

    fn open_object(
        &mut self,
        name: &str,
        folders: &str,
        first_line: u64,
        schema: SchemaRef,
    ) -> Result<()> {
        self.make_room()?;
        let (key, bucket, schema) = match self.tables.as_ref().and_then(|t| t.stream(name)) {
            Some(table) => {
                let key = self.keys.data_file_key(&table.data_folder(folders));
                let schema = table.file_schema(&schema).map_err(Error::Store)?;
                (key, Some(table.bucket.clone()), schema)
            }
            None => {
                let key = self
                    .keys
                    .next_key(name, ObjectKind::Data, Utc::now(), folders)
                    .map_err(|e| Error::Store(format!("stream {name:?}: {e}")))?;
                (key, None, schema)
            }
        };
        let mut started = InFlight::new(first_line, name, &key, ObjectKind::Data, 0);
        started.schema = self.streams.get_mut(name).map(|s| s.batch.schema().clone());
        let id = self.objects.start(started);
        self.objects.open += 1;
        self.summary.objects += 1;
        let location = match &bucket {
            Some(bucket) => format!("s3://{bucket}/{key}"),
            None => self.destination.store.location(&key),
        };
        tracing::info!("stream {name:?}: writing {location}");
        self.sink.send(Job::Open {
            object: id,
            key,
            bucket,
            schema,
        })?;
        let object = OpenObject {
            id,
            rows: 0,
            bytes: 0,
            last_write: 0,
        };
        if let Some(stream) = self.streams.get_mut(name) {
            stream.objects.insert(folders.to_owned(), object);
        }
        Ok(())
    }

    /// Before an object opens: when one more open object would not fit the memory
    /// budget, completes the least recently written open objects, of any stream.
    fn make_room(&mut self) -> Result<()> {
        let part = self.limits.part_size;
        while self.objects.open > 0
            && self.buffered + (self.objects.open + 1) * part > self.limits.max_buffer_bytes
        {
            let oldest = self
                .streams
                .list
                .iter()
                .flat_map(|s| s.objects.iter().map(move |(f, o)| (o.last_write, s, f)))
                .min_by_key(|(last_write, _, _)| *last_write)
                .map(|(_, s, f)| (s.name.clone(), f.clone()));
            let Some((name, folders)) = oldest else { break };
            self.close_object(&name, &folders)?;
        }
        Ok(())
    }

    /// Ends one open object: it is completed in the background and reported.
    fn close_object(&mut self, name: &str, folders: &str) -> Result<()> {
        let Some(stream) = self.streams.get_mut(name) else {
            return Ok(());
        };
        let Some(object) = stream.objects.remove(folders) else {
            return Ok(());
        };
        stream.measure_fullest();
        // Its last open object closed with no rows waiting (the budget closing the least
        // recently written): nothing needs its buffers until its next record.
        if stream.objects.is_empty() {
            stream.batch.park();
            stream.objects.shrink_to_fit();
        }
        tracing::debug!(
            "stream {name:?}: completing object {} ({} rows)",
            object.id,
            object.rows
        );
        self.objects.open -= 1;
        if let Some(in_flight) = self.objects.in_flight.get_mut(&object.id) {
            in_flight.rows = object.rows;
        }
        self.sink.send(Job::Close { object: object.id })
    }

    /// Completes the stream's objects with everything it buffers, and sends its
    /// quarantined records.
    fn complete(&mut self, name: &str) -> Result<()> {
        self.write_chunk(name)?;
        let Some(stream) = self.streams.get_mut(name) else {
            return Ok(());
        };
        stream.started = None;
        let open: Vec<String> = stream.objects.keys().cloned().collect();
        for folders in open {
            self.close_object(name, &folders)?;
        }
        let Some(stream) = self.streams.get_mut(name) else {
            return Ok(());
        };
        if let Some(first_line) = stream.rejected.first_line.take() {
            let body = std::mem::take(&mut stream.rejected.jsonl);
            let rows = std::mem::take(&mut stream.rejected.rows);
            let key = self
                .keys
                .next_key(name, ObjectKind::Rejected, Utc::now(), "")
                .map_err(|e| Error::Store(format!("stream {name:?}: {e}")))?;
            let started = InFlight::new(first_line, name, &key, ObjectKind::Rejected, rows);
            let id = self.objects.start(started);
            self.summary.objects += 1;
            tracing::info!(
                "stream {name:?}: writing {rows} rejected records to {}",
                self.destination.store.location(&key)
            );
            self.sink.send(Job::Put {
                object: id,
                key,
                body,
                media: crate::encode::JSONL,
            })?;
        }
        // Its objects are on their way: the stream keeps only its schema and counters
        // until its next record.
        if let Some(stream) = self.streams.get_mut(name) {
            stream.batch.park();
            stream.objects.shrink_to_fit();
        }
        self.collect(false)
    }

    /// Past the memory budget (records held plus one part per open object), completes
    /// the heaviest stream's object until back within it.
    fn keep_within_budget(&mut self) -> Result<()> {
        let part = self.limits.part_size;
        let weight = |s: &Stream| s.held() + s.objects.len() * part;
        while self.over_budget(0) {
            let heaviest = self
                .streams
                .list
                .iter()
                .filter(|s| weight(s) > 0)
                .max_by_key(|s| weight(s))
                .map(|s| s.name.clone());
            let Some(name) = heaviest else { break };
            self.complete(&name)?;
        }
        Ok(())
    }

    /// Whether records held (and `more` bytes of them yet to come) and one part per
    /// open object pass `max_buffer_bytes`.
    fn over_budget(&self, more: usize) -> bool {
        self.buffered + more + self.objects.open * self.limits.part_size
            > self.limits.max_buffer_bytes
    }

    fn complete_old_objects(&mut self) -> Result<()> {
        let age = self.limits.max_batch_age;
        let old: Vec<String> = self
            .streams
            .list
            .iter()
            .filter(|s| s.started.is_some_and(|t| t.elapsed() >= age))
            .map(|s| s.name.clone())
            .collect();
        for name in old {
            self.complete(&name)?;
        }
        Ok(())
    }

    /// Takes note of ended objects (waiting for all when `wait_all`), then writes the
    /// newest STATE they cover. Returns the first failure.
    fn collect(&mut self, wait_all: bool) -> Result<()> {
        self.gather(if wait_all { Wait::All } else { Wait::None })
    }

    /// Like `collect(true)`, but gives up waiting at `deadline`.
    fn collect_until(&mut self, deadline: Option<Instant>) -> Result<()> {
        self.gather(deadline.map_or(Wait::All, Wait::Until))
    }

    fn gather(&mut self, wait: Wait) -> Result<()> {
        let mut first_error = None;
        while !self.objects.in_flight.is_empty() {
            let report = match wait {
                Wait::All => self.next_report()?,
                Wait::None => self.sink.try_report(),
                Wait::Until(deadline) => self.sink.wait_report_until(deadline),
            };
            let Some(report) = report else { break };
            let Some(object) = self.objects.in_flight.remove(&report.object) else {
                continue;
            };
            log_metrics(&object, report.result.as_ref().ok().map(|l| l.bytes));
            match report.result {
                Err(e) => {
                    let objects = &mut self.objects;
                    let lost = objects.lost_from.unwrap_or(u64::MAX).min(object.first_line);
                    objects.lost_from = Some(lost);
                    let expected = objects.abandoned.contains(&report.object);
                    if !expected && first_error.as_ref().is_none_or(Error::is_consequence) {
                        first_error = Some(naming_stream(e, &object.stream));
                    }
                }
                Ok(landed) => {
                    let bytes = landed.bytes;
                    self.summary.stored_objects += 1;
                    let held = self.hold_for_commit(&object, bytes, report.footer.as_deref());
                    if let Err(e) = held {
                        // Stored but never to be committed: its records are not safe.
                        let lost = self.objects.lost_from.unwrap_or(u64::MAX);
                        self.objects.lost_from = Some(lost.min(object.first_line));
                        first_error.get_or_insert(e);
                    }
                    self.objects.stored(report.object, object, landed);
                }
            }
        }
        // A failed commit keeps its objects' records unsafe; STATE that others cover
        // still goes out.
        if first_error.is_none()
            && let Err(e) = self.commit_tables(false)
        {
            first_error = Some(e);
        }
        self.release_states()?;
        first_error.map_or(Ok(()), Err)
    }

    /// A stored data object of a stream with a table waits for the table's commit:
    /// until then its records count as not stored.
    fn hold_for_commit(
        &mut self,
        object: &InFlight,
        bytes: u64,
        footer: Option<&ParquetMetaData>,
    ) -> Result<()> {
        if let Some(glue) = self.glue.as_mut() {
            // Glue: a stored object waits for its partition to be added.
            if object.kind == ObjectKind::Data && glue.stored(&object.stream, &object.key)? {
                let lines = self.objects.uncommitted.entry(object.stream.clone());
                lines.or_default().push(object.first_line);
            }
            return Ok(());
        }
        let Some(tables) = self.tables.as_mut() else {
            return Ok(());
        };
        if object.kind != ObjectKind::Data || tables.stream(&object.stream).is_none() {
            return Ok(());
        }
        let footer = footer
            .ok_or_else(|| Error::Store(format!("{}: no Parquet footer to commit", object.key)))?;
        tables.stored(&object.stream, &object.key, bytes, footer)?;
        let lines = self
            .objects
            .uncommitted
            .entry(object.stream.clone())
            .or_default();
        lines.push(object.first_line);
        Ok(())
    }

    /// The commit stage: each table whose flush is wholly stored (no object of its
    /// stream still open or uploading) commits its files when its interval has passed,
    /// or at the end. The snapshot names the STATE it makes safe.
    fn commit_tables(&mut self, at_end: bool) -> Result<()> {
        self.add_partitions()?;
        let Some(tables) = self.tables.as_mut() else {
            return Ok(());
        };
        if at_end {
            // A stream sent whole (ACTIVATE_VERSION) is replaced even when empty.
            for stream in self
                .streams
                .list
                .iter()
                .filter(|s| s.table_version.is_some())
            {
                tables.replace(&stream.name);
            }
        }
        let tables = &*tables;
        let due: Vec<String> = tables
            .waiting()
            .into_iter()
            .filter(|stream| tables.commit_due(stream, at_end) && !self.objects.writing(stream))
            .filter(|stream| {
                self.streams
                    .get_mut(stream)
                    .is_none_or(|s| s.objects.is_empty())
            })
            .collect();
        for stream in due {
            let watermark = self.watermark_without(&stream);
            let state = self.states.covered(watermark).map(str::to_owned);
            let run_id = self.keys.run_id().to_owned();
            if let Some(tables) = self.tables.as_mut() {
                let committed = tables.commit(&stream, state.as_deref(), &run_id);
                self.destination.wait(committed)?;
            }
            self.objects.uncommitted.remove(&stream);
        }
        Ok(())
    }

    /// Glue: each stream's new partitions are added to its table as soon as an object
    /// in them is stored; until then that object's records count as not stored.
    fn add_partitions(&mut self) -> Result<()> {
        let Some(glue) = self.glue.as_mut() else {
            return Ok(());
        };
        for stream in glue.waiting() {
            self.destination.wait(glue.register(&stream))?;
            self.objects.uncommitted.remove(&stream);
        }
        Ok(())
    }

    /// The next report, waiting for one as long as no signal asks the run to stop.
    fn next_report(&self) -> Result<Option<crate::sink::Report>> {
        loop {
            if let Some(report) = self.sink.report_within(STOP_TICK) {
                return Ok(Some(report));
            }
            self.check_stop()?;
        }
    }

    /// The oldest input line whose record is not yet safe: held in a buffer, in an
    /// object not yet stored, or (but for `committing`'s) waiting for a commit.
    fn watermark_but(&self, committing: Option<&str>) -> u64 {
        self.streams
            .list
            .iter()
            .flat_map(|s| [s.batch.first_line(), s.rejected.first_line])
            .flatten()
            .chain(self.objects.oldest_line_but(committing))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// The watermark once `stream`'s waiting files are committed.
    fn watermark_without(&self, stream: &str) -> u64 {
        self.watermark_but(Some(stream))
    }

    fn release_states(&mut self) -> Result<()> {
        let watermark = self.watermark_but(None);
        match self.states.release(watermark) {
            Some(value) if self.config.store.holds_state() => self.held = Some(value),
            Some(value) => self.write_state(&value)?,
            None => {}
        }
        Ok(())
    }

    /// Writes one STATE line. Once that has failed (a closed stdout), no other is
    /// tried: the first failure ends the run and says so.
    fn write_state(&mut self, value: &str) -> Result<()> {
        if self.output_failed {
            return Ok(());
        }
        let _whole = stop::writing_state();
        let written = writeln!(self.output, "{value}").and_then(|()| self.output.flush());
        if let Err(e) = written {
            self.output_failed = true;
            let message = format!("STATE could not be written: {e}");
            return Err(Error::Io(std::io::Error::new(e.kind(), message)));
        }
        self.summary.states += 1;
        Ok(())
    }

    /// After a successful `finish`: the run's manifests, then overwrite's deletions,
    /// then the STATE held back for them. Nothing here runs after a failure.
    fn publish(&mut self) -> Result<()> {
        match &self.tables {
            None => {
                publish::remove_probe(&self.destination, &self.objects.stored);
            }
            // Its data file is the table's now: deleting it would break the table.
            Some(tables) if tables.stream(publish::PROBE_STREAM).is_some() => tracing::info!(
                "connection test: stream {:?} landed in its table and was committed; the table stays (drop it with the catalog's own tools)",
                publish::PROBE_STREAM
            ),
            Some(_) => {}
        }
        if !self.config.store.holds_state() {
            return Ok(());
        }
        // Tables were replaced by their commits already; files are replaced here.
        if self.tables.is_none() {
            self.publish_files()?;
        }
        if let Some(value) = self.held.take() {
            self.write_state(&value)?;
        }
        Ok(())
    }

    /// Plain files' end of a run: manifests, then overwrite's deletions.
    fn publish_files(&mut self) -> Result<()> {
        let streams: Vec<StreamEnd> = self
            .streams
            .list
            .iter()
            .map(|s| StreamEnd {
                name: s.name.clone(),
                schema: s.batch.schema().clone(),
                version: s.table_version,
            })
            .collect();
        let published = publish::publish(
            self.config,
            &self.destination,
            &mut self.keys,
            &streams,
            &self.objects.stored,
            &mut self.objects.written,
        )?;
        self.summary.manifests = published.manifests;
        self.summary.deleted = published.deleted;
        Ok(())
    }

    /// End of input: completes every stream's object and waits for every upload.
    fn finish(&mut self) -> Result<()> {
        for stream in self.early_versions.keys() {
            tracing::warn!(
                "ACTIVATE_VERSION for stream {stream:?}, which never had a SCHEMA; ignored"
            );
        }
        for stream in self.streams.names() {
            self.complete(&stream)?;
        }
        self.collect(true)?;
        self.commit_tables(true)?;
        self.release_states()
    }

    fn log_summary(&self) {
        if self.decoders.is_some() {
            let records = self.helped;
            tracing::debug!("records decoded by the decoding threads: {records}");
        }
        let s = &self.summary;
        // Its own target: shown even when RUST_LOG asks for warnings only (see main).
        tracing::info!(
            target: SUMMARY,
            "done: {} in {}, {} written, {} skipped, {} quarantined, {}, {} deleted",
            plural(s.records, "record"),
            plural(s.objects, "object"),
            plural(s.states, "STATE line"),
            plural(s.skipped, "invalid record"),
            s.quarantined,
            plural(s.manifests, "manifest"),
            plural(s.deleted, "older object"),
        );
        for (kind, count) in &s.unknown_skipped {
            tracing::warn!("{count} messages of unknown type {kind:?} were skipped");
        }
        if self.config.mage {
            tracing::info!(
                "input lines that were not Singer messages: {} skipped, {} source log lines relayed",
                s.not_singer,
                s.source_logs
            );
        }
    }

    /// After a failure: input errors still store what came before them, so a re-run
    /// resumes as late as is safe; other errors abandon the open objects. Either way the
    /// uploads in flight end and the STATE that stored records cover is written. After
    /// a stop signal (also one that comes while this waits), uploads already completing
    /// get `shutdown_timeout_seconds` (none after SIGQUIT); the run's end aborts or names
    /// those still open then. Returns the error to report: `error`, unless it only
    /// followed from one found while settling.
    fn settle_after(&mut self, error: Error) -> Error {
        tracing::debug!("stopping after error: {error}");
        let mut later = None;
        if matches!(error, Error::Input { .. }) {
            match self.finish() {
                Ok(()) => return error,
                Err(e) => later = Some(e),
            }
        }
        let settled = match later.as_ref().unwrap_or(&error) {
            Error::Interrupted(signal) => self.wait_after_signal(signal),
            _ => {
                // The run is failing: no new upload starts (those completing go on).
                self.destination.brake.failed();
                self.abandon_open_objects();
                match self.collect(true) {
                    Err(Error::Interrupted(signal)) => self.wait_after_signal(signal),
                    other => other,
                }
            }
        };
        let mut reported = error;
        for e in later.into_iter().chain(settled.err()) {
            if reported.is_consequence() && !e.is_consequence() {
                reported = e;
            } else if !e.is_consequence() && !matches!(e, Error::Interrupted(_)) {
                // A warning: the error that ends the run is the one line at ERROR, which
                // is the line an orchestrator (Mage) shows as the cause.
                tracing::warn!("while stopping, also: {e}");
            }
        }
        reported
    }

    /// After a stop signal: open objects are aborted at once, uploads already
    /// completing get their grace.
    fn wait_after_signal(&mut self, signal: &str) -> Result<()> {
        self.abandon_open_objects();
        let grace = stop::grace(signal, self.config.reliability.shutdown_timeout);
        let waited = self.collect_until(Some(Instant::now() + grace));
        if !self.objects.in_flight.is_empty() {
            tracing::warn!(
                "{} uploads did not end within {grace:?} of {signal}; their records count as not stored",
                self.objects.in_flight.len()
            );
        }
        waited
    }

    /// Gives up every open object: its upload is aborted, its records are not stored.
    fn abandon_open_objects(&mut self) {
        for stream in &mut self.streams.list {
            for (_, object) in stream.objects.drain() {
                self.objects.abandoned.push(object.id);
                let _ = self.sink.send(Job::Abort { object: object.id });
            }
        }
        self.objects.open = 0;
    }
}
