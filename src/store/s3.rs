//! Amazon S3 and S3-compatible stores, through aws-sdk-s3.
//!
//! Owns: region and credential resolution (static keys, the standard chain or a named
//! profile, then an optional STS role; `sdk_config`, which the Glue client shares), endpoint and path-style addressing, uploads
//! (with the configured encryption and storage class on every object), and the
//! listing and batched deletion that `load_method: overwrite` needs.
//! Request checksums are calculated only when an operation requires them: the SDK's
//! default CRC32 trailers are refused by many S3-compatible stores. Integrity instead
//! comes from `If-None-Match: *` (an object is never replaced) and a full-object
//! checksum sent as a plain header (`checksum`), as far as the store supports each:
//! Amazon S3 is known to, other stores are probed at the start-up check.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedCredentialsProvider,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart, Delete,
    ObjectIdentifier, ServerSideEncryption, StorageClass,
};
use bytes::Bytes;

use super::checksum::{Algorithm, Running};
use crate::config::{AwsSettings, Config};
use crate::encode::Media;
use crate::error::{Error, Result};

/// Region used with a custom endpoint when none is configured.
const ENDPOINT_DEFAULT_REGION: &str = "us-east-1";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most keys one DeleteObjects request may name.
const DELETE_BATCH: usize = 1000;

/// Sets the configured encryption and storage class on a request that creates an object
/// (PutObject, CreateMultipartUpload).
macro_rules! with_object_options {
    ($request:expr, $options:expr) => {
        $request
            .set_server_side_encryption($options.encryption.clone())
            .set_ssekms_key_id($options.kms_key_id.clone())
            .set_storage_class($options.storage_class.clone())
    };
}

/// Sets a checksum header on a request that sends bytes (PutObject, UploadPart).
macro_rules! with_checksum {
    ($request:expr, $algorithm:expr, $value:expr) => {{
        let value: Option<String> = $value;
        match $algorithm {
            Algorithm::Crc64Nvme => $request.set_checksum_crc64_nvme(value),
            Algorithm::Crc32c => $request.set_checksum_crc32_c(value),
            Algorithm::Md5 => $request.set_content_md5(value),
            Algorithm::None => $request,
        }
    }};
}

#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    max_attempts: u32,
    options: ObjectOptions,
    integrity: Integrity,
    /// What the settings fix; `None`: learnt at the start-up check.
    asked: (Option<bool>, Option<Algorithm>),
}

/// How uploads guard against replacing an object and against changed bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Integrity {
    /// `If-None-Match: *` on every PutObject and CompleteMultipartUpload.
    pub conditional: bool,
    pub checksum: Algorithm,
}

impl Integrity {
    /// The start-up line that says what the run uses.
    pub fn describe(&self) -> String {
        let on = if self.conditional { "on" } else { "off" };
        format!(
            "store: conditional writes {on}, checksums {}",
            self.checksum.name()
        )
    }
}

