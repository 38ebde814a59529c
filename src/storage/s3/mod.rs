//! Amazon S3 and S3-compatible stores (SeaweedFS, MinIO, R2) on aws-sdk-s3.

use super::{
    Backend, BoxFuture, BoxStream, ByteRange, Capabilities, GetOptions, GetResult, GetStream,
    ListResult, ObjectMeta, ObjectPath, PRESIGN_MAX, Page, Paged, Part, PresignMethod,
    PresignedRequest, PutMode, PutOptions, Upload, Version, encode_key, parse_content_range, timed,
    written,
};
mod upload;
use upload::S3Upload;

use crate::{Error, ErrorKind, Result};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Builds an [`S3Storage`]; from [`S3Storage::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct S3Builder {
    bucket: String,
    endpoint: Option<String>,
    region: Option<String>,
    credentials: Option<(String, crate::config::Secret)>,
    timeout: Duration,
}

impl S3Builder {
    /// An S3-compatible endpoint (`http://127.0.0.1:8333`); path-style addressing is used.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The region (default: the AWS chain's — `AWS_REGION`, the profile, IMDS — else
    /// `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Static credentials instead of the AWS chain.
    pub fn credentials(
        mut self,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some((access_key.into(), crate::config::Secret::new(secret_key)));
        self
    }

    /// Bound on one call (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The store (loads the AWS configuration; no request is made).
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) for an empty bucket name or an endpoint that is not
    /// an `http(s)://` URL.
    pub async fn build(self) -> Result<S3Storage> {
        if self.bucket.is_empty() {
            return Err(crate::Error::config("S3: the bucket name is empty"));
        }
        if let Some(e) = &self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(crate::Error::config(format!(
                "S3 endpoint {:?}: expected an http(s):// URL",
                crate::config::redact_url(e)
            )));
        }
        // Retries are the Storage handle's (RetryPolicy): the SDK's own would multiply them.
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::disabled());
        // The given region, else the AWS chain's (AWS_REGION, profile, IMDS), else us-east-1.
        let chain = aws_config::meta::region::RegionProviderChain::first_try(
            self.region.clone().map(aws_config::Region::new),
        )
        .or_default_provider()
        .or_else(aws_config::Region::new("us-east-1"));
        loader = loader.region(chain);
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some((key, secret)) = &self.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                key.clone(),
                secret.expose().to_owned(),
                None,
                None,
                "corekit",
            ));
        }
        let sdk = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(self.endpoint.is_some())
            .build();
        Ok(S3Storage {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: self.bucket,
            timeout: self.timeout,
        })
    }
}

/// S3 through aws-sdk-s3. Versions are ETags; create-only is `If-None-Match: *`, compare-and-swap
/// `If-Match` (both need a store that honours them: AWS S3 since 2024, SeaweedFS, MinIO).
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: aws_sdk_s3::Client,
    bucket: String,
    timeout: Duration,
}

fn s3_error<E>(
    e: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    what: String,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_s3::error::SdkError;
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().unwrap_or_default().to_owned();
    let (kind, retryable) = match (&e, status, code.as_str()) {
        (SdkError::TimeoutError(_), _, _) => (ErrorKind::Timeout, true),
        (SdkError::DispatchFailure(_), _, _) => (ErrorKind::Unavailable, true),
        (_, _, "NoSuchKey" | "NotFound" | "NoSuchBucket") | (_, Some(404), _) => {
            (ErrorKind::NotFound, false)
        }
        (_, Some(412), _) | (_, Some(304), _) | (_, _, "PreconditionFailed") => {
            (ErrorKind::PreconditionFailed, false)
        }
        (_, Some(409), _) => (ErrorKind::Conflict, true),
        (_, Some(416), _) | (_, _, "InvalidRange") => (ErrorKind::InvalidInput, false),
        (_, Some(401 | 403), _) => (ErrorKind::PermissionDenied, false),
        (_, Some(429 | 500..=599), _) => (ErrorKind::Unavailable, true),
        _ => (ErrorKind::Backend, false),
    };
    let detail = if code.is_empty() {
        aws_sdk_s3::error::DisplayErrorContext(&e).to_string()
    } else {
        format!("{code}: {}", e.message().unwrap_or_default())
    };
    Error::new(kind, format!("{what}: {detail}"))
        .with_backend("s3")
        .with_retryable(retryable)
        .with_source(e)
}

