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
    busy: Arc<AtomicU32>,
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
            match claim {
                Claim::Done => self.done.fetch_add(1, Ordering::SeqCst),
                Claim::Busy => self.busy.fetch_add(1, Ordering::SeqCst),
                Claim::New => 0,
            };
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

/// A producer that retried a publish whose acknowledgement it lost leaves one id on the topic
/// twice. With two lanes both copies are taken at once: the second finds the id claimed while
/// the first is handled, waits, then is acknowledged as a duplicate, so the handler runs once.
/// (NATS JetStream drops the second publish itself, by its message-id window.)
pub async fn dedupe_holds_a_copy_while_another_lane_handles_it(queue: Queue) {
    let t = unique_topic("dedupe_copy");
    let store = Counting::default();
    let (duplicates, busy) = (store.done.clone(), store.busy.clone());
    let consumer = queue
        .consumer(&t, "g")
        .concurrency(2)
        .dedupe(store.clone(), Duration::from_secs(60));
    queue.ensure_group(&t, "g").await.expect("ensure group");
    let first = Message::new("retried publish");
    let copy = first.clone();
    queue.publish(&t, first).await.expect("publish");
    queue.publish(&t, copy).await.expect("publish again");
    queue
        .publish(&t, Message::new("after"))
        .await
        .expect("publish");
    let server_dedupes = queue.backend_name() == "nats";
    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let seen = runs.clone();
    let claimed = busy.clone();
    let report = run_until(
        consumer,
        move |m| {
            let (seen, claimed) = (seen.clone(), claimed.clone());
            Box::pin(async move {
                let body = m.text().expect("a UTF-8 payload").to_owned();
                let first = body == "retried publish";
                *seen.lock().expect("lock").entry(body).or_default() += 1;
                // Handling lasts until the copy was turned away (or 10 s): the brokers deliver
                // across partitions in any order, so a fixed time could end before the copy
                // is taken.
                let until = std::time::Instant::now() + Duration::from_secs(10);
                while first
                    && !server_dedupes
                    && claimed.load(Ordering::SeqCst) == 0
                    && std::time::Instant::now() < until
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(())
            })
        },
        {
            let runs = runs.clone();
            move || {
                runs.lock().expect("lock").contains_key("after")
                    && (server_dedupes || duplicates.load(Ordering::SeqCst) >= 1)
            }
        },
    )
    .await;
    let runs = runs.lock().expect("lock").clone();
    assert_eq!(runs.get("retried publish"), Some(&1), "{runs:?}");
    if !server_dedupes {
        assert!(
            busy.load(Ordering::SeqCst) >= 1,
            "the copy found its id claimed while the first was handled"
        );
        assert_eq!(report.duplicates, 1, "{report:?}");
    }
    cleanup(&queue, &[&t, &queue.dead_letter_topic(&t)]).await;
}

/// What every [`DedupeStore`] keeps: a claimed id is busy for others until its lease ends or
/// its holder frees it (only its holder can), done for its window once completed (a late
/// release leaves it done), then new again. `store` is shared with nothing else: keys are
/// unique to this call.
pub async fn dedupe_store_keeps_claims_apart(store: impl DedupeStore) {
    let (k, o) = (unique_topic("dedupe_k"), unique_topic("dedupe_o"));
    let lease = Duration::from_secs(60);
    let claim = |key: &str, token: &'static str, lease| {
        let (store, key) = (&store, key.to_owned());
        async move { store.claim(&key, token, lease).await.expect("claim") }
    };
    assert_eq!(claim(&k, "a", lease).await, Claim::New);
    assert_eq!(claim(&k, "b", lease).await, Claim::Busy);
    store.release(&k, "b").await.expect("release");
    assert_eq!(claim(&k, "b", lease).await, Claim::Busy, "not b's to free");
    store.release(&k, "a").await.expect("release");
    assert_eq!(claim(&k, "c", lease).await, Claim::New);
    store
        .complete(&k, Duration::from_millis(300))
        .await
        .expect("complete");
    assert_eq!(claim(&k, "d", lease).await, Claim::Done);
    store.release(&k, "c").await.expect("release");
    assert_eq!(
        claim(&k, "d", lease).await,
        Claim::Done,
        "release leaves done"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(claim(&k, "e", lease).await, Claim::New, "window over");
    assert_eq!(claim(&o, "a", Duration::from_millis(50)).await, Claim::New);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(claim(&o, "b", lease).await, Claim::New, "lease over");
    store.release(&o, "a").await.expect("release");
    assert_eq!(claim(&o, "c", lease).await, Claim::Busy, "b's claim kept");
    store.release(&o, "b").await.expect("release");
    store.release(&k, "e").await.expect("release");
}
