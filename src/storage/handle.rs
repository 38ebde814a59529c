//! The `Storage` handle: scoping, checks, retries and instrumentation around a backend.

#[allow(unused_imports)]
use super::*;
use crate::{Error, ErrorKind, Result};
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The storage handle applications use; cheap to clone.
///
/// A handle adds to its backend: key scoping under a prefix ([`scoped`](Self::scoped)),
/// retries with a per-attempt timeout and an overall deadline ([`RetryPolicy`]), streaming
/// uploads cut into parts uploaded a few at a time, checks before any request, and a `tracing`
/// span per call.
///
/// ```
/// # #[cfg(feature = "storage-memory")]
/// # block_on(async {
/// use corekit::storage::{MemoryStorage, ObjectPath, PutOptions, Storage};
///
/// let storage = Storage::new(MemoryStorage::new()); // or Storage::from_env() (STORAGE_URL=s3://..)
/// let key = ObjectPath::new("invoices/2026/42.pdf")?;
/// let options = PutOptions::default().content_type("application/pdf");
/// storage.put(&key, "%PDF-1.7 ...".into(), &options).await?;
/// let object = storage.get(&key).await?;
/// assert_eq!(object.meta.content_type.as_deref(), Some("application/pdf"));
/// let listed = storage.list(Some(&ObjectPath::new("invoices")?)).await?;
/// assert_eq!(listed.len(), 1);
/// # Ok::<(), corekit::Error>(()) }).unwrap();
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct Storage {
    backend: Arc<dyn Backend>,
    /// Where the store is and which variables said so (from `from_env`), added to errors
    /// about reaching it.
    origin: Option<Arc<str>>,
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
            origin: None,
            backend: Arc::new(backend),
            prefix: None,
            retry: RetryPolicy::default(),
            part_size: DEFAULT_PART_SIZE,
            upload_concurrency: 4,
        }
    }

    /// The backend's name (`memory`, `local`, `s3`, `gcs`, `azure`).
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The concrete backend when it is a `B`, for calls the storage API does not cover (Go
    /// CDK's `As`):
    ///
    /// ```
    /// # #[cfg(feature = "storage-memory")]
    /// # fn run() {
    /// use corekit::storage::{MemoryStorage, Storage};
    /// let storage = Storage::new(MemoryStorage::new());
    /// assert!(storage.downcast_ref::<MemoryStorage>().is_some());
    /// # }
    /// ```
    pub fn downcast_ref<B: Backend>(&self) -> Option<&B> {
        let any: &dyn std::any::Any = self.backend.as_ref();
        any.downcast_ref::<B>()
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
        let call = crate::instrument::Call::new(crate::instrument::Module::Storage, system, op);
        let span = || {
            tracing::debug_span!(
                "storage",
                otel.name = op,
                storage.system = system,
                storage.key = path.map(ObjectPath::as_str),
            )
        };
        let attempts = self.retry.run(idempotent, attempt);
        crate::instrument::call(call, tracing::Level::DEBUG, span, attempts)
            .await
            .map_err(|e| e.at_origin(self.origin.as_deref()))
    }

    /// Notes where the store is (and which variables said so) for errors about reaching it.
    pub(crate) fn with_origin(mut self, origin: String) -> Self {
        self.origin = Some(origin.into());
        self
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
                self.backend_name(),
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
        let call =
            crate::instrument::Call::new(crate::instrument::Module::Storage, system, "put_stream");
        let span = || {
            tracing::debug_span!(
                "storage",
                otel.name = "put_stream",
                storage.system = system,
                storage.key = full.as_str(),
            )
        };
        let (backend, retry) = (&self.backend, self.retry);
        let upload = upload::drive(
            stream,
            self.part_size,
            self.upload_concurrency,
            async || backend.start_upload(&full, options).await,
            async |upload: &dyn Upload, part: Part| {
                retry.run(true, || upload.put_part(part.clone())).await
            },
        );
        let body = crate::instrument::call(call, tracing::Level::DEBUG, span, upload)
            .await
            .map_err(|e| e.at_origin(self.origin.as_deref()))?;
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
                .map_err(move |e| {
                    e.or_context(system, "list")
                        .at_origin(self.origin.as_deref())
                })
                .boxed(),
            Err(e) => futures_util::stream::once(std::future::ready(Err(e))).boxed(),
        }
    }

    /// As [`list`](Self::list), starting after `after`: only keys that sort after it (byte
    /// order) are returned, whatever the server answers. SeaweedFS's S3 gateway also leaves
    /// out some keys that do sort after it (start-after `s` drops `s/a`); no client-side check
    /// can bring those back, so page with `list_stream` there when every key matters.
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
        // A server may return keys at or before the start point (SeaweedFS does).
        Ok(listed
            .into_iter()
            .filter(|m| after.as_ref().is_none_or(|a| m.path.as_str() > a.as_str()))
            .map(|m| self.relative_meta(m))
            .collect())
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

    /// Moves `from` to `to` (not retried: a lost answer may hide a completed move). Renaming
    /// an object onto itself changes nothing (on every backend: a copy-then-delete would
    /// otherwise delete it).
    ///
    /// # Errors
    /// `NotFound` when `from` is absent.
    pub async fn rename(&self, from: &ObjectPath, to: &ObjectPath) -> Result<()> {
        let (from, to) = (self.full(from)?, self.full(to)?);
        if from == to {
            return self
                .call("rename", Some(&from), true, || self.backend.head(&from))
                .await
                .map(drop);
        }
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
            return refused.map_err(|e| e.or_context(self.backend_name(), "presign"));
        };
        if expires.is_zero() || expires > max {
            return Err(Error::invalid_input(format!(
                "presigned URL expiry {expires:?}: the {} backend signs between 1 s and {max:?}",
                self.backend_name()
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

    /// Releases what the backend holds open; calls made afterwards may fail. Clones share
    /// the backend, so close once, at shutdown.
    ///
    /// # Errors
    /// The backend's error when closing fails.
    pub async fn close(&self) -> Result<()> {
        self.call("close", None, false, || self.backend.close())
            .await
    }
}
