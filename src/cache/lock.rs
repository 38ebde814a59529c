//! Locks on the cache's store: `Cache::lock` and the guard it returns.

use super::{Cache, CacheStore, Codec};
use crate::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A lock held on a cache's store, from [`Cache::lock`] or [`Cache::lock_wait`].
///
/// The lock expires after its TTL unless extended ([`extend`](Self::extend), or
/// [`keep_alive`](Self::keep_alive) in the background). Only its holder can extend or release
/// it: once it expired and someone else took it, the old guard's calls answer `false` and
/// change nothing. Dropping the guard releases the lock in the background (when a tokio runtime
/// is running); [`release`](Self::release) does it now and says whether it was still held.
///
/// [`token`](Self::token) is a *fencing token*: every holder of a given lock gets a larger one
/// than all holders before it, so a resource that remembers the largest token it has seen can
/// refuse a holder whose lock expired while it was paused. On Redis the token is at least the
/// server's clock in microseconds, so it keeps growing across a failover that lost the last
/// token (on a clock that does not go back). On the memory store the lock is process-local:
/// it excludes tasks of one process, not other instances.
///
/// ```
/// use corekit::cache::{Cache, MemoryStore};
/// use std::time::Duration;
/// # block_on(async {
/// let cache = Cache::new(MemoryStore::new(1000));
/// let lock = cache.lock("report:daily", Duration::from_secs(30)).await?.expect("free");
/// assert!(cache.lock("report:daily", Duration::from_secs(30)).await?.is_none(), "held");
/// let token = lock.token(); // hand it to the resource the lock protects
/// assert!(lock.release().await?);
/// let again = cache.lock("report:daily", Duration::from_secs(30)).await?.expect("free again");
/// assert!(again.token() > token);
/// # Ok::<(), corekit::Error>(()) }).unwrap();
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[must_use = "the lock is released when the guard is dropped"]
pub struct CacheLock<S: CacheStore, C: Codec> {
    cache: Cache<S, C>,
    key: Vec<u8>,
    token: u64,
    ttl: Duration,
    // Cleared by the keep-alive task when an extension found the lock gone.
    held: Arc<AtomicBool>,
    keeper: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

impl<S: CacheStore, C: Codec> std::fmt::Debug for CacheLock<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLock")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("token", &self.token)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The two store keys of the lock named `key` in `namespace`: the lock and its fence,
/// `corekit-lock{:<namespace><key>}` and `corekit-fence{:...}`. A Redis Cluster hashes only the
/// part between the first `{` and the next `}`: that part is the same in both keys and never
/// empty, so they share a slot (one script touches both) whatever braces the namespace or the
/// key contain. They sit outside the namespace's prefix, so `clear` leaves held locks alone
/// (unless the namespace is empty: then `clear` removes every key of the database).
fn lock_keys(namespace: &str, key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let named = |kind: &[u8]| {
        let mut k = Vec::with_capacity(kind.len() + namespace.len() + key.len() + 3);
        k.extend_from_slice(kind);
        k.extend_from_slice(b"{:");
        k.extend_from_slice(namespace.as_bytes());
        k.extend_from_slice(key);
        k.push(b'}');
        k
    };
    (named(b"corekit-lock"), named(b"corekit-fence"))
}

impl<S: CacheStore, C: Codec> Cache<S, C> {
    /// Takes the lock named `key` for `ttl` if nobody holds it (one attempt): `None` when it
    /// is held. Lock names live apart from the cache's values (a lock named `x` does not touch
    /// the value at `x`, and [`clear`](Self::clear) leaves locks alone unless the cache has no
    /// namespace, when it clears the whole database); the namespace still separates them.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad key or a zero
    /// TTL, before any call; [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) on a
    /// store without locks; timeouts and unavailability from the backend (the lock may then
    /// have been taken: it expires after `ttl`).
    pub async fn lock(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
        ttl: Duration,
    ) -> Result<Option<CacheLock<S, C>>> {
        let key = key.as_ref();
        self.key(key, "lock")?;
        if ttl.is_zero() {
            return Err(
                Error::invalid_input("a lock's TTL must be more than zero").with_operation("lock")
            );
        }
        let (lock, fence) = lock_keys(&self.inner.namespace, key);
        let store = &self.inner.store;
        let token = self
            .call("lock", store.lock_acquire(&lock, &fence, ttl))
            .await?;
        Ok(token.map(|token| CacheLock {
            cache: self.clone(),
            key: lock,
            token,
            ttl,
            held: Arc::new(AtomicBool::new(true)),
            keeper: None,
            released: false,
        }))
    }

