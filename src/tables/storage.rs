//! The Iceberg library's file access (manifests, manifest lists, metadata files) over
//! target-s3's own S3 client, so table files are written with the same endpoint,
//! credentials, retries, encryption and checksum settings as data objects, and no
//! second S3 stack is built into the binary.
//!
//! Owns: turning `s3://bucket/key` paths into requests. Must not touch: what is
//! written; the library decides that.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig,
    StorageFactory,
};
use iceberg::{Error as IcebergError, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::encode::Media;
use crate::store::S3Store;

/// Table files are Avro or JSON; both are sent as plain bytes.
const TABLE_FILE: Media = Media {
    content_type: "application/octet-stream",
    content_encoding: None,
};

/// Hands the library one storage, the target's S3 client.
#[derive(Clone, Serialize, Deserialize)]
pub struct S3Tables {
    /// Not serialisable: the library serialises a storage only to move it between
    /// processes, which target-s3 never does; a deserialised one refuses every call.
    #[serde(skip)]
    s3: Option<S3Store>,
}

impl S3Tables {
    pub fn new(s3: S3Store) -> S3Tables {
        S3Tables { s3: Some(s3) }
    }

    /// The store for `path`'s bucket, and the key inside it.
    fn at<'p>(&self, path: &'p str) -> iceberg::Result<(S3Store, &'p str)> {
        let s3 = self
            .s3
            .as_ref()
            .ok_or_else(|| unexpected("this storage has no S3 client"))?;
        let (bucket, key) = split_s3_path(path).ok_or_else(|| {
            IcebergError::new(
                ErrorKind::DataInvalid,
                format!("{path:?} is not an s3:// path"),
            )
        })?;
        Ok((s3.in_bucket(bucket), key))
    }
}

impl std::fmt::Debug for S3Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S3Tables")
    }
}

/// `s3://bucket/key` (or `s3a://`, `s3n://`, as some catalogs write) split in two.
pub fn split_s3_path(path: &str) -> Option<(&str, &str)> {
    let rest = ["s3://", "s3a://", "s3n://"]
        .iter()
        .find_map(|scheme| path.strip_prefix(scheme))?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

fn unexpected(message: impl Into<String>) -> IcebergError {
    IcebergError::new(ErrorKind::Unexpected, message.into())
}

fn failed(e: crate::error::Error) -> IcebergError {
    unexpected(e.to_string())
}

#[typetag::serde]
impl StorageFactory for S3Tables {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(self.clone()))
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for S3Tables {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        let (s3, key) = self.at(path)?;
        s3.exists(key).await.map_err(failed)
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let (s3, key) = self.at(path)?;
        let size = s3.object_size(s3.bucket(), key).await.map_err(failed)?;
        Ok(FileMetadata { size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let (s3, key) = self.at(path)?;
        s3.read_all(key).await.map_err(failed)
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let (s3, key) = self.at(path)?;
        Ok(Box::new(RangeReader {
            s3,
            key: key.to_owned(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        let (s3, key) = self.at(path)?;
        s3.put(key, bs.to_vec(), TABLE_FILE)
            .await
            .map(drop)
            .map_err(failed)
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let (s3, key) = self.at(path)?;
        Ok(Box::new(WholeWriter {
            s3,
            key: key.to_owned(),
            body: Vec::new(),
            closed: false,
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        let (s3, key) = self.at(path)?;
        s3.delete(&[key.to_owned()]).await.map_err(failed)
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let (s3, prefix) = self.at(path)?;
        let prefix = format!("{}/", prefix.trim_end_matches('/'));
        let keys = s3.list(&prefix).await.map_err(failed)?;
        s3.delete(&keys).await.map_err(failed)
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_owned()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_owned()))
    }
}

/// Ranges of one object, one GET each (the library reads manifests whole or in a few
/// ranges).
struct RangeReader {
    s3: S3Store,
    key: String,
}

#[async_trait]
impl FileRead for RangeReader {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let (bucket, key) = (self.s3.bucket(), self.key.as_str());
        let body = self
            .s3
            .read_range(bucket, key, range.start, range.end - 1)
            .await
            .map_err(failed)?;
        let data = body
            .collect()
            .await
            .map_err(|e| unexpected(e.to_string()))?;
        Ok(data.into_bytes())
    }
}

/// A table file is small (a manifest, a manifest list): gathered whole, sent on close.
struct WholeWriter {
    s3: S3Store,
    key: String,
    body: Vec<u8>,
    closed: bool,
}

#[async_trait]
impl FileWrite for WholeWriter {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        if self.closed {
            return Err(unexpected("write after close"));
        }
        self.body.extend_from_slice(&bs);
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        if self.closed {
            return Err(unexpected("closed twice"));
        }
        self.closed = true;
        let body = std::mem::take(&mut self.body);
        self.s3
            .put(&self.key, body, TABLE_FILE)
            .await
            .map(drop)
            .map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_paths_split_into_bucket_and_key() {
        assert_eq!(
            split_s3_path("s3://warehouse/ns/t/metadata/v1.json"),
            Some(("warehouse", "ns/t/metadata/v1.json"))
        );
        assert_eq!(split_s3_path("s3a://b/k"), Some(("b", "k")));
        assert_eq!(split_s3_path("s3://b/"), None);
        assert_eq!(split_s3_path("s3://b"), None);
        assert_eq!(split_s3_path("file:///tmp/x"), None);
    }
}
