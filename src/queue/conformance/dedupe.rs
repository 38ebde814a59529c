//! The check of [`Consumer::dedupe`](crate::queue::Consumer::dedupe): effectively-once
//! processing on every broker.

use super::consumer::run_until;
use super::{cleanup, unique_topic};
use crate::ErrorKind;
use crate::queue::dedupe::Dedupe;
use crate::queue::{BoxFuture, Claim, DedupeStore, MemoryDedupe, Message, Queue};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A [`MemoryDedupe`] counting the duplicates it reported, so the check knows when the
/// consumer met the duplicate whatever order the broker delivers in.
#[derive(Clone, Default)]
struct Counting {
    inner: MemoryDedupe,
    done: Arc<AtomicU32>,
}

impl DedupeStore for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn claim<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, crate::Result<Claim>> {
        Box::pin(async move {
            let claim = self.inner.claim(key, token, lease).await?;
            if claim == Claim::Done {
                self.done.fetch_add(1, Ordering::SeqCst);
            }
            Ok(claim)
        })
    }
    fn complete<'a>(&'a self, key: &'a str, window: Duration) -> BoxFuture<'a, crate::Result<()>> {
        self.inner.complete(key, window)
    }
    fn release<'a>(&'a self, key: &'a str, token: &'a str) -> BoxFuture<'a, crate::Result<()>> {
        self.inner.release(key, token)
    }
}

/// With de-duplication, a message whose id the group already handled (its ack was lost, say)
/// is acknowledged without running the handler and counted as a duplicate; a message whose
/// first attempt failed is freed and handled on its retry; the others are handled once.
pub async fn dedupe_skips_handled_ids_and_retries_failed_ones(queue: Queue) {
    let t = unique_topic("dedupe");
    let store = Counting::default();
    let duplicates = store.done.clone();
    let handled = Message::new("handled before");
    // As a consumer that handled it, then died before acknowledging, left it.
    store
        .complete(&Dedupe::key(&t, "g", &handled.id), Duration::from_secs(60))
        .await
        .expect("complete");
    let consumer = queue
        .consumer(&t, "g")
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
        .dedupe(store.clone(), Duration::from_secs(60));
    queue.ensure_group(&t, "g").await.expect("ensure group");
    let mut sent = vec![handled, Message::new("fails once")];
    sent.extend((0..10).map(|i| Message::new(format!("m{i}"))));
    queue.publish_batch(&t, sent).await.expect("publish");
    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let seen = runs.clone();
    let report = run_until(
        consumer,
        move |m| {
            let seen = seen.clone();
            Box::pin(async move {
                let body = m.text().expect("a UTF-8 payload").to_owned();
                let n = {
                    let mut runs = seen.lock().expect("lock");
                    let n = runs.entry(body.clone()).or_default();
                    *n += 1;
                    *n
                };
                if body == "fails once" && n == 1 {
                    Err(crate::Error::new(ErrorKind::Backend, "first attempt fails"))
                } else {
                    Ok(())
                }
            })
        },
        {
            let runs = runs.clone();
            move || {
                runs.lock().expect("lock").values().sum::<u32>() >= 12
                    && duplicates.load(Ordering::SeqCst) >= 1
            }
        },
    )
    .await;
    let runs = runs.lock().expect("lock").clone();
    assert!(
        !runs.contains_key("handled before"),
        "the handled id did not run again: {runs:?}"
    );
    assert_eq!(
        runs["fails once"], 2,
        "freed after its failure, handled on the retry"
    );
    assert!((0..10).all(|i| runs[&format!("m{i}")] == 1), "{runs:?}");
    assert_eq!(report.duplicates, 1, "{report:?}");
    assert_eq!((report.acked, report.retried), (11, 1), "{report:?}");
    cleanup(&queue, &[&t, &queue.dead_letter_topic(&t)]).await;
}
