//! The Redis [`TickLock`] for `single_instance` jobs.

use super::{RunHistory, StoreFuture, TickLock};
use crate::Result;
use chrono::{DateTime, Utc};
use fred::clients::Pool;
use fred::interfaces::KeysInterface;
use fred::types::{Expiration, SetOptions, Value};
use std::time::Duration;

/// A [`TickLock`] on Redis: `SET key NX PX ttl`, so exactly one instance gets each tick.
#[derive(Clone)]
pub struct RedisTickLock {
    client: Pool,
    timeout: Duration,
}

impl std::fmt::Debug for RedisTickLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTickLock").finish_non_exhaustive()
    }
}

impl RedisTickLock {
    /// Connects to the Redis at `url`; each call is bounded by `timeout`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a bad URL (password redacted); [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when
    /// Redis does not answer within `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self> {
        Ok(Self {
            client: connect_client(url, timeout).await?,
            timeout,
        })
    }
}

pub(crate) use crate::redis::{bounded, connect_one as connect_client, map_err as redis_error};

impl TickLock for RedisTickLock {
    fn acquire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
            let call = self.client.set::<Value, _, _>(
                key,
                "1",
                Some(Expiration::PX(ms)),
                Some(SetOptions::NX),
                false,
            );
            let reply = bounded(self.timeout, "acquire", call).await?;
            Ok(!reply.is_null())
        })
    }
}

impl RunHistory for RedisTickLock {
    fn last_run<'a>(&'a self, job: &'a str) -> StoreFuture<'a, Option<DateTime<Utc>>> {
        Box::pin(async move {
            let key = format!("corekit:scheduler:{job}:last");
            let call = self.client.get::<Option<i64>, _>(key);
            let ms = bounded(self.timeout, "last_run", call).await?;
            Ok(ms.and_then(DateTime::from_timestamp_millis))
        })
    }

    fn record<'a>(&'a self, job: &'a str, at: DateTime<Utc>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = format!("corekit:scheduler:{job}:last");
            let call = self
                .client
                .set::<(), _, _>(key, at.timestamp_millis(), None, None, false);
            bounded(self.timeout, "record", call).await
        })
    }
}
