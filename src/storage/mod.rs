//! One object-storage API: keys as a validated [`ObjectPath`], metadata that round-trips,
//! conditional writes with one portable [`Version`] token, and the same behaviour on every
//! backend (checked by one conformance suite).
//!
//! | backend | feature | type | version token |
//! |---|---|---|---|
//! | in-memory (tests, development) | `storage-memory` | [`MemoryStorage`] | a generation counter |
//! | local directory (atomic writes, sidecar metadata, no escaping the root) | `storage-local` | [`LocalStorage`] | size + modification time (ns) |
//! | S3 and S3-compatible stores (aws-sdk-s3) | `storage-s3` | [`S3Storage`] | ETag |
//!
//! GCS and Azure Blob are planned; their features are not declared yet.
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

mod path;

#[cfg(feature = "storage-local")]
mod local;
#[cfg(feature = "storage-memory")]
mod memory;
#[cfg(feature = "storage-s3")]
mod s3;

pub use path::{MAX_KEY_LEN, ObjectPath};

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
use std::time::SystemTime;
use tracing::Instrument;

/// A boxed, sendable future: what [`Backend`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

    #[cfg(any(feature = "storage-memory", feature = "storage-local"))]
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
    /// Presigned URLs.
    pub presign: bool,
}

/// The object-storage backend trait. Keys reaching a backend are already validated.
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
    /// One level under `prefix`.
    fn list_with_delimiter<'a>(
        &'a self,
        prefix: Option<&'a ObjectPath>,
    ) -> BoxFuture<'a, Result<ListResult>>;
    /// Copies `from` to `to` (metadata included).
    fn copy<'a>(&'a self, from: &'a ObjectPath, to: &'a ObjectPath) -> BoxFuture<'a, Result<()>>;
    /// Moves `from` to `to`; the default copies then deletes.
    fn rename<'a>(&'a self, from: &'a ObjectPath, to: &'a ObjectPath) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.copy(from, to).await?;
            self.delete(from).await
        })
    }
}

/// The storage handle applications use; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("backend", &self.backend.name())
            .finish()
    }
}

impl Storage {
    /// Over `backend`.
    pub fn new<B: Backend>(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
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

    async fn call<T>(
        &self,
        op: &'static str,
        path: Option<&ObjectPath>,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let system = self.backend.name();
        let span = tracing::debug_span!(
            "storage",
            otel.name = op,
            storage.system = system,
            storage.key = path.map(ObjectPath::as_str),
        );
        fut.instrument(span).await.map_err(|e| {
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
        })
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
        self.call("put", Some(path), self.backend.put(path, bytes, options))
            .await
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
        self.call("get", Some(path), self.backend.get(path, options))
            .await
    }

    /// Metadata.
    ///
    /// # Errors
    /// `NotFound` when there is none.
    pub async fn head(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        self.call("head", Some(path), self.backend.head(path)).await
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
        self.call("delete", Some(path), self.backend.delete(path))
            .await
    }

    /// Deletes many.
    ///
    /// # Errors
    /// The first failure.
    pub async fn delete_many(&self, paths: &[ObjectPath]) -> Result<()> {
        for p in paths {
            self.delete(p).await?;
        }
        Ok(())
    }

    /// Every object under `prefix`, recursively, in key order.
    ///
    /// # Errors
    /// The backend's errors.
    pub async fn list(&self, prefix: Option<&ObjectPath>) -> Result<Vec<ObjectMeta>> {
        self.call("list", prefix, self.backend.list(prefix, None))
            .await
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
        self.call("list", prefix, self.backend.list(prefix, Some(after)))
            .await
    }

    /// One level under `prefix`: objects and common prefixes.
    ///
    /// # Errors
    /// The backend's errors.
    pub async fn list_with_delimiter(&self, prefix: Option<&ObjectPath>) -> Result<ListResult> {
        self.call(
            "list_with_delimiter",
            prefix,
            self.backend.list_with_delimiter(prefix),
        )
        .await
    }

    /// Copies `from` to `to`.
    ///
    /// # Errors
    /// `NotFound` when `from` is absent.
    pub async fn copy(&self, from: &ObjectPath, to: &ObjectPath) -> Result<()> {
        self.call("copy", Some(from), self.backend.copy(from, to))
            .await
    }

    /// Moves `from` to `to`.
    ///
    /// # Errors
    /// `NotFound` when `from` is absent.
    pub async fn rename(&self, from: &ObjectPath, to: &ObjectPath) -> Result<()> {
        self.call("rename", Some(from), self.backend.rename(from, to))
            .await
    }
}

/// Shared by the in-process backends: one directory level of a sorted key list.
#[cfg(any(feature = "storage-memory", feature = "storage-local"))]
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
