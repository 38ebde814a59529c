//! The behaviour every storage backend must have, written once over [`Storage`], as public
//! async functions (feature `testing`).
//!
//! Each function takes a handle over the store and a `base` key prefix, writes only under
//! `base`, and panics with a message naming what broke. Give each call its own `base` (see
//! [`unique_base`]) and the functions can share one bucket and run in any order or at once.
//! Some spawn tasks, so run them on a multi-threaded runtime:
//!
//! ```no_run
//! use corekit::storage::{MemoryStorage, Storage, conformance};
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn memory_storage_conforms() {
//!     let storage = Storage::new(MemoryStorage::new());
//!     // The memory store presigns no URLs, so the suite needs no HTTP client.
//!     conformance::run_all(storage, &conformance::unique_base("t"), conformance::no_http).await;
//! }
//! # fn main() {}
//! ```
//!
//! A third-party store is done when [`run_all`] passes on it; a store that presigns URLs
//! passes [`run_all`] an HTTP client (see [`presigned_urls`]), and a networked one also passes
//! [`a_dead_server_fails_within_the_deadline`]. Calling the checks one by one (one test each)
//! names the failing behaviour in the test report.

mod contract;
mod presign;

pub use contract::{list_after_starts_after, metadata_contract};
pub use presign::{no_http, presigned_urls};

use super::{
    ByteRange, GetOptions, MAX_KEY_LEN, MIN_PART_SIZE, ObjectPath, PresignedRequest, PutOptions,
    RetryPolicy, Storage,
};
use crate::ErrorKind;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

/// A key prefix no other call uses, so checks sharing a bucket do not meet.
pub fn unique_base(name: &str) -> String {
    crate::testing::unique_name(name, '-')
}

fn key(s: &str) -> ObjectPath {
    ObjectPath::new(s).expect("a valid object path")
}

/// Every check that needs only the store, one after the other, each under its own prefix of
/// `base`. `http` sends a presigned request (see [`presigned_urls`]); a store that presigns no
/// URLs passes [`no_http`].
pub async fn run_all<F, Fut>(s: Storage, base: &str, http: F)
where
    F: Fn(PresignedRequest, Bytes) -> Fut,
    Fut: Future<Output = (u16, Bytes)>,
{
    let at = |name: &str| format!("{base}/{name}");
    // Each check boxed: together their futures overflow a test thread's stack in debug builds.
    Box::pin(metadata_round_trips(s.clone(), &at("metadata"))).await;
    Box::pin(overwrites_replace_metadata(s.clone(), &at("overwrite"))).await;
    Box::pin(ranges(s.clone(), &at("ranges"))).await;
    Box::pin(listing(s.clone(), &at("listing"))).await;
    Box::pin(many_keys_list_completely(s.clone(), &at("many"))).await;
    Box::pin(copy_and_rename(s.clone(), &at("copy"))).await;
    Box::pin(metadata_contract(s.clone(), &at("contract"))).await;
    Box::pin(list_after_starts_after(s.clone(), &at("after"))).await;
    Box::pin(conditional_operations(s.clone(), &at("conditional"))).await;
    Box::pin(one_of_fifty_create_only_writers_wins(
        s.clone(),
        &at("race"),
    ))
    .await;
    Box::pin(bad_input_is_rejected(s.clone(), &at("bad"))).await;
    Box::pin(streaming_put_and_get(s.clone(), &at("streaming"))).await;
    Box::pin(presigned_urls(s.clone(), &at("presigned"), http)).await;
    Box::pin(scoped_handles_see_only_their_prefix(s, &at("scoped"))).await;
}

/// Bytes, content type, cache control, disposition and metadata round-trip through `put`,
/// `get` and `head`; `delete` removes (twice is fine); a missing object is `NotFound`.
pub async fn metadata_round_trips(s: Storage, base: &str) {
    let k = key(&format!("{base}/docs/report 100% ✓.pdf"));
    let body: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let options = PutOptions::default()
        .content_type("application/pdf")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"r.pdf\"")
        .metadata("owner", "ada")
        .metadata("trace_id", "abc");
    let put = s.put(&k, body.clone().into(), &options).await.expect("put");
    assert_eq!(put.size, 10_000);
    let got = s.get(&k).await.expect("get");
    assert_eq!(&got.bytes[..], &body[..], "bytes exact");
    let head = s.head(&k).await.expect("head");
    for meta in [&got.meta, &head] {
        assert_eq!(meta.content_type.as_deref(), Some("application/pdf"));
        assert_eq!(meta.cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(
            meta.content_disposition.as_deref(),
            Some("attachment; filename=\"r.pdf\"")
        );
        assert_eq!(meta.metadata.get("owner").map(String::as_str), Some("ada"));
        assert_eq!(meta.metadata.len(), 2);
        assert_eq!(meta.version, put.version);
        assert_eq!(meta.path, k);
    }
    assert!(s.exists(&k).await.expect("exists"));
    s.delete(&k).await.expect("delete");
    assert!(!s.exists(&k).await.expect("exists"));
    s.delete(&k).await.expect("deleting what is gone is fine");
    for e in [
        s.get(&k).await.expect_err("get of a deleted object"),
        s.head(&k).await.expect_err("head of a deleted object"),
    ] {
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }
}

/// An overwrite replaces the metadata too: none given means none kept.
pub async fn overwrites_replace_metadata(s: Storage, base: &str) {
    let k = key(&format!("{base}/meta-then-none"));
    let with = PutOptions::default()
        .content_type("text/plain")
        .metadata("owner", "ada");
    s.put(&k, "one".into(), &with).await.expect("put");
    s.put(&k, "two!".into(), &PutOptions::default())
        .await
        .expect("put");
    let head = s.head(&k).await.expect("head");
    assert!(head.metadata.is_empty(), "{:?}", head.metadata);
    assert_ne!(head.content_type.as_deref(), Some("text/plain"));
    assert_eq!(head.size, 4);
    s.put(&k, "three".into(), &with).await.expect("put");
    let got = s.get(&k).await.expect("get");
    assert_eq!(
        got.meta.metadata.get("owner").map(String::as_str),
        Some("ada")
    );
}

/// Bounded, offset and suffix ranges read the right bytes; a range past the end is clipped;
/// an empty or unsatisfiable one is `InvalidInput`.
pub async fn ranges(s: Storage, base: &str) {
    let k = key(&format!("{base}/range"));
    s.put(&k, "0123456789".into(), &PutOptions::default())
        .await
        .expect("put");
    let get = |r| {
        let s = s.clone();
        let k = k.clone();
        async move { s.get_with(&k, &GetOptions::range(r)).await }
    };
    assert_eq!(
        &get(ByteRange::Bounded(2, 5)).await.expect("get").bytes[..],
        b"234"
    );
    assert_eq!(
        &get(ByteRange::Offset(7)).await.expect("get").bytes[..],
        b"789"
    );
    assert_eq!(
        &get(ByteRange::Suffix(3)).await.expect("get").bytes[..],
        b"789"
    );
    let clipped = get(ByteRange::Bounded(8, 100)).await.expect("get");
    assert_eq!(
        (&clipped.bytes[..], clipped.range.clone()),
        (&b"89"[..], 8..10)
    );
    assert_eq!(clipped.meta.size, 10, "meta is the whole object's");
    for bad in [
        ByteRange::Offset(10),
        ByteRange::Bounded(12, 20),
        ByteRange::Bounded(3, 3),
    ] {
        let e = get(bad).await.expect_err("an unsatisfiable range");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}: {e}");
    }
}

