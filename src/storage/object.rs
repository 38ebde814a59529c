//! The values objects are described by: versions, metadata, byte ranges, results.

#[allow(unused_imports)]
use super::*;
use crate::{Error, Result};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

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
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) for an empty range or one that starts past the
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
