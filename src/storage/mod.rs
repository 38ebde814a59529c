//! One object-storage API: keys as a validated [`ObjectPath`], metadata that round-trips,
//! conditional writes with one portable [`Version`] token, streaming reads and multipart
//! uploads, presigned URLs, retries with a per-attempt timeout and an overall deadline, and the
//! same behaviour on every backend (checked by one conformance suite run against each).
//!
//! | backend | feature | type | version token | tested against |
//! |---|---|---|---|---|
//! | in-memory (tests, development) | `storage-memory` | [`MemoryStorage`] | a generation counter | itself |
//! | local directory (atomic writes, sidecar metadata, no escaping the root) | `storage-local` | [`LocalStorage`] | size + modification time (ns) | the disk |
//! | S3 and S3-compatible stores (aws-sdk-s3) | `storage-s3` | [`S3Storage`] | ETag | SeaweedFS |
//! | Google Cloud Storage (gcloud-storage, JSON API) | `storage-gcs` | [`GcsStorage`] | generation | fake-gcs-server |
//! | Azure Blob Storage (azure_storage_blob) | `storage-azure` | [`AzureStorage`] | ETag | Azurite |
//!
//! What each backend supports is in [`Capabilities`]; what it cannot do fails with
//! [`Unsupported`](ErrorKind::Unsupported) before any request:
//!
//! | | memory | local | S3 | GCS | Azure |
//! |---|---|---|---|---|---|
//! | create-only / compare-and-swap put | yes | yes (exact within one process) | yes | yes | yes |
//! | multipart upload ([`Storage::put_stream`]) | buffered, one put | temp file, parts at offsets | multipart upload | resumable session, parts in order | staged blocks |
//! | presigned GET/PUT ([`Storage::presign`]), longest expiry | no | no | SigV4, 7 days | V4, 7 days (needs a service-account key) | service SAS, 7 days (needs the account key) |
//! | content type etc. in listings | yes | no (sidecar not read) | no | yes | yes |
//! | `list_with_delimiter` | computed | computed | server-side | server-side | computed from the flat listing |
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use corekit::storage::{MemoryStorage, ObjectPath, PutOptions, Storage};
//!
//! let storage = Storage::new(MemoryStorage::new());
//! let key = ObjectPath::new("reports/2026/q4.csv")?;
//! storage.put(&key, "a,b\n1,2\n".into(), &PutOptions::default().content_type("text/csv")).await?;
//! let object = storage.get(&key).await?;
//! assert_eq!(object.meta.content_type.as_deref(), Some("text/csv"));
//! // Create-only: a second writer loses with AlreadyExists instead of overwriting.
//! let err = storage.put(&key, "x".into(), &PutOptions::create_only()).await.unwrap_err();
//! assert_eq!(err.kind(), corekit::ErrorKind::AlreadyExists);
//! # Ok::<(), corekit::Error>(())
//! # }).unwrap();
//! ```
//!
//! Percent signs, spaces and Unicode in keys are literal: `%2e%2e` is a file named `%2e%2e`,
//! never `..`.
//!
//! ## Configuration
//!
//! [`Storage::from_env`] reads [`StorageConfig`] from `STORAGE_*` variables:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `STORAGE_BACKEND` | from `STORAGE_URL`, else `local` | `memory`, `local`, `s3`, `gcs`, `azure` |
//! | `STORAGE_URL` | — | `file:///srv/data`, `memory://`, `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` |
//! | `STORAGE_LOCAL_ROOT` | `./data` | the local backend's directory |
//! | `STORAGE_BUCKET`, `STORAGE_CONTAINER` | — | S3/GCS bucket, Azure container (when no URL names it) |
//! | `STORAGE_PREFIX` | — | every key is scoped under it ([`Storage::scoped`]) |
//! | `STORAGE_ENDPOINT` | — | S3-compatible store (MinIO, SeaweedFS, R2) or emulator; GCS also honours `STORAGE_EMULATOR_HOST` |
//! | `STORAGE_REGION` | AWS chain, else `us-east-1` | S3 region |
//! | `STORAGE_GCS_CREDENTIALS_FILE` | application default credentials | a service-account key file |
//! | `STORAGE_AZURE_ACCOUNT` | `AZURE_STORAGE_ACCOUNT` | storage account |
//! | `STORAGE_AZURE_ACCESS_KEY` (secret) | `AZURE_STORAGE_KEY` | account key |
//! | `STORAGE_AZURE_SAS_TOKEN` (secret) | `AZURE_STORAGE_SAS_TOKEN` | SAS token |
//! | `STORAGE_AZURE_CONNECTION_STRING` (secret) | `AZURE_STORAGE_CONNECTION_STRING` | connection string (`UseDevelopmentStorage=true` for Azurite) |
//! | `STORAGE_AZURE_CREDENTIAL` | `auto` | with no key/SAS: `managed-identity`, `workload-identity` or `developer` (Entra ID) |
//! | `STORAGE_ATTEMPT_TIMEOUT` | `30s` | bound on one request |
//! | `STORAGE_DEADLINE` | `2m` | bound on a whole operation, retries included |
//! | `STORAGE_MAX_RETRIES` | `3` | retries of retryable errors (idempotent operations only) |
//! | `STORAGE_PART_SIZE` | `8MiB` | streaming uploads' part size (≥ 5 MiB, multiple of 256 KiB) |
//! | `STORAGE_UPLOAD_CONCURRENCY` | `4` | parts in flight per upload |
//!
//! S3 credentials come from the AWS chain (`AWS_ACCESS_KEY_ID`, profiles, IMDS, ...).

