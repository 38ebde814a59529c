//! The one instrumentation layer every module's backend calls go through, and the hooks an
//! exporter plugs into.
//!
//! Every backend call of every module runs in one call wrapper: a `tracing` span (only built when its
//! level is enabled), the call's duration and outcome reported to the installed [`Recorder`],
//! and the backend and operation added to an error that lacks them. Trace context travels in
//! message headers through the [`Carrier`] trait and the installed [`Propagator`].
//!
//! The hooks follow `tracing`'s dispatcher: nothing is installed by default, and an uninstalled
//! hook costs one atomic load per call. [`observability::init`](crate) installs both (feature
//! `observability`); a service with its own metrics pipeline can install its own instead:
//!
//! ```
//! use corekit::instrument::{Call, Recorder};
//! use std::time::Duration;
//!
//! struct PrintSlowCalls;
//! impl Recorder for PrintSlowCalls {
//!     fn record(&self, call: &Call, elapsed: Duration, error: Option<&corekit::Error>) {
//!         if elapsed > Duration::from_millis(100) || error.is_some() {
//!             eprintln!("{} {} {} took {elapsed:?}", call.module.name(), call.system, call.operation);
//!         }
//!     }
//! }
//! // Returns false when a recorder was installed before: the first one stays.
//! let _installed = corekit::instrument::set_recorder(Box::new(PrintSlowCalls));
//! ```

use crate::{Error, Result};
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

/// The module a call belongs to; a [`Recorder`] picks its instruments by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Module {
    /// `cache`: recorded as `db.client.operation.duration` by `observability`.
    Cache,
    /// `queue`: `messaging.client.operation.duration`.
    Queue,
    /// `storage`: `corekit.storage.operation.duration`.
    Storage,
    /// `email`: `corekit.email.send.duration` (each send attempt).
    Email,
    /// `scheduler`: `corekit.scheduler.operation.duration` (job store calls and job runs).
    Scheduler,
}

impl Module {
    /// The module's name (`"cache"`, `"queue"`, ...), as its spans are named.
    pub fn name(self) -> &'static str {
        match self {
            Module::Cache => "cache",
            Module::Queue => "queue",
            Module::Storage => "storage",
            Module::Email => "email",
            Module::Scheduler => "scheduler",
        }
    }
}

/// What one instrumented call was: module, backend (`system`) and operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Call {
    /// The module.
    pub module: Module,
    /// The backend's short name (`"redis"`, `"s3"`, `"smtp"`, ...).
    pub system: &'static str,
    /// The operation (`"get"`, `"publish"`, `"put"`, `"send"`, ...).
    pub operation: &'static str,
}

impl Call {
    /// A call of `module`'s `system` backend doing `operation`.
    pub fn new(module: Module, system: &'static str, operation: &'static str) -> Self {
        Self {
            module,
            system,
            operation,
        }
    }
}

/// Receives the duration and outcome of every instrumented call (metrics).
///
/// Called on the caller's task right after the call finishes: keep it cheap and never block.
pub trait Recorder: Send + Sync + 'static {
    /// One call finished after `elapsed`, failing with `error` if it did.
    fn record(&self, call: &Call, elapsed: Duration, error: Option<&Error>);
}

/// Text headers that carry trace context (a queue message's headers, say).
pub trait Carrier {
    /// The value of `key`, if present.
    fn get(&self, key: &str) -> Option<&str>;
    /// Sets `key` to `value`, replacing what was there.
    fn set(&mut self, key: &str, value: String);
    /// Every key present.
    fn keys(&self) -> Vec<&str>;
}

/// Writes the current trace context into a [`Carrier`] and continues a trace read from one.
pub trait Propagator: Send + Sync + 'static {
    /// Writes the current span's context (W3C `traceparent`, `baggage`, ...) into `carrier`.
    fn inject(&self, carrier: &mut dyn Carrier);
    /// Makes `span` a child of the context `carrier` holds (before `span` is entered).
    fn extract(&self, carrier: &dyn Carrier, span: &tracing::Span);
}

static RECORDER: OnceLock<Box<dyn Recorder>> = OnceLock::new();
static PROPAGATOR: OnceLock<Box<dyn Propagator>> = OnceLock::new();

/// Installs the process-wide [`Recorder`]; returns false (and drops `recorder`) when one is
/// already installed.
pub fn set_recorder(recorder: Box<dyn Recorder>) -> bool {
    RECORDER.set(recorder).is_ok()
}

/// Installs the process-wide [`Propagator`]; returns false (and drops `propagator`) when one is
/// already installed.
pub fn set_propagator(propagator: Box<dyn Propagator>) -> bool {
    PROPAGATOR.set(propagator).is_ok()
}

/// Writes the current trace context into `carrier` with the installed [`Propagator`] (nothing
/// when none is installed).
pub fn inject(carrier: &mut dyn Carrier) {
    if let Some(p) = PROPAGATOR.get() {
        p.inject(carrier);
    }
}

/// Makes `span` continue the trace `carrier` holds, with the installed [`Propagator`].
pub fn extract(carrier: &dyn Carrier, span: &tracing::Span) {
    if let Some(p) = PROPAGATOR.get() {
        p.extract(carrier, span);
    }
}

/// Runs one backend call: inside the span `span` builds (only when `level` is enabled, since
/// building even a disabled span costs more than a memory-cache hit), timed for the installed
/// [`Recorder`], its error given the call's backend and operation where it has none.
#[cfg_attr(
    not(any(
        feature = "_cache",
        feature = "_queue",
        feature = "_storage",
        feature = "_email",
        feature = "scheduler"
    )),
    allow(dead_code)
)]
pub(crate) fn call<T, F>(
    call: Call,
    level: tracing::Level,
    span: impl FnOnce() -> tracing::Span,
    fut: F,
) -> impl Future<Output = Result<T>>
where
    F: Future<Output = Result<T>>,
{
    use futures_util::FutureExt as _;
    use futures_util::future::Either;
    use tracing::Instrument as _;
    // A combinator, not an `async fn`: an async fn keeps its argument future and the one it
    // awaits side by side, so each layer doubled the size of a Redis call's future (16 KB for
    // a cache get, measured) and every poll chain moved that much memory.
    let recorder = RECORDER.get();
    let start = recorder.map(|_| std::time::Instant::now());
    let fut = if tracing::level_enabled!(level) {
        Either::Left(fut.instrument(span()))
    } else {
        Either::Right(fut)
    };
    fut.map(move |result| {
        if let (Some(r), Some(start)) = (recorder, start) {
            r.record(&call, start.elapsed(), result.as_ref().err());
        }
        result.map_err(|e| e.or_context(call.system, call.operation))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[tokio::test]
    async fn errors_get_the_calls_context_unless_they_have_their_own() {
        let c = Call::new(Module::Cache, "redis", "get");
        let span = || tracing::Span::none();
        let e = call(c, tracing::Level::DEBUG, span, async {
            Err::<(), _>(Error::new(ErrorKind::Timeout, "slow"))
        })
        .await
        .unwrap_err();
        assert_eq!((e.backend(), e.operation()), (Some("redis"), Some("get")));
        let e = call(c, tracing::Level::DEBUG, span, async {
            Err::<(), _>(Error::new(ErrorKind::Timeout, "slow").with_operation("eval"))
        })
        .await
        .unwrap_err();
        assert_eq!((e.backend(), e.operation()), (Some("redis"), Some("eval")));
        assert_eq!(
            call(c, tracing::Level::DEBUG, span, async { Ok(3) })
                .await
                .unwrap(),
            3
        );
    }
}
