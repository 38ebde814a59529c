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
    /// Connects to the Redis at `url`; each call is bounded by `timeout`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a bad URL (password redacted); [`ErrorKind::Unavailable`] when
    /// Redis does not answer within `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self> {
        Ok(Self {
            client: connect_client(url, timeout).await?,
            timeout,
        })
    }
}

/// A connected fred client with the scheduler's reconnect policy, shared by the tick lock and
/// the durable job queue.
pub(super) async fn connect_client(url: &str, timeout: Duration) -> Result<Client> {
    let config = Config::from_url(url).map_err(|e| {
        Error::config(format!(
            "redis URL {:?} is not valid: {}",
            crate::config::redact_url(url),
            e.details()
        ))
    })?;
    let client = fred::types::Builder::from_config(config)
        .with_connection_config(|c| c.connection_timeout = timeout)
        // Every command is bounded too, so a hung Redis never blocks a worker or a tick.
        .with_performance_config(|p| p.default_command_timeout = timeout)
        .set_policy(fred::types::config::ReconnectPolicy::new_exponential(
            0, 100, 2_000, 2,
        ))
        .build()
        .map_err(|e| redis_error(e, "connect"))?;
    client.connect();
    bounded(timeout, "connect", client.wait_for_connect())
        .await
        .map_err(|e| {
            if e.kind() == ErrorKind::Timeout {
                Error::new(
                    ErrorKind::Unavailable,
                    format!(
                        "no connection to {} within {timeout:?}",
                        crate::config::redact_url(url)
                    ),
                )
                .with_backend("redis")
                .with_operation("connect")
            } else {
                e
            }
        })?;
    Ok(client)
}

/// Maps a fred error: timeouts stay timeouts, bad config is config, the rest is Unavailable.
pub(super) fn redis_error(e: fred::error::Error, op: &'static str) -> Error {
    let kind = match e.kind() {
        fred::error::ErrorKind::Timeout => ErrorKind::Timeout,
        fred::error::ErrorKind::Config | fred::error::ErrorKind::Url => ErrorKind::Config,
        _ => ErrorKind::Unavailable,
    };
    Error::new(kind, "")
        .with_backend("redis")
        .with_operation(op)
        .with_source(e)
}

/// Runs one Redis call within `timeout`.
pub(super) async fn bounded<T>(
    timeout: Duration,
    op: &'static str,
    call: impl std::future::Future<Output = std::result::Result<T, fred::error::Error>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r.map_err(|e| redis_error(e, op)),
        Err(_) => Err(
            Error::new(ErrorKind::Timeout, format!("no reply within {timeout:?}"))
                .with_backend("redis")
                .with_operation(op),
        ),
    }
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
