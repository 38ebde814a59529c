//! Running work safely: panics caught, timeouts enforced, work in progress counted.

use super::job::BoxFuture;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Counts work in progress and wakes whoever waits for it to reach zero (shutdowns).
#[derive(Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    pub(crate) fn start(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn finish(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    pub(crate) fn get(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until the count is zero; false if `deadline` passed first.
    pub(crate) async fn wait_idle(&self, deadline: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.get() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok()
    }
}

/// Why a run failed.
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) panicked: bool,
}

/// Runs one attempt of a job: a panic is caught (so the caller's loop keeps going) and a
/// timeout cancels it; both become failures.
pub(crate) async fn run_guarded(
    fut: BoxFuture,
    timeout: Option<Duration>,
) -> std::result::Result<(), Failure> {
    let fut = AssertUnwindSafe(fut).catch_unwind();
    let outcome = match timeout {
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r,
            Err(_) => Ok(Err(format!("timed out after {t:?}").into())),
        },
        None => fut.await,
    };
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure {
            message: e.to_string(),
            panicked: false,
        }),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_owned());
            Err(Failure {
                message: format!("panicked: {message}"),
                panicked: true,
            })
        }
    }
}

/// Locks a mutex, taking the data of a poisoned one: a panicking job must not wedge the rest.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