fn read_error(path: &ObjectPath, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(ErrorKind::Unavailable, format!("reading {path}: {e}"))
        .with_backend("s3")
        .with_retryable(true)
        .with_source(e)
}

/// The metadata of a `GetObject` or `HeadObject` output (same accessors, different types).
macro_rules! object_meta {
    ($path:expr, $size:expr, $out:expr) => {
        ObjectMeta {
            path: $path.clone(),
            size: $size,
            last_modified: to_system_time($out.last_modified()),
            version: Version($out.e_tag().unwrap_or_default().to_owned()),
            content_type: $out.content_type().map(str::to_owned),
            cache_control: $out.cache_control().map(str::to_owned),
            content_disposition: $out.content_disposition().map(str::to_owned),
            metadata: $out
                .metadata()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        }
    };
}

fn etag(e: Option<&str>) -> Version {
    Version(e.unwrap_or_default().to_owned())
}

fn to_system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn range_header(range: ByteRange) -> Result<String> {
    Ok(match range {
        ByteRange::Bounded(start, end) => {
            if start >= end {
                return Err(Error::invalid_input(format!("empty range {start}..{end}")));
            }
            format!("bytes={start}-{}", end - 1)
        }
        ByteRange::Offset(start) => format!("bytes={start}-"),
        ByteRange::Suffix(n) => format!("bytes=-{n}"),
    })
}

impl S3Storage {
    /// A builder for `bucket`.
    pub fn builder(bucket: impl Into<String>) -> S3Builder {
        S3Builder {
            bucket: bucket.into(),
            endpoint: None,
            region: None,
            credentials: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// The bucket this store reads and writes.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Creates the bucket if it does not exist.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn ensure_bucket(&self) -> Result<()> {
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(s3_error(e, format!("creating bucket {}", self.bucket))),
        }
    }

    /// Sends a GetObject: the object's metadata, the range served, and the body to read.
    async fn open(
        &self,
        path: &ObjectPath,
        options: &GetOptions,
    ) -> Result<(ObjectMeta, std::ops::Range<u64>, ByteStream)> {
        let mut req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(path.as_str());
        if let Some(r) = options.range {
            req = req.range(range_header(r)?);
        }
        if let Some(v) = &options.if_match {
            req = req.if_match(&v.0);
        }
        if let Some(v) = &options.if_none_match {
            req = req.if_none_match(&v.0);
        }
        let out = req
            .send()
            .await
            .map_err(|e| s3_error(e, format!("getting {path}")))?;
        let length = out.content_length().unwrap_or(0).max(0) as u64;
        let (range, size) = out
            .content_range()
            .and_then(parse_content_range)
            .unwrap_or((0..length, length));
        let meta = object_meta!(path, size, out);
        Ok((meta, range, out.body))
    }

    fn prefix_of(prefix: Option<&ObjectPath>) -> String {
        prefix
            .map(|p| format!("{}/", p.as_str()))
            .unwrap_or_default()
    }

    fn listed_meta(&self, o: &aws_sdk_s3::types::Object) -> Option<ObjectMeta> {
        let path = ObjectPath::new(o.key()?).ok()?;
        Some(ObjectMeta {
            path,
            size: o.size().unwrap_or(0).max(0) as u64,
            last_modified: to_system_time(o.last_modified()),
            version: Version(o.e_tag().unwrap_or_default().to_owned()),
            content_type: None,
            cache_control: None,
            content_disposition: None,
            metadata: Default::default(),
        })
    }
}