mod config;
mod path;
mod retry;
mod upload;

#[cfg(feature = "storage-azure")]
mod azure;
#[cfg(feature = "storage-gcs")]
mod gcs;
#[cfg(feature = "storage-local")]
mod local;
#[cfg(feature = "storage-memory")]
mod memory;
#[cfg(feature = "storage-s3")]
mod s3;

pub use config::{AzureCredential, StorageBackend, StorageConfig};
pub use path::{MAX_KEY_LEN, ObjectPath};
pub use retry::RetryPolicy;
pub use upload::{ByteStream, GetStream, Part, Upload};

#[cfg(feature = "storage-azure")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-azure")))]
pub use azure::{AzureBuilder, AzureStorage};
#[cfg(feature = "storage-gcs")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-gcs")))]
pub use gcs::{GcsBuilder, GcsStorage};
#[cfg(feature = "storage-local")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-local")))]
pub use local::LocalStorage;
#[cfg(feature = "storage-memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-memory")))]
pub use memory::MemoryStorage;
#[cfg(feature = "storage-s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "storage-s3")))]
pub use s3::{S3Builder, S3Storage};

use crate::{Error, ErrorKind, Result};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::Instrument;

/// A boxed, sendable future: what [`Backend`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A boxed, sendable stream: what [`Backend::list_stream`] returns.
pub type BoxStream<'a, T> = Pin<Box<dyn futures_util::Stream<Item = T> + Send + 'a>>;

/// An object's version: the token conditional operations compare (ETag, generation, or what the
/// backend documents). Opaque; compare for equality only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Version(pub String);

/// What [`Storage::head`] returns, and every object carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectMeta {
    /// The key.
    pub path: ObjectPath,
    /// Size in bytes.
    pub size: u64,
    /// Last modification.
    pub last_modified: SystemTime,
    /// The version token.
    pub version: Version,
    /// `Content-Type` given at put.
    pub content_type: Option<String>,
    /// `Cache-Control` given at put.
    pub cache_control: Option<String>,
    /// `Content-Disposition` given at put.
    pub content_disposition: Option<String>,
    /// User metadata given at put.
    pub metadata: BTreeMap<String, String>,
}

/// How a put treats an existing object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PutMode {
    /// Replace whatever is there.
    #[default]
    Overwrite,
    /// Only if nothing is there: else [`AlreadyExists`](ErrorKind::AlreadyExists).
    Create,
    /// Only if the current version is this one (compare-and-swap): else
    /// [`PreconditionFailed`](ErrorKind::PreconditionFailed).
    IfMatch(Version),
}

impl PutMode {
    /// Checks the mode against the object's current version (`None`: absent), for backends
    /// that evaluate conditions themselves.
    ///
    /// # Errors
    /// `AlreadyExists` for a create-only put over an object, `PreconditionFailed` for a
    /// compare-and-swap whose version is not the current one.
    pub fn check(&self, current: Option<&Version>, path: &ObjectPath) -> Result<()> {
        match (self, current) {
            (PutMode::Create, Some(_)) => Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{path} already exists"),
            )),
            (PutMode::IfMatch(want), current) if current != Some(want) => Err(Error::new(
                ErrorKind::PreconditionFailed,
                format!("{path}: version is not the one required (if-match)"),
            )),
            _ => Ok(()),
        }
    }

    /// A server's "precondition failed" (or "already exists") for a create-only put, as
    /// `AlreadyExists`; anything else unchanged.
    #[cfg(any(
        feature = "storage-s3",
        feature = "storage-gcs",
        feature = "storage-azure"
    ))]
    pub(crate) fn lost_race(&self, e: Error, path: &ObjectPath) -> Error {
        let lost = matches!(
            e.kind(),
            ErrorKind::PreconditionFailed | ErrorKind::AlreadyExists
        );
        if *self == PutMode::Create && lost {
            let backend = e.backend().map(str::to_owned);
            let mut out = Error::new(ErrorKind::AlreadyExists, format!("{path} already exists"));
            if let Some(b) = backend {
                out = out.with_backend(b);
            }
            out.with_source(e)
        } else {
            e
        }
    }
}

/// Options of a put.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOptions {
    /// Overwrite, create-only or compare-and-swap.
    pub mode: PutMode,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// User metadata (keys: ASCII letters, digits, `-`, `_`; values without control characters).
    pub metadata: BTreeMap<String, String>,
}

impl PutOptions {
    /// Create-only.
    pub fn create_only() -> Self {
        Self {
            mode: PutMode::Create,
            ..Self::default()
        }
    }

    /// Only if the current version is `version`.
    pub fn if_match(version: Version) -> Self {
        Self {
            mode: PutMode::IfMatch(version),
            ..Self::default()
        }
    }

    /// An overwrite carrying `meta`'s content type, cache control, disposition and user
    /// metadata (what a copy keeps).
    pub fn keeping(meta: ObjectMeta) -> Self {
        Self {
            content_type: meta.content_type,
            cache_control: meta.cache_control,
            content_disposition: meta.content_disposition,
            metadata: meta.metadata,
            ..Self::default()
        }
    }

    /// With this content type.
    pub fn content_type(mut self, value: impl Into<String>) -> Self {
        self.content_type = Some(value.into());
        self
    }

    /// With this cache control.
    pub fn cache_control(mut self, value: impl Into<String>) -> Self {
        self.cache_control = Some(value.into());
        self
    }

