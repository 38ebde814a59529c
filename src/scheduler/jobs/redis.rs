//! [`RedisJobStore`]: durable jobs on Redis, moved between keys by Lua scripts.

use super::{AfterFailure, ClaimedJob, DeadJob, JobStore};
use crate::scheduler::StoreFuture;
use crate::scheduler::guard::lock;
use crate::scheduler::redis::{bounded, connect_client, redis_error};
use crate::{Error, Result};
use fred::clients::Pool;
use fred::interfaces::{ClientLike, ListInterface, LuaInterface};
use serde_json::Value;
use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Moves the next ready job to `processing`, leased until Redis's clock + ARGV[1] ms. The
/// member is the envelope behind a lease number (`<n>|<envelope>`), so a worker whose lease
/// expired cannot settle the job once another worker took it again.
const POP: &str = r"
local job = redis.call('LPOP', KEYS[1])
if job then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  job = redis.call('INCR', KEYS[3]) .. '|' .. job
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), job)
end
return job";

/// Takes a job out of `processing` and, per ARGV[2], drops it (`ack`), schedules the updated
/// envelope ARGV[3] after ARGV[4] ms (`retry`) or appends it to the dead list (`bury`). A job
/// whose lease expired and was taken by another worker is no longer ours: nothing happens.
const SETTLE: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] == 'retry' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3])
elseif ARGV[2] == 'bury' then
  redis.call('RPUSH', KEYS[3], ARGV[3])
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[5]), -1)
end
return 1";

/// Takes the dead job whose stored text is ARGV[1] out of the dead list and, with ARGV[2]
/// (its envelope as a first attempt), appends it to `ready`; 0 when it is not there.
const UNBURY: &str = r"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if ARGV[2] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[2]) end
return 1";

/// Moves due retries and expired leases (a worker that died) back to `ready`, without their
/// lease numbers.
const PROMOTE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local moved = 0
for i = 2, 3 do
  local due = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now, 'LIMIT', 0, 100)
  for _, job in ipairs(due) do
    redis.call('ZREM', KEYS[i], job)
    redis.call('RPUSH', KEYS[1], (string.gsub(job, '^%d+|', '')))
    moved = moved + 1
  end
end
return moved";

/// Numbers the job and appends it to `ready`: one round trip per enqueue.
const PUSH: &str = r#"
local id = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], '{"id":' .. id .. ',"attempt":1,"payload":' .. ARGV[1] .. '}')
return id"#;

/// Bound on connecting to Redis and on a ping.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a queue's due retries and expired leases are moved back to `ready`, per store:
/// promoting on every claim would double the round trips of a busy queue.
const PROMOTE_EVERY: Duration = Duration::from_millis(50);

/// A durable [`JobStore`] on Redis (feature `scheduler-redis`).
///
/// Jobs survive a restart, any instance may enqueue, and every instance with a handler for a
/// queue takes jobs from it. Time (retry delays, leases) is Redis's clock, so instances'
/// clocks need not agree. Keys: `<prefix>:{<queue>}:ready` (list), `:delayed` and
/// `:processing` (sorted sets by due time), `:dead` (list), `:seq` (ids), `:leases` (lease
/// numbers). Each move is one Lua script, so a job is never in two places. The queue name is
/// a hash tag, so on a Redis Cluster (`redis-cluster://`) a queue's keys share one slot and
/// each script runs there; different queues spread over the cluster.
///
/// ```no_run
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use corekit::scheduler::{JobQueue, RedisJobStore};
///
/// let jobs = JobQueue::builder()
///     .redis("redis://127.0.0.1:6379")
///     .prefix("billing:jobs")
///     .concurrency(8)
///     .build()
///     .await?;
/// assert_eq!(jobs.backend_name(), "redis");
/// let store: &RedisJobStore = jobs.downcast_ref().expect("a Redis store");
/// assert_eq!(store.prefix(), "billing:jobs");
/// # Ok::<(), corekit::Error>(())
/// # });
/// ```
pub struct RedisJobStore {
    client: Pool,
    prefix: String,
    promoted: Mutex<HashMap<String, Instant>>,
    dead_max: usize,
}