/// Whether an endpoint is Amazon S3's own (none configured, or an amazonaws.com host).
fn is_amazon(endpoint: Option<&str>) -> bool {
    let Some(url) = endpoint else { return true };
    let host = url.split("://").last().unwrap_or(url);
    let host = host.split(['/', ':']).next().unwrap_or(host);
    host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

/// The settings' fixed choices: explicit values, and `auto` on Amazon S3.
fn asked(config: &Config) -> (Option<bool>, Option<Algorithm>) {
    let amazon = is_amazon(config.aws.endpoint.as_deref());
    let reliability = &config.reliability;
    let conditional = match reliability.conditional_writes.as_str() {
        "on" => Some(true),
        "off" => Some(false),
        _ => amazon.then_some(true),
    };
    let checksum = Algorithm::from_setting(&reliability.checksum_algorithm)
        .or(amazon.then_some(Algorithm::Crc64Nvme));
    (conditional, checksum)
}

/// Whether a conditional write was refused because the key is taken (412).
fn is_refused_write<E>(error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    error.raw_response().map(|r| r.status().as_u16()) == Some(412)
}

/// The ETag S3 gives an object stored with one PutObject (unencrypted or SSE-S3):
/// the hex MD5 of its bytes.
fn etag_of(body: &[u8]) -> String {
    use md5::Digest as _;
    hex(&md5::Md5::digest(body))
}

/// The ETag S3 gives a multipart object: the hex MD5 of its parts' MD5s, then `-N`.
fn multipart_etag(parts: &[CompletedPart]) -> String {
    use md5::Digest as _;
    let mut md5 = md5::Md5::new();
    for part in parts {
        let hex_digits = part.e_tag().unwrap_or_default().trim_matches('"');
        let bytes: Vec<u8> = (0..hex_digits.len() / 2)
            .filter_map(|i| u8::from_str_radix(hex_digits.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        md5.update(&bytes);
    }
    format!("{}-{}", hex(&md5.finalize()), parts.len())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a store's answer says the bytes it received do not match their checksum
/// (changed in transit): retried, since the bytes are still in memory.
fn is_digest_mismatch<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    let code = error.as_service_error().and_then(|e| e.code());
    code.is_some_and(|c| c.contains("Digest") || c.contains("Checksum") || c.contains("SHA256"))
}

/// How S3 keeps every object this target writes.
#[derive(Clone, Debug, Default, PartialEq)]
struct ObjectOptions {
    encryption: Option<ServerSideEncryption>,
    kms_key_id: Option<String>,
    storage_class: Option<StorageClass>,
}

impl ObjectOptions {
    fn from_config(config: &Config) -> ObjectOptions {
        let store = &config.store;
        ObjectOptions {
            encryption: store
                .server_side_encryption
                .as_deref()
                .map(ServerSideEncryption::from),
            kms_key_id: store.kms_key_id.clone(),
            storage_class: store.storage_class.as_deref().map(StorageClass::from),
        }
    }
}

impl S3Store {
    /// Builds the client. No request is made here: credentials and roles are resolved
    /// on first use.
    pub async fn connect(config: &Config) -> Result<S3Store> {
        let sdk = sdk_config(config).await?;
        let aws = &config.aws;
        let reliability = &config.reliability;
        let s3_config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(aws.endpoint.is_some())
            .build();
        let asked = asked(config);
        Ok(S3Store {
            client: Client::from_conf(s3_config),
            bucket: config.bucket.clone(),
            max_attempts: reliability.max_attempts,
            options: ObjectOptions::from_config(config),
            integrity: Integrity {
                conditional: asked.0.unwrap_or(false),
                checksum: asked.1.unwrap_or(Algorithm::None),
            },
            asked,
        })
    }

    /// What uploads use: fixed by the settings, or learnt at the start-up check.
    pub fn integrity(&self) -> Integrity {
        self.integrity
    }

    /// Sends a request again, while attempts remain, when the store found its bytes
    /// changed in transit; every other answer is returned as it is.
    async fn resending<T, E, R, F>(
        &self,
        operation: &str,
        key: &str,
        send: impl Fn() -> F,
    ) -> Result<T, SdkError<E, R>>
    where
        F: Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata,
    {
        let mut attempt = 1;
        loop {
            match send().await {
                Err(e) if attempt < self.max_attempts && is_digest_mismatch(&e) => {
                    tracing::warn!(
                        "{operation} s3://{}/{key}: the store found the bytes changed in transit ({}); sending them again",
                        self.bucket,
                        e.code().unwrap_or("checksum mismatch")
                    );
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(8))).await;
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The same client and settings for another bucket (an Iceberg table's location).
    pub fn in_bucket(&self, bucket: &str) -> S3Store {
        S3Store {
            bucket: bucket.to_owned(),
            ..self.clone()
        }
    }

    /// Whether an object is at `key` (a 404 says no; any other failure is an error).
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send();
        match head.await {
            Ok(_) => Ok(true),
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(false),
            Err(e) => Err(self.failed("HeadObject", key, e)),
        }
    }

    /// A whole (small) object of this bucket.
    pub async fn read_all(&self, key: &str) -> Result<Bytes> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.failed("GetObject", key, e))?;
        let data = object.body.collect().await;
        data.map(|d| d.into_bytes())
            .map_err(|e| Error::Store(format!("GetObject s3://{}/{key} failed: {e}", self.bucket)))
    }

    /// A request that failed after its retries, in one line: what the answer means and
    /// which setting or permission to check, never the SDK's debug dump.
    fn failed<E, R>(&self, operation: &str, key: &str, e: SdkError<E, R>) -> Error
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug + 'static,
    {
        Error::Store(format!(
            "{operation} s3://{}/{key} failed: {}",
            self.bucket,
            explain(&e, operation, &self.bucket)
        ))
    }

    /// Stores one object; returns once S3 has acknowledged it. Returns the checksum
    /// sent with it, if any.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        media: Media,
    ) -> Result<Option<(Algorithm, String)>> {
        let Integrity {
            conditional,
            checksum,
        } = self.integrity;
        let value = checksum.of(&body);
        let body = Bytes::from(body);
        let sent = self
            .resending("PutObject", key, || {
                self.put_request(key, &body, media, conditional, checksum, value.clone())
                    .send()
            })
            .await;
        match sent {
            Ok(_) => {}
            Err(e)
                if is_refused_write(&e)
                    && self.is_ours(key, value.as_deref(), &etag_of(&body)).await => {}
            Err(e) => return Err(self.failed("PutObject", key, e)),
        }
        Ok(value.map(|v| (checksum, v)))
    }

    fn put_request(
        &self,
        key: &str,
        body: &Bytes,
        media: Media,
        conditional: bool,
        checksum: Algorithm,
        value: Option<String>,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(media.content_type)
            .set_content_encoding(media.content_encoding.map(str::to_owned))
            .set_if_none_match(conditional.then(|| "*".to_owned()))
            .body(ByteStream::from(body.clone()));
        with_checksum!(with_object_options!(request, self.options), checksum, value)
    }

    /// Starts a multipart upload; returns its id.
    pub async fn create_multipart(&self, key: &str, media: Media) -> Result<String> {
        let request = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(media.content_type)
            .set_content_encoding(media.content_encoding.map(str::to_owned));
        // A full-object CRC is declared up front; S3 then checks the whole object's
        // value at completion.
        let request = match self.integrity.checksum {
            Algorithm::Crc64Nvme => request.checksum_algorithm(ChecksumAlgorithm::Crc64Nvme),
            Algorithm::Crc32c => request.checksum_algorithm(ChecksumAlgorithm::Crc32C),
            Algorithm::Md5 | Algorithm::None => request,
        };
        let request = if self.integrity.checksum.full_object() {
            request.checksum_type(ChecksumType::FullObject)
        } else {
            request
        };
        let created = with_object_options!(request, self.options)
            .send()
            .await
            .map_err(|e| self.failed("CreateMultipartUpload", key, e))?;
        created.upload_id.ok_or_else(|| {
            Error::Store(format!(
                "CreateMultipartUpload s3://{}/{key} answered without an upload id",
                self.bucket
            ))
        })
    }

    /// Sends one part with its own checksum; returns it with the part's running
    /// checksum, which `complete_multipart` combines into the whole object's.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<(CompletedPart, Running)> {
        let checksum = self.integrity.checksum;
        let mut running = Running::new(checksum);
        running.update(&body);
        let value = running.value();
        let body = Bytes::from(body);
        let operation = format!("UploadPart {number} of");
        let part = self
            .resending(&operation, key, || {
                let request = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(ByteStream::from(body.clone()));
                with_checksum!(request, checksum, value.clone()).send()
            })
            .await
            .map_err(|e| self.failed(&operation, key, e))?;
        let completed = CompletedPart::builder()
            .set_e_tag(part.e_tag)
            .part_number(number);
        let completed = match checksum {
            Algorithm::Crc64Nvme => completed.set_checksum_crc64_nvme(value),
            Algorithm::Crc32c => completed.set_checksum_crc32_c(value),
            Algorithm::Md5 | Algorithm::None => completed,
        };
        Ok((completed.build(), running))
    }

    /// Completes a multipart upload, with the whole object's checksum where the
    /// algorithm has one (`whole`: the parts' running checksums combined in order).
    /// S3 may answer 200 with an error in the body (the SDK then reports success
    /// without an ETag); that answer is retried too. Returns the checksum sent.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        whole: Option<Running>,
    ) -> Result<Option<(Algorithm, String)>> {
        let parts = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let Integrity {
            conditional,
            checksum,
        } = self.integrity;
        let value = whole
            .and_then(|w| w.value())
            .filter(|_| checksum.full_object());
        let mut attempt = 1;
        loop {
            let request = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_if_none_match(conditional.then(|| "*".to_owned()))
                .multipart_upload(parts.clone());
            let request = match checksum {
                Algorithm::Crc64Nvme => request.set_checksum_crc64_nvme(value.clone()),
                Algorithm::Crc32c => request.set_checksum_crc32_c(value.clone()),
                Algorithm::Md5 | Algorithm::None => request,
            };
            let request = if value.is_some() {
                request.checksum_type(ChecksumType::FullObject)
            } else {
                request
            };
            let completed = match request.send().await {
                Err(e) if is_refused_write(&e) => {
                    let etag = multipart_etag(parts.parts());
                    if self.is_ours(key, value.as_deref(), &etag).await {
                        return Ok(value.map(|v| (checksum, v)));
                    }
                    return Err(self.failed("CompleteMultipartUpload", key, e));
                }
                sent => sent.map_err(|e| self.failed("CompleteMultipartUpload", key, e))?,
            };
            if completed.e_tag.is_some() {
                return Ok(value.map(|v| (checksum, v)));
            }
            if attempt >= self.max_attempts {
                return Err(Error::Store(format!(
                    "CompleteMultipartUpload s3://{}/{key} failed: {attempt} answers were 200 without a completed object",
                    self.bucket
                )));
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(8))).await;
            attempt += 1;
        }
    }

    /// After a 412 to a conditional write: whether the object at `key` is the one this
    /// request sent (an earlier attempt landed and only its answer was lost, so the
    /// SDK's retry found the key taken), told by its checksum or ETag. Then nothing
    /// was replaced and the write succeeded.
    async fn is_ours(&self, key: &str, checksum: Option<&str>, etag: &str) -> bool {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        let Ok(head) = head else { return false };
        let stored = [head.checksum_crc64_nvme(), head.checksum_crc32_c()];
        let same_checksum = checksum.is_some_and(|c| stored.contains(&Some(c)));
        let same_etag = head.e_tag().map(|e| e.trim_matches('"')) == Some(etag);
        if same_checksum || same_etag {
            tracing::info!(
                "s3://{}/{key}: the object at the key is the one sent (an earlier attempt's answer was lost)",
                self.bucket
            );
        }
        same_checksum || same_etag
    }

    /// Every key under `prefix`, page by page.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.failed("ListObjectsV2", prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(keys),
            }
        }
    }

    /// Deletes the objects, 1000 keys a request. S3 answers a batch with an error per key
    /// it could not delete; any such error fails the call, naming the key and the code.
    pub async fn delete(&self, keys: &[String]) -> Result<()> {
        for batch in keys.chunks(DELETE_BATCH) {
            let built = batch
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()
                .and_then(|objects| {
                    Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build()
                });
            let first = batch.first().map_or("", String::as_str);
            let delete = built.map_err(|e| {
                Error::Store(format!("DeleteObjects s3://{}/{first}: {e}", self.bucket))
            })?;
            let answer = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .customize()
                .mutate_request(with_content_md5)
                .send()
                .await
                .map_err(|e| self.failed("DeleteObjects", first, e))?;
            if let Some(error) = answer.errors().first() {
                let code = error.code().unwrap_or("unknown");
                let hint = if code == "AccessDenied" {
                    " (load_method overwrite needs s3:DeleteObject on the prefix)"
                } else {
                    ""
                };
                return Err(Error::Store(format!(
                    "DeleteObjects: {} of {} keys were not deleted; s3://{}/{} failed: {code}: {}{hint}",
                    answer.errors().len(),
                    batch.len(),
                    self.bucket,
                    error.key().unwrap_or(""),
                    error.message().unwrap_or(""),
                )));
            }
        }
        Ok(())
    }

    /// Start-up check: one ListObjectsV2 of at most one key under `prefix` tells an
    /// unreachable endpoint, bad credentials or a missing bucket from a good set-up.
    /// Access denied to the listing itself only means it cannot be verified, unless the
    /// load lists and deletes (`overwrite`): then it is an error.
    /// Then, for what `auto` leaves open on a store other than Amazon S3, probes the
    /// store (`learn`).
    pub async fn preflight(&mut self, prefix: &str, overwrite: bool) -> Result<()> {
        self.check_listing(prefix, overwrite).await?;
        if self.asked.0.is_none() || self.asked.1.is_none() {
            self.learn(prefix).await?;
        }
        Ok(())
    }

    async fn check_listing(&self, prefix: &str, overwrite: bool) -> Result<()> {
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .max_keys(1)
            .send()
            .await;
        let Err(error) = listed else {
            return Ok(());
        };
        let bucket = &self.bucket;
        let code = error.as_service_error().and_then(|e| e.code());
        let message = match code {
            Some("AccessDenied" | "AllAccessDisabled") if overwrite => format!(
                "the credentials may not list bucket {bucket:?} (AccessDenied on ListObjectsV2); load_method overwrite needs s3:ListBucket on the bucket and s3:DeleteObject on the prefix, besides s3:PutObject"
            ),
            Some("AccessDenied" | "AllAccessDisabled") => {
                tracing::warn!(
                    "cannot verify access to bucket {bucket:?} (AccessDenied on ListObjectsV2); going on, since the load needs only s3:PutObject"
                );
                return Ok(());
            }
            Some(other) if meaning(other, "ListObjectsV2", bucket).is_none() => format!(
                "the store refused the start-up check ({other}): {}",
                describe(&error)
            ),
            _ => explain(&error, "ListObjectsV2", bucket),
        };
        Err(Error::Store(format!(
            "preflight: {message} (set preflight to false to skip this check)"
        )))
    }

    /// Learns what the store verifies, writing one small probe object under `prefix`
    /// and deleting it again: the strongest checksum whose wrong value the store
    /// refuses and right value it takes, and whether a second write with
    /// `If-None-Match: *` is refused (412). A probe the store refuses leaves both off,
    /// with a warning; no answer at all fails the check.
    async fn learn(&mut self, prefix: &str) -> Result<()> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let folder = prefix.trim_matches('/');
        let name = format!(".target-s3-probe-{}-{nanos}", std::process::id());
        let key = if folder.is_empty() {
            name
        } else {
            format!("{folder}/{name}")
        };
        let body = Bytes::from_static(b"target-s3 start-up probe");
        let probe = Media {
            content_type: "text/plain",
            content_encoding: None,
        };
        let put = |conditional, checksum: Algorithm, value| {
            self.put_request(&key, &body, probe, conditional, checksum, value)
                .send()
        };
        // A plain write first: a store that does not answer fails the check (the load
        // could not write either); one that refuses the probe leaves `auto` off.
        if let Err(e) = put(false, Algorithm::None, None).await {
            if e.raw_response().is_none() {
                let failed = self.failed("PutObject", &key, e);
                return Err(Error::Store(format!(
                    "preflight: {failed} (set preflight to false to skip this check)"
                )));
            }
            tracing::warn!(
                "preflight: could not write the probe object s3://{}/{key} ({}); {}",
                self.bucket,
                describe(&e),
                self.integrity.describe()
            );
            return Ok(());
        }
        let mut learnt = self.integrity;
        if self.asked.1.is_none() {
            let mut verified = Algorithm::None;
            for checksum in Algorithm::STRONGEST_FIRST {
                let wrong = checksum.of(b"not the probe");
                let refused_wrong = put(false, checksum, wrong).await.is_err();
                if refused_wrong && put(false, checksum, checksum.of(&body)).await.is_ok() {
                    verified = checksum;
                    break;
                }
            }
            learnt.checksum = verified;
        }
        if self.asked.0.is_none() {
            let second = put(true, Algorithm::None, None).await;
            let refused = second
                .as_ref()
                .err()
                .and_then(|e| e.raw_response())
                .is_some_and(|r| r.status().as_u16() == 412);
            learnt.conditional = refused;
        }
        self.integrity = learnt;
        let deleted = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
        if let Err(e) = deleted {
            tracing::warn!(
                "preflight: could not delete the probe object s3://{}/{key}: {}",
                self.bucket,
                describe(&e)
            );
        }
        Ok(())
    }

    /// Drops a multipart upload and its parts, so none are left behind. An upload the
    /// store no longer knows (aborted or completed already) is not left open either.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        match aborted {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_upload()) => Ok(()),
            Err(e) => Err(self.failed("AbortMultipartUpload", key, e)),
        }
    }

    /// The size of an object in any bucket these credentials may read (BATCH files).
    pub async fn object_size(&self, bucket: &str, key: &str) -> Result<u64> {
        let head = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| read_failed("HeadObject", bucket, key, e))?;
        Ok(head.content_length().map_or(0, |n| n.max(0) as u64))
    }

    /// Bytes `start..=end` of an object in any bucket these credentials may read.
    pub async fn read_range(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        end: u64,
    ) -> Result<ByteStream> {
        let object = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes={start}-{end}"))
            .send()
            .await
            .map_err(|e| read_failed("GetObject", bucket, key, e))?;
        Ok(object.body)
    }
}

