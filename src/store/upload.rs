//! One object on its way to S3, written as a byte stream; and the `Uploader` every
//! object of a run starts from, whichever the store.
//!
//! Bytes are gathered until `part_size`, then sent as a multipart part while writing
//! goes on; at most `max_concurrent_uploads` requests are in flight across all objects
//! (writing waits for a free slot). An object that never fills a part is sent with one
//! PutObject. A failed multipart upload is aborted, so no orphaned parts remain; every
//! multipart upload opened is kept on a list until it is completed or aborted, so one
//! whose abort failed (or never ran) can be aborted again at the end, or named.
//!
//! Every wait here also watches the run's brake (`stop`): after a stop signal, or once
//! a request has failed for good, no new request starts.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::types::CompletedPart;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::checksum::Running;
use super::{Landed, S3Store, Store, Stored, Upload};
use crate::encode::Media;
use crate::error::{Error, Result};
use crate::stop::Brake;

/// What every upload shares: the store, the runtime its requests run on, the slots,
/// the brake, and the multipart uploads open.
#[derive(Clone)]
pub struct Uploader {
    pub store: Store,
    pub runtime: Handle,
    pub part_size: usize,
    pub brake: Brake,
    slots: Arc<Semaphore>,
    open: OpenUploads,
}

/// The error an object's upload failed with, kept whole: the encoder writing into the
/// upload passes on only its text.
pub type Failure = Arc<Mutex<Option<Error>>>;

/// Multipart uploads opened and not known to be completed or aborted.
#[derive(Clone, Default)]
struct OpenUploads(Arc<Mutex<Listed>>);

#[derive(Default)]
struct Listed {
    /// Upload id -> key.
    open: BTreeMap<String, String>,
    /// Keys whose CreateMultipartUpload has not answered yet.
    creating: BTreeSet<String>,
}

impl OpenUploads {
    fn list(&self) -> std::sync::MutexGuard<'_, Listed> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a multipart upload at `key`, listing it from the moment it exists.
    async fn create(&self, s3: &S3Store, key: &str, media: Media) -> Result<String> {
        self.list().creating.insert(key.to_owned());
        let created = s3.create_multipart(key, media).await;
        let mut listed = self.list();
        listed.creating.remove(key);
        if let Ok(id) = &created {
            listed.open.insert(id.clone(), key.to_owned());
        }
        created
    }

    fn remove(&self, id: &str) {
        self.list().open.remove(id);
    }
}

impl Uploader {
    pub fn new(
        store: Store,
        runtime: Handle,
        part_size: usize,
        concurrency: usize,
        brake: Brake,
    ) -> Self {
        Uploader {
            store,
            runtime,
            part_size,
            brake,
            slots: Arc::new(Semaphore::new(concurrency)),
            open: OpenUploads::default(),
        }
    }

    /// Starts an object at `key`, in `bucket` if given (else the configured one).
    pub fn begin(&self, key: String, bucket: Option<&str>, media: Media) -> Result<Upload> {
        match &self.store {
            Store::S3(s3) => Ok(Upload::S3(Box::new(S3Upload {
                uploader: self.clone(),
                s3: bucket.map_or_else(|| s3.clone(), |b| s3.in_bucket(b)),
                key,
                media,
                buffer: Vec::new(),
                multipart: None,
                bytes: 0,
                failure: Failure::default(),
            }))),
            Store::Local(local) => local.begin(&key).map(Upload::Local),
        }
    }

