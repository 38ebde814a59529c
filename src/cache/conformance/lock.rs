//! The lock checks: exclusivity with fencing tokens, holder-only release and extension,
//! keep-alive. A store without locks must answer `Unsupported`; the checks then say so and
//! pass.

use super::cache;
use crate::ErrorKind;
use crate::cache::{Cache, CacheStore, Json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Whether the store has locks: `false` (with a note on stderr) when it answers
/// `Unsupported`, a panic for any other failure.
async fn has_locks<S: CacheStore>(cache: &Cache<S, Json>) -> bool {
    match cache.lock("probe", Duration::from_secs(1)).await {
        Ok(Some(lock)) => {
            lock.release().await.expect("release the probe lock");
            true
        }
        Ok(None) => panic!("a fresh lock name was held"),
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            eprintln!("store {}: locks are Unsupported", cache.backend_name());
            false
        }
        Err(e) => panic!("lock on a fresh name failed: {e}"),
    }
}

/// Ten contenders taking one lock three times each: never two inside at once, and every
/// holder's fencing token larger than the one before it.
pub async fn lock_is_exclusive_and_fenced<S: CacheStore + Clone>(store: S) {
    let cache = cache(store);
    if !has_locks(&cache).await {
        return;
    }
    let inside = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let contenders = (0..10).map(|_| {
        let (cache, inside, tokens) = (cache.clone(), inside.clone(), tokens.clone());
        tokio::spawn(async move {
            for _ in 0..3 {
                let lock = cache
                    .lock_wait("shared", Duration::from_secs(5), Duration::from_secs(30))
                    .await
                    .expect("lock_wait")
                    .expect("the lock within 30 s");
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                tokens.lock().expect("tokens").push(lock.token());
                tokio::time::sleep(Duration::from_millis(10)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                assert!(
                    lock.release().await.expect("release"),
                    "the holder releases"
                );
            }
        })
    });
    for c in futures_util::future::join_all(contenders).await {
        c.expect("a contender panicked");
    }
    let tokens = tokens.lock().expect("tokens").clone();
    assert_eq!(tokens.len(), 30, "every acquisition recorded");
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens strictly increasing in the order the lock was held: {tokens:?}"
    );
}

/// A lock whose TTL passed can be taken by someone else, with a larger token; its old holder
/// can then neither extend nor release it. A zero TTL and a bad name are refused before any
/// call.
pub async fn lock_only_its_holder_releases<S: CacheStore + Clone>(store: S) {
    let cache = cache(store);
    if !has_locks(&cache).await {
        return;
    }
    let ttl = Duration::from_millis(300);
    let mut old = cache.lock("job", ttl).await.expect("lock").expect("free");
    assert!(
        cache.lock("job", ttl).await.expect("lock").is_none(),
        "held"
    );
    assert!(
        cache.get::<String>("job").await.expect("get").is_none(),
        "a lock is not a value"
    );
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let new = cache
        .lock("job", Duration::from_secs(10))
        .await
        .expect("lock")
        .expect("free after the TTL");
    assert!(
        new.token() > old.token(),
        "the new holder's token is larger"
    );
    assert!(
        !old.extend(ttl).await.expect("extend"),
        "an expired holder cannot extend"
    );
    assert!(
        !old.release().await.expect("release"),
        "an expired holder cannot release"
    );
    assert!(
        cache.lock("job", ttl).await.expect("lock").is_none(),
        "the new holder still holds it"
    );
    assert!(new.release().await.expect("release"), "the holder releases");
    let again = cache.lock("job", ttl).await.expect("lock");
    assert!(again.is_some(), "free after the release");
    for bad in [
        cache.lock("", ttl).await,
        cache.lock("k", Duration::ZERO).await,
    ] {
        let e = bad.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
}

/// `keep_alive` keeps a lock past its TTL until released; a dropped guard frees the lock.
pub async fn lock_keep_alive_and_drop<S: CacheStore + Clone>(store: S) {
    let cache = cache(store);
    if !has_locks(&cache).await {
        return;
    }
    // Extended every 500 ms: without the keep-alive it would expire at 1.5 s, and after the
    // drop it would not expire before 3 s, so a lock freed at 2-2.3 s was released by the drop.
    let ttl = Duration::from_millis(1500);
    let lock = cache
        .lock("long", ttl)
        .await
        .expect("lock")
        .expect("free")
        .keep_alive();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(lock.is_held(), "kept alive");
    assert!(
        cache.lock("long", ttl).await.expect("lock").is_none(),
        "still held after its TTL"
    );
    drop(lock);
    // The drop releases in the background: well before the TTL would have freed it.
    let freed = cache
        .lock_wait("long", Duration::from_secs(5), Duration::from_millis(300))
        .await
        .expect("lock_wait");
    assert!(freed.is_some(), "a dropped guard releases its lock");
}
