//! The trait every storage backend implements, and what it says it can do.

#[allow(unused_imports)]
use super::*;
use crate::{Error, ErrorKind, Result};
use bytes::Bytes;
use std::time::Duration;

/// What a backend supports; an unsupported operation returns
/// [`Unsupported`](crate::ErrorKind::Unsupported).
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

/// The object-storage backend trait. Keys reaching a backend are already validated (and
/// scoped under the handle's prefix); retries, deadlines and spans are the handle's.
pub trait Backend: std::any::Any + Send + Sync {
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
    /// Releases what the backend holds open. The built-in backends speak HTTP over pooled
    /// connections that close when the last handle is dropped, so the default does nothing.
    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The smallest part size [`Storage::with_part_size`] accepts (S3's minimum).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The default part size of streaming uploads.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