/// A failed read of a BATCH file, with the permission it needs.
fn read_failed<E, R>(operation: &str, bucket: &str, key: &str, e: SdkError<E, R>) -> Error
where
    E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + 'static,
{
    let status = match &e {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            format!("{code} {}", service.err().message().unwrap_or_default())
        }
        other => describe(other),
    };
    let hint = if status.contains("Forbidden") || status.contains("AccessDenied") {
        " (reading batch files needs s3:GetObject on them)"
    } else if status.contains("NotFound") || status.contains("NoSuchKey") {
        " (no such object)"
    } else {
        ""
    };
    Error::Store(format!(
        "{operation} s3://{bucket}/{key} failed: {}{hint}",
        status.trim()
    ))
}

/// The configured region, else the environment's or profile's, else us-east-1 when an
/// endpoint is set, else an error that says how to fix it.
/// The AWS SDK's shared configuration from the settings: region, retries, timeouts,
/// checksums only where required, `aws_endpoint`, and the credentials (static keys, a
/// profile or the standard chain, then an optional STS role). Every AWS client of the
/// run (S3, Glue) is built from it; no request is made here.
pub async fn sdk_config(config: &Config) -> Result<SdkConfig> {
    let aws = &config.aws;
    let region = resolve_region(aws).await?;
    let reliability = &config.reliability;
    let retry = RetryConfig::standard()
        .with_max_attempts(reliability.max_attempts)
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(20));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(reliability.request_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .retry_config(retry)
        .timeout_config(timeouts)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(endpoint) = &aws.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let (Some(id), Some(secret)) = (&aws.access_key_id, &aws.secret_access_key) {
        let token = aws.session_token.as_ref().map(|t| t.expose().to_owned());
        let credentials = Credentials::new(id, secret.expose(), token, None, "target-s3-config");
        loader = loader.credentials_provider(credentials);
    } else if let Some(profile) = &aws.profile {
        loader = loader.profile_name(profile);
    }
    let mut sdk = loader.load().await;
    if let Some(role_arn) = &aws.role_arn {
        let mut role = AssumeRoleProvider::builder(role_arn)
            .session_name(&aws.role_session_name)
            .configure(&sdk);
        if let Some(external_id) = &aws.external_id {
            role = role.external_id(external_id);
        }
        let provider = SharedCredentialsProvider::new(role.build().await);
        sdk = sdk.into_builder().credentials_provider(provider).build();
    }
    Ok(sdk)
}