/// `list` is recursive, sorted and treats the prefix as a directory (`a` does not list
/// `ab/`); `list_after` resumes after a key; `list_with_delimiter` gives one level.
pub async fn listing(s: Storage, base: &str) {
    let names = [
        "a/1", "a/2", "a/b/3", "a/b/c/4", "a/b-5", "ab/6", "a/ü 7", "a/100%",
    ];
    for n in names {
        s.put(
            &key(&format!("{base}/{n}")),
            n.into(),
            &PutOptions::default(),
        )
        .await
        .expect("put");
    }
    let a = key(&format!("{base}/a"));
    let all: Vec<String> = s
        .list(Some(&a))
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.path.to_string())
        .collect();
    let mut expected: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("a/"))
        .map(|n| format!("{base}/{n}"))
        .collect();
    expected.sort();
    assert_eq!(
        all, expected,
        "recursive, sorted, and 'ab/' is not under 'a'"
    );
    let after = s
        .list_after(Some(&a), &key(&format!("{base}/a/2")))
        .await
        .expect("list after");
    assert!(
        after
            .iter()
            .all(|m| m.path.as_str() > format!("{base}/a/2").as_str())
    );
    assert_eq!(
        after.len(),
        expected
            .iter()
            .filter(|e| e.as_str() > format!("{base}/a/2").as_str())
            .count()
    );
    let level = s
        .list_with_delimiter(Some(&a))
        .await
        .expect("list with delimiter");
    let objects: BTreeSet<String> = level.objects.iter().map(|m| m.path.to_string()).collect();
    let prefixes: Vec<String> = level
        .common_prefixes
        .iter()
        .map(ToString::to_string)
        .collect();
    let want: BTreeSet<String> = ["a/1", "a/2", "a/b-5", "a/ü 7", "a/100%"]
        .iter()
        .map(|n| format!("{base}/{n}"))
        .collect();
    assert_eq!(objects, want);
    assert_eq!(prefixes, [format!("{base}/a/b")]);
    assert_eq!(
        level
            .objects
            .iter()
            .find(|m| m.path.filename() == "1")
            .expect("a/1 listed at its level")
            .size,
        3
    );
}

