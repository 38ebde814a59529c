//! Google Cloud Storage on gcloud-storage (JSON API).

use super::{
    Backend, BoxFuture, BoxStream, Capabilities, GetOptions, GetResult, GetStream, ListResult,
    ObjectMeta, ObjectPath, PRESIGN_MAX, Page, Paged, Part, PresignMethod, PresignedRequest,
    PutMode, PutOptions, Upload, Version, timed,
};
mod builder;
mod upload;
pub use builder::GcsBuilder;
use upload::GcsUpload;

use crate::{Error, ErrorKind, Result};
use bytes::Bytes;
use futures_util::TryStreamExt;
use gcloud_storage::client::{Client, ClientConfig};
use gcloud_storage::http::Error as GcsError;
use gcloud_storage::http::objects::Object;
use gcloud_storage::http::objects::copy::CopyObjectRequest;
use gcloud_storage::http::objects::delete::DeleteObjectRequest;
use gcloud_storage::http::objects::download::Range;
use gcloud_storage::http::objects::get::GetObjectRequest;
use gcloud_storage::http::objects::list::ListObjectsRequest;
use gcloud_storage::http::objects::upload::{UploadObjectRequest, UploadType};
use gcloud_storage::http::resumable_upload_client::{
    ChunkSize, ResumableUploadClient, UploadStatus,
};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Auth {
    /// No credentials (emulators, public buckets).
    Anonymous,
    /// Application default credentials: `GOOGLE_APPLICATION_CREDENTIALS(_JSON)`, gcloud's
    /// file, the metadata server.
    Default,
    /// A service-account key file.
    KeyFile(PathBuf),
}

/// Google Cloud Storage through its JSON API (gcloud-storage). Versions are object generations;
/// create-only is `ifGenerationMatch=0`, compare-and-swap `ifGenerationMatch=<generation>`.
/// A read pins the generation it first saw, so the bytes always belong to the metadata
/// returned with them (if it is replaced mid-read, the read fails with a retryable `Conflict`).
/// Streaming uploads are resumable uploads (parts sent in order); a part GCS persisted only in
/// part (a `308` with a shorter range) is not resent, so that upload fails rather than
/// completing.
#[derive(Clone)]
pub struct GcsStorage {
    client: Client,
    bucket: String,
    endpoint: Option<String>,
    signer: Option<(String, crate::config::Secret)>,
    timeout: Duration,
    page_size: i32,
}

impl std::fmt::Debug for GcsStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsStorage")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn status_of(e: &GcsError) -> Option<u16> {
    match e {
        GcsError::Response(r) => Some(r.code),
        GcsError::HttpClient(e) | GcsError::RawResponse(e, _) => e.status().map(|s| s.as_u16()),
        _ => None,
    }
}

fn gcs_error(e: GcsError, what: String) -> Error {
    let (kind, retryable) = match (status_of(&e), &e) {
        (Some(404), _) => (ErrorKind::NotFound, false),
        (Some(412 | 304), _) => (ErrorKind::PreconditionFailed, false),
        (Some(409), _) => (ErrorKind::Conflict, true),
        (Some(416), _) => (ErrorKind::InvalidInput, false),
        (Some(401 | 403), _) => (ErrorKind::PermissionDenied, false),
        (Some(408 | 429 | 500..=599), _) => (ErrorKind::Unavailable, true),
        (None, GcsError::HttpClient(h)) if h.is_timeout() => (ErrorKind::Timeout, true),
        (None, GcsError::HttpClient(h)) if h.is_connect() || h.is_request() => {
            (ErrorKind::Unavailable, true)
        }
        (None, GcsError::TokenSource(_)) => (ErrorKind::PermissionDenied, false),
        _ => (ErrorKind::Backend, false),
    };
    let detail = crate::error::chain_text(&e);
    Error::new(kind, format!("{what}: {detail}"))
        .with_backend("gcs")
        .with_retryable(retryable)
        .with_source(e)
}

/// An error reading the generation whose metadata was just read: a 404 means it was replaced
/// in between (the object exists), so it is a retryable conflict, not `NotFound`.
fn pinned_read_error(e: GcsError, what: String) -> Error {
    let e = gcs_error(e, what);
    if e.kind() == ErrorKind::NotFound {
        Error::new(
            ErrorKind::Conflict,
            format!("{}: the object changed while it was read", e.message()),
        )
        .with_backend("gcs")
        .with_retryable(true)
        .with_source(e)
    } else {
        e
    }
}

