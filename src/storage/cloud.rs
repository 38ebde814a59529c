//! Pieces the three cloud backends (S3, GCS, Azure) share: bounded calls, paged listing, URL
//! encoding.

#[allow(unused_imports)]
use super::*;
use crate::{Error, Result};
use std::future::Future;
use std::time::{Duration, SystemTime};

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
