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
        r#"invalid configuration: CACHE_REDIS_URL="***": expected a URL like redis://[user:password@]host:6379[/db] or rediss://"#
    );
}
