//! Amazon S3 and S3-compatible stores, through aws-sdk-s3.
//!
//! Owns: region and credential resolution (static keys, the standard chain or a named
//! profile, then an optional STS role; `sdk_config`, which the Glue client shares), endpoint and path-style addressing, uploads
//! (with the configured encryption and storage class on every object), and the
//! listing and batched deletion that `load_method: overwrite` needs.
//! Request checksums are calculated only when an operation requires them: the SDK's
//! default CRC32 trailers are refused by many S3-compatible stores.

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
    CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier, ServerSideEncryption,
    StorageClass,
};
use bytes::Bytes;

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

#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    max_attempts: u32,
    options: ObjectOptions,
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
        Ok(S3Store {
            client: Client::from_conf(s3_config),
            bucket: config.bucket.clone(),
            max_attempts: reliability.max_attempts,
            options: ObjectOptions::from_config(config),
        })
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

    /// Stores one object; returns once S3 has acknowledged it.
    pub async fn put(&self, key: &str, body: Vec<u8>, media: Media) -> Result<()> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(media.content_type)
            .set_content_encoding(media.content_encoding.map(str::to_owned))
            .body(ByteStream::from(body));
        with_object_options!(request, self.options)
            .send()
            .await
            .map_err(|e| self.failed("PutObject", key, e))?;
        Ok(())
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

    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<CompletedPart> {
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.failed(&format!("UploadPart {number} of"), key, e))?;
        Ok(CompletedPart::builder()
            .set_e_tag(part.e_tag)
            .part_number(number)
            .build())
    }

    /// Completes a multipart upload. S3 may answer 200 with an error in the body (the
    /// SDK then reports success without an ETag); that answer is retried too.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<()> {
        let parts = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        let mut attempt = 1;
        loop {
            let completed = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(parts.clone())
                .send()
                .await
                .map_err(|e| self.failed("CompleteMultipartUpload", key, e))?;
            if completed.e_tag.is_some() {
                return Ok(());
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
    pub async fn preflight(&self, prefix: &str, overwrite: bool) -> Result<()> {
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