    /// With this content disposition.
    pub fn content_disposition(mut self, value: impl Into<String>) -> Self {
        self.content_disposition = Some(value.into());
        self
    }

    /// With a user metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    fn check(&self) -> Result<()> {
        for v in [
            &self.content_type,
            &self.cache_control,
            &self.content_disposition,
        ]
        .into_iter()
        .flatten()
        {
            if v.chars().any(char::is_control) {
                return Err(Error::invalid_input(format!(
                    "header value {v:?} contains a control character"
                )));
            }
        }
        for (k, v) in &self.metadata {
            if k.is_empty()
                || !k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(Error::invalid_input(format!(
                    "metadata key {k:?}: use ASCII letters, digits, '-' and '_'"
                )));
            }
            if v.chars().any(char::is_control) {
                return Err(Error::invalid_input(format!(
                    "metadata {k:?} value contains a control character"
                )));
            }
        }
        Ok(())
    }
}

/// A byte range of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `start..end` (end exclusive).
    Bounded(u64, u64),
    /// From `start` to the end.
    Offset(u64),
    /// The last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The `start..end` this range covers in an object of `size` bytes.
    ///
    /// # Errors
    /// [`InvalidInput`](ErrorKind::InvalidInput) for an empty range or one that starts past the
    /// end (a bounded range ending past the end is cut to the end, as HTTP does).
    pub fn resolve(self, size: u64) -> Result<std::ops::Range<u64>> {
        let r = match self {
            ByteRange::Bounded(start, end) => {
                if start >= end {
                    return Err(Error::invalid_input(format!("empty range {start}..{end}")));
                }
                start..end.min(size)
            }
            ByteRange::Offset(start) => start..size,
            ByteRange::Suffix(n) => size.saturating_sub(n)..size,
        };
        if r.start >= size && !(size == 0 && matches!(self, ByteRange::Suffix(_))) {
            return Err(Error::invalid_input(format!(
                "range {self:?} starts at or past the end of a {size}-byte object"
            )));
        }
        Ok(r)
    }
}

/// Options of a get.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetOptions {
    /// Only these bytes.
    pub range: Option<ByteRange>,
    /// Only if the version is this one, else `PreconditionFailed`.
    pub if_match: Option<Version>,
    /// Only if the version is not this one, else `PreconditionFailed` (a cache's "not modified").
    pub if_none_match: Option<Version>,
}

impl GetOptions {
    /// These bytes only.
    pub fn range(range: ByteRange) -> Self {
        Self {
            range: Some(range),
            ..Self::default()
        }
    }

    #[cfg(any(
        feature = "storage-memory",
        feature = "storage-local",
        feature = "storage-gcs"
    ))]
    pub(crate) fn check_version(&self, current: &Version, path: &ObjectPath) -> Result<()> {
        if let Some(v) = &self.if_match
            && v != current
        {
            return Err(Error::new(
                ErrorKind::PreconditionFailed,
                format!("{path}: version is not the one required (if-match)"),
            ));
        }
        if let Some(v) = &self.if_none_match
            && v == current
        {
            return Err(Error::new(
                ErrorKind::PreconditionFailed,
                format!("{path}: not modified (if-none-match)"),
            ));
        }
        Ok(())
    }
}

/// An object read: its metadata and the bytes asked for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GetResult {
    /// The object's metadata (its full size, not the range's).
    pub meta: ObjectMeta,
    /// The bytes.
    pub bytes: Bytes,
    /// Which bytes these are.
    pub range: std::ops::Range<u64>,
}

/// One level of a listing: objects directly under the prefix and the "directories" below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListResult {
    /// Objects directly under the prefix.
    pub objects: Vec<ObjectMeta>,
    /// Prefixes one level down (`a/b` for `a/b/c` under `a`).
    pub common_prefixes: Vec<ObjectPath>,
}

/// What a backend supports; an unsupported operation returns
/// [`Unsupported`](ErrorKind::Unsupported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Create-only puts.
    pub create_only: bool,
    /// Compare-and-swap puts.
    pub if_match: bool,
    /// Native multipart uploads (else [`Storage::put_stream`] buffers the body and puts it whole).
    pub multipart: bool,
    /// Presigned URLs, and the longest expiry the backend signs.
    pub presign: Option<Duration>,
}

/// What a presigned URL lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresignMethod {
    /// Download the object (`GET`).
    Get,
    /// Upload the object (`PUT` of the whole body).
    Put,
}

/// A presigned request: what its holder sends, with no credentials of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresignedRequest {
    /// The method to use.
    pub method: PresignMethod,
    /// The URL, signature included (a secret: whoever has it has the access).
    pub url: String,
    /// Headers the request must carry (Azure's `x-ms-blob-type` on a PUT, for one).
    pub headers: Vec<(String, String)>,
}

impl PresignedRequest {
    /// A request with no required headers.
    pub fn new(method: PresignMethod, url: String) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
        }
    }
}

