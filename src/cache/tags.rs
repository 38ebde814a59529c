//! Tags: `set_tagged` and `invalidate_tag`, by tag versions.
//!
//! Each tag has a version key in the store holding a random number. A tagged entry is stored
//! with the versions its tags had when it was written (an envelope around the value); a read
//! compares them with the current ones, and an entry whose tag moved on is a miss.
//! `invalidate_tag` writes a new version: one call whatever the number of entries, exact on
//! every store (a write racing an invalidation carries the old version and reads as a miss),
//! nothing to clean up (stale entries expire or are overwritten). A version key that is gone
//! (evicted from a memory store) makes its entries misses, never hits.

use super::{Cache, CacheStore, Codec};
use crate::{Error, ErrorKind, Result};
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use std::time::Duration;

/// Starts every tagged value: 0xFF never starts JSON (not UTF-8), and the rest makes a
/// collision with another codec's or a raw value's first 8 bytes vanishingly unlikely.
const MAGIC: &[u8; 8] = b"\xFFckTAGS\x01";

/// Most tags on one entry.
const MAX_TAGS: usize = 32;
/// Longest tag, in bytes.
const MAX_TAG_LEN: usize = 200;

/// Whether `value` was written by `set_tagged`.
#[inline]
pub(super) fn is_tagged(value: &[u8]) -> bool {
    // The first byte alone settles almost every plain value.
    value.first() == Some(&MAGIC[0]) && value.starts_with(MAGIC)
}

/// A tag is 1-200 printable ASCII characters without spaces, checked before any call.
fn check_tag(tag: &str, op: &'static str) -> Result<()> {
    let ok =
        !tag.is_empty() && tag.len() <= MAX_TAG_LEN && tag.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        return Ok(());
    }
    let shown: String = tag.chars().take(40).collect();
    Err(Error::invalid_input(format!(
        "tag {shown:?} is not 1-{MAX_TAG_LEN} printable ASCII characters without spaces"
    ))
    .with_operation(op))
}

/// `MAGIC`, the tags with their versions, then the value.
fn wrap(tags: &[(&str, u64)], value: &[u8]) -> Bytes {
    let meta: usize = tags.iter().map(|(t, _)| 1 + t.len() + 8).sum();
    let mut out = BytesMut::with_capacity(MAGIC.len() + 1 + meta + value.len());
    out.put_slice(MAGIC);
    // Both bounded by check_tag and MAX_TAGS.
    out.put_u8(tags.len() as u8);
    for (tag, version) in tags {
        out.put_u8(tag.len() as u8);
        out.put_slice(tag.as_bytes());
        out.put_u64_le(*version);
    }
    out.put_slice(value);
    out.freeze()
}

/// A tagged value's tags, each with the version it was written with.
type Versions<'a> = Vec<(&'a [u8], u64)>;

/// The tags and versions of a tagged value, and the value; `None` when it is malformed.
fn unwrap(bytes: &Bytes) -> Option<(Versions<'_>, Bytes)> {
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (&n, mut rest) = rest.split_first()?;
    let mut tags = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (&len, after) = rest.split_first()?;
        let (tag, after) = after.split_at_checked(len as usize)?;
        let (version, after) = after.split_at_checked(8)?;
        tags.push((tag, u64::from_le_bytes(version.try_into().ok()?)));
        rest = after;
    }
    let start = bytes.len() - rest.len();
    Some((tags, bytes.slice(start..)))
}

