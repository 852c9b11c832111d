//! One object on its way to S3, written as a byte stream; and the `Uploader` every
//! object of a run starts from, whichever the store.
//!
//! Bytes are gathered until `part_size`, then sent as a multipart part while writing
//! goes on; at most `max_concurrent_uploads` requests are in flight across all objects
//! (writing waits for a free slot). An object that never fills a part is sent with one
//! PutObject. A failed multipart upload is aborted, so no orphaned parts remain.

use std::io;
use std::sync::Arc;

use aws_sdk_s3::types::CompletedPart;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::{S3Store, Store, Stored, Upload};
use crate::encode::Media;
use crate::error::{Error, Result};

/// What every upload shares: the store, the runtime its requests run on, the slots.
#[derive(Clone)]
pub struct Uploader {
    pub store: Store,
    pub runtime: Handle,
    pub part_size: usize,
    slots: Arc<Semaphore>,
}

impl Uploader {
    pub fn new(store: Store, runtime: Handle, part_size: usize, concurrency: usize) -> Self {
        Uploader {
            store,
            runtime,
            part_size,
            slots: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// Starts an object at `key`.
    pub fn begin(&self, key: String, media: Media) -> Result<Upload> {
        match &self.store {
            Store::S3(s3) => Ok(Upload::S3(Box::new(S3Upload {
                uploader: self.clone(),
                s3: s3.clone(),
                key,
                media,
                buffer: Vec::new(),
                multipart: None,
                bytes: 0,
            }))),
            Store::Local(local) => local.begin(&key).map(Upload::Local),
        }
    }

    /// Waits for a free request slot.
    fn slot(&self) -> OwnedSemaphorePermit {
        self.runtime
            .block_on(self.slots.clone().acquire_owned())
            .expect("the upload semaphore is never closed")
    }

    /// Sends a whole object with one request; the future ends when it is stored.
    pub fn put(
        &self,
        key: String,
        body: Vec<u8>,
        media: Media,
    ) -> impl Future<Output = Result<u64>> + Send + 'static {
        let slot = self.slot();
        let store = self.store.clone();
        async move {
            let bytes = body.len() as u64;
            let stored = store.put(key, body, media).await;
            drop(slot);
            stored.map(|()| bytes)
        }
    }
}

struct Multipart {
    id: String,
    parts: Vec<JoinHandle<Result<CompletedPart>>>,
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
}

impl S3Upload {
    /// Sends the buffered bytes as the next part, starting the multipart upload first
    /// when this is the first part.
    fn send_part(&mut self) -> Result<()> {
        let u = &self.uploader;
        if self.multipart.is_none() {
            let id = u
                .runtime
                .block_on(self.s3.create_multipart(&self.key, self.media))?;
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
        let slot = u.slot();
        let (store, key, id) = (self.s3.clone(), self.key.clone(), multipart.id.clone());
        multipart.parts.push(u.runtime.spawn(async move {
            let part = store.upload_part(&key, &id, number, body).await;
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
            let put = self.uploader.put(self.key, self.buffer, self.media);
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
        let key = self.key;
        Ok(Box::pin(async move {
            let mut parts = Vec::with_capacity(multipart.parts.len());
            let mut failure = None;
            for handle in multipart.parts {
                match handle.await {
                    Ok(Ok(part)) => parts.push(part),
                    Ok(Err(e)) => {
                        failure.get_or_insert(e);
                    }
                    Err(e) => {
                        failure.get_or_insert(Error::Store(format!("part upload stopped: {e}")));
                    }
                }
            }
            let completed = match failure {
                None => store.complete_multipart(&key, &multipart.id, parts).await,
                Some(e) => Err(e),
            };
            if completed.is_err() {
                let _ = store.abort_multipart(&key, &multipart.id).await;
            }
            completed.map(|()| bytes)
        }))
    }

    /// Gives the object up: the future aborts its multipart upload, if one was started.
    /// Nothing written afterwards is sent.
    pub fn abandon(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let store = self.s3.clone();
        let multipart = self.multipart.take();
        let key = self.key.clone();
        self.buffer = Vec::new();
        self.uploader.part_size = usize::MAX;
        async move {
            if let Some(multipart) = multipart {
                for handle in &multipart.parts {
                    handle.abort();
                }
                if let Err(e) = store.abort_multipart(&key, &multipart.id).await {
                    tracing::warn!("{e}");
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
            if self.buffer.len() == part_size {
                self.send_part().map_err(io::Error::other)?;
            }
        }
        self.bytes += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