    /// Waits for `work` on this (non-runtime) thread, unless the brake is pulled first.
    fn wait<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.runtime.block_on(self.brake.unless_pulled(work))
    }

    /// Waits for a free request slot; refused once the brake is pulled.
    fn slot(&self) -> Result<OwnedSemaphorePermit> {
        let slots = self.slots.clone();
        self.wait(async move { slots.acquire_owned().await.map_err(|_| Error::Halted) })
    }

    /// Sends a whole object with one request; the future ends when it is stored.
    pub fn put(
        &self,
        key: String,
        body: Vec<u8>,
        media: Media,
    ) -> impl Future<Output = Result<Landed>> + Send + 'static {
        self.put_in(self.store.clone(), key, body, media)
    }

    /// `put` into `store` (the configured one, or another bucket of it).
    fn put_in(
        &self,
        store: Store,
        key: String,
        body: Vec<u8>,
        media: Media,
    ) -> impl Future<Output = Result<Landed>> + Send + 'static {
        let slot = self.slot();
        let brake = self.brake.clone();
        async move {
            let slot = slot?;
            let stored = store.put(key, body, media).await;
            if stored.is_err() {
                // Before the slot is freed: nothing waiting for it may start.
                brake.failed();
            }
            drop(slot);
            stored
        }
    }

    /// Aborts the multipart uploads still open, waiting at most `within`, and returns a
    /// line for each one that is still open afterwards, naming it and why.
    pub fn abort_left(&self, within: Duration) -> Vec<String> {
        let Store::S3(s3) = &self.store else {
            return Vec::new();
        };
        // Uploads still being created are waited for too, so they can be aborted.
        let until = Instant::now() + within;
        while !self.open.list().creating.is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let (left, creating) = {
            let listed = self.open.list();
            let left: Vec<(String, String)> = listed.open.clone().into_iter().collect();
            (left, listed.creating.clone())
        };
        if left.is_empty() && creating.is_empty() {
            return Vec::new();
        }
        let aborts: Vec<_> = left
            .iter()
            .map(|(id, key)| {
                let abort = abort(s3.clone(), self.open.clone(), key.clone(), id.clone());
                self.runtime.spawn(abort)
            })
            .collect();
        self.runtime.block_on(async {
            let until = tokio::time::Instant::from_std(until);
            let mut named: Vec<String> = creating
                .iter()
                .map(|key| maybe_left_open(s3.bucket(), key))
                .collect();
            for (abort, (id, key)) in aborts.into_iter().zip(left) {
                let reason = match tokio::time::timeout_at(until, abort).await {
                    Ok(Ok(Ok(()))) => continue,
                    Ok(Ok(Err(e))) => e.to_string(),
                    Ok(Err(e)) => format!("the abort stopped: {e}"),
                    Err(_) => format!("no answer to AbortMultipartUpload within {within:?}"),
                };
                named.push(left_open(s3.bucket(), &key, &id, &reason));
            }
            named
        })
    }
}

/// Aborts one multipart upload; once aborted, it leaves the list of open ones.
async fn abort(s3: S3Store, open: OpenUploads, key: String, id: String) -> Result<()> {
    s3.abort_multipart(&key, &id).await?;
    open.remove(&id);
    Ok(())
}

/// The warning for a multipart upload whose creation had not answered at the end.
fn maybe_left_open(bucket: &str, key: &str) -> String {
    format!(
        "multipart upload may be left open: bucket {bucket:?}, key {key:?} (no answer to CreateMultipartUpload yet, so its upload id is not known); look for it (aws s3api list-multipart-uploads --bucket {bucket} --prefix {key}) and set a lifecycle rule on the bucket that aborts incomplete multipart uploads (AbortIncompleteMultipartUpload)"
    )
}

/// The warning for a multipart upload that could not be aborted: which one, why, and
/// what keeps its parts from being billed forever.
fn left_open(bucket: &str, key: &str, id: &str, reason: &str) -> String {
    format!(
        "multipart upload left open: bucket {bucket:?}, key {key:?}, upload id {id:?} ({reason}); abort it (aws s3api abort-multipart-upload --bucket {bucket} --key {key} --upload-id {id}) and set a lifecycle rule on the bucket that aborts incomplete multipart uploads (AbortIncompleteMultipartUpload)"
    )
}

struct Multipart {
    id: String,
    parts: Vec<JoinHandle<Result<(CompletedPart, Running)>>>,
}

/// An object being written to S3; `std::io::Write` so encoders can write straight into it.
pub struct S3Upload {
    uploader: Uploader,
    s3: S3Store,
    key: String,
    media: Media,
    buffer: Vec<u8>,
    multipart: Option<Multipart>,
    bytes: u64,
    failure: Failure,
}

impl S3Upload {
    /// Where a failed write leaves its error whole.
    pub fn failure(&self) -> Failure {
        self.failure.clone()
    }