/// The generation a version token names; a token that is no generation matches nothing.
fn generation(v: &Version) -> i64 {
    v.0.parse().unwrap_or(-1)
}

fn condition(mode: &PutMode) -> Option<i64> {
    match mode {
        PutMode::Overwrite => None,
        PutMode::Create => Some(0),
        PutMode::IfMatch(v) => Some(generation(v)),
    }
}

fn object_meta(o: Object) -> Option<ObjectMeta> {
    let path = ObjectPath::new(&o.name).ok()?;
    let last_modified = super::unix_nanos_time(o.updated.map(|t| t.unix_timestamp_nanos()));
    Some(ObjectMeta {
        path,
        size: o.size.max(0) as u64,
        last_modified,
        version: Version(o.generation.to_string()),
        content_type: o.content_type.filter(|c| !c.is_empty()),
        cache_control: o.cache_control.filter(|c| !c.is_empty()),
        content_disposition: o.content_disposition.filter(|c| !c.is_empty()),
        metadata: o.metadata.unwrap_or_default().into_iter().collect(),
    })
}

fn meta_or_error(o: Object, path: &ObjectPath) -> Result<ObjectMeta> {
    object_meta(o).ok_or_else(|| {
        Error::new(
            ErrorKind::Backend,
            format!("GCS returned an object named otherwise than {path}"),
        )
    })
}

impl GcsStorage {
    /// A builder for `bucket` (application default credentials unless told otherwise).
    pub fn builder(bucket: impl Into<String>) -> GcsBuilder {
        GcsBuilder {
            bucket: bucket.into(),
            endpoint: None,
            auth: Auth::Default,
            signer: None,
            timeout: Duration::from_secs(30),
            page_size: 1000,
        }
    }

    /// The bucket this store reads and writes.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The gcloud-storage client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the bucket if it does not exist (in `project`).
    ///
    /// # Errors
    /// The store's errors.
    pub async fn ensure_bucket(&self, project: &str) -> Result<()> {
        use gcloud_storage::http::buckets::insert::{
            BucketCreationConfig, InsertBucketParam, InsertBucketRequest,
        };
        let req = InsertBucketRequest {
            name: self.bucket.clone(),
            param: InsertBucketParam {
                project: project.to_owned(),
                ..Default::default()
            },
            bucket: BucketCreationConfig {
                location: "US".to_owned(),
                ..Default::default()
            },
        };
        match self.client.insert_bucket(&req).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(gcs_error(e, format!("creating bucket {}", self.bucket))),
        }
    }

    fn new_object(path: &ObjectPath, options: &PutOptions) -> Object {
        Object {
            name: path.as_str().to_owned(),
            bucket: String::new(),
            content_type: options.content_type.clone(),
            cache_control: options.cache_control.clone(),
            content_disposition: options.content_disposition.clone(),
            metadata: (!options.metadata.is_empty())
                .then(|| options.metadata.clone().into_iter().collect()),
            ..Default::default()
        }
    }

    fn upload_request(&self, options: &PutOptions) -> UploadObjectRequest {
        UploadObjectRequest {
            bucket: self.bucket.clone(),
            if_generation_match: condition(&options.mode),
            ..Default::default()
        }
    }

    async fn metadata(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        let req = GetObjectRequest {
            bucket: self.bucket.clone(),
            object: path.as_str().to_owned(),
            ..Default::default()
        };
        let o = self
            .client
            .get_object(&req)
            .await
            .map_err(|e| gcs_error(e, format!("head of {path}")))?;
        meta_or_error(o, path)
    }

    /// Metadata first (conditions checked against it), then the bytes of that very generation.
    async fn open(
        &self,
        path: &ObjectPath,
        options: &GetOptions,
    ) -> Result<(ObjectMeta, std::ops::Range<u64>, GetObjectRequest, Range)> {
        let meta = self.metadata(path).await?;
        options.check_version(&meta.version, path)?;
        let range = match options.range {
            Some(r) => r.resolve(meta.size)?,
            None => 0..meta.size,
        };
        let req = GetObjectRequest {
            bucket: self.bucket.clone(),
            object: path.as_str().to_owned(),
            generation: Some(generation(&meta.version)),
            ..Default::default()
        };
        let wanted = if range.start == 0 && range.end == meta.size {
            Range::default()
        } else {
            Range(Some(range.start), Some(range.end - 1))
        };
        Ok((meta, range, req, wanted))
    }

    /// Opens a resumable session. A conditional mode is checked here first, so a lost race
    /// fails before any byte is sent (GCS checks it again when the object is finalized).
    async fn resumable(&self, path: &ObjectPath, options: &PutOptions) -> Result<GcsUpload> {
        if options.mode != PutMode::Overwrite {
            let current = match self.metadata(path).await {
                Ok(meta) => Some(meta.version),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            options.mode.check(current.as_ref(), path)?;
        }
        let kind = UploadType::Multipart(Box::new(Self::new_object(path, options)));
        let session = self
            .client
            .prepare_resumable_upload(&self.upload_request(options), &kind)
            .await
            .map_err(|e| {
                let e = gcs_error(e, format!("starting an upload to {path}"));
                options.mode.lost_race(e, path)
            })?;
        Ok(GcsUpload {
            session,
            path: path.clone(),
            mode: options.mode.clone(),
            done: Mutex::new(None),
            timeout: self.timeout,
        })
    }
}

