//! The worker loop: claim a job from a queue with a handler, run it, settle it.

use super::handle::{Shared, traced};
use super::{AfterFailure, ClaimedJob};
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long an idle worker waits before looking again (stores that can wake it do sooner).
pub(super) const POLL: Duration = Duration::from_millis(50);

/// One worker. It holds the queue weakly, so dropping every handle ends it (after its job).
pub(super) async fn work(shared: Weak<Shared>, index: usize) {
    let mut turn = index;
    loop {
        let Some(queue) = shared.upgrade() else {
            return;
        };
        if queue.stopping.load(Ordering::SeqCst) {
            return;
        }
        let names = queue.handlers.names();
        let mut did_work = false;
        let lease = queue.config.effective_lease();
        for _ in 0..names.len() {
            // Each worker starts at its own queue, so one busy queue does not starve the rest.
            turn = turn.wrapping_add(1);
            let name = &names[turn % names.len()];
            match queue.store.claim(name, lease).await {
                Ok(Some(job)) => {
                    run(&queue, job).await;
                    did_work = true;
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(queue = %name, store = queue.store.name(), error = %e, "cannot take jobs");
                    tokio::time::sleep(POLL * 10).await;
                }
            }
        }
        if !did_work {
            let store = queue.store.clone();
            drop(queue);
            if let Err(e) = store.wait_for_work(&names, POLL).await {
                tracing::debug!(error = %e, "waiting for work failed");
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// Runs one attempt and tells the store how it went.
async fn run(shared: &Shared, job: ClaimedJob) {
    let counters = &shared.counters;
    counters.in_flight.start();
    let outcome = shared
        .handlers
        .attempt(&job.queue, job.payload.clone(), shared.config.timeout)
        .await;
    let settled = match outcome {
        Ok(()) => {
            counters.succeeded.fetch_add(1, Ordering::Relaxed);
            traced(
                &*shared.store,
                "complete",
                &job.queue,
                shared.store.complete(&job),
            )
            .await
        }
        Err(error) => {
            let then = shared.config.after_failure(job.attempt);
            match then {
                AfterFailure::Retry(delay) => {
                    counters.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(queue = %job.queue, job = job.id, attempt = job.attempt, ?delay, %error, "job failed; retrying");
                }
                AfterFailure::Dead => {
                    counters.dead.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(queue = %job.queue, job = job.id, attempts = job.attempt, %error, "job is dead");
                }
            }
            traced(
                &*shared.store,
                "fail",
                &job.queue,
                shared.store.fail(&job, &error, then),
            )
            .await
        }
    };
    match settled {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(queue = %job.queue, job = job.id, "lease expired before the job was settled; another worker has it");
        }
        Err(e) => {
            // The lease will expire and the job will run again: at-least-once.
            tracing::warn!(queue = %job.queue, job = job.id, error = %e, "cannot settle a job; it will run again after its lease");
        }
    }
    counters.in_flight.finish();
}
