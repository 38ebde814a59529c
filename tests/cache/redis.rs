use crate::support;
use corekit::ErrorKind;
use corekit::cache::{Cache, CacheStore, RedisStore};
use std::time::{Duration, Instant};

type Store = RedisStore;

async fn new_store() -> Store {
    RedisStore::connect(&support::REDIS.require())
        .await
        .unwrap()
}

crate::cache_suite!(keeps_expired: false);

#[tokio::test]
async fn values_are_plain_redis_strings() {
    // What corekit writes is readable by any Redis client: JSON text, integer counters.
    let store = new_store().await;
    let cache = Cache::builder(store.clone())
        .prefix(support::unique("plain"))
        .build()
        .unwrap();
    cache.set("j", &serde_json::json!({"a": 1})).await.unwrap();
    cache.incr("n", 41).await.unwrap();
    let raw = store
        .get(format!("{}j", cache.namespace()).as_bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&raw[..], br#"{"a":1}"#);
    let n = store
        .get(format!("{}n", cache.namespace()).as_bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&n[..], b"41");
}

#[tokio::test]
async fn bad_url_is_a_config_error_without_the_password() {
    let err = RedisStore::connect("redis://user:hunter2@[::1")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn nothing_listening_is_unavailable_within_the_connect_timeout() {
    let url = format!("redis://127.0.0.1:{}", support::free_port());
    let started = Instant::now();
    let err = RedisStore::builder(url)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.is_retryable(), "{err}");
    assert!(
        matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{err}"
    );
}