/// The object-storage backend trait. Keys reaching a backend are already validated (and
/// scoped under the handle's prefix); retries, deadlines and spans are the handle's.
pub trait Backend: Send + Sync + 'static {
    /// Short name (`memory`, `local`, ...).
    fn name(&self) -> &'static str;
    /// What it supports.
    fn capabilities(&self) -> Capabilities;
    /// Stores `bytes` at `path`.
    fn put<'a>(
        &'a self,
        path: &'a ObjectPath,
        bytes: Bytes,
        options: &'a PutOptions,
    ) -> BoxFuture<'a, Result<ObjectMeta>>;
    /// Reads `path`.
    fn get<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetResult>>;
    /// Reads `path` as a stream; the default reads it whole, then yields it.
    fn get_stream<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a GetOptions,
    ) -> BoxFuture<'a, Result<GetStream>> {
        Box::pin(async move {
            let got = self.get(path, options).await?;
            Ok(GetStream::from_bytes(got.meta, got.range, got.bytes))
        })
    }
    /// Metadata of `path`.
    fn head<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<ObjectMeta>>;
    /// Deletes `path`; deleting what is not there succeeds (S3's semantics, on every backend).
    fn delete<'a>(&'a self, path: &'a ObjectPath) -> BoxFuture<'a, Result<()>>;
    /// Every object under `prefix` (all when `None`), recursively, in key order, starting after
    /// `start_after` when given.
    fn list<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
        start_after: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>>>;
    /// Every object under `prefix`, page by page as the store serves them (key order on S3,
    /// GCS and Azure; S3-compatible stores may differ), so memory stays bounded by a page. The
    /// default lists everything first.
    fn list_stream(&self, prefix: Option<ObjectPath>) -> BoxStream<'_, Result<ObjectMeta>> {
        use futures_util::{StreamExt, TryStreamExt};
        futures_util::stream::once(async move { self.list(prefix.as_ref(), None).await })
            .map_ok(|all| futures_util::stream::iter(all.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }
    /// One level under `prefix`.
    fn list_with_delimiter<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<ListResult>>;
    /// Copies `from` to `to` (metadata included).
    fn copy<'a>(&'a self, from: &'a ObjectPath, to: &'a ObjectPath) -> BoxFuture<'a, Result<()>>;
    /// How many paths one [`delete_many`](Self::delete_many) call takes (8 by default; S3's
    /// `DeleteObjects` takes 1,000).
    fn delete_batch(&self) -> usize {
        8
    }
    /// Deletes up to [`delete_batch`](Self::delete_batch) paths (absent ones are fine); the
    /// default deletes them all at once and returns the first failure after trying them all.
    fn delete_many<'a>(&'a self, paths: &'a [ObjectPath]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let deletes: Vec<_> = paths.iter().map(|p| self.delete(p)).collect();
            let results = futures_util::future::join_all(deletes).await;
            results.into_iter().collect::<Result<Vec<()>>>().map(drop)
        })
    }
    /// Moves `from` to `to`; the default copies then deletes.
    fn rename<'a>(&'a self, from: &'a ObjectPath, to: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.copy(from, to).await?;
            self.delete(from).await
        })
    }
    /// Starts a multipart upload to `path`; `None` (the default) when the backend has none.
    fn start_upload<'a>(
        &'a self,
        path: &'a ObjectPath,
        options: &'a PutOptions,
    ) -> BoxFuture<'a, Result<Option<Box<dyn Upload>>>> {
        let _ = (path, options);
        Box::pin(std::future::ready(Ok(None)))
    }
    /// A URL that lets its holder `method` the object at `path` until `expires` from now
    /// (checked against [`Capabilities::presign`] before the call).
    fn presign<'a>(
        &'a self,
        method: PresignMethod,
        path: &'a ObjectPath,
        expires: Duration,
    ) -> BoxFuture<'a, Result<PresignedRequest>> {
        let _ = (method, path, expires);
        Box::pin(std::future::ready(Err(Error::unsupported(
            self.name(),
            "presign",
            "this backend has no presigned URLs (serve the object through your application)",
        ))))
    }
    /// A cheap request that proves the store answers; the default asks for the metadata of a
    /// key that should not exist (`NotFound` is healthy).
    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let probe = ObjectPath::new("corekit-health-probe")?;
            match self.head(&probe).await {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

/// The smallest part size [`Storage::with_part_size`] accepts (S3's minimum).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The default part size of streaming uploads.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// The storage handle applications use; cheap to clone.
///
/// A handle adds to its backend: key scoping under a prefix ([`scoped`](Self::scoped)),
/// retries with a per-attempt timeout and an overall deadline ([`RetryPolicy`]), streaming
/// uploads cut into parts uploaded a few at a time, checks before any request, and a `tracing`
/// span per call.
#[derive(Clone)]
pub struct Storage {
    backend: Arc<dyn Backend>,
    prefix: Option<ObjectPath>,
    retry: RetryPolicy,
    part_size: usize,
    upload_concurrency: usize,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("backend", &self.backend.name())
            .field("prefix", &self.prefix)
            .field("retry", &self.retry)
            .field("part_size", &self.part_size)
            .finish()
    }
}

impl Storage {
    /// Over `backend`, with the default [`RetryPolicy`] and part size.
    pub fn new<B: Backend>(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
            prefix: None,
            retry: RetryPolicy::default(),
            part_size: DEFAULT_PART_SIZE,
            upload_concurrency: 4,
        }
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// What the backend supports.
    pub fn capabilities(&self) -> Capabilities {
        self.backend.capabilities()
    }

    /// With this retry policy.
    #[must_use]
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Streaming uploads in parts of `bytes` (default 8 MiB).
    ///
    /// # Errors
    /// `InvalidInput` below [`MIN_PART_SIZE`] or not a multiple of 256 KiB (GCS's chunk unit).
    pub fn with_part_size(mut self, bytes: usize) -> Result<Self> {
        if bytes < MIN_PART_SIZE || !bytes.is_multiple_of(256 * 1024) {
            return Err(Error::invalid_input(format!(
                "part size {bytes}: use at least {MIN_PART_SIZE} bytes, a multiple of 256 KiB"
            )));
        }
        self.part_size = bytes;
        Ok(self)
    }

