//! The one error type every corekit module returns.
//!
//! An [`Error`] carries a [`ErrorKind`] that callers match on, the backend and operation it came
//! from, a message a person can act on, and the underlying error as
//! [`source()`](std::error::Error::source).
//!
//! ```
//! use corekit::{Error, ErrorKind};
//!
//! let err = Error::new(ErrorKind::Timeout, "no reply within 500ms")
//!     .with_backend("redis")
//!     .with_operation("get");
//! assert_eq!(err.kind(), ErrorKind::Timeout);
//! assert!(err.is_retryable());
//! assert_eq!(err.to_string(), "redis get timed out: no reply within 500ms");
//! ```

use std::borrow::Cow;
use std::fmt;

/// The boxed underlying cause of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in the few categories a caller branches on.
///
/// New kinds may be added in minor releases, so a `match` needs a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The key, object, message or job does not exist.
    NotFound,
    /// A create-only operation found the target already there.
    AlreadyExists,
    /// A concurrent change won: the caller's view is stale (lost race, version mismatch).
    Conflict,
    /// A condition the caller attached (if-match, if-none-match) did not hold.
    PreconditionFailed,
    /// The caller passed something that can never succeed (empty key, header with CR/LF, oversize
    /// value). Rejected before any server call.
    InvalidInput,
    /// The configuration is invalid: a variable is missing, malformed or out of range.
    Config,
    /// The operation did not finish within its deadline.
    Timeout,
    /// The server could not be reached or is temporarily refusing work.
    Unavailable,
    /// The backend cannot do this operation.
    Unsupported,
    /// The credentials were rejected or lack the permission.
    PermissionDenied,
    /// The backend failed in a way that fits no other kind; see the source.
    Backend,
}

impl ErrorKind {
    /// Whether an error of this kind is worth retrying as is, absent other information.
    ///
    /// Timeouts and unavailable servers are; everything else needs a change first.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Timeout | ErrorKind::Unavailable)
    }

    /// The phrase used in [`Error`]'s `Display`, e.g. "timed out".
    fn phrase(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "found nothing",
            ErrorKind::AlreadyExists => "found it already exists",
            ErrorKind::Conflict => "lost to a concurrent change",
            ErrorKind::PreconditionFailed => "failed its precondition",
            ErrorKind::InvalidInput => "was given invalid input",
            ErrorKind::Config => "is misconfigured",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Unavailable => "could not reach the server",
            ErrorKind::Unsupported => "is not supported",
            ErrorKind::PermissionDenied => "was denied permission",
            ErrorKind::Backend => "failed",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PreconditionFailed => "precondition failed",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Config => "invalid configuration",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Backend => "backend error",
        };
        f.write_str(name)
    }
}

/// The error type of every corekit operation.
///
/// `Display` reads as one sentence: `"<backend> <operation> <what happened>: <message>: <cause>"`,
/// leaving out the parts that are unknown. Config errors read
/// `invalid configuration: CACHE_DEFAULT_TTL="ten": expected a duration like 30s, 250ms or 5m`.
pub struct Error {
    // Boxed so `Result<T, Error>` stays small on the hot path.
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    backend: Option<Cow<'static, str>>,
    operation: Option<Cow<'static, str>>,
    message: Cow<'static, str>,
    retryable: Option<bool>,
    source: Option<BoxError>,
}

