//! The tag checks: `invalidate_tag` removes exactly the entries carrying the tag, through
//! every read path; bad tags are refused before any call.

use super::cache;
use crate::ErrorKind;
use crate::cache::CacheStore;
use std::time::Duration;

/// Entries carrying an invalidated tag read as misses through `get`, `get_many` and
/// `get_or_set`; entries without it, untagged ones and ones written after the invalidation
/// are untouched.
pub async fn tags_invalidate_their_entries<S: CacheStore + Clone>(store: S) {
    let cache = cache(store);
    cache
        .set_tagged("a", &1, &["t1", "t2"])
        .await
        .expect("set_tagged a");
    cache
        .set_tagged("b", &2, &["t2"])
        .await
        .expect("set_tagged b");
    cache
        .set_tagged("c", &3, &["t3"])
        .await
        .expect("set_tagged c");
    cache.set("d", &4).await.expect("set d");
    assert_eq!(
        cache.get::<i32>("a").await.expect("get a"),
        Some(1),
        "a tagged entry reads back"
    );
    assert_eq!(
        cache
            .get_many::<i32>(&["a", "b", "c", "d"])
            .await
            .expect("get_many"),
        vec![Some(1), Some(2), Some(3), Some(4)]
    );

    cache.invalidate_tag("t2").await.expect("invalidate t2");
    assert_eq!(
        cache.get::<i32>("a").await.expect("get a"),
        None,
        "a carried t2"
    );
    assert_eq!(
        cache.get::<i32>("b").await.expect("get b"),
        None,
        "b carried t2"
    );
    assert_eq!(
        cache.get::<i32>("c").await.expect("get c"),
        Some(3),
        "c did not"
    );
    assert_eq!(
        cache.get::<i32>("d").await.expect("get d"),
        Some(4),
        "d is untagged"
    );
    assert_eq!(
        cache
            .get_many::<i32>(&["a", "b", "c", "d"])
            .await
            .expect("get_many"),
        vec![None, None, Some(3), Some(4)]
    );
    let loaded: i32 = cache
        .get_or_set("b", None, || async { Ok::<_, std::io::Error>(20) })
        .await
        .expect("get_or_set b");
    assert_eq!(
        loaded, 20,
        "an invalidated entry is loaded again by get_or_set"
    );

    cache
        .set_tagged("a", &10, &["t2"])
        .await
        .expect("set_tagged a again");
    assert_eq!(
        cache.get::<i32>("a").await.expect("get a"),
        Some(10),
        "written after"
    );
    cache
        .invalidate_tag("never-used")
        .await
        .expect("an unknown tag");
    cache.invalidate_tag("t1").await.expect("invalidate t1");
    assert_eq!(
        cache.get::<i32>("a").await.expect("get a"),
        Some(10),
        "the new a lacks t1"
    );

    let ttl = Some(Duration::from_millis(200));
    cache
        .set_tagged_with_ttl("e", &5, ttl, &["t3"])
        .await
        .expect("set_tagged_with_ttl");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        cache.get::<i32>("e").await.expect("get e"),
        None,
        "a tagged entry expires"
    );
}

/// A tag that is empty, has spaces or non-ASCII characters, or is over 200 bytes, and more than
/// 32 tags on one entry, are `InvalidInput` and write nothing.
pub async fn bad_tags_are_refused<S: CacheStore + Clone>(store: S) {
    let cache = cache(store);
    let long = "x".repeat(201);
    for bad in ["", "two words", "é", long.as_str()] {
        let e = cache
            .set_tagged("k", &1, &[bad])
            .await
            .expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        let e = cache.invalidate_tag(bad).await.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let e = cache.set_tagged("k", &1, &many).await.expect_err("33 tags");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(
        cache.get::<i32>("k").await.expect("get"),
        None,
        "nothing written"
    );
}