    /// Streaming uploads with up to `parts` parts in flight (default 4).
    #[must_use]
    pub fn with_upload_concurrency(mut self, parts: usize) -> Self {
        self.upload_concurrency = parts.max(1);
        self
    }

    /// The same store seen under `prefix`: every key is relative to it, listings return keys
    /// without it, and nothing outside it is reachable. Scoping a scoped handle nests.
    ///
    /// # Errors
    /// `InvalidInput` when the nested prefix would be longer than [`MAX_KEY_LEN`].
    pub fn scoped(&self, prefix: &ObjectPath) -> Result<Self> {
        let prefix = match &self.prefix {
            Some(outer) => outer.join(prefix.as_str())?,
            None => prefix.clone(),
        };
        Ok(Self {
            prefix: Some(prefix),
            ..self.clone()
        })
    }

    /// The prefix this handle is scoped under.
    pub fn prefix(&self) -> Option<&ObjectPath> {
        self.prefix.as_ref()
    }

    fn full(&self, path: &ObjectPath) -> Result<ObjectPath> {
        match &self.prefix {
            Some(p) => p.join(path.as_str()),
            None => Ok(path.clone()),
        }
    }

    fn full_prefix(&self, prefix: Option<&ObjectPath>) -> Result<Option<ObjectPath>> {
        prefix
            .map(|p| self.full(p))
            .transpose()
            .map(|p| p.or_else(|| self.prefix.clone()))
    }

