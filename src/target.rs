//! The run: input lines through the pipeline stages, STATE lines out.
//!
//! Owns: the order of events. Lines are read and decoded here, full batches are encoded
//! and handed to background uploads (at most `max_concurrent_uploads` at once; reading
//! waits for a free slot), and after every completed upload the STATE values it covers
//! are written. Must not touch: formats, key layout or S3 details, which belong to the
//! stages it calls.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::sync::{Arc, mpsc};

use chrono::Utc;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use crate::batch::Batch;
use crate::config::{Config, InvalidRecords};
use crate::encode;
use crate::error::{Error, Result};
use crate::object_key::{KeyBuilder, ObjectKind};
use crate::protocol::{self, Message};
use crate::schema::StreamSchema;
use crate::state::StateTracker;
use crate::store::S3Store;
use crate::values::compact_json;

/// What a run did, for the closing log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub objects: u64,
    pub states: u64,
    pub skipped: u64,
    pub quarantined: u64,
}

/// Runs the whole load: connects, reads `input` to its end, stores every record, and
/// writes STATE lines to `output` as they become covered.
pub fn run(config: &Config, input: impl BufRead, output: impl Write) -> Result<Summary> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let store = runtime.block_on(S3Store::connect(config))?;
    let uploads = Uploads::new(runtime, store, config.max_concurrent_uploads);
    let mut target = Target::new(config, uploads, output);
    match target.consume(input).and_then(|()| target.finish()) {
        Ok(()) => Ok(target.summary),
        Err(error) => {
            target.settle_after(&error);
            Err(error)
        }
    }
}

/// A stream's buffers: rows waiting for their object, and refused records waiting for
/// the quarantine object.
struct Stream {
    batch: Batch,
    rejected: Rejected,
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
        let entry = serde_json::json!({
            "line": line,
            "stream": stream,
            "reason": reason,
            "message": serde_json::value::RawValue::from_string(raw_line.to_owned()).ok(),
        });
        self.jsonl.extend_from_slice(entry.to_string().as_bytes());
        self.jsonl.push(b'\n');
        self.rows += 1;
        self.first_line.get_or_insert(line);
    }
}

struct Target<'c, W> {
    config: &'c Config,
    streams: HashMap<String, Stream>,
    /// Stream names in the order their first SCHEMA arrived, for a stable final flush.
    order: Vec<String>,
    keys: KeyBuilder,
    uploads: Uploads,
    states: StateTracker,
    output: W,
    summary: Summary,
}

impl<'c, W: Write> Target<'c, W> {
    fn new(config: &'c Config, uploads: Uploads, output: W) -> Self {
        Target {
            config,
            streams: HashMap::new(),
            order: Vec::new(),
            keys: KeyBuilder::new(config),
            uploads,
            states: StateTracker::default(),
            output,
            summary: Summary::default(),
        }
    }

    fn consume(&mut self, mut input: impl BufRead) -> Result<()> {
        let mut buffer = Vec::new();
        let mut line_number = 0u64;
        loop {
            buffer.clear();
            if input.read_until(b'\n', &mut buffer)? == 0 {
                return Ok(());
            }
            line_number += 1;
            let line = std::str::from_utf8(&buffer).map_err(|e| {
                Error::input(line_number, None, format!("line is not valid UTF-8 ({e})"))
            })?;
            let line = line.trim();
            if !line.is_empty() {
                self.handle(line, line_number)?;
            }
        }
    }

    fn handle(&mut self, line: &str, number: u64) -> Result<()> {
        let message = protocol::parse_line(line)
            .map_err(|e| Error::input(number, e.stream.as_deref(), e.message))?;
        match message {
            Message::Schema {
                stream,
                schema,
                key_properties,
            } => self.on_schema(&stream, schema.get(), &key_properties, number),
            Message::Record { stream, record } => {
                self.on_record(&stream, record.get(), number, line)
            }
            Message::State { value } => {
                self.states
                    .receive(number, compact_json(value.get()).into_owned());
                self.collect_uploads(false)
            }
            Message::ActivateVersion { stream, version } => {
                tracing::debug!(stream = %stream, version, "ACTIVATE_VERSION received");
                Ok(())
            }
            Message::Other { kind } => {
                tracing::warn!(
                    "input line {number}: message type {kind:?} is not supported; skipped"
                );
                Ok(())
            }
        }
    }