async fn resolve_region(aws: &AwsSettings) -> Result<String> {
    if let Some(region) = &aws.region {
        return Ok(region.clone());
    }
    let mut profile = ProfileFileRegionProvider::builder();
    if let Some(name) = &aws.profile {
        profile = profile.profile_name(name);
    }
    let chain = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(profile.build());
    if let Some(region) = chain.region().await {
        return Ok(region.to_string());
    }
    if aws.endpoint.is_some() {
        return Ok(ENDPOINT_DEFAULT_REGION.to_owned());
    }
    Err(Error::Config(
        "key \"aws_region\" is missing and neither AWS_REGION nor the AWS profile names a region; set aws_region to the bucket's region, e.g. \"eu-west-1\"".into(),
    ))
}

/// A failed request in one line: what the store's answer means and which setting or
/// permission to check when that is known, else its code and message, else (no answer)
/// why none came. Shared by the start-up check and every later request.
fn explain<E, R>(error: &SdkError<E, R>, operation: &str, bucket: &str) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + 'static,
{
    if let Some(service) = error.as_service_error() {
        let code = service.code().unwrap_or("unknown error");
        if let Some(meaning) = meaning(code, operation, bucket) {
            return meaning;
        }
        return match service.message() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        };
    }
    let detail = describe(error);
    match error {
        _ if detail.contains("credentials") => format!(
            "could not get credentials (with role_arn: may these credentials assume the role?): {detail}"
        ),
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            format!("cannot reach the S3 endpoint (check aws_endpoint and the network): {detail}")
        }
        _ => detail,
    }
}

