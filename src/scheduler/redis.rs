//! The Redis [`TickLock`] for `single_instance` jobs.

use super::{RunHistory, StoreFuture, TickLock};
use crate::{Error, ErrorKind, Result};
use chrono::{DateTime, Utc};
use fred::clients::Client;
use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::config::Config;
use fred::types::{Expiration, SetOptions, Value};
use std::time::Duration;

/// A [`TickLock`] on Redis: `SET key NX PX ttl`, so exactly one instance gets each tick.
#[derive(Clone)]
pub struct RedisTickLock {
    client: Client,
    timeout: Duration,
}

impl std::fmt::Debug for RedisTickLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTickLock").finish_non_exhaustive()
    }
}

impl RedisTickLock {
    /// Connects to the Redis at `url`; each acquire is bounded by `timeout`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a bad URL (password redacted); [`ErrorKind::Unavailable`] when
    /// Redis does not answer within `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self> {
        let config = Config::from_url(url).map_err(|e| {
            Error::config(format!(
                "redis URL {:?} is not valid: {}",
                crate::config::redact_url(url),
                e.details()
            ))
        })?;
        let client = fred::types::Builder::from_config(config)
            .with_connection_config(|c| c.connection_timeout = timeout)
            .set_policy(fred::types::config::ReconnectPolicy::new_exponential(
                0, 100, 2_000, 2,
            ))
            .build()
            .map_err(|e| unavailable(e, "connect"))?;
        client.connect();
        match tokio::time::timeout(timeout, client.wait_for_connect()).await {
            Ok(Ok(())) => Ok(Self { client, timeout }),
            Ok(Err(e)) => Err(unavailable(e, "connect")),
            Err(_) => Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "no connection to {} within {timeout:?}",
                    crate::config::redact_url(url)
                ),
            )
            .with_backend("redis")
            .with_operation("connect")),
        }
    }
}

fn unavailable(e: fred::error::Error, op: &'static str) -> Error {
    Error::new(ErrorKind::Unavailable, "")
        .with_backend("redis")
        .with_operation(op)
        .with_source(e)
}

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
            match tokio::time::timeout(self.timeout, call).await {
                Ok(Ok(reply)) => Ok(!reply.is_null()),
                Ok(Err(e)) => Err(unavailable(e, "acquire")),
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!("no reply within {:?}", self.timeout),
                )
                .with_backend("redis")
                .with_operation("acquire")),
            }
        })
    }
}

impl RunHistory for RedisTickLock {
    fn last_run<'a>(&'a self, job: &'a str) -> StoreFuture<'a, Option<DateTime<Utc>>> {
        Box::pin(async move {
            let key = format!("corekit:scheduler:{job}:last");
            let call = self.client.get::<Option<i64>, _>(key);
            let ms = match tokio::time::timeout(self.timeout, call).await {
                Ok(Ok(ms)) => ms,
                Ok(Err(e)) => return Err(unavailable(e, "last_run")),
                Err(_) => {
                    return Err(Error::new(ErrorKind::Timeout, "no reply")
                        .with_backend("redis")
                        .with_operation("last_run"));
                }
            };
            Ok(ms.and_then(DateTime::from_timestamp_millis))
        })
    }

    fn record<'a>(&'a self, job: &'a str, at: DateTime<Utc>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = format!("corekit:scheduler:{job}:last");
            let call = self
                .client
                .set::<(), _, _>(key, at.timestamp_millis(), None, None, false);
            match tokio::time::timeout(self.timeout, call).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(unavailable(e, "record")),
                Err(_) => Err(Error::new(ErrorKind::Timeout, "no reply")
                    .with_backend("redis")
                    .with_operation("record")),
            }
        })
    }
}