    /// Sends the buffered bytes as the next part, starting the multipart upload first
    /// when this is the first part.
    fn send_part(&mut self) -> Result<()> {
        let u = &self.uploader;
        if self.multipart.is_none() {
            // A task of its own, listing the upload as soon as it exists: a stop that
            // ends the wait here leaves it running, so the upload is still aborted (or
            // named) at the run's end.
            let (s3, key, media) = (self.s3.clone(), self.key.clone(), self.media);
            let open = u.open.clone();
            let created = u
                .runtime
                .spawn(async move { open.create(&s3, &key, media).await });
            let id = u.wait(async {
                let stopped = |e| Error::Store(format!("CreateMultipartUpload stopped: {e}"));
                created.await.map_err(stopped)?
            })?;
            self.multipart = Some(Multipart {
                id,
                parts: Vec::new(),
            });
        }
        let Some(multipart) = self.multipart.as_mut() else {
            unreachable!("started above")
        };
        let body = std::mem::take(&mut self.buffer);
        let number = i32::try_from(multipart.parts.len() + 1)
            .map_err(|_| Error::Store(format!("too many parts for s3://{}", self.key)))?;
        let slot = u.slot()?;
        let (store, key, id) = (self.s3.clone(), self.key.clone(), multipart.id.clone());
        let brake = u.brake.clone();
        multipart.parts.push(u.runtime.spawn(async move {
            let part = store.upload_part(&key, &id, number, body).await;
            if part.is_err() {
                brake.failed();
            }
            drop(slot);
            part
        }));
        Ok(())
    }

    /// Ends the object: the future completes the upload (or aborts it on any failure)
    /// and yields the object's size once it is stored.
    pub fn finish(mut self) -> Result<Stored> {
        let bytes = self.bytes;
        let Some(mut multipart) = self.multipart.take() else {
            let store = Store::S3(self.s3.clone());
            let put = self
                .uploader
                .put_in(store, self.key, self.buffer, self.media);
            return Ok(Box::pin(put));
        };
        if !self.buffer.is_empty() {
            self.multipart = Some(multipart);
            self.send_part()?;
            let Some(sent) = self.multipart.take() else {
                unreachable!("put back above")
            };
            multipart = sent;
        }
        let store = self.s3.clone();
        let open = self.uploader.open.clone();
        let key = self.key;
        Ok(Box::pin(async move {
            let mut parts = Vec::with_capacity(multipart.parts.len());
            let mut whole: Option<Running> = None;
            let mut failure = None;
            for handle in multipart.parts {
                match handle.await {
                    Ok(Ok((part, running))) => {
                        parts.push(part);
                        match &mut whole {
                            Some(whole) => whole.combine(&running),
                            None => whole = Some(running),
                        }
                    }
                    Ok(Err(e)) => {
                        failure.get_or_insert(e);
                    }
                    Err(e) => {
                        failure.get_or_insert(Error::Store(format!("part upload stopped: {e}")));
                    }
                }
            }
            let completed = match failure {
                None => store
                    .complete_multipart(&key, &multipart.id, parts, whole)
                    .await
                    .map(|checksum| Landed { bytes, checksum }),
                Some(e) => Err(e),
            };
            match &completed {
                Ok(_) => open.remove(&multipart.id),
                // Not awaited: the report need not wait for it. An abort that fails
                // leaves the upload listed, to be aborted again or named at the end.
                Err(_) => drop(tokio::spawn(abort(store, open, key, multipart.id))),
            }
            completed
        }))
    }

    /// Gives the object up: the future aborts its multipart upload, if one was started.
    /// Nothing written afterwards is sent. An abort that fails leaves the upload listed,
    /// to be aborted again or named at the end.
    pub fn abandon(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let store = self.s3.clone();
        let open = self.uploader.open.clone();
        let multipart = self.multipart.take();
        let key = self.key.clone();
        self.buffer = Vec::new();
        self.uploader.part_size = usize::MAX;
        async move {
            if let Some(multipart) = multipart {
                for handle in &multipart.parts {
                    handle.abort();
                }
                if let Err(e) = abort(store, open, key, multipart.id).await {
                    tracing::debug!("{e}");
                }
            }
        }
    }
}

impl io::Write for S3Upload {
    /// Fills the part buffer up to exactly one part, sends it, and goes on. The buffer
    /// is made a whole part large at once, so it is never grown (and copied) step by step.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let part_size = self.uploader.part_size;
        let mut rest = data;
        while !rest.is_empty() {
            if self.buffer.capacity() == 0 && part_size != usize::MAX {
                self.buffer.reserve_exact(part_size);
            }
            let take = rest.len().min(part_size - self.buffer.len());
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buffer.len() == part_size
                && let Err(e) = self.send_part()
            {
                let text = e.to_string();
                *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                return Err(io::Error::other(text));
            }
        }
        self.bytes += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
