//! Stores: where encoded objects go. A store receives bytes and a key and answers only
//! when the object is durably stored, or with the reason it is not. `Store` is either
//! S3 (or an S3-compatible service) or a local folder; the rest of the target writes,
//! lists and deletes through it without knowing which.
//!
//! Owns: talking to the destination. Must not touch: encoding, key choice or state;
//! `target` decides what a completed upload means.

pub mod checksum;
pub mod local;
pub mod s3;
pub mod upload;

use std::io;
use std::pin::Pin;

pub use local::LocalStore;
pub use s3::S3Store;
pub use upload::{Failure, S3Upload, Uploader};

use crate::config::Config;
use crate::encode::Media;
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub enum Store {
    S3(S3Store),
    Local(LocalStore),
}

impl Store {
    /// The configured store. No request is made here.
    pub async fn connect(config: &Config) -> Result<Store> {
        match &config.store.local_folder {
            Some(folder) => LocalStore::open(folder, &config.bucket).map(Store::Local),
            None => S3Store::connect(config).await.map(Store::S3),
        }
    }

    /// Start-up check that the destination can be written (and, for `overwrite`,
    /// listed) before any input is read.
    /// For S3, it also learns what `auto` integrity settings leave open.
    pub async fn preflight(&mut self, prefix: &str, overwrite: bool) -> Result<()> {
        match self {
            Store::S3(s3) => s3.preflight(prefix, overwrite).await,
            Store::Local(local) => local.preflight(prefix),
        }
    }

    /// Where an object is, for messages: its S3 URL or its file's path.
    pub fn location(&self, key: &str) -> String {
        match self {
            Store::S3(s3) => format!("s3://{}/{key}", s3.bucket()),
            Store::Local(local) => local
                .path(key)
                .map_or_else(|_| key.to_owned(), |p| p.display().to_string()),
        }
    }

    /// Stores one whole object.
    pub async fn put(&self, key: String, body: Vec<u8>, media: Media) -> Result<Landed> {
        let bytes = body.len() as u64;
        match self {
            Store::S3(s3) => s3
                .put(&key, body, media)
                .await
                .map(|checksum| Landed { bytes, checksum }),
            Store::Local(local) => blocking(local, move |l| l.put(&key, &body))
                .await
                .map(|()| Landed::sized(bytes)),
        }
    }

    /// Every key under `prefix` (a folder, ending in `/`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        match self {
            Store::S3(s3) => s3.list(prefix).await,
            Store::Local(local) => {
                let prefix = prefix.to_owned();
                blocking(local, move |l| l.list(&prefix)).await
            }
        }
    }

    /// Deletes the objects; an error names a key that could not be deleted.
    pub async fn delete(&self, keys: Vec<String>) -> Result<()> {
        match self {
            Store::S3(s3) => s3.delete(&keys).await,
            Store::Local(local) => blocking(local, move |l| l.delete(&keys)).await,
        }
    }
}

/// Runs file work off the runtime's worker threads.
async fn blocking<T: Send + 'static>(
    local: &LocalStore,
    work: impl FnOnce(&LocalStore) -> Result<T> + Send + 'static,
) -> Result<T> {
    let local = local.clone();
    tokio::task::spawn_blocking(move || work(&local))
        .await
        .map_err(|e| Error::Store(format!("file work stopped: {e}")))?
}

/// An object once stored: its size, and the checksum it was sent with (S3), which
/// manifests record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Landed {
    pub bytes: u64,
    pub checksum: Option<(checksum::Algorithm, String)>,
}

impl Landed {
    pub fn sized(bytes: u64) -> Landed {
        Landed {
            bytes,
            checksum: None,
        }
    }
}

/// The end of an object: yields its size (and checksum) once it is stored.
pub type Stored = Pin<Box<dyn Future<Output = Result<Landed>> + Send>>;

/// An object being written; `std::io::Write` so encoders write straight into it.
pub enum Upload {
    /// Streamed to S3 as multipart parts (or one PutObject when small).
    S3(Box<S3Upload>),
    /// Streamed into a temporary file that is renamed into place at the end.
    Local(local::LocalFile),
}

impl Upload {
    /// Ends the object: the future completes it and yields its size once stored.
    pub fn finish(self) -> Result<Stored> {
        match self {
            Upload::S3(upload) => upload.finish(),
            Upload::Local(file) => Ok(Box::pin(async move {
                let committed = tokio::task::spawn_blocking(move || file.commit())
                    .await
                    .map_err(|e| Error::Store(format!("file work stopped: {e}")))?;
                committed.map(Landed::sized)
            })),
        }
    }

    /// Where the error of a failed write is kept whole (S3: a write that sends a part).
    pub fn failure(&self) -> Option<Failure> {
        match self {
            Upload::S3(upload) => Some(upload.failure()),
            Upload::Local(_) => None,
        }
    }

    /// Gives the object up; the future ends once nothing of it remains in the store.
    pub fn abandon(&mut self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        match self {
            Upload::S3(upload) => Box::pin(upload.abandon()),
            Upload::Local(file) => {
                file.abandon();
                Box::pin(async {})
            }
        }
    }
}

impl io::Write for Upload {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Upload::S3(upload) => upload.write(data),
            Upload::Local(file) => file.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Upload::S3(upload) => upload.flush(),
            Upload::Local(file) => file.flush(),
        }
    }
}