/// 1,500 keys list completely and in order (several pages on cloud stores), as a stream too;
/// `delete_many` removes exactly the keys named, absent ones included.
pub async fn many_keys_list_completely(s: Storage, base: &str) {
    let dir = key(&format!("{base}/many"));
    for i in 0..1500 {
        s.put(
            &dir.join(&format!("{i:05}")).expect("join"),
            "x".into(),
            &PutOptions::default(),
        )
        .await
        .expect("put");
    }
    let listed = s.list(Some(&dir)).await.expect("list");
    assert_eq!(listed.len(), 1500);
    assert!(
        listed.windows(2).all(|w| w[0].path < w[1].path),
        "in key order"
    );
    let mut streamed: Vec<ObjectPath> = s
        .list_stream(Some(&dir))
        .map_ok(|m| m.path)
        .try_collect()
        .await
        .expect("try collect");
    streamed.sort();
    assert_eq!(
        streamed,
        listed.into_iter().map(|m| m.path).collect::<Vec<_>>(),
        "the stream yields every key once"
    );
    // Batches (S3: 1,000 keys a request; the emulators are slow at one-by-one deletes, so
    // they get fewer keys) and absent keys are fine.
    let count = if s.backend_name() == "s3" { 1500 } else { 40 };
    let mut doomed: Vec<ObjectPath> = streamed.into_iter().take(count).collect();
    doomed.push(dir.join("never-existed").expect("join"));
    s.delete_many(&doomed).await.expect("delete many");
    let left = s.list(Some(&dir)).await.expect("list");
    assert_eq!(
        left.len(),
        1500 - count,
        "exactly the {count} named keys deleted"
    );
}

