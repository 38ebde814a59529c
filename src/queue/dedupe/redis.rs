//! Handled ids in Redis, through the crate's one Redis layer.

use super::{Claim, DedupeStore};
use crate::queue::BoxFuture;
use crate::redis::bounded;
use crate::{Error, ErrorKind, Result};
use fred::clients::Pool;
use fred::interfaces::{KeysInterface, LuaInterface};
use fred::types::{Expiration, SetOptions, Value};
use std::time::Duration;

/// Handled ids in Redis (single, Cluster or Sentinel URL), shared by every consumer of a
/// group: a busy key is `SET key busy:<token> NX PX lease`, a done one `SET key done PX
/// window`; a release deletes the key only while it holds its own token (one script).
///
/// ```no_run
/// # async fn run() -> corekit::Result<()> {
/// use corekit::queue::{Queue, RedisDedupe};
/// use std::time::Duration;
///
/// let queue = Queue::from_env().await?;
/// let ids = RedisDedupe::connect("redis://127.0.0.1:6379", Duration::from_secs(5)).await?;
/// let consumer = queue.consumer("orders", "billing").dedupe(ids, Duration::from_secs(24 * 3600));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisDedupe {
    client: Pool,
    timeout: Duration,
}

impl std::fmt::Debug for RedisDedupe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDedupe")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisDedupe {
    /// Connects to `url`; every command is bounded by `timeout`.
    ///
    /// # Errors
    /// [`Config`](ErrorKind::Config) for a bad URL (password redacted);
    /// [`Unavailable`](ErrorKind::Unavailable) naming the address when no connection is made
    /// within `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self> {
        Ok(Self {
            client: crate::redis::connect_one(url, timeout).await?,
            timeout,
        })
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration, nx: bool) -> Result<bool> {
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let options = nx.then_some(SetOptions::NX);
        let reply: Value = bounded(
            self.timeout,
            "dedupe",
            self.client
                .set(key, value, Some(Expiration::PX(ms)), options, false),
        )
        .await?;
        Ok(!reply.is_null())
    }
}

impl DedupeStore for RedisDedupe {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn claim<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim>> {
        Box::pin(async move {
            let busy = format!("busy:{token}");
            if self.set(key, &busy, lease, true).await? {
                return Ok(Claim::New);
            }
            let state: Option<String> =
                bounded(self.timeout, "dedupe", self.client.get(key)).await?;
            Ok(match state.as_deref() {
                Some("done") => Claim::Done,
                // Ours: an earlier SET that timed out on the way back had been applied.
                Some(s) if s == busy => Claim::New,
                Some(_) => Claim::Busy,
                // Expired between the two calls: free again.
                None if self.set(key, &busy, lease, true).await? => Claim::New,
                None => Claim::Busy,
            })
        })
    }

    fn complete<'a>(&'a self, key: &'a str, window: Duration) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if self.set(key, "done", window, false).await? {
                Ok(())
            } else {
                Err(Error::new(ErrorKind::Backend, "SET returned nothing").with_backend("redis"))
            }
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // Only our own claim: not a done key, nor another consumer's claim taken after
            // ours expired.
            const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                                   return redis.call('DEL', KEYS[1]) else return 0 end";
            let _: i64 = bounded(
                self.timeout,
                "dedupe",
                self.client
                    .eval(RELEASE, vec![key], vec![format!("busy:{token}")]),
            )
            .await?;
            Ok(())
        })
    }
}