    fn on_schema(&mut self, stream: &str, schema: &str, keys: &[String], line: u64) -> Result<()> {
        let parsed = StreamSchema::from_json(stream, schema, keys, &self.config.types)
            .map_err(|e| Error::input(line, Some(stream), e))?;
        let batch = Batch::new(Arc::new(parsed), self.config.decode);
        match self.streams.get_mut(stream) {
            Some(known) if known.batch.schema() == batch.schema() => {}
            Some(_) => {
                self.flush(stream)?;
                if let Some(known) = self.streams.get_mut(stream) {
                    known.batch = batch;
                }
            }
            None => {
                self.order.push(stream.to_owned());
                let rejected = Rejected::default();
                self.streams
                    .insert(stream.to_owned(), Stream { batch, rejected });
            }
        }
        Ok(())
    }

    fn on_record(&mut self, stream: &str, record: &str, line: u64, raw_line: &str) -> Result<()> {
        let Some(Stream { batch, rejected }) = self.streams.get_mut(stream) else {
            return Err(Error::input(
                line,
                Some(stream),
                "RECORD arrived before any SCHEMA for its stream",
            ));
        };
        let appended = batch.append(record, line);
        for field in batch.take_newly_ignored() {
            tracing::warn!("stream {stream:?}: field {field:?} is not in the schema; ignored");
        }
        let full = match appended {
            Ok(()) => {
                self.summary.records += 1;
                batch.rows() >= self.config.max_batch_rows
                    || batch.bytes() >= self.config.max_batch_bytes
            }
            Err(reason) => match self.config.invalid_records {
                InvalidRecords::Fail => return Err(Error::input(line, Some(stream), reason)),
                InvalidRecords::Skip => {
                    tracing::warn!(
                        "input line {line}, stream {stream:?}: record skipped: {reason}"
                    );
                    self.summary.skipped += 1;
                    false
                }
                InvalidRecords::Quarantine => {
                    tracing::warn!(
                        "input line {line}, stream {stream:?}: record quarantined: {reason}"
                    );
                    rejected.push(stream, line, &reason, raw_line);
                    self.summary.quarantined += 1;
                    rejected.jsonl.len() >= self.config.max_batch_bytes
                }
            },
        };
        if full {
            self.flush(stream)?;
        }
        Ok(())
    }

    /// Encodes the stream's buffered rows (and quarantined records) and starts their
    /// uploads.
    fn flush(&mut self, stream: &str) -> Result<()> {
        let Some(Stream { batch, rejected }) = self.streams.get_mut(stream) else {
            return Ok(());
        };
        let mut objects = Vec::new();
        if let Some(first_line) = batch.first_line() {
            for (column, count) in batch.take_rounded() {
                tracing::warn!(
                    "stream {stream:?}, column {column:?}: {count} numbers rounded to the nearest float64 (inexact_numbers is \"warn\")"
                );
            }
            let rows = batch.rows();
            let records = batch.finish().map_err(|e| Error::Encode(e.to_string()))?;
            let body = encode::encode(self.config.file_type, &records)?;
            let content_type = encode::content_type(self.config.file_type);
            objects.push((ObjectKind::Data, first_line, rows, body, content_type));
        }
        if let Some(first_line) = rejected.first_line.take() {
            let body = std::mem::take(&mut rejected.jsonl);
            let rows = std::mem::take(&mut rejected.rows);
            objects.push((
                ObjectKind::Rejected,
                first_line,
                rows,
                body,
                "application/x-ndjson",
            ));
        }
        for (kind, first_line, rows, body, content_type) in objects {
            let key = self.keys.next_key(stream, kind, Utc::now());
            tracing::info!(
                "stream {stream:?}: writing {rows} {} ({} bytes) to s3://{}/{key}",
                kind.rows_are(),
                body.len(),
                self.uploads.store.bucket()
            );
            self.uploads.start(first_line, key, body, content_type);
            self.summary.objects += 1;
        }
        self.collect_uploads(false)
    }

