//! Object keys: one validated path type, so one key means the same object on every backend.

use crate::{Error, Result};
use std::fmt;

/// Longest key accepted, in bytes (S3's and GCS's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// A validated object key: UTF-8, `/`-separated, no empty segments, no `.` or `..` segments, no
/// leading or trailing `/`, no control characters or backslashes, at most [`MAX_KEY_LEN`]
/// bytes. Spaces, percent signs and any other Unicode are kept as they are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectPath(String);

impl ObjectPath {
    /// Checks and wraps `key`.
    ///
    /// # Errors
    /// [`InvalidInput`](crate::ErrorKind::InvalidInput) saying what is wrong.
    pub fn new(key: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid_input(format!("object key {key:?}: {why}"));
        if key.is_empty() {
            return Err(bad("empty"));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(bad(&format!("over {MAX_KEY_LEN} bytes")));
        }
        if key.chars().any(|c| c.is_control()) {
            return Err(bad("contains a control character"));
        }
        if key.contains('\\') {
            return Err(bad("contains a backslash (use '/')"));
        }
        if key.starts_with('/') || key.ends_with('/') {
            return Err(bad("starts or ends with '/'"));
        }
        for segment in key.split('/') {
            match segment {
                "" => return Err(bad("has an empty segment ('//')")),
                "." | ".." => return Err(bad("has a '.' or '..' segment")),
                _ => {}
            }
        }
        Ok(Self(key.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self/child` (child validated).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn join(&self, child: &str) -> Result<Self> {
        Self::new(&format!("{}/{child}", self.0))
    }

    /// The last segment.
    pub fn filename(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Whether `self` is under the directory-like `prefix` (`a/b` is under `a`, not under `a/`
    /// or `ab`).
    pub fn is_under(&self, prefix: &ObjectPath) -> bool {
        self.0
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for ObjectPath {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<String> for ObjectPath {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(&s)
    }
}

impl AsRef<str> for ObjectPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        for ok in [
            "a",
            "a/b/c.txt",
            "ünïcode/ключ",
            "with space/100% sure",
            "a/.hidden",
            "a/..b",
        ] {
            assert_eq!(ObjectPath::new(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "", "/abs", "a/", "a//b", "../x", "a/../b", "./a", "a/.", "a\\b", "a\0b", "a\nb",
        ] {
            let e = ObjectPath::new(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(ObjectPath::new(&"a".repeat(1025)).is_err());
        let p = ObjectPath::new("a/b/c").unwrap();
        assert!(p.is_under(&ObjectPath::new("a/b").unwrap()));
        assert!(!p.is_under(&ObjectPath::new("a/b/c").unwrap()));
        assert!(
            !ObjectPath::new("ab")
                .unwrap()
                .is_under(&ObjectPath::new("a").unwrap())
        );
        assert_eq!(p.filename(), "c");
    }
}
