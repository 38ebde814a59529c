//! One job's timing loop: sleep to the tick, apply the policies, run.

use super::guard::{lock, run_guarded};
use super::handle::{Inner, JobState};
use super::job::JobFn;
use super::lock::TICK_LOCK_TTL;
use super::{Job, Misfire, Overlap};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::Instrument;

/// One job's timing loop.
pub(super) struct Driver {
    pub(super) scheduler: Arc<Inner>,
    pub(super) state: Arc<JobState>,
    // The job's function and policies; its name and schedule live in `state`.
    pub(super) job: Job,
    pub(super) added: DateTime<Utc>,
}

/// Ticks later than this are misfires rather than timer jitter.
const MISFIRE_GRACE: Duration = Duration::from_secs(1);

impl Driver {
    /// At start-up: a tick due since the last recorded run was missed while stopped.
    async fn catch_up(&self) {
        let Some(history) = &self.job.history else {
            return;
        };
        if self.job.misfire != Misfire::RunOnce {
            return;
        }
        match history.last_run(&self.state.name).await {
            Ok(Some(last)) => {
                let now = self.scheduler.clock.now();
                if self
                    .state
                    .schedule
                    .next_after(last, last)
                    .is_some_and(|missed| missed < now)
                {
                    self.fire(now);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(job = %self.state.name, error = %e, "cannot read the run history; no catch-up");
            }
        }
    }

    pub(super) async fn drive(self) {
        self.catch_up().await;
        let mut stop = self.scheduler.stop.subscribe();
        let mut planned = *lock(&self.state.next_run);
        while let Some(tick) = planned {
            // Sleep until the tick on the monotonic clock: tokio's timer, no polling.
            let wait = (tick - self.scheduler.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
                _ = self.state.resume.notified() => {
                    if self.state.removed.load(Ordering::SeqCst) { return; }
                    continue;
                }
            }
            // The wall clock can lag the timer slightly: never fire before the tick.
            let now = self.scheduler.clock.now();
            if now < tick {
                continue;
            }
            if self.state.removed.load(Ordering::SeqCst) || *stop.borrow() {
                return;
            }
            let late = (now - tick).to_std().unwrap_or(Duration::ZERO);
            let next = self.state.schedule.next_after(now.max(tick), self.added);
            *lock(&self.state.next_run) = next;
            if self.state.paused.load(Ordering::SeqCst) {
                planned = next;
                continue;
            }
            if late > MISFIRE_GRACE && self.job.misfire == Misfire::Skip {
                self.state.counters.skipped.fetch_add(1, Ordering::Relaxed);
            } else {
                self.fire(tick);
            }
            if let Some(history) = &self.job.history
                && let Err(e) = history.record(&self.state.name, tick).await
            {
                tracing::warn!(job = %self.state.name, error = %e, "cannot record the run");
            }
            planned = next;
        }
        // A finished one-shot leaves the table once its run is done.
        *lock(&self.state.next_run) = None;
    }

    fn fire(&self, tick: DateTime<Utc>) {
        let state = &self.state;
        if state.running.load(Ordering::SeqCst) > 0 {
            match self.job.overlap {
                Overlap::Skip => {
                    state.counters.skipped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Overlap::QueueOne => {
                    if state.queued.swap(true, Ordering::SeqCst) {
                        state.counters.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
                Overlap::Allow => {}
            }
        }
        state.running.fetch_add(1, Ordering::SeqCst);
        self.scheduler.running.start();
        let run = self.job.run.clone();
        let state = self.state.clone();
        let scheduler = self.scheduler.clone();
        let timeout = self.job.timeout;
        let tick_lock = self.job.tick_lock.clone();
        let span = tracing::info_span!("scheduler.job", job.name = %state.name);
        tokio::spawn(
            async move {
                let mine = match &tick_lock {
                    None => true,
                    Some(tick_lock) => {
                        let key = format!(
                            "corekit:scheduler:{}:{}",
                            state.name,
                            tick.timestamp_millis()
                        );
                        match tick_lock.acquire(&key, TICK_LOCK_TTL).await {
                            Ok(true) => true,
                            Ok(false) => {
                                state.counters.skipped.fetch_add(1, Ordering::Relaxed);
                                false
                            }
                            Err(e) => {
                                state.counters.failed.fetch_add(1, Ordering::Relaxed);
                                *lock(&state.last_error) =
                                    Some(format!("tick lock unavailable, tick not run: {e}"));
                                false
                            }
                        }
                    }
                };
                if mine {
                    loop {
                        run_once(&run, &state, timeout).await;
                        // QueueOne: a tick arrived meanwhile; run it now.
                        if !state.queued.swap(false, Ordering::SeqCst) {
                            break;
                        }
                    }
                }
                state.running.fetch_sub(1, Ordering::SeqCst);
                scheduler.running.finish();
            }
            .instrument(span),
        );
    }
}

async fn run_once(run: &JobFn, state: &JobState, timeout: Option<Duration>) {
    match run_guarded(run(), timeout).await {
        Ok(()) => {
            state.counters.succeeded.fetch_add(1, Ordering::Relaxed);
        }
        Err(failure) => {
            if failure.panicked {
                state.counters.panicked.fetch_add(1, Ordering::Relaxed);
            }
            state.counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(job = %state.name, error = %failure.message, "scheduled job failed");
            *lock(&state.last_error) = Some(failure.message);
        }
    }
}