    fn relative(&self, path: ObjectPath) -> ObjectPath {
        match &self.prefix {
            Some(p) => path
                .as_str()
                .strip_prefix(p.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(|rest| ObjectPath::new(rest).ok())
                .unwrap_or(path),
            None => path,
        }
    }

    fn relative_meta(&self, mut meta: ObjectMeta) -> ObjectMeta {
        if self.prefix.is_some() {
            meta.path = self.relative(meta.path);
        }
        meta
    }

    async fn call<T, F, Fut>(
        &self,
        op: &'static str,
        path: Option<&ObjectPath>,
        idempotent: bool,
        attempt: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let system = self.backend.name();
        let span = tracing::debug_span!(
            "storage",
            otel.name = op,
            storage.system = system,
            storage.key = path.map(ObjectPath::as_str),
        );
        self.retry
            .run(idempotent, attempt)
            .instrument(span)
            .await
            .map_err(|e| annotate(e, system, op))
    }

    fn check_put(&self, options: &PutOptions) -> Result<()> {
        options.check()?;
        let caps = self.capabilities();
        let unsupported = match options.mode {
            PutMode::Create => !caps.create_only,
            PutMode::IfMatch(_) => !caps.if_match,
            PutMode::Overwrite => false,
        };
        if unsupported {
            return Err(Error::unsupported(
                self.backend(),
                "put",
                format!("{:?} puts are not supported by this backend", options.mode),
            ));
        }
        Ok(())
    }

    /// Stores `bytes` at `path` with `options`; returns the new object's metadata.
    ///
    /// # Errors
    /// `InvalidInput` for bad options; `AlreadyExists` / `PreconditionFailed` when a conditional
    /// put loses; `Unsupported` when the backend cannot do the mode.
    pub async fn put(
        &self,
        path: &ObjectPath,
        bytes: Bytes,
        options: &PutOptions,
    ) -> Result<ObjectMeta> {
        self.check_put(options)?;
        let full = self.full(path)?;
        let idempotent = options.mode == PutMode::Overwrite;
        self.call("put", Some(&full), idempotent, || {
            self.backend.put(&full, bytes.clone(), options)
        })
        .await
        .map(|m| self.relative_meta(m))
    }

    /// Stores a body read from `stream`. A body of up to one part is one put; a larger one is
    /// a multipart upload (on backends that have one: [`Capabilities::multipart`]) in parts
    /// of the configured size, a few in flight at once, each retried on its own. A failure
    /// aborts the upload: nothing partial becomes visible.
    ///
    /// # Errors
    /// As [`put`](Self::put), plus the stream's own errors.
    pub async fn put_stream<S>(
        &self,
        path: &ObjectPath,
        stream: S,
        options: &PutOptions,
    ) -> Result<ObjectMeta>
    where
        S: futures_util::Stream<Item = Result<Bytes>> + Send + Unpin,
    {
        self.check_put(options)?;
        let full = self.full(path)?;
        let system = self.backend.name();
        let span = tracing::debug_span!(
            "storage",
            otel.name = "put_stream",
            storage.system = system,
            storage.key = full.as_str(),
        );
        let (backend, retry) = (&self.backend, self.retry);
        let body = upload::drive(
            stream,
            self.part_size,
            self.upload_concurrency,
            async || backend.start_upload(&full, options).await,
            async |upload: &dyn Upload, part: Part| {
                retry.run(true, || upload.put_part(part.clone())).await
            },
        )
        .instrument(span)
        .await
        .map_err(|e| annotate(e, system, "put_stream"))?;
        match body {
            upload::Body::Whole(bytes) => self.put(path, bytes, options).await,
            upload::Body::Uploaded(meta) => Ok(self.relative_meta(meta)),
        }
    }

    /// Stores a body read from `reader` (see [`put_stream`](Self::put_stream)).
    ///
    /// # Errors
    /// As [`put_stream`](Self::put_stream).
    pub async fn put_reader<R>(
        &self,
        path: &ObjectPath,
        reader: R,
        options: &PutOptions,
    ) -> Result<ObjectMeta>
    where
        R: tokio::io::AsyncRead + Send + Unpin,
    {
        let stream = std::pin::pin!(upload::read_stream(reader, 256 * 1024));
        self.put_stream(path, stream, options).await
    }

    /// Reads the whole object.
    ///
    /// # Errors
    /// `NotFound` when there is none.
    pub async fn get(&self, path: &ObjectPath) -> Result<GetResult> {
        self.get_with(path, &GetOptions::default()).await
    }

    /// Reads with a range and/or conditions.
    ///
    /// # Errors
    /// `NotFound`; `PreconditionFailed` for a failed condition; `InvalidInput` for a range past
    /// the end.
    pub async fn get_with(&self, path: &ObjectPath, options: &GetOptions) -> Result<GetResult> {
        let full = self.full(path)?;
        let mut got = self
            .call("get", Some(&full), true, || {
                self.backend.get(&full, options)
            })
            .await?;
        got.meta = self.relative_meta(got.meta);
        Ok(got)
    }

    /// Opens the object as a stream of chunks (the attempt timeout bounds the opening; the
    /// caller paces the reading).
    ///
    /// # Errors
    /// As [`get_with`](Self::get_with).
    pub async fn get_stream(&self, path: &ObjectPath, options: &GetOptions) -> Result<GetStream> {
        let full = self.full(path)?;
        let mut got = self
            .call("get_stream", Some(&full), true, || {
                self.backend.get_stream(&full, options)
            })
            .await?;
        got.meta = self.relative_meta(got.meta);
        Ok(got)
    }

    /// Metadata.
    ///
    /// # Errors
    /// `NotFound` when there is none.
    pub async fn head(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        let full = self.full(path)?;
        self.call("head", Some(&full), true, || self.backend.head(&full))
            .await
            .map(|m| self.relative_meta(m))
    }

    /// Whether `path` exists.
    ///
    /// # Errors
    /// The backend's errors other than `NotFound`.
    pub async fn exists(&self, path: &ObjectPath) -> Result<bool> {
        match self.head(path).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes `path` (no error when absent).
    ///
    /// # Errors
    /// The backend's errors.
    pub async fn delete(&self, path: &ObjectPath) -> Result<()> {
        let full = self.full(path)?;
        self.call("delete", Some(&full), true, || self.backend.delete(&full))
            .await
    }

    /// Deletes many: S3 in batch requests of up to 1,000 keys (`DeleteObjects`), other backends
    /// up to 8 deletes at once. Absent keys are fine, as with [`delete`](Self::delete).
    ///
    /// # Errors
    /// The first failure (the others are still attempted).
    pub async fn delete_many(&self, paths: &[ObjectPath]) -> Result<()> {
        let full = paths
            .iter()
            .map(|p| self.full(p))
            .collect::<Result<Vec<_>>>()?;
        self.call("delete_many", None, true, || {
            self.backend.delete_many(&full)
        })
        .await
    }

    /// Every object under `prefix`, recursively, in key order.
    ///
    /// # Errors
    /// The backend's errors.
    pub async fn list(&self, prefix: Option<&ObjectPath>) -> Result<Vec<ObjectMeta>> {
        self.list_from(prefix, None).await
    }

    /// Every object under `prefix` as a stream, fetched a page at a time (see
    /// [`Backend::list_stream`] for the order). Each page is bounded by the backend's request
    /// timeout; pages are not retried.
    pub fn list_stream(&self, prefix: Option<&ObjectPath>) -> BoxStream<'_, Result<ObjectMeta>> {
        use futures_util::{StreamExt, TryStreamExt};
        let system = self.backend.name();
        match self.full_prefix(prefix) {
            Ok(full) => self
                .backend
                .list_stream(full)
                .map_ok(|m| self.relative_meta(m))
                .map_err(move |e| annotate(e, system, "list"))
                .boxed(),
            Err(e) => futures_util::stream::once(std::future::ready(Err(e))).boxed(),
        }
    }

    /// As [`list`](Self::list), starting after `after`.
    ///
    /// # Errors
    /// The backend's errors.
    pub async fn list_after(
        &self,
        prefix: Option<&ObjectPath>,
        after: &ObjectPath,
    ) -> Result<Vec<ObjectMeta>> {
        self.list_from(prefix, Some(after)).await
    }

    async fn list_from(
        &self,
        prefix: Option<&ObjectPath>,
        after: Option<&ObjectPath>,
    ) -> Result<Vec<ObjectMeta>> {
        let full = self.full_prefix(prefix)?;
        let after = after.map(|a| self.full(a)).transpose()?;
        let listed = self
            .call("list", full.as_ref(), true, || {
                self.backend.list(full.as_ref(), after.as_ref())
            })
            .await?;
        Ok(listed.into_iter().map(|m| self.relative_meta(m)).collect())
    }

    /// One level under `prefix`: objects and common prefixes.
    ///
    /// # Errors
    /// The backend's errors.
    pub async fn list_with_delimiter(&self, prefix: Option<&ObjectPath>) -> Result<ListResult> {
        let full = self.full_prefix(prefix)?;
        let level = self
            .call("list_with_delimiter", full.as_ref(), true, || {
                self.backend.list_with_delimiter(full.as_ref())
            })
            .await?;
        Ok(ListResult {
            objects: level
                .objects
                .into_iter()
                .map(|m| self.relative_meta(m))
                .collect(),
            common_prefixes: level
                .common_prefixes
                .into_iter()
                .map(|p| self.relative(p))
                .collect(),
        })
    }

    /// Copies `from` to `to`.
    ///
    /// # Errors
    /// `NotFound` when `from` is absent.
    pub async fn copy(&self, from: &ObjectPath, to: &ObjectPath) -> Result<()> {
        let (from, to) = (self.full(from)?, self.full(to)?);
        self.call("copy", Some(&from), true, || self.backend.copy(&from, &to))
            .await
    }

    /// Moves `from` to `to` (not retried: a lost answer may hide a completed move).
    ///
    /// # Errors
    /// `NotFound` when `from` is absent.
    pub async fn rename(&self, from: &ObjectPath, to: &ObjectPath) -> Result<()> {
        let (from, to) = (self.full(from)?, self.full(to)?);
        self.call("rename", Some(&from), false, || {
            self.backend.rename(&from, &to)
        })
        .await
    }

    /// A request that lets anyone holding it `method` the object at `path` for `expires`, with
    /// no credentials of their own (S3 SigV4, GCS V4, Azure service SAS): a URL, and the headers
    /// it must be sent with. The URL is a secret: whoever has it has the access.
    ///
    /// # Errors
    /// `Unsupported` where the store cannot sign (local, memory; Azure without its account
    /// key); `InvalidInput` for a zero expiry or one past the backend's limit, before any request.
    pub async fn presign(
        &self,
        method: PresignMethod,
        path: &ObjectPath,
        expires: Duration,
    ) -> Result<PresignedRequest> {
        let Some(max) = self.capabilities().presign else {
            // The backend says why it cannot sign (no URLs at all, or no key configured); no
            // request is made.
            let full = self.full(path)?;
            let refused = self.backend.presign(method, &full, expires).await;
            return refused.map_err(|e| annotate(e, self.backend(), "presign"));
        };
        if expires.is_zero() || expires > max {
            return Err(Error::invalid_input(format!(
                "presigned URL expiry {expires:?}: the {} backend signs between 1 s and {max:?}",
                self.backend()
            )));
        }
        let full = self.full(path)?;
        self.call("presign", Some(&full), true, || {
            self.backend.presign(method, &full, expires)
        })
        .await
    }

    /// Whether the store answers (readiness probes).
    ///
    /// # Errors
    /// The backend's error when it does not.
    pub async fn ping(&self) -> Result<()> {
        self.call("ping", None, true, || self.backend.ping()).await
    }
}

fn annotate(e: Error, system: &'static str, op: &'static str) -> Error {
    let e = if e.backend().is_none() {
        e.with_backend(system)
    } else {
        e
    };
    if e.operation().is_none() {
        e.with_operation(op)
    } else {
        e
    }
}

/// The longest presigned-URL expiry corekit signs (S3's and GCS's limit; Azure has none, and
/// gets the same for one rule across backends).
#[cfg(any(
    feature = "storage-s3",
    feature = "storage-gcs",
    feature = "storage-azure"
))]
pub(crate) const PRESIGN_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// `fut` bounded by a cloud backend's per-call `limit`; `what` names the call in the error.
#[cfg(any(
    feature = "storage-s3",
    feature = "storage-gcs",
    feature = "storage-azure"
))]
pub(crate) async fn timed<T>(
    limit: Duration,
    what: &'static str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    crate::error::bounded(limit, || what.to_owned(), fut).await
}

