//! A durable job queue on Redis: jobs survive restarts and several instances share the work.

use super::jobs::{AfterFailure, Handlers, JobCounters};
use super::redis::redis_error;
use super::{DeadJob, JobQueueConfig, JobStats};
use crate::{BoxError, Error, Result};
use fred::clients::Client;
use fred::interfaces::{ListInterface, LuaInterface};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Moves the next ready job to `processing`, leased until Redis's clock + ARGV[1] ms.
const POP: &str = r"
local job = redis.call('LPOP', KEYS[1])
if job then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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
end
return 1";

/// Moves due retries and expired leases (a worker that died) back to `ready`.
const PROMOTE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local moved = 0
for i = 2, 3 do
  local due = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now, 'LIMIT', 0, 100)
  for _, job in ipairs(due) do
    redis.call('ZREM', KEYS[i], job)
    redis.call('RPUSH', KEYS[1], job)
    moved = moved + 1
  end
end
return moved";

/// Numbers the job and appends it to `ready`: one round trip per enqueue.
const PUSH: &str = r#"
local id = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], '{"id":' .. id .. ',"attempt":1,"payload":' .. ARGV[1] .. '}')
return id"#;

/// Bound on connecting to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often idle workers look for work and due retries are promoted.
const POLL: Duration = Duration::from_millis(50);

struct Shared {
    client: Client,
    prefix: String,
    config: JobQueueConfig,
    handlers: Handlers,
    stopping: AtomicBool,
    // in_flight counts this instance's running attempts.
    counters: JobCounters,
}

/// A durable background-job queue on Redis (feature `scheduler-redis`).
///
/// Same model as [`JobQueue`](super::JobQueue) (typed JSON payloads on named queues, a
/// concurrency limit, retries with backoff and jitter, dead jobs), but jobs live in Redis:
/// they survive a restart, any instance may enqueue, and every instance that registered a
/// handler for a queue takes jobs from it. Delivery is at least once: a worker that dies
/// mid-job loses its lease (`JobQueueConfig::lease`) and another instance runs the job again.
///
/// Keys: `<prefix>:<queue>:ready` (list), `:delayed` and `:processing` (sorted sets by due
/// time), `:dead` (list), `:seq` (ids). The default prefix is `corekit:jobs`.
#[derive(Clone)]
pub struct RedisJobQueue {
    shared: Arc<Shared>,
    workers: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for RedisJobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisJobQueue")
            .field("prefix", &self.shared.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisJobQueue {
    /// Connects to Redis at `url` and starts `config.concurrency` workers (they take jobs
    /// only from queues with a registered handler).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a bad URL; [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when Redis does not
    /// answer within 5 s.
    pub async fn connect(url: &str, config: JobQueueConfig) -> Result<Self> {
        Self::connect_with_prefix(url, "corekit:jobs", config).await
    }

    /// As [`connect`](Self::connect), with keys under `prefix` instead of `corekit:jobs`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with_prefix(
        url: &str,
        prefix: &str,
        config: JobQueueConfig,
    ) -> Result<Self> {
        let client = super::redis::connect_client(url, CONNECT_TIMEOUT).await?;
        let concurrency = config.concurrency.max(1);
        let shared = Arc::new(Shared {
            client,
            prefix: prefix.to_owned(),
            config,
            handlers: Handlers::default(),
            stopping: AtomicBool::new(false),
            counters: JobCounters::default(),
        });
        let workers = (0..concurrency)
            .map(|i| tokio::spawn(work(shared.clone(), i)))
            .collect();
        Ok(Self {
            shared,
            workers: Arc::new(std::sync::Mutex::new(workers)),
        })
    }

    fn key(&self, queue: &str, part: &str) -> String {
        key(&self.shared.prefix, queue, part)
    }

    /// Sets the handler for `queue` on this instance; its workers start taking that queue's
    /// jobs. Payloads are JSON-decoded into `T`.
    pub fn register<T, F, Fut, E>(&self, queue: &str, handler: F)
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        self.shared.handlers.register(queue, handler);
    }

