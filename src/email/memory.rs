//! An in-memory outbox for tests and development.

use super::{BoxFuture, Email, Transport};
use crate::{Error, ErrorKind, Result};
use std::sync::{Arc, Mutex, MutexGuard};

/// Keeps every email it is given, for tests to assert on: who it went to, what it said, what was
/// attached. Clones share one outbox.
///
/// [`fail_next`](Self::fail_next) makes the next sends fail, to test retries and failover.
#[derive(Clone, Default)]
pub struct MemoryTransport {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    sent: Vec<Email>,
    failures: Vec<Error>,
    calls: u64,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("sent", &self.state().sent.len())
            .finish()
    }
}

impl MemoryTransport {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Everything sent so far, oldest first.
    pub fn sent(&self) -> Vec<Email> {
        self.state().sent.clone()
    }

    /// The last email sent.
    pub fn last(&self) -> Option<Email> {
        self.state().sent.last().cloned()
    }

    /// Removes and returns everything sent so far.
    pub fn take(&self) -> Vec<Email> {
        std::mem::take(&mut self.state().sent)
    }

    /// Send calls made, failed ones included.
    pub fn calls(&self) -> u64 {
        self.state().calls
    }

    /// Makes the next `count` sends fail: transient (retryable, like an SMTP 4xx) or permanent
    /// (like an SMTP 5xx).
    pub fn fail_next(&self, count: usize, transient: bool) {
        let mut state = self.state();
        for _ in 0..count {
            let e = if transient {
                Error::new(
                    ErrorKind::Unavailable,
                    "memory transport: injected transient failure",
                )
            } else {
                Error::new(
                    ErrorKind::InvalidInput,
                    "memory transport: injected permanent failure",
                )
                .with_retryable(false)
            };
            state.failures.push(e);
        }
    }
}

impl Transport for MemoryTransport {
    fn name(&self) -> &'static str {
        "memory"
    }

    /// Always ready: the outbox is this process's memory.
    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn send<'a>(&'a self, email: &'a Email) -> BoxFuture<'a, Result<Option<String>>> {
        let mut state = self.state();
        state.calls += 1;
        let result = if state.failures.is_empty() {
            state.sent.push(email.clone());
            Ok(Some(format!("memory-{}", state.sent.len())))
        } else {
            Err(state.failures.remove(0))
        };
        Box::pin(std::future::ready(result))
    }
}
