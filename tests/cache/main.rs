//! The cache module against every backend: the conformance suite on memory, Redis and the
//! two-tier store (real redis-server: one node, a Cluster, behind Sentinel), plus each backend's own behaviour and faults.

#[path = "../support/mod.rs"]
mod support;

mod conformance;
mod failover;
mod from_env;
mod memory;
mod redis;
mod redis_cluster;
mod redis_faults;
mod redis_sentinel;
mod redis_tls;
mod tiered;
mod tracking;