/// `copy` keeps the source and the metadata; `rename` removes the source; copying a missing
/// object is `NotFound`.
pub async fn copy_and_rename(s: Storage, base: &str) {
    let (a, b, c) = (
        key(&format!("{base}/a")),
        key(&format!("{base}/deep/b")),
        key(&format!("{base}/c")),
    );
    s.put(
        &a,
        "payload".into(),
        &PutOptions::default()
            .content_type("text/plain")
            .metadata("k", "v"),
    )
    .await
    .expect("put");
    s.copy(&a, &b).await.expect("copy");
    let copied = s.get(&b).await.expect("get");
    assert_eq!(&copied.bytes[..], b"payload");
    assert_eq!(copied.meta.content_type.as_deref(), Some("text/plain"));
    assert_eq!(copied.meta.metadata.get("k").map(String::as_str), Some("v"));
    assert!(s.exists(&a).await.expect("exists"), "copy keeps the source");
    s.rename(&a, &c).await.expect("rename");
    assert!(
        !s.exists(&a).await.expect("exists"),
        "rename removes the source"
    );
    let moved = s.get(&c).await.expect("get");
    assert_eq!(
        (
            &moved.bytes[..],
            moved.meta.metadata.get("k").map(String::as_str)
        ),
        (&b"payload"[..], Some("v"))
    );
    let e = s
        .copy(&key(&format!("{base}/missing")), &b)
        .await
        .expect_err("copy of a missing object");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // Renaming onto itself changes nothing (a copy-then-delete would delete it).
    s.rename(&c, &c).await.expect("rename onto itself");
    let kept = s
        .get(&c)
        .await
        .expect("the object survives renaming onto itself");
    assert_eq!(&kept.bytes[..], b"payload");
    assert_eq!(kept.meta.metadata.get("k").map(String::as_str), Some("v"));
    let e = s
        .rename(
            &key(&format!("{base}/missing")),
            &key(&format!("{base}/missing")),
        )
        .await
        .expect_err("renaming a missing object onto itself");
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

/// Create-only puts (`AlreadyExists`), `if_match` puts (`PreconditionFailed` on a stale or
/// missing version) and `if_match`/`if_none_match` gets.
pub async fn conditional_operations(s: Storage, base: &str) {
    let k = key(&format!("{base}/cas"));
    let v1 = s
        .put(&k, "one".into(), &PutOptions::create_only())
        .await
        .expect("put")
        .version;
    let e = s
        .put(&k, "two".into(), &PutOptions::create_only())
        .await
        .expect_err("a second create-only put");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    // Some backends' versions have coarse clocks: wait a little so v2 differs from v1.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let v2 = s
        .put(&k, "three!".into(), &PutOptions::if_match(v1.clone()))
        .await
        .expect("put")
        .version;
    assert_ne!(v1, v2);
    let e = s
        .put(&k, "stale".into(), &PutOptions::if_match(v1.clone()))
        .await
        .expect_err("a put if_match a stale version");
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
    assert_eq!(
        &s.get(&k).await.expect("get").bytes[..],
        b"three!",
        "the lost race wrote nothing"
    );
    let e = s
        .put(
            &key(&format!("{base}/absent")),
            "x".into(),
            &PutOptions::if_match(v2.clone()),
        )
        .await
        .expect_err("a put if_match on a missing object");
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed);
    let if_match = |v| GetOptions {
        if_match: Some(v),
        ..GetOptions::default()
    };
    let if_none_match = |v| GetOptions {
        if_none_match: Some(v),
        ..GetOptions::default()
    };
    s.get_with(&k, &if_match(v2.clone()))
        .await
        .expect("get if_match the current version");
    assert_eq!(
        s.get_with(&k, &if_match(v1.clone()))
            .await
            .expect_err("get if_match a stale version")
            .kind(),
        ErrorKind::PreconditionFailed
    );
    assert_eq!(
        s.get_with(&k, &if_none_match(v2))
            .await
            .expect_err("get if_none_match the current version")
            .kind(),
        ErrorKind::PreconditionFailed,
        "not modified"
    );
    s.get_with(&k, &if_none_match(v1))
        .await
        .expect("get if_none_match a stale version");
}

