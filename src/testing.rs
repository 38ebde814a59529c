//! What the public conformance suites share (feature `testing`).

use std::sync::atomic::{AtomicU64, Ordering};

/// A name no other call, in this process or another, returns: `<name>-<pid>-<ns>-<n>`, with
/// `separator` between the parts (`_` where `-` is not allowed). Checks sharing a server use
/// it for every bucket, key prefix, topic or queue they create, so they run in any order or at
/// once.
pub fn unique_name(name: &str, separator: char) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!("{name}{separator}{pid}{separator}{nanos:x}{separator}{n}")
}
