//! The writing side: a worker thread that encodes each stream's chunks into objects and
//! streams them to the store, and a report for every object that ends.
//!
//! Owns: the encoder thread, the objects being encoded, completion reports. Must not
//! touch: input, STATE, or the choice of when objects open and close: `target` decides
//! that and sends jobs, which the worker carries out in order. Jobs wait in a queue of
//! one, so a busy encoder holds the reader back instead of letting memory grow; every
//! wait of the worker watches the run's brake (`stop`), so a stop reaches the reader
//! through it at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::file::metadata::ParquetMetaData;

use crate::encode::{Encoder, FileType, Media, Output, media};
use crate::error::{Error, Result};
use crate::store::{Failure, Landed, Upload, Uploader};

pub enum Job {
    /// Starts object `object` at `key` (in `bucket`, when not the configured one: an
    /// Iceberg table's); its chunks follow.
    Open {
        object: u64,
        key: String,
        bucket: Option<String>,
        schema: SchemaRef,
    },
    /// Rows for an open object (a Parquet row group, or CSV lines).
    Chunk { object: u64, batch: RecordBatch },
    /// Ends an object: it is completed in the background and reported.
    Close { object: u64 },
    /// A whole object of bytes already made (quarantined records).
    Put {
        object: u64,
        key: String,
        body: Vec<u8>,
        media: Media,
    },
    /// Gives an open object up; nothing of it remains in the store.
    Abort { object: u64 },
}

/// How an object ended: its size once stored, or why it was not; for Parquet, the
/// footer's metadata (row counts and column statistics).
pub struct Report {
    pub object: u64,
    pub result: Result<Landed>,
    pub footer: Option<Arc<ParquetMetaData>>,
}

pub struct Sink {
    jobs: Option<SyncSender<Job>>,
    reports: Receiver<Report>,
    worker: Option<JoinHandle<()>>,
}

impl Sink {
    pub fn start(file_type: FileType, output: Output, uploader: Uploader) -> Result<Sink> {
        let (jobs, queue) = sync_channel(1);
        let (report, reports) = channel();
        let worker = std::thread::Builder::new()
            .name("encoder".into())
            .spawn(move || Worker::new(file_type, output, uploader, report).run(queue))?;
        Ok(Sink {
            jobs: Some(jobs),
            reports,
            worker: Some(worker),
        })
    }

    /// Hands a job to the worker, waiting while it is busy with the one before.
    pub fn send(&self, job: Job) -> Result<()> {
        let stopped = || Error::Encode("the encoder thread stopped".into());
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())
    }

    pub fn try_report(&self) -> Option<Report> {
        self.reports.try_recv().ok()
    }

    /// The next report, waiting at most `wait` for one.
    pub fn report_within(&self, wait: std::time::Duration) -> Option<Report> {
        self.reports.recv_timeout(wait).ok()
    }

    /// The next report, waiting at most until `deadline`.
    pub fn wait_report_until(&self, deadline: std::time::Instant) -> Option<Report> {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        self.reports.recv_timeout(left).ok()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

struct Worker {
    file_type: FileType,
    output: Output,
    uploader: Uploader,
    reports: Sender<Report>,
    open: HashMap<u64, Encoder<Upload>>,
    /// Where each open object's upload keeps the error a write failed with.
    failures: HashMap<u64, Failure>,
}

impl Worker {
    fn new(
        file_type: FileType,
        output: Output,
        uploader: Uploader,
        reports: Sender<Report>,
    ) -> Worker {
        Worker {
            file_type,
            output,
            uploader,
            reports,
            open: HashMap::new(),
            failures: HashMap::new(),
        }
    }

    fn run(mut self, queue: Receiver<Job>) {
        for job in queue {
            self.handle(job);
        }
        let objects: Vec<u64> = self.open.keys().copied().collect();
        for object in objects {
            self.give_up(object);
        }
    }

    /// Reports how an object ended; a failure pulls the brake, so no new upload starts.
    fn report(&self, object: u64, result: Result<Landed>) {
        if result.is_err() {
            self.uploader.brake.failed();
        }
        let footer = None;
        let _ = self.reports.send(Report {
            object,
            result,
            footer,
        });
    }

    /// Reports when `stored` ends, without waiting for it here.
    fn report_later(
        &self,
        object: u64,
        stored: impl Future<Output = Result<Landed>> + Send + 'static,
        footer: Option<Arc<ParquetMetaData>>,
    ) {
        let reports = self.reports.clone();
        let brake = self.uploader.brake.clone();
        self.uploader.runtime.spawn(async move {
            let result = stored.await;
            if result.is_err() {
                brake.failed();
            }
            let _ = reports.send(Report {
                object,
                result,
                footer,
            });
        });
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Open {
                object,
                key,
                bucket,
                schema,
            } => {
                let media = media(self.file_type, self.output.compression.codec);
                let upload = self.uploader.begin(key, bucket.as_deref(), media);
                if let Some(failure) = upload.as_ref().ok().and_then(Upload::failure) {
                    self.failures.insert(object, failure);
                }
                match upload.and_then(|u| Encoder::new(self.file_type, &self.output, &schema, u)) {
                    Ok(encoder) => {
                        self.open.insert(object, encoder);
                    }
                    Err(e) => self.fail(object, e),
                }
            }
            Job::Chunk { object, batch } => {
                let Some(encoder) = self.open.get_mut(&object) else {
                    return; // failed before; already reported
                };
                if let Err(e) = encoder.write(&batch) {
                    self.give_up(object);
                    self.fail(object, e);
                }
            }
            Job::Close { object } => {
                let Some(encoder) = self.open.remove(&object) else {
                    return;
                };
                let finished = encoder.finish();
                match finished.and_then(|(upload, footer)| Ok((upload.finish()?, footer))) {
                    Ok((stored, footer)) => {
                        self.failures.remove(&object);
                        self.report_later(object, stored, footer);
                    }
                    Err(e) => self.fail(object, e),
                }
            }
            Job::Put {
                object,
                key,
                body,
                media,
            } => {
                let stored = self.uploader.put(key, body, media);
                self.report_later(object, stored, None);
            }
            Job::Abort { object } => {
                if self.give_up(object) {
                    self.failures.remove(&object);
                    self.report(object, Err(Error::Store("upload abandoned".into())));
                }
            }
        }
    }

    /// Reports that `object` failed: with the error its upload failed with, if a write
    /// into it did (a store error, a stop), else with `error`.
    fn fail(&mut self, object: u64, error: Error) {
        let kept = self.failures.remove(&object);
        let original = kept.and_then(|f| f.lock().unwrap_or_else(|e| e.into_inner()).take());
        self.report(object, Err(original.unwrap_or(error)));
    }

    /// Drops an open object and starts aborting its upload (not waited for here: the
    /// run's end aborts again, or names, any upload still open); false if it was not open.
    fn give_up(&mut self, object: u64) -> bool {
        let Some(mut encoder) = self.open.remove(&object) else {
            return false;
        };
        if let Some(upload) = encoder.writer_mut() {
            self.uploader.runtime.spawn(upload.abandon());
        }
        true
    }
}