/// Of 50 concurrent create-only puts of one key, exactly one wins and its body is stored
/// whole.
pub async fn one_of_fifty_create_only_writers_wins(s: Storage, base: &str) {
    let k = key(&format!("{base}/race"));
    let writers = (0..50).map(|i| {
        let (s, k) = (s.clone(), k.clone());
        tokio::spawn(async move {
            let body = format!("writer {i} ").repeat(1000);
            (i, s.put(&k, body.into(), &PutOptions::create_only()).await)
        })
    });
    let results = futures_util::future::join_all(writers).await;
    let winners: Vec<usize> = results
        .iter()
        .filter_map(|r| match r.as_ref().expect("a writer task") {
            (i, Ok(_)) => Some(*i),
            (_, Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
                None
            }
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one create-only writer wins");
    let stored = s.get(&k).await.expect("get");
    assert_eq!(
        stored.bytes,
        format!("writer {} ", winners[0]).repeat(1000).into_bytes()
    );
}

/// Bad metadata keys, multi-line values and header injection in options are `InvalidInput`;
/// so are escaping or malformed paths; percent signs in keys are literal.
pub async fn bad_input_is_rejected(s: Storage, base: &str) {
    let k = key(&format!("{base}/x"));
    for options in [
        PutOptions::default().metadata("bad key", "v"),
        PutOptions::default().metadata("k", "line\nbreak"),
        PutOptions::default().content_type("text/plain\r\nX-Evil: 1"),
    ] {
        let e = s
            .put(&k, "x".into(), &options)
            .await
            .expect_err("a put with bad options");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    for bad in ["../etc/passwd", "/abs", "a//b", "a\\b", "nul\0"] {
        assert_eq!(
            ObjectPath::new(bad)
                .expect_err("an invalid object path")
                .kind(),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
    // Percent signs are literal: `%2e%2e` is a name, never `..`.
    let literal = key(&format!("{base}/%2e%2e/x"));
    s.put(&literal, "ok".into(), &PutOptions::default())
        .await
        .expect("put");
    assert_eq!(&s.get(&literal).await.expect("get").bytes[..], b"ok");
}

/// A body of `len` bytes that differs at every offset modulo a prime, so a misplaced part shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A multipart `put_stream` of odd-sized chunks reads back byte-exact, also as a ranged
/// stream; create-only holds for multipart bodies; a failing source leaves nothing visible.
pub async fn streaming_put_and_get(s: Storage, base: &str) {
    let s = s.with_part_size(MIN_PART_SIZE).expect("with part size");
    let k = key(&format!("{base}/big.bin"));
    let body = pattern(2 * MIN_PART_SIZE + 123_457);
    // Odd-sized chunks, so parts are cut across chunk boundaries.
    let chunks: Vec<crate::Result<Bytes>> = body
        .chunks(300_007)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let options = PutOptions::default()
        .content_type("application/octet-stream")
        .metadata("parts", "3");
    let put = s
        .put_stream(&k, futures_util::stream::iter(chunks), &options)
        .await
        .expect("put stream");
    assert_eq!(put.size, body.len() as u64);
    let head = s.head(&k).await.expect("head");
    assert_eq!(head.size, body.len() as u64);
    assert_eq!(head.metadata.get("parts").map(String::as_str), Some("3"));
    assert_eq!(head.version, put.version);
    let got = s.get(&k).await.expect("get");
    assert!(
        got.bytes[..] == body[..],
        "multipart body read back byte-exact"
    );
    let mut stream = s
        .get_stream(
            &k,
            &GetOptions::range(ByteRange::Offset(MIN_PART_SIZE as u64 - 10)),
        )
        .await
        .expect("get stream");
    assert_eq!(stream.meta.size, body.len() as u64);
    let mut streamed = Vec::new();
    let mut chunks_seen = 0;
    while let Some(chunk) = stream.stream.next().await {
        streamed.extend_from_slice(&chunk.expect("a streamed chunk"));
        chunks_seen += 1;
    }
    assert!(
        streamed[..] == body[MIN_PART_SIZE - 10..],
        "streamed range exact"
    );
    assert!(chunks_seen >= 1);
    // The put's mode holds for multipart bodies too.
    let again = futures_util::stream::iter(vec![Ok(Bytes::from(body.clone()))]);
    let e = s
        .put_stream(&k, again, &PutOptions::create_only())
        .await
        .expect_err("a create-only put_stream over an existing object");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let small = s
        .put_reader(
            &key(&format!("{base}/small.txt")),
            &b"tiny body"[..],
            &PutOptions::default(),
        )
        .await
        .expect("put reader");
    assert_eq!(small.size, 9);
    let failing = futures_util::stream::iter(vec![
        Ok(Bytes::from(pattern(MIN_PART_SIZE + 1))),
        Err(crate::Error::new(
            ErrorKind::Unavailable,
            "source went away",
        )),
    ]);
    let broken = key(&format!("{base}/broken.bin"));
    let e = s
        .put_stream(&broken, failing, &PutOptions::default())
        .await
        .expect_err("a put_stream whose source fails");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        !s.exists(&broken).await.expect("exists"),
        "nothing partial is visible"
    );
}

/// A scoped handle reads, writes, lists and copies only under its prefix; nesting stays inside
/// it; a nested prefix past the key limit is refused.
pub async fn scoped_handles_see_only_their_prefix(s: Storage, base: &str) {
    let scope = key(&format!("{base}/tenant-a"));
    let a = s.scoped(&scope).expect("scoped");
    // Nesting stays inside the outer prefix, or fails: never a prefix of its own at the root.
    let nested = a.scoped(&key("deeper")).expect("scoped");
    assert_eq!(
        nested.prefix(),
        Some(&key(&format!("{base}/tenant-a/deeper")))
    );
    let long = key(&"x".repeat(MAX_KEY_LEN - 10));
    assert_eq!(
        a.scoped(&long)
            .expect_err("a nested prefix past the key limit")
            .kind(),
        ErrorKind::InvalidInput,
        "a nested prefix past the key limit is refused"
    );
    a.put(&key("docs/x.txt"), "x".into(), &PutOptions::default())
        .await
        .expect("put");
    s.put(
        &key(&format!("{base}/tenant-b/docs/y.txt")),
        "y".into(),
        &PutOptions::default(),
    )
    .await
    .expect("put");
    let listed: Vec<String> = a
        .list(None)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.path.to_string())
        .collect();
    assert_eq!(listed, ["docs/x.txt"]);
    let level = a
        .list_with_delimiter(None)
        .await
        .expect("list with delimiter");
    assert_eq!(level.common_prefixes, [key("docs")]);
    assert_eq!(
        a.head(&key("docs/x.txt")).await.expect("head").path,
        key("docs/x.txt")
    );
    assert!(
        s.exists(&key(&format!("{base}/tenant-a/docs/x.txt")))
            .await
            .expect("exists")
    );
    a.copy(&key("docs/x.txt"), &key("docs/z.txt"))
        .await
        .expect("copy");
    assert!(
        s.exists(&key(&format!("{base}/tenant-a/docs/z.txt")))
            .await
            .expect("exists")
    );
    s.ping().await.expect("ping");
}

/// For a networked store: `s` points at a port nothing listens on, and calls fail with a
/// retryable error (`Unavailable` or `Timeout`), after the retries, within the deadline. Not
/// part of [`run_all`], which needs a live store.
pub async fn a_dead_server_fails_within_the_deadline(s: Storage) {
    let s = s.with_retry(
        RetryPolicy::default()
            .max_attempts(3)
            .attempt_timeout(Duration::from_secs(1))
            .deadline(Duration::from_secs(3))
            .backoff(Duration::from_millis(10), Duration::from_millis(50)),
    );
    let started = Instant::now();
    let e = s.head(&key("x")).await.expect_err("head on a dead server");
    assert!(
        matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{e}"
    );
    assert!(e.is_retryable(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let e = s
        .put(&key("x"), "x".into(), &PutOptions::default())
        .await
        .expect_err("put on a dead server");
    assert!(e.is_retryable(), "{e}");
}
