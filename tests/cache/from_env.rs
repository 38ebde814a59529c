use crate::support;
use corekit::cache::{Cache, CacheBackend, CacheConfig, CacheStore};
use corekit::config::EnvConfig;

fn config(vars: &[(&str, &str)]) -> CacheConfig {
    CacheConfig::from_vars(
        "CACHE_",
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap()
}

#[tokio::test]
async fn each_backend_from_config() {
    let url = support::REDIS.require();
    for (backend, name) in [
        ("memory", "memory"),
        ("redis", "redis"),
        ("tiered", "tiered"),
    ] {
        let prefix = support::unique("env");
        let c = config(&[
            ("CACHE_BACKEND", backend),
            ("CACHE_REDIS_URL", &url),
            ("CACHE_PREFIX", &prefix),
        ]);
        let cache = Cache::from_config(&c).await.unwrap();
        assert_eq!(cache.store().name(), name);
        assert_eq!(cache.namespace(), format!("{prefix}:"));
        cache.set("k", &backend).await.unwrap();
        assert_eq!(
            cache.get::<String>("k").await.unwrap().as_deref(),
            Some(backend)
        );
        cache.ping().await.unwrap();
    }
}

#[tokio::test]
async fn invalid_config_names_the_variable() {
    let mut c = config(&[]);
    c.backend = Some(CacheBackend::Redis);
    c.redis_url = "memcached://h".into();
    let err = Cache::from_config(&c).await.err().unwrap();
    assert_eq!(
        err.to_string(),
        r#"invalid configuration: CACHE_REDIS_URL="memcached://h": expected a URL like redis://[user:password@]host:6379[/db] or rediss://"#
    );
}

#[test]
fn from_env_with_no_variables_warns_that_the_cache_is_in_process() {
    support::assert_unset("CACHE_");
    let (cache, logs) = support::with_logs(Cache::from_env());
    assert_eq!(cache.unwrap().backend_name(), "memory");
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("no CACHE_* variable is set"), "{logs}");
    assert!(
        logs.contains("CACHE_URL="),
        "the warning says what to set: {logs}"
    );
}

#[tokio::test]
async fn redis_url_is_the_address_when_cache_redis_url_is_unset() {
    let url = support::REDIS.require();
    let c = config(&[("CACHE_BACKEND", "redis"), ("REDIS_URL", &url)]);
    assert_eq!(c.redis_address(), url);
    Cache::from_config(&c).await.unwrap().ping().await.unwrap();
    let c = config(&[("CACHE_REDIS_URL", "redis://own:6379"), ("REDIS_URL", &url)]);
    assert_eq!(
        c.redis_address(),
        "redis://own:6379",
        "the module's own variable wins"
    );
}

#[tokio::test]
async fn a_closed_redis_url_fails_and_names_the_address() {
    let dead = format!("redis://u:s3cret@127.0.0.1:{}", support::free_port());
    let c = config(&[
        ("CACHE_BACKEND", "redis"),
        ("REDIS_URL", &dead),
        ("CACHE_CONNECT_TIMEOUT", "2s"),
    ]);
    let e = Cache::from_config(&c)
        .await
        .expect_err("nothing listens there");
    let text = format!("{e} {e:?}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(
        text.contains("from REDIS_URL"),
        "names the variable: {text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}

/// `CACHE_BACKEND=tiered` tracks the cache's namespace (`CACHE_PREFIX` and `CACHE_VERSION`): a
/// plain client's write under it drops the near copy; `CACHE_NEAR_TRACKING=false` turns it off.
#[tokio::test]
async fn a_tiered_cache_from_env_tracks_its_namespace() {
    use corekit::cache::{Invalidation, TieredStore};
    use fred::interfaces::{ClientLike, KeysInterface};
    use std::time::{Duration, Instant};
    let url = support::REDIS.require();
    let prefix = support::unique("env");
    let tiered = |tracking: &'static str| {
        config(&[
            ("CACHE_BACKEND", "tiered"),
            ("CACHE_REDIS_URL", &url),
            ("CACHE_PREFIX", &prefix),
            ("CACHE_VERSION", "2"),
            ("CACHE_NEAR_TRACKING", tracking),
        ])
    };
    let off = Cache::from_config(&tiered("false")).await.unwrap();
    let store = off.downcast_ref::<TieredStore>().expect("tiered");
    assert_eq!(store.invalidation(), Invalidation::Channel);
    off.close().await.unwrap();

    let cache = Cache::from_config(&tiered("true")).await.unwrap();
    let store = cache.downcast_ref::<TieredStore>().expect("tiered");
    assert_eq!(store.invalidation(), Invalidation::Tracking);
    let key = format!("{prefix}:v2:k");
    cache.set("k", &1).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !store.near().exists(key.as_bytes()).await.unwrap() {
        assert!(Instant::now() < deadline, "never held near");
        cache.get::<i32>("k").await.unwrap();
    }
    let other = crate::tracking::other_client(&url).await;
    let () = other.set(&key, "2", None, None, false).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while store.near().exists(key.as_bytes()).await.unwrap() {
        assert!(
            Instant::now() < deadline,
            "the near copy outlived a write under the namespace"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(2));
    cache.close().await.unwrap();
    let _ = other.quit().await;
}
