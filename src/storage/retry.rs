//! Retries with backoff, a per-attempt timeout and a whole-operation deadline.

use crate::retry::Backoff;
use crate::{Error, ErrorKind, Result};
use std::future::Future;
use std::time::Duration;

/// How a [`Storage`](super::Storage) handle retries.
///
/// Two bounds, on purpose different: `attempt_timeout` cuts one request that hangs (and the
/// request is retried), `deadline` bounds the whole operation, retries and backoff included (and
/// nothing is retried after it). A retryable error (`Timeout`, `Unavailable`, 429 and 5xx
/// answers) is retried for idempotent operations only: a create-only or compare-and-swap put
/// whose answer was lost may have succeeded, so it is returned to the caller rather than
/// repeated into a false `AlreadyExists`. Each part of a streaming upload is retried on its own.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts per operation, the first included (default 4; 1 disables retries).
    pub max_attempts: u32,
    /// The wait between attempts (default 100 ms doubling to 5 s, 50% jitter).
    pub backoff: Backoff,
    /// Bound on one attempt (default 30 s; streaming reads: opening the stream).
    pub attempt_timeout: Duration,
    /// Bound on the whole operation (default 2 min; streaming uploads: each part).
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)).jitter(0.5),
            attempt_timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// No retries; the given per-attempt timeout and deadline.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// With `n` attempts in all (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// With this per-attempt timeout.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// With this whole-operation deadline.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// With this first backoff and cap (the jitter stays).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff::new(initial, max).jitter(self.backoff.jitter);
        self
    }

    /// Runs `attempt` until it succeeds, fails for good, or the budget is spent.
    pub(crate) async fn run<T, F, Fut>(&self, idempotent: bool, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        // One timer per attempt: it fires at the attempt's limit or the deadline, whichever is
        // first (nesting two timeouts would register both on every call).
        let deadline = tokio::time::Instant::now() + self.deadline;
        let past_deadline = || {
            Error::new(
                ErrorKind::Timeout,
                format!(
                    "the operation did not finish within its {:?} deadline",
                    self.deadline
                ),
            )
        };
        let mut retry = 0;
        loop {
            let until = (tokio::time::Instant::now() + self.attempt_timeout).min(deadline);
            let result = match tokio::time::timeout_at(until, attempt()).await {
                Ok(result) => result,
                Err(_) if until == deadline => return Err(past_deadline()),
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "one attempt did not finish within {:?}",
                        self.attempt_timeout
                    ),
                )),
            };
            match result {
                Err(e) if idempotent && e.is_retryable() && retry + 1 < self.max_attempts => {
                    tracing::debug!(error = %e, retry, "storage: retrying");
                    let wake = tokio::time::Instant::now() + self.backoff.delay(retry + 1);
                    if wake >= deadline {
                        // No time left for another attempt: the last error says more.
                        return Err(e);
                    }
                    tokio::time::sleep_until(wake).await;
                    retry += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> RetryPolicy {
        RetryPolicy::default().backoff(Duration::from_millis(1), Duration::from_millis(2))
    }

    #[tokio::test]
    async fn retries_retryable_errors_of_idempotent_operations_only() {
        let calls = AtomicU32::new(0);
        let flaky = || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(Error::new(ErrorKind::Unavailable, "down"))
            } else {
                Ok(7)
            }
        };
        assert_eq!(fast().run(true, flaky).await.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        calls.store(0, Ordering::SeqCst);
        assert!(fast().run(false, flaky).await.is_err(), "not idempotent");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        calls.store(0, Ordering::SeqCst);
        let permanent = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Error::new(ErrorKind::NotFound, "gone"))
        };
        assert_eq!(
            fast().run(true, permanent).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn attempt_timeout_and_deadline_are_separate_bounds() {
        let calls = AtomicU32::new(0);
        let hang_once = || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                std::future::pending::<()>().await;
            }
            Ok(1)
        };
        let policy = fast()
            .attempt_timeout(Duration::from_secs(1))
            .deadline(Duration::from_secs(10));
        assert_eq!(policy.run(true, hang_once).await.unwrap(), 1, "retried");
        let hang = || std::future::pending::<Result<()>>();
        let e = policy
            .deadline(Duration::from_millis(2500))
            .run(true, hang)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains("deadline"), "{e}");
        let e = RetryPolicy::none()
            .attempt_timeout(Duration::from_secs(1))
            .run(true, hang)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("one attempt"), "{e}");
    }
}
