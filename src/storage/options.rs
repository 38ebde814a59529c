//! What a put or a get asks for: modes, conditions, metadata, ranges.

#[allow(unused_imports)]
use super::*;
use crate::{Error, ErrorKind, Result};
use std::collections::BTreeMap;

/// How a put treats an existing object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PutMode {
    /// Replace whatever is there.
    #[default]
    Overwrite,
    /// Only if nothing is there: else [`AlreadyExists`](crate::ErrorKind::AlreadyExists).
    Create,
    /// Only if the current version is this one (compare-and-swap): else
    /// [`PreconditionFailed`](crate::ErrorKind::PreconditionFailed).
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
    /// User metadata. The portable contract, checked before any request so that what is
    /// stored reads back the same on every backend: keys are lower-case ASCII letters, digits,
    /// `-` and `_` (S3 and Azure lower-case keys; Azure also refuses `-`); values are
    /// non-empty printable ASCII without leading or trailing spaces (S3 drops empty values and
    /// trims, Azure drops non-ASCII; percent-encode other text yourself).
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

    pub(crate) fn check(&self) -> Result<()> {
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
        if let Some(v) = &self.content_disposition
            && !v.is_ascii()
        {
            return Err(Error::invalid_input(format!(
                "content disposition {v:?} is not ASCII (not every backend keeps it): write a \
                 non-ASCII file name as filename*=UTF-8''<percent-encoded> (RFC 6266)"
            )));
        }
        for (k, v) in &self.metadata {
            if k.is_empty()
                || !k
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                return Err(Error::invalid_input(format!(
                    "metadata key {k:?}: use lower-case ASCII letters, digits, '-' and '_' \
                     (S3 and Azure lower-case keys)"
                )));
            }
            if v.is_empty() || v.trim() != v || !v.chars().all(|c| matches!(c, ' '..='~')) {
                return Err(Error::invalid_input(format!(
                    "metadata {k:?} value {v:?}: use non-empty printable ASCII without leading \
                     or trailing spaces (S3 drops empty values and trims, Azure drops non-ASCII)"
                )));
            }
        }
        Ok(())
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
