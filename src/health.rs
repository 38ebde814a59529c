//! One readiness check over every handle's `ping`.

use crate::{Error, ErrorKind, Result};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

type Probe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

/// A readiness check over several dependencies, run at once, each bounded by a timeout: what
/// a `/ready` endpoint answers with. Build it once, [`run`](Self::run) it per request.
///
/// ```
/// # #[cfg(feature = "cache-memory")]
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use corekit::cache::{Cache, MemoryStore};
/// use corekit::health::Health;
/// use std::time::Duration;
///
/// let cache = Cache::builder(MemoryStore::new(100)).build()?;
/// let health = Health::new(Duration::from_secs(2)).check("cache", move || {
///     let cache = cache.clone();
///     async move { cache.ping().await }
/// });
/// let report = health.run().await;
/// assert!(report.is_ready(), "{report}");
/// # Ok::<(), corekit::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Health {
    timeout: Duration,
    probes: Vec<(String, Probe)>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("timeout", &self.timeout)
            .field(
                "checks",
                &self.probes.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Health {
    /// No checks yet; each check must answer within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            probes: Vec::new(),
        }
    }

    /// Adds a check named `name`: `probe` makes the future to await, typically a handle's
    /// `ping()`.
    pub fn check<F, Fut>(mut self, name: impl Into<String>, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.probes
            .push((name.into(), Arc::new(move || Box::pin(probe()))));
        self
    }

    /// Runs every check at once and reports each; a check that does not answer within the
    /// timeout fails with [`ErrorKind::Timeout`].
    pub async fn run(&self) -> HealthReport {
        let mut running = tokio::task::JoinSet::new();
        for (i, (_, probe)) in self.probes.iter().enumerate() {
            let (probe, timeout) = (probe.clone(), self.timeout);
            running.spawn(async move {
                let outcome = match tokio::time::timeout(timeout, probe()).await {
                    Ok(result) => result,
                    Err(_) => Err(Error::new(
                        ErrorKind::Timeout,
                        format!("no answer within {timeout:?}"),
                    )),
                };
                (i, outcome)
            });
        }
        let mut results: Vec<Option<Result<()>>> = self.probes.iter().map(|_| None).collect();
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok((i, outcome)) => results[i] = Some(outcome),
                Err(e) => tracing::warn!(error = %e, "health: a check panicked"),
            }
        }
        HealthReport {
            checks: self
                .probes
                .iter()
                .zip(results)
                .map(|((name, _), outcome)| {
                    let outcome = outcome.unwrap_or_else(|| {
                        Err(Error::new(ErrorKind::Backend, "the check panicked"))
                    });
                    (name.clone(), outcome)
                })
                .collect(),
        }
    }
}

/// What [`Health::run`] found: each check's outcome, in the order they were added.
#[derive(Debug)]
pub struct HealthReport {
    /// Each check's name and outcome.
    pub checks: Vec<(String, Result<()>)>,
}

impl HealthReport {
    /// Whether every check answered.
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, r)| r.is_ok())
    }

    /// The checks that failed, with why.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &Error)> {
        self.checks
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| (n.as_str(), e)))
    }
}

impl std::fmt::Display for HealthReport {
    /// `cache: ok; queue: redis ping could not reach the server: ...`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, outcome)) in self.checks.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match outcome {
                Ok(()) => write!(f, "{name}: ok")?,
                Err(e) => write!(f, "{name}: {e}")?,
            }
        }
        Ok(())
    }
}