    /// Takes note of finished uploads (waiting for all when `wait_all`), then writes the
    /// newest STATE they cover.
    fn collect_uploads(&mut self, wait_all: bool) -> Result<()> {
        let outcome = self.uploads.collect(wait_all);
        self.release_states()?;
        outcome
    }

    fn release_states(&mut self) -> Result<()> {
        let watermark = self
            .streams
            .values()
            .flat_map(|s| [s.batch.first_line(), s.rejected.first_line])
            .flatten()
            .chain(self.uploads.oldest_line())
            .min()
            .unwrap_or(u64::MAX);
        if let Some(value) = self.states.release(watermark) {
            writeln!(self.output, "{value}")?;
            self.output.flush()?;
            self.summary.states += 1;
        }
        Ok(())
    }

    /// End of input: flushes every stream and waits for every upload.
    fn finish(&mut self) -> Result<()> {
        for stream in self.order.clone() {
            self.flush(&stream)?;
        }
        self.collect_uploads(true)?;
        let s = &self.summary;
        tracing::info!(
            "done: {} records in {} objects, {} STATE lines written, {} invalid records skipped, {} quarantined",
            s.records,
            s.objects,
            s.states,
            s.skipped,
            s.quarantined
        );
        Ok(())
    }

    /// After a failure: lets the uploads in flight end, and writes the STATE that the
    /// stored records cover, so a re-run resumes as late as is safe.
    fn settle_after(&mut self, error: &Error) {
        tracing::debug!("stopping after error: {error}");
        if let Err(e) = self.collect_uploads(true) {
            tracing::error!("{e}");
        }
    }
}

/// Uploads in the background, tracked by the input line of each object's first record.
struct Uploads {
    runtime: Runtime,
    store: S3Store,
    slots: Arc<Semaphore>,
    done_tx: mpsc::Sender<(u64, Result<()>)>,
    done_rx: mpsc::Receiver<(u64, Result<()>)>,
    /// Upload id -> first input line of its records.
    in_flight: BTreeMap<u64, u64>,
    /// The first input line of the earliest failed upload: no STATE may pass it.
    lost_from: Option<u64>,
    next_id: u64,
}

impl Uploads {
    fn new(runtime: Runtime, store: S3Store, slots: usize) -> Uploads {
        let (done_tx, done_rx) = mpsc::channel();
        Uploads {
            runtime,
            store,
            slots: Arc::new(Semaphore::new(slots)),
            done_tx,
            done_rx,
            in_flight: BTreeMap::new(),
            lost_from: None,
            next_id: 0,
        }
    }

    /// Starts an upload, first waiting for a free slot.
    fn start(&mut self, first_line: u64, key: String, body: Vec<u8>, content_type: &'static str) {
        let slot = self
            .runtime
            .block_on(self.slots.clone().acquire_owned())
            .expect("the semaphore is never closed");
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight.insert(id, first_line);
        let store = self.store.clone();
        let done = self.done_tx.clone();
        self.runtime.spawn(async move {
            let result = store.put(&key, body, content_type).await;
            drop(slot);
            let _ = done.send((id, result));
        });
    }

    /// Removes finished uploads from the books; the first failure is returned.
    fn collect(&mut self, wait_all: bool) -> Result<()> {
        let mut first_error = None;
        while !self.in_flight.is_empty() {
            let next = if wait_all {
                self.done_rx.recv().ok()
            } else {
                self.done_rx.try_recv().ok()
            };
            let Some((id, result)) = next else { break };
            let first_line = self.in_flight.remove(&id);
            if let Err(e) = result {
                self.lost_from = self.lost_from.into_iter().chain(first_line).min();
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The oldest input line whose record is not known to be stored.
    fn oldest_line(&self) -> Option<u64> {
        self.in_flight.values().copied().chain(self.lost_from).min()
    }
}