/// Emulator URLs: `http://<endpoint host>/<bucket>/<object>`.
struct EndpointStyle(String);

impl gcloud_storage::sign::URLStyle for EndpointStyle {
    fn host(&self, _bucket: &str) -> String {
        self.0.clone()
    }
    fn path(&self, bucket: &str, object: &str) -> String {
        format!("{bucket}/{object}")
    }
}

impl Paged for GcsStorage {
    fn page<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
        start_after: Option<&'a ObjectPath>,
        delimited: bool,
        token: Option<String>,
    ) -> BoxFuture<'a, Result<Page>> {
        Box::pin(async move {
            let req = ListObjectsRequest {
                bucket: self.bucket.clone(),
                prefix: prefix.map(|p| format!("{}/", p.as_str())),
                delimiter: delimited.then(|| "/".to_owned()),
                start_offset: start_after.map(|p| p.as_str().to_owned()),
                max_results: Some(self.page_size),
                page_token: token,
                ..Default::default()
            };
            let page = timed(self.timeout, "GCS list", async {
                self.client
                    .list_objects(&req)
                    .await
                    .map_err(|e| gcs_error(e, "listing".into()))
            })
            .await?;
            Ok(Page {
                objects: page
                    .items
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(object_meta)
                    // startOffset is inclusive.
                    .filter(|m| start_after.is_none_or(|a| m.path > *a))
                    .collect(),
                prefixes: page
                    .prefixes
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|p| ObjectPath::new(p.trim_end_matches('/')).ok())
                    .collect(),
                next: page.next_page_token,
            })
        })
    }
}