/// What a store's error code means, naming the setting or permission to check.
fn meaning(code: &str, operation: &str, bucket: &str) -> Option<String> {
    let text = match code {
        "NoSuchBucket" => format!("bucket {bucket:?} does not exist (NoSuchBucket); check bucket"),
        "InvalidAccessKeyId" => {
            "the access key id is not known to the store (InvalidAccessKeyId); check aws_access_key_id".into()
        }
        "SignatureDoesNotMatch" => {
            "the secret key does not match the access key id (SignatureDoesNotMatch); check aws_secret_access_key".into()
        }
        "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired" => {
            format!("the session token is not valid ({code}); check aws_session_token")
        }
        "PreconditionFailed" => "an object is already at this key (PreconditionFailed to If-None-Match: *): something else wrote there; target-s3 never replaces an object (conditional_writes)"
            .into(),
        "AccessDenied" | "AllAccessDisabled" => format!(
            "the credentials may not do {operation} on bucket {bucket:?} ({code}); they need {}",
            permission(operation)
        ),
        _ => return None,
    };
    Some(text)
}

/// The IAM permission an operation needs.
fn permission(operation: &str) -> &'static str {
    match operation.split(' ').next().unwrap_or_default() {
        "ListObjectsV2" => "s3:ListBucket on the bucket",
        "DeleteObjects" => "s3:DeleteObject on the prefix (load_method overwrite)",
        "AbortMultipartUpload" => "s3:AbortMultipartUpload on the prefix",
        "HeadObject" | "GetObject" => "s3:GetObject on the object",
        _ => "s3:PutObject on the prefix (and kms:GenerateDataKey with a KMS key)",
    }
}