    /// Like [`lock`](Self::lock), trying again (after 10 ms, doubling to 200 ms, jittered by up
    /// to half; the crate's [`Backoff`](crate::retry::Backoff)) until the lock
    /// is free or `wait` has passed: `None` when it stayed held that long.
    ///
    /// # Errors
    /// As [`lock`](Self::lock); a failed attempt ends the wait.
    pub async fn lock_wait(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<CacheLock<S, C>>> {
        let deadline = tokio::time::Instant::now() + wait;
        // Jittered, so contenders that lost together do not retry together.
        let backoff =
            crate::retry::Backoff::new(Duration::from_millis(10), Duration::from_millis(200))
                .jitter(0.5);
        for retry in 1u32.. {
            if let Some(lock) = self.lock(key, ttl).await? {
                return Ok(Some(lock));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(backoff.delay(retry).min(deadline - now)).await;
        }
        Ok(None)
    }
}

impl<S: CacheStore, C: Codec> CacheLock<S, C> {
    /// The fencing token: larger than every earlier holder's of this lock.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The TTL the lock was taken (or last extended) with.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// False once the [`keep_alive`](Self::keep_alive) task found the lock expired or taken
    /// by someone else; true otherwise (without keep-alive it does not ask the store).
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    /// Makes the lock expire `ttl` from now, if this guard still holds it; false (and no
    /// change) when it expired or another holder took it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a zero TTL; timeouts
    /// and unavailability from the backend.
    pub async fn extend(&mut self, ttl: Duration) -> Result<bool> {
        if ttl.is_zero() {
            return Err(Error::invalid_input("a lock's TTL must be more than zero")
                .with_operation("lock_extend"));
        }
        let store = &self.cache.inner.store;
        let held = self
            .cache
            .call("lock_extend", store.lock_extend(&self.key, self.token, ttl))
            .await?;
        if held {
            self.ttl = ttl;
        } else {
            self.held.store(false, Ordering::Relaxed);
        }
        Ok(held)
    }

    /// Releases the lock now; false when this guard no longer held it (it expired, and
    /// perhaps someone else holds it now: that lock is left alone).
    ///
    /// # Errors
    /// Timeouts and unavailability from the backend (the lock then expires after its TTL).
    pub async fn release(mut self) -> Result<bool> {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        let store = &self.cache.inner.store;
        let released = self
            .cache
            .call("unlock", store.lock_release(&self.key, self.token))
            .await;
        // Only now: a release cancelled mid-call (a caller's timeout) is retried by the drop.
        self.released = true;
        released
    }
}

impl<S: CacheStore, C: Codec> CacheLock<S, C> {
    /// Extends the lock in the background every third of its TTL (the TTL it has when this is
    /// called; a later [`extend`](Self::extend) does not change what the task renews with)
    /// until the guard is released or dropped, so work longer than the TTL keeps it while the process lives (a process that
    /// dies stops extending, and the lock expires a TTL later). When an extension finds the
    /// lock gone, the task stops and [`is_held`](Self::is_held) turns false; a failed
    /// extension (Redis unreachable) is tried again at the next tick.
    ///
    /// Needs a tokio runtime.
    pub fn keep_alive(mut self) -> Self {
        if self.keeper.is_some() {
            return self;
        }
        let (cache, key, token, ttl) = (self.cache.clone(), self.key.clone(), self.token, self.ttl);
        let held = Arc::clone(&self.held);
        self.keeper = Some(tokio::spawn(async move {
            let every = (ttl / 3).max(Duration::from_millis(1));
            loop {
                tokio::time::sleep(every).await;
                let store = &cache.inner.store;
                match cache
                    .call("lock_extend", store.lock_extend(&key, token, ttl))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        held.store(false, Ordering::Relaxed);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not extend a cache lock; trying again")
                    }
                }
            }
        }));
        self
    }
}

impl<S: CacheStore, C: Codec> Drop for CacheLock<S, C> {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            keeper.abort();
        }
        if self.released {
            return;
        }
        // Best effort: without a runtime the lock simply expires after its TTL.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (cache, key, token) = (
            self.cache.clone(),
            std::mem::take(&mut self.key),
            self.token,
        );
        runtime.spawn(async move {
            let _ = cache.inner.store.lock_release(&key, token).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::lock_keys;

    /// Redis Cluster's hash tag: the part between the first `{` and the next `}`.
    fn tag(key: &[u8]) -> &[u8] {
        let Some(open) = key.iter().position(|&b| b == b'{') else {
            return key;
        };
        match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(0) | None => key,
            Some(len) => &key[open + 1..open + 1 + len],
        }
    }

    #[test]
    fn lock_and_fence_share_a_hash_tag_whatever_the_braces() {
        for (ns, key) in [
            ("", "job"),
            ("app:", "job"),
            ("a{b", "job"),
            ("a{b}c:", "job"),
            ("", "x}y"),
            ("", "{x}"),
            ("n{", "}k"),
            ("", "}b"),
            ("a{}", "k"),
            ("}", "{"),
        ] {
            let (lock, fence) = lock_keys(ns, key.as_bytes());
            assert_ne!(lock, fence);
            assert_ne!(
                tag(&lock),
                &lock[..],
                "{ns:?} {key:?}: the whole key is hashed"
            );
            assert_eq!(tag(&lock), tag(&fence), "{ns:?} {key:?}");
        }
    }
}