/// One page of a cloud listing.
#[cfg(any(
    feature = "storage-s3",
    feature = "storage-gcs",
    feature = "storage-azure"
))]
#[derive(Default)]
pub(crate) struct Page {
    pub(crate) objects: Vec<ObjectMeta>,
    pub(crate) prefixes: Vec<ObjectPath>,
    /// The continuation token of the next page, if any.
    pub(crate) next: Option<String>,
}

/// A cloud backend's one listing request: a page under `prefix` (with `/` as delimiter when
/// `delimited`) from the continuation `token`.
#[cfg(any(
    feature = "storage-s3",
    feature = "storage-gcs",
    feature = "storage-azure"
))]
pub(crate) trait Paged: Send + Sync {
    fn page<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
        start_after: Option<&'a ObjectPath>,
        delimited: bool,
        token: Option<String>,
    ) -> BoxFuture<'a, Result<Page>>;

    /// [`Backend::list`] over the pages.
    fn list_pages<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
        start_after: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        Box::pin(async move {
            let pages = all_pages(|token| self.page(prefix, start_after, false, token));
            Ok(pages.await?.objects)
        })
    }

    /// [`Backend::list_stream`] over the pages.
    fn stream_pages(&self, prefix: Option<ObjectPath>) -> BoxStream<'_, Result<ObjectMeta>> {
        page_stream(move |token| {
            let prefix = prefix.clone();
            async move { self.page(prefix.as_ref(), None, false, token).await }
        })
    }

    /// [`Backend::list_with_delimiter`] over the pages.
    #[cfg(any(feature = "storage-s3", feature = "storage-gcs"))]
    fn delimited_pages<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<ListResult>> {
        Box::pin(async move {
            let all = all_pages(|token| self.page(prefix, None, true, token)).await?;
            Ok(ListResult {
                objects: all.objects,
                common_prefixes: all.prefixes,
            })
        })
    }
}