/// An error and its causes on one line, each said once. (The SDK's own context printer
/// ends with a debug dump of the whole response, headers and all.)
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// DeleteObjects is the one request S3 requires a body checksum of. The SDK now sends a
/// CRC32 there, and stores built on older S3 code (MinIO's gateway among them) refuse a
/// DeleteObjects without `Content-MD5` (MissingContentMD5); S3 takes both. So the MD5
/// goes with it too, worked out from the body the SDK serialised (a short XML list of
/// keys, in memory), before the request is signed.
fn with_content_md5(request: &mut aws_sdk_s3::config::http::HttpRequest) {
    let value = request
        .body()
        .bytes()
        .and_then(|body| Algorithm::Md5.of(body));
    if let Some(value) = value {
        request.headers_mut().insert("Content-MD5", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ENCRYPTIONS, STORAGE_CLASSES};

    #[test]
    fn every_accepted_option_is_a_known_sdk_value() {
        for name in STORAGE_CLASSES {
            assert!(
                StorageClass::values().contains(name),
                "{name} is not in the SDK's StorageClass"
            );
        }
        for name in ENCRYPTIONS {
            assert!(
                ServerSideEncryption::values().contains(name),
                "{name} is not in the SDK's ServerSideEncryption"
            );
        }
    }

    #[test]
    fn auto_is_decided_up_front_only_for_amazon_s3() {
        assert!(is_amazon(None));
        assert!(is_amazon(Some("https://s3.eu-west-1.amazonaws.com")));
        assert!(!is_amazon(Some("http://127.0.0.1:9000")));
        assert!(!is_amazon(Some("https://amazonaws.com.example.org/x")));
        let config = |extra: serde_json::Value| {
            let mut map =
                serde_json::json!({"bucket": "b", "file_type": "csv", "object_key_path": "p"});
            map.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            Config::from_map(map.as_object().unwrap()).unwrap().0
        };
        let aws = config(serde_json::json!({}));
        assert_eq!(asked(&aws), (Some(true), Some(Algorithm::Crc64Nvme)));
        let other = config(serde_json::json!({"aws_endpoint": "http://127.0.0.1:9000"}));
        assert_eq!(asked(&other), (None, None));
        let fixed = config(serde_json::json!({"aws_endpoint": "http://127.0.0.1:9000",
            "conditional_writes": "off", "checksum_algorithm": "MD5"}));
        assert_eq!(asked(&fixed), (Some(false), Some(Algorithm::Md5)));
    }

    #[test]
    fn etags_as_s3_computes_them() {
        assert_eq!(etag_of(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        let part = CompletedPart::builder()
            .e_tag("\"d41d8cd98f00b204e9800998ecf8427e\"")
            .part_number(1)
            .build();
        assert_eq!(
            multipart_etag(&[part]),
            "59adb24ef3cdbe0297f05b395827453f-1"
        );
    }

    #[test]
    fn options_come_from_the_config() {
        let map = serde_json::json!({
            "bucket": "b", "file_type": "csv", "object_key_path": "p",
            "server_side_encryption": "AWS:KMS", "kms_key_id": "alias/lake",
            "storage_class": "standard_ia",
        });
        let (config, _) = Config::from_map(map.as_object().unwrap()).unwrap();
        let options = ObjectOptions::from_config(&config);
        assert_eq!(options.encryption, Some(ServerSideEncryption::AwsKms));
        assert_eq!(options.kms_key_id.as_deref(), Some("alias/lake"));
        assert_eq!(options.storage_class, Some(StorageClass::StandardIa));
    }
}