impl Paged for S3Storage {
    fn page<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
        start_after: Option<&'a ObjectPath>,
        delimited: bool,
        token: Option<String>,
    ) -> BoxFuture<'a, Result<Page>> {
        Box::pin(async move {
            let out = timed(self.timeout, "S3 list", async {
                self.client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(Self::prefix_of(prefix))
                    .set_delimiter(delimited.then(|| "/".to_owned()))
                    .set_start_after(start_after.map(|p| p.as_str().to_owned()))
                    .set_continuation_token(token)
                    .send()
                    .await
                    .map_err(|e| s3_error(e, "listing".into()))
            })
            .await?;
            Ok(Page {
                objects: out
                    .contents()
                    .iter()
                    .filter_map(|o| self.listed_meta(o))
                    .collect(),
                prefixes: out
                    .common_prefixes()
                    .iter()
                    .filter_map(|p| ObjectPath::new(p.prefix()?.trim_end_matches('/')).ok())
                    .collect(),
                next: out.next_continuation_token().map(str::to_owned),
            })
        })
    }
}

impl Backend for S3Storage {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            create_only: true,
            if_match: true,
            multipart: true,
            presign: Some(PRESIGN_MAX),
        }
    }

    fn put<'a>(
        &'a self,
        path: &'a ObjectPath,
        bytes: Bytes,
        options: &'a PutOptions,
    ) -> BoxFuture<'a, Result<ObjectMeta>> {
        Box::pin(timed(self.timeout, "S3 put", async move {
            let size = bytes.len() as u64;
            let mut req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(path.as_str())
                .body(ByteStream::from(bytes))
                .set_content_type(options.content_type.clone())
                .set_cache_control(options.cache_control.clone())
                .set_content_disposition(options.content_disposition.clone());
            for (k, v) in &options.metadata {
                req = req.metadata(k, v);
            }
            req = match &options.mode {
                PutMode::Overwrite => req,
                PutMode::Create => req.if_none_match("*"),
                PutMode::IfMatch(v) => req.if_match(&v.0),
            };
            let out = req.send().await.map_err(|e| {
                options
                    .mode
                    .lost_race(s3_error(e, format!("putting {path}")), path)
            })?;
            Ok(written(path, size, etag(out.e_tag()), options))
        }))
    }

    fn get<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetResult>> {
        Box::pin(timed(self.timeout, "S3 get", async move {
            let (meta, range, body) = self.open(path, options).await?;
            let bytes = body
                .collect()
                .await
                .map_err(|e| read_error(path, e))?
                .into_bytes();
            Ok(GetResult { meta, bytes, range })
        }))
    }

    fn get_stream<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetStream>> {
        Box::pin(timed(self.timeout, "S3 get", async move {
            let (meta, range, body) = self.open(path, options).await?;
            let path = path.clone();
            let stream = futures_util::stream::try_unfold(body, move |mut body| {
                let path = path.clone();
                async move {
                    match body.try_next().await {
                        Ok(Some(chunk)) => Ok(Some((chunk, body))),
                        Ok(None) => Ok(None),
                        Err(e) => Err(read_error(&path, e)),
                    }
                }
            });
            Ok(GetStream::new(meta, range, stream))
        }))
    }

    fn start_upload<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a PutOptions,
    ) -> BoxFuture<'a, Result<Option<Box<dyn Upload>>>> {
        Box::pin(timed(self.timeout, "S3 multipart start", async move {
            let mut req = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(path.as_str())
                .set_content_type(options.content_type.clone())
                .set_cache_control(options.cache_control.clone())
                .set_content_disposition(options.content_disposition.clone());
            for (k, v) in &options.metadata {
                req = req.metadata(k, v);
            }
            let out = req
                .send()
                .await
                .map_err(|e| s3_error(e, format!("starting an upload to {path}")))?;
            let upload_id = out.upload_id().unwrap_or_default().to_owned();
            Ok(Some(Box::new(S3Upload {
                storage: self.clone(),
                path: path.clone(),
                options: options.clone(),
                upload_id,
                parts: Mutex::default(),
                size: AtomicU64::new(0),
            }) as Box<dyn Upload>))
        }))
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(timed(self.timeout, "S3 ping", async move {
            self.client
                .head_bucket()
                .bucket(&self.bucket)
                .send()
                .await
                .map(drop)
                .map_err(|e| s3_error(e, format!("bucket {}", self.bucket)))
        }))
    }

    fn presign<'a>(
        &'a self,
        method: PresignMethod,
        path: &'a ObjectPath,
        expires: Duration,
    ) -> BoxFuture<'a, Result<PresignedRequest>> {
        Box::pin(async move {
            let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires)
                .map_err(|e| Error::invalid_input(format!("presigned URL expiry: {e}")))?;
            let signed = match method {
                PresignMethod::Get => self
                    .client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(path.as_str())
                    .presigned(config)
                    .await
                    .map_err(|e| s3_error(e, format!("presigning {path}")))?,
                PresignMethod::Put => self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(path.as_str())
                    .presigned(config)
                    .await
                    .map_err(|e| s3_error(e, format!("presigning {path}")))?,
            };
            let mut request = PresignedRequest::new(method, signed.uri().to_owned());
            request.headers = signed
                .headers()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            Ok(request)
        })
    }

    fn head<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<ObjectMeta>> {
        Box::pin(timed(self.timeout, "S3 head", async move {
            let out = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(path.as_str())
                .send()
                .await
                .map_err(|e| s3_error(e, format!("head of {path}")))?;
            let size = out.content_length().unwrap_or(0).max(0) as u64;
            Ok(object_meta!(path, size, out))
        }))
    }

    fn delete<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        Box::pin(timed(self.timeout, "S3 delete", async move {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(path.as_str())
                .send()
                .await
                .map(drop)
                .map_err(|e| s3_error(e, format!("deleting {path}")))
        }))
    }

    fn delete_batch(&self) -> usize {
        1000
    }

    fn delete_many<'a>(&'a self, paths: &'a [ObjectPath]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            use aws_sdk_s3::types::{Delete, ObjectIdentifier};
            // DeleteObjects takes at most 1,000 keys per request.
            for batch in paths.chunks(self.delete_batch()) {
                let objects = batch
                    .iter()
                    .map(|p| ObjectIdentifier::builder().key(p.as_str()).build())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::invalid_input(format!("delete_many: {e}")))?;
                let delete = Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(true)
                    .build()
                    .map_err(|e| Error::invalid_input(format!("delete_many: {e}")))?;
                let out = timed(self.timeout, "S3 delete_many", async {
                    self.client
                        .delete_objects()
                        .bucket(&self.bucket)
                        .delete(delete)
                        .send()
                        .await
                        .map_err(|e| s3_error(e, format!("deleting {} keys", batch.len())))
                })
                .await?;
                // Quiet mode lists only the keys that failed.
                if let Some(failed) = out.errors().first() {
                    return Err(Error::new(
                        ErrorKind::Backend,
                        format!(
                            "deleting {}: {} {}",
                            failed.key().unwrap_or_default(),
                            failed.code().unwrap_or_default(),
                            failed.message().unwrap_or_default()
                        ),
                    )
                    .with_backend("s3"));
                }
            }
            Ok(())
        })
    }

    fn list<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
        start_after: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        self.list_pages(prefix, start_after)
    }

    fn list_stream(&self, prefix: Option<ObjectPath>) -> BoxStream<'_, Result<ObjectMeta>> {
        self.stream_pages(prefix)
    }

    fn list_with_delimiter<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<ListResult>> {
        self.delimited_pages(prefix)
    }

    fn copy<'a>(&'a self, from: &'a ObjectPath, to: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        Box::pin(timed(self.timeout, "S3 copy", async move {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(to.as_str())
                .copy_source(format!("{}/{}", self.bucket, encode_key(from.as_str())))
                .send()
                .await
                .map(drop)
                .map_err(|e| s3_error(e, format!("copying {from}")))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(range_header(ByteRange::Suffix(3)).unwrap(), "bytes=-3");
        assert!(range_header(ByteRange::Bounded(3, 3)).is_err());
    }
}