impl Error {
    /// An error of `kind` with a message saying what failed and, where it helps, what to do.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                backend: None,
                operation: None,
                message: message.into(),
                retryable: None,
                source: None,
            }),
        }
    }

    /// An [`ErrorKind::InvalidInput`] error.
    pub fn invalid_input(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    /// An [`ErrorKind::Config`] error.
    pub fn config(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// An [`ErrorKind::Unsupported`] error naming the backend and the operation it cannot do.
    pub fn unsupported(
        backend: &'static str,
        operation: &'static str,
        why: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(ErrorKind::Unsupported, why)
            .with_backend(backend)
            .with_operation(operation)
    }

    /// Names the backend the error came from (`"redis"`, `"s3"`, ...).
    pub fn with_backend(mut self, backend: impl Into<Cow<'static, str>>) -> Self {
        self.inner.backend = Some(backend.into());
        self
    }

    /// Names the operation that failed (`"get"`, `"publish"`, ...).
    pub fn with_operation(mut self, operation: impl Into<Cow<'static, str>>) -> Self {
        self.inner.operation = Some(operation.into());
        self
    }

    /// Names the backend and operation where the error does not name them yet: a backend's own
    /// more precise words (an inner `"eval"` under a `"get"`) win.
    pub fn or_context(
        mut self,
        backend: impl Into<Cow<'static, str>>,
        operation: impl Into<Cow<'static, str>>,
    ) -> Self {
        if self.inner.backend.is_none() {
            self.inner.backend = Some(backend.into());
        }
        if self.inner.operation.is_none() {
            self.inner.operation = Some(operation.into());
        }
        self
    }

    /// Puts `what` (where the failure happened: `connecting to redis://host:6379`) in front of
    /// the message.
    pub fn with_context(mut self, what: impl fmt::Display) -> Self {
        self.inner.message = if self.inner.message.is_empty() {
            what.to_string().into()
        } else {
            format!("{what}: {}", self.inner.message).into()
        };
        self
    }

    /// Puts `origin` (where the server is and which variable named it) in front of the
    /// message when reaching the server is what failed (`Unavailable`, `Timeout`,
    /// `PermissionDenied`); other errors are about the request and stay as they are.
    #[cfg(any(feature = "_storage", feature = "_email"))]
    pub(crate) fn at_origin(self, origin: Option<&str>) -> Self {
        match origin {
            Some(origin)
                if matches!(
                    self.kind(),
                    ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::PermissionDenied
                ) =>
            {
                self.with_context(origin)
            }
            _ => self,
        }
    }

    /// Keeps `source` as the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// The error with the passwords of `urls` taken out of its message, and its cause dropped
    /// when that quotes one (client libraries may print the URL they were given).
    #[cfg(feature = "queue-rabbitmq")]
    pub(crate) fn scrubbed(mut self, urls: &str) -> Self {
        use crate::config::scrub;
        self.inner.message = scrub(&self.inner.message, urls).into();
        if let Some(source) = &self.inner.source {
            let shown = format!("{source} {source:?}");
            if scrub(&shown, urls) != shown {
                self.inner.source = None;
            }
        }
        self
    }

    /// Overrides [`is_retryable`](Self::is_retryable) where the backend knows better than the kind
    /// (an HTTP 503 reported as [`ErrorKind::Backend`], say).
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.inner.retryable = Some(retryable);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The backend the error came from, when known.
    pub fn backend(&self) -> Option<&str> {
        self.inner.backend.as_deref()
    }

    /// The operation that failed, when known.
    pub fn operation(&self) -> Option<&str> {
        self.inner.operation.as_deref()
    }

    /// The message, without backend, operation or cause.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Whether the same call may succeed if tried again unchanged: true for timeouts and
    /// unavailable servers, false for invalid input, not-found and the like, unless the backend
    /// said otherwise with [`with_retryable`](Self::with_retryable).
    pub fn is_retryable(&self) -> bool {
        self.inner
            .retryable
            .unwrap_or_else(|| self.inner.kind.is_retryable())
    }

    /// True for [`ErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.inner.kind == ErrorKind::NotFound
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.inner.backend, &self.inner.operation) {
            (None, None) if self.inner.kind == ErrorKind::Config => {
                f.write_str("invalid configuration")?
            }
            (None, None) => write!(f, "{}", self.inner.kind)?,
            (Some(b), None) => write!(f, "{b} {}", self.inner.kind.phrase())?,
            (None, Some(op)) => write!(f, "{op} {}", self.inner.kind.phrase())?,
            (Some(b), Some(op)) => write!(f, "{b} {op} {}", self.inner.kind.phrase())?,
        }
        if !self.inner.message.is_empty() {
            write!(f, ": {}", self.inner.message)?;
        }
        if let Some(source) = &self.inner.source {
            // Messages often quote their cause already; say it once.
            let cause = source.to_string();
            if !self.inner.message.contains(&cause) {
                write!(f, ": {cause}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(b) = &self.inner.backend {
            d.field("backend", b);
        }
        if let Some(op) = &self.inner.operation {
            d.field("operation", op);
        }
        if !self.inner.message.is_empty() {
            d.field("message", &self.inner.message);
        }
        if let Some(r) = self.inner.retryable {
            d.field("retryable", &r);
        }
        // The cause as its words, not its Debug form: `fn main() -> Result` prints this, and
        // SDK errors' Debug forms carry whole backtraces.
        if let Some(s) = &self.inner.source {
            d.field("source", &chain_text(s.as_ref()));
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match err.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::AlreadyExists => ErrorKind::AlreadyExists,
            Io::PermissionDenied => ErrorKind::PermissionDenied,
            Io::InvalidInput | Io::InvalidData => ErrorKind::InvalidInput,
            Io::TimedOut => ErrorKind::Timeout,
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::BrokenPipe
            | Io::Interrupted
            | Io::WouldBlock => ErrorKind::Unavailable,
            Io::Unsupported => ErrorKind::Unsupported,
            _ => ErrorKind::Backend,
        };
        Error::new(kind, "").with_source(err)
    }
}

/// `error` and every `source()` below it, joined with `": "`: the whole story in one line, for
/// clients whose top-level message hides the useful part (a missing variable, a bad certificate).
pub(crate) fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// Bounds a backend call: past `limit` it fails with a retryable [`ErrorKind::Timeout`] whose
/// message `what` builds (only then).
#[cfg(any(
    feature = "queue-kafka",
    feature = "queue-rabbitmq",
    feature = "queue-nats",
    feature = "email-smtp",
    feature = "email-sendgrid",
    feature = "email-ses",
    feature = "storage-s3",
    feature = "storage-gcs",
    feature = "storage-azure"
))]
pub(crate) async fn bounded<T>(
    limit: std::time::Duration,
    what: impl FnOnce() -> String,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("{} did not finish within {limit:?}", what()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    const ALL: [ErrorKind; 11] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::Conflict,
        ErrorKind::PreconditionFailed,
        ErrorKind::InvalidInput,
        ErrorKind::Config,
        ErrorKind::Timeout,
        ErrorKind::Unavailable,
        ErrorKind::Unsupported,
        ErrorKind::PermissionDenied,
        ErrorKind::Backend,
    ];

    #[test]
    fn only_timeouts_and_unavailable_are_retryable() {
        for kind in ALL {
            let expected = matches!(kind, ErrorKind::Timeout | ErrorKind::Unavailable);
            assert_eq!(Error::new(kind, "x").is_retryable(), expected, "{kind:?}");
            assert_eq!(kind.is_retryable(), expected, "{kind:?}");
        }
    }

    #[test]
    fn retryable_override_wins() {
        let e = Error::new(ErrorKind::Backend, "HTTP 503").with_retryable(true);
        assert!(e.is_retryable());
        let e = Error::new(ErrorKind::Timeout, "deadline spent").with_retryable(false);
        assert!(!e.is_retryable());
    }

    #[test]
    fn display_is_one_sentence_for_every_kind() {
        for kind in ALL {
            let full = Error::new(kind, "details")
                .with_backend("redis")
                .with_operation("get")
                .to_string();
            assert!(full.starts_with("redis get "), "{full}");
            assert!(full.ends_with(": details"), "{full}");
            assert!(!full.contains('\n'), "{full}");
            let bare = Error::new(kind, "details").to_string();
            assert!(bare.ends_with(": details"), "{bare}");
            assert!(!kind.to_string().is_empty());
        }
    }

    #[test]
    fn display_examples() {
        let e = Error::new(ErrorKind::NotFound, "key \"a\"").with_backend("redis");
        assert_eq!(e.to_string(), "redis found nothing: key \"a\"");
        let e = Error::config("CACHE_DEFAULT_TTL=\"ten\": expected a duration like 30s");
        assert_eq!(
            e.to_string(),
            "invalid configuration: CACHE_DEFAULT_TTL=\"ten\": expected a duration like 30s"
        );
        let e = Error::unsupported("memory", "presign", "an in-memory store has no URLs");
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert_eq!(
            e.to_string(),
            "memory presign is not supported: an in-memory store has no URLs"
        );
        let e = Error::invalid_input("empty key").with_operation("set");
        assert_eq!(e.to_string(), "set was given invalid input: empty key");
        // A message that already quotes its cause does not repeat it.
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::new(ErrorKind::Unavailable, "connecting: refused").with_source(io);
        assert_eq!(e.to_string(), "unavailable: connecting: refused");
    }

    #[test]
    fn source_is_kept_and_shown() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::from(io).with_backend("redis").with_operation("ping");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("refused")
        );
        assert_eq!(
            e.to_string(),
            "redis ping could not reach the server: refused"
        );
        assert_eq!(e.backend(), Some("redis"));
        assert_eq!(e.operation(), Some("ping"));
        assert!(format!("{e:?}").contains("Unavailable"));
    }

    #[cfg(any(feature = "_storage", feature = "_email"))]
    #[test]
    fn the_origin_is_named_only_when_reaching_the_server_failed() {
        let at = Some("S3 bucket \"b\" at http://h:1");
        let e = Error::new(ErrorKind::Unavailable, "refused").at_origin(at);
        assert_eq!(e.message(), "S3 bucket \"b\" at http://h:1: refused");
        let e = Error::new(ErrorKind::NotFound, "no such key").at_origin(at);
        assert_eq!(e.message(), "no such key");
        let e = Error::new(ErrorKind::Timeout, "slow").at_origin(None);
        assert_eq!(e.message(), "slow");
    }

    #[test]
    fn a_cause_the_message_quotes_is_not_repeated() {
        // A message that quotes its cause's chain (cause first, then deeper causes).
        let io = std::io::Error::other("error sending request");
        let e = Error::new(
            ErrorKind::Unavailable,
            "head of x: error sending request: connection refused",
        )
        .with_source(io);
        assert_eq!(
            e.to_string(),
            "unavailable: head of x: error sending request: connection refused"
        );
    }

    #[test]
    fn io_kinds_map() {
        use std::io::{Error as Io, ErrorKind as K};
        let cases = [
            (K::NotFound, ErrorKind::NotFound),
            (K::AlreadyExists, ErrorKind::AlreadyExists),
            (K::PermissionDenied, ErrorKind::PermissionDenied),
            (K::InvalidInput, ErrorKind::InvalidInput),
            (K::TimedOut, ErrorKind::Timeout),
            (K::BrokenPipe, ErrorKind::Unavailable),
            (K::Unsupported, ErrorKind::Unsupported),
            (K::Other, ErrorKind::Backend),
        ];
        for (io, kind) in cases {
            assert_eq!(Error::from(Io::new(io, "x")).kind(), kind, "{io:?}");
        }
        assert!(Error::from(Io::new(K::NotFound, "x")).is_not_found());
    }

    #[test]
    fn debug_is_short_and_shows_the_cause_in_words() {
        /// A cause whose Debug form is an SDK's: long, with a backtrace.
        #[derive(Debug)]
        struct Noisy {
            #[allow(dead_code)]
            backtrace: String,
        }
        impl std::fmt::Display for Noisy {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("container not found")
            }
        }
        impl std::error::Error for Noisy {}
        let e = Error::new(ErrorKind::NotFound, "")
            .with_backend("azure")
            .with_source(Noisy {
                backtrace: "stack backtrace:\n   0: azure_core::...".repeat(50),
            });
        let debug = format!("{e:?}");
        assert!(!debug.contains("backtrace"), "{debug}");
        assert!(
            !debug.contains("message"),
            "no empty message field: {debug}"
        );
        assert!(debug.contains("container not found"), "{debug}");
    }
}