    /// Stores a job in Redis; any instance with a handler for `queue` will run it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an empty queue name or a payload that does not
    /// serialize; [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) or [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) from Redis.
    pub async fn enqueue<T: Serialize + ?Sized>(&self, queue: &str, job: &T) -> Result<u64> {
        if queue.is_empty() || queue.contains(char::is_whitespace) {
            return Err(Error::invalid_input(format!(
                "queue name {queue:?} must be non-empty without spaces"
            ))
            .with_operation("enqueue"));
        }
        let payload = serde_json::to_string(job).map_err(|e| {
            Error::invalid_input(format!("job for queue {queue:?} does not serialize"))
                .with_operation("enqueue")
                .with_source(e)
        })?;
        let id: u64 = self
            .shared
            .client
            .eval(
                PUSH,
                vec![self.key(queue, "seq"), self.key(queue, "ready")],
                vec![payload],
            )
            .await
            .map_err(|e| redis_error(e, "enqueue"))?;
        self.shared
            .counters
            .enqueued
            .fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Jobs of `queue` that used up their attempts, oldest first (from Redis, so from every
    /// instance).
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) or [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) from Redis.
    pub async fn dead(&self, queue: &str) -> Result<Vec<DeadJob>> {
        let raw: Vec<String> = self
            .shared
            .client
            .lrange(self.key(queue, "dead"), 0, -1)
            .await
            .map_err(|e| redis_error(e, "dead"))?;
        Ok(raw
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(r).ok())
            .map(|v| DeadJob {
                id: v["id"].as_u64().unwrap_or(0),
                queue: queue.to_owned(),
                payload: v["payload"].to_string(),
                attempts: u32::try_from(v["attempt"].as_u64().unwrap_or(0)).unwrap_or(u32::MAX),
                last_error: v["error"].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// This instance's counters (`running` is this instance's attempts in progress).
    pub fn stats(&self) -> JobStats {
        self.shared.counters.snapshot()
    }

    /// Stops taking jobs and waits up to `deadline` for this instance's running attempts.
    /// Jobs still in Redis stay there for the next instance.
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) with the number of attempts still running (their leases
    /// expire and other instances run them again).
    pub async fn shutdown(&self, deadline: Duration) -> Result<()> {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared
            .counters
            .drain(deadline, "job(s) still running")
            .await
    }

    /// Stops this instance's workers at once, mid-job, as if the process died: what they held
    /// goes back to other instances when its lease expires. For tests and emergency stops.
    pub fn abort(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            w.abort();
        }
    }
}

fn key(prefix: &str, queue: &str, part: &str) -> String {
    format!("{prefix}:{queue}:{part}")
}

/// One worker: promote due jobs, take one from a registered queue, run it, settle it.
async fn work(shared: Arc<Shared>, index: usize) {
    let mut turn = index;
    while !shared.stopping.load(Ordering::SeqCst) {
        let queues = shared.handlers.names();
        if queues.is_empty() {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let mut did_work = false;
        for _ in 0..queues.len() {
            turn = turn.wrapping_add(1);
            let queue = &queues[turn % queues.len()];
            if index == 0 {
                // One worker per instance promotes; any instance doing it is enough.
                let _ = promote(&shared, queue).await;
            }
            match pop(&shared, queue).await {
                Ok(Some(raw)) => {
                    run(&shared, queue, raw).await;
                    did_work = true;
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%queue, error = %e, "cannot take jobs from redis");
                    tokio::time::sleep(POLL * 10).await;
                }
            }
        }
        if !did_work {
            tokio::time::sleep(POLL).await;
        }
    }
}

async fn promote(shared: &Shared, queue: &str) -> Result<i64> {
    let p = &shared.prefix;
    shared
        .client
        .eval(
            PROMOTE,
            vec![
                key(p, queue, "ready"),
                key(p, queue, "delayed"),
                key(p, queue, "processing"),
            ],
            Vec::<String>::new(),
        )
        .await
        .map_err(|e| redis_error(e, "promote"))
}

async fn pop(shared: &Shared, queue: &str) -> Result<Option<String>> {
    let p = &shared.prefix;
    let lease = shared.config.effective_lease().as_millis().to_string();
    shared
        .client
        .eval(
            POP,
            vec![key(p, queue, "ready"), key(p, queue, "processing")],
            vec![lease],
        )
        .await
        .map_err(|e| redis_error(e, "pop"))
}

async fn run(shared: &Shared, queue: &str, raw: String) {
    shared.counters.in_flight.start();
    let mut envelope: Value = match serde_json::from_str(&raw) {
        Ok(v) => v,
        Err(_) => Value::Null,
    };
    let attempt = u32::try_from(envelope["attempt"].as_u64().unwrap_or(1)).unwrap_or(u32::MAX);
    let payload: Arc<[u8]> = Arc::from(envelope["payload"].to_string().into_bytes());
    let outcome = if envelope.is_null() {
        Err("the stored job is not valid JSON".to_owned())
    } else {
        shared
            .handlers
            .attempt(queue, payload, shared.config.timeout)
            .await
    };
    let (action, updated, delay) = match outcome {
        Ok(()) => {
            shared.counters.succeeded.fetch_add(1, Ordering::Relaxed);
            ("ack", String::new(), 0)
        }
        Err(error) => match shared.config.after_failure(attempt) {
            AfterFailure::Retry(delay) => {
                shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                envelope["attempt"] = Value::from(attempt + 1);
                envelope["error"] = Value::from(error);
                ("retry", envelope.to_string(), delay.as_millis())
            }
            AfterFailure::Dead => {
                shared.counters.dead.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%queue, %error, "job is dead");
                envelope["error"] = Value::from(error);
                ("bury", envelope.to_string(), 0)
            }
        },
    };
    let p = &shared.prefix;
    let settled: std::result::Result<i64, _> = shared
        .client
        .eval(
            SETTLE,
            vec![
                key(p, queue, "processing"),
                key(p, queue, "delayed"),
                key(p, queue, "dead"),
            ],
            vec![raw, action.to_owned(), updated, delay.to_string()],
        )
        .await;
    if let Err(e) = settled {
        // The lease will expire and the job will run again: at-least-once.
        tracing::warn!(%queue, error = %e, "cannot settle a job; it will be retried after its lease");
    }
    shared.counters.in_flight.finish();
}
