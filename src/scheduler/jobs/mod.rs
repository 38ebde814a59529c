//! Background jobs: one [`JobQueue`] handle over a [`JobStore`] (in memory or on Redis).

mod builder;
mod config;
mod handle;
mod handlers;
mod memory;
#[cfg(feature = "scheduler-redis")]
mod redis;
mod store;
mod worker;

pub use builder::{ConnectRedis, InProcess, JobQueueBuilder};
pub use config::{AfterFailure, JobBackend, JobQueueConfig};
pub(crate) use config::{DEFAULT_DEAD_MAX, DEFAULT_PREFIX, DEFAULT_URL};
pub use handle::{JobQueue, JobStats};
pub use memory::MemoryJobStore;
#[cfg(feature = "scheduler-redis")]
pub use redis::RedisJobStore;
pub use store::{ClaimedJob, DeadJob, JobStore};