impl Backend for GcsStorage {
    fn name(&self) -> &'static str {
        "gcs"
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
        Box::pin(timed(self.timeout, "GCS put", async move {
            if options.content_type.is_some() {
                // gcloud-storage's one-request upload sends the body part without a
                // Content-Type, which some servers (fake-gcs-server) store over the metadata's;
                // a resumable session carries it in its JSON metadata alone.
                let upload = self.resumable(path, options).await?;
                let part = Part {
                    index: 0,
                    offset: 0,
                    bytes,
                    last: true,
                };
                upload.put_part(part).await?;
                return upload.complete().await;
            }
            let kind = UploadType::Multipart(Box::new(Self::new_object(path, options)));
            let o = self
                .client
                .upload_object(&self.upload_request(options), bytes, &kind)
                .await
                .map_err(|e| {
                    options
                        .mode
                        .lost_race(gcs_error(e, format!("putting {path}")), path)
                })?;
            meta_or_error(o, path)
        }))
    }

    fn get<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetResult>> {
        Box::pin(timed(self.timeout, "GCS get", async move {
            let (meta, range, req, wanted) = self.open(path, options).await?;
            let bytes = if range.is_empty() {
                Bytes::new()
            } else {
                Bytes::from(
                    self.client
                        .download_object(&req, &wanted)
                        .await
                        .map_err(|e| pinned_read_error(e, format!("getting {path}")))?,
                )
            };
            Ok(GetResult { meta, bytes, range })
        }))
    }

    fn get_stream<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetStream>> {
        Box::pin(timed(self.timeout, "GCS get", async move {
            let (meta, range, req, wanted) = self.open(path, options).await?;
            if range.is_empty() {
                return Ok(GetStream::from_bytes(meta, range, Bytes::new()));
            }
            let client = self.client.clone();
            let what = format!("reading {path}");
            // The crate's stream borrows its request: a task owns both and forwards the chunks.
            // It reports the opening first, so a failed or hung request fails this call (inside
            // its timeout), not the caller's first read.
            let (opened_tx, opened) = tokio::sync::oneshot::channel::<Result<()>>();
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(4);
            tokio::spawn(async move {
                let stream = match client.download_streamed_object(&req, &wanted).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = opened_tx.send(Err(pinned_read_error(e, what)));
                        return;
                    }
                };
                if opened_tx.send(Ok(())).is_err() {
                    return;
                }
                let mut stream = std::pin::pin!(stream);
                loop {
                    let item = match stream.try_next().await {
                        Ok(Some(chunk)) => Ok(chunk),
                        Ok(None) => return,
                        Err(e) => Err(gcs_error(e, what.clone())),
                    };
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            });
            opened.await.map_err(|_| {
                Error::new(ErrorKind::Backend, "GCS download task ended").with_backend("gcs")
            })??;
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            Ok(GetStream::new(meta, range, stream))
        }))
    }

    fn head<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<ObjectMeta>> {
        Box::pin(timed(self.timeout, "GCS head", self.metadata(path)))
    }

    fn delete<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        Box::pin(timed(self.timeout, "GCS delete", async move {
            let req = DeleteObjectRequest {
                bucket: self.bucket.clone(),
                object: path.as_str().to_owned(),
                ..Default::default()
            };
            match self.client.delete_object(&req).await {
                Ok(()) => Ok(()),
                Err(e) if status_of(&e) == Some(404) => Ok(()),
                Err(e) => Err(gcs_error(e, format!("deleting {path}"))),
            }
        }))
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
        Box::pin(timed(self.timeout, "GCS copy", async move {
            let req = CopyObjectRequest {
                source_bucket: self.bucket.clone(),
                source_object: from.as_str().to_owned(),
                destination_bucket: self.bucket.clone(),
                destination_object: to.as_str().to_owned(),
                ..Default::default()
            };
            self.client
                .copy_object(&req)
                .await
                .map(drop)
                .map_err(|e| gcs_error(e, format!("copying {from}")))
        }))
    }

    fn start_upload<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a PutOptions,
    ) -> BoxFuture<'a, Result<Option<Box<dyn Upload>>>> {
        Box::pin(timed(self.timeout, "GCS upload start", async move {
            let upload = self.resumable(path, options).await?;
            Ok(Some(Box::new(upload) as Box<dyn Upload>))
        }))
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        // One key of the bucket: proves the bucket is there and readable.
        Box::pin(timed(self.timeout, "GCS ping", async move {
            let req = ListObjectsRequest {
                bucket: self.bucket.clone(),
                max_results: Some(1),
                ..Default::default()
            };
            self.client
                .list_objects(&req)
                .await
                .map(drop)
                .map_err(|e| gcs_error(e, format!("bucket {}", self.bucket)))
        }))
    }

    fn presign<'a>(
        &'a self,
        method: PresignMethod,
        path: &'a ObjectPath,
        expires: Duration,
    ) -> BoxFuture<'a, Result<PresignedRequest>> {
        Box::pin(async move {
            use gcloud_storage::sign::{SignBy, SignedURLMethod, SignedURLOptions};
            let mut options = SignedURLOptions {
                method: match method {
                    PresignMethod::Get => SignedURLMethod::GET,
                    PresignMethod::Put => SignedURLMethod::PUT,
                },
                expires,
                ..Default::default()
            };
            if let Some(endpoint) = &self.endpoint {
                let (scheme, host) = endpoint
                    .split_once("://")
                    .unwrap_or(("https", endpoint.as_str()));
                options.style = Box::new(EndpointStyle(host.to_owned()));
                options.insecure = scheme == "http";
            }
            let (access_id, sign_by) = match &self.signer {
                Some((id, key)) => (
                    Some(id.clone()),
                    Some(SignBy::PrivateKey(key.expose().as_bytes().to_vec())),
                ),
                None => (None, None),
            };
            self.client
                .signed_url(&self.bucket, path.as_str(), access_id, sign_by, options)
                .await
                .map(|url| PresignedRequest::new(method, url))
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        format!(
                            "presigning {path}: {e} (signing needs a service-account key: \
                             credentials with a private key, or GcsBuilder::signer)"
                        ),
                    )
                    .with_backend("gcs")
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_generations() {
        assert_eq!(condition(&PutMode::Create), Some(0));
        assert_eq!(condition(&PutMode::IfMatch(Version("42".into()))), Some(42));
        assert_eq!(
            condition(&PutMode::IfMatch(Version("etag".into()))),
            Some(-1)
        );
        assert_eq!(condition(&PutMode::Overwrite), None);
    }
}