impl std::fmt::Debug for RedisJobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisJobStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisJobStore {
    /// Connects to Redis at `url` (`redis://` or `rediss://`), keys under `prefix`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a bad URL (password redacted) or a
    /// prefix that is empty or holds `{` or `}` (the queue name is the keys' hash tag);
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when Redis does not answer
    /// within 5 s.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        if let Some(issue) = super::config::prefix_issue(prefix) {
            return Err(Error::config(format!("job key prefix {prefix:?}: {issue}")));
        }
        Ok(Self {
            client: connect_client(url, CONNECT_TIMEOUT).await?,
            prefix: prefix.to_owned(),
            promoted: Mutex::new(HashMap::new()),
            dead_max: super::DEFAULT_DEAD_MAX,
        })
    }

    /// Keeps at most `n` dead jobs per queue, dropping the oldest (default 10,000).
    pub fn with_dead_max(mut self, n: usize) -> Self {
        self.dead_max = n.max(1);
        self
    }

    /// Takes dead job `id` out of `queue`'s dead list; with `retry`, back to `ready` as a first
    /// attempt. The element is found by its exact text, so the move is one atomic script.
    async fn unbury(&self, queue: &str, id: u64, retry: bool) -> Result<bool> {
        let op = if retry { "retry_dead" } else { "delete_dead" };
        let raw: Vec<String> = self
            .client
            .lrange(self.key(queue, "dead"), 0, -1)
            .await
            .map_err(|e| redis_error(e, op))?;
        let Some((text, mut v)) = raw.into_iter().find_map(|r| {
            let v = serde_json::from_str::<Value>(&r).ok()?;
            (v["id"].as_u64() == Some(id)).then_some((r, v))
        }) else {
            return Ok(false);
        };
        let again = if retry {
            v["attempt"] = Value::from(1);
            if let Some(o) = v.as_object_mut() {
                o.remove("error");
            }
            v.to_string()
        } else {
            String::new()
        };
        let moved: i64 = self
            .client
            .eval(
                UNBURY,
                vec![self.key(queue, "dead"), self.key(queue, "ready")],
                vec![text, again],
            )
            .await
            .map_err(|e| redis_error(e, op))?;
        Ok(moved == 1)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The fred connection (a pool of one), for calls the portable API does not make.
    pub fn client(&self) -> &Pool {
        &self.client
    }

    /// `<prefix>:{<queue>}:<part>`: the braces make the queue name the cluster hash tag.
    fn key(&self, queue: &str, part: &str) -> String {
        format!("{}:{{{queue}}}:{part}", self.prefix)
    }

    /// True when `queue` was not promoted within [`PROMOTE_EVERY`]; notes the time.
    fn promote_due(&self, queue: &str) -> bool {
        let mut promoted = lock(&self.promoted);
        let now = Instant::now();
        match promoted.get(queue) {
            Some(at) if now.duration_since(*at) < PROMOTE_EVERY => false,
            _ => {
                promoted.insert(queue.to_owned(), now);
                true
            }
        }
    }

    async fn promote(&self, queue: &str) -> Result<i64> {
        self.client
            .eval(
                PROMOTE,
                vec![
                    self.key(queue, "ready"),
                    self.key(queue, "delayed"),
                    self.key(queue, "processing"),
                ],
                Vec::<String>::new(),
            )
            .await
            .map_err(|e| redis_error(e, "promote"))
    }

    async fn settle(
        &self,
        job: &ClaimedJob,
        action: &str,
        updated: String,
        delay: u128,
    ) -> Result<bool> {
        let settled: i64 = self
            .client
            .eval(
                SETTLE,
                vec![
                    self.key(&job.queue, "processing"),
                    self.key(&job.queue, "delayed"),
                    self.key(&job.queue, "dead"),
                ],
                vec![
                    job.receipt.clone(),
                    action.to_owned(),
                    updated,
                    delay.to_string(),
                    self.dead_max.to_string(),
                ],
            )
            .await
            .map_err(|e| redis_error(e, "settle"))?;
        Ok(settled == 1)
    }
}

/// The stored envelope `{"id", "attempt", "payload", "error"}` of a ready job or of a lease
/// (`<n>|<envelope>`); `Null` if it is not JSON.
fn envelope(raw: &str) -> Value {
    let json = match raw.split_once('|') {
        Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => raw,
    };
    serde_json::from_str(json).unwrap_or(Value::Null)
}

