//! The cache module: typed values, single-flight loading, a rate limiter, and the backend picked
//! from the environment.
//!
//! ```sh
//! cargo run --example cache                                  # in-process memory store
//! CACHE_BACKEND=redis cargo run --example cache --features cache-redis
//! CACHE_BACKEND=tiered cargo run --example cache --features cache-memory,cache-redis
//! ```

use corekit::cache::{Cache, RateLimiter};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
}

async fn load_profile(id: u64) -> Result<Profile, std::io::Error> {
    // Stands in for a database query.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(Profile {
        id,
        name: format!("user {id}"),
    })
}

#[tokio::main]
async fn main() -> corekit::Result<()> {
    // CACHE_BACKEND, CACHE_REDIS_URL, CACHE_PREFIX, CACHE_DEFAULT_TTL, ...
    let cache = Cache::from_env().await?;
    cache.ping().await?;
    println!("backend: {}", cache.backend_name());

    // Typed values (JSON by default).
    cache.set("greeting", &"hello").await?;
    let greeting: Option<String> = cache.get("greeting").await?;
    println!("greeting: {greeting:?}");

    // Ten concurrent misses, one database call.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_set("profile:7", Some(Duration::from_secs(60)), || {
                    load_profile(7)
                })
                .await
        }));
    }
    for task in tasks {
        let profile: Profile = task.await.expect("task")?;
        println!("loaded {profile:?}");
    }

    // Counters and a fixed-window limiter (atomic on Redis across instances).
    println!("visits: {}", cache.incr("visits", 1).await?);
    let limiter = RateLimiter::new(cache.clone(), 3, Duration::from_secs(10))?;
    for i in 0..4 {
        let verdict = limiter.check("203.0.113.7").await?;
        println!(
            "request {i}: allowed={} remaining={}",
            verdict.allowed, verdict.remaining
        );
    }

    println!("stats: {:?}", cache.stats());
    cache.clear().await?;
    Ok(())
}