impl<S: CacheStore, C: Codec> Cache<S, C> {
    /// The store key of `tag`'s version, inside this cache's namespace.
    fn tag_key(&self, tag: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.inner.namespace.len() + 12 + tag.len());
        k.extend_from_slice(self.inner.namespace.as_bytes());
        k.extend_from_slice(b"corekit-tag:");
        k.extend_from_slice(tag);
        k
    }

    /// Stores `value` at `key` with the default TTL, carrying `tags`: [`invalidate_tag`](Self::invalidate_tag)
    /// of any of them makes it a miss.
    ///
    /// # Errors
    /// As [`set_tagged_with_ttl`](Self::set_tagged_with_ttl).
    pub async fn set_tagged<T: Serialize + ?Sized>(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
        value: &T,
        tags: &[&str],
    ) -> Result<()> {
        self.set_tagged_with_ttl(key, value, self.inner.default_ttl, tags)
            .await
    }

    /// Stores `value` at `key`, expiring after `ttl` (`None`: never), carrying `tags`.
    ///
    /// Reading a tagged entry costs one more round trip on Redis (the tags' current versions,
    /// one `MGET` per Cluster slot); writing one, one or two more.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), before any call, for a bad
    /// key, a value over the size limit, more than 32 tags or a tag that is not 1-200
    /// printable ASCII characters without spaces; otherwise as [`set`](Self::set).
    pub async fn set_tagged_with_ttl<T: Serialize + ?Sized>(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
        value: &T,
        ttl: Option<Duration>,
        tags: &[&str],
    ) -> Result<()> {
        let key = key.as_ref();
        let full = self.key(key, "set_tagged")?;
        self.forget_copy(&full);
        let mut tags: Vec<&str> = tags.to_vec();
        tags.sort_unstable();
        tags.dedup();
        if tags.len() > MAX_TAGS {
            return Err(Error::invalid_input(format!(
                "{} tags on one entry; at most {MAX_TAGS}",
                tags.len()
            ))
            .with_operation("set_tagged"));
        }
        for tag in &tags {
            check_tag(tag, "set_tagged")?;
        }
        let value = self.encode(key, value, "set_tagged")?;
        let envelope: usize = tags.iter().map(|t| 1 + t.len() + 8).sum();
        self.check_size(MAGIC.len() + 1 + envelope + value.len(), key, "set_tagged")?;
        let versions = self.tag_versions(&tags).await?;
        let tagged: Vec<(&str, u64)> = tags.iter().copied().zip(versions).collect();
        let bytes = wrap(&tagged, &value);
        let ttl = self.effective_ttl(ttl);
        self.call("set", self.inner.store.set(&full, bytes, ttl))
            .await?;
        self.inner.counters.set();
        Ok(())
    }

    /// Makes every entry carrying `tag` a miss for `get`, `get_bytes`, `get_many` and
    /// `get_or_set`, on every instance sharing the store: one write (a new version for the
    /// tag), whatever the number of entries. The entries themselves stay until they expire or
    /// are overwritten, so `exists`, `ttl` and `set_if_absent` still see them (give tagged
    /// entries a TTL, or write them with `set`/`set_tagged`, which overwrite). The tag's version
    /// key has no TTL: one small key per tag ever invalidated or written, in the namespace.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad tag, before any
    /// call; timeouts and unavailability from the backend.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<()> {
        check_tag(tag, "invalidate_tag")?;
        let version = Bytes::from(fastrand::u64(..).to_string());
        let key = self.tag_key(tag.as_bytes());
        // `set_many`, not `set`: the tiered store writes it to Redis without a near copy, so
        // every instance reads versions from Redis and sees an invalidation at once.
        self.call(
            "invalidate_tag",
            self.inner.store.set_many(vec![(key, version)], None),
        )
        .await
    }

    /// The current version of each tag, creating the missing ones.
    async fn tag_versions(&self, tags: &[&str]) -> Result<Vec<u64>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<u8>> = tags.iter().map(|t| self.tag_key(t.as_bytes())).collect();
        let store = &self.inner.store;
        let found = self.call("get_tags", store.get_many(&keys)).await?;
        let mut versions = Vec::with_capacity(tags.len());
        for (key, found) in keys.iter().zip(found) {
            let version = match found.as_deref().and_then(parse_version) {
                Some(v) => v,
                None => self.create_version(key).await?,
            };
            versions.push(version);
        }
        Ok(versions)
    }

    /// Creates the version at `key`, or reads the one a concurrent writer created first.
    async fn create_version(&self, key: &[u8]) -> Result<u64> {
        let store = &self.inner.store;
        for _ in 0..3 {
            let version = fastrand::u64(..);
            let fresh = Bytes::from(version.to_string());
            if self
                .call("get_tags", store.set_if_absent(key, fresh, None))
                .await?
            {
                return Ok(version);
            }
            // `get_many`, not `get`: the tiered store does not copy it near.
            let found = self
                .call("get_tags", store.get_many(&[key.to_vec()]))
                .await?;
            if let Some(v) = found
                .first()
                .and_then(|f| f.as_deref())
                .and_then(parse_version)
            {
                return Ok(v);
            }
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            "a tag's version kept disappearing while it was created (evicted at once?)",
        )
        .with_backend(store.name())
        .with_operation("set_tagged"))
    }

    /// The value inside a tagged entry when every tag still has the version it was written
    /// with; `None` (a miss) when one moved on, is gone, or the entry is malformed.
    pub(super) async fn untag(&self, bytes: Bytes) -> Result<Option<Bytes>> {
        let Some((tags, value)) = unwrap(&bytes) else {
            return Ok(None);
        };
        if tags.is_empty() {
            return Ok(Some(value));
        }
        let keys: Vec<Vec<u8>> = tags.iter().map(|(t, _)| self.tag_key(t)).collect();
        let current = self
            .call("get_tags", self.inner.store.get_many(&keys))
            .await?;
        let live = tags
            .iter()
            .zip(current)
            .all(|((_, v), now)| now.as_deref().and_then(parse_version) == Some(*v));
        Ok(live.then_some(value))
    }
}

fn parse_version(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_reads_back_and_a_plain_value_is_not_one() {
        let bytes = wrap(&[("a", 1), ("user:42", u64::MAX)], b"{\"x\":1}");
        assert!(is_tagged(&bytes));
        let (tags, value) = unwrap(&bytes).unwrap();
        assert_eq!(tags, vec![(&b"a"[..], 1), (&b"user:42"[..], u64::MAX)]);
        assert_eq!(&value[..], b"{\"x\":1}");
        assert!(!is_tagged(b"{\"x\":1}"));
        // Truncated: malformed, never a panic.
        for cut in 0..bytes.len() - 7 {
            let _ = unwrap(&bytes.slice(..cut));
        }
        assert!(unwrap(&bytes.slice(..MAGIC.len() + 3)).is_none());
    }

    #[test]
    fn tags_are_printable_ascii_without_spaces() {
        for good in ["a", "user:42", "org/7", &"x".repeat(MAX_TAG_LEN)] {
            assert!(check_tag(good, "t").is_ok(), "{good}");
        }
        for bad in ["", "has space", "tab\t", "é", &"x".repeat(MAX_TAG_LEN + 1)] {
            let e = check_tag(bad, "t").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
        }
    }
}