fn attempts(v: &Value) -> u32 {
    u32::try_from(v["attempt"].as_u64().unwrap_or(1)).unwrap_or(u32::MAX)
}

impl JobStore for RedisJobStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn enqueue<'a>(&'a self, queue: &'a str, payload: &'a [u8]) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            // PUSH splices the payload into the envelope as JSON text.
            let payload = std::str::from_utf8(payload).map_err(|e| {
                Error::invalid_input("a job payload must be JSON text")
                    .with_backend("redis")
                    .with_operation("enqueue")
                    .with_source(e)
            })?;
            self.client
                .eval(
                    PUSH,
                    vec![self.key(queue, "seq"), self.key(queue, "ready")],
                    vec![payload.to_owned()],
                )
                .await
                .map_err(|e| redis_error(e, "enqueue"))
        })
    }

    fn claim<'a>(&'a self, queue: &'a str, lease: Duration) -> StoreFuture<'a, Option<ClaimedJob>> {
        Box::pin(async move {
            if self.promote_due(queue) {
                // Any instance promoting is enough; a failure only delays retries.
                if let Err(e) = self.promote(queue).await {
                    tracing::debug!(%queue, error = %e, "cannot promote due jobs");
                }
            }
            let raw: Option<String> = self
                .client
                .eval(
                    POP,
                    vec![
                        self.key(queue, "ready"),
                        self.key(queue, "processing"),
                        self.key(queue, "leases"),
                    ],
                    vec![lease.as_millis().to_string()],
                )
                .await
                .map_err(|e| redis_error(e, "pop"))?;
            Ok(raw.map(|raw| {
                let v = envelope(&raw);
                let payload = v["payload"].to_string().into_bytes();
                ClaimedJob::new(
                    v["id"].as_u64().unwrap_or(0),
                    queue,
                    payload,
                    attempts(&v),
                    raw,
                )
            }))
        })
    }

    fn complete<'a>(&'a self, job: &'a ClaimedJob) -> StoreFuture<'a, bool> {
        Box::pin(self.settle(job, "ack", String::new(), 0))
    }

    fn fail<'a>(
        &'a self,
        job: &'a ClaimedJob,
        error: &'a str,
        then: AfterFailure,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut v = envelope(&job.receipt);
            v["error"] = Value::from(error);
            match then {
                AfterFailure::Retry(delay) => {
                    v["attempt"] = Value::from(job.attempt.saturating_add(1));
                    self.settle(job, "retry", v.to_string(), delay.as_millis())
                        .await
                }
                AfterFailure::Dead => self.settle(job, "bury", v.to_string(), 0).await,
            }
        })
    }

    fn dead<'a>(&'a self, queue: &'a str) -> StoreFuture<'a, Vec<DeadJob>> {
        Box::pin(async move {
            let raw: Vec<String> = self
                .client
                .lrange(self.key(queue, "dead"), 0, -1)
                .await
                .map_err(|e| redis_error(e, "dead"))?;
            Ok(raw
                .iter()
                .filter_map(|r| serde_json::from_str::<Value>(r).ok())
                .map(|v| {
                    DeadJob::new(
                        v["id"].as_u64().unwrap_or(0),
                        queue,
                        v["payload"].to_string(),
                        attempts(&v),
                        v["error"].as_str().unwrap_or_default(),
                    )
                })
                .collect())
        })
    }

    fn retry_dead<'a>(&'a self, queue: &'a str, id: u64) -> StoreFuture<'a, bool> {
        Box::pin(self.unbury(queue, id, true))
    }

    fn delete_dead<'a>(&'a self, queue: &'a str, id: u64) -> StoreFuture<'a, bool> {
        Box::pin(self.unbury(queue, id, false))
    }

    fn unfinished(&self) -> Option<u64> {
        // Durable: jobs left in Redis wait for the next instance.
        None
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(bounded(
            CONNECT_TIMEOUT,
            "ping",
            self.client.ping::<()>(None),
        ))
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(bounded(CONNECT_TIMEOUT, "close", self.client.quit()))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