/// Every page `fetch(token)` serves, objects sorted by key (some S3-compatible stores walk
/// directories instead of sorting).
#[cfg(any(
    feature = "storage-s3",
    feature = "storage-gcs",
    feature = "storage-azure"
))]
pub(crate) async fn all_pages<F, Fut>(mut fetch: F) -> Result<Page>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page>>,
{
    let mut all = Page::default();
    let mut token = None;
    loop {
        let page = fetch(token).await?;
        all.objects.extend(page.objects);
        all.prefixes.extend(page.prefixes);
        token = page.next.filter(|t| !t.is_empty());
        if token.is_none() {
            all.objects.sort_by(|a, b| a.path.cmp(&b.path));
            return Ok(all);
        }
    }
}

/// The objects of the pages `fetch(token)` serves, one page fetched at a time.
#[cfg(any(
    feature = "storage-s3",
    feature = "storage-gcs",
    feature = "storage-azure"
))]
pub(crate) fn page_stream<'a, F, Fut>(fetch: F) -> BoxStream<'a, Result<ObjectMeta>>
where
    F: FnMut(Option<String>) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Page>> + Send + 'a,
{
    use futures_util::{StreamExt, TryStreamExt};
    // State: the fetcher and the next token (`None`: done; `Some(None)`: the first page).
    futures_util::stream::try_unfold((fetch, Some(None)), |(mut fetch, token)| async move {
        let Some(token) = token else {
            return Ok::<_, Error>(None);
        };
        let page = fetch(token).await?;
        let next = page.next.filter(|t| !t.is_empty()).map(Some);
        let objects = futures_util::stream::iter(page.objects.into_iter().map(Ok));
        Ok(Some((objects, (fetch, next))))
    })
    .try_flatten()
    .boxed()
}

/// What a put wrote, as the caller asked for it (cloud stores answer with a version only).
#[cfg(any(feature = "storage-s3", feature = "storage-azure"))]
pub(crate) fn written(
    path: &ObjectPath,
    size: u64,
    version: Version,
    options: &PutOptions,
) -> ObjectMeta {
    ObjectMeta {
        path: path.clone(),
        size,
        last_modified: SystemTime::now(),
        version,
        content_type: options.content_type.clone(),
        cache_control: options.cache_control.clone(),
        content_disposition: options.content_disposition.clone(),
        metadata: options.metadata.clone(),
    }
}

/// A `time` timestamp (gcloud-storage's and azure_core's) as a `SystemTime`.
#[cfg(any(feature = "storage-gcs", feature = "storage-azure"))]
pub(crate) fn unix_nanos_time(nanos: Option<i128>) -> SystemTime {
    nanos
        .and_then(|n| u64::try_from(n).ok())
        .map_or(std::time::UNIX_EPOCH, |n| {
            std::time::UNIX_EPOCH + Duration::from_nanos(n)
        })
}

/// Percent-encodes all but unreserved characters (and `/` when `keep_slash`): keys in URLs and
/// `x-amz-copy-source`, SAS query values.
#[cfg(any(feature = "storage-s3", feature = "storage-azure"))]
pub(crate) fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A key as a URL path (slashes kept).
#[cfg(any(feature = "storage-s3", feature = "storage-azure"))]
pub(crate) fn encode_key(key: &str) -> String {
    percent_encode(key, true)
}

/// `bytes a-b/size` → (a..b+1, size).
#[cfg(any(feature = "storage-s3", feature = "storage-azure"))]
pub(crate) fn parse_content_range(value: &str) -> Option<(std::ops::Range<u64>, u64)> {
    let rest = value.strip_prefix("bytes ")?;
    let (span, size) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    Some((
        a.parse().ok()?..b.parse::<u64>().ok()? + 1,
        size.parse().ok()?,
    ))
}

/// Shared by the in-process backends and Azure: one directory level of a sorted key list.
#[cfg(any(
    feature = "storage-memory",
    feature = "storage-local",
    feature = "storage-azure"
))]
pub(crate) fn one_level(objects: Vec<ObjectMeta>, prefix: Option<&ObjectPath>) -> ListResult {
    let strip = prefix.map_or(0, |p| p.as_str().len() + 1);
    let mut result = ListResult::default();
    for meta in objects {
        let rest = &meta.path.as_str()[strip..];
        match rest.split_once('/') {
            Some((dir, _)) => {
                let full = &meta.path.as_str()[..strip + dir.len()];
                if result.common_prefixes.last().map(ObjectPath::as_str) != Some(full)
                    && let Ok(p) = ObjectPath::new(full)
                {
                    result.common_prefixes.push(p);
                }
            }
            None => result.objects.push(meta),
        }
    }
    result
}

/// Whether `path` is listed under `prefix` / after `after`.
#[cfg(any(feature = "storage-memory", feature = "storage-local"))]
pub(crate) fn listed(
    path: &ObjectPath,
    prefix: Option<&ObjectPath>,
    after: Option<&ObjectPath>,
) -> bool {
    prefix.is_none_or(|p| path.is_under(p)) && after.is_none_or(|a| path > a)
}

#[cfg(test)]
mod tests {
    #[cfg(any(feature = "storage-s3", feature = "storage-azure"))]
    #[test]
    fn url_helpers() {
        assert_eq!(super::encode_key("a/ü b%"), "a/%C3%BC%20b%25");
        assert_eq!(super::percent_encode("a/b+=", false), "a%2Fb%2B%3D");
        assert_eq!(
            super::parse_content_range("bytes 8-9/10"),
            Some((8..10, 10))
        );
    }
}
